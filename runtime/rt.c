/* sentryd's account of itself for the API and the metrics (rt.h). */
#include "rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double sn_rt_buckets[SN_RT_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30,
};

void sn_rt_init(struct sn_rt *rt)
{
	*rt = (struct sn_rt){ 0 };
}

static void free_rules(struct sn_rt_policy *p)
{
	for (uint32_t i = 0; i < p->n_rules; i++) {
		free(p->rules[i].file);
		free(p->rules[i].text);
	}
	free(p->rules);
	p->rules = NULL;
	p->n_rules = p->n_limits = 0;
}

void sn_rt_free(struct sn_rt *rt)
{
	free_rules(&rt->policy);
	for (size_t i = 0; i < SN_RT_HISTORY; i++)
		free(rt->history[i].error);
	free(rt->failure.error);
	free(rt->failure.diagnostics);
	*rt = (struct sn_rt){ 0 };
}

int sn_rt_set_policy(struct sn_rt *rt, const struct sn_image *img,
		     uint64_t loaded_at_ns)
{
	struct sn_rt_rule *rules = calloc(img->n_rules ? img->n_rules : 1,
					  sizeof(*rules));
	if (!rules)
		return -ENOMEM;
	const struct sn_image_features *f = img->features;
	uint32_t n_limits = f ? f->n_limits : 0;
	uint32_t first_limit = img->n_rules - n_limits;
	for (uint32_t i = 0; i < img->n_rules; i++) {
		const struct sn_image_rule *r = &img->rules[i];
		rules[i].id = r->id;
		rules[i].line = r->line;
		rules[i].col = r->col;
		rules[i].action = i >= first_limit ? "limit" :
				  r->verdict == SN_VERDICT_ALLOW ? "allow" : "block";
		rules[i].file = strdup(r->file ? r->file : "");
		rules[i].text = strdup(r->text ? r->text : "");
		if (!rules[i].file || !rules[i].text) {
			struct sn_rt_policy tmp = { .rules = rules,
						    .n_rules = i + 1 };
			free_rules(&tmp);
			return -ENOMEM;
		}
	}
	free_rules(&rt->policy);
	struct sn_rt_policy *p = &rt->policy;
	p->rules = rules;
	p->n_rules = img->n_rules;
	p->n_limits = n_limits;
	sn_checksum_hex(img->checksum, p->checksum);
	p->loaded_at_ns = loaded_at_ns;
	return 0;
}

void sn_rt_set_checksum(struct sn_rt *rt, const char *hex,
			uint64_t loaded_at_ns)
{
	snprintf(rt->policy.checksum, sizeof(rt->policy.checksum), "%s", hex);
	rt->policy.loaded_at_ns = loaded_at_ns;
}

const struct sn_rt_reload *sn_rt_record(struct sn_rt *rt,
					const struct sn_rt_reload *r,
					const char *diagnostics)
{
	struct sn_rt_reload *e = &rt->history[rt->head];
	free(e->error);
	*e = *r;
	e->error = r->error ? strdup(r->error) : NULL;
	rt->head = (rt->head + 1) % SN_RT_HISTORY;
	if (rt->n_history < SN_RT_HISTORY)
		rt->n_history++;
	bool counted = strcmp(r->trigger, "start") != 0;
	if (r->result == SN_RT_FAILED) {
		if (counted)
			rt->reloads_failed++;
		free(rt->failure.error);
		free(rt->failure.diagnostics);
		rt->failure.at_ns = r->at_ns;
		rt->failure.error = r->error ? strdup(r->error) : NULL;
		rt->failure.diagnostics = diagnostics ? strdup(diagnostics) : NULL;
		rt->failure.current = true;
	} else {
		if (counted)
			rt->reloads_ok++;
		rt->failure.current = false;
	}
	if (counted) {
		size_t b = 0;
		while (b < SN_RT_BUCKETS && r->duration_s > sn_rt_buckets[b])
			b++;
		if (b < SN_RT_BUCKETS)
			rt->hist.counts[b]++;
		rt->hist.count++;
		rt->hist.sum += r->duration_s;
	}
	return e;
}

const struct sn_rt_reload *sn_rt_recent(const struct sn_rt *rt, size_t i)
{
	if (i >= rt->n_history)
		return NULL;
	return &rt->history[(rt->head + SN_RT_HISTORY - 1 - i) % SN_RT_HISTORY];
}

const char *sn_rt_result_name(enum sn_rt_result r)
{
	return r == SN_RT_OK ? "ok" : r == SN_RT_UNCHANGED ? "unchanged" :
							     "failed";
}

void sn_rt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	if (!ns || !gmtime_r(&t, &tm)) {
		if (len)
			buf[0] = '\0';
		return;
	}
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03uZ",
		 (unsigned)((ns / 1000000ull) % 1000ull));
}

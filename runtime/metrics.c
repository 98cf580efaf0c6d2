/* Prometheus text exposition of sentryd (metrics.h, SPEC.md 6.6). */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

const char *const sn_drop_reasons[SN_DROP_REASONS] = {
	"policy", "default", "rate_limit", "malformed",
};

/*
 * Why a rule's packets were dropped: a block rule of the policy, a
 * family default that blocks, a limit rule (its counter counts only the
 * packets it dropped), or the malformed pseudo-rule (every packet class
 * of SPEC.md 3 the data plane drops before the policy).
 */
const char *sn_drop_reason(const struct sn_rt *rt, uint32_t id)
{
	if (id >= rt->policy.n_rules)
		return NULL;
	const struct sn_rt_rule *r = &rt->policy.rules[id];
	if (id == SN_RULE_MALFORMED)
		return "malformed";
	if (id == SN_RULE_NON_IP)
		return NULL;
	if (!strcmp(r->action, "limit"))
		return "rate_limit";
	if (strcmp(r->action, "block"))
		return NULL;
	return id < SN_RULE_FIRST ? "default" : "policy";
}

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *out, const char *v)
{
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
}

static void head(FILE *out, const char *name, const char *type,
		 const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{interface="IF" then the caller's labels */
static void open_series(FILE *out, const char *name, const char *ifname)
{
	fprintf(out, "%s{interface=\"", name);
	label(out, ifname);
	fputc('"', out);
}

static void series_u64(FILE *out, const char *name, const char *ifname,
		       uint64_t v)
{
	open_series(out, name, ifname);
	fprintf(out, "} %" PRIu64 "\n", v);
}

static void rule_labels(FILE *out, const struct sn_rt_rule *r)
{
	fprintf(out, ",rule=\"%u\",file=\"", r->id);
	label(out, r->file);
	fprintf(out, "\",line=\"%u\",action=\"%s\"", r->line, r->action);
}

#define EACH_IFACE(i) \
	for (int i = 0; i < rt->n_ifaces; i++) \
		if (samples[i].ok)

static void rules(FILE *out, const struct sn_rt *rt,
		  const struct sn_rt_sample *samples)
{
	static const char *const names[2] = { "sentry_rule_packets_total",
					      "sentry_rule_bytes_total" };
	static const char *const helps[2] = {
		"Packets decided by the rule (counted at the rule that decided them; limit rules: packets they dropped).",
		"Bytes (frame length as XDP sees it) of the packets decided by the rule.",
	};
	for (int k = 0; k < 2; k++) {
		head(out, names[k], "counter", helps[k]);
		EACH_IFACE(i) {
			const struct sn_rt_sample *s = &samples[i];
			for (uint32_t id = 0; id < s->n_counters &&
					      id < rt->policy.n_rules; id++) {
				open_series(out, names[k], rt->ifaces[i].name);
				rule_labels(out, &rt->policy.rules[id]);
				fprintf(out, "} %" PRIu64 "\n",
					k ? s->counters[id].bytes :
					    s->counters[id].packets);
			}
		}
	}
	head(out, "sentry_rule_info", "gauge",
	     "The rule's text, by the labels of its counters (always 1).");
	EACH_IFACE(i) {
		for (uint32_t id = 0; id < samples[i].n_counters &&
				      id < rt->policy.n_rules; id++) {
			const struct sn_rt_rule *r = &rt->policy.rules[id];
			open_series(out, "sentry_rule_info", rt->ifaces[i].name);
			rule_labels(out, r);
			fputs(",text=\"", out);
			label(out, r->text);
			fputs("\"} 1\n", out);
		}
	}
	head(out, "sentry_drops_total", "counter",
	     "Packets dropped, by reason: policy (a block rule), default (a family default that blocks), rate_limit (over a limit), malformed (SPEC.md 3).");
	EACH_IFACE(i) {
		uint64_t sum[SN_DROP_REASONS] = { 0 };
		for (uint32_t id = 0; id < samples[i].n_counters; id++) {
			const char *why = sn_drop_reason(rt, id);
			for (int k = 0; why && k < SN_DROP_REASONS; k++)
				if (!strcmp(why, sn_drop_reasons[k]))
					sum[k] += samples[i].counters[id].packets;
		}
		for (int k = 0; k < SN_DROP_REASONS; k++) {
			open_series(out, "sentry_drops_total", rt->ifaces[i].name);
			fprintf(out, ",reason=\"%s\"} %" PRIu64 "\n",
				sn_drop_reasons[k], sum[k]);
		}
	}
}

static void policy(FILE *out, const struct sn_rt *rt,
		   const struct sn_rt_sample *samples)
{
	head(out, "sentry_policy_generation", "gauge",
	     "Policy applies on the interface since its state was created (survives daemon restarts).");
	EACH_IFACE(i)
		series_u64(out, "sentry_policy_generation", rt->ifaces[i].name,
			   samples[i].meta.reloads);
	head(out, "sentry_policy_active_generation", "gauge",
	     "Which of the two map generations (0 or 1) the program reads.");
	EACH_IFACE(i)
		series_u64(out, "sentry_policy_active_generation",
			   rt->ifaces[i].name, samples[i].active_gen);
	head(out, "sentry_policy_info", "gauge",
	     "The SHA-256 of the policy image enforced (always 1).");
	EACH_IFACE(i) {
		char hex[65];
		sn_checksum_hex(samples[i].meta.checksum, hex);
		open_series(out, "sentry_policy_info", rt->ifaces[i].name);
		fprintf(out, ",checksum=\"%s\"} 1\n", hex);
	}
	head(out, "sentry_policy_loaded_timestamp_seconds", "gauge",
	     "When the enforced policy was applied (Unix time).");
	EACH_IFACE(i) {
		open_series(out, "sentry_policy_loaded_timestamp_seconds",
			    rt->ifaces[i].name);
		fprintf(out, "} %.3f\n",
			(double)samples[i].meta.applied_at_ns / 1e9);
	}
	head(out, "sentry_policy_rules", "gauge",
	     "Rule ids of the enforced policy, pseudo-rules included.");
	EACH_IFACE(i)
		series_u64(out, "sentry_policy_rules", rt->ifaces[i].name,
			   samples[i].meta.n_rules);
}

static void reloads(FILE *out, const struct sn_rt *rt,
		    const struct sn_rt_sample *samples)
{
	head(out, "sentry_reloads_total", "counter",
	     "Reloads since sentryd started (file changes, SIGHUP, POST /v1/reload), by result.");
	EACH_IFACE(i) {
		open_series(out, "sentry_reloads_total", rt->ifaces[i].name);
		fprintf(out, ",result=\"success\"} %" PRIu64 "\n", rt->reloads_ok);
		open_series(out, "sentry_reloads_total", rt->ifaces[i].name);
		fprintf(out, ",result=\"failure\"} %" PRIu64 "\n",
			rt->reloads_failed);
	}
	head(out, "sentry_reload_failing", "gauge",
	     "1 while the last reload failed and the previous policy stays enforced.");
	EACH_IFACE(i)
		series_u64(out, "sentry_reload_failing", rt->ifaces[i].name,
			   rt->failure.at_ns && rt->failure.current);
	head(out, "sentry_reload_duration_seconds", "histogram",
	     "Time from the start of a reload's compile to the end of its apply.");
	EACH_IFACE(i) {
		uint64_t cum = 0;
		for (int b = 0; b < SN_RT_BUCKETS; b++) {
			cum += rt->hist.counts[b];
			open_series(out, "sentry_reload_duration_seconds_bucket",
				    rt->ifaces[i].name);
			fprintf(out, ",le=\"%g\"} %" PRIu64 "\n", sn_rt_buckets[b],
				cum);
		}
		open_series(out, "sentry_reload_duration_seconds_bucket",
			    rt->ifaces[i].name);
		fprintf(out, ",le=\"+Inf\"} %" PRIu64 "\n", rt->hist.count);
		open_series(out, "sentry_reload_duration_seconds_sum",
			    rt->ifaces[i].name);
		fprintf(out, "} %.6f\n", rt->hist.sum);
		series_u64(out, "sentry_reload_duration_seconds_count",
			   rt->ifaces[i].name, rt->hist.count);
	}
}

static void maps(FILE *out, const struct sn_rt *rt,
		 const struct sn_rt_sample *samples)
{
	static const char *const names[2] = { "sentry_map_entries",
					      "sentry_map_max_entries" };
	static const char *const helps[2] = {
		"Entries in use in the map (the active generation for maps that hold two).",
		"Capacity of the map (per generation for maps that hold two).",
	};
	for (int k = 0; k < 2; k++) {
		head(out, names[k], "gauge", helps[k]);
		EACH_IFACE(i) {
			for (size_t m = 0; m < samples[i].n_maps; m++) {
				const struct sn_rt_map *e = &samples[i].maps[m];
				open_series(out, names[k], rt->ifaces[i].name);
				fprintf(out, ",map=\"%s\"} %" PRIu64 "\n", e->name,
					k ? e->max_entries : e->entries);
			}
		}
	}
}

static void programs(FILE *out, const struct sn_rt *rt,
		     const struct sn_rt_sample *samples)
{
	bool any = false;
	EACH_IFACE(i)
		any |= samples[i].prog_stats;
	if (!any)
		return; /* kernel.bpf_stats_enabled is 0: nothing is counted */
	head(out, "sentry_prog_run_time_seconds_total", "counter",
	     "Time the XDP program ran (kernel.bpf_stats_enabled=1 only).");
	EACH_IFACE(i) {
		if (!samples[i].prog_stats)
			continue;
		open_series(out, "sentry_prog_run_time_seconds_total",
			    rt->ifaces[i].name);
		fputs(",program=\"", out);
		label(out, samples[i].prog_name);
		fprintf(out, "\"} %.9f\n", (double)samples[i].run_time_ns / 1e9);
	}
	head(out, "sentry_prog_run_count_total", "counter",
	     "Runs of the XDP program (kernel.bpf_stats_enabled=1 only).");
	EACH_IFACE(i) {
		if (!samples[i].prog_stats)
			continue;
		open_series(out, "sentry_prog_run_count_total", rt->ifaces[i].name);
		fputs(",program=\"", out);
		label(out, samples[i].prog_name);
		fprintf(out, "\"} %" PRIu64 "\n", samples[i].run_cnt);
	}
}

int sn_metrics_render(FILE *out, const struct sn_rt *rt,
		      const struct sn_rt_sample *samples)
{
	head(out, "sentry_up", "gauge", "1 while sentryd answers.");
	fputs("sentry_up 1\n", out);
	head(out, "sentry_build_info", "gauge", "sentryd's version (always 1).");
	fprintf(out, "sentry_build_info{version=\"%s\"} 1\n", SN_VERSION);
	head(out, "sentry_start_time_seconds", "gauge",
	     "When sentryd started (Unix time).");
	fprintf(out, "sentry_start_time_seconds %.3f\n",
		(double)rt->started_ns / 1e9);
	head(out, "sentry_interface_info", "gauge",
	     "An interface sentryd enforces on, with its XDP attach mode (always 1).");
	EACH_IFACE(i) {
		open_series(out, "sentry_interface_info", rt->ifaces[i].name);
		fprintf(out, ",mode=\"%s\"} 1\n",
			samples[i].meta.attach_mode == SN_ATTACH_NATIVE ? "native" :
			samples[i].meta.attach_mode == SN_ATTACH_GENERIC ? "generic" :
									  "unknown");
	}
	rules(out, rt, samples);
	policy(out, rt, samples);
	reloads(out, rt, samples);
	maps(out, rt, samples);
	programs(out, rt, samples);
	return ferror(out) ? -EIO : 0;
}

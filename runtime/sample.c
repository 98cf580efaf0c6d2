/*
 * sn_rt_sample (rt.h): what one interface's maps and program hold now,
 * read from the kernel when the API or a scrape asks.
 *
 * Map occupancy comes from the loader's population (what the active
 * generation holds, entry by entry: pop.h) and the program's capacities;
 * only the rate-limit buckets, which the program creates, are counted in
 * the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "dataplane.h"
#include "pop.h"
#include "rt.h"

static void add_map(struct sn_rt_sample *s, const char *name,
		    uint64_t entries, uint64_t max)
{
	if (s->n_maps < SN_RT_MAX_MAPS)
		s->maps[s->n_maps++] = (struct sn_rt_map){ name, entries, max };
}

static uint64_t count_set(const uint8_t *v, uint32_t n)
{
	uint64_t c = 0;
	for (uint32_t i = 0; v && i < n; i++)
		c += v[i] != 0;
	return c;
}

/* Keys of a hash map, by walking them (bounded by max). */
static uint64_t count_keys(int fd, uint32_t key_size, uint64_t max)
{
	unsigned char a[64], b[64];
	uint64_t n = 0;
	if (fd < 0 || key_size > sizeof(a))
		return 0;
	void *cur = NULL, *next = a;
	while (n < max && bpf_map_get_next_key(fd, cur, next) == 0) {
		n++;
		cur = next;
		next = next == a ? b : a;
	}
	return n;
}

static void sample_maps(const struct sn_dataplane *dp,
			struct sn_rt_sample *s)
{
	const struct sn_pop *p = sn_dp_pop(dp);
	const struct sn_pop_geom *g = &p->g;
	uint32_t stride = g->l4_stride ? g->l4_stride : 1;
	uint32_t classes = g->cap[SN_PA_DECISIONS] / stride;

	add_map(s, "sn_decisions", count_set(p->class_used, classes) * stride,
		g->cap[SN_PA_DECISIONS]);
	add_map(s, "sn_lpm4", p->lpm[0].n, g->cap_lpm[0]);
	add_map(s, "sn_lpm6", p->lpm[1].n, g->cap_lpm[1]);
	/* The trie maps hold two words per element. */
	for (int f = 0; f < 2; f++) {
		int64_t w = sn_pop_trie_words_used(p, f);
		if (w >= 0)
			add_map(s, f ? "sn_src6_nodes" : "sn_src4_nodes",
				((uint64_t)w + 1) / 2,
				g->cap[f ? SN_PA_NODES6 : SN_PA_NODES4]);
	}
	add_map(s, "sn_limits", count_set(p->limit_used, g->cap[SN_PA_LIMITS]),
		g->cap[SN_PA_LIMITS]);
	uint64_t slots = 0;
	for (uint32_t i = 0; p->slots && i < g->cap_slots; i++)
		slots += p->slots[i].flags & 1;
	add_map(s, "sn_counters", slots, g->cap_slots);

	int fd = sn_dp_map_fd(dp, "sn_limit_state");
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
		add_map(s, "sn_limit_state",
			count_keys(fd, info.key_size, info.max_entries),
			info.max_entries);
}

/* Program run time, counted by the kernel only while bpf_stats is on. */
static bool stats_enabled(void)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	int c = f ? fgetc(f) : EOF;
	if (f)
		fclose(f);
	return c == '1';
}

void sn_rt_sample(const struct sn_rt *rt, int i, struct sn_rt_sample *s)
{
	*s = (struct sn_rt_sample){ 0 };
	const struct sn_dataplane *dp = rt->ifaces[i].dp;
	if (!dp) {
		snprintf(s->err, sizeof(s->err), "not attached");
		return;
	}
	uint32_t zero = 0;
	int fd = sn_dp_map_fd(dp, "sn_meta");
	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &s->meta)) {
		snprintf(s->err, sizeof(s->err), "cannot read sn_meta: %s",
			 strerror(fd < 0 ? -fd : errno));
		return;
	}
	s->active_gen = sn_dp_generation(dp);
	uint32_t n = rt->policy.n_rules;
	if (n) {
		s->counters = calloc(n, sizeof(*s->counters));
		if (!s->counters) {
			snprintf(s->err, sizeof(s->err), "out of memory");
			return;
		}
		int rc = sn_dp_read_counters(dp, s->counters, n);
		if (rc) {
			snprintf(s->err, sizeof(s->err), "cannot read counters: %s",
				 strerror(-rc));
			free(s->counters);
			s->counters = NULL;
			return;
		}
		s->n_counters = n;
	}
	sample_maps(dp, s);
	if (stats_enabled()) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int pfd = sn_dp_prog_fd(dp);
		if (pfd >= 0 && !bpf_obj_get_info_by_fd(pfd, &info, &len)) {
			s->prog_stats = true;
			snprintf(s->prog_name, sizeof(s->prog_name), "%s",
				 info.name[0] ? info.name : "xdp");
			s->run_time_ns = info.run_time_ns;
			s->run_cnt = info.run_cnt;
		}
	}
	s->ok = true;
}

void sn_rt_sample_free(struct sn_rt_sample *s)
{
	free(s->counters);
	s->counters = NULL;
}

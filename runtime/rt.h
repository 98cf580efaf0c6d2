/*
 * What sentryd knows about itself, as its control surface (the REST API,
 * the Prometheus exposition, SPEC.md 6.5, 6.6) reports it: the daemon,
 * its interfaces, the applied policy's rule table, the recent reloads and
 * their duration histogram.
 *
 * sentryd owns one struct sn_rt and updates it from its event loop; the
 * HTTP server runs in the same loop, so handlers read it without locks.
 * What lives in the kernel (counters, sn_meta, map occupancy, program run
 * time) is not copied here: it is sampled when a request asks for it
 * (sn_rt_sample), so a scrape always sees the kernel's current counts.
 */
#ifndef SN_RT_H
#define SN_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../bpf/sentry_abi.h"
#include "../compiler/image.h"

#define SN_VERSION "0.6.0"
#define SN_RT_MAX_IFACES 64
#define SN_RT_HISTORY 64   /* reloads kept for GET /v1/reloads */
#define SN_RT_BUCKETS 14   /* sentry_reload_duration_seconds buckets */
#define SN_RT_MAX_MAPS 12

/* Upper bounds (seconds) of the reload duration histogram buckets. */
extern const double sn_rt_buckets[SN_RT_BUCKETS];

struct sn_rt_rule {
	uint32_t id;       /* rule id of the applied image (SPEC.md 5.3) */
	char *file;        /* "" for pseudo-rules */
	uint32_t line, col;
	const char *action; /* "allow", "block" or "limit" (static) */
	char *text;
};

/* The applied policy (the same on every interface). */
struct sn_rt_policy {
	char checksum[65];     /* hex; "" when nothing is known */
	uint64_t loaded_at_ns; /* CLOCK_REALTIME: applied (or adopted) */
	struct sn_rt_rule *rules;
	uint32_t n_rules;
	uint32_t n_limits;     /* the last n_limits rules are limit rules */
};

enum sn_rt_result { SN_RT_OK, SN_RT_UNCHANGED, SN_RT_FAILED };

struct sn_rt_reload {
	uint64_t at_ns;       /* CLOCK_REALTIME when it finished */
	const char *trigger;  /* "start", "watch", "signal", "api" (static) */
	enum sn_rt_result result;
	bool policy_error;    /* failed: the policy is invalid (else: the
				 data plane refused it) */
	double duration_s;    /* first compile step to the end of the apply */
	uint64_t entries;     /* written into each generation */
	uint32_t rules;       /* rules of the policy now enforced */
	char checksum[65];    /* enforced after it */
	char *error;          /* failed: one line; NULL otherwise */
};

/* The last reload that failed, with sentry-compile's diagnostics. */
struct sn_rt_failure {
	uint64_t at_ns;
	char *error;
	char *diagnostics;    /* text as sentry-compile prints it, or NULL */
	bool current;         /* no successful reload since */
};

struct sn_rt_hist {
	uint64_t counts[SN_RT_BUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;
};

struct sn_dataplane;

struct sn_rt_iface {
	const char *name;
	struct sn_dataplane *dp; /* NULL while not attached */
};

struct sn_rt {
	pid_t pid;
	uint64_t started_ns;  /* CLOCK_REALTIME */
	const char *policy_path;
	const char *listen;   /* what the API listens on, for /v1/status */
	const char *pin_root, *state_dir; /* so clients know whose API it is */
	struct sn_rt_iface ifaces[SN_RT_MAX_IFACES];
	int n_ifaces;
	struct sn_rt_policy policy;
	struct sn_rt_failure failure; /* at_ns == 0: none yet */
	struct sn_rt_reload history[SN_RT_HISTORY]; /* a ring */
	size_t n_history, head; /* head: where the next one goes */
	uint64_t reloads_ok, reloads_failed;
	struct sn_rt_hist hist;
	/*
	 * POST /v1/reload: the daemon's own reload path (the one inotify and
	 * SIGHUP take), run to the end; returns the reload it recorded, or
	 * NULL when the files kept changing (it is then retried by the event
	 * loop after the quiet period).
	 */
	const struct sn_rt_reload *(*reload)(void *ctx);
	void *reload_ctx;
};

void sn_rt_init(struct sn_rt *rt);
void sn_rt_free(struct sn_rt *rt);

/* Take the applied image's rule table and sizes (strings copied). */
int sn_rt_set_policy(struct sn_rt *rt, const struct sn_image *img,
		     uint64_t loaded_at_ns);
/* Only the checksum and time (adopted state, not compiled). */
void sn_rt_set_checksum(struct sn_rt *rt, const char *hex,
			uint64_t loaded_at_ns);

/*
 * Record a reload attempt: into the history ring, the counts and the
 * histogram (start is not counted as a reload); a failure also becomes
 * rt->failure (diagnostics copied).  Returns the entry recorded.
 */
const struct sn_rt_reload *sn_rt_record(struct sn_rt *rt,
					const struct sn_rt_reload *r,
					const char *diagnostics);
/* The i-th most recent reload (0: the last), or NULL. */
const struct sn_rt_reload *sn_rt_recent(const struct sn_rt *rt, size_t i);
const char *sn_rt_result_name(enum sn_rt_result r);
/* RFC 3339 UTC with milliseconds; "" for 0. */
void sn_rt_time(uint64_t ns, char *buf, size_t len);

/* ---- what the kernel holds, sampled per request ---------------------------- */

struct sn_rt_map {
	const char *name;
	uint64_t entries, max_entries; /* per generation where there are two */
};

struct sn_rt_sample {
	bool ok;               /* false: err says why, the rest is empty */
	char err[160];
	struct sn_meta meta;
	uint32_t active_gen;
	struct sn_counter *counters; /* by rule id of the applied image */
	uint32_t n_counters;
	struct sn_rt_map maps[SN_RT_MAX_MAPS];
	size_t n_maps;
	bool prog_stats;       /* bpf_stats_enabled: run time is counted */
	char prog_name[16];
	uint64_t run_time_ns, run_cnt;
};

/* Read interface i's state from the kernel (never fails the request:
 * s->ok says whether it could). */
void sn_rt_sample(const struct sn_rt *rt, int i, struct sn_rt_sample *s);
void sn_rt_sample_free(struct sn_rt_sample *s);

#endif

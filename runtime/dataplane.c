/*
 * The XDP data plane from userspace (dataplane.h): load the one BPF object
 * specialised for an image, apply images to its maps atomically with two
 * generations, attach it with a bpf_link, pin it, replace the program on
 * the same maps, adopt pinned state, and tear pinned state down without
 * the daemon.
 *
 * Library rules: no globals, nothing printed, every failure is a negative
 * errno plus a one-line reason in err.  libbpf itself may still log through
 * its print callback; the application decides where that goes
 * (libbpf_set_print).  The verifier log of a failed load is captured here
 * and its reason line put into err instead of being dumped by libbpf.
 */
#include <errno.h>
#include <limits.h>
#include <linux/if_link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/evp.h>

#include "dataplane.h"
#include "errmsg.h"
#include "sentry_xdp.skel.h"

/* Enough for the failing part of a verifier log; the rest is truncated. */
#define SN_LOG_BUF_SIZE (1u << 20)
/* Entries per batch syscall (bounds the key/value buffers). */
#define SN_BATCH 65536u

enum map_id {
	M_LPM4_0, M_LPM4_1, M_LPM6_0, M_LPM6_1,
	M_PROTO, M_PORTS, M_DEC, M_COUNTERS, M_META,
	M_SRC4_NODES, M_SRC6_NODES,
	M_LIMITS, M_LIMIT_STATE, M_LIMIT_NEW, M_GEN, M_SLOTS,
	N_MAPS
};

/* Pin names (also the maps' kernel names). */
static const char *const map_names[N_MAPS] = {
	"sn_lpm4_g0", "sn_lpm4_g1", "sn_lpm6_g0", "sn_lpm6_g1",
	"sn_proto", "sn_ports", "sn_decisions", "sn_counters", "sn_meta",
	"sn_src4_nodes", "sn_src6_nodes",
	"sn_limits", "sn_limit_state", "sn_limit_new", "sn_gen", "sn_slots",
};

/* The population array a map holds, or -1. */
static const int pa_of[N_MAPS] = {
	[M_LPM4_0] = -1, [M_LPM4_1] = -1, [M_LPM6_0] = -1, [M_LPM6_1] = -1,
	[M_PROTO] = SN_PA_PROTO, [M_PORTS] = SN_PA_PORTS,
	[M_DEC] = SN_PA_DECISIONS, [M_COUNTERS] = -1, [M_META] = -1,
	[M_SRC4_NODES] = SN_PA_NODES4, [M_SRC6_NODES] = SN_PA_NODES6,
	[M_LIMITS] = SN_PA_LIMITS, [M_LIMIT_STATE] = -1, [M_LIMIT_NEW] = -1,
	[M_GEN] = -1, [M_SLOTS] = -1,
};

/* The map holding a population array. */
static const int map_of_pa[SN_PA_N] = {
	[SN_PA_PROTO] = M_PROTO, [SN_PA_PORTS] = M_PORTS,
	[SN_PA_DECISIONS] = M_DEC, [SN_PA_LIMITS] = M_LIMITS,
	[SN_PA_NODES4] = M_SRC4_NODES, [SN_PA_NODES6] = M_SRC6_NODES,
};

/* Legacy pin names (state of the layout before generations). */
static const char *const legacy_names[] = { "sn_lpm_v4", "sn_lpm_v6" };

/* A loaded program and its maps (fds owned). */
struct progset {
	int prog_fd;
	int fd[N_MAPS];
};

struct sn_dataplane {
	struct progset ps;
	int link_fd; /* -1 when not attached */
	int ifindex;
	enum sn_attach_mode mode;
	uint32_t gen; /* the active generation */
	int sync_outer, sync_inner; /* grace periods (dp_sync) */
	struct sn_pop pop;
	struct sn_meta meta;
	uint8_t tag[8]; /* this build's program */
	bool need_replace;  /* the loaded program is not this build's */
	bool stale_standby; /* a level failed: rewrite the standby first */
	bool pending;       /* flipped; the old generation not level yet */
	double t_apply;     /* when the pending apply started (stats) */
	bool pinned;
	char pin_dir[PATH_MAX];
	struct sn_dp_stats stats;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* dir/name into buf; -ENAMETOOLONG when it does not fit. */
static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void progset_init(struct progset *ps)
{
	ps->prog_fd = -1;
	for (int i = 0; i < N_MAPS; i++)
		ps->fd[i] = -1;
}

static void progset_close(struct progset *ps)
{
	if (ps->prog_fd >= 0)
		close(ps->prog_fd);
	for (int i = 0; i < N_MAPS; i++)
		if (ps->fd[i] >= 0)
			close(ps->fd[i]);
	progset_init(ps);
}

/*
 * The line of a verifier log that says why: the last non-empty line that
 * is not one of the statistics lines the verifier appends.
 */
static void log_reason(const char *log, char *out, size_t outlen)
{
	const char *best = NULL, *p = log;
	size_t best_len = 0;

	out[0] = '\0';
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len && strncmp(p, "processed ", 10) &&
		    strncmp(p, "verification time", 17) &&
		    strncmp(p, "stack depth", 11) &&
		    strncmp(p, "-- END", 6)) {
			best = p;
			best_len = len;
		}
		p = nl ? nl + 1 : NULL;
	}
	if (best)
		snprintf(out, outlen, "%.*s", (int)best_len, best);
}

/* SHA-256 prefix of the BPF object this build loads. */
static void prog_tag(uint8_t out[8])
{
	unsigned char md[32];
	unsigned int n = 0;
	size_t sz = 0;
	const void *elf = sentry_xdp__elf_bytes(&sz);

	memset(out, 0, 8);
	if (EVP_Digest(elf, sz, md, &n, EVP_sha256(), NULL) && n == 32)
		memcpy(out, md, 8);
}

static struct bpf_map *skel_map(struct sentry_xdp *s, int i)
{
	struct bpf_map *maps[N_MAPS] = {
		s->maps.sn_lpm4_g0, s->maps.sn_lpm4_g1, s->maps.sn_lpm6_g0,
		s->maps.sn_lpm6_g1, s->maps.sn_proto, s->maps.sn_ports,
		s->maps.sn_decisions, s->maps.sn_counters, s->maps.sn_meta,
		s->maps.sn_src4_nodes, s->maps.sn_src6_nodes,
		s->maps.sn_limits, s->maps.sn_limit_state, s->maps.sn_limit_new,
		s->maps.sn_gen, s->maps.sn_slots,
	};
	return maps[i];
}

/* max_entries of map i for a geometry. */
static uint32_t map_size(int i, const struct sn_pop_geom *g)
{
	switch (i) {
	case M_LPM4_0:
	case M_LPM4_1:
		return g->cap_lpm[0];
	case M_LPM6_0:
	case M_LPM6_1:
		return g->cap_lpm[1];
	case M_COUNTERS:
	case M_SLOTS:
		return g->cap_slots;
	case M_META:
	case M_LIMIT_NEW:
	case M_GEN:
		return 1;
	case M_LIMIT_STATE:
		return SN_CAP_LIMIT_STATE;
	default:
		return SN_GENS * g->cap[pa_of[i]];
	}
}

/*
 * This CPU's share of the budget of new buckets (SN_LIMIT_NEW_PER_S per
 * second, SN_LIMIT_NEW_BURST at once, over all possible CPUs), as rodata
 * of the program: it never changes while the program runs.
 */
static int set_new_state_budget(struct sentry_xdp *skel, char *err,
				size_t errlen)
{
	struct sn_limit_cfg c = { 0 };
	int ncpu = libbpf_num_possible_cpus();
	uint64_t burst_fp;

	if (ncpu <= 0)
		return sn_fail(err, errlen, ncpu ? ncpu : -EINVAL,
			       "cannot count CPUs: %s",
			       strerror(ncpu ? -ncpu : EINVAL));
	burst_fp = ((uint64_t)SN_LIMIT_NEW_BURST << 32) / (uint64_t)ncpu;
	if (burst_fp < SN_TOKEN_ONE)
		burst_fp = SN_TOKEN_ONE;
	sn_token_math(((uint64_t)SN_LIMIT_NEW_PER_S << 32) / (uint64_t)ncpu,
		      burst_fp, &c);
	skel->rodata->sn_new_rate_fp = c.rate_fp;
	skel->rodata->sn_new_rate_ns_q = c.rate_ns_q;
	skel->rodata->sn_new_burst_fp = c.burst_fp;
	skel->rodata->sn_new_fill_ns = c.fill_ns;
	skel->rodata->sn_new_shift = c.shift;
	return 0;
}

/*
 * Load the program for a geometry; maps with reuse[i] >= 0 are those maps
 * (same size), the others new.  The fds in out are our own.
 */
static int create_program(const struct sn_pop_geom *g, const int reuse[N_MAPS],
			  struct progset *out, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts);
	struct sentry_xdp *skel = NULL;
	char *log = malloc(SN_LOG_BUF_SIZE);
	int ret;

	progset_init(out);
	if (!log)
		return sn_fail(err, errlen, -ENOMEM, "out of memory");
	log[0] = '\0';
	/*
	 * Our own log buffer: libbpf then leaves the verifier log to us
	 * instead of printing it, and we can quote the reason in err.
	 */
	oopts.kernel_log_buf = log;
	oopts.kernel_log_size = SN_LOG_BUF_SIZE;
	skel = sentry_xdp__open_opts(&oopts);
	if (!skel) {
		ret = -errno;
		sn_seterr(err, errlen, "cannot open the XDP object: %s",
			  strerror(-ret));
		goto out;
	}
	for (int i = 0; i < N_MAPS; i++) {
		struct bpf_map *m = skel_map(skel, i);

		ret = reuse && reuse[i] >= 0 ? bpf_map__reuse_fd(m, reuse[i]) :
					       bpf_map__set_max_entries(m, map_size(i, g));
		if (ret) {
			sn_seterr(err, errlen, "%s map %s: %s",
				  reuse && reuse[i] >= 0 ? "reusing" : "sizing",
				  map_names[i], strerror(-ret));
			goto out;
		}
	}
	skel->rodata->sn_l4_stride = g->l4_stride;
	skel->rodata->sn_port_tables = g->port_tables;
	skel->rodata->sn_cap_decisions = g->cap[SN_PA_DECISIONS];
	skel->rodata->sn_cap_limits = g->cap[SN_PA_LIMITS];
	skel->rodata->sn_cap_src4_nodes = g->cap[SN_PA_NODES4];
	skel->rodata->sn_cap_src6_nodes = g->cap[SN_PA_NODES6];
	ret = set_new_state_budget(skel, err, errlen);
	if (ret)
		goto out;
	ret = sentry_xdp__load(skel);
	if (ret) {
		char reason[256];

		log_reason(log, reason, sizeof(reason));
		sn_seterr(err, errlen, "loading the XDP program: %s%s%s",
			  strerror(-ret), reason[0] ? ": " : "", reason);
		goto out;
	}
	/* Our own fds: the skeleton goes, the objects stay. */
	out->prog_fd = dup(bpf_program__fd(skel->progs.sentry_xdp));
	for (int i = 0; i < N_MAPS; i++)
		out->fd[i] = dup(bpf_map__fd(skel_map(skel, i)));
	ret = out->prog_fd < 0 ? -EMFILE : 0;
	for (int i = 0; i < N_MAPS; i++)
		if (out->fd[i] < 0)
			ret = -EMFILE;
	if (ret) {
		sn_seterr(err, errlen, "out of file descriptors");
		progset_close(out);
	}
out:
	if (skel)
		sentry_xdp__destroy(skel);
	free(log);
	return ret;
}

/* ---- writing generations ---------------------------------------------------- */

/* Update keys[i] -> values[i] (array map): batches where the kernel has them. */
static int batch_update(int fd, const uint32_t *keys, const void *values,
			size_t esz, uint32_t n)
{
	uint32_t count = n;
	int ret;

	if (!n)
		return 0;
	LIBBPF_OPTS(bpf_map_batch_opts, bopts, .elem_flags = 0, .flags = 0);
	ret = bpf_map_update_batch(fd, keys, values, &count, &bopts);
	if (ret == -EINVAL || ret == -EOPNOTSUPP || ret == -524 /* ENOTSUPP */) {
		const unsigned char *v = values;

		ret = 0;
		for (uint32_t i = 0; i < n && !ret; i++)
			ret = bpf_map_update_elem(fd, &keys[i], v + i * esz,
						  BPF_ANY);
	}
	return ret;
}

/* The dirty entries of a (the values the population holds) into gen. */
static int write_array(int fd, uint32_t gen, const struct sn_pop_array *a)
{
	uint32_t *keys;
	unsigned char *vals;
	int ret = 0;

	if (!a->n_dirty)
		return 0;
	size_t chunk = a->n_dirty < SN_BATCH ? a->n_dirty : SN_BATCH;

	keys = malloc(chunk * sizeof(*keys));
	vals = malloc(chunk * a->esz);
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (size_t done = 0; done < a->n_dirty && !ret; done += chunk) {
		size_t n = a->n_dirty - done < chunk ? a->n_dirty - done : chunk;

		for (size_t k = 0; k < n; k++) {
			uint32_t idx = a->dirty[done + k];

			keys[k] = gen * a->cap + idx;
			memcpy(vals + k * a->esz, a->v + (size_t)idx * a->esz,
			       a->esz);
		}
		ret = batch_update(fd, keys, vals, a->esz, (uint32_t)n);
	}
	free(keys);
	free(vals);
	return ret;
}

static void lpm_key(int f, const struct sn_pop_lpm_ent *e, void *key)
{
	if (!f) {
		struct sn_lpm_v4_key k = { .prefixlen = e->len };

		memcpy(k.addr, e->addr, 4);
		memcpy(key, &k, sizeof(k));
	} else {
		struct sn_lpm_v6_key k = { .prefixlen = e->len };

		memcpy(k.addr, e->addr, 16);
		memcpy(key, &k, sizeof(k));
	}
}

/*
 * The LPM ops into one generation's trie; restore: undo them instead
 * (after a rollback), last first.
 */
static int write_lpm(int fd, int f, const struct sn_pop_lpm *l, bool restore)
{
	unsigned char key[sizeof(struct sn_lpm_v6_key)];
	int ret = 0;

	for (size_t k = 0; k < l->n_ops && !ret; k++) {
		const struct sn_pop_lpm_op *op = &l->ops[restore ? l->n_ops - 1 - k : k];
		bool set = restore ? op->had : op->op == SN_LPM_SET;
		uint32_t cls = restore ? op->old_cls : op->e.cls;

		lpm_key(f, &op->e, key);
		if (set) {
			ret = bpf_map_update_elem(fd, key, &cls, BPF_ANY);
		} else {
			ret = bpf_map_delete_elem(fd, key);
			if (ret == -ENOENT)
				ret = 0;
		}
	}
	return ret;
}

/* Everything the population says changed, into generation gen of fds. */
static int write_gen(const int fd[N_MAPS], const struct sn_pop *p,
		     uint32_t gen, bool restore, char *err, size_t errlen)
{
	static const int lpm_map[2][2] = { { M_LPM4_0, M_LPM4_1 },
					   { M_LPM6_0, M_LPM6_1 } };
	int ret;

	for (int i = 0; i < SN_PA_N; i++) {
		ret = write_array(fd[map_of_pa[i]], gen, &p->a[i]);
		if (ret)
			return sn_fail(err, errlen, ret, "writing %s: %s",
				       map_names[map_of_pa[i]], strerror(-ret));
	}
	for (int f = 0; f < 2; f++) {
		ret = write_lpm(fd[lpm_map[f][gen]], f, &p->lpm[f], restore);
		if (ret)
			return sn_fail(err, errlen, ret, "writing %s: %s",
				       map_names[lpm_map[f][gen]], strerror(-ret));
	}
	return 0;
}

static int ncpus(void)
{
	int n = libbpf_num_possible_cpus();

	return n > 0 ? n : 1;
}

/* Slots changed by the translation, and zero counters of new ones. */
static int write_slots(const int fd[N_MAPS], const struct sn_pop *p,
		       bool zero_counters)
{
	struct sn_counter *zero;
	int ret = 0;

	for (size_t k = 0; k < p->n_slot_ops && !ret; k++) {
		uint32_t s = p->slot_ops[k].slot;

		ret = bpf_map_update_elem(fd[M_SLOTS], &s, &p->slots[s], BPF_ANY);
	}
	if (ret || !zero_counters || !p->n_zero)
		return ret;
	zero = calloc((size_t)ncpus(), sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	for (size_t k = 0; k < p->n_zero && !ret; k++)
		ret = bpf_map_update_elem(fd[M_COUNTERS], &p->slots_zero[k], zero,
					  BPF_ANY);
	free(zero);
	return ret;
}

/*
 * Wait for an RCU grace period: every program run that started before
 * has finished.  The kernel follows an update of a map-in-map from
 * userspace with synchronize_rcu() (maybe_wait_bpf_programs), so one
 * update of a one-slot BPF_MAP_TYPE_ARRAY_OF_MAPS is that wait.
 */
static int dp_sync(struct sn_dataplane *dp)
{
	uint32_t key = 0;

	if (dp->sync_outer < 0) {
		LIBBPF_OPTS(bpf_map_create_opts, o);

		dp->sync_inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sn_sync_in",
						4, 4, 1, NULL);
		if (dp->sync_inner < 0)
			return -errno;
		o.inner_map_fd = dp->sync_inner;
		dp->sync_outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS,
						"sn_sync", 4, 4, 1, &o);
		if (dp->sync_outer < 0)
			return -errno;
	}
	return bpf_map_update_elem(dp->sync_outer, &key, &dp->sync_inner,
				   BPF_ANY) ? -errno : 0;
}

static int write_u32(int fd, uint32_t key, uint32_t v)
{
	return bpf_map_update_elem(fd, &key, &v, BPF_ANY) ? -errno : 0;
}

static void meta_state(struct sn_dataplane *dp)
{
	dp->meta.state_version = SN_STATE_VERSION;
	dp->meta.l4_stride = dp->pop.g.l4_stride;
	dp->meta.port_tables = dp->pop.g.port_tables;
	dp->meta.active_gen = dp->gen;
	memcpy(dp->meta.prog_tag, dp->need_replace ? dp->meta.prog_tag : dp->tag,
	       sizeof(dp->meta.prog_tag));
}

static int store_meta(struct sn_dataplane *dp)
{
	uint32_t key = 0;

	meta_state(dp);
	return bpf_map_update_elem(dp->ps.fd[M_META], &key, &dp->meta, BPF_ANY) ?
		       -errno : 0;
}

static void meta_applied(struct sn_dataplane *dp, const struct sn_image *img)
{
	memcpy(dp->meta.checksum, img->checksum, sizeof(dp->meta.checksum));
	dp->meta.n_rules = img->n_rules;
	dp->meta.applied_at_ns = realtime_ns();
	dp->meta.reloads++;
	if (!dp->meta.abi_version)
		dp->meta.abi_version = SN_ABI_VERSION;
}

static size_t pop_changes(const struct sn_pop *p)
{
	size_t n = p->lpm[0].n_ops + p->lpm[1].n_ops;

	for (int i = 0; i < SN_PA_N; i++)
		n += p->a[i].n_dirty;
	return n;
}

/* A rewrite of one whole generation: every entry, the LPM tries made equal. */
static int write_gen_full(const int fd[N_MAPS], struct sn_pop *p, uint32_t gen,
			  char *err, size_t errlen);

/* ---- load, apply --------------------------------------------------------------- */

static struct sn_dataplane *dp_new(void)
{
	struct sn_dataplane *dp = calloc(1, sizeof(*dp));

	if (!dp)
		return NULL;
	progset_init(&dp->ps);
	dp->link_fd = -1;
	dp->sync_outer = dp->sync_inner = -1;
	prog_tag(dp->tag);
	return dp;
}

int sn_dp_load(const struct sn_image *image, struct sn_dataplane **out,
	       char *err, size_t errlen)
{
	struct sn_pop_geom g;
	struct sn_dataplane *dp;
	int ret;

	*out = NULL;
	if (image->constants.abi_version != SN_ABI_VERSION)
		return sn_fail(err, errlen, -EPROTO,
			       "policy image has ABI version %u, this data plane %u",
			       image->constants.abi_version, SN_ABI_VERSION);
	ret = sn_pop_geom_for(image, &g);
	if (ret)
		return sn_fail(err, errlen, ret == -E2BIG ? -E2BIG : ret,
			       "policy image too large for BPF maps");
	if (image->constants.port_tables & ~(((1u << (SN_PORT_TABLES + 1)) - 1) & ~1u))
		return sn_fail(err, errlen, -EINVAL,
			       "policy image: unknown port tables 0x%x",
			       image->constants.port_tables);
	dp = dp_new();
	if (!dp)
		return sn_fail(err, errlen, -ENOMEM, "out of memory");
	ret = create_program(&g, NULL, &dp->ps, err, errlen);
	if (!ret) {
		ret = sn_pop_init(&dp->pop, &g);
		if (ret)
			sn_seterr(err, errlen, "out of memory");
	}
	if (ret) {
		sn_dp_close(dp);
		return ret;
	}
	*out = dp;
	return 0;
}

/*
 * Standby written, flip, grace period, old generation level, commit: the
 * common end of an apply.  On a failure before the flip the standby is
 * restored and nothing changed.
 */
static int publish(struct sn_dataplane *dp, const struct sn_image *img,
		   double t0, char *err, size_t errlen)
{
	struct sn_dp_stats *st = &dp->stats;
	const uint32_t standby = dp->gen ^ 1;
	double t;
	int ret;

	st->entries = pop_changes(&dp->pop);
	if (!st->entries) {
		/* Nothing the program reads changes (only slot holders'
		 * rule ids, or nothing at all). */
		st->unchanged = true;
		st->enforced_at = now_ms();
		ret = write_slots(dp->ps.fd, &dp->pop, true);
		sn_pop_commit(&dp->pop);
		meta_applied(dp, img);
		if (!ret)
			ret = store_meta(dp);
		st->total_ms = now_ms() - t0;
		return ret ? sn_fail(err, errlen, ret, "writing sn_slots/sn_meta: %s",
				     strerror(-ret)) : 0;
	}
	t = now_ms();
	ret = write_slots(dp->ps.fd, &dp->pop, true);
	if (!ret)
		ret = write_gen(dp->ps.fd, &dp->pop, standby, false, err, errlen);
	if (!ret) {
		st->write_ms = now_ms() - t;
		t = now_ms();
		ret = write_u32(dp->ps.fd[M_GEN], 0, standby);
		if (ret)
			sn_seterr(err, errlen, "flipping sn_gen: %s", strerror(-ret));
	}
	if (ret) {
		/* Put the standby back as it was; the active one never moved. */
		char e2[128];

		sn_pop_rollback(&dp->pop);
		if (write_gen(dp->ps.fd, &dp->pop, standby, true, e2, sizeof(e2)) ||
		    write_slots(dp->ps.fd, &dp->pop, false))
			dp->stale_standby = true;
		sn_pop_commit(&dp->pop);
		return ret;
	}
	dp->gen = standby;
	st->flip_ms = now_ms() - t;
	st->enforced_at = now_ms();
	meta_applied(dp, img);
	store_meta(dp); /* informational: the flip is what enforces */
	dp->pending = true;
	dp->t_apply = t0;
	return 0;
}

int sn_dp_settle(struct sn_dataplane *dp, bool wait)
{
	struct sn_dp_stats *st = &dp->stats;
	double t;
	int ret = 0;

	if (!dp->pending)
		return 0;
	t = now_ms();
	if (wait)
		ret = dp_sync(dp);
	st->sync_ms = now_ms() - t;
	t = now_ms();
	if (ret) {
		/* No grace period: the old generation may still be read.
		 * Leave it; the next apply rewrites it after waiting. */
		dp->stale_standby = true;
	} else if (write_gen(dp->ps.fd, &dp->pop, dp->gen ^ 1, false, NULL, 0)) {
		dp->stale_standby = true;
	}
	st->level_ms = now_ms() - t;
	sn_pop_commit(&dp->pop);
	dp->pending = false;
	st->total_ms = now_ms() - dp->t_apply;
	return 0;
}

/* Make the standby generation equal to the population again. */
static int relevel(struct sn_dataplane *dp, char *err, size_t errlen)
{
	int ret = dp_sync(dp);

	if (!ret)
		ret = write_gen_full(dp->ps.fd, &dp->pop, dp->gen ^ 1, err,
				     errlen);
	else
		sn_seterr(err, errlen, "waiting for a grace period: %s",
			  strerror(-ret));
	if (!ret)
		dp->stale_standby = false;
	return ret;
}

static int stage_apply(struct sn_dataplane *dp, const struct sn_image *image,
		       char *err, size_t errlen)
{
	const double t0 = now_ms();
	int ret;

	sn_dp_settle(dp, true);
	memset(&dp->stats, 0, sizeof(dp->stats));
	if (image->constants.abi_version != SN_ABI_VERSION)
		return sn_fail(err, errlen, -EPROTO,
			       "policy image has ABI version %u, this data plane %u",
			       image->constants.abi_version, SN_ABI_VERSION);
	if (dp->stale_standby) {
		ret = relevel(dp, err, errlen);
		if (ret)
			return ret;
	}
	ret = sn_pop_translate(&dp->pop, image, err, errlen);
	if (ret)
		return ret;
	dp->stats.pop = dp->pop.stats;
	dp->stats.translate_ms = now_ms() - t0;
	return publish(dp, image, t0, err, errlen);
}

int sn_dp_apply(struct sn_dataplane *dp, const struct sn_image *image,
		char *err, size_t errlen)
{
	int ret = stage_apply(dp, image, err, errlen);

	sn_dp_settle(dp, true);
	return ret;
}

const struct sn_dp_stats *sn_dp_stats(const struct sn_dataplane *dp)
{
	return &dp->stats;
}

/* ---- program replacement ------------------------------------------------------ */

static int pin_obj(int fd, const char *dir, const char *name, const char *suffix)
{
	char path[PATH_MAX], full[128];

	snprintf(full, sizeof(full), "%s%s", name, suffix);
	if (join(path, sizeof(path), dir, full))
		return -ENAMETOOLONG;
	unlink(path); /* a leftover of an earlier attempt */
	return bpf_obj_pin(fd, path) ? -errno : 0;
}

static void unpin_obj(const char *dir, const char *name, const char *suffix)
{
	char path[PATH_MAX], full[128];

	snprintf(full, sizeof(full), "%s%s", name, suffix);
	if (!join(path, sizeof(path), dir, full))
		unlink(path);
}

/* Move <name>_new over <name> (bpffs renames atomically). */
static int promote(const char *dir, const char *name)
{
	char from[PATH_MAX], to[PATH_MAX], full[128];

	snprintf(full, sizeof(full), "%s_new", name);
	if (join(from, sizeof(from), dir, full) || join(to, sizeof(to), dir, name))
		return -ENAMETOOLONG;
	return rename(from, to) ? -errno : 0;
}

/* Copy every slot's per-CPU counters from one map to another. */
static int copy_counters(int from, int to, uint32_t n)
{
	int nc = ncpus();
	struct sn_counter *v = calloc((size_t)nc, sizeof(*v));
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (uint32_t s = 0; s < n && !ret; s++) {
		if (bpf_map_lookup_elem(from, &s, v))
			continue;
		ret = bpf_map_update_elem(to, &s, v, BPF_ANY);
	}
	free(v);
	return ret;
}

static int replace_program(struct sn_dataplane *dp, const struct sn_image *img,
			   char *err, size_t errlen)
{
	const double t0 = now_ms();
	struct sn_dp_stats *st = &dp->stats;
	const struct sn_pop *op = &dp->pop;
	const struct sn_image_features *f = sn_image_features(img);
	struct sn_pop_geom need, g;
	struct sn_pop np;
	struct progset ns;
	bool new_map[SN_PA_N] = { false }, new_lpm[2] = { false };
	bool new_slots, pinned_new = false;
	int reuse[N_MAPS];
	uint32_t standby = dp->gen ^ 1, used_slots = 0;
	double t;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = sn_pop_geom_for(img, &need);
	if (ret)
		return sn_fail(err, errlen, ret, "policy image too large for BPF maps");
	g = need;
	/* Keep every map that is large enough; a new one where not. */
	for (int i = 0; i < SN_PA_N; i++) {
		uint32_t have = op->g.cap[i];
		bool fits;

		switch (i) {
		case SN_PA_DECISIONS:
			fits = have / need.l4_stride >= img->n_classes;
			break;
		case SN_PA_LIMITS:
			fits = have >= f->n_limits;
			break;
		default: /* what the image needs is half the headroom */
			fits = have >= (need.cap[i] + 1) / 2;
		}
		new_map[i] = !fits;
		g.cap[i] = fits ? have : need.cap[i];
	}
	for (int fam = 0; fam < 2; fam++) {
		size_t n = fam ? img->n_v6 : img->n_v4;

		new_lpm[fam] = op->g.cap_lpm[fam] < n;
		g.cap_lpm[fam] = new_lpm[fam] ? need.cap_lpm[fam] : op->g.cap_lpm[fam];
	}
	for (uint32_t s = 0; s < op->g.cap_slots; s++)
		used_slots += !!(op->slots[s].flags & SN_SLOT_USED);
	new_slots = op->g.cap_slots < used_slots + img->n_rules;
	g.cap_slots = new_slots ? (uint32_t)(2 * (used_slots + img->n_rules)) :
				  op->g.cap_slots;
	if (g.cap_slots > 4 * SN_CAP_RULES)
		return sn_fail(err, errlen, -E2BIG, "too many rules for the counters");

	for (int i = 0; i < N_MAPS; i++)
		reuse[i] = dp->ps.fd[i];
	for (int i = 0; i < SN_PA_N; i++)
		if (new_map[i])
			reuse[map_of_pa[i]] = -1;
	if (new_lpm[0])
		reuse[M_LPM4_0] = reuse[M_LPM4_1] = -1;
	if (new_lpm[1])
		reuse[M_LPM6_0] = reuse[M_LPM6_1] = -1;
	if (new_slots)
		reuse[M_COUNTERS] = reuse[M_SLOTS] = -1;
	reuse[M_GEN] = -1; /* the new program's own: it names the standby */

	t = now_ms();
	ret = create_program(&g, reuse, &ns, err, errlen);
	if (ret)
		return ret;
	st->load_ms = now_ms() - t;
	ret = sn_pop_clone(&np, op, &g, new_map, new_lpm);
	if (ret) {
		progset_close(&ns);
		return sn_fail(err, errlen, ret, "out of memory");
	}
	t = now_ms();
	ret = sn_pop_translate(&np, img, err, errlen);
	st->translate_ms = now_ms() - t;
	if (ret)
		goto fail_clean;
	st->pop = np.stats;
	st->entries = pop_changes(&np);

	t = now_ms();
	if (new_slots) {
		/* The counters move to the bigger map (packets counted in
		 * the old one from here to the swap are not carried). */
		ret = copy_counters(dp->ps.fd[M_COUNTERS], ns.fd[M_COUNTERS],
				    op->g.cap_slots);
		for (uint32_t s = 0; s < np.g.cap_slots && !ret; s++)
			if (np.slots[s].flags & SN_SLOT_USED)
				ret = bpf_map_update_elem(ns.fd[M_SLOTS], &s,
							  &np.slots[s], BPF_ANY) ? -errno : 0;
	}
	if (!ret)
		ret = write_slots(ns.fd, &np, true);
	if (ret) {
		sn_seterr(err, errlen, "writing counters/slots: %s", strerror(-ret));
		goto fail_restore;
	}
	ret = write_gen(ns.fd, &np, standby, false, err, errlen);
	if (!ret) {
		ret = write_u32(ns.fd[M_GEN], 0, standby);
		if (ret)
			sn_seterr(err, errlen, "writing sn_gen: %s", strerror(-ret));
	}
	if (ret)
		goto fail_restore;
	st->write_ms = now_ms() - t;

	/* The new objects pinned beside the old ones first (a crash from
	 * here on is finished or undone by the next adoption). */
	if (dp->pinned) {
		ret = pin_obj(ns.prog_fd, dp->pin_dir, "prog", "_new");
		for (int i = 0; i < N_MAPS && !ret; i++)
			if (reuse[i] < 0)
				ret = pin_obj(ns.fd[i], dp->pin_dir, map_names[i], "_new");
		pinned_new = true;
		if (ret) {
			sn_seterr(err, errlen, "pinning the new program: %s",
				  strerror(-ret));
			goto fail_restore;
		}
	}
	t = now_ms();
	if (dp->link_fd >= 0) {
		LIBBPF_OPTS(bpf_link_update_opts, lo, .flags = BPF_F_REPLACE,
			    .old_prog_fd = dp->ps.prog_fd);

		ret = bpf_link_update(dp->link_fd, ns.prog_fd, &lo);
		if (ret) {
			ret = -errno;
			sn_seterr(err, errlen, "bpf_link_update: %s", strerror(-ret));
			goto fail_restore;
		}
	}
	st->flip_ms = now_ms() - t;
	st->replaced = true;

	/* The new program decides from here on; the old generation is
	 * levelled by sn_dp_settle. */
	st->enforced_at = now_ms();
	progset_close(&dp->ps);
	dp->ps = ns;
	sn_pop_free(&dp->pop);
	dp->pop = np;
	dp->gen = standby;
	dp->need_replace = false;
	if (dp->pinned) {
		/* Every rename is atomic; the program's first, so a reader
		 * never pairs the new maps with the old program. */
		promote(dp->pin_dir, "prog");
		for (int i = 0; i < N_MAPS; i++)
			if (reuse[i] < 0)
				promote(dp->pin_dir, map_names[i]);
	}
	meta_applied(dp, img);
	store_meta(dp);
	dp->pending = true;
	dp->t_apply = t0;
	return 0;

fail_restore:
	{
		char e2[128];

		/* Only the kept maps matter: the new ones go with ns. */
		sn_pop_rollback(&np);
		if (write_gen(ns.fd, &np, standby, true, e2, sizeof(e2)) ||
		    (!new_slots && write_slots(ns.fd, &np, false)))
			dp->stale_standby = true;
	}
	if (pinned_new) {
		unpin_obj(dp->pin_dir, "prog", "_new");
		for (int i = 0; i < N_MAPS; i++)
			if (reuse[i] < 0)
				unpin_obj(dp->pin_dir, map_names[i], "_new");
	}
fail_clean:
	sn_pop_commit(&np);
	sn_pop_free(&np);
	progset_close(&ns);
	return ret;
}

int sn_dp_stage(struct sn_dataplane *dp, const struct sn_image *image,
		char *err, size_t errlen)
{
	int ret;

	if (!dp->need_replace) {
		ret = stage_apply(dp, image, err, errlen);
		if (ret != -ESTALE && ret != -E2BIG)
			return ret;
	}
	sn_dp_settle(dp, true);
	if (image->constants.abi_version != SN_ABI_VERSION)
		return sn_fail(err, errlen, -EPROTO,
			       "policy image has ABI version %u, this data plane %u",
			       image->constants.abi_version, SN_ABI_VERSION);
	if (dp->stale_standby) {
		ret = relevel(dp, err, errlen);
		if (ret)
			return ret;
	}
	return replace_program(dp, image, err, errlen);
}

int sn_dp_update(struct sn_dataplane *dp, const struct sn_image *image,
		 char *err, size_t errlen)
{
	int ret = sn_dp_stage(dp, image, err, errlen);

	sn_dp_settle(dp, true);
	return ret;
}

/* ---- attach, pin ----------------------------------------------------------------- */

static int link_xdp(int prog_fd, int ifindex, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = flags);
	int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lopts);

	return fd < 0 ? -errno : fd;
}

int sn_dp_attach(struct sn_dataplane *dp, int ifindex,
		 enum sn_xdp_mode_request req, enum sn_attach_mode *mode,
		 char *err, size_t errlen)
{
	int prog_fd = sn_dp_prog_fd(dp);
	enum sn_attach_mode got = SN_ATTACH_NATIVE;
	int fd;

	if (dp->link_fd >= 0) {
		sn_seterr(err, errlen, "already attached to ifindex %d",
			  dp->ifindex);
		return -EBUSY;
	}
	/*
	 * bpf_link_create rather than bpf_program__attach_xdp: libbpf 1.1
	 * cannot ask for a mode there.  AUTO tries the driver first: a
	 * driver without XDP answers EOPNOTSUPP (EINVAL on older kernels).
	 */
	if (req == SN_XDP_MODE_GENERIC) {
		fd = link_xdp(prog_fd, ifindex, XDP_FLAGS_SKB_MODE);
		got = SN_ATTACH_GENERIC;
	} else {
		fd = link_xdp(prog_fd, ifindex, XDP_FLAGS_DRV_MODE);
		if (req == SN_XDP_MODE_AUTO &&
		    (fd == -EOPNOTSUPP || fd == -EINVAL)) {
			fd = link_xdp(prog_fd, ifindex, XDP_FLAGS_SKB_MODE);
			got = SN_ATTACH_GENERIC;
		}
	}
	if (fd < 0) {
		const char *why = strerror(-fd);

		if (fd == -EBUSY || fd == -EEXIST)
			why = "another XDP program or link holds the interface";
		else if (fd == -ENODEV)
			why = "no such interface";
		else if (fd == -EOPNOTSUPP && req == SN_XDP_MODE_NATIVE)
			why = "driver has no native XDP (try generic)";
		sn_seterr(err, errlen, "attaching XDP (%s) to ifindex %d: %s",
			  got == SN_ATTACH_GENERIC ? "generic" : "native",
			  ifindex, why);
		return fd;
	}
	dp->link_fd = fd;
	dp->ifindex = ifindex;
	dp->mode = got;
	if (mode)
		*mode = got;
	return 0;
}

static int mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int sn_dp_pin(struct sn_dataplane *dp, const char *dir, char *err,
	      size_t errlen)
{
	/* prog, the maps, then the link: undone in reverse on failure. */
	const char *names[N_MAPS + 2];
	int fds[N_MAPS + 2];
	char path[PATH_MAX];
	int n = 0, done, ret;

	if (strlen(dir) >= sizeof(dp->pin_dir))
		return sn_fail(err, errlen, -ENAMETOOLONG, "pin path too long");
	ret = mkdir_p(dir);
	if (ret) {
		sn_seterr(err, errlen, "creating %s: %s", dir, strerror(-ret));
		return ret;
	}
	names[n] = "prog";
	fds[n++] = dp->ps.prog_fd;
	for (int i = 0; i < N_MAPS; i++) {
		names[n] = map_names[i];
		fds[n++] = dp->ps.fd[i];
	}
	if (dp->link_fd >= 0) {
		names[n] = "link";
		fds[n++] = dp->link_fd;
	}
	for (done = 0; done < n; done++) {
		ret = join(path, sizeof(path), dir, names[done]);
		if (!ret && bpf_obj_pin(fds[done], path))
			ret = -errno;
		if (ret) {
			sn_seterr(err, errlen, "pinning %s/%s: %s", dir,
				  names[done],
				  ret == -EEXIST ? "already pinned (stale state? sentryctl detach)" :
						   strerror(-ret));
			break;
		}
	}
	if (!ret) {
		snprintf(dp->pin_dir, sizeof(dp->pin_dir), "%s", dir);
		dp->pinned = true;
		return 0;
	}
	/* Leave nothing half-pinned behind. */
	while (done-- > 0)
		if (!join(path, sizeof(path), dir, names[done]))
			unlink(path);
	return ret;
}

int sn_dp_write_meta(struct sn_dataplane *dp, const struct sn_meta *meta)
{
	const struct sn_meta keep = dp->meta;

	dp->meta = *meta;
	/* The state fields are ours. */
	dp->meta.reloads = keep.reloads;
	return store_meta(dp);
}

const struct sn_meta *sn_dp_meta(const struct sn_dataplane *dp)
{
	return &dp->meta;
}

int sn_dp_map_fd(const struct sn_dataplane *dp, const char *name)
{
	for (int i = 0; i < N_MAPS; i++)
		if (!strcmp(map_names[i], name))
			return dp->ps.fd[i];
	return -ENOENT;
}

int sn_dp_prog_fd(const struct sn_dataplane *dp)
{
	return dp->ps.prog_fd;
}

uint32_t sn_dp_generation(const struct sn_dataplane *dp)
{
	return dp->gen;
}

int sn_dp_ifindex(const struct sn_dataplane *dp)
{
	return dp->ifindex;
}

enum sn_attach_mode sn_dp_mode(const struct sn_dataplane *dp)
{
	return dp->mode;
}

bool sn_dp_needs_new_program(const struct sn_dataplane *dp)
{
	return dp->need_replace;
}

const struct sn_pop *sn_dp_pop(const struct sn_dataplane *dp)
{
	return &dp->pop;
}

/* Sum per-CPU counters of slot[id] for ids [0, n); no slot reads as 0. */
static int read_counters(int fd, const uint32_t *slot, uint32_t n_slot,
			 struct sn_counter *out, uint32_t n)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sn_counter *percpu;
	int ret = 0;

	if (ncpu < 0)
		return ncpu;
	/* sizeof(struct sn_counter) is a multiple of 8: no per-CPU padding. */
	percpu = calloc((size_t)ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	for (uint32_t id = 0; id < n; id++) {
		uint32_t s = id < n_slot ? slot[id] : id < SN_RULE_FIRST ? id :
								      UINT32_MAX;

		memset(&out[id], 0, sizeof(out[id]));
		if (s == UINT32_MAX)
			continue;
		ret = bpf_map_lookup_elem(fd, &s, percpu);
		if (ret == -ENOENT) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		for (int c = 0; c < ncpu; c++) {
			out[id].packets += percpu[c].packets;
			out[id].bytes += percpu[c].bytes;
		}
	}
	free(percpu);
	return ret;
}

int sn_dp_read_counters(const struct sn_dataplane *dp, struct sn_counter *out,
			uint32_t n)
{
	return read_counters(dp->ps.fd[M_COUNTERS], dp->pop.rule_slot,
			     dp->pop.n_rules, out, n);
}

void sn_dp_close(struct sn_dataplane *dp)
{
	if (!dp)
		return;
	sn_dp_settle(dp, true);
	/* An unpinned link detaches here; a pinned one keeps enforcing. */
	if (dp->link_fd >= 0)
		close(dp->link_fd);
	progset_close(&dp->ps);
	if (dp->sync_outer >= 0)
		close(dp->sync_outer);
	if (dp->sync_inner >= 0)
		close(dp->sync_inner);
	sn_pop_free(&dp->pop);
	free(dp);
}

/* ---- whole generations: full rewrite, read back ------------------------------------ */

/* Read n entries of an array map (keys 0..n-1) into buf. */
static int read_array(int fd, uint32_t n, size_t esz, unsigned char *buf)
{
	uint32_t *keys = malloc(((size_t)n + 1) * sizeof(*keys));
	uint32_t in_batch = 0, out_batch = 0, count, done = 0;
	bool batched = true;
	int ret = 0;

	if (!keys)
		return -ENOMEM;
	while (done < n) {
		LIBBPF_OPTS(bpf_map_batch_opts, o);

		count = n - done;
		ret = bpf_map_lookup_batch(fd, done ? &in_batch : NULL, &out_batch,
					   keys + done, buf + (size_t)done * esz,
					   &count, &o);
		if (ret && ret != -ENOENT)
			break;
		done += count;
		if (ret == -ENOENT || !count) {
			ret = 0;
			break;
		}
		in_batch = out_batch;
	}
	if (ret || done < n)
		batched = false;
	for (uint32_t i = 0; batched && i < n; i++)
		batched = keys[i] == i;
	ret = 0;
	/* No batch support (or not in key order): one by one. */
	for (uint32_t i = 0; !batched && i < n && !ret; i++)
		ret = bpf_map_lookup_elem(fd, &i, buf + (size_t)i * esz) ? -errno : 0;
	free(keys);
	return ret;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct sn_pop_lpm_ent *x = a, *y = b;
	int c = memcmp(x->addr, y->addr, 16);

	return c ? c : (int)x->len - (int)y->len;
}

/* Every entry of an LPM trie, sorted. */
static int read_lpm(int fd, int f, struct sn_pop_lpm_ent **out, size_t *n_out)
{
	unsigned char key[sizeof(struct sn_lpm_v6_key)], next[sizeof(key)];
	const size_t ksz = f ? sizeof(struct sn_lpm_v6_key) :
			       sizeof(struct sn_lpm_v4_key);
	struct sn_pop_lpm_ent *v = NULL;
	size_t n = 0, cap = 0;
	void *prev = NULL;

	for (;;) {
		uint32_t cls;

		if (bpf_map_get_next_key(fd, prev, next)) {
			if (errno == ENOENT)
				break;
			free(v);
			return -errno;
		}
		memcpy(key, next, ksz);
		prev = key;
		if (bpf_map_lookup_elem(fd, key, &cls))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct sn_pop_lpm_ent *nv = realloc(v, cap * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		memcpy(&v[n].len, key, 1); /* prefixlen, little endian, <= 128 */
		memcpy(v[n].addr, key + 4, f ? 16 : 4);
		v[n].cls = cls;
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), ent_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

/* Make an LPM trie hold exactly want[0..n). */
static int lpm_make_equal(int fd, int f, const struct sn_pop_lpm_ent *want,
			  size_t n)
{
	struct sn_pop_lpm_ent *have = NULL;
	unsigned char key[sizeof(struct sn_lpm_v6_key)];
	size_t nh = 0, i = 0, j = 0;
	int ret = read_lpm(fd, f, &have, &nh);

	while (!ret && (i < nh || j < n)) {
		int c = i == nh ? 1 : j == n ? -1 : ent_cmp(&have[i], &want[j]);

		if (c < 0) {
			lpm_key(f, &have[i++], key);
			ret = bpf_map_delete_elem(fd, key);
			if (ret == -ENOENT)
				ret = 0;
		} else {
			if (c > 0 || have[i].cls != want[j].cls) {
				lpm_key(f, &want[j], key);
				ret = bpf_map_update_elem(fd, key, &want[j].cls,
							  BPF_ANY);
			}
			if (c == 0)
				i++;
			j++;
		}
	}
	free(have);
	return ret;
}

static int write_gen_full(const int fd[N_MAPS], struct sn_pop *p, uint32_t gen,
			  char *err, size_t errlen)
{
	static const int lpm_map[2][2] = { { M_LPM4_0, M_LPM4_1 },
					   { M_LPM6_0, M_LPM6_1 } };
	int ret = 0;

	for (int i = 0; i < SN_PA_N && !ret; i++) {
		const struct sn_pop_array *a = &p->a[i];
		uint32_t *keys = malloc((a->cap ? a->cap : 1) * sizeof(*keys));

		if (!keys)
			return sn_fail(err, errlen, -ENOMEM, "out of memory");
		for (uint32_t k = 0; k < a->cap; k++)
			keys[k] = gen * a->cap + k;
		for (uint32_t done = 0; done < a->cap && !ret; done += SN_BATCH) {
			uint32_t n = a->cap - done < SN_BATCH ? a->cap - done : SN_BATCH;

			ret = batch_update(fd[map_of_pa[i]], keys + done,
					   a->v + (size_t)done * a->esz, a->esz, n);
		}
		free(keys);
		if (ret)
			return sn_fail(err, errlen, ret, "rewriting %s: %s",
				       map_names[map_of_pa[i]], strerror(-ret));
	}
	for (int f = 0; f < 2 && !ret; f++) {
		ret = lpm_make_equal(fd[lpm_map[f][gen]], f, p->lpm[f].v,
				     p->lpm[f].n);
		if (ret)
			return sn_fail(err, errlen, ret, "rewriting %s: %s",
				       map_names[lpm_map[f][gen]], strerror(-ret));
	}
	return 0;
}

/* ---- adoption ------------------------------------------------------------------------ */

static int pinned_get(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd, ret = join(path, sizeof(path), dir, name);

	if (ret)
		return ret;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

static uint32_t prog_id_of(int fd)
{
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static int map_entries(int fd, uint32_t *entries)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*entries = info.max_entries;
	return 0;
}

/*
 * A replacement a crash left half-way: prog_new is pinned.  If the link
 * runs it, the swap happened: move every *_new over its name.  If not,
 * remove them: the old objects still enforce.
 */
static void settle_replacement(const char *dir)
{
	int nfd = pinned_get(dir, "prog_new"), lfd;
	bool done = false;

	if (nfd < 0)
		return;
	lfd = pinned_get(dir, "link");
	if (lfd >= 0) {
		struct bpf_link_info li = { 0 };
		uint32_t len = sizeof(li);

		if (!bpf_obj_get_info_by_fd(lfd, &li, &len))
			done = li.prog_id == prog_id_of(nfd);
		close(lfd);
	}
	close(nfd);
	if (done) {
		promote(dir, "prog");
		for (int i = 0; i < N_MAPS; i++)
			promote(dir, map_names[i]);
	} else {
		unpin_obj(dir, "prog", "_new");
		for (int i = 0; i < N_MAPS; i++)
			unpin_obj(dir, map_names[i], "_new");
	}
}

/*
 * Read an array map's two generations: the active one into the
 * population, the standby brought level with it.
 */
static int adopt_array(struct sn_dataplane *dp, int m, char *err, size_t errlen)
{
	struct sn_pop_array *a = &dp->pop.a[pa_of[m]];
	const uint32_t cap = a->cap, act = dp->gen, sb = dp->gen ^ 1;
	unsigned char *buf = malloc((size_t)2 * cap * a->esz + 1);
	uint32_t *keys = NULL;
	unsigned char *vals = NULL;
	uint32_t n = 0;
	int ret;

	if (!buf)
		return sn_fail(err, errlen, -ENOMEM, "out of memory");
	ret = read_array(dp->ps.fd[m], 2 * cap, a->esz, buf);
	if (ret) {
		free(buf);
		return sn_fail(err, errlen, ret, "reading %s: %s", map_names[m],
			       strerror(-ret));
	}
	memcpy(a->v, buf + (size_t)act * cap * a->esz, (size_t)cap * a->esz);
	keys = malloc(cap * sizeof(*keys) + 1);
	vals = malloc((size_t)cap * a->esz + 1);
	if (!keys || !vals) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < cap; i++) {
		const unsigned char *x = buf + ((size_t)act * cap + i) * a->esz;
		const unsigned char *y = buf + ((size_t)sb * cap + i) * a->esz;

		if (memcmp(x, y, a->esz)) {
			keys[n] = sb * cap + i;
			memcpy(vals + (size_t)n * a->esz, x, a->esz);
			n++;
		}
	}
	ret = batch_update(dp->ps.fd[m], keys, vals, a->esz, n);
	if (ret)
		sn_seterr(err, errlen, "levelling %s: %s", map_names[m],
			  strerror(-ret));
out:
	free(buf);
	free(keys);
	free(vals);
	return ret;
}

int sn_dp_adopt(const char *dir, struct sn_dataplane **out, char *err,
		size_t errlen)
{
	static const int lpm_map[2][2] = { { M_LPM4_0, M_LPM4_1 },
					   { M_LPM6_0, M_LPM6_1 } };
	struct sn_dataplane *dp;
	struct sn_meta meta = { 0 };
	struct sn_pop_geom g = { 0 };
	struct stat st;
	uint32_t e = 0, gen = 0;
	int ret;

	*out = NULL;
	if (stat(dir, &st))
		return sn_fail(err, errlen, -errno, "%s: %s", dir, strerror(errno));
	settle_replacement(dir);
	ret = sn_pinned_read_meta(dir, &meta);
	if (ret)
		return sn_fail(err, errlen, ret, "%s/sn_meta: %s", dir,
			       strerror(-ret));
	if (meta.state_version != SN_STATE_VERSION)
		return sn_fail(err, errlen, -EPROTO,
			       "pinned state of layout version %u, this sentryd "
			       "adopts version %u", meta.state_version,
			       SN_STATE_VERSION);
	dp = dp_new();
	if (!dp)
		return sn_fail(err, errlen, -ENOMEM, "out of memory");
	dp->meta = meta;
	dp->ps.prog_fd = pinned_get(dir, "prog");
	ret = dp->ps.prog_fd < 0 ? dp->ps.prog_fd : 0;
	if (ret) {
		sn_seterr(err, errlen, "%s/prog: %s", dir, strerror(-ret));
		goto fail;
	}
	for (int i = 0; i < N_MAPS && !ret; i++) {
		dp->ps.fd[i] = pinned_get(dir, map_names[i]);
		if (dp->ps.fd[i] < 0) {
			ret = dp->ps.fd[i];
			sn_seterr(err, errlen, "%s/%s: %s", dir, map_names[i],
				  strerror(-ret));
		}
	}
	if (ret)
		goto fail;
	dp->link_fd = pinned_get(dir, "link");
	if (dp->link_fd < 0) {
		ret = dp->link_fd;
		sn_seterr(err, errlen, "%s/link: %s (not enforcing: detach and "
			  "start again)", dir, strerror(-ret));
		goto fail;
	}
	{
		/* The link must still hold an interface, and its program is
		 * the one to adopt (the pin should be it). */
		struct bpf_link_info li = { 0 };
		uint32_t len = sizeof(li);

		if (bpf_obj_get_info_by_fd(dp->link_fd, &li, &len)) {
			ret = -errno;
			sn_seterr(err, errlen, "%s/link: %s", dir, strerror(-ret));
			goto fail;
		}
		if (li.type != BPF_LINK_TYPE_XDP || !li.xdp.ifindex) {
			ret = -ENOLINK;
			sn_seterr(err, errlen, "%s/link is attached to no interface "
				  "(was the interface removed?)", dir);
			goto fail;
		}
		dp->ifindex = (int)li.xdp.ifindex;
		if (li.prog_id != prog_id_of(dp->ps.prog_fd)) {
			int fd = bpf_prog_get_fd_by_id(li.prog_id);

			if (fd >= 0) {
				close(dp->ps.prog_fd);
				dp->ps.prog_fd = fd;
			}
		}
	}
	/* The geometry, from the maps themselves. */
	g.l4_stride = meta.l4_stride;
	g.port_tables = meta.port_tables;
	for (int i = 0; i < N_MAPS && !ret; i++) {
		ret = map_entries(dp->ps.fd[i], &e);
		if (ret)
			break;
		if (pa_of[i] >= 0)
			g.cap[pa_of[i]] = e / SN_GENS;
		else if (i == M_LPM4_0)
			g.cap_lpm[0] = e;
		else if (i == M_LPM6_0)
			g.cap_lpm[1] = e;
		else if (i == M_COUNTERS)
			g.cap_slots = e;
	}
	if (ret || !g.l4_stride || g.cap[SN_PA_DECISIONS] % g.l4_stride) {
		ret = ret ? ret : -EINVAL;
		sn_seterr(err, errlen, "pinned maps do not match sn_meta");
		goto fail;
	}
	ret = sn_pop_init(&dp->pop, &g);
	if (ret) {
		sn_seterr(err, errlen, "pinned maps of an unexpected shape");
		goto fail;
	}
	/* Whatever a dead daemon flipped has been read to the end. */
	ret = dp_sync(dp);
	if (ret) {
		sn_seterr(err, errlen, "waiting for a grace period: %s",
			  strerror(-ret));
		goto fail;
	}
	{
		uint32_t key = 0;

		if (bpf_map_lookup_elem(dp->ps.fd[M_GEN], &key, &gen)) {
			ret = -errno;
			sn_seterr(err, errlen, "reading sn_gen: %s", strerror(-ret));
			goto fail;
		}
	}
	dp->gen = gen & 1;
	for (int m = 0; m < N_MAPS && !ret; m++)
		if (pa_of[m] >= 0)
			ret = adopt_array(dp, m, err, errlen);
	for (int f = 0; f < 2 && !ret; f++) {
		struct sn_pop_lpm *l = &dp->pop.lpm[f];

		ret = read_lpm(dp->ps.fd[lpm_map[f][dp->gen]], f, &l->v, &l->n);
		l->cap = l->n;
		if (!ret)
			ret = lpm_make_equal(dp->ps.fd[lpm_map[f][dp->gen ^ 1]], f,
					     l->v, l->n);
		if (ret)
			sn_seterr(err, errlen, "reading/levelling the IPv%d LPM "
				  "tries: %s", f ? 6 : 4, strerror(-ret));
	}
	if (ret)
		goto fail;
	ret = read_array(dp->ps.fd[M_SLOTS], g.cap_slots, sizeof(struct sn_slot),
			 (unsigned char *)dp->pop.slots);
	if (ret) {
		sn_seterr(err, errlen, "reading sn_slots: %s", strerror(-ret));
		goto fail;
	}
	for (uint32_t i = 0; i < SN_RULE_FIRST; i++)
		dp->pop.slots[i] = (struct sn_slot){ .identity = i, .rule_id = i,
						     .flags = SN_SLOT_USED };
	/* Inconsistent content only costs the stable ids (all rewritten). */
	if (sn_pop_derive(&dp->pop, NULL, 0) == -ENOMEM) {
		ret = -ENOMEM;
		sn_seterr(err, errlen, "out of memory");
		goto fail;
	}
	dp->mode = (enum sn_attach_mode)meta.attach_mode;
	dp->need_replace = memcmp(meta.prog_tag, dp->tag, sizeof(dp->tag)) != 0;
	snprintf(dp->pin_dir, sizeof(dp->pin_dir), "%s", dir);
	dp->pinned = true;
	*out = dp;
	return 0;
fail:
	/* Never detaches: the pinned link keeps enforcing. */
	sn_dp_close(dp);
	return ret;
}

/* ---- pinned state, without the daemon ---------------------------------- */

int sn_pinned_read_meta(const char *dir, struct sn_meta *meta)
{
	uint32_t key = 0;
	int fd = pinned_get(dir, "sn_meta"), ret;

	if (fd < 0)
		return fd;
	memset(meta, 0, sizeof(*meta));
	ret = bpf_map_lookup_elem(fd, &key, meta) ? -errno : 0;
	close(fd);
	return ret;
}

int sn_pinned_read_counters(const char *dir, struct sn_counter *out,
			    uint32_t n)
{
	int fd = pinned_get(dir, "sn_counters"), sfd, ret;
	uint32_t *slot = NULL, cap = 0;

	if (fd < 0)
		return fd;
	sfd = pinned_get(dir, "sn_slots");
	if (sfd >= 0 && !map_entries(sfd, &cap) && cap) {
		struct sn_slot *s = malloc(cap * sizeof(*s));

		slot = malloc(n * sizeof(*slot) + 1);
		if (s && slot && !read_array(sfd, cap, sizeof(*s), (void *)s)) {
			for (uint32_t i = 0; i < n; i++)
				slot[i] = i < SN_RULE_FIRST ? i : UINT32_MAX;
			for (uint32_t k = SN_RULE_FIRST; k < cap; k++)
				if ((s[k].flags & SN_SLOT_USED) && s[k].rule_id < n)
					slot[s[k].rule_id] = k;
		} else {
			free(slot);
			slot = NULL;
		}
		free(s);
	}
	if (sfd >= 0)
		close(sfd);
	if (!slot) {
		/* State without slots: counters by rule id. */
		slot = malloc(n * sizeof(*slot) + 1);
		if (!slot) {
			close(fd);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < n; i++)
			slot[i] = i;
	}
	ret = read_counters(fd, slot, n, out, n);
	free(slot);
	close(fd);
	return ret;
}

/*
 * No link pin (crash between attach and pin, or someone removed it): find
 * every XDP link that runs exactly our pinned program (by program id, so
 * nothing else is touched) and detach it, even if a process still holds
 * it.  Returns how many were detached, or a negative errno.
 */
static int detach_links_of_prog(int prog_fd)
{
	struct bpf_prog_info pinfo = {};
	__u32 len = sizeof(pinfo), id = 0;
	int detached = 0;

	if (bpf_obj_get_info_by_fd(prog_fd, &pinfo, &len))
		return -errno;
	while (!bpf_link_get_next_id(id, &id)) {
		struct bpf_link_info linfo = {};
		__u32 llen = sizeof(linfo);
		int fd = bpf_link_get_fd_by_id(id);

		if (fd < 0)
			continue; /* went away meanwhile */
		if (!bpf_obj_get_info_by_fd(fd, &linfo, &llen) &&
		    linfo.type == BPF_LINK_TYPE_XDP &&
		    linfo.prog_id == pinfo.id && !bpf_link_detach(fd))
			detached++;
		close(fd);
	}
	return detached;
}

static int unlink_pin(const char *dir, const char *name, const char *suffix,
		      char *err, size_t errlen, int ret)
{
	char path[PATH_MAX], full[128];

	snprintf(full, sizeof(full), "%s%s", name, suffix);
	if (join(path, sizeof(path), dir, full))
		return ret;
	if (unlink(path) && errno != ENOENT && !ret) {
		ret = -errno;
		sn_seterr(err, errlen, "unpinning %s: %s", path, strerror(errno));
	}
	return ret;
}

int sn_pinned_detach(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret = 0;

	if (stat(dir, &st)) {
		ret = -errno;
		sn_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return ret;
	}
	/*
	 * Detach through the link first: bpf_link_detach takes the program
	 * off the interface at once, whoever else still holds the link.
	 */
	fd = pinned_get(dir, "link");
	if (fd >= 0) {
		if (bpf_link_detach(fd)) {
			ret = -errno;
			sn_seterr(err, errlen, "detaching %s/link: %s", dir,
				  strerror(errno));
		}
		close(fd);
	} else {
		/*
		 * Without a link pin, look the link up by our program (and a
		 * half-swapped replacement's).  A program attached the
		 * legacy netlink way would stay: we never attach that way.
		 */
		static const char *const progs[] = { "prog", "prog_new" };

		for (int k = 0; k < 2 && !ret; k++) {
			fd = pinned_get(dir, progs[k]);
			if (fd < 0)
				continue;
			int r = detach_links_of_prog(fd);

			if (r < 0) {
				ret = r;
				sn_seterr(err, errlen,
					  "looking for links of %s/%s: %s", dir,
					  progs[k], strerror(-r));
			}
			close(fd);
		}
	}
	if (ret)
		return ret; /* keep the pins: the program may still run */

	ret = unlink_pin(dir, "link", "", err, errlen, ret);
	ret = unlink_pin(dir, "prog", "", err, errlen, ret);
	ret = unlink_pin(dir, "prog", "_new", err, errlen, ret);
	for (int i = 0; i < N_MAPS; i++) {
		ret = unlink_pin(dir, map_names[i], "", err, errlen, ret);
		ret = unlink_pin(dir, map_names[i], "_new", err, errlen, ret);
	}
	for (size_t i = 0; i < sizeof(legacy_names) / sizeof(legacy_names[0]); i++)
		ret = unlink_pin(dir, legacy_names[i], "", err, errlen, ret);
	if (!ret && rmdir(dir)) {
		ret = -errno;
		sn_seterr(err, errlen, "removing %s: %s%s", dir, strerror(errno),
			  errno == ENOTEMPTY ? " (files 47Sentry did not pin)" :
					       "");
	}
	return ret;
}

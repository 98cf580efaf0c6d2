/*
 * The XDP data plane from userspace (dataplane.h): load the one BPF object
 * specialised for an image, populate its maps, attach it with a bpf_link,
 * pin it, read it back, and tear pinned state down without the daemon.
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
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dataplane.h"
#include "errmsg.h"
#include "sentry_xdp.skel.h"

/* Fixed sizes of the tables the image does not size. */
#define SN_PROTO_ENTRIES 256u
#define SN_PORT_ENTRIES (SN_PORT_TABLES * SN_PORTS_PER_TABLE)
/* Headroom: an image may grow to twice its size before a reload resizes. */
#define SN_MIN_ENTRIES 64u
/* Enough for the failing part of a verifier log; the rest is truncated. */
#define SN_LOG_BUF_SIZE (1u << 20)

struct sn_dataplane {
	struct sentry_xdp *skel;
	struct sn_constants constants; /* what the program was specialised with */
	uint32_t cap_v4, cap_v6, cap_decisions, cap_counters;
	uint32_t cap_limits;
	int link_fd; /* -1 when not attached */
	int ifindex;
	enum sn_attach_mode mode;
	/* Range tries (SPEC.md 4), [0] IPv4, [1] IPv6. */
	uint32_t cap_src_nodes[2], cap_src_ranges[2];
};

/* The maps, in pin order, with the names the pins carry (dataplane.h). */
#define SN_N_MAPS 14
static const char *const sn_map_names[SN_N_MAPS] = {
	"sn_lpm_v4", "sn_lpm_v6", "sn_proto", "sn_ports",
	"sn_decisions", "sn_counters", "sn_meta",
	"sn_src4_nodes", "sn_src4_ranges", "sn_src6_nodes", "sn_src6_ranges",
	"sn_limits", "sn_limit_state", "sn_limit_new",
};

static struct bpf_map *dp_map(const struct sn_dataplane *dp, int i)
{
	struct bpf_map *maps[SN_N_MAPS] = {
		dp->skel->maps.sn_lpm_v4,    dp->skel->maps.sn_lpm_v6,
		dp->skel->maps.sn_proto,     dp->skel->maps.sn_ports,
		dp->skel->maps.sn_decisions, dp->skel->maps.sn_counters,
		dp->skel->maps.sn_meta,
		dp->skel->maps.sn_src4_nodes, dp->skel->maps.sn_src4_ranges,
		dp->skel->maps.sn_src6_nodes, dp->skel->maps.sn_src6_ranges,
		dp->skel->maps.sn_limits, dp->skel->maps.sn_limit_state,
		dp->skel->maps.sn_limit_new,
	};
	return maps[i];
}

/* dir/name into buf; -ENAMETOOLONG when it does not fit. */
static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* max(2n, SN_MIN_ENTRIES), or 0 when that does not fit a u32. */
static uint32_t headroom(uint64_t n)
{
	uint64_t cap = 2 * n;

	if (cap < SN_MIN_ENTRIES)
		cap = SN_MIN_ENTRIES;
	return cap > UINT32_MAX ? 0 : (uint32_t)cap;
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

/* ---- rate limits: configuration from the image (SPEC.md 2.4) ----------- */

/*
 * The refill arithmetic of a token bucket of rate_fp tokens/s and
 * burst_fp tokens (32.32): see struct sn_limit_cfg for why rate_ns_q
 * and shift are chosen so.  128-bit intermediates here, so the program
 * never needs them.
 */
static void token_math(uint64_t rate_fp, uint64_t burst_fp,
		       struct sn_limit_cfg *c)
{
	const unsigned __int128 ns = SN_NSEC_PER_SEC;
	unsigned shift = 0;
	unsigned __int128 fill;

	if (!rate_fp)
		rate_fp = 1; /* the image reader refuses rate 0 */
	while (shift < 62 &&
	       ((unsigned __int128)rate_fp << (shift + 1)) / ns < (1ull << 34))
		shift++;
	c->rate_fp = rate_fp;
	c->burst_fp = burst_fp;
	c->shift = (uint8_t)shift;
	c->rate_ns_q = (uint64_t)(((unsigned __int128)rate_fp << shift) / ns);
	fill = ((unsigned __int128)burst_fp * ns + rate_fp - 1) / rate_fp;
	c->fill_ns = fill > UINT64_MAX ? UINT64_MAX : fill ? (uint64_t)fill : 1;
}

/*
 * This CPU's share of the budget of new buckets (SN_LIMIT_NEW_PER_S per
 * second, SN_LIMIT_NEW_BURST at once, over all possible CPUs), as rodata
 * of the program: it never changes while the program runs.
 */
static int set_new_state_budget(struct sn_dataplane *dp, char *err,
				size_t errlen)
{
	struct sn_limit_cfg c = { 0 };
	int ncpu = libbpf_num_possible_cpus();
	uint64_t burst_fp;

	if (ncpu <= 0) {
		sn_seterr(err, errlen, "cannot count CPUs: %s",
			  strerror(ncpu ? -ncpu : EINVAL));
		return ncpu ? ncpu : -EINVAL;
	}
	burst_fp = ((uint64_t)SN_LIMIT_NEW_BURST << 32) / (uint64_t)ncpu;
	if (burst_fp < SN_TOKEN_ONE)
		burst_fp = SN_TOKEN_ONE;
	token_math(((uint64_t)SN_LIMIT_NEW_PER_S << 32) / (uint64_t)ncpu,
		   burst_fp, &c);
	dp->skel->rodata->sn_new_rate_fp = c.rate_fp;
	dp->skel->rodata->sn_new_rate_ns_q = c.rate_ns_q;
	dp->skel->rodata->sn_new_burst_fp = c.burst_fp;
	dp->skel->rodata->sn_new_fill_ns = c.fill_ns;
	dp->skel->rodata->sn_new_shift = c.shift;
	return 0;
}

static int check_constants(const struct sn_image *image, char *err,
			   size_t errlen)
{
	const struct sn_constants *c = &image->constants;
	uint32_t valid_tables = ((1u << (SN_PORT_TABLES + 1)) - 1) & ~1u;

	if (c->abi_version != SN_ABI_VERSION) {
		sn_seterr(err, errlen,
		       "policy image has ABI version %u, this data plane %u",
		       c->abi_version, SN_ABI_VERSION);
		return -EPROTO;
	}
	if (!c->l4_stride || c->l4_stride < image->n_l4) {
		sn_seterr(err, errlen, "policy image: l4_stride %u < %u L4 classes",
		       c->l4_stride, image->n_l4);
		return -EINVAL;
	}
	if (c->port_tables & ~valid_tables) {
		sn_seterr(err, errlen, "policy image: unknown port tables 0x%x",
		       c->port_tables);
		return -EINVAL;
	}
	if (!image->n_classes) {
		sn_seterr(err, errlen, "policy image has no source class");
		return -EINVAL;
	}
	return 0;
}

int sn_dp_load(const struct sn_image *image, struct sn_dataplane **out,
	       char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts);
	struct sn_dataplane *dp;
	char *log = NULL;
	int ret;

	*out = NULL;
	ret = check_constants(image, err, errlen);
	if (ret)
		return ret;

	dp = calloc(1, sizeof(*dp));
	log = malloc(SN_LOG_BUF_SIZE);
	if (!dp || !log) {
		ret = -ENOMEM;
		sn_seterr(err, errlen, "out of memory");
		goto fail;
	}
	log[0] = '\0';
	dp->link_fd = -1;
	dp->constants = image->constants;
	dp->cap_v4 = headroom(image->n_v4);
	dp->cap_v6 = headroom(image->n_v6);
	dp->cap_decisions =
		headroom((uint64_t)image->n_classes * image->constants.l4_stride);
	dp->cap_counters = headroom(image->n_rules);
	for (int f = 0; f < 2; f++) {
		const struct sn_srcmap *m = f ? &image->src_v6 : &image->src_v4;

		dp->cap_src_nodes[f] = headroom(m->n_nodes);
		dp->cap_src_ranges[f] = headroom(m->n_ranges);
		if (!dp->cap_src_nodes[f] || !dp->cap_src_ranges[f]) {
			ret = -E2BIG;
			sn_seterr(err, errlen, "policy image too large for BPF maps");
			goto fail;
		}
	}
	dp->cap_limits = headroom(sn_image_features(image)->n_limits);
	if (!dp->cap_v4 || !dp->cap_v6 || !dp->cap_decisions ||
	    !dp->cap_counters || !dp->cap_limits) {
		ret = -E2BIG;
		sn_seterr(err, errlen, "policy image too large for BPF maps");
		goto fail;
	}

	/*
	 * Our own log buffer: libbpf then leaves the verifier log to us
	 * instead of printing it, and we can quote the reason in err.
	 */
	oopts.kernel_log_buf = log;
	oopts.kernel_log_size = SN_LOG_BUF_SIZE;
	dp->skel = sentry_xdp__open_opts(&oopts);
	if (!dp->skel) {
		ret = -errno;
		sn_seterr(err, errlen, "cannot open the XDP object: %s",
		       strerror(-ret));
		goto fail;
	}

	/* In sn_map_names order. */
	const uint32_t sizes[SN_N_MAPS] = {
		dp->cap_v4, dp->cap_v6, SN_PROTO_ENTRIES, SN_PORT_ENTRIES,
		dp->cap_decisions, dp->cap_counters, 1,
		dp->cap_src_nodes[0], dp->cap_src_ranges[0],
		dp->cap_src_nodes[1], dp->cap_src_ranges[1],
		dp->cap_limits, SN_CAP_LIMIT_STATE, 1,
	};
	for (int i = 0; i < SN_N_MAPS; i++) {
		ret = bpf_map__set_max_entries(dp_map(dp, i), sizes[i]);
		if (ret) {
			sn_seterr(err, errlen, "sizing map %s: %s",
			       sn_map_names[i], strerror(-ret));
			goto fail;
		}
	}
	dp->skel->rodata->sn_l4_stride = image->constants.l4_stride;
	dp->skel->rodata->sn_port_tables = image->constants.port_tables;
	ret = set_new_state_budget(dp, err, errlen);
	if (ret)
		goto fail;

	ret = sentry_xdp__load(dp->skel);
	if (ret) {
		char reason[256];

		log_reason(log, reason, sizeof(reason));
		sn_seterr(err, errlen, "loading the XDP program: %s%s%s",
		       strerror(-ret), reason[0] ? ": " : "", reason);
		goto fail;
	}
	free(log);
	*out = dp;
	return 0;

fail:
	if (dp && dp->skel)
		sentry_xdp__destroy(dp->skel);
	free(dp);
	free(log);
	return ret;
}

/*
 * Write values[0..n) at keys first..first+n-1 of an array map: one batch
 * syscall where the kernel has it (5.6+), one update per entry otherwise.
 */
static int array_write(int fd, uint32_t first, const void *values,
		       size_t value_size, uint32_t n)
{
	uint32_t *keys, count = n;
	int ret;

	if (!n)
		return 0;
	keys = malloc((size_t)n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		keys[i] = first + i;
	LIBBPF_OPTS(bpf_map_batch_opts, bopts, .elem_flags = 0, .flags = 0);
	ret = bpf_map_update_batch(fd, keys, values, &count, &bopts);
	if (ret == -EINVAL || ret == -EOPNOTSUPP || ret == -524 /* ENOTSUPP */) {
		const char *v = values;

		ret = 0;
		for (uint32_t i = 0; i < n && !ret; i++)
			ret = bpf_map_update_elem(fd, &keys[i],
						  v + i * value_size, BPF_ANY);
	}
	free(keys);
	return ret;
}

static int apply_ports(int fd, const struct sn_image *image, char *err,
		       size_t errlen)
{
	uint32_t *cls = malloc(SN_PORTS_PER_TABLE * sizeof(*cls));
	int ret = 0;

	if (!cls) {
		sn_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/*
	 * Every table is written, used or not, so a table an earlier image
	 * filled never holds stale classes (the program only reads tables
	 * set in sn_port_tables, but keep the map honest).
	 */
	for (uint32_t t = 1; t <= SN_PORT_TABLES && !ret; t++) {
		memset(cls, 0, SN_PORTS_PER_TABLE * sizeof(*cls));
		for (size_t i = 0; i < image->n_port_runs; i++) {
			const struct sn_port_run *r = &image->port_runs[i];

			if (r->table != t)
				continue;
			for (uint32_t p = r->lo; p <= r->hi; p++)
				cls[p] = r->l4_class;
		}
		ret = array_write(fd, (t - 1) * SN_PORTS_PER_TABLE, cls,
				  sizeof(*cls), SN_PORTS_PER_TABLE);
		if (ret)
			sn_seterr(err, errlen, "writing sn_ports: %s",
			       strerror(-ret));
	}
	free(cls);
	return ret;
}

/* LPM keys of one family, sorted, to find stale entries by bsearch. */
static int key_cmp_v4(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sn_lpm_v4_key));
}

static int key_cmp_v6(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sn_lpm_v6_key));
}

/*
 * Make the LPM trie of one family hold exactly the image's prefixes:
 * insert/overwrite every new one, then delete the ones only the previous
 * image had (collected first: deleting while walking with get_next_key
 * would skip entries).  LPM_TRIE has no batch update on every kernel we
 * support, so this is one syscall per prefix.
 */
static int apply_lpm(int fd, int family, const struct sn_class_prefix *pfx,
		     size_t n, uint32_t n_classes, char *err, size_t errlen)
{
	size_t ksz = family == SN_FAMILY_V4 ? sizeof(struct sn_lpm_v4_key) :
					      sizeof(struct sn_lpm_v6_key);
	size_t alen = family == SN_FAMILY_V4 ? 4 : 16;
	int (*cmp)(const void *, const void *) =
		family == SN_FAMILY_V4 ? key_cmp_v4 : key_cmp_v6;
	const char *name = family == SN_FAMILY_V4 ? "sn_lpm_v4" : "sn_lpm_v6";
	/* Key buffers are sized for v6 and used at ksz for both. */
	struct sn_lpm_v6_key *keys, cur, next;
	struct sn_lpm_v6_key *stale = NULL;
	size_t n_stale = 0, cap_stale = 0;
	void *prev = NULL;
	int ret = 0;

	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys) {
		sn_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct sn_class_prefix *cp = &pfx[i];
		uint32_t cls = cp->class_id;
		unsigned char *k = (unsigned char *)&keys[0] + i * ksz;
		uint32_t plen = cp->prefix.len;

		if (cp->prefix.family != family || plen > alen * 8 ||
		    cls >= n_classes) {
			sn_seterr(err, errlen, "%s: prefix %zu invalid", name, i);
			ret = -EINVAL;
			goto out;
		}
		memcpy(k, &plen, sizeof(plen));
		memcpy(k + sizeof(plen), cp->prefix.addr, alen);
		ret = bpf_map_update_elem(fd, k, &cls, BPF_ANY);
		if (ret) {
			sn_seterr(err, errlen, "writing %s: %s", name,
			       strerror(-ret));
			goto out;
		}
	}
	qsort(keys, n, ksz, cmp);

	while (!(ret = bpf_map_get_next_key(fd, prev, &next))) {
		if (!bsearch(&next, keys, n, ksz, cmp)) {
			if (n_stale == cap_stale) {
				size_t c = cap_stale ? 2 * cap_stale : 16;
				void *s = realloc(stale, c * sizeof(*stale));

				if (!s) {
					ret = -ENOMEM;
					sn_seterr(err, errlen, "out of memory");
					goto out;
				}
				stale = s;
				cap_stale = c;
			}
			memcpy((unsigned char *)stale + n_stale++ * ksz, &next,
			       ksz);
		}
		cur = next;
		prev = &cur;
	}
	if (ret != -ENOENT) {
		sn_seterr(err, errlen, "walking %s: %s", name, strerror(-ret));
		goto out;
	}
	ret = 0;
	for (size_t i = 0; i < n_stale && !ret; i++) {
		ret = bpf_map_delete_elem(fd, (unsigned char *)stale + i * ksz);
		if (ret == -ENOENT)
			ret = 0;
		if (ret)
			sn_seterr(err, errlen, "pruning %s: %s", name,
			       strerror(-ret));
	}
out:
	free(keys);
	free(stale);
	return ret;
}

/*
 * Write sn_limits from the image's limit rules.  Before the decisions
 * that name them.  Buckets (sn_limit_state) are keyed by identity and
 * left alone: a limit kept across an apply keeps its buckets, whatever
 * its new index, rate or burst.
 */
static int apply_limits(struct sn_dataplane *dp, const struct sn_image *image,
			char *err, size_t errlen)
{
	const struct sn_image_features *f = sn_image_features(image);
	struct sn_limit_cfg *cfg;
	int ret;

	if (f->n_limits > dp->cap_limits) {
		sn_seterr(err, errlen, "policy image has %u limit rules, the "
			  "loaded program %u: it must be reloaded", f->n_limits,
			  dp->cap_limits);
		return -E2BIG;
	}
	if (image->n_rules < SN_RULE_FIRST + f->n_limits) {
		sn_seterr(err, errlen, "policy image: rule table lacks the "
			  "limit rules");
		return -EINVAL;
	}
	cfg = calloc(f->n_limits ? f->n_limits : 1, sizeof(*cfg));
	if (!cfg) {
		sn_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < f->n_limits; i++) {
		const struct sn_image_limit *l = &f->limits[i];

		if (l->key_v4 > 32 || l->key_v6 > 128 || !l->burst ||
		    !l->rate_fp) {
			sn_seterr(err, errlen, "policy image: limit %u invalid", i);
			free(cfg);
			return -EINVAL;
		}
		token_math(l->rate_fp, (uint64_t)l->burst << 32, &cfg[i]);
		cfg[i].identity = l->identity;
		cfg[i].block_ns = (uint64_t)l->block_for * SN_NSEC_PER_SEC;
		cfg[i].rule_id = sn_image_limit_rule(image, f, i);
		cfg[i].key_v4 = l->key_v4;
		cfg[i].key_v6 = l->key_v6;
	}
	ret = array_write(bpf_map__fd(dp->skel->maps.sn_limits), 0, cfg,
			  sizeof(*cfg), f->n_limits);
	if (ret)
		sn_seterr(err, errlen, "writing sn_limits: %s", strerror(-ret));
	free(cfg);
	return ret;
}

int sn_dp_map_fd(const struct sn_dataplane *dp, const char *name)
{
	for (int i = 0; i < SN_N_MAPS; i++)
		if (!strcmp(sn_map_names[i], name))
			return bpf_map__fd(dp_map(dp, i));
	return -ENOENT;
}

/*
 * The source lookup of one family (SPEC.md 4): the range trie or the LPM
 * trie, as the image chose.  nodes[0] tells the program which one to
 * read, and it is written last, once the structure it points to is
 * complete; the structure no longer read is emptied after that (an empty
 * LPM trie holds no memory; stale range-trie entries are never reached).
 */
static int apply_source(struct sn_dataplane *dp, int family,
			const struct sn_image *img, char *err, size_t errlen)
{
	const bool v4 = family == SN_FAMILY_V4;
	const struct sn_srcmap *m = v4 ? &img->src_v4 : &img->src_v6;
	struct bpf_map *nodes = v4 ? dp->skel->maps.sn_src4_nodes :
				     dp->skel->maps.sn_src6_nodes;
	struct bpf_map *ranges = v4 ? dp->skel->maps.sn_src4_ranges :
				      dp->skel->maps.sn_src6_ranges;
	int lpm_fd = bpf_map__fd(v4 ? dp->skel->maps.sn_lpm_v4 :
				      dp->skel->maps.sn_lpm_v6);
	const struct sn_class_prefix *pfx = v4 ? img->v4 : img->v6;
	size_t n_pfx = v4 ? img->n_v4 : img->n_v6;
	uint32_t zero = 0, root = SN_SRC_USE_LPM;
	size_t rsz = v4 ? sizeof(struct sn_src_range_v4) :
			  sizeof(struct sn_src_range_v6);
	unsigned char *buf;
	int ret;

	if (!m->n_nodes) {
		ret = apply_lpm(lpm_fd, family, pfx, n_pfx, img->n_classes, err,
				errlen);
		if (ret)
			return ret;
		ret = bpf_map_update_elem(bpf_map__fd(nodes), &zero, &root,
					  BPF_ANY);
		if (ret)
			sn_seterr(err, errlen, "writing %s: %s",
				  bpf_map__name(nodes), strerror(-ret));
		return ret;
	}
	if (m->n_nodes > dp->cap_src_nodes[!v4] ||
	    m->n_ranges > dp->cap_src_ranges[!v4]) {
		sn_seterr(err, errlen,
			  "policy image outgrew the loaded maps: the program must be reloaded");
		return -E2BIG;
	}
	buf = calloc(m->n_ranges ? m->n_ranges : 1, rsz);
	if (!buf) {
		sn_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = 0;
	for (uint32_t i = 0; i < m->n_ranges && !ret; i++) {
		const struct sn_src_range *r = &m->ranges[i];
		uint64_t hi = 0, lo = 0;

		if (r->class_id >= img->n_classes) {
			sn_seterr(err, errlen, "%s: range %u invalid",
				  bpf_map__name(ranges), i);
			ret = -EINVAL;
		}
		for (int b = 0; b < 8; b++) {
			hi = hi << 8 | r->start[b];
			lo = lo << 8 | r->start[8 + b];
		}
		if (v4) {
			struct sn_src_range_v4 e = {
				.start = (uint32_t)(hi >> 32),
				.class_id = r->class_id,
			};

			memcpy(buf + i * rsz, &e, sizeof(e));
		} else {
			struct sn_src_range_v6 e = {
				.hi = hi, .lo = lo, .class_id = r->class_id,
			};

			memcpy(buf + i * rsz, &e, sizeof(e));
		}
	}
	if (!ret)
		ret = array_write(bpf_map__fd(ranges), 0, buf, rsz, m->n_ranges);
	if (!ret)
		ret = array_write(bpf_map__fd(nodes), 1, m->nodes + 1,
				  sizeof(*m->nodes), m->n_nodes - 1);
	if (!ret)
		ret = bpf_map_update_elem(bpf_map__fd(nodes), &zero,
					  &m->nodes[0], BPF_ANY);
	free(buf);
	if (ret) {
		if (ret != -EINVAL)
			sn_seterr(err, errlen, "writing the IPv%d range trie: %s",
				  v4 ? 4 : 6, strerror(-ret));
		return ret;
	}
	return apply_lpm(lpm_fd, family, NULL, 0, img->n_classes, err, errlen);
}

int sn_dp_apply(struct sn_dataplane *dp, const struct sn_image *image,
		char *err, size_t errlen)
{
	const struct sn_constants *c = &image->constants;
	uint64_t n_dec = (uint64_t)image->n_classes * c->l4_stride;
	int ret;

	ret = check_constants(image, err, errlen);
	if (ret)
		return ret;
	/* Rodata is frozen at load: other constants need another program. */
	if (c->l4_stride != dp->constants.l4_stride ||
	    c->port_tables != dp->constants.port_tables) {
		sn_seterr(err, errlen,
		       "generated constants changed (l4_stride %u->%u, port tables 0x%x->0x%x): the program must be reloaded",
		       dp->constants.l4_stride, c->l4_stride,
		       dp->constants.port_tables, c->port_tables);
		return -ESTALE;
	}
	if (image->n_v4 > dp->cap_v4 || image->n_v6 > dp->cap_v6 ||
	    n_dec > dp->cap_decisions || image->n_rules > dp->cap_counters) {
		sn_seterr(err, errlen,
		       "policy image outgrew the loaded maps: the program must be reloaded");
		return -E2BIG;
	}
	for (size_t i = 0; i < image->n_port_runs; i++) {
		const struct sn_port_run *r = &image->port_runs[i];

		if (r->table < 1 || r->table > SN_PORT_TABLES ||
		    r->lo > r->hi || r->l4_class >= c->l4_stride) {
			sn_seterr(err, errlen, "policy image: port run %zu invalid",
			       i);
			return -EINVAL;
		}
	}
	for (uint32_t i = 0; i < SN_PROTO_ENTRIES; i++) {
		if (image->proto[i].l4_noport >= c->l4_stride ||
		    image->proto[i].port_table > SN_PORT_TABLES) {
			sn_seterr(err, errlen,
			       "policy image: protocol %u entry invalid", i);
			return -EINVAL;
		}
	}
	for (uint64_t i = 0; i < n_dec; i++) {
		const struct sn_decision *d = &image->decisions[i];

		if (d->rule_id >= image->n_rules ||
		    (d->verdict != SN_VERDICT_ALLOW &&
		     d->verdict != SN_VERDICT_BLOCK)) {
			sn_seterr(err, errlen,
			       "policy image: decision %llu invalid",
			       (unsigned long long)i);
			return -EINVAL;
		}
	}

	/*
	 * In place and not atomic: a packet racing this call may see a mix
	 * of the two images.  The order narrows that window for growing
	 * policies (decisions for new classes exist before any LPM entry
	 * points at them); the two-generation swap of DESIGN.md section 5
	 * removes it.
	 */
	ret = array_write(bpf_map__fd(dp->skel->maps.sn_proto), 0, image->proto,
			  sizeof(image->proto[0]), SN_PROTO_ENTRIES);
	if (ret) {
		sn_seterr(err, errlen, "writing sn_proto: %s", strerror(-ret));
		return ret;
	}
	ret = apply_ports(bpf_map__fd(dp->skel->maps.sn_ports), image, err,
			  errlen);
	if (ret)
		return ret;
	ret = apply_limits(dp, image, err, errlen);
	if (ret)
		return ret;
	ret = array_write(bpf_map__fd(dp->skel->maps.sn_decisions), 0,
			  image->decisions, sizeof(image->decisions[0]),
			  (uint32_t)n_dec);
	if (ret) {
		sn_seterr(err, errlen, "writing sn_decisions: %s", strerror(-ret));
		return ret;
	}
	ret = apply_source(dp, SN_FAMILY_V4, image, err, errlen);
	if (ret)
		return ret;
	return apply_source(dp, SN_FAMILY_V6, image, err, errlen);
}

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
	const char *names[SN_N_MAPS + 2];
	int fds[SN_N_MAPS + 2];
	char path[PATH_MAX];
	int n = 0, done, ret;

	ret = mkdir_p(dir);
	if (ret) {
		sn_seterr(err, errlen, "creating %s: %s", dir, strerror(-ret));
		return ret;
	}
	names[n] = "prog";
	fds[n++] = sn_dp_prog_fd(dp);
	for (int i = 0; i < SN_N_MAPS; i++) {
		names[n] = sn_map_names[i];
		fds[n++] = bpf_map__fd(dp_map(dp, i));
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
	if (!ret)
		return 0;
	/* Leave nothing half-pinned behind. */
	while (done-- > 0)
		if (!join(path, sizeof(path), dir, names[done]))
			unlink(path);
	return ret;
}

int sn_dp_write_meta(struct sn_dataplane *dp, const struct sn_meta *meta)
{
	uint32_t key = 0;

	return bpf_map_update_elem(bpf_map__fd(dp->skel->maps.sn_meta), &key,
				   meta, BPF_ANY);
}

int sn_dp_prog_fd(const struct sn_dataplane *dp)
{
	return bpf_program__fd(dp->skel->progs.sentry_xdp);
}

/* Sum per-CPU counters of ids [0, n); ids past the map read as 0. */
static int read_counters(int fd, struct sn_counter *out, uint32_t n)
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
		memset(&out[id], 0, sizeof(out[id]));
		ret = bpf_map_lookup_elem(fd, &id, percpu);
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
	return read_counters(bpf_map__fd(dp->skel->maps.sn_counters), out, n);
}

void sn_dp_close(struct sn_dataplane *dp)
{
	if (!dp)
		return;
	/* An unpinned link detaches here; a pinned one keeps enforcing. */
	if (dp->link_fd >= 0)
		close(dp->link_fd);
	sentry_xdp__destroy(dp->skel);
	free(dp);
}

/* ---- pinned state, without the daemon ---------------------------------- */

static int pinned_get(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd, ret = join(path, sizeof(path), dir, name);

	if (ret)
		return ret;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int sn_pinned_read_meta(const char *dir, struct sn_meta *meta)
{
	uint32_t key = 0;
	int fd = pinned_get(dir, "sn_meta"), ret;

	if (fd < 0)
		return fd;
	ret = bpf_map_lookup_elem(fd, &key, meta) ? -errno : 0;
	close(fd);
	return ret;
}

int sn_pinned_read_counters(const char *dir, struct sn_counter *out,
			    uint32_t n)
{
	int fd = pinned_get(dir, "sn_counters"), ret;

	if (fd < 0)
		return fd;
	ret = read_counters(fd, out, n);
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

int sn_pinned_detach(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
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
		 * Without a link pin, look the link up by our program.  A
		 * program attached the legacy netlink way would stay: we
		 * never attach that way.
		 */
		fd = pinned_get(dir, "prog");
		if (fd >= 0) {
			int r = detach_links_of_prog(fd);

			if (r < 0) {
				ret = r;
				sn_seterr(err, errlen,
				       "looking for links of %s/prog: %s", dir,
				       strerror(-r));
			}
			close(fd);
		}
	}
	if (ret)
		return ret; /* keep the pins: the program may still run */

	const char *names[] = { "link", "prog" };
	for (size_t i = 0; i < 2 + SN_N_MAPS; i++) {
		const char *name = i < 2 ? names[i] : sn_map_names[i - 2];

		if (join(path, sizeof(path), dir, name))
			continue;
		if (unlink(path) && errno != ENOENT && !ret) {
			ret = -errno;
			sn_seterr(err, errlen, "unpinning %s: %s", path,
			       strerror(errno));
		}
	}
	if (!ret && rmdir(dir)) {
		ret = -errno;
		sn_seterr(err, errlen, "removing %s: %s%s", dir, strerror(errno),
		       errno == ENOTEMPTY ? " (files 47Sentry did not pin)" :
					    "");
	}
	return ret;
}

/*
 * The range trie of srcmap.h: build, walk, check.
 *
 * Addresses are handled as W-bit unsigned integers (W = 32 or 128) in an
 * unsigned __int128, so one code path serves both families.
 */
#include "srcmap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

struct rng {
	u128 start;
	uint32_t cls;
};

static int width(int family)
{
	return family == SN_FAMILY_V4 ? 32 : 128;
}

static u128 key_of(const uint8_t *addr, int w)
{
	u128 k = 0;

	for (int i = 0; i < w / 8; i++)
		k = k << 8 | addr[i];
	return k;
}

static void key_put(u128 k, int w, uint8_t *out)
{
	memset(out, 0, 16);
	for (int i = w / 8 - 1; i >= 0; i--, k >>= 8)
		out[i] = (uint8_t)k;
}

/* All ones in the low w bits. */
static u128 key_max(int w)
{
	return w == 128 ? ~(u128)0 : ((u128)1 << w) - 1;
}

/* Bits [d, d + s) of a w-bit key, the first bit being the top one. */
static uint32_t key_bits(u128 k, int w, int d, int s)
{
	return (uint32_t)((k >> (w - d - s)) & (((u128)1 << s) - 1));
}

/*
 * Bits [d, d + len) of a w-bit key as a len-bit number (len <= 128), the
 * bits past the key's end read as 0: a leaf block's start window.
 */
static u128 key_window(u128 k, int w, int d, int len)
{
	u128 mask = len >= 128 ? ~(u128)0 : ((u128)1 << len) - 1;

	if (d >= w)
		return 0;
	if (d + len <= w)
		return (k >> (w - d - len)) & mask;
	return (k << (d + len - w)) & mask;
}

/* No bit of k set from bit d + len on (the window of key_window holds k). */
static bool window_holds(u128 k, int w, int d, int len)
{
	return d + len >= w || !(k & key_max(w - d - len));
}

/* Words of one start in format f (SN_SRC_FMT_*): 1, 2, 4; 0 invalid. */
static int fmt_words(int family, uint32_t f)
{
	if (f == 0)
		return 1;
	if (family == SN_FAMILY_V4)
		return 0; /* IPv4 starts always fit one word */
	return f == 1 ? 2 : f == 2 ? 4 : 0;
}

static uint32_t entry_child(int stride, uint32_t off)
{
	return SN_SRC_CHILD | (uint32_t)(stride - 1) << SN_SRC_SPAN_SHIFT | off;
}



static int max_reads(int family)
{
	return family == SN_FAMILY_V4 ? SN_SRC_MAX_READS_V4 : SN_SRC_MAX_READS_V6;
}

/* ---- prefixes -> ranges --------------------------------------------------- */

struct rng_vec {
	struct rng *v;
	size_t n, cap;
};

/*
 * Append "from start on, class cls", keeping the ranges strictly
 * ascending and adjacent ranges of different classes: a later boundary at
 * the same address overrides (a nested prefix starting where its parent
 * does), and equal neighbours merge (that is where aggregation happens).
 */
static int emit(struct rng_vec *o, u128 start, uint32_t cls)
{
	if (o->n && o->v[o->n - 1].start == start) {
		o->n--;
	}
	if (o->n && o->v[o->n - 1].cls == cls)
		return 0;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct rng *v = realloc(o->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = (struct rng){ start, cls };
	return 0;
}

/*
 * Flatten class prefixes (sorted by address then length, /0 first) into
 * ranges: a sweep with the chain of enclosing prefixes on a stack.  When
 * the sweep passes the end of a prefix, its parent's class resumes.
 */
static int flatten(const struct sn_class_prefix *p, size_t n, int family,
		   struct rng_vec *out)
{
	const int w = width(family);
	struct { u128 end; uint32_t cls; } stack[130];
	int depth = 0, rc = 0;

	out->n = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const int len = p[i].prefix.len;
		u128 start = key_of(p[i].prefix.addr, w);
		u128 host = len >= w ? 0 : key_max(w - len);

		if (len > w || depth >= (int)(sizeof(stack) / sizeof(stack[0])))
			return -EINVAL;
		while (depth && stack[depth - 1].end < start) {
			u128 next = stack[--depth].end + 1;

			if (!depth)
				return -EINVAL; /* no /0 root around it */
			rc = emit(out, next, stack[depth - 1].cls);
		}
		if (!rc)
			rc = emit(out, start, p[i].class_id);
		stack[depth].end = start | host;
		stack[depth++].cls = p[i].class_id;
	}
	while (!rc && depth > 1) {
		u128 end = stack[--depth].end;

		if (end != key_max(w))
			rc = emit(out, end + 1, stack[depth - 1].cls);
	}
	if (!rc && (!out->n || out->v[0].start != 0))
		rc = -EINVAL; /* the /0 root is always there (SPEC.md 4) */
	return rc;
}

/* ---- ranges -> trie ------------------------------------------------------- */

struct builder {
	const struct rng *r;
	size_t n_r;
	int w, family;
	uint32_t *nodes;
	size_t n_nodes, cap_nodes;
};

/* Room for k more words in b->nodes; -ENOMEM. */
static int reserve(struct builder *b, size_t k)
{
	if (b->n_nodes + k <= b->cap_nodes)
		return 0;
	size_t cap = b->cap_nodes ? b->cap_nodes * 2 : 1024;

	while (cap < b->n_nodes + k)
		cap *= 2;
	uint32_t *v = realloc(b->nodes, cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	b->nodes = v;
	b->cap_nodes = cap;
	return 0;
}

/*
 * The entry of a leaf at depth d for ranges first..first+count-1: a leaf
 * of one range carries its class itself; a leaf of more gets a block
 * (sentry_abi.h), appended to the words, in the smallest start format
 * that holds every start after the first.
 */
static int64_t leaf(struct builder *b, int d, size_t first, size_t count)
{
	uint32_t f, wpr;

	if (count == 1)
		return b->r[first].cls;
	for (f = 0;; f++) {
		bool ok = true;

		wpr = (uint32_t)fmt_words(b->family, f);
		if (!wpr)
			return -E2BIG; /* cannot happen: 4 words hold any start */
		for (size_t i = 1; i < count && ok; i++)
			ok = window_holds(b->r[first + i].start, b->w, d, 32 * (int)wpr);
		if (ok)
			break;
	}
	size_t off = b->n_nodes, k = count + (count - 1) * wpr;

	if (off > SN_SRC_BLOCK_MASK || off + k > SN_SRC_INDEX_MASK + 1ull)
		return -E2BIG;
	if (reserve(b, k))
		return -ENOMEM;
	uint32_t *o = b->nodes + off;

	*o++ = b->r[first].cls;
	for (size_t i = 1; i < count; i++) {
		u128 v = key_window(b->r[first + i].start, b->w, d, 32 * (int)wpr);

		for (uint32_t j = 0; j < wpr; j++)
			*o++ = (uint32_t)(v >> (32 * (wpr - 1 - j)));
		*o++ = b->r[first + i].cls;
	}
	b->n_nodes += k;
	return (int64_t)((count - 1) << SN_SRC_SPAN_SHIFT |
			 f << SN_SRC_FMT_SHIFT | off);
}

/* Index of the range holding key (the last one starting at or before). */
static size_t range_at(const struct builder *b, u128 key)
{
	size_t lo = 0, hi = b->n_r;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->r[mid].start <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static int ceil_log2(size_t v)
{
	int l = 0;

	while (((size_t)1 << l) < v)
		l++;
	return l;
}

/*
 * A trie of at most this many ranges takes a root of 4 slots per range
 * (at most 2^12 words, 16 KiB) instead of 1 per 4 ranges: most regions
 * then hold one range, whose class the root entry carries, so a lookup
 * reads one word instead of a node entry and a leaf block.
 */
#define SN_SRC_SMALL_TRIE 1024u

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * The entry for the region of keys [lo, lo + 2^(w - d)) holding ranges
 * first..first+count-1.  A leaf when they are few; otherwise a node whose
 * stride aims at about 4 ranges per child (so most leaves are one or two
 * cache lines), at least 4 bits (which bounds the depth), at most 8 (a
 * node is at most 1 KiB).  The root, which sees the whole table, may take
 * up to 16 bits: one read replaces the dense top of the trie.
 * reads: entries read to get here.  -E2BIG beyond the encoding.
 */
static int64_t build(struct builder *b, int d, u128 lo, size_t first,
		     size_t count, int reads)
{
	int s;

	if (count <= SN_SRC_LEAF_MAX) {
		for (size_t i = 0; i < count; i++)
			if (b->r[first + i].cls > SN_SRC_INDEX_MASK)
				return -E2BIG;
		return leaf(b, d, first, count);
	}
	if (reads >= max_reads(b->family) || d >= b->w)
		return -E2BIG; /* cannot happen: count > 16 needs >= 5 bits */
	if (d == 0 && count <= SN_SRC_SMALL_TRIE)
		s = ceil_log2(count) + 2;
	else if (d == 0)
		s = clamp(ceil_log2(count) - 2, 1, (int)SN_SRC_STRIDE_MAX);
	else
		s = clamp(ceil_log2(count) - 2, 4, 8);
	if (s > b->w - d)
		s = b->w - d;

	size_t off = b->n_nodes, k = (size_t)1 << s;

	if (off + k > SN_SRC_INDEX_MASK + 1ull)
		return -E2BIG;
	if (reserve(b, k))
		return -ENOMEM;
	b->n_nodes += k;

	const int sub = b->w - d - s; /* bits below each child */
	size_t f = first;

	for (size_t c = 0; c < k; c++) {
		u128 clo = lo | (u128)c << sub;
		u128 chi = clo | (sub ? key_max(sub) : 0);
		size_t l;

		/* Ranges are visited in order: advance instead of searching. */
		while (f + 1 < b->n_r && b->r[f + 1].start <= clo)
			f++;
		l = range_at(b, chi);
		int64_t e = build(b, d + s, clo, f, l - f + 1, reads + 1);

		if (e < 0)
			return e;
		b->nodes[off + c] = (uint32_t)e;
	}
	return entry_child(s, (uint32_t)off);
}

static int build_family(struct sn_arena *a, const struct sn_class_prefix *p,
			size_t n, int family, enum sn_srcmap_kind kind,
			struct sn_srcmap *out)
{
	struct rng_vec r = { 0 };
	struct builder b = { .w = width(family), .family = family };
	int rc;

	*out = (struct sn_srcmap){ 0 };
	if (kind == SN_SRCMAP_LPM)
		return 0;
	rc = flatten(p, n, family, &r);
	if (rc)
		goto done;
	b.r = r.v;
	b.n_r = r.n;
	/* nodes[0] first: the entry of the whole space. */
	b.nodes = malloc(1024 * sizeof(*b.nodes));
	if (!b.nodes) {
		rc = -ENOMEM;
		goto done;
	}
	b.cap_nodes = 1024;
	b.n_nodes = 1;
	int64_t root = build(&b, 0, 0, 0, r.n, 1);

	if (root == -E2BIG) {
		rc = 0; /* beyond the encoding: the LPM trie takes it */
		goto done;
	}
	if (root < 0) {
		rc = (int)root;
		goto done;
	}
	b.nodes[0] = (uint32_t)root;
	out->nodes = sn_arena_calloc(a, b.n_nodes, sizeof(*out->nodes));
	out->ranges = sn_arena_calloc(a, r.n, sizeof(*out->ranges));
	if (!out->nodes || !out->ranges) {
		*out = (struct sn_srcmap){ 0 };
		rc = -ENOMEM;
		goto done;
	}
	memcpy(out->nodes, b.nodes, b.n_nodes * sizeof(*b.nodes));
	out->n_nodes = (uint32_t)b.n_nodes;
	for (size_t i = 0; i < r.n; i++) {
		key_put(r.v[i].start, b.w, out->ranges[i].start);
		out->ranges[i].class_id = r.v[i].cls;
	}
	out->n_ranges = (uint32_t)r.n;
done:
	free(r.v);
	free(b.nodes);
	return rc;
}

/*
 * AUTO, by measurement (bench/verdict, BENCHMARKS.md "choosing the
 * structure"): the range trie, except for IPv6 with very few class
 * prefixes.  Those share long leading bits (all in 2000::/3, often in one
 * /16), so the trie walks several near-empty 4-bit levels before they
 * part, while the kernel's LPM trie of a handful of nodes answers in a
 * few reads: 10 % faster at 10 prefixes, equal at 30, slower from 100 on
 * (and 2-3x slower from 10k on).  For IPv4 the range trie wins at every
 * size.
 */
static enum sn_srcmap_kind choose(int family, size_t n)
{
	if (family == SN_FAMILY_V6 && n < SN_SRCMAP_V6_LPM_BELOW)
		return SN_SRCMAP_LPM;
	return SN_SRCMAP_RANGE;
}

int sn_srcmap_build(struct sn_arena *a, struct sn_image *img,
		    enum sn_srcmap_kind kind)
{
	enum sn_srcmap_kind k4 = kind, k6 = kind;
	int rc;

	if (kind == SN_SRCMAP_AUTO) {
		k4 = choose(SN_FAMILY_V4, img->n_v4);
		k6 = choose(SN_FAMILY_V6, img->n_v6);
	}
	rc = build_family(a, img->v4, img->n_v4, SN_FAMILY_V4, k4, &img->src_v4);
	if (!rc)
		rc = build_family(a, img->v6, img->n_v6, SN_FAMILY_V6, k6,
				  &img->src_v6);
	return rc;
}

/* ---- the walk, as the XDP program does it ------------------------------ */

int64_t sn_srcmap_lookup(const struct sn_srcmap *m, int family,
			 const uint8_t *addr)
{
	const int w = width(family);
	const u128 key = key_of(addr, w);
	uint32_t e, reads = 1;
	int d = 0;

	if (!m->n_nodes)
		return -1;
	e = m->nodes[0];
	while (e & SN_SRC_CHILD) {
		int s = (int)((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
		uint64_t idx = (e & SN_SRC_INDEX_MASK);

		if (reads >= (uint32_t)max_reads(family) || d + s > w)
			return -1;
		idx += key_bits(key, w, d, s);
		if (idx >= m->n_nodes)
			return -1;
		e = m->nodes[idx];
		reads++;
		d += s;
	}
	uint64_t n = ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;

	if (n == 1)
		return e & SN_SRC_INDEX_MASK; /* the class itself */
	/* The leaf block: the scan of the program, word by word. */
	uint64_t p = e & SN_SRC_BLOCK_MASK;
	int wpr = fmt_words(family, (e >> SN_SRC_FMT_SHIFT) & SN_SRC_FMT_MASK);

	if (!wpr || p + n + (n - 1) * (uint64_t)wpr > m->n_nodes)
		return -1;
	const u128 a = key_window(key, w, d, 32 * wpr);
	uint32_t cls = m->nodes[p++];

	for (uint64_t i = 1; i < n; i++) {
		u128 st = 0;

		for (int j = 0; j < wpr; j++)
			st = st << 32 | m->nodes[p + j];
		if (st > a)
			break;
		cls = m->nodes[p + wpr];
		p += wpr + 1;
	}
	return cls & 0x7fffffff;
}

/* ---- checking a parsed structure ---------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

struct checker {
	const struct sn_srcmap *m;
	int w, family;
	uint8_t *seen; /* words reached, to refuse shared or cyclic nodes and blocks */
};

/* Index of the range of m holding key (m has ranges, the first at 0). */
static size_t ranges_at(const struct sn_srcmap *m, int w, u128 key)
{
	size_t lo = 0, hi = m->n_ranges;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (key_of(m->ranges[mid].start, w) <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Every key of [lo, lo + 2^(w-d)) must end in a leaf holding its range. */
static bool check_entry(struct checker *c, uint32_t e, int d, u128 lo,
			int reads)
{
	const struct sn_srcmap *m = c->m;
	const int w = c->w;
	const u128 hi = lo | (d < w ? key_max(w - d) : 0);

	if (e & SN_SRC_CHILD) {
		int s = (int)((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
		uint64_t off = e & SN_SRC_INDEX_MASK, k = (uint64_t)1 << s;

		if (reads >= max_reads(c->family) || d + s > w ||
		    off + k > m->n_nodes)
			return false;
		for (uint64_t i = 0; i < k; i++) {
			if (c->seen[off + i])
				return false;
			c->seen[off + i] = 1;
			if (!check_entry(c, m->nodes[off + i], d + s,
					 lo | (u128)i << (w - d - s), reads + 1))
				return false;
		}
		return true;
	}
	uint64_t n = ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
	size_t r = ranges_at(m, w, lo);

	if (n == 1) /* the class itself: the region must lie in one range of it */
		return r == ranges_at(m, w, hi) &&
		       m->ranges[r].class_id == (e & SN_SRC_INDEX_MASK);
	/*
	 * A block: exactly the ranges r..r+n-1 that meet the region (r holds
	 * lo, the one after the leaf starts past hi), each start after the
	 * first written as its window, which must hold it.
	 */
	uint64_t p = e & SN_SRC_BLOCK_MASK;
	int wpr = fmt_words(c->family, (e >> SN_SRC_FMT_SHIFT) & SN_SRC_FMT_MASK);
	uint64_t k = n + (n - 1) * (uint64_t)wpr;

	if (!wpr || p + k > m->n_nodes || r + n > m->n_ranges ||
	    key_of(m->ranges[r + n - 1].start, w) > hi ||
	    (r + n < m->n_ranges && key_of(m->ranges[r + n].start, w) <= hi))
		return false;
	for (uint64_t i = 0; i < k; i++) {
		if (c->seen[p + i])
			return false;
		c->seen[p + i] = 1;
	}
	if (m->nodes[p++] != m->ranges[r].class_id)
		return false;
	for (uint64_t i = 1; i < n; i++) {
		const u128 st = key_of(m->ranges[r + i].start, w);
		u128 v = 0;

		for (int j = 0; j < wpr; j++)
			v = v << 32 | m->nodes[p + j];
		if (!window_holds(st, w, d, 32 * wpr) ||
		    v != key_window(st, w, d, 32 * wpr) ||
		    m->nodes[p + wpr] != m->ranges[r + i].class_id)
			return false;
		p += wpr + 1;
	}
	return true;
}

static int check_family(const struct sn_srcmap *m, const struct sn_class_prefix *p,
			size_t n, int family, char *err, size_t errlen)
{
	const int w = width(family);
	struct rng_vec r = { 0 };
	struct checker c = { .m = m, .w = w, .family = family };
	int rc;

	if (!m->n_nodes)
		return m->n_ranges ? fail(err, errlen, "IPv%d ranges without a trie",
					  family == SN_FAMILY_V4 ? 4 : 6) : 0;
	/* The ranges must be exactly the class prefixes, flattened. */
	rc = flatten(p, n, family, &r);
	if (rc == -ENOMEM)
		return rc;
	if (rc || r.n != m->n_ranges) {
		free(r.v);
		return fail(err, errlen, "IPv%d source ranges do not match the prefixes",
			    family == SN_FAMILY_V4 ? 4 : 6);
	}
	for (size_t i = 0; i < r.n; i++) {
		uint8_t s[16];

		key_put(r.v[i].start, w, s);
		if (memcmp(s, m->ranges[i].start, 16) ||
		    r.v[i].cls != m->ranges[i].class_id) {
			free(r.v);
			return fail(err, errlen, "IPv%d source range %zu does not match the prefixes",
				    family == SN_FAMILY_V4 ? 4 : 6, i);
		}
	}
	free(r.v);
	c.seen = calloc(m->n_nodes, 1);
	if (!c.seen)
		return -ENOMEM;
	c.seen[0] = 1;
	bool ok = check_entry(&c, m->nodes[0], 0, 0, 1);

	for (uint32_t i = 0; ok && i < m->n_nodes; i++)
		ok = c.seen[i]; /* no unreachable entries either */
	free(c.seen);
	return ok ? 0 : fail(err, errlen, "IPv%d source trie malformed",
			     family == SN_FAMILY_V4 ? 4 : 6);
}

int sn_srcmap_check(const struct sn_image *img, char *err, size_t errlen)
{
	int rc = check_family(&img->src_v4, img->v4, img->n_v4, SN_FAMILY_V4,
			      err, errlen);

	return rc ? rc : check_family(&img->src_v6, img->v6, img->n_v6,
				      SN_FAMILY_V6, err, errlen);
}

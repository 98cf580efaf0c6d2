/*
 * The population of a generation and the translation of an image into it
 * with stable ids (pop.h says what and why).
 */
#include "pop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errmsg.h"

typedef unsigned __int128 u128;

/* Flattened source ranges: the class from start on. */
struct flat {
	u128 start;
	uint32_t cls;
};

static const uint32_t esz_of[SN_PA_N] = {
	[SN_PA_PROTO] = sizeof(struct sn_proto_entry),
	[SN_PA_PORTS] = sizeof(uint32_t),
	[SN_PA_DECISIONS] = sizeof(struct sn_decision),
	[SN_PA_LIMITS] = sizeof(struct sn_limit_cfg),
	[SN_PA_NODES4] = 2 * sizeof(uint32_t), /* two trie words */
	[SN_PA_NODES6] = 2 * sizeof(uint32_t),
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- hashing ----------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* FNV-1a, continued from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* ---- u64 -> u32 hash map (pair counts, identities) ------------------------ */

struct hmap {
	uint64_t *k;
	uint32_t *v;
	uint8_t *used;
	size_t cap, n;
};

static int hmap_init(struct hmap *m, size_t want)
{
	size_t cap = 16;

	while (cap < want * 2)
		cap *= 2;
	m->k = malloc(cap * sizeof(*m->k));
	m->v = malloc(cap * sizeof(*m->v));
	m->used = calloc(cap, 1);
	m->cap = cap;
	m->n = 0;
	if (!m->k || !m->v || !m->used) {
		free(m->k);
		free(m->v);
		free(m->used);
		*m = (struct hmap){ 0 };
		return -ENOMEM;
	}
	return 0;
}

static void hmap_free(struct hmap *m)
{
	free(m->k);
	free(m->v);
	free(m->used);
	*m = (struct hmap){ 0 };
}

/* Slot of key k (existing or where it would go). */
static size_t hmap_slot(const struct hmap *m, uint64_t k)
{
	size_t i = mix64(k) & (m->cap - 1);

	while (m->used[i] && m->k[i] != k)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int hmap_grow(struct hmap *m)
{
	struct hmap g;

	if (hmap_init(&g, m->cap))
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->used[i])
			continue;
		size_t j = hmap_slot(&g, m->k[i]);

		g.used[j] = 1;
		g.k[j] = m->k[i];
		g.v[j] = m->v[i];
		g.n++;
	}
	hmap_free(m);
	*m = g;
	return 0;
}

/* Pointer to the value of k, inserted as 0 when absent; NULL: no memory. */
static uint32_t *hmap_get(struct hmap *m, uint64_t k)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && hmap_grow(m))
		return NULL;
	i = hmap_slot(m, k);
	if (!m->used[i]) {
		m->used[i] = 1;
		m->k[i] = k;
		m->v[i] = 0;
		m->n++;
	}
	return &m->v[i];
}

static const uint32_t *hmap_find(const struct hmap *m, uint64_t k)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = hmap_slot(m, k);
	return m->used[i] ? &m->v[i] : NULL;
}

/* ---- arrays with dirty tracking --------------------------------------------- */

static int arr_init(struct sn_pop_array *a, uint32_t cap, uint32_t esz)
{
	*a = (struct sn_pop_array){ .cap = cap, .esz = esz };
	a->v = calloc(cap ? cap : 1, esz);
	a->dirty_bits = calloc(((size_t)cap + 63) / 64 + 1, sizeof(uint64_t));
	if (!a->v || !a->dirty_bits) {
		free(a->v);
		free(a->dirty_bits);
		*a = (struct sn_pop_array){ 0 };
		return -ENOMEM;
	}
	return 0;
}

static void arr_free(struct sn_pop_array *a)
{
	free(a->v);
	free(a->dirty_bits);
	free(a->dirty);
	free(a->undo);
	*a = (struct sn_pop_array){ 0 };
}

static int arr_grow_dirty(struct sn_pop_array *a)
{
	size_t cap = a->cap_dirty ? a->cap_dirty * 2 : 256;
	uint32_t *d = realloc(a->dirty, cap * sizeof(*d));

	if (!d)
		return -ENOMEM;
	a->dirty = d;
	unsigned char *u = realloc(a->undo, cap * a->esz);

	if (!u)
		return -ENOMEM;
	a->undo = u;
	a->cap_dirty = cap;
	return 0;
}

/* Equal entries, without a call for the sizes the arrays have. */
static inline bool same_entry(const void *x, const void *y, uint32_t esz)
{
	uint64_t a, b, c, d;
	uint32_t u, v;

	switch (esz) {
	case 4:
		memcpy(&u, x, 4);
		memcpy(&v, y, 4);
		return u == v;
	case 8:
		memcpy(&a, x, 8);
		memcpy(&b, y, 8);
		return a == b;
	case 24:
		memcpy(&a, x, 8);
		memcpy(&b, y, 8);
		if (a != b)
			return false;
		memcpy(&a, (const char *)x + 8, 8);
		memcpy(&b, (const char *)y + 8, 8);
		memcpy(&c, (const char *)x + 16, 8);
		memcpy(&d, (const char *)y + 16, 8);
		return a == b && c == d;
	default:
		return !memcmp(x, y, esz);
	}
}

/* Set entry i to val; record it when it changes.  0 or -ENOMEM. */
static inline int aset(struct sn_pop_array *a, uint32_t i, const void *val)
{
	unsigned char *slot = a->v + (size_t)i * a->esz;

	if (same_entry(slot, val, a->esz))
		return 0;
	if (!(a->dirty_bits[i / 64] & (1ull << (i % 64)))) {
		if (a->n_dirty == a->cap_dirty && arr_grow_dirty(a))
			return -ENOMEM;
		a->dirty_bits[i / 64] |= 1ull << (i % 64);
		a->dirty[a->n_dirty] = i;
		memcpy(a->undo + a->n_dirty * a->esz, slot, a->esz);
		a->n_dirty++;
	}
	memcpy(slot, val, a->esz);
	return 0;
}

static void arr_clear_dirty(struct sn_pop_array *a)
{
	for (size_t k = 0; k < a->n_dirty; k++)
		a->dirty_bits[a->dirty[k] / 64] &= ~(1ull << (a->dirty[k] % 64));
	a->n_dirty = 0;
}

static void arr_rollback(struct sn_pop_array *a)
{
	for (size_t k = a->n_dirty; k-- > 0;)
		memcpy(a->v + (size_t)a->dirty[k] * a->esz,
		       a->undo + k * a->esz, a->esz);
}

static void *aget(const struct sn_pop_array *a, uint32_t i)
{
	return a->v + (size_t)i * a->esz;
}

/* ---- LPM ---------------------------------------------------------------------- */

static int lpm_cmp(const struct sn_pop_lpm_ent *a, const struct sn_pop_lpm_ent *b)
{
	int c = memcmp(a->addr, b->addr, 16);

	return c ? c : (int)a->len - (int)b->len;
}

static int lpm_push_op(struct sn_pop_lpm *l, const struct sn_pop_lpm_op *op)
{
	if (l->n_ops == l->cap_ops) {
		size_t cap = l->cap_ops ? l->cap_ops * 2 : 64;
		struct sn_pop_lpm_op *v = realloc(l->ops, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->ops = v;
		l->cap_ops = cap;
	}
	l->ops[l->n_ops++] = *op;
	return 0;
}

/*
 * Make the trie hold exactly want[0..n) (sorted): record the ops and keep
 * the old content in old_v and old_n for a rollback.
 */
static int lpm_set(struct sn_pop_lpm *l, struct sn_pop_lpm_ent *want, size_t n,
		   struct sn_pop_lpm_ent **old_v, size_t *old_n)
{
	size_t i = 0, j = 0;
	int rc = 0;

	while (!rc && (i < l->n || j < n)) {
		int c = i == l->n ? 1 : j == n ? -1 : lpm_cmp(&l->v[i], &want[j]);
		struct sn_pop_lpm_op op = { 0 };

		if (c < 0) {
			op.e = l->v[i];
			op.op = SN_LPM_DEL;
			op.had = true;
			op.old_cls = l->v[i].cls;
			rc = lpm_push_op(l, &op);
			i++;
		} else if (c > 0) {
			op.e = want[j];
			op.op = SN_LPM_SET;
			rc = lpm_push_op(l, &op);
			j++;
		} else {
			if (l->v[i].cls != want[j].cls) {
				op.e = want[j];
				op.op = SN_LPM_SET;
				op.had = true;
				op.old_cls = l->v[i].cls;
				rc = lpm_push_op(l, &op);
			}
			i++;
			j++;
		}
	}
	if (rc)
		return rc;
	*old_v = l->v;
	*old_n = l->n;
	l->v = want;
	l->n = n;
	l->cap = n;
	return 0;
}

/* ---- free space of a range-trie layout ------------------------------------- */

/* Free extents of an array, sorted by start, merged. */
struct alloc {
	struct { uint32_t start, len; } *v;
	size_t n, cap;
	size_t cursor; /* next fit */
};

/*
 * A family's layout: node blocks and leaf blocks share the trie's words
 * (bpf/sentry_abi.h), so one allocator over the words.
 */
struct sn_pop_trie {
	struct alloc words;
	bool ok; /* describes the layout the arrays hold */
	/* The image trie (classes translated) the layout was last patched
	 * to, by hash: the same again writes nothing and is not walked.
	 * 0: unknown. */
	uint64_t img_hash;
};

static void alloc_free(struct alloc *a)
{
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static int alloc_reserve(struct alloc *a, size_t n)
{
	if (n <= a->cap)
		return 0;
	size_t cap = a->cap ? a->cap * 2 : 64;

	while (cap < n)
		cap *= 2;
	void *v = realloc(a->v, cap * sizeof(*a->v));

	if (!v)
		return -ENOMEM;
	a->v = v;
	a->cap = cap;
	return 0;
}

/* Everything in [lo, hi) free. */
static int alloc_reset(struct alloc *a, uint32_t lo, uint32_t hi)
{
	a->n = 0;
	a->cursor = 0;
	if (hi <= lo)
		return 0;
	if (alloc_reserve(a, 1))
		return -ENOMEM;
	a->v[0].start = lo;
	a->v[0].len = hi - lo;
	a->n = 1;
	return 0;
}

/* n contiguous entries: next fit, then first fit; -ENOSPC. */
static int64_t alloc_take(struct alloc *a, uint32_t n)
{
	for (int pass = 0; pass < 2; pass++) {
		size_t from = pass ? 0 : a->cursor, to = pass ? a->cursor : a->n;

		for (size_t i = from; i < to && i < a->n; i++) {
			if (a->v[i].len < n)
				continue;
			uint32_t loc = a->v[i].start;

			a->v[i].start += n;
			a->v[i].len -= n;
			if (!a->v[i].len) {
				memmove(&a->v[i], &a->v[i + 1],
					(a->n - i - 1) * sizeof(*a->v));
				a->n--;
			}
			a->cursor = i;
			return loc;
		}
	}
	return -ENOSPC;
}

/* Give [start, start + n) back, merging with its neighbours. */
static int alloc_give(struct alloc *a, uint32_t start, uint32_t n)
{
	size_t lo = 0, hi = a->n;

	if (!n)
		return 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (a->v[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* lo: first extent starting at or after start */
	bool left = lo > 0 && a->v[lo - 1].start + a->v[lo - 1].len == start;
	bool right = lo < a->n && start + n == a->v[lo].start;

	if (left && right) {
		a->v[lo - 1].len += n + a->v[lo].len;
		memmove(&a->v[lo], &a->v[lo + 1], (a->n - lo - 1) * sizeof(*a->v));
		a->n--;
	} else if (left) {
		a->v[lo - 1].len += n;
	} else if (right) {
		a->v[lo].start = start;
		a->v[lo].len += n;
	} else {
		if (alloc_reserve(a, a->n + 1))
			return -ENOMEM;
		memmove(&a->v[lo + 1], &a->v[lo], (a->n - lo) * sizeof(*a->v));
		a->v[lo].start = start;
		a->v[lo].len = n;
		a->n++;
	}
	if (a->cursor >= a->n)
		a->cursor = 0;
	return 0;
}

static void trie_free(struct sn_pop_trie *t)
{
	if (!t)
		return;
	alloc_free(&t->words);
	free(t);
}

static void trie_forget_image(struct sn_pop_trie *t)
{
	t->img_hash = 0;
}

/*
 * A hash of an image trie as the layout would hold it, with its classes
 * as translated (cmap), so a renumbering of the image's classes that the
 * translation undoes does not count as a change.  The compiler builds the
 * words (node strides, leaf blocks, start formats) from the ranges alone,
 * so the ranges with their translated classes determine them: hashing
 * the ranges is enough, and it does not need to tell class words from
 * start words inside the blocks.  Two lanes, streaming.
 */
static uint64_t image_trie_hash(const struct sn_srcmap *m, const uint32_t *cmap,
				uint32_t n_classes)
{
	uint64_t h0 = 0x243f6a8885a308d3ull, h1 = 0x13198a2e03707344ull;

	for (uint32_t i = 0; i < m->n_ranges; i++) {
		const struct sn_src_range *r = &m->ranges[i];
		uint64_t a, b;

		memcpy(&a, r->start, 8);
		memcpy(&b, r->start + 8, 8);
		h0 = (h0 ^ a) * 0x9e3779b97f4a7c15ull;
		h1 = (h1 ^ b ^ ((uint64_t)(r->class_id < n_classes ?
					    cmap[r->class_id] : UINT32_MAX) << 32)) *
		     0xc2b2ae3d27d4eb4full;
	}
	return mix64(h0 ^ mix64(h1 ^ ((uint64_t)m->n_nodes << 32 | m->n_ranges))) | 1;
}

/* ---- init / free ----------------------------------------------------------------- */

static uint32_t class_cap(const struct sn_pop_geom *g)
{
	return g->l4_stride ? g->cap[SN_PA_DECISIONS] / g->l4_stride : 0;
}

static void derived_free(struct sn_pop *p)
{
	free(p->class_used);
	free(p->l4_used);
	free(p->limit_used);
	free(p->limit_ident);
	free(p->rule_slot);
	p->class_used = p->l4_used = p->limit_used = NULL;
	p->limit_ident = NULL;
	p->rule_slot = NULL;
	p->n_rules = 0;
	for (int f = 0; f < 2; f++) {
		trie_free(p->trie[f]);
		p->trie[f] = NULL;
	}
}

static int derived_alloc(struct sn_pop *p)
{
	p->class_used = calloc(class_cap(&p->g) + 1, 1);
	p->l4_used = calloc(p->g.l4_stride + 1, 1);
	p->limit_used = calloc(p->g.cap[SN_PA_LIMITS] + 1, 1);
	p->limit_ident = calloc(p->g.cap[SN_PA_LIMITS] + 1, sizeof(uint64_t));
	p->trie[0] = calloc(1, sizeof(*p->trie[0]));
	p->trie[1] = calloc(1, sizeof(*p->trie[1]));
	if (!p->class_used || !p->l4_used || !p->limit_used ||
	    !p->limit_ident || !p->trie[0] || !p->trie[1])
		return -ENOMEM;
	return 0;
}

static void forget_prev(struct sn_pop *p);
static int unpatch_trie(struct sn_pop *p, int f);

void sn_pop_free(struct sn_pop *p)
{
	for (int i = 0; i < SN_PA_N; i++)
		arr_free(&p->a[i]);
	for (int f = 0; f < 2; f++) {
		free(p->lpm[f].v);
		free(p->lpm[f].ops);
	}
	free(p->slots);
	free(p->slot_ops);
	free(p->slots_zero);
	derived_free(p);
	forget_prev(p);
	free(p->prev);
	memset(p, 0, sizeof(*p));
}

static int slots_init(struct sn_pop *p)
{
	p->slots = calloc(p->g.cap_slots + 1, sizeof(*p->slots));
	if (!p->slots)
		return -ENOMEM;
	/* The pseudo-rules hold slots 0-3 for good. */
	for (uint32_t i = 0; i < SN_RULE_FIRST && i < p->g.cap_slots; i++)
		p->slots[i] = (struct sn_slot){ .identity = i, .rule_id = i,
						.flags = SN_SLOT_USED };
	return 0;
}

int sn_pop_init(struct sn_pop *p, const struct sn_pop_geom *g)
{
	memset(p, 0, sizeof(*p));
	p->g = *g;
	if (g->cap[SN_PA_PROTO] != SN_POP_PROTO ||
	    g->cap[SN_PA_PORTS] != SN_POP_PORTS || !g->l4_stride ||
	    g->cap_slots < SN_RULE_FIRST)
		return -EINVAL;
	for (int i = 0; i < SN_PA_N; i++)
		if (arr_init(&p->a[i], g->cap[i], esz_of[i])) {
			sn_pop_free(p);
			return -ENOMEM;
		}
	if (slots_init(p) || derived_alloc(p)) {
		sn_pop_free(p);
		return -ENOMEM;
	}
	/* Zeroed maps: nodes[0] = 0 is a one-range leaf of class 0, which
	 * is what a new map holds; nothing uses it until the first apply,
	 * and every block is free. */
	for (int f = 0; f < 2; f++)
		if (unpatch_trie(p, f)) {
			sn_pop_free(p);
			return -ENOMEM;
		}
	return 0;
}

int sn_pop_clone(struct sn_pop *dst, const struct sn_pop *src,
		 const struct sn_pop_geom *g, const bool new_map[SN_PA_N],
		 const bool new_lpm[2])
{
	int rc = sn_pop_init(dst, g);

	if (rc)
		return rc;
	for (int i = 0; i < SN_PA_N; i++) {
		if (new_map[i])
			continue;
		if (src->a[i].cap != g->cap[i]) {
			sn_pop_free(dst);
			return -EINVAL;
		}
		memcpy(dst->a[i].v, src->a[i].v,
		       (size_t)g->cap[i] * dst->a[i].esz);
	}
	for (int f = 0; f < 2; f++) {
		if (new_lpm[f] || !src->lpm[f].n)
			continue;
		dst->lpm[f].v = malloc(src->lpm[f].n * sizeof(*dst->lpm[f].v));
		if (!dst->lpm[f].v) {
			sn_pop_free(dst);
			return -ENOMEM;
		}
		memcpy(dst->lpm[f].v, src->lpm[f].v,
		       src->lpm[f].n * sizeof(*dst->lpm[f].v));
		dst->lpm[f].n = dst->lpm[f].cap = src->lpm[f].n;
	}
	memcpy(dst->slots, src->slots,
	       (g->cap_slots < src->g.cap_slots ? g->cap_slots :
						   src->g.cap_slots) *
		       sizeof(*dst->slots));
	/* Content stays exact; without a consistent layout only the
	 * stable-id heuristics start over. */
	rc = sn_pop_derive(dst, NULL, 0);
	if (rc == -EINVAL) {
		dst->valid = false;
		rc = 0;
	}
	if (rc)
		sn_pop_free(dst);
	return rc;
}

/* ---- geometry for an image ------------------------------------------------------ */

static uint64_t headroom64(uint64_t n)
{
	uint64_t cap = 2 * n;

	return cap < 64 ? 64 : cap;
}

/* A quarter more, and at least 1024 spare entries (small tries grow by
 * whole blocks: a few /32s more can need dozens of entries; the tries
 * ask for 1024 words more on top, as they once had 1024 spare ranges
 * besides their node entries). */
static uint64_t slack64(uint64_t n)
{
	return n + (n / 4 > 1024 ? n / 4 : 1024);
}

int sn_pop_geom_for(const struct sn_image *img, struct sn_pop_geom *g)
{
	const struct sn_image_features *f = sn_image_features(img);
	uint64_t c[SN_PA_N];

	memset(g, 0, sizeof(*g));
	g->l4_stride = img->constants.l4_stride;
	g->port_tables = img->constants.port_tables;
	if (!g->l4_stride)
		return -EINVAL;
	c[SN_PA_PROTO] = SN_POP_PROTO;
	c[SN_PA_PORTS] = SN_POP_PORTS;
	/* Whole rows: the class capacity times the stride. */
	c[SN_PA_DECISIONS] = headroom64(img->n_classes) * g->l4_stride;
	c[SN_PA_LIMITS] = headroom64(f->n_limits);
	/* The range tries are the big ones, and two generations of them:
	 * a quarter more words than the image has (its words are exactly
	 * the layout's: no block is shared; new blocks go to free space
	 * until the next compaction, SPEC.md 4.3), two words per element. */
	c[SN_PA_NODES4] = (slack64(img->src_v4.n_nodes + 1024) + 1) / 2;
	c[SN_PA_NODES6] = (slack64(img->src_v6.n_nodes + 1024) + 1) / 2;
	for (int i = 0; i < SN_PA_N; i++) {
		/* Two generations and the index encoding must fit: a leaf
		 * block's word index has 25 bits. */
		if (c[i] > (1ull << 27) || 2 * c[i] > UINT32_MAX)
			return -E2BIG;
		if ((i == SN_PA_NODES4 || i == SN_PA_NODES6) &&
		    2 * c[i] > SN_SRC_BLOCK_MASK + 1ull)
			return -E2BIG;
		g->cap[i] = (uint32_t)c[i];
	}
	uint64_t l4 = headroom64(img->n_v4), l6 = headroom64(img->n_v6);
	uint64_t s = headroom64(img->n_rules);

	if (l4 > UINT32_MAX || l6 > UINT32_MAX || s > SN_CAP_RULES * 2ull)
		return -E2BIG;
	g->cap_lpm[0] = (uint32_t)l4;
	g->cap_lpm[1] = (uint32_t)l6;
	g->cap_slots = (uint32_t)s;
	return 0;
}

/* ---- token math (sn_limit_cfg) -------------------------------------------------- */

void sn_token_math(uint64_t rate_fp, uint64_t burst_fp, struct sn_limit_cfg *c)
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

/* ---- identities ------------------------------------------------------------------ */

uint64_t sn_pop_rule_identity(const struct sn_image *img, uint32_t id,
			      uint32_t k)
{
	const struct sn_image_features *f = sn_image_features(img);
	const struct sn_image_rule *r = &img->rules[id];
	uint64_t h = 0xcbf29ce484222325ull;

	if (id < SN_RULE_FIRST)
		return id;
	if (id >= img->n_rules - f->n_limits) {
		uint64_t li = f->limits[id - (img->n_rules - f->n_limits)].identity;

		h = fnv(h, "limit", 5);
		h = fnv(h, &li, sizeof(li));
	} else {
		h = fnv(h, "rule", 4);
		h = fnv(h, &r->tier, 1);
		h = fnv(h, &r->verdict, 1);
		h = fnv(h, r->text, strlen(r->text));
	}
	h = fnv(h, &k, sizeof(k));
	/* Never one of the pseudo-rules' identities. */
	return h < SN_RULE_FIRST ? h + SN_RULE_FIRST : h;
}

/* ---- address helpers -------------------------------------------------------------- */

static int width_of(int f)
{
	return f ? 128 : 32;
}

static u128 key_of(const uint8_t *addr, int w)
{
	u128 k = 0;

	for (int i = 0; i < w / 8; i++)
		k = k << 8 | addr[i];
	return k;
}

static u128 key_max(int w)
{
	return w == 128 ? ~(u128)0 : ((u128)1 << w) - 1;
}

/* ---- flattening ----------------------------------------------------------------- */

struct flatvec {
	struct flat *v;
	size_t n, cap;
};

static int flat_emit(struct flatvec *o, u128 start, uint32_t cls)
{
	if (o->n && o->v[o->n - 1].start == start)
		o->n--;
	if (o->n && o->v[o->n - 1].cls == cls)
		return 0;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct flat *v = realloc(o->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = (struct flat){ start, cls };
	return 0;
}

/*
 * Flatten prefixes (sorted by address then length) into ranges of one
 * class: the sweep of compiler/srcmap.c.  cls_of maps each prefix's class
 * (NULL: as is).
 */
static int flatten_lpm(const struct sn_pop_lpm_ent *p, size_t n, int f,
		       struct flatvec *out)
{
	const int w = width_of(f);
	struct { u128 end; uint32_t cls; } stack[130];
	int depth = 0, rc = 0;

	out->n = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const int len = p[i].len;
		u128 start = key_of(p[i].addr, w);
		u128 host = len >= w ? 0 : key_max(w - len);

		if (len > w || depth >= 129)
			return -EINVAL;
		while (depth && stack[depth - 1].end < start) {
			u128 end = stack[--depth].end;

			if (depth && end != key_max(w))
				rc = flat_emit(out, end + 1, stack[depth - 1].cls);
		}
		if (!rc)
			rc = flat_emit(out, start, p[i].cls);
		stack[depth].end = start | host;
		stack[depth].cls = p[i].cls;
		depth++;
	}
	while (!rc && depth) {
		u128 end = stack[--depth].end;

		if (depth && end != key_max(w))
			rc = flat_emit(out, end + 1, stack[depth - 1].cls);
	}
	return rc;
}

/* ---- overlay matching (stable ids) ---------------------------------------------- */

struct pair {
	uint32_t old, new_;
	uint32_t count;
};

static int pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->old != y->old)
		return x->old < y->old ? -1 : 1;
	return x->new_ < y->new_ ? -1 : x->new_ > y->new_;
}

static int count_pair(struct hmap *m, uint32_t old, uint32_t nw, uint32_t w)
{
	uint32_t *v = hmap_get(m, (uint64_t)old << 32 | nw);

	if (!v)
		return -ENOMEM;
	*v += w;
	return 0;
}

/*
 * Give each new id [0, n_new) a stable id in [0, cap): greedily by the
 * pair counts (an old id and a new one that share the most keep the old
 * id), the rest the lowest free ids, preferring ids the old population
 * did not use.  old_used may be NULL.  -E2BIG when cap is too small.
 */
static int assign_ids(struct hmap *pairs, uint32_t n_new, uint32_t cap,
		      const uint8_t *old_used, uint32_t *map, size_t *kept)
{
	struct pair *v = NULL;
	uint8_t *taken = NULL;
	size_t n = 0;
	int rc = 0;

	*kept = 0;
	if (n_new > cap)
		return -E2BIG;
	taken = calloc(cap + 1, 1);
	v = malloc((pairs->n + 1) * sizeof(*v));
	if (!taken || !v) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < pairs->cap; i++)
		if (pairs->used[i])
			v[n++] = (struct pair){ (uint32_t)(pairs->k[i] >> 32),
						(uint32_t)pairs->k[i],
						pairs->v[i] };
	qsort(v, n, sizeof(*v), pair_cmp);
	for (uint32_t i = 0; i < n_new; i++)
		map[i] = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		if (v[i].old >= cap || v[i].new_ >= n_new || taken[v[i].old] ||
		    map[v[i].new_] != UINT32_MAX)
			continue;
		taken[v[i].old] = 1;
		map[v[i].new_] = v[i].old;
		(*kept)++;
	}
	/* The rest: free ids the old population did not use, then any. */
	uint32_t next = 0;

	for (int pass = 0; pass < 2; pass++) {
		next = 0;
		for (uint32_t i = 0; i < n_new; i++) {
			if (map[i] != UINT32_MAX)
				continue;
			while (next < cap &&
			       (taken[next] ||
				(pass == 0 && old_used && old_used[next])))
				next++;
			if (next == cap)
				break;
			taken[next] = 1;
			map[i] = next++;
		}
	}
	for (uint32_t i = 0; i < n_new; i++)
		if (map[i] == UINT32_MAX)
			rc = -E2BIG; /* cannot happen: n_new <= cap */
out:
	free(v);
	free(taken);
	return rc;
}

/* Overlay two sorted flattened range lists; count (old, new) pieces. */
static int overlay_flat(const struct flat *o, size_t no, const struct flat *nw,
			size_t nn, struct hmap *pairs)
{
	size_t i = 0, j = 0;

	if (!no || !nn)
		return 0;
	/* Both start at 0 (the /0 prefix is always there): one count per
	 * piece of the address space both cut. */
	while (i < no && j < nn) {
		if (count_pair(pairs, o[i].cls, nw[j].cls, 1))
			return -ENOMEM;
		/* Advance to the next boundary of either list. */
		u128 ni = i + 1 < no ? o[i + 1].start : 0;
		u128 nj = j + 1 < nn ? nw[j + 1].start : 0;
		bool hi = i + 1 < no, hj = j + 1 < nn;

		if (!hi && !hj)
			break;
		if (hi && (!hj || ni < nj)) {
			i++;
		} else if (hj && (!hi || nj < ni)) {
			j++;
		} else {
			i++;
			j++;
		}
	}
	return 0;
}

/* ---- range-trie words and blocks ---------------------------------------------- */

/*
 * Word i of a range-trie array.  The map holds two words per element in
 * memory order (bpf/sentry_abi.h), so the bytes are an array of words.
 */
static inline uint32_t wget(const struct sn_pop_array *a, uint32_t i)
{
	uint32_t w;

	memcpy(&w, a->v + (size_t)i * sizeof(w), sizeof(w));
	return w;
}

/* Set word i; the element holding it is recorded when it changes. */
static inline int wset(struct sn_pop_array *a, uint32_t i, uint32_t w)
{
	uint32_t el[2];

	memcpy(el, a->v + (size_t)(i & ~1u) * sizeof(w), sizeof(el));
	if (el[i & 1] == w)
		return 0;
	el[i & 1] = w;
	return aset(a, i >> 1, el);
}

static inline uint32_t n_words(const struct sn_pop_array *a)
{
	return 2 * a->cap;
}

static uint32_t e_span(uint32_t e)
{
	return ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
}

/* Words per start of leaf entry e of family f (1, 2, 4); 0: invalid. */
static uint32_t e_fmt_words(int f, uint32_t e)
{
	uint32_t F = (e >> SN_SRC_FMT_SHIFT) & SN_SRC_FMT_MASK;

	if (F == 0)
		return 1;
	if (!f)
		return 0; /* IPv4 starts always fit one word */
	return F == 1 ? 2 : F == 2 ? 4 : 0;
}

/* Words of the block of a leaf of n >= 2 ranges, W words per start. */
static uint32_t block_words(uint32_t n, uint32_t W)
{
	return n + (n - 1) * W;
}

/*
 * The start of a block's range from its W-word window (the address bits
 * [d, d + 32W), bits past the width 0) in the region that starts at lo.
 */
static u128 block_start(u128 lo, u128 v, int w, int d, uint32_t W)
{
	int len = 32 * (int)W;

	if (d + len <= w)
		return lo | v << (w - d - len);
	return lo | v >> (d + len - w);
}

/* The window at word p of a block. */
static u128 block_window(const struct sn_pop_array *a, uint32_t p, uint32_t W)
{
	u128 v = 0;

	for (uint32_t j = 0; j < W; j++)
		v = v << 32 | wget(a, p + j);
	return v;
}

/* ---- range-trie patching -------------------------------------------------------- */

/*
 * The new trie of a family is walked together with the layout the arrays
 * hold, region by region.  A node of the same stride is kept where it is
 * and its entries are rewritten where they differ; a leaf block is
 * rewritten in place when it needs no more words than the block there
 * (the rest of that block is freed); anything else is written to new
 * blocks from free space and what stood there is freed.  Unchanged parts
 * cost a comparison per word and write nothing.  Leaf blocks are copied
 * as the compiler built them (their starts are relative to the leaf's
 * depth, which the layout keeps), with their classes translated.
 */
struct patch {
	struct sn_pop *p;
	int f, w;
	const struct sn_srcmap *m;
	const uint32_t *cmap;      /* image class -> stable */
	uint32_t n_classes;        /* image classes (cmap's domain) */
	struct sn_pop_array *na;
	uint32_t nw;               /* words of a generation */
	struct sn_pop_trie *tr;
	uint32_t kept, made;
	int err;
};

/* Free the blocks of the layout subtree under layout entry l. */
static void free_subtree(struct patch *P, uint32_t l, int depth)
{
	if (P->err || depth > SN_SRC_MAX_READS_V6)
		return;
	if (l & SN_SRC_CHILD) {
		uint32_t loc = l & SN_SRC_INDEX_MASK, n = 1u << e_span(l);

		if (!loc || (uint64_t)loc + n > P->nw)
			return; /* not a block of ours: nothing to free */
		for (uint32_t i = 0; i < n && !P->err; i++)
			free_subtree(P, wget(P->na, loc + i), depth + 1);
		if (alloc_give(&P->tr->words, loc, n))
			P->err = -ENOMEM;
		return;
	}
	uint32_t n = e_span(l), W = e_fmt_words(P->f, l);
	uint32_t loc = l & SN_SRC_BLOCK_MASK;

	if (n > 1 && W && loc && (uint64_t)loc + block_words(n, W) <= P->nw &&
	    alloc_give(&P->tr->words, loc, block_words(n, W)))
		P->err = -ENOMEM;
}

/*
 * The layout entry for image entry e; l is the layout's entry at the same
 * place when have_l (its subtree is replaced or patched).
 */
static uint32_t patch_entry(struct patch *P, uint32_t e, uint32_t l,
			    bool have_l, int d, int depth)
{
	if (P->err)
		return 0;
	if (depth > (P->f ? SN_SRC_MAX_READS_V6 : SN_SRC_MAX_READS_V4)) {
		P->err = -EINVAL;
		return 0;
	}
	if (e & SN_SRC_CHILD) {
		uint32_t s = e_span(e), first = e & SN_SRC_INDEX_MASK, n = 1u << s;
		uint32_t lloc = l & SN_SRC_INDEX_MASK;
		bool in_place = have_l && (l & SN_SRC_CHILD) && e_span(l) == s &&
				lloc && (uint64_t)lloc + n <= P->nw;
		int64_t loc;

		if ((uint64_t)first + n > P->m->n_nodes || d + (int)s > P->w) {
			P->err = -EINVAL;
			return 0;
		}
		if (in_place) {
			loc = lloc;
			P->kept++;
		} else {
			if (have_l)
				free_subtree(P, l, depth);
			loc = alloc_take(&P->tr->words, n);
			if (loc < 0) {
				P->err = (int)loc;
				return 0;
			}
			P->made++;
		}
		for (uint32_t i = 0; i < n && !P->err; i++) {
			uint32_t c = P->m->nodes[first + i], ne;
			uint32_t old = wget(P->na, (uint32_t)loc + i);

			/* One-range leaves, the bulk of a big trie: inline. */
			if (in_place && !(c & SN_SRC_CHILD) && !(c >> SN_SRC_SPAN_SHIFT) &&
			    (c & SN_SRC_INDEX_MASK) < P->n_classes &&
			    !(old & SN_SRC_CHILD) && !(old >> SN_SRC_SPAN_SHIFT)) {
				ne = P->cmap[c & SN_SRC_INDEX_MASK];
				if (ne == old)
					continue;
			} else {
				ne = patch_entry(P, c, old, in_place, d + (int)s,
						 depth + 1);
			}
			if (!P->err && ne != old && wset(P->na, (uint32_t)loc + i, ne))
				P->err = -ENOMEM;
		}
		return (e & ~SN_SRC_INDEX_MASK) | (uint32_t)loc;
	}
	uint32_t n = e_span(e);

	if (n == 1) {
		uint32_t cls = e & SN_SRC_INDEX_MASK;

		if (cls >= P->n_classes) {
			P->err = -EINVAL;
			return 0;
		}
		if (have_l && ((l & SN_SRC_CHILD) || e_span(l) > 1))
			free_subtree(P, l, depth);
		return P->cmap[cls];
	}
	uint32_t W = e_fmt_words(P->f, e), p = e & SN_SRC_BLOCK_MASK;
	uint32_t k = W ? block_words(n, W) : 0;

	if (!W || (uint64_t)p + k > P->m->n_nodes || d >= P->w) {
		P->err = -EINVAL;
		return 0;
	}
	uint32_t ln = e_span(l), lW = e_fmt_words(P->f, l);
	uint32_t lloc = l & SN_SRC_BLOCK_MASK, lk = lW ? block_words(ln, lW) : 0;
	bool in_place = have_l && !(l & SN_SRC_CHILD) && ln > 1 && lW && k <= lk &&
			lloc && (uint64_t)lloc + lk <= P->nw;
	int64_t loc;

	if (in_place) {
		loc = lloc;
		if (lk > k && alloc_give(&P->tr->words, lloc + k, lk - k)) {
			P->err = -ENOMEM;
			return 0;
		}
		P->kept++;
	} else {
		if (have_l)
			free_subtree(P, l, depth);
		loc = alloc_take(&P->tr->words, k);
		if (loc < 0) {
			P->err = (int)loc;
			return 0;
		}
		P->made++;
	}
	/* The block word by word: a class every W + 1 words (from word 0),
	 * translated; starts as they are.  Most of a big trie is unchanged:
	 * one comparison per word. */
	const uint32_t *src = P->m->nodes + p;

	for (uint32_t j = 0; j < k; j++) {
		uint32_t v = src[j];

		if (j % (W + 1) == 0) {
			if (v >= P->n_classes) {
				P->err = -EINVAL;
				return 0;
			}
			v = P->cmap[v];
		}
		if (v != wget(P->na, (uint32_t)loc + j) &&
		    wset(P->na, (uint32_t)loc + j, v)) {
			P->err = -ENOMEM;
			return 0;
		}
	}
	return (e & ~SN_SRC_BLOCK_MASK) | (uint32_t)loc;
}

/*
 * Patch family f's layout to img's trie.  fresh: ignore the layout (it is
 * not ours, or too fragmented): everything to new blocks.  0, -ENOSPC
 * (does not fit), -EINVAL (a malformed trie), -ENOMEM.
 */
static int patch_trie(struct sn_pop *p, int f, const struct sn_srcmap *m,
		      const uint32_t *cmap, uint32_t n_classes, bool fresh,
		      uint32_t *kept, uint32_t *made)
{
	struct patch P = {
		.p = p, .f = f, .w = f ? 128 : 32, .m = m, .cmap = cmap,
		.n_classes = n_classes,
		.na = &p->a[f ? SN_PA_NODES6 : SN_PA_NODES4],
		.tr = p->trie[f],
	};
	P.nw = n_words(P.na);
	uint32_t root = wget(P.na, 0);
	bool have_l = !fresh && P.tr->ok && root != SN_SRC_USE_LPM;

	if (!have_l) {
		if (alloc_reset(&P.tr->words, 1, P.nw))
			return -ENOMEM;
		P.tr->ok = true;
	}
	uint32_t e = patch_entry(&P, m->nodes[0], root, have_l, 0, 1);

	if (!P.err && wset(P.na, 0, e))
		P.err = -ENOMEM;
	if (P.err)
		P.tr->ok = false; /* the next translation lays it out anew */
	*kept = P.kept;
	*made = P.made;
	return P.err;
}

/* Words 0 (the root's "empty" word) and every allocated block count as
 * used; what the allocator holds free does not. */
int64_t sn_pop_trie_words_used(const struct sn_pop *p, int family)
{
	const struct sn_pop_trie *tr = p->trie[family];
	const struct sn_pop_array *a = &p->a[family ? SN_PA_NODES6 : SN_PA_NODES4];
	uint64_t free_words = 0;

	if (!tr || !tr->ok)
		return -1;
	for (size_t i = 0; i < tr->words.n; i++)
		free_words += tr->words.v[i].len;
	return n_words(a) > free_words ? (int64_t)(n_words(a) - free_words) : 0;
}

/* A family that leaves its range trie for the LPM trie frees it all. */
static int unpatch_trie(struct sn_pop *p, int f)
{
	struct sn_pop_trie *tr = p->trie[f];
	const struct sn_pop_array *na = &p->a[f ? SN_PA_NODES6 : SN_PA_NODES4];

	if (alloc_reset(&tr->words, 1, n_words(na)))
		return -ENOMEM;
	tr->ok = true;
	return 0;
}

/* ---- translation ------------------------------------------------------------------ */

/* What a translation replaced and the arrays do not say: for a rollback. */
struct sn_pop_prev {
	struct sn_pop_lpm_ent *lpm_v[2];
	size_t lpm_n[2];
};

static struct sn_pop_prev *prev_of(struct sn_pop *p)
{
	if (!p->prev)
		p->prev = calloc(1, sizeof(*p->prev));
	return p->prev;
}

static void forget_prev(struct sn_pop *p)
{
	if (!p->prev)
		return;
	for (int f = 0; f < 2; f++) {
		free(p->prev->lpm_v[f]);
		p->prev->lpm_v[f] = NULL;
		p->prev->lpm_n[f] = 0;
	}
}

static int slot_op(struct sn_pop *p, uint32_t s, const struct sn_slot *nv)
{
	if (!memcmp(&p->slots[s], nv, sizeof(*nv)))
		return 0;
	if (p->n_slot_ops == p->cap_slot_ops) {
		size_t cap = p->cap_slot_ops ? p->cap_slot_ops * 2 : 64;
		struct sn_pop_slot_op *v = realloc(p->slot_ops, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->slot_ops = v;
		p->cap_slot_ops = cap;
	}
	p->slot_ops[p->n_slot_ops++] = (struct sn_pop_slot_op){ s, p->slots[s] };
	p->slots[s] = *nv;
	return 0;
}

static int push_u32(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		uint32_t *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = x;
	return 0;
}

/* Flattened ranges of the image for family f, in image class ids. */
static int image_flat(const struct sn_image *img, int f, struct flatvec *out)
{
	const struct sn_srcmap *m = f ? &img->src_v6 : &img->src_v4;
	const int w = width_of(f);

	out->n = 0;
	if (m->n_nodes) {
		out->v = malloc((m->n_ranges + 1) * sizeof(*out->v));
		if (!out->v)
			return -ENOMEM;
		out->cap = m->n_ranges + 1;
		for (uint32_t i = 0; i < m->n_ranges; i++)
			out->v[i] = (struct flat){ key_of(m->ranges[i].start, w),
						   m->ranges[i].class_id };
		out->n = m->n_ranges;
		return 0;
	}
	const struct sn_class_prefix *pf = f ? img->v6 : img->v4;
	size_t n = f ? img->n_v6 : img->n_v4;
	struct sn_pop_lpm_ent *e = malloc((n + 1) * sizeof(*e));
	int rc;

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(e[i].addr, pf[i].prefix.addr, 16);
		e[i].len = pf[i].prefix.len;
		e[i].cls = pf[i].class_id;
	}
	rc = flatten_lpm(e, n, f, out);
	free(e);
	return rc;
}

static struct sn_decision dec_translate(const struct sn_decision *d,
					const uint32_t *rule_slot,
					const uint32_t *lmap)
{
	struct sn_decision o = *d;

	o.rule_id = rule_slot[d->rule_id];
	o.limit = d->limit ? (uint16_t)(lmap[d->limit - 1] + 1) : 0;
	return o;
}

/* The checks sn_dp_apply always made on an image before writing it (the
 * range tries' classes are checked while they are patched). */
static int check_image(const struct sn_pop *p, const struct sn_image *img,
		       char *err, size_t errlen)
{
	const struct sn_constants *c = &img->constants;
	const struct sn_image_features *f = sn_image_features(img);
	uint64_t n_dec = (uint64_t)img->n_classes * c->l4_stride;

	if (!c->l4_stride || c->l4_stride < img->n_l4)
		return sn_fail(err, errlen, -EINVAL,
			       "policy image: l4_stride %u < %u L4 classes",
			       c->l4_stride, img->n_l4);
	if (!img->n_classes)
		return sn_fail(err, errlen, -EINVAL,
			       "policy image has no source class");
	if (c->l4_stride != p->g.l4_stride || c->port_tables != p->g.port_tables)
		return sn_fail(err, errlen, -ESTALE,
			       "generated constants changed (l4_stride %u->%u, port tables 0x%x->0x%x): the program must be reloaded",
			       p->g.l4_stride, c->l4_stride, p->g.port_tables,
			       c->port_tables);
	if (img->n_rules < SN_RULE_FIRST + f->n_limits)
		return sn_fail(err, errlen, -EINVAL,
			       "policy image: rule table lacks the limit rules");
	for (size_t i = 0; i < img->n_port_runs; i++) {
		const struct sn_port_run *r = &img->port_runs[i];

		if (r->table < 1 || r->table > SN_PORT_TABLES || r->lo > r->hi ||
		    r->l4_class >= img->n_l4)
			return sn_fail(err, errlen, -EINVAL,
				       "policy image: port run %zu invalid", i);
	}
	/*
	 * The program reads the TCP and UDP port tables without sn_proto
	 * (bpf/templates/sentry_xdp.bpf.c, sn_decide): a table in use must be
	 * that protocol's, and no other protocol may use one.
	 */
	for (uint32_t i = 0; i < SN_POP_PROTO; i++) {
		uint32_t own = i == 6 ? SN_PORT_TABLE_TCP :
			       i == 17 ? SN_PORT_TABLE_UDP : SN_PORT_TABLE_NONE;
		bool in_use = own && (c->port_tables & (1u << own));

		if (img->proto[i].l4_noport >= img->n_l4 ||
		    img->proto[i].port_table != (in_use ? own : SN_PORT_TABLE_NONE))
			return sn_fail(err, errlen, -EINVAL,
				       "policy image: protocol %u entry invalid", i);
	}
	for (uint64_t i = 0; i < n_dec; i++) {
		const struct sn_decision *d = &img->decisions[i];

		if (i % c->l4_stride >= img->n_l4)
			continue;
		if (d->rule_id >= img->n_rules ||
		    (d->verdict != SN_VERDICT_ALLOW &&
		     d->verdict != SN_VERDICT_BLOCK) ||
		    d->limit > f->n_limits)
			return sn_fail(err, errlen, -EINVAL,
				       "policy image: decision %llu invalid",
				       (unsigned long long)i);
	}
	for (uint32_t i = 0; i < f->n_limits; i++) {
		const struct sn_image_limit *l = &f->limits[i];

		if (l->key_v4 > 32 || l->key_v6 > 128 || !l->burst ||
		    !l->rate_fp)
			return sn_fail(err, errlen, -EINVAL,
				       "policy image: limit %u invalid", i);
	}
	for (int fam = 0; fam < 2; fam++) {
		const struct sn_class_prefix *pf = fam ? img->v6 : img->v4;
		size_t n = fam ? img->n_v6 : img->n_v4;
		const struct sn_srcmap *m = fam ? &img->src_v6 : &img->src_v4;

		if (m->n_nodes)
			continue; /* the prefixes are not loaded */
		if (!n)
			return sn_fail(err, errlen, -EINVAL,
				       "policy image: no IPv%d lookup", fam ? 6 : 4);
		for (size_t i = 0; i < n; i++)
			if (pf[i].class_id >= img->n_classes)
				return sn_fail(err, errlen, -EINVAL,
					       "policy image: prefix %zu invalid", i);
	}
	return 0;
}

/* The slots of the image's rules; -E2BIG when they do not fit. */
static int plan_slots(struct sn_pop *p, const struct sn_image *img,
		      uint32_t *rule_slot, uint64_t *ident, uint32_t **freed,
		      size_t *n_freed, size_t *n_new)
{
	struct hmap have = { 0 }, occ = { 0 };
	uint8_t *keep = calloc(p->g.cap_slots + 1, 1);
	int rc = -ENOMEM;

	*freed = NULL;
	*n_freed = 0;
	*n_new = 0;
	if (!keep || hmap_init(&have, p->g.cap_slots) ||
	    hmap_init(&occ, img->n_rules))
		goto out;
	for (uint32_t s = SN_RULE_FIRST; s < p->g.cap_slots; s++)
		if (p->slots[s].flags & SN_SLOT_USED) {
			uint32_t *v = hmap_get(&have, p->slots[s].identity);

			if (!v)
				goto out;
			*v = s + 1;
		}
	for (uint32_t id = 0; id < img->n_rules; id++)
		rule_slot[id] = UINT32_MAX;
	for (uint32_t id = 0; id < SN_RULE_FIRST && id < img->n_rules; id++) {
		rule_slot[id] = id;
		keep[id] = 1;
	}
	for (uint32_t id = SN_RULE_FIRST; id < img->n_rules; id++) {
		uint64_t base = sn_pop_rule_identity(img, id, 0);
		uint32_t *k = hmap_get(&occ, base);

		if (!k)
			goto out;
		ident[id] = sn_pop_rule_identity(img, id, (*k)++);
		const uint32_t *s = hmap_find(&have, ident[id]);

		if (s && !keep[*s - 1]) {
			rule_slot[id] = *s - 1;
			keep[*s - 1] = 1;
		}
	}
	/* New ones take slots not in use now (freed ones wait a reload). */
	uint32_t next = SN_RULE_FIRST;

	for (uint32_t id = SN_RULE_FIRST; id < img->n_rules; id++) {
		if (rule_slot[id] != UINT32_MAX)
			continue;
		while (next < p->g.cap_slots &&
		       (p->slots[next].flags & SN_SLOT_USED))
			next++;
		if (next >= p->g.cap_slots) {
			rc = -E2BIG;
			goto out;
		}
		rule_slot[id] = next++;
		(*n_new)++;
	}
	*freed = malloc((p->g.cap_slots + 1) * sizeof(**freed));
	if (!*freed)
		goto out;
	for (uint32_t s = SN_RULE_FIRST; s < p->g.cap_slots; s++)
		if ((p->slots[s].flags & SN_SLOT_USED) && !keep[s])
			(*freed)[(*n_freed)++] = s;
	rc = 0;
out:
	free(keep);
	hmap_free(&have);
	hmap_free(&occ);
	return rc;
}

/* ---- layout walks: what the arrays hold ----------------------------------------- */

struct walk {
	struct sn_pop *p;
	int f;
	struct flatvec *out;  /* flattened ranges, or NULL */
	struct ext_vec {
		struct { uint32_t start, len; } *v;
		size_t n, cap;
	} used;               /* blocks in use (words) */
	bool collect;
	char *err;
	size_t errlen;
};

static int used_add(struct walk *w, uint32_t start, uint32_t len)
{
	struct ext_vec *u = &w->used;

	if (!w->collect)
		return 0;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 256;
		void *v = realloc(u->v, cap * sizeof(*u->v));

		if (!v)
			return -ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n].start = start;
	u->v[u->n].len = len;
	u->n++;
	return 0;
}

static int walk_entry(struct walk *w, uint32_t e, u128 lo, int d, int depth)
{
	const int W = width_of(w->f);
	const struct sn_pop_array *na = &w->p->a[w->f ? SN_PA_NODES6 : SN_PA_NODES4];
	const uint32_t ccap = class_cap(&w->p->g), nw = n_words(na);

	if (depth > (w->f ? SN_SRC_MAX_READS_V6 : SN_SRC_MAX_READS_V4))
		return sn_fail(w->err, w->errlen, -EINVAL, "range trie too deep");
	if (e & SN_SRC_CHILD) {
		int s = (int)e_span(e);
		uint32_t first = e & SN_SRC_INDEX_MASK, n = 1u << s;

		if (d + s > W || first == 0 || (uint64_t)first + n > nw)
			return sn_fail(w->err, w->errlen, -EINVAL,
				       "range trie entry out of bounds");
		int rc = used_add(w, first, n);

		for (uint32_t i = 0; i < n && !rc; i++)
			rc = walk_entry(w, wget(na, first + i),
					lo | (u128)i << (W - d - s), d + s, depth + 1);
		return rc;
	}
	uint32_t n = e_span(e);

	if (n == 1) {
		uint32_t cls = e & SN_SRC_INDEX_MASK;

		if (cls >= ccap)
			return sn_fail(w->err, w->errlen, -EINVAL,
				       "range trie class out of bounds");
		return w->out ? flat_emit(w->out, lo, cls) : 0;
	}
	uint32_t wpr = e_fmt_words(w->f, e), p = e & SN_SRC_BLOCK_MASK;

	if (!wpr || !p || d >= W || (uint64_t)p + block_words(n, wpr) > nw)
		return sn_fail(w->err, w->errlen, -EINVAL,
			       "range trie leaf out of bounds");
	const u128 hi = lo | key_max(W - d);
	int rc = used_add(w, p, block_words(n, wpr));
	uint32_t c = wget(na, p);

	if (c >= ccap)
		return sn_fail(w->err, w->errlen, -EINVAL, "range class out of bounds");
	if (!rc && w->out)
		rc = flat_emit(w->out, lo, c);
	for (uint32_t i = 1; i < n && !rc; i++) {
		uint32_t q = p + i * (wpr + 1);
		u128 st = block_start(lo, block_window(na, q - wpr, wpr), W, d, wpr);

		c = wget(na, q);
		if (c >= ccap)
			return sn_fail(w->err, w->errlen, -EINVAL,
				       "range class out of bounds");
		if (st > hi)
			break;
		if (w->out)
			rc = flat_emit(w->out, st, c);
	}
	return rc;
}

static int ext_cmp(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* Free space of an array: [lo, hi) less the blocks in use. */
static int alloc_from_used(struct alloc *a, struct ext_vec *u, uint32_t lo,
			   uint32_t hi)
{
	uint32_t at = lo;

	a->n = 0;
	a->cursor = 0;
	if (u->n)
		qsort(u->v, u->n, sizeof(*u->v), ext_cmp);
	for (size_t i = 0; i <= u->n; i++) {
		uint32_t start = i < u->n ? u->v[i].start : hi;

		if (start > at) {
			if (alloc_reserve(a, a->n + 1))
				return -ENOMEM;
			a->v[a->n].start = at;
			a->v[a->n].len = start - at;
			a->n++;
		}
		if (i < u->n && u->v[i].start + u->v[i].len > at)
			at = u->v[i].start + u->v[i].len;
	}
	return 0;
}

/*
 * Walk family f's lookup as the arrays hold it: its flattened ranges
 * into out (may be NULL) and, with collect, its free space into the trie
 * allocator.
 */
static int walk_family(struct sn_pop *p, int f, struct flatvec *out,
		       bool collect, char *err, size_t errlen)
{
	struct walk w = { .p = p, .f = f, .out = out, .collect = collect,
			  .err = err, .errlen = errlen };
	const struct sn_pop_array *na = &p->a[f ? SN_PA_NODES6 : SN_PA_NODES4];
	uint32_t root = wget(na, 0);
	int rc;

	if (out)
		out->n = 0;
	if (root == SN_SRC_USE_LPM) {
		for (size_t i = 0; i < p->lpm[f].n; i++)
			if (p->lpm[f].v[i].cls >= class_cap(&p->g))
				return sn_fail(err, errlen, -EINVAL,
					       "LPM class out of bounds");
		rc = out ? flatten_lpm(p->lpm[f].v, p->lpm[f].n, f, out) : 0;
	} else {
		rc = walk_entry(&w, root, 0, 0, 1);
	}
	if (!rc && out && (!out->n || out->v[0].start != 0))
		rc = sn_fail(err, errlen, -EINVAL,
			     "IPv%d lookup does not cover the address space",
			     f ? 6 : 4);
	if (!rc && collect) {
		struct sn_pop_trie *t = p->trie[f];

		rc = alloc_from_used(&t->words, &w.used, 1, n_words(na));
		t->ok = !rc;
	}
	free(w.used.v);
	return rc;
}

/* ---- source class ids ---------------------------------------------------------- */

/*
 * Pairs (old class, new class) where the new trie and the layout have the
 * same shape: a read-only walk like patch_entry's, counting the classes
 * that meet at the same entry or range.  Only classes not matched by row
 * count (old_free[], cmap[] == UINT32_MAX).  Where shapes differ nothing
 * is counted: those parts are rewritten anyway.
 */
struct pairwalk {
	const struct sn_pop *p;
	int f;
	const struct sn_srcmap *m;
	const uint8_t *old_taken;
	const uint32_t *cmap;
	uint32_t n_classes, ccap;
	struct hmap *pairs;
	int err;
};

static void pair_count(struct pairwalk *W, uint32_t old, uint32_t nw)
{
	if (old >= W->ccap || nw >= W->n_classes || W->old_taken[old] ||
	    W->cmap[nw] != UINT32_MAX)
		return;
	if (count_pair(W->pairs, old, nw, 1))
		W->err = -ENOMEM;
}

static void pair_entry(struct pairwalk *W, uint32_t e, uint32_t l, int depth)
{
	const struct sn_pop_array *na = &W->p->a[W->f ? SN_PA_NODES6 : SN_PA_NODES4];
	const uint32_t nw = n_words(na);

	if (W->err || depth > (W->f ? SN_SRC_MAX_READS_V6 : SN_SRC_MAX_READS_V4))
		return;
	if (e & SN_SRC_CHILD) {
		uint32_t s = e_span(e), first = e & SN_SRC_INDEX_MASK, n = 1u << s;
		uint32_t lloc = l & SN_SRC_INDEX_MASK;

		if (!(l & SN_SRC_CHILD) || e_span(l) != s || !lloc ||
		    (uint64_t)lloc + n > nw ||
		    (uint64_t)first + n > W->m->n_nodes)
			return;
		for (uint32_t i = 0; i < n && !W->err; i++)
			pair_entry(W, W->m->nodes[first + i], wget(na, lloc + i),
				   depth + 1);
		return;
	}
	uint32_t n = e_span(e);

	if (l & SN_SRC_CHILD)
		return;
	uint32_t ln = e_span(l);

	if (n == 1 && ln == 1) {
		uint32_t c = e & SN_SRC_INDEX_MASK;

		if (c < W->n_classes && W->cmap[c] == UINT32_MAX)
			pair_count(W, l & SN_SRC_INDEX_MASK, c);
		return;
	}
	if (n == 1 || ln == 1)
		return;
	/* Two blocks of one format: ranges whose starts agree pair up. */
	uint32_t wpr = e_fmt_words(W->f, e), p = e & SN_SRC_BLOCK_MASK;
	uint32_t lp = l & SN_SRC_BLOCK_MASK;

	if (!wpr || wpr != e_fmt_words(W->f, l) ||
	    (uint64_t)p + block_words(n, wpr) > W->m->n_nodes ||
	    (uint64_t)lp + block_words(ln, wpr) > nw)
		return;
	for (uint32_t i = 0; i < n && i < ln && !W->err; i++) {
		uint32_t q = i * (wpr + 1), c = W->m->nodes[p + q], oc;
		bool same = true;

		/* Most ranges are of classes matched by row: cheap to skip. */
		if (c >= W->n_classes || W->cmap[c] != UINT32_MAX)
			continue;
		oc = wget(na, lp + q);
		if (oc >= W->ccap || W->old_taken[oc])
			continue;
		for (uint32_t j = 1; i && j <= wpr && same; j++)
			same = W->m->nodes[p + q - j] == wget(na, lp + q - j);
		if (same)
			pair_count(W, oc, c);
	}
}


/*
 * Image class -> stable id.  By row first: a new class whose decision row
 * (in slots, stable L4 ids and limit indexes) a class of the maps has
 * keeps that id.  When some new rows are new and some old rows are gone
 * (a verdict or an L4 column changed), those are matched over the address
 * space: the old and new flattened ranges overlaid, pairs that share the
 * most pieces keep the id.  The rest take free ids.
 */
static int assign_classes(struct sn_pop *p, const struct sn_image *img,
			  const uint32_t *l4map, const uint32_t *rule_slot,
			  const uint32_t *lmap, uint32_t *cmap,
			  struct sn_pop_stats *st, char *err, size_t errlen)
{
	const uint32_t stride = p->g.l4_stride, ccap = class_cap(&p->g);
	const uint32_t n_l4 = img->n_l4, n_new = img->n_classes;
	struct sn_decision *row = malloc((n_l4 + 1) * sizeof(*row));
	uint8_t *taken = calloc(ccap + 1, 1);
	struct hmap rows = { 0 }, pairs = { 0 };
	size_t unmatched_new = 0, unmatched_old = 0, kept = 0;
	int rc = -ENOMEM;

	if (!row || !taken || hmap_init(&rows, 64))
		goto out;
	for (uint32_t c = 0; c < n_new; c++)
		cmap[c] = UINT32_MAX;
	if (p->valid) {
		/* Old rows by hash (chained through equal hashes: verify). */
		for (uint32_t c = 0; c < ccap; c++) {
			if (!p->class_used[c])
				continue;
			uint64_t h = 0x9e3779b97f4a7c15ull;

			for (uint32_t l = 0; l < n_l4; l++) {
				uint64_t v;

				memcpy(&v, aget(&p->a[SN_PA_DECISIONS],
						c * stride + l4map[l]), 8);
				h = mix64(h ^ v) + l;
			}
			uint32_t *slot = hmap_get(&rows, h);

			if (!slot)
				goto out;
			if (!*slot)
				*slot = c + 1; /* first class with this hash */
		}
		for (uint32_t c = 0; c < n_new; c++) {
			const struct sn_decision *img_row =
				&img->decisions[(size_t)c * stride];
			uint64_t h = 0x9e3779b97f4a7c15ull;

			for (uint32_t l = 0; l < n_l4; l++) {
				uint64_t v;

				row[l] = dec_translate(&img_row[l], rule_slot, lmap);
				memcpy(&v, &row[l], 8);
				h = mix64(h ^ v) + l;
			}
			const uint32_t *o = hmap_find(&rows, h);

			if (!o || taken[*o - 1])
				continue;
			bool same = true;

			for (uint32_t l = 0; l < n_l4 && same; l++)
				same = !memcmp(&row[l],
					       aget(&p->a[SN_PA_DECISIONS],
						    (*o - 1) * stride + l4map[l]),
					       sizeof(row[l]));
			if (same) {
				cmap[c] = *o - 1;
				taken[*o - 1] = 1;
				kept++;
			}
		}
		for (uint32_t c = 0; c < n_new; c++)
			unmatched_new += cmap[c] == UINT32_MAX;
		for (uint32_t c = 0; c < ccap; c++)
			unmatched_old += p->class_used[c] && !taken[c];
	}
	if (unmatched_new && unmatched_old) {
		/* Rows changed: match the rest over the address space. */
		struct flatvec of = { 0 }, nf = { 0 };

		st->overlay = true;
		rc = hmap_init(&pairs, 256);
		for (int f = 0; f < 2 && !rc; f++) {
			const struct sn_srcmap *m = f ? &img->src_v6 : &img->src_v4;
			uint32_t root = wget(&p->a[f ? SN_PA_NODES6 : SN_PA_NODES4], 0);

			uint32_t e0 = m->n_nodes ? m->nodes[0] : 0;
			bool same_root = (e0 & SN_SRC_CHILD) && (root & SN_SRC_CHILD) &&
					 e_span(e0) == e_span(root);

			if (m->n_nodes && root != SN_SRC_USE_LPM && p->trie[f]->ok &&
			    same_root) {
				/* Both range tries of one shape at the top:
				 * where their shapes meet.  (A new root means
				 * a new trie: over the address space then.) */
				struct pairwalk W = {
					.p = p, .f = f, .m = m, .old_taken = taken,
					.cmap = cmap, .n_classes = n_new,
					.ccap = ccap, .pairs = &pairs,
				};

				pair_entry(&W, m->nodes[0], root, 1);
				rc = W.err;
				continue;
			}
			rc = walk_family(p, f, &of, false, err, errlen);
			if (!rc)
				rc = image_flat(img, f, &nf);
			/* Count only pairs of classes still unmatched. */
			for (size_t i = 0; !rc && i < of.n; i++)
				if (taken[of.v[i].cls])
					of.v[i].cls = UINT32_MAX;
			for (size_t i = 0; !rc && i < nf.n; i++)
				if (cmap[nf.v[i].cls] != UINT32_MAX)
					nf.v[i].cls = UINT32_MAX - 1;
			if (!rc)
				rc = overlay_flat(of.v, of.n, nf.v, nf.n, &pairs);
			free(of.v);
			free(nf.v);
			of = (struct flatvec){ 0 };
			nf = (struct flatvec){ 0 };
		}
		if (rc == -EINVAL)
			rc = 0; /* an inconsistent layout: no matching then */
		if (rc)
			goto out;
		size_t n_pairs = 0;
		struct pair *v = malloc((pairs.n + 1) * sizeof(*v));

		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < pairs.cap; i++) {
			if (!pairs.used[i])
				continue;
			uint32_t o = (uint32_t)(pairs.k[i] >> 32), n = (uint32_t)pairs.k[i];

			if (o < ccap && n < n_new)
				v[n_pairs++] = (struct pair){ o, n, pairs.v[i] };
		}
		qsort(v, n_pairs, sizeof(*v), pair_cmp);
		for (size_t i = 0; i < n_pairs; i++) {
			if (taken[v[i].old] || cmap[v[i].new_] != UINT32_MAX)
				continue;
			taken[v[i].old] = 1;
			cmap[v[i].new_] = v[i].old;
			kept++;
		}
		free(v);
	}
	/* The rest: free ids the maps do not use, then any free one. */
	for (int pass = 0; pass < 2; pass++) {
		uint32_t next = 0;

		for (uint32_t c = 0; c < n_new; c++) {
			if (cmap[c] != UINT32_MAX)
				continue;
			while (next < ccap &&
			       (taken[next] ||
				(pass == 0 && p->valid && p->class_used[next])))
				next++;
			if (next == ccap)
				break;
			taken[next] = 1;
			cmap[c] = next++;
		}
	}
	rc = 0;
	for (uint32_t c = 0; c < n_new; c++)
		if (cmap[c] == UINT32_MAX)
			rc = sn_fail(err, errlen, -E2BIG,
				     "source classes do not fit the maps");
	st->classes_kept = kept;
out:
	if (rc == -ENOMEM)
		sn_seterr(err, errlen, "out of memory");
	hmap_free(&rows);
	hmap_free(&pairs);
	free(row);
	free(taken);
	return rc;
}

int sn_pop_translate(struct sn_pop *p, const struct sn_image *img,
		     char *err, size_t errlen)
{
	const double t0 = now_ms();
	const struct sn_image_features *f = sn_image_features(img);
	const uint32_t stride = p->g.l4_stride, ccap = class_cap(&p->g);
	struct sn_pop_stats st = { 0 };
	struct hmap pairs = { 0 };
	struct sn_pop_prev *prev = prev_of(p);
	uint32_t *rule_slot = NULL, *freed = NULL, *cmap = NULL, *l4map = NULL,
		 *lmap = NULL;
	uint64_t *ident = NULL;
	size_t n_freed = 0, n_new_slots = 0;
	uint8_t *limit_used = NULL;
	uint64_t *limit_ident = NULL;
	struct sn_pop_lpm_ent *lpm_new[2] = { NULL, NULL };
	size_t lpm_n[2] = { 0, 0 };
	int rc;

	if (!prev)
		return sn_fail(err, errlen, -ENOMEM, "out of memory");
	rc = check_image(p, img, err, errlen);
	if (rc)
		return rc;
	for (int i = 0; i < SN_PA_N; i++)
		if (p->a[i].n_dirty)
			rc = -EBUSY;
	if (rc || p->n_slot_ops || p->lpm[0].n_ops || p->lpm[1].n_ops)
		return sn_fail(err, errlen, -EBUSY,
			       "a previous apply was neither committed nor rolled back");
	if (img->n_classes > ccap)
		return sn_fail(err, errlen, -E2BIG,
			       "%u source classes, the maps hold %u: the program must be reloaded",
			       img->n_classes, ccap);
	if (f->n_limits > p->g.cap[SN_PA_LIMITS])
		return sn_fail(err, errlen, -E2BIG,
			       "%u limit rules, the maps hold %u: the program must be reloaded",
			       f->n_limits, p->g.cap[SN_PA_LIMITS]);
	if ((!img->src_v4.n_nodes && img->n_v4 > p->g.cap_lpm[0]) ||
	    (!img->src_v6.n_nodes && img->n_v6 > p->g.cap_lpm[1]))
		return sn_fail(err, errlen, -E2BIG,
			       "policy image outgrew the loaded LPM maps: the program must be reloaded");

	rc = -ENOMEM;
	rule_slot = malloc((img->n_rules + 1) * sizeof(*rule_slot));
	ident = malloc((img->n_rules + 1) * sizeof(*ident));
	cmap = malloc((img->n_classes + 1) * sizeof(*cmap));
	l4map = malloc((img->n_l4 + 1) * sizeof(*l4map));
	lmap = malloc((f->n_limits + 1) * sizeof(*lmap));
	limit_used = calloc(p->g.cap[SN_PA_LIMITS] + 1, 1);
	limit_ident = calloc(p->g.cap[SN_PA_LIMITS] + 1, sizeof(uint64_t));
	if (!rule_slot || !ident || !cmap || !l4map || !lmap || !limit_used ||
	    !limit_ident)
		goto fail;

	/* 1. counter slots */
	rc = plan_slots(p, img, rule_slot, ident, &freed, &n_freed, &n_new_slots);
	if (rc == -E2BIG) {
		sn_seterr(err, errlen, "%u rules do not fit %u counter slots "
			  "beside the rules they replace: the program must be "
			  "reloaded", img->n_rules, p->g.cap_slots);
		goto fail;
	}
	if (rc)
		goto fail;

	/* 2. limit indexes by identity */
	{
		struct hmap li;

		rc = hmap_init(&li, p->g.cap[SN_PA_LIMITS] + 1);
		if (rc)
			goto fail;
		for (uint32_t i = 0; i < p->g.cap[SN_PA_LIMITS]; i++)
			if (p->valid && p->limit_used[i]) {
				uint32_t *v = hmap_get(&li, p->limit_ident[i]);

				if (!v) {
					hmap_free(&li);
					rc = -ENOMEM;
					goto fail;
				}
				*v = i + 1;
			}
		for (uint32_t i = 0; i < f->n_limits; i++) {
			const uint32_t *v = hmap_find(&li, f->limits[i].identity);

			lmap[i] = UINT32_MAX;
			if (v && !limit_used[*v - 1]) {
				lmap[i] = *v - 1;
				limit_used[*v - 1] = 1;
			}
		}
		hmap_free(&li);
		uint32_t next = 0;

		/* New limits: the lowest indexes the new set leaves free. */
		for (uint32_t i = 0; i < f->n_limits; i++) {
			if (lmap[i] != UINT32_MAX)
				continue;
			while (limit_used[next])
				next++;
			lmap[i] = next;
			limit_used[next] = 1;
		}
		for (uint32_t i = 0; i < f->n_limits; i++)
			limit_ident[lmap[i]] = f->limits[i].identity;
	}

	/* 3. L4 class ids: overlay of the (protocol, port) space */
	rc = hmap_init(&pairs, 256);
	if (rc)
		goto fail;
	if (p->valid) {
		for (uint32_t pr = 0; pr < SN_POP_PROTO && !rc; pr++) {
			const struct sn_proto_entry *o = aget(&p->a[SN_PA_PROTO], pr);

			rc = count_pair(&pairs, o->l4_noport,
					img->proto[pr].l4_noport, 1);
		}
		for (size_t i = 0; i < img->n_port_runs && !rc; i++) {
			const struct sn_port_run *r = &img->port_runs[i];
			uint32_t base = (r->table - 1) * SN_PORTS_PER_TABLE;
			uint32_t last = UINT32_MAX, cnt = 0;
			const uint32_t *pv = aget(&p->a[SN_PA_PORTS], base);

			for (uint32_t port = r->lo; port <= r->hi && !rc; port++) {
				if (pv[port] != last && cnt) {
					rc = count_pair(&pairs, last, r->l4_class, cnt);
					cnt = 0;
				}
				last = pv[port];
				cnt++;
			}
			if (!rc && cnt)
				rc = count_pair(&pairs, last, r->l4_class, cnt);
		}
		if (rc)
			goto fail;
	}
	rc = assign_ids(&pairs, img->n_l4, stride, p->valid ? p->l4_used : NULL,
			l4map, &st.l4_kept);
	if (rc)
		goto fail;
	hmap_free(&pairs);

	/* 4. source class ids */
	rc = assign_classes(p, img, l4map, rule_slot, lmap, cmap, &st, err,
			    errlen);
	if (rc)
		goto fail;

	/* 5. LPM content per family (empty where the range trie is used) */
	for (int fam = 0; fam < 2; fam++) {
		const struct sn_srcmap *m = fam ? &img->src_v6 : &img->src_v4;
		const struct sn_class_prefix *pf = fam ? img->v6 : img->v4;
		size_t n = m->n_nodes ? 0 : fam ? img->n_v6 : img->n_v4;

		lpm_new[fam] = malloc((n + 1) * sizeof(*lpm_new[fam]));
		if (!lpm_new[fam]) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			memcpy(lpm_new[fam][i].addr, pf[i].prefix.addr, 16);
			lpm_new[fam][i].len = pf[i].prefix.len;
			lpm_new[fam][i].cls = cmap[pf[i].class_id];
		}
		lpm_n[fam] = n;
	}

	/* ---- from here on, write (a failure rolls back) ---- */
	free(p->rule_slot);
	p->rule_slot = rule_slot;
	p->n_rules = img->n_rules;
	rule_slot = NULL;
	free(p->limit_used);
	free(p->limit_ident);
	p->limit_used = limit_used;
	p->limit_ident = limit_ident;
	limit_used = NULL;
	limit_ident = NULL;
	memset(p->l4_used, 0, stride + 1);
	for (uint32_t i = 0; i < img->n_l4; i++)
		p->l4_used[l4map[i]] = 1;
	memset(p->class_used, 0, ccap + 1);
	for (uint32_t i = 0; i < img->n_classes; i++)
		p->class_used[cmap[i]] = 1;

	/* slots: new ones, holders' ids, freed ones */
	rc = 0;
	for (uint32_t id = SN_RULE_FIRST; id < img->n_rules && !rc; id++) {
		uint32_t s = p->rule_slot[id];
		struct sn_slot nv = { .identity = ident[id], .rule_id = id,
				      .flags = SN_SLOT_USED };

		if (!(p->slots[s].flags & SN_SLOT_USED))
			rc = push_u32(&p->slots_zero, &p->n_zero, &p->cap_zero, s);
		if (!rc)
			rc = slot_op(p, s, &nv);
	}
	for (size_t i = 0; i < n_freed && !rc; i++) {
		struct sn_slot nv = { 0 };

		rc = slot_op(p, freed[i], &nv);
	}
	st.slots_new = n_new_slots;
	st.slots_freed = n_freed;

	/* proto, ports */
	for (uint32_t pr = 0; pr < SN_POP_PROTO && !rc; pr++) {
		struct sn_proto_entry e = {
			.l4_noport = l4map[img->proto[pr].l4_noport],
			.port_table = img->proto[pr].port_table,
		};

		rc = aset(&p->a[SN_PA_PROTO], pr, &e);
	}
	for (size_t i = 0; i < img->n_port_runs && !rc; i++) {
		const struct sn_port_run *r = &img->port_runs[i];
		uint32_t base = (r->table - 1) * SN_PORTS_PER_TABLE;
		uint32_t v = l4map[r->l4_class];

		for (uint32_t port = r->lo; port <= r->hi && !rc; port++)
			rc = aset(&p->a[SN_PA_PORTS], base + port, &v);
	}
	/* limits */
	for (uint32_t i = 0; i < f->n_limits && !rc; i++) {
		const struct sn_image_limit *l = &f->limits[i];
		struct sn_limit_cfg c = { 0 };

		sn_token_math(l->rate_fp, (uint64_t)l->burst << 32, &c);
		c.identity = l->identity;
		c.block_ns = (uint64_t)l->block_for * SN_NSEC_PER_SEC;
		c.rule_id = p->rule_slot[sn_image_limit_rule(img, f, i)];
		c.key_v4 = l->key_v4;
		c.key_v6 = l->key_v6;
		rc = aset(&p->a[SN_PA_LIMITS], lmap[i], &c);
	}
	/* decisions */
	for (uint32_t c = 0; c < img->n_classes && !rc; c++) {
		const struct sn_decision *row = &img->decisions[(size_t)c * stride];
		uint32_t base = cmap[c] * stride;

		for (uint32_t l = 0; l < img->n_l4 && !rc; l++) {
			struct sn_decision d = dec_translate(&row[l], p->rule_slot,
							     lmap);

			rc = aset(&p->a[SN_PA_DECISIONS], base + l4map[l], &d);
		}
	}
	/* source lookup */
	for (int fam = 0; fam < 2 && !rc; fam++) {
		const struct sn_srcmap *m = fam ? &img->src_v6 : &img->src_v4;

		if (m->n_nodes) {
			struct sn_pop_trie *tr = p->trie[fam];
			bool fresh = !p->valid || !tr->ok;
			uint64_t h = image_trie_hash(m, cmap, img->n_classes);

			if (!fresh && tr->img_hash == h &&
			    wget(&p->a[fam ? SN_PA_NODES6 : SN_PA_NODES4], 0) !=
				    SN_SRC_USE_LPM) {
				/* The same trie with the same classes: the
				 * layout holds it already. */
				goto lpm;
			}
			trie_forget_image(tr);
			rc = patch_trie(p, fam, m, cmap, img->n_classes, fresh,
					&st.blocks_kept[fam], &st.blocks_new[fam]);
			if (rc == -ENOSPC && !fresh) {
				/* Fragmented: lay it out anew. */
				st.trie_compacted[fam] = true;
				rc = patch_trie(p, fam, m, cmap, img->n_classes, true,
						&st.blocks_kept[fam],
						&st.blocks_new[fam]);
			}
			if (rc == -ENOSPC) {
				sn_seterr(err, errlen, "the IPv%d range trie does "
					  "not fit the loaded maps: the program "
					  "must be reloaded", fam ? 6 : 4);
				rc = -E2BIG;
			} else if (rc == -EINVAL) {
				sn_seterr(err, errlen, "policy image: IPv%d range "
					  "trie invalid", fam ? 6 : 4);
			}
			if (!rc)
				tr->img_hash = h;
		} else {
			trie_forget_image(p->trie[fam]);
			uint32_t use_lpm = SN_SRC_USE_LPM;

			rc = wset(&p->a[fam ? SN_PA_NODES6 : SN_PA_NODES4], 0,
				  use_lpm);
			if (!rc)
				rc = unpatch_trie(p, fam);
		}
lpm:
		if (!rc) {
			rc = lpm_set(&p->lpm[fam], lpm_new[fam], lpm_n[fam],
				     &prev->lpm_v[fam], &prev->lpm_n[fam]);
			if (!rc)
				lpm_new[fam] = NULL;
		}
	}
	if (rc) {
		sn_pop_rollback(p);
		sn_pop_commit(p);
		if (rc == -ENOMEM)
			sn_seterr(err, errlen, "out of memory");
		goto out;
	}
	p->valid = true;
	for (int i = 0; i < SN_PA_N; i++)
		st.written[i] = p->a[i].n_dirty;
	st.lpm_ops[0] = p->lpm[0].n_ops;
	st.lpm_ops[1] = p->lpm[1].n_ops;
	st.classes = img->n_classes;
	st.limits = f->n_limits;
	st.translate_ms = now_ms() - t0;
	p->stats = st;
	rc = 0;
	goto out;
fail:
	if (rc == -ENOMEM)
		sn_seterr(err, errlen, "out of memory");
out:
	for (int fam = 0; fam < 2; fam++)
		free(lpm_new[fam]);
	hmap_free(&pairs);
	free(rule_slot);
	free(ident);
	free(freed);
	free(cmap);
	free(l4map);
	free(lmap);
	free(limit_used);
	free(limit_ident);
	return rc;
}

/* ---- commit / rollback ------------------------------------------------------------ */

void sn_pop_commit(struct sn_pop *p)
{
	for (int i = 0; i < SN_PA_N; i++)
		arr_clear_dirty(&p->a[i]);
	for (int f = 0; f < 2; f++)
		p->lpm[f].n_ops = 0;
	p->n_slot_ops = 0;
	p->n_zero = 0;
	forget_prev(p);
}

void sn_pop_rollback(struct sn_pop *p)
{
	struct sn_pop_prev *d = p->prev;

	for (int i = 0; i < SN_PA_N; i++)
		arr_rollback(&p->a[i]);
	for (size_t k = p->n_slot_ops; k-- > 0;)
		p->slots[p->slot_ops[k].slot] = p->slot_ops[k].old;
	for (int f = 0; f < 2; f++) {
		/* The ops stay, read backwards by the writer to restore. */
		if (d && d->lpm_v[f]) {
			free(p->lpm[f].v);
			p->lpm[f].v = d->lpm_v[f];
			p->lpm[f].n = p->lpm[f].cap = d->lpm_n[f];
			d->lpm_v[f] = NULL;
		}
	}
	/* Everything derived, from the content as it is again. */
	if (sn_pop_derive(p, NULL, 0) == -EINVAL)
		p->valid = false;
}

/* ---- derive (after reading pinned maps) -------------------------------------------- */

int sn_pop_derive(struct sn_pop *p, char *err, size_t errlen)
{
	const uint32_t stride = p->g.l4_stride, ccap = class_cap(&p->g);
	int rc = 0;

	p->valid = false;
	/* Rule ids from the slots (reading counters before the next apply). */
	uint32_t n_rules = SN_RULE_FIRST;

	for (uint32_t s = 0; s < p->g.cap_slots; s++)
		if ((p->slots[s].flags & SN_SLOT_USED) &&
		    p->slots[s].rule_id + 1 > n_rules &&
		    p->slots[s].rule_id < SN_CAP_RULES)
			n_rules = p->slots[s].rule_id + 1;
	free(p->rule_slot);
	p->rule_slot = malloc(n_rules * sizeof(*p->rule_slot));
	if (!p->rule_slot)
		return -ENOMEM;
	for (uint32_t i = 0; i < n_rules; i++)
		p->rule_slot[i] = i < SN_RULE_FIRST ? i : UINT32_MAX;
	for (uint32_t s = SN_RULE_FIRST; s < p->g.cap_slots; s++)
		if ((p->slots[s].flags & SN_SLOT_USED) &&
		    p->slots[s].rule_id < n_rules)
			p->rule_slot[p->slots[s].rule_id] = s;
	p->n_rules = n_rules;
	memset(p->class_used, 0, ccap + 1);
	memset(p->l4_used, 0, stride + 1);
	memset(p->limit_used, 0, p->g.cap[SN_PA_LIMITS] + 1);
	for (int f = 0; f < 2 && !rc; f++) {
		struct flatvec fl = { 0 };

		p->trie[f]->ok = false;
		trie_forget_image(p->trie[f]);
		rc = walk_family(p, f, &fl, true, err, errlen);
		for (size_t i = 0; !rc && i < fl.n; i++)
			p->class_used[fl.v[i].cls] = 1;
		free(fl.v);
	}
	if (rc)
		return rc;
	for (uint32_t pr = 0; pr < SN_POP_PROTO; pr++) {
		const struct sn_proto_entry *e = aget(&p->a[SN_PA_PROTO], pr);

		/* Ids past the stride (a program with a shorter row now):
		 * not in use; the next translation writes every entry. */
		if (e->l4_noport < stride)
			p->l4_used[e->l4_noport] = 1;
	}
	for (uint32_t t = 1; t <= SN_PORT_TABLES; t++) {
		if (!(p->g.port_tables & (1u << t)))
			continue;
		for (uint32_t port = 0; port < SN_PORTS_PER_TABLE; port++) {
			uint32_t v = *(uint32_t *)aget(&p->a[SN_PA_PORTS],
						       (t - 1) * SN_PORTS_PER_TABLE + port);

			if (v < stride)
				p->l4_used[v] = 1;
		}
	}
	for (uint32_t c = 0; c < ccap; c++) {
		if (!p->class_used[c])
			continue;
		for (uint32_t l = 0; l < stride; l++) {
			const struct sn_decision *d;

			if (!p->l4_used[l])
				continue;
			d = aget(&p->a[SN_PA_DECISIONS], c * stride + l);
			if (d->rule_id >= p->g.cap_slots ||
			    d->limit > p->g.cap[SN_PA_LIMITS])
				return sn_fail(err, errlen, -EINVAL,
					       "decision %u out of bounds",
					       c * stride + l);
			if (d->limit) {
				const struct sn_limit_cfg *lc =
					aget(&p->a[SN_PA_LIMITS], d->limit - 1u);

				p->limit_used[d->limit - 1] = 1;
				p->limit_ident[d->limit - 1] = lc->identity;
			}
		}
	}
	p->valid = true;
	return 0;
}

/* ---- the program's walk, over the population (tests) ------------------------------- */

static int classify_src(const struct sn_pop *p, int f, const uint8_t *addr,
			uint32_t *cls)
{
	const int W = width_of(f);
	const struct sn_pop_array *na = &p->a[f ? SN_PA_NODES6 : SN_PA_NODES4];
	const uint32_t nw = n_words(na);
	const u128 key = key_of(addr, W);
	uint32_t e = wget(na, 0);
	int d = 0, reads = 1;

	if (e == SN_SRC_USE_LPM) {
		const struct sn_pop_lpm *l = &p->lpm[f];
		int best = -1;

		for (size_t i = 0; i < l->n; i++) {
			int len = l->v[i].len;
			u128 pk = key_of(l->v[i].addr, W);
			u128 mask = len ? ~key_max(W - len) & key_max(W) : 0;

			if (len == W)
				mask = key_max(W);
			if ((key & mask) == pk && len > best) {
				best = len;
				*cls = l->v[i].cls;
			}
		}
		return best < 0 ? -1 : 0;
	}
	while (e & SN_SRC_CHILD) {
		int s = (int)e_span(e);
		uint64_t idx = e & SN_SRC_INDEX_MASK;

		if (reads >= (f ? SN_SRC_MAX_READS_V6 : SN_SRC_MAX_READS_V4) ||
		    d + s > W)
			return -1;
		idx += (uint64_t)((key >> (W - d - s)) & (((u128)1 << s) - 1));
		if (idx >= nw)
			return -1;
		e = wget(na, (uint32_t)idx);
		reads++;
		d += s;
	}
	uint32_t n = e_span(e);

	if (n == 1) {
		*cls = e & SN_SRC_INDEX_MASK;
		return 0;
	}
	/* The block scan of the program: the last start <= the address. */
	uint32_t wpr = e_fmt_words(f, e), q = e & SN_SRC_BLOCK_MASK;

	if (!wpr || d >= W || (uint64_t)q + block_words(n, wpr) > nw)
		return -1;
	const u128 lo = d ? key & ~key_max(W - d) & key_max(W) : 0;

	*cls = wget(na, q) & 0x7fffffff;
	for (uint32_t i = 1; i < n; i++) {
		q += wpr + 1;
		if (block_start(lo, block_window(na, q - wpr, wpr), W, d, wpr) > key)
			break;
		*cls = wget(na, q) & 0x7fffffff;
	}
	return 0;
}

int sn_pop_classify(const struct sn_pop *p, int family, const uint8_t *addr,
		    int proto, int port, struct sn_decision *out)
{
	const int f = family == SN_FAMILY_V6;
	const uint32_t stride = p->g.l4_stride;
	const struct sn_proto_entry *pe;
	uint32_t cls, l4, idx;

	if (classify_src(p, f, addr, &cls))
		return -1;
	pe = aget(&p->a[SN_PA_PROTO], (uint32_t)proto & 0xff);
	l4 = pe->l4_noport;
	if (port >= 0 && pe->port_table &&
	    (p->g.port_tables & (1u << pe->port_table)))
		l4 = *(uint32_t *)aget(&p->a[SN_PA_PORTS],
				       (pe->port_table - 1) * SN_PORTS_PER_TABLE +
					       (uint32_t)port);
	if (l4 >= stride)
		return -1;
	idx = cls * stride + l4;
	if (idx >= p->g.cap[SN_PA_DECISIONS])
		return -1;
	*out = *(const struct sn_decision *)aget(&p->a[SN_PA_DECISIONS], idx);
	return 0;
}

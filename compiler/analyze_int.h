/*
 * Shared between the analysis passes (analyze*.c); not a public header.
 *
 * Every written source prefix of every rule gets a global index g (rule
 * order, then source order).  The passes work on compact records sorted
 * by (address, length), which is the containment tree in depth-first
 * order: every prefix comes after all prefixes containing it.
 */
#ifndef SN_ANALYZE_INT_H
#define SN_ANALYZE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analyze.h"
#include "compile.h"
#include "image.h"
#include "policy.h"

/*
 * One source prefix of one rule, 16 bytes so a million of them sort and
 * walk in cache-friendly passes.  key = id << 24 | flags, where id orders
 * the prefixes by (address, length):
 *  - IPv4: id = address << 8 | length, i.e. key = address << 32 |
 *    length << 24 | flags; the prefix is the key itself.
 *  - IPv6: id = rank of the distinct prefix in (address, length) order;
 *    the prefix is an_fam.v6[id].
 * Equal prefixes have equal ids in both families.
 */
struct an_rec {
	uint64_t key;
	uint32_t g;    /* global source index */
	uint32_t rule; /* its rule's index (a lookup by g would miss the cache) */
};

#define AN_ID_SHIFT 24

/* Flags (the key's low byte), set by the rule walk, read by W005. */
#define AN_SHARED 1u        /* another rule of the same tier has this prefix */
#define AN_PARENT_SHARED 2u /* a rule of the same tier has the parent prefix */

struct an_v6 {
	uint64_t hi, lo; /* address as two big-endian words */
	uint8_t len;
};

/* How to read a family's records. */
struct an_fam {
	int family;
	unsigned bits;            /* 32 or 128 */
	const struct an_v6 *v6;   /* IPv6 prefixes by id; NULL for IPv4 */
};

static inline uint64_t an_id(const struct an_rec *r)
{
	return r->key >> AN_ID_SHIFT;
}

static inline unsigned an_flags(const struct an_rec *r)
{
	return (unsigned)(r->key & 0xff);
}

static inline bool an_same(const struct an_rec *a, const struct an_rec *b)
{
	return an_id(a) == an_id(b);
}

static inline unsigned an_len(const struct an_fam *F, const struct an_rec *r)
{
	if (!F->v6)
		return (unsigned)(r->key >> AN_ID_SHIFT) & 0xff;
	return F->v6[an_id(r)].len;
}

/* The prefix as two big-endian words and a length. */
static inline void an_words(const struct an_fam *F, const struct an_rec *r,
			    uint64_t *hi, uint64_t *lo, unsigned *len)
{
	if (!F->v6) {
		*hi = r->key >> 32 << 32;
		*lo = 0;
		*len = (unsigned)(r->key >> AN_ID_SHIFT) & 0xff;
		return;
	}
	const struct an_v6 *x = &F->v6[an_id(r)];

	*hi = x->hi;
	*lo = x->lo;
	*len = x->len;
}

/* Does a contain b (a no longer than b, same leading bits)? */
static inline bool an_contains(const struct an_fam *F, const struct an_rec *a,
			       const struct an_rec *b)
{
	if (!F->v6) {
		unsigned la = (unsigned)(a->key >> AN_ID_SHIFT) & 0xff;
		unsigned lb = (unsigned)(b->key >> AN_ID_SHIFT) & 0xff;

		/* The address is the key's top 32 bits. */
		return la <= lb && (!la || ((a->key ^ b->key) >> (64 - la)) == 0);
	}
	const struct an_v6 *x = &F->v6[an_id(a)], *y = &F->v6[an_id(b)];

	if (x->len > y->len)
		return false;
	if (x->len == 0)
		return true;
	if (x->len <= 64)
		return ((x->hi ^ y->hi) >> (64 - x->len)) == 0;
	return x->hi == y->hi && ((x->lo ^ y->lo) >> (128 - x->len)) == 0;
}

/* What the passes learn about one rule. */
struct an_rule {
	bool decides;      /* wins for some reachable packet */
	bool needed;       /* some packet it decides would change without it */
	bool has_witness, has_takeover;
	uint32_t witness_id, witness_g;   /* a winner where it matches */
	uint32_t takeover_id, takeover_g; /* who would decide without it */
	uint32_t n_dup, n_contained;      /* W003/W004 found (shown or not) */
	uint32_t n_pairs, pair_g[2];      /* W005: sibling pairs, the first */
	uint64_t src_hash;                /* W006: hash of the distinct sources */
	uint32_t n_distinct;
};

#define AN_NO_G UINT32_MAX

struct an {
	struct sn_ctx *ctx;
	struct sn_diags *d;
	const struct sn_policy *p;
	const struct sn_image *img;
	uint32_t max_per_rule;
	uint32_t width;       /* L4 classes */
	int8_t *spec;         /* spec[rule * width + class], SN_SPEC_NONE < 0 */
	uint32_t *first_class; /* some class each rule matches */
	uint32_t *src_base;   /* rule index -> its first g (ascending) */
	size_t n_v4, n_v6;    /* sources per family */
	struct an_rule *rules;
};

/* The rule a source index belongs to (diagnostics only: a search). */
uint32_t an_rule_of(const struct an *A, uint32_t g);

/* The location a source index was written at. */
static inline struct sn_loc an_loc(const struct an *A, uint32_t g)
{
	uint32_t r = an_rule_of(A, g);

	return A->p->rules[r].srcs[g - A->src_base[r]].loc;
}

static inline const struct sn_prefix *an_prefix(const struct an *A, uint32_t g)
{
	uint32_t r = an_rule_of(A, g);

	return &A->p->rules[r].srcs[g - A->src_base[r]].prefix;
}

/* Shadowed and redundant rules: one containment walk per family
 * (analyze_rules.c).  recs sorted; sets rec flags.  0 or -ENOMEM. */
int an_rules_walk(struct an *A, const struct an_fam *F, struct an_rec *recs,
		  size_t n);
void an_rules_report(struct an *A);

/* Duplicates, containment, siblings, port-only twins (analyze_sources.c).
 * recs sorted by rule, then prefix. */
void an_sources_family(struct an *A, const struct an_fam *F,
		       const struct an_rec *recs, size_t n);
int an_sources_report(struct an *A);

#endif

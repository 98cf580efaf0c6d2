/*
 * Shadowed (W001) and redundant (W002) rules.
 *
 * The same containment walk as the image builder (ir.c), with two
 * differences that make it answer "which rules matter":
 *
 *  - Per L4 class it keeps the best candidate and the best candidate of
 *    any *other* rule, so at every place a rule wins we know who would win
 *    without it, in O(1), instead of recompiling the policy once per rule.
 *  - It knows which prefixes are reachable: a prefix whose more specific
 *    policy prefixes cover it completely has no address of its own, so a
 *    row computed for it decides nothing.  Reachable space is the prefix's
 *    size minus its children's sizes, in 128-bit arithmetic.
 *
 * A prefix's row is final once the walk leaves its subtree (its children
 * are then known), so rows are judged when they are popped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "analyze_int.h"

#define NO_RULE UINT32_MAX

typedef unsigned __int128 u128;

/* Ordered as in ir.c: override tier, prefix length, L4 specificity; 0 is
 * the family default. */
static uint32_t cand_key(int tier, int len, int spec)
{
	return (uint32_t)tier << 16 | (uint32_t)(len + 1) << 8 |
	       (uint32_t)(spec + 1);
}

struct cand {
	uint32_t key;
	uint32_t id; /* rule id; SN_RULE_DEFAULT_*; NO_RULE */
	uint32_t g;  /* the source that put it here (AN_NO_G: default) */
	uint8_t verdict;
};

/* The winner, and the winner if that rule did not exist. */
struct pair {
	struct cand best, second;
};

/* Equal keys only meet at one prefix; the earlier rule is credited. */
static inline bool beats(const struct cand *a, const struct cand *b)
{
	return a->key > b->key || (a->key == b->key && a->id < b->id);
}

static inline void offer(struct pair *p, const struct cand *n)
{
	if (n->id == p->best.id) {
		if (n->key > p->best.key)
			p->best = *n;
	} else if (beats(n, &p->best)) {
		p->second = p->best; /* the old best beat every other rule */
		p->best = *n;
	} else if (n->id == p->second.id) {
		if (n->key > p->second.key)
			p->second = *n;
	} else if (p->second.id == NO_RULE || beats(n, &p->second)) {
		p->second = *n;
	}
}

/* One prefix on the walk's stack: an ancestor of everything above it. */
struct level {
	struct an_rec node;
	size_t begin, end; /* its records */
	u128 rem_m1;       /* reachable addresses - 1, while !empty */
	bool empty;        /* children cover it completely */
	bool witnessed;    /* its rules got a witness (see reached) */
};

struct walk {
	struct an *A;
	const struct an_fam *F;
	const struct an_rec *recs;
	unsigned bits; /* 32 or 128 */
	struct pair *rows; /* rows[depth * width] */
	struct level *lv;
};

/* Size of a prefix of length len, minus one (fits for len 0 too). */
static u128 size_m1(unsigned bits, unsigned len)
{
	unsigned host = bits - len;

	return host ? ~(u128)0 >> (128 - host) : 0;
}

/*
 * The region of level d (addresses whose longest policy match is its
 * prefix) is not empty: its row decides packets.
 */
static void reached(struct walk *W, int d)
{
	struct an *A = W->A;
	const struct pair *row = &W->rows[(size_t)d * A->width];

	for (uint32_t c = 0; c < A->width; c++) {
		const struct cand *b = &row[c].best, *s = &row[c].second;

		if (b->id < SN_RULE_FIRST)
			continue;
		struct an_rule *ar = &A->rules[b->id - SN_RULE_FIRST];

		ar->decides = true;
		/* A tie of the same verdict is a duplicate, reported on the
		 * rule that loses it (W001), not as redundancy here. */
		if (s->verdict != b->verdict || s->key == b->key) {
			ar->needed = true;
		} else if (!ar->has_takeover) {
			ar->has_takeover = true;
			ar->takeover_id = s->id;
			ar->takeover_g = s->g;
		}
	}
	/*
	 * Every rule on the stack matches the packets of this region, so
	 * whoever wins here beats it (or is it).  Ancestors witnessed earlier
	 * keep their witness; the witnessed levels are always the bottom of
	 * the stack, so this loop costs O(1) amortised.
	 */
	for (int k = d; k >= 1 && !W->lv[k].witnessed; k--) {
		W->lv[k].witnessed = true;
		for (size_t i = W->lv[k].begin; i < W->lv[k].end; i++) {
			uint32_t r = W->recs[i].rule;
			struct an_rule *ar = &A->rules[r];
			uint32_t c = A->first_class[r];

			if (ar->has_witness || c == UINT32_MAX)
				continue;
			ar->has_witness = true;
			ar->witness_id = row[c].best.id;
			ar->witness_g = row[c].best.g;
		}
	}
}

static void pop(struct walk *W, int d)
{
	struct level *L = &W->lv[d];

	if (!L->empty)
		reached(W, d);
	if (d > 1) {
		struct level *P = &W->lv[d - 1];
		u128 child_m1 = size_m1(W->bits, an_len(W->F, &L->node));

		/* Children are disjoint, so they never cover more than P. */
		if (child_m1 == P->rem_m1)
			P->empty = true;
		else
			P->rem_m1 -= child_m1 + 1;
	}
}

/*
 * W005 needs to know whether merging siblings into their parent would
 * change anyone's precedence: only rules of the same tier that name the
 * sibling itself or the parent compare prefix lengths with it.
 */
static void mark_shared(struct walk *W, struct an_rec *recs, size_t b,
			size_t e, const struct an_rec *prev, unsigned prev_tiers)
{
	const struct sn_policy *p = W->A->p;
	uint32_t lo[2] = { UINT32_MAX, UINT32_MAX }, hi[2] = { 0, 0 };
	bool parent = prev &&
		      an_len(W->F, prev) + 1 == an_len(W->F, &recs[b]) &&
		      an_contains(W->F, prev, &recs[b]);

	for (size_t k = b; k < e; k++) {
		uint32_t r = recs[k].rule;
		int t = p->rules[r].tier ? 1 : 0;

		if (r < lo[t])
			lo[t] = r;
		if (r > hi[t])
			hi[t] = r;
	}
	for (size_t k = b; k < e; k++) {
		int t = p->rules[recs[k].rule].tier ? 1 : 0;
		uint64_t flags = 0;

		if (lo[t] != hi[t])
			flags |= AN_SHARED;
		if (parent && (prev_tiers & (1u << t)))
			flags |= AN_PARENT_SHARED;
		recs[k].key = (recs[k].key & ~(uint64_t)0xff) | flags;
	}
}

int an_rules_walk(struct an *A, const struct an_fam *F, struct an_rec *recs,
		  size_t n)
{
	const struct sn_policy *p = A->p;
	const uint32_t width = A->width;
	const int family = F->family;
	const unsigned bits = F->bits;
	const struct sn_default *def =
		family == SN_FAMILY_V4 ? &p->default_v4 : &p->default_v6;
	struct walk W = {
		.A = A,
		.F = F,
		.recs = recs,
		.bits = bits,
		.rows = malloc((size_t)(bits + 2) * width * sizeof(struct pair)),
		.lv = calloc(bits + 2, sizeof(struct level)),
	};

	if (!W.rows || !W.lv) {
		free(W.rows);
		free(W.lv);
		return -ENOMEM;
	}
	for (uint32_t c = 0; c < width; c++)
		W.rows[c] = (struct pair){
			.best = { 0,
				  family == SN_FAMILY_V4 ? SN_RULE_DEFAULT_V4
							 : SN_RULE_DEFAULT_V6,
				  AN_NO_G, def->verdict },
			.second = { 0, NO_RULE, AN_NO_G, 0 },
		};

	int depth = 0;
	const struct an_rec *prev = NULL;
	unsigned prev_tiers = 0;

	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && an_same(&recs[j], &recs[i]))
			j++;
		while (depth >= 1 &&
		       !an_contains(F, &W.lv[depth].node, &recs[i]))
			pop(&W, depth--);
		depth++;

		const unsigned len = an_len(F, &recs[i]);

		W.lv[depth] = (struct level){
			.node = recs[i],
			.begin = i,
			.end = j,
			.rem_m1 = size_m1(bits, len),
		};

		struct pair *row = &W.rows[(size_t)depth * width];
		unsigned tiers = 0;

		memcpy(row, row - width, width * sizeof(*row));
		for (size_t k = i; k < j; k++) {
			uint32_t r = recs[k].rule;
			const struct sn_rule *rule = &p->rules[r];
			const int8_t *spec = &A->spec[(size_t)r * width];

			tiers |= 1u << (rule->tier ? 1 : 0);
			for (uint32_t c = 0; c < width; c++) {
				if (spec[c] < 0)
					continue;
				struct cand cd = {
					cand_key(rule->tier, (int)len, spec[c]),
					rule->id, recs[k].g, rule->verdict
				};

				offer(&row[c], &cd);
			}
		}
		mark_shared(&W, recs, i, j, prev, prev_tiers);
		prev = &recs[i];
		prev_tiers = tiers;
		i = j;
	}
	while (depth >= 1)
		pop(&W, depth--);
	free(W.rows);
	free(W.lv);
	return 0;
}

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

/* "rule 'block from 10.0.0.0/8' (10.0.0.0/8)": the prefix helps when the
 * source came from a set or a list. */
static void note_rule_at(struct an *A, struct sn_diag *g, uint32_t src_g,
			 const char *what)
{
	const struct sn_rule *r = &A->p->rules[an_rule_of(A, src_g)];
	char pfx[SN_PREFIX_STRLEN];

	sn_prefix_format(an_prefix(A, src_g), pfx, sizeof(pfx));
	sn_diag_note(A->d, g, an_loc(A, src_g), "'%s' %s (source %s)",
		     r->text, what, pfx);
}

static void note_default(struct an *A, struct sn_diag *g, uint32_t id)
{
	const struct sn_default *def = id == SN_RULE_DEFAULT_V4
					       ? &A->p->default_v4
					       : &A->p->default_v6;
	const char *fam = id == SN_RULE_DEFAULT_V4 ? "ipv4" : "ipv6";

	if (def->written)
		sn_diag_note(A->d, g, def->loc,
			     "the default (%s %s) would decide them instead",
			     fam, verdict_word(def->verdict));
	else
		sn_diag_note(A->d, g, (struct sn_loc){ 0 },
			     "the implicit default (%s %s) would decide them "
			     "instead",
			     fam, verdict_word(def->verdict));
}

void an_rules_report(struct an *A)
{
	const struct sn_policy *p = A->p;

	for (size_t r = 0; r < p->n_rules; r++) {
		const struct sn_rule *rule = &p->rules[r];
		const struct an_rule *ar = &A->rules[r];
		struct sn_diag *g;

		if (!ar->decides) {
			g = sn_diag_add(A->d, SN_SEV_WARNING, "W001", rule->loc,
					"rule '%s' never decides a packet: a "
					"more specific or overriding rule wins "
					"wherever it matches",
					rule->text);
			if (ar->has_witness && ar->witness_g != AN_NO_G)
				note_rule_at(A, g, ar->witness_g,
					     "wins instead, for example");
			sn_diag_hint(A->d, g,
				     "remove it, or make it more specific "
				     "than the rule that wins");
		} else if (!ar->needed) {
			g = sn_diag_add(A->d, SN_SEV_WARNING, "W002", rule->loc,
					"rule '%s' is redundant: every packet it "
					"decides gets the same verdict (%s) "
					"without it",
					rule->text, verdict_word(rule->verdict));
			if (ar->takeover_id >= SN_RULE_FIRST &&
			    ar->takeover_g != AN_NO_G)
				note_rule_at(A, g, ar->takeover_g,
					     "would decide them instead");
			else
				note_default(A, g, ar->takeover_id);
			sn_diag_hint(A->d, g,
				     "remove it, unless its own counter is "
				     "wanted");
		}
	}
}

/*
 * Lint of each rule's own sources, on its prefixes in (address, length)
 * order: W003 duplicates, W004 prefixes inside another source of the same
 * rule, W005 sibling pairs that form their parent, and W006 rules that
 * differ only in their ports.
 *
 * Sorted, a rule's prefixes are its containment tree in depth-first
 * order: a duplicate is equal to the top of the ancestor stack, a
 * contained prefix has an ancestor on it, and two maximal prefixes that
 * are siblings are next to each other.  One linear pass per rule.
 *
 * A list of a million entries can hold a million findings, so W003/W004
 * show the first max_per_rule per rule and then one "... and K more".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "analyze_int.h"

static bool same_loc(struct sn_loc a, struct sn_loc b)
{
	return a.line == b.line && a.col == b.col &&
	       (a.file == b.file || (a.file && b.file && !strcmp(a.file, b.file)));
}

static void fmt(const struct an *A, uint32_t g, char *buf)
{
	sn_prefix_format(an_prefix(A, g), buf, SN_PREFIX_STRLEN);
}

static void duplicate(struct an *A, uint32_t r, const struct an_rec *first,
		      const struct an_rec *again)
{
	struct an_rule *ar = &A->rules[r];
	struct sn_loc l1 = an_loc(A, first->g), l2 = an_loc(A, again->g);
	char pfx[SN_PREFIX_STRLEN];

	/* One written prefix reached twice through names is not a
	 * duplicate the user can remove. */
	if (same_loc(l1, l2))
		return;
	if (++ar->n_dup > A->max_per_rule)
		return;
	fmt(A, again->g, pfx);

	struct sn_diag *g = sn_diag_add(A->d, SN_SEV_WARNING, "W003", l2,
					"%s is already a source of rule '%s'",
					pfx, A->p->rules[r].text);

	sn_diag_note(A->d, g, l1, "%s first appears here", pfx);
	sn_diag_note(A->d, g, A->p->rules[r].loc, "in this rule");
}

static void contained(struct an *A, uint32_t r, const struct an_rec *outer,
		      const struct an_rec *inner)
{
	struct an_rule *ar = &A->rules[r];
	char in[SN_PREFIX_STRLEN], out[SN_PREFIX_STRLEN];

	if (++ar->n_contained > A->max_per_rule)
		return;
	fmt(A, inner->g, in);
	fmt(A, outer->g, out);

	struct sn_diag *g = sn_diag_add(A->d, SN_SEV_WARNING, "W004",
					an_loc(A, inner->g),
					"%s is inside %s, another source of "
					"rule '%s'",
					in, out, A->p->rules[r].text);

	sn_diag_note(A->d, g, an_loc(A, outer->g), "%s is here", out);
	sn_diag_hint(A->d, g,
		     "the rule matches %s already; the longer prefix only "
		     "raises its precedence there (SPEC.md 2.1) - drop it "
		     "unless that is intended",
		     in);
}

/* Are a and b (a first) the two halves of one parent prefix? */
static bool siblings(const struct an_fam *F, const struct an_rec *a,
		     const struct an_rec *b)
{
	uint64_t ah, al, bh, bl;
	unsigned la, lb;

	an_words(F, a, &ah, &al, &la);
	an_words(F, b, &bh, &bl, &lb);
	if (la != lb || la == 0)
		return false;
	unsigned bit = la - 1; /* the bit that tells them apart */
	uint64_t dh = ah ^ bh, dl = al ^ bl;

	if (bit < 64)
		return dl == 0 && dh == (1ull << (63 - bit)) && !(ah & dh);
	return dh == 0 && dl == (1ull << (127 - bit)) && !(al & dl);
}

/* Order-sensitive hash of a rule's distinct prefixes (both families). */
static uint64_t mix(const struct an_fam *F, uint64_t h, const struct an_rec *x)
{
	uint64_t hi, lo;
	unsigned len;

	an_words(F, x, &hi, &lo, &len);
	h ^= hi;
	h *= 0x9e3779b97f4a7c15ull;
	h ^= lo + len + ((uint64_t)F->family << 8);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 32);
}

/* Longest chain of nested prefixes: /0 to /128. */
#define MAX_NEST 129

static void lint_rule(struct an *A, const struct an_fam *F, uint32_t r,
		      const struct an_rec *v, size_t n)
{
	struct an_rule *ar = &A->rules[r];
	const struct an_rec *stack[MAX_NEST];
	const struct an_rec *prev_max = NULL; /* pairing candidate */
	int top = 0;

	for (size_t i = 0; i < n; i++) {
		const struct an_rec *x = &v[i];

		while (top && !an_contains(F, stack[top - 1], x))
			top--;
		if (top && an_same(stack[top - 1], x)) {
			duplicate(A, r, stack[top - 1], x);
			continue;
		}
		ar->src_hash = mix(F, ar->src_hash, x);
		ar->n_distinct++;
		if (top) {
			contained(A, r, stack[top - 1], x);
		} else if (prev_max && siblings(F, prev_max, x) &&
			   !(an_flags(prev_max) & (AN_SHARED | AN_PARENT_SHARED)) &&
			   !(an_flags(x) & AN_SHARED)) {
			if (ar->n_pairs++ == 0) {
				ar->pair_g[0] = prev_max->g;
				ar->pair_g[1] = x->g;
			}
			prev_max = NULL;
		} else {
			prev_max = x;
		}
		stack[top++] = x;
	}
}

void an_sources_family(struct an *A, const struct an_fam *F,
		       const struct an_rec *recs, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t r = recs[i].rule;
		size_t j = i + 1;

		while (j < n && recs[j].rule == r)
			j++;
		lint_rule(A, F, r, &recs[i], j - i);
		i = j;
	}
}

static void report_pairs(struct an *A, uint32_t r)
{
	const struct an_rule *ar = &A->rules[r];
	struct sn_prefix parent = *an_prefix(A, ar->pair_g[0]);
	char a[SN_PREFIX_STRLEN], b[SN_PREFIX_STRLEN], pp[SN_PREFIX_STRLEN];

	parent.len--;
	sn_prefix_mask(&parent);
	fmt(A, ar->pair_g[0], a);
	fmt(A, ar->pair_g[1], b);
	sn_prefix_format(&parent, pp, sizeof(pp));

	struct sn_diag *g = sn_diag_add(
		A->d, SN_SEV_NOTE, "W005", A->p->rules[r].loc,
		"rule '%s' has %u pair%s of sibling prefixes that could each "
		"be one prefix, e.g. %s and %s are %s",
		A->p->rules[r].text, ar->n_pairs, ar->n_pairs == 1 ? "" : "s",
		a, b, pp);

	sn_diag_note(A->d, g, an_loc(A, ar->pair_g[0]), "%s is here", a);
	sn_diag_note(A->d, g, an_loc(A, ar->pair_g[1]), "%s is here", b);
	sn_diag_hint(A->d, g,
		     "write %s instead: same verdicts (no other rule names "
		     "these prefixes), fewer LPM entries",
		     pp);
}

static void report_more(struct an *A, uint32_t r)
{
	const struct an_rule *ar = &A->rules[r];
	const struct sn_rule *rule = &A->p->rules[r];

	if (ar->n_dup > A->max_per_rule)
		sn_diag_add(A->d, SN_SEV_WARNING, "W003", rule->loc,
			    "... and %u more duplicate prefixes in the sources "
			    "of rule '%s'",
			    ar->n_dup - A->max_per_rule, rule->text);
	if (ar->n_contained > A->max_per_rule)
		sn_diag_add(A->d, SN_SEV_WARNING, "W004", rule->loc,
			    "... and %u more sources inside other sources of "
			    "rule '%s'",
			    ar->n_contained - A->max_per_rule, rule->text);
}

/* W006 order: rules that could merge become neighbours. */
struct twin_key {
	uint64_t hash;
	uint32_t n_distinct;
	int16_t proto;
	uint8_t tier, verdict;
	uint32_t r;
};

static int twin_cmp(const void *pa, const void *pb)
{
	const struct twin_key *a = pa, *b = pb;

	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	if (a->n_distinct != b->n_distinct)
		return a->n_distinct < b->n_distinct ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	if (a->tier != b->tier)
		return a->tier < b->tier ? -1 : 1;
	if (a->verdict != b->verdict)
		return a->verdict < b->verdict ? -1 : 1;
	return a->r < b->r ? -1 : a->r > b->r;
}

static bool twins(const struct twin_key *a, const struct twin_key *b)
{
	return a->hash == b->hash && a->n_distinct == b->n_distinct &&
	       a->proto == b->proto && a->tier == b->tier &&
	       a->verdict == b->verdict;
}

/*
 * Rules with the same sources (as a set of prefixes, compared by a 64-bit
 * hash), tier, verdict and protocol that differ only in ports decide the
 * same packets as one rule with all their ports: each port's most specific
 * range still counts (SPEC.md 2.1).  One note per group.
 */
static int report_twins(struct an *A)
{
	const struct sn_policy *p = A->p;
	size_t n = 0;

	for (size_t r = 0; r < p->n_rules; r++)
		n += p->rules[r].n_ports > 0;
	if (n < 2)
		return 0;

	struct twin_key *k = malloc(n * sizeof(*k));

	if (!k)
		return -ENOMEM;
	n = 0;
	for (size_t r = 0; r < p->n_rules; r++) {
		const struct sn_rule *rule = &p->rules[r];

		if (rule->n_ports)
			k[n++] = (struct twin_key){
				.hash = A->rules[r].src_hash,
				.n_distinct = A->rules[r].n_distinct,
				.proto = rule->proto,
				.tier = rule->tier,
				.verdict = rule->verdict,
				.r = (uint32_t)r,
			};
	}
	qsort(k, n, sizeof(*k), twin_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && twins(&k[i], &k[j]))
			j++;
		if (j - i > 1) {
			const struct sn_rule *first = &p->rules[k[i].r];
			const struct sn_rule *second = &p->rules[k[i + 1].r];
			struct sn_diag *g;

			if (j - i > 2)
				g = sn_diag_add(A->d, SN_SEV_NOTE, "W006",
						second->loc,
						"rule '%s' differs from '%s' "
						"only in its ports (%zu rules "
						"in all)",
						second->text, first->text,
						j - i);
			else
				g = sn_diag_add(A->d, SN_SEV_NOTE, "W006",
						second->loc,
						"rule '%s' differs from '%s' "
						"only in its ports",
						second->text, first->text);
			sn_diag_note(A->d, g, first->loc, "'%s' is here",
				     first->text);
			sn_diag_hint(A->d, g,
				     "one rule with all their ports decides "
				     "the same; separate rules only keep "
				     "separate counters");
		}
		i = j;
	}
	free(k);
	return 0;
}

int an_sources_report(struct an *A)
{
	for (size_t r = 0; r < A->p->n_rules; r++) {
		report_more(A, (uint32_t)r);
		if (A->rules[r].n_pairs)
			report_pairs(A, (uint32_t)r);
	}
	return report_twins(A);
}

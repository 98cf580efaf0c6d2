/*
 * Whole-policy checks of limit rules and syncookies statements, run after
 * every statement is resolved (names may be used before definition, so
 * only then are all prefixes and ports known).
 *
 * Limit rules follow the precedence of SPEC.md 2.1 without the `always`
 * tier: the most specific source prefix, then the most specific L4 match.
 * Two limit rules that name the same source prefix with equally specific,
 * overlapping L4 matches would leave the bucket a packet lands in
 * undefined when their parameters differ: that is E048, like E010 for
 * verdicts.  Two limit rules with the same identity (same match written
 * the same way) would share rate-limit state after a reload: also E048.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "sema_lang.h"

/* Reports are bounded: a big list named by two rules conflicts on every
 * prefix, and one note per rule pair says it all. */
#define MAX_PAIR_REPORTS 64

struct lentry {
	const struct sn_prefix *prefix;
	uint32_t limit;
	uint32_t src;
};

static int lentry_cmp(const void *pa, const void *pb)
{
	const struct lentry *a = pa, *b = pb;
	int c = sn_prefix_cmp(a->prefix, b->prefix);

	if (c)
		return c;
	if (a->limit != b->limit)
		return a->limit < b->limit ? -1 : 1;
	return a->src < b->src ? -1 : a->src > b->src;
}

static bool is_single(const struct sn_port_range *r)
{
	return r->lo == r->hi;
}

static bool has_single(const struct sn_limit *l, uint32_t port)
{
	for (size_t i = 0; i < l->n_ports; i++)
		if (is_single(&l->ports[i]) && l->ports[i].lo == port)
			return true;
	return false;
}

/*
 * Is there a port in lo..hi where neither rule has a single-port entry?
 * There both rules match with range specificity.  Bounded by the number
 * of single ports the rules list, not by the width of the range.
 */
static bool uncovered_port(const struct sn_limit *a, const struct sn_limit *b,
			   uint32_t lo, uint32_t hi)
{
	for (uint32_t p = lo; p <= hi; p++) {
		if (!has_single(a, p) && !has_single(b, p))
			return true;
		/* each step past lo needs a single entry: at most
		 * n_ports(a) + n_ports(b) steps */
	}
	return false;
}

/* Do the L4 matches overlap with equal specificity for some packet? */
static bool l4_tie(const struct sn_limit *a, const struct sn_limit *b)
{
	if (a->proto != b->proto)
		return false; /* any vs a protocol, or two protocols */
	if (!a->n_ports || !b->n_ports)
		return !a->n_ports && !b->n_ports;
	for (size_t i = 0; i < a->n_ports; i++) {
		for (size_t j = 0; j < b->n_ports; j++) {
			const struct sn_port_range *x = &a->ports[i];
			const struct sn_port_range *y = &b->ports[j];
			uint32_t lo = x->lo > y->lo ? x->lo : y->lo;
			uint32_t hi = x->hi < y->hi ? x->hi : y->hi;

			if (lo > hi || is_single(x) != is_single(y))
				continue;
			if (is_single(x) || uncovered_port(a, b, lo, hi))
				return true;
		}
	}
	return false;
}

static bool same_params(const struct sn_limit *a, const struct sn_limit *b)
{
	return sn_rate_equal(&a->rate, &b->rate) && a->burst == b->burst &&
	       a->key_v4 == b->key_v4 && a->key_v6 == b->key_v6 &&
	       a->block_for == b->block_for;
}

struct pairs {
	uint32_t v[MAX_PAIR_REPORTS][2];
	size_t n;
};

/* false when the pair was reported already or the report cap is hit. */
static bool pair_new(struct pairs *p, uint32_t a, uint32_t b)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i][0] == a && p->v[i][1] == b)
			return false;
	if (p->n == MAX_PAIR_REPORTS)
		return false;
	p->v[p->n][0] = a;
	p->v[p->n][1] = b;
	p->n++;
	return true;
}

static void check_identities(struct sn_diags *d, const struct sn_policy *p,
			     uint32_t *order, struct pairs *seen)
{
	for (size_t i = 0; i < p->n_limits; i++)
		order[i] = (uint32_t)i;
	/* insertion sort by (identity, id): n_limits is small in practice,
	 * and stays correct when it is not */
	for (size_t i = 1; i < p->n_limits; i++) {
		uint32_t x = order[i];
		size_t j = i;

		while (j > 0 && p->limits[order[j - 1]].identity >
					p->limits[x].identity) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = x;
	}
	for (size_t i = 1; i < p->n_limits; i++) {
		const struct sn_limit *a = &p->limits[order[i - 1]];
		const struct sn_limit *b = &p->limits[order[i]];

		if (a->identity != b->identity)
			continue;
		pair_new(seen, a->id, b->id);
		struct sn_diag *g = sn_diag_add(d, SN_SEV_ERROR, "E048", b->loc,
			"limit rule '%s' repeats the match of '%s'", b->text,
			a->text);

		sn_diag_note(d, g, a->loc, "the first limit rule is here");
		sn_diag_hint(d, g, "one limit rule per match: merge them (a "
				   "limit rule's identity is its match, so both "
				   "would share rate-limit state)");
	}
}

int sn_limits_check(struct sn_diags *d, const struct sn_policy *p)
{
	struct lentry *v;
	uint32_t *order;
	struct pairs *seen;
	size_t n = 0, k = 0;

	if (p->n_limits < 2)
		return 0;
	for (size_t i = 0; i < p->n_limits; i++)
		n += p->limits[i].n_srcs;
	v = calloc(n, sizeof(*v));
	order = calloc(p->n_limits, sizeof(*order));
	seen = calloc(1, sizeof(*seen));
	if (!v || !order || !seen) {
		free(v);
		free(order);
		free(seen);
		return -ENOMEM;
	}
	check_identities(d, p, order, seen);
	for (size_t i = 0; i < p->n_limits; i++)
		for (size_t j = 0; j < p->limits[i].n_srcs; j++)
			v[k++] = (struct lentry){ &p->limits[i].srcs[j].prefix,
						  (uint32_t)i, (uint32_t)j };
	qsort(v, n, sizeof(*v), lentry_cmp);
	for (size_t lo = 0, hi; lo < n; lo = hi) {
		hi = lo + 1;
		while (hi < n && !sn_prefix_cmp(v[lo].prefix, v[hi].prefix))
			hi++;
		for (size_t i = lo; i < hi; i++) {
			for (size_t j = i + 1; j < hi; j++) {
				const struct sn_limit *a = &p->limits[v[i].limit];
				const struct sn_limit *b = &p->limits[v[j].limit];

				if (a == b || same_params(a, b) ||
				    !l4_tie(a, b) || !pair_new(seen, a->id, b->id))
					continue;
				struct sn_diag *g = sn_diag_add(d,
					SN_SEV_ERROR, "E048",
					b->srcs[v[j].src].loc, "limit rule '%s' "
					"conflicts with '%s': same source "
					"prefix, equally specific port match, "
					"different parameters", b->text, a->text);

				sn_diag_note(d, g, a->srcs[v[i].src].loc,
					     "the other limit rule matches the "
					     "same packets here");
				sn_diag_hint(d, g, "make one rule more specific "
					     "(longer prefix or a port), or "
					     "give both the same parameters");
			}
		}
	}
	free(v);
	free(order);
	free(seen);
	return 0;
}

/* ---- syncookies ------------------------------------------------------------ */

struct pentry {
	uint16_t lo, hi;
	uint32_t stmt;
	struct sn_loc loc;
};

static int pentry_cmp(const void *pa, const void *pb)
{
	const struct pentry *a = pa, *b = pb;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	if (a->stmt != b->stmt)
		return a->stmt < b->stmt ? -1 : 1;
	return a->hi < b->hi ? -1 : a->hi > b->hi;
}

static void port_clash(struct sn_diags *d, const struct pentry *later,
		       const struct pentry *first)
{
	const struct pentry *x = later->stmt > first->stmt ? later : first;
	const struct pentry *y = later->stmt > first->stmt ? first : later;
	uint16_t port = later->lo > first->lo ? later->lo : first->lo;
	struct sn_diag *g = sn_diag_add(d, SN_SEV_ERROR, "E047", x->loc,
		"port %u is already in another syncookies statement", port);

	sn_diag_note(d, g, y->loc, "the other syncookies statement names it "
			       "here");
	sn_diag_hint(d, g, "each port has one SYN-rate threshold: name it "
			   "in one statement");
}

/*
 * Sweep the ranges in port order, remembering the range reaching furthest
 * and the one reaching furthest from any other statement: a range that
 * starts before either ends overlaps it.
 */
int sn_syncookies_check(struct sn_diags *d, const struct sn_policy *p)
{
	struct pentry *v, best = { 0 }, other = { 0 };
	bool have_best = false, have_other = false;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < p->n_syncookies; i++)
		n += p->syncookies[i].n_ports;
	if (p->n_syncookies < 2 || n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_syncookies; i++)
		for (size_t j = 0; j < p->syncookies[i].n_ports; j++) {
			const struct sn_port_range *r = &p->syncookies[i].ports[j];

			v[k++] = (struct pentry){ r->lo, r->hi, (uint32_t)i,
						  r->loc };
		}
	qsort(v, n, sizeof(*v), pentry_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct pentry *e = &v[i];

		if (have_best && e->stmt != best.stmt && e->lo <= best.hi)
			port_clash(d, e, &best);
		else if (have_other && e->stmt == best.stmt &&
			 e->lo <= other.hi)
			port_clash(d, e, &other);
		if (!have_best || e->hi > best.hi) {
			if (have_best && best.stmt != e->stmt) {
				other = best;
				have_other = true;
			}
			best = *e;
			have_best = true;
		} else if (e->stmt != best.stmt &&
			   (!have_other || e->hi > other.hi)) {
			other = *e;
			have_other = true;
		}
	}
	free(v);
	return 0;
}

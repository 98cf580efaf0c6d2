/*
 * Policy analysis, the driver: capacity checks against the data plane's
 * map sizes, and the shared preparation of the lint passes (per-rule L4
 * match table, one sort of each family's source prefixes).
 *
 * The lint passes see a policy of a million list entries, so the sort is
 * a radix sort of compact records (a comparison sort through qsort and
 * memcmp costs several times more), and every later step is linear.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"
#include "l4class.h"

/* ---- capacity ----------------------------------------------------------- */

struct cap_check {
	const char *what;
	uint64_t used, cap;
	const char *hint;
};

static int check_capacity(struct an *A, const struct sn_analysis_opts *o)
{
	const struct sn_image *img = A->img;
	/* The whole policy: named by its main file, without a line. */
	struct sn_loc where = { .file = A->p->main_file };
	const struct cap_check checks[] = {
		{ "IPv4 LPM entries", img->n_v4,
		  o && o->cap_lpm_v4 ? o->cap_lpm_v4 : SN_CAP_LPM_V4,
		  "aggregate IPv4 prefixes, or raise the map size" },
		{ "IPv6 LPM entries", img->n_v6,
		  o && o->cap_lpm_v6 ? o->cap_lpm_v6 : SN_CAP_LPM_V6,
		  "aggregate IPv6 prefixes, or raise the map size" },
		{ "decision-table entries (source classes x L4 stride)",
		  (uint64_t)img->n_classes * img->constants.l4_stride,
		  o && o->cap_decisions ? o->cap_decisions : SN_CAP_DECISIONS,
		  "fewer distinct port ranges, or fewer distinct combinations "
		  "of overlapping prefixes" },
		{ "rule ids (counters)", img->n_rules,
		  o && o->cap_rules ? o->cap_rules : SN_CAP_RULES,
		  "merge rules that share sources and verdict" },
	};
	int rc = 0;

	if (where.file && !where.file[0])
		where.file = NULL;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		const struct cap_check *c = &checks[i];
		struct sn_diag *g;

		if (c->used > c->cap) {
			g = sn_diag_add(A->d, SN_SEV_ERROR, "E031", where,
					"policy needs %llu %s, the data plane "
					"holds %llu",
					(unsigned long long)c->used, c->what,
					(unsigned long long)c->cap);
			rc = -EINVAL;
		} else if (c->used * 5 >= c->cap * 4 && c->used) {
			/* 80%: room for the next list update is running out. */
			g = sn_diag_add(A->d, SN_SEV_WARNING, "W007", where,
					"policy uses %llu of %llu %s (%llu%%)",
					(unsigned long long)c->used,
					(unsigned long long)c->cap, c->what,
					(unsigned long long)(c->used * 100 / c->cap));
		} else {
			continue;
		}
		sn_diag_hint(A->d, g, "%s", c->hint);
	}
	return rc;
}

/* ---- sorting ------------------------------------------------------------ */

/*
 * IPv4 (the million-entry lists): the id (address << 8 | length) is 40
 * bits at the top of the key, so the records sort in three stable 14-bit
 * passes.  Records start in source order, so equal prefixes stay in rule
 * order (the order ties are credited in).
 */
#define V4_DIGIT_BITS 14
#define V4_PASSES 3 /* 42 bits >= 40 */

/* Stable merge of the sorted runs v[b[k]..b[k+1]), pairwise until one. */
static struct an_rec *merge_runs(struct an_rec *v, struct an_rec *tmp,
				 size_t *b, size_t runs)
{
	while (runs > 1) {
		size_t out = 0, k;

		for (k = 0; k + 1 < runs; k += 2) {
			size_t i = b[k], j = b[k + 1], e = b[k + 2], o = b[k];

			while (i < b[k + 1] && j < e)
				tmp[o++] = v[j].key < v[i].key ? v[j++] : v[i++];
			while (i < b[k + 1])
				tmp[o++] = v[i++];
			while (j < e)
				tmp[o++] = v[j++];
			b[out++] = b[k];
		}
		if (k < runs) { /* an odd run out: copy it along */
			memcpy(&tmp[b[k]], &v[b[k]], (b[k + 1] - b[k]) * sizeof(*v));
			b[out++] = b[k];
		}
		b[out] = b[runs];
		runs = out;

		struct an_rec *t = v;

		v = tmp;
		tmp = t;
	}
	return v;
}

#define MAX_MERGE_RUNS 16

static int sort_v4(struct an_rec *v, struct an_rec *tmp, size_t n,
		   struct an_rec **out)
{
	const size_t nb = (size_t)1 << V4_DIGIT_BITS;
	size_t b[MAX_MERGE_RUNS + 1] = { 0 }, runs = 1;

	/*
	 * Published lists are sorted already, so the records are a few
	 * sorted runs (one per list): merging them reads the data once or
	 * twice, where the radix sort scatters it three times.
	 */
	for (size_t i = 1; i < n && runs <= MAX_MERGE_RUNS; i++)
		if (v[i].key < v[i - 1].key && runs++ < MAX_MERGE_RUNS)
			b[runs - 1] = i;
	if (runs <= MAX_MERGE_RUNS) {
		b[runs] = n;
		*out = merge_runs(v, tmp, b, runs);
		return 0;
	}

	size_t *count = calloc(V4_PASSES * nb, sizeof(*count));

	if (!count)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < V4_PASSES; d++)
			count[d * nb + ((v[i].key >> (AN_ID_SHIFT + d * V4_DIGIT_BITS)) &
					(nb - 1))]++;
	for (int d = 0; d < V4_PASSES; d++) {
		const int shift = AN_ID_SHIFT + d * V4_DIGIT_BITS;
		size_t *c = &count[d * nb], sum = 0;

		if (c[(v[0].key >> shift) & (nb - 1)] == n)
			continue; /* every record has this digit */
		for (size_t b = 0; b < nb; b++) {
			size_t k = c[b];

			c[b] = sum;
			sum += k;
		}
		for (size_t i = 0; i < n; i++)
			tmp[c[(v[i].key >> shift) & (nb - 1)]++] = v[i];
		struct an_rec *t = v;

		v = tmp;
		tmp = t;
	}
	free(count);
	*out = v;
	return 0;
}

/* An IPv6 source before ranking. */
struct v6_rec {
	uint64_t hi, lo;
	uint32_t g, rule;
	uint8_t len;
};

#define N_DIGITS 17 /* length, then 16 address bytes, least significant first */

static inline unsigned digit(const struct v6_rec *r, int d)
{
	if (d == 0)
		return r->len;
	if (d <= 8)
		return (unsigned)(r->lo >> ((d - 1) * 8)) & 0xff;
	return (unsigned)(r->hi >> ((d - 9) * 8)) & 0xff;
}

/*
 * IPv6: stable LSD radix sort by (hi, lo, len), one byte per pass,
 * skipping the bytes every record shares (a list inside one /32 costs a
 * dozen passes, not 17).
 */
static struct v6_rec *sort_v6(struct v6_rec *v, struct v6_rec *tmp, size_t n)
{
	uint64_t dh = 0, dl = 0;
	unsigned dlen = 0;
	size_t count[256];

	for (size_t i = 1; i < n; i++) {
		dh |= v[i].hi ^ v[0].hi;
		dl |= v[i].lo ^ v[0].lo;
		dlen |= v[i].len ^ v[0].len;
	}
	for (int d = 0; d < N_DIGITS; d++) {
		bool varies = d == 0	? dlen != 0
			      : d <= 8 ? ((dl >> ((d - 1) * 8)) & 0xff) != 0
				       : ((dh >> ((d - 9) * 8)) & 0xff) != 0;
		size_t sum = 0;

		if (!varies)
			continue;
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[digit(&v[i], d)]++;
		for (int b = 0; b < 256; b++) {
			size_t k = count[b];

			count[b] = sum;
			sum += k;
		}
		for (size_t i = 0; i < n; i++)
			tmp[count[digit(&v[i], d)]++] = v[i];
		struct v6_rec *t = v;

		v = tmp;
		tmp = t;
	}
	return v;
}

static uint64_t load_word(const uint8_t *b)
{
	uint64_t w = 0;

	for (int i = 0; i < 8; i++)
		w = w << 8 | b[i];
	return w;
}

/* IPv6 records, sorted, with the distinct prefixes in *table by id. */
static int sorted_v6(const struct an *A, struct an_rec *recs, size_t n,
		     struct an_v6 **table)
{
	const struct sn_policy *p = A->p;
	struct v6_rec *v = malloc(n * sizeof(*v));
	struct v6_rec *tmp = malloc(n * sizeof(*tmp));
	struct an_v6 *t = malloc(n * sizeof(*t));
	size_t k = 0;

	if (!v || !tmp || !t) {
		free(v);
		free(tmp);
		free(t);
		return -ENOMEM;
	}
	for (size_t r = 0; r < p->n_rules; r++) {
		const struct sn_src *src = p->rules[r].srcs;

		for (size_t j = 0; j < p->rules[r].n_srcs; j++) {
			const struct sn_prefix *x = &src[j].prefix;

			if (x->family == SN_FAMILY_V6)
				v[k++] = (struct v6_rec){
					.hi = load_word(x->addr),
					.lo = load_word(x->addr + 8),
					.g = A->src_base[r] + (uint32_t)j,
					.rule = (uint32_t)r,
					.len = x->len,
				};
		}
	}
	struct v6_rec *s = sort_v6(v, tmp, n);
	uint64_t id = 0;

	for (size_t i = 0; i < n; i++) {
		if (i && (s[i].hi != s[i - 1].hi || s[i].lo != s[i - 1].lo ||
			  s[i].len != s[i - 1].len))
			id++;
		t[id] = (struct an_v6){ s[i].hi, s[i].lo, s[i].len };
		recs[i] = (struct an_rec){ .key = id << AN_ID_SHIFT,
					   .g = s[i].g, .rule = s[i].rule };
	}
	free(v);
	free(tmp);
	*table = t;
	return 0;
}

/*
 * The family's records sorted by (address, length, source order) in
 * *out, a second buffer of the same size in *spare (reused, so its pages
 * are already mapped), and for IPv6 the prefix table.
 */
static int sorted_family(const struct an *A, int family, struct an_rec **out,
			 struct an_rec **spare, struct an_v6 **v6, size_t *n_out)
{
	const struct sn_policy *p = A->p;
	size_t n = family == SN_FAMILY_V4 ? A->n_v4 : A->n_v6;
	int rc;

	*out = *spare = NULL;
	*v6 = NULL;
	*n_out = 0;
	if (!n)
		return 0;

	struct an_rec *a = malloc(n * sizeof(*a));
	struct an_rec *b = malloc(n * sizeof(*b));

	if (!a || !b) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	if (family == SN_FAMILY_V6) {
		rc = sorted_v6(A, a, n, v6);
	} else {
		size_t k = 0;

		for (size_t r = 0; r < p->n_rules; r++) {
			const struct sn_src *src = p->rules[r].srcs;

			for (size_t j = 0; j < p->rules[r].n_srcs; j++) {
				const struct sn_prefix *x = &src[j].prefix;

				if (x->family != SN_FAMILY_V4)
					continue;
				a[k++] = (struct an_rec){
					.key = (uint64_t)x->addr[0] << 56 |
					       (uint64_t)x->addr[1] << 48 |
					       (uint64_t)x->addr[2] << 40 |
					       (uint64_t)x->addr[3] << 32 |
					       (uint64_t)x->len << AN_ID_SHIFT,
					.g = A->src_base[r] + (uint32_t)j,
					.rule = (uint32_t)r,
				};
			}
		}
		struct an_rec *s;

		rc = sort_v4(a, b, n, &s);
		if (!rc && s != a) {
			b = a;
			a = s;
		}
	}
	if (rc) {
		free(a);
		free(b);
		return rc;
	}
	*out = a;
	*spare = b;
	*n_out = n;
	return 0;
}

/* Regroup sorted records by rule, keeping each rule's prefix order. */
static void group_by_rule(const struct an *A, const struct an_rec *in,
			  struct an_rec *out, size_t n, uint32_t *start)
{
	size_t nr = A->p->n_rules;

	memset(start, 0, (nr + 1) * sizeof(*start));
	for (size_t i = 0; i < n; i++)
		start[in[i].rule + 1]++;
	for (size_t r = 0; r < nr; r++)
		start[r + 1] += start[r];
	for (size_t i = 0; i < n; i++)
		out[start[in[i].rule]++] = in[i];
}

static bool one_rule(const struct an_rec *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (v[i].rule != v[0].rule)
			return false;
	return true;
}

static int analyze_family(struct an *A, int family)
{
	struct an_rec *sorted, *spare;
	struct an_v6 *v6;
	uint32_t *start = NULL;
	size_t n;
	int rc = sorted_family(A, family, &sorted, &spare, &v6, &n);

	if (rc || !n)
		return rc;
	const struct an_fam F = {
		.family = family,
		.bits = family == SN_FAMILY_V4 ? 32 : 128,
		.v6 = v6,
	};

	rc = an_rules_walk(A, &F, sorted, n);
	if (rc)
		goto out;
	/* One rule owning every prefix (a big list) is grouped already. */
	if (sorted[0].rule == sorted[n - 1].rule && one_rule(sorted, n)) {
		an_sources_family(A, &F, sorted, n);
		goto out;
	}
	start = malloc((A->p->n_rules + 1) * sizeof(*start));
	if (!start) {
		rc = -ENOMEM;
		goto out;
	}
	group_by_rule(A, sorted, spare, n, start);
	an_sources_family(A, &F, spare, n);
out:
	free(sorted);
	free(spare);
	free(v6);
	free(start);
	return rc;
}

uint32_t an_rule_of(const struct an *A, uint32_t g)
{
	/* The last rule whose first source index is <= g. */
	size_t lo = 0, hi = A->p->n_rules;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (A->src_base[mid] <= g)
			lo = mid;
		else
			hi = mid;
	}
	return (uint32_t)lo;
}

static int prepare(struct an *A)
{
	const struct sn_policy *p = A->p;
	const size_t nr = p->n_rules ? p->n_rules : 1;
	uint64_t total = 0;

	A->width = A->img->n_l4;
	A->spec = malloc(nr * A->width);
	A->first_class = calloc(nr, sizeof(*A->first_class));
	A->src_base = calloc(nr, sizeof(*A->src_base));
	A->rules = calloc(nr, sizeof(*A->rules));
	if (!A->spec || !A->first_class || !A->src_base || !A->rules)
		return -ENOMEM;
	for (size_t r = 0; r < p->n_rules; r++) {
		int8_t *s = &A->spec[r * A->width];

		if (total + p->rules[r].n_srcs >= UINT32_MAX)
			return -E2BIG; /* sema bounds sources far below this */
		A->src_base[r] = (uint32_t)total;
		total += p->rules[r].n_srcs;
		for (size_t j = 0; j < p->rules[r].n_srcs; j++)
			A->n_v6 += p->rules[r].srcs[j].prefix.family ==
				   SN_FAMILY_V6;
		A->first_class[r] = UINT32_MAX;
		for (uint32_t c = 0; c < A->width; c++) {
			s[c] = (int8_t)sn_l4_rule_spec(&p->rules[r],
						       &A->img->l4[c]);
			if (s[c] >= 0 && A->first_class[r] == UINT32_MAX)
				A->first_class[r] = c;
		}
		A->rules[r].witness_g = A->rules[r].takeover_g = AN_NO_G;
	}
	A->n_v4 = total - A->n_v6;
	return 0;
}

int sn_analyze(struct sn_ctx *ctx, const struct sn_policy *policy,
	       const struct sn_image *image,
	       const struct sn_analysis_opts *opts)
{
	struct an A = {
		.ctx = ctx,
		.d = &ctx->diags,
		.p = policy,
		.img = image,
		.max_per_rule = opts && opts->max_per_rule
					? opts->max_per_rule
					: SN_ANALYSIS_MAX_PER_RULE,
	};
	int rc = check_capacity(&A, opts);

	if (rc || (opts && opts->capacity_only) || !policy->n_rules)
		return rc;
	rc = prepare(&A);
	if (!rc)
		rc = analyze_family(&A, SN_FAMILY_V4);
	if (!rc)
		rc = analyze_family(&A, SN_FAMILY_V6);
	if (!rc) {
		an_rules_report(&A);
		rc = an_sources_report(&A);
	}
	if (rc == -E2BIG)
		rc = 0; /* too large to lint: nothing to say, not an error */
	free(A.spec);
	free(A.first_class);
	free(A.src_base);
	free(A.rules);
	return rc;
}

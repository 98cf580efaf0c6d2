/*
 * --plan (see plan.h): rule-level comparison and the address-space summary.
 */
#include "plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "jsonw.h"
#include "l4class.h"

/* ---- address counts ------------------------------------------------------- */

struct sn_count sn_count_prefix(unsigned len, unsigned maxlen)
{
	unsigned bits = maxlen - len;

	if (bits >= 128)
		return (struct sn_count){ 0, 1 };
	return (struct sn_count){ (unsigned __int128)1 << bits, 0 };
}

void sn_count_add(struct sn_count *a, struct sn_count b)
{
	unsigned __int128 s = a->lo + b.lo;

	a->hi += b.hi + (s < a->lo); /* carry */
	a->lo = s;
}

void sn_count_sub(struct sn_count *a, struct sn_count b)
{
	a->hi -= b.hi + (a->lo < b.lo); /* borrow */
	a->lo -= b.lo;
}

bool sn_count_is_zero(struct sn_count c)
{
	return c.lo == 0 && c.hi == 0;
}

bool sn_count_eq(struct sn_count a, struct sn_count b)
{
	return a.lo == b.lo && a.hi == b.hi;
}

void sn_count_format(struct sn_count c, bool sep, char buf[SN_COUNT_STRLEN])
{
	/* 2^128 = 10 * Q + 6 with Q = (2^128 - 1) / 10. */
	const unsigned __int128 max = ~(unsigned __int128)0;
	char rev[SN_COUNT_STRLEN];
	size_t n = 0, k = 0;

	if (c.hi) {
		unsigned r = (unsigned)(c.lo % 10) + (unsigned)(max % 10) + 1;

		/* One step by hand takes the value below 2^128. */
		rev[n++] = (char)('0' + r % 10);
		c.lo = max / 10 + c.lo / 10 + r / 10;
		c.hi = 0;
	}
	do {
		/* Digits and separators alternate 3:1 from the right. */
		if (sep && n % 4 == 3)
			rev[n++] = ',';
		rev[n++] = (char)('0' + (unsigned)(c.lo % 10));
		c.lo /= 10;
	} while (c.lo);
	while (n)
		buf[k++] = rev[--n];
	buf[k] = '\0';
}

/* ---- address-space summary ------------------------------------------------ */

/* A piece of (protocol, port) space that neither image splits further. */
struct piece {
	int16_t proto;   /* SN_PROTO_ANY: every protocol neither image names */
	bool port_proto; /* a port protocol in at least one image */
	bool noport;     /* its non-first fragments (no visible port) */
	uint16_t lo, hi; /* the port interval otherwise */
	uint32_t l4[2];  /* L4 class in the old [0] and new [1] image */
};

/* Protocol 255 is reserved: no rule names it, so it stands for "other". */
#define OTHER_PROTO 255

static bool names_proto(const struct sn_image *img, int p)
{
	return img->proto[p].l4_noport != 0 || img->proto[p].port_table != 0;
}

static uint32_t piece_class(const struct sn_image *img, const struct piece *pc)
{
	const struct sn_proto_entry *pe =
		&img->proto[pc->proto == SN_PROTO_ANY ? OTHER_PROTO : pc->proto];

	if (pc->noport || !pc->port_proto || pe->port_table == SN_PORT_TABLE_NONE)
		return pe->l4_noport;
	size_t lo = 0, hi = img->n_port_runs;

	/* Pieces refine both images' runs: the run holding lo holds hi. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct sn_port_run *r = &img->port_runs[mid];

		if (r->table < pe->port_table ||
		    (r->table == pe->port_table && r->hi < pc->lo))
			lo = mid + 1;
		else if (r->table > pe->port_table || r->lo > pc->lo)
			hi = mid;
		else
			return r->l4_class;
	}
	return pe->l4_noport;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Append the port cuts of protocol p's table in img (run starts). */
static size_t add_cuts(const struct sn_image *img, int p, uint32_t *cuts,
		       size_t n)
{
	uint32_t t = img->proto[p].port_table;

	if (t == SN_PORT_TABLE_NONE)
		return n;
	for (size_t i = 0; i < img->n_port_runs; i++)
		if (img->port_runs[i].table == t)
			cuts[n++] = img->port_runs[i].lo;
	return n;
}

/*
 * The union refinement of both images' L4 classes: "other", then every
 * protocol either image names, a port protocol split into its fragments
 * and the port intervals cut by both images' boundaries.
 */
static int build_pieces(const struct sn_image *old, const struct sn_image *new_,
			struct piece **out, size_t *n_out)
{
	size_t cap = 1 + 2 * 256 + old->n_port_runs + new_->n_port_runs, n = 0;
	struct piece *v = calloc(cap, sizeof(*v));
	uint32_t *cuts = malloc((old->n_port_runs + new_->n_port_runs + 1) *
				sizeof(*cuts));

	if (!v || !cuts) {
		free(v);
		free(cuts);
		return -ENOMEM;
	}
	v[n++] = (struct piece){ .proto = SN_PROTO_ANY };
	for (int p = 0; p < OTHER_PROTO; p++) {
		if (!names_proto(old, p) && !names_proto(new_, p))
			continue;
		if (!old->proto[p].port_table && !new_->proto[p].port_table) {
			v[n++] = (struct piece){ .proto = (int16_t)p };
			continue;
		}
		v[n++] = (struct piece){ .proto = (int16_t)p, .port_proto = true,
					 .noport = true };
		size_t nc = 0;

		cuts[nc++] = 0;
		nc = add_cuts(old, p, cuts, nc);
		nc = add_cuts(new_, p, cuts, nc);
		qsort(cuts, nc, sizeof(*cuts), cmp_u32);
		for (size_t i = 0; i < nc; i++) {
			if (i + 1 < nc && cuts[i + 1] == cuts[i])
				continue;
			size_t j = i + 1;

			while (j < nc && cuts[j] == cuts[i])
				j++;
			v[n++] = (struct piece){
				.proto = (int16_t)p, .port_proto = true,
				.lo = (uint16_t)cuts[i],
				.hi = (uint16_t)(j < nc ? cuts[j] - 1 : 65535) };
		}
	}
	free(cuts);
	for (size_t i = 0; i < n; i++) {
		v[i].l4[0] = piece_class(old, &v[i]);
		v[i].l4[1] = piece_class(new_, &v[i]);
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* A node of the merged containment tree of both images' prefixes. */
struct node {
	const struct sn_prefix *prefix;
	uint32_t cls[2];     /* source class in the old [0] and new [1] image */
	struct sn_count reach; /* its addresses no longer prefix covers */
};

static int cmp_pfx(const struct sn_prefix *a, const struct sn_prefix *b)
{
	int c = memcmp(a->addr, b->addr, 16);

	return c ? c : (int)a->len - (int)b->len;
}

static int cmp_node_class(const void *pa, const void *pb)
{
	const struct node *a = pa, *b = pb;

	if (a->cls[0] != b->cls[0])
		return a->cls[0] < b->cls[0] ? -1 : 1;
	return a->cls[1] < b->cls[1] ? -1 : a->cls[1] > b->cls[1];
}

/*
 * Walk one family: every node's reachable space (its size minus its
 * children's) has one old and one new source class, so the counts per
 * (old class, new class) pair, times the pieces, give the summary.
 * counts[dir * n_pieces + k]: dir 0 newly allowed, 1 newly blocked.
 */
static int space_family(const struct sn_image *img[2],
			const struct sn_class_prefix *const v[2],
			const size_t nv[2], unsigned maxlen,
			const struct piece *pieces, size_t n_pieces,
			struct sn_count *counts)
{
	struct node *nodes = calloc(nv[0] + nv[1] + 1, sizeof(*nodes));
	size_t stack[130], depth = 0, n = 0, i = 0, j = 0;

	if (!nodes)
		return -ENOMEM;
	while (i < nv[0] || j < nv[1]) {
		int c = i == nv[0] ? 1 : j == nv[1] ? -1
			: cmp_pfx(&v[0][i].prefix, &v[1][j].prefix);
		struct node *nd = &nodes[n];

		nd->cls[0] = nd->cls[1] = UINT32_MAX;
		if (c <= 0) {
			nd->prefix = &v[0][i].prefix;
			nd->cls[0] = v[0][i++].class_id;
		}
		if (c >= 0) {
			nd->prefix = &v[1][j].prefix;
			nd->cls[1] = v[1][j++].class_id;
		}
		nd->reach = sn_count_prefix(nd->prefix->len, maxlen);
		while (depth &&
		       !sn_prefix_contains(nodes[stack[depth - 1]].prefix,
					   nd->prefix))
			depth--;
		if (depth) {
			struct node *parent = &nodes[stack[depth - 1]];

			sn_count_sub(&parent->reach, nd->reach);
			for (int s = 0; s < 2; s++)
				if (nd->cls[s] == UINT32_MAX)
					nd->cls[s] = parent->cls[s];
		}
		/* The first node is /0, present in both images. */
		if (nd->cls[0] == UINT32_MAX || nd->cls[1] == UINT32_MAX ||
		    depth >= sizeof(stack) / sizeof(stack[0])) {
			free(nodes);
			return -EINVAL;
		}
		stack[depth++] = n++;
	}
	qsort(nodes, n, sizeof(*nodes), cmp_node_class);
	for (size_t a = 0; a < n;) {
		struct sn_count sum = { 0, 0 };
		size_t b = a;

		for (; b < n && !cmp_node_class(&nodes[a], &nodes[b]); b++)
			sn_count_add(&sum, nodes[b].reach);
		for (size_t k = 0; k < n_pieces && !sn_count_is_zero(sum); k++) {
			uint8_t vd[2];

			for (int s = 0; s < 2; s++)
				vd[s] = img[s]->decisions[(size_t)nodes[a].cls[s] *
							  img[s]->constants.l4_stride +
							  pieces[k].l4[s]].verdict;
			if (vd[0] != vd[1])
				sn_count_add(&counts[(vd[1] == SN_VERDICT_ALLOW ? 0 : 1) *
						     n_pieces + k],
					     sum);
		}
		a = b;
	}
	free(nodes);
	return 0;
}

struct lines {
	struct sn_space_line *v;
	size_t n, cap;
};

static int emit(struct lines *L, uint8_t family, uint8_t verdict,
		struct sn_count count, const char *l4)
{
	if (L->n == L->cap) {
		size_t cap = L->cap ? 2 * L->cap : 16;
		struct sn_space_line *v = realloc(L->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		L->v = v;
		L->cap = cap;
	}
	struct sn_space_line *l = &L->v[L->n++];

	*l = (struct sn_space_line){ .family = family, .verdict = verdict,
				     .count = count };
	snprintf(l->l4, sizeof(l->l4), "%s", l4);
	return 0;
}

/* Lines of one (family, direction) from its per-piece counts. */
static int emit_dir(struct lines *L, uint8_t family, uint8_t verdict,
		    const struct piece *pc, size_t n, const struct sn_count *cnt)
{
	char label[48], pb[16];
	bool all = true;
	int rc = 0;

	for (size_t k = 1; k < n; k++)
		all = all && sn_count_eq(cnt[k], cnt[0]);
	if (sn_count_is_zero(cnt[0]) && all)
		return 0;
	if (all)
		return emit(L, family, verdict, cnt[0], "any protocol");
	for (size_t k = 0; k < n && !rc;) {
		const char *p = pc[k].proto == SN_PROTO_ANY
			? "other protocols" : sn_proto_name(pc[k].proto, "any", pb, sizeof(pb));
		size_t end = k + 1;

		if (!pc[k].port_proto) {
			if (!sn_count_is_zero(cnt[k]))
				rc = emit(L, family, verdict, cnt[k], p);
			k++;
			continue;
		}
		/* A port protocol: its fragments piece, then its port pieces. */
		bool whole = true;

		while (end < n && pc[end].proto == pc[k].proto) {
			whole = whole && sn_count_eq(cnt[end], cnt[k]);
			end++;
		}
		if (whole) {
			if (!sn_count_is_zero(cnt[k]))
				rc = emit(L, family, verdict, cnt[k], p);
			k = end;
			continue;
		}
		if (!sn_count_is_zero(cnt[k])) {
			snprintf(label, sizeof(label), "%s fragments", p);
			rc = emit(L, family, verdict, cnt[k], label);
		}
		for (size_t a = k + 1; a < end && !rc;) {
			size_t b = a + 1;

			while (b < end && sn_count_eq(cnt[b], cnt[a]))
				b++;
			if (!sn_count_is_zero(cnt[a])) {
				if (pc[a].lo == pc[b - 1].hi)
					snprintf(label, sizeof(label), "%s/%u", p,
						 pc[a].lo);
				else
					snprintf(label, sizeof(label), "%s/%u-%u", p,
						 pc[a].lo, pc[b - 1].hi);
				rc = emit(L, family, verdict, cnt[a], label);
			}
			a = b;
		}
		k = end;
	}
	return rc;
}

int sn_plan_space(const struct sn_image *old, const struct sn_image *new_,
		  struct sn_space_line **out, size_t *n_out)
{
	const struct sn_image *img[2] = { old, new_ };
	struct lines L = { 0 };
	struct piece *pieces;
	size_t n_pieces;
	int rc = build_pieces(old, new_, &pieces, &n_pieces);

	*out = NULL;
	*n_out = 0;
	if (rc)
		return rc;
	struct sn_count *counts = calloc(2 * n_pieces, sizeof(*counts));

	if (!counts) {
		free(pieces);
		return -ENOMEM;
	}
	for (int f = 0; f < 2 && !rc; f++) {
		const struct sn_class_prefix *v[2] = { f ? old->v6 : old->v4,
						       f ? new_->v6 : new_->v4 };
		const size_t nv[2] = { f ? old->n_v6 : old->n_v4,
				       f ? new_->n_v6 : new_->n_v4 };
		uint8_t fam = f ? SN_FAMILY_V6 : SN_FAMILY_V4;

		memset(counts, 0, 2 * n_pieces * sizeof(*counts));
		rc = space_family(img, v, nv, f ? 128 : 32, pieces, n_pieces,
				  counts);
		if (!rc)
			rc = emit_dir(&L, fam, SN_VERDICT_ALLOW, pieces, n_pieces,
				      counts);
		if (!rc)
			rc = emit_dir(&L, fam, SN_VERDICT_BLOCK, pieces, n_pieces,
				      counts + n_pieces);
	}
	free(counts);
	free(pieces);
	if (rc) {
		free(L.v);
		return rc;
	}
	*out = L.v;
	*n_out = L.n;
	return 0;
}

/* ---- rules ------------------------------------------------------------------- */

/* A rule's identity: its text without "always " and the verdict word. */
static const char *identity(const struct sn_image_rule *r)
{
	const char *t = r->text;

	if (!strncmp(t, "always ", 7))
		t += 7;
	if (!strncmp(t, "allow", 5) || !strncmp(t, "block", 5))
		t += 5;
	return *t == ' ' ? t + 1 : t;
}

static int cmp_identity(const struct sn_image_rule *a,
			const struct sn_image_rule *b)
{
	int c = strcmp(identity(a), identity(b));

	if (c)
		return c;
	if (a->tier != b->tier)
		return a->tier < b->tier ? -1 : 1;
	return 0;
}

static int cmp_rule_ptr(const void *pa, const void *pb)
{
	const struct sn_image_rule *a = *(const struct sn_image_rule *const *)pa;
	const struct sn_image_rule *b = *(const struct sn_image_rule *const *)pb;
	int c = cmp_identity(a, b);

	return c ? c : (a->id < b->id ? -1 : a->id > b->id);
}

/* Policy rules sorted by identity, then id (so duplicates pair in order). */
static const struct sn_image_rule **sorted_rules(struct sn_arena *a,
						 const struct sn_image *img,
						 size_t *n)
{
	*n = img->n_rules > SN_RULE_FIRST ? img->n_rules - SN_RULE_FIRST : 0;
	const struct sn_image_rule **v = sn_arena_calloc(a, *n + 1, sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < *n; i++)
		v[i] = &img->rules[SN_RULE_FIRST + i];
	qsort(v, *n, sizeof(*v), cmp_rule_ptr);
	return v;
}

static int cmp_src_ptr(const void *pa, const void *pb)
{
	/* Elements of diff_sets' void pointer arrays. */
	const struct sn_src *a = *(const void *const *)pa;
	const struct sn_src *b = *(const void *const *)pb;

	return sn_prefix_cmp(&a->prefix, &b->prefix);
}

static int cmp_port_ptr(const void *pa, const void *pb)
{
	const struct sn_port_range *a = *(const void *const *)pa;
	const struct sn_port_range *b = *(const void *const *)pb;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return a->hi < b->hi ? -1 : a->hi > b->hi;
}

/*
 * Set difference of two arrays of n_a and n_b elements of size sz,
 * through sorted pointer arrays: *add gets those only in b, *del those
 * only in a.  Duplicates inside one list count once.
 */
static int diff_sets(struct sn_arena *ar, const void *a, size_t n_a,
		     const void *b, size_t n_b, size_t sz,
		     int (*cmp)(const void *, const void *), const void ***add,
		     size_t *n_add, const void ***del, size_t *n_del)
{
	const void **pa = sn_arena_calloc(ar, n_a + 1, sizeof(*pa));
	const void **pb = sn_arena_calloc(ar, n_b + 1, sizeof(*pb));
	size_t i = 0, j = 0;

	*add = sn_arena_calloc(ar, n_b + 1, sizeof(**add));
	*del = sn_arena_calloc(ar, n_a + 1, sizeof(**del));
	if (!pa || !pb || !*add || !*del)
		return -ENOMEM;
	for (size_t k = 0; k < n_a; k++)
		pa[k] = (const char *)a + k * sz;
	for (size_t k = 0; k < n_b; k++)
		pb[k] = (const char *)b + k * sz;
	qsort(pa, n_a, sizeof(*pa), cmp);
	qsort(pb, n_b, sizeof(*pb), cmp);
	*n_add = *n_del = 0;
	while (i < n_a || j < n_b) {
		int c = i == n_a ? 1 : j == n_b ? -1 : cmp(&pa[i], &pb[j]);
		const void *x = c <= 0 ? pa[i] : pb[j];

		if (c < 0)
			(*del)[(*n_del)++] = pa[i];
		else if (c > 0)
			(*add)[(*n_add)++] = pb[j];
		/* Skip every copy of x on both sides. */
		while (i < n_a && !cmp(&pa[i], &x))
			i++;
		while (j < n_b && !cmp(&pb[j], &x))
			j++;
	}
	return 0;
}

/* Typed copies of diff_sets' results (pointer types do not alias). */
#define TYPED_COPY(ar, dst, src, n)                                        \
	do {                                                               \
		(dst) = sn_arena_calloc((ar), (n) + 1, sizeof(*(dst)));    \
		if (!(dst))                                                \
			return -ENOMEM;                                    \
		for (size_t k_ = 0; k_ < (n); k_++)                        \
			(dst)[k_] = (src)[k_];                             \
	} while (0)

static int compare_entries(struct sn_arena *ar, const struct sn_rule *o,
			   const struct sn_rule *n, struct sn_rule_change *ch)
{
	const void **add, **del;
	int rc = diff_sets(ar, o->srcs, o->n_srcs, n->srcs, n->n_srcs,
			   sizeof(*o->srcs), cmp_src_ptr, &add, &ch->n_src_added,
			   &del, &ch->n_src_removed);

	if (rc)
		return rc;
	TYPED_COPY(ar, ch->src_added, add, ch->n_src_added);
	TYPED_COPY(ar, ch->src_removed, del, ch->n_src_removed);
	rc = diff_sets(ar, o->ports, o->n_ports, n->ports, n->n_ports,
		       sizeof(*o->ports), cmp_port_ptr, &add, &ch->n_port_added,
		       &del, &ch->n_port_removed);
	if (rc)
		return rc;
	TYPED_COPY(ar, ch->port_added, add, ch->n_port_added);
	TYPED_COPY(ar, ch->port_removed, del, ch->n_port_removed);
	return 0;
}

static const struct sn_rule *policy_rule(const struct sn_plan_side *s,
					 const struct sn_image_rule *r)
{
	size_t i = r->id - SN_RULE_FIRST;

	return s->policy && i < s->policy->n_rules ? &s->policy->rules[i] : NULL;
}

static int cmp_change(const void *pa, const void *pb)
{
	const struct sn_rule_change *a = pa, *b = pb;
	const struct sn_image_rule *ra = a->new_rule ? a->new_rule : a->old_rule;
	const struct sn_image_rule *rb = b->new_rule ? b->new_rule : b->old_rule;

	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	return ra->id < rb->id ? -1 : ra->id > rb->id;
}

int sn_plan_build(const struct sn_plan_side *old, const struct sn_plan_side *new_,
		  struct sn_arena *ar, struct sn_plan *plan)
{
	size_t no, nn, i = 0, j = 0;
	const struct sn_image_rule **vo = sorted_rules(ar, old->image, &no);
	const struct sn_image_rule **vn = sorted_rules(ar, new_->image, &nn);
	int rc;

	memset(plan, 0, sizeof(*plan));
	plan->entries_compared = old->policy && new_->policy;
	plan->changes = sn_arena_calloc(ar, no + nn + 1, sizeof(*plan->changes));
	if (!vo || !vn || !plan->changes)
		return -ENOMEM;
	for (int f = 0; f < 2; f++) {
		plan->old_default[f] = old->image->rules[f].verdict;
		plan->new_default[f] = new_->image->rules[f].verdict;
	}
	while (i < no || j < nn) {
		int c = i == no ? 1 : j == nn ? -1 : cmp_identity(vo[i], vn[j]);
		struct sn_rule_change ch = { 0 };

		if (c < 0) {
			ch.kind = SN_CHANGE_REMOVED;
			ch.old_rule = vo[i++];
			plan->n_removed++;
		} else if (c > 0) {
			ch.kind = SN_CHANGE_ADDED;
			ch.new_rule = vn[j++];
			plan->n_added++;
		} else {
			const struct sn_rule *po, *pn;

			ch.kind = SN_CHANGE_CHANGED;
			ch.old_rule = vo[i++];
			ch.new_rule = vn[j++];
			ch.verdict_changed = ch.old_rule->verdict != ch.new_rule->verdict;
			po = policy_rule(old, ch.old_rule);
			pn = policy_rule(new_, ch.new_rule);
			if (po && pn && (rc = compare_entries(ar, po, pn, &ch)))
				return rc;
			bool entries = ch.n_src_added || ch.n_src_removed ||
				       ch.n_port_added || ch.n_port_removed;

			plan->n_verdict += ch.verdict_changed;
			plan->n_entries += entries;
			if (!ch.verdict_changed && !entries)
				continue;
		}
		plan->changes[plan->n_changes++] = ch;
	}
	qsort(plan->changes, plan->n_changes, sizeof(*plan->changes), cmp_change);
	return sn_plan_space(old->image, new_->image, &plan->space,
			     &plan->n_space);
}

void sn_plan_free(struct sn_plan *plan)
{
	free(plan->space);
	plan->space = NULL;
	plan->n_space = 0;
}

bool sn_plan_has_changes(const struct sn_plan *plan)
{
	return plan->n_changes || plan->n_space ||
	       plan->old_default[0] != plan->new_default[0] ||
	       plan->old_default[1] != plan->new_default[1];
}

/* ---- output ------------------------------------------------------------------- */

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

static void print_loc(FILE *out, const struct sn_image_rule *r)
{
	if (r->file[0])
		fprintf(out, "   (%s:%u:%u)", r->file, r->line, r->col);
	fputc('\n', out);
}

static void print_src_list(FILE *out, char sign, const struct sn_src **v,
			   size_t n, size_t max)
{
	char buf[SN_PREFIX_STRLEN];

	for (size_t i = 0; i < n && i < max; i++) {
		sn_prefix_format(&v[i]->prefix, buf, sizeof(buf));
		fprintf(out, "        %c %s", sign, buf);
		if (v[i]->loc.file)
			fprintf(out, "   (%s:%u:%u)", v[i]->loc.file,
				v[i]->loc.line, v[i]->loc.col);
		fputc('\n', out);
	}
	if (n > max)
		fprintf(out, "        and %zu more\n", n - max);
}

static void print_port_list(FILE *out, char sign,
			    const struct sn_port_range **v, size_t n, size_t max)
{
	for (size_t i = 0; i < n && i < max; i++) {
		if (v[i]->lo == v[i]->hi)
			fprintf(out, "        %c port %u\n", sign, v[i]->lo);
		else
			fprintf(out, "        %c ports %u-%u\n", sign, v[i]->lo,
				v[i]->hi);
	}
	if (n > max)
		fprintf(out, "        and %zu more\n", n - max);
}

static void space_text(const struct sn_space_line *l, char *buf, size_t n)
{
	char num[SN_COUNT_STRLEN];
	bool one = l->count.hi == 0 && l->count.lo == 1;

	sn_count_format(l->count, true, num);
	snprintf(buf, n, "newly %s %s %s address%s on %s",
		 l->verdict == SN_VERDICT_ALLOW ? "allows" : "blocks", num,
		 l->family == SN_FAMILY_V4 ? "IPv4" : "IPv6", one ? "" : "es",
		 l->l4);
}

static void plural(FILE *out, size_t n, const char *what, bool *first)
{
	if (!n)
		return;
	fprintf(out, "%s%zu %s", *first ? "" : ", ", n, what);
	*first = false;
}

void sn_plan_print_text(FILE *out, const struct sn_plan *plan,
			const struct sn_plan_side *old,
			const struct sn_plan_side *new_, size_t max)
{
	size_t n_def = 0;

	fprintf(out, "plan: %s -> %s\n", old->name, new_->name);
	if (!plan->entries_compared)
		fprintf(out, "note: %s is a compiled image: rules are compared by "
			     "text, tier and verdict; their source entries are "
			     "not\n",
			old->policy ? new_->name : old->name);
	if (!sn_plan_has_changes(plan)) {
		fputs("\nNo changes: every packet gets the same verdict and every "
		      "rule is kept.\n", out);
		return;
	}
	fputs("\nrules:\n", out);
	if (!plan->n_changes)
		fputs("  (no rule added, removed or changed)\n", out);
	for (size_t i = 0; i < plan->n_changes; i++) {
		const struct sn_rule_change *ch = &plan->changes[i];

		switch (ch->kind) {
		case SN_CHANGE_ADDED:
			fprintf(out, "  + %s", ch->new_rule->text);
			print_loc(out, ch->new_rule);
			continue;
		case SN_CHANGE_REMOVED:
			fprintf(out, "  - %s", ch->old_rule->text);
			print_loc(out, ch->old_rule);
			continue;
		case SN_CHANGE_CHANGED:
			break;
		}
		fprintf(out, "  ~ %s", ch->new_rule->text);
		print_loc(out, ch->new_rule);
		if (ch->verdict_changed)
			fprintf(out, "      verdict changed: %s -> %s\n",
				verdict_word(ch->old_rule->verdict),
				verdict_word(ch->new_rule->verdict));
		if (ch->n_src_added || ch->n_src_removed) {
			fprintf(out, "      sources: %zu added, %zu removed\n",
				ch->n_src_added, ch->n_src_removed);
			print_src_list(out, '+', ch->src_added, ch->n_src_added, max);
			print_src_list(out, '-', ch->src_removed, ch->n_src_removed,
				       max);
		}
		if (ch->n_port_added || ch->n_port_removed) {
			fprintf(out, "      ports: %zu added, %zu removed\n",
				ch->n_port_added, ch->n_port_removed);
			print_port_list(out, '+', ch->port_added, ch->n_port_added,
					max);
			print_port_list(out, '-', ch->port_removed,
					ch->n_port_removed, max);
		}
	}
	for (int f = 0; f < 2; f++) {
		if (plan->old_default[f] == plan->new_default[f])
			continue;
		if (!n_def++)
			fputs("\ndefaults:\n", out);
		fprintf(out, "  ~ default %s: %s -> %s\n", f ? "ipv6" : "ipv4",
			verdict_word(plan->old_default[f]),
			verdict_word(plan->new_default[f]));
	}
	fputs("\naddress space:\n", out);
	if (!plan->n_space)
		fputs("  (no address changes its verdict)\n", out);
	for (size_t i = 0; i < plan->n_space; i++) {
		char line[160];

		space_text(&plan->space[i], line, sizeof(line));
		fprintf(out, "  %c %s\n",
			plan->space[i].verdict == SN_VERDICT_ALLOW ? '+' : '-', line);
	}
	bool first = true;

	fputs("\nplan: ", out);
	plural(out, plan->n_added, plan->n_added == 1 ? "rule added" : "rules added",
	       &first);
	plural(out, plan->n_removed, "removed", &first);
	plural(out, plan->n_verdict, "verdict changed", &first);
	plural(out, plan->n_entries,
	       plan->n_entries == 1 ? "rule with changed entries"
				    : "rules with changed entries",
	       &first);
	plural(out, n_def, n_def == 1 ? "default changed" : "defaults changed",
	       &first);
	if (first)
		fputs("no rule changes", out);
	fprintf(out, "; %zu address-space change%s\n", plan->n_space,
		plan->n_space == 1 ? "" : "s");
}

static void json_rule(FILE *out, const struct sn_image_rule *r)
{
	if (!r) {
		fputs("null", out);
		return;
	}
	fprintf(out, "{\"id\":%u,\"verdict\":\"%s\",\"text\":", r->id,
		verdict_word(r->verdict));
	sn_json_str(out, r->text);
	fputs(",\"file\":", out);
	sn_json_str(out, r->file[0] ? r->file : NULL);
	fprintf(out, ",\"line\":%u,\"column\":%u}", r->line, r->col);
}

static void json_srcs(FILE *out, const struct sn_src **v, size_t n)
{
	char buf[SN_PREFIX_STRLEN];

	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		sn_prefix_format(&v[i]->prefix, buf, sizeof(buf));
		fprintf(out, "%s{\"prefix\":\"%s\",\"file\":", i ? "," : "", buf);
		sn_json_str(out, v[i]->loc.file);
		fprintf(out, ",\"line\":%u,\"column\":%u}", v[i]->loc.line,
			v[i]->loc.col);
	}
	fputc(']', out);
}

static void json_ports(FILE *out, const struct sn_port_range **v, size_t n)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s{\"lo\":%u,\"hi\":%u}", i ? "," : "", v[i]->lo,
			v[i]->hi);
	fputc(']', out);
}

void sn_plan_print_json(FILE *out, const struct sn_plan *plan,
			const struct sn_plan_side *old,
			const struct sn_plan_side *new_)
{
	static const char *const kinds[] = { "added", "removed", "changed" };

	fputs("{\"version\":1,\"old\":", out);
	sn_json_str(out, old->name);
	fputs(",\"new\":", out);
	sn_json_str(out, new_->name);
	fprintf(out, ",\"old_kind\":\"%s\",\"entries_compared\":%s,"
		     "\"changes\":%s,\n\"rules\":[",
		old->policy ? "policy" : "image",
		plan->entries_compared ? "true" : "false",
		sn_plan_has_changes(plan) ? "true" : "false");
	for (size_t i = 0; i < plan->n_changes; i++) {
		const struct sn_rule_change *ch = &plan->changes[i];
		const struct sn_image_rule *r = ch->new_rule ? ch->new_rule
							     : ch->old_rule;

		fprintf(out, "%s\n  {\"change\":\"%s\",\"tier\":\"%s\",\"identity\":",
			i ? "," : "", kinds[ch->kind],
			r->tier == SN_TIER_ALWAYS ? "always" : "normal");
		sn_json_str(out, identity(r));
		fputs(",\"old\":", out);
		json_rule(out, ch->old_rule);
		fputs(",\"new\":", out);
		json_rule(out, ch->new_rule);
		fprintf(out, ",\"verdict_changed\":%s",
			ch->verdict_changed ? "true" : "false");
		fputs(",\"sources_added\":", out);
		json_srcs(out, ch->src_added, ch->n_src_added);
		fputs(",\"sources_removed\":", out);
		json_srcs(out, ch->src_removed, ch->n_src_removed);
		fputs(",\"ports_added\":", out);
		json_ports(out, ch->port_added, ch->n_port_added);
		fputs(",\"ports_removed\":", out);
		json_ports(out, ch->port_removed, ch->n_port_removed);
		fputc('}', out);
	}
	fputs(plan->n_changes ? "\n],\n\"defaults\":[" : "],\n\"defaults\":[", out);
	for (int f = 0; f < 2; f++)
		fprintf(out, "%s{\"family\":\"%s\",\"old\":\"%s\",\"new\":\"%s\"}",
			f ? "," : "", f ? "ipv6" : "ipv4",
			verdict_word(plan->old_default[f]),
			verdict_word(plan->new_default[f]));
	fputs("],\n\"address_space\":[", out);
	for (size_t i = 0; i < plan->n_space; i++) {
		const struct sn_space_line *l = &plan->space[i];
		char num[SN_COUNT_STRLEN];

		/* A string: counts reach 2^128, past what JSON numbers keep. */
		sn_count_format(l->count, false, num);
		fprintf(out, "%s\n  {\"family\":\"%s\",\"newly\":\"%s\","
			     "\"addresses\":\"%s\",\"l4\":",
			i ? "," : "", l->family == SN_FAMILY_V4 ? "ipv4" : "ipv6",
			l->verdict == SN_VERDICT_ALLOW ? "allowed" : "blocked", num);
		sn_json_str(out, l->l4);
		fputc('}', out);
	}
	fprintf(out, "%s],\n\"summary\":{\"added\":%zu,\"removed\":%zu,"
		     "\"verdict_changed\":%zu,\"entries_changed\":%zu}}\n",
		plan->n_space ? "\n" : "", plan->n_added, plan->n_removed,
		plan->n_verdict, plan->n_entries);
}

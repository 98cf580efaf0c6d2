/*
 * The image builder: turns the resolved rules into the decision structure
 * the data plane walks in constant time (SPEC.md, "Compilation model").
 *
 * For a packet, the rules that can apply are those whose source prefix
 * contains the source address.  Policy prefixes nest, so the applicable
 * rules of an address are those of its longest matching policy prefix and
 * of that prefix's ancestors.  We therefore walk each family's prefixes as
 * a containment tree, compute for every prefix the winning rule for every
 * L4 class (a "decision row"), and intern identical rows as one source
 * class.  The data plane needs one LPM lookup for the class, two array
 * lookups for the L4 class and one array lookup for the decision.
 *
 * A prefix whose row equals its parent's adds nothing: the LPM lookup
 * without it lands on the parent, so it is left out of the image.
 *
 * Limit rules (SPEC.md 2.4) ride along in the same walk: their prefixes
 * are nodes too, carrying no verdict but a limit candidate per L4 class,
 * and the row stores the winning limit beside the winning rule.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "compile.h"
#include "image.h"
#include "l4class.h"
#include "srcmap.h"

#define SN_MAX_DECISIONS (1u << 22) /* 32 MiB of decision table */
#define SN_MAX_CONFLICTS_REPORTED 64

/*
 * One written source prefix of one rule or limit rule, sorted into the
 * containment walk.  rule < n_rules is a rule; rule - n_rules otherwise
 * is a limit rule (one index space keeps the memo and the sort simple).
 */
struct entry {
	struct sn_prefix prefix;
	uint32_t rule; /* index into policy->rules, or n_rules + limit */
	uint32_t src;  /* index into that rule's srcs */
};

/*
 * The best rule so far for one L4 class.  key orders candidates: the
 * override tier first, then prefix length, then L4 specificity; 0 is "no
 * rule" (the family default).
 */
struct cand {
	uint32_t key;
	uint32_t rule_id;
	uint32_t entry; /* entry that set it, for conflict locations */
	uint8_t verdict;
	uint16_t limit; /* 1 + id of the winning limit rule, 0: none */
	uint32_t lkey;  /* its key (no tier); 0: none */
};

static uint32_t cand_key(int tier, int len, int spec)
{
	return (uint32_t)tier << 16 | (uint32_t)(len + 1) << 8 |
	       (uint32_t)(spec + 1);
}

/* Interned decision rows: row i lives at rows[i * stride]. */
struct row_table {
	struct sn_decision *rows;
	uint32_t n, cap;
	uint32_t stride, width; /* width: used columns (n_l4) */
	uint32_t *slots;        /* open addressing: class id + 1, 0 empty */
	uint32_t n_slots;
};

static uint64_t row_hash(const struct sn_decision *row, uint32_t width)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < width; i++) {
		h ^= row[i].rule_id | (uint64_t)row[i].limit << 32;
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static int rows_grow_slots(struct row_table *t)
{
	uint32_t n = t->n_slots ? t->n_slots * 2 : 64;
	uint32_t *s = calloc(n, sizeof(*s));

	if (!s)
		return -ENOMEM;
	for (uint32_t c = 0; c < t->n; c++) {
		uint64_t h = row_hash(&t->rows[(size_t)c * t->stride], t->width);
		uint32_t i = (uint32_t)h & (n - 1);

		while (s[i])
			i = (i + 1) & (n - 1);
		s[i] = c + 1;
	}
	free(t->slots);
	t->slots = s;
	t->n_slots = n;
	return 0;
}

/* Class id of row (adding it when new), or a negative errno. */
static long rows_intern(struct row_table *t, const struct sn_decision *row)
{
	if (t->n + 1 > t->n_slots / 2) {
		int rc = rows_grow_slots(t);

		if (rc)
			return rc;
	}
	uint64_t h = row_hash(row, t->width);
	uint32_t i = (uint32_t)h & (t->n_slots - 1);

	while (t->slots[i]) {
		uint32_t c = t->slots[i] - 1;

		if (!memcmp(&t->rows[(size_t)c * t->stride], row,
			    t->width * sizeof(*row)))
			return c;
		i = (i + 1) & (t->n_slots - 1);
	}
	if ((uint64_t)(t->n + 1) * t->stride > SN_MAX_DECISIONS)
		return -E2BIG;
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 16;
		struct sn_decision *r =
			realloc(t->rows, (size_t)cap * t->stride * sizeof(*r));

		if (!r)
			return -ENOMEM;
		t->rows = r;
		t->cap = cap;
	}
	struct sn_decision *dst = &t->rows[(size_t)t->n * t->stride];

	/* Padding columns are never read; if a bug ever read one, it drops. */
	for (uint32_t c = t->width; c < t->stride; c++)
		dst[c] = (struct sn_decision){ .rule_id = SN_RULE_MALFORMED,
					       .verdict = SN_VERDICT_BLOCK };
	memcpy(dst, row, t->width * sizeof(*row));
	t->slots[i] = t->n + 1;
	return t->n++;
}

/* Pairs of rules already reported as conflicting (report each once). */
struct conflict_set {
	uint64_t *v;
	size_t n, cap;
};

static bool conflict_seen(struct conflict_set *s, uint32_t a, uint32_t b)
{
	uint64_t k = a < b ? (uint64_t)a << 32 | b : (uint64_t)b << 32 | a;

	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == k)
			return true;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return true; /* out of memory: skip the report */
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = k;
	return false;
}

struct builder {
	struct sn_ctx *ctx;
	const struct sn_policy *policy;
	struct sn_l4_plan l4;
	int8_t *spec;      /* spec[rule * n_l4 + class] */
	int8_t *lspec;     /* lspec[limit * n_l4 + class] */
	struct row_table rows;
	struct conflict_set conflicts;
	size_t n_conflicts;
};

/* Order of the walk: by address, then length (shorter first). */
static inline int entry_order(const struct entry *a, const struct entry *b)
{
	int c = memcmp(a->prefix.addr, b->prefix.addr, 16);

	return c ? c : (int)a->prefix.len - (int)b->prefix.len;
}

/*
 * Digit d of an entry's sort key, least significant first: the length,
 * then the address bytes from the last to the first.
 */
static inline uint8_t sort_digit(const struct entry *e, int d)
{
	return d == 0 ? e->prefix.len : e->prefix.addr[16 - d];
}

/*
 * LSD radix sort of a[0..n) by (address, length), one byte per pass,
 * stable; b is scratch of n entries.  The histograms of all 17 digits are
 * taken in one read, and a digit that is the same in every entry (the 12
 * unused bytes of IPv4, the zero tails of short IPv6 prefixes) costs no
 * pass: IPv4 needs at most 5.  Returns the array holding the result.
 */
static struct entry *radix_sort(struct entry *a, struct entry *b, size_t n,
				size_t (*count)[256])
{
	enum { DIGITS = 17 };

	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < DIGITS; d++)
			count[d][sort_digit(&a[i], d)]++;
	for (int d = 0; d < DIGITS; d++) {
		size_t *c = count[d], sum = 0;

		if (c[sort_digit(&a[0], d)] == n)
			continue; /* one value everywhere: already in order */
		for (int v = 0; v < 256; v++) {
			size_t k = c[v];

			c[v] = sum;
			sum += k;
		}
		for (size_t i = 0; i < n; i++)
			b[c[sort_digit(&a[i], d)]++] = a[i];
		struct entry *t = a;

		a = b;
		b = t;
	}
	return a;
}

/*
 * Bottom-up merge of the sorted runs of a[0..n) starting at run[0..n_runs)
 * (run[n_runs] == n), stable (ties come from the left run); b is scratch.
 * Returns the array holding the result.
 */
static struct entry *merge_runs(struct entry *a, struct entry *b, size_t n,
				size_t *run, size_t n_runs)
{
	while (n_runs > 1) {
		size_t m = 0;

		for (size_t r = 0; r < n_runs; r += 2) {
			size_t lo = run[r], mid = run[r + 1];
			size_t hi = r + 2 <= n_runs ? run[r + 2] : mid;
			size_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				b[k++] = entry_order(&a[j], &a[i]) < 0 ? a[j++]
								       : a[i++];
			memcpy(&b[k], &a[i], (mid - i) * sizeof(*b));
			k += mid - i;
			memcpy(&b[k], &a[j], (hi - j) * sizeof(*b));
			run[m++] = lo;
		}
		run[m] = n;
		n_runs = m;
		struct entry *t = a;

		a = b;
		b = t;
	}
	return a;
}

/*
 * Sort entries by (address, length) and, for one prefix, by rule: the
 * order the walk needs (every ancestor before its descendants) and the
 * order conflict reports depend on.  The entries are built in rule order,
 * so any stable sort on (address, length) gives it.
 *
 * qsort's 16-byte memcmp comparisons were a fifth of compiling a
 * million-prefix list.  Big lists mostly come from list files that are
 * already sorted, so the entries are a few sorted runs: those are merged
 * in a few sequential passes.  Anything else takes the radix sort.  *pe
 * may be replaced by the scratch array (the other one is freed).
 * 0 or -ENOMEM.
 */
#define MERGE_MAX_RUNS 16

static int sort_entries(struct entry **pe, size_t n)
{
	struct entry *a = *pe, *b, *sorted;
	size_t run[MERGE_MAX_RUNS + 1], n_runs = 1;

	run[0] = 0;
	for (size_t i = 1; i < n && n_runs <= MERGE_MAX_RUNS; i++)
		if (entry_order(&a[i - 1], &a[i]) > 0) {
			if (n_runs < MERGE_MAX_RUNS)
				run[n_runs] = i;
			n_runs++;
		}
	if (n_runs == 1)
		return 0; /* already sorted */
	b = malloc(n * sizeof(*b));
	if (!b)
		return -ENOMEM;
	if (n_runs <= MERGE_MAX_RUNS) {
		run[n_runs] = n;
		sorted = merge_runs(a, b, n, run, n_runs);
	} else {
		size_t (*count)[256] = calloc(17, sizeof(*count));

		if (!count) {
			free(b);
			return -ENOMEM;
		}
		sorted = radix_sort(a, b, n, count);
		free(count);
	}
	free(sorted == a ? b : a);
	*pe = sorted;
	return 0;
}

static void report_conflict(struct builder *b, const struct entry *ea,
			    const struct entry *eb)
{
	const struct sn_rule *ra = &b->policy->rules[ea->rule];
	const struct sn_rule *rb = &b->policy->rules[eb->rule];

	if (conflict_seen(&b->conflicts, ra->id, rb->id))
		return;
	b->n_conflicts++;
	if (b->n_conflicts > SN_MAX_CONFLICTS_REPORTED) {
		/* Counted as errors all the same, so the run still fails. */
		sn_diag_add(&b->ctx->diags, SN_SEV_ERROR, "E010",
			    (struct sn_loc){ 0 }, "further conflict");
		return;
	}
	/* Name the later rule; the earlier one is the note. */
	const struct entry *first = ra->id < rb->id ? ea : eb;
	const struct entry *second = ra->id < rb->id ? eb : ea;
	const struct sn_rule *r1 = &b->policy->rules[first->rule];
	const struct sn_rule *r2 = &b->policy->rules[second->rule];
	struct sn_diag *d = sn_diag_add(
		&b->ctx->diags, SN_SEV_ERROR, "E010", r2->srcs[second->src].loc,
		"'%s' conflicts with '%s': same source prefix, equally specific "
		"port match, different verdicts",
		r2->text, r1->text);

	sn_diag_note(&b->ctx->diags, d, r1->srcs[first->src].loc,
		     "the other rule matches the same packets here");
	sn_diag_hint(&b->ctx->diags, d,
		     "make one rule more specific (longer prefix or a port), "
		     "or use 'always' to state which one overrides");
}

/*
 * Memo of single-entry nodes.  In a big list most nodes are one prefix of
 * one rule (a blocklist entry) under the same parent, and such a node's
 * candidates depend only on the parent's candidates, the rule and the
 * prefix length, not on the address.  So the O(width) work of a node
 * (merge the rule in, then hash and compare a whole row to intern it) is
 * done once per (parent, rule, length) and copied after that.
 *
 * Parent rows are told apart by a generation number: a row the walk
 * computes gets a new one, a row taken from the memo keeps the one it was
 * stored with, so equal generations mean equal rows.  A slot is simply
 * overwritten on collision, which keeps the memo small whatever the list.
 *
 * Only single-entry nodes are memoised.  Conflicts (E010) arise only
 * between entries of one node (inherited candidates have shorter prefixes,
 * so their keys never tie with the node's), and they are reported with
 * the entries' own locations, so nodes with several entries are always
 * computed.  For the same reason the cand.entry of a row from the memo,
 * which names the entry it was first computed for, is never read.
 */
#define MEMO_BYTES (1u << 20)
#define MEMO_MAX_SLOTS 4096u

struct memo_slot {
	uint64_t parent_gen; /* 0: empty */
	uint64_t gen;        /* of the row stored here */
	uint32_t rule;
	uint32_t cls;
	uint8_t len;
};

struct memo {
	struct memo_slot *slots;
	struct cand *rows; /* the row of slot i at rows[i * width] */
	uint32_t mask;     /* number of slots - 1 */
};

static int memo_init(struct memo *m, uint32_t width)
{
	size_t row_bytes = (size_t)width * sizeof(struct cand);
	uint32_t n = 1;

	while (n < MEMO_MAX_SLOTS && (size_t)n * 2 * row_bytes <= MEMO_BYTES)
		n *= 2;
	m->mask = n - 1;
	m->slots = calloc(n, sizeof(*m->slots));
	m->rows = malloc((size_t)n * row_bytes);
	return m->slots && m->rows ? 0 : -ENOMEM;
}

static struct memo_slot *memo_find(const struct memo *m, uint64_t parent_gen,
				   uint32_t rule, uint8_t len)
{
	uint64_t h = parent_gen * 0x9e3779b97f4a7c15ull ^
		     (uint64_t)rule * 0xc2b2ae3d27d4eb4full ^ len;

	return &m->slots[(h ^ h >> 29) & m->mask];
}

/*
 * Merge limit rule l, written at prefix node, into the limit candidates:
 * longer prefix, then L4 specificity; on a tie the earlier limit stays
 * (entries of one node are in id order).  Equal keys with different
 * parameters are E048, reported by sema.
 */
static void node_limit(struct builder *b, uint32_t l,
		       const struct sn_prefix *node, struct cand *own)
{
	const uint32_t width = b->l4.n_classes;
	const int8_t *spec = &b->lspec[(size_t)l * width];

	for (uint32_t c = 0; c < width; c++) {
		if (spec[c] < 0)
			continue;
		uint32_t key = cand_key(0, node->len, spec[c]);

		if (key > own[c].lkey) {
			own[c].lkey = key;
			own[c].limit = (uint16_t)(l + 1);
		}
	}
}

/*
 * The candidates of node (entries e[begin..end) at prefix node) from its
 * parent's: own = parent, then every entry's rule where it beats the
 * inherited candidate.  Reports equal-key, different-verdict pairs.
 */
static void node_cands(struct builder *b, const struct entry *e, size_t begin,
		       size_t end, const struct sn_prefix *node,
		       const struct cand *parent, struct cand *own)
{
	const uint32_t width = b->l4.n_classes;

	memcpy(own, parent, width * sizeof(*own));
	for (size_t k = begin; k < end; k++) {
		if (e[k].rule >= b->policy->n_rules) {
			node_limit(b, e[k].rule - (uint32_t)b->policy->n_rules,
				   node, own);
			continue;
		}
		const struct sn_rule *r = &b->policy->rules[e[k].rule];
		const int8_t *spec = &b->spec[(size_t)e[k].rule * width];

		for (uint32_t c = 0; c < width; c++) {
			if (spec[c] < 0)
				continue;
			uint32_t key = cand_key(r->tier, node->len, spec[c]);

			if (key > own[c].key) {
				/* the limit candidate is independent: kept */
				own[c].key = key;
				own[c].rule_id = r->id;
				own[c].entry = (uint32_t)k;
				own[c].verdict = r->verdict;
			} else if (key == own[c].key &&
				   own[c].verdict != r->verdict) {
				report_conflict(b, &e[own[c].entry], &e[k]);
			}
		}
	}
}

/* Class id of a row of candidates (interned), or a negative errno. */
static long cands_class(struct builder *b, const struct cand *own,
			struct sn_decision *row)
{
	/* A limit applies to allowed packets only: a blocked row holds none,
	 * which also keeps rows that differ only there one class. */
	for (uint32_t c = 0; c < b->l4.n_classes; c++)
		row[c] = (struct sn_decision){
			.rule_id = own[c].rule_id,
			.verdict = own[c].verdict,
			.limit = own[c].verdict == SN_VERDICT_ALLOW ? own[c].limit
								   : 0,
		};
	return rows_intern(&b->rows, row);
}

/* Is a (an ancestor on the walk's stack) a prefix of b? */
static inline bool covers(const struct sn_prefix *a, const struct sn_prefix *b)
{
	unsigned full = a->len / 8, rest = a->len % 8;

	if (a->len > b->len || memcmp(a->addr, b->addr, full))
		return false;
	return !rest ||
	       !((a->addr[full] ^ b->addr[full]) & (uint8_t)(0xff00 >> rest));
}

static inline bool same_prefix(const struct sn_prefix *a,
			       const struct sn_prefix *b)
{
	return a->len == b->len && !memcmp(a->addr, b->addr, 16);
}

/*
 * Walk one family's prefixes in (address, length) order, which visits every
 * ancestor before its descendants, keeping the chain of ancestors on a
 * stack.  Emits the prefixes whose class differs from their parent's.
 */
static int build_family(struct builder *b, int family,
			struct sn_class_prefix **out, size_t *n_out)
{
	const struct sn_policy *p = b->policy;
	const uint32_t width = b->l4.n_classes;
	const int maxlen = family == SN_FAMILY_V4 ? 32 : 128;
	const struct sn_default *def =
		family == SN_FAMILY_V4 ? &p->default_v4 : &p->default_v6;
	const uint32_t def_rule =
		family == SN_FAMILY_V4 ? SN_RULE_DEFAULT_V4 : SN_RULE_DEFAULT_V6;
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t j = 0; j < p->rules[i].n_srcs; j++)
			n += p->rules[i].srcs[j].prefix.family == family;
	for (size_t i = 0; i < p->n_limits; i++)
		for (size_t j = 0; j < p->limits[i].n_srcs; j++)
			n += p->limits[i].srcs[j].prefix.family == family;

	struct entry *e = malloc((n ? n : 1) * sizeof(*e));
	/* One row of candidates per tree depth, plus the root's parent. */
	struct cand *stack = calloc((size_t)(maxlen + 2) * width, sizeof(*stack));
	struct sn_prefix *stack_pfx = calloc(maxlen + 2, sizeof(*stack_pfx));
	uint32_t *stack_class = calloc(maxlen + 2, sizeof(*stack_class));
	uint64_t *stack_gen = calloc(maxlen + 2, sizeof(*stack_gen));
	struct sn_decision *row = calloc(width, sizeof(*row));
	struct sn_class_prefix *emitted = NULL;
	size_t n_emitted = 0, cap_emitted = 0;
	struct memo memo = { 0 };
	uint64_t next_gen = 2; /* 1: the defaults (depth 0); 0: empty slot */

	if (!e || !stack || !stack_pfx || !stack_class || !stack_gen || !row ||
	    memo_init(&memo, width)) {
		rc = -ENOMEM;
		goto out;
	}
	n = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t j = 0; j < p->rules[i].n_srcs; j++)
			if (p->rules[i].srcs[j].prefix.family == family)
				e[n++] = (struct entry){
					.prefix = p->rules[i].srcs[j].prefix,
					.rule = (uint32_t)i,
					.src = (uint32_t)j,
				};
	/* After the rules, so a node's entries stay in (rule, limit id)
	 * order through the stable sort. */
	for (size_t i = 0; i < p->n_limits; i++)
		for (size_t j = 0; j < p->limits[i].n_srcs; j++)
			if (p->limits[i].srcs[j].prefix.family == family)
				e[n++] = (struct entry){
					.prefix = p->limits[i].srcs[j].prefix,
					.rule = (uint32_t)(p->n_rules + i),
					.src = (uint32_t)j,
				};
	if (n > 1 && (rc = sort_entries(&e, n)))
		goto out;

	/* Depth 0 of the stack is a virtual parent holding the defaults. */
	for (uint32_t c = 0; c < width; c++)
		stack[c] = (struct cand){ .key = 0, .rule_id = def_rule,
					  .verdict = def->verdict };
	stack_gen[0] = 1;
	int depth = 0;
	size_t i = 0;
	bool root_done = false;

	while (i < n || !root_done) {
		struct sn_prefix node = { .family = (uint8_t)family };
		size_t g_begin = i, g_end = i;

		/* The /0 root is always emitted so a lookup can never miss. */
		if (root_done) {
			node = e[i].prefix;
			while (g_end < n && same_prefix(&e[g_end].prefix, &node))
				g_end++;
		} else if (n && e[0].prefix.len == 0) {
			while (g_end < n && e[g_end].prefix.len == 0)
				g_end++;
		}
		while (depth > 1 && !covers(&stack_pfx[depth], &node))
			depth--;

		const struct cand *parent = &stack[(size_t)depth * width];
		struct cand *own = &stack[(size_t)(depth + 1) * width];
		struct memo_slot *slot = NULL;
		uint64_t gen;
		long cls;

		if (g_end - g_begin == 1)
			slot = memo_find(&memo, stack_gen[depth], e[g_begin].rule,
					 node.len);
		if (slot && slot->parent_gen == stack_gen[depth] &&
		    slot->rule == e[g_begin].rule && slot->len == node.len) {
			memcpy(own, &memo.rows[(size_t)(slot - memo.slots) * width],
			       width * sizeof(*own));
			cls = slot->cls;
			gen = slot->gen;
		} else {
			node_cands(b, e, g_begin, g_end, &node, parent, own);
			cls = cands_class(b, own, row);
			if (cls < 0) {
				rc = (int)cls;
				goto out;
			}
			gen = next_gen++;
			if (slot) {
				*slot = (struct memo_slot){
					.parent_gen = stack_gen[depth],
					.gen = gen,
					.rule = e[g_begin].rule,
					.cls = (uint32_t)cls,
					.len = node.len,
				};
				memcpy(&memo.rows[(size_t)(slot - memo.slots) * width],
				       own, width * sizeof(*own));
			}
		}
		depth++;
		stack_pfx[depth] = node;
		stack_class[depth] = (uint32_t)cls;
		stack_gen[depth] = gen;
		if (depth == 1 || stack_class[depth - 1] != (uint32_t)cls) {
			if (n_emitted == cap_emitted) {
				size_t cap = cap_emitted ? cap_emitted * 2 : 64;
				void *v = realloc(emitted, cap * sizeof(*emitted));

				if (!v) {
					rc = -ENOMEM;
					goto out;
				}
				emitted = v;
				cap_emitted = cap;
			}
			emitted[n_emitted++] = (struct sn_class_prefix){
				.prefix = node, .class_id = (uint32_t)cls };
		}
		root_done = true;
		i = g_end;
	}

	*out = sn_arena_calloc(&b->ctx->arena, n_emitted, sizeof(**out));
	if (!*out) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(*out, emitted, n_emitted * sizeof(**out));
	*n_out = n_emitted;
out:
	free(e);
	free(stack);
	free(stack_pfx);
	free(stack_class);
	free(stack_gen);
	free(row);
	free(emitted);
	free(memo.slots);
	free(memo.rows);
	return rc;
}

static uint32_t next_pow2(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

static int build_rules(struct builder *b, struct sn_image *img)
{
	const struct sn_policy *p = b->policy;
	struct sn_arena *a = &b->ctx->arena;
	/* Limit rules count their drops under ids after the policy rules. */
	uint32_t n = SN_RULE_FIRST + (uint32_t)p->n_rules + (uint32_t)p->n_limits;

	img->rules = sn_arena_calloc(a, n, sizeof(*img->rules));
	if (!img->rules)
		return -ENOMEM;
	img->n_rules = n;

	const struct sn_default *defs[2] = { &p->default_v4, &p->default_v6 };

	for (int f = 0; f < 2; f++) {
		const struct sn_default *d = defs[f];
		struct sn_image_rule *r = &img->rules[f];

		*r = (struct sn_image_rule){
			.id = (uint32_t)f,
			.verdict = d->verdict,
			.proto = SN_PROTO_ANY,
			.file = d->written && d->loc.file ? d->loc.file : "",
			.line = d->written ? d->loc.line : 0,
			.col = d->written ? d->loc.col : 0,
			.text = sn_arena_printf(a, "default %s %s%s",
						f ? "ipv6" : "ipv4",
						verdict_word(d->verdict),
						d->written ? "" : " (implicit)"),
		};
	}
	img->rules[SN_RULE_NON_IP] = (struct sn_image_rule){
		.id = SN_RULE_NON_IP, .verdict = SN_VERDICT_ALLOW,
		.proto = SN_PROTO_ANY, .file = "", .text = "non-IP traffic",
	};
	img->rules[SN_RULE_MALFORMED] = (struct sn_image_rule){
		.id = SN_RULE_MALFORMED, .verdict = SN_VERDICT_BLOCK,
		.proto = SN_PROTO_ANY, .file = "", .text = "malformed packet",
	};
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sn_rule *s = &p->rules[i];

		img->rules[s->id] = (struct sn_image_rule){
			.id = s->id,
			.verdict = s->verdict,
			.tier = s->tier,
			.proto = s->proto,
			.file = s->loc.file ? s->loc.file : "",
			.line = s->loc.line,
			.col = s->loc.col,
			.text = s->text ? s->text : "",
		};
	}
	for (size_t i = 0; i < p->n_limits; i++) {
		const struct sn_limit *l = &p->limits[i];
		uint32_t id = SN_RULE_FIRST + (uint32_t)(p->n_rules + i);

		/* BLOCK: what its counter counts is the packets it dropped. */
		img->rules[id] = (struct sn_image_rule){
			.id = id,
			.verdict = SN_VERDICT_BLOCK,
			.tier = SN_TIER_NORMAL,
			.proto = l->proto,
			.file = l->loc.file ? l->loc.file : "",
			.line = l->loc.line,
			.col = l->loc.col,
			.text = l->text ? l->text : "",
		};
	}
	for (uint32_t i = 0; i < n; i++)
		if (!img->rules[i].text)
			return -ENOMEM;
	return 0;
}

int sn_image_build(struct sn_ctx *ctx, const struct sn_policy *policy,
		   struct sn_image **out)
{
	struct builder b = { .ctx = ctx, .policy = policy };
	struct sn_image *img = sn_arena_calloc(&ctx->arena, 1, sizeof(*img));
	int rc;

	if (!img)
		return -ENOMEM;
	for (size_t i = 0; i < policy->n_rules; i++)
		if (policy->rules[i].id != SN_RULE_FIRST + i)
			return -EINVAL; /* sema's contract */
	for (size_t i = 0; i < policy->n_limits; i++)
		if (policy->limits[i].id != i)
			return -EINVAL;
	if (policy->n_limits >= UINT16_MAX) {
		/* sn_decision.limit is 16 bits: 1 + index. */
		sn_diag_add(&ctx->diags, SN_SEV_ERROR, "E030",
			    (struct sn_loc){ 0 },
			    "policy has %zu limit rules; the decision table "
			    "holds at most %u", policy->n_limits,
			    UINT16_MAX - 1);
		return -EINVAL;
	}

	rc = sn_l4_build(policy, &ctx->arena, &b.l4);
	if (rc)
		return rc;
	const uint32_t width = b.l4.n_classes;

	b.spec = malloc((policy->n_rules ? policy->n_rules : 1) * width);
	b.lspec = malloc((policy->n_limits ? policy->n_limits : 1) * width);
	if (!b.spec || !b.lspec) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t r = 0; r < policy->n_rules; r++)
		for (uint32_t c = 0; c < width; c++)
			b.spec[r * width + c] = (int8_t)sn_l4_rule_spec(
				&policy->rules[r], &b.l4.classes[c]);
	for (size_t l = 0; l < policy->n_limits; l++) {
		const struct sn_limit *lim = &policy->limits[l];

		for (uint32_t c = 0; c < width; c++)
			b.lspec[l * width + c] = (int8_t)sn_l4_match_spec(
				lim->proto, lim->ports, lim->n_ports,
				&b.l4.classes[c]);
	}

	b.rows.width = width;
	b.rows.stride = next_pow2(width);
	rc = build_family(&b, SN_FAMILY_V4, &img->v4, &img->n_v4);
	if (!rc)
		rc = build_family(&b, SN_FAMILY_V6, &img->v6, &img->n_v6);
	if (rc == -E2BIG) {
		struct sn_diag *d = sn_diag_add(
			&ctx->diags, SN_SEV_ERROR, "E030", (struct sn_loc){ 0 },
			"policy needs more than %u decision-table entries "
			"(%u L4 classes per source class)",
			SN_MAX_DECISIONS, width);

		sn_diag_hint(&ctx->diags, d,
			     "fewer distinct port ranges, or fewer distinct "
			     "combinations of overlapping prefixes");
		rc = -EINVAL;
	}
	if (!rc)
		rc = build_rules(&b, img);
	if (!rc && b.n_conflicts)
		rc = -EINVAL;
	if (rc)
		goto out;

	img->constants = (struct sn_constants){
		.abi_version = SN_ABI_VERSION,
		.l4_stride = b.rows.stride,
		.port_tables = b.l4.port_tables,
	};
	img->n_l4 = width;
	img->l4 = b.l4.classes;
	memcpy(img->proto, b.l4.proto, sizeof(img->proto));
	img->port_runs = b.l4.runs;
	img->n_port_runs = b.l4.n_runs;
	img->n_classes = b.rows.n;
	img->decisions = sn_arena_calloc(&ctx->arena,
					 (size_t)b.rows.n * b.rows.stride,
					 sizeof(*img->decisions));
	if (!img->decisions) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(img->decisions, b.rows.rows,
	       (size_t)b.rows.n * b.rows.stride * sizeof(*img->decisions));
	/* How the program finds the source class (srcmap.h, SPEC.md 4). */
	rc = sn_srcmap_build(&ctx->arena, img, SN_SRCMAP_AUTO);
	if (rc)
		goto out;
	*out = img;
out:
	free(b.spec);
	free(b.lspec);
	free(b.rows.rows);
	free(b.rows.slots);
	free(b.conflicts.v);
	return rc;
}

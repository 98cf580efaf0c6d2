/*
 * Semantic analysis: AST -> struct sn_policy.
 *
 * Resolves variables ($name), sets (@name) and list files, validates every
 * address, prefix, port and protocol, expands each rule's sources and ports
 * into flat arrays that keep the location each entry was written at, and
 * renders each rule's canonical text.  Meaning does not depend on statement
 * order: names may be used before (or in another file than) their
 * definition.
 *
 * Diagnostic codes (stable; SPEC.md documents them):
 *   E001  syntax error (parser/scanner; parse.c, grammar/)
 *   E002  invalid address or prefix (bad text, prefix length out of range)
 *   E003  host bits set past the prefix length (policy or list file)
 *   E004  unknown name ($var or @set not defined)
 *   E005  duplicate definition of a set or variable (also across includes)
 *   E006  list file unreadable
 *   E007  malformed list file line (located in the list file)
 *   E008  port out of range (0..65535)
 *   E009  include cycle, or includes nested deeper than 32 (parse.c)
 *   E010  (image builder) equal-specificity conflict - not used here
 *   E011  included file unreadable (parse.c)
 *   E012  port range with lo > hi
 *   E013  port with a protocol other than tcp/udp - reserved: the grammar
 *         only accepts "port" after tcp/udp, so sema never emits it
 *   E014  family mismatch: icmp with only IPv6 sources, icmpv6 with only
 *         IPv4 sources, or such an expect
 *   E016  IPv4-mapped IPv6 address/prefix (inside ::ffff:0:0/96)
 *   E017  duplicate default for an address family
 *   E018  type mismatch: a port variable used as a source or an address
 *         variable as ports, addresses and ports mixed in one variable,
 *         protocol number > 255 or the reserved 255
 *   E019  reference cycle between sets/variables (@a contains @b contains @a)
 *   E020  bad expect: a prefix instead of an address, tcp/udp without port
 *         or fragment, port together with fragment
 *   E021  rule has no sources (every set it uses is empty)
 *   E022  policy too large: rules expand to more than 2^25 sources/ports
 *   E040  invalid rate or threshold: unit not /s or /m, zero, or above
 *         100000000/s (limit rate, syncookies above, dns alert query-rate,
 *         autoblock rate) (sema_values.c)
 *   E041  number out of range: limit burst (1..10^8), dns alert
 *         name-length (1..253), label-entropy (0 < x <= 8.0, 3 decimals)
 *   E042  prefix length out of range for its family: limit key
 *         (per ipv4 /16../32, per ipv6 /48../128), autoblock max-prefix
 *   E043  invalid duration: unit not s/m/h/d, or outside 1s..7d
 *   E044  invalid DNS name (sema_dns.c)
 *   W045  (warning) DNS name blocked twice; the note names the first
 *   E046  setting given twice: a dns stale/alert or autoblock setting in
 *         the policy, or an option twice in one limit statement
 *   E047  a port in two syncookies statements (sema_limits.c)
 *   E048  limit rules conflict: same source prefix, equally specific
 *         overlapping L4 match, different parameters; or two limit rules
 *         with the same identity (sema_limits.c)
 *   E049  limit rule without a rate
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../bpf/sentry_abi.h"
#include "addr.h"
#include "ast.h"
#include "compile.h"
#include "lists.h"
#include "parse.h"
#include "policy.h"
#include "sema_lang.h"
#include "strdist.h"

enum vtype { T_NONE = 0, T_ADDR, T_PORT };
enum dstate { D_NEW = 0, D_BUSY, D_DONE };

/*
 * A set or variable definition.  Checking it (validate) records only its
 * own literal entries and resolved list files; its full contents are
 * flattened on demand, and only for definitions a rule names, so a chain
 * of n nested sets costs O(n), not O(n^2).
 */
struct def {
	const struct sn_ast_stmt *stmt;
	bool is_set;
	uint8_t state; /* enum dstate */
	uint8_t type;  /* enum vtype; sets are always T_ADDR */
	bool bad;      /* had errors (here or below): uses stay quiet */
	const struct sn_ast_item *cursor; /* validation progress */
	struct sn_src *lit;       /* literal addresses, in order */
	size_t n_lit;
	struct sn_port_range *plit; /* literal ports, in order */
	size_t n_plit;
	struct list_cache **files; /* its file items, in order */
	size_t n_files;
	size_t n_refs;  /* set/variable/file items */
	uint32_t epoch; /* last gather that took it (dedupe) */
	bool flat_done; /* flat* valid */
	struct sn_src *flat;
	size_t n_flat;
	struct sn_port_range *pflat;
	size_t n_pflat;
};

/* A definition being gathered: where in its items we are. */
struct frame {
	const struct def *d;
	const struct sn_ast_item *it;
	size_t file_i;
};

/* Open-addressing name table, one per namespace ($ and @). */
struct names {
	struct def **slot;
	size_t cap; /* power of two */
};

/* A list file, read and parsed once however often it is named. */
struct list_cache {
	const char *path;
	int err; /* load error (-errno), reported at every use */
	bool bad;
	struct sn_src *v;
	size_t n;
	uint32_t epoch; /* last gather that took it (dedupe) */
};

/* A growable array of fixed-size elements (malloc; reused, freed at end). */
struct vec {
	char *v;
	size_t n, cap, elt;
};

struct sema {
	struct sn_ctx *ctx;
	struct sn_diags *d;
	struct sn_arena *a;
	bool oom;

	struct def *defs;
	size_t n_defs;
	struct names vars, sets;
	struct def **stack;
	size_t n_stack;

	struct list_cache **lists; /* entries live in the arena: stable */
	size_t n_lists, cap_lists;

	/* Flattening (gather): an explicit stack of frames, and an epoch
	 * that marks what the current gather already took. */
	struct frame *frames;
	size_t n_frames, cap_frames;
	uint32_t epoch;
	size_t n_expanded; /* entries copied by gathers, bounded */
	bool too_big;

	struct vec srcs, ports;
	char *text;
	size_t text_len, text_cap;

	struct sn_policy *pol;
	size_t max_rules, max_expects;
	size_t max_limits, max_syncookies, max_dns_names;
	bool have_default[2];
	struct vec never; /* autoblock never prefixes, every statement */
	struct sn_loc default_loc[2];
};

/* ---- small helpers ---------------------------------------------------- */

static bool vec_reserve(struct sema *S, struct vec *v, size_t more)
{
	if (more <= v->cap - v->n)
		return true;
	size_t cap = v->cap ? v->cap : 64;

	while (cap - v->n < more) {
		if (cap > SIZE_MAX / 2 / v->elt) {
			S->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(v->v, cap * v->elt);

	if (!p) {
		S->oom = true;
		return false;
	}
	v->v = p;
	v->cap = cap;
	return true;
}

static void vec_append(struct sema *S, struct vec *v, const void *src,
		       size_t n)
{
	if (n && vec_reserve(S, v, n)) {
		memcpy(v->v + v->n * v->elt, src, n * v->elt);
		v->n += n;
	}
}

/* Copy a vector's contents into the arena. */
static void *vec_freeze(struct sema *S, const struct vec *v)
{
	void *p;

	if (v->n == 0)
		return NULL;
	p = sn_arena_calloc(S->a, v->n, v->elt);
	if (!p) {
		S->oom = true;
		return NULL;
	}
	memcpy(p, v->v, v->n * v->elt);
	return p;
}

static void text_put(struct sema *S, const char *s, size_t n)
{
	if (S->text_len + n + 1 > S->text_cap) {
		size_t cap = S->text_cap ? S->text_cap : 256;

		while (cap < S->text_len + n + 1)
			cap *= 2;
		char *p = realloc(S->text, cap);

		if (!p) {
			S->oom = true;
			return;
		}
		S->text = p;
		S->text_cap = cap;
	}
	memcpy(S->text + S->text_len, s, n);
	S->text_len += n;
	S->text[S->text_len] = '\0';
}

static void text_str(struct sema *S, const char *s)
{
	text_put(S, s, strlen(s));
}

static const char *text_freeze(struct sema *S)
{
	char *p = sn_arena_strndup(S->a, S->text ? S->text : "", S->text_len);

	if (!p)
		S->oom = true;
	return p;
}

static const char *sigil(bool is_set)
{
	return is_set ? "@" : "$";
}

/* Number text for messages, bounded (a 10^6-digit port stays short). */
static const char *num_text(struct sema *S, const struct sn_ast_num *n)
{
	char buf[128];

	sn_excerpt(buf, sizeof(buf), n->text, strlen(n->text));
	const char *p = sn_arena_strdup(S->a, buf);

	return p ? p : "?";
}

/* ---- names -------------------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static struct def **name_slot(struct names *t, const char *name)
{
	size_t mask = t->cap - 1, i = (size_t)hash_name(name) & mask;

	while (t->slot[i] && strcmp(t->slot[i]->stmt->name, name) != 0)
		i = (i + 1) & mask;
	return &t->slot[i];
}

static struct def *lookup(struct sema *S, bool is_set, const char *name)
{
	struct names *t = is_set ? &S->sets : &S->vars;

	return t->cap ? *name_slot(t, name) : NULL;
}

static void report_unknown(struct sema *S, const struct sn_ast_item *it)
{
	bool is_set = it->kind == SN_ITEM_SET;
	struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E004", it->loc,
					"unknown %s %s%s",
					is_set ? "set" : "variable",
					sigil(is_set), it->text);
	const struct def *best = NULL;
	size_t best_d = SIZE_MAX, len = strlen(it->text);
	size_t limit = len < 3 ? 1 : len / 3 + 1;

	if (!g)
		return;
	if (lookup(S, !is_set, it->text)) {
		sn_diag_hint(S->d, g, "%s is a %s: write %s%s", it->text,
			     is_set ? "variable" : "set", sigil(!is_set),
			     it->text);
		return;
	}
	/* Closest name in source order: deterministic on ties. */
	for (size_t i = 0; i < S->n_defs; i++) {
		const struct def *d = &S->defs[i];
		size_t dist;

		if (d->is_set != is_set)
			continue;
		dist = sn_edit_distance(it->text, d->stmt->name);
		if (dist < best_d) {
			best_d = dist;
			best = d;
		}
	}
	if (best && best_d <= limit)
		sn_diag_hint(S->d, g, "did you mean %s%s?", sigil(is_set),
			     best->stmt->name);
}

/* ---- walking the AST (includes inline, each included file once) -------- */

typedef void (*stmt_fn)(struct sema *S, const struct sn_ast_stmt *s);

/* Include nesting is bounded by the parser (32), so is this recursion. */
static void walk(struct sema *S, const struct sn_ast *f, stmt_fn fn)
{
	for (const struct sn_ast_stmt *s = f->stmts; s && !S->oom; s = s->next) {
		if (s->kind == SN_STMT_INCLUDE) {
			if (s->inc_state == SN_INC_PARSED && s->file)
				walk(S, s->file, fn);
			continue;
		}
		fn(S, s);
	}
}

static void count_stmt(struct sema *S, const struct sn_ast_stmt *s)
{
	if (s->kind == SN_STMT_DEFINE || s->kind == SN_STMT_SET)
		S->n_defs++;
	else if (s->kind == SN_STMT_RULE)
		S->max_rules++;
	else if (s->kind == SN_STMT_EXPECT)
		S->max_expects++;
	else if (s->kind == SN_STMT_LIMIT)
		S->max_limits++;
	else if (s->kind == SN_STMT_SYNCOOKIES)
		S->max_syncookies++;
	else if (s->kind == SN_STMT_DNS_BLOCK)
		S->max_dns_names += s->items.n;
}

static void collect_def(struct sema *S, const struct sn_ast_stmt *s)
{
	bool is_set = s->kind == SN_STMT_SET;
	struct names *t = is_set ? &S->sets : &S->vars;
	struct def **slot, *d;

	if (s->kind != SN_STMT_DEFINE && !is_set)
		return;
	slot = name_slot(t, s->name);
	if (*slot) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E005",
			s->name_loc, "%s %s%s is already defined",
			is_set ? "set" : "variable", sigil(is_set), s->name);

		sn_diag_note(S->d, g, (*slot)->stmt->name_loc,
			     "first defined here");
		return;
	}
	d = &S->defs[S->n_defs++];
	d->stmt = s;
	d->is_set = is_set;
	d->type = is_set ? T_ADDR : T_NONE;
	*slot = d;
}

/* ---- list files ----------------------------------------------------------- */

/* Read and parse a list file once; report E006 at this use if it cannot
 * be read.  NULL only when out of memory. */
static struct list_cache *list_get(struct sema *S, const struct sn_ast_item *it)
{
	char *path = sn_path_join(S->a, it->loc.file, it->text);
	struct list_cache *c = NULL;
	const struct sn_source *src;

	if (!path) {
		S->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < S->n_lists && !c; i++)
		if (strcmp(S->lists[i]->path, path) == 0)
			c = S->lists[i];
	if (!c) {
		if (S->n_lists == S->cap_lists) {
			size_t cap = S->cap_lists ? S->cap_lists * 2 : 8;
			struct list_cache **v = realloc(S->lists,
							cap * sizeof(*v));

			if (!v) {
				S->oom = true;
				return NULL;
			}
			S->lists = v;
			S->cap_lists = cap;
		}
		c = sn_arena_alloc(S->a, sizeof(*c));
		if (!c) {
			S->oom = true;
			return NULL;
		}
		S->lists[S->n_lists++] = c;
		c->path = path;
		c->err = sn_srcmgr_load_regular(&S->ctx->sources, path, &src);
		if (c->err == -ENOMEM ||
		    (!c->err && sn_list_parse(S->ctx, src, &c->v, &c->n,
					      &c->bad) == -ENOMEM)) {
			S->oom = true;
			return NULL;
		}
	}
	if (c->err)
		sn_diag_add(S->d, SN_SEV_ERROR, "E006", it->loc,
			    "cannot read list file %s: %s", c->path,
			    sn_srcmgr_strerror(c->err));
	return c;
}

/* ---- checks shared by definitions and rules -------------------------------- */

static bool addr_item(struct sema *S, const struct sn_ast_item *it,
		      struct sn_src *out)
{
	out->loc = it->loc;
	return sn_prefix_check(S->d, it->text, strlen(it->text), it->loc,
			       false, &out->prefix);
}

static bool port_num(struct sema *S, const struct sn_ast_num *n)
{
	if (n->value <= 65535)
		return true;
	sn_diag_add(S->d, SN_SEV_ERROR, "E008", n->loc,
		    "port %s out of range (0-65535)", num_text(S, n));
	return false;
}

static bool port_item(struct sema *S, const struct sn_ast_item *it,
		      struct sn_port_range *out)
{
	bool ok = port_num(S, &it->lo);

	out->loc = it->loc;
	out->lo = out->hi = (uint16_t)it->lo.value;
	if (it->kind != SN_ITEM_RANGE)
		return ok;
	ok = port_num(S, &it->hi) && ok;
	if (ok && it->lo.value > it->hi.value) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E012",
			it->loc, "port range %s-%s is empty (%s > %s)",
			num_text(S, &it->lo), num_text(S, &it->hi),
			num_text(S, &it->lo), num_text(S, &it->hi));

		sn_diag_hint(S->d, g, "did you mean %s-%s?",
			     num_text(S, &it->hi), num_text(S, &it->lo));
		return false;
	}
	out->hi = (uint16_t)it->hi.value;
	return ok;
}

static void push_any(struct sema *S, struct sn_loc loc)
{
	struct sn_src any[2];

	memset(any, 0, sizeof(any));
	any[0].prefix.family = SN_FAMILY_V4;
	any[0].loc = loc;
	any[1].prefix.family = SN_FAMILY_V6;
	any[1].loc = loc;
	vec_append(S, &S->srcs, any, 2);
}

/* ---- definitions: expansion without unbounded recursion --------------------- */

static struct def *ref_target(struct sema *S, const struct sn_ast_item *it)
{
	if (it->kind == SN_ITEM_SET)
		return lookup(S, true, it->text);
	if (it->kind == SN_ITEM_VAR)
		return lookup(S, false, it->text);
	return NULL;
}

static bool push_def(struct sema *S, struct def *d)
{
	/* The stack never holds a def twice, so n_defs bounds it. */
	d->state = D_BUSY;
	d->cursor = d->stmt->items.head;
	S->stack[S->n_stack++] = d;
	return true;
}

static void report_cycle(struct sema *S, struct def *t,
			 const struct sn_ast_item *it)
{
	size_t i = S->n_stack;

	while (i > 0 && S->stack[i - 1] != t)
		i--;
	if (i == 0)
		return;
	i--;
	S->text_len = 0;
	for (size_t k = i; k < S->n_stack; k++) {
		text_str(S, sigil(S->stack[k]->is_set));
		text_str(S, S->stack[k]->stmt->name);
		text_str(S, " -> ");
		S->stack[k]->bad = true;
	}
	text_str(S, sigil(t->is_set));
	text_str(S, t->stmt->name);
	struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E019", it->loc,
					"reference cycle: %s",
					S->text ? S->text : "");

	sn_diag_note(S->d, g, t->stmt->name_loc, "%s%s is defined here",
		     sigil(t->is_set), t->stmt->name);
}

/* Type an item contributes to a definition, T_NONE when unknown. */
static enum vtype item_type(struct sema *S, const struct sn_ast_item *it)
{
	const struct def *t;

	switch (it->kind) {
	case SN_ITEM_ADDR:
	case SN_ITEM_ANY:
	case SN_ITEM_FILE:
	case SN_ITEM_SET:
		return T_ADDR;
	case SN_ITEM_PORT:
	case SN_ITEM_RANGE:
		return T_PORT;
	case SN_ITEM_DNAME:
		return T_NONE; /* only in dns block (the grammar) */
	case SN_ITEM_VAR:
		t = ref_target(S, it);
		return t && t->state == D_DONE ? (enum vtype)t->type : T_NONE;
	}
	return T_NONE;
}

static const char *type_word(enum vtype t)
{
	return t == T_PORT ? "ports" : "addresses";
}

/* Check a definition whose references are all checked already: literal
 * entries, list files, types; a bad child makes it bad too. */
static void validate_def(struct sema *S, struct def *d)
{
	const struct sn_ast_stmt *s = d->stmt;
	size_t n_files = 0;

	S->srcs.n = 0;
	S->ports.n = 0;
	if (s->broken) {
		d->bad = true;
		return;
	}
	for (const struct sn_ast_item *it = s->items.head; it; it = it->next)
		n_files += it->kind == SN_ITEM_FILE;
	if (n_files) {
		d->files = sn_arena_calloc(S->a, n_files, sizeof(*d->files));
		if (!d->files) {
			S->oom = true;
			return;
		}
	}
	for (const struct sn_ast_item *it = s->items.head; it; it = it->next) {
		enum vtype ty = item_type(S, it);
		struct sn_src src;
		struct sn_port_range pr;
		struct list_cache *lc;
		struct def *t;

		if (ty != T_NONE && d->type == T_NONE) {
			d->type = (uint8_t)ty;
		} else if (ty != T_NONE && ty != d->type) {
			struct sn_diag *g;

			if (it->kind == SN_ITEM_VAR)
				g = sn_diag_add(S->d, SN_SEV_ERROR, "E018",
					it->loc, "%s %s%s holds %s, but $%s "
					"holds %s", d->is_set ? "set" : "variable",
					sigil(d->is_set), s->name,
					type_word(d->type), it->text,
					type_word(ty));
			else
				g = sn_diag_add(S->d, SN_SEV_ERROR, "E018",
					it->loc, "%s %s%s holds %s, but this "
					"is %s", d->is_set ? "set" : "variable",
					sigil(d->is_set), s->name,
					type_word(d->type),
					ty == T_PORT ? "a port" : "an address");
			if (!d->is_set)
				sn_diag_hint(S->d, g, "a variable holds either "
					     "addresses or ports, not both");
			d->bad = true;
			continue;
		}
		switch (it->kind) {
		case SN_ITEM_ADDR:
			if (addr_item(S, it, &src))
				vec_append(S, &S->srcs, &src, 1);
			else
				d->bad = true;
			break;
		case SN_ITEM_ANY:
			push_any(S, it->loc);
			break;
		case SN_ITEM_PORT:
		case SN_ITEM_RANGE:
			if (port_item(S, it, &pr))
				vec_append(S, &S->ports, &pr, 1);
			else
				d->bad = true;
			break;
		case SN_ITEM_FILE:
			d->n_refs++;
			lc = list_get(S, it);
			if (!lc)
				return;
			if (lc->err || lc->bad)
				d->bad = true;
			d->files[d->n_files++] = lc;
			break;
		case SN_ITEM_SET:
		case SN_ITEM_VAR:
			d->n_refs++;
			t = ref_target(S, it);
			if (!t) {
				report_unknown(S, it);
				d->bad = true;
			} else if (t->state != D_DONE || t->bad) {
				/* a cycle (reported) or a bad definition */
				d->bad = true;
			}
			break;
		case SN_ITEM_DNAME:
			break; /* not in definitions (the grammar) */
		}
	}
	d->lit = vec_freeze(S, &S->srcs);
	d->n_lit = S->srcs.n;
	d->plit = vec_freeze(S, &S->ports);
	d->n_plit = S->ports.n;
}

/* Iterative depth-first check: children before parents, cycles found on
 * the explicit stack, native stack use constant whatever the nesting. */
static void validate(struct sema *S, struct def *root)
{
	if (root->state != D_NEW)
		return;
	push_def(S, root);
	while (S->n_stack && !S->oom) {
		struct def *d = S->stack[S->n_stack - 1];
		bool descended = false;

		while (d->cursor) {
			const struct sn_ast_item *it = d->cursor;
			struct def *t = ref_target(S, it);

			d->cursor = it->next;
			if (!t || t->state == D_DONE)
				continue;
			if (t->state == D_BUSY) {
				report_cycle(S, t, it);
				continue;
			}
			push_def(S, t);
			descended = true;
			break;
		}
		if (descended)
			continue;
		validate_def(S, d);
		d->state = D_DONE;
		S->n_stack--;
	}
}

/* ---- flattening: what a rule's @set / $var stands for ---------------------- */

/*
 * Entries copied while flattening are bounded: rules that combine big sets
 * in braces copy them, and a hostile policy could make that quadratic.
 * A rule that names one set shares the set's array instead.
 */
#define SN_SEMA_MAX_EXPANDED ((size_t)1 << 25)

static void take(struct sema *S, struct vec *v, const void *p, size_t n,
		 struct sn_loc where)
{
	if (S->too_big || n == 0)
		return;
	if (n > SN_SEMA_MAX_EXPANDED - S->n_expanded) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E022",
			where, "policy too large: its rules expand to more "
			"than %zu sources and ports", SN_SEMA_MAX_EXPANDED);

		sn_diag_hint(S->d, g, "a rule that names a single set "
				      "(from @big) shares it; combining big "
				      "sets in { } copies them");
		S->too_big = true;
		return;
	}
	S->n_expanded += n;
	vec_append(S, v, p, n);
}

/* Append everything root stands for (its literals, then each reference in
 * order) to S->srcs or S->ports, each definition and list file once per
 * epoch.  Iterative: the frame stack holds each definition at most once,
 * so n_defs bounds it. */
static void gather_def(struct sema *S, struct def *root, bool ports,
		       struct sn_loc where)
{
	if (root->epoch == S->epoch)
		return;
	root->epoch = S->epoch;
	S->n_frames = 0;
	for (struct def *d = root; d;) {
		if (ports)
			take(S, &S->ports, d->plit, d->n_plit, where);
		else
			take(S, &S->srcs, d->lit, d->n_lit, where);
		S->frames[S->n_frames++] = (struct frame){ d, d->stmt->items.head, 0 };
		d = NULL;
		while (!d && S->n_frames && !S->oom) {
			struct frame *f = &S->frames[S->n_frames - 1];
			const struct sn_ast_item *it = f->it;
			struct def *t;

			if (!it) {
				S->n_frames--;
				continue;
			}
			f->it = it->next;
			if (it->kind == SN_ITEM_FILE) {
				struct list_cache *lc = f->d->files[f->file_i++];

				if (!ports && lc->epoch != S->epoch) {
					lc->epoch = S->epoch;
					take(S, &S->srcs, lc->v, lc->n, where);
				}
				continue;
			}
			if (it->kind != SN_ITEM_SET && it->kind != SN_ITEM_VAR)
				continue;
			t = ref_target(S, it);
			if (!t || t->epoch == S->epoch)
				continue;
			t->epoch = S->epoch;
			d = t; /* descend */
		}
	}
}

/* The full contents of a (good) definition, computed once.  A definition
 * that is exactly one other definition or list shares its array. */
static void flatten(struct sema *S, struct def *d, struct sn_loc where)
{
	struct def *x = d;

	if (d->flat_done)
		return;
	for (;;) {
		const struct sn_ast_item *it = x->stmt->items.head;

		if (x->flat_done || x->n_refs == 0 || x->n_lit || x->n_plit ||
		    x->stmt->items.n != 1)
			break;
		if (it->kind == SN_ITEM_FILE) {
			d->flat = x->files[0]->v;
			d->n_flat = x->files[0]->n;
			d->flat_done = true;
			return;
		}
		x = ref_target(S, it); /* good defs form a DAG: this ends */
	}
	if (x->flat_done) {
		d->flat = x->flat;
		d->n_flat = x->n_flat;
		d->pflat = x->pflat;
		d->n_pflat = x->n_pflat;
	} else if (x->n_refs == 0) {
		d->flat = x->lit;
		d->n_flat = x->n_lit;
		d->pflat = x->plit;
		d->n_pflat = x->n_plit;
	} else {
		S->epoch++;
		S->srcs.n = 0;
		S->ports.n = 0;
		gather_def(S, x, x->type == T_PORT, where);
		d->flat = vec_freeze(S, &S->srcs);
		d->n_flat = S->srcs.n;
		d->pflat = vec_freeze(S, &S->ports);
		d->n_pflat = S->ports.n;
	}
	d->flat_done = true;
}

/* ---- canonical text --------------------------------------------------------- */

static void text_item(struct sema *S, const struct sn_ast_item *it)
{
	switch (it->kind) {
	case SN_ITEM_ADDR:
		text_str(S, it->text);
		break;
	case SN_ITEM_ANY:
		text_str(S, "any");
		break;
	case SN_ITEM_SET:
	case SN_ITEM_VAR:
		text_str(S, sigil(it->kind == SN_ITEM_SET));
		text_str(S, it->text);
		break;
	case SN_ITEM_FILE:
		text_str(S, "file \"");
		for (const char *p = it->text; *p; p++) {
			if (*p == '"' || *p == '\\')
				text_put(S, "\\", 1);
			text_put(S, p, 1);
		}
		text_str(S, "\"");
		break;
	case SN_ITEM_PORT:
		text_str(S, it->lo.text);
		break;
	case SN_ITEM_RANGE:
		text_str(S, it->lo.text);
		text_str(S, "-");
		text_str(S, it->hi.text);
		break;
	case SN_ITEM_DNAME:
		text_str(S, it->text);
		break;
	}
}

static void text_list(struct sema *S, const struct sn_ast_list *l)
{
	if (!l->braced && l->head) {
		text_item(S, l->head);
		return;
	}
	text_str(S, "{ ");
	for (const struct sn_ast_item *it = l->head; it; it = it->next) {
		text_item(S, it);
		if (it->next)
			text_str(S, ", ");
	}
	text_str(S, " }");
}

static void text_l4(struct sema *S, const struct sn_ast_l4 *l4, bool expect)
{
	static const char *const names[] = {
		[SN_L4_TCP] = "tcp",   [SN_L4_UDP] = "udp",
		[SN_L4_ICMP] = "icmp", [SN_L4_ICMPV6] = "icmpv6",
		[SN_L4_ANY] = "any",   [SN_L4_PROTO] = "proto",
	};

	if (l4->kind != SN_L4_NONE) {
		text_str(S, " to ");
		text_str(S, names[l4->kind]);
		if (l4->kind == SN_L4_PROTO) {
			text_str(S, " ");
			text_str(S, l4->proto.text);
		}
		if (l4->has_ports) {
			text_str(S, " port ");
			if (expect)
				text_str(S, l4->port.text);
			else
				text_list(S, &l4->ports);
		}
	}
	if (l4->fragment)
		text_str(S, " fragment");
}

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

/* ---- rules ------------------------------------------------------------------- */

/* Protocol of a "to" clause with the well-known numbers normalised, or -2
 * after reporting an out-of-range number. */
static int l4_proto(struct sema *S, const struct sn_ast_l4 *l4)
{
	switch (l4->kind) {
	case SN_L4_NONE:
	case SN_L4_ANY:
		return SN_PROTO_ANY;
	case SN_L4_TCP:
		return SN_PROTO_TCP;
	case SN_L4_UDP:
		return SN_PROTO_UDP;
	case SN_L4_ICMP:
		return SN_PROTO_ICMP;
	case SN_L4_ICMPV6:
		return SN_PROTO_ICMPV6;
	case SN_L4_PROTO:
		if (l4->proto.value > 255) {
			sn_diag_add(S->d, SN_SEV_ERROR, "E018", l4->proto.loc,
				    "protocol number %s out of range (0-255)",
				    num_text(S, &l4->proto));
			return -2;
		}
		/* IANA reserves 255; expect lines without a protocol use it as
		 * "a protocol no rule names", so no rule may name it. */
		if (l4->proto.value == 255) {
			sn_diag_add(S->d, SN_SEV_ERROR, "E018", l4->proto.loc,
				    "protocol 255 is reserved");
			return -2;
		}
		return (int)l4->proto.value;
	}
	return SN_PROTO_ANY;
}

/* A name used in a rule: the definition if it is usable as `want`, else
 * NULL after reporting why (quietly for definitions already reported). */
static struct def *rule_ref(struct sema *S, const struct sn_ast_item *it,
			    enum vtype want)
{
	struct def *t = ref_target(S, it);

	if (!t) {
		report_unknown(S, it);
		return NULL;
	}
	if (t->bad)
		return NULL;
	if (t->type != want) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E018",
			it->loc, "$%s holds %s, not %s", it->text,
			type_word(t->type), type_word(want));

		sn_diag_note(S->d, g, t->stmt->name_loc, "$%s is defined here",
			     it->text);
		return NULL;
	}
	return t;
}

/* Resolve a rule's sources into *out; a single set/variable/list is
 * shared.  Returns false when some source had an error (reported). */
static bool rule_srcs(struct sema *S, const struct sn_ast_stmt *s,
		      struct sn_src **out, size_t *n)
{
	const struct sn_ast_item *only =
		s->srcs.n == 1 ? s->srcs.head : NULL;
	bool ok = true;

	S->epoch++;
	S->srcs.n = 0;
	if (!s->has_from)
		push_any(S, s->loc);
	for (const struct sn_ast_item *it = s->srcs.head; it; it = it->next) {
		struct sn_src src;
		struct list_cache *lc;
		struct def *t;

		switch (it->kind) {
		case SN_ITEM_ANY:
			push_any(S, it->loc);
			break;
		case SN_ITEM_ADDR:
			if (addr_item(S, it, &src))
				vec_append(S, &S->srcs, &src, 1);
			else
				ok = false;
			break;
		case SN_ITEM_FILE:
			lc = list_get(S, it);
			if (!lc || lc->err || lc->bad) {
				ok = false;
				break;
			}
			if (it == only) {
				*out = lc->v;
				*n = lc->n;
				return true;
			}
			if (lc->epoch != S->epoch) {
				lc->epoch = S->epoch;
				take(S, &S->srcs, lc->v, lc->n, s->loc);
			}
			break;
		case SN_ITEM_SET:
		case SN_ITEM_VAR:
			t = rule_ref(S, it, T_ADDR);
			if (!t) {
				ok = false;
				break;
			}
			if (it == only) {
				flatten(S, t, s->loc);
				*out = t->flat;
				*n = t->n_flat;
				return !S->too_big;
			}
			gather_def(S, t, false, s->loc);
			break;
		case SN_ITEM_PORT:
		case SN_ITEM_RANGE:
		case SN_ITEM_DNAME:
			break; /* not a source (the grammar rules it out) */
		}
	}
	*out = vec_freeze(S, &S->srcs);
	*n = S->srcs.n;
	return ok && !S->too_big;
}

static bool rule_ports(struct sema *S, const struct sn_ast_stmt *s,
		       struct sn_port_range **out, size_t *n)
{
	const struct sn_ast_l4 *l4 = &s->l4;
	const struct sn_ast_item *only =
		l4->ports.n == 1 ? l4->ports.head : NULL;
	bool ok = true;

	*out = NULL;
	*n = 0;
	if (!l4->has_ports)
		return true;
	S->epoch++;
	S->ports.n = 0;
	for (const struct sn_ast_item *it = l4->ports.head; it; it = it->next) {
		struct sn_port_range pr;
		struct def *t;

		if (it->kind == SN_ITEM_PORT || it->kind == SN_ITEM_RANGE) {
			if (port_item(S, it, &pr))
				vec_append(S, &S->ports, &pr, 1);
			else
				ok = false;
			continue;
		}
		if (it->kind != SN_ITEM_VAR)
			continue;
		t = rule_ref(S, it, T_PORT);
		if (!t) {
			ok = false;
			continue;
		}
		if (it == only) {
			flatten(S, t, s->loc);
			*out = t->pflat;
			*n = t->n_pflat;
			return !S->too_big;
		}
		gather_def(S, t, true, s->loc);
	}
	*out = vec_freeze(S, &S->ports);
	*n = S->ports.n;
	return ok && !S->too_big;
}

/* icmp only ever matches IPv4 packets, icmpv6 only IPv6: keep the sources
 * of that family.  Returns false (E014) when none is left. */
static bool family_filter(struct sema *S, const struct sn_ast_stmt *s,
			  int proto, struct sn_src **srcs, size_t *n)
{
	uint8_t fam;
	size_t keep = 0;

	if (proto == SN_PROTO_ICMP)
		fam = SN_FAMILY_V4;
	else if (proto == SN_PROTO_ICMPV6)
		fam = SN_FAMILY_V6;
	else
		return true;
	for (size_t i = 0; i < *n; i++)
		keep += (*srcs)[i].prefix.family == fam;
	if (keep == *n)
		return true;
	if (keep == 0) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E014",
			s->l4.loc, "%s matches only %s packets, but every "
			"source of this rule is %s",
			fam == SN_FAMILY_V4 ? "icmp" : "icmpv6",
			fam == SN_FAMILY_V4 ? "IPv4" : "IPv6",
			fam == SN_FAMILY_V4 ? "IPv6" : "IPv4");

		sn_diag_hint(S->d, g, "use %s for %s sources",
			     fam == SN_FAMILY_V4 ? "icmpv6" : "icmp",
			     fam == SN_FAMILY_V4 ? "IPv6" : "IPv4");
		return false;
	}
	struct sn_src *v = sn_arena_calloc(S->a, keep, sizeof(*v));

	if (!v) {
		S->oom = true;
		return false;
	}
	keep = 0;
	for (size_t i = 0; i < *n; i++)
		if ((*srcs)[i].prefix.family == fam)
			v[keep++] = (*srcs)[i];
	*srcs = v;
	*n = keep;
	return true;
}

static void do_rule(struct sema *S, const struct sn_ast_stmt *s)
{
	struct sn_rule r;
	bool ok;
	int proto;

	memset(&r, 0, sizeof(r));
	ok = rule_srcs(S, s, &r.srcs, &r.n_srcs);
	proto = l4_proto(S, &s->l4);
	if (proto == -2)
		ok = false;
	if (!rule_ports(S, s, &r.ports, &r.n_ports))
		ok = false;
	if (!ok || S->oom)
		return;
	if (r.n_srcs == 0) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E021",
			s->srcs.head ? s->srcs.head->loc : s->loc,
			"rule has no sources: the sets and lists it names are "
			"empty");

		sn_diag_hint(S->d, g, "a rule that can never match is "
				      "probably a mistake; remove it or fill "
				      "the set");
		return;
	}
	if (!family_filter(S, s, proto, &r.srcs, &r.n_srcs))
		return;
	r.id = SN_RULE_FIRST + (uint32_t)S->pol->n_rules;
	r.verdict = s->verdict;
	r.tier = s->tier;
	r.proto = (int16_t)proto;
	r.loc = s->loc;
	S->text_len = 0;
	if (s->tier == SN_TIER_ALWAYS)
		text_str(S, "always ");
	text_str(S, verdict_word(s->verdict));
	if (s->has_from) {
		text_str(S, " from ");
		text_list(S, &s->srcs);
	}
	text_l4(S, &s->l4, false);
	r.text = text_freeze(S);
	S->pol->rules[S->pol->n_rules++] = r;
}

/* ---- defaults and expects ------------------------------------------------ */

static void do_default(struct sema *S, const struct sn_ast_stmt *s)
{
	for (int i = 0; i < 2; i++) {
		int fam = i == 0 ? SN_FAMILY_V4 : SN_FAMILY_V6;
		struct sn_default *def = i == 0 ? &S->pol->default_v4
						: &S->pol->default_v6;

		if (s->family && s->family != fam)
			continue;
		if (S->have_default[i]) {
			struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR,
				"E017", s->loc, "duplicate default for %s",
				i == 0 ? "IPv4" : "IPv6");

			sn_diag_note(S->d, g, S->default_loc[i],
				     "the %s default is first set here",
				     i == 0 ? "IPv4" : "IPv6");
			continue;
		}
		S->have_default[i] = true;
		S->default_loc[i] = s->loc;
		def->verdict = s->verdict;
		def->written = true;
		def->loc = s->loc;
	}
}

static void do_expect(struct sema *S, const struct sn_ast_stmt *s)
{
	const struct sn_ast_l4 *l4 = &s->l4;
	struct sn_expect e;
	struct sn_src src;
	bool ok = true;
	int proto;

	memset(&e, 0, sizeof(e));
	if (!s->addr || !addr_item(S, s->addr, &src)) {
		ok = false;
	} else if (src.prefix.len != sn_prefix_maxlen(&src.prefix)) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E020",
			s->addr->loc, "expect needs one address, not the "
			"prefix %s", s->addr->text);
		char buf[SN_PREFIX_STRLEN];

		sn_prefix_format(&src.prefix, buf, sizeof(buf));
		*strchr(buf, '/') = '\0';
		sn_diag_hint(S->d, g, "an expect line describes one packet: "
			     "e.g. from %s", buf);
		ok = false;
	}
	proto = l4_proto(S, l4);
	if (proto == -2)
		ok = false;
	if (proto == SN_PROTO_TCP || proto == SN_PROTO_UDP) {
		if (!l4->has_ports && !l4->fragment) {
			struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR,
				"E020", l4->loc, "expect to %s needs a port or "
				"'fragment'", proto == SN_PROTO_TCP ? "tcp" : "udp");

			sn_diag_hint(S->d, g, "write e.g. 'to %s port 443', or "
				     "'to %s fragment' for a non-first fragment",
				     proto == SN_PROTO_TCP ? "tcp" : "udp",
				     proto == SN_PROTO_TCP ? "tcp" : "udp");
			ok = false;
		}
	}
	if (l4->has_ports && l4->fragment) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E020",
			l4->fragment_loc, "expect with both a port and "
			"'fragment'");

		sn_diag_hint(S->d, g, "a non-first fragment carries no port: "
				      "drop one of them");
		ok = false;
	}
	if (l4->has_ports && !port_num(S, &l4->port))
		ok = false;
	if (ok && (proto == SN_PROTO_ICMP || proto == SN_PROTO_ICMPV6)) {
		uint8_t fam = proto == SN_PROTO_ICMP ? SN_FAMILY_V4
						     : SN_FAMILY_V6;

		if (src.prefix.family != fam) {
			sn_diag_add(S->d, SN_SEV_ERROR, "E014", l4->loc,
				    "%s is an %s protocol, but %s is an %s "
				    "address", proto == SN_PROTO_ICMP ? "icmp"
								   : "icmpv6",
				    fam == SN_FAMILY_V4 ? "IPv4" : "IPv6",
				    s->addr->text,
				    fam == SN_FAMILY_V4 ? "IPv6" : "IPv4");
			ok = false;
		}
	}
	if (!ok || S->oom)
		return;
	e.verdict = s->verdict;
	e.addr = src.prefix;
	e.proto = (int16_t)proto;
	e.port = l4->has_ports ? (int32_t)l4->port.value : -1;
	e.fragment = l4->fragment;
	e.loc = s->loc;
	S->text_len = 0;
	text_str(S, "expect ");
	text_str(S, verdict_word(s->verdict));
	text_str(S, " from ");
	text_str(S, s->addr->text);
	text_l4(S, l4, true);
	e.text = text_freeze(S);
	S->pol->expects[S->pol->n_expects++] = e;
}

/* ---- limits, syncookies, dns, autoblock --------------------------------- */

/* An option given twice (E046): false after reporting. */
static bool once(struct sema *S, struct sn_loc *first,
		 const struct sn_ast_opt *o, const char *what)
{
	if (first->file) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E046",
			o->loc, "%s is already set", what);

		sn_diag_note(S->d, g, *first, "first set here");
		return false;
	}
	*first = o->loc;
	return true;
}

static const char *per_word(int family)
{
	return family == SN_FAMILY_V4 ? "per ipv4" : "per ipv6";
}

static void text_fmt(struct sema *S, const char *fmt, unsigned v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), fmt, v);
	text_str(S, buf);
}

/* "limit [from SRC] [to L4]": the match, as written (names kept). */
static void text_limit_match(struct sema *S, const struct sn_ast_stmt *s,
			     const struct sn_limit *l)
{
	S->text_len = 0;
	text_str(S, "limit");
	if (s->has_from) {
		text_str(S, " from ");
		text_list(S, &s->srcs);
	}
	text_l4(S, &s->l4, false);
	text_fmt(S, " per ipv4 /%u", l->key_v4);
	text_fmt(S, " per ipv6 /%u", l->key_v6);
}

/* The settings of one limit statement; false after reporting. */
static bool limit_opts(struct sema *S, const struct sn_ast_stmt *s,
		       struct sn_limit *l)
{
	struct sn_loc seen[SN_OPT_MAX_PREFIX + 1][2];
	bool ok = true, have_rate = false, have_burst = false;

	memset(seen, 0, sizeof(seen));
	l->key_v4 = 32;
	l->key_v6 = 64;
	for (const struct sn_ast_opt *o = s->opts.head; o; o = o->next) {
		struct sn_loc *first = &seen[o->kind][o->family == SN_FAMILY_V6];
		uint32_t v;

		switch (o->kind) {
		case SN_OPT_RATE:
			have_rate = true;
			ok = once(S, first, o, "rate") &&
			     sn_check_rate(S->d, &o->val, "rate", &l->rate) && ok;
			break;
		case SN_OPT_BURST:
			have_burst = true;
			ok = once(S, first, o, "burst") &&
			     sn_check_count(S->d, &o->val, 1, SN_BURST_MAX,
					    "burst", &l->burst) && ok;
			break;
		case SN_OPT_PER:
			ok = once(S, first, o, per_word(o->family)) &&
			     sn_check_plen(S->d, &o->val, o->family,
				o->family == SN_FAMILY_V4 ? SN_KEY_V4_MIN
							  : SN_KEY_V6_MIN,
				"key prefix",
				o->family == SN_FAMILY_V4 ? &l->key_v4
							  : &l->key_v6) && ok;
			break;
		case SN_OPT_BLOCK_FOR:
			ok = once(S, first, o, "then block for") &&
			     sn_check_duration(S->d, &o->val, "block duration",
					       &v) && ok;
			l->block_for = ok ? v : 0;
			break;
		default:
			break; /* not a limit option (the grammar) */
		}
	}
	if (!have_rate) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E049",
			s->loc, "limit rule without a rate");

		sn_diag_hint(S->d, g, "add e.g. 'rate 100/s'");
		return false;
	}
	/* Default burst: one second of rate, at least one token. */
	if (ok && !have_burst)
		l->burst = (l->rate.count + l->rate.period - 1) / l->rate.period;
	return ok;
}

static void do_limit(struct sema *S, const struct sn_ast_stmt *s)
{
	struct sn_limit l;
	char buf[32];
	bool ok;
	int proto;

	memset(&l, 0, sizeof(l));
	ok = rule_srcs(S, s, &l.srcs, &l.n_srcs);
	proto = l4_proto(S, &s->l4);
	if (proto == -2)
		ok = false;
	if (!rule_ports(S, s, &l.ports, &l.n_ports))
		ok = false;
	if (!limit_opts(S, s, &l))
		ok = false;
	if (!ok || S->oom)
		return;
	if (l.n_srcs == 0) {
		struct sn_diag *g = sn_diag_add(S->d, SN_SEV_ERROR, "E021",
			s->srcs.head ? s->srcs.head->loc : s->loc,
			"limit rule has no sources: the sets and lists it "
			"names are empty");

		sn_diag_hint(S->d, g, "a rule that can never match is "
				      "probably a mistake; remove it or fill "
				      "the set");
		return;
	}
	if (!family_filter(S, s, proto, &l.srcs, &l.n_srcs))
		return;
	l.id = (uint32_t)S->pol->n_limits;
	l.proto = (int16_t)proto;
	l.loc = s->loc;
	text_limit_match(S, s, &l);
	l.identity_text = text_freeze(S);
	l.identity = sn_fnv1a64(l.identity_text ? l.identity_text : "");
	/* The full text: match, then every parameter in a fixed order. */
	S->text_len = 0;
	text_str(S, "limit");
	if (s->has_from) {
		text_str(S, " from ");
		text_list(S, &s->srcs);
	}
	text_l4(S, &s->l4, false);
	sn_format_rate(&l.rate, buf, sizeof(buf));
	text_str(S, " rate ");
	text_str(S, buf);
	text_fmt(S, " burst %u", l.burst);
	text_fmt(S, " per ipv4 /%u", l.key_v4);
	text_fmt(S, " per ipv6 /%u", l.key_v6);
	if (l.block_for) {
		sn_format_duration(l.block_for, buf, sizeof(buf));
		text_str(S, " then block for ");
		text_str(S, buf);
	}
	l.text = text_freeze(S);
	S->pol->limits[S->pol->n_limits++] = l;
}

static void do_syncookies(struct sema *S, const struct sn_ast_stmt *s)
{
	struct sn_syncookies c;
	bool ok;

	memset(&c, 0, sizeof(c));
	ok = rule_ports(S, s, &c.ports, &c.n_ports);
	for (const struct sn_ast_opt *o = s->opts.head; o; o = o->next)
		if (o->kind == SN_OPT_ABOVE &&
		    !sn_check_rate(S->d, &o->val, "SYN threshold", &c.above))
			ok = false;
	if (!ok || S->oom || c.n_ports == 0)
		return;
	c.loc = s->loc;
	S->pol->syncookies[S->pol->n_syncookies++] = c;
}

static void do_dns_block(struct sema *S, const struct sn_ast_stmt *s)
{
	struct sn_dns *dns = &S->pol->dns;

	for (const struct sn_ast_item *it = s->items.head; it; it = it->next) {
		bool oom = false;

		if (it->kind == SN_ITEM_DNAME &&
		    sn_dns_name_check(S->d, S->a, it, &dns->block[dns->n_block],
				      &oom))
			dns->n_block++;
		if (oom)
			S->oom = true;
	}
}

/* One dns stale/alert or autoblock setting: each at most once (E046). */
static void do_setting(struct sema *S, const struct sn_ast_opt *o)
{
	struct sn_dns *dns = &S->pol->dns;
	struct sn_autoblock *ab = &S->pol->autoblock;
	uint32_t v;

	switch (o->kind) {
	case SN_OPT_STALE_TTL:
		if (once(S, &dns->stale_ttl_loc, o, "dns stale ttl") &&
		    sn_check_duration(S->d, &o->val, "stale ttl", &v))
			dns->stale_ttl = v;
		break;
	case SN_OPT_STALE_MAX_AGE:
		if (once(S, &dns->stale_max_age_loc, o, "dns stale max-age") &&
		    sn_check_duration(S->d, &o->val, "stale max-age", &v))
			dns->stale_max_age = v;
		break;
	case SN_OPT_QUERY_RATE:
		if (once(S, &dns->query_rate_loc, o, "dns alert query-rate"))
			sn_check_rate(S->d, &o->val, "query-rate",
				      &dns->query_rate);
		break;
	case SN_OPT_MIN_TTL:
		if (once(S, &dns->min_ttl_loc, o, "dns alert min-ttl") &&
		    sn_check_duration(S->d, &o->val, "min-ttl", &v))
			dns->min_ttl = v;
		break;
	case SN_OPT_NAME_LENGTH:
		if (once(S, &dns->name_length_loc, o, "dns alert name-length"))
			sn_check_count(S->d, &o->val, 1, SN_DNS_NAME_MAX,
				       "name-length", &dns->name_length);
		break;
	case SN_OPT_LABEL_ENTROPY:
		if (once(S, &dns->label_entropy_loc, o,
			 "dns alert label-entropy"))
			sn_check_entropy(S->d, &o->val,
					 &dns->label_entropy_milli);
		break;
	case SN_OPT_NEW_DOMAINS:
		if (once(S, &dns->new_domains_loc, o, "dns alert new-domains"))
			dns->new_domains = true;
		break;
	case SN_OPT_MODE:
		if (once(S, &ab->mode_loc, o, "autoblock mode"))
			ab->mode = (uint8_t)o->val.value;
		break;
	case SN_OPT_TTL:
		if (once(S, &ab->ttl_loc, o, "autoblock ttl") &&
		    sn_check_duration(S->d, &o->val, "autoblock ttl", &v))
			ab->ttl = v;
		break;
	case SN_OPT_RATE:
		if (once(S, &ab->rate_loc, o, "autoblock rate"))
			sn_check_rate(S->d, &o->val, "autoblock rate", &ab->rate);
		break;
	case SN_OPT_MAX_PREFIX:
		if (o->family == SN_FAMILY_V4 &&
		    once(S, &ab->max_v4_loc, o, "autoblock max-prefix ipv4"))
			sn_check_plen(S->d, &o->val, SN_FAMILY_V4, SN_KEY_V4_MIN,
				      "max-prefix", &ab->max_v4);
		if (o->family == SN_FAMILY_V6 &&
		    once(S, &ab->max_v6_loc, o, "autoblock max-prefix ipv6"))
			sn_check_plen(S->d, &o->val, SN_FAMILY_V6, SN_KEY_V6_MIN,
				      "max-prefix", &ab->max_v6);
		break;
	case SN_OPT_BURST:
	case SN_OPT_PER:
	case SN_OPT_BLOCK_FOR:
	case SN_OPT_ABOVE:
		break; /* statement options, not settings (the grammar) */
	}
}

static void do_never(struct sema *S, const struct sn_ast_stmt *s)
{
	struct sn_src *v;
	size_t n;

	if (rule_srcs(S, s, &v, &n) && !S->oom)
		vec_append(S, &S->never, v, n);
}

/* Defaults of the settings (SPEC.md 2.6, 2.7). */
static void settings_init(struct sn_policy *p)
{
	p->dns.stale_ttl = SN_DNS_STALE_TTL_DEFAULT;
	p->dns.stale_max_age = SN_DNS_STALE_MAX_AGE_DEFAULT;
	p->autoblock.mode = SN_MODE_DRY_RUN;
	p->autoblock.ttl = SN_AUTOBLOCK_TTL_DEFAULT;
	p->autoblock.max_v4 = SN_AUTOBLOCK_MAX_V4_DEFAULT;
	p->autoblock.max_v6 = SN_AUTOBLOCK_MAX_V6_DEFAULT;
	p->autoblock.rate = (struct sn_rate){ SN_AUTOBLOCK_RATE_DEFAULT, 60 };
}

/* After every statement: checks across statements. */
static void finish_features(struct sema *S)
{
	struct sn_policy *p = S->pol;

	if (sn_dns_names_dedupe(S->d, p->dns.block, &p->dns.n_block) ||
	    sn_limits_check(S->d, p) || sn_syncookies_check(S->d, p)) {
		S->oom = true;
		return;
	}
	p->autoblock.never = vec_freeze(S, &S->never);
	p->autoblock.n_never = S->never.n;
}

static void do_stmt(struct sema *S, const struct sn_ast_stmt *s)
{
	switch (s->kind) {
	case SN_STMT_RULE:
		do_rule(S, s);
		break;
	case SN_STMT_DEFAULT:
		do_default(S, s);
		break;
	case SN_STMT_EXPECT:
		do_expect(S, s);
		break;
	case SN_STMT_LIMIT:
		do_limit(S, s);
		break;
	case SN_STMT_SYNCOOKIES:
		do_syncookies(S, s);
		break;
	case SN_STMT_DNS_BLOCK:
		do_dns_block(S, s);
		break;
	case SN_STMT_DNS_STALE:
	case SN_STMT_DNS_ALERT:
	case SN_STMT_AUTOBLOCK:
		for (const struct sn_ast_opt *o = s->opts.head; o; o = o->next)
			do_setting(S, o);
		break;
	case SN_STMT_AUTOBLOCK_NEVER:
		do_never(S, s);
		break;
	case SN_STMT_INCLUDE:
	case SN_STMT_DEFINE:
	case SN_STMT_SET:
		break;
	}
}

/* ---- entry ------------------------------------------------------------------ */

static bool names_init(struct sema *S, struct names *t, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n + 1)
		cap *= 2;
	t->cap = cap;
	t->slot = sn_arena_calloc(S->a, cap, sizeof(*t->slot));
	return t->slot != NULL;
}

int sn_sema(struct sn_ctx *ctx, const struct sn_ast *ast,
	    struct sn_policy **out)
{
	struct sema S;
	size_t n_defs;
	int ret;

	if (!ast)
		return -EINVAL;
	memset(&S, 0, sizeof(S));
	S.ctx = ctx;
	S.d = &ctx->diags;
	S.a = &ctx->arena;
	S.srcs.elt = sizeof(struct sn_src);
	S.ports.elt = sizeof(struct sn_port_range);
	S.never.elt = sizeof(struct sn_src);

	walk(&S, ast, count_stmt);
	n_defs = S.n_defs;
	S.n_defs = 0;
	S.pol = sn_arena_alloc(S.a, sizeof(*S.pol));
	S.defs = sn_arena_calloc(S.a, n_defs + 1, sizeof(*S.defs));
	S.stack = calloc(n_defs + 1, sizeof(*S.stack));
	S.frames = calloc(n_defs + 1, sizeof(*S.frames));
	if (!S.pol || !S.defs || !S.stack || !S.frames ||
	    !names_init(&S, &S.vars, n_defs) || !names_init(&S, &S.sets, n_defs))
		S.oom = true;
	if (!S.oom) {
		S.pol->rules = sn_arena_calloc(S.a, S.max_rules + 1,
					       sizeof(*S.pol->rules));
		S.pol->expects = sn_arena_calloc(S.a, S.max_expects + 1,
						 sizeof(*S.pol->expects));
		S.pol->main_file = ast->path;
		S.pol->default_v4.verdict = SN_VERDICT_ALLOW;
		S.pol->default_v6.verdict = SN_VERDICT_ALLOW;
		S.pol->limits = sn_arena_calloc(S.a, S.max_limits + 1,
						sizeof(*S.pol->limits));
		S.pol->syncookies = sn_arena_calloc(S.a, S.max_syncookies + 1,
						    sizeof(*S.pol->syncookies));
		S.pol->dns.block = sn_arena_calloc(S.a, S.max_dns_names + 1,
						   sizeof(*S.pol->dns.block));
		settings_init(S.pol);
		if (!S.pol->rules || !S.pol->expects || !S.pol->limits ||
		    !S.pol->syncookies || !S.pol->dns.block)
			S.oom = true;
	}
	if (!S.oom)
		walk(&S, ast, collect_def);
	/* Expand in source order so diagnostics come out in a stable order. */
	for (size_t i = 0; i < S.n_defs && !S.oom; i++)
		validate(&S, &S.defs[i]);
	if (!S.oom)
		walk(&S, ast, do_stmt);
	if (!S.oom)
		finish_features(&S);

	if (S.oom)
		ret = -ENOMEM;
	else if (ctx->diags.n_errors)
		ret = -EINVAL;
	else
		ret = 0;
	if (ret == 0)
		*out = S.pol;
	free(S.stack);
	free(S.frames);
	free(S.lists);
	free(S.srcs.v);
	free(S.ports.v);
	free(S.never.v);
	free(S.text);
	return ret;
}

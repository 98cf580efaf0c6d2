/*
 * The canonical printer behind `sentry-compile fmt` (layout rules in
 * fmt.h).  The AST has no comments, so they are recovered from the text: a
 * '#' outside a string starts one.  Every comment is then placed by line
 * number against the statements and list items the AST locates.
 */
#include "fmt.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../bpf/sentry_abi.h"
#include "ast.h"
#include "policy.h"

#define FMT_MAX_WIDTH 100
#define FMT_INDENT "    "

struct comment {
	uint32_t line;
	bool trailing; /* code before it on its line */
	bool done;
	const char *text; /* from '#' to the end of the line, trimmed */
	size_t len;
};

struct outbuf {
	char *buf;
	size_t len, cap;
	bool oom;
};

struct fmt {
	struct outbuf out;
	struct comment *c;
	size_t n_c;
	uint8_t *code_lines; /* code_lines[line]: the line holds code */
	bool *blank_lines;   /* blank_lines[line]: nothing but whitespace */
	uint32_t n_lines;
	bool at_start;       /* nothing emitted yet: no blank line first */
	uint32_t stmt_end;   /* last code line of the statement being printed */
};

static void put(struct outbuf *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 1024;

		while (cap < o->len + n + 1)
			cap *= 2;
		char *b = realloc(o->buf, cap);

		if (!b) {
			o->oom = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void puts_(struct outbuf *o, const char *s)
{
	put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct outbuf *o,
						       const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);

	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- comments and line facts from the raw text -------------------------- */

static int scan_text(struct fmt *f, const char *text, size_t len)
{
	uint32_t lines = 1;

	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	f->n_lines = lines;
	f->code_lines = calloc(lines + 2, 1);
	f->blank_lines = calloc(lines + 2, sizeof(bool));
	f->c = calloc(lines + 1, sizeof(*f->c));
	if (!f->code_lines || !f->blank_lines || !f->c)
		return -ENOMEM;

	uint32_t line = 1;
	size_t i = 0;

	while (i <= len) {
		size_t eol = i;

		while (eol < len && text[eol] != '\n')
			eol++;
		bool in_string = false, code = false;

		for (size_t k = i; k < eol; k++) {
			char ch = text[k];

			if (in_string) {
				if (ch == '\\' && k + 1 < eol)
					k++;
				else if (ch == '"')
					in_string = false;
				continue;
			}
			if (ch == '"') {
				in_string = code = true;
			} else if (ch == '#') {
				size_t end = eol;

				while (end > k && isspace((unsigned char)text[end - 1]))
					end--;
				f->c[f->n_c++] = (struct comment){
					.line = line, .trailing = code,
					.text = text + k, .len = end - k };
				break;
			} else if (!isspace((unsigned char)ch)) {
				code = true;
			}
		}
		f->code_lines[line] = code;
		f->blank_lines[line] = !code && (f->n_c == 0 ||
						 f->c[f->n_c - 1].line != line);
		line++;
		i = eol + 1;
	}
	return 0;
}

static void emit_comment(struct fmt *f, struct comment *c, const char *indent)
{
	puts_(&f->out, indent);
	put(&f->out, c->text, c->len);
	puts_(&f->out, "\n");
	c->done = true;
	f->at_start = false;
}

/* The trailing comment on this line, if any and not yet placed. */
static struct comment *trailing_on(struct fmt *f, uint32_t line)
{
	for (size_t i = 0; i < f->n_c; i++)
		if (f->c[i].line == line && f->c[i].trailing && !f->c[i].done)
			return &f->c[i];
	return NULL;
}

/* Own-line comments before `line` (and after `after`) not yet placed. */
static void own_comments_before(struct fmt *f, uint32_t after, uint32_t line,
				const char *indent)
{
	for (size_t i = 0; i < f->n_c; i++) {
		struct comment *c = &f->c[i];

		if (!c->done && c->line > after && c->line < line)
			emit_comment(f, c, indent);
	}
}

/* ---- items and lists --------------------------------------------------- */

static void put_string(struct outbuf *o, const char *s)
{
	put(o, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			put(o, "\\", 1);
		put(o, s, 1);
	}
	put(o, "\"", 1);
}

static void put_item(struct outbuf *o, const struct sn_ast_item *it)
{
	switch (it->kind) {
	case SN_ITEM_ADDR:
		for (const char *p = it->text; *p; p++) {
			char ch = (char)tolower((unsigned char)*p);

			put(o, &ch, 1);
		}
		break;
	case SN_ITEM_ANY:
		puts_(o, "any");
		break;
	case SN_ITEM_SET:
		putf(o, "@%s", it->text);
		break;
	case SN_ITEM_VAR:
		putf(o, "$%s", it->text);
		break;
	case SN_ITEM_FILE:
		puts_(o, "file ");
		put_string(o, it->text);
		break;
	case SN_ITEM_PORT:
		puts_(o, it->lo.text);
		break;
	case SN_ITEM_RANGE:
		putf(o, "%s-%s", it->lo.text, it->hi.text);
		break;
	case SN_ITEM_DNAME:
		put_string(o, it->text);
		break;
	}
}

/* Width of the one-line rendering of a list. */
static size_t list_width(const struct sn_ast_list *l)
{
	struct outbuf tmp = { 0 };
	size_t w;

	for (const struct sn_ast_item *it = l->head; it; it = it->next) {
		put_item(&tmp, it);
		puts_(&tmp, ", ");
	}
	w = tmp.len + 4;
	free(tmp.buf);
	return w;
}

static bool list_multiline(struct fmt *f, const struct sn_ast_list *l,
			   size_t column)
{
	if (!l->braced || !l->head)
		return false;
	uint32_t first = l->head->loc.line, last = l->tail->loc.line;

	if (first != last)
		return true;
	for (size_t i = 0; i < f->n_c; i++)
		if (f->c[i].line >= first && f->c[i].line < last)
			return true;
	return column + list_width(l) > FMT_MAX_WIDTH;
}

static size_t current_column(const struct outbuf *o)
{
	size_t col = 0;

	for (size_t i = o->len; i > 0 && o->buf[i - 1] != '\n'; i--)
		col++;
	return col;
}

/*
 * A list, braced or not.  Multi-line lists carry the comments written
 * among their items.  *last_line gets the source line of the last item.
 */
static void put_list(struct fmt *f, const struct sn_ast_list *l,
		     const char *sep)
{
	struct outbuf *o = &f->out;

	if (!l->braced) {
		for (const struct sn_ast_item *it = l->head; it; it = it->next) {
			put_item(o, it);
			if (it->next)
				puts_(o, sep);
		}
		return;
	}
	if (!l->head) {
		puts_(o, "{ }");
		return;
	}
	if (!list_multiline(f, l, current_column(o))) {
		puts_(o, "{ ");
		for (const struct sn_ast_item *it = l->head; it; it = it->next) {
			put_item(o, it);
			if (it->next)
				puts_(o, ", ");
		}
		puts_(o, " }");
		return;
	}
	puts_(o, "{\n");
	uint32_t prev = 0;

	for (const struct sn_ast_item *it = l->head; it; it = it->next) {
		uint32_t line = it->loc.line;

		/* Comments between the previous item and this one. */
		for (size_t i = 0; i < f->n_c; i++) {
			struct comment *c = &f->c[i];

			if (!c->done && c->line < line && (c->line > prev || !prev) &&
			    !(c->trailing && c->line == prev))
				emit_comment(f, c, FMT_INDENT);
		}
		puts_(o, FMT_INDENT);
		put_item(o, it);
		puts_(o, ",");
		/* A trailing comment belongs to the last item on its line. */
		if (!it->next || it->next->loc.line != line) {
			struct comment *c = trailing_on(f, line);

			if (c) {
				puts_(o, "  ");
				put(o, c->text, c->len);
				c->done = true;
			}
		}
		puts_(o, "\n");
		prev = line;
	}
	/* Own-line comments between the last item and the closing brace. */
	for (size_t i = 0; i < f->n_c; i++) {
		struct comment *c = &f->c[i];

		if (!c->done && !c->trailing && c->line > prev &&
		    c->line < f->stmt_end)
			emit_comment(f, c, FMT_INDENT);
	}
	puts_(o, "}");
}

/* ---- statements -------------------------------------------------------- */

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

static void put_l4(struct fmt *f, const struct sn_ast_l4 *l4)
{
	struct outbuf *o = &f->out;

	switch (l4->kind) {
	case SN_L4_NONE:
		return;
	case SN_L4_TCP:
		puts_(o, "tcp");
		break;
	case SN_L4_UDP:
		puts_(o, "udp");
		break;
	case SN_L4_ICMP:
		puts_(o, "icmp");
		break;
	case SN_L4_ICMPV6:
		puts_(o, "icmpv6");
		break;
	case SN_L4_ANY:
		puts_(o, "any");
		break;
	case SN_L4_PROTO:
		putf(o, "proto %s", l4->proto.text);
		break;
	}
	if (l4->has_ports) {
		puts_(o, " port ");
		put_list(f, &l4->ports, ", ");
	}
}

/* Options in one fixed order, whatever order they were written in. */
static const enum sn_opt_kind opt_order[] = {
	SN_OPT_MODE,          SN_OPT_RATE,        SN_OPT_BURST,
	SN_OPT_PER,           SN_OPT_BLOCK_FOR,   SN_OPT_ABOVE,
	SN_OPT_STALE_TTL,     SN_OPT_STALE_MAX_AGE, SN_OPT_TTL,
	SN_OPT_MAX_PREFIX,    SN_OPT_QUERY_RATE,  SN_OPT_MIN_TTL,
	SN_OPT_NAME_LENGTH,   SN_OPT_LABEL_ENTROPY, SN_OPT_NEW_DOMAINS,
};

static const char *const opt_words[] = {
	[SN_OPT_RATE] = "rate",
	[SN_OPT_BURST] = "burst",
	[SN_OPT_PER] = "per",
	[SN_OPT_BLOCK_FOR] = "then block for",
	[SN_OPT_ABOVE] = "above",
	[SN_OPT_STALE_TTL] = "ttl",
	[SN_OPT_STALE_MAX_AGE] = "max-age",
	[SN_OPT_QUERY_RATE] = "query-rate",
	[SN_OPT_MIN_TTL] = "min-ttl",
	[SN_OPT_NAME_LENGTH] = "name-length",
	[SN_OPT_LABEL_ENTROPY] = "label-entropy",
	[SN_OPT_NEW_DOMAINS] = "new-domains",
	[SN_OPT_MODE] = "mode",
	[SN_OPT_TTL] = "ttl",
	[SN_OPT_MAX_PREFIX] = "max-prefix",
};

static void put_opt(struct outbuf *o, const struct sn_ast_opt *op,
		    bool *max_prefix_open)
{
	const char *fw = op->family == SN_FAMILY_V6 ? "ipv6" : "ipv4";
	bool continues = op->kind == SN_OPT_MAX_PREFIX && *max_prefix_open;

	/* "max-prefix ipv4 /24 ipv6 /48": one keyword for both families. */
	*max_prefix_open = op->kind == SN_OPT_MAX_PREFIX;
	if (!continues)
		putf(o, " %s", opt_words[op->kind]);
	if (op->kind == SN_OPT_PER || op->kind == SN_OPT_MAX_PREFIX)
		putf(o, " %s", fw);
	if (op->kind == SN_OPT_MODE)
		puts_(o, op->val.value == SN_MODE_ENFORCE ? " enforce" : " dry-run");
	else if (op->has_val)
		putf(o, " %s", op->val.text);
}

static void put_opts(struct fmt *f, const struct sn_ast_opts *opts)
{
	bool max_prefix_open = false;

	for (size_t k = 0; k < sizeof(opt_order) / sizeof(opt_order[0]); k++)
		for (int v6 = 0; v6 <= 1; v6++) /* IPv4 before IPv6 */
			for (const struct sn_ast_opt *op = opts->head; op;
			     op = op->next)
				if (op->kind == opt_order[k] &&
				    (op->family == SN_FAMILY_V6) == v6)
					put_opt(&f->out, op, &max_prefix_open);
}

static void put_stmt(struct fmt *f, const struct sn_ast_stmt *s)
{
	struct outbuf *o = &f->out;

	switch (s->kind) {
	case SN_STMT_INCLUDE:
		puts_(o, "include ");
		put_string(o, s->path);
		break;
	case SN_STMT_DEFINE:
		putf(o, "define %s = ", s->name);
		put_list(f, &s->items, ", ");
		break;
	case SN_STMT_SET:
		putf(o, "set %s = ", s->name);
		put_list(f, &s->items, ", ");
		break;
	case SN_STMT_DEFAULT:
		putf(o, "default %s%s", s->family == SN_FAMILY_V4 ? "ipv4 "
					: s->family == SN_FAMILY_V6 ? "ipv6 " : "",
		     verdict_word(s->verdict));
		break;
	case SN_STMT_RULE:
		putf(o, "%s%s", s->tier == SN_TIER_ALWAYS ? "always " : "",
		     verdict_word(s->verdict));
		if (s->has_from) {
			puts_(o, " from ");
			put_list(f, &s->srcs, ", ");
		}
		if (s->l4.kind != SN_L4_NONE) {
			puts_(o, " to ");
			put_l4(f, &s->l4);
		}
		break;
	case SN_STMT_EXPECT:
		putf(o, "expect %s from ", verdict_word(s->verdict));
		put_item(o, s->addr);
		if (s->l4.kind != SN_L4_NONE) {
			/* An expect names one port, not a port list. */
			struct sn_ast_l4 proto_only = s->l4;

			proto_only.has_ports = false;
			puts_(o, " to ");
			put_l4(f, &proto_only);
			if (s->l4.port.text)
				putf(o, " port %s", s->l4.port.text);
		}
		if (s->l4.fragment)
			puts_(o, " fragment");
		break;
	case SN_STMT_LIMIT:
		puts_(o, "limit");
		if (s->has_from) {
			puts_(o, " from ");
			put_list(f, &s->srcs, ", ");
		}
		if (s->l4.kind != SN_L4_NONE) {
			puts_(o, " to ");
			put_l4(f, &s->l4);
		}
		put_opts(f, &s->opts);
		break;
	case SN_STMT_SYNCOOKIES:
		puts_(o, "syncookies port ");
		put_list(f, &s->l4.ports, ", ");
		put_opts(f, &s->opts);
		break;
	case SN_STMT_DNS_BLOCK:
		puts_(o, "dns block ");
		put_list(f, &s->items, ", ");
		break;
	case SN_STMT_DNS_STALE:
		puts_(o, "dns stale");
		put_opts(f, &s->opts);
		break;
	case SN_STMT_DNS_ALERT:
		puts_(o, "dns alert");
		put_opts(f, &s->opts);
		break;
	case SN_STMT_AUTOBLOCK:
		puts_(o, "autoblock");
		put_opts(f, &s->opts);
		break;
	case SN_STMT_AUTOBLOCK_NEVER:
		puts_(o, "autoblock never ");
		put_list(f, &s->srcs, ", ");
		break;
	}
}

/*
 * Own-line comments on lines [from, to), each run of blank lines before one
 * kept as a single blank line.  Returns whether blank lines follow the last
 * comment (the caller decides whether one goes before what comes next).
 */
static bool emit_gap(struct fmt *f, uint32_t from, uint32_t to)
{
	bool blank = false;

	for (uint32_t l = from; l < to; l++) {
		if (f->blank_lines[l]) {
			blank = true;
			continue;
		}
		for (size_t i = 0; i < f->n_c; i++)
			if (f->c[i].line == l && !f->c[i].done) {
				if (blank && !f->at_start)
					puts_(&f->out, "\n");
				blank = false;
				emit_comment(f, &f->c[i], "");
			}
	}
	return blank;
}

/* The last source line holding code of a statement that starts at `start`
 * and is followed by one starting at `next` (0: end of file). */
static uint32_t stmt_end(const struct fmt *f, uint32_t start, uint32_t next)
{
	uint32_t end = start, limit = next ? next : f->n_lines + 1;

	for (uint32_t l = start + 1; l < limit && l <= f->n_lines; l++)
		if (f->code_lines[l])
			end = l;
	return end;
}

int sn_fmt_text(struct sn_ctx *ctx, const char *name, const char *text,
		size_t len, char **out, size_t *out_len)
{
	struct sn_ast *ast = NULL;
	struct fmt f = { .at_start = true };
	int rc = sn_parse_text(ctx, name, text, len, &ast);

	if (rc)
		return rc;
	if (!ast || ast->n_syntax_errors)
		return -EINVAL;
	rc = scan_text(&f, text, len);
	if (rc)
		goto out;

	uint32_t prev_end = 0;

	for (const struct sn_ast_stmt *s = ast->stmts; s; s = s->next) {
		uint32_t start = s->loc.line;
		uint32_t next = s->next ? s->next->loc.line : 0;
		uint32_t end = stmt_end(&f, start, next);
		if (next == start)
			end = start; /* `a; b` on one line */
		if (emit_gap(&f, prev_end + 1, start) && !f.at_start)
			puts_(&f.out, "\n");
		f.stmt_end = end;
		put_stmt(&f, s);
		f.at_start = false;
		/* Comments inside the statement that no list item took. */
		if (!(next == start)) {
			struct comment *tc = trailing_on(&f, end);

			if (tc) {
				puts_(&f.out, "  ");
				put(&f.out, tc->text, tc->len);
				tc->done = true;
			}
		}
		puts_(&f.out, "\n");
		if (next != start) /* else the line's comments go with the last */
			own_comments_before(&f, start - 1, end + 1, "");
		prev_end = end > prev_end ? end : prev_end;
	}
	/* Comments after the last statement; trailing blank lines go. */
	emit_gap(&f, prev_end + 1, f.n_lines + 1);
	if (f.out.oom) {
		rc = -ENOMEM;
		goto out;
	}
	if (!f.out.buf) {
		f.out.buf = calloc(1, 1);
		if (!f.out.buf) {
			rc = -ENOMEM;
			goto out;
		}
	}
	*out = f.out.buf;
	*out_len = f.out.len;
	f.out.buf = NULL;
out:
	free(f.out.buf);
	free(f.c);
	free(f.code_lines);
	free(f.blank_lines);
	return rc;
}

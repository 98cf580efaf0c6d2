/*
 * AST dump for golden tests and debugging: one node per line, two spaces
 * per level, each node with its @line:col.  The output depends only on the
 * input text, never on addresses or hash order.
 */
#include <string.h>

#include "../bpf/sentry_abi.h"
#include "ast.h"
#include "compile.h"
#include "policy.h"

static void indent(FILE *out, int depth)
{
	fprintf(out, "%*s", depth * 2, "");
}

static void at(FILE *out, struct sn_loc l)
{
	fprintf(out, " @%u:%u\n", (unsigned)l.line, (unsigned)l.col);
}

/* Text as written, made printable: a quoted form any byte survives. */
static void put_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(out, "\\x%02X", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Unvalidated token text (addresses may be anything the scanner took). */
static void put_text(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			fprintf(out, "\\x%02X", *p);
		else
			fputc(*p, out);
	}
}

static void dump_item_inline(FILE *out, const struct sn_ast_item *it)
{
	switch (it->kind) {
	case SN_ITEM_ADDR:
		fputs("prefix ", out);
		put_text(out, it->text);
		break;
	case SN_ITEM_ANY:
		fputs("any", out);
		break;
	case SN_ITEM_SET:
		fputs("set @", out);
		put_text(out, it->text);
		break;
	case SN_ITEM_VAR:
		fputs("var $", out);
		put_text(out, it->text);
		break;
	case SN_ITEM_FILE:
		fputs("file ", out);
		put_quoted(out, it->text);
		break;
	case SN_ITEM_PORT:
		fputs("port ", out);
		put_text(out, it->lo.text);
		break;
	case SN_ITEM_RANGE:
		fputs("range ", out);
		put_text(out, it->lo.text);
		fputc('-', out);
		put_text(out, it->hi.text);
		break;
	case SN_ITEM_DNAME:
		fputs("name ", out);
		put_quoted(out, it->text);
		break;
	}
	at(out, it->loc);
}

static void dump_items(FILE *out, const struct sn_ast_list *l, int depth)
{
	for (const struct sn_ast_item *it = l->head; it; it = it->next) {
		indent(out, depth);
		dump_item_inline(out, it);
	}
}

static const char *l4_name(enum sn_l4_kind k)
{
	switch (k) {
	case SN_L4_NONE:
		return "none";
	case SN_L4_TCP:
		return "tcp";
	case SN_L4_UDP:
		return "udp";
	case SN_L4_ICMP:
		return "icmp";
	case SN_L4_ICMPV6:
		return "icmpv6";
	case SN_L4_ANY:
		return "any";
	case SN_L4_PROTO:
		return "proto";
	}
	return "?";
}

static void dump_l4(FILE *out, const struct sn_ast_l4 *l4, bool expect,
		    int depth)
{
	if (l4->kind != SN_L4_NONE) {
		indent(out, depth);
		fprintf(out, "to %s", l4_name(l4->kind));
		if (l4->kind == SN_L4_PROTO) {
			fputc(' ', out);
			put_text(out, l4->proto.text);
		}
		at(out, l4->loc);
		if (l4->has_ports && expect) {
			indent(out, depth + 1);
			fputs("port ", out);
			put_text(out, l4->port.text);
			at(out, l4->port.loc);
		} else if (l4->has_ports) {
			dump_items(out, &l4->ports, depth + 1);
		}
	}
	if (l4->fragment) {
		indent(out, depth);
		fputs("fragment", out);
		at(out, l4->fragment_loc);
	}
}

static const char *verdict_name(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

static const char *inc_state_name(enum sn_include_state s)
{
	switch (s) {
	case SN_INC_PARSED:
		return "parsed";
	case SN_INC_UNREADABLE:
		return "unreadable";
	case SN_INC_CYCLE:
		return "cycle";
	case SN_INC_TOO_DEEP:
		return "too deep";
	case SN_INC_DUPLICATE:
		return "already included";
	case SN_INC_NOT_RESOLVED:
		return "not resolved";
	}
	return "?";
}

static const char *opt_name(enum sn_opt_kind k)
{
	switch (k) {
	case SN_OPT_RATE:
		return "rate";
	case SN_OPT_BURST:
		return "burst";
	case SN_OPT_PER:
		return "per";
	case SN_OPT_BLOCK_FOR:
		return "then block for";
	case SN_OPT_ABOVE:
		return "above";
	case SN_OPT_STALE_TTL:
	case SN_OPT_TTL:
		return "ttl";
	case SN_OPT_STALE_MAX_AGE:
		return "max-age";
	case SN_OPT_QUERY_RATE:
		return "query-rate";
	case SN_OPT_MIN_TTL:
		return "min-ttl";
	case SN_OPT_NAME_LENGTH:
		return "name-length";
	case SN_OPT_LABEL_ENTROPY:
		return "label-entropy";
	case SN_OPT_NEW_DOMAINS:
		return "new-domains";
	case SN_OPT_MODE:
		return "mode";
	case SN_OPT_MAX_PREFIX:
		return "max-prefix";
	}
	return "?";
}

/* One setting per line: "rate 100/s", "per ipv4 /24". */
static void dump_opts(FILE *out, const struct sn_ast_opts *o, int depth)
{
	for (const struct sn_ast_opt *x = o->head; x; x = x->next) {
		indent(out, depth);
		fputs(opt_name(x->kind), out);
		if (x->family)
			fprintf(out, " ipv%d", x->family);
		if (x->has_val) {
			fputc(' ', out);
			put_text(out, x->val.text);
		}
		at(out, x->loc);
	}
}

static void dump_from(FILE *out, const struct sn_ast_stmt *s, int depth)
{
	indent(out, depth);
	if (!s->has_from) {
		fputs("from any (implicit)\n", out);
	} else if (!s->srcs.braced && s->srcs.head) {
		fputs("from ", out);
		dump_item_inline(out, s->srcs.head);
	} else {
		fputs("from {}\n", out);
		dump_items(out, &s->srcs, depth + 1);
	}
}

static void dump_file(FILE *out, const struct sn_ast *ast, int depth);

static void dump_stmt(FILE *out, const struct sn_ast_stmt *s, int depth)
{
	indent(out, depth);
	switch (s->kind) {
	case SN_STMT_INCLUDE:
		fputs("include ", out);
		put_quoted(out, s->path);
		at(out, s->loc);
		if (s->inc_state == SN_INC_PARSED && s->file) {
			dump_file(out, s->file, depth + 1);
		} else {
			indent(out, depth + 1);
			fprintf(out, "(%s", inc_state_name(s->inc_state));
			if (s->resolved) {
				fputs(": ", out);
				put_text(out, s->resolved);
			}
			fputs(")\n", out);
		}
		break;
	case SN_STMT_DEFINE:
	case SN_STMT_SET:
		fprintf(out, "%s ", s->kind == SN_STMT_SET ? "set" : "define");
		put_text(out, s->name);
		if (s->broken)
			fputs(" (syntax error)", out);
		at(out, s->loc);
		dump_items(out, &s->items, depth + 1);
		break;
	case SN_STMT_DEFAULT:
		fprintf(out, "default %s %s",
			s->family == SN_FAMILY_V4   ? "ipv4"
			: s->family == SN_FAMILY_V6 ? "ipv6"
						    : "both",
			verdict_name(s->verdict));
		at(out, s->loc);
		break;
	case SN_STMT_RULE:
		fprintf(out, "rule %s tier=%s", verdict_name(s->verdict),
			s->tier == SN_TIER_ALWAYS ? "always" : "normal");
		at(out, s->loc);
		dump_from(out, s, depth + 1);
		dump_l4(out, &s->l4, false, depth + 1);
		break;
	case SN_STMT_LIMIT:
		fputs("limit", out);
		at(out, s->loc);
		dump_from(out, s, depth + 1);
		dump_l4(out, &s->l4, false, depth + 1);
		dump_opts(out, &s->opts, depth + 1);
		break;
	case SN_STMT_SYNCOOKIES:
		fputs("syncookies", out);
		at(out, s->loc);
		dump_l4(out, &s->l4, false, depth + 1);
		dump_opts(out, &s->opts, depth + 1);
		break;
	case SN_STMT_DNS_BLOCK:
		fputs("dns block", out);
		at(out, s->loc);
		dump_items(out, &s->items, depth + 1);
		break;
	case SN_STMT_DNS_STALE:
	case SN_STMT_DNS_ALERT:
		fprintf(out, "dns %s",
			s->kind == SN_STMT_DNS_STALE ? "stale" : "alert");
		at(out, s->loc);
		dump_opts(out, &s->opts, depth + 1);
		break;
	case SN_STMT_AUTOBLOCK:
		fputs("autoblock", out);
		at(out, s->loc);
		dump_opts(out, &s->opts, depth + 1);
		break;
	case SN_STMT_AUTOBLOCK_NEVER:
		fputs("autoblock never", out);
		at(out, s->loc);
		dump_from(out, s, depth + 1);
		break;
	case SN_STMT_EXPECT:
		fprintf(out, "expect %s", verdict_name(s->verdict));
		at(out, s->loc);
		if (s->addr) {
			indent(out, depth + 1);
			fputs("from ", out);
			dump_item_inline(out, s->addr);
		}
		dump_l4(out, &s->l4, true, depth + 1);
		break;
	}
}

static void dump_file(FILE *out, const struct sn_ast *ast, int depth)
{
	indent(out, depth);
	fputs("file ", out);
	put_text(out, ast->path);
	fputc('\n', out);
	for (const struct sn_ast_stmt *s = ast->stmts; s; s = s->next)
		dump_stmt(out, s, depth + 1);
}

/* Include nesting is bounded (32), so the recursion is too. */
void sn_ast_dump(FILE *out, const struct sn_ast *ast)
{
	if (ast)
		dump_file(out, ast, 0);
}

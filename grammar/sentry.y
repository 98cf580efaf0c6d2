/*
 * 47Sentry policy grammar.  The parser only builds the AST (compiler/ast.h):
 * no name resolution, no range checks, no address validation - sema does
 * those, so every check has one home and one error code.
 *
 * Statements end at a newline or ';' (the scanner drops newlines inside
 * braces).  On a syntax error the parser skips to the end of the statement
 * and continues, so one run reports the errors of every statement.
 */
%define api.pure full
%define api.prefix {sn_yy}
%define parse.error custom
%locations
%param {yyscan_t scanner} {struct sn_pctx *pc}

%code requires {
#include "compiler/parse.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%code provides {
int sn_yylex(SN_YYSTYPE *yylval, SN_YYLTYPE *yylloc, yyscan_t scanner,
	     struct sn_pctx *pc);
}

%code {
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bpf/sentry_abi.h"
#include "compiler/policy.h"

static void sn_yyerror(SN_YYLTYPE *loc, yyscan_t scanner, struct sn_pctx *pc,
		       const char *msg);

#define LOC(l) sn_pctx_loc(pc, (l).first_line, (l).first_column, \
			   (l).last_line, (l).last_column)

/* Arena allocation in an action: out of memory aborts the parse. */
#define NEW(var)                                                        \
	do {                                                            \
		(var) = sn_arena_alloc(&pc->ctx->arena, sizeof(*(var)));  \
		if (!(var)) {                                           \
			pc->oom = true;                                 \
			YYNOMEM;                                        \
		}                                                       \
	} while (0)

static struct sn_ast_num mknum(struct sn_pctx *pc, struct sn_tok t,
			       SN_YYLTYPE l)
{
	struct sn_ast_num n = { t.value, t.text, LOC(l) };

	return n;
}

static void push(struct sn_ast_list *l, struct sn_ast_item *it)
{
	if (!it)
		return;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
	l->n++;
}

static void append(struct sn_pctx *pc, struct sn_ast_stmt *s)
{
	if (s) {
		*pc->tail = s;
		pc->tail = &s->next;
		pc->file->n_stmts++;
	}
}

static struct sn_ast_stmt *broken_def(struct sn_pctx *pc,
				      enum sn_stmt_kind kind, struct sn_tok name,
				      SN_YYLTYPE l1, SN_YYLTYPE l2)
{
	struct sn_ast_stmt *s = sn_arena_alloc(&pc->ctx->arena, sizeof(*s));

	if (!s) {
		pc->oom = true;
		return NULL;
	}
	s->kind = kind;
	s->loc = LOC(l1);
	s->name = name.text;
	s->name_loc = LOC(l2);
	s->broken = true;
	return s;
}

static struct sn_ast_list one(struct sn_ast_item *it)
{
	struct sn_ast_list l = { 0 };

	push(&l, it);
	return l;
}

/* A setting: its location runs from the keyword (kl) to the value (vl). */
static struct sn_ast_opts mkopt(struct sn_pctx *pc, enum sn_opt_kind kind,
				SN_YYLTYPE kl, int family, const struct sn_tok *v,
				SN_YYLTYPE vl)
{
	struct sn_ast_opts l = { 0 };
	struct sn_ast_opt *o = sn_arena_alloc(&pc->ctx->arena, sizeof(*o));

	if (!o) {
		pc->oom = true;
		return l;
	}
	o->kind = kind;
	o->loc = sn_pctx_loc(pc, kl.first_line, kl.first_column, vl.last_line,
			     vl.last_column);
	o->family = family;
	if (v) {
		o->has_val = true;
		o->val = mknum(pc, *v, vl);
	}
	l.head = l.tail = o;
	l.n = 1;
	return l;
}

static struct sn_ast_opts ocat(struct sn_ast_opts a, struct sn_ast_opts b)
{
	if (!a.head)
		return b;
	if (!b.head)
		return a;
	a.tail->next = b.head;
	a.tail = b.tail;
	a.n += b.n;
	return a;
}

static struct sn_ast_stmt *mkstmt(struct sn_pctx *pc, enum sn_stmt_kind kind,
				  SN_YYLTYPE l)
{
	struct sn_ast_stmt *s = sn_arena_alloc(&pc->ctx->arena, sizeof(*s));

	if (!s) {
		pc->oom = true;
		return NULL;
	}
	s->kind = kind;
	s->loc = LOC(l);
	return s;
}
}

%union {
	struct sn_tok tok;
	struct sn_ast_item *item;
	struct sn_ast_list list;
	struct sn_ast_stmt *stmt;
	struct sn_ast_l4 l4;
	struct sn_ast_opts opts;
	int ival;
}

%token K_INCLUDE "include" K_DEFINE "define" K_SET "set" K_FILE "file"
%token K_DEFAULT "default" K_IPV4 "ipv4" K_IPV6 "ipv6" K_ALWAYS "always"
%token K_ALLOW "allow" K_BLOCK "block" K_FROM "from" K_TO "to" K_ANY "any"
%token K_TCP "tcp" K_UDP "udp" K_ICMP "icmp" K_ICMPV6 "icmpv6"
%token K_PROTO "proto" K_PORT "port" K_EXPECT "expect" K_FRAGMENT "fragment"
%token <tok> K_LIMIT "limit" K_SYNCOOKIES "syncookies" K_DNS "dns"
%token <tok> K_AUTOBLOCK "autoblock" K_RATE "rate" K_BURST "burst" K_PER "per"
%token <tok> K_THEN "then" K_FOR "for" K_ABOVE "above" K_STALE "stale"
%token <tok> K_TTL "ttl" K_MAX_AGE "max-age" K_ALERT "alert"
%token <tok> K_QUERY_RATE "query-rate" K_MIN_TTL "min-ttl"
%token <tok> K_NAME_LENGTH "name-length" K_LABEL_ENTROPY "label-entropy"
%token <tok> K_NEW_DOMAINS "new-domains" K_MODE "mode" K_DRY_RUN "dry-run"
%token <tok> K_ENFORCE "enforce" K_MAX_PREFIX "max-prefix" K_NEVER "never"
%token <tok> IDENT "name" ADDR "address" NUMBER "number" STRING "string"
%token <tok> RATEV "rate value" DURATION "duration" PLEN "prefix length"
%token NL "end of line"

%type <item> vitem selem sitem pitem pnum dname
%type <list> value vlist slist src ports plist dnames
%type <stmt> broken stmt include define set default rule rbody expect
%type <stmt> limit syncookies dns autoblock
%type <opts> lopts lopt sopts sopt aopts aopt bopts bopt mpl mpi
%type <tok> name ctxkw decimal
%type <l4> l4 el4 eto
%type <ival> verdict family

%%

policy:
	  %empty
	| policy line
	;

line:
	  term
	| stmt term { append(pc, $1); }
	| error term { yyerrok; }
	| broken { yyerrok; append(pc, $1); }
	;

/*
 * A set or variable whose body has a syntax error: keep the name, so uses
 * of it are not reported again as unknown.  The rule ends in the
 * terminator itself so that error recovery (which skips tokens up to the
 * terminator) cannot pop the half-built statement again.
 */
broken:
	  "define" name error term { $$ = broken_def(pc, SN_STMT_DEFINE, $2, @1, @2); if (!$$) YYNOMEM; }
	| "set" name error term { $$ = broken_def(pc, SN_STMT_SET, $2, @1, @2); if (!$$) YYNOMEM; }
	;

term: NL | ';' ;

stmt: include | define | set | default | rule | expect
    | limit | syncookies | dns | autoblock ;

/* Contextual keywords are names where a name is expected. */
name: IDENT | ctxkw ;
ctxkw:
	  "limit" | "syncookies" | "dns" | "autoblock" | "rate" | "burst"
	| "per" | "then" | "for" | "above" | "stale" | "ttl" | "max-age"
	| "alert" | "query-rate" | "min-ttl" | "name-length"
	| "label-entropy" | "new-domains" | "mode" | "dry-run" | "enforce"
	| "max-prefix" | "never"
	;

include:
	  "include" STRING {
		NEW($$);
		$$->kind = SN_STMT_INCLUDE;
		$$->loc = LOC(@1);
		$$->path = $2.text;
		$$->path_loc = LOC(@2);
		/* An unusable string was reported by the scanner. */
		$$->inc_state = $2.bad ? SN_INC_UNREADABLE : SN_INC_NOT_RESOLVED;
	}
	;

define:
	  "define" name '=' value {
		NEW($$);
		$$->kind = SN_STMT_DEFINE;
		$$->loc = LOC(@1);
		$$->name = $2.text;
		$$->name_loc = LOC(@2);
		$$->items = $4;
	}
	;

value:
	  vitem { $$ = one($1); }
	| '{' vlist '}' { $$ = $2; $$.braced = true; }
	| '{' vlist ',' '}' { $$ = $2; $$.braced = true; }
	;

vlist:
	  vitem { $$ = one($1); }
	| vlist ',' vitem { $$ = $1; push(&$$, $3); }
	;

vitem: sitem | pnum ;

set:
	  "set" name '=' '{' '}' {
		NEW($$);
		$$->kind = SN_STMT_SET;
		$$->loc = LOC(@1);
		$$->name = $2.text;
		$$->name_loc = LOC(@2);
		$$->items.braced = true;
	}
	| "set" name '=' '{' slist '}' {
		NEW($$);
		$$->kind = SN_STMT_SET;
		$$->loc = LOC(@1);
		$$->name = $2.text;
		$$->name_loc = LOC(@2);
		$$->items = $5;
		$$->items.braced = true;
	}
	| "set" name '=' '{' slist ',' '}' {
		NEW($$);
		$$->kind = SN_STMT_SET;
		$$->loc = LOC(@1);
		$$->name = $2.text;
		$$->name_loc = LOC(@2);
		$$->items = $5;
		$$->items.braced = true;
	}
	| "set" name '=' "file" STRING {
		struct sn_ast_item *it;

		NEW(it);
		it->kind = SN_ITEM_FILE;
		it->loc = LOC(@5);
		it->text = $5.text;
		NEW($$);
		$$->kind = SN_STMT_SET;
		$$->loc = LOC(@1);
		$$->name = $2.text;
		$$->name_loc = LOC(@2);
		$$->items = one(it);
	}
	;

slist:
	  selem { $$ = one($1); }
	| slist ',' selem { $$ = $1; push(&$$, $3); }
	;

selem:
	  sitem
	| "file" STRING {
		NEW($$);
		$$->kind = SN_ITEM_FILE;
		$$->loc = LOC(@2);
		$$->text = $2.text;
	}
	;

/* An address-like item: a literal or a name. */
sitem:
	  ADDR {
		NEW($$);
		$$->kind = SN_ITEM_ADDR;
		$$->loc = LOC(@1);
		$$->text = $1.text;
	}
	| '@' name {
		NEW($$);
		$$->kind = SN_ITEM_SET;
		$$->loc = LOC(@$);
		$$->text = $2.text;
	}
	| '$' name {
		NEW($$);
		$$->kind = SN_ITEM_VAR;
		$$->loc = LOC(@$);
		$$->text = $2.text;
	}
	;

default:
	  "default" family verdict {
		NEW($$);
		$$->kind = SN_STMT_DEFAULT;
		$$->loc = LOC(@1);
		$$->family = $2;
		$$->verdict = (uint8_t)$3;
	}
	;

family:
	  %empty { $$ = 0; }
	| "ipv4" { $$ = SN_FAMILY_V4; }
	| "ipv6" { $$ = SN_FAMILY_V6; }
	;

verdict:
	  "allow" { $$ = SN_VERDICT_ALLOW; }
	| "block" { $$ = SN_VERDICT_BLOCK; }
	;

rule:
	  rbody
	| "always" rbody {
		$$ = $2;
		if ($$) {
			$$->tier = SN_TIER_ALWAYS;
			$$->loc = LOC(@1);
		}
	}
	;

rbody:
	  verdict "from" src {
		NEW($$);
		$$->kind = SN_STMT_RULE;
		$$->loc = LOC(@1);
		$$->verdict = (uint8_t)$1;
		$$->has_from = true;
		$$->srcs = $3;
	}
	| verdict "from" src "to" l4 {
		NEW($$);
		$$->kind = SN_STMT_RULE;
		$$->loc = LOC(@1);
		$$->verdict = (uint8_t)$1;
		$$->has_from = true;
		$$->srcs = $3;
		$$->l4 = $5;
	}
	| verdict "to" l4 {
		NEW($$);
		$$->kind = SN_STMT_RULE;
		$$->loc = LOC(@1);
		$$->verdict = (uint8_t)$1;
		$$->l4 = $3;
	}
	;

src:
	  "any" {
		struct sn_ast_item *it;

		NEW(it);
		it->kind = SN_ITEM_ANY;
		it->loc = LOC(@1);
		$$ = one(it);
	}
	| sitem { $$ = one($1); }
	| '{' slist '}' { $$ = $2; $$.braced = true; }
	| '{' slist ',' '}' { $$ = $2; $$.braced = true; }
	;

l4:
	  "tcp" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_TCP; $$.loc = LOC(@1); }
	| "tcp" "port" ports {
		memset(&$$, 0, sizeof($$));
		$$.kind = SN_L4_TCP;
		$$.loc = LOC(@1);
		$$.has_ports = true;
		$$.ports = $3;
	}
	| "udp" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_UDP; $$.loc = LOC(@1); }
	| "udp" "port" ports {
		memset(&$$, 0, sizeof($$));
		$$.kind = SN_L4_UDP;
		$$.loc = LOC(@1);
		$$.has_ports = true;
		$$.ports = $3;
	}
	| "icmp" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_ICMP; $$.loc = LOC(@1); }
	| "icmpv6" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_ICMPV6; $$.loc = LOC(@1); }
	| "any" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_ANY; $$.loc = LOC(@1); }
	| "proto" NUMBER {
		memset(&$$, 0, sizeof($$));
		$$.kind = SN_L4_PROTO;
		$$.loc = LOC(@1);
		$$.proto = mknum(pc, $2, @2);
	}
	;

/* pitem covers "$" IDENT, the third form of the ports production. */
ports:
	  pitem { $$ = one($1); }
	| '{' plist '}' { $$ = $2; $$.braced = true; }
	| '{' plist ',' '}' { $$ = $2; $$.braced = true; }
	;

plist:
	  pitem { $$ = one($1); }
	| plist ',' pitem { $$ = $1; push(&$$, $3); }
	;

pitem:
	  pnum
	| '$' name {
		NEW($$);
		$$->kind = SN_ITEM_VAR;
		$$->loc = LOC(@$);
		$$->text = $2.text;
	}
	;

pnum:
	  NUMBER {
		NEW($$);
		$$->kind = SN_ITEM_PORT;
		$$->loc = LOC(@1);
		$$->text = $1.text;
		$$->lo = mknum(pc, $1, @1);
	}
	| NUMBER '-' NUMBER {
		NEW($$);
		$$->kind = SN_ITEM_RANGE;
		$$->loc = LOC(@$);
		$$->lo = mknum(pc, $1, @1);
		$$->hi = mknum(pc, $3, @3);
	}
	;

/*
 * limit [from SRC] [to L4] SETTINGS: the settings come in any order; sema
 * checks that rate is there and nothing is given twice.
 */
limit:
	  "limit" lopts {
		if (!($$ = mkstmt(pc, SN_STMT_LIMIT, @1))) YYNOMEM;
		$$->opts = $2;
	}
	| "limit" "from" src lopts {
		if (!($$ = mkstmt(pc, SN_STMT_LIMIT, @1))) YYNOMEM;
		$$->has_from = true;
		$$->srcs = $3;
		$$->opts = $4;
	}
	| "limit" "from" src "to" l4 lopts {
		if (!($$ = mkstmt(pc, SN_STMT_LIMIT, @1))) YYNOMEM;
		$$->has_from = true;
		$$->srcs = $3;
		$$->l4 = $5;
		$$->opts = $6;
	}
	| "limit" "to" l4 lopts {
		if (!($$ = mkstmt(pc, SN_STMT_LIMIT, @1))) YYNOMEM;
		$$->l4 = $3;
		$$->opts = $4;
	}
	;

lopts: lopt | lopts lopt { $$ = ocat($1, $2); } ;

lopt:
	  "rate" RATEV { $$ = mkopt(pc, SN_OPT_RATE, @1, 0, &$2, @2); }
	| "burst" NUMBER { $$ = mkopt(pc, SN_OPT_BURST, @1, 0, &$2, @2); }
	| "per" "ipv4" PLEN { $$ = mkopt(pc, SN_OPT_PER, @1, SN_FAMILY_V4, &$3, @3); }
	| "per" "ipv6" PLEN { $$ = mkopt(pc, SN_OPT_PER, @1, SN_FAMILY_V6, &$3, @3); }
	| "then" "block" "for" DURATION {
		$$ = mkopt(pc, SN_OPT_BLOCK_FOR, @1, 0, &$4, @4);
	}
	;

/* syncookies port PORTS above N/s: tcp is implied. */
syncookies:
	  "syncookies" "port" ports "above" RATEV {
		if (!($$ = mkstmt(pc, SN_STMT_SYNCOOKIES, @1))) YYNOMEM;
		$$->l4.kind = SN_L4_TCP;
		$$->l4.loc = LOC(@2);
		$$->l4.has_ports = true;
		$$->l4.ports = $3;
		$$->opts = mkopt(pc, SN_OPT_ABOVE, @4, 0, &$5, @5);
	}
	;

dns:
	  "dns" "block" dnames {
		if (!($$ = mkstmt(pc, SN_STMT_DNS_BLOCK, @1))) YYNOMEM;
		$$->items = $3;
	}
	| "dns" "block" '{' dnames '}' {
		if (!($$ = mkstmt(pc, SN_STMT_DNS_BLOCK, @1))) YYNOMEM;
		$$->items = $4;
		$$->items.braced = true;
	}
	| "dns" "block" '{' dnames ',' '}' {
		if (!($$ = mkstmt(pc, SN_STMT_DNS_BLOCK, @1))) YYNOMEM;
		$$->items = $4;
		$$->items.braced = true;
	}
	| "dns" "stale" sopts {
		if (!($$ = mkstmt(pc, SN_STMT_DNS_STALE, @1))) YYNOMEM;
		$$->opts = $3;
	}
	| "dns" "alert" aopts {
		if (!($$ = mkstmt(pc, SN_STMT_DNS_ALERT, @1))) YYNOMEM;
		$$->opts = $3;
	}
	;

dnames:
	  dname { $$ = one($1); }
	| dnames ',' dname { $$ = $1; push(&$$, $3); }
	;

/* A string the scanner already reported as broken is left out. */
dname:
	  STRING {
		$$ = NULL;
		if (!$1.bad) {
			NEW($$);
			$$->kind = SN_ITEM_DNAME;
			$$->loc = LOC(@1);
			$$->text = $1.text;
		}
	}
	;

sopts: sopt | sopts sopt { $$ = ocat($1, $2); } ;

sopt:
	  "ttl" DURATION { $$ = mkopt(pc, SN_OPT_STALE_TTL, @1, 0, &$2, @2); }
	| "max-age" DURATION { $$ = mkopt(pc, SN_OPT_STALE_MAX_AGE, @1, 0, &$2, @2); }
	;

aopts: aopt | aopts aopt { $$ = ocat($1, $2); } ;

aopt:
	  "query-rate" RATEV { $$ = mkopt(pc, SN_OPT_QUERY_RATE, @1, 0, &$2, @2); }
	| "min-ttl" DURATION { $$ = mkopt(pc, SN_OPT_MIN_TTL, @1, 0, &$2, @2); }
	| "name-length" NUMBER { $$ = mkopt(pc, SN_OPT_NAME_LENGTH, @1, 0, &$2, @2); }
	| "label-entropy" decimal {
		$$ = mkopt(pc, SN_OPT_LABEL_ENTROPY, @1, 0, &$2, @2);
	}
	| "new-domains" { $$ = mkopt(pc, SN_OPT_NEW_DOMAINS, @1, 0, NULL, @1); }
	;

/* "3.5" scans as an address-like token; sema reads it as a decimal. */
decimal: NUMBER | ADDR ;

autoblock:
	  "autoblock" bopts {
		if (!($$ = mkstmt(pc, SN_STMT_AUTOBLOCK, @1))) YYNOMEM;
		$$->opts = $2;
	}
	| "autoblock" "never" src {
		if (!($$ = mkstmt(pc, SN_STMT_AUTOBLOCK_NEVER, @1))) YYNOMEM;
		$$->has_from = true;
		$$->srcs = $3;
	}
	;

bopts: bopt | bopts bopt { $$ = ocat($1, $2); } ;

bopt:
	  "mode" "dry-run" {
		$$ = mkopt(pc, SN_OPT_MODE, @1, 0, &$2, @2);
		if ($$.head)
			$$.head->val.value = SN_MODE_DRY_RUN;
	}
	| "mode" "enforce" {
		$$ = mkopt(pc, SN_OPT_MODE, @1, 0, &$2, @2);
		if ($$.head)
			$$.head->val.value = SN_MODE_ENFORCE;
	}
	| "ttl" DURATION { $$ = mkopt(pc, SN_OPT_TTL, @1, 0, &$2, @2); }
	| "rate" RATEV { $$ = mkopt(pc, SN_OPT_RATE, @1, 0, &$2, @2); }
	| "max-prefix" mpl { $$ = $2; }
	;

mpl: mpi | mpl mpi { $$ = ocat($1, $2); } ;

mpi:
	  "ipv4" PLEN { $$ = mkopt(pc, SN_OPT_MAX_PREFIX, @1, SN_FAMILY_V4, &$2, @2); }
	| "ipv6" PLEN { $$ = mkopt(pc, SN_OPT_MAX_PREFIX, @1, SN_FAMILY_V6, &$2, @2); }
	;

/*
 * expect VERDICT from ADDRESS [to L4] [fragment].  Looser than the language
 * (tcp without port, port with fragment parse) so that sema can explain
 * those mistakes as E020 instead of a bare syntax error.
 */
expect:
	  "expect" verdict "from" ADDR eto {
		struct sn_ast_item *it;

		NEW(it);
		it->kind = SN_ITEM_ADDR;
		it->loc = LOC(@4);
		it->text = $4.text;
		NEW($$);
		$$->kind = SN_STMT_EXPECT;
		$$->loc = LOC(@1);
		$$->verdict = (uint8_t)$2;
		$$->addr = it;
		$$->l4 = $5;
	}
	;

eto:
	  %empty { memset(&$$, 0, sizeof($$)); }
	| "fragment" {
		memset(&$$, 0, sizeof($$));
		$$.fragment = true;
		$$.fragment_loc = LOC(@1);
	}
	| "to" el4 { $$ = $2; }
	| "to" el4 "fragment" {
		$$ = $2;
		$$.fragment = true;
		$$.fragment_loc = LOC(@3);
	}
	;

el4:
	  "tcp" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_TCP; $$.loc = LOC(@1); }
	| "tcp" "port" NUMBER {
		memset(&$$, 0, sizeof($$));
		$$.kind = SN_L4_TCP;
		$$.loc = LOC(@1);
		$$.has_ports = true;
		$$.port = mknum(pc, $3, @3);
	}
	| "udp" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_UDP; $$.loc = LOC(@1); }
	| "udp" "port" NUMBER {
		memset(&$$, 0, sizeof($$));
		$$.kind = SN_L4_UDP;
		$$.loc = LOC(@1);
		$$.has_ports = true;
		$$.port = mknum(pc, $3, @3);
	}
	| "icmp" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_ICMP; $$.loc = LOC(@1); }
	| "icmpv6" { memset(&$$, 0, sizeof($$)); $$.kind = SN_L4_ICMPV6; $$.loc = LOC(@1); }
	| "proto" NUMBER {
		memset(&$$, 0, sizeof($$));
		$$.kind = SN_L4_PROTO;
		$$.loc = LOC(@1);
		$$.proto = mknum(pc, $2, @2);
	}
	;

%%

/* How a token is named in "unexpected X" (what) and "expected Y". */
static void put_sym(char *buf, size_t n, yysymbol_kind_t k, bool expected)
{
	size_t len = strlen(buf);
	const char *s;

	switch (k) {
	case YYSYMBOL_YYEOF:
		s = "end of file";
		break;
	case YYSYMBOL_NL:
		s = "end of line";
		break;
	case YYSYMBOL_IDENT:
		s = expected ? "a name" : "name";
		break;
	case YYSYMBOL_ADDR:
		s = expected ? "an address" : "address";
		break;
	case YYSYMBOL_NUMBER:
		s = expected ? "a number" : "number";
		break;
	case YYSYMBOL_STRING:
		s = expected ? "a string" : "string";
		break;
	case YYSYMBOL_RATEV:
		s = expected ? "a rate (e.g. 100/s)" : "rate";
		break;
	case YYSYMBOL_DURATION:
		s = expected ? "a duration (e.g. 30s, 10m, 1h, 1d)" : "duration";
		break;
	case YYSYMBOL_PLEN:
		s = expected ? "a prefix length (e.g. /24)" : "prefix length";
		break;
	default:
		s = yysymbol_name(k); /* "'{'", "tcp" */
		/* keywords in quotes, like the punctuation */
		if (k >= YYSYMBOL_K_INCLUDE && k <= YYSYMBOL_K_NEVER) {
			snprintf(buf + len, n - len, "'%s'", s);
			return;
		}
		break;
	}
	snprintf(buf + len, n - len, "%s", s);
}

static int yyreport_syntax_error(const yypcontext_t *yyctx, yyscan_t scanner,
				 struct sn_pctx *pc)
{
	enum { MAX_EXPECTED = 8 };
	yysymbol_kind_t expected[YYNTOKENS];
	yysymbol_kind_t tok = yypcontext_token(yyctx);
	const SN_YYLTYPE *l = yypcontext_location(yyctx);
	char msg[512] = "";
	int n = yypcontext_expected_tokens(yyctx, expected, YYNTOKENS);
	bool statement = false;

	(void)scanner;
	strcpy(msg, "unexpected ");
	put_sym(msg, sizeof(msg), tok, false);
	/* Quote the offending text when it is not a fixed token. */
	if ((tok == YYSYMBOL_IDENT || tok == YYSYMBOL_ADDR ||
	     tok == YYSYMBOL_NUMBER || tok == YYSYMBOL_RATEV ||
	     tok == YYSYMBOL_DURATION || tok == YYSYMBOL_PLEN) && pc->tok_text) {
		size_t len = strlen(msg);
		int shown = pc->tok_len > 40 ? 40 : (int)pc->tok_len;

		snprintf(msg + len, sizeof(msg) - len, " '%.*s%s'", shown,
			 pc->tok_text, pc->tok_len > 40 ? "..." : "");
	}
	bool name = false;

	for (int i = 0; i < n; i++) {
		if (expected[i] == YYSYMBOL_K_INCLUDE)
			statement = true;
		if (expected[i] == YYSYMBOL_IDENT)
			name = true;
	}
	/* Where a name may stand, contextual keywords may too: "a name"
	 * says it. */
	if (name) {
		int k = 0;

		for (int i = 0; i < n; i++)
			if (expected[i] < YYSYMBOL_K_LIMIT ||
			    expected[i] > YYSYMBOL_K_NEVER)
				expected[k++] = expected[i];
		n = k;
	}
	/* label-entropy takes "3.5", which scans as an address-like token */
	if (n == 2 && ((expected[0] == YYSYMBOL_ADDR &&
			expected[1] == YYSYMBOL_NUMBER) ||
		       (expected[0] == YYSYMBOL_NUMBER &&
			expected[1] == YYSYMBOL_ADDR))) {
		strcat(msg, ", expected a decimal number (e.g. 3.5)");
	} else if (statement) {
		strcat(msg, ", expected a statement (include, define, set, "
			    "default, allow, block, always, expect, limit, "
			    "syncookies, dns, autoblock)");
	} else if (n > 0 && n <= MAX_EXPECTED) {
		strcat(msg, ", expected ");
		for (int i = 0; i < n; i++) {
			if (i > 0)
				strcat(msg, i == n - 1 ? " or " : ", ");
			put_sym(msg, sizeof(msg), expected[i], true);
		}
	}
	sn_pctx_error(pc, LOC(*l), "%s", msg);
	return 0;
}

static void sn_yyerror(SN_YYLTYPE *loc, yyscan_t scanner, struct sn_pctx *pc,
		       const char *msg)
{
	(void)scanner;
	/* Only "memory exhausted" reaches here with parse.error custom. */
	sn_pctx_error(pc, LOC(*loc), "%s", msg);
}

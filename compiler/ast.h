/*
 * The policy AST: what the parser saw, nothing resolved.  Names stay names,
 * addresses and numbers stay text (plus a saturated value for numbers), so
 * sema can report every problem at the place it was written and the AST
 * dump shows the input faithfully.  Every node lives in the compile arena.
 */
#ifndef SN_AST_H
#define SN_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"

/* A decimal number as written.  value saturates at UINT32_MAX, so a
 * 10^6-digit string is just "too big", never undefined behaviour. */
struct sn_ast_num {
	uint32_t value;
	const char *text; /* as written */
	struct sn_loc loc;
};

/*
 * One element of a set body, a source list, a variable's value or a port
 * list.  The grammar decides which kinds may appear where; sema checks the
 * types that names resolve to.
 */
enum sn_item_kind {
	SN_ITEM_ADDR = 1, /* text: "10.0.0.0/8", "::1" (unvalidated) */
	SN_ITEM_ANY,      /* "any" as a source */
	SN_ITEM_SET,      /* text: set name, written @name */
	SN_ITEM_VAR,      /* text: variable name, written $name */
	SN_ITEM_FILE,     /* text: list file path as written (decoded) */
	SN_ITEM_PORT,     /* lo */
	SN_ITEM_RANGE,    /* lo "-" hi */
	SN_ITEM_DNAME,    /* text: DNS name as written (decoded string) */
};

struct sn_ast_item {
	enum sn_item_kind kind;
	struct sn_loc loc; /* the whole item (for FILE: the string) */
	const char *text;
	struct sn_ast_num lo, hi;
	struct sn_ast_item *next;
};

struct sn_ast_list {
	struct sn_ast_item *head, *tail;
	size_t n;
	bool braced; /* written in { } (for canonical text) */
};

/* The "to ..." part of a rule or an expect. */
enum sn_l4_kind {
	SN_L4_NONE = 0, /* no "to": any protocol */
	SN_L4_TCP,
	SN_L4_UDP,
	SN_L4_ICMP,
	SN_L4_ICMPV6,
	SN_L4_ANY,   /* "to any" */
	SN_L4_PROTO, /* "proto N" */
};

struct sn_ast_l4 {
	enum sn_l4_kind kind;
	struct sn_loc loc;       /* the protocol keyword */
	struct sn_ast_num proto; /* SN_L4_PROTO */
	bool has_ports;
	struct sn_ast_list ports; /* rules: "port ..." */
	struct sn_ast_num port;   /* expects: "port N" */
	bool fragment;            /* expects */
	struct sn_loc fragment_loc;
};

/*
 * A "keyword value" setting of a limit, syncookies, dns or autoblock
 * statement.  The value stays text (sema checks units and ranges), so a
 * bad unit is reported where it was written.
 */
enum sn_opt_kind {
	SN_OPT_RATE = 1,      /* limit, autoblock: "rate N/s|N/m" */
	SN_OPT_BURST,         /* limit: "burst N" */
	SN_OPT_PER,           /* limit: "per ipv4|ipv6 /N" (family) */
	SN_OPT_BLOCK_FOR,     /* limit: "then block for DURATION" */
	SN_OPT_ABOVE,         /* syncookies: "above N/s" */
	SN_OPT_STALE_TTL,     /* dns stale: "ttl DURATION" */
	SN_OPT_STALE_MAX_AGE, /* dns stale: "max-age DURATION" */
	SN_OPT_QUERY_RATE,    /* dns alert: "query-rate N/s" */
	SN_OPT_MIN_TTL,       /* dns alert: "min-ttl DURATION" */
	SN_OPT_NAME_LENGTH,   /* dns alert: "name-length N" */
	SN_OPT_LABEL_ENTROPY, /* dns alert: "label-entropy X.Y" */
	SN_OPT_NEW_DOMAINS,   /* dns alert: "new-domains" (no value) */
	SN_OPT_MODE,          /* autoblock: "mode dry-run|enforce" (val.value:
			       * SN_MODE_*, policy.h) */
	SN_OPT_TTL,           /* autoblock: "ttl DURATION" */
	SN_OPT_MAX_PREFIX,    /* autoblock: "max-prefix ipv4|ipv6 /N" (family) */
};

struct sn_ast_opt {
	enum sn_opt_kind kind;
	struct sn_loc loc;     /* the keyword */
	int family;            /* SN_OPT_PER, SN_OPT_MAX_PREFIX */
	bool has_val;          /* false only for SN_OPT_NEW_DOMAINS */
	struct sn_ast_num val; /* token as written: "100/s", "30s", "/24" */
	struct sn_ast_opt *next;
};

struct sn_ast_opts {
	struct sn_ast_opt *head, *tail;
	size_t n;
};

enum sn_stmt_kind {
	SN_STMT_INCLUDE = 1,
	SN_STMT_DEFINE,
	SN_STMT_SET,
	SN_STMT_DEFAULT,
	SN_STMT_RULE,
	SN_STMT_EXPECT,
	SN_STMT_LIMIT,           /* has_from, srcs, l4, opts */
	SN_STMT_SYNCOOKIES,      /* l4 (tcp, ports), opts (above) */
	SN_STMT_DNS_BLOCK,       /* items: SN_ITEM_DNAME */
	SN_STMT_DNS_STALE,       /* opts */
	SN_STMT_DNS_ALERT,       /* opts */
	SN_STMT_AUTOBLOCK,       /* opts */
	SN_STMT_AUTOBLOCK_NEVER, /* srcs (has_from is set) */
};

/* What became of an include statement. */
enum sn_include_state {
	SN_INC_PARSED = 0,   /* file points at the included AST */
	SN_INC_UNREADABLE,   /* E011 */
	SN_INC_CYCLE,        /* E009 */
	SN_INC_TOO_DEEP,     /* E009 */
	SN_INC_DUPLICATE,    /* already included elsewhere: included once */
	SN_INC_NOT_RESOLVED, /* not processed (parse stopped, out of memory) */
};

struct sn_ast;

struct sn_ast_stmt {
	enum sn_stmt_kind kind;
	struct sn_loc loc; /* first token */
	struct sn_ast_stmt *next;

	/* include */
	const char *path;      /* as written (decoded string) */
	const char *resolved;  /* joined with the including file's directory */
	struct sn_loc path_loc;
	enum sn_include_state inc_state;
	struct sn_ast *file;   /* SN_INC_PARSED */

	/* define, set */
	const char *name;
	struct sn_loc name_loc;
	struct sn_ast_list items;
	bool broken; /* the body had a syntax error: name known, value not */

	/* default (family 0: both), rule, expect */
	int family;
	uint8_t verdict; /* enum sn_verdict */

	/* rule */
	uint8_t tier; /* enum sn_tier */
	bool has_from;
	struct sn_ast_list srcs; /* has_from; "any" is one SN_ITEM_ANY */
	struct sn_ast_l4 l4;     /* kind SN_L4_NONE when no "to" */

	/* expect: one SN_ITEM_ADDR in addr */
	struct sn_ast_item *addr;

	/* limit, syncookies, dns stale/alert, autoblock settings */
	struct sn_ast_opts opts;
};

struct sn_ast {
	const char *path; /* display path (what locations carry) */
	struct sn_ast_stmt *stmts;
	size_t n_stmts;
	unsigned n_syntax_errors;
};

#endif

/*
 * Internals shared by the generated scanner/parser (grammar/) and the
 * parse driver (parse.c).  Not a public interface: compile.h is.
 *
 * One struct sn_pctx per file being parsed holds all scanner and parser
 * state that is ours (the generated code keeps its own in yyscan_t and on
 * the parser stack), so parsing is reentrant and includes can nest.
 */
#ifndef SN_PARSE_H
#define SN_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "ast.h"
#include "compile.h"

/* Stop reporting (and parsing) a file after this many syntax errors (or
 * earlier, when the diagnostics list is about to be full). */
#define SN_PARSE_MAX_ERRORS 1000

/* Semantic value of a token. */
struct sn_tok {
	const char *text; /* NUL-terminated copy in the arena (decoded STRING) */
	size_t len;
	uint32_t value;   /* NUMBER, saturated */
	bool bad;         /* STRING: unterminated/invalid escape/NUL: reported */
};

struct sn_pctx {
	struct sn_ctx *ctx;
	struct sn_ast *file;
	const char *path;          /* display path, used in every location */
	struct sn_ast_stmt **tail; /* where the next statement goes */

	/* scanner position: line/column of the next byte, 1-based */
	uint32_t line, col;
	uint32_t tok_line, tok_col; /* start of the current token */
	/* Newlines inside { } are whitespace; depth counts open braces. */
	unsigned depth;
	/* A newline was skipped inside braces and no token followed yet: a
	 * statement keyword now means the brace was never closed. */
	bool nl_in_braces;
	uint32_t nl_line, nl_col;
	bool eof_term_sent; /* a final end-of-line token was returned at EOF */
	bool last_was_term;

	/* The current token, for "unexpected name foo" messages. */
	const char *tok_text;
	size_t tok_len;

	unsigned n_errors; /* syntax + lexical errors in this file */
	bool stop;         /* too many errors: the scanner returns EOF */
	bool oom;
};

/* Convert a bison location (columns inclusive) into a diagnostic one. */
struct sn_loc sn_pctx_loc(const struct sn_pctx *pc, int first_line,
			  int first_col, int last_line, int last_col);
/* Report a syntax/lexical error (E001); counts towards the cap. */
void sn_pctx_error(struct sn_pctx *pc, struct sn_loc loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A path written in base_file (include, list file), as the user would name
 * it: relative paths are joined with base_file's directory ("sub/x").
 */
char *sn_path_join(struct sn_arena *a, const char *base_file, const char *rel);

#endif

/*
 * Parse driver: runs the generated reentrant scanner/parser over one file,
 * then resolves that file's include statements (recursively, bounded), so
 * the AST of the main file holds every included file at its include point.
 *
 * Includes are included once: a file reached a second time (two teams'
 * files both including common.sentry) is not parsed again, which keeps
 * diamond-shaped include graphs linear and avoids bogus "duplicate
 * definition" errors.  A file that includes itself, directly or through
 * others, is a cycle (E009).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ast.h"
#include "compile.h"
#include "parse.h"
#include "sentry.tab.h"
/* sentry.lex.h must see the parser's value/location types, and our yylex
 * (with the %param context) instead of flex's default prototype. */
#define YYSTYPE SN_YYSTYPE
#define YYLTYPE SN_YYLTYPE
#define YY_DECL int sn_yylex(SN_YYSTYPE *, SN_YYLTYPE *, yyscan_t, \
			     struct sn_pctx *)
#include "sentry.lex.h"

#define SN_INCLUDE_MAX_DEPTH 32

void sn_ctx_init(struct sn_ctx *ctx)
{
	sn_arena_init(&ctx->arena);
	sn_srcmgr_init(&ctx->sources);
	sn_diags_init(&ctx->diags, SN_DIAGS_DEFAULT_MAX);
	ctx->analysis = NULL;
}

void sn_ctx_free(struct sn_ctx *ctx)
{
	sn_diags_free(&ctx->diags);
	sn_srcmgr_free(&ctx->sources);
	sn_arena_free(&ctx->arena);
}

struct sn_loc sn_pctx_loc(const struct sn_pctx *pc, int first_line,
			  int first_col, int last_line, int last_col)
{
	struct sn_loc l;

	l.file = pc->path;
	l.line = first_line > 0 ? (uint32_t)first_line : 1;
	l.col = first_col > 0 ? (uint32_t)first_col : 1;
	/* A span over several lines is shown on its first line only. */
	if (last_line == first_line && last_col >= first_col)
		l.len = (uint32_t)(last_col - first_col + 1);
	else
		l.len = 1;
	return l;
}

void sn_pctx_error(struct sn_pctx *pc, struct sn_loc loc, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (pc->stop)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_diag_add(&pc->ctx->diags, SN_SEV_ERROR, "E001", loc, "%s", msg);
	/* Give up on the file after SN_PARSE_MAX_ERRORS, or as soon as only
	 * one kept diagnostic is left: what follows would not be shown, and
	 * the last slot tells the user that we stopped and why. */
	if (++pc->n_errors >= SN_PARSE_MAX_ERRORS ||
	    pc->ctx->diags.n + 1 >= pc->ctx->diags.max_kept) {
		struct sn_diag *d = sn_diag_add(&pc->ctx->diags, SN_SEV_ERROR,
			"E001", loc, "too many syntax errors in %s, giving up on this file",
			pc->path);

		sn_diag_hint(&pc->ctx->diags, d,
			     "is this a policy file? (stopped after %u errors)",
			     pc->n_errors);
		pc->stop = true;
	}
}

char *sn_path_join(struct sn_arena *a, const char *base_file, const char *rel)
{
	const char *slash = base_file ? strrchr(base_file, '/') : NULL;

	if (rel[0] == '/' || !slash)
		return sn_arena_strdup(a, rel);
	return sn_arena_printf(a, "%.*s/%s", (int)(slash - base_file),
			       base_file, rel);
}

/* ---- one file ------------------------------------------------------------ */

static int parse_source(struct sn_ctx *ctx, const struct sn_source *src,
			struct sn_ast **out)
{
	struct sn_ast *file = sn_arena_alloc(&ctx->arena, sizeof(*file));
	struct sn_pctx pc;
	YY_BUFFER_STATE buf;
	yyscan_t scanner;

	if (!file)
		return -ENOMEM;
	file->path = src->path;
	memset(&pc, 0, sizeof(pc));
	pc.ctx = ctx;
	pc.file = file;
	pc.path = src->path;
	pc.tail = &file->stmts;
	pc.line = 1;
	pc.col = 1;
	if (src->len > INT32_MAX) /* flex counts in int */
		return -EFBIG;
	if (sn_yylex_init_extra(&pc, &scanner))
		return -ENOMEM;
	buf = sn_yy_scan_bytes(src->text, (int)src->len, scanner);
	/* 0 ok, 1 gave up after errors (already reported), 2 out of memory */
	int rc = sn_yyparse(scanner, &pc);

	sn_yy_delete_buffer(buf, scanner);
	sn_yylex_destroy(scanner);
	file->n_syntax_errors = pc.n_errors;
	if (pc.oom || rc == 2)
		return -ENOMEM;
	*out = file;
	return 0;
}

/* ---- includes ------------------------------------------------------------ */

/* Which file is this: device and inode when it exists on disk (so
 * "a/../x" and "x" are the same file), else the name. */
struct file_id {
	bool has_ino;
	dev_t dev;
	ino_t ino;
	const char *path;
};

struct inc_frame {
	struct file_id id;
	const char *path;                /* display path */
	const struct sn_ast_stmt *stmt;  /* include that led here; NULL: main */
};

struct inc_state {
	struct sn_ctx *ctx;
	/* the main file and up to SN_INCLUDE_MAX_DEPTH nested includes */
	struct inc_frame stack[SN_INCLUDE_MAX_DEPTH + 1];
	unsigned depth;
	struct file_id *seen; /* every file parsed, for include-once */
	size_t n_seen, cap_seen;
};

static void file_id_of(const char *path, struct file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	id->path = path;
	if (stat(path, &st) == 0) {
		id->has_ino = true;
		id->dev = st.st_dev;
		id->ino = st.st_ino;
	}
}

static bool same_file(const struct file_id *a, const struct file_id *b)
{
	if (a->has_ino && b->has_ino)
		return a->dev == b->dev && a->ino == b->ino;
	return strcmp(a->path, b->path) == 0;
}

static int remember(struct inc_state *st, const struct file_id *id)
{
	if (st->n_seen == st->cap_seen) {
		size_t cap = st->cap_seen ? st->cap_seen * 2 : 16;
		struct file_id *v = realloc(st->seen, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		st->seen = v;
		st->cap_seen = cap;
	}
	st->seen[st->n_seen++] = *id;
	return 0;
}

/* "a.sentry -> sub/b.sentry -> a.sentry", the long middle elided. */
static char *chain_text(struct inc_state *st, const char *last)
{
	struct sn_arena *a = &st->ctx->arena;
	char *s = sn_arena_strdup(a, st->stack[0].path);

	for (unsigned i = 1; s && i < st->depth; i++) {
		if (st->depth > 8 && i == 3) {
			s = sn_arena_printf(a, "%s -> ...", s);
			i = st->depth - 3;
			continue;
		}
		s = sn_arena_printf(a, "%s -> %s", s, st->stack[i].path);
	}
	if (s)
		s = sn_arena_printf(a, "%s -> %s", s, last);
	return s ? s : "(out of memory)";
}

static int resolve_includes(struct inc_state *st, struct sn_ast *file);

static int do_include(struct inc_state *st, const struct sn_ast *parent,
		      struct sn_ast_stmt *inc)
{
	struct sn_ctx *ctx = st->ctx;
	const struct sn_source *src;
	struct file_id id;
	struct sn_diag *d;
	int err;

	inc->resolved = sn_path_join(&ctx->arena, parent->path, inc->path);
	if (!inc->resolved)
		return -ENOMEM;
	file_id_of(inc->resolved, &id);
	for (unsigned i = 0; i < st->depth; i++) {
		if (!same_file(&st->stack[i].id, &id))
			continue;
		inc->inc_state = SN_INC_CYCLE;
		d = sn_diag_add(&ctx->diags, SN_SEV_ERROR, "E009", inc->path_loc,
				"include cycle: %s is already being included",
				inc->resolved);
		sn_diag_note(&ctx->diags, d, (struct sn_loc){ 0 },
			     "include chain: %s", chain_text(st, inc->resolved));
		if (st->stack[i].stmt)
			sn_diag_note(&ctx->diags, d, st->stack[i].stmt->path_loc,
				     "%s first included here", inc->resolved);
		return 0;
	}
	for (size_t i = 0; i < st->n_seen; i++) {
		if (same_file(&st->seen[i], &id)) {
			inc->inc_state = SN_INC_DUPLICATE;
			return 0;
		}
	}
	if (st->depth > SN_INCLUDE_MAX_DEPTH) {
		inc->inc_state = SN_INC_TOO_DEEP;
		d = sn_diag_add(&ctx->diags, SN_SEV_ERROR, "E009", inc->path_loc,
				"includes nested too deeply (more than %d levels)",
				SN_INCLUDE_MAX_DEPTH);
		sn_diag_note(&ctx->diags, d, (struct sn_loc){ 0 },
			     "include chain: %s", chain_text(st, inc->resolved));
		return 0;
	}
	err = sn_srcmgr_load_regular(&ctx->sources, inc->resolved, &src);
	if (err == -ENOMEM)
		return err;
	if (err) {
		inc->inc_state = SN_INC_UNREADABLE;
		sn_diag_add(&ctx->diags, SN_SEV_ERROR, "E011", inc->path_loc,
			    "cannot read included file %s: %s", inc->resolved,
			    sn_srcmgr_strerror(err));
		return 0;
	}
	err = remember(st, &id);
	if (!err)
		err = parse_source(ctx, src, &inc->file);
	if (err)
		return err;
	inc->inc_state = SN_INC_PARSED;
	st->stack[st->depth].id = id;
	st->stack[st->depth].path = src->path;
	st->stack[st->depth].stmt = inc;
	st->depth++;
	err = resolve_includes(st, inc->file);
	st->depth--;
	return err;
}

/* Recursion depth is bounded by SN_INCLUDE_MAX_DEPTH. */
static int resolve_includes(struct inc_state *st, struct sn_ast *file)
{
	for (struct sn_ast_stmt *s = file->stmts; s; s = s->next) {
		if (s->kind != SN_STMT_INCLUDE ||
		    s->inc_state != SN_INC_NOT_RESOLVED)
			continue;
		int err = do_include(st, file, s);

		if (err)
			return err;
	}
	return 0;
}

static int parse_main(struct sn_ctx *ctx, const struct sn_source *src,
		      struct sn_ast **out)
{
	struct inc_state st;
	struct sn_ast *file;
	int err;

	memset(&st, 0, sizeof(st));
	st.ctx = ctx;
	err = parse_source(ctx, src, &file);
	if (err)
		return err;
	file_id_of(src->path, &st.stack[0].id);
	st.stack[0].path = src->path;
	st.depth = 1;
	err = remember(&st, &st.stack[0].id);
	if (!err)
		err = resolve_includes(&st, file);
	free(st.seen);
	if (err)
		return err;
	*out = file;
	return 0;
}

int sn_parse_file(struct sn_ctx *ctx, const char *path, struct sn_ast **out)
{
	const struct sn_source *src;
	int err = sn_srcmgr_load(&ctx->sources, path, &src);

	if (err)
		return err;
	return parse_main(ctx, src, out);
}

int sn_parse_text(struct sn_ctx *ctx, const char *name, const char *text,
		  size_t len, struct sn_ast **out)
{
	const struct sn_source *src;
	int err = sn_srcmgr_add(&ctx->sources, name, text, len, &src);

	if (err)
		return err;
	return parse_main(ctx, src, out);
}

/*
 * The compiler as a library: sentry-compile, sentryd and the tests all go
 * through these calls, so a policy means the same thing everywhere.
 *
 *   text --sn_parse--> AST --sn_sema--> struct sn_policy --sn_image_build-->
 *   struct sn_image (maps to populate + generated constants)
 */
#ifndef SN_COMPILE_H
#define SN_COMPILE_H

#include <stdio.h>

#include "arena.h"
#include "diag.h"
#include "policy.h"

struct sn_ast;   /* ast.h */
struct sn_image; /* image.h */
struct sn_analysis_opts; /* analyze.h */

/* Everything one compile owns; freed together by sn_ctx_free. */
struct sn_ctx {
	struct sn_arena arena;    /* AST, policy, image */
	struct sn_srcmgr sources; /* every file read, for diagnostics */
	struct sn_diags diags;
	/* Knobs of the analysis pass (map capacities, ...); NULL: defaults.
	 * Not owned: it must outlive the compile calls. */
	const struct sn_analysis_opts *analysis;
};

void sn_ctx_init(struct sn_ctx *ctx);
void sn_ctx_free(struct sn_ctx *ctx);

/*
 * Parse a policy file and, recursively, the files it includes.  Returns a
 * negative errno only when the main file itself cannot be read (the caller
 * reports that as an I/O error); everything else, syntax errors and
 * unreadable includes among them, is a diagnostic in ctx->diags.  *out is
 * set whenever 0 is returned, possibly to a partial AST when there were
 * errors.  Negative errno also for out-of-memory (-ENOMEM).
 */
int sn_parse_file(struct sn_ctx *ctx, const char *path, struct sn_ast **out);
/* The same for text held in memory (tests, fuzzing); name is for locations
 * and for resolving relative include/list paths. */
int sn_parse_text(struct sn_ctx *ctx, const char *name, const char *text,
		  size_t len, struct sn_ast **out);

/*
 * Resolve names, sets, variables and list files; check types, ranges and
 * prefixes.  Returns 0 and *out when there were no errors, -EINVAL when
 * ctx->diags has errors, -ENOMEM.
 */
int sn_sema(struct sn_ctx *ctx, const struct sn_ast *ast,
	    struct sn_policy **out);

/* Deterministic, indented dump of the AST (golden tests). */
void sn_ast_dump(FILE *out, const struct sn_ast *ast);

/*
 * Build the normalised decision structure: source classes, L4 classes and
 * the decision table (image.h).  Reports equal-specificity conflicts
 * (E010) and capacity errors.  0, -EINVAL (diagnostics) or -ENOMEM.
 */
int sn_image_build(struct sn_ctx *ctx, const struct sn_policy *policy,
		   struct sn_image **out);

/*
 * parse + sema + build + analysis (analyze.h: warnings, and E031 when the
 * image exceeds a map capacity of ctx->analysis) in one call; 0, -EINVAL
 * (see diags) or -errno.
 */
int sn_compile_file(struct sn_ctx *ctx, const char *path,
		    struct sn_policy **policy, struct sn_image **image);
int sn_compile_text(struct sn_ctx *ctx, const char *name, const char *text,
		    size_t len, struct sn_policy **policy,
		    struct sn_image **image);

#endif

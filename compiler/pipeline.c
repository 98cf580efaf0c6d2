/*
 * parse -> sema -> image -> analysis, the sequence every caller wants.
 */
#include <errno.h>

#include "analyze.h"
#include "compile.h"
#include "image.h"

static int finish(struct sn_ctx *ctx, int rc, struct sn_ast *ast,
		  struct sn_policy **policy, struct sn_image **image)
{
	struct sn_policy *p = NULL;

	if (rc)
		return rc;
	/* Sema still runs after syntax errors so one run reports both kinds. */
	rc = sn_sema(ctx, ast, &p);
	if (rc || ctx->diags.n_errors)
		return rc && rc != -EINVAL ? rc : -EINVAL;
	rc = sn_image_build(ctx, p, image);
	if (rc)
		return rc;
	rc = sn_image_add_features(&ctx->arena, p, *image);
	if (rc)
		return rc;
	/* Warnings only, except when the image does not fit the maps. */
	rc = sn_analyze(ctx, p, *image, ctx->analysis);
	if (rc)
		return rc;
	if (policy)
		*policy = p;
	return 0;
}

int sn_compile_file(struct sn_ctx *ctx, const char *path,
		    struct sn_policy **policy, struct sn_image **image)
{
	struct sn_ast *ast = NULL;
	int rc = sn_parse_file(ctx, path, &ast);

	return finish(ctx, rc, ast, policy, image);
}

int sn_compile_text(struct sn_ctx *ctx, const char *name, const char *text,
		    size_t len, struct sn_policy **policy,
		    struct sn_image **image)
{
	struct sn_ast *ast = NULL;
	int rc = sn_parse_text(ctx, name, text, len, &ast);

	return finish(ctx, rc, ast, policy, image);
}

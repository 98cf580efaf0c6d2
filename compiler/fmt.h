/*
 * `sentry-compile fmt`: the canonical layout of a policy file.
 *
 * Canonical means: one statement per line (no `;`), single spaces between
 * tokens, `{ a, b }` with spaces inside the braces, lists that were written
 * over several lines (or hold comments, or would pass 100 columns) one item
 * per line indented by four spaces with a trailing comma, IPv6 hex in lower
 * case, limit options in a fixed order, at most one blank line in a row and
 * none at the start or end.  Comments are kept where they were: own-line
 * comments before what follows them, trailing comments after the item or
 * statement on their line.  Formatting is idempotent.
 */
#ifndef SN_FMT_H
#define SN_FMT_H

#include <stddef.h>

#include "compile.h"

/*
 * Format one file's text (includes are not followed into).  Returns 0 and a
 * malloc'd *out, -EINVAL when the file has syntax errors (in ctx->diags),
 * or -ENOMEM.
 */
int sn_fmt_text(struct sn_ctx *ctx, const char *name, const char *text,
		size_t len, char **out, size_t *out_len);

#endif

/*
 * Machine-readable renderings of diagnostics, next to the text renderer of
 * diag.h: a JSON document of our own, SARIF 2.1.0 (code-scanning tools) and
 * GitHub workflow commands (annotations in a pull request).  All of them
 * render the diagnostics in the order they are given; callers sort first
 * (sn_diags_sort) so every output is deterministic.
 */
#ifndef SN_DIAG_FORMAT_H
#define SN_DIAG_FORMAT_H

#include <stddef.h>
#include <stdio.h>

#include "diag.h"

enum sn_out_format {
	SN_FORMAT_TEXT = 0,
	SN_FORMAT_JSON,
	SN_FORMAT_SARIF,
	SN_FORMAT_GITHUB,
};

/* "text", "json", "sarif", "github".  0 or -EINVAL. */
int sn_format_parse(const char *name, enum sn_out_format *out);

/* One policy named on the command line and what compiling it reported. */
struct sn_diag_file {
	const char *path;
	const struct sn_diags *diags; /* NULL when the file was not read */
	const char *io_error;         /* why the file could not be read, or NULL */
};

/* One-line meaning of a stable code ("host bits set past the prefix
 * length"), NULL for an unknown code. */
const char *sn_diag_code_summary(const char *code);

/*
 * {"version":1, "files":[{"path","errors","warnings","suppressed"[,"io_error"]}],
 *  "diagnostics":[...], "errors":N, "warnings":N, "suppressed":N <extra>}
 * extra, when given, writes further top-level members, each starting with
 * a comma.
 */
void sn_diags_render_json(FILE *out, const struct sn_diag_file *files,
			  size_t n, void (*extra)(FILE *out, void *arg),
			  void *arg);
/* One SARIF 2.1.0 log with one run. */
void sn_diags_render_sarif(FILE *out, const struct sn_diag_file *files,
			   size_t n);
/* One workflow command per diagnostic (::error / ::warning / ::notice). */
void sn_diags_render_github(FILE *out, const struct sn_diag_file *files,
			    size_t n);

#endif

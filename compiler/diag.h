/*
 * Diagnostics: every stage reports through a struct sn_diags instead of
 * printing, so the same findings can be rendered as text (file:line:col,
 * source line, caret, code, hint) or, later, JSON/SARIF, and so a library
 * caller (sentryd) decides where they go.
 */
#ifndef SN_DIAG_H
#define SN_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"

/* A place in a source file: 1-based line and column, len columns wide. */
struct sn_loc {
	const char *file; /* as the user named it; NULL: no location */
	uint32_t line;
	uint32_t col;
	uint32_t len; /* >= 1 when file is set */
};

enum sn_severity {
	SN_SEV_NOTE = 0,
	SN_SEV_WARNING = 1,
	SN_SEV_ERROR = 2,
};

#define SN_DIAG_MAX_NOTES 4

struct sn_diag_note {
	struct sn_loc loc;
	const char *message;
};

struct sn_diag {
	enum sn_severity severity;
	const char *code; /* stable code, e.g. "E010" (SPEC.md lists them) */
	const char *message;
	struct sn_loc loc;
	const char *hint; /* NULL when no hint helps */
	struct sn_diag_note notes[SN_DIAG_MAX_NOTES];
	unsigned n_notes;
	size_t seq; /* arrival order, the last sort key */
};

struct sn_diags {
	struct sn_arena arena; /* owns messages and hints */
	struct sn_diag *v;
	size_t n, cap;
	size_t max_kept;   /* diagnostics beyond this are counted, not kept */
	size_t suppressed; /* counted but not kept */
	size_t n_errors;   /* all errors, kept or not */
	size_t n_warnings;
};

/* One loaded source file, kept so diagnostics can quote its lines. */
struct sn_source {
	const char *path;
	const char *text;
	size_t len;
	/* The file as it was read (fstat; all 0 for in-memory text): a
	 * watcher tells by them whether it changed since (sentryd). */
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
};

/* A file a compile tried to read and could not (sentryd watches it). */
struct sn_source_miss {
	const char *path;
	int err; /* negative errno, as sn_srcmgr_load returned it */
};

/* Every file a compile read: policies, includes and list files. */
struct sn_srcmgr {
	struct sn_arena arena;
	struct sn_source *v;
	size_t n, cap;
	struct sn_source_miss *miss; /* files that could not be read */
	size_t n_miss, cap_miss;
	size_t max_file_size; /* larger files are refused with -EFBIG */
};

void sn_srcmgr_init(struct sn_srcmgr *m);
void sn_srcmgr_free(struct sn_srcmgr *m);
/*
 * Read a whole file and keep it.  Returns 0 and sets *out, or a negative
 * errno (-ENOENT, -EACCES, -EISDIR, -EFBIG, ...) and keeps nothing.
 */
int sn_srcmgr_load(struct sn_srcmgr *m, const char *path,
		   const struct sn_source **out);
/*
 * The same, but only for a regular file: includes and list files must not
 * be FIFOs, sockets or devices, where opening or reading can block forever
 * (a daemon recompiling on a file change would hang).  A non-regular file
 * gives -ENODEV without blocking.
 */
int sn_srcmgr_load_regular(struct sn_srcmgr *m, const char *path,
			   const struct sn_source **out);
/* strerror for sn_srcmgr_load* results (-ENODEV: not a regular file). */
const char *sn_srcmgr_strerror(int err);
/* Register in-memory text (tests, fuzzers, stdin) under a display name. */
int sn_srcmgr_add(struct sn_srcmgr *m, const char *path, const char *text,
		  size_t len, const struct sn_source **out);
const struct sn_source *sn_srcmgr_find(const struct sn_srcmgr *m,
				       const char *path);

#define SN_DIAGS_DEFAULT_MAX 200

void sn_diags_init(struct sn_diags *d, size_t max_kept);
void sn_diags_free(struct sn_diags *d);
/*
 * Add a diagnostic.  Returns it so hints and notes can be attached, or NULL
 * when it was only counted (over max_kept, or out of memory); the helpers
 * below accept NULL.
 */
struct sn_diag *sn_diag_add(struct sn_diags *d, enum sn_severity sev,
			    const char *code, struct sn_loc loc,
			    const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void sn_diag_hint(struct sn_diags *d, struct sn_diag *diag, const char *fmt,
		  ...) __attribute__((format(printf, 3, 4)));
void sn_diag_note(struct sn_diags *d, struct sn_diag *diag, struct sn_loc loc,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Stable order: file, line, column, code, arrival. */
void sn_diags_sort(struct sn_diags *d);
/*
 * Render as text:
 *   file:line:col: error[E003]: message
 *     12 | block from 10.0.0.1/8
 *        |            ^~~~~~~~~~
 *     = hint: ...
 *   file:line:col: note: ...
 * followed by a "N errors, M warnings (K not shown)" summary line when any.
 */
void sn_diags_render_text(FILE *out, const struct sn_diags *d,
			  const struct sn_srcmgr *m);

#endif

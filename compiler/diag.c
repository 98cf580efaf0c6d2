/*
 * Diagnostics: collection (bounded, so a fuzzed or binary input cannot make
 * us keep millions of messages), a stable sort, and the text renderer.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sn_diags_init(struct sn_diags *d, size_t max_kept)
{
	sn_arena_init(&d->arena);
	d->v = NULL;
	d->n = d->cap = 0;
	d->max_kept = max_kept ? max_kept : SN_DIAGS_DEFAULT_MAX;
	d->suppressed = 0;
	d->n_errors = 0;
	d->n_warnings = 0;
}

void sn_diags_free(struct sn_diags *d)
{
	free(d->v);
	sn_arena_free(&d->arena);
	d->v = NULL;
	d->n = d->cap = 0;
}

static char *vfmt(struct sn_arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *p;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	p = sn_arena_alloc(a, (size_t)n + 1);
	if (p)
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

/* Locations are copied: a diagnostic may outlive the structure that
 * produced it (an AST freed early by a library caller). */
static struct sn_loc copy_loc(struct sn_diags *d, struct sn_loc loc)
{
	if (loc.file) {
		loc.file = sn_arena_strdup(&d->arena, loc.file);
		if (loc.len == 0)
			loc.len = 1;
	}
	return loc;
}

struct sn_diag *sn_diag_add(struct sn_diags *d, enum sn_severity sev,
			    const char *code, struct sn_loc loc,
			    const char *fmt, ...)
{
	struct sn_diag *g;
	va_list ap;

	if (sev == SN_SEV_ERROR)
		d->n_errors++;
	else if (sev == SN_SEV_WARNING)
		d->n_warnings++;
	if (d->n >= d->max_kept) {
		d->suppressed++;
		return NULL;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct sn_diag *v = realloc(d->v, cap * sizeof(*v));

		if (!v) {
			d->suppressed++;
			return NULL;
		}
		d->v = v;
		d->cap = cap;
	}
	g = &d->v[d->n];
	memset(g, 0, sizeof(*g));
	g->severity = sev;
	g->code = code ? sn_arena_strdup(&d->arena, code) : NULL;
	g->loc = copy_loc(d, loc);
	va_start(ap, fmt);
	g->message = vfmt(&d->arena, fmt, ap);
	va_end(ap);
	if (!g->message)
		g->message = "(out of memory)";
	g->seq = d->n;
	d->n++;
	/* Callers attach hints and notes right away, before the next add can
	 * move d->v. */
	return g;
}

void sn_diag_hint(struct sn_diags *d, struct sn_diag *diag, const char *fmt,
		  ...)
{
	va_list ap;

	if (!diag)
		return;
	va_start(ap, fmt);
	diag->hint = vfmt(&d->arena, fmt, ap);
	va_end(ap);
}

void sn_diag_note(struct sn_diags *d, struct sn_diag *diag, struct sn_loc loc,
		  const char *fmt, ...)
{
	struct sn_diag_note *note;
	va_list ap;

	if (!diag || diag->n_notes >= SN_DIAG_MAX_NOTES)
		return;
	note = &diag->notes[diag->n_notes];
	note->loc = copy_loc(d, loc);
	va_start(ap, fmt);
	note->message = vfmt(&d->arena, fmt, ap);
	va_end(ap);
	if (note->message)
		diag->n_notes++;
}

static int cmp_str(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL); /* no location first */
	return strcmp(a, b);
}

static int cmp_diag(const void *pa, const void *pb)
{
	const struct sn_diag *a = pa, *b = pb;
	int c = cmp_str(a->loc.file, b->loc.file);

	if (c)
		return c;
	if (a->loc.line != b->loc.line)
		return a->loc.line < b->loc.line ? -1 : 1;
	if (a->loc.col != b->loc.col)
		return a->loc.col < b->loc.col ? -1 : 1;
	c = cmp_str(a->code, b->code);
	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void sn_diags_sort(struct sn_diags *d)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(d->v[0]), cmp_diag);
}

/* ---- rendering ---------------------------------------------------------- */

#define QUOTE_MAX 200   /* longer lines are quoted around the column */
#define QUOTE_CONTEXT 60 /* bytes kept before the column when eliding */
#define TAB_WIDTH 4

/*
 * Finding line N means scanning from the start of the file; diagnostics
 * arrive sorted by file and line, so remember where the last lookup ended
 * and continue from there.  This keeps rendering O(file size) overall even
 * for 200 diagnostics in a million-line list file.
 */
struct line_cursor {
	const char *text; /* file the cursor is in */
	size_t off;       /* start of line `line` */
	uint32_t line;
};

static bool find_line(struct line_cursor *cur, const struct sn_source *src,
		      uint32_t line, const char **start, size_t *len)
{
	const char *t = src->text;
	size_t off;
	uint32_t l;

	if (line == 0)
		return false;
	if (cur->text == t && cur->line <= line) {
		off = cur->off;
		l = cur->line;
	} else {
		off = 0;
		l = 1;
	}
	while (l < line) {
		const char *nl = memchr(t + off, '\n', src->len - off);

		if (!nl)
			return false;
		off = (size_t)(nl - t) + 1;
		l++;
	}
	cur->text = t;
	cur->off = off;
	cur->line = l;
	const char *nl = memchr(t + off, '\n', src->len - off);
	size_t end = nl ? (size_t)(nl - t) : src->len;

	if (end > off && t[end - 1] == '\r')
		end--;
	*start = t + off;
	*len = end - off;
	return true;
}

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4;
	else
		return 0;
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return k;
}

/*
 * Print line[from..to) and return, through vcol_of, the display column of
 * byte offsets `a` and `b` (both within [from, to]).  Tabs expand to the next
 * multiple of TAB_WIDTH, valid UTF-8 takes one column, control bytes and
 * invalid UTF-8 print as '?', so the caret lines up with what is shown.
 */
static void print_span(FILE *out, const char *line, size_t from, size_t to,
		       size_t a, size_t b, size_t *va, size_t *vb,
		       size_t vcol0)
{
	size_t v = vcol0, i = from;

	while (i < to) {
		const unsigned char *u = (const unsigned char *)line + i;
		size_t k = 1;

		if (i <= a)
			*va = v;
		if (i <= b)
			*vb = v;
		if (*u == '\t') {
			size_t w = TAB_WIDTH - (v % TAB_WIDTH);

			fprintf(out, "%*s", (int)w, "");
			v += w;
		} else if (*u < 0x20 || *u == 0x7f) {
			fputc('?', out);
			v++;
		} else if (*u < 0x80) {
			fputc(*u, out);
			v++;
		} else if ((k = utf8_len(u, to - i)) != 0) {
			fwrite(u, 1, k, out);
			v++;
		} else {
			k = 1;
			fputc('?', out);
			v++;
		}
		i += k;
	}
	if (a >= to)
		*va = v + (a - to);
	if (b >= to)
		*vb = v + (b - to);
}

static int digits(uint32_t n)
{
	int d = 1;

	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

static int gutter_width(uint32_t line)
{
	int d = digits(line);

	return d < 4 ? 4 : d;
}

static void quote(FILE *out, struct line_cursor *cur,
		  const struct sn_srcmgr *m, struct sn_loc loc)
{
	const struct sn_source *src = sn_srcmgr_find(m, loc.file);
	const char *line;
	size_t len, from, to, a, b, va = 0, vb = 0, lead = 0;
	int w = gutter_width(loc.line);

	if (!src || !find_line(cur, src, loc.line, &line, &len))
		return;
	a = loc.col ? loc.col - 1 : 0;
	b = a + (loc.len ? loc.len : 1);
	if (a > len)
		a = len;
	if (b > len + 1)
		b = len + 1; /* a caret just past the end: "expected ..." at EOL */
	from = 0;
	to = len;
	if (len > QUOTE_MAX) {
		/* Show a window of QUOTE_MAX bytes that starts a little before
		 * the column; mark the cut ends with "...". */
		from = a > QUOTE_CONTEXT ? a - QUOTE_CONTEXT : 0;
		to = from + QUOTE_MAX < len ? from + QUOTE_MAX : len;
		if (b > to)
			b = to;
		/* Do not cut a UTF-8 sequence in half. */
		while (from > 0 && ((unsigned char)line[from] & 0xc0) == 0x80)
			from--;
		while (to < len && ((unsigned char)line[to] & 0xc0) == 0x80)
			to++;
	}
	fprintf(out, " %*u | ", w, (unsigned)loc.line);
	if (from > 0) {
		fputs("...", out);
		lead = 3;
	}
	print_span(out, line, from, to, a, b, &va, &vb, lead);
	if (to < len)
		fputs("...", out);
	fputc('\n', out);
	fprintf(out, " %*s | %*s^", w, "", (int)va, "");
	for (size_t i = va + 1; i < vb; i++)
		fputc('~', out);
	fputc('\n', out);
}

static const char *sev_word(enum sn_severity s)
{
	switch (s) {
	case SN_SEV_ERROR:
		return "error";
	case SN_SEV_WARNING:
		return "warning";
	case SN_SEV_NOTE:
		break;
	}
	return "note";
}

static void header(FILE *out, struct sn_loc loc, const char *word,
		   const char *code, const char *msg)
{
	if (loc.file) {
		if (loc.line)
			fprintf(out, "%s:%u:%u: ", loc.file, (unsigned)loc.line,
				(unsigned)loc.col);
		else
			fprintf(out, "%s: ", loc.file);
	}
	if (code)
		fprintf(out, "%s[%s]: %s\n", word, code, msg);
	else
		fprintf(out, "%s: %s\n", word, msg);
}

void sn_diags_render_text(FILE *out, const struct sn_diags *d,
			  const struct sn_srcmgr *m)
{
	/* Notes usually point backwards (a first definition): their own
	 * cursor keeps the main one moving forward. */
	struct line_cursor cur = { 0 }, ncur = { 0 };

	for (size_t i = 0; i < d->n; i++) {
		const struct sn_diag *g = &d->v[i];
		/* Hints and location-less notes align with the gutter bar. */
		int w = gutter_width(g->loc.file ? g->loc.line : 0) + 1;

		header(out, g->loc, sev_word(g->severity), g->code, g->message);
		if (g->loc.file && g->loc.line)
			quote(out, &cur, m, g->loc);
		if (g->hint)
			fprintf(out, "%*s = hint: %s\n", w, "", g->hint);
		for (unsigned k = 0; k < g->n_notes; k++) {
			const struct sn_diag_note *nt = &g->notes[k];

			if (!nt->loc.file) {
				fprintf(out, "%*s = note: %s\n", w, "",
					nt->message);
				continue;
			}
			header(out, nt->loc, "note", NULL, nt->message);
			if (nt->loc.line)
				quote(out, &ncur, m, nt->loc);
		}
	}
	if (d->n_errors || d->n_warnings) {
		if (d->n_errors)
			fprintf(out, "%zu error%s", d->n_errors,
				d->n_errors == 1 ? "" : "s");
		if (d->n_warnings)
			fprintf(out, "%s%zu warning%s", d->n_errors ? ", " : "",
				d->n_warnings, d->n_warnings == 1 ? "" : "s");
		if (d->suppressed)
			fprintf(out, " (%zu more not shown)", d->suppressed);
		fputc('\n', out);
	}
}

/*
 * JSON, SARIF 2.1.0 and GitHub workflow-command renderings of diagnostics
 * (see diag_format.h).  Columns are 1-based byte columns as in the text
 * rendering; every end column is exclusive (the column after the last
 * character), as SARIF defines endColumn.
 */
#include "diag_format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

#define SARIF_SCHEMA "https://json.schemastore.org/sarif-2.1.0.json"
/* The project has no public home yet; .invalid never resolves (RFC 2606). */
#define TOOL_URI "https://47sentry.invalid/"

int sn_format_parse(const char *name, enum sn_out_format *out)
{
	static const char *const names[] = {
		[SN_FORMAT_TEXT] = "text", [SN_FORMAT_JSON] = "json",
		[SN_FORMAT_SARIF] = "sarif", [SN_FORMAT_GITHUB] = "github",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			*out = (enum sn_out_format)i;
			return 0;
		}
	return -EINVAL;
}

/* Kept in step with the table in SPEC.md section 8 (and analyze.h). */
static const struct {
	const char *code, *summary;
} codes[] = {
	{ "E001", "syntax error" },
	{ "E002", "invalid address or prefix" },
	{ "E003", "host bits set past the prefix length" },
	{ "E004", "unknown name" },
	{ "E005", "duplicate definition" },
	{ "E006", "list file unreadable" },
	{ "E007", "malformed list file line" },
	{ "E008", "port out of range" },
	{ "E009", "include cycle or include depth over 32" },
	{ "E010", "conflicting rules: equal specificity, different verdicts" },
	{ "E011", "include file unreadable" },
	{ "E012", "port range not ascending" },
	{ "E013", "port with a protocol other than tcp/udp" },
	{ "E014", "protocol and source family mismatch" },
	{ "E015", "expectation failed" },
	{ "E016", "IPv4-mapped IPv6 prefix" },
	{ "E017", "duplicate default for a family" },
	{ "E018", "type mismatch or protocol number out of range" },
	{ "E019", "set reference cycle" },
	{ "E020", "malformed expect" },
	{ "E021", "rule has no sources" },
	{ "E022", "policy too large" },
	{ "E030", "policy exceeds the decision-table capacity" },
	{ "E031", "image exceeds a data-plane map capacity" },
	{ "E040", "invalid rate or threshold" },
	{ "E041", "number out of range" },
	{ "E042", "key or auto-block prefix length out of range" },
	{ "E043", "invalid duration" },
	{ "E044", "invalid DNS name" },
	{ "W045", "DNS name blocked twice" },
	{ "E046", "setting given twice" },
	{ "E047", "a port in two syncookies statements" },
	{ "E048", "limit rules conflict or repeat a match" },
	{ "E049", "limit rule without a rate" },
	{ "W001", "rule never decides a packet (shadowed)" },
	{ "W002", "redundant rule: removing it changes no verdict" },
	{ "W003", "the same prefix twice among a rule's sources" },
	{ "W004", "source prefix inside another source of the same rule" },
	{ "W005", "sibling prefixes of one rule that form their parent" },
	{ "W006", "rules that differ only in their ports" },
	{ "W007", "image near a data-plane map capacity" },
};

const char *sn_diag_code_summary(const char *code)
{
	if (!code)
		return NULL;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(code, codes[i].code))
			return codes[i].summary;
	return NULL;
}

static const char *sev_name(enum sn_severity s)
{
	return s == SN_SEV_ERROR ? "error" : s == SN_SEV_WARNING ? "warning" : "note";
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_loc_fields(FILE *out, struct sn_loc loc)
{
	fputs("\"file\":", out);
	sn_json_str(out, loc.file);
	fprintf(out, ",\"line\":%u,\"column\":%u", loc.file ? loc.line : 0,
		loc.file ? loc.col : 0);
}

static void json_diag(FILE *out, const struct sn_diag *g)
{
	fputs("{\"severity\":", out);
	sn_json_str(out, sev_name(g->severity));
	fputs(",\"code\":", out);
	sn_json_str(out, g->code);
	fputs(",\"message\":", out);
	sn_json_str(out, g->message);
	fputc(',', out);
	json_loc_fields(out, g->loc);
	fprintf(out, ",\"end_column\":%u",
		g->loc.file && g->loc.line ? g->loc.col + g->loc.len : 0);
	fputs(",\"hint\":", out);
	sn_json_str(out, g->hint);
	fputs(",\"notes\":[", out);
	for (unsigned k = 0; k < g->n_notes; k++) {
		fputs(k ? ",{" : "{", out);
		json_loc_fields(out, g->notes[k].loc);
		fputs(",\"message\":", out);
		sn_json_str(out, g->notes[k].message);
		fputc('}', out);
	}
	fputs("]}", out);
}

void sn_diags_render_json(FILE *out, const struct sn_diag_file *files,
			  size_t n, void (*extra)(FILE *out, void *arg),
			  void *arg)
{
	size_t errors = 0, warnings = 0, suppressed = 0;
	bool first = true;

	fputs("{\"version\":1,\"files\":[", out);
	for (size_t i = 0; i < n; i++) {
		const struct sn_diags *d = files[i].diags;

		fputs(i ? ",\n  {\"path\":" : "\n  {\"path\":", out);
		sn_json_str(out, files[i].path);
		fprintf(out, ",\"errors\":%zu,\"warnings\":%zu,\"suppressed\":%zu",
			d ? d->n_errors : (files[i].io_error ? 1 : 0),
			d ? d->n_warnings : 0, d ? d->suppressed : 0);
		if (files[i].io_error) {
			fputs(",\"io_error\":", out);
			sn_json_str(out, files[i].io_error);
			errors++;
		}
		fputc('}', out);
	}
	fputs(n ? "\n],\"diagnostics\":[" : "],\"diagnostics\":[", out);
	for (size_t i = 0; i < n; i++) {
		const struct sn_diags *d = files[i].diags;

		if (!d)
			continue;
		errors += d->n_errors;
		warnings += d->n_warnings;
		suppressed += d->suppressed;
		for (size_t j = 0; j < d->n; j++) {
			fputs(first ? "\n  " : ",\n  ", out);
			first = false;
			json_diag(out, &d->v[j]);
		}
	}
	fprintf(out, "%s],\"errors\":%zu,\"warnings\":%zu,\"suppressed\":%zu",
		first ? "" : "\n", errors, warnings, suppressed);
	if (extra)
		extra(out, arg);
	fputs("}\n", out);
}

/* ---- SARIF ----------------------------------------------------------------- */

/*
 * artifactLocation: a relative path stays relative to %SRCROOT% (the
 * checkout), an absolute one becomes a file: URI.  Bytes outside the
 * unreserved set are percent-encoded, so the URI is valid whatever the
 * file is called.
 */
static void sarif_artifact(FILE *out, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	char buf[4096 * 3 + 16];
	size_t k = 0;

	if (path[0] == '/') {
		memcpy(buf, "file://", 7);
		k = 7;
	}
	for (const unsigned char *p = (const unsigned char *)path;
	     *p && k + 4 < sizeof(buf); p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p)) {
			buf[k++] = (char)*p;
		} else {
			buf[k++] = '%';
			buf[k++] = hex[*p >> 4];
			buf[k++] = hex[*p & 15];
		}
	}
	buf[k] = '\0';
	fputs("{\"uri\":", out);
	sn_json_str(out, buf);
	if (path[0] != '/')
		fputs(",\"uriBaseId\":\"%SRCROOT%\"", out);
	fputc('}', out);
}

static void sarif_location(FILE *out, struct sn_loc loc, const char *message)
{
	fputs("{\"physicalLocation\":{\"artifactLocation\":", out);
	sarif_artifact(out, loc.file);
	if (loc.line)
		fprintf(out, ",\"region\":{\"startLine\":%u,\"startColumn\":%u,"
			     "\"endColumn\":%u}",
			loc.line, loc.col ? loc.col : 1,
			(loc.col ? loc.col : 1) + (loc.len ? loc.len : 1));
	fputc('}', out);
	if (message) {
		fputs(",\"message\":{\"text\":", out);
		sn_json_str(out, message);
		fputc('}', out);
	}
	fputc('}', out);
}

static int cmp_code(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted distinct codes of all diagnostics (malloc'd; NULL when none). */
static const char **used_codes(const struct sn_diag_file *files, size_t n,
			       size_t *n_codes)
{
	size_t total = 0, m = 0;
	const char **v;

	for (size_t i = 0; i < n; i++)
		total += files[i].diags ? files[i].diags->n : 0;
	*n_codes = 0;
	if (!total || !(v = malloc(total * sizeof(*v))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; files[i].diags && j < files[i].diags->n; j++)
			if (files[i].diags->v[j].code)
				v[m++] = files[i].diags->v[j].code;
	qsort(v, m, sizeof(*v), cmp_code);
	size_t u = 0;

	for (size_t i = 0; i < m; i++)
		if (u == 0 || strcmp(v[u - 1], v[i]))
			v[u++] = v[i];
	*n_codes = u;
	return v;
}

static long code_index(const char **v, size_t n, const char *code)
{
	const char **hit = code ? bsearch(&code, v, n, sizeof(*v), cmp_code) : NULL;

	return hit ? (long)(hit - v) : -1;
}

static void sarif_result(FILE *out, const struct sn_diag *g, const char **cv,
			 size_t n_codes)
{
	long idx = code_index(cv, n_codes, g->code);

	fputs("{", out);
	if (idx >= 0) {
		fputs("\"ruleId\":", out);
		sn_json_str(out, g->code);
		fprintf(out, ",\"ruleIndex\":%ld,", idx);
	}
	fprintf(out, "\"level\":\"%s\",\"message\":{\"text\":", sev_name(g->severity));
	if (g->hint) {
		size_t len = strlen(g->message) + strlen(g->hint) + 16;
		char *text = malloc(len);

		if (text) {
			snprintf(text, len, "%s\nhint: %s", g->message, g->hint);
			sn_json_str(out, text);
			free(text);
		} else {
			sn_json_str(out, g->message);
		}
	} else {
		sn_json_str(out, g->message);
	}
	fputc('}', out);
	if (g->loc.file) {
		fputs(",\"locations\":[", out);
		sarif_location(out, g->loc, NULL);
		fputc(']', out);
	}
	if (g->n_notes) {
		fputs(",\"relatedLocations\":[", out);
		for (unsigned k = 0; k < g->n_notes; k++) {
			const struct sn_diag_note *nt = &g->notes[k];

			if (k)
				fputc(',', out);
			fprintf(out, "{\"id\":%u", k + 1);
			if (nt->loc.file) {
				fputs(",\"physicalLocation\":", out);
				/* The location object minus its braces. */
				fputs("{\"artifactLocation\":", out);
				sarif_artifact(out, nt->loc.file);
				if (nt->loc.line)
					fprintf(out,
						",\"region\":{\"startLine\":%u,"
						"\"startColumn\":%u,\"endColumn\":%u}",
						nt->loc.line, nt->loc.col ? nt->loc.col : 1,
						(nt->loc.col ? nt->loc.col : 1) +
							(nt->loc.len ? nt->loc.len : 1));
				fputc('}', out);
			}
			fputs(",\"message\":{\"text\":", out);
			sn_json_str(out, nt->message);
			fputs("}}", out);
		}
		fputc(']', out);
	}
	fputc('}', out);
}

void sn_diags_render_sarif(FILE *out, const struct sn_diag_file *files,
			   size_t n)
{
	size_t n_codes;
	const char **cv = used_codes(files, n, &n_codes);
	bool first = true, io_ok = true;

	fputs("{\n\"$schema\":\"" SARIF_SCHEMA "\",\n\"version\":\"2.1.0\",\n"
	      "\"runs\":[{\n\"tool\":{\"driver\":{\"name\":\"sentry-compile\","
	      "\"informationUri\":\"" TOOL_URI "\",\"rules\":[",
	      out);
	for (size_t i = 0; i < n_codes; i++) {
		const char *s = sn_diag_code_summary(cv[i]);

		fputs(i ? ",\n  {\"id\":" : "\n  {\"id\":", out);
		sn_json_str(out, cv[i]);
		fputs(",\"shortDescription\":{\"text\":", out);
		sn_json_str(out, s ? s : cv[i]);
		fputs("}}", out);
	}
	fputs("]}},\n\"columnKind\":\"unicodeCodePoints\",\n\"invocations\":[{", out);
	for (size_t i = 0; i < n; i++)
		if (files[i].io_error)
			io_ok = false;
	fprintf(out, "\"executionSuccessful\":%s", io_ok ? "true" : "false");
	if (!io_ok) {
		bool f = true;

		fputs(",\"toolExecutionNotifications\":[", out);
		for (size_t i = 0; i < n; i++) {
			if (!files[i].io_error)
				continue;
			fputs(f ? "{" : ",{", out);
			f = false;
			fputs("\"level\":\"error\",\"message\":{\"text\":", out);
			sn_json_str(out, files[i].io_error);
			fputs("},\"locations\":[", out);
			sarif_location(out, (struct sn_loc){ files[i].path, 0, 0, 0 },
				       NULL);
			fputs("]}", out);
		}
		fputc(']', out);
	}
	fputs("}],\n\"results\":[", out);
	for (size_t i = 0; i < n; i++) {
		const struct sn_diags *d = files[i].diags;

		for (size_t j = 0; d && j < d->n; j++) {
			fputs(first ? "\n  " : ",\n  ", out);
			first = false;
			sarif_result(out, &d->v[j], cv, n_codes);
		}
	}
	fputs(first ? "]\n}]\n}\n" : "\n]\n}]\n}\n", out);
	free(cv);
}

/* ---- GitHub workflow commands ------------------------------------------- */

/* Data (the message) escapes %, CR and LF; property values also , and :. */
static void gh_escape(FILE *out, const char *s, bool property)
{
	for (; *s; s++) {
		switch (*s) {
		case '%':
			fputs("%25", out);
			break;
		case '\r':
			fputs("%0D", out);
			break;
		case '\n':
			fputs("%0A", out);
			break;
		case ':':
			fputs(property ? "%3A" : ":", out);
			break;
		case ',':
			fputs(property ? "%2C" : ",", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

static const char *gh_command(enum sn_severity s)
{
	return s == SN_SEV_ERROR ? "error" : s == SN_SEV_WARNING ? "warning" : "notice";
}

static void gh_diag(FILE *out, const struct sn_diag *g)
{
	bool comma = false;

	fprintf(out, "::%s ", gh_command(g->severity));
	if (g->loc.file) {
		fputs("file=", out);
		gh_escape(out, g->loc.file, true);
		comma = true;
		if (g->loc.line)
			fprintf(out, ",line=%u,col=%u,endColumn=%u", g->loc.line,
				g->loc.col, g->loc.col + g->loc.len);
	}
	if (g->code) {
		fputs(comma ? ",title=" : "title=", out);
		gh_escape(out, g->code, true);
	}
	fputs("::", out);
	gh_escape(out, g->message, false);
	if (g->hint) {
		fputs("%0Ahint: ", out);
		gh_escape(out, g->hint, false);
	}
	for (unsigned k = 0; k < g->n_notes; k++) {
		const struct sn_diag_note *nt = &g->notes[k];

		fputs("%0Anote: ", out);
		if (nt->loc.file) {
			gh_escape(out, nt->loc.file, false);
			if (nt->loc.line)
				fprintf(out, ":%u:%u", nt->loc.line, nt->loc.col);
			fputs(": ", out);
		}
		gh_escape(out, nt->message, false);
	}
	fputc('\n', out);
}

void sn_diags_render_github(FILE *out, const struct sn_diag_file *files,
			    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct sn_diags *d = files[i].diags;

		if (files[i].io_error) {
			fputs("::error file=", out);
			gh_escape(out, files[i].path, true);
			fputs("::cannot read policy: ", out);
			gh_escape(out, files[i].io_error, false);
			fputc('\n', out);
		}
		for (size_t j = 0; d && j < d->n; j++)
			gh_diag(out, &d->v[j]);
		if (d && d->suppressed) {
			fputs("::warning file=", out);
			gh_escape(out, files[i].path, true);
			fprintf(out, "::%zu more diagnostic%s not shown "
				     "(--max-errors)\n",
				d->suppressed, d->suppressed == 1 ? "" : "s");
		}
	}
}

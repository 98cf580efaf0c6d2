/* Log lines in logfmt, JSON or text (log.h). */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../compiler/jsonw.h"

static const char *const level_names[] = {
	[SN_LOG_DEBUG] = "debug",
	[SN_LOG_INFO] = "info",
	[SN_LOG_WARN] = "warn",
	[SN_LOG_ERROR] = "error",
};

int sn_log_level_parse(const char *s, enum sn_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum sn_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = SN_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *sn_log_level_name(enum sn_log_level level)
{
	if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
		return level_names[level];
	return "unknown";
}

/* logfmt needs quotes around empty values and anything with a space,
 * '=', '"' or a control character. */
static bool needs_quotes(const char *v)
{
	if (!*v)
		return true;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == 0x7f)
			return true;
	return false;
}

size_t sn_logfmt_value(char *buf, size_t len, const char *value)
{
	size_t n = 0;
#define PUT(c)                        \
	do {                          \
		if (n + 1 < len)      \
			buf[n++] = (c); \
	} while (0)
	if (!len)
		return 0;
	bool quote = needs_quotes(value);
	if (quote)
		PUT('"');
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		/* Leave room for the escape pair and the closing quote, so a
		 * truncated value is still a well-formed logfmt value. */
		if (n + 4 >= len)
			break;
		switch (*p) {
		case '"': PUT('\\'); PUT('"'); break;
		case '\\': PUT('\\'); PUT('\\'); break;
		case '\n': PUT('\\'); PUT('n'); break;
		case '\t': PUT('\\'); PUT('t'); break;
		case '\r': PUT('\\'); PUT('r'); break;
		default: PUT(*p < ' ' || *p == 0x7f ? '?' : (char)*p); break;
		}
	}
	if (quote)
		PUT('"');
#undef PUT
	buf[n] = '\0';
	return n;
}

int sn_log_format_parse(const char *s, enum sn_log_format *out)
{
	static const char *const names[] = {
		[SN_LOG_LOGFMT] = "logfmt",
		[SN_LOG_JSON] = "json",
		[SN_LOG_TEXT] = "text",
	};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum sn_log_format)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void put_num(FILE *m, double v)
{
	/* Counts print as integers, durations with what precision they have. */
	fprintf(m, "%.*g", v == (double)(long long)v ? 17 : 6, v);
}

static void put_logfmt(FILE *m, const char *key, const char *v)
{
	char q[2200];
	sn_logfmt_value(q, sizeof(q), v);
	fprintf(m, " %s=%s", key, q);
}

static void vlog(const struct sn_log *log, enum sn_log_level level,
		 const char *iface, const struct sn_log_kv *kv, size_t n,
		 const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	struct timespec ts;
	struct tm tm;
	char when[64] = "unknown";
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0 &&
	    gmtime_r(&ts.tv_sec, &tm)) {
		char base[32];
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when, sizeof(when), "%s.%03uZ", base,
			 (unsigned)(ts.tv_nsec / 1000000) % 1000u);
	}
	char *line = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&line, &len);
	if (!m)
		return;
	const char *lvl = sn_log_level_name(level);
	switch (log->format) {
	case SN_LOG_JSON:
		fputs("{\"ts\":", m);
		sn_json_str(m, when);
		fputs(",\"level\":", m);
		sn_json_str(m, lvl);
		fputs(",\"msg\":", m);
		sn_json_str(m, msg);
		if (iface) {
			fputs(",\"iface\":", m);
			sn_json_str(m, iface);
		}
		for (size_t i = 0; i < n; i++) {
			fputc(',', m);
			sn_json_str(m, kv[i].key);
			fputc(':', m);
			if (kv[i].str)
				sn_json_str(m, kv[i].str);
			else
				put_num(m, kv[i].num);
		}
		fputs("}\n", m);
		break;
	case SN_LOG_TEXT:
		fprintf(m, "%s %-5s %s%s%s", when, lvl, iface ? iface : "",
			iface ? ": " : "", msg);
		goto fields;
	case SN_LOG_LOGFMT:
	default:
		fprintf(m, "ts=%s level=%s", when, lvl);
		put_logfmt(m, "msg", msg);
		if (iface)
			put_logfmt(m, "iface", iface);
	fields:
		for (size_t i = 0; i < n; i++) {
			if (kv[i].str) {
				put_logfmt(m, kv[i].key, kv[i].str);
			} else {
				fprintf(m, " %s=", kv[i].key);
				put_num(m, kv[i].num);
			}
		}
		fputc('\n', m);
		break;
	}
	fclose(m);
	/* One write per line so concurrent writers do not interleave. */
	fwrite(line, 1, len, log->out);
	fflush(log->out);
	free(line);
}

void sn_log(const struct sn_log *log, enum sn_log_level level,
	    const char *iface, const char *fmt, ...)
{
	if (!log || !log->out || level < log->min)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(log, level, iface, NULL, 0, fmt, ap);
	va_end(ap);
}

void sn_log_kv(const struct sn_log *log, enum sn_log_level level,
	       const char *iface, const struct sn_log_kv *kv, size_t n,
	       const char *fmt, ...)
{
	if (!log || !log->out || level < log->min)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(log, level, iface, kv, n, fmt, ap);
	va_end(ap);
}

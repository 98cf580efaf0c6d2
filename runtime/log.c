/* logfmt lines (log.h). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

void sn_log(const struct sn_log *log, enum sn_log_level level,
	    const char *iface, const char *fmt, ...)
{
	if (!log || !log->out || level < log->min)
		return;

	char msg[1024], qmsg[2200], qiface[80] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_logfmt_value(qmsg, sizeof(qmsg), msg);
	if (iface) {
		char v[64];
		sn_logfmt_value(v, sizeof(v), iface);
		snprintf(qiface, sizeof(qiface), " iface=%s", v);
	}

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
	/* One fprintf so concurrent writers do not interleave within a line. */
	fprintf(log->out, "ts=%s level=%s msg=%s%s\n", when,
		sn_log_level_name(level), qmsg, qiface);
	fflush(log->out);
}

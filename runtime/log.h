/*
 * logfmt logging for the runtime binaries: one line per event,
 *   ts=2025-01-31T12:00:00.123Z level=info msg="attached to eth0 ..." iface=eth0
 * so journald, Loki or grep can pick fields out without a parser of ours.
 *
 * The logger is a value the caller owns and passes down (no global), and
 * library helpers never log: they return errors and the binaries decide
 * what to say.
 */
#ifndef SN_LOG_H
#define SN_LOG_H

#include <stdio.h>

enum sn_log_level {
	SN_LOG_DEBUG = 0,
	SN_LOG_INFO = 1,
	SN_LOG_WARN = 2,
	SN_LOG_ERROR = 3,
};

struct sn_log {
	FILE *out;
	enum sn_log_level min; /* lines below this level are dropped */
};

/* "debug", "info", "warn"/"warning", "error" -> 0, or -EINVAL. */
int sn_log_level_parse(const char *s, enum sn_log_level *out);
const char *sn_log_level_name(enum sn_log_level level);

/*
 * Emit one line.  iface adds an iface= field when not NULL; msg is a
 * printf format.  Values are quoted and escaped as logfmt requires.
 */
void sn_log(const struct sn_log *log, enum sn_log_level level,
	    const char *iface, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write value into buf as a logfmt value (quoted and escaped when needed),
 * for callers that build extra fields.  Always NUL-terminates; returns the
 * length written, truncating to a still well-formed value. */
size_t sn_logfmt_value(char *buf, size_t len, const char *value);

#endif

/*
 * Structured logging for the runtime binaries: one line per event, in one
 * of three formats (SPEC.md 6.7):
 *
 *   logfmt (default)
 *     ts=2025-01-31T12:00:00.123Z level=info msg="attached to eth0 ..." iface=eth0 rules=12
 *   json (one object per line)
 *     {"ts":"2025-01-31T12:00:00.123Z","level":"info","msg":"...","iface":"eth0","rules":12}
 *   text (for a person at a terminal)
 *     2025-01-31T12:00:00.123Z info  eth0: attached to eth0 ... rules=12
 *
 * so journald, Loki or grep can pick fields out without a parser of ours.
 *
 * The logger is a value the caller owns and passes down (no global), and
 * library helpers never log: they return errors and the binaries decide
 * what to say.
 */
#ifndef SN_LOG_H
#define SN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum sn_log_level {
	SN_LOG_DEBUG = 0,
	SN_LOG_INFO = 1,
	SN_LOG_WARN = 2,
	SN_LOG_ERROR = 3,
};

enum sn_log_format {
	SN_LOG_LOGFMT = 0,
	SN_LOG_JSON = 1,
	SN_LOG_TEXT = 2,
};

struct sn_log {
	FILE *out;
	enum sn_log_level min; /* lines below this level are dropped */
	enum sn_log_format format;
};

/* A field of a line: a string (str != NULL) or a number. */
struct sn_log_kv {
	const char *key;
	const char *str;
	double num;
};

/* "debug", "info", "warn"/"warning", "error" -> 0, or -EINVAL. */
int sn_log_level_parse(const char *s, enum sn_log_level *out);
const char *sn_log_level_name(enum sn_log_level level);
/* "logfmt", "json", "text" -> 0, or -EINVAL. */
int sn_log_format_parse(const char *s, enum sn_log_format *out);

/*
 * Emit one line.  iface adds an iface= field when not NULL; msg is a
 * printf format.  Values are quoted and escaped as the format requires.
 */
void sn_log(const struct sn_log *log, enum sn_log_level level,
	    const char *iface, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same with n extra fields after msg and iface. */
void sn_log_kv(const struct sn_log *log, enum sn_log_level level,
	       const char *iface, const struct sn_log_kv *kv, size_t n,
	       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Write value into buf as a logfmt value (quoted and escaped when needed),
 * for callers that build extra fields.  Always NUL-terminates; returns the
 * length written, truncating to a still well-formed value. */
size_t sn_logfmt_value(char *buf, size_t len, const char *value);

#endif

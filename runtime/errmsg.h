/*
 * One-line error messages for library callers: runtime functions return a
 * negative errno and, when the caller passed a buffer, say why in words.
 * They never print; the program at the top decides where messages go.
 */
#ifndef SN_ERRMSG_H
#define SN_ERRMSG_H

#include <stddef.h>

/* Format into err (which may be NULL or zero-sized). */
void sn_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* sn_seterr, then return rc: `return sn_fail(err, errlen, -EINVAL, ...)`. */
int sn_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif

/*
 * The small piece of JSON writing the machine-readable outputs share
 * (diagnostics, plan, explain): strings that are always valid JSON, even
 * when a path or a quoted source line holds control bytes or invalid UTF-8.
 */
#ifndef SN_JSONW_H
#define SN_JSONW_H

#include <stddef.h>
#include <stdio.h>

/* Write s as a JSON string; NULL writes null.  Invalid UTF-8 becomes
 * U+FFFD so the document always parses. */
void sn_json_str(FILE *out, const char *s);

/* Length of the valid multi-byte UTF-8 sequence at s (2-4), or 0 for an
 * ASCII byte, an invalid or overlong sequence, a surrogate, a cut one. */
size_t sn_utf8_seq(const unsigned char *s);

#endif

/*
 * The small piece of JSON writing the machine-readable outputs share
 * (diagnostics, plan, explain): strings that are always valid JSON, even
 * when a path or a quoted source line holds control bytes or invalid UTF-8.
 */
#ifndef SN_JSONW_H
#define SN_JSONW_H

#include <stdio.h>

/* Write s as a JSON string; NULL writes null.  Invalid UTF-8 becomes
 * U+FFFD so the document always parses. */
void sn_json_str(FILE *out, const char *s);

#endif

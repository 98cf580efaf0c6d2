/*
 * Levenshtein distance between two short names, for "did you mean" hints
 * (policy names in sema, config keys in sentryd).  Names longer than 64
 * bytes are not compared: SIZE_MAX.
 */
#ifndef SN_STRDIST_H
#define SN_STRDIST_H

#include <stddef.h>

size_t sn_edit_distance(const char *a, const char *b);

#endif

/*
 * Checks of the rate-limit, SYN-protection, DNS and auto-block parts of
 * the language, shared by sema.c (which walks the AST and resolves names)
 * and split out by topic:
 *
 *   sema_values.c  rates, durations, prefix lengths, bounded numbers
 *   sema_dns.c     DNS name syntax and normalisation
 *   sema_limits.c  limit identities and conflicts, syncookies port overlap
 *
 * Every check reports through struct sn_diags at the place the value was
 * written and returns false (or a negative errno for out of memory).
 */
#ifndef SN_SEMA_LANG_H
#define SN_SEMA_LANG_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "policy.h"

/* The bounds (SN_RATE_MAX_PER_S, ...) are in policy.h: the image reader
 * checks them too. */

/* "N/s" or "N/m", count >= 1, at most SN_RATE_MAX_PER_S (E040). */
bool sn_check_rate(struct sn_diags *d, const struct sn_ast_num *v,
		   const char *what, struct sn_rate *out);
/* "Ns", "Nm", "Nh", "Nd", 1s..7d (E043); *secs in seconds. */
bool sn_check_duration(struct sn_diags *d, const struct sn_ast_num *v,
		       const char *what, uint32_t *secs);
/* "/N" with min <= N <= the family's full length (E042). */
bool sn_check_plen(struct sn_diags *d, const struct sn_ast_num *v,
		   int family, unsigned min, const char *what, uint8_t *out);
/* A plain number in lo..hi (E041). */
bool sn_check_count(struct sn_diags *d, const struct sn_ast_num *v,
		    uint32_t lo, uint32_t hi, const char *what, uint32_t *out);
/* "X" or "X.Y" with at most 3 decimals, 0 < value <= 8 (E041). */
bool sn_check_entropy(struct sn_diags *d, const struct sn_ast_num *v,
		      uint32_t *milli);

/* Canonical text of a duration: the largest unit that divides it. */
void sn_format_duration(uint32_t secs, char *buf, size_t n);
/* "100/s", "10/m". */
void sn_format_rate(const struct sn_rate *r, char *buf, size_t n);
/* Same events per second (10/s == 600/m). */
bool sn_rate_equal(const struct sn_rate *a, const struct sn_rate *b);

/* FNV-1a, 64 bit: the stable identity hash (SPEC.md 2.4). */
uint64_t sn_fnv1a64(const char *s);

/*
 * Check one `dns block` name (E044) and normalise it into *out (lower
 * case, trailing dot dropped, "*." split off).  false after reporting;
 * -ENOMEM is signalled by *oom.
 */
bool sn_dns_name_check(struct sn_diags *d, struct sn_arena *a,
		       const struct sn_ast_item *it, struct sn_dns_name *out,
		       bool *oom);
/*
 * Keep the first occurrence of each name in v[0..*n) (order kept) and warn
 * about the others (W045).  0 or -ENOMEM.
 */
int sn_dns_names_dedupe(struct sn_diags *d, struct sn_dns_name *v,
			size_t *n);

/*
 * Limit rules: equal-specificity conflicts with different parameters and
 * duplicate identities (E048).  0 or -ENOMEM.
 */
int sn_limits_check(struct sn_diags *d, const struct sn_policy *p);
/* A port in two syncookies statements (E047).  0 or -ENOMEM. */
int sn_syncookies_check(struct sn_diags *d, const struct sn_policy *p);

#endif

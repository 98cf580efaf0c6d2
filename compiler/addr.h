/*
 * Strict address and prefix text: one parser and one formatter shared by
 * the policy front end, the list-file reader and every stage that prints a
 * prefix, so "10.0.0.0/8" is read and written the same way everywhere.
 *
 * Strict means: dotted-quad IPv4 with no leading zeros (as inet_pton),
 * IPv6 as inet_pton accepts it, an optional "/len" in decimal without
 * leading zeros, and no bits set past len.
 */
#ifndef SN_ADDR_H
#define SN_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

enum sn_addr_status {
	SN_ADDR_OK = 0,
	SN_ADDR_EINVAL = 1,    /* not an IPv4/IPv6 address */
	SN_ADDR_EPLEN = 2,     /* "/len" missing digits, not decimal, too long */
	SN_ADDR_EHOSTBITS = 3, /* bits set past len; *out holds the masked prefix */
};

/* "ffff:...:255.255.255.255/128" plus NUL, rounded up. */
#define SN_PREFIX_STRLEN 64

/*
 * Parse s[0..n) (not NUL-terminated) as ADDRESS or ADDRESS/LEN.  Without
 * "/len" the prefix is the full-length host.  Returns an enum
 * sn_addr_status; *out is written for SN_ADDR_OK and SN_ADDR_EHOSTBITS.
 * Never reads past s[n-1].
 */
int sn_prefix_parse(const char *s, size_t n, struct sn_prefix *out);
/* Human text for a status ("invalid prefix length", ...). */
const char *sn_addr_strerror(int status);

/* Canonical text: inet_ntop form, "/len" always printed.  n >= 1. */
void sn_prefix_format(const struct sn_prefix *p, char *buf, size_t n);

/* Clear the bits past p->len. */
void sn_prefix_mask(struct sn_prefix *p);
/* Inside ::ffff:0:0/96 (IPv4-mapped IPv6), which the data plane drops. */
bool sn_prefix_is_v4mapped(const struct sn_prefix *p);
/* The IPv4 prefix a v4-mapped prefix stands for (p must be v4-mapped). */
void sn_prefix_unmap(const struct sn_prefix *p, struct sn_prefix *out);
/* 32 or 128. */
unsigned sn_prefix_maxlen(const struct sn_prefix *p);
/* Total order: family, address bytes, length.  <0, 0, >0. */
int sn_prefix_cmp(const struct sn_prefix *a, const struct sn_prefix *b);
/* Does a contain b (same family, a->len <= b->len, same leading bits)? */
bool sn_prefix_contains(const struct sn_prefix *a, const struct sn_prefix *b);

#endif

#include "addr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * Dotted quad, hand-parsed because list files hold up to millions of them
 * and inet_pton needs a NUL-terminated copy.  Same acceptance as glibc's
 * inet_pton(AF_INET): exactly four decimal parts, 0..255, no leading zeros.
 */
static bool parse_v4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t start = i;

		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			start = ++i;
		}
		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
		}
		if (i == start || v > 255)
			return false;
		if (s[start] == '0' && i - start > 1)
			return false;
		out[part] = (uint8_t)v;
	}
	return i == n;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * IPv6 text, hand-parsed for the same reason as IPv4: inet_pton needs a
 * NUL-terminated copy, and the copy plus the call were a tenth of loading
 * a big IPv6 list.  The algorithm is glibc's inet_pton6 step by step, so
 * the accepted language is exactly inet_pton(AF_INET6)'s, which SPEC.md
 * promises (tests/unit/test_addr.c compares the two on random text):
 * groups of 1-4 hex digits, at most one "::" standing for at least one
 * zero group, no single leading or trailing ':', and an optional trailing
 * dotted quad (strict, as parse_v4) in place of the last two groups.
 */
static bool parse_v6(const char *s, size_t n, uint8_t out[16])
{
	uint8_t tmp[16] = { 0 };
	size_t tp = 0, colonp = SIZE_MAX, i = 0, tok = 0;
	unsigned val = 0, digits = 0;

	if (n == 0)
		return false;
	if (s[0] == ':' && (n < 2 || s[1] != ':'))
		return false; /* one leading ':' */
	if (s[0] == ':')
		i = 1; /* the first ':' of a leading "::" */
	tok = i;
	while (i < n) {
		char c = s[i++];
		int d = hex_value(c);

		if (d >= 0) {
			if (digits == 4)
				return false;
			val = val << 4 | (unsigned)d;
			digits++;
			continue;
		}
		if (c == ':') {
			tok = i;
			if (digits == 0) {
				if (colonp != SIZE_MAX)
					return false; /* a second "::" */
				colonp = tp;
				continue;
			}
			if (i == n || tp + 2 > 16)
				return false; /* trailing ':' or too many groups */
			tmp[tp++] = (uint8_t)(val >> 8);
			tmp[tp++] = (uint8_t)val;
			digits = 0;
			val = 0;
			continue;
		}
		if (c == '.' && tp + 4 <= 16 &&
		    parse_v4(s + tok, n - tok, tmp + tp)) {
			tp += 4;
			digits = 0;
			break; /* the dotted quad ran to the end */
		}
		return false;
	}
	if (digits > 0) {
		if (tp + 2 > 16)
			return false;
		tmp[tp++] = (uint8_t)(val >> 8);
		tmp[tp++] = (uint8_t)val;
	}
	if (colonp != SIZE_MAX) {
		size_t tail = tp - colonp;

		if (tp == 16)
			return false; /* "::" must stand for at least one group */
		memmove(tmp + 16 - tail, tmp + colonp, tail);
		memset(tmp + colonp, 0, 16 - tail - colonp);
		tp = 16;
	}
	if (tp != 16)
		return false;
	memcpy(out, tmp, 16);
	return true;
}

/* Decimal without sign or leading zeros, at most 3 digits. */
static bool parse_len(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

unsigned sn_prefix_maxlen(const struct sn_prefix *p)
{
	return p->family == SN_FAMILY_V4 ? 32 : 128;
}

void sn_prefix_mask(struct sn_prefix *p)
{
	unsigned max = sn_prefix_maxlen(p);
	unsigned len = p->len < max ? p->len : max;
	unsigned full = len / 8, rest = len % 8;

	/* Bytes past an IPv4 address are zero too (full <= 4 for IPv4). */
	if (rest)
		p->addr[full++] &= (uint8_t)(0xff00 >> rest);
	if (full < 16)
		memset(p->addr + full, 0, 16 - full);
}

int sn_prefix_parse(const char *s, size_t n, struct sn_prefix *out)
{
	size_t alen = 0;
	bool colon = false;
	struct sn_prefix p;
	unsigned len;

	/* One scan for both the '/' and a ':' before it. */
	while (alen < n && s[alen] != '/')
		colon |= s[alen++] == ':';
	const char *slash = alen < n ? s + alen : NULL;

	memset(&p, 0, sizeof(p));
	if (colon) {
		if (!parse_v6(s, alen, p.addr))
			return SN_ADDR_EINVAL;
		p.family = SN_FAMILY_V6;
	} else {
		if (!parse_v4(s, alen, p.addr))
			return SN_ADDR_EINVAL;
		p.family = SN_FAMILY_V4;
	}
	len = sn_prefix_maxlen(&p);
	if (slash) {
		if (!parse_len(slash + 1, n - alen - 1, &len) ||
		    len > sn_prefix_maxlen(&p))
			return SN_ADDR_EPLEN;
	}
	p.len = (uint8_t)len;
	*out = p;
	sn_prefix_mask(out);
	if (memcmp(out->addr, p.addr, 16) != 0)
		return SN_ADDR_EHOSTBITS;
	return SN_ADDR_OK;
}

const char *sn_addr_strerror(int status)
{
	switch (status) {
	case SN_ADDR_OK:
		return "ok";
	case SN_ADDR_EINVAL:
		return "invalid address";
	case SN_ADDR_EPLEN:
		return "invalid prefix length";
	case SN_ADDR_EHOSTBITS:
		return "host bits set";
	}
	return "invalid address";
}

void sn_prefix_format(const struct sn_prefix *p, char *buf, size_t n)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family == SN_FAMILY_V4 ? AF_INET : AF_INET6,
		       p->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, n, "%s/%u", a, (unsigned)p->len);
}

static const uint8_t v4mapped_pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool sn_prefix_is_v4mapped(const struct sn_prefix *p)
{
	return p->family == SN_FAMILY_V6 && p->len >= 96 &&
	       memcmp(p->addr, v4mapped_pfx, 12) == 0;
}

void sn_prefix_unmap(const struct sn_prefix *p, struct sn_prefix *out)
{
	memset(out, 0, sizeof(*out));
	out->family = SN_FAMILY_V4;
	out->len = (uint8_t)(p->len - 96);
	memcpy(out->addr, p->addr + 12, 4);
}

int sn_prefix_cmp(const struct sn_prefix *a, const struct sn_prefix *b)
{
	int c;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	c = memcmp(a->addr, b->addr, 16);
	if (c)
		return c < 0 ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return 0;
}

bool sn_prefix_contains(const struct sn_prefix *a, const struct sn_prefix *b)
{
	struct sn_prefix t;

	if (a->family != b->family || a->len > b->len)
		return false;
	t = *b;
	t.len = a->len;
	sn_prefix_mask(&t);
	return memcmp(t.addr, a->addr, 16) == 0;
}

/*
 * Address parser tests: sn_prefix_parse must accept exactly the text
 * inet_pton accepts (SPEC.md 1.1: "an IPv6 address in any inet_pton
 * form"), now that both families are hand-parsed for speed.  Random text
 * over the characters that matter, random mutations of valid addresses,
 * and the masking of every prefix length against a bit-by-bit reference.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/addr.h"

static int failures;

/* xorshift64*: deterministic, seedable from the command line. */
static uint64_t rng_state = 0xadd7e55ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* One text, as an address without "/len": parser and inet_pton agree. */
static void check_text(const char *s, size_t n)
{
	char buf[128];
	uint8_t want[16];
	struct sn_prefix got;
	int af, ok;

	if (n >= sizeof(buf))
		return;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (memchr(s, '/', n))
		return; /* "/len" is tested separately */
	af = memchr(s, ':', n) ? AF_INET6 : AF_INET;
	ok = inet_pton(af, buf, want) == 1 && strlen(buf) == n;
	int st = sn_prefix_parse(s, n, &got);

	if (ok != (st == SN_ADDR_OK) ||
	    (ok && memcmp(got.addr, want, af == AF_INET ? 4 : 16))) {
		failures++;
		if (failures < 20)
			fprintf(stderr, "'%s': inet_pton %s, sn_prefix_parse %d\n",
				buf, ok ? "accepts" : "rejects", st);
	}
}

static void random_text(void)
{
	static const char alpha[] = "0123456789abcdefABCDEFg:.::..0";
	char s[64];

	for (int i = 0; i < 1000000; i++) {
		size_t n = rnd() % 48;

		for (size_t k = 0; k < n; k++)
			s[k] = alpha[rnd() % (sizeof(alpha) - 1)];
		check_text(s, n);
	}
}

/* Valid addresses in every inet_ntop shape, then one edit each. */
static void mutated_text(void)
{
	static const char edits[] = "0f:.1F";

	for (int i = 0; i < 300000; i++) {
		uint8_t a[16];
		char s[INET6_ADDRSTRLEN + 8];
		uint64_t r = rnd();

		for (int k = 0; k < 16; k++)
			a[k] = (r >> (k * 4)) & 1 ? (uint8_t)rnd() : 0;
		if (rnd() % 4 == 0) /* v4-compatible / mapped forms */
			memset(a, 0, 10);
		inet_ntop(AF_INET6, a, s, sizeof(s));
		size_t n = strlen(s);

		check_text(s, n);
		switch (rnd() % 4) {
		case 0: /* replace */
			if (n)
				s[rnd() % n] = edits[rnd() % (sizeof(edits) - 1)];
			break;
		case 1: /* delete */
			if (n) {
				size_t at = rnd() % n;

				memmove(s + at, s + at + 1, n - at);
				n--;
			}
			break;
		case 2: /* insert */
		{
			size_t at = rnd() % (n + 1);

			memmove(s + at + 1, s + at, n - at + 1);
			s[at] = edits[rnd() % (sizeof(edits) - 1)];
			n++;
			break;
		}
		default: /* upper case */
			for (size_t k = 0; k < n; k++)
				if (s[k] >= 'a' && s[k] <= 'f')
					s[k] = (char)(s[k] - 'a' + 'A');
		}
		check_text(s, n);
	}
}

static void fixed_cases(void)
{
	static const char *const cases[] = {
		"::", "::1", "1::", "1:", ":1", ":::", "1::2::3", "::ffff:1.2.3.4",
		"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::8", "1:2:3:4:5:6:7:8:9",
		"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4",
		"::1.2.3", "::1.2.3.04", "::256.1.1.1", "12345::", "fFfF::",
		"1::1.2.3.4.5", "::.1.2.3", "1.2.3.4", "01.2.3.4", "", "a",
		"2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
		"::ffff:0:0", "1:2:3:4:5:6::", "::2:3:4:5:6:7:8", ":2:3:4:5:6:7:8",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_text(cases[i], strlen(cases[i]));
}

/* Bit-by-bit reference for "no bits past len" and the masked prefix. */
static void masking(void)
{
	for (int i = 0; i < 200000; i++) {
		struct sn_prefix p, want;
		int v4 = (int)(rnd() & 1);
		unsigned max = v4 ? 32 : 128;
		unsigned len = (unsigned)(rnd() % (max + 1));
		char text[80], a[INET6_ADDRSTRLEN];

		memset(&want, 0, sizeof(want));
		want.family = v4 ? SN_FAMILY_V4 : SN_FAMILY_V6;
		want.len = (uint8_t)len;
		for (unsigned k = 0; k < max / 8; k++)
			want.addr[k] = (uint8_t)rnd();
		inet_ntop(v4 ? AF_INET : AF_INET6, want.addr, a, sizeof(a));
		snprintf(text, sizeof(text), "%s/%u", a, len);
		bool host_bits = false;

		for (unsigned b = len; b < max; b++) {
			if (want.addr[b / 8] & (0x80 >> (b % 8)))
				host_bits = true;
			want.addr[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
		}
		int st = sn_prefix_parse(text, strlen(text), &p);

		if (st != (host_bits ? SN_ADDR_EHOSTBITS : SN_ADDR_OK) ||
		    p.family != want.family || p.len != want.len ||
		    memcmp(p.addr, want.addr, 16)) {
			failures++;
			if (failures < 20)
				fprintf(stderr, "%s: status %d\n", text, st);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rng_state = strtoull(argv[1], NULL, 0) | 1;
	fixed_cases();
	random_text();
	mutated_text();
	masking();
	if (failures) {
		fprintf(stderr, "test_addr: %d failures\n", failures);
		return 1;
	}
	printf("test_addr: ok\n");
	return 0;
}

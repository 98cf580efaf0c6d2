/*
 * --plan arithmetic: address counts past 2^64 and up to all of IPv6 (2^128,
 * one more than unsigned __int128 holds), a /0 minus its children, and the
 * address-space summary of compiled policy pairs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compile.h"
#include "compiler/image.h"
#include "compiler/plan.h"
#include "tests/check.h"

static void check_fmt(struct sn_count c, bool sep, const char *want)
{
	char buf[SN_COUNT_STRLEN];

	sn_count_format(c, sep, buf);
	CHECK(!strcmp(buf, want), "got %s, want %s", buf, want);
}

static void test_counts(void)
{
	struct sn_count all6 = sn_count_prefix(0, 128);
	struct sn_count all4 = sn_count_prefix(0, 32);

	check_fmt(sn_count_prefix(32, 32), true, "1");
	check_fmt(sn_count_prefix(24, 32), true, "256");
	check_fmt(sn_count_prefix(16, 32), true, "65,536");
	check_fmt(all4, true, "4,294,967,296");
	check_fmt(all4, false, "4294967296");
	check_fmt(sn_count_prefix(64, 128), true, "18,446,744,073,709,551,616");
	check_fmt(sn_count_prefix(32, 128), false,
		  "79228162514264337593543950336");
	check_fmt(all6, true,
		  "340,282,366,920,938,463,463,374,607,431,768,211,456");
	check_fmt((struct sn_count){ 0, 0 }, true, "0");
	check_fmt((struct sn_count){ 999, 0 }, true, "999");
	check_fmt((struct sn_count){ 1000, 0 }, true, "1,000");

	/* ::/0 minus two /1 children is nothing; minus one /1 is 2^127. */
	struct sn_count c = all6;

	sn_count_sub(&c, sn_count_prefix(1, 128));
	check_fmt(c, false, "170141183460469231731687303715884105728");
	CHECK(c.hi == 0, "borrow");
	sn_count_sub(&c, sn_count_prefix(1, 128));
	CHECK(sn_count_is_zero(c), "2^128 - 2 * 2^127 is zero");

	/* /0 minus a /8 and a /16 (IPv4). */
	c = all4;
	sn_count_sub(&c, sn_count_prefix(8, 32));
	sn_count_sub(&c, sn_count_prefix(16, 32));
	check_fmt(c, true, "4,278,124,544");

	/* Sums carry into hi: 2^127 + 2^127 = 2^128. */
	c = sn_count_prefix(1, 128);
	sn_count_add(&c, sn_count_prefix(1, 128));
	CHECK(sn_count_eq(c, all6), "carry into hi");
	/* 2^128 - 1 prints without the carry path. */
	c = all6;
	sn_count_sub(&c, sn_count_prefix(128, 128));
	check_fmt(c, false, "340282366920938463463374607431768211455");
}

/* Compile a policy held in memory; NULL (and a failure) when invalid. */
static struct sn_image *compile(struct sn_ctx *ctx, const char *text)
{
	struct sn_image *img = NULL;

	sn_ctx_init(ctx);
	int rc = sn_compile_text(ctx, "t.sentry", text, strlen(text), NULL, &img);

	CHECK(rc == 0, "compile failed (%d): %s", rc, text);
	return rc ? NULL : img;
}

/* The summary of old -> new, one "+|-family count l4" per line. */
static void check_space(const char *old, const char *new_, const char *want)
{
	struct sn_ctx a, b;
	struct sn_image *io = compile(&a, old), *in = compile(&b, new_);
	char got[4096] = "";

	if (io && in) {
		struct sn_space_line *v;
		size_t n;
		int rc = sn_plan_space(io, in, &v, &n);

		CHECK(rc == 0, "sn_plan_space: %d", rc);
		for (size_t i = 0; !rc && i < n; i++) {
			char num[SN_COUNT_STRLEN];
			size_t len = strlen(got);

			sn_count_format(v[i].count, false, num);
			snprintf(got + len, sizeof(got) - len, "%c%d %s %s\n",
				 v[i].verdict == SN_VERDICT_ALLOW ? '+' : '-',
				 v[i].family, num, v[i].l4);
		}
		if (!rc)
			free(v);
		CHECK(!strcmp(got, want), "\n--- old\n%s--- new\n%s--- got\n%s--- want\n%s",
		      old, new_, got, want);
	}
	sn_ctx_free(&a);
	sn_ctx_free(&b);
}

static void test_space(void)
{
	/* Identical meaning: nothing. */
	check_space("default allow\n", "default allow\nallow from 10.0.0.0/8\n",
		    "");
	/* Everything of both families flips; all of IPv6 is 2^128. */
	check_space("default allow\n", "default block\n",
		    "-4 4294967296 any protocol\n"
		    "-6 340282366920938463463374607431768211456 any protocol\n");
	/* A /0 minus its children: the rest of IPv4 flips, 10/8 stays. */
	check_space("default allow\n",
		    "default ipv4 block\nallow from 10.0.0.0/8\n",
		    "-4 4278190080 any protocol\n");
	/* IPv6 sizes past 2^64: a /32 inside a flipped /0. */
	check_space("default ipv6 allow\nblock from 2001:db8::/32\n",
		    "default ipv6 block\nallow from 2001:db8::/32\n",
		    "+6 79228162514264337593543950336 any protocol\n"
		    "-6 340282366841710300949110269838224261120 any protocol\n");
	/* Port pieces: adjacent equal counts group, the rest split. */
	check_space("default allow\n",
		    "default allow\nblock from 192.0.2.0/24 to tcp port 1000-1999\n"
		    "block from 192.0.2.0/25 to tcp port 1500\n",
		    "-4 256 tcp/1000-1999\n");
	check_space("default allow\nblock from 192.0.2.0/24 to tcp port 1000-1999\n",
		    "default allow\nblock from 192.0.2.0/24 to tcp port 1500-2999\n",
		    "+4 256 tcp/1000-1499\n-4 256 tcp/2000-2999\n");
	/* A whole protocol, and the protocols no policy names. */
	check_space("default allow\n",
		    "default allow\nblock from 10.0.0.0/8 to udp\n"
		    "block from 10.0.0.0/16 to proto 47\n",
		    "-4 16777216 udp\n-4 65536 proto 47\n");
	/* Fragments are their own piece when ports are named. */
	check_space("default allow\nblock from 10.0.0.0/8 to tcp\n",
		    "default allow\nblock from 10.0.0.0/8 to tcp port 0-65535\n",
		    "+4 16777216 tcp fragments\n");
}

int main(void)
{
	test_counts();
	test_space();
	if (failures) {
		fprintf(stderr, "test_plan: %d failures\n", failures);
		return 1;
	}
	printf("test_plan: ok\n");
	return 0;
}

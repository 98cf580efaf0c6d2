/*
 * Language unit test for limits, syncookies, DNS rules and auto-block
 * guardrails: the resolved policy (effective values, defaults,
 * locations), limit identities (stable under formatting and parameter
 * changes, changed by the match and the key lengths), and the image
 * feature sections (serialise -> parse round trip, defaults for an image
 * without features, corrupt sections refused).  Exit 0 when every check
 * passes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/addr.h"
#include "compiler/compile.h"
#include "compiler/image.h"
#include "compiler/policy.h"

static int failures;

#define CHECK(cond)                                                       \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",      \
				__FILE__, __LINE__, #cond);               \
			failures++;                                       \
		}                                                         \
	} while (0)

static int compile(struct sn_ctx *ctx, const char *text,
		   struct sn_policy **pol, struct sn_image **img)
{
	sn_ctx_init(ctx);
	*pol = NULL;
	*img = NULL;
	int rc = sn_compile_text(ctx, "t.sentry", text, strlen(text), pol, img);

	if (rc)
		sn_diags_render_text(stderr, &ctx->diags, &ctx->sources);
	return rc;
}

static bool has_code(const struct sn_ctx *ctx, const char *code)
{
	for (size_t i = 0; i < ctx->diags.n; i++)
		if (ctx->diags.v[i].code && !strcmp(ctx->diags.v[i].code, code))
			return true;
	return false;
}

/* Identity of the only limit rule of text. */
static uint64_t identity_of(const char *text)
{
	struct sn_ctx ctx;
	struct sn_policy *p;
	struct sn_image *img;
	uint64_t id = 0;

	if (compile(&ctx, text, &p, &img) == 0 && p->n_limits == 1)
		id = p->limits[0].identity;
	else
		fprintf(stderr, "  no single limit in: %s\n", text);
	sn_ctx_free(&ctx);
	return id;
}

static void test_policy(void)
{
	struct sn_ctx ctx;
	struct sn_policy *p;
	struct sn_image *img;
	int rc = compile(&ctx,
		"limit from 192.0.2.0/24 to tcp port 80 rate 600/m\n"
		"limit rate 5/s burst 9 per ipv6 /56 then block for 2h\n"
		"syncookies port { 443, 80 } above 100/s\n"
		"dns block \"X.Example.\", \"*.y.example\"\n"
		"dns alert label-entropy 4\n"
		"autoblock mode enforce\n"
		"autoblock never { 10.0.0.0/8, 10.0.0.0/8 }\n",
		&p, &img);

	CHECK(rc == 0);
	if (rc)
		goto out;
	CHECK(p->n_limits == 2);
	CHECK(p->limits[0].rate.count == 600 && p->limits[0].rate.period == 60);
	CHECK(p->limits[0].burst == 10); /* one second of rate */
	CHECK(p->limits[0].key_v4 == 32 && p->limits[0].key_v6 == 64);
	CHECK(p->limits[0].proto == SN_PROTO_TCP && p->limits[0].n_ports == 1);
	CHECK(p->limits[0].loc.line == 1 && p->limits[0].loc.col == 1);
	CHECK(p->limits[1].burst == 9 && p->limits[1].key_v6 == 56);
	CHECK(p->limits[1].block_for == 7200);
	CHECK(p->limits[1].n_srcs == 2); /* no from: 0.0.0.0/0 and ::/0 */
	CHECK(!strcmp(p->limits[1].text, "limit rate 5/s burst 9 per ipv4 /32 "
					  "per ipv6 /56 then block for 2h"));
	CHECK(p->n_syncookies == 1 && p->syncookies[0].n_ports == 2);
	CHECK(p->dns.n_block == 2);
	CHECK(!strcmp(p->dns.block[0].name, "x.example") &&
	      !p->dns.block[0].wildcard);
	CHECK(!strcmp(p->dns.block[1].name, "y.example") &&
	      p->dns.block[1].wildcard);
	CHECK(p->dns.block[1].loc.line == 4 && p->dns.block[1].loc.col == 25);
	CHECK(p->dns.label_entropy_milli == 4000);
	CHECK(p->dns.stale_ttl == 30 && p->dns.stale_max_age == 86400);
	CHECK(p->dns.stale_ttl_loc.file == NULL);
	CHECK(p->autoblock.mode == SN_MODE_ENFORCE);
	CHECK(p->autoblock.mode_loc.line == 6);
	CHECK(p->autoblock.max_v4 == 24 && p->autoblock.max_v6 == 48);
	CHECK(p->autoblock.n_never == 2);

	/* the image: sorted, merged, deduplicated */
	const struct sn_image_features *f = sn_image_features(img);

	CHECK(f->n_syncookies == 2 && f->syncookies[0].lo == 80 &&
	      f->syncookies[1].lo == 443);
	CHECK(f->n_never == 1);
	CHECK(f->limits[0].rate_fp == (600ull << 32) / 60);
	CHECK(f->autoblock.written == SN_AB_W_MODE);
	CHECK(f->dns.written == SN_DNS_W_LABEL_ENTROPY);

	/* round trip through the file format */
	void *buf;
	size_t len;
	struct sn_image *back = NULL;
	char err[128];

	CHECK(sn_image_serialize(img, &buf, &len) == 0);
	CHECK(sn_image_parse(buf, len, &ctx.arena, &back, err, sizeof(err)) == 0);
	if (back) {
		const struct sn_image_features *g = sn_image_features(back);

		CHECK(g->n_limits == 2 && g->limits[1].block_for == 7200);
		CHECK(g->limits[0].identity == f->limits[0].identity);
		CHECK(!strcmp(g->limits[0].text, f->limits[0].text));
		CHECK(g->limits[0].n_srcs == 1 && g->limits[0].srcs[0].len == 24);
		CHECK(g->limits[0].n_ports == 1 && g->limits[0].ports[0].lo == 80);
		CHECK(g->n_syncookies == 2 && g->syncookies[1].count == 100);
		CHECK(g->n_dns_names == 2 && g->dns_names[1].wildcard &&
		      !strcmp(g->dns_names[1].name, "y.example"));
		CHECK(g->dns.label_entropy_milli == 4000);
		CHECK(g->autoblock.mode == SN_MODE_ENFORCE && g->n_never == 1);
		CHECK(!memcmp(back->checksum, img->checksum, 32));
	}
	free(buf);
out:
	sn_ctx_free(&ctx);
}

static void test_identity(void)
{
	uint64_t base = identity_of("limit from 10.0.0.0/8 to tcp port 80 rate 10/s");

	CHECK(base != 0);
	/* formatting, parameters and explicit defaults keep the identity */
	CHECK(identity_of("limit   from 10.0.0.0/8 to tcp port 80 rate 10/s") == base);
	CHECK(identity_of("limit from 10.0.0.0/8 to tcp port 80 burst 3 rate 99/m "
			  "then block for 1h") == base);
	CHECK(identity_of("limit from 10.0.0.0/8 to tcp port 80 rate 10/s "
			  "per ipv6 /64 per ipv4 /32") == base);
	/* the match and the key lengths change it */
	CHECK(identity_of("limit from 10.0.0.0/8 to tcp port 81 rate 10/s") != base);
	CHECK(identity_of("limit from 10.0.0.0/8 to tcp port 80 rate 10/s "
			  "per ipv4 /24") != base);
	/* the documented hash: FNV-1a 64 of the identity text */
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *s = "limit from 10.0.0.0/8 to tcp port 80 per ipv4 /32 "
			     "per ipv6 /64"; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	CHECK(h == base);
}

/* An image built without features serialises the defaults. */
static void test_defaults_and_corruption(void)
{
	struct sn_ctx ctx;
	struct sn_policy *p;
	struct sn_image *img, *back = NULL;
	void *buf;
	size_t len;
	char err[128];
	int rc = compile(&ctx, "limit from 192.0.2.0/24 rate 10/s\n", &p, &img);

	CHECK(rc == 0);
	if (rc)
		goto out;
	struct sn_image_features *saved = img->features;

	img->features = NULL;
	/* Without its limit rules, no decision may name one (image.c). */
	for (size_t i = 0; i < (size_t)img->n_classes * img->constants.l4_stride;
	     i++)
		img->decisions[i].limit = 0;
	CHECK(sn_image_serialize(img, &buf, &len) == 0);
	CHECK(sn_image_parse(buf, len, &ctx.arena, &back, err, sizeof(err)) == 0);
	if (back) {
		const struct sn_image_features *g = sn_image_features(back);

		CHECK(g->n_limits == 0 && g->autoblock.ttl == 3600 &&
		      g->autoblock.max_v4 == 24 && g->dns.stale_ttl == 30 &&
		      g->autoblock.mode == SN_MODE_DRY_RUN);
	}
	free(buf);

	/* A limit whose burst is 0 is refused even with a valid checksum:
	 * find the record by its identity, patch, re-checksum via a
	 * re-serialise of a patched in-memory image. */
	img->features = saved;
	saved->limits[0].burst = 0;
	CHECK(sn_image_serialize(img, &buf, &len) == 0);
	back = NULL;
	CHECK(sn_image_parse(buf, len, &ctx.arena, &back, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "limit 0 malformed") != NULL);
	free(buf);
	saved->limits[0].burst = 10;
	saved->limits[0].key_v4 = 8;
	CHECK(sn_image_serialize(img, &buf, &len) == 0);
	CHECK(sn_image_parse(buf, len, &ctx.arena, &back, err, sizeof(err)) ==
	      -EINVAL);
	free(buf);
	saved->limits[0].key_v4 = 32;
	saved->dns.label_entropy_milli = 9000;
	CHECK(sn_image_serialize(img, &buf, &len) == 0);
	CHECK(sn_image_parse(buf, len, &ctx.arena, &back, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "dns settings malformed") != NULL);
	free(buf);
out:
	sn_ctx_free(&ctx);
}

static void test_codes(void)
{
	static const struct {
		const char *text, *code;
	} cases[] = {
		{ "limit rate 5/h\n", "E040" },
		{ "limit rate 5/s burst 0\n", "E041" },
		{ "limit rate 5/s per ipv4 /8\n", "E042" },
		{ "autoblock ttl 8d\n", "E043" },
		{ "dns block \"a..b\"\n", "E044" },
		{ "dns block \"a.b\", \"A.B.\"\n", "W045" },
		{ "autoblock rate 1/m\nautoblock rate 2/m\n", "E046" },
		{ "syncookies port 1 above 1/s\nsyncookies port 1 above 2/s\n",
		  "E047" },
		{ "limit from 10.0.0.0/8 rate 1/s\n"
		  "limit from { 10.0.0.0/8 } rate 2/s\n", "E048" },
		{ "limit from 10.0.0.0/8 burst 3\n", "E049" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sn_ctx ctx;
		struct sn_ast *ast = NULL;
		struct sn_policy *p = NULL;

		sn_ctx_init(&ctx);
		if (sn_parse_text(&ctx, "c.sentry", cases[i].text,
				  strlen(cases[i].text), &ast) == 0)
			sn_sema(&ctx, ast, &p);
		if (!has_code(&ctx, cases[i].code)) {
			fprintf(stderr, "  case %zu: no %s\n", i, cases[i].code);
			failures++;
		}
		sn_ctx_free(&ctx);
	}
}

int main(void)
{
	test_policy();
	test_identity();
	test_defaults_and_corruption();
	test_codes();
	if (failures) {
		fprintf(stderr, "test_lang: %d checks failed\n", failures);
		return 1;
	}
	printf("test_lang: ok\n");
	return 0;
}

/*
 * Image builder tests: hand-checked cases plus a randomized differential
 * test.  For random policies (rules and limit rules), the compiled image
 * (walked as the XDP program walks it) must judge every random packet
 * exactly as the policy semantics evaluator does - verdict, deciding rule
 * and applicable limit - before and after a serialise/parse round trip.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "compiler/srcmap.h"

#include <openssl/evp.h>
#include "tests/check.h"

/* xorshift64*: deterministic, seedable from the command line. */
static uint64_t rng_state = 0x47c0ffee1234ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static void mask(struct sn_prefix *p)
{
	unsigned max = p->family == SN_FAMILY_V4 ? 4 : 16;

	for (unsigned i = 0; i < 16; i++) {
		int bits = (int)p->len - (int)i * 8;

		if (i >= max || bits <= 0)
			p->addr[i] = 0;
		else if (bits < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - bits));
	}
}

/* A pool of nested prefixes so random rules overlap in interesting ways. */
#define POOL 24
static struct sn_prefix pool[POOL];

static void make_pool(void)
{
	for (int i = 0; i < POOL; i++) {
		struct sn_prefix *p = &pool[i];

		p->family = i % 3 == 2 ? SN_FAMILY_V6 : SN_FAMILY_V4;
		if (i >= 6 && rnd_below(3)) {
			/* Inside an earlier prefix of the same family. */
			const struct sn_prefix *parent = &pool[i - 3];

			*p = *parent;
			unsigned max = p->family == SN_FAMILY_V4 ? 32 : 128;

			if (parent->len < max)
				p->len = (uint8_t)(parent->len + 1 +
						   rnd_below(max - parent->len));
			if (p->len > max)
				p->len = (uint8_t)max;
			for (unsigned b = parent->len / 8; b < 16; b++)
				p->addr[b] ^= (uint8_t)rnd();
		} else {
			/* Short prefixes in a small address space: lots of nesting. */
			p->addr[0] = (uint8_t)(10 + rnd_below(2));
			p->addr[1] = (uint8_t)rnd_below(4);
			p->addr[2] = (uint8_t)rnd();
			p->len = (uint8_t)(rnd_below(4) * 8 + rnd_below(3));
		}
		mask(p);
	}
}

static const int16_t protos[] = { SN_PROTO_ANY, SN_PROTO_TCP, SN_PROTO_UDP,
				  SN_PROTO_ICMP, 47 };
static const uint16_t port_pool[] = { 0, 1, 21, 22, 23, 80, 443, 1000, 1024, 65535 };

static void random_ports(struct sn_arena *a, int16_t proto,
			 struct sn_port_range **ports, size_t *n_ports)
{
	*n_ports = 0;
	*ports = NULL;
	if (proto != SN_PROTO_TCP && proto != SN_PROTO_UDP)
		return;
	*n_ports = rnd_below(3);
	*ports = sn_arena_calloc(a, *n_ports + 1, sizeof(**ports));
	for (size_t j = 0; j < *n_ports; j++) {
		uint16_t x = port_pool[rnd_below(10)];
		uint16_t y = rnd_below(2) ? x : port_pool[rnd_below(10)];

		(*ports)[j].lo = x < y ? x : y;
		(*ports)[j].hi = x < y ? y : x;
	}
}

/*
 * 0-4 limit rules over the same prefix pool, so they nest in and tie with
 * the rules and each other (equal keys: both evaluators take the earlier
 * one; sema's E048 is not the builder's business).  Parameters in the
 * ranges the image reader accepts.
 */
static void random_limits(struct sn_arena *a, struct sn_policy *p)
{
	p->n_limits = rnd_below(5);
	p->limits = sn_arena_calloc(a, p->n_limits + 1, sizeof(*p->limits));
	for (size_t i = 0; i < p->n_limits; i++) {
		struct sn_limit *l = &p->limits[i];

		l->id = (uint32_t)i;
		l->identity = rnd();
		l->proto = protos[rnd_below(5)];
		l->n_srcs = 1 + rnd_below(2);
		l->srcs = sn_arena_calloc(a, l->n_srcs, sizeof(*l->srcs));
		for (size_t j = 0; j < l->n_srcs; j++) {
			if (rnd_below(4) == 0)
				l->srcs[j].prefix.family =
					rnd_below(2) ? SN_FAMILY_V4 : SN_FAMILY_V6;
			else
				l->srcs[j].prefix = pool[rnd_below(POOL)];
		}
		random_ports(a, l->proto, &l->ports, &l->n_ports);
		l->rate = (struct sn_rate){ 1 + rnd_below(1000),
					    rnd_below(2) ? 1 : 60 };
		l->burst = 1 + rnd_below(1000);
		l->key_v4 = (uint8_t)(16 + rnd_below(17));
		l->key_v6 = (uint8_t)(48 + rnd_below(81));
		l->block_for = rnd_below(2) ? 0 : 1 + rnd_below(3600);
		l->text = sn_arena_printf(a, "random limit %zu", i);
	}
}

static void random_policy(struct sn_arena *a, struct sn_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->n_rules = 1 + rnd_below(12);
	p->rules = sn_arena_calloc(a, p->n_rules, sizeof(*p->rules));
	p->default_v4.verdict = rnd_below(2) ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;
	p->default_v6.verdict = rnd_below(2) ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;
	/* The settings sema fills in when not written (the reader checks). */
	p->dns.stale_ttl = SN_DNS_STALE_TTL_DEFAULT;
	p->dns.stale_max_age = SN_DNS_STALE_MAX_AGE_DEFAULT;
	p->autoblock = (struct sn_autoblock){
		.ttl = SN_AUTOBLOCK_TTL_DEFAULT,
		.max_v4 = SN_AUTOBLOCK_MAX_V4_DEFAULT,
		.max_v6 = SN_AUTOBLOCK_MAX_V6_DEFAULT,
		.rate = { SN_AUTOBLOCK_RATE_DEFAULT, 60 },
	};
	for (size_t i = 0; i < p->n_rules; i++) {
		struct sn_rule *r = &p->rules[i];

		r->id = SN_RULE_FIRST + (uint32_t)i;
		r->verdict = rnd_below(2) ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;
		r->tier = rnd_below(6) == 0 ? SN_TIER_ALWAYS : SN_TIER_NORMAL;
		r->proto = protos[rnd_below(5)];
		r->n_srcs = 1 + rnd_below(3);
		r->srcs = sn_arena_calloc(a, r->n_srcs, sizeof(*r->srcs));
		for (size_t j = 0; j < r->n_srcs; j++) {
			if (rnd_below(10) == 0) {
				r->srcs[j].prefix.family =
					rnd_below(2) ? SN_FAMILY_V4 : SN_FAMILY_V6;
			} else {
				r->srcs[j].prefix = pool[rnd_below(POOL)];
			}
		}
		random_ports(a, r->proto, &r->ports, &r->n_ports);
		r->text = sn_arena_printf(a, "random rule %zu", i);
	}
	random_limits(a, p);
}

static void random_packet(struct sn_packet *pkt)
{
	const struct sn_prefix *base = &pool[rnd_below(POOL)];

	memset(pkt, 0, sizeof(*pkt));
	pkt->family = base->family;
	memcpy(pkt->src, base->addr, 16);
	/* Random host bits below the prefix, sometimes above it too. */
	unsigned from = rnd_below(4) ? base->len : 0;
	unsigned max = base->family == SN_FAMILY_V4 ? 32 : 128;

	for (unsigned b = from; b < max; b++)
		if (rnd_below(2))
			pkt->src[b / 8] ^= (uint8_t)(0x80 >> (b % 8));
	static const uint8_t pp[] = { 6, 17, 1, 58, 47, 50, 255 };

	pkt->proto = pp[rnd_below(sizeof(pp))];
	pkt->has_port = (pkt->proto == 6 || pkt->proto == 17) && rnd_below(8);
	pkt->dport = pkt->has_port ? (uint16_t)(rnd_below(2)
		? (uint32_t)(port_pool[rnd_below(10)] + (int)rnd_below(3) - 1)
		: rnd_below(65536)) : 0;
}

static void test_random(unsigned n_policies, unsigned n_packets)
{
	unsigned built = 0, conflicts = 0;
	unsigned long packets = 0, limited = 0;

	for (unsigned it = 0; it < n_policies; it++) {
		struct sn_ctx ctx;
		struct sn_policy p;
		struct sn_image *img = NULL, *img2 = NULL;

		sn_ctx_init(&ctx);
		make_pool();
		random_policy(&ctx.arena, &p);
		int rc = sn_image_build(&ctx, &p, &img);

		if (rc == -EINVAL) {
			CHECK(ctx.diags.n_errors > 0, "policy %u", it);
			conflicts++;
			sn_ctx_free(&ctx);
			continue;
		}
		CHECK(rc == 0, "build rc %d", rc);
		if (rc) {
			sn_ctx_free(&ctx);
			continue;
		}
		built++;
		CHECK(sn_image_add_features(&ctx.arena, &p, img) == 0,
		      "features");
		void *buf;
		size_t len;
		char err[256] = "";

		CHECK(sn_image_serialize(img, &buf, &len) == 0, "serialize");
		rc = sn_image_parse(buf, len, &ctx.arena, &img2, err, sizeof(err));
		CHECK(rc == 0, "parse: %s", err);
		free(buf);
		for (unsigned k = 0; k < n_packets && img2; k++) {
			struct sn_packet pkt;
			struct sn_eval_result a, b, c;

			random_packet(&pkt);
			sn_eval_image(img, &pkt, &a);
			sn_eval_policy(&p, &pkt, &b);
			sn_eval_image(img2, &pkt, &c);
			packets++;
			CHECK(a.verdict == b.verdict && a.rule_id == b.rule_id &&
				      a.limit == b.limit && c.rule_id == a.rule_id &&
				      c.limit == a.limit,
			      "policy %u packet %u: image #%u/%u limit %u, "
			      "policy #%u/%u limit %u", it, k, a.rule_id,
			      a.verdict, a.limit, b.rule_id, b.verdict, b.limit);
			limited += a.limit != 0;
			if (failures > 20)
				break;
		}
		sn_ctx_free(&ctx);
		if (failures > 20)
			break;
	}
	printf("random: %u policies built, %u with conflicts, %lu packets "
	       "compared, %lu of them limited\n", built, conflicts, packets,
	       limited);
	CHECK(built > n_policies / 4, "too few conflict-free policies (%u)", built);
	CHECK(limited > packets / 20, "too few limited packets (%lu)", limited);
}

/* A corrupted image is refused, never half-read. */
static void test_corruption(void)
{
	struct sn_ctx ctx;
	struct sn_policy p;
	struct sn_image *img = NULL, *img2 = NULL;
	char err[256];

	sn_ctx_init(&ctx);
	make_pool();
	do {
		random_policy(&ctx.arena, &p);
		sn_diags_free(&ctx.diags);
		sn_diags_init(&ctx.diags, 10);
	} while (sn_image_build(&ctx, &p, &img));
	CHECK(sn_image_add_features(&ctx.arena, &p, img) == 0, "features");
	void *buf;
	size_t len;

	CHECK(sn_image_serialize(img, &buf, &len) == 0, "serialize");
	for (size_t i = 0; i < len; i += 7) {
		((uint8_t *)buf)[i] ^= 0x40;
		CHECK(sn_image_parse(buf, len, &ctx.arena, &img2, err, sizeof(err)) != 0,
		      "byte %zu flipped but accepted", i);
		((uint8_t *)buf)[i] ^= 0x40;
	}
	CHECK(sn_image_parse(buf, len - 8, &ctx.arena, &img2, err, sizeof(err)) != 0,
	      "truncated image accepted");
	CHECK(sn_image_parse(buf, len, &ctx.arena, &img2, err, sizeof(err)) == 0,
	      "intact image refused: %s", err);
	free(buf);
	sn_ctx_free(&ctx);
}

/*
 * A version 3 image (range tries in the old encoding, SPEC.md 5.2) is
 * read by building the structures again from the class prefixes: its
 * sections 18-19 are not used (scrambled here), and what comes out is
 * what the compiler builds today.
 */
static void test_version3(void)
{
	struct sn_ctx ctx;
	struct sn_policy p;
	struct sn_image *img = NULL, *img2 = NULL;
	char err[256] = "";
	void *buf;
	size_t len;
	uint32_t n_sec, v3 = 3;
	unsigned int n = 0;

	sn_ctx_init(&ctx);
	make_pool();
	do {
		random_policy(&ctx.arena, &p);
		sn_diags_free(&ctx.diags);
		sn_diags_init(&ctx.diags, 10);
	} while (sn_image_build(&ctx, &p, &img));
	CHECK(sn_image_add_features(&ctx.arena, &p, img) == 0, "features");
	CHECK(sn_image_serialize(img, &buf, &len) == 0, "serialize");
	uint8_t *b = buf;

	memcpy(b + 8, &v3, 4);
	memcpy(&n_sec, b + 20, 4);
	for (uint32_t i = 0; i < n_sec; i++) {
		uint32_t type, esz;
		uint64_t off, cnt;

		memcpy(&type, b + 64 + 24 * i, 4);
		memcpy(&esz, b + 64 + 24 * i + 4, 4);
		memcpy(&off, b + 64 + 24 * i + 8, 8);
		memcpy(&cnt, b + 64 + 24 * i + 16, 8);
		if (type == 18 || type == 19)
			for (uint64_t k = 0; k < esz * cnt; k++)
				b[off + k] ^= 0x5a;
	}
	memset(b + 32, 0, 32);
	{
		uint8_t md[32];

		CHECK(EVP_Digest(b, len, md, &n, EVP_sha256(), NULL) && n == 32,
		      "sha256");
		memcpy(b + 32, md, 32);
	}
	CHECK(sn_image_parse(buf, len, &ctx.arena, &img2, err, sizeof(err)) == 0,
	      "version 3 image refused: %s", err);
	for (int f = 0; img2 && f < 2; f++) {
		const struct sn_srcmap *x = f ? &img->src_v6 : &img->src_v4;
		const struct sn_srcmap *y = f ? &img2->src_v6 : &img2->src_v4;

		CHECK(x->n_nodes == y->n_nodes && x->n_ranges == y->n_ranges &&
			      (!x->n_nodes ||
			       !memcmp(x->nodes, y->nodes, x->n_nodes * sizeof(*x->nodes))),
		      "IPv%d structure of the version 3 image not rebuilt",
		      f ? 6 : 4);
	}
	free(buf);
	sn_ctx_free(&ctx);
}

/*
 * A policy whose decision table would exceed the data plane's capacity is
 * refused with E030 (1201 L4 classes -> stride 2048, times > 2048 distinct
 * source classes is more than 2^22 entries), not built half-way.
 */
static void test_capacity(void)
{
	struct sn_ctx ctx;
	struct sn_policy p = { 0 };
	struct sn_image *img = NULL;
	const size_t n_ports = 600, n_prefixes = 2100;

	sn_ctx_init(&ctx);
	p.default_v4.verdict = p.default_v6.verdict = SN_VERDICT_ALLOW;
	p.n_rules = n_ports + n_prefixes;
	p.rules = sn_arena_calloc(&ctx.arena, p.n_rules, sizeof(*p.rules));
	for (size_t i = 0; i < p.n_rules; i++) {
		struct sn_rule *r = &p.rules[i];

		r->id = SN_RULE_FIRST + (uint32_t)i;
		r->verdict = SN_VERDICT_BLOCK;
		r->n_srcs = 1;
		r->srcs = sn_arena_calloc(&ctx.arena, 1, sizeof(*r->srcs));
		r->srcs[0].prefix.family = SN_FAMILY_V4;
		r->text = "capacity rule";
		if (i < n_ports) {
			r->proto = SN_PROTO_TCP;
			r->n_ports = 1;
			r->ports = sn_arena_calloc(&ctx.arena, 1, sizeof(*r->ports));
			r->ports[0].lo = r->ports[0].hi = (uint16_t)(2 * i + 1);
		} else {
			size_t k = i - n_ports;

			r->proto = SN_PROTO_ANY;
			r->srcs[0].prefix.len = 24;
			r->srcs[0].prefix.addr[0] = 10;
			r->srcs[0].prefix.addr[1] = (uint8_t)(k >> 8);
			r->srcs[0].prefix.addr[2] = (uint8_t)k;
		}
	}
	int rc = sn_image_build(&ctx, &p, &img);
	bool e030 = false;

	for (size_t i = 0; i < ctx.diags.n; i++)
		e030 |= !strcmp(ctx.diags.v[i].code, "E030");
	CHECK(rc == -EINVAL && e030 && !img, "rc %d, E030 %d", rc, e030);
	sn_ctx_free(&ctx);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rng_state = strtoull(argv[1], NULL, 0) | 1;
	test_random(400, 400);
	test_corruption();
	test_version3();
	test_capacity();
	if (failures) {
		fprintf(stderr, "test_ir: %d failures (seed 0x%llx)\n", failures,
			(unsigned long long)rng_state);
		return 1;
	}
	printf("test_ir: ok\n");
	return 0;
}

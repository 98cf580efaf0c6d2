/*
 * Analysis tests: every finding on hand-written policies (code, place,
 * notes), a randomized differential test of W001/W002 against a brute
 * force over every address and L4 class of a small address space, the
 * capacity checks through struct sn_analysis_opts, and the cost of the
 * pass on a million-entry source list.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compiler/analyze.h"
#include "compiler/compile.h"
#include "compiler/image.h"
#include "tests/check.h"

static uint64_t rng_state = 0x5eed47a11ull;

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

/* ---- helpers ------------------------------------------------------------- */

static char tmpdir[] = "/tmp/test_analyze.XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* Compile policy text written to a file (so list files resolve). */
static int compile(struct sn_ctx *ctx, const char *text,
		   const struct sn_analysis_opts *opts)
{
	char path[256];
	struct sn_policy *p = NULL;
	struct sn_image *img = NULL;

	write_file("policy.sentry", text);
	snprintf(path, sizeof(path), "%s/policy.sentry", tmpdir);
	sn_ctx_init(ctx);
	ctx->analysis = opts;
	return sn_compile_file(ctx, path, &p, &img);
}

static size_t count(const struct sn_ctx *ctx, const char *code)
{
	size_t n = 0;

	for (size_t i = 0; i < ctx->diags.n; i++)
		n += !strcmp(ctx->diags.v[i].code, code);
	return n;
}

/* The diagnostic with this code at line:col (col 0: any), or NULL. */
static const struct sn_diag *find(const struct sn_ctx *ctx, const char *code,
				  uint32_t line, uint32_t col)
{
	for (size_t i = 0; i < ctx->diags.n; i++) {
		const struct sn_diag *g = &ctx->diags.v[i];

		if (!strcmp(g->code, code) && g->loc.line == line &&
		    (!col || g->loc.col == col))
			return g;
	}
	return NULL;
}

static bool has_note_at(const struct sn_diag *g, const char *file_suffix,
			uint32_t line, uint32_t col)
{
	for (unsigned i = 0; g && i < g->n_notes; i++) {
		const struct sn_loc *l = &g->notes[i].loc;
		size_t n = l->file ? strlen(l->file) : 0;
		size_t k = strlen(file_suffix);

		if (l->line == line && l->col == col && n >= k &&
		    !strcmp(l->file + n - k, file_suffix))
			return true;
	}
	return false;
}

static void dump(const struct sn_ctx *ctx)
{
	sn_diags_render_text(stderr, &ctx->diags, &ctx->sources);
}

/* ---- hand-written cases --------------------------------------------------- */

static void test_shadowed(void)
{
	struct sn_ctx ctx;

	/* Tier, an identical twin, and a prefix covered by its children. */
	int rc = compile(&ctx,
			 "always block from 192.0.2.66\n"
			 "allow from 192.0.2.66 to tcp port 22\n"
			 "block from 198.51.100.0/24\n"
			 "block from 198.51.100.0/24\n"
			 "block from 10.0.0.0/24\n"
			 "allow from 10.0.0.0/25\n"
			 "allow from 10.0.0.128/25\n",
			 NULL);

	CHECK(rc == 0, "rc %d", rc);
	const struct sn_diag *g = find(&ctx, "W001", 2, 1);

	CHECK(g && g->severity == SN_SEV_WARNING, "W001 at 2:1");
	CHECK(has_note_at(g, "policy.sentry", 1, 19), "winner noted");
	g = find(&ctx, "W001", 4, 1);
	CHECK(g && has_note_at(g, "policy.sentry", 3, 12), "twin: first noted");
	CHECK(!find(&ctx, "W002", 3, 0), "the first twin is not redundant");
	g = find(&ctx, "W001", 5, 1);
	CHECK(g && (has_note_at(g, "policy.sentry", 6, 12) ||
		    has_note_at(g, "policy.sentry", 7, 12)),
	      "covered /24: a /25 noted");
	CHECK(count(&ctx, "W001") == 3, "%zu W001", count(&ctx, "W001"));
	if (failures)
		dump(&ctx);
	sn_ctx_free(&ctx);

	/* Covered by its children, but it still decides what they do not
	 * name: not shadowed. */
	rc = compile(&ctx,
		     "block from 10.0.0.0/24\n"
		     "allow from 10.0.0.0/25 to tcp\n"
		     "allow from 10.0.0.128/25 to tcp\n",
		     NULL);
	CHECK(rc == 0 && count(&ctx, "W001") == 0, "children by protocol");
	sn_ctx_free(&ctx);

	/* All of IPv6 covered by its two halves: 128-bit arithmetic. */
	rc = compile(&ctx,
		     "block from ::/0\n"
		     "allow from ::/1\n"
		     "allow from 8000::/1\n"
		     "block from 0.0.0.0/0\n"
		     "allow from 0.0.0.0/1\n",
		     NULL);
	CHECK(rc == 0 && find(&ctx, "W001", 1, 1), "::/0 covered");
	CHECK(!find(&ctx, "W001", 4, 1), "0.0.0.0/0 half covered");
	sn_ctx_free(&ctx);
}

static void test_redundant(void)
{
	struct sn_ctx ctx;
	int rc = compile(&ctx,
			 "default ipv4 block\n"
			 "block from 10.0.0.0/8\n"
			 "block from 10.1.0.0/16\n"
			 "allow from 10.2.0.0/16\n"
			 "block from 10.2.3.0/24\n"
			 "block from 192.0.2.0/24\n"
			 "allow from 192.0.2.0/24 to tcp port 80\n"
			 "allow from 192.0.2.0/24 to tcp port 80-80\n",
			 NULL);

	CHECK(rc == 0, "rc %d", rc);
	const struct sn_diag *g = find(&ctx, "W002", 3, 1);

	CHECK(g && has_note_at(g, "policy.sentry", 2, 12), "/16 inside /8");
	g = find(&ctx, "W002", 2, 1);
	CHECK(g && has_note_at(g, "policy.sentry", 1, 1), "default takes over");
	CHECK(!find(&ctx, "W002", 4, 0), "allow inside block is needed");
	CHECK(!find(&ctx, "W002", 5, 0), "block inside allow is needed");
	CHECK(find(&ctx, "W002", 6, 1), "block /24 = default block");
	/* port 80 and 80-80 are equally specific: a twin, not redundancy. */
	CHECK(!find(&ctx, "W002", 7, 0) && find(&ctx, "W001", 8, 1),
	      "equal twins");
	if (failures)
		dump(&ctx);
	sn_ctx_free(&ctx);
}

static void test_sources(void)
{
	struct sn_ctx ctx;

	write_file("list.cidr",
		   "# a list\n"
		   "203.0.113.0/24\n"
		   "198.51.100.0/24\n"
		   "203.0.113.0/24\n"     /* line 4: duplicate of line 2 */
		   "203.0.113.128/25\n"   /* line 5: inside line 2 */
		   "10.0.0.0/25\n"
		   "10.0.0.128/25\n");    /* line 7: sibling of line 6 */
	int rc = compile(&ctx,
			 "set l = file \"list.cidr\"\n"
			 "block from { @l, 198.51.100.0/24 }\n",
			 NULL);

	CHECK(rc == 0, "rc %d", rc);
	const struct sn_diag *g = find(&ctx, "W003", 4, 1);

	CHECK(g && has_note_at(g, "list.cidr", 2, 1), "dup in list");
	g = find(&ctx, "W003", 2, 18);
	CHECK(g && has_note_at(g, "list.cidr", 3, 1), "dup literal vs list");
	g = find(&ctx, "W004", 5, 1);
	CHECK(g && has_note_at(g, "list.cidr", 2, 1), "contained");
	g = find(&ctx, "W005", 2, 1);
	CHECK(g && g->severity == SN_SEV_NOTE && strstr(g->message, "10.0.0.0/24") &&
		      has_note_at(g, "list.cidr", 6, 1) &&
		      has_note_at(g, "list.cidr", 7, 1),
	      "siblings");
	CHECK(ctx.diags.n_warnings == 3, "%zu warnings", ctx.diags.n_warnings);
	if (failures)
		dump(&ctx);
	sn_ctx_free(&ctx);

	/* Merging would change precedence against another rule: no W005. */
	rc = compile(&ctx,
		     "block from { 10.0.0.0/25, 10.0.0.128/25 }\n"
		     "allow from 10.0.0.0/24 to tcp\n"
		     "block from { 10.1.0.0/25, 10.1.0.128/25 }\n"
		     "allow from 10.1.0.128/25 to tcp\n"
		     "always block from { 10.2.0.0/25, 10.2.0.128/25 }\n"
		     "allow from 10.2.0.0/24 to tcp\n",
		     NULL);
	CHECK(rc == 0, "rc %d", rc);
	CHECK(!find(&ctx, "W005", 1, 0), "parent named");
	CHECK(!find(&ctx, "W005", 3, 0), "sibling named");
	CHECK(find(&ctx, "W005", 5, 1), "other tier does not matter");
	sn_ctx_free(&ctx);

	/* Port twins. */
	rc = compile(&ctx,
		     "set web = { 192.0.2.0/24, 2001:db8::/32 }\n"
		     "allow from @web to tcp port 80\n"
		     "allow from { 2001:db8::/32, 192.0.2.0/24 } to tcp port 443\n"
		     "allow from @web to udp port 443\n"
		     "block from @web to tcp port 8080\n",
		     NULL);
	CHECK(rc == 0, "rc %d", rc);
	g = find(&ctx, "W006", 3, 1);
	CHECK(g && g->severity == SN_SEV_NOTE &&
		      has_note_at(g, "policy.sentry", 2, 1),
	      "port twins");
	CHECK(count(&ctx, "W006") == 1, "only one group");
	if (failures)
		dump(&ctx);
	sn_ctx_free(&ctx);
}

static void test_cap_per_rule(void)
{
	struct sn_ctx ctx;
	struct sn_analysis_opts o = { .max_per_rule = 3 };
	char *list = malloc(64 * 40);
	size_t off = 0;

	/* 10 duplicates, 10 contained prefixes. */
	for (int i = 0; i < 10; i++)
		off += (size_t)sprintf(list + off, "10.0.%d.0/24\n10.0.%d.0/24\n"
					       "172.16.0.0/12\n172.16.%d.0/24\n",
				       i, i, i);
	write_file("caps.cidr", list);
	free(list);
	int rc = compile(&ctx, "block from { file \"caps.cidr\" }\n", &o);

	CHECK(rc == 0, "rc %d", rc);
	/* 172.16.0.0/12 is also duplicated 9 times: 19 W003. */
	CHECK(count(&ctx, "W003") == 4, "%zu W003", count(&ctx, "W003"));
	CHECK(count(&ctx, "W004") == 4, "%zu W004", count(&ctx, "W004"));
	const struct sn_diag *g = find(&ctx, "W003", 1, 1);

	CHECK(g && strstr(g->message, "16 more"), "%s", g ? g->message : "-");
	g = find(&ctx, "W004", 1, 1);
	CHECK(g && strstr(g->message, "7 more"), "%s", g ? g->message : "-");
	if (failures)
		dump(&ctx);
	sn_ctx_free(&ctx);
}

static void test_capacity(void)
{
	struct sn_ctx ctx;
	struct sn_analysis_opts o = { .cap_lpm_v4 = 4, .cap_rules = 7 };
	int rc = compile(&ctx,
			 "block from 10.0.0.0/8\n"
			 "block from 192.0.2.0/24\n",
			 &o);

	/* v4: /0 root + 2 = 3 of 4 (75%); rules 4 + 2 = 6 of 7 (85%). */
	CHECK(rc == 0, "rc %d", rc);
	CHECK(count(&ctx, "W007") == 1 && count(&ctx, "E031") == 0,
	      "W007 %zu E031 %zu", count(&ctx, "W007"), count(&ctx, "E031"));
	sn_ctx_free(&ctx);

	o = (struct sn_analysis_opts){ .cap_lpm_v4 = 2, .cap_decisions = 1 };
	rc = compile(&ctx, "block from 10.0.0.0/8\nblock from 192.0.2.0/24\n",
		     &o);
	CHECK(rc == -EINVAL && count(&ctx, "E031") == 2, "rc %d E031 %zu", rc,
	      count(&ctx, "E031"));
	sn_ctx_free(&ctx);

	/* Defaults: a small policy is far below every capacity. */
	rc = compile(&ctx, "block from 10.0.0.0/8\n", NULL);
	CHECK(rc == 0 && ctx.diags.n == 0, "rc %d, %zu diags", rc, ctx.diags.n);
	sn_ctx_free(&ctx);

	/* capacity_only: lint skipped. */
	o = (struct sn_analysis_opts){ .capacity_only = true };
	rc = compile(&ctx, "block from 10.0.0.0/8\nblock from 10.1.0.0/16\n",
		     &o);
	CHECK(rc == 0 && ctx.diags.n == 0, "capacity_only");
	sn_ctx_free(&ctx);
}

/* ---- differential: W001/W002 against brute force ------------------------ */

static const int16_t protos[] = { SN_PROTO_ANY, SN_PROTO_TCP, SN_PROTO_UDP, 47 };
static const uint16_t port_pool[] = { 22, 80, 443, 1000, 1024 };

/* Prefixes of a tiny space, so every region is enumerable: inside the
 * /28 (/124) at 10.0.0.0 (2001:db8::), or the /27, /24 (/123, /120) or
 * /0 around it. */
static void random_prefix(struct sn_prefix *p, int family)
{
	static const uint8_t outer[] = { 0, 24, 27 };
	const unsigned bytes = family == SN_FAMILY_V4 ? 4 : 16;
	const unsigned bits = bytes * 8;

	memset(p, 0, sizeof(*p));
	p->family = (uint8_t)family;
	if (rnd_below(5) == 0) {
		unsigned o = outer[rnd_below(3)];

		p->len = (uint8_t)(o == 0 ? 0 : bits - 32 + o);
	} else {
		p->len = (uint8_t)(bits - 4 + rnd_below(5));
	}
	if (family == SN_FAMILY_V4) {
		p->addr[0] = 10;
	} else {
		p->addr[0] = 0x20;
		p->addr[1] = 0x01;
		p->addr[2] = 0x0d;
		p->addr[3] = 0xb8;
	}
	p->addr[bytes - 1] = (uint8_t)rnd_below(16);
	for (unsigned i = 0; i < bytes; i++) {
		int keep = (int)p->len - (int)i * 8;

		if (keep <= 0)
			p->addr[i] = 0;
		else if (keep < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
}

static void random_policy(struct sn_arena *a, struct sn_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->n_rules = 1 + rnd_below(10);
	p->rules = sn_arena_calloc(a, p->n_rules, sizeof(*p->rules));
	p->default_v4.verdict = rnd_below(2) ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;
	p->default_v6.verdict = rnd_below(2) ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;
	p->main_file = "rand";
	for (size_t i = 0; i < p->n_rules; i++) {
		struct sn_rule *r = &p->rules[i];

		r->id = SN_RULE_FIRST + (uint32_t)i;
		r->loc = (struct sn_loc){ "rand", (uint32_t)i + 1, 1, 1 };
		r->verdict = rnd_below(2) ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;
		r->tier = rnd_below(8) == 0 ? SN_TIER_ALWAYS : SN_TIER_NORMAL;
		r->proto = protos[rnd_below(4)];
		/* Sometimes a "list": enough unsorted runs for the radix sort. */
		r->n_srcs = i == 0 && rnd_below(4) == 0 ? 60 + rnd_below(140)
							 : 1 + rnd_below(3);
		r->srcs = sn_arena_calloc(a, r->n_srcs, sizeof(*r->srcs));
		for (size_t j = 0; j < r->n_srcs; j++) {
			random_prefix(&r->srcs[j].prefix,
				      rnd_below(4) ? SN_FAMILY_V4 : SN_FAMILY_V6);
			r->srcs[j].loc = (struct sn_loc){ "rand", (uint32_t)i + 1,
							  (uint32_t)j + 2, 1 };
		}
		if (r->proto == SN_PROTO_TCP || r->proto == SN_PROTO_UDP) {
			r->n_ports = rnd_below(3);
			r->ports = sn_arena_calloc(a, r->n_ports + 1, sizeof(*r->ports));
			for (size_t j = 0; j < r->n_ports; j++) {
				uint16_t x = port_pool[rnd_below(5)];
				uint16_t y = rnd_below(2) ? x : port_pool[rnd_below(5)];

				r->ports[j].lo = x < y ? x : y;
				r->ports[j].hi = x < y ? y : x;
			}
		}
		r->text = sn_arena_printf(a, "rule %zu", i);
	}
}

struct pkt {
	uint8_t family;
	uint8_t addr[16];
	int proto; /* 0..255 */
	int port;  /* -1: none */
};

static int spec_of(const struct sn_rule *r, const struct pkt *k)
{
	if (r->proto == SN_PROTO_ANY)
		return 0;
	if (r->proto != k->proto)
		return -1;
	if (!r->n_ports)
		return 1;
	int best = -1;

	for (size_t i = 0; k->port >= 0 && i < r->n_ports; i++)
		if (k->port >= r->ports[i].lo && k->port <= r->ports[i].hi) {
			int s = r->ports[i].lo == r->ports[i].hi ? 3 : 2;

			if (s > best)
				best = s;
		}
	return best;
}

static bool inside(const struct sn_prefix *p, const struct pkt *k)
{
	if (p->family != k->family)
		return false;
	for (unsigned b = 0; b < p->len; b++) {
		unsigned m = 0x80u >> (b % 8);

		if ((p->addr[b / 8] & m) != (k->addr[b / 8] & m))
			return false;
	}
	return true;
}

/* Winner's index (-1: default) and key, without rule `skip`. */
static int winner(const struct sn_policy *p, const struct pkt *k, long skip,
		  long *key)
{
	int best = -1;

	*key = -1;
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sn_rule *r = &p->rules[i];
		int s = spec_of(r, k);

		if ((long)i == skip || s < 0)
			continue;
		for (size_t j = 0; j < r->n_srcs; j++) {
			if (!inside(&r->srcs[j].prefix, k))
				continue;
			long key2 = (long)r->tier << 16 |
				    (long)r->srcs[j].prefix.len << 8 | s;

			if (key2 > *key) {
				*key = key2;
				best = (int)i;
			}
		}
	}
	return best;
}

static uint8_t verdict_of(const struct sn_policy *p, const struct pkt *k, int w)
{
	if (w >= 0)
		return p->rules[w].verdict;
	return k->family == SN_FAMILY_V4 ? p->default_v4.verdict
					 : p->default_v6.verdict;
}

static void test_differential(unsigned n_policies)
{
	unsigned checked = 0, w1 = 0, w2 = 0;
	int failures0 = failures;

	for (unsigned it = 0; it < n_policies; it++) {
		struct sn_ctx ctx;
		struct sn_policy p;
		struct sn_image *img = NULL;

		sn_ctx_init(&ctx);
		random_policy(&ctx.arena, &p);
		if (sn_image_build(&ctx, &p, &img)) {
			sn_ctx_free(&ctx); /* a conflict (E010) */
			continue;
		}
		int rc = sn_analyze(&ctx, &p, img, NULL);

		CHECK(rc == 0, "analyze rc %d", rc);
		bool decides[16] = { false }, needed[16] = { false };

		/* Every address of every region: the /28 (/124), one in the
		 * /27 outside it, one in the /24 outside that, one outside. */
		static const uint8_t tails[][2] = {
			{ 0, 0 }, { 0, 16 }, { 0, 64 }, { 1, 0 },
		};
		for (int fam = 0; fam < 2; fam++)
			for (int a = 0; a < 16 + 3; a++)
				for (uint32_t c = 0; c < img->n_l4; c++) {
					const struct sn_l4_class *lc = &img->l4[c];
					struct pkt k = {
						.family = fam ? SN_FAMILY_V6 : SN_FAMILY_V4,
						.proto = lc->proto < 0 ? 200 : lc->proto,
						.port = lc->port_table && !lc->noport
								? lc->lo : -1,
					};
					int last = fam ? 15 : 3;
					const uint8_t *t = tails[a < 16 ? 0 : a - 15];

					if (fam) {
						k.addr[0] = 0x20, k.addr[1] = 0x01;
						k.addr[2] = 0x0d, k.addr[3] = 0xb8;
					} else {
						k.addr[0] = 10;
					}
					k.addr[last - 1] = t[0];
					k.addr[last] = (uint8_t)(a < 16 ? a : t[1]);
					long key, key2;
					int w = winner(&p, &k, -1, &key);

					if (w < 0)
						continue;
					int w2x = winner(&p, &k, w, &key2);

					decides[w] = true;
					if (verdict_of(&p, &k, w2x) != p.rules[w].verdict ||
					    key2 == key)
						needed[w] = true;
				}
		for (size_t r = 0; r < p.n_rules; r++) {
			bool got1 = find(&ctx, "W001", (uint32_t)r + 1, 1);
			bool got2 = find(&ctx, "W002", (uint32_t)r + 1, 1);

			CHECK(got1 == !decides[r], "policy %u rule %zu: W001 %d, brute "
			      "force decides %d", it, r, got1, decides[r]);
			CHECK(got2 == (decides[r] && !needed[r]),
			      "policy %u rule %zu: W002 %d, brute force decides %d "
			      "needed %d", it, r, got2, decides[r], needed[r]);
			w1 += got1;
			w2 += got2;
		}
		checked++;
		sn_ctx_free(&ctx);
		if (failures > failures0)
			break;
	}
	printf("differential: %u policies, %u shadowed, %u redundant\n",
	       checked, w1, w2);
	CHECK(checked > n_policies / 4 && w1 > 0 && w2 > 0, "coverage");
}

/* ---- a million entries ---------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

/* CPU time: other processes on a busy CI machine do not count. */
static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_million(void)
{
	const size_t n = 1000000;
	struct sn_ctx ctx;
	struct sn_policy p = { 0 };
	struct sn_image *img = NULL;

	sn_ctx_init(&ctx);
	p.main_file = "million";
	p.n_rules = 2;
	p.rules = sn_arena_calloc(&ctx.arena, 2, sizeof(*p.rules));
	struct sn_rule *big = &p.rules[0], *ssh = &p.rules[1];

	*big = (struct sn_rule){ .id = SN_RULE_FIRST, .verdict = SN_VERDICT_BLOCK,
				 .proto = SN_PROTO_ANY, .n_srcs = n,
				 .loc = { "million", 1, 1, 5 }, .text = "block from @big" };
	big->srcs = sn_arena_calloc(&ctx.arena, n, sizeof(*big->srcs));
	for (size_t i = 0; i < n; i++) {
		struct sn_prefix *x = &big->srcs[i].prefix;
		uint32_t a = (uint32_t)rnd();
		unsigned len = (unsigned[]){ 16, 20, 24, 24, 28, 32, 32, 32 }[i % 8];

		/* Every 1000th entry repeats an earlier one. */
		if (i % 1000 == 999) {
			*x = big->srcs[i / 2].prefix;
		} else {
			a &= len ? ~0u << (32 - len) : 0;
			x->family = SN_FAMILY_V4;
			x->len = (uint8_t)len;
			x->addr[0] = (uint8_t)(a >> 24);
			x->addr[1] = (uint8_t)(a >> 16);
			x->addr[2] = (uint8_t)(a >> 8);
			x->addr[3] = (uint8_t)a;
		}
		big->srcs[i].loc = (struct sn_loc){ "big.cidr", (uint32_t)i + 1, 1, 1 };
	}
	ssh->id = SN_RULE_FIRST + 1;
	ssh->verdict = SN_VERDICT_ALLOW;
	ssh->proto = SN_PROTO_TCP;
	ssh->n_srcs = 1;
	ssh->srcs = sn_arena_calloc(&ctx.arena, 1, sizeof(*ssh->srcs));
	ssh->srcs[0].prefix = (struct sn_prefix){ .family = SN_FAMILY_V4, .len = 8,
						  .addr = { 10 } };
	ssh->n_ports = 1;
	ssh->ports = sn_arena_calloc(&ctx.arena, 1, sizeof(*ssh->ports));
	ssh->ports[0] = (struct sn_port_range){ .lo = 22, .hi = 22 };
	ssh->loc = (struct sn_loc){ "million", 2, 1, 5 };
	ssh->text = "allow from 10.0.0.0/8 to tcp port 22";

	int rc = sn_image_build(&ctx, &p, &img);

	CHECK(rc == 0, "build rc %d", rc);
	if (rc) {
		sn_ctx_free(&ctx);
		return;
	}
	double t0 = now();

	rc = sn_analyze(&ctx, &p, img, NULL);
	double dt = now() - t0;

	CHECK(rc == 0, "analyze rc %d", rc);
	printf("analysis of %zu prefixes: %.3f s CPU, %zu warnings\n", n, dt,
	       ctx.diags.n_warnings);
	/* 8 shown + one "... and K more" for each of W003 and W004. */
	CHECK(count(&ctx, "W003") == SN_ANALYSIS_MAX_PER_RULE + 1, "W003 %zu",
	      count(&ctx, "W003"));
	CHECK(count(&ctx, "W004") == SN_ANALYSIS_MAX_PER_RULE + 1, "W004 %zu",
	      count(&ctx, "W004"));
#ifndef SANITIZED
	CHECK(dt < 0.5, "analysis took %.3f s", dt);
#endif
	sn_ctx_free(&ctx);
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 3000;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_shadowed();
	test_redundant();
	test_sources();
	test_cap_per_rule();
	test_capacity();
	test_differential(n);
	test_million();

	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("test_analyze: ok\n");
	return 0;
}

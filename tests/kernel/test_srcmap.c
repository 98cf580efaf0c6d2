/*
 * Every source-lookup structure the compiler can choose (SPEC.md 4:
 * the range trie, the LPM trie), forced in turn on the same policies and
 * run in the real XDP program (BPF_PROG_TEST_RUN) against the semantics
 * (sn_eval_policy) and the image walk (sn_eval_image).
 *
 * Policies: random prefixes of both families around a few centres (so
 * they nest, touch and share long leading bits: deep tries, full leaves,
 * one-range leaves), each in one rule (block, allow, always, with and
 * without ports), plus defaults; 300-3000 prefixes each.  Frames: for
 * every prefix its first and last address and the addresses just outside
 * them, a random address inside, and random addresses anywhere, as TCP to
 * a port the rules name or not.  The kernel's verdict must equal both
 * evaluators' for every frame, and each rule's counter must count exactly
 * the frames sn_eval_policy attributes to it.
 *
 * Then one loaded program is switched between the structures by applying
 * the other image in place (nodes[0] tells the program which to read) and
 * checked again.  Without root or BPF the test skips (exit 77).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "compiler/addr.h"
#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "compiler/srcmap.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"
#define CHECK_MAX_PRINTED 20
#include "tests/check.h"

#define SKIP 77

static uint64_t rng_state = 0x5eed5eed47ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static const uint16_t ports[] = { 22, 80, 443, 5353 };

/* n random distinct prefixes of a family, clustered around 3 centres. */
static size_t gen_prefixes(int family, size_t n, struct sn_prefix *out)
{
	const int w = family == SN_FAMILY_V4 ? 32 : 128;
	uint8_t centre[3][16];
	size_t m = 0;

	for (int c = 0; c < 3; c++)
		for (int i = 0; i < 16; i++)
			centre[c][i] = (uint8_t)rnd();
	/* Public-looking IPv6 (no ::ffff:0:0/96, which is dropped). */
	for (int c = 0; c < 3 && family == SN_FAMILY_V6; c++)
		centre[c][0] = (uint8_t)(0x20 | (centre[c][0] & 0x1f));
	while (m < n) {
		struct sn_prefix p = { .family = (uint8_t)family };
		uint64_t r = rnd();
		int keep = family == SN_FAMILY_V4 ? 4 + (int)(r % 20) :
						    8 + (int)(r % 100);

		memcpy(p.addr, centre[r >> 32 & 1 ? 0 : 1 + (r >> 33 & 1)], 16);
		for (int b = keep; b < w; b++)
			if (rnd() & 1)
				p.addr[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
		p.len = (uint8_t)(keep + (int)(rnd() % (uint64_t)(w - keep + 1)));
		if (p.len == 0)
			p.len = 1;
		sn_prefix_mask(&p);
		bool dup = false;

		for (size_t i = 0; i < m && !dup; i++)
			dup = !sn_prefix_cmp(&out[i], &p);
		if (!dup)
			out[m++] = p;
	}
	return m;
}

static void fmt_prefix(const struct sn_prefix *p, char *buf, size_t len)
{
	char a[64];

	inet_ntop(p->family == SN_FAMILY_V4 ? AF_INET : AF_INET6, p->addr, a,
		  sizeof(a));
	snprintf(buf, len, "%s/%u", a, p->len);
}

/* One rule per prefix: the prefixes are distinct, so no E010. */
static char *gen_policy(const struct sn_prefix *p, size_t n)
{
	size_t cap = 128 + n * 96, len = 0;
	char *t = malloc(cap), pf[80];

	if (!t)
		return NULL;
	len += (size_t)snprintf(t + len, cap - len, "default ipv4 %s\ndefault ipv6 %s\n",
				rnd() & 1 ? "allow" : "block",
				rnd() & 1 ? "allow" : "block");
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rnd();

		fmt_prefix(&p[i], pf, sizeof(pf));
		switch (r % 6) {
		case 0:
		case 1:
			len += (size_t)snprintf(t + len, cap - len, "block from %s\n", pf);
			break;
		case 2:
			len += (size_t)snprintf(t + len, cap - len, "allow from %s\n", pf);
			break;
		case 3:
			len += (size_t)snprintf(t + len, cap - len,
						"allow from %s to tcp port %u\n", pf,
						ports[r >> 8 & 3]);
			break;
		case 4:
			len += (size_t)snprintf(t + len, cap - len,
						"block from %s to tcp port %u-%u\n", pf,
						ports[r >> 8 & 3], ports[r >> 8 & 3] + 100);
			break;
		default:
			len += (size_t)snprintf(t + len, cap - len,
						"always %s from %s\n",
						r >> 8 & 1 ? "allow" : "block", pf);
			break;
		}
	}
	return t;
}

struct frames {
	struct { uint8_t buf[128]; uint32_t len; struct sn_packet facts; } *v;
	size_t n, cap;
};

static void add_frame(struct frames *f, int family, const uint8_t *addr)
{
	char txt[64];
	uint8_t buf[PKT_MAX];
	struct pkt_spec s = { 0 };
	size_t len;

	if (family == SN_FAMILY_V6 && !memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
		return; /* IPv4-mapped: malformed by SPEC 3, not a lookup */
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 4096;
		f->v = realloc(f->v, f->cap * sizeof(*f->v));
		if (!f->v)
			exit(2);
	}
	inet_ntop(family == SN_FAMILY_V4 ? AF_INET : AF_INET6, addr, txt, sizeof(txt));
	s.src = txt;
	s.proto = PKT_IPPROTO_TCP;
	s.dport = rnd() & 1 ? ports[rnd() & 3] : (uint16_t)(1024 + rnd() % 60000);
	len = pkt_build(&s, buf, &f->v[f->n].facts);
	if (!len || len > sizeof(f->v[0].buf))
		return;
	memcpy(f->v[f->n].buf, buf, len);
	f->v[f->n].len = (uint32_t)len;
	f->n++;
}

static void addr_step(uint8_t *a, int w, int delta)
{
	for (int i = w / 8 - 1; i >= 0; i--) {
		int x = a[i] + delta;

		a[i] = (uint8_t)x;
		if (x >= 0 && x <= 255)
			break;
	}
}

static void gen_frames(const struct sn_prefix *p, size_t n, struct frames *f)
{
	for (size_t i = 0; i < n; i++) {
		const int w = p[i].family == SN_FAMILY_V4 ? 32 : 128;
		uint8_t x[16];
		struct sn_prefix last = p[i];

		for (int b = last.len; b < w; b++)
			last.addr[b / 8] |= (uint8_t)(0x80u >> (b % 8));
		memcpy(x, p[i].addr, 16);
		add_frame(f, p[i].family, x);
		addr_step(x, w, -1);
		add_frame(f, p[i].family, x);
		add_frame(f, p[i].family, last.addr);
		memcpy(x, last.addr, 16);
		addr_step(x, w, 1);
		add_frame(f, p[i].family, x);
		memcpy(x, p[i].addr, 16);
		for (int b = p[i].len; b < w; b++)
			if (rnd() & 1)
				x[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
		add_frame(f, p[i].family, x);
	}
	for (int i = 0; i < 2000; i++) {
		uint8_t x[16];

		for (int j = 0; j < 16; j++)
			x[j] = (uint8_t)rnd();
		add_frame(f, i & 1 ? SN_FAMILY_V6 : SN_FAMILY_V4, x);
	}
}

/* Run every frame; compare verdicts, then the counters in aggregate. */
static void run_all(struct sn_dataplane *dp, const struct sn_policy *pol,
		    const struct sn_image *img, const struct frames *f,
		    const char *what)
{
	uint32_t n_rules = img->n_rules;
	uint64_t *want = calloc(n_rules, sizeof(*want));
	struct sn_counter *before = calloc(n_rules, sizeof(*before));
	struct sn_counter *after = calloc(n_rules, sizeof(*after));

	if (!want || !before || !after || sn_dp_read_counters(dp, before, n_rules)) {
		CHECK(0, "%s: setup", what);
		goto out;
	}
	for (size_t i = 0; i < f->n; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->v[i].buf,
			    .data_size_in = f->v[i].len, .repeat = 1);
		struct sn_eval_result ip, ii;
		char src[64];
		int rc = bpf_prog_test_run_opts(sn_dp_prog_fd(dp), &o);

		sn_eval_policy(pol, &f->v[i].facts, &ip);
		sn_eval_image(img, &f->v[i].facts, &ii);
		inet_ntop(f->v[i].facts.family == SN_FAMILY_V4 ? AF_INET : AF_INET6,
			  f->v[i].facts.src, src, sizeof(src));
		CHECK(rc == 0 && o.retval == (ip.verdict == SN_VERDICT_ALLOW ?
						      XDP_PASS : XDP_DROP),
		      "%s: %s port %u: kernel %u, policy %s (rule %u)", what, src,
		      f->v[i].facts.dport, o.retval,
		      ip.verdict == SN_VERDICT_ALLOW ? "allow" : "block",
		      ip.rule_id);
		CHECK(ii.verdict == ip.verdict && ii.rule_id == ip.rule_id,
		      "%s: %s: image rule %u, policy rule %u", what, src,
		      ii.rule_id, ip.rule_id);
		if (ip.rule_id < n_rules)
			want[ip.rule_id]++;
	}
	if (sn_dp_read_counters(dp, after, n_rules)) {
		CHECK(0, "%s: reading counters", what);
		goto out;
	}
	for (uint32_t id = 0; id < n_rules; id++)
		CHECK(after[id].packets - before[id].packets == want[id],
		      "%s: rule %u counted %llu, want %llu", what, id,
		      (unsigned long long)(after[id].packets - before[id].packets),
		      (unsigned long long)want[id]);
out:
	free(want);
	free(before);
	free(after);
}

static const char *kind_name(enum sn_srcmap_kind k)
{
	return k == SN_SRCMAP_RANGE ? "range trie" : "LPM trie";
}

/* One policy: each structure alone, then switched in place. */
static int one_policy(int round, size_t n_v4, size_t n_v6)
{
	struct sn_prefix *p = calloc(n_v4 + n_v6, sizeof(*p));
	struct frames f = { 0 };
	struct sn_ctx ctx;
	struct sn_policy *pol;
	struct sn_image *img;
	struct sn_dataplane *dp = NULL;
	char err[512] = "", what[64], *text;
	int rc = 0;

	if (!p)
		return -ENOMEM;
	size_t n = gen_prefixes(SN_FAMILY_V4, n_v4, p);

	n += gen_prefixes(SN_FAMILY_V6, n_v6, p + n);
	text = gen_policy(p, n);
	gen_frames(p, n, &f);
	sn_ctx_init(&ctx);
	if (!text || sn_compile_text(&ctx, "srcmap.sentry", text, strlen(text),
				     &pol, &img)) {
		sn_diags_render_text(stderr, &ctx.diags, &ctx.sources);
		CHECK(0, "round %d: compile failed", round);
		rc = -EINVAL;
		goto out;
	}
	CHECK(sn_srcmap_kind_of(&img->src_v4) == SN_SRCMAP_RANGE &&
		      sn_srcmap_kind_of(&img->src_v6) ==
			      (img->n_v6 < SN_SRCMAP_V6_LPM_BELOW ? SN_SRCMAP_LPM :
								     SN_SRCMAP_RANGE),
	      "round %d: the compiler's choice (SPEC 4.2)", round);

	static const enum sn_srcmap_kind kinds[] = { SN_SRCMAP_LPM, SN_SRCMAP_RANGE };

	for (size_t k = 0; k < 2; k++) {
		CHECK(sn_srcmap_build(&ctx.arena, img, kinds[k]) == 0, "rebuild");
		rc = sn_dp_load(img, &dp, err, sizeof(err));
		if (rc == -EPERM) {
			printf("SKIP: cannot load BPF programs: %s\n", err);
			rc = SKIP;
			goto out;
		}
		if (!rc)
			rc = sn_dp_apply(dp, img, err, sizeof(err));
		CHECK(rc == 0, "round %d %s: load/apply: %s", round,
		      kind_name(kinds[k]), err);
		if (rc)
			goto out;
		snprintf(what, sizeof(what), "round %d %s", round, kind_name(kinds[k]));
		run_all(dp, pol, img, &f, what);
		if (kinds[k] == SN_SRCMAP_RANGE) {
			/* The same program, switched to the LPM trie and back. */
			CHECK(sn_srcmap_build(&ctx.arena, img, SN_SRCMAP_LPM) == 0, "lpm");
			rc = sn_dp_apply(dp, img, err, sizeof(err));
			CHECK(rc == 0, "switch to LPM: %s", err);
			snprintf(what, sizeof(what), "round %d range->LPM", round);
			run_all(dp, pol, img, &f, what);
			CHECK(sn_srcmap_build(&ctx.arena, img, SN_SRCMAP_RANGE) == 0, "range");
			rc = sn_dp_apply(dp, img, err, sizeof(err));
			CHECK(rc == 0, "switch back to the range trie: %s", err);
			snprintf(what, sizeof(what), "round %d LPM->range", round);
			run_all(dp, pol, img, &f, what);
		}
		sn_dp_close(dp);
		dp = NULL;
	}
	printf("round %d: %zu prefixes, %zu frames, %u/%u ranges, %u/%u node entries\n",
	       round, n, f.n, img->src_v4.n_ranges, img->src_v6.n_ranges,
	       img->src_v4.n_nodes, img->src_v6.n_nodes);
out:
	sn_dp_close(dp);
	sn_ctx_free(&ctx);
	free(text);
	free(f.v);
	free(p);
	return rc;
}

int main(void)
{
	static const size_t sizes[][2] = {
		{ 3, 3 }, { 40, 40 }, { 300, 300 }, { 2000, 1000 },
	};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int rc = one_policy((int)i, sizes[i][0], sizes[i][1]);

		if (rc == SKIP)
			return SKIP;
		if (rc && !failures)
			return 1;
	}
	printf("test_srcmap: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

/*
 * The population (runtime/pop.c): a sequence of policy changes translated
 * into one population, as sentryd's reloads do.  After every step:
 *
 *  - what the population classifies (the program's walk over it) equals
 *    sn_eval_image for random packets and for the first and last address
 *    of every prefix and their neighbours: verdict, counter slot of the
 *    deciding rule, limit identity;
 *  - the dirty lists are complete: a mirror that receives only the dirty
 *    entries (what the other generation gets) equals the population;
 *  - a rule whose identity stays keeps its counter slot, a limit its index;
 *  - small changes write little (a one-prefix change on a policy of
 *    thousands of prefixes writes a few dozen entries, not thousands);
 *  - a rollback restores the population exactly;
 *  - a population rebuilt from its arrays alone (sn_pop_derive, what
 *    adoption of pinned state does) translates the next image as well.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "runtime/pop.h"
#include "tests/check.h"

static uint64_t rng = 0x5eed0f47ull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

/* ---- policies ------------------------------------------------------------ */

struct text {
	char *s;
	size_t n, cap;
};

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (t->n + (size_t)n + 1 > t->cap) {
		t->cap = (t->n + (size_t)n + 1) * 2;
		t->s = realloc(t->s, t->cap);
	}
	memcpy(t->s + t->n, buf, (size_t)n + 1);
	t->n += (size_t)n;
}

/* The policy of a step: a feed of /16../32 blocks in 10/8 and 2001:db8::/32,
 * allowed hosts inside them, port rules and limits; `lines` says which of
 * the optional lines are present and in which order. */
#define N_FEED 3000
static uint32_t feed4[N_FEED];
static uint8_t feed4_len[N_FEED];
static uint16_t feed6[N_FEED];

struct variant {
	int feed;          /* how many feed prefixes */
	int extra_host;    /* 0 or an extra /32 allow inside the feed */
	int rev;           /* write the rules in reverse order */
	int verdict_flip;  /* the port-443 rule blocks instead */
	int limit_rate;    /* rate of the first limit */
	int third_limit;   /* a third limit rule */
	int drop_ssh;      /* without the ssh rules */
};

static char *policy_text(const struct variant *v)
{
	struct text t = { 0 };
	const char *rules[16];
	int n = 0;
	char lim[128], lim3[128];

	add(&t, "default allow\nset feed = {\n");
	for (int i = 0; i < v->feed; i++) {
		uint32_t a = feed4[i];

		add(&t, "  %u.%u.%u.%u/%u,\n", a >> 24, a >> 16 & 255,
		    a >> 8 & 255, a & 255, feed4_len[i]);
		if (i % 3 == 0)
			add(&t, "  2001:db8:%x::/48,\n", feed6[i]);
	}
	add(&t, "}\n");
	snprintf(lim, sizeof(lim), "limit from 10.0.0.0/8 to udp rate %d/s",
		 v->limit_rate);
	snprintf(lim3, sizeof(lim3),
		 "limit from 10.7.0.0/16 to tcp port 80 rate 5/s per ipv4 /24");
	rules[n++] = "block from @feed";
	rules[n++] = "allow from 10.1.2.3";
	rules[n++] = "allow from 2001:db8:1::5";
	if (!v->drop_ssh) {
		rules[n++] = "block to tcp port 22";
		rules[n++] = "allow from 10.0.0.0/16 to tcp port 22";
	}
	rules[n++] = v->verdict_flip ? "block from 10.0.0.0/8 to tcp port 443" :
				       "allow from 10.0.0.0/8 to tcp port 443";
	rules[n++] = "always block from 10.9.9.9";
	rules[n++] = lim;
	rules[n++] = "limit rate 1000/s";
	if (v->third_limit)
		rules[n++] = lim3;
	if (v->extra_host)
		rules[n++] = "allow from 10.200.1.1";
	for (int i = 0; i < n; i++)
		add(&t, "%s\n", rules[v->rev ? n - 1 - i : i]);
	return t.s;
}

static void make_feed(void)
{
	for (int i = 0; i < N_FEED; i++) {
		uint8_t len = (uint8_t)(16 + rnd() % 17);
		uint32_t a = 0x0a000000u | (uint32_t)(rnd() & 0x00ffffffu);

		if (len < 32)
			a &= ~((1u << (32 - len)) - 1);
		feed4[i] = a;
		feed4_len[i] = len;
		feed6[i] = (uint16_t)(rnd() & 0xffff);
	}
}

/* ---- checks ----------------------------------------------------------------- */

struct mirror {
	unsigned char *a[SN_PA_N];
	size_t bytes[SN_PA_N];
	struct sn_pop_lpm_ent *lpm[2];
	size_t n_lpm[2];
};

static void mirror_take(struct mirror *m, const struct sn_pop *p)
{
	for (int i = 0; i < SN_PA_N; i++) {
		m->bytes[i] = (size_t)p->a[i].cap * p->a[i].esz;
		free(m->a[i]);
		m->a[i] = malloc(m->bytes[i] + 1);
		memcpy(m->a[i], p->a[i].v, m->bytes[i]);
	}
	for (int f = 0; f < 2; f++) {
		free(m->lpm[f]);
		m->lpm[f] = malloc((p->lpm[f].n + 1) * sizeof(*m->lpm[f]));
		if (p->lpm[f].n)
			memcpy(m->lpm[f], p->lpm[f].v,
			       p->lpm[f].n * sizeof(*m->lpm[f]));
		m->n_lpm[f] = p->lpm[f].n;
	}
}

static void mirror_free(struct mirror *m)
{
	for (int i = 0; i < SN_PA_N; i++)
		free(m->a[i]);
	for (int f = 0; f < 2; f++)
		free(m->lpm[f]);
	memset(m, 0, sizeof(*m));
}

static int ent_cmp(const void *a, const void *b)
{
	const struct sn_pop_lpm_ent *x = a, *y = b;
	int c = memcmp(x->addr, y->addr, 16);

	return c ? c : (int)x->len - (int)y->len;
}

/* Apply the dirty lists to the mirror (what the other generation gets)
 * and compare it with the population. */
static void mirror_level(struct mirror *m, const struct sn_pop *p,
			 const char *what)
{
	for (int i = 0; i < SN_PA_N; i++) {
		const struct sn_pop_array *a = &p->a[i];

		for (size_t k = 0; k < a->n_dirty; k++)
			memcpy(m->a[i] + (size_t)a->dirty[k] * a->esz,
			       a->v + (size_t)a->dirty[k] * a->esz, a->esz);
		CHECK(!memcmp(m->a[i], a->v, m->bytes[i]),
		      "%s: array %d: the dirty list misses entries", what, i);
	}
	for (int f = 0; f < 2; f++) {
		const struct sn_pop_lpm *l = &p->lpm[f];
		size_t n = m->n_lpm[f];
		struct sn_pop_lpm_ent *v = realloc(m->lpm[f],
						   (n + l->n_ops + 1) * sizeof(*v));

		for (size_t k = 0; k < l->n_ops; k++) {
			const struct sn_pop_lpm_op *op = &l->ops[k];
			size_t j;

			for (j = 0; j < n; j++)
				if (!ent_cmp(&v[j], &op->e))
					break;
			if (op->op == SN_LPM_DEL) {
				CHECK(j < n, "%s: LPM delete of a missing key", what);
				if (j < n)
					v[j] = v[--n];
			} else if (j < n) {
				v[j].cls = op->e.cls;
			} else {
				v[n++] = op->e;
			}
		}
		qsort(v, n, sizeof(*v), ent_cmp);
		m->lpm[f] = v;
		m->n_lpm[f] = n;
		CHECK(n == l->n && !memcmp(v, l->v, n * sizeof(*v)),
		      "%s: LPM %d: ops do not turn the old trie into the new", what, f);
	}
}

/* Compare the population's classification with the image's. */
static void check_pkt(const struct sn_pop *p, const struct sn_image *img,
		      const struct sn_packet *pkt, const char *what)
{
	struct sn_eval_result want;
	struct sn_decision got;
	const struct sn_image_features *f = sn_image_features(img);
	int rc;

	sn_eval_image(img, pkt, &want);
	rc = sn_pop_classify(p, pkt->family, pkt->src, pkt->proto,
			     pkt->has_port ? pkt->dport : -1, &got);
	CHECK(rc == 0, "%s: walk failed", what);
	if (rc)
		return;
	CHECK(got.verdict == want.verdict, "%s: verdict %u, want %u (fam %d src %u.%u.%u.%u proto %u port %d)", what,
	      got.verdict, want.verdict, pkt->family, pkt->src[0], pkt->src[1], pkt->src[2], pkt->src[3], pkt->proto, pkt->has_port ? pkt->dport : -1);
	CHECK(got.rule_id == p->rule_slot[want.rule_id],
	      "%s: slot %u, want rule %u's slot %u", what, got.rule_id,
	      want.rule_id, p->rule_slot[want.rule_id]);
	if (want.limit) {
		uint32_t li = want.limit - 1; /* the limit's index */
		const struct sn_limit_cfg *c =
			got.limit ? (const void *)(p->a[SN_PA_LIMITS].v +
						   (size_t)(got.limit - 1) *
							   sizeof(*c)) :
				    NULL;

		CHECK(c && c->identity == f->limits[li].identity &&
			      c->rule_id ==
				      p->rule_slot[sn_image_limit_rule(img, f, li)],
		      "%s: limit differs", what);
	} else if (want.verdict == SN_VERDICT_ALLOW) {
		CHECK(got.limit == 0, "%s: limit %u, want none", what, got.limit);
	}
}

static void check_all(const struct sn_pop *p, const struct sn_image *img,
		      const char *what)
{
	static const uint8_t protos[] = { 6, 17, 1, 58, 47 };
	static const int ports[] = { 22, 80, 443, 53, -1, 8080 };
	struct sn_packet pkt;
	char w[128];

	for (int i = 0; i < 4000; i++) {
		memset(&pkt, 0, sizeof(pkt));
		pkt.family = (i & 3) == 3 ? SN_FAMILY_V6 : SN_FAMILY_V4;
		if (pkt.family == SN_FAMILY_V4) {
			uint32_t a;

			if (i & 4) {
				a = (uint32_t)rnd();
			} else {
				uint32_t k = (uint32_t)(rnd() % N_FEED);

				a = feed4[k];
				if (i & 8)
					a |= (uint32_t)rnd() &
					     ((1ull << (32 - feed4_len[k])) - 1);
				else if (i & 16)
					a += (uint32_t)(1ull << (32 - feed4_len[k]));
				else if (i & 32)
					a -= 1;
			}
			for (int b = 0; b < 4; b++)
				pkt.src[b] = (uint8_t)(a >> (24 - 8 * b));
		} else {
			uint16_t h = feed6[rnd() % N_FEED];

			pkt.src[0] = 0x20;
			pkt.src[1] = 0x01;
			pkt.src[2] = 0x0d;
			pkt.src[3] = 0xb8;
			pkt.src[4] = (uint8_t)(h >> 8);
			pkt.src[5] = (uint8_t)(h + (i & 16 ? 1 : 0));
			pkt.src[15] = (uint8_t)rnd();
			if (i & 32)
				pkt.src[5] = 0x05; /* 2001:db8:1::5 region */
		}
		pkt.proto = protos[rnd() % sizeof(protos)];
		int port = ports[rnd() % (sizeof(ports) / sizeof(ports[0]))];

		pkt.has_port = (pkt.proto == 6 || pkt.proto == 17) && port >= 0;
		pkt.dport = pkt.has_port ? (uint16_t)port : 0;
		snprintf(w, sizeof(w), "%s packet %d", what, i);
		check_pkt(p, img, &pkt, w);
	}
}

/* ---- the sequence -------------------------------------------------------------- */

struct step {
	struct sn_ctx ctx;
	struct sn_image *img;
};

static int compile_step(struct step *s, const struct variant *v)
{
	char *text = policy_text(v);
	int rc;

	sn_ctx_init(&s->ctx);
	rc = sn_compile_text(&s->ctx, "step.sentry", text, strlen(text), NULL,
			     &s->img);
	if (rc || s->ctx.diags.n_errors) {
		sn_diags_render_text(stderr, &s->ctx.diags, &s->ctx.sources);
		rc = rc ? rc : -EINVAL;
	}
	free(text);
	return rc;
}

static size_t total_written(const struct sn_pop *p)
{
	size_t n = 0;

	for (int i = 0; i < SN_PA_N; i++)
		n += p->stats.written[i];
	return n + p->stats.lpm_ops[0] + p->stats.lpm_ops[1];
}

/* Slot of each identity of img, to compare across steps. */
static uint32_t slot_of_text(const struct sn_pop *p, const struct sn_image *img,
			     const char *text)
{
	for (uint32_t id = SN_RULE_FIRST; id < img->n_rules; id++)
		if (!strcmp(img->rules[id].text, text))
			return p->rule_slot[id];
	return UINT32_MAX;
}

int main(void)
{
	static const struct variant seq[] = {
		{ .feed = 2000, .limit_rate = 100 },
		{ .feed = 2000, .limit_rate = 100, .rev = 1 },     /* lines move */
		{ .feed = 2001, .limit_rate = 100, .rev = 1 },     /* +1 prefix */
		{ .feed = 2001, .limit_rate = 100, .extra_host = 1 },
		{ .feed = 2000, .limit_rate = 100, .extra_host = 1 }, /* -1 prefix */
		{ .feed = 2000, .limit_rate = 200, .extra_host = 1 }, /* rate */
		{ .feed = 2000, .limit_rate = 200, .verdict_flip = 1 },
		{ .feed = 2000, .limit_rate = 200, .third_limit = 1 },
		{ .feed = 2200, .limit_rate = 200, .third_limit = 1 }, /* +10 % */
		{ .feed = 2200, .limit_rate = 200, .drop_ssh = 1 },
		{ .feed = 1500, .limit_rate = 50, .rev = 1 },
		{ .feed = 2000, .limit_rate = 100 },
	};
	const size_t n_seq = sizeof(seq) / sizeof(seq[0]);
	struct sn_pop p = { 0 }, q = { 0 };
	struct sn_pop_geom g;
	struct mirror m = { 0 };
	struct step prev = { 0 }, cur = { 0 };
	char err[256], what[64];
	int rc;

	setvbuf(stdout, NULL, _IONBF, 0);
	make_feed();
	if (compile_step(&prev, &seq[0]))
		return 1;
	/* Room for the largest step. */
	CHECK(sn_pop_geom_for(prev.img, &g) == 0, "geometry");
	g.cap[SN_PA_NODES4] *= 2;
	g.cap[SN_PA_NODES6] *= 2;
	CHECK(sn_pop_init(&p, &g) == 0, "init");
	mirror_take(&m, &p);
	rc = sn_pop_translate(&p, prev.img, err, sizeof(err));
	CHECK(rc == 0, "first translation: %d %s", rc, err);
	mirror_level(&m, &p, "step 0");
	check_all(&p, prev.img, "step 0");
	check_all(&p, prev.img, "step 0 again");
	sn_pop_commit(&p);
	check_all(&p, prev.img, "step 0 committed");

	for (size_t i = 1; i < n_seq; i++) {
		snprintf(what, sizeof(what), "step %zu", i);
		bool regeomed = false;

		if (compile_step(&cur, &seq[i])) {
			failures++;
			break;
		}
		if (cur.img->constants.l4_stride != p.g.l4_stride ||
		    cur.img->constants.port_tables != p.g.port_tables) {
			/* What a program replacement does: new constants, a new
			 * decision map (zero, as the kernel makes it), the
			 * other maps kept. */
			regeomed = true;
			struct sn_pop_geom g2 = p.g, gi;
			bool nm[SN_PA_N] = { false }, nl[2] = { false };

			rc = sn_pop_translate(&p, cur.img, err, sizeof(err));
			CHECK(rc == -ESTALE, "%s: other constants: %d", what, rc);
			CHECK(sn_pop_geom_for(cur.img, &gi) == 0, "geometry");
			g2.l4_stride = gi.l4_stride;
			g2.port_tables = gi.port_tables;
			g2.cap[SN_PA_DECISIONS] = gi.cap[SN_PA_DECISIONS];
			nm[SN_PA_DECISIONS] = true;
			struct sn_pop np;

			CHECK(sn_pop_clone(&np, &p, &g2, nm, nl) == 0, "clone");
			sn_pop_free(&p);
			p = np;
			m.bytes[SN_PA_DECISIONS] = (size_t)p.a[SN_PA_DECISIONS].cap *
						   p.a[SN_PA_DECISIONS].esz;
			free(m.a[SN_PA_DECISIONS]);
			m.a[SN_PA_DECISIONS] = calloc(1, m.bytes[SN_PA_DECISIONS]);
			printf("%s: new constants (stride %u), decision map replaced\n",
			       what, g2.l4_stride);
		}
		/* A rollback first: the population is as before. */
		if (!regeomed) {
			rc = sn_pop_translate(&p, cur.img, err, sizeof(err));
			CHECK(rc == 0, "%s: %d %s", what, rc, err);
			sn_pop_rollback(&p);
			for (int a = 0; a < SN_PA_N; a++)
				CHECK(!memcmp(m.a[a], p.a[a].v, m.bytes[a]),
				      "%s: rollback left array %d changed", what, a);
			sn_pop_commit(&p);
			check_all(&p, prev.img, "after rollback");
		}

		uint32_t before[64] = { 0 };

		for (uint32_t id = 0; id < prev.img->n_rules && id < 64; id++)
			before[id] = p.rule_slot[id];
		rc = sn_pop_translate(&p, cur.img, err, sizeof(err));
		CHECK(rc == 0, "%s: %d %s", what, rc, err);
		if (rc)
			break;
		mirror_level(&m, &p, what);
		check_all(&p, cur.img, what);
		printf("%s: %zu entries written (dec %zu, words4 %zu, "
		       "words6 %zu, lpm %zu/%zu), blocks kept %u/%u new %u/%u, "
		       "classes kept %zu/%zu, l4 kept %zu, slots new %zu freed %zu, %.2f ms\n",
		       what, total_written(&p), p.stats.written[SN_PA_DECISIONS],
		       p.stats.written[SN_PA_NODES4], p.stats.written[SN_PA_NODES6],
		       p.stats.lpm_ops[0], p.stats.lpm_ops[1], p.stats.blocks_kept[0],
		       p.stats.blocks_kept[1], p.stats.blocks_new[0],
		       p.stats.blocks_new[1], p.stats.classes_kept, p.stats.classes,
		       p.stats.l4_kept, p.stats.slots_new, p.stats.slots_freed,
		       p.stats.translate_ms);

		/* Identities keep their slots. */
		for (uint32_t id = SN_RULE_FIRST; id < prev.img->n_rules; id++) {
			const char *t = prev.img->rules[id].text;
			uint32_t now = slot_of_text(&p, cur.img, t);

			if (now == UINT32_MAX)
				continue;
			CHECK(now == before[id], "%s: '%s' moved from slot %u to %u",
			      what, t, before[id], now);
		}
		if (i == 1) {
			/* Only lines moved: nothing to write but slot ids. */
			CHECK(total_written(&p) == 0,
			      "%s: moving lines wrote %zu entries", what,
			      total_written(&p));
			CHECK(p.stats.slots_new == 0 && p.stats.slots_freed == 0,
			      "%s: moving lines changed counter slots", what);
		}
		if (i == 2 || i == 3 || i == 4)
			CHECK(total_written(&p) < 100,
			      "%s: a one-prefix change wrote %zu entries", what,
			      total_written(&p));
		if (i == 5)
			CHECK(total_written(&p) <= 2 && p.stats.slots_new == 0,
			      "%s: a rate change wrote %zu entries", what,
			      total_written(&p));
		sn_pop_commit(&p);

		/* Adoption: a population rebuilt from the arrays alone. */
		if (i == 6) {
			CHECK(sn_pop_init(&q, &p.g) == 0, "init q");
			for (int a = 0; a < SN_PA_N; a++)
				memcpy(q.a[a].v, p.a[a].v, m.bytes[a]);
			for (int f = 0; f < 2; f++) {
				q.lpm[f].v = malloc((p.lpm[f].n + 1) *
						    sizeof(*q.lpm[f].v));
				memcpy(q.lpm[f].v, p.lpm[f].v,
				       p.lpm[f].n * sizeof(*q.lpm[f].v));
				q.lpm[f].n = q.lpm[f].cap = p.lpm[f].n;
			}
			memcpy(q.slots, p.slots, p.g.cap_slots * sizeof(*q.slots));
			rc = sn_pop_derive(&q, err, sizeof(err));
			CHECK(rc == 0, "derive: %d %s", rc, err);
			check_all(&q, cur.img, "derived");
		}
		if (q.g.l4_stride && i > 6) {
			if (q.g.l4_stride != p.g.l4_stride) {
				bool nm[SN_PA_N] = { false }, nl[2] = { false };
				struct sn_pop nq;

				nm[SN_PA_DECISIONS] = true;
				CHECK(sn_pop_clone(&nq, &q, &p.g, nm, nl) == 0, "clone q");
				sn_pop_free(&q);
				q = nq;
			}
			rc = sn_pop_translate(&q, cur.img, err, sizeof(err));
			CHECK(rc == 0, "%s (derived): %d %s", what, rc, err);
			check_all(&q, cur.img, "derived, translated");
			sn_pop_commit(&q);
		}
		sn_ctx_free(&prev.ctx);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
	}
	sn_ctx_free(&prev.ctx);
	sn_ctx_free(&cur.ctx);
	mirror_free(&m);
	sn_pop_free(&p);
	sn_pop_free(&q);
	printf("test_pop: %d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}

/*
 * Differential test of the whole pipeline against the real XDP program.
 *
 * Random policies are written as policy TEXT (nested prefixes of both
 * families, sets and variables, tcp/udp ports, ranges and lists, icmp,
 * icmpv6, proto N, the always tier, per-family defaults), compiled with
 * sn_compile_text, loaded with sn_dp_load and populated with sn_dp_apply
 * exactly as sentryd does (no attach).  Random and adversarial frames
 * (addresses at prefix boundaries and just outside, port range edges,
 * every packet class of SPEC.md section 3: VLAN/QinQ, IPv4 options,
 * fragments, IPv6 extension chains, truncations, v4-mapped sources,
 * non-IP, flipped bytes) run through BPF_PROG_TEST_RUN.  For every frame:
 *
 *  - a reference parser written from the SPEC.md table (below, sharing no
 *    code with the program) says whether the frame is non-IP, malformed or
 *    an IP packet, and which packet facts (family, source, protocol,
 *    destination port) the classifier must see;
 *  - for IP packets sn_eval_image and sn_eval_policy judge those facts and
 *    must agree with each other;
 *  - the kernel's XDP action must be that verdict (or the pseudo-rule
 *    verdict: non-IP pass, malformed drop), and the counter that moved must
 *    be that rule's, by the frame's length.  Counters are compared per
 *    batch of frames (one map read per batch instead of per frame); a batch
 *    that disagrees is replayed frame by frame to find the culprit.
 *
 * Consecutive policies whose generated constants agree are applied in
 * place over the previous one (as a sentryd reload does), so stale map
 * entries of the earlier policy would show up as mismatches.
 *
 * On a mismatch the policy is shrunk (lines removed while the mismatch
 * persists) and printed with the frame's hex and every verdict; the test
 * fails.  Sizes come from arguments or the environment:
 *
 *   test_differential [--policies N] [--packets N] [--seed S]
 *                     [--seconds T] [--only I] [--verbose]
 *   SN_DIFF_POLICIES, SN_DIFF_PACKETS, SN_DIFF_SEED, SN_DIFF_SECONDS
 *
 * Defaults (make test): 50 policies x 4000 frames.  `make
 * test-differential` runs the full size.  Without root or BPF: exit 77.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"

#define SKIP 77
#define BATCH 256          /* frames per counter comparison */
#define MAX_LINES 48       /* policy lines (sets, defines, defaults, rules) */
#define LINE_MAX_LEN 400
#define POOL_MAX 16        /* prefixes a policy draws its sources from */
#define EDGES_MAX 64       /* port range edges a policy names */
#define MAX_REPORTS 3      /* mismatches reported before giving up */

/* ---- deterministic random numbers ---------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	/* xorshift64*: fast, and a seed reproduces a whole run. */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ull;
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return n ? (uint32_t)(rnd(r) % n) : 0;
}

/* true with probability pct/100 */
static bool chance(struct rng *r, unsigned pct)
{
	return below(r, 100) < pct;
}

/* The generator state of policy i of a run with seed s, independent of the
 * other policies, so --only i replays it alone. */
static void rng_for(struct rng *r, uint64_t seed, unsigned i)
{
	r->s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0xbf58476d1ce4e5b9ull +
	       0x47;
	if (!r->s)
		r->s = 1;
	for (int k = 0; k < 4; k++)
		rnd(r);
}

/* ---- prefixes ------------------------------------------------------------ */

struct pfx {
	uint8_t family; /* SN_FAMILY_V4 / V6 */
	uint8_t len;
	uint8_t addr[16];
};

static unsigned fam_bits(uint8_t family)
{
	return family == SN_FAMILY_V4 ? 32 : 128;
}

static void pfx_mask(struct pfx *p)
{
	unsigned bytes = fam_bits(p->family) / 8;

	for (unsigned i = 0; i < 16; i++) {
		int bits = (int)p->len - (int)i * 8;

		if (i >= bytes || bits <= 0)
			p->addr[i] = 0;
		else if (bits < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - bits));
	}
}

static bool in_v4_mapped(const uint8_t a[16])
{
	static const uint8_t m[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(a, m, 12);
}

/* Is prefix p inside ::ffff:0:0/96 (the compiler refuses those, E016)? */
static bool pfx_v4_mapped(const struct pfx *p)
{
	return p->family == SN_FAMILY_V6 && p->len >= 96 && in_v4_mapped(p->addr);
}

static void addr_str(uint8_t family, const uint8_t *a, char *out, size_t n)
{
	inet_ntop(family == SN_FAMILY_V4 ? AF_INET : AF_INET6, a, out,
		  (socklen_t)n);
}

/* Text of a prefix; a host prefix is sometimes written as an address. */
static void pfx_str(struct rng *r, const struct pfx *p, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN];

	addr_str(p->family, p->addr, a, sizeof(a));
	if (p->len == fam_bits(p->family) && chance(r, 50))
		snprintf(out, n, "%s", a);
	else
		snprintf(out, n, "%s/%u", a, p->len);
}

/* Set bit b (from the most significant) of an address to v. */
static void bit_set(uint8_t *a, unsigned b, bool v)
{
	uint8_t m = (uint8_t)(0x80 >> (b % 8));

	a[b / 8] = v ? (uint8_t)(a[b / 8] | m) : (uint8_t)(a[b / 8] & ~m);
}

/* a += delta (+1 or -1) over n bytes, wrapping. */
static void addr_step(uint8_t *a, unsigned n, int delta)
{
	for (int i = (int)n - 1; i >= 0; i--) {
		if (delta > 0 && ++a[i] != 0)
			return;
		if (delta < 0 && a[i]-- != 0)
			return;
	}
}

/* A root prefix: mostly small address spaces so that prefixes nest. */
static void root_pfx(struct rng *r, uint8_t family, struct pfx *p)
{
	static const uint8_t len4[] = { 0, 1, 7, 8, 9, 12, 15, 16, 17,
					23, 24, 25, 30, 31, 32 };
	static const uint8_t len6[] = { 0, 1, 16, 32, 33, 47, 48, 56,
					63, 64, 65, 96, 127, 128 };

	memset(p, 0, sizeof(*p));
	p->family = family;
	if (family == SN_FAMILY_V4) {
		switch (below(r, 12)) {
		case 0: /* the very top of the address space */
			memset(p->addr, 0xff, 4);
			p->len = (uint8_t)(24 + below(r, 9));
			break;
		case 1: /* the very bottom */
			p->len = (uint8_t)(below(r, 33));
			break;
		default:
			p->addr[0] = 10;
			p->addr[1] = (uint8_t)below(r, 4);
			p->addr[2] = (uint8_t)rnd(r);
			p->addr[3] = (uint8_t)rnd(r);
			p->len = len4[below(r, sizeof(len4))];
			break;
		}
	} else {
		switch (below(r, 12)) {
		case 0: /* around the IPv4-mapped range, never inside it */
			switch (below(r, 3)) {
			case 0: /* ::/80 .. ::/94 contain ::ffff:0:0/96 */
				p->len = (uint8_t)(80 + below(r, 15));
				break;
			case 1: /* ::fffe:0:0/95..128: just below it */
				p->addr[10] = 0xff;
				p->addr[11] = 0xfe;
				for (int i = 12; i < 16; i++)
					p->addr[i] = (uint8_t)rnd(r);
				p->len = (uint8_t)(95 + below(r, 34));
				break;
			default: /* ::1:0:0:0/96..128: just above it */
				p->addr[9] = 1;
				for (int i = 12; i < 16; i++)
					p->addr[i] = (uint8_t)rnd(r);
				p->len = (uint8_t)(96 + below(r, 33));
				break;
			}
			break;
		case 1:
			memset(p->addr, 0xff, 16);
			p->len = (uint8_t)(100 + below(r, 29));
			break;
		default:
			p->addr[0] = 0x20;
			p->addr[1] = 0x01;
			p->addr[2] = 0x0d;
			p->addr[3] = 0xb8;
			p->addr[5] = (uint8_t)below(r, 4);
			for (int i = 6; i < 16; i++)
				p->addr[i] = (uint8_t)rnd(r);
			p->len = len6[below(r, sizeof(len6))];
			break;
		}
	}
	pfx_mask(p);
}

/* ---- policy generation ----------------------------------------------------- */

struct policy_gen {
	char lines[MAX_LINES][LINE_MAX_LEN];
	unsigned n_lines;
	struct pfx pool[POOL_MAX];
	unsigned n_pool;
	uint16_t edges[EDGES_MAX]; /* port range bounds the policy names */
	unsigned n_edges;
	uint8_t protos[8]; /* protocols named with proto N */
	unsigned n_protos;
	/* Sometimes a big set ("set big"), so the source lookup the compiler
	 * builds has depth: its prefixes, written one after another. */
	struct pfx *bulk;
	unsigned n_bulk;
};

/* What a shrunk policy keeps: lines, and a slice of the big set. */
struct keep {
	bool line[MAX_LINES];
	unsigned bulk_lo, bulk_hi;
};

/* Names a policy may reference: sets and variables with their families. */
struct names {
	unsigned big_fams; /* families in the big set; 0: no big set */
	unsigned n_sets, set_fams[3];
	unsigned n_vars, var_fams[2];
	unsigned n_port_vars;
};

#define FAM4 1u
#define FAM6 2u

static unsigned fam_mask(uint8_t family)
{
	return family == SN_FAMILY_V4 ? FAM4 : FAM6;
}

/* Append to a line (truncation cannot happen at these sizes). */
static void cat(char *line, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cat(char *line, const char *fmt, ...)
{
	size_t used = strlen(line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + used, LINE_MAX_LEN - used, fmt, ap);
	va_end(ap);
}

static void make_pool(struct rng *r, struct policy_gen *g)
{
	g->n_pool = 6 + below(r, POOL_MAX - 6 + 1);
	for (unsigned i = 0; i < g->n_pool; i++) {
		struct pfx *p = &g->pool[i];

		do {
			if (i >= 2 && chance(r, 55)) {
				/* Inside an earlier prefix: nesting. */
				const struct pfx *parent = &g->pool[below(r, i)];
				unsigned max = fam_bits(parent->family);

				*p = *parent;
				if (parent->len < max) {
					p->len = (uint8_t)(parent->len + 1 +
							   below(r, max - parent->len));
					if (chance(r, 30)) /* a sibling-ish neighbour */
						p->len = (uint8_t)(parent->len + 1);
				}
				for (unsigned b = parent->len; b < max; b++)
					bit_set(p->addr, b, below(r, 2));
				pfx_mask(p);
			} else {
				root_pfx(r, chance(r, 50) ? SN_FAMILY_V4 :
							    SN_FAMILY_V6,
					 p);
			}
		} while (pfx_v4_mapped(p));
	}
}

/* One element of a source list; returns its family mask. */
static unsigned src_item(struct rng *r, struct policy_gen *g,
			 const struct names *nm, char *line)
{
	char buf[64];

	if (nm->big_fams && chance(r, 30)) {
		cat(line, "@big");
		return nm->big_fams;
	}
	if (nm->n_sets && chance(r, 12)) {
		unsigned k = below(r, nm->n_sets);

		cat(line, "@s%u", k);
		return nm->set_fams[k];
	}
	if (nm->n_vars && chance(r, 8)) {
		unsigned k = below(r, nm->n_vars);

		cat(line, "$a%u", k);
		return nm->var_fams[k];
	}
	const struct pfx *p = &g->pool[below(r, g->n_pool)];

	pfx_str(r, p, buf, sizeof(buf));
	cat(line, "%s", buf);
	return fam_mask(p->family);
}

/* A { } list of pool prefixes (sets and variables); returns its families. */
static unsigned pool_list(struct rng *r, struct policy_gen *g, char *line)
{
	unsigned n = 1 + below(r, 4), fams = 0;
	char buf[64];

	cat(line, "{ ");
	for (unsigned i = 0; i < n; i++) {
		const struct pfx *p = &g->pool[below(r, g->n_pool)];

		pfx_str(r, p, buf, sizeof(buf));
		cat(line, "%s%s", i ? ", " : "", buf);
		fams |= fam_mask(p->family);
	}
	cat(line, " }");
	return fams;
}

static uint16_t port_value(struct rng *r)
{
	static const uint16_t pool[] = { 0,    1,    21,   22,    23,   53,
					 80,   443,  1023, 1024,  5000, 5999,
					 8080, 65534, 65535 };

	return chance(r, 70) ? pool[below(r, sizeof(pool) / sizeof(pool[0]))] :
			       (uint16_t)rnd(r);
}

static void add_edge(struct policy_gen *g, uint16_t p)
{
	if (g->n_edges < EDGES_MAX)
		g->edges[g->n_edges++] = p;
}

/* "22", "100-200"; records the edges. */
static void port_item(struct rng *r, struct policy_gen *g, char *line)
{
	uint16_t a = port_value(r), b = a;

	if (chance(r, 45)) {
		b = chance(r, 30) ? (uint16_t)(a + below(r, 3)) : port_value(r);
		if (b < a) {
			uint16_t t = a;

			a = b;
			b = t;
		}
	}
	add_edge(g, a);
	add_edge(g, b);
	if (a == b)
		cat(line, "%u", a);
	else
		cat(line, "%u-%u", a, b);
}

/* Port variables are defined first; their values are edges too. */
static void port_define(struct rng *r, struct policy_gen *g, unsigned k,
			char *line)
{
	cat(line, "define p%u = ", k);
	port_item(r, g, line);
}

/* " port ..." after tcp/udp (sometimes none at all). */
static void ports(struct rng *r, struct policy_gen *g, const struct names *nm,
		  bool no_ports, char *line)
{
	if (no_ports || chance(r, 30))
		return;
	cat(line, " port ");
	if (nm->n_port_vars && chance(r, 10)) {
		cat(line, "$p%u", below(r, nm->n_port_vars));
		return;
	}
	if (chance(r, 70)) {
		port_item(r, g, line);
		return;
	}
	unsigned n = 2 + below(r, 3);

	cat(line, "{ ");
	for (unsigned i = 0; i < n; i++) {
		if (i)
			cat(line, ", ");
		if (nm->n_port_vars && chance(r, 10))
			cat(line, "$p%u", below(r, nm->n_port_vars));
		else
			port_item(r, g, line);
	}
	cat(line, " }");
}

static void rule_line(struct rng *r, struct policy_gen *g,
		      const struct names *nm, bool no_ports, char *line)
{
	static const uint8_t proto_pool[] = { 6, 17, 1, 58, 47, 50, 132, 0, 254, 41 };
	unsigned fams = FAM4 | FAM6;
	bool has_from = !chance(r, 12), has_to = !has_from || chance(r, 75);

	line[0] = 0;
	if (chance(r, 15))
		cat(line, "always ");
	cat(line, "%s", chance(r, 50) ? "allow" : "block");
	if (has_from) {
		cat(line, " from ");
		if (chance(r, 8)) {
			cat(line, "any");
		} else if (chance(r, 65)) {
			fams = src_item(r, g, nm, line);
		} else {
			unsigned n = 2 + below(r, 3);

			fams = 0;
			cat(line, "{ ");
			for (unsigned i = 0; i < n; i++) {
				if (i)
					cat(line, ", ");
				fams |= src_item(r, g, nm, line);
			}
			cat(line, " }");
		}
	}
	if (!has_to)
		return;
	cat(line, " to ");
	switch (below(r, 10)) {
	case 0:
	case 1:
	case 2:
		cat(line, "tcp");
		ports(r, g, nm, no_ports, line);
		break;
	case 3:
	case 4:
		cat(line, "udp");
		ports(r, g, nm, no_ports, line);
		break;
	case 5: /* icmp only matches IPv4: an all-IPv6 source list is E014 */
		cat(line, "%s", fams & FAM4 ? "icmp" : "icmpv6");
		break;
	case 6:
		cat(line, "%s", fams & FAM6 ? "icmpv6" : "icmp");
		break;
	case 7:
		cat(line, "any");
		break;
	default: {
		uint8_t p = proto_pool[below(r, sizeof(proto_pool))];

		if ((p == 1 && !(fams & FAM4)) || (p == 58 && !(fams & FAM6)))
			p = 47;
		if (g->n_protos < sizeof(g->protos))
			g->protos[g->n_protos++] = p;
		cat(line, "proto %u", p);
		break;
	}
	}
}

/*
 * 50..6400 prefixes: inside the pool's prefixes (nesting), and dense runs
 * of neighbours in a small space (many adjacent ranges).
 */
static void make_bulk(struct rng *r, struct policy_gen *g)
{
	unsigned n = 50u << below(r, 8);

	g->bulk = calloc(n, sizeof(*g->bulk));
	if (!g->bulk)
		return;
	for (unsigned i = 0; i < n; i++) {
		struct pfx *p = &g->bulk[i];
		unsigned max;

		do {
			if (i && chance(r, 40)) { /* a neighbour of the previous */
				*p = g->bulk[i - 1];
				max = fam_bits(p->family);
				if (p->len)
					bit_set(p->addr, p->len - 1u,
						!((p->addr[(p->len - 1) / 8] <<
						   ((p->len - 1) % 8)) & 0x80));
				if (chance(r, 30) && p->len < max)
					p->len++;
			} else {
				const struct pfx *parent =
					&g->pool[below(r, g->n_pool)];

				*p = *parent;
				max = fam_bits(p->family);
				p->len = (uint8_t)(parent->len +
						   below(r, max - parent->len + 1));
				for (unsigned b = parent->len; b < max; b++)
					bit_set(p->addr, b, below(r, 2));
			}
			pfx_mask(p);
		} while (pfx_v4_mapped(p));
	}
	g->n_bulk = n;
}

static void gen_policy(struct rng *r, struct policy_gen *g)
{
	struct names nm = { 0 };
	bool no_ports = chance(r, 15); /* no port tables: no port path at all */
	unsigned n_rules;

	memset(g, 0, sizeof(*g));
	make_pool(r, g);
	if (chance(r, 20))
		make_bulk(r, g);
	for (unsigned i = 0; i < g->n_bulk; i++)
		nm.big_fams |= fam_mask(g->bulk[i].family);

	nm.n_sets = below(r, 3);
	nm.n_vars = below(r, 2);
	nm.n_port_vars = no_ports ? 0 : below(r, 2);
	for (unsigned k = 0; k < nm.n_sets; k++) {
		char *l = g->lines[g->n_lines++];

		snprintf(l, LINE_MAX_LEN, "set s%u = ", k);
		nm.set_fams[k] = pool_list(r, g, l);
	}
	for (unsigned k = 0; k < nm.n_vars; k++) {
		char *l = g->lines[g->n_lines++];

		snprintf(l, LINE_MAX_LEN, "define a%u = ", k);
		nm.var_fams[k] = pool_list(r, g, l);
	}
	for (unsigned k = 0; k < nm.n_port_vars; k++)
		port_define(r, g, k, g->lines[g->n_lines++]);

	switch (below(r, 5)) {
	case 0:
		break; /* both allow, implicitly */
	case 1:
		snprintf(g->lines[g->n_lines++], LINE_MAX_LEN, "default %s",
			 chance(r, 50) ? "allow" : "block");
		break;
	case 2:
		snprintf(g->lines[g->n_lines++], LINE_MAX_LEN, "default ipv4 %s",
			 chance(r, 50) ? "allow" : "block");
		break;
	case 3:
		snprintf(g->lines[g->n_lines++], LINE_MAX_LEN, "default ipv6 %s",
			 chance(r, 50) ? "allow" : "block");
		break;
	default:
		snprintf(g->lines[g->n_lines++], LINE_MAX_LEN, "default ipv4 %s",
			 chance(r, 50) ? "allow" : "block");
		snprintf(g->lines[g->n_lines++], LINE_MAX_LEN, "default ipv6 %s",
			 chance(r, 50) ? "allow" : "block");
		break;
	}
	n_rules = 1 + below(r, 16);
	for (unsigned i = 0; i < n_rules && g->n_lines < MAX_LINES; i++)
		rule_line(r, g, &nm, no_ports, g->lines[g->n_lines++]);
}

static void gen_free(struct policy_gen *g)
{
	free(g->bulk);
	free(g);
}

static void keep_all(const struct policy_gen *g, struct keep *k)
{
	for (unsigned i = 0; i < MAX_LINES; i++)
		k->line[i] = true;
	k->bulk_lo = 0;
	k->bulk_hi = g->n_bulk;
}

/* The policy text of what k keeps (everything: NULL). */
static char *policy_text(const struct policy_gen *g, const struct keep *k)
{
	struct keep all;
	size_t cap, used = 0;
	char *t;

	if (!k) {
		keep_all(g, &all);
		k = &all;
	}
	cap = (size_t)g->n_lines * (LINE_MAX_LEN + 1) +
	      (size_t)(k->bulk_hi - k->bulk_lo) * (INET6_ADDRSTRLEN + 6) + 32;
	t = malloc(cap);
	if (!t)
		return NULL;
	t[0] = 0;
	if (k->bulk_hi > k->bulk_lo) {
		used += (size_t)snprintf(t, cap, "set big = {");
		for (unsigned i = k->bulk_lo; i < k->bulk_hi; i++) {
			const struct pfx *p = &g->bulk[i];
			char a[INET6_ADDRSTRLEN];

			addr_str(p->family, p->addr, a, sizeof(a));
			used += (size_t)snprintf(t + used, cap - used, "%s%s/%u",
						 i > k->bulk_lo ? ", " : " ", a,
						 p->len);
		}
		used += (size_t)snprintf(t + used, cap - used, " }\n");
	}
	for (unsigned i = 0; i < g->n_lines; i++) {
		if (!k->line[i])
			continue;
		used += (size_t)snprintf(t + used, cap - used, "%s\n", g->lines[i]);
	}
	return t;
}

/* ---- packet generation ------------------------------------------------------ */

/* An address near a pool prefix: first, last, just outside, inside. */
static void gen_src(struct rng *r, const struct policy_gen *g, uint8_t *family,
		    uint8_t a[16])
{
	const struct pfx *p = g->n_bulk && chance(r, 40) ?
				      &g->bulk[below(r, g->n_bulk)] :
				      &g->pool[below(r, g->n_pool)];
	unsigned max, pick = below(r, 100);

	memset(a, 0, 16);
	if (pick < 8) { /* anywhere at all */
		*family = chance(r, 50) ? SN_FAMILY_V4 : SN_FAMILY_V6;
		for (int i = 0; i < 16; i++)
			a[i] = (uint8_t)rnd(r);
		if (*family == SN_FAMILY_V4)
			memset(a + 4, 0, 12);
		return;
	}
	if (pick < 14) { /* IPv4-mapped, or just outside that range */
		*family = SN_FAMILY_V6;
		a[10] = a[11] = 0xff;
		for (int i = 12; i < 16; i++)
			a[i] = (uint8_t)rnd(r);
		switch (below(r, 5)) {
		case 0:
			memset(a + 12, 0, 4); /* ::ffff:0.0.0.0 */
			break;
		case 1:
			memset(a + 12, 0xff, 4); /* ::ffff:255.255.255.255 */
			break;
		case 2:
			memset(a + 12, 0, 4);
			addr_step(a, 16, -1); /* ::fffe:ffff:ffff */
			break;
		case 3:
			memset(a + 12, 0xff, 4);
			addr_step(a, 16, +1); /* ::1:0:0:0 */
			break;
		default:
			break;
		}
		return;
	}
	*family = p->family;
	max = fam_bits(p->family);
	memcpy(a, p->addr, 16);
	switch (below(r, 6)) {
	case 0: /* first address */
		break;
	case 1: /* last address */
		for (unsigned b = p->len; b < max; b++)
			bit_set(a, b, true);
		break;
	case 2: /* just below the prefix */
		addr_step(a, max / 8, -1);
		break;
	case 3: /* just above */
		for (unsigned b = p->len; b < max; b++)
			bit_set(a, b, true);
		addr_step(a, max / 8, +1);
		break;
	default: /* inside, or with a few prefix bits flipped too */
		for (unsigned b = chance(r, 80) ? p->len : 0; b < max; b++)
			if (below(r, 2))
				bit_set(a, b, !((a[b / 8] << (b % 8)) & 0x80));
		break;
	}
}

static uint8_t gen_proto(struct rng *r, const struct policy_gen *g,
			 uint8_t family)
{
	unsigned pick = below(r, 100);

	if (pick < 30)
		return PKT_IPPROTO_TCP;
	if (pick < 50)
		return PKT_IPPROTO_UDP;
	if (pick < 62)
		return family == SN_FAMILY_V4 ? PKT_IPPROTO_ICMP : PKT_IPPROTO_ICMPV6;
	if (pick < 67)
		return family == SN_FAMILY_V4 ? PKT_IPPROTO_ICMPV6 : PKT_IPPROTO_ICMP;
	if (pick < 82 && g->n_protos)
		return g->protos[below(r, g->n_protos)];
	if (pick < 87) /* 255: a protocol no rule may name */
		return 255;
	return (uint8_t)rnd(r);
}

static uint16_t gen_port(struct rng *r, const struct policy_gen *g)
{
	unsigned pick = below(r, 100);

	if (pick < 55 && g->n_edges) {
		uint16_t e = g->edges[below(r, g->n_edges)];

		return (uint16_t)(e + (int)below(r, 3) - 1); /* e-1, e, e+1 */
	}
	if (pick < 75)
		return port_value(r);
	return (uint16_t)rnd(r);
}

/* A frame spec; src_buf holds the source address text it points to. */
static void gen_packet(struct rng *r, const struct policy_gen *g,
		       struct pkt_spec *s, char *src_buf, size_t src_len)
{
	static const uint16_t non_ip[] = { 0x0806, 0x88cc, 0x0042, 0x9100,
					   0x8035, 0x88e5, 0x0000, 0xffff };
	static const uint8_t ext_types[] = { PKT_IPPROTO_HOPOPTS,
					     PKT_IPPROTO_ROUTING,
					     PKT_IPPROTO_DSTOPTS,
					     PKT_IPPROTO_FRAGMENT,
					     PKT_IPPROTO_AH };
	uint8_t family, a[16];
	unsigned pick;

	memset(s, 0, sizeof(*s));
	pick = below(r, 100);
	if (pick < 12)
		s->tpids[0] = chance(r, 50) ? PKT_TPID_8021Q : PKT_TPID_8021AD;
	else if (pick < 20) {
		s->tpids[0] = PKT_TPID_8021AD;
		s->tpids[1] = PKT_TPID_8021Q;
	} else if (pick < 23) { /* a third tag: malformed */
		s->tpids[0] = PKT_TPID_8021AD;
		s->tpids[1] = PKT_TPID_8021Q;
		s->tpids[2] = chance(r, 50) ? PKT_TPID_8021Q : PKT_TPID_8021AD;
	} else if (pick < 25) { /* another TPID: not a tag we skip, non-IP */
		s->tpids[0] = 0x9100;
	}

	if (chance(r, 4)) {
		s->ethertype = non_ip[below(r, sizeof(non_ip) / sizeof(non_ip[0]))];
		return;
	}
	gen_src(r, g, &family, a);
	addr_str(family, a, src_buf, src_len);
	s->src = src_buf;
	s->proto = gen_proto(r, g, family);
	s->dport = gen_port(r, g);

	if (family == SN_FAMILY_V4) {
		if (chance(r, 12))
			s->ip_opts = (uint8_t)(4 * (1 + below(r, 10)));
		if (chance(r, 15)) {
			s->more_frags = chance(r, 60);
			switch (below(r, 4)) {
			case 0:
				s->frag = 0; /* first fragment */
				s->more_frags = true;
				break;
			case 1:
				s->frag = 1; /* RFC 1858 for TCP */
				break;
			default:
				s->frag = (uint16_t)(1 + below(r, 0x1fff));
				break;
			}
		}
	} else {
		if (chance(r, 25)) {
			s->n_ext = (uint8_t)(1 + below(r, chance(r, 70) ? 4 : 11));
			for (unsigned i = 0; i < s->n_ext; i++)
				s->ext[i] = ext_types[below(r, sizeof(ext_types))];
		}
		if (chance(r, 12)) {
			s->v6_frag_hdr = true;
			s->more_frags = chance(r, 60);
			s->frag = chance(r, 40) ? 0 :
				  chance(r, 20) ? 1 : (uint16_t)(1 + below(r, 0x1fff));
		}
	}
	if (chance(r, 3))
		s->version = (uint8_t)below(r, 16);
	if (family == SN_FAMILY_V4 && chance(r, 3))
		s->ihl_override = (uint8_t)below(r, 16);
	if (family == SN_FAMILY_V4 && chance(r, 3))
		s->tot_len = (uint16_t)below(r, 64);
}

/* ---- reference parser: SPEC.md section 3, written from the table ------- */

enum ref_kind {
	REF_IP,
	REF_NON_IP,
	REF_MALFORMED,
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Classes 5/5a/6/10/11: L4 part of an IP packet (p: L4 header, n bytes). */
static enum ref_kind ref_l4(uint8_t proto, uint16_t frag, const uint8_t *p,
			    size_t n, struct sn_packet *out)
{
	size_t need = 0;

	out->proto = proto;
	if (frag) {
		if (proto == PKT_IPPROTO_TCP && frag == 1)
			return REF_MALFORMED; /* 5a */
		return REF_IP;                /* no port */
	}
	switch (proto) {
	case PKT_IPPROTO_TCP:
		need = 20;
		break;
	case PKT_IPPROTO_UDP:
		need = 8;
		break;
	case PKT_IPPROTO_ICMP:
	case PKT_IPPROTO_ICMPV6:
		need = 4;
		break;
	default:
		break;
	}
	if (n < need)
		return REF_MALFORMED; /* 6, 11 */
	if (proto == PKT_IPPROTO_TCP || proto == PKT_IPPROTO_UDP) {
		out->has_port = true;
		out->dport = get16(p + 2);
	}
	return REF_IP;
}

static enum ref_kind ref_v4(const uint8_t *p, size_t n, struct sn_packet *out)
{
	size_t hlen;

	if (n < 20 || p[0] >> 4 != 4 || (p[0] & 15) < 5)
		return REF_MALFORMED; /* 4 */
	hlen = (size_t)(p[0] & 15) * 4;
	if (hlen > n || get16(p + 2) < hlen)
		return REF_MALFORMED; /* 4 */
	out->family = SN_FAMILY_V4;
	memcpy(out->src, p + 12, 4);
	return ref_l4(p[9], get16(p + 6) & 0x1fff, p + hlen, n - hlen, out);
}

static bool is_ext(uint8_t nh)
{
	return nh == PKT_IPPROTO_HOPOPTS || nh == PKT_IPPROTO_ROUTING ||
	       nh == PKT_IPPROTO_DSTOPTS || nh == PKT_IPPROTO_FRAGMENT ||
	       nh == PKT_IPPROTO_AH;
}

static enum ref_kind ref_v6(const uint8_t *p, size_t n, struct sn_packet *out)
{
	size_t off = 40;
	uint16_t frag = 0;
	uint8_t nh;

	if (n < 40 || p[0] >> 4 != 6)
		return REF_MALFORMED; /* 7 */
	if (in_v4_mapped(p + 8))
		return REF_MALFORMED; /* 8 */
	out->family = SN_FAMILY_V6;
	memcpy(out->src, p + 8, 16);
	nh = p[6];
	for (int i = 0; i < 8 && is_ext(nh) && !frag; i++) { /* 9 */
		size_t len;

		if (off + 8 > n)
			return REF_MALFORMED;
		if (nh == PKT_IPPROTO_FRAGMENT) {
			len = 8;
			frag = get16(p + off + 2) >> 3; /* 10 */
		} else if (nh == PKT_IPPROTO_AH) {
			len = ((size_t)p[off + 1] + 2) * 4;
		} else {
			len = ((size_t)p[off + 1] + 1) * 8;
		}
		if (off + len > n)
			return REF_MALFORMED;
		nh = p[off];
		off += len;
	}
	if (!frag && is_ext(nh))
		return REF_MALFORMED; /* a 9th extension header */
	return ref_l4(nh, frag, p + off, n - off, out);
}

static enum ref_kind ref_parse(const uint8_t *f, size_t n,
			       struct sn_packet *out)
{
	size_t off = 14;
	uint16_t type;

	memset(out, 0, sizeof(*out));
	if (n < 14)
		return REF_MALFORMED; /* 1 */
	type = get16(f + 12);
	for (int tags = 0; type == PKT_TPID_8021Q || type == PKT_TPID_8021AD;
	     tags++) { /* 2 */
		if (tags == 2 || off + 4 > n)
			return REF_MALFORMED;
		type = get16(f + off + 2);
		off += 4;
	}
	if (type == 0x0800)
		return ref_v4(f + off, n - off, out);
	if (type == 0x86dd)
		return ref_v6(f + off, n - off, out);
	return REF_NON_IP; /* 3 */
}

/* ---- one loaded policy --------------------------------------------------- */

struct loaded {
	struct sn_ctx ctx;
	bool have_ctx;
	struct sn_policy *policy;
	struct sn_image *image;
};

struct expect {
	enum ref_kind kind;
	struct sn_packet facts;
	struct sn_eval_result img, pol;
	uint32_t action, rule;
	bool evaluators_agree;
};

static void expect_frame(const struct loaded *l, const uint8_t *f, size_t n,
			 struct expect *e)
{
	memset(e, 0, sizeof(*e));
	e->kind = ref_parse(f, n, &e->facts);
	e->evaluators_agree = true;
	switch (e->kind) {
	case REF_NON_IP:
		e->action = XDP_PASS;
		e->rule = SN_RULE_NON_IP;
		break;
	case REF_MALFORMED:
		e->action = XDP_DROP;
		e->rule = SN_RULE_MALFORMED;
		break;
	case REF_IP:
		sn_eval_image(l->image, &e->facts, &e->img);
		sn_eval_policy(l->policy, &e->facts, &e->pol);
		e->evaluators_agree = e->img.verdict == e->pol.verdict &&
				      e->img.rule_id == e->pol.rule_id;
		e->action = e->pol.verdict == SN_VERDICT_ALLOW ? XDP_PASS : XDP_DROP;
		e->rule = e->pol.rule_id;
		break;
	}
}

static const char *action_name(uint32_t a)
{
	switch (a) {
	case XDP_ABORTED:
		return "ABORTED";
	case XDP_DROP:
		return "DROP";
	case XDP_PASS:
		return "PASS";
	default:
		return "?";
	}
}

static const char *verdict_name(uint8_t v)
{
	return v == SN_VERDICT_ALLOW ? "allow" : v == SN_VERDICT_BLOCK ? "block" : "?";
}

/* Compile text; 0, or -EINVAL with conflict set when the only errors are
 * E010 conflicts (a legitimate rejection), other negative: a bad policy. */
static int compile(struct loaded *l, const char *text, bool *conflict)
{
	int rc;

	memset(l, 0, sizeof(*l));
	sn_ctx_init(&l->ctx);
	l->have_ctx = true;
	*conflict = false;
	rc = sn_compile_text(&l->ctx, "random.sentry", text, strlen(text),
			     &l->policy, &l->image);
	if (rc == -EINVAL) {
		size_t e010 = 0;

		for (size_t i = 0; i < l->ctx.diags.n; i++)
			if (l->ctx.diags.v[i].severity == SN_SEV_ERROR &&
			    !strcmp(l->ctx.diags.v[i].code, "E010"))
				e010++;
		*conflict = e010 && e010 == l->ctx.diags.n_errors;
	}
	return rc;
}

static void release(struct loaded *l)
{
	if (l->have_ctx)
		sn_ctx_free(&l->ctx);
	l->have_ctx = false;
}

/* Run one frame; 0 and *action, or a negative errno. */
static int run(int prog_fd, const uint8_t *f, size_t n, uint32_t *action)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f,
		    .data_size_in = (uint32_t)n, .repeat = 1);
	int rc = bpf_prog_test_run_opts(prog_fd, &opts);

	*action = opts.retval;
	return rc < 0 ? -errno : 0;
}

/* Run one frame and find the one counter that moved: rule, or -1. */
static int run_counted(struct sn_dataplane *dp, uint32_t n_rules,
		       const uint8_t *f, size_t n, uint32_t *action,
		       int64_t *rule)
{
	struct sn_counter *b = calloc(n_rules, sizeof(*b));
	struct sn_counter *a = calloc(n_rules, sizeof(*a));
	int rc = b && a ? 0 : -ENOMEM, moved = 0;

	*rule = -1;
	if (!rc)
		rc = sn_dp_read_counters(dp, b, n_rules);
	if (!rc)
		rc = run(sn_dp_prog_fd(dp), f, n, action);
	if (!rc)
		rc = sn_dp_read_counters(dp, a, n_rules);
	for (uint32_t id = 0; !rc && id < n_rules; id++) {
		if (a[id].packets == b[id].packets && a[id].bytes == b[id].bytes)
			continue;
		moved++;
		*rule = a[id].packets - b[id].packets == 1 &&
				a[id].bytes - b[id].bytes == n ?
			(int64_t)id :
			-1;
	}
	if (moved != 1)
		*rule = -1;
	free(b);
	free(a);
	return rc;
}

/* ---- reporting and shrinking ---------------------------------------------- */

struct opts {
	unsigned policies, packets, seconds;
	uint64_t seed;
	int only; /* -1: all */
	bool verbose;
};

/*
 * Does the frame still mismatch under this subset of the policy lines,
 * loaded fresh?  (Rules are renumbered by removal; the evaluators say what
 * the rule now is.)
 */
static bool still_mismatches(const struct policy_gen *g,
			     const struct keep *keep, const uint8_t *f, size_t n)
{
	char *text = policy_text(g, keep), err[256];
	struct sn_dataplane *dp = NULL;
	struct loaded l;
	struct expect e;
	uint32_t action = 0;
	int64_t rule = -1;
	bool conflict, bad = false;

	if (!text)
		return false;
	if (compile(&l, text, &conflict) == 0 &&
	    sn_dp_load(l.image, &dp, err, sizeof(err)) == 0 &&
	    sn_dp_apply(dp, l.image, err, sizeof(err)) == 0 &&
	    run_counted(dp, l.image->n_rules, f, n, &action, &rule) == 0) {
		expect_frame(&l, f, n, &e);
		bad = !e.evaluators_agree || action != e.action ||
		      rule != (int64_t)e.rule;
	}
	sn_dp_close(dp);
	release(&l);
	free(text);
	return bad;
}

static void describe_facts(FILE *o, const struct expect *e)
{
	char a[INET6_ADDRSTRLEN];

	switch (e->kind) {
	case REF_NON_IP:
		fprintf(o, "non-IP frame");
		return;
	case REF_MALFORMED:
		fprintf(o, "malformed frame");
		return;
	case REF_IP:
		addr_str(e->facts.family, e->facts.src, a, sizeof(a));
		fprintf(o, "IPv%u from %s proto %u", e->facts.family, a,
			e->facts.proto);
		if (e->facts.has_port)
			fprintf(o, " dport %u", e->facts.dport);
		else
			fprintf(o, " (no port)");
		return;
	}
}

/*
 * Print a minimal reproducer: the policy shrunk line by line while the
 * mismatch persists on a fresh load (when it does not reproduce fresh, the
 * previous policy applied in place matters, and both are printed whole).
 */
static void report(const struct opts *o, unsigned index,
		   const struct policy_gen *g, const char *prev_text,
		   const uint8_t *f, size_t n, bool ran, uint32_t action,
		   int64_t rule, const char *why)
{
	struct keep keep;
	char *text;
	struct loaded l = { 0 };
	struct expect e;
	bool conflict, fresh;

	keep_all(g, &keep);
	fresh = still_mismatches(g, &keep, f, n);
	if (fresh) {
		for (int i = (int)g->n_lines - 1; i >= 0; i--) {
			keep.line[i] = false;
			if (!still_mismatches(g, &keep, f, n))
				keep.line[i] = true;
		}
		/* The big set: halve it while the mismatch stays. */
		while (keep.bulk_hi - keep.bulk_lo > 1) {
			unsigned lo = keep.bulk_lo, hi = keep.bulk_hi;
			unsigned mid = lo + (hi - lo) / 2;

			keep.bulk_hi = mid;
			if (still_mismatches(g, &keep, f, n))
				continue;
			keep.bulk_lo = mid;
			keep.bulk_hi = hi;
			if (still_mismatches(g, &keep, f, n))
				continue;
			keep.bulk_lo = lo;
			break;
		}
	}
	text = policy_text(g, &keep);
	fprintf(stderr, "\nMISMATCH (%s), policy %u of seed %llu\n", why, index,
		(unsigned long long)o->seed);
	if (!fresh && prev_text)
		fprintf(stderr,
			"--- does not reproduce on a fresh load: applied in "
			"place over this previous policy ---\n%s",
			prev_text);
	fprintf(stderr, "--- policy%s ---\n%s", fresh ? " (shrunk)" : "",
		!text ? "(out of memory)\n" : *text ? text : "(empty)\n");
	fprintf(stderr, "--- frame, %zu bytes ---\n", n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%02x", f[i]);
	fputc('\n', stderr);
	if (text && compile(&l, text, &conflict) == 0) {
		expect_frame(&l, f, n, &e);
		fprintf(stderr, "reference parse: ");
		describe_facts(stderr, &e);
		fputc('\n', stderr);
		if (e.kind == REF_IP)
			fprintf(stderr,
				"sn_eval_image: %s rule %u; sn_eval_policy: %s "
				"rule %u\n",
				verdict_name(e.img.verdict), e.img.rule_id,
				verdict_name(e.pol.verdict), e.pol.rule_id);
		else
			fprintf(stderr, "expected: %s rule %u\n",
				action_name(e.action), e.rule);
	}
	release(&l);
	if (ran)
		fprintf(stderr, "kernel (full policy): %s rule %lld\n",
			action_name(action), (long long)rule);
	fprintf(stderr, "replay: test_differential --seed %llu --only %u --packets %u\n",
		(unsigned long long)o->seed, index, o->packets);
	free(text);
}

/* ---- the run ------------------------------------------------------------------ */

struct stats {
	unsigned policies, conflicts, attempts, fresh_loads, in_place;
	unsigned big, big_max; /* policies with a big set, its largest size */
	unsigned long frames, ip, allow, block, non_ip, malformed, mismatches;
	unsigned long vlan, frag, ext, mapped, cut;
};

struct batch {
	uint8_t frames[BATCH][PKT_MAX];
	size_t len[BATCH];
	struct expect exp[BATCH];
	unsigned n;
};

/*
 * Compare the counters after a batch with the sum of what each frame
 * should have counted; on a difference replay the batch frame by frame.
 * Returns false after reporting a mismatch.
 */
static bool check_batch(const struct opts *o, unsigned index,
			const struct policy_gen *g, const char *prev_text,
			struct sn_dataplane *dp, const struct loaded *l,
			struct batch *b, struct sn_counter *before,
			struct sn_counter *after, struct stats *st)
{
	uint32_t n_rules = l->image->n_rules;
	bool same = true;

	for (unsigned i = 0; i < b->n; i++) {
		uint32_t r = b->exp[i].rule;

		if (r < n_rules) {
			before[r].packets += 1;
			before[r].bytes += b->len[i];
		}
	}
	if (sn_dp_read_counters(dp, after, n_rules)) {
		fprintf(stderr, "reading counters failed\n");
		st->mismatches++;
		return false;
	}
	for (uint32_t id = 0; id < n_rules; id++)
		same &= before[id].packets == after[id].packets &&
			before[id].bytes == after[id].bytes;
	memcpy(before, after, n_rules * sizeof(*after));
	if (same)
		return true;
	for (unsigned i = 0; i < b->n; i++) {
		uint32_t action = 0;
		int64_t rule = -1;

		if (run_counted(dp, n_rules, b->frames[i], b->len[i], &action,
				&rule))
			continue;
		if (rule != (int64_t)b->exp[i].rule) {
			st->mismatches++;
			report(o, index, g, prev_text, b->frames[i], b->len[i],
			       true, action, rule, "counted at another rule");
			return false;
		}
	}
	st->mismatches++;
	fprintf(stderr,
		"MISMATCH policy %u of seed %llu: the counters of a batch "
		"differ, but no single frame replayed does\n",
		index, (unsigned long long)o->seed);
	return false;
}

/* Frames for one loaded policy; false after a reported mismatch. */
static bool run_frames(const struct opts *o, unsigned index, struct rng *r,
		       const struct policy_gen *g, const char *prev_text,
		       struct sn_dataplane *dp, const struct loaded *l,
		       struct stats *st)
{
	uint32_t n_rules = l->image->n_rules;
	struct sn_counter *before = calloc(n_rules, sizeof(*before));
	struct sn_counter *after = calloc(n_rules, sizeof(*after));
	struct batch *b = malloc(sizeof(*b));
	bool ok = before && after && b;
	int prog_fd = sn_dp_prog_fd(dp);

	if (!ok)
		fprintf(stderr, "out of memory\n");
	if (ok && sn_dp_read_counters(dp, before, n_rules)) {
		fprintf(stderr, "reading counters failed\n");
		ok = false;
	}
	if (b)
		b->n = 0;
	for (unsigned k = 0; ok && k < o->packets; k++) {
		char src[INET6_ADDRSTRLEN];
		struct pkt_spec s;
		struct sn_packet built;
		uint8_t *f = b->frames[b->n];
		struct expect *e = &b->exp[b->n];
		uint32_t action = 0;
		size_t n;
		bool clean;

		gen_packet(r, g, &s, src, sizeof(src));
		n = pkt_build(&s, f, &built);
		/* Overrides, and an IPv6 "protocol" that is an extension
		 * header type, make frames the builder's facts do not describe. */
		clean = !s.version && !s.ihl_override && !s.tot_len &&
			!(s.src && strchr(s.src, ':') && is_ext(s.proto)) &&
			!(s.frag && memchr(s.ext, PKT_IPPROTO_FRAGMENT, s.n_ext));
		if (chance(r, 6)) { /* cut anywhere past the Ethernet header */
			n = 14 + below(r, (uint32_t)(n - 14));
			clean = false;
			st->cut++;
		}
		if (chance(r, 3)) { /* flip bytes in the headers */
			for (unsigned m = 1 + below(r, 3); m; m--)
				f[12 + below(r, (uint32_t)(n - 12))] ^=
					(uint8_t)(1 + below(r, 255));
			clean = false;
		}
		expect_frame(l, f, n, e);
		/* The reference parser must read what the builder wrote. */
		if (clean && e->kind == REF_IP &&
		    (e->facts.family != built.family ||
		     memcmp(e->facts.src, built.src, 16) ||
		     e->facts.proto != built.proto ||
		     (built.has_port && (e->facts.has_port != built.has_port ||
					 e->facts.dport != built.dport)))) {
			fprintf(stderr, "test bug: reference parse differs from "
					"the frame builder\n");
			st->mismatches++;
			report(o, index, g, prev_text, f, n, false, 0, -1,
			       "reference parser vs builder");
			ok = false;
			break;
		}
		st->frames++;
		st->vlan += s.tpids[0] != 0;
		st->frag += s.frag || s.more_frags || s.v6_frag_hdr;
		st->ext += s.n_ext != 0;
		st->mapped += e->kind == REF_MALFORMED && s.src &&
			      strchr(s.src, '.') && strchr(s.src, ':');
		switch (e->kind) {
		case REF_IP:
			st->ip++;
			st->allow += e->action == XDP_PASS;
			st->block += e->action == XDP_DROP;
			break;
		case REF_NON_IP:
			st->non_ip++;
			break;
		case REF_MALFORMED:
			st->malformed++;
			break;
		}
		if (!e->evaluators_agree) {
			st->mismatches++;
			report(o, index, g, prev_text, f, n, false, 0, -1,
			       "sn_eval_image and sn_eval_policy disagree");
			ok = false;
			break;
		}
		if (run(prog_fd, f, n, &action)) {
			fprintf(stderr, "BPF_PROG_TEST_RUN failed: %s\n",
				strerror(errno));
			st->mismatches++;
			ok = false;
			break;
		}
		if (action != e->action) {
			uint32_t a2 = 0;
			int64_t rule = -1;

			run_counted(dp, n_rules, f, n, &a2, &rule);
			st->mismatches++;
			report(o, index, g, prev_text, f, n, true, action, rule,
			       "verdict");
			ok = false;
			break;
		}
		b->len[b->n++] = n;
		if (b->n == BATCH || k + 1 == o->packets) {
			ok = check_batch(o, index, g, prev_text, dp, l, b,
					 before, after, st);
			b->n = 0;
		}
	}
	free(before);
	free(after);
	free(b);
	return ok;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned env_uint(const char *name, unsigned def)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 0) : def;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *seed = getenv("SN_DIFF_SEED");

	o->policies = env_uint("SN_DIFF_POLICIES", 50);
	o->packets = env_uint("SN_DIFF_PACKETS", 4000);
	o->seconds = env_uint("SN_DIFF_SECONDS", 25);
	o->seed = seed && *seed ? strtoull(seed, NULL, 0) : 47;
	o->only = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--verbose")) {
			o->verbose = true;
			continue;
		}
		if (!v)
			goto usage;
		i++;
		if (!strcmp(a, "--policies"))
			o->policies = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--packets"))
			o->packets = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--seconds"))
			o->seconds = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--seed"))
			o->seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--only"))
			o->only = (int)strtol(v, NULL, 0);
		else
			goto usage;
	}
	if (o->packets == 0)
		o->packets = 1;
	return 0;
usage:
	fprintf(stderr,
		"usage: %s [--policies N] [--packets N] [--seed S] [--seconds T] "
		"[--only I] [--verbose]\n",
		argv[0]);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct stats st = { 0 };
	struct sn_dataplane *dp = NULL;
	struct loaded cur = { 0 }, prev = { 0 };
	char *prev_text = NULL, err[512];
	struct sn_constants dp_consts = { 0 };
	double t0 = now_s();
	bool timed_out = false;
	int rc = 0;

	if (parse_args(argc, argv, &o))
		return 2;
	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF)\n");
		return SKIP;
	}
	/* Policy indexes are attempts, so --only replays one exactly. */
	for (unsigned i = o.only >= 0 ? (unsigned)o.only : 0;
	     st.policies < o.policies && st.attempts < 4 * o.policies + 8;
	     i++) {
		struct policy_gen *g = malloc(sizeof(*g));
		struct rng r;
		char *text;
		bool conflict;

		if (!g) {
			rc = 1;
			break;
		}
		if (now_s() - t0 > o.seconds) {
			timed_out = true;
			free(g);
			break;
		}
		rng_for(&r, o.seed, i);
		gen_policy(&r, g);
		text = policy_text(g, NULL);
		st.attempts++;
		if (!text || compile(&cur, text, &conflict)) {
			if (text && conflict) {
				st.conflicts++;
			} else {
				fprintf(stderr,
					"generated policy %u was rejected (a "
					"generator bug):\n%s",
					i, text ? text : "(out of memory)\n");
				sn_diags_render_text(stderr, &cur.ctx.diags,
						     &cur.ctx.sources);
				rc = 1;
			}
			release(&cur);
			free(text);
			gen_free(g);
			if (rc || o.only >= 0)
				break;
			continue;
		}
		if (o.verbose)
			printf("policy %u:\n%s", i, text);

		/* In place over the previous policy when the constants allow. */
		int arc = -ESTALE;

		if (dp && !memcmp(&dp_consts, &cur.image->constants,
				  sizeof(dp_consts)))
			arc = sn_dp_apply(dp, cur.image, err, sizeof(err));
		if (arc == 0) {
			st.in_place++;
		} else {
			sn_dp_close(dp);
			dp = NULL;
			arc = sn_dp_load(cur.image, &dp, err, sizeof(err));
			if (arc == -EPERM) {
				printf("SKIP: cannot load BPF programs: %s\n", err);
				rc = SKIP;
			} else if (arc) {
				fprintf(stderr, "policy %u: sn_dp_load: %d %s\n%s",
					i, arc, err, text);
				rc = 1;
			} else {
				arc = sn_dp_apply(dp, cur.image, err, sizeof(err));
				if (arc) {
					fprintf(stderr,
						"policy %u: sn_dp_apply: %d %s\n%s",
						i, arc, err, text);
					rc = 1;
				}
			}
			dp_consts = cur.image->constants;
			st.fresh_loads++;
		}
		if (!rc) {
			st.policies++;
			st.big += g->n_bulk > 0;
			if (g->n_bulk > st.big_max)
				st.big_max = g->n_bulk;
			if (!run_frames(&o, i, &r, g, prev_text, dp, &cur, &st))
				rc = 1;
		}
		release(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		free(prev_text);
		prev_text = text;
		gen_free(g);
		if (rc || o.only >= 0 || st.mismatches >= MAX_REPORTS)
			break;
	}
	sn_dp_close(dp);
	release(&prev);
	free(prev_text);
	if (rc == SKIP)
		return SKIP;

	printf("differential: seed %llu, %u policies (%u with a big set of up "
	       "to %u prefixes; %u fresh loads, %u applied in place), %u "
	       "rejected for conflicts (E010); %lu "
	       "frames: %lu judged by the policy (%lu allow, %lu block), %lu "
	       "malformed, %lu non-IP; classes: %lu VLAN, %lu fragment, %lu "
	       "IPv6 extension chain, %lu v4-mapped, %lu cut; %lu mismatches; "
	       "%.1f s%s\n",
	       (unsigned long long)o.seed, st.policies, st.big, st.big_max,
	       st.fresh_loads,
	       st.in_place, st.conflicts, st.frames, st.ip, st.allow, st.block,
	       st.malformed, st.non_ip, st.vlan, st.frag, st.ext, st.mapped,
	       st.cut, st.mismatches, now_s() - t0,
	       timed_out ? " (time limit reached)" : "");
	if (!rc && st.policies == 0) {
		fprintf(stderr, "no policy was tested\n");
		rc = 1;
	}
	if (!rc && o.only < 0 && !timed_out && st.policies < o.policies) {
		fprintf(stderr, "too many conflicting policies: %u of %u\n",
			st.conflicts, st.attempts);
		rc = 1;
	}
	return rc || st.mismatches ? 1 : 0;
}

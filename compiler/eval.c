/*
 * The two reference evaluators (see eval.h for why there are two).
 */
#include "eval.h"

#include <string.h>

#include "addr.h"
#include "srcmap.h"

/* ---- the compiled image, walked as the XDP program walks it ------------- */

static int pfx_cmp(const struct sn_prefix *a, const uint8_t *addr, int len)
{
	int c = memcmp(a->addr, addr, 16);

	return c ? c : (int)a->len - len;
}

/*
 * Longest-prefix match over the sorted prefix array: one binary search per
 * candidate length, longest first (the kernel's LPM trie returns the same).
 */
static const struct sn_class_prefix *
lpm(const struct sn_class_prefix *v, size_t n, const uint8_t *addr, int maxlen)
{
	for (int len = maxlen; len >= 0; len--) {
		uint8_t key[16] = { 0 };
		unsigned full = (unsigned)len / 8, rest = (unsigned)len % 8;

		memcpy(key, addr, full);
		if (rest)
			key[full] = addr[full] & (uint8_t)(0xff << (8 - rest));
		size_t lo = 0, hi = n;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = pfx_cmp(&v[mid].prefix, key, len);

			if (c == 0)
				return &v[mid];
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return NULL;
}

static uint32_t l4_class_of(const struct sn_image *img,
			    const struct sn_packet *pkt)
{
	const struct sn_proto_entry *pe = &img->proto[pkt->proto];

	if (pe->port_table == SN_PORT_TABLE_NONE || !pkt->has_port)
		return pe->l4_noport;
	size_t lo = 0, hi = img->n_port_runs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct sn_port_run *r = &img->port_runs[mid];

		if (r->table < pe->port_table ||
		    (r->table == pe->port_table && r->hi < pkt->dport))
			lo = mid + 1;
		else if (r->table > pe->port_table || r->lo > pkt->dport)
			hi = mid;
		else
			return r->l4_class;
	}
	return pe->l4_noport; /* runs cover each table: unreachable */
}

void sn_eval_image(const struct sn_image *img, const struct sn_packet *pkt,
		   struct sn_eval_result *out)
{
	const bool v4 = pkt->family == SN_FAMILY_V4;
	uint8_t addr[16] = { 0 };

	memcpy(addr, pkt->src, v4 ? 4 : 16);
	/* The structure the program reads: range trie or LPM trie (4). */
	const struct sn_srcmap *m = v4 ? &img->src_v4 : &img->src_v6;
	int64_t cls = -1;

	if (sn_srcmap_kind_of(m) == SN_SRCMAP_RANGE) {
		cls = sn_srcmap_lookup(m, pkt->family, addr);
	} else {
		const struct sn_class_prefix *hit =
			v4 ? lpm(img->v4, img->n_v4, addr, 32)
			   : lpm(img->v6, img->n_v6, addr, 128);

		if (hit)
			cls = hit->class_id;
	}
	/* The image always holds both /0 roots; a miss is a corrupt image. */
	if (cls < 0) {
		*out = (struct sn_eval_result){ .verdict = SN_VERDICT_BLOCK,
						.rule_id = SN_RULE_MALFORMED };
		return;
	}
	uint32_t l4 = l4_class_of(img, pkt);
	const struct sn_decision *d =
		&img->decisions[(size_t)cls * img->constants.l4_stride + l4];

	*out = (struct sn_eval_result){ d->verdict, d->rule_id,
					d->verdict == SN_VERDICT_ALLOW ? d->limit
								       : 0 };
}

/* ---- the policy's semantics, applied directly ---------------------------- */

/* How specifically an L4 part matches the packet; -1: not at all. */
static int l4_match(int proto, const struct sn_port_range *ports,
		    size_t n_ports, const struct sn_packet *pkt)
{
	if (proto == SN_PROTO_ANY)
		return 0;
	if (proto != pkt->proto)
		return -1;
	if (n_ports == 0)
		return 1;
	if (!pkt->has_port)
		return -1;

	int best = -1;

	for (size_t i = 0; i < n_ports; i++)
		if (pkt->dport >= ports[i].lo && pkt->dport <= ports[i].hi) {
			int s = ports[i].lo == ports[i].hi ? 3 : 2;

			best = s > best ? s : best;
		}
	return best;
}

/*
 * The limit rule for a packet (SPEC.md 2.4): the matching one with the
 * longest source prefix, then the most specific L4 match, then the
 * lowest id.  1 + its id, or 0.
 */
static uint32_t policy_limit(const struct sn_policy *p,
			     const struct sn_prefix *host,
			     const struct sn_packet *pkt)
{
	int best_len = -1, best_spec = -1;
	uint32_t best = 0;

	for (size_t i = 0; i < p->n_limits; i++) {
		const struct sn_limit *l = &p->limits[i];
		int spec = l4_match(l->proto, l->ports, l->n_ports, pkt);

		if (spec < 0)
			continue;
		for (size_t j = 0; j < l->n_srcs; j++) {
			const struct sn_prefix *s = &l->srcs[j].prefix;

			if (!sn_prefix_contains(s, host))
				continue;
			if (s->len > best_len ||
			    (s->len == best_len && spec > best_spec)) {
				best_len = s->len;
				best_spec = spec;
				best = l->id + 1;
			}
		}
	}
	return best;
}

void sn_eval_policy(const struct sn_policy *p, const struct sn_packet *pkt,
		    struct sn_eval_result *out)
{
	const bool v4 = pkt->family == SN_FAMILY_V4;
	const struct sn_default *def = v4 ? &p->default_v4 : &p->default_v6;
	/* Winner so far: (tier, prefix length, L4 specificity), then lowest id. */
	int best_tier = -1, best_len = -1, best_spec = -1;
	const struct sn_rule *best = NULL;

	struct sn_prefix host = { .family = pkt->family,
				  .len = v4 ? 32 : 128 };

	memcpy(host.addr, pkt->src, v4 ? 4 : 16);
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sn_rule *r = &p->rules[i];
		int spec = l4_match(r->proto, r->ports, r->n_ports, pkt);

		if (spec < 0)
			continue;
		for (size_t j = 0; j < r->n_srcs; j++) {
			const struct sn_prefix *s = &r->srcs[j].prefix;

			if (!sn_prefix_contains(s, &host))
				continue;
			if (r->tier > best_tier ||
			    (r->tier == best_tier &&
			     (s->len > best_len ||
			      (s->len == best_len && spec > best_spec)))) {
				best_tier = r->tier;
				best_len = s->len;
				best_spec = spec;
				best = r;
			}
		}
	}
	if (best)
		*out = (struct sn_eval_result){ best->verdict, best->id, 0 };
	else
		*out = (struct sn_eval_result){
			def->verdict,
			v4 ? SN_RULE_DEFAULT_V4 : SN_RULE_DEFAULT_V6, 0 };
	if (out->verdict == SN_VERDICT_ALLOW)
		out->limit = policy_limit(p, &host, pkt);
}

void sn_expect_packet(const struct sn_expect *e, struct sn_packet *pkt)
{
	*pkt = (struct sn_packet){ .family = e->addr.family };
	memcpy(pkt->src, e->addr.addr, 16);
	/* No protocol given: one no rule can name (255 is reserved). */
	pkt->proto = e->proto == SN_PROTO_ANY ? 255 : (uint8_t)e->proto;
	pkt->has_port = !e->fragment && e->port >= 0;
	pkt->dport = e->port >= 0 ? (uint16_t)e->port : 0;
}

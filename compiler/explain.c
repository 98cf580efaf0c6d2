/*
 * --explain (see explain.h).  This ranks rules with its own reading of
 * SPEC.md 2.1 so it can say which step of the key decided; the CLI checks
 * its winner against sn_eval_policy and sn_eval_image.
 */
#include "explain.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "jsonw.h"
#include "l4class.h"

/* ---- packet descriptions -------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

#define MAX_WORDS 8

/* Split on blanks; words point into buf.  -1 when there are too many. */
static int split(char *buf, char *words[MAX_WORDS])
{
	int n = 0;

	for (char *s = strtok(buf, " \t\n"); s; s = strtok(NULL, " \t\n")) {
		if (n == MAX_WORDS)
			return -1;
		words[n++] = s;
	}
	return n;
}

/* Decimal 0..max without sign or leading zeros; -1 otherwise. */
static long number(const char *s, long max)
{
	long v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

int sn_explain_parse(const char *text, struct sn_packet *pkt, char *err,
		     size_t errlen)
{
	char buf[256], *w[MAX_WORDS];
	struct sn_prefix addr;
	int n, i = 0, proto = -1;
	long port = -1;
	bool fragment = false;

	memset(pkt, 0, sizeof(*pkt));
	if (strlen(text) >= sizeof(buf))
		return fail(err, errlen, "packet description too long");
	strcpy(buf, text);
	n = split(buf, w);
	if (n < 0)
		return fail(err, errlen, "packet description has too many words");
	if (n < 2 || strcmp(w[0], "from"))
		return fail(err, errlen, "a packet is described as 'from ADDRESS "
			    "[to] [tcp|udp port N | tcp|udp fragment | icmp | "
			    "icmpv6 | proto N]'");
	if (sn_prefix_parse(w[1], strlen(w[1]), &addr) != SN_ADDR_OK ||
	    strchr(w[1], '/'))
		return fail(err, errlen, "'%s' is not an address (a packet comes "
			    "from one address, not a prefix)", w[1]);
	if (sn_prefix_is_v4mapped(&addr))
		return fail(err, errlen, "%s is IPv4-mapped IPv6: the data plane "
			    "drops it as malformed before any rule", w[1]);
	i = 2;
	if (i < n && !strcmp(w[i], "to"))
		i++;
	if (i < n) {
		const char *p = w[i++];

		if (!strcmp(p, "tcp"))
			proto = SN_PROTO_TCP;
		else if (!strcmp(p, "udp"))
			proto = SN_PROTO_UDP;
		else if (!strcmp(p, "icmp"))
			proto = SN_PROTO_ICMP;
		else if (!strcmp(p, "icmpv6"))
			proto = SN_PROTO_ICMPV6;
		else if (!strcmp(p, "proto")) {
			if (i >= n || (proto = (int)number(w[i], 255)) < 0)
				return fail(err, errlen, "'proto' needs a protocol "
					    "number 0-255");
			i++;
		} else if (!strcmp(p, "fragment")) {
			return fail(err, errlen, "a fragment of which protocol? "
				    "e.g. 'tcp fragment'");
		} else {
			return fail(err, errlen, "unknown protocol '%s' (tcp, udp, "
				    "icmp, icmpv6 or proto N)", p);
		}
	}
	while (i < n) {
		if (!strcmp(w[i], "port") && port < 0 && !fragment) {
			if (proto != SN_PROTO_TCP && proto != SN_PROTO_UDP)
				return fail(err, errlen, "only tcp and udp "
					    "packets have a port");
			if (i + 1 >= n || (port = number(w[i + 1], 65535)) < 0)
				return fail(err, errlen, "'port' needs a port "
					    "number 0-65535");
			i += 2;
		} else if (!strcmp(w[i], "fragment") && !fragment && port < 0 &&
			   proto >= 0) {
			fragment = true;
			i++;
		} else if (!strcmp(w[i], "fragment") && port >= 0) {
			return fail(err, errlen, "a non-first fragment carries no "
				    "port: give 'port N' or 'fragment'");
		} else {
			return fail(err, errlen, "unexpected '%s' in the packet "
				    "description", w[i]);
		}
	}
	if ((proto == SN_PROTO_TCP || proto == SN_PROTO_UDP) && port < 0 &&
	    !fragment)
		return fail(err, errlen, "a %s packet needs 'port N' (or "
			    "'fragment' for a non-first fragment)",
			    proto == SN_PROTO_TCP ? "tcp" : "udp");
	if (proto == SN_PROTO_ICMP && addr.family != SN_FAMILY_V4)
		return fail(err, errlen, "icmp is IPv4; an IPv6 packet uses "
			    "icmpv6");
	if (proto == SN_PROTO_ICMPV6 && addr.family != SN_FAMILY_V6)
		return fail(err, errlen, "icmpv6 is IPv6; an IPv4 packet uses "
			    "icmp");
	pkt->family = addr.family;
	memcpy(pkt->src, addr.addr, 16);
	/* No protocol given: one no rule can name, as in an expect line. */
	pkt->proto = proto < 0 ? 255 : (uint8_t)proto;
	pkt->has_port = port >= 0;
	pkt->dport = port >= 0 ? (uint16_t)port : 0;
	return 0;
}

static bool port_proto(uint8_t proto)
{
	return proto == SN_PROTO_TCP || proto == SN_PROTO_UDP;
}

void sn_packet_format(const struct sn_packet *pkt, char *buf, size_t n)
{
	struct sn_prefix a = { .family = pkt->family,
			       .len = pkt->family == SN_FAMILY_V4 ? 32 : 128 };
	char addr[SN_PREFIX_STRLEN], pb[16];

	memcpy(a.addr, pkt->src, 16);
	sn_prefix_format(&a, addr, sizeof(addr));
	*strchr(addr, '/') = '\0';
	if (pkt->proto == 255)
		snprintf(buf, n, "from %s", addr);
	else if (pkt->has_port)
		snprintf(buf, n, "from %s to %s port %u", addr,
			 sn_proto_name(pkt->proto, "any", pb, sizeof(pb)), pkt->dport);
	else if (port_proto(pkt->proto))
		snprintf(buf, n, "from %s to %s fragment", addr,
			 sn_proto_name(pkt->proto, "any", pb, sizeof(pb)));
	else
		snprintf(buf, n, "from %s to %s", addr,
			 sn_proto_name(pkt->proto, "any", pb, sizeof(pb)));
}

/* ---- ranking ---------------------------------------------------------------- */

/* L4 specificity of r for the packet (SPEC.md 2.1), and the range. */
static int l4_spec(const struct sn_rule *r, const struct sn_packet *pkt,
		   const struct sn_port_range **range)
{
	int best = SN_SPEC_NONE;

	*range = NULL;
	if (r->proto == SN_PROTO_ANY)
		return SN_SPEC_ANY;
	if (r->proto != pkt->proto)
		return SN_SPEC_NONE;
	if (r->n_ports == 0)
		return SN_SPEC_PROTO;
	if (!pkt->has_port)
		return SN_SPEC_NONE; /* port rules never match a fragment */
	for (size_t i = 0; i < r->n_ports; i++) {
		const struct sn_port_range *pr = &r->ports[i];
		int s = pr->lo == pr->hi ? SN_SPEC_PORT : SN_SPEC_RANGE;

		if (pkt->dport >= pr->lo && pkt->dport <= pr->hi && s > best) {
			best = s;
			*range = pr;
		}
	}
	return best;
}

/* Greater key first; equal keys by lower id (SPEC.md 2.1). */
static int cmp_match(const void *pa, const void *pb)
{
	const struct sn_explain_match *a = pa, *b = pb;

	if (a->rule->tier != b->rule->tier)
		return a->rule->tier > b->rule->tier ? -1 : 1;
	if (a->src->prefix.len != b->src->prefix.len)
		return a->src->prefix.len > b->src->prefix.len ? -1 : 1;
	if (a->spec != b->spec)
		return a->spec > b->spec ? -1 : 1;
	return a->rule->id < b->rule->id ? -1 : a->rule->id > b->rule->id;
}

static const char *spec_name(int spec)
{
	switch (spec) {
	case SN_SPEC_PORT:
		return "port";
	case SN_SPEC_RANGE:
		return "port range";
	case SN_SPEC_PROTO:
		return "protocol";
	default:
		return "any protocol";
	}
}

/* Which step of the key puts w before m, in SPEC.md 2.1's words. */
static const char *reason(struct sn_arena *a, const struct sn_explain_match *w,
			  const struct sn_explain_match *m)
{
	if (w->rule->tier != m->rule->tier)
		return "always tier";
	if (w->src->prefix.len != m->src->prefix.len)
		return sn_arena_printf(a, "longer source prefix /%u > /%u",
				       w->src->prefix.len, m->src->prefix.len);
	if (w->spec != m->spec)
		return sn_arena_printf(a, "%s beats %s", spec_name(w->spec),
				       spec_name(m->spec));
	return "same key, earlier rule";
}

int sn_explain_run(const struct sn_policy *p, const struct sn_packet *pkt,
		   struct sn_arena *arena, struct sn_explain *out)
{
	const bool v4 = pkt->family == SN_FAMILY_V4;
	struct sn_prefix host = { .family = pkt->family, .len = v4 ? 32 : 128 };
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	out->pkt = *pkt;
	out->policy = p;
	out->def = v4 ? &p->default_v4 : &p->default_v6;
	memcpy(host.addr, pkt->src, 16);
	out->v = sn_arena_calloc(arena, p->n_rules ? p->n_rules : 1,
				 sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sn_rule *r = &p->rules[i];
		const struct sn_port_range *range;
		const struct sn_src *best = NULL;
		int spec = l4_spec(r, pkt, &range);

		if (spec == SN_SPEC_NONE)
			continue;
		for (size_t j = 0; j < r->n_srcs; j++)
			if (sn_prefix_contains(&r->srcs[j].prefix, &host) &&
			    (!best || r->srcs[j].prefix.len > best->prefix.len))
				best = &r->srcs[j];
		if (best)
			out->v[n++] = (struct sn_explain_match){
				.rule = r, .src = best, .spec = spec,
				.range = range };
	}
	qsort(out->v, n, sizeof(*out->v), cmp_match);
	for (size_t i = 1; i < n; i++)
		if (!(out->v[i].reason = reason(arena, &out->v[0], &out->v[i])))
			return -ENOMEM;
	out->n = n;
	if (n)
		out->result = (struct sn_eval_result){
			.verdict = out->v[0].rule->verdict,
			.rule_id = out->v[0].rule->id };
	else
		out->result = (struct sn_eval_result){
			.verdict = out->def->verdict,
			.rule_id = v4 ? SN_RULE_DEFAULT_V4 : SN_RULE_DEFAULT_V6 };
	/* Limits are a layer of their own (SPEC.md 2.4): take the one the
	 * semantics name for an allowed packet. */
	if (out->result.verdict == SN_VERDICT_ALLOW) {
		struct sn_eval_result ref;

		sn_eval_policy(p, pkt, &ref);
		out->result.limit = ref.limit;
	}
	return 0;
}

/* ---- output ------------------------------------------------------------------- */

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

/* "tcp port 22", "tcp port 1000-2000", "tcp", "any protocol". */
static void match_l4(const struct sn_explain_match *m, char *buf, size_t n)
{
	char pb[16];
	const char *p = sn_proto_name(m->rule->proto, "any", pb, sizeof(pb));

	if (m->spec == SN_SPEC_ANY)
		snprintf(buf, n, "any protocol");
	else if (!m->range)
		snprintf(buf, n, "%s", p);
	else if (m->range->lo == m->range->hi)
		snprintf(buf, n, "%s port %u", p, m->range->lo);
	else
		snprintf(buf, n, "%s port %u-%u", p, m->range->lo, m->range->hi);
}

static void print_match(FILE *out, const char *label,
			const struct sn_explain_match *m)
{
	char src[SN_PREFIX_STRLEN], l4[64];
	const struct sn_loc *sl = &m->src->loc;

	sn_prefix_format(&m->src->prefix, src, sizeof(src));
	match_l4(m, l4, sizeof(l4));
	fprintf(out, "%-8s #%u '%s' at %s:%u:%u\n", label, m->rule->id,
		m->rule->text, m->rule->loc.file, m->rule->loc.line,
		m->rule->loc.col);
	fprintf(out, "         matched source %s", src);
	/* A prefix from a set or a list file is worth locating too. */
	if (sl->file && (sl->line != m->rule->loc.line ||
			 strcmp(sl->file, m->rule->loc.file)))
		fprintf(out, " (%s:%u:%u)", sl->file, sl->line, sl->col);
	fprintf(out, ", %s\n", l4);
	if (m->reason)
		fprintf(out, "         beaten by the winner: %s\n", m->reason);
}

/* The rate limit an allowed packet is subject to (SPEC.md 2.4). */
static void print_limit(FILE *out, const struct sn_explain *x)
{
	if (!x->result.limit || !x->policy)
		return;
	const struct sn_limit *l = &x->policy->limits[x->result.limit - 1];

	fprintf(out, "limit    '%s' at %s:%u:%u\n", l->text, l->loc.file,
		l->loc.line, l->loc.col);
}

void sn_explain_print_text(FILE *out, const struct sn_explain *x)
{
	char pkt[128];
	const bool v4 = x->pkt.family == SN_FAMILY_V4;

	sn_packet_format(&x->pkt, pkt, sizeof(pkt));
	fprintf(out, "packet   %s (%s)\n", pkt, v4 ? "IPv4" : "IPv6");
	fprintf(out, "verdict  %s\n", verdict_word(x->result.verdict));
	if (x->n == 0) {
		fprintf(out, "default  no rule matches: default %s %s",
			v4 ? "ipv4" : "ipv6", verdict_word(x->def->verdict));
		if (x->def->written)
			fprintf(out, " at %s:%u:%u\n", x->def->loc.file,
				x->def->loc.line, x->def->loc.col);
		else
			fputs(" (not written: a family defaults to allow)\n", out);
		print_limit(out, x);
		return;
	}
	print_match(out, "winner", &x->v[0]);
	for (size_t i = 1; i < x->n; i++)
		print_match(out, "beats", &x->v[i]);
	print_limit(out, x);
}

static void json_match(FILE *out, const struct sn_explain_match *m)
{
	char src[SN_PREFIX_STRLEN], l4[64];

	sn_prefix_format(&m->src->prefix, src, sizeof(src));
	match_l4(m, l4, sizeof(l4));
	fprintf(out, "{\"id\":%u,\"verdict\":\"%s\",\"tier\":\"%s\",\"text\":",
		m->rule->id, verdict_word(m->rule->verdict),
		m->rule->tier == SN_TIER_ALWAYS ? "always" : "normal");
	sn_json_str(out, m->rule->text);
	fputs(",\"file\":", out);
	sn_json_str(out, m->rule->loc.file);
	fprintf(out, ",\"line\":%u,\"column\":%u,\"source\":\"%s\"",
		m->rule->loc.line, m->rule->loc.col, src);
	fputs(",\"source_file\":", out);
	sn_json_str(out, m->src->loc.file);
	fprintf(out, ",\"source_line\":%u,\"source_column\":%u,\"match\":\"%s\"",
		m->src->loc.line, m->src->loc.col, l4);
	fprintf(out, ",\"specificity\":\"%s\",\"reason\":", spec_name(m->spec));
	sn_json_str(out, m->reason);
	fputc('}', out);
}

void sn_explain_print_json(FILE *out, const struct sn_explain *x)
{
	char pkt[128], addr[SN_PREFIX_STRLEN];
	const bool v4 = x->pkt.family == SN_FAMILY_V4;
	struct sn_prefix a = { .family = x->pkt.family, .len = v4 ? 32 : 128 };

	memcpy(a.addr, x->pkt.src, 16);
	sn_prefix_format(&a, addr, sizeof(addr));
	*strchr(addr, '/') = '\0';
	sn_packet_format(&x->pkt, pkt, sizeof(pkt));
	fputs("{\"version\":1,\"packet\":{\"text\":", out);
	sn_json_str(out, pkt);
	fprintf(out, ",\"family\":\"%s\",\"source\":\"%s\",\"protocol\":",
		v4 ? "ipv4" : "ipv6", addr);
	if (x->pkt.proto == 255)
		fputs("null", out);
	else
		fprintf(out, "%u", x->pkt.proto);
	if (x->pkt.has_port)
		fprintf(out, ",\"port\":%u", x->pkt.dport);
	else
		fputs(",\"port\":null", out);
	fprintf(out, ",\"fragment\":%s},\n\"verdict\":\"%s\",\"rule_id\":%u,",
		!x->pkt.has_port && port_proto(x->pkt.proto) ? "true" : "false",
		verdict_word(x->result.verdict), x->result.rule_id);
	if (x->n == 0) {
		fprintf(out, "\n\"default\":{\"family\":\"%s\",\"verdict\":\"%s\","
			     "\"written\":%s,\"file\":",
			v4 ? "ipv4" : "ipv6", verdict_word(x->def->verdict),
			x->def->written ? "true" : "false");
		sn_json_str(out, x->def->written ? x->def->loc.file : NULL);
		fprintf(out, ",\"line\":%u,\"column\":%u},\n\"winner\":null",
			x->def->written ? x->def->loc.line : 0,
			x->def->written ? x->def->loc.col : 0);
	} else {
		fputs("\n\"default\":null,\n\"winner\":", out);
		json_match(out, &x->v[0]);
	}
	fputs(",\n\"beaten\":[", out);
	for (size_t i = 1; i < x->n; i++) {
		fputs(i > 1 ? ",\n  " : "\n  ", out);
		json_match(out, &x->v[i]);
	}
	fputs(x->n > 1 ? "\n]" : "]", out);
	fputs(",\n\"limit\":", out);
	if (x->result.limit && x->policy) {
		const struct sn_limit *l = &x->policy->limits[x->result.limit - 1];

		fputs("{\"text\":", out);
		sn_json_str(out, l->text);
		fputs(",\"file\":", out);
		sn_json_str(out, l->loc.file);
		fprintf(out, ",\"line\":%u,\"column\":%u}", l->loc.line,
			l->loc.col);
	} else {
		fputs("null", out);
	}
	fputs("}\n", out);
}

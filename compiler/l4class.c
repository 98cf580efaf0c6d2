/*
 * L4 classes: the partition of (protocol, destination port) space that the
 * policy can tell apart.
 *
 * Every boundary any rule draws (a protocol it names, the ends of a port
 * range) cuts the space; the pieces are the L4 classes.  Two packets in the
 * same class are matched by exactly the same rules, so the decision table
 * needs one column per class and the data plane finds the column with two
 * array lookups (sn_proto, then sn_ports) whatever the policy's size.
 */
#include "l4class.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int port_table_of(int proto)
{
	switch (proto) {
	case SN_PROTO_TCP:
		return SN_PORT_TABLE_TCP;
	case SN_PROTO_UDP:
		return SN_PORT_TABLE_UDP;
	default:
		return SN_PORT_TABLE_NONE;
	}
}

/*
 * Cut points of one port table: every lo and hi+1 of every range, plus 0.
 * Returns the number of distinct cuts written to cuts (sorted), or -ENOMEM.
 */
static long port_cuts(const struct sn_policy *p, int proto, uint32_t **out)
{
	size_t n = 1, cap = 1;

	for (size_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].proto == proto)
			cap += 2 * p->rules[i].n_ports;
	for (size_t i = 0; i < p->n_limits; i++)
		if (p->limits[i].proto == proto)
			cap += 2 * p->limits[i].n_ports;
	uint32_t *cuts = malloc(cap * sizeof(*cuts));

	if (!cuts)
		return -ENOMEM;
	cuts[0] = 0;
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sn_rule *r = &p->rules[i];

		if (r->proto != proto)
			continue;
		for (size_t j = 0; j < r->n_ports; j++) {
			cuts[n++] = r->ports[j].lo;
			cuts[n++] = (uint32_t)r->ports[j].hi + 1;
		}
	}
	for (size_t i = 0; i < p->n_limits; i++) {
		const struct sn_limit *l = &p->limits[i];

		if (l->proto != proto)
			continue;
		for (size_t j = 0; j < l->n_ports; j++) {
			cuts[n++] = l->ports[j].lo;
			cuts[n++] = (uint32_t)l->ports[j].hi + 1;
		}
	}
	qsort(cuts, n, sizeof(*cuts), cmp_u32);
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		if (cuts[i] > 65535)
			break; /* hi+1 == 65536 closes the last interval */
		if (m == 0 || cuts[m - 1] != cuts[i])
			cuts[m++] = cuts[i];
	}
	*out = cuts;
	return (long)m;
}

int sn_l4_build(const struct sn_policy *p, struct sn_arena *arena,
		struct sn_l4_plan *plan)
{
	bool named[256] = { false };
	bool has_ports[256] = { false };
	size_t n_classes = 1; /* class 0: protocols no rule names */

	memset(plan, 0, sizeof(*plan));
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sn_rule *r = &p->rules[i];

		if (r->proto == SN_PROTO_ANY)
			continue;
		named[r->proto] = true;
		if (r->n_ports && port_table_of(r->proto) != SN_PORT_TABLE_NONE)
			has_ports[r->proto] = true;
	}
	/* Limit rules draw boundaries too: which limit applies is a column
	 * of the decision row like the verdict (SPEC.md 2.4). */
	for (size_t i = 0; i < p->n_limits; i++) {
		const struct sn_limit *l = &p->limits[i];

		if (l->proto == SN_PROTO_ANY)
			continue;
		named[l->proto] = true;
		if (l->n_ports && port_table_of(l->proto) != SN_PORT_TABLE_NONE)
			has_ports[l->proto] = true;
	}

	/* Pass 1: count, so classes and runs are allocated once. */
	uint32_t *cuts[SN_PORT_TABLES + 1] = { NULL };
	long n_cuts[SN_PORT_TABLES + 1] = { 0 };
	int rc = 0;

	for (int proto = 0; proto < 256; proto++) {
		int t = port_table_of(proto);

		if (!named[proto])
			continue;
		n_classes++; /* the portless class (all of it when no ports) */
		if (has_ports[proto]) {
			n_cuts[t] = port_cuts(p, proto, &cuts[t]);
			if (n_cuts[t] < 0) {
				rc = (int)n_cuts[t];
				goto out;
			}
			n_classes += (size_t)n_cuts[t];
			plan->n_runs += (size_t)n_cuts[t];
		}
	}

	plan->classes = sn_arena_calloc(arena, n_classes, sizeof(*plan->classes));
	plan->runs = sn_arena_calloc(arena, plan->n_runs ? plan->n_runs : 1,
				     sizeof(*plan->runs));
	if (!plan->classes || !plan->runs) {
		rc = -ENOMEM;
		goto out;
	}

	/* Pass 2: classes in a fixed order (other, then by protocol number,
	 * portless before port intervals) so images are deterministic. */
	uint32_t c = 0;
	size_t run = 0;

	plan->classes[c++] = (struct sn_l4_class){ .proto = SN_PROTO_ANY };
	for (int proto = 0; proto < 256; proto++)
		plan->proto[proto] = (struct sn_proto_entry){ .l4_noport = 0 };
	for (int proto = 0; proto < 256; proto++) {
		int t = port_table_of(proto);

		if (!named[proto])
			continue;
		plan->proto[proto].l4_noport = c;
		plan->classes[c++] = (struct sn_l4_class){
			.proto = (int16_t)proto,
			.port_table = has_ports[proto] ? (uint8_t)t : 0,
			.noport = has_ports[proto],
		};
		if (!has_ports[proto])
			continue;
		plan->proto[proto].port_table = (uint32_t)t;
		plan->port_tables |= 1u << t;
		for (long k = 0; k < n_cuts[t]; k++) {
			uint32_t lo = cuts[t][k];
			uint32_t hi = k + 1 < n_cuts[t] ? cuts[t][k + 1] - 1 : 65535;

			plan->classes[c] = (struct sn_l4_class){
				.proto = (int16_t)proto,
				.port_table = (uint8_t)t,
				.lo = (uint16_t)lo,
				.hi = (uint16_t)hi,
			};
			plan->runs[run++] = (struct sn_port_run){
				.table = (uint8_t)t,
				.lo = (uint16_t)lo,
				.hi = (uint16_t)hi,
				.l4_class = c,
			};
			c++;
		}
	}
	plan->n_classes = c;
out:
	for (int t = 0; t <= SN_PORT_TABLES; t++)
		free(cuts[t]);
	return rc;
}

int sn_l4_rule_spec(const struct sn_rule *r, const struct sn_l4_class *c)
{
	return sn_l4_match_spec(r->proto, r->ports, r->n_ports, c);
}

int sn_l4_match_spec(int proto, const struct sn_port_range *ports,
		     size_t n_ports, const struct sn_l4_class *c)
{
	if (proto == SN_PROTO_ANY)
		return SN_SPEC_ANY;
	if (proto != c->proto)
		return SN_SPEC_NONE;
	if (n_ports == 0)
		return SN_SPEC_PROTO;
	/* Port rules never match a packet whose port is not visible. */
	if (c->port_table == SN_PORT_TABLE_NONE || c->noport)
		return SN_SPEC_NONE;

	int best = SN_SPEC_NONE;

	for (size_t i = 0; i < n_ports; i++) {
		const struct sn_port_range *pr = &ports[i];

		/* Classes refine every range: inside one means inside all of it. */
		if (c->lo >= pr->lo && c->hi <= pr->hi) {
			int s = pr->lo == pr->hi ? SN_SPEC_PORT : SN_SPEC_RANGE;

			if (s > best)
				best = s;
		}
	}
	return best;
}

const char *sn_proto_name(int proto, const char *any_word, char *buf, size_t n)
{
	switch (proto) {
	case SN_PROTO_ANY:
		return any_word;
	case SN_PROTO_TCP:
		return "tcp";
	case SN_PROTO_UDP:
		return "udp";
	case SN_PROTO_ICMP:
		return "icmp";
	case SN_PROTO_ICMPV6:
		return "icmpv6";
	}
	snprintf(buf, n, "proto %d", proto);
	return buf;
}

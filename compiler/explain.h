/*
 * `sentry-compile --explain`: why a packet gets its verdict.  Every rule
 * that matches the packet is ranked by the key of SPEC.md 2.1 (tier, source
 * prefix length, L4 specificity, then the lower id); the first one decides
 * and each other one is listed with the step of the key that beat it.
 */
#ifndef SN_EXPLAIN_H
#define SN_EXPLAIN_H

#include <stddef.h>
#include <stdio.h>

#include "eval.h"
#include "policy.h"

/*
 * Parse a packet description:
 *   from ADDR [to] [ tcp|udp (port N | fragment) | icmp | icmpv6 | proto N ]
 *        [fragment]
 * No protocol means one no rule can name (255), as in an expect line.
 * 0, or -EINVAL with a one-line reason in err.
 */
int sn_explain_parse(const char *text, struct sn_packet *pkt, char *err,
		     size_t errlen);
/* Canonical text of a packet ("from 203.0.113.9 to tcp port 22"). */
void sn_packet_format(const struct sn_packet *pkt, char *buf, size_t n);

/* One matching rule and why it ranks where it does. */
struct sn_explain_match {
	const struct sn_rule *rule;
	const struct sn_src *src; /* the longest of its prefixes that matched */
	int spec;                 /* enum sn_l4_spec of the match */
	const struct sn_port_range *range; /* the range that matched, or NULL */
	const char *reason;       /* why the winner beats it; NULL for it */
};

struct sn_explain {
	struct sn_packet pkt;
	const struct sn_policy *policy;
	struct sn_eval_result result;   /* verdict, deciding rule id, limit */
	const struct sn_default *def;   /* the family's default */
	struct sn_explain_match *v;     /* v[0] decides, unless n == 0 */
	size_t n;
};

/* Rank the matching rules (allocated in arena).  0 or -ENOMEM. */
int sn_explain_run(const struct sn_policy *p, const struct sn_packet *pkt,
		   struct sn_arena *arena, struct sn_explain *out);
void sn_explain_print_text(FILE *out, const struct sn_explain *x);
void sn_explain_print_json(FILE *out, const struct sn_explain *x);

#endif

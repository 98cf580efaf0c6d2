/*
 * L4 classes and the L4 half of rule specificity (SPEC.md, "Precedence").
 */
#ifndef SN_L4CLASS_H
#define SN_L4CLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "policy.h"

/* How specifically a rule's L4 part matches; higher wins. */
enum sn_l4_spec {
	SN_SPEC_NONE = -1, /* does not match */
	SN_SPEC_ANY = 0,   /* no protocol given */
	SN_SPEC_PROTO = 1, /* protocol, no port */
	SN_SPEC_RANGE = 2, /* protocol and a port range */
	SN_SPEC_PORT = 3,  /* protocol and a single port */
};

struct sn_l4_plan {
	struct sn_l4_class *classes;
	uint32_t n_classes;
	struct sn_proto_entry proto[256];
	struct sn_port_run *runs;
	size_t n_runs;
	uint32_t port_tables;
};

/*
 * Partition (protocol, port) space by the policy's rules and limit rules.
 * 0 or -ENOMEM.
 */
int sn_l4_build(const struct sn_policy *p, struct sn_arena *arena,
		struct sn_l4_plan *plan);
/*
 * A protocol as the language writes it: "tcp", "icmpv6", "proto 47";
 * SN_PROTO_ANY is `any_word` (callers differ: "any", "other").  Returns
 * either a constant or buf.
 */
const char *sn_proto_name(int proto, const char *any_word, char *buf,
			  size_t n);
/* Specificity of rule r for every packet of class c (SN_SPEC_NONE: no match). */
int sn_l4_rule_spec(const struct sn_rule *r, const struct sn_l4_class *c);
/* The same for any L4 match (a limit rule's proto and ports). */
int sn_l4_match_spec(int proto, const struct sn_port_range *ports,
		     size_t n_ports, const struct sn_l4_class *c);

#endif

/*
 * The resolved policy: what sema hands to the IR builder and to the
 * reference evaluator.  Names, sets, variables, list files and includes are
 * gone; every rule carries its expanded source prefixes and port ranges,
 * each with the location it was written at, so later stages can name the
 * exact place (a list file's own line) in a diagnostic.
 *
 * Everything is allocated in the compile's arena.
 */
#ifndef SN_POLICY_H
#define SN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

#define SN_FAMILY_V4 4
#define SN_FAMILY_V6 6

/* A strict CIDR prefix: no bits set past len (sema guarantees it). */
struct sn_prefix {
	uint8_t family; /* SN_FAMILY_V4 or SN_FAMILY_V6 */
	uint8_t len;    /* 0..32 or 0..128 */
	uint8_t addr[16]; /* network order; IPv4 uses the first 4 bytes */
};

struct sn_src {
	struct sn_prefix prefix;
	struct sn_loc loc; /* where this prefix was written */
};

struct sn_port_range {
	uint16_t lo, hi; /* inclusive; lo == hi for a single port */
	struct sn_loc loc;
};

enum sn_tier {
	SN_TIER_NORMAL = 0,
	SN_TIER_ALWAYS = 1, /* "always allow"/"always block": beats specificity */
};

#define SN_PROTO_ANY (-1)
#define SN_PROTO_TCP 6
#define SN_PROTO_UDP 17
#define SN_PROTO_ICMP 1
#define SN_PROTO_ICMPV6 58

struct sn_rule {
	uint32_t id;       /* SN_RULE_FIRST.. in source order (includes inline) */
	uint8_t verdict;   /* enum sn_verdict */
	uint8_t tier;      /* enum sn_tier */
	int16_t proto;     /* IP protocol number or SN_PROTO_ANY */
	struct sn_src *srcs; /* >= 1; "any" is 0.0.0.0/0 and ::/0 */
	size_t n_srcs;
	struct sn_port_range *ports; /* empty: any port (or no port concept) */
	size_t n_ports;
	struct sn_loc loc;  /* the whole statement (its first token) */
	const char *text;   /* canonical one-line rendering, names kept */
};

/* expect VERDICT from ADDR [to PROTO [port N]] [fragment] */
struct sn_expect {
	uint8_t verdict;
	struct sn_prefix addr; /* full-length host address */
	int16_t proto;         /* SN_PROTO_ANY: no L4 given (protocol 255) */
	int32_t port;          /* -1: none given */
	bool fragment;         /* a non-first fragment: no port visible */
	struct sn_loc loc;
	const char *text;
};

struct sn_default {
	uint8_t verdict;    /* enum sn_verdict; ALLOW when not written */
	bool written;
	struct sn_loc loc;
};

struct sn_policy {
	struct sn_rule *rules; /* rules[i].id == SN_RULE_FIRST + i */
	size_t n_rules;
	struct sn_expect *expects;
	size_t n_expects;
	struct sn_default default_v4, default_v6;
	const char *main_file;
};

#endif

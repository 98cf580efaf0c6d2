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

/* "N/s" or "N/m": count events per period seconds (1 or 60). */
struct sn_rate {
	uint32_t count;
	uint32_t period;
};

/*
 * limit [from SRC] [to L4] rate R [burst B] [per ipv4 /K] [per ipv6 /K]
 * [then block for D]: a per-source token bucket for allowed packets
 * (SPEC.md 2.4).  Every parameter holds its effective value, defaults
 * filled in.
 */
struct sn_limit {
	uint32_t id;          /* 0.. in source order (its own id space) */
	uint64_t identity;    /* FNV-1a 64 of identity_text: survives reloads */
	int16_t proto;        /* SN_PROTO_ANY or a protocol number */
	struct sn_src *srcs;  /* >= 1 */
	size_t n_srcs;
	struct sn_port_range *ports; /* empty: any port */
	size_t n_ports;
	struct sn_rate rate;  /* tokens per period, count >= 1 */
	uint32_t burst;       /* bucket size in tokens, >= 1 */
	uint8_t key_v4;       /* source key prefix length, 16..32 */
	uint8_t key_v6;       /* 48..128 */
	uint32_t block_for;   /* seconds; 0: no escalation */
	struct sn_loc loc;
	const char *text;     /* canonical text, every parameter explicit */
	const char *identity_text; /* match part + key lengths */
};

/* syncookies port PORTS above N/s: one statement. */
struct sn_syncookies {
	struct sn_port_range *ports; /* tcp destination ports, >= 1 */
	size_t n_ports;
	struct sn_rate above;        /* SYN rate threshold to those ports */
	struct sn_loc loc;
};

/* A blocked DNS name: lower case, no trailing dot, no leading "*.". */
struct sn_dns_name {
	const char *name;
	bool wildcard; /* "*.name": every subdomain of name, not name itself */
	struct sn_loc loc;
};

/*
 * DNS rules (SPEC.md 2.6).  Each setting has a default; its *_loc has
 * file == NULL while it was not written.
 */
struct sn_dns {
	struct sn_dns_name *block; /* first occurrence of each name, in order */
	size_t n_block;
	uint32_t stale_ttl;     /* seconds, default 30 */
	uint32_t stale_max_age; /* seconds, default 86400 */
	struct sn_rate query_rate; /* count 0: alert off */
	uint32_t min_ttl;          /* seconds; 0: off */
	uint32_t name_length;      /* 0: off */
	uint32_t label_entropy_milli; /* bits per char * 1000; 0: off */
	bool new_domains;
	struct sn_loc stale_ttl_loc, stale_max_age_loc, query_rate_loc,
		min_ttl_loc, name_length_loc, label_entropy_loc,
		new_domains_loc;
};

#define SN_MODE_DRY_RUN 0
#define SN_MODE_ENFORCE 1

/* Bounds of values (SPEC.md 1.5); the image reader checks them too. */
#define SN_RATE_MAX_PER_S 100000000u /* rates: 1/m .. this many per second */
#define SN_BURST_MAX 100000000u
#define SN_DURATION_MAX (7u * 86400u) /* durations: 1s .. 7d */
#define SN_KEY_V4_MIN 16 /* limit keys and auto-block prefixes */
#define SN_KEY_V6_MIN 48
#define SN_DNS_NAME_MAX 253
#define SN_DNS_LABEL_MAX 63
#define SN_ENTROPY_MAX_MILLI 8000

/* Defaults of the settings not written (SPEC.md 2.6, 2.7). */
#define SN_DNS_STALE_TTL_DEFAULT 30          /* RFC 8767 4 */
#define SN_DNS_STALE_MAX_AGE_DEFAULT 86400   /* RFC 8767: 1 to 3 days */
#define SN_AUTOBLOCK_TTL_DEFAULT 3600
#define SN_AUTOBLOCK_MAX_V4_DEFAULT 24
#define SN_AUTOBLOCK_MAX_V6_DEFAULT 48
#define SN_AUTOBLOCK_RATE_DEFAULT 10         /* new blocks per minute */

/* Guardrails of the adaptive loop (SPEC.md 2.7); *_loc as in sn_dns. */
struct sn_autoblock {
	uint8_t mode;        /* SN_MODE_DRY_RUN (default) or SN_MODE_ENFORCE */
	uint32_t ttl;        /* seconds, default 3600 */
	uint8_t max_v4;      /* shortest prefix it may block, default 24 */
	uint8_t max_v6;      /* default 48 */
	struct sn_rate rate; /* new blocks, default 10/m */
	struct sn_src *never; /* prefixes it may never block */
	size_t n_never;
	struct sn_loc mode_loc, ttl_loc, max_v4_loc, max_v6_loc, rate_loc;
};

struct sn_policy {
	struct sn_rule *rules; /* rules[i].id == SN_RULE_FIRST + i */
	size_t n_rules;
	struct sn_expect *expects;
	size_t n_expects;
	struct sn_default default_v4, default_v6;
	const char *main_file;
	struct sn_limit *limits; /* limits[i].id == i */
	size_t n_limits;
	struct sn_syncookies *syncookies;
	size_t n_syncookies;
	struct sn_dns dns;
	struct sn_autoblock autoblock;
};

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one header shared by the XDP program and every userspace component.
 *
 * Everything here crosses the kernel/user boundary or is written into the
 * policy image, so every type is fixed-width, padding is explicit and sizes
 * are asserted.  Change SN_ABI_VERSION whenever a layout or a meaning here
 * changes: sentryd refuses pinned state with another ABI version.
 */
#ifndef SENTRY_ABI_H
#define SENTRY_ABI_H

#ifdef __BPF__
#include <linux/types.h>
typedef __u8 sn_u8;
typedef __u16 sn_u16;
typedef __u32 sn_u32;
typedef __u64 sn_u64;
#else
#include <stdint.h>
typedef uint8_t sn_u8;
typedef uint16_t sn_u16;
typedef uint32_t sn_u32;
typedef uint64_t sn_u64;
#endif

/* 2: sn_decision.limit, the rate-limit maps (sn_limits, sn_limit_state,
 * sn_limit_new). */
#define SN_ABI_VERSION 2u

/* Verdicts as the policy states them; the program maps them to XDP actions. */
enum sn_verdict {
	SN_VERDICT_ALLOW = 1,
	SN_VERDICT_BLOCK = 2,
};

/*
 * Rule ids index the per-rule counters.  The first ids are pseudo-rules so
 * that every packet is attributed to exactly one counter, including packets
 * no policy rule decided.
 */
enum sn_pseudo_rule {
	SN_RULE_DEFAULT_V4 = 0, /* no rule matched an IPv4 packet */
	SN_RULE_DEFAULT_V6 = 1, /* no rule matched an IPv6 packet */
	SN_RULE_NON_IP = 2,     /* not IPv4/IPv6: passed (SPEC.md) */
	SN_RULE_MALFORMED = 3,  /* truncated/invalid headers: dropped */
	SN_RULE_FIRST = 4,      /* first id of a policy rule */
};

/*
 * L4 "port tables": protocols whose destination port the policy can match.
 * A packet of such a protocol gets its L4 class from sn_ports, every other
 * packet (and every non-first fragment) from sn_proto.l4_noport.
 */
enum sn_port_table {
	SN_PORT_TABLE_NONE = 0,
	SN_PORT_TABLE_TCP = 1,
	SN_PORT_TABLE_UDP = 2,
	SN_PORT_TABLES = 2,
};
#define SN_PORTS_PER_TABLE 65536u

/*
 * Data-plane capacities a policy image is checked against at compile time
 * (SPEC.md 4.1: warning W007 at 80%, error E031 above; a caller may set
 * others through struct sn_analysis_opts).  Chosen by memory, with the
 * loader's 2x reload headroom in mind:
 *  - LPM v4 2^21: a full IPv4 BGP table (~1M prefixes) plus large block
 *    lists; trie nodes are allocated per entry (~64 B), so ~128 MiB at most.
 *  - LPM v6 2^20: five times today's IPv6 table (~200k prefixes).
 *  - decisions 2^22: 32 MiB of preallocated array, the builder's own E030
 *    limit, so an image that builds never exceeds it with the default.
 *  - rules 2^16: per-CPU counters of 16 B per rule id and CPU; a policy
 *    has many prefixes but few statements.
 */
#define SN_CAP_LPM_V4 (1u << 21)
#define SN_CAP_LPM_V6 (1u << 20)
#define SN_CAP_DECISIONS (1u << 22)
#define SN_CAP_RULES (1u << 16)

/* Parser bounds (SPEC.md, "Packet classes"). */
#define SN_MAX_VLAN_TAGS 2
#define SN_MAX_IPV6_EXT_HDRS 8

/* Key of the IPv4 LPM trie (layout fixed by BPF_MAP_TYPE_LPM_TRIE). */
struct sn_lpm_v4_key {
	sn_u32 prefixlen;
	sn_u8 addr[4];
};

/* Key of the IPv6 LPM trie. */
struct sn_lpm_v6_key {
	sn_u32 prefixlen;
	sn_u8 addr[16];
};

/* sn_proto value, indexed by IP protocol number (IPv6: final next header). */
struct sn_proto_entry {
	sn_u32 l4_noport;  /* L4 class when the port is not consulted */
	sn_u32 port_table; /* enum sn_port_table */
};

/*
 * sn_decisions value, indexed by src_class * l4_stride + l4_class: which
 * rule decides and what it says.
 */
struct sn_decision {
	sn_u32 rule_id; /* image: rule id; sn_decisions: its counter slot */
	sn_u8 verdict; /* enum sn_verdict */
	sn_u8 flags;   /* reserved for the SYN stage, 0 today */
	sn_u16 limit;  /* 0: none; else 1 + index into sn_limits (ALLOW only) */
};

/*
 * Rate limits (SPEC.md 2.4).  sn_limits[i] is the configuration of limit
 * rule i, written by the loader from the image; the program computes with
 * it, never with the rule's source text.
 *
 * Token arithmetic is 32.32 fixed point ("fp": one token is 1 << 32).
 * Refill of elapsed ns is
 *     (elapsed / 1e9) * rate_fp + ((elapsed % 1e9) * rate_ns_q >> shift)
 * where rate_ns_q = rate_fp * 2^shift / 1e9 and the loader picks the
 * largest shift with rate_ns_q < 2^34: the product of the sub-second
 * part (< 2^30 ns) stays below 2^64, and the precision is better than
 * 2^-33 at any rate (1/m .. 1e8/s).  Elapsed time is capped at fill_ns
 * (time to refill an empty bucket) first, so the whole-second part stays
 * below burst_fp too.  No 128-bit arithmetic, one division only when a
 * second or more has passed since the last refill.
 */
#define SN_TOKEN_ONE (1ull << 32)
#define SN_NSEC_PER_SEC 1000000000ull

struct sn_limit_cfg {
	sn_u64 identity;  /* FNV-1a of the rule's identity text (bucket key) */
	sn_u64 rate_fp;   /* tokens per second, 32.32 */
	sn_u64 rate_ns_q; /* rate_fp * 2^shift / 1e9 */
	sn_u64 burst_fp;  /* bucket size, 32.32 */
	sn_u64 fill_ns;   /* ns to refill from empty to burst (>= 1) */
	sn_u64 block_ns;  /* then block for D; 0: no escalation */
	sn_u32 rule_id;   /* counter of the packets the limit drops */
	sn_u8 key_v4;     /* source key prefix lengths */
	sn_u8 key_v6;
	sn_u8 shift;
	sn_u8 pad;
};

/*
 * sn_limit_state key: one token bucket per (limit identity, source masked
 * to the key prefix).  Keyed by identity, not by limit index, so a reload
 * that keeps a limit's match keeps its buckets.  pad and the address
 * bytes past len are zero.
 */
struct sn_limit_key {
	sn_u64 identity;
	sn_u8 family; /* 4 or 6 */
	sn_u8 len;    /* key prefix length */
	sn_u8 pad[6];
	sn_u8 addr[16];
};

/*
 * sn_limit_state value.  Updated lock-free by every CPU (the LRU hash has
 * no bpf_spin_lock): see the data-plane comment for the races and their
 * bounds.
 */
struct sn_limit_state {
	sn_u64 tokens;        /* 32.32, signed while a consumer backs off */
	sn_u64 last_ns;       /* bpf_ktime_get_ns() of the last refill */
	sn_u64 blocked_until; /* ns; the key prefix is dropped until then */
};

/*
 * sn_limit_new (per-CPU array[1]): the budget of NEW bucket creations, a
 * token bucket of its own.  A packet of an unknown source that finds it
 * empty is judged without state (2.4), so a random-source flood cannot
 * push the buckets of known sources out of the LRU map.
 */
struct sn_limit_budget {
	sn_u64 tokens;  /* 32.32 */
	sn_u64 last_ns;
	sn_u64 denied;  /* packets judged without state, for statistics */
};

/*
 * Capacity of sn_limit_state and the default creation budget (SPEC.md
 * 2.4): at most SN_LIMIT_NEW_PER_S new buckets per second over all CPUs,
 * so filling the map with new keys takes a flood at least
 * SN_CAP_LIMIT_STATE / SN_LIMIT_NEW_PER_S = 16 s; a bucket used in the
 * last 16 s is never evicted by new keys.
 */
#define SN_CAP_LIMIT_STATE (1u << 16)
#define SN_LIMIT_NEW_PER_S 4096u
#define SN_LIMIT_NEW_BURST 4096u

/*
 * Source classification by range trie (SPEC.md 4.2 and 5.1), one array
 * of u32 words per family (sn_src4_nodes, sn_src6_nodes; two words per
 * map element, word i in half i & 1 of element i >> 1, because an array
 * map pads every value to 8 bytes).  The compiler cuts the
 * address space into ranges of one source class each (sorted, adjacent
 * ranges differ) and indexes them with a multibit trie: a node entry
 * either points at a child node, which consumes the next `stride` bits of
 * the address, or is a leaf for the ranges (at most SN_SRC_LEAF_MAX) that
 * meet the node's region; the first of them holds the region's first
 * address, and the last whose start <= address holds the class.  Child
 * nodes and leaf blocks live in the same array, each subtree's words
 * together (depth first), so a leaf block sits next to its node.
 * Word 0 is the entry of the whole address space, or SN_SRC_USE_LPM when
 * the family uses the LPM trie (sn_lpm4_g*, sn_lpm6_g*) instead.  Word
 * indexes are relative to the generation (SN_GENS below), and the loader
 * lays the words out itself (runtime/pop.c), so they are not the image's.
 *
 * Entry (u32): bit 31 set: child, bits 27-30 stride - 1 (1..16 bits),
 * bits 0-26 index of the child's first entry; bit 31 clear: leaf, bits
 * 27-30 count - 1 (1..16 ranges), and
 *  - count 1: bits 0-26 the source class itself (no more is read);
 *  - count >= 2: bits 25-26 the start format F, bits 0-24 the index of
 *    the leaf block: the class of the first range, then for each further
 *    range its start and its class.  A start is written as the address
 *    bits [d, d + 32 * W) (d: the leaf's depth, the bits its nodes
 *    consumed; W = 1, 2, 4 words for F = 0, 1, 2; most significant word
 *    first; bits past the address width are 0), and the compiler picks
 *    the smallest F for which every start of the leaf has no bit set
 *    below that window.  Bits [0, d) are the region's.  So a start
 *    compares against the same window of the address as a W-word
 *    number.  IPv4 uses F = 0 only.
 */
#define SN_SRC_CHILD 0x80000000u
#define SN_SRC_SPAN_SHIFT 27
#define SN_SRC_SPAN_MASK 0xfu
#define SN_SRC_INDEX_MASK 0x07ffffffu
#define SN_SRC_FMT_SHIFT 25
#define SN_SRC_FMT_MASK 0x3u
#define SN_SRC_BLOCK_MASK 0x01ffffffu
#define SN_SRC_LEAF_MAX 16u
#define SN_SRC_STRIDE_MAX 16u
#define SN_SRC_USE_LPM 0xffffffffu
/*
 * Entries a lookup reads at most (word 0, then one per node; the root
 * consumes >= 1 bit, every other node >= 4): the compiler never builds
 * deeper tries, the program stops there.
 */
#define SN_SRC_MAX_READS_V4 10
#define SN_SRC_MAX_READS_V6 34

/*
 * sn_counters value (per-CPU), indexed by counter slot: the decision's
 * rule_id (and sn_limit_cfg.rule_id) as the maps hold them is the slot of
 * the rule, not its id in the image.  Slots 0-3 are the pseudo-rules;
 * every other rule keeps its slot across reloads for as long as its
 * identity (its canonical text) stays in the policy (SPEC.md 6.2), so
 * its counter survives lines moving.  sn_slots says which rule holds
 * each slot.
 */
struct sn_counter {
	sn_u64 packets;
	sn_u64 bytes;
};

/* sn_slots value, indexed by counter slot; read by userspace only. */
struct sn_slot {
	sn_u64 identity; /* FNV-1a of "tier verdict text" (pseudo-rules: id) */
	sn_u32 rule_id;  /* id of the holder in the applied image */
	sn_u32 flags;    /* SN_SLOT_USED */
};
#define SN_SLOT_USED 1u

/*
 * Generations (SPEC.md 4.3).  Every classification map holds two complete
 * copies of the policy, generation 0 in entries [0, cap) and generation 1
 * in [cap, 2 cap) (cap: the program's sn_cap_* constant for that map), or
 * for the LPM tries one map per generation.  sn_gen[0] & 1 is the active
 * generation; the program reads it once per packet, before any lookup,
 * and uses that generation for every lookup of the packet.  A reload
 * writes the standby generation, flips sn_gen, waits for an RCU grace
 * period and then brings the old generation level.
 */
#define SN_GENS 2u
/* Version of the pinned-state layout (the maps, sn_meta): a daemon adopts
 * pinned state of its own version only.  2: leaf blocks in the range-trie
 * words (sn_src*_nodes of u64, no sn_src*_ranges). */
#define SN_STATE_VERSION 2u

enum sn_attach_mode {
	SN_ATTACH_NATIVE = 1,
	SN_ATTACH_GENERIC = 2,
};

/*
 * sn_meta[0]: written by sentryd, read by sentryctl without the daemon.
 * The program never reads it.
 */
struct sn_meta {
	sn_u32 abi_version;
	sn_u32 attach_mode;   /* enum sn_attach_mode */
	sn_u32 ifindex;
	sn_u32 n_rules;       /* rule ids in use, pseudo-rules included */
	sn_u64 applied_at_ns; /* CLOCK_REALTIME of the last apply */
	sn_u8 checksum[32];   /* SHA-256 of the applied policy image */
	char ifname[16];
	/* Since the generations (0 in state written before them). */
	sn_u32 state_version; /* SN_STATE_VERSION */
	sn_u32 l4_stride;     /* generated constants of the program */
	sn_u32 port_tables;
	sn_u32 active_gen;    /* copy of sn_gen[0] after the last flip */
	sn_u64 reloads;       /* applies since the state was created */
	sn_u8 prog_tag[8];    /* SHA-256 prefix of the BPF object loaded */
};

#define SN_ASSERT_SIZE(type, size) \
	_Static_assert(sizeof(type) == (size), "ABI size of " #type)
SN_ASSERT_SIZE(struct sn_lpm_v4_key, 8);
SN_ASSERT_SIZE(struct sn_lpm_v6_key, 20);
SN_ASSERT_SIZE(struct sn_proto_entry, 8);
SN_ASSERT_SIZE(struct sn_decision, 8);
SN_ASSERT_SIZE(struct sn_counter, 16);
SN_ASSERT_SIZE(struct sn_meta, 104);
SN_ASSERT_SIZE(struct sn_slot, 16);
SN_ASSERT_SIZE(struct sn_limit_cfg, 56);
SN_ASSERT_SIZE(struct sn_limit_key, 32);
SN_ASSERT_SIZE(struct sn_limit_state, 24);
SN_ASSERT_SIZE(struct sn_limit_budget, 24);


#endif /* SENTRY_ABI_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * 47Sentry XDP classifier.
 *
 * Per packet: parse once, read the active generation (sn_gen, SPEC.md
 * 4.3) once, one source lookup (by family: the range trie or LPM trie the
 * compiler chose, SPEC.md 4) -> source class, one L4 class (sn_ports for
 * TCP/UDP with a port table in use, else sn_proto), one decision lookup,
 * one per-CPU counter update.  Every lookup of a packet is in the
 * generation read at its start, so a reload that flips sn_gen never shows
 * a packet a mix of two policies.  The work is the same for 1 rule or
 * 100k rules: the compiler folded the policy into these tables.
 *
 * Packet classes (SPEC.md "Packet classes" is copied from this list; keep
 * them in step):
 *
 *  1. Ethernet header shorter than 14 bytes: DROP, SN_RULE_MALFORMED.
 *  2. Up to SN_MAX_VLAN_TAGS (2) tags with TPID 0x8100 (802.1Q) or 0x88a8
 *     (802.1ad) are skipped and the inner packet is judged.  A third tag,
 *     or a tag header cut short: DROP, SN_RULE_MALFORMED.
 *  3. Any other EtherType than IPv4/IPv6 (ARP, LLDP, 802.3 length, other
 *     TPIDs such as 0x9100 ...): PASS, SN_RULE_NON_IP.  The kernel stack
 *     does not deliver such frames to IP, so they cannot carry IP past us.
 *  4. IPv4 with version != 4, ihl < 5, the header (options included) not
 *     within the packet, or tot_len < ihl*4: DROP, SN_RULE_MALFORMED.
 *  5. IPv4 non-first fragment (offset != 0): judged without a port, i.e.
 *     L4 class sn_proto[protocol].l4_noport (the IP header's protocol is
 *     trusted).  A TCP fragment with offset 1 (overlaps the TCP header,
 *     RFC 1858): DROP, SN_RULE_MALFORMED.
 *  6. IPv4 first fragment or unfragmented packet: the L4 header must be
 *     present (TCP 20 bytes, UDP 8, ICMP 4, ICMPv6 4, other protocols
 *     nothing) else DROP, SN_RULE_MALFORMED; then judged in full, with
 *     the destination port for port-table protocols.  So a port block
 *     cannot be bypassed by fragmenting: the first fragment carries the
 *     port and is dropped, and the rest cannot be reassembled.
 *  7. IPv6 with version != 6 or a 40-byte header cut short: DROP,
 *     SN_RULE_MALFORMED.
 *  8. IPv6 source inside ::ffff:0:0/96 (IPv4-mapped; never valid on the
 *     wire, RFC 4291 2.5.5.2): DROP, SN_RULE_MALFORMED.
 *  9. IPv6 extension headers hop-by-hop (0), routing (43), destination
 *     options (60), fragment (44) and AH (51) are walked, at most
 *     SN_MAX_IPV6_EXT_HDRS (8); a 9th: DROP, SN_RULE_MALFORMED.  An
 *     extension header not entirely within the packet: DROP, MALFORMED.
 *     Every other next-header value ends the walk and is the L4 protocol
 *     (ESP 50, no-next-header 59, ... are protocols without ports).
 * 10. IPv6 fragment header with offset != 0: non-first fragment, the walk
 *     stops there and the fragment header's next header is the protocol;
 *     judged without a port as in 5 (TCP offset 1: DROP, MALFORMED).
 *     Offset 0 (first fragment, or an atomic fragment) continues the walk
 *     and is judged in full with the L4 rule of 6.
 * 11. Otherwise the decision table decides: ALLOW -> XDP_PASS, BLOCK ->
 *     XDP_DROP, counted at the deciding rule (a real rule, or
 *     SN_RULE_DEFAULT_V4/_V6 when no rule matched).
 * 11a. An ALLOW whose decision names a limit rule (SPEC.md 2.4) takes a
 *     token of its bucket first: none left, or the key prefix blocked by
 *     the limit's `then block for`: XDP_DROP, counted at the limit rule's
 *     id.  A source the creation budget leaves without a bucket passes.
 * 12. A classification lookup that misses (LPM, sn_proto, sn_ports,
 *     sn_decisions, sn_limits) or an out-of-range value can only be a loader bug (the
 *     compiler always emits ::/0 and 0.0.0.0/0): XDP_ABORTED, which drops
 *     and fires the xdp:xdp_exception tracepoint, uncounted.
 * 13. Defensive bounds no real frame reaches: a header starting more than
 *     32 KiB into the frame, or a port-table protocol (the compiler only
 *     uses TCP and UDP, which 6 already checks) without its 4 port bytes:
 *     DROP, SN_RULE_MALFORMED.
 *
 * Counted bytes are the frame length as XDP sees it (data_end - data).
 * Frames shorter than 14 bytes (class 1) cannot be injected with
 * BPF_PROG_TEST_RUN (the kernel refuses them) nor arrive from a NIC; the
 * check stays because the program must not depend on that.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/sentry_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Generated constants (sn_image.constants), set by the loader before load.
 * As rodata the verifier sees their values: with no port table in use the
 * whole port path is dead code.
 */
const volatile __u32 sn_l4_stride = 1;
const volatile __u32 sn_port_tables = 0;

/*
 * Generations (bpf/sentry_abi.h, SPEC.md 4.3): entries per generation of
 * each classification array, set by the loader.  Generation g of a map
 * holds its entries at [g * cap, (g + 1) * cap); indexes inside entries
 * (trie children, leaf blocks) are relative to the generation, so both
 * generations hold the same bytes.
 */
const volatile __u32 sn_cap_decisions = 32;
const volatile __u32 sn_cap_limits = 32;
const volatile __u32 sn_cap_src4_nodes = 32; /* elements (two words each) */
const volatile __u32 sn_cap_src6_nodes = 32;
#define SN_CAP_PROTO 256u
#define SN_CAP_PORTS (SN_PORT_TABLES * SN_PORTS_PER_TABLE)

/* sn_gen[0] & 1: the active generation, flipped by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sn_gen SEC(".maps");

/*
 * max_entries below are placeholders: the loader sizes them from the
 * image, two generations each.  The LPM tries are one map per generation.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct sn_lpm_v4_key);
	__type(value, __u32);
} sn_lpm4_g0 SEC(".maps"), sn_lpm4_g1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct sn_lpm_v6_key);
	__type(value, __u32);
} sn_lpm6_g0 SEC(".maps"), sn_lpm6_g1 SEC(".maps");

/*
 * The range tries (bpf/sentry_abi.h, SPEC.md 4.2): what the compiler chose
 * instead of the LPM tries for a family, unless word 0 says
 * SN_SRC_USE_LPM.  Node entries and leaf blocks in one array of u32 words,
 * two per element: word i is half i & 1 of element i >> 1 (an array
 * pads every value to 8 bytes, so u32 values would take twice the
 * memory and spread a block over twice the cache lines).  Sized by the
 * loader from the image.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64); /* two words: the kernel pads smaller values to 8 */
} sn_src4_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64); /* two words: the kernel pads smaller values to 8 */
} sn_src6_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SN_GENS * SN_CAP_PROTO);
	__type(key, __u32);
	__type(value, struct sn_proto_entry);
} sn_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SN_GENS * SN_CAP_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} sn_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct sn_decision);
} sn_decisions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct sn_counter);
} sn_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sn_meta);
} sn_meta SEC(".maps");

/* Which rule holds each counter slot (userspace only, SPEC.md 6.2). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct sn_slot);
} sn_slots SEC(".maps");

/* ---- rate limits (SPEC.md 2.4): configuration, buckets, creation budget -- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct sn_limit_cfg);
} sn_limits SEC(".maps");

/*
 * The buckets.  LRU so that the map can never be full for an insert;
 * preallocated (the LRU default) so an insert never allocates in the
 * packet path.  Which entries an insert may evict is bounded by the
 * creation budget below.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SN_CAP_LIMIT_STATE);
	__type(key, struct sn_limit_key);
	__type(value, struct sn_limit_state);
} sn_limit_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sn_limit_budget);
} sn_limit_new SEC(".maps");

/*
 * This CPU's share of the creation budget (SN_LIMIT_NEW_PER_S and
 * SN_LIMIT_NEW_BURST divided by the number of possible CPUs), in the
 * token arithmetic of struct sn_limit_cfg; set by the loader.
 */
const volatile __u64 sn_new_rate_fp = 0;
const volatile __u64 sn_new_rate_ns_q = 0;
const volatile __u64 sn_new_burst_fp = 0;
const volatile __u64 sn_new_fill_ns = 1;
const volatile __u32 sn_new_shift = 0;

#define ETH_P_8021Q_BE bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88a8)

#define IP_OFFSET_MASK 0x1fff /* IPv4 fragment offset, 8-byte units */
#define IPPROTO_ICMPV6_ 58

/*
 * Every offset into the packet is checked against this before it becomes a
 * pointer, so the verifier sees a bounded variable offset: it only trusts
 * a bounds check when offset + length stays within 64 KiB, and lengths
 * here are at most 2 KiB (an IPv6 extension header).  Headers reaching
 * past 32 KiB into a frame are treated as malformed; no real frame has
 * them (native XDP frames are at most a page).
 */
#define SN_MAX_PKT_OFF 0x7fff

/* One load the compiler may not split, repeat or cache (shared memory). */
#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))

/* 802.1Q / 802.1ad tag as it sits after the MAC addresses. */
struct sn_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* Minimal views of the IPv6 extension headers the walk reads. */
struct sn_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct sn_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | res | M */
	__be32 id;
};

/* What the L3 parser hands to sn_decide. */
struct sn_l3 {
	__u32 src_class; /* from the LPM trie of the family */
	__u32 l4_off;    /* offset of the L4 header */
	__u32 proto;     /* IP protocol / final IPv6 next header */
	__u32 frag_off;  /* fragment offset, 8-byte units; != 0: non-first */
	__u32 family;    /* 4 or 6: the rate-limit key */
	__u32 gen;       /* the generation every lookup of the packet uses */
	__u8 src[16];    /* source address; IPv4 in the first 4 bytes */
};

/* A pointer to len bytes at off, or NULL when they are not all there. */
static __always_inline void *pkt_ptr(struct xdp_md *ctx, __u32 off, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *p;

	if (off > SN_MAX_PKT_OFF)
		return NULL;
	p = data + off;
	if (p + len > data_end)
		return NULL;
	return p;
}

/* Frame length as counted (data_end - data). */
static __always_inline __u64 frame_len(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return data_end - data;
}

/* Count one packet; a missing counter slot never changes the verdict. */
static __always_inline void count(__u32 rule_id, struct xdp_md *ctx)
{
	struct sn_counter *c = bpf_map_lookup_elem(&sn_counters, &rule_id);

	if (c) {
		/* Per-CPU slot and XDP runs without preemption: plain adds. */
		c->packets++;
		c->bytes += frame_len(ctx);
	}
}

static __always_inline int malformed(struct xdp_md *ctx)
{
	count(SN_RULE_MALFORMED, ctx);
	return XDP_DROP;
}

/* Bytes of L4 header a first fragment / whole packet must carry. */
static __always_inline __u32 l4_min_len(__u32 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return sizeof(struct tcphdr);
	case IPPROTO_UDP:
		return sizeof(struct udphdr);
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_:
		return 4; /* type, code, checksum */
	default:
		return 0;
	}
}

/*
 * The non-static functions below are BPF global functions: the verifier
 * checks each once, for any argument values, instead of once per parser
 * path that reaches it (VLAN depth x IPv6 extension chain shapes).  That
 * keeps verification small and independent of how many parser outcomes
 * there are; the cost is one BPF-to-BPF call per stage.  The source
 * lookups are inlined into the family parsers instead (one call less per
 * packet; verification grows by ~1.5k instructions), and so is the
 * decision for IPv4 (sn_decide_body); IPv6 calls sn_decide (see there).
 */

/* ---- rate limits ------------------------------------------------------- */

/*
 * Tokens (32.32) earned in `elapsed` ns at a rate, capped at the burst;
 * the arithmetic and why it cannot overflow: struct sn_limit_cfg.
 */
static __always_inline __u64 sn_refill(__u64 rate_fp, __u64 rate_ns_q,
				       __u32 shift, __u64 fill_ns,
				       __u64 burst_fp, __u64 elapsed)
{
	__u64 add = 0, sec;

	if (elapsed >= fill_ns)
		return burst_fp;
	if (elapsed >= SN_NSEC_PER_SEC) {
		sec = elapsed / SN_NSEC_PER_SEC;
		add = sec * rate_fp;
		elapsed -= sec * SN_NSEC_PER_SEC;
	}
	return add + ((elapsed * rate_ns_q) >> (shift & 63));
}

/*
 * May a new bucket be created now?  One token of this CPU's creation
 * budget (sn_limit_new).  Per-CPU and XDP does not migrate, so plain
 * arithmetic.  It starts full: last_ns 0 is "long ago".
 */
static __always_inline int sn_new_state_ok(__u64 now)
{
	struct sn_limit_budget *b;
	__u32 zero = 0;
	__u64 t;

	b = bpf_map_lookup_elem(&sn_limit_new, &zero);
	if (!b)
		return 0;
	if (now > b->last_ns) {
		t = b->tokens + sn_refill(sn_new_rate_fp, sn_new_rate_ns_q,
					  sn_new_shift, sn_new_fill_ns,
					  sn_new_burst_fp, now - b->last_ns);
		b->tokens = t < sn_new_burst_fp ? t : sn_new_burst_fp;
		b->last_ns = now;
	}
	if (b->tokens < SN_TOKEN_ONE) {
		b->denied++;
		return 0;
	}
	b->tokens -= SN_TOKEN_ONE;
	return 1;
}

#define SN_LIMIT_PASS 0
#define SN_LIMIT_ABORT (-1)

/*
 * The token bucket of limit `idx` for this packet's source (SPEC.md 2.4).
 * Returns SN_LIMIT_PASS, the rule id to count a drop at, or
 * SN_LIMIT_ABORT (no such limit: a loader bug).
 *
 * Several CPUs update one bucket without a lock (an LRU hash value cannot
 * hold a bpf_spin_lock):
 *  - refill: each interval [last_ns, now) is claimed by exactly one CPU
 *    with a compare-and-swap of last_ns, so no time is credited twice;
 *    the claimant adds its tokens with an atomic add and takes back what
 *    exceeds the burst (computed from the value its add returned, so
 *    consumers racing with it are not undone).  Two claimants racing on
 *    a full bucket can each take back the whole excess: the bucket ends
 *    below full by at most one refill interval - never above.
 *  - consume: an atomic subtract of one token; a CPU that finds it took
 *    the last token twice (the value it saw was < 1) gives it back and
 *    drops.  A packet that reads an empty bucket drops without an atomic
 *    operation, which keeps a flood cheap.
 *  - creation: two CPUs inserting the same new key at once both pass
 *    their packet (BPF_NOEXIST lets one insert win): at most one extra
 *    packet per CPU.
 * So a bucket never passes more than rate * t + burst + (CPUs - 1)
 * packets in t; the kernel test measures it.
 */
__noinline int sn_limit(const struct sn_l3 *l3, __u32 idx)
{
	struct sn_limit_key key = {};
	struct sn_limit_state *st;
	struct sn_limit_cfg *c;
	__u64 now, last, add, old, cap;
	__u32 len, i;

	if (!l3 || idx >= sn_cap_limits)
		return SN_LIMIT_ABORT;
	idx += (l3->gen & 1) * sn_cap_limits;
	c = bpf_map_lookup_elem(&sn_limits, &idx);
	if (!c)
		return SN_LIMIT_ABORT;

	/* The key: identity and the source masked to the key prefix. */
	key.identity = c->identity;
	key.family = l3->family == 6 ? 6 : 4;
	len = key.family == 6 ? c->key_v6 : c->key_v4;
	if (len > (key.family == 6 ? 128u : 32u))
		return SN_LIMIT_ABORT;
	key.len = len;
	/* A mask per byte, constant indexes: the verifier sees every access. */
	for (i = 0; i < 16; i++) {
		int bits = (int)len - 8 * (int)i;
		__u8 m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (__u8)(0xff00 >> bits);

		key.addr[i] = l3->src[i] & m;
	}

	now = bpf_ktime_get_ns();
	st = bpf_map_lookup_elem(&sn_limit_state, &key);
	if (!st) {
		struct sn_limit_state fresh = {
			.tokens = c->burst_fp - SN_TOKEN_ONE,
			.last_ns = now,
		};

		/*
		 * Out of creation budget: judged without state.  The packet
		 * passes, as it would with a new (full) bucket; the source is
		 * limited from its first packet that finds budget.
		 */
		if (sn_new_state_ok(now))
			bpf_map_update_elem(&sn_limit_state, &key, &fresh,
					    BPF_NOEXIST);
		return SN_LIMIT_PASS;
	}
	if (READ_ONCE_U64(st->blocked_until) > now)
		return c->rule_id;

	last = READ_ONCE_U64(st->last_ns);
	if (now > last &&
	    __sync_val_compare_and_swap(&st->last_ns, last, now) == last) {
		add = sn_refill(c->rate_fp, c->rate_ns_q, c->shift, c->fill_ns,
				c->burst_fp, now - last);
		old = __sync_fetch_and_add(&st->tokens, add);
		cap = c->burst_fp;
		if ((__s64)(old + add) > (__s64)cap)
			__sync_fetch_and_add(&st->tokens, cap - (old + add));
	}
	if ((__s64)READ_ONCE_U64(st->tokens) >= (__s64)SN_TOKEN_ONE) {
		old = __sync_fetch_and_add(&st->tokens, -SN_TOKEN_ONE);
		if ((__s64)old >= (__s64)SN_TOKEN_ONE)
			return SN_LIMIT_PASS;
		__sync_fetch_and_add(&st->tokens, SN_TOKEN_ONE);
	}
	if (c->block_ns)
		st->blocked_until = now + c->block_ns;
	return c->rule_id;
}

/*
 * Everything after L3 parsing: L4 header checks, L4 class, decision,
 * counter, verdict.
 */
static __always_inline int sn_decide_body(struct xdp_md *ctx,
					  const struct sn_l3 *l3)
{
	struct sn_proto_entry *pe;
	struct sn_decision *d;
	__u32 proto, table, idx, l4, need, *cls, gen;
	__u16 *dport;

	if (!l3)
		return XDP_ABORTED;
	proto = l3->proto & 0xff;
	gen = l3->gen & 1;

	if (l3->frag_off) {
		/* RFC 1858: a TCP fragment at offset 8 rewrites TCP flags. */
		if (proto == IPPROTO_TCP && l3->frag_off == 1)
			return malformed(ctx);
	} else {
		need = l4_min_len(proto);
		if (need && !pkt_ptr(ctx, l3->l4_off, need))
			return malformed(ctx);
	}

	/*
	 * TCP and UDP with their port table in use (whole packets and first
	 * fragments): the L4 class is the port table's entry, so sn_proto is
	 * not read (the loader checks that exactly these protocols use these
	 * tables, runtime/pop.c).  sn_port_tables is rodata: the verifier
	 * knows it, and with no table in use the port path is dead code it
	 * removes (tested first on its own: "mask & (1 << unknown)" would
	 * hide that it is 0).
	 */
	table = proto == IPPROTO_TCP ? SN_PORT_TABLE_TCP :
		proto == IPPROTO_UDP ? SN_PORT_TABLE_UDP : SN_PORT_TABLE_NONE;
	if (sn_port_tables && table != SN_PORT_TABLE_NONE &&
	    (sn_port_tables & (1u << table)) && !l3->frag_off) {
		/* TCP and UDP both carry the destination port at offset 2. */
		dport = pkt_ptr(ctx, l3->l4_off + 2, sizeof(*dport));
		if (!dport)
			return malformed(ctx); /* cannot happen: min len above */
		idx = gen * SN_CAP_PORTS + (table - 1) * SN_PORTS_PER_TABLE +
		      bpf_ntohs(*dport);
		cls = bpf_map_lookup_elem(&sn_ports, &idx);
		if (!cls)
			return XDP_ABORTED;
		l4 = *cls;
	} else {
		idx = gen * SN_CAP_PROTO + proto;
		pe = bpf_map_lookup_elem(&sn_proto, &idx);
		if (!pe)
			return XDP_ABORTED;
		l4 = pe->l4_noport;
	}
	if (l4 >= sn_l4_stride)
		return XDP_ABORTED;

	idx = l3->src_class * sn_l4_stride + l4;
	if (idx >= sn_cap_decisions)
		return XDP_ABORTED;
	idx += gen * sn_cap_decisions;
	d = bpf_map_lookup_elem(&sn_decisions, &idx);
	if (!d)
		return XDP_ABORTED;
	switch (d->verdict) {
	case SN_VERDICT_ALLOW:
		if (d->limit) {
			int lim = sn_limit(l3, d->limit - 1u);

			if (lim == SN_LIMIT_ABORT)
				return XDP_ABORTED;
			if (lim != SN_LIMIT_PASS) {
				count((__u32)lim, ctx);
				return XDP_DROP;
			}
		}
		count(d->rule_id, ctx);
		return XDP_PASS;
	case SN_VERDICT_BLOCK:
		count(d->rule_id, ctx);
		return XDP_DROP;
	default:
		return XDP_ABORTED;
	}
}

/*
 * The same as a global function, for the IPv6 parser: inlined there, it
 * would be verified once per extension-header walk and lookup outcome
 * (338k instructions instead of 27k).  IPv4 has few parser outcomes and
 * inlines it (one call less per packet: measured 5 % at 10 prefixes).
 */
__noinline int sn_decide(struct xdp_md *ctx, const struct sn_l3 *l3)
{
	return sn_decide_body(ctx, l3);
}

/* ---- source class (SPEC.md 4): range trie or LPM trie ---------------- */

/* What the range-trie lookups return besides a class. */
#define SN_SRC_ABORT (-1)  /* walked out of the structure: a loader bug */
#define SN_SRC_LPM (-2)    /* this family uses the LPM trie */

/*
 * Word idx of a range trie's generation (its elements start at base, cap
 * of them) into *w; 0, or -1 when outside the generation.
 */
static __always_inline int src_word(void *nodes, __u32 base, __u32 cap,
				    __u32 idx, __u32 *w)
{
	__u32 k = idx >> 1;
	__u32 *p;

	if (k >= cap)
		return -1;
	k += base;
	p = bpf_map_lookup_elem(nodes, &k);

	if (!p)
		return -1;
	*w = p[idx & 1];
	return 0;
}

/*
 * Word idx of a leaf block already checked to lie inside the generation
 * (the map's own bound is all that is left to test): the scans read many
 * words, so each costs as few instructions as it can.
 */
static __always_inline int blk_word(void *nodes, __u32 base, __u32 idx,
				    __u32 *w)
{
	__u32 k = base + (idx >> 1);
	__u32 *p = bpf_map_lookup_elem(nodes, &k);

	if (!p)
		return -1;
	*w = p[idx & 1];
	return 0;
}

/*
 * Entry idx, or SN_SRC_USE_LPM as "missing" (never a valid entry below
 * the root).
 */
static __always_inline __u32 src_entry(void *nodes, __u32 base, __u32 cap,
				       __u32 idx)
{
	__u32 e;

	return src_word(nodes, base, cap, idx, &e) ? SN_SRC_USE_LPM : e;
}

/*
 * Source class of an IPv4 address (host order) through the range trie:
 * follow child entries, SN_SRC_STRIDE_MAX bits at most per node, to a leaf
 * of at most SN_SRC_LEAF_MAX ranges, then take the last of them that
 * starts at or before the address.  compiler/srcmap.c walks the same.
 * Inlined into the parser (one call less per packet; the verifier walks
 * it once per parser outcome, which is few for IPv4).
 */
static __always_inline int sn_src_class_v4(__u32 addr, __u32 gen)
{
	const __u32 cap = sn_cap_src4_nodes, base = (gen & 1) * cap;
	__u32 e, d = 0, p, n, j, cls, st, a, i;

	e = src_entry(&sn_src4_nodes, base, cap, 0);
	if (e == SN_SRC_USE_LPM)
		return SN_SRC_LPM;
	for (i = 1; i < SN_SRC_MAX_READS_V4 && (e & SN_SRC_CHILD); i++) {
		__u32 s = ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
		__u64 window = (__u64)addr << 32 << d;

		if (d + s > 32)
			return SN_SRC_ABORT;
		e = src_entry(&sn_src4_nodes, base, cap,
			      (e & SN_SRC_INDEX_MASK) + (__u32)(window >> (64 - s)));
		if (e == SN_SRC_USE_LPM)
			return SN_SRC_ABORT;
		d += s;
	}
	if (e & SN_SRC_CHILD)
		return SN_SRC_ABORT;
	n = ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
	if (n == 1)
		return (int)(e & SN_SRC_INDEX_MASK); /* the class itself */
	/* IPv4 blocks hold one-word starts (format 0) only. */
	if ((e >> SN_SRC_FMT_SHIFT) & SN_SRC_FMT_MASK)
		return SN_SRC_ABORT;
	/*
	 * The leaf block {class, (start, class) * (n - 1)}, in address
	 * order: the first range holds the region's start, each next one
	 * takes over from its start on.  Checked once to lie inside the
	 * generation; then a forward scan over the starts only (adjacent
	 * words, loads independent of each other), and one read of the
	 * class of the last range that starts at or before the address.
	 */
	p = e & SN_SRC_BLOCK_MASK;
	if (p + 2 * n - 1 > 2 * cap)
		return SN_SRC_ABORT;
	a = (__u32)(((__u64)addr << 32 << d) >> 32); /* bits d..d+31 */
	j = 0;
	for (i = 1; i < SN_SRC_LEAF_MAX && i < n; i++) {
		if (blk_word(&sn_src4_nodes, base, p + 2 * i - 1, &st))
			return SN_SRC_ABORT;
		if (st > a)
			break;
		j = i;
	}
	if (blk_word(&sn_src4_nodes, base, p + 2 * j, &cls))
		return SN_SRC_ABORT;
	return (int)(cls & 0x7fffffff);
}

/* The 64 address bits from bit d on (0 past the end). */
static __always_inline __u64 v6_window(__u64 ahi, __u64 alo, __u32 d)
{
	if (d == 0)
		return ahi;
	if (d < 64)
		return ahi << d | alo >> (64 - d);
	if (d < 128)
		return alo << (d - 64);
	return 0;
}

/* The same for IPv6: the address as two host-order halves. */
static __always_inline int sn_src_class_v6(__u64 ahi, __u64 alo, __u32 gen)
{
	const __u32 cap = sn_cap_src6_nodes, base = (gen & 1) * cap;
	__u32 e, d = 0, p, n, f, w, j, cls, w0, w1, w2, w3, i;
	__u64 wh, wl, sh, sl;

	e = src_entry(&sn_src6_nodes, base, cap, 0);
	if (e == SN_SRC_USE_LPM)
		return SN_SRC_LPM;
	for (i = 1; i < SN_SRC_MAX_READS_V6 && (e & SN_SRC_CHILD); i++) {
		__u32 s = ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;

		if (d + s > 128)
			return SN_SRC_ABORT;
		e = src_entry(&sn_src6_nodes, base, cap,
			      (e & SN_SRC_INDEX_MASK) +
				      (__u32)(v6_window(ahi, alo, d) >> (64 - s)));
		if (e == SN_SRC_USE_LPM)
			return SN_SRC_ABORT;
		d += s;
	}
	if (e & SN_SRC_CHILD)
		return SN_SRC_ABORT;
	n = ((e >> SN_SRC_SPAN_SHIFT) & SN_SRC_SPAN_MASK) + 1;
	if (n == 1)
		return (int)(e & SN_SRC_INDEX_MASK); /* the class itself */
	f = (e >> SN_SRC_FMT_SHIFT) & SN_SRC_FMT_MASK;
	if (f > 2)
		return SN_SRC_ABORT;
	w = 1u << f; /* words per start */
	p = e & SN_SRC_BLOCK_MASK;
	/* The block {class, (start, class) * (n - 1)} inside the generation. */
	if (p + n + (n - 1) * w > 2 * cap)
		return SN_SRC_ABORT;
	wh = v6_window(ahi, alo, d);
	j = 0;
	/* One scan per start format: 1, 2 or 4 words per start. */
	if (f == 0) {
		__u32 a = (__u32)(wh >> 32);

		for (i = 1; i < SN_SRC_LEAF_MAX && i < n; i++) {
			if (blk_word(&sn_src6_nodes, base, p + 2 * i - 1, &w0))
				return SN_SRC_ABORT;
			if (w0 > a)
				break;
			j = i;
		}
	} else if (f == 1) {
		for (i = 1; i < SN_SRC_LEAF_MAX && i < n; i++) {
			if (blk_word(&sn_src6_nodes, base, p + 3 * i - 2, &w0) ||
			    blk_word(&sn_src6_nodes, base, p + 3 * i - 1, &w1))
				return SN_SRC_ABORT;
			if (((__u64)w0 << 32 | w1) > wh)
				break;
			j = i;
		}
	} else {
		wl = v6_window(ahi, alo, d + 64);
		for (i = 1; i < SN_SRC_LEAF_MAX && i < n; i++) {
			if (blk_word(&sn_src6_nodes, base, p + 5 * i - 4, &w0) ||
			    blk_word(&sn_src6_nodes, base, p + 5 * i - 3, &w1) ||
			    blk_word(&sn_src6_nodes, base, p + 5 * i - 2, &w2) ||
			    blk_word(&sn_src6_nodes, base, p + 5 * i - 1, &w3))
				return SN_SRC_ABORT;
			sh = (__u64)w0 << 32 | w1;
			sl = (__u64)w2 << 32 | w3;
			if (sh > wh || (sh == wh && sl > wl))
				break;
			j = i;
		}
	}
	if (blk_word(&sn_src6_nodes, base, p + j * (w + 1), &cls))
		return SN_SRC_ABORT;
	return (int)(cls & 0x7fffffff);
}

/* An IPv4 packet whose header starts at off, judged by generation gen. */
__noinline int sn_ipv4(struct xdp_md *ctx, __u32 off, __u32 gen)
{
	struct sn_lpm_v4_key key = { .prefixlen = 32 };
	struct sn_l3 l3 = {};
	struct iphdr *iph;
	__u32 hlen, *cls;
	int c;

	iph = pkt_ptr(ctx, off, sizeof(*iph));
	if (!iph || iph->version != 4 || iph->ihl < 5)
		return malformed(ctx);
	hlen = iph->ihl * 4;
	if (!pkt_ptr(ctx, off, hlen) || bpf_ntohs(iph->tot_len) < hlen)
		return malformed(ctx);

	__builtin_memcpy(key.addr, &iph->saddr, sizeof(key.addr));
	__builtin_memcpy(l3.src, &iph->saddr, 4);
	l3.family = 4;
	l3.gen = gen & 1;
	l3.frag_off = bpf_ntohs(iph->frag_off) & IP_OFFSET_MASK;
	l3.proto = iph->protocol;
	l3.l4_off = off + hlen;

	c = sn_src_class_v4(bpf_ntohl(iph->saddr), l3.gen);
	if (c == SN_SRC_LPM) {
		cls = bpf_map_lookup_elem(l3.gen ? (void *)&sn_lpm4_g1 :
						   (void *)&sn_lpm4_g0, &key);
		if (!cls)
			return XDP_ABORTED;
		c = (int)(*cls & 0x7fffffff);
	}
	if (c < 0)
		return XDP_ABORTED;
	l3.src_class = (__u32)c;
	return sn_decide_body(ctx, &l3);
}

static __always_inline int is_v4_mapped(const struct ipv6hdr *ip6)
{
	return ip6->saddr.in6_u.u6_addr32[0] == 0 &&
	       ip6->saddr.in6_u.u6_addr32[1] == 0 &&
	       ip6->saddr.in6_u.u6_addr32[2] == bpf_htonl(0xffff);
}

static __always_inline int is_ext_hdr(__u32 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH;
}

/* An IPv6 packet whose header starts at off, judged by generation gen. */
__noinline int sn_ipv6(struct xdp_md *ctx, __u32 off, __u32 gen)
{
	struct sn_lpm_v6_key key = { .prefixlen = 128 };
	struct sn_l3 l3 = {};
	struct ipv6hdr *ip6;
	__u32 nexthdr, *cls;
	__u64 ahi, alo;
	int c;
	int i;

	ip6 = pkt_ptr(ctx, off, sizeof(*ip6));
	if (!ip6 || ip6->version != 6 || is_v4_mapped(ip6))
		return malformed(ctx);
	__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
	__builtin_memcpy(l3.src, &ip6->saddr, 16);
	l3.family = 6;
	l3.gen = gen & 1;
	nexthdr = ip6->nexthdr;
	off += sizeof(*ip6);

	/* One extension header per iteration, at most SN_MAX_IPV6_EXT_HDRS. */
	for (i = 0; i < SN_MAX_IPV6_EXT_HDRS && is_ext_hdr(nexthdr); i++) {
		/* Every extension header is at least 8 bytes long. */
		struct sn_ext_hdr *h = pkt_ptr(ctx, off, 8);
		__u32 len;

		if (!h)
			return malformed(ctx);
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct sn_frag_hdr *f = (void *)h;

			len = sizeof(*f);
			l3.frag_off = bpf_ntohs(f->frag_off) >> 3;
		} else if (nexthdr == IPPROTO_AH) {
			len = ((__u32)h->hdrlen + 2) * 4; /* 4-octet units - 2 */
		} else {
			len = ((__u32)h->hdrlen + 1) * 8; /* 8-octet units - 1 */
		}
		if (!pkt_ptr(ctx, off, len))
			return malformed(ctx);
		nexthdr = h->nexthdr;
		off += len;
		/*
		 * A non-first fragment: what follows is payload, not
		 * headers.  The fragment header names the protocol.
		 */
		if (l3.frag_off)
			break;
	}
	if (!l3.frag_off && is_ext_hdr(nexthdr))
		return malformed(ctx); /* more headers than the bound */

	l3.proto = nexthdr;
	l3.l4_off = off;
	__builtin_memcpy(&ahi, key.addr, 8);
	__builtin_memcpy(&alo, key.addr + 8, 8);
	c = sn_src_class_v6(bpf_be64_to_cpu(ahi), bpf_be64_to_cpu(alo), l3.gen);
	if (c == SN_SRC_LPM) {
		cls = bpf_map_lookup_elem(l3.gen ? (void *)&sn_lpm6_g1 :
						   (void *)&sn_lpm6_g0, &key);
		if (!cls)
			return XDP_ABORTED;
		c = (int)(*cls & 0x7fffffff);
	}
	if (c < 0)
		return XDP_ABORTED;
	l3.src_class = (__u32)c;
	return sn_decide(ctx, &l3);
}

/*
 * The active generation, read once per packet: every lookup of the packet
 * uses it, so a packet is judged wholly by the policy before a flip or
 * wholly by the one after (SPEC.md 4.3).
 */
static __always_inline __u32 sn_active_gen(void)
{
	__u32 zero = 0, *g = bpf_map_lookup_elem(&sn_gen, &zero);

	return g ? *(volatile __u32 *)g & 1 : 0;
}

SEC("xdp")
int sentry_xdp(struct xdp_md *ctx)
{
	struct ethhdr *eth;
	__be16 h_proto;
	__u32 off, gen;
	int i;

	eth = pkt_ptr(ctx, 0, sizeof(*eth));
	if (!eth)
		return malformed(ctx);
	h_proto = eth->h_proto;
	off = sizeof(*eth);

	for (i = 0; i < SN_MAX_VLAN_TAGS; i++) {
		struct sn_vlan_hdr *vh;

		if (h_proto != ETH_P_8021Q_BE && h_proto != ETH_P_8021AD_BE)
			break;
		vh = pkt_ptr(ctx, off, sizeof(*vh));
		if (!vh)
			return malformed(ctx);
		h_proto = vh->encap_proto;
		off += sizeof(*vh);
	}

	gen = sn_active_gen();
	if (h_proto == bpf_htons(ETH_P_IP))
		return sn_ipv4(ctx, off, gen);
	if (h_proto == bpf_htons(ETH_P_IPV6))
		return sn_ipv6(ctx, off, gen);
	if (h_proto == ETH_P_8021Q_BE || h_proto == ETH_P_8021AD_BE)
		return malformed(ctx); /* a third VLAN tag */
	count(SN_RULE_NON_IP, ctx);
	return XDP_PASS;
}

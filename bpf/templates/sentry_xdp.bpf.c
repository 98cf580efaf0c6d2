// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * 47Sentry XDP classifier.
 *
 * Per packet: parse once, one LPM lookup (by family) -> source class, one
 * L4 class (sn_proto, and sn_ports for a port-table protocol), one decision
 * lookup, one per-CPU counter update.  The work is the same for 1 rule or
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
 * 12. A classification lookup that misses (LPM, sn_proto, sn_ports,
 *     sn_decisions) or an out-of-range value can only be a loader bug (the
 *     compiler always emits ::/0 and 0.0.0.0/0): XDP_ABORTED, which drops
 *     and fires the xdp:xdp_exception tracepoint, uncounted.
 *
 * Counted bytes are the frame length as XDP sees it (data_end - data).
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

/* max_entries below are placeholders: the loader sizes them from the image. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct sn_lpm_v4_key);
	__type(value, __u32);
} sn_lpm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct sn_lpm_v6_key);
	__type(value, __u32);
} sn_lpm_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct sn_proto_entry);
} sn_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SN_PORT_TABLES * SN_PORTS_PER_TABLE);
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

#define ETH_P_8021Q_BE bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88a8)

#define IP_OFFSET_MASK 0x1fff /* IPv4 fragment offset, 8-byte units */
#define IPPROTO_ICMPV6_ 58

/*
 * Every offset into the packet is checked against this before it becomes a
 * pointer, so the verifier sees a bounded variable offset.  An XDP frame is
 * never longer, so the check never rejects a packet the data_end test would
 * have accepted.
 */
#define SN_MAX_PKT_OFF 0xffff

/* 802.1Q / 802.1ad tag as it sits after the MAC addresses. */
struct sn_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* What the parser learnt; everything the classifier needs. */
struct sn_pkt {
	__u32 l4_off;   /* offset of the L4 header */
	__u8 proto;     /* IP protocol / final IPv6 next header */
	__u8 nonfirst;  /* non-first fragment: no L4 header here */
	__u16 frag_off; /* fragment offset in 8-byte units */
};

enum sn_parse_res {
	SN_PARSE_OK = 0,
	SN_PARSE_MALFORMED,
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

/* Count one packet; a missing counter slot never changes the verdict. */
static __always_inline void count(__u32 rule_id, __u64 bytes)
{
	struct sn_counter *c = bpf_map_lookup_elem(&sn_counters, &rule_id);

	if (c) {
		/* Per-CPU slot and XDP runs without preemption: plain adds. */
		c->packets++;
		c->bytes += bytes;
	}
}

/* Bytes of L4 header a first fragment / whole packet must carry. */
static __always_inline __u32 l4_min_len(__u8 proto)
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
 * Checks shared by both families once the protocol is known: RFC 1858
 * overlapping TCP fragments, and the L4 header of anything that is not a
 * non-first fragment.
 */
static __always_inline int check_l4(struct xdp_md *ctx, const struct sn_pkt *p)
{
	__u32 need;

	if (p->nonfirst)
		return p->proto == IPPROTO_TCP && p->frag_off == 1 ?
			       SN_PARSE_MALFORMED :
			       SN_PARSE_OK;
	need = l4_min_len(p->proto);
	if (need && !pkt_ptr(ctx, p->l4_off, need))
		return SN_PARSE_MALFORMED;
	return SN_PARSE_OK;
}

static __always_inline int parse_ipv4(struct xdp_md *ctx, __u32 off,
				      struct sn_lpm_v4_key *key,
				      struct sn_pkt *p)
{
	struct iphdr *iph = pkt_ptr(ctx, off, sizeof(*iph));
	__u32 hlen;
	__u16 frag;

	if (!iph || iph->version != 4 || iph->ihl < 5)
		return SN_PARSE_MALFORMED;
	hlen = iph->ihl * 4;
	if (!pkt_ptr(ctx, off, hlen) || bpf_ntohs(iph->tot_len) < hlen)
		return SN_PARSE_MALFORMED;

	key->prefixlen = 32;
	__builtin_memcpy(key->addr, &iph->saddr, sizeof(key->addr));

	frag = bpf_ntohs(iph->frag_off);
	p->frag_off = frag & IP_OFFSET_MASK;
	p->nonfirst = p->frag_off != 0;
	p->proto = iph->protocol;
	p->l4_off = off + hlen;
	return check_l4(ctx, p);
}

static __always_inline int is_v4_mapped(const struct ipv6hdr *ip6)
{
	return ip6->saddr.in6_u.u6_addr32[0] == 0 &&
	       ip6->saddr.in6_u.u6_addr32[1] == 0 &&
	       ip6->saddr.in6_u.u6_addr32[2] == bpf_htonl(0xffff);
}

/* Minimal views of the extension headers the walk reads. */
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

static __always_inline int parse_ipv6(struct xdp_md *ctx, __u32 off,
				      struct sn_lpm_v6_key *key,
				      struct sn_pkt *p)
{
	struct ipv6hdr *ip6 = pkt_ptr(ctx, off, sizeof(*ip6));
	__u8 nexthdr;
	int i;

	if (!ip6 || ip6->version != 6)
		return SN_PARSE_MALFORMED;
	if (is_v4_mapped(ip6))
		return SN_PARSE_MALFORMED;

	key->prefixlen = 128;
	__builtin_memcpy(key->addr, &ip6->saddr, sizeof(key->addr));

	nexthdr = ip6->nexthdr;
	off += sizeof(*ip6);
	p->nonfirst = 0;
	p->frag_off = 0;

	/*
	 * One iteration per extension header; the loop is bounded so the
	 * verifier sees at most SN_MAX_IPV6_EXT_HDRS steps.
	 */
	for (i = 0; i < SN_MAX_IPV6_EXT_HDRS; i++) {
		if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
		    nexthdr == IPPROTO_DSTOPTS) {
			/* Length in 8-octet units, not counting the first 8. */
			struct sn_ext_hdr *h = pkt_ptr(ctx, off, 8);
			__u32 len;

			if (!h)
				return SN_PARSE_MALFORMED;
			len = ((__u32)h->hdrlen + 1) * 8;
			if (!pkt_ptr(ctx, off, len))
				return SN_PARSE_MALFORMED;
			nexthdr = h->nexthdr;
			off += len;
		} else if (nexthdr == IPPROTO_AH) {
			/* AH: length in 4-octet units, minus 2. */
			struct sn_ext_hdr *h = pkt_ptr(ctx, off, 8);
			__u32 len;

			if (!h)
				return SN_PARSE_MALFORMED;
			len = ((__u32)h->hdrlen + 2) * 4;
			if (!pkt_ptr(ctx, off, len))
				return SN_PARSE_MALFORMED;
			nexthdr = h->nexthdr;
			off += len;
		} else if (nexthdr == IPPROTO_FRAGMENT) {
			struct sn_frag_hdr *f = pkt_ptr(ctx, off, sizeof(*f));

			if (!f)
				return SN_PARSE_MALFORMED;
			nexthdr = f->nexthdr;
			off += sizeof(*f);
			p->frag_off = bpf_ntohs(f->frag_off) >> 3;
			if (p->frag_off) {
				/*
				 * What follows is fragment payload, not
				 * headers: the walk ends, the fragment
				 * header names the protocol.
				 */
				p->nonfirst = 1;
				break;
			}
		} else {
			break;
		}
	}
	if (!p->nonfirst &&
	    (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	     nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_AH ||
	     nexthdr == IPPROTO_FRAGMENT))
		return SN_PARSE_MALFORMED; /* more than the bound */

	p->proto = nexthdr;
	p->l4_off = off;
	return check_l4(ctx, p);
}

/* L4 class of the packet, or -1 (loader bug). */
static __always_inline __s64 l4_class(struct xdp_md *ctx, const struct sn_pkt *p)
{
	__u32 proto = p->proto;
	struct sn_proto_entry *pe = bpf_map_lookup_elem(&sn_proto, &proto);
	__u32 table, idx, *cls;
	__u16 *dport;

	if (!pe)
		return -1;
	table = pe->port_table;
	/* sn_port_tables is rodata: with no table in use this is dead code. */
	if (table == SN_PORT_TABLE_NONE || table > SN_PORT_TABLES ||
	    !(sn_port_tables & (1u << table)) || p->nonfirst)
		return pe->l4_noport;

	/* TCP and UDP both carry the destination port at offset 2. */
	dport = pkt_ptr(ctx, p->l4_off + 2, sizeof(*dport));
	if (!dport)
		return -2; /* only for a protocol without l4_min_len */
	idx = (table - 1) * SN_PORTS_PER_TABLE + bpf_ntohs(*dport);
	cls = bpf_map_lookup_elem(&sn_ports, &idx);
	if (!cls)
		return -1;
	return *cls;
}

SEC("xdp")
int sentry_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct sn_lpm_v6_key key6;
	struct sn_lpm_v4_key key4;
	struct sn_decision *d;
	struct ethhdr *eth;
	struct sn_pkt p = {};
	__u32 off, idx, *cls;
	__be16 h_proto;
	__s64 l4;
	int i, res;

	eth = pkt_ptr(ctx, 0, sizeof(*eth));
	if (!eth)
		goto malformed;
	h_proto = eth->h_proto;
	off = sizeof(*eth);

	for (i = 0; i < SN_MAX_VLAN_TAGS; i++) {
		struct sn_vlan_hdr *vh;

		if (h_proto != ETH_P_8021Q_BE && h_proto != ETH_P_8021AD_BE)
			break;
		vh = pkt_ptr(ctx, off, sizeof(*vh));
		if (!vh)
			goto malformed;
		h_proto = vh->encap_proto;
		off += sizeof(*vh);
	}

	if (h_proto == bpf_htons(ETH_P_IP)) {
		res = parse_ipv4(ctx, off, &key4, &p);
		if (res != SN_PARSE_OK)
			goto malformed;
		cls = bpf_map_lookup_elem(&sn_lpm_v4, &key4);
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		res = parse_ipv6(ctx, off, &key6, &p);
		if (res != SN_PARSE_OK)
			goto malformed;
		cls = bpf_map_lookup_elem(&sn_lpm_v6, &key6);
	} else if (h_proto == ETH_P_8021Q_BE || h_proto == ETH_P_8021AD_BE) {
		goto malformed; /* a third VLAN tag */
	} else {
		count(SN_RULE_NON_IP, bytes);
		return XDP_PASS;
	}
	if (!cls)
		return XDP_ABORTED;

	l4 = l4_class(ctx, &p);
	if (l4 == -2)
		goto malformed;
	if (l4 < 0 || l4 >= sn_l4_stride)
		return XDP_ABORTED;

	idx = *cls * sn_l4_stride + (__u32)l4;
	d = bpf_map_lookup_elem(&sn_decisions, &idx);
	if (!d)
		return XDP_ABORTED;

	switch (d->verdict) {
	case SN_VERDICT_ALLOW:
		count(d->rule_id, bytes);
		return XDP_PASS;
	case SN_VERDICT_BLOCK:
		count(d->rule_id, bytes);
		return XDP_DROP;
	default:
		return XDP_ABORTED;
	}

malformed:
	count(SN_RULE_MALFORMED, bytes);
	return XDP_DROP;
}

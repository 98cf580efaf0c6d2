// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reference programs for bench/verdict (not loaded by 47Sentry itself).
 *
 *  bench_empty  returns XDP_PASS: what BPF_PROG_TEST_RUN's own timing
 *               costs (the floor under every number);
 *  bench_base   parses exactly the headers sentry_xdp parses (up to two
 *               VLAN tags, IPv4 with options, IPv6 with up to 8 extension
 *               headers, the L4 header and the destination port) and
 *               passes: the cost of parsing, without any lookup;
 *  bench_lpm    the same parse plus one lookup of the source address in a
 *               plain kernel LPM trie of the family (bench_v4 / bench_v6),
 *               then passes: what the kernel's LPM trie costs alone.
 *
 * The parse is written once here and is deliberately a flattened copy of
 * the template's checks, so that bench_base is the honest "parse and
 * pass" cost of our parser's work.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/sentry_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* max_entries are set by bench/verdict before load. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct sn_lpm_v4_key);
	__type(value, __u32);
} bench_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct sn_lpm_v6_key);
	__type(value, __u32);
} bench_v6 SEC(".maps");

#define MAX_OFF 0x7fff

struct parsed {
	__u32 family; /* 4, 6, 0: not IP (or malformed) */
	__u32 proto, l4_off, frag, dport;
	__u8 src[16];
};

static __always_inline void *ptr(struct xdp_md *ctx, __u32 off, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (off > MAX_OFF || data + off + len > data_end)
		return NULL;
	return data + off;
}

static __always_inline int is_ext(__u32 h)
{
	return h == 0 || h == 43 || h == 60 || h == 44 || h == 51;
}

static __noinline int parse(struct xdp_md *ctx, struct parsed *p)
{
	struct ethhdr *eth = ptr(ctx, 0, sizeof(*eth));
	__u32 off = sizeof(struct ethhdr), i;
	__be16 h;

	if (!p)
		return -1;
	if (!eth)
		return -1;
	h = eth->h_proto;
	for (i = 0; i < SN_MAX_VLAN_TAGS; i++) {
		__be16 *vh;

		if (h != bpf_htons(0x8100) && h != bpf_htons(0x88a8))
			break;
		vh = ptr(ctx, off, 4);
		if (!vh)
			return -1;
		h = vh[1];
		off += 4;
	}
	if (h == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = ptr(ctx, off, sizeof(*ip));
		__u32 hl;

		if (!ip || ip->version != 4 || ip->ihl < 5)
			return -1;
		hl = ip->ihl * 4;
		if (!ptr(ctx, off, hl) || bpf_ntohs(ip->tot_len) < hl)
			return -1;
		__builtin_memcpy(p->src, &ip->saddr, 4);
		p->family = 4;
		p->proto = ip->protocol;
		p->frag = bpf_ntohs(ip->frag_off) & 0x1fff;
		p->l4_off = off + hl;
	} else if (h == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = ptr(ctx, off, sizeof(*ip6));
		__u32 nh;

		if (!ip6 || ip6->version != 6)
			return -1;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		nh = ip6->nexthdr;
		off += sizeof(*ip6);
		for (i = 0; i < SN_MAX_IPV6_EXT_HDRS && is_ext(nh); i++) {
			__u8 *e = ptr(ctx, off, 8);
			__u32 len;

			if (!e)
				return -1;
			if (nh == 44) {
				len = 8;
				p->frag = bpf_ntohs(*(__be16 *)(e + 2)) >> 3;
			} else if (nh == 51) {
				len = ((__u32)e[1] + 2) * 4;
			} else {
				len = ((__u32)e[1] + 1) * 8;
			}
			if (!ptr(ctx, off, len))
				return -1;
			nh = e[0];
			off += len;
			if (p->frag)
				break;
		}
		p->family = 6;
		p->proto = nh;
		p->l4_off = off;
	} else {
		return 0;
	}
	if (!p->frag && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP)) {
		__be16 *ports = ptr(ctx, p->l4_off,
				    p->proto == IPPROTO_TCP ? 20 : 8);

		if (!ports)
			return -1;
		p->dport = bpf_ntohs(ports[1]);
	}
	return 0;
}

SEC("xdp")
int bench_empty(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

SEC("xdp")
int bench_base(struct xdp_md *ctx)
{
	struct parsed p = {};

	if (parse(ctx, &p))
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int bench_lpm(struct xdp_md *ctx)
{
	struct parsed p = {};
	__u32 *cls = NULL;

	if (parse(ctx, &p))
		return XDP_DROP;
	if (p.family == 4) {
		struct sn_lpm_v4_key k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, p.src, 4);
		cls = bpf_map_lookup_elem(&bench_v4, &k);
	} else if (p.family == 6) {
		struct sn_lpm_v6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, p.src, 16);
		cls = bpf_map_lookup_elem(&bench_v6, &k);
	} else {
		return XDP_PASS;
	}
	/* Use the value, as the real program does, so the load is not dead. */
	return cls && *cls == 0xffffffffu ? XDP_DROP : XDP_PASS;
}

/*
 * Candidate structures, measured in isolation (BENCHMARKS.md "choosing
 * the structure"): a 2^24-entry array indexed by the top 24 bits of the
 * source (DIR-24-8's first level) and a sorted-range table behind a
 * 2^16-entry direct index (DXR's layout).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1 << 24);
	__type(key, __u32);
	__type(value, __u32);
} cand_dir24 SEC(".maps");

SEC("xdp")
int bench_dir24(struct xdp_md *ctx)
{
	struct parsed p = {};
	__u32 idx, *cls;

	if (parse(ctx, &p))
		return XDP_DROP;
	idx = (__u32)p.src[0] << 16 | (__u32)p.src[1] << 8 | p.src[2];
	cls = bpf_map_lookup_elem(&cand_dir24, &idx);
	return cls && *cls == 0xffffffffu ? XDP_DROP : XDP_PASS;
}

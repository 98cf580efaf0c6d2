// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The traffic generator of bench/flood (not loaded by 47Sentry itself).
 *
 * bench/flood runs this program with BPF_PROG_TEST_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES (tests/kernel/flood.h): every repeat of the
 * one base frame (an IPv4/UDP frame) goes through it and leaves with
 * XDP_TX out of the interface named as ingress, for real.  Each run
 * rewrites the frame's source address, its IPv4 header checksum and its
 * UDP destination port from the next entry of flood_srcs, so one call
 * sends a stream of distinct spoofed sources, the way a flood arrives,
 * instead of `repeat` copies of one source that would keep every lookup
 * structure of the filters under test hot in the cache.
 *
 * Each entry carries a label (the class of its source: in the blocklist
 * or not); the destination port encodes the label too, so the receiving
 * side can count what passed per class without looking at sources.
 * flood_state counts the frames sent per label.  Live frames run on the
 * CPU of the calling thread only, so plain increments suffice.
 *
 * Paced (interval_ns set), the program waits (bpf_loop on the clock)
 * until its frame is due and then sends it, so the frames leave evenly
 * spaced while userspace keeps calling with large repeat counts.  Not
 * pacing between calls: that sends bursts of a call's size, and many
 * small calls each set up and tear down a page pool (whose ids run out
 * while pools with frames in flight wait to be released).  Not dropping
 * the frames that are not due: every dropped frame goes back into the
 * page pool that the receiving CPU returns the sent frames to, and the
 * two CPUs then fight over its lock - that would be counted as the
 * receiver's cost.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#include "bench/flood_gen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FLOOD_GEN_MAX_SRCS);
	__type(key, __u32);
	__type(value, struct flood_gen_src);
} flood_srcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flood_gen_state);
} flood_state SEC(".maps");

struct wait_ctx {
	__u64 due;
};

static long wait_due(__u64 i, void *arg)
{
	struct wait_ctx *w = arg;

	(void)i;
	return bpf_ktime_get_ns() >= w->due; /* 1 ends the loop */
}

SEC("xdp")
int flood_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct flood_gen_state *st;
	struct flood_gen_src *s;
	__u32 zero = 0, i;

	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	st = bpf_map_lookup_elem(&flood_state, &zero);
	if (!st)
		return XDP_ABORTED;
	if (st->interval_ns) {
		struct wait_ctx w = { .due = st->due_ns };
		__u64 now;

		/* At most 2^20 clock reads (tens of ms): bounded, and far
		 * longer than any interval the bench asks for. */
		bpf_loop(1 << 20, wait_due, &w, 0);
		now = bpf_ktime_get_ns();
		/* Behind by more than a batch of frames (the thread was
		 * descheduled): restart the schedule rather than catch up
		 * in a burst. */
		st->due_ns = st->due_ns + 64 * st->interval_ns < now ?
				     now + st->interval_ns :
				     st->due_ns + st->interval_ns;
	}
	i = st->next;
	st->next = i + 1 < st->n_srcs ? i + 1 : 0;
	s = bpf_map_lookup_elem(&flood_srcs, &i);
	if (!s)
		return XDP_ABORTED;
	ip->saddr = s->saddr;
	ip->check = s->check;
	udp->dest = s->dport;
	st->sent[s->label % FLOOD_GEN_LABELS]++;
	return XDP_TX;
}

/*
 * The floor of the xdp-drop system: drops every frame, so its cost per
 * frame is what receiving a live frame on a veth costs before any
 * filtering (the ring, the frame's return to the generator's page pool).
 */
SEC("xdp")
int flood_drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}

/*
 * The floor of the xdp-parse system: reads the Ethernet and IPv4 headers
 * and the source address, as any filter must, then drops.  Against
 * flood_drop it shows what touching the frame costs on this veth (the
 * frame was written on the generator's CPU, so its first line is a
 * cross-CPU cache miss); against 47Sentry it shows what the lookup,
 * decision and counter add.
 */
SEC("xdp")
int flood_parse_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_DROP;
	/* A source no flood frame has: the load cannot be optimised away. */
	return ip->saddr == 0xffffffff ? XDP_PASS : XDP_DROP;
}

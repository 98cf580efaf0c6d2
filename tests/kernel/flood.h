/*
 * A line-rate traffic generator in the kernel: BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES runs a two-instruction XDP program that
 * returns XDP_TX on frames "received" on an interface, so every repeat of
 * a frame leaves through that interface for real - over a veth pair, into
 * the peer, where the program under test sees it as a native XDP frame.
 * (xdp-trafficgen does the same and fails to load on this kernel.)
 *
 * The context's data_end must equal the frame length and ingress_ifindex
 * names the interface; the kernel refuses live frames otherwise.
 * Header-only: tests/kernel/test_atomic and tests/tools/flood share it.
 */
#ifndef SN_TEST_FLOOD_H
#define SN_TEST_FLOOD_H

#include <errno.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <bpf/bpf.h>

#include "tests/kernel/pkt.h"

/* The generator's program: r0 = XDP_TX; exit. */
static inline int flood_prog_load(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = XDP_TX },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "sn_flood", "GPL", insns, 2,
			       NULL);

	return fd < 0 ? -errno : fd;
}

struct flood_src {
	uint8_t frame[PKT_MAX];
	uint32_t len;
	uint64_t sent; /* frames handed to the kernel (repeats) */
};

/* A UDP frame from src to 192.0.2.1 port dport. */
static inline int flood_src_init(struct flood_src *f, const char *src,
				 uint16_t dport)
{
	struct pkt_spec s = { .src = src, .proto = PKT_IPPROTO_UDP,
			      .dport = dport };
	struct sn_packet facts;

	f->len = (uint32_t)pkt_build(&s, f->frame, &facts);
	f->sent = 0;
	return f->len ? 0 : -EINVAL;
}

/* Send `repeat` copies of f out of ifindex.  0 or -errno. */
static inline int flood_send(int prog_fd, int ifindex, struct flood_src *f,
			     uint32_t repeat, uint32_t batch)
{
	struct xdp_md ctx = { .data = 0, .data_end = f->len,
			      .ingress_ifindex = (uint32_t)ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->frame,
		    .data_size_in = f->len, .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = repeat,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = batch);

	if (bpf_prog_test_run_opts(prog_fd, &o))
		return -errno;
	f->sent += repeat;
	return 0;
}

static inline uint64_t flood_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Round-robin over the sources, `repeat` frames each, until *stop or
 * until_ns; with pps > 0 paced to about that many frames per second.
 */
static inline int flood_run(int prog_fd, int ifindex, struct flood_src *src,
			    size_t n, uint32_t repeat, uint64_t pps,
			    volatile bool *stop, uint64_t until_ns)
{
	uint64_t start = flood_now_ns(), total = 0;
	int rc = 0;

	while (!rc && !(stop && *stop) && (!until_ns || flood_now_ns() < until_ns)) {
		for (size_t i = 0; i < n && !rc; i++) {
			rc = flood_send(prog_fd, ifindex, &src[i], repeat, 64);
			total += repeat;
		}
		if (pps) {
			uint64_t due = start + total * 1000000000ull / pps;
			uint64_t now = flood_now_ns();

			if (due > now) {
				struct timespec ts = {
					.tv_sec = (time_t)((due - now) / 1000000000ull),
					.tv_nsec = (long)((due - now) % 1000000000ull),
				};
				nanosleep(&ts, NULL);
			}
		}
	}
	return rc;
}

#endif

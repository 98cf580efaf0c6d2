/*
 * What bench/flood and its generator program (bench/flood_gen.bpf.c)
 * share: the source table and the generator's state.  Fixed-width types
 * only, so the BPF side and userspace lay them out alike.
 */
#ifndef SN_BENCH_FLOOD_GEN_H
#define SN_BENCH_FLOOD_GEN_H

#include <linux/types.h>

#define FLOOD_GEN_MAX_SRCS (1u << 20)
#define FLOOD_GEN_LABELS 4

/* One spoofed source, ready to write into the frame (network order). */
struct flood_gen_src {
	__u32 saddr;
	__u16 check; /* IPv4 header checksum of the base frame with saddr */
	__u16 dport; /* encodes the label for the receiving side's counters */
	__u32 label; /* index into flood_gen_state.sent */
	__u32 pad;
};

struct flood_gen_state {
	__u32 n_srcs;      /* entries of flood_srcs in use */
	__u32 next;        /* the entry the next frame takes */
	__u64 sent[FLOOD_GEN_LABELS];
	__u64 interval_ns; /* paced: ns between two frames; 0 as fast as it goes */
	__u64 due_ns;      /* paced: when the next frame may leave */
};

_Static_assert(sizeof(struct flood_gen_src) == 16, "flood_gen_src layout");
_Static_assert(sizeof(struct flood_gen_state) == 56, "flood_gen_state layout");

#endif

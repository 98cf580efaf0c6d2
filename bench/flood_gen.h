/*
 * The flood generator of bench/flood.  Its program (flood_gen.bpf.c) and
 * userspace (flood_gen.c) share the source table and the state below:
 * fixed-width types only, so both lay them out alike.  The userspace API
 * follows for the bench.
 */
#ifndef SN_BENCH_FLOOD_GEN_H
#define SN_BENCH_FLOOD_GEN_H

#include <linux/types.h>

#define FLOOD_GEN_MAX_SRCS (1u << 20)
#define FLOOD_GEN_LABELS 4

/* The labels of the sources (index of flood_gen_state.sent). */
enum {
	FLOOD_GEN_COUNTRY, /* inside a country prefix of the blocklist */
	FLOOD_GEN_RANGES,  /* inside an attack range of the blocklist */
	FLOOD_GEN_OUTSIDE, /* outside the blocklist */
};

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

#ifndef __BPF__
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bench/blocklist.h"
#include "tests/kernel/flood.h"

struct flood_gen {
	struct bpf_object *obj;
	int prog_fd, srcs_fd, state_fd;
	int drop_fd;               /* flood_drop (the bench's XDP_DROP floor) */
	int parse_drop_fd;         /* flood_parse_drop (reads the header, drops) */
	struct flood_src base;     /* the frame every run rewrites */
	uint64_t n_sources[FLOOD_GEN_LABELS];
	/* the running flood */
	pthread_t th;
	bool running;
	volatile bool stop, done;
	char ns[64], ifname[16];
	int cpu, nice, err, retries;
	uint32_t repeat, batch;
	uint64_t pps, until_ns;
	clockid_t clock; /* the thread's CPU time */
};

/*
 * Load the program (obj) and fill its table with n distinct sources drawn
 * from b, mix[0..2] percent per label, seeded; frames go to the IPv4
 * address and MAC pkt_build uses (192.0.2.1), UDP port port0 + label,
 * frame_len bytes.
 */
void flood_gen_load(struct flood_gen *g, const char *obj, const struct blocklist *b,
		    uint32_t n, const unsigned mix[3], uint16_t port0,
		    uint32_t frame_len, uint64_t seed);
/*
 * Flood out of ifname of namespace ns from a thread on cpu at nice, pps
 * frames per second (0: as fast as it goes), `repeat` frames per
 * BPF_PROG_TEST_RUN in batches of `batch`, for at most max_s seconds.
 */
void flood_gen_start(struct flood_gen *g, const char *ns, const char *ifname,
		     int cpu, int nice, uint64_t pps, uint32_t repeat, uint32_t batch,
		     double max_s);
/* Stop (within one batch); g->err says whether it failed, g->retries how
 * often it waited for a page pool id. */
void flood_gen_stop(struct flood_gen *g);
/* CPU time of the generator's thread so far, ns (0 when not running). */
uint64_t flood_gen_cpu_ns(const struct flood_gen *g);
/* Frames sent so far, per label. */
void flood_gen_sent(const struct flood_gen *g, uint64_t out[FLOOD_GEN_LABELS]);
void flood_gen_close(struct flood_gen *g);
#endif

#endif

/*
 * Why frames were lost at the receiver's ring (bench/flood).
 *
 * A veth's receive ring holds 256 frames: at 1 Mpps, 256 us.  Whenever
 * the receiving CPU does not take frames off it for longer, the ring
 * overflows and frames are lost before any filter sees them - flood and
 * legitimate alike.  That can be the receiver being too slow (the filter),
 * or something taking the CPU away from it.  ringloss.bpf.c watches three
 * things with tracepoints and reports them as episodes:
 *
 *  - LOSS:  frames the generator's XDP_TX could not put into the ring
 *           (xdp_devmap_xmit with drops), runs less than
 *           RINGLOSS_GAP_NS apart merged into one episode;
 *  - STEAL: an interval a task spent on the receiving CPU in which the
 *           wall clock ran more than RINGLOSS_STEAL_MIN_NS ahead of the
 *           task's own run time: the hypervisor had the vCPU (with
 *           paravirtual steal-time accounting the scheduler does not
 *           count stolen time as run time; the idle task is left out);
 *  - DRAIN: the kernel moving pages from the receiving CPU's per-CPU
 *           free list to the zone in one go (mm_page_pcpu_drain, pages
 *           less than RINGLOSS_DRAIN_GAP_NS apart are one drain).
 *
 * The bench then says, per phase, how many loss episodes followed host
 * steal or a page drain of the receiving CPU, and how many neither.
 */
#ifndef SN_BENCH_RINGLOSS_H
#define SN_BENCH_RINGLOSS_H

#include <linux/types.h>

#define RINGLOSS_GAP_NS 50000ull        /* losses closer: one episode */
#define RINGLOSS_STEAL_MIN_NS 30000ull  /* smaller steal: not reported */
#define RINGLOSS_DRAIN_GAP_NS 20000ull  /* pages drained closer: one drain */
#define RINGLOSS_DRAIN_MIN_NS 30000ull  /* shorter drain: not reported */

enum { RINGLOSS_LOSS = 1, RINGLOSS_STEAL, RINGLOSS_DRAIN };

/* One episode; times are bpf_ktime_get_ns (CLOCK_MONOTONIC). */
struct ringloss_event {
	__u32 kind;
	__u32 pad;
	__u64 start_ns, end_ns;
	__u64 amount; /* frames lost, ns stolen, pages drained */
};

/* An episode still open (the program emits it when the next begins). */
struct ringloss_open {
	__u64 start_ns, last_ns, amount;
};

/* What userspace sets (map ringloss_conf, one entry). */
struct ringloss_conf {
	__u32 rx_cpu;
	__s32 ifindex; /* the generator's interface; 0: none yet */
};

/* The program's global state (.bss): userspace reads it for the
 * episodes still open at the end of a phase. */
struct ringloss_state {
	struct ringloss_open loss, drain;
	__u64 in_ns, in_exec_ns; /* the running task on the rx CPU */
	__u64 lost_events;       /* ring buffer full: episodes not reported */
};

#ifndef __BPF__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bpf_object;
struct ring_buffer;

struct ringloss {
	struct bpf_object *obj;
	struct bpf_link *links[3];
	struct ring_buffer *rb;
	int bss_fd, conf_fd;
	struct ringloss_event *ev; /* episodes that may still matter */
	size_t n, cap;
	uint64_t lost_seen;        /* lost_events at the last window */
};

/* Why the ring overflowed in one window. */
struct ringloss_sum {
	unsigned episodes, overload, after_steal, after_drain;
	uint64_t frames, frames_overload, frames_steal, frames_drain;
	uint64_t longest_ns;             /* the longest loss episode */
	uint64_t steal_ns, steal_max_ns; /* host steal on the rx CPU */
	unsigned drains;                 /* page-list drains reported */
	uint64_t drain_max_ns;
	uint64_t lost_events;            /* in this window */
};

/* Load obj and attach it, watching rx_cpu.  Dies on failure. */
void ringloss_open(struct ringloss *r, const char *obj, int rx_cpu);
/* The interface the generator sends out of (its ifindex, in its own
 * namespace): losses elsewhere are not counted. */
void ringloss_watch(struct ringloss *r, int ifindex);
/* Attribute the loss episodes that started in [t0_ns, t1_ns) (windows in
 * time order; earlier episodes are forgotten): one longer
 * than 5 ms is overload (the receiver did not keep up); a shorter one is
 * put down to host steal (first) or to a page drain when one of at least
 * 100 us overlaps it or ends less than a ring's worth (300 us) before it;
 * what is left had neither. */
void ringloss_window(struct ringloss *r, uint64_t t0_ns, uint64_t t1_ns,
		     struct ringloss_sum *out);
void ringloss_close(struct ringloss *r);
#endif

#endif

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Why frames were lost at the receiver's ring: bench/flood's observer
 * (bench/ringloss.h says what it reports; not loaded by 47Sentry itself).
 *
 * BTF tracepoints (tp_btf: raw tracepoints with typed arguments; this
 * kernel has neither kprobes nor ftrace, and these need neither).  Kernel
 * structures are read through CO-RE with only the fields used declared
 * here.  The loss episode is only written from the CPU that flushes the
 * generator's frames (its one thread), the task and drain state only
 * from the receiving CPU, so plain updates suffice.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bench/ringloss.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	struct sched_entity se;
} __attribute__((preserve_access_index));

struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} ringloss_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ringloss_conf);
} ringloss_conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ringloss_state);
} ringloss_st SEC(".maps");

static __always_inline void emit(struct ringloss_state *st, __u32 kind, __u64 start,
				 __u64 end, __u64 amount)
{
	struct ringloss_event *e = bpf_ringbuf_reserve(&ringloss_events, sizeof(*e), 0);

	if (!e) {
		st->lost_events++;
		return;
	}
	e->kind = kind;
	e->pad = 0;
	e->start_ns = start;
	e->end_ns = end;
	e->amount = amount;
	bpf_ringbuf_submit(e, 0);
}

/* Add amount at now to the open episode o; emit o first when the last
 * addition was more than gap ago (and it lasted at least min_ns). */
static __always_inline void episode_add(struct ringloss_state *st,
					struct ringloss_open *o, __u32 kind,
					__u64 now, __u64 amount, __u64 gap, __u64 min_ns)
{
	if (o->start_ns && now - o->last_ns > gap) {
		if (o->last_ns - o->start_ns >= min_ns)
			emit(st, kind, o->start_ns, o->last_ns, o->amount);
		o->start_ns = 0;
		o->amount = 0;
	}
	if (!o->start_ns)
		o->start_ns = now;
	o->last_ns = now;
	o->amount += amount;
}

/* (from_dev, to_dev, sent, drops, err): drops are frames the driver's
 * ndo_xdp_xmit refused - for a veth, its peer's ring was full. */
SEC("tp_btf/xdp_devmap_xmit")
int ringloss_xmit(__u64 *ctx)
{
	const struct net_device *to = (const void *)ctx[1];
	int drops = (int)ctx[3];
	__u32 zero = 0;
	struct ringloss_conf *c = bpf_map_lookup_elem(&ringloss_conf, &zero);
	struct ringloss_state *st = bpf_map_lookup_elem(&ringloss_st, &zero);

	if (drops <= 0 || !c || !st || !to || to->ifindex != c->ifindex)
		return 0;
	episode_add(st, &st->loss, RINGLOSS_LOSS, bpf_ktime_get_ns(), (__u64)drops,
		    RINGLOSS_GAP_NS, 0);
	return 0;
}

/* (preempt, prev, next, prev_state): the interval prev just spent on the
 * CPU ends; wall time beyond its run time was stolen. */
SEC("tp_btf/sched_switch")
int ringloss_switch(__u64 *ctx)
{
	const struct task_struct *prev = (const void *)ctx[1];
	const struct task_struct *next = (const void *)ctx[2];
	__u32 zero = 0;
	struct ringloss_conf *c = bpf_map_lookup_elem(&ringloss_conf, &zero);
	struct ringloss_state *st = bpf_map_lookup_elem(&ringloss_st, &zero);
	__u64 now, wall, ran;

	if (!c || !st || bpf_get_smp_processor_id() != c->rx_cpu || !prev || !next)
		return 0;
	now = bpf_ktime_get_ns();
	/* The idle task accrues no run time: its intervals say nothing. */
	if (st->in_ns && prev->pid != 0) {
		wall = now - st->in_ns;
		ran = prev->se.sum_exec_runtime - st->in_exec_ns;
		if (wall > ran + RINGLOSS_STEAL_MIN_NS)
			emit(st, RINGLOSS_STEAL, st->in_ns, now, wall - ran);
	}
	st->in_ns = now;
	st->in_exec_ns = next->se.sum_exec_runtime;
	return 0;
}

/* (page, order, migratetype): one block leaves the CPU's free list. */
SEC("tp_btf/mm_page_pcpu_drain")
int ringloss_drain(__u64 *ctx)
{
	__u32 order = (__u32)ctx[1] & 15, zero = 0;
	struct ringloss_conf *c = bpf_map_lookup_elem(&ringloss_conf, &zero);
	struct ringloss_state *st = bpf_map_lookup_elem(&ringloss_st, &zero);

	if (!c || !st || bpf_get_smp_processor_id() != c->rx_cpu)
		return 0;
	episode_add(st, &st->drain, RINGLOSS_DRAIN, bpf_ktime_get_ns(), 1ull << order,
		    RINGLOSS_DRAIN_GAP_NS, RINGLOSS_DRAIN_MIN_NS);
	return 0;
}

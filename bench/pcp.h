/*
 * The receiving CPU's per-CPU free page list, for bench/flood.
 *
 * The live-frames generator allocates a page per frame on its CPU; the
 * receiver frees the pages its generator's small page pool cannot take
 * back on the receiving CPU (tens of thousands a second at 1 Mpps).  The
 * kernel keeps freed pages on a per-CPU list and returns them to the zone
 * in one go when the list is full: with this machine's default list
 * (about 10,000 pages) that is 2,016 pages at a time, 450-600 us on the
 * receiving CPU, longer than the veth's 256-frame ring lasts at 1 Mpps -
 * so every drain lost frames, flood and legitimate (BENCHMARKS.md, flood
 * run 4).  A NIC driver recycles its pages on the receiving CPU and never
 * sends this traffic to the allocator; a short list (vm.
 * percpu_pagelist_high_fraction) turns the long drains into short ones.
 * The sysctl is global: the bench sets it for the run and puts the old
 * value back at exit (not after SIGKILL: then `sysctl
 * vm.percpu_pagelist_high_fraction=0` restores the kernel's default).
 */
#ifndef SN_BENCH_PCP_H
#define SN_BENCH_PCP_H

#include <stdbool.h>

struct pcp_tune {
	bool changed;
	long fraction_before, fraction;
	long high_before;  /* pages, the largest zone's list of the CPU */
	long high;         /* what the fraction sizes it to */
};

/* Size the per-CPU lists so that cpu's holds about `pages` pages (the
 * kernel's floor is 4 batches).  Dies on failure. */
void pcp_tune(struct pcp_tune *t, int cpu, unsigned pages);
/* Put the machine's setting back (idempotent). */
void pcp_restore(struct pcp_tune *t);

#endif

/*
 * vm.percpu_pagelist_high_fraction for bench/flood (bench/pcp.h says
 * why).  With the fraction f set, the kernel sizes each CPU's list of a
 * zone to managed_pages / f / (CPUs of the node) - fixed, no auto-tuning
 * (mm/page_alloc.c, zone_highsize) - so f follows from the pages wanted.
 */
#include "bench/pcp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/die.h"

#define SYSCTL "/proc/sys/vm/percpu_pagelist_high_fraction"
#define MIN_FRACTION 8 /* the sysctl's own minimum */

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v;

	if (!f || fscanf(f, "%ld", &v) != 1)
		die("cannot read %s: %s", path, strerror(errno));
	fclose(f);
	return v;
}

/* 0, or -1 with errno set. */
static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int bad;

	if (!f)
		return -1;
	bad = fprintf(f, "%ld\n", v) < 0;
	return fclose(f) || bad ? -1 : 0;
}

/*
 * /proc/zoneinfo: the zone with the most managed pages, and the "high"
 * of cpu's list in it.
 */
static void largest_zone(int cpu, long *managed, long *high)
{
	FILE *f = fopen("/proc/zoneinfo", "r");
	char line[256];
	long zone_managed = 0;
	int in_cpu = -1;

	*managed = *high = 0;
	if (!f)
		die("cannot read /proc/zoneinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		long v;
		int c;

		if (!strncmp(line, "Node ", 5)) {
			zone_managed = 0;
			in_cpu = -1;
		} else if (sscanf(line, " managed %ld", &v) == 1) {
			zone_managed = v;
		} else if (sscanf(line, " cpu: %d", &c) == 1) {
			in_cpu = c;
		} else if (sscanf(line, " high: %ld", &v) == 1 && in_cpu == cpu &&
			   zone_managed > *managed) {
			*managed = zone_managed;
			*high = v;
		}
	}
	fclose(f);
	if (!*managed)
		die("/proc/zoneinfo names no zone with CPU%d's page list", cpu);
}

void pcp_tune(struct pcp_tune *t, int cpu, unsigned pages)
{
	long managed, node_cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(t, 0, sizeof(*t));
	t->fraction_before = read_long(SYSCTL);
	largest_zone(cpu, &managed, &t->high_before);
	t->fraction = managed / ((long)(pages ? pages : 1) * (node_cpus > 0 ? node_cpus : 1));
	if (t->fraction < MIN_FRACTION)
		t->fraction = MIN_FRACTION;
	t->changed = true; /* from here on, exit restores */
	if (write_long(SYSCTL, t->fraction))
		die("cannot write %ld to %s: %s", t->fraction, SYSCTL, strerror(errno));
	/* What the kernel sets the list to (zoneinfo shows it only once the
	 * list has shrunk), at least its floor of 4 batches. */
	t->high = managed / t->fraction / (node_cpus > 0 ? node_cpus : 1);
}

void pcp_restore(struct pcp_tune *t)
{
	if (!t->changed)
		return;
	t->changed = false;
	/* Not die(): this runs from the exit handler. */
	if (write_long(SYSCTL, t->fraction_before))
		fprintf(stderr, "bench/flood: could not restore %s to %ld: %s\n", SYSCTL,
			t->fraction_before, strerror(errno));
}

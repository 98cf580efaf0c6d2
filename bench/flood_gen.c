/* See flood_gen.h: the userspace half of the generator. */
#include "bench/flood_gen.h"
#include "bench/die.h"
#include "bench/nscount.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static uint16_t ip_checksum(const uint8_t *h, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)h[i] << 8 | h[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void on_sigusr1(int sig)
{
	(void)sig; /* only interrupts a BPF_PROG_TEST_RUN (EINTR) */
}

void flood_gen_load(struct flood_gen *g, const char *obj, const struct blocklist *b,
		    uint32_t n, const unsigned mix[3], uint16_t port0,
		    uint32_t frame_len, uint64_t seed)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 }; /* no SA_RESTART */
	struct flood_gen_state st = { .n_srcs = n };
	struct bpf_program *prog;
	uint64_t rs = seed * 0x9e3779b97f4a7c15ull + 1;
	uint32_t zero = 0;
	uint8_t *ip;

	memset(g, 0, sizeof(*g));
	if (!n || n > FLOOD_GEN_MAX_SRCS || mix[0] + mix[1] + mix[2] != 100 ||
	    frame_len < 42 || frame_len > PKT_MAX)
		die("flood_gen_load: bad arguments");
	sigaction(SIGUSR1, &sa, NULL);
	g->obj = bpf_object__open_file(obj, NULL);
	if (!g->obj || bpf_object__load(g->obj))
		die("cannot load %s: %s", obj, strerror(errno));
	prog = bpf_object__find_program_by_name(g->obj, "flood_gen");
	g->prog_fd = prog ? bpf_program__fd(prog) : -1;
	prog = bpf_object__find_program_by_name(g->obj, "flood_drop");
	g->drop_fd = prog ? bpf_program__fd(prog) : -1;
	prog = bpf_object__find_program_by_name(g->obj, "flood_parse_drop");
	g->parse_drop_fd = prog ? bpf_program__fd(prog) : -1;
	g->srcs_fd = bpf_object__find_map_fd_by_name(g->obj, "flood_srcs");
	g->state_fd = bpf_object__find_map_fd_by_name(g->obj, "flood_state");
	if (g->prog_fd < 0 || g->drop_fd < 0 || g->parse_drop_fd < 0 || g->srcs_fd < 0 ||
	    g->state_fd < 0)
		die("%s: not the flood generator", obj);

	/* The base frame: UDP to 192.0.2.1 (tests/kernel/pkt.h), zero UDP
	 * checksum (optional in IPv4), padded with zeros to frame_len. */
	if (flood_src_init(&g->base, "198.18.0.1", port0))
		die("cannot build the base frame");
	g->base.len = frame_len;
	ip = g->base.frame + 14;

	for (uint32_t i = 0; i < n; i++) {
		unsigned r = (unsigned)(bl_rand(&rs) % 100);
		uint32_t label = r < mix[0] ? FLOOD_GEN_COUNTRY :
				 r < mix[0] + mix[1] ? FLOOD_GEN_RANGES : FLOOD_GEN_OUTSIDE;
		struct flood_gen_src s = { .label = label,
					   .dport = htons((uint16_t)(port0 + label)) };
		uint32_t a;

		if (label == FLOOD_GEN_COUNTRY)
			a = bl_inside(&b->country.v[bl_rand(&rs) % b->country.n], &rs);
		else if (label == FLOOD_GEN_RANGES)
			a = bl_inside(&b->ranges.v[bl_rand(&rs) % b->ranges.n], &rs);
		else
			a = bl_outside(b, &rs);
		if (bl_covers(b, a) != (label != FLOOD_GEN_OUTSIDE))
			die("internal: a source's label disagrees with the blocklist");
		s.saddr = htonl(a);
		/* Only the source changes, so the header's checksum can be
		 * computed here once per source. */
		memcpy(ip + 12, &s.saddr, 4);
		ip[10] = ip[11] = 0;
		s.check = htons(ip_checksum(ip, 20));
		if (bpf_map_update_elem(g->srcs_fd, &i, &s, BPF_ANY))
			die("flood_srcs: %s", strerror(errno));
		g->n_sources[label]++;
	}
	if (bpf_map_update_elem(g->state_fd, &zero, &st, BPF_ANY))
		die("flood_state: %s", strerror(errno));
}

void flood_gen_sent(const struct flood_gen *g, uint64_t out[FLOOD_GEN_LABELS])
{
	struct flood_gen_state st;
	uint32_t zero = 0;

	if (bpf_map_lookup_elem(g->state_fd, &zero, &st))
		die("flood_state: %s", strerror(errno));
	memcpy(out, st.sent, sizeof(st.sent));
}

static void *gen_main(void *arg)
{
	struct flood_gen *g = arg;
	cpu_set_t set;
	int ifindex;

	g->err = ns_enter(g->ns);
	if (g->err) {
		g->done = true;
		return NULL;
	}
	CPU_ZERO(&set);
	CPU_SET(g->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	/* The thread may have inherited a real-time policy: the generator
	 * is an ordinary task. */
	struct sched_param sp = { 0 };

	pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	setpriority(PRIO_PROCESS, (id_t)gettid(), g->nice);
	ifindex = (int)if_nametoindex(g->ifname);
	if (!ifindex) {
		g->err = -ENODEV;
		g->done = true;
		return NULL;
	}
	/*
	 * Every call adds the program to the kernel's XDP dispatcher and
	 * removes it again, two RCU grace periods (milliseconds), so calls
	 * are long (g->repeat frames); flood_gen_stop interrupts one with a
	 * signal.  Every call also sets up a page pool with an id from a
	 * global space of 64k: pools with frames still in flight keep theirs
	 * until released, and other live-frames users on the machine draw
	 * from the same space, so running out (ENOSPC) is transient - wait,
	 * a bounded number of times, and count it.
	 */
	while (!g->stop && flood_now_ns() < g->until_ns) {
		g->err = flood_send(g->prog_fd, ifindex, &g->base, g->repeat, g->batch);
		if (!g->err || g->err == -EINTR)
			continue;
		if (g->err != -ENOSPC || g->retries >= 50)
			break;
		g->retries++;
		usleep(100000);
	}
	if (g->err == -EINTR)
		g->err = 0;
	g->done = true;
	return NULL;
}

void flood_gen_start(struct flood_gen *g, const char *ns, const char *ifname,
		     int cpu, int nice, uint64_t pps, uint32_t repeat, uint32_t batch,
		     double max_s)
{
	struct flood_gen_state st;
	uint32_t zero = 0;

	if (g->running)
		die("flood_gen_start: already running");
	snprintf(g->ns, sizeof(g->ns), "%s", ns);
	snprintf(g->ifname, sizeof(g->ifname), "%s", ifname);
	g->cpu = cpu;
	g->nice = nice;
	g->pps = pps;
	g->repeat = repeat;
	g->batch = batch;
	g->stop = false;
	g->done = false;
	g->err = 0;
	g->retries = 0;
	g->until_ns = flood_now_ns() + (uint64_t)(max_s * 1e9);
	/* The pacing is the program's (flood_gen.bpf.c). */
	if (bpf_map_lookup_elem(g->state_fd, &zero, &st))
		die("flood_state: %s", strerror(errno));
	st.interval_ns = pps ? 1000000000ull / pps : 0;
	st.due_ns = 0;
	if (bpf_map_update_elem(g->state_fd, &zero, &st, BPF_ANY))
		die("flood_state: %s", strerror(errno));
	if (pthread_create(&g->th, NULL, gen_main, g))
		die("pthread_create");
	if (pthread_getcpuclockid(g->th, &g->clock))
		die("pthread_getcpuclockid");
	g->running = true;
}

uint64_t flood_gen_cpu_ns(const struct flood_gen *g)
{
	struct timespec ts;

	if (!g->running || clock_gettime(g->clock, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void flood_gen_stop(struct flood_gen *g)
{
	if (!g->running)
		return;
	g->stop = true;
	/* A signal that lands just before the thread enters its next call
	 * interrupts nothing: repeat it until the thread is out (bounded
	 * by the length of one call). */
	for (int i = 0; i < 1000 && !g->done; i++) {
		pthread_kill(g->th, SIGUSR1);
		usleep(10000);
	}
	pthread_join(g->th, NULL);
	g->running = false;
}

void flood_gen_close(struct flood_gen *g)
{
	flood_gen_stop(g);
	bpf_object__close(g->obj);
	g->obj = NULL;
}

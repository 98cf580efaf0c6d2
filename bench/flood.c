/*
 * bench/flood: 47Sentry beside nftables and iptables under a live-frames
 * flood, with legitimate TCP beside it, side by side in one run.  Needs
 * root.  BENCHMARKS.md ("Flood") records runs and discusses them.
 *
 *   build/bench/flood [--systems LIST] [--seconds S] [--pps N]
 *                     [--stats-seconds S] [--warmup S] [--sources N]
 *                     [--mix C,A,O] [--country CC[,CC...]]
 *                     [--attack CIDR[,CIDR...]] [--rate R] [--gen-cpu N]
 *                     [--rx-cpu N] [--repeat N] [--spin 0|1] [--seed N]
 *                     [--verbose 0|1] [--data DIR] [--work DIR]
 *                     [--pcp-high PAGES] [--gen-obj PATH]
 *                     [--ringloss-obj PATH] [--sentryd PATH] [--probe PATH]
 *                     [--client PATH]
 *
 * Systems (--systems, default sentry,nft-netdev,nft-inet,iptables,none,
 * xdp-drop,xdp-parse):
 *   sentry           sentryd on the protected interface, XDP in native
 *                    (driver) mode, which veth has;
 *   nft-netdev       an nftables interval set, netdev family, ingress hook
 *                    of the protected interface;
 *   nft-inet         the same set in an inet table, prerouting hook at
 *                    priority raw (-300, before conntrack would run);
 *   iptables         iptables -t raw -A PREROUTING -m set --match-set ...
 *                    src -j DROP with an ipset hash:net; `iptables` is what
 *                    Debian's alternatives point at (iptables-nft by
 *                    default; the row's title says which);
 *   iptables-legacy  the same with iptables-legacy (not in the default);
 *   none             no filter: what the frames cost when nothing drops;
 *   xdp-drop         an XDP program that drops every frame: the floor of
 *                    receiving a live frame on this veth (no client);
 *   xdp-parse        an XDP program that reads the frame's Ethernet and
 *                    IPv4 headers and source, then drops it: the floor of
 *                    any filter, which must look at the frame (no client).
 * Every system enforces the same blocklist (bench/blocklist.h): the real
 * country list(s) --country (default us: 27,769 prefixes, from --data,
 * default ../shared/data/country-ip-blocks) plus the attack ranges
 * --attack (default 198.18.0.0/15,203.0.113.0/24), nested prefixes
 * removed, written once to --work and loaded from there by all.
 *
 * Topology (new for every system; names unique to the run; everything is
 * removed at exit, also on failure and Ctrl-C):
 *
 *   ns atk: generator --live frames--> [wire0] ====== [fpID] ns host:
 *                                        |     veth    protected iface,
 *                                      [br0]           192.0.2.1, echo
 *                                        |             server on :8080
 *                                      [lan0] ====== [cli0] ns cli, 192.0.2.2
 *
 * The flood and the legitimate traffic arrive on the same interface, the
 * same receive queue and the same CPU: wire0 is bridged with the client's
 * link, so the client's TCP crosses the very veth the flood uses, and a
 * receiver that cannot keep up loses legitimate packets where it loses
 * flood packets (the veth's ring, like a NIC's RX ring).  A second link
 * for the client would share a CPU with the flood, not the queue.  (TSO
 * is off on wire0 for that: see topo_up.)
 *
 * Receiver: the protected interface has GRO on, which gives a veth its
 * NAPI instance (without it a veth cannot receive live frames at all; a
 * NIC has GRO on by default), and threaded NAPI, so all its receive
 * processing - the XDP program, or skb allocation, GRO, the netfilter
 * hooks and the drop - runs in one kernel thread, napi/fpID-N, pinned to
 * --rx-cpu (default 1) at SCHED_FIFO (it preempts tasks, as softirq does).
 * The echo server (tests/tools/probe serve) runs there too (it is the
 * protected host), SCHED_FIFO below the NAPI thread.  With --spin 1
 * (default) an idle-priority thread keeps --rx-cpu out of HLT: on this VM
 * a halted vCPU can take longer to wake than the veth's 256-slot ring
 * lasts at 1 Mpps.
 *
 * Flood (bench/flood_gen.h): BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES from a thread on --gen-cpu (default 0, nice
 * -20) in ns atk runs bench/flood_gen.bpf.c, which sends a 60-byte UDP
 * frame to 192.0.2.1 per run, from the next of --sources (default 65536)
 * distinct spoofed sources: --mix C,A,O percent (default 45,45,10) inside
 * the country list, inside the attack ranges, and outside the blocklist.
 * A source's class (its label) is encoded in the UDP destination port
 * (9000 + label).  Two flood phases:
 *   max   as fast as the generator goes (batches of 256, calls of
 *         --repeat frames, default 4M): it outruns every receiver here,
 *         so this is the receivers' capacity, the veth's ring overflowing;
 *   paced --pps frames per second (default 1,000,000), spaced by the
 *         program itself, in batches of 64 us of frames (64 at 1 Mpps):
 *         a rate the nftables hooks keep up with, so every filter is
 *         measured at the same load.
 * What the generator does to the measurement, and why these choices, is
 * in BENCHMARKS.md.
 *
 * Legitimate traffic: bench/flood_client.c from ns cli (on --gen-cpu, at
 * SCHED_FIFO: it is another host, the generator must not delay it), one
 * persistent TCP connection, --rate requests per second (default 2000),
 * 64 bytes echoed, the latency of each; without flood, under the max
 * flood and under the paced flood.
 *
 * Counting, identical for every system: an nftables table in ns host at
 * hook prerouting, priority 300 (after every filter under test) counts
 * what passed, per label (UDP port) and the client's TCP segments, drops
 * the flood frames there (so a frame that passes costs every system the
 * same) and accepts the client's.  Sent: the generator's per-label
 * counters (its map); into the receiver and lost at its full ring:
 * wire0's ethtool counters tx_queue_0_xdp_xmit and _errors; the client's
 * segments: cli0's tx_packets.  Dropped by the filter = into the receiver
 * - passed.  All of it is read in about a millisecond (bench/nscount.h),
 * under a steady flood, before the client starts and after it ended.
 *
 * CPU: the receiver's CPU time is the run time of its NAPI thread
 * (/proc/PID/schedstat, ns) over the window; ns per dropped frame = that
 * / frames the filter dropped (so it includes what the frames that pass
 * and the client's packets cost - the same in every system).  The
 * softirq share of --rx-cpu (/proc/stat) shows that the receive work is
 * the thread's, not softirq's.  For sentry, one more paced phase
 * (--stats-seconds, default 3; 0 skips it) enables BPF run-time
 * statistics and reports the XDP program's own ns per run; they cost
 * two clock reads per run, so the measured phases run without them.
 *
 * Ring overflows (bench/ringloss.h): tracepoints of the whole run record
 * every run of frames the veth's ring refused, the time the hypervisor
 * took from the receiving vCPU and the kernel's drains of its per-CPU page
 * list; the RING OVERFLOWS table puts each loss in the paced phase down to
 * one of them, or to neither.
 *
 * Page lists (bench/pcp.h): the generator frees pages on the receiving
 * CPU, and the kernel's default per-CPU list returns them to the zone in
 * drains longer than the ring lasts.  --pcp-high (default 256 pages; 0
 * leaves the machine alone) shortens the lists for the run
 * (vm.percpu_pagelist_high_fraction, restored at exit).
 *
 * Priorities: the NAPI thread, the server, the client and the bench are
 * SCHED_FIFO (in that order), the generator nice -20, so that other work
 * on a shared machine disturbs the numbers less; the kernel's real-time
 * throttling still leaves it 5 % of each CPU.
 *
 * Every wait is bounded; every phase ends after its seconds.  Output: the
 * tables, then whether each target of issue 7 is met, per flood phase.
 * Exit 0, 2 on any failure (after removing what the run made).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench/blocklist.h"
#include "bench/die.h"
#include "bench/flood_gen.h"
#include "bench/nscount.h"
#include "bench/pcp.h"
#include "bench/ringloss.h"
#include "runtime/dataplane.h"

/* Labels: the flood's source classes (flood_gen.h), then the client. */
enum { L_COUNTRY = FLOOD_GEN_COUNTRY, L_RANGES = FLOOD_GEN_RANGES,
       L_OUTSIDE = FLOOD_GEN_OUTSIDE, L_LEGIT, N_LABELS };
static const char *const label_name[N_LABELS] = {
	"attack, in blocklist: country list",
	"attack, in blocklist: attack ranges",
	"spoofed, outside blocklist",
	"legitimate client",
};
/* What a blocklist is meant to do with each class. */
static const char *const label_policy[N_LABELS] = { "drop", "drop", "pass", "pass" };

/* pkt_build (tests/kernel/pkt.h) addresses frames to this MAC and IPv4
 * address; the protected interface takes both. */
#define HOST_ADDR "192.0.2.1"
#define HOST_MAC "02:00:00:00:00:02"
#define CLI_ADDR "192.0.2.2"
#define CLI_MAC "02:00:00:00:00:03"
#define SRV_PORT 8080
#define FLOOD_PORT0 9000
#define FRAME_LEN 60 /* minimum Ethernet frame without FCS */
/*
 * Frames per live-frames batch.  It also sizes the page pool of a call,
 * and so its recycling ring: a small pool cannot take back the pages the
 * receiving CPU returns, and both CPUs go to the page allocator instead
 * (the receiver pays).  But a batch runs with bottom halves off, and the
 * paced program waits inside it, so a paced batch also holds its CPU -
 * the client's - for batch / pps seconds.  The kernel's maximum when
 * unpaced; paced, what the generator sends in PACED_HOLD_US (64 frames
 * at 1 Mpps), at least 8.
 */
#define MAX_BATCH 256
#define PACED_HOLD_US 64

#define RT_NAPI 50
#define RT_SERVER 45
#define RT_CLIENT 40
#define RT_BENCH 30
#define NICE_GEN (-20)

enum sys_kind {
	SYS_SENTRY, SYS_NFT_NETDEV, SYS_NFT_INET, SYS_IPT, SYS_IPT_LEGACY, SYS_NONE,
	SYS_XDP_DROP, SYS_XDP_PARSE,
};
static const struct {
	const char *key, *title;
} sys_info[] = {
	[SYS_SENTRY] = { "sentry", "47Sentry XDP native" },
	[SYS_NFT_NETDEV] = { "nft-netdev", "nft netdev ingress" },
	[SYS_NFT_INET] = { "nft-inet", "nft inet prerouting" },
	[SYS_IPT] = { "iptables", "iptables raw + ipset" },
	[SYS_IPT_LEGACY] = { "iptables-legacy", "iptables-legacy raw+ipset" },
	[SYS_NONE] = { "none", "no filter" },
	[SYS_XDP_DROP] = { "xdp-drop", "XDP_DROP all (floor)" },
	[SYS_XDP_PARSE] = { "xdp-parse", "XDP read header, drop" },
};
#define N_SYS (sizeof(sys_info) / sizeof(sys_info[0]))

struct opts {
	const char *systems, *data, *work, *gen_obj, *ringloss_obj, *sentryd, *probe, *client;
	const char *country, *attack;
	double seconds, stats_seconds, warmup;
	unsigned sources, mix[3], rate, repeat, pcp_high;
	uint64_t pps, seed;
	int gen_cpu, rx_cpu;
	bool spin, verbose;
};

static volatile sig_atomic_t interrupted;

static double now_s(void)
{
	return (double)flood_now_ns() / 1e9;
}

/* Sleep s seconds in short steps, so Ctrl-C ends the run promptly. */
static void nap(double s)
{
	double until = now_s() + s;

	while (now_s() < until) {
		if (interrupted)
			die("interrupted");
		usleep(20000);
	}
}

/* A shell command's wait status (-1: it could not run).  Not system():
 * that ignores SIGINT while the command runs, and a Ctrl-C during a long
 * `nft -f` would be lost. */
static int run_sh(const char *cmd)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = run_sh(cmd);
	if (interrupted || (rc != -1 && WIFSIGNALED(rc)))
		die("interrupted");
	if (rc)
		die("failed: %s", cmd);
}

/* stdout of a shell command (malloc'd, NUL-terminated; "" on failure). */
static char *capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *capture(const char *fmt, ...)
{
	char cmd[8192];
	size_t cap = 16384, n = 0;
	char *out = malloc(cap);
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (!out)
		die("out of memory");
	out[0] = '\0';
	f = popen(cmd, "r");
	if (!f)
		return out;
	for (;;) {
		size_t r;

		if (n + 4096 >= cap && !(out = realloc(out, cap *= 2)))
			die("out of memory");
		r = fread(out + n, 1, cap - n - 1, f);
		if (!r)
			break;
		n += r;
	}
	out[n] = '\0';
	pclose(f);
	return out;
}

/* The number after "key" in text (the first occurrence), 0 if absent. */
static uint64_t field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	if (!p)
		return 0;
	p += strlen(key);
	while (*p && !isdigit((unsigned char)*p))
		p++;
	return strtoull(p, NULL, 10);
}

static double after(const char *t, const char *key)
{
	const char *p = strstr(t, key);

	return p ? strtod(p + strlen(key), NULL) : 0;
}

static void pin_cpu(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set))
		die("cannot pin %d to CPU %d: %s", (int)pid, cpu, strerror(errno));
}

static void spit(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(text, 1, len, f) != len || fclose(f))
		die("cannot write %s", path);
}

/*
 * Keeps --rx-cpu out of HLT while a system is measured (--spin 1): at
 * SCHED_IDLE it runs only when nothing else wants the CPU, and the
 * receiver's CPU time is its NAPI thread's, which this does not touch.
 */
struct spinner {
	pthread_t th;
	volatile bool stop;
	bool running;
	int cpu;
	uint64_t until_ns;
};

/* ---- what a run made, so that every exit path removes it ----------------- */

static struct run {
	char id[10];                     /* the pid in hex */
	char atk[48], host[48], cli[48]; /* namespaces */
	char ifp[16];                    /* the protected interface */
	char pin_root[128], state_dir[512];
	bool topo_up;
	pid_t sentryd, server;
	struct flood_gen *gen;
	struct spinner *spin;
	/* Readers of the counters (bench/nscount), per topology. */
	bool readers_up;
	struct ethstats wire, prot; /* wire0 in ns atk, the protected iface */
	int cli_nl;                 /* rtnetlink in ns cli */
	struct nftcount sink;       /* nft -i in ns host */
	/* For the whole run. */
	struct ringloss rl;
	bool rl_open;
	struct pcp_tune pcp;
} R;

static void stop_child(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 300 && waitpid(*pid, NULL, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(*pid, NULL, WNOHANG) == 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

static void spin_stop(struct spinner *sp)
{
	if (!sp->running)
		return;
	sp->stop = true;
	pthread_join(sp->th, NULL);
	sp->running = false;
	R.spin = NULL;
}

/* The generator and the spinner first; sentryd (it detaches on SIGTERM;
 * whatever it left pinned goes the way of `sentryctl detach`), the
 * server, the counter readers; then the namespaces, which take their
 * interfaces, nft tables, ipsets and iptables rules along. */
static void teardown(void)
{
	char dir[256], err[256];

	if (R.gen)
		flood_gen_stop(R.gen);
	if (R.spin)
		spin_stop(R.spin);
	stop_child(&R.sentryd);
	if (R.pin_root[0]) {
		snprintf(dir, sizeof(dir), "%s/%s", R.pin_root, R.ifp);
		sn_pinned_detach(dir, err, sizeof(err));
		rmdir(R.pin_root);
		R.pin_root[0] = '\0';
	}
	stop_child(&R.server);
	if (R.readers_up) {
		nftcount_stop(&R.sink);
		close(R.wire.fd);
		close(R.prot.fd);
		close(R.cli_nl);
		ethstats_close(&R.wire);
		ethstats_close(&R.prot);
		R.readers_up = false;
	}
	if (R.topo_up) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; "
			 "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null",
			 R.atk, R.host, R.cli);
		run_sh(cmd); /* best effort: the names are unique to this run */
		R.topo_up = false;
	}
}

static void on_exit_cleanup(void)
{
	teardown();
	pcp_restore(&R.pcp);
	if (R.rl_open) {
		ringloss_close(&R.rl);
		R.rl_open = false;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void *spin_main(void *arg)
{
	struct spinner *sp = arg;
	struct sched_param prm = { 0 };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(sp->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	pthread_setschedparam(pthread_self(), SCHED_IDLE, &prm);
	while (!sp->stop && flood_now_ns() < sp->until_ns)
		for (int i = 0; i < 10000; i++)
			__asm__ volatile("pause");
	return NULL;
}

static void spin_start(struct spinner *sp, int cpu, double max_s)
{
	sp->stop = false;
	sp->cpu = cpu;
	sp->until_ns = flood_now_ns() + (uint64_t)(max_s * 1e9);
	if (pthread_create(&sp->th, NULL, spin_main, sp))
		die("pthread_create");
	sp->running = true;
	R.spin = sp;
}

/* ---- the files every system loads the blocklist from ----------------------- */

/* An nftables table of one interval set and one chain that drops its
 * sources; returns the length written into out. */
static size_t nft_filter(char *out, size_t cap, const char *family, const char *chain,
			 const char *hook, const char *device, const char *prio,
			 const char *elements)
{
	char dev[64] = "";

	if (device[0])
		snprintf(dev, sizeof(dev), " \"%s\"", device);
	return (size_t)snprintf(out, cap,
		"table %s sn_flood {\n"
		"\tset blocklist {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
		"\t\telements = {\n%s\n\t\t}\n\t}\n"
		"\tchain %s {\n"
		"\t\ttype filter hook %s%s priority %s; policy accept;\n"
		"\t\tip saddr @blocklist drop\n\t}\n}\n",
		family, elements, chain, hook, dev, prio);
}

static void write_files(const struct opts *o, const struct blocklist *b, const char *ifp)
{
	size_t n = b->all.n, cap = n * 48 + 4096, ln = 0, en = 0, in = 0;
	char *list = malloc(cap), *el = malloc(cap), *ips = malloc(cap);
	char path[700], p[32], *f;

	if (!list || !el || !ips)
		die("out of memory");
	in = (size_t)snprintf(ips, cap, "create sn_flood_block hash:net family inet "
			      "hashsize 65536 maxelem %zu\n", n * 2 + 1024);
	for (size_t i = 0; i < n; i++) {
		bl_format(p, sizeof(p), &b->all.v[i]);
		ln += (size_t)snprintf(list + ln, cap - ln, "%s\n", p);
		en += (size_t)snprintf(el + en, cap - en, "%s%s", i ? ",\n" : "", p);
		in += (size_t)snprintf(ips + in, cap - in, "add sn_flood_block %s\n", p);
	}
	snprintf(path, sizeof(path), "%s/blocklist.cidr", o->work);
	spit(path, list, ln);
	snprintf(path, sizeof(path), "%s/ipset.restore", o->work);
	spit(path, ips, in);

	snprintf(path, sizeof(path), "%s/flood.sentry", o->work);
	f = "# bench/flood: the blocklist every system of the run enforces\n"
	    "# (blocklist.cidr: the country lists plus the attack ranges).\n"
	    "set blocklist = file \"blocklist.cidr\"\n"
	    "block from @blocklist\n";
	spit(path, f, strlen(f));

	/* nftables: one interval set (no auto-merge: bench/compile says why) */
	size_t fcap = en + 1024;

	if (!(f = malloc(fcap)))
		die("out of memory");
	snprintf(path, sizeof(path), "%s/nft-netdev.nft", o->work);
	spit(path, f, nft_filter(f, fcap, "netdev", "ingress", "ingress device", ifp, "0", el));
	snprintf(path, sizeof(path), "%s/nft-inet.nft", o->work);
	spit(path, f, nft_filter(f, fcap, "inet", "prerouting", "prerouting", "", "raw", el));

	/* The counting sink of every system (see the top): named counters,
	 * which bench/nscount reads without starting a process. */
	snprintf(path, sizeof(path), "%s/sink.nft", o->work);
	spit(path, f, (size_t)snprintf(f, fcap,
		"table inet sn_flood_sink {\n"
		"\tcounter l0 {\n\t}\n\tcounter l1 {\n\t}\n"
		"\tcounter l2 {\n\t}\n\tcounter legit {\n\t}\n"
		"\tchain sink {\n"
		"\t\ttype filter hook prerouting priority 300; policy accept;\n"
		"\t\tudp dport %d counter name \"l0\" drop\n"
		"\t\tudp dport %d counter name \"l1\" drop\n"
		"\t\tudp dport %d counter name \"l2\" drop\n"
		"\t\tip saddr %s tcp dport %d counter name \"legit\" accept\n"
		"\t}\n}\n", FLOOD_PORT0 + L_COUNTRY, FLOOD_PORT0 + L_RANGES,
		FLOOD_PORT0 + L_OUTSIDE, CLI_ADDR, SRV_PORT));
	free(f);
	free(list);
	free(el);
	free(ips);
}

/* ---- topology, server, filters ----------------------------------------------- */

static void topo_up(void)
{
	const char *a = R.atk, *h = R.host, *c = R.cli, *f = R.ifp;

	R.topo_up = true; /* from here on, teardown deletes whatever exists */
	sh("ip netns add %s && ip netns add %s && ip netns add %s", a, h, c);
	/* No IPv6 (router solicitations, MLD): only the bench's packets move
	 * the counters. */
	for (int i = 0; i < 3; i++) {
		const char *ns = i == 0 ? a : i == 1 ? h : c;

		sh("ip -n %s link set lo up && ip netns exec %s sysctl -qw "
		   "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
		   ns, ns);
	}
	sh("ip -n %s link add wire0 type veth peer name %s netns %s && "
	   "ip -n %s link add lan0 type veth peer name cli0 netns %s && "
	   "ip -n %s link add br0 type bridge stp_state 0 forward_delay 0 && "
	   "ip -n %s link set wire0 master br0 && ip -n %s link set lan0 master br0",
	   a, f, h, a, c, a, a, a);
	sh("for l in br0 wire0 lan0; do ip -n %s link set $l up || exit 1; done", a);
	/* A veth hands an skb to its peer's NAPI ring only if it could be
	 * aggregated, which a forwarded TCP segment on a TSO link cannot: the
	 * client's packets would skip the ring and the receiving CPU that
	 * the flood fills, except under XDP, whose attach turns TSO off on
	 * the peer (drivers/net/veth.c, veth_skb_is_eligible_for_gro).  TSO
	 * off on wire0 for every system: the client's packets always share
	 * the flood's ring and CPU. */
	sh("ip netns exec %s ethtool -K wire0 tso off >/dev/null", a);
	/* Static neighbours: no ARP under the flood. */
	sh("ip -n %s link set %s address %s && ip -n %s link set %s up && "
	   "ip -n %s addr add %s/24 dev %s && "
	   "ip -n %s neigh replace %s lladdr %s dev %s nud permanent",
	   h, f, HOST_MAC, h, f, h, HOST_ADDR, f, h, CLI_ADDR, CLI_MAC, f);
	sh("ip -n %s link set cli0 address %s && ip -n %s link set cli0 up && "
	   "ip -n %s addr add %s/24 dev cli0 && "
	   "ip -n %s neigh replace %s lladdr %s dev cli0 nud permanent",
	   c, CLI_MAC, c, c, CLI_ADDR, c, HOST_ADDR, HOST_MAC);
	/* GRO gives the veth its NAPI instance; threaded NAPI puts its
	 * receive processing into one kernel thread we can pin and time. */
	sh("ip netns exec %s ethtool -K %s gro on >/dev/null && "
	   "ip netns exec %s sh -c 'echo 1 > /sys/class/net/%s/threaded'", h, f, h, f);
}

/* The NAPI thread of the protected interface, pinned to --rx-cpu. */
static pid_t napi_thread(const struct opts *o)
{
	char prefix[32], path[300], comm[64];
	pid_t found = 0;
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	snprintf(prefix, sizeof(prefix), "napi/%s-", R.ifp);
	if (!d)
		die("cannot read /proc");
	while ((e = readdir(d))) {
		FILE *f;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) &&
		    !strncmp(comm, prefix, strlen(prefix))) {
			found = (pid_t)atoi(e->d_name);
			n++;
		}
		fclose(f);
	}
	closedir(d);
	if (n != 1)
		die("expected one NAPI thread %s*, found %d", prefix, n);
	pin_cpu(found, o->rx_cpu);
	/* Receive processing preempts tasks, as softirq does on a NIC: a
	 * SCHED_OTHER thread would share --rx-cpu with whatever else the
	 * machine runs there and leave the ring unserved meanwhile. */
	struct sched_param sp = { .sched_priority = RT_NAPI };

	if (sched_setscheduler(found, SCHED_FIFO, &sp))
		die("cannot make the NAPI thread SCHED_FIFO: %s", strerror(errno));
	return found;
}

static uint64_t thread_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		die("NAPI thread %d is gone", (int)pid);
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

/* Wait (bounded) for a line containing want in a log file. */
static bool wait_log(const char *log, const char *want, pid_t pid, double max_s)
{
	double until = now_s() + max_s;

	while (now_s() < until) {
		char *t = capture("cat '%s' 2>/dev/null", log);
		bool ok = strstr(t, want) != NULL;

		free(t);
		if (ok)
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		if (interrupted)
			die("interrupted");
		usleep(20000);
	}
	return false;
}

/* fork + exec argv with stdout/stderr to log, on cpu; rt > 0: SCHED_FIFO
 * at that priority, else SCHED_OTHER at nice. */
static pid_t spawn(char *const argv[], const char *log, int cpu, int rt, int nice)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		struct sched_param sp = { .sched_priority = rt > 0 ? rt : 0 };
		cpu_set_t set;

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		sched_setscheduler(0, rt > 0 ? SCHED_FIFO : SCHED_OTHER, &sp);
		if (rt <= 0)
			setpriority(PRIO_PROCESS, 0, nice);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void server_up(const struct opts *o)
{
	char log[600], port[16];

	snprintf(log, sizeof(log), "%s/server.log", o->work);
	snprintf(port, sizeof(port), "%d", SRV_PORT);
	char *argv[] = { "ip", "netns", "exec", R.host, (char *)o->probe, "serve",
			 "--tcp", port, "--bind", HOST_ADDR, NULL };

	R.server = spawn(argv, log, o->rx_cpu, RT_SERVER, 0);
	if (!wait_log(log, "ready", R.server, 5))
		die("the echo server did not start, see %s", log);
}

static void sentry_up(const struct opts *o)
{
	char log[600], policy[600], netns[128];

	snprintf(R.pin_root, sizeof(R.pin_root), "/sys/fs/bpf/47sentry-benchflood-%s", R.id);
	snprintf(R.state_dir, sizeof(R.state_dir), "%s/state-%s", o->work, R.id);
	snprintf(log, sizeof(log), "%s/sentryd.log", o->work);
	snprintf(policy, sizeof(policy), "%s/flood.sentry", o->work);
	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", R.host);
	/* nsenter --net, not ip netns exec: the pins must land in the host's
	 * bpffs (tests/e2e/lib.bash explains). */
	char *argv[] = { "nsenter", netns, (char *)o->sentryd, "--iface", R.ifp,
			 "--policy", policy, "--xdp-mode", "native", "--pin-root",
			 R.pin_root, "--state-dir", R.state_dir, "--no-watch",
			 "--detach-on-exit", NULL };

	R.sentryd = spawn(argv, log, o->gen_cpu, 0, 0);
	if (!wait_log(log, "msg=\"attached to ", R.sentryd, 30))
		die("sentryd did not attach, see %s", log);
}

static void sentry_down(void)
{
	char dir[256], err[256];

	stop_child(&R.sentryd);
	snprintf(dir, sizeof(dir), "%s/%s", R.pin_root, R.ifp);
	sn_pinned_detach(dir, err, sizeof(err));
	rmdir(R.pin_root);
	R.pin_root[0] = '\0';
	sh("rm -rf '%s'", R.state_dir);
}

/* Attach prog_fd in native mode to ifname of namespace ns, from a thread
 * of its own (setns would move the bench's thread). */
struct ns_attach {
	const char *ns, *ifname;
	int prog_fd, err;
};

static void *ns_attach_main(void *arg)
{
	struct ns_attach *a = arg;
	int ifindex;

	a->err = ns_enter(a->ns);
	if (a->err)
		return NULL;
	ifindex = (int)if_nametoindex(a->ifname);
	a->err = ifindex ? bpf_xdp_attach(ifindex, a->prog_fd, XDP_FLAGS_DRV_MODE, NULL)
			 : -ENODEV;
	return NULL;
}

/* Install the system's filter; returns the time it took, ms. */
static double filter_up(const struct opts *o, const struct flood_gen *g, enum sys_kind k)
{
	double t = now_s();
	const char *h = R.host, *w = o->work;

	switch (k) {
	case SYS_SENTRY:
		sentry_up(o);
		break;
	case SYS_NFT_NETDEV:
		sh("ip netns exec %s nft -f '%s/nft-netdev.nft'", h, w);
		break;
	case SYS_NFT_INET:
		sh("ip netns exec %s nft -f '%s/nft-inet.nft'", h, w);
		break;
	case SYS_IPT:
	case SYS_IPT_LEGACY:
		sh("ip netns exec %s ipset restore -f '%s/ipset.restore' && "
		   "ip netns exec %s %s -t raw -A PREROUTING -m set --match-set "
		   "sn_flood_block src -j DROP", h, w, h,
		   k == SYS_IPT ? "iptables" : "iptables-legacy");
		break;
	case SYS_XDP_DROP:
	case SYS_XDP_PARSE: {
		struct ns_attach a = { .ns = h, .ifname = R.ifp,
				       .prog_fd = k == SYS_XDP_DROP ? g->drop_fd :
								   g->parse_drop_fd };
		pthread_t th;

		if (pthread_create(&th, NULL, ns_attach_main, &a))
			die("pthread_create");
		pthread_join(th, NULL);
		if (a.err)
			die("cannot attach the %s program: %s", sys_info[k].key,
			    strerror(-a.err));
		break;
	}
	case SYS_NONE:
		break;
	}
	return (now_s() - t) * 1e3;
}

/* ---- counters and phases ----------------------------------------------------------- */

struct counters {
	double t;
	uint64_t sent[FLOOD_GEN_LABELS]; /* generator, per label */
	uint64_t passed[N_LABELS];       /* the sink, per label */
	uint64_t xmit, xmit_err;         /* flood frames into / lost at the ring */
	uint64_t xdp_drop;               /* XDP_DROP on the protected iface */
	uint64_t rx_drops;               /* dropped by veth itself (skb path) */
	uint64_t cli_tx;                 /* the client's segments */
	uint64_t napi_ns;
	uint64_t gen_ns;                 /* the generator thread's CPU time */
	uint64_t cpu_softirq, cpu_all;   /* --rx-cpu, /proc/stat ticks */
	uint64_t prog_ns, prog_cnt;      /* sentry's program, bpf_stats */
};

static void proc_stat_cpu(int cpu, uint64_t *softirq, uint64_t *all)
{
	char key[16], line[512];
	FILE *f = fopen("/proc/stat", "r");

	*softirq = *all = 0;
	if (!f)
		return;
	snprintf(key, sizeof(key), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = { 0 };

		if (strncmp(line, key, strlen(key)))
			continue;
		sscanf(line + strlen(key), "%llu %llu %llu %llu %llu %llu %llu %llu",
		       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
		for (int i = 0; i < 8; i++)
			*all += v[i];
		*softirq = v[6];
		break;
	}
	fclose(f);
}

static void prog_stats(uint64_t *ns, uint64_t *cnt)
{
	char path[256];
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	int fd;

	*ns = *cnt = 0;
	if (!R.pin_root[0])
		return;
	snprintf(path, sizeof(path), "%s/%s/prog", R.pin_root, R.ifp);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
		*ns = info.run_time_ns;
		*cnt = info.run_cnt;
	}
	close(fd);
}

/* The counters that cost microseconds to read, at one moment. */
static void read_fast(const struct flood_gen *g, pid_t napi, int rx_cpu,
		      struct counters *c)
{
	c->t = now_s();
	c->napi_ns = thread_ns(napi);
	c->gen_ns = flood_gen_cpu_ns(g);
	proc_stat_cpu(rx_cpu, &c->cpu_softirq, &c->cpu_all);
	prog_stats(&c->prog_ns, &c->prog_cnt);
	flood_gen_sent(g, c->sent);
	ethstats_read(&R.wire);
	ethstats_read(&R.prot);
	c->xmit = ethstats_get(&R.wire, "tx_queue_0_xdp_xmit");
	c->xmit_err = ethstats_get(&R.wire, "tx_queue_0_xdp_xmit_errors");
	c->xdp_drop = ethstats_get(&R.prot, "rx_queue_0_xdp_drops");
	c->rx_drops = ethstats_get(&R.prot, "rx_queue_0_drops");
}

/*
 * One reading of every counter.  The sink's counters take about a
 * millisecond (a request to nft -i); at millions of frames per second
 * that matters, so everything else is read right before and right after
 * them and the two readings averaged: all of it then belongs to the same
 * moment, on both ends of a window.
 */
static void read_counters(const struct opts *o, const struct flood_gen *g, pid_t napi,
			  struct counters *c)
{
	static const char *const names[N_LABELS] = { "l0", "l1", "l2", "legit" };
	struct counters a = { 0 }, b = { 0 };

	memset(c, 0, sizeof(*c));
	read_fast(g, napi, o->rx_cpu, &a);
	nftcount_read(&R.sink, "inet sn_flood_sink", names, c->passed, N_LABELS);
	c->cli_tx = link_tx_packets(R.cli_nl, "cli0");
	read_fast(g, napi, o->rx_cpu, &b);
	c->t = (a.t + b.t) / 2;
#define AVG(f) c->f = (a.f + b.f) / 2
	for (int i = 0; i < FLOOD_GEN_LABELS; i++)
		AVG(sent[i]);
	AVG(xmit);
	AVG(xmit_err);
	AVG(xdp_drop);
	AVG(rx_drops);
	AVG(napi_ns);
	AVG(gen_ns);
	AVG(cpu_softirq);
	AVG(cpu_all);
	AVG(prog_ns);
	AVG(prog_cnt);
#undef AVG
	if (o->verbose)
		fprintf(stderr, "bench/flood: counters read in %.2f ms\n", (b.t - a.t) * 1e3);
}

struct client_res {
	bool ran;
	uint64_t requests, ok, failed, reconnects;
	double p50, p90, p99, p999, max;
};

static void run_client(const struct opts *o, double secs, struct client_res *r)
{
	char log[600], rate[32], sec[32], port[16];

	snprintf(log, sizeof(log), "%s/client.log", o->work);
	snprintf(rate, sizeof(rate), "%u", o->rate);
	snprintf(sec, sizeof(sec), "%.3f", secs);
	snprintf(port, sizeof(port), "%d", SRV_PORT);
	char *argv[] = { "ip", "netns", "exec", R.cli, (char *)o->client, "--dst",
			 HOST_ADDR, "--port", port, "--rate", rate, "--seconds", sec,
			 "--timeout-ms", "1000", NULL };
	pid_t pid = spawn(argv, log, o->gen_cpu, RT_CLIENT, 0);
	double until = now_s() + secs + 10;
	int st = 0;

	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (interrupted || now_s() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			die(interrupted ? "interrupted" : "the client did not finish");
		}
		usleep(10000);
	}
	char *t = capture("cat '%s'", log);

	memset(r, 0, sizeof(*r));
	r->ran = true;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 1) {
		/* Not even the first connection (the flood drowned the
		 * handshake): every request of the phase failed. */
		r->requests = r->failed = (uint64_t)(secs * o->rate);
		free(t);
		return;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !strstr(t, "requests "))
		die("the client failed: %s", t);
	r->requests = field(t, "requests ");
	r->ok = field(t, " ok ");
	r->failed = field(t, " failed ");
	r->reconnects = field(t, " reconnects ");
	r->p50 = after(t, "p50_us ");
	r->p90 = after(t, "p90_us ");
	r->p99 = after(t, "p99_us ");
	r->p999 = after(t, "p999_us ");
	r->max = after(t, "max_us ");
	free(t);
}

/* The phases of a system, in the order they run. */
enum { PH_CALM, PH_MAX, PH_PACED, PH_STATS, N_PH };

struct phase {
	bool done, flood;
	uint64_t pps; /* 0: as fast as the generator goes */
	double secs;
	struct counters d; /* after - before */
	struct client_res cl;
	int retries; /* generator pauses: no page pool id free */
	struct ringloss_sum rl; /* why frames were lost at the ring */
};

static uint64_t flood_sent(const struct counters *d)
{
	return d->sent[L_COUNTRY] + d->sent[L_RANGES] + d->sent[L_OUTSIDE];
}

static uint64_t flood_passed(const struct counters *d)
{
	return d->passed[L_COUNTRY] + d->passed[L_RANGES] + d->passed[L_OUTSIDE];
}

static void delta(const struct counters *a, const struct counters *b,
		  struct counters *d)
{
	d->t = b->t - a->t;
	for (int i = 0; i < FLOOD_GEN_LABELS; i++)
		d->sent[i] = b->sent[i] - a->sent[i];
	for (int i = 0; i < N_LABELS; i++)
		d->passed[i] = b->passed[i] - a->passed[i];
#define D(f) d->f = b->f - a->f
	D(xmit);
	D(xmit_err);
	D(xdp_drop);
	D(rx_drops);
	D(cli_tx);
	D(napi_ns);
	D(gen_ns);
	D(cpu_softirq);
	D(cpu_all);
	D(prog_ns);
	D(prog_cnt);
#undef D
}

/*
 * One phase: with flood, the generator runs --warmup first; the counters
 * are read before the client starts and after it ended (or after secs
 * without a client), under a steady flood.
 */
static void run_phase(const struct opts *o, struct flood_gen *g, pid_t napi, bool flood,
		      uint64_t pps, bool client, double secs, struct phase *p)
{
	struct counters a, b;

	memset(p, 0, sizeof(*p));
	p->flood = flood;
	p->pps = pps;
	if (flood) {
		/* About a second per call when paced (flood_gen.c: every call
		 * costs two RCU grace periods). */
		uint32_t repeat = pps ? (uint32_t)(pps > 65536 ? pps : 65536) : o->repeat;

		uint64_t batch = pps ? pps * PACED_HOLD_US / 1000000 : MAX_BATCH;

		batch = batch < 8 ? 8 : batch > MAX_BATCH ? MAX_BATCH : batch;
		flood_gen_start(g, R.atk, "wire0", o->gen_cpu, NICE_GEN, pps, repeat,
				(uint32_t)batch, o->warmup + secs + 15);
		R.gen = g;
		nap(o->warmup);
		if (g->done)
			die("the generator stopped: %s", strerror(-g->err));
	}
	read_counters(o, g, napi, &a);
	if (client)
		run_client(o, secs, &p->cl);
	else
		nap(secs);
	read_counters(o, g, napi, &b);
	if (flood) {
		flood_gen_stop(g);
		R.gen = NULL;
		p->retries = g->retries;
		if (g->err)
			die("the generator failed: %s", strerror(-g->err));
	}
	delta(&a, &b, &p->d);
	p->secs = p->d.t;
	ringloss_window(&R.rl, (uint64_t)(a.t * 1e9), (uint64_t)(b.t * 1e9), &p->rl);
	p->done = true;
	if (o->verbose)
		fprintf(stderr, "bench/flood: phase %s: %.3f s, sent %llu = into rx %llu + "
			"ring lost %llu; passed %llu\n", flood ? pps ? "paced" : "max" : "calm",
			p->d.t, (unsigned long long)flood_sent(&p->d),
			(unsigned long long)p->d.xmit, (unsigned long long)p->d.xmit_err,
			(unsigned long long)flood_passed(&p->d));
	nap(0.3); /* let the ring and the sockets go quiet */
}

struct sys_result {
	enum sys_kind kind;
	char title[64];
	double setup_ms;
	struct phase ph[N_PH];
};

static void run_system(const struct opts *o, struct flood_gen *g, enum sys_kind k,
		       const char *title, struct sys_result *r)
{
	/* Dropping everything leaves no legitimate traffic to measure. */
	bool client = k != SYS_XDP_DROP && k != SYS_XDP_PARSE;
	struct spinner spin = { 0 };
	pid_t napi;

	memset(r, 0, sizeof(*r));
	r->kind = k;
	snprintf(r->title, sizeof(r->title), "%s", title);
	topo_up();
	sh("ip netns exec %s nft -f '%s/sink.nft'", R.host, o->work);
	R.cli_nl = ns_socket(R.cli, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	ethstats_open(&R.wire, ns_socket(R.atk, AF_INET, SOCK_DGRAM, 0), "wire0");
	ethstats_open(&R.prot, ns_socket(R.host, AF_INET, SOCK_DGRAM, 0), R.ifp);
	nftcount_start(&R.sink, R.host, RT_BENCH);
	R.readers_up = true;
	{
		struct ifreq ifr = { 0 };

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "wire0");
		if (ioctl(R.wire.fd, SIOCGIFINDEX, &ifr))
			die("no wire0 in %s: %s", R.atk, strerror(errno));
		ringloss_watch(&R.rl, ifr.ifr_ifindex);
	}
	r->setup_ms = filter_up(o, g, k);
	server_up(o);
	napi = napi_thread(o); /* after the filter: XDP may renew the NAPI */
	fprintf(stderr, "bench/flood: %s: filter loaded in %.0f ms, measuring\n",
		sys_info[k].key, r->setup_ms);
	if (o->spin)
		spin_start(&spin, o->rx_cpu, 5 * o->seconds + o->stats_seconds + 60);
	if (client)
		run_phase(o, g, napi, false, 0, true, o->seconds, &r->ph[PH_CALM]);
	run_phase(o, g, napi, true, 0, client, o->seconds, &r->ph[PH_MAX]);
	if (o->pps)
		run_phase(o, g, napi, true, o->pps, client, o->seconds, &r->ph[PH_PACED]);
	if (k == SYS_SENTRY && o->pps && o->stats_seconds > 0) {
		int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

		if (fd < 0)
			die("BPF_ENABLE_STATS: %s", strerror(errno));
		run_phase(o, g, napi, true, o->pps, false, o->stats_seconds, &r->ph[PH_STATS]);
		close(fd);
	}
	spin_stop(&spin);
	if (k == SYS_SENTRY)
		sentry_down();
	teardown();
}

/* ---- report ------------------------------------------------------------------------- */

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* Frames that entered the receiver and never reached the sink. */
static uint64_t filter_drops(const struct counters *d)
{
	uint64_t p = flood_passed(d);

	return d->xmit > p ? d->xmit - p : 0;
}

/* Receiver CPU per frame its filter dropped, ns (0: none dropped). */
static double ns_per_drop(const struct phase *p)
{
	uint64_t d = filter_drops(&p->d);

	return d ? (double)p->d.napi_ns / (double)d : 0;
}

static uint64_t legit_dropped(const struct counters *d)
{
	return d->cli_tx > d->passed[L_LEGIT] ? d->cli_tx - d->passed[L_LEGIT] : 0;
}

static void print_machine(const struct opts *o, const struct blocklist *b,
			  const struct flood_gen *g)
{
	char *t = capture("uname -sr; nproc --all; grep -m1 'model name' /proc/cpuinfo | "
			  "sed 's/.*: //'; free -g | awk '/^Mem/ { print $2 \" GiB\" }'; "
			  "uptime | sed 's/.*load/load/'; nft --version; "
			  "iptables -V 2>/dev/null; ipset -v 2>/dev/null | head -n1; "
			  "git describe --always --dirty 2>/dev/null");

	for (char *p = t; *p; p++)
		if (*p == '\n' && p[1])
			*p = ';';
	printf("bench/flood on: %s", t);
	free(t);
	printf("blocklist: %zu prefixes (%zu from the country list %s, attack ranges "
	       "%s; nested ones removed); flood: %u spoofed sources (%llu country, "
	       "%llu attack ranges, %llu outside), 60-byte UDP frames\n", b->all.n,
	       b->n_country_in, o->country, o->attack, o->sources,
	       (unsigned long long)g->n_sources[L_COUNTRY],
	       (unsigned long long)g->n_sources[L_RANGES],
	       (unsigned long long)g->n_sources[L_OUTSIDE]);
	printf("generator on CPU%d, receiver (NAPI thread, server) on CPU%d; %.1f s per "
	       "phase after %.1f s of flood; client %u req/s, 64 B echo\n",
	       o->gen_cpu, o->rx_cpu, o->seconds, o->warmup, o->rate);
	if (R.pcp.changed)
		printf("per-CPU page list of CPU%d: %ld pages (the machine's: %ld; "
		       "vm.percpu_pagelist_high_fraction %ld for the run, %ld again at "
		       "exit)\n\n", o->rx_cpu, R.pcp.high, R.pcp.high_before,
		       R.pcp.fraction, R.pcp.fraction_before);
	else
		printf("per-CPU page lists: the machine's (--pcp-high 0)\n\n");
}

static const char *phase_name(const struct phase *p, char *buf, size_t len)
{
	if (!p->flood)
		snprintf(buf, len, "none");
	else if (p->pps)
		snprintf(buf, len, "%.0fk pps", (double)p->pps / 1e3);
	else
		snprintf(buf, len, "max");
	return buf;
}

static void print_flood_row(const struct sys_result *r, const struct phase *p)
{
	const struct counters *d = &p->d;
	double s = p->secs, drops = (double)filter_drops(d);
	char prog[32] = "-", nsdrop[32] = "-", name[32];
	const struct phase *st = &r->ph[PH_STATS];

	if (p->pps && st->done && st->d.prog_cnt)
		snprintf(prog, sizeof(prog), "%.0f",
			 ratio((double)st->d.prog_ns, (double)st->d.prog_cnt));
	if (drops > 0)
		snprintf(nsdrop, sizeof(nsdrop), "%.0f", ns_per_drop(p));
	printf("%-26s %-9s %5.1f %8.1f %5.1f %8.1f %6.2f %8.1f %8.1f %6.1f %6.1f %7.0f %7s %7s\n",
	       r->title, phase_name(p, name, sizeof(name)), s,
	       (double)flood_sent(d) / s / 1e3, 100 * (double)d->gen_ns / (s * 1e9),
	       (double)d->xmit / s / 1e3,
	       100 * ratio((double)d->xmit_err, (double)(d->xmit + d->xmit_err)),
	       drops / s / 1e3, (double)flood_passed(d) / s / 1e3,
	       100 * (double)d->napi_ns / (s * 1e9),
	       100 * ratio((double)d->cpu_softirq, (double)d->cpu_all),
	       ratio((double)d->napi_ns, (double)d->xmit), nsdrop, prog);
}

static void print_legit_cell(const struct phase *p)
{
	if (!p->done || !p->cl.ran) {
		printf(" %6s %7s %6s %7s %7s |", "-", "-", "-", "-", "-");
		return;
	}
	printf(" %6llu %7.2f %6.0f %7.0f %7.0f |", (unsigned long long)p->cl.requests,
	       100 * ratio((double)p->cl.ok, (double)p->cl.requests), p->cl.p50,
	       p->cl.p99, p->cl.p999);
}

static void print_confusion(const struct sys_result *r, const struct phase *p, bool first)
{
	const struct counters *d = &p->d;
	char name[32];

	if (!p->flood) { /* no flood: only the client's packets */
		printf("%-26s %-9s %-36s %6s %11llu %11llu %11llu %8.3f\n",
		       first ? r->title : "", "none", label_name[L_LEGIT],
		       label_policy[L_LEGIT], (unsigned long long)d->cli_tx,
		       (unsigned long long)legit_dropped(d),
		       (unsigned long long)d->passed[L_LEGIT],
		       100 * ratio((double)legit_dropped(d), (double)d->cli_tx));
		return;
	}
	for (int l = 0; l < N_LABELS; l++) {
		uint64_t sent = l == L_LEGIT ? d->cli_tx : d->sent[l];
		uint64_t pass = d->passed[l];
		uint64_t drop = sent > pass ? sent - pass : 0;

		if (l == L_LEGIT && !p->cl.ran)
			continue;
		printf("%-26s %-9s %-36s %6s %11llu %11llu %11llu %8.3f\n",
		       first && !l ? r->title : "", l ? "" : phase_name(p, name, sizeof(name)),
		       label_name[l], label_policy[l], (unsigned long long)sent,
		       (unsigned long long)drop, (unsigned long long)pass,
		       100 * ratio((double)drop, (double)sent));
	}
	printf("%-26s %-9s %-36s %6s %11s %11llu %11s %8.3f\n", "", "",
	       "  of the flood: lost at the full ring", "", "",
	       (unsigned long long)d->xmit_err, "",
	       100 * ratio((double)d->xmit_err, (double)flood_sent(d)));
	/* veth drops skbs (the client's) itself when its ring is full or it
	 * cannot copy one into a page for XDP: lost before any filter */
	if (d->rx_drops)
		printf("%-26s %-9s %-36s %6s %11s %11llu\n", "", "",
		       "  dropped by the veth (skbs)", "", "",
		       (unsigned long long)d->rx_drops);
}

static void print_ringloss_row(const struct sys_result *r, const struct phase *p)
{
	const struct ringloss_sum *l = &p->rl;
	char name[32];

	printf("%-26s %-9s %8u %9llu %8.2f %9u %10u %10u %8u %9.2f %9.0f %7u %8.0f\n",
	       r->title, phase_name(p, name, sizeof(name)), l->episodes,
	       (unsigned long long)l->frames, (double)l->longest_ns / 1e6, l->overload,
	       l->after_steal, l->after_drain,
	       l->episodes - l->overload - l->after_steal - l->after_drain,
	       (double)l->steal_ns / 1e6, (double)l->steal_max_ns / 1e3, l->drains,
	       (double)l->drain_max_ns / 1e3);
	if (l->lost_events)
		printf("  note: %s: %llu episodes not reported (the observer's ring buffer "
		       "was full)\n", r->title, (unsigned long long)l->lost_events);
}

static void print_targets(const struct sys_result *r, size_t n, int ph)
{
	const struct sys_result *s = NULL, *best = NULL;
	double best_ns = 0;
	char name[32];

	for (size_t i = 0; i < n; i++) {
		double ns = ns_per_drop(&r[i].ph[ph]);

		if (r[i].kind == SYS_SENTRY)
			s = &r[i];
		if ((r[i].kind == SYS_NFT_NETDEV || r[i].kind == SYS_NFT_INET) && ns > 0 &&
		    (!best || ns < best_ns)) {
			best = &r[i];
			best_ns = ns;
		}
	}
	if (!s || !s->ph[ph].done)
		return;
	printf("  flood %s:\n", phase_name(&s->ph[ph], name, sizeof(name)));
	double s_ns = ns_per_drop(&s->ph[ph]);

	if (best && s_ns > 0)
		printf("    CPU per dropped packet at least 4x lower than the best nftables "
		       "hook (%s): %.0f vs %.0f ns, %.2fx: %s\n", best->title, s_ns,
		       best_ns, best_ns / s_ns, best_ns / s_ns >= 4 ? "MET" : "NOT MET");
	else
		printf("    CPU per dropped packet vs nftables: no nftables system measured\n");

	const struct phase *c = &s->ph[PH_CALM], *f = &s->ph[ph];
	double x = ratio(f->cl.p99, c->cl.p99);

	printf("    legitimate p99 under flood within 2x of the no-flood p99: %.0f vs "
	       "%.0f us, %.2fx: %s\n", f->cl.p99, c->cl.p99, x,
	       x > 0 && x <= 2 && !f->cl.failed ? "MET" : "NOT MET");
	uint64_t ld = legit_dropped(&f->d);

	printf("    zero legitimate packets dropped: %llu of %llu dropped, %llu of "
	       "%llu requests failed: %s", (unsigned long long)ld,
	       (unsigned long long)f->d.cli_tx, (unsigned long long)f->cl.failed,
	       (unsigned long long)f->cl.requests,
	       ld == 0 && !f->cl.failed ? "MET" : "NOT MET");
	if (ld && ph == PH_MAX)
		printf(" (the generator outruns every receiver: the ring overflows by "
		       "design)");
	else if (ld)
		printf(" (the ring overflowed %u times: %u overload, %u after host steal, "
		       "%u after a page drain, %u neither)", f->rl.episodes, f->rl.overload,
		       f->rl.after_steal, f->rl.after_drain,
		       f->rl.episodes - f->rl.overload - f->rl.after_steal -
			       f->rl.after_drain);
	printf("\n");
}

static void print_results(const struct opts *o, const struct sys_result *r, size_t n)
{
	printf("FLOOD (per second of the phase; gen CPU: the generator's thread; rx CPU: "
	       "the receiver's NAPI thread; softirq: of the receiver's CPU, /proc/stat)\n");
	printf("%-26s %-9s %5s %8s %5s %8s %6s %8s %8s %6s %6s %7s %7s %7s\n", "system",
	       "flood", "secs", "offered", "gen", "into rx", "ring", "dropped", "passed", "rx",
	       "softirq", "ns per", "ns per", "prog ns");
	printf("%-26s %-9s %5s %8s %5s %8s %6s %8s %8s %6s %6s %7s %7s %7s\n", "", "", "",
	       "kpps", "CPU%", "kpps", "lost%", "kpps", "kpps", "CPU%", "%", "frame", "drop",
	       "per run");
	for (int ph = PH_MAX; ph <= PH_PACED; ph++)
		for (size_t i = 0; i < n; i++)
			if (r[i].ph[ph].done)
				print_flood_row(&r[i], &r[i].ph[ph]);
	for (size_t i = 0; i < n; i++)
		for (int ph = PH_MAX; ph < N_PH; ph++) {
			const struct phase *p = &r[i].ph[ph];
			char name[32];

			if (p->done && p->retries)
				printf("  note: %s, flood %s: the generator paused %d x 100 ms "
				       "(no page pool id free, ENOSPC)\n", r[i].title,
				       phase_name(p, name, sizeof(name)), p->retries);
		}

	char paced[32] = "-";

	if (o->pps)
		snprintf(paced, sizeof(paced), "flood %.0fk pps", (double)o->pps / 1e3);
	printf("\nLEGITIMATE TCP request/response (latency in us; ok%% = answered "
	       "within 1 s)\n");
	printf("%-26s %-39s| %-39s| %-39s|\n", "system", " no flood", " flood max", paced);
	printf("%-26s", "");
	for (int i = 0; i < 3; i++)
		printf(" %6s %7s %6s %7s %7s |", "req", "ok%", "p50", "p99", "p999");
	printf("\n");
	for (size_t i = 0; i < n; i++) {
		if (!r[i].ph[PH_CALM].done)
			continue;
		printf("%-26s", r[i].title);
		print_legit_cell(&r[i].ph[PH_CALM]);
		print_legit_cell(&r[i].ph[PH_MAX]);
		print_legit_cell(&r[i].ph[PH_PACED]);
		printf("\n");
	}

	printf("\nCONFUSION MATRIX (packets; dropped = sent - passed: by the filter, or "
	       "lost at the full ring before it)\n");
	printf("%-26s %-9s %-36s %6s %11s %11s %11s %8s\n", "system", "flood", "class",
	       "policy", "sent", "dropped", "passed", "dropped%");
	for (size_t i = 0; i < n; i++) {
		bool first = true;

		for (int ph = PH_CALM; ph <= PH_PACED; ph++)
			if (r[i].ph[ph].done) {
				print_confusion(&r[i], &r[i].ph[ph], first);
				first = false;
			}
	}

	printf("\nRING OVERFLOWS at %s (why frames were lost at the receiver's ring, "
	       "before any filter; in the max phase it overflows by design; episode: "
	       "losses less than 50 us apart; overload: an episode over 5 ms; host steal "
	       "/ page drain: one of at least 100 us on the receiving CPU overlapped the "
	       "episode or ended less than 300 us before it; bench/ringloss.h)\n", paced);
	printf("%-26s %-9s %8s %9s %8s %9s %10s %10s %8s %9s %9s %7s %8s\n", "system", "flood",
	       "episodes", "lost", "longest", "overload", "host steal", "page drain",
	       "neither", "rx steal", "longest", "drains", "longest");
	printf("%-26s %-9s %8s %9s %8s %9s %10s %10s %8s %9s %9s %7s %8s\n", "", "", "",
	       "frames", "ms", "", "", "", "", "ms", "steal us", "", "us");
	for (size_t i = 0; i < n; i++)
		if (r[i].ph[PH_PACED].done)
			print_ringloss_row(&r[i], &r[i].ph[PH_PACED]);

	printf("\nTARGETS (issue 7)\n");
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any |= r[i].kind == SYS_SENTRY;
	if (!any) {
		printf("  (sentry not in --systems)\n");
		return;
	}
	print_targets(r, n, PH_MAX);
	print_targets(r, n, PH_PACED);
}

static unsigned parse_unsigned(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 1000000000ul)
		die("bad %s: %s", what, s);
	return (unsigned)v;
}

static double parse_seconds(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (!*s || *end || v < 0 || v > 600)
		die("bad %s: %s (0..600 seconds)", what, s);
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.systems = "sentry,nft-netdev,nft-inet,iptables,none,xdp-drop,xdp-parse",
		.data = "../shared/data/country-ip-blocks",
		.work = "build/bench/flood-work",
		.gen_obj = "build/bench/flood_gen.bpf.o",
		.ringloss_obj = "build/bench/ringloss.bpf.o",
		.sentryd = "build/sentryd",
		.probe = "build/tests/tools/probe",
		.client = "build/bench/flood-client",
		.country = "us",
		.attack = "198.18.0.0/15,203.0.113.0/24",
		.seconds = 5,
		.stats_seconds = 3,
		.warmup = 0.5,
		.sources = 65536,
		.mix = { 45, 45, 10 },
		.rate = 2000,
		.repeat = 1 << 22,
		.pps = 1000000,
		.seed = 47,
		.gen_cpu = 0,
		.rx_cpu = 1,
		.spin = true,
		.pcp_high = 256,
	};
	enum sys_kind kinds[N_SYS];
	size_t n_kinds = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			die("%s needs a value (see the top of bench/flood.c)", a);
		if (!strcmp(a, "--systems"))
			o.systems = v;
		else if (!strcmp(a, "--seconds"))
			o.seconds = parse_seconds(v, a);
		else if (!strcmp(a, "--stats-seconds"))
			o.stats_seconds = parse_seconds(v, a);
		else if (!strcmp(a, "--warmup"))
			o.warmup = parse_seconds(v, a);
		else if (!strcmp(a, "--pps"))
			o.pps = parse_unsigned(v, a);
		else if (!strcmp(a, "--sources"))
			o.sources = parse_unsigned(v, a);
		else if (!strcmp(a, "--mix")) {
			if (sscanf(v, "%u,%u,%u", &o.mix[0], &o.mix[1], &o.mix[2]) != 3 ||
			    o.mix[0] + o.mix[1] + o.mix[2] != 100)
				die("--mix wants three percentages that add up to 100");
		} else if (!strcmp(a, "--country"))
			o.country = v;
		else if (!strcmp(a, "--attack"))
			o.attack = v;
		else if (!strcmp(a, "--rate"))
			o.rate = parse_unsigned(v, a);
		else if (!strcmp(a, "--gen-cpu"))
			o.gen_cpu = (int)parse_unsigned(v, a);
		else if (!strcmp(a, "--rx-cpu"))
			o.rx_cpu = (int)parse_unsigned(v, a);
		else if (!strcmp(a, "--repeat"))
			o.repeat = parse_unsigned(v, a);
		else if (!strcmp(a, "--spin"))
			o.spin = parse_unsigned(v, a) != 0;
		else if (!strcmp(a, "--verbose"))
			o.verbose = parse_unsigned(v, a) != 0;
		else if (!strcmp(a, "--seed"))
			o.seed = parse_unsigned(v, a);
		else if (!strcmp(a, "--data"))
			o.data = v;
		else if (!strcmp(a, "--work"))
			o.work = v;
		else if (!strcmp(a, "--gen-obj"))
			o.gen_obj = v;
		else if (!strcmp(a, "--ringloss-obj"))
			o.ringloss_obj = v;
		else if (!strcmp(a, "--pcp-high"))
			o.pcp_high = parse_unsigned(v, a);
		else if (!strcmp(a, "--sentryd"))
			o.sentryd = v;
		else if (!strcmp(a, "--probe"))
			o.probe = v;
		else if (!strcmp(a, "--client"))
			o.client = v;
		else
			die("unknown option %s (see the top of bench/flood.c)", a);
	}
	if (o.seconds <= 0)
		die("--seconds must be positive");
	if (!o.sources || o.sources > FLOOD_GEN_MAX_SRCS)
		die("--sources must be 1..%u", FLOOD_GEN_MAX_SRCS);
	if (!o.rate || o.repeat < MAX_BATCH || o.gen_cpu == o.rx_cpu)
		die("--rate must be positive, --repeat at least %d, --gen-cpu and "
		    "--rx-cpu different", MAX_BATCH);
	{
		char buf[256];

		snprintf(buf, sizeof(buf), "%s", o.systems);
		for (char *save = NULL, *s = strtok_r(buf, ",", &save); s;
		     s = strtok_r(NULL, ",", &save)) {
			size_t k;

			for (k = 0; k < N_SYS && strcmp(sys_info[k].key, s); k++)
				;
			if (k == N_SYS || n_kinds == N_SYS)
				die("unknown system %s (or too many)", s);
			kinds[n_kinds++] = (enum sys_kind)k;
		}
		if (!n_kinds)
			die("--systems names none");
	}
	if (geteuid() != 0)
		die("needs root (BPF, network namespaces)");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (o.gen_cpu >= ncpu || o.rx_cpu >= ncpu)
		die("--gen-cpu/--rx-cpu: this machine has %ld CPUs", ncpu);
	for (size_t i = 0; i < n_kinds; i++) {
		const char *need = kinds[i] == SYS_IPT ? "iptables ipset" :
				   kinds[i] == SYS_IPT_LEGACY ? "iptables-legacy ipset" : "";
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "for t in nft ethtool nsenter %s; do command -v "
			 "$t >/dev/null || exit 1; done", need);
		if (system(cmd))
			die("nft, ethtool, nsenter or %s not installed (make deps)",
			    need[0] ? need : "-");
	}
	for (const char *const *p = (const char *const[]){ o.gen_obj, o.ringloss_obj,
							    o.sentryd, o.probe, o.client,
							    NULL }; *p; p++)
		if (access(*p, R_OK))
			die("missing %s: run make bench-flood", *p);

	sh("mkdir -p '%s'", o.work);
	char abs[4096];

	if (!realpath(o.work, abs))
		die("cannot resolve %s", o.work);
	o.work = strdup(abs);

	/* Names unique to the run; the atexit handler removes it all. */
	snprintf(R.id, sizeof(R.id), "%x", (unsigned)getpid());
	snprintf(R.atk, sizeof(R.atk), "snfl-atk-%s", R.id);
	snprintf(R.host, sizeof(R.host), "snfl-host-%s", R.id);
	snprintf(R.cli, sizeof(R.cli), "snfl-cli-%s", R.id);
	snprintf(R.ifp, sizeof(R.ifp), "fp%s", R.id);
	atexit(on_exit_cleanup);
	struct sigaction sa = { .sa_handler = on_signal };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* The bench and the commands it runs stay off the receiver's CPU,
	 * and ahead of other work on its own (see the top). */
	pin_cpu(0, o.gen_cpu);
	struct sched_param sp = { .sched_priority = RT_BENCH };

	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		die("cannot become SCHED_FIFO: %s", strerror(errno));

	struct blocklist bl;
	static struct flood_gen g;
	static struct sys_result res[N_SYS];
	struct in_addr h, c;

	bl_build(&bl, o.data, o.country, o.attack);
	inet_pton(AF_INET, HOST_ADDR, &h);
	inet_pton(AF_INET, CLI_ADDR, &c);
	if (bl_covers(&bl, ntohl(h.s_addr)) || bl_covers(&bl, ntohl(c.s_addr)))
		die("the blocklist covers %s or %s (the legitimate addresses)",
		    HOST_ADDR, CLI_ADDR);
	write_files(&o, &bl, R.ifp);
	flood_gen_load(&g, o.gen_obj, &bl, o.sources, o.mix, FLOOD_PORT0, FRAME_LEN,
		       o.seed);
	ringloss_open(&R.rl, o.ringloss_obj, o.rx_cpu);
	R.rl_open = true;
	if (o.pcp_high)
		pcp_tune(&R.pcp, o.rx_cpu, o.pcp_high);
	print_machine(&o, &bl, &g);

	/* Which iptables Debian's alternatives chose, in its row's title. */
	char *ipt = capture("iptables -V 2>/dev/null");
	const char *ipt_title = strstr(ipt, "nf_tables") ? "iptables-nft raw + ipset" :
				strstr(ipt, "legacy") ? "iptables-legacy raw+ipset" :
							 sys_info[SYS_IPT].title;

	for (size_t i = 0; i < n_kinds; i++)
		run_system(&o, &g, kinds[i],
			   kinds[i] == SYS_IPT ? ipt_title : sys_info[kinds[i]].title, &res[i]);
	free(ipt);
	print_results(&o, res, n_kinds);
	flood_gen_close(&g);
	bl_free(&bl);
	free((char *)o.work);
	return 0;
}

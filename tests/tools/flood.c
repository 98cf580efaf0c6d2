/*
 * flood: line-rate UDP from a namespace, by BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES (tests/kernel/flood.h): frames leave through
 * --iface as if the interface sent them, so over a veth pair they reach
 * the peer's XDP program for real.
 *
 *   flood --iface IF --src ADDR[,ADDR...] [--dport N] [--seconds S]
 *         [--pps N] [--repeat N]
 *
 * Sources take turns, --repeat frames each (default 64), for --seconds
 * (default 5) or until SIGTERM/SIGINT, paced to about --pps frames per
 * second (default 0: as fast as it goes).  Prints "started" when the
 * first frames are out and, at the end, one line "src ADDR N" per source
 * with the frames sent.  Exit 0, 1 on a failure, 2 usage.
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/kernel/flood.h"

#define MAX_SRCS 64

static volatile bool stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = true;
}

int main(int argc, char **argv)
{
	static struct flood_src src[MAX_SRCS];
	static char names[MAX_SRCS][64];
	const char *ifname = NULL, *list = NULL;
	double seconds = 5;
	unsigned long long pps = 0;
	unsigned long dport = 9, repeat = 64;
	size_t n = 0;
	bool bad = argc % 2 == 0;
	struct sigaction sa = { .sa_handler = on_signal };
	int prog, ifindex, rc;

	for (int i = 1; !bad && i + 1 < argc; i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--iface"))
			ifname = v;
		else if (!strcmp(o, "--src"))
			list = v;
		else if (!strcmp(o, "--dport"))
			dport = strtoul(v, NULL, 0);
		else if (!strcmp(o, "--seconds"))
			seconds = strtod(v, NULL);
		else if (!strcmp(o, "--pps"))
			pps = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--repeat"))
			repeat = strtoul(v, NULL, 0);
		else
			bad = true;
	}
	if (bad || !ifname || !list || seconds <= 0 || !repeat || dport > 65535) {
		fprintf(stderr, "usage: flood --iface IF --src ADDR[,ADDR...] "
			"[--dport N] [--seconds S] [--pps N] [--repeat N]\n");
		return 2;
	}
	for (const char *p = list; *p && n < MAX_SRCS;) {
		size_t l = strcspn(p, ",");

		snprintf(names[n], sizeof(names[n]), "%.*s", (int)l, p);
		if (flood_src_init(&src[n], names[n], (uint16_t)dport)) {
			fprintf(stderr, "flood: bad source '%s'\n", names[n]);
			return 2;
		}
		n++;
		p += l + (p[l] == ',');
	}
	ifindex = (int)if_nametoindex(ifname);
	if (!ifindex) {
		fprintf(stderr, "flood: no interface %s\n", ifname);
		return 1;
	}
	prog = flood_prog_load();
	if (prog < 0) {
		fprintf(stderr, "flood: loading the XDP_TX program: %s\n",
			strerror(-prog));
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* One round first, so "started" means frames are on the wire. */
	rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = flood_send(prog, ifindex, &src[i], (uint32_t)repeat, 64);
	if (!rc) {
		printf("started\n");
		fflush(stdout);
		rc = flood_run(prog, ifindex, src, n, (uint32_t)repeat, pps, &stop,
			       flood_now_ns() + (uint64_t)(seconds * 1e9));
	}
	if (rc)
		fprintf(stderr, "flood: BPF_PROG_TEST_RUN: %s\n", strerror(-rc));
	for (size_t i = 0; i < n; i++)
		printf("src %s %llu\n", names[i], (unsigned long long)src[i].sent);
	close(prog);
	return rc ? 1 : 0;
}

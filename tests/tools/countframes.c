/*
 * countframes: count the IPv4 frames that arrive on an interface, by
 * source address - the frames XDP passed (a packet socket sees a frame
 * only after the XDP program let it into the stack).  The receiving half
 * of tests/tools/flood.
 *
 *   countframes --iface IF [--timeout-ms N]
 *
 * Prints "ready" once the socket is bound; at the timeout (default 60 s),
 * SIGTERM or SIGINT prints one line "src ADDR N" per source seen and
 * "drops N": frames the socket itself lost (PACKET_STATISTICS), so a
 * reader knows how complete the counts are.
 *
 * Exit 0, 1 on a socket error, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SRCS 1024

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	static struct { uint32_t addr; uint64_t n; } seen[MAX_SRCS];
	size_t n_seen = 0;
	uint64_t drops = 0;
	const char *ifname = NULL;
	long timeout_ms = 60000;
	struct sockaddr_ll sll = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	int fd, size = 64 << 20;
	bool bad = argc % 2 == 0;

	for (int i = 1; !bad && i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--iface"))
			ifname = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout-ms"))
			timeout_ms = strtol(argv[i + 1], NULL, 0);
		else
			bad = true;
	}
	if (bad || !ifname || timeout_ms <= 0) {
		fprintf(stderr, "usage: countframes --iface IF [--timeout-ms N]\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	if (fd < 0) {
		fprintf(stderr, "countframes: AF_PACKET socket: %s\n", strerror(errno));
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_IP);
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex || bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "countframes: bind to %s: %s\n", ifname,
			strerror(errno));
		close(fd);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	long long deadline = now_ms() + timeout_ms;
	while (!stop && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint8_t buf[2048];
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n;
		uint32_t src;
		size_t i;

		if (poll(&p, 1, 100) <= 0)
			continue;
		for (;;) {
			n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
			if (n < 0)
				break;
			if (from.sll_pkttype == PACKET_OUTGOING || n < 34)
				continue;
			memcpy(&src, buf + 26, 4); /* untagged IPv4 source */
			for (i = 0; i < n_seen && seen[i].addr != src; i++)
				;
			if (i == n_seen && n_seen < MAX_SRCS)
				seen[n_seen++].addr = src;
			if (i < n_seen)
				seen[i].n++;
		}
		if (errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "countframes: %s\n", strerror(errno));
			close(fd);
			return 1;
		}
	}
	struct tpacket_stats st;
	socklen_t sl = sizeof(st);

	if (!getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl))
		drops = st.tp_drops;
	for (size_t i = 0; i < n_seen; i++) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &seen[i].addr, a, sizeof(a));
		printf("src %s %llu\n", a, (unsigned long long)seen[i].n);
	}
	printf("drops %llu\n", (unsigned long long)drops);
	close(fd);
	return 0;
}

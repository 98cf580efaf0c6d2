/*
 * recvframe: report the tagged frames that arrive on an interface, i.e.
 * the frames XDP passed (a packet socket sees a frame only after the XDP
 * program let it into the stack).  The other half of sendframe.
 *
 *   recvframe --iface IF [--timeout-ms N]
 *
 * Prints "ready" once the socket is bound, then one line "tag N len L" per
 * received frame whose source MAC is 02:47:45:NN:NN:NN (sendframe --tag),
 * flushed at once, until N ms have passed (default 60000) or a signal ends
 * it.  Other frames are ignored, as are frames this host sends.
 *
 * Exit 0 after the timeout, 1 on a socket error, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL;
	long timeout_ms = 60000;
	struct sockaddr_ll sll = { 0 };
	unsigned ifindex;
	long long deadline;
	int fd;

	bool bad = argc % 2 == 0; /* options come in pairs */

	for (int i = 1; !bad && i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--iface"))
			ifname = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout-ms"))
			timeout_ms = strtol(argv[i + 1], NULL, 0);
		else
			bad = true;
	}
	if (bad || !ifname || timeout_ms <= 0) {
		fprintf(stderr, "usage: recvframe --iface IF [--timeout-ms N]\n");
		return 2;
	}
	ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		fprintf(stderr, "recvframe: no interface %s\n", ifname);
		return 1;
	}
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (fd < 0) {
		fprintf(stderr, "recvframe: AF_PACKET socket: %s\n", strerror(errno));
		return 1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "recvframe: bind to %s: %s\n", ifname,
			strerror(errno));
		close(fd);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	deadline = now_ms() + timeout_ms;
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint8_t buf[2048];
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) <= 0)
			continue;
		n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
			     (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fprintf(stderr, "recvframe: %s\n", strerror(errno));
			close(fd);
			return 1;
		}
		if (from.sll_pkttype == PACKET_OUTGOING || n < 12 ||
		    buf[6] != 0x02 || buf[7] != 0x47 || buf[8] != 0x45)
			continue;
		printf("tag %u len %zd\n",
		       (unsigned)buf[9] << 16 | (unsigned)buf[10] << 8 | buf[11], n);
		fflush(stdout);
	}
	close(fd);
	return 0;
}

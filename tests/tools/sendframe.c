/*
 * sendframe: write crafted Ethernet frames on an AF_PACKET socket, for the
 * evasion suite over real veth links (tests/e2e/evasion.sh).
 *
 *   sendframe --list                 cases: NAME<TAB>PASS|DROP<TAB>RULE<TAB>WHAT
 *   sendframe --policy               the policy the cases are written for
 *   sendframe --iface IF --case NAME [--tag N] [--dst-mac MAC]
 *   sendframe --iface IF --hex HEX   [--tag N] [--dst-mac MAC]
 *
 * The cases are tests/kernel/evasion_cases.h, the very frames
 * tests/kernel/test_evasion runs through BPF_PROG_TEST_RUN.  --hex sends
 * any frame (e.g. a reproducer printed by test_differential).
 *
 * --tag N (0..0xffffff) writes 02:47:45:NN:NN:NN as the source MAC, so
 * recvframe on the far side can tell which frames arrived: the XDP program
 * does not look at MAC addresses, and the MAC header survives the kernel's
 * VLAN untagging that a packet socket sees.  --dst-mac sets the destination
 * (default: whatever the frame has, 02:00:00:00:00:02 for cases).
 *
 * Exit 0 sent, 1 failed to send, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/kernel/evasion_cases.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sendframe --list | --policy\n"
		"       sendframe --iface IF (--case NAME | --hex HEX) [--tag N] "
		"[--dst-mac MAC]\n");
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

/* Hex digits (spaces and colons ignored) into buf; length or -EINVAL. */
static long parse_hex(const char *s, uint8_t *buf, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *s; s++) {
		int d;

		if (*s == ' ' || *s == ':' || *s == '\n')
			continue;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -EINVAL;
		if (hi < 0) {
			hi = d;
			continue;
		}
		if (n == cap)
			return -EINVAL;
		buf[n++] = (uint8_t)(hi << 4 | d);
		hi = -1;
	}
	return hi < 0 ? (long)n : -EINVAL;
}

static const struct evasion_case *find_case(const char *name)
{
	for (size_t i = 0; i < EVASION_N_CASES; i++)
		if (!strcmp(evasion_cases[i].name, name))
			return &evasion_cases[i];
	return NULL;
}

static int send_frame(const char *ifname, const uint8_t *frame, size_t len)
{
	struct sockaddr_ll sll = { 0 };
	unsigned ifindex = if_nametoindex(ifname);
	int fd, rc = 0;

	if (!ifindex) {
		fprintf(stderr, "sendframe: no interface %s\n", ifname);
		return 1;
	}
	/* Protocol 0: a send-only socket, it never queues received frames. */
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		fprintf(stderr, "sendframe: AF_PACKET socket: %s\n",
			strerror(errno));
		return 1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)ifindex;
	sll.sll_halen = ETH_ALEN;
	memcpy(sll.sll_addr, frame, ETH_ALEN);
	if (sendto(fd, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll)) !=
	    (ssize_t)len) {
		fprintf(stderr, "sendframe: send %zu bytes on %s: %s\n", len,
			ifname, strerror(errno));
		rc = 1;
	}
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *case_name = NULL, *hex = NULL, *dst = NULL;
	long tag = -1;
	uint8_t frame[PKT_MAX] = { 0 }, mac[6];
	size_t len;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--list")) {
			for (size_t k = 0; k < EVASION_N_CASES; k++) {
				const struct evasion_case *c = &evasion_cases[k];

				printf("%s\t%s\t%u\t%s\n", c->name,
				       c->action == XDP_PASS ? "PASS" : "DROP",
				       c->rule, c->what);
			}
			return 0;
		}
		if (!strcmp(a, "--policy")) {
			fputs(evasion_policy, stdout);
			return 0;
		}
		if (!strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--iface"))
			ifname = v;
		else if (!strcmp(a, "--case"))
			case_name = v;
		else if (!strcmp(a, "--hex"))
			hex = v;
		else if (!strcmp(a, "--dst-mac"))
			dst = v;
		else if (!strcmp(a, "--tag"))
			tag = strtol(v, NULL, 0);
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!ifname || !!case_name == !!hex || tag > 0xffffff ||
	    (dst && parse_mac(dst, mac))) {
		usage(stderr);
		return 2;
	}
	if (case_name) {
		const struct evasion_case *c = find_case(case_name);
		struct sn_packet facts;

		if (!c) {
			fprintf(stderr, "sendframe: no case %s (see --list)\n",
				case_name);
			return 2;
		}
		len = pkt_build(&c->pkt, frame, &facts);
	} else {
		long n = parse_hex(hex, frame, sizeof(frame));

		if (n < 14) {
			fprintf(stderr, "sendframe: --hex needs at least 14 "
					"bytes of hex digits\n");
			return 2;
		}
		len = (size_t)n;
	}
	if (dst)
		memcpy(frame, mac, 6);
	if (tag >= 0) {
		frame[6] = 0x02;
		frame[7] = 0x47;
		frame[8] = 0x45;
		frame[9] = (uint8_t)(tag >> 16);
		frame[10] = (uint8_t)(tag >> 8);
		frame[11] = (uint8_t)tag;
	}
	return send_frame(ifname, frame, len);
}

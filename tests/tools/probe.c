/*
 * probe: the traffic tool of the end-to-end tests and the demo.
 *
 *   probe tcp-connect --src ADDR --dst ADDR --port N [--timeout-ms M]
 *   probe udp         --src ADDR --dst ADDR --port N [--timeout-ms M]
 *   probe serve [--tcp PORT[,PORT...]] [--udp PORT[,PORT...]] [--bind ADDR]
 *
 * The clients bind to --src (so one namespace can speak from several
 * sources), send one line, and want it echoed back: they print "ok" and
 * exit 0, or print why not ("timeout", "refused", "unreachable") and exit 1.
 * Anything that says the test itself is broken (cannot bind the source,
 * bad echo) exits 3, so a misconfigured test never reads as "dropped".
 * Usage errors exit 2.
 *
 * serve echoes on every given port over IPv4 and IPv6 until killed; it
 * prints "ready" on stdout once every socket is bound, so scripts can wait
 * for it instead of sleeping.  UDP replies leave from the address the
 * datagram was sent to (IP_PKTINFO), or a client with several addresses
 * on the path would drop them.
 *
 * We carry this tool instead of using socat/nc so tests do not depend on
 * their variants' flags and exit codes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	EXIT_OK = 0,
	EXIT_NO_ECHO = 1,
	EXIT_USAGE = 2,
	EXIT_LOCAL = 3,
};

#define MAX_PORTS 16
#define MAX_LISTENERS (2 * 2 * MAX_PORTS) /* tcp+udp, v4+v6 */
#define MAX_CLIENTS 64
#define CLIENT_IDLE_MS 10000
#define UDP_SENDS 3 /* a datagram is resent this many times in all */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: probe tcp-connect --src ADDR --dst ADDR --port N "
		"[--timeout-ms M]\n"
		"       probe udp --src ADDR --dst ADDR --port N "
		"[--timeout-ms M]\n"
		"       probe serve [--tcp PORT[,PORT...]] [--udp "
		"PORT[,PORT...]] [--bind ADDR]\n"
		"clients print ok (exit 0) or timeout/refused/unreachable "
		"(exit 1);\n"
		"exit 2: usage, exit 3: local error (cannot bind, bad echo)\n");
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parse ADDR (IPv4 or IPv6) with port into ss; false when not an address. */
static bool parse_addr(const char *s, uint16_t port,
		       struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return true;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return true;
	}
	return false;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max,
		      uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* "22,80" -> ports; false on a bad or too long list. */
static bool parse_ports(const char *s, uint16_t *ports, int *n)
{
	char buf[256];
	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		uint32_t p;
		if (*n >= MAX_PORTS || !parse_u32(t, 1, 65535, &p))
			return false;
		ports[(*n)++] = (uint16_t)p;
	}
	return true;
}

/* ---- clients ------------------------------------------------------------ */

struct client_opts {
	const char *src, *dst;
	uint32_t port;
	uint32_t timeout_ms;
};

static int parse_client(int argc, char **argv, struct client_opts *o)
{
	static const struct option longopts[] = {
		{ "src", required_argument, NULL, 's' },
		{ "dst", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct client_opts){ .timeout_ms = 1500 };
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->src = optarg; break;
		case 'd': o->dst = optarg; break;
		case 'p':
			if (!parse_u32(optarg, 1, 65535, &o->port)) {
				fprintf(stderr, "probe: bad --port %s\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (!parse_u32(optarg, 1, 600000, &o->timeout_ms)) {
				fprintf(stderr, "probe: bad --timeout-ms %s\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); exit(EXIT_OK);
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !o->src || !o->dst || !o->port) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* A socket bound to src and ready to talk to dst, or -1 (message printed). */
static int client_socket(const struct client_opts *o, int type,
			 struct sockaddr_storage *dst, socklen_t *dlen)
{
	struct sockaddr_storage src;
	socklen_t slen;
	if (!parse_addr(o->src, 0, &src, &slen) ||
	    !parse_addr(o->dst, (uint16_t)o->port, dst, dlen)) {
		fprintf(stderr, "probe: --src and --dst must be IP addresses\n");
		return -1;
	}
	if (src.ss_family != dst->ss_family) {
		fprintf(stderr, "probe: --src and --dst differ in family\n");
		return -1;
	}
	int fd = socket(dst->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("error: socket: %s\n", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&src, slen) != 0) {
		printf("error: bind %s: %s\n", o->src, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Map a socket error to the client's verdict and exit code. */
static int report_errno(int err)
{
	switch (err) {
	case ETIMEDOUT:
		printf("timeout\n");
		return EXIT_NO_ECHO;
	case ECONNREFUSED:
	case ECONNRESET:
		printf("refused\n");
		return EXIT_NO_ECHO;
	case EHOSTUNREACH:
	case ENETUNREACH:
		printf("unreachable\n");
		return EXIT_NO_ECHO;
	default:
		printf("error: %s\n", strerror(err));
		return EXIT_LOCAL;
	}
}

/* Wait for events on fd until deadline: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) { /* bounded: each round either returns or waits less */
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static void make_payload(char *buf, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, len, "47sentry-probe %ld-%ld\n", (long)getpid(),
		 (long)ts.tv_nsec);
}

static int cmd_tcp_connect(int argc, char **argv)
{
	struct client_opts o;
	int rc = parse_client(argc, argv, &o);
	if (rc)
		return rc;
	struct sockaddr_storage dst;
	socklen_t dlen;
	int fd = client_socket(&o, SOCK_STREAM, &dst, &dlen);
	if (fd < 0)
		return EXIT_LOCAL;
	int64_t deadline = now_ms() + o.timeout_ms;

	if (connect(fd, (struct sockaddr *)&dst, dlen) != 0 &&
	    errno != EINPROGRESS) {
		rc = report_errno(errno);
		goto out;
	}
	int r = wait_fd(fd, POLLOUT, deadline);
	if (r <= 0) {
		rc = report_errno(r == 0 ? ETIMEDOUT : -r);
		goto out;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		rc = report_errno(soerr);
		goto out;
	}

	char payload[64], reply[64];
	make_payload(payload, sizeof(payload));
	size_t plen = strlen(payload), got = 0;
	if (send(fd, payload, plen, MSG_NOSIGNAL) != (ssize_t)plen) {
		rc = report_errno(errno);
		goto out;
	}
	/* Read until the whole line is back; bounded by the deadline and by
	 * the reply buffer. */
	while (got < plen) {
		r = wait_fd(fd, POLLIN, deadline);
		if (r <= 0) {
			rc = report_errno(r == 0 ? ETIMEDOUT : -r);
			goto out;
		}
		ssize_t n = recv(fd, reply + got, plen - got, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			rc = report_errno(errno);
			goto out;
		}
		if (n == 0) {
			printf("error: connection closed before the echo\n");
			rc = EXIT_LOCAL;
			goto out;
		}
		got += (size_t)n;
	}
	if (memcmp(reply, payload, plen) != 0) {
		printf("error: bad echo\n");
		rc = EXIT_LOCAL;
		goto out;
	}
	printf("ok\n");
	rc = EXIT_OK;
out:
	close(fd);
	return rc;
}

static int cmd_udp(int argc, char **argv)
{
	struct client_opts o;
	int rc = parse_client(argc, argv, &o);
	if (rc)
		return rc;
	struct sockaddr_storage dst;
	socklen_t dlen;
	int fd = client_socket(&o, SOCK_DGRAM, &dst, &dlen);
	if (fd < 0)
		return EXIT_LOCAL;
	/* connect() so only the server's replies (and its ICMP errors) reach
	 * this socket. */
	if (connect(fd, (struct sockaddr *)&dst, dlen) != 0) {
		rc = report_errno(errno);
		goto out;
	}
	char payload[64], reply[128];
	make_payload(payload, sizeof(payload));
	size_t plen = strlen(payload);
	int64_t start = now_ms(), end = start + o.timeout_ms;

	/* UDP has no retransmission of its own: resend a few times within
	 * the timeout so one lost datagram is not read as a drop. */
	for (int i = 0; i < UDP_SENDS; i++) {
		if (send(fd, payload, plen, 0) < 0 && errno != EAGAIN) {
			rc = report_errno(errno);
			goto out;
		}
		int64_t slot = start + (int64_t)o.timeout_ms * (i + 1) / UDP_SENDS;
		for (int reads = 0; reads < 16; reads++) {
			int r = wait_fd(fd, POLLIN, slot < end ? slot : end);
			if (r < 0) {
				rc = report_errno(-r);
				goto out;
			}
			if (r == 0)
				break;
			ssize_t n = recv(fd, reply, sizeof(reply), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				rc = report_errno(errno);
				goto out;
			}
			if ((size_t)n == plen && memcmp(reply, payload, plen) == 0) {
				printf("ok\n");
				rc = EXIT_OK;
				goto out;
			}
			/* A stale echo of nothing we sent: keep waiting. */
		}
	}
	rc = report_errno(ETIMEDOUT);
out:
	close(fd);
	return rc;
}

/* ---- server ------------------------------------------------------------- */

enum slot_kind { SLOT_TCP_LISTEN, SLOT_UDP, SLOT_TCP_CLIENT };

struct server {
	struct pollfd pfd[MAX_LISTENERS + MAX_CLIENTS];
	enum slot_kind kind[MAX_LISTENERS + MAX_CLIENTS];
	int64_t last[MAX_LISTENERS + MAX_CLIENTS];
	int n_listen, n;
};

static int open_listener(int family, int type, const struct sockaddr *addr,
			 socklen_t alen)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		/* A v4 socket serves IPv4; keep this one IPv6 only. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (type == SOCK_DGRAM)
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
				   sizeof(one));
	} else if (type == SOCK_DGRAM) {
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	}
	if (bind(fd, addr, alen) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) != 0)) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int add_listeners(struct server *s, const char *bind_addr,
			 const uint16_t *ports, int n_ports, int type)
{
	for (int i = 0; i < n_ports; i++) {
		struct sockaddr_storage ss[2];
		socklen_t len[2];
		int n_addr = 0;
		if (bind_addr) {
			parse_addr(bind_addr, ports[i], &ss[0], &len[0]);
			n_addr = 1;
		} else {
			parse_addr("0.0.0.0", ports[i], &ss[0], &len[0]);
			parse_addr("::", ports[i], &ss[1], &len[1]);
			n_addr = 2;
		}
		for (int a = 0; a < n_addr; a++) {
			int fd = open_listener(ss[a].ss_family, type,
					       (struct sockaddr *)&ss[a], len[a]);
			if (fd < 0) {
				fprintf(stderr, "probe: %s port %u: %s\n",
					type == SOCK_STREAM ? "tcp" : "udp",
					ports[i], strerror(-fd));
				return -1;
			}
			s->pfd[s->n] = (struct pollfd){ .fd = fd,
							.events = POLLIN };
			s->kind[s->n] = type == SOCK_STREAM ? SLOT_TCP_LISTEN
							    : SLOT_UDP;
			s->n++;
		}
	}
	s->n_listen = s->n;
	return 0;
}

/* Echo one datagram back from the address it was sent to. */
static void udp_echo(int fd)
{
	char buf[2048];
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
			 CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} cbuf;
	struct sockaddr_storage peer;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = {
		.msg_name = &peer,
		.msg_namelen = sizeof(peer),
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
	if (n < 0)
		return;

	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} out;
	memset(&out, 0, sizeof(out));
	size_t outlen = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
	     c = CMSG_NXTHDR(&msg, c)) {
		struct cmsghdr *o = (struct cmsghdr *)out.buf;
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo in, reply = { 0 };
			memcpy(&in, CMSG_DATA(c), sizeof(in));
			reply.ipi_spec_dst = in.ipi_addr;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(reply));
			memcpy(CMSG_DATA(o), &reply, sizeof(reply));
			outlen = CMSG_SPACE(sizeof(reply));
		} else if (c->cmsg_level == IPPROTO_IPV6 &&
			   c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo in;
			memcpy(&in, CMSG_DATA(c), sizeof(in));
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(in));
			memcpy(CMSG_DATA(o), &in, sizeof(in));
			outlen = CMSG_SPACE(sizeof(in));
		}
	}
	iov.iov_len = (size_t)n;
	struct msghdr reply = {
		.msg_name = &peer,
		.msg_namelen = msg.msg_namelen,
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = outlen ? out.buf : NULL,
		.msg_controllen = outlen,
	};
	sendmsg(fd, &reply, MSG_DONTWAIT);
}

static void drop_slot(struct server *s, int i)
{
	close(s->pfd[i].fd);
	s->pfd[i] = s->pfd[s->n - 1];
	s->kind[i] = s->kind[s->n - 1];
	s->last[i] = s->last[s->n - 1];
	s->n--;
}

static void tcp_accept(struct server *s, int fd)
{
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	if (s->n >= MAX_LISTENERS + MAX_CLIENTS) {
		close(c); /* full: the client sees a reset, not a hang */
		return;
	}
	s->pfd[s->n] = (struct pollfd){ .fd = c, .events = POLLIN };
	s->kind[s->n] = SLOT_TCP_CLIENT;
	s->last[s->n] = now_ms();
	s->n++;
}

/* Echo what arrived; false when the connection is done. */
static bool tcp_echo(int fd)
{
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;
	/* Echo lines are tiny; a short write means a stuck client. */
	return send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n;
}

static int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tcp", required_argument, NULL, 't' },
		{ "udp", required_argument, NULL, 'u' },
		{ "bind", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint16_t tcp[MAX_PORTS], udp[MAX_PORTS];
	int n_tcp = 0, n_udp = 0, c;
	const char *bind_addr = NULL;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
		case 'u':
			if (!parse_ports(optarg, c == 't' ? tcp : udp,
					 c == 't' ? &n_tcp : &n_udp)) {
				fprintf(stderr, "probe: bad port list %s\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'b': bind_addr = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	struct sockaddr_storage tmp;
	socklen_t tlen;
	if (optind != argc || (!n_tcp && !n_udp) ||
	    (bind_addr && !parse_addr(bind_addr, 0, &tmp, &tlen))) {
		usage(stderr);
		return EXIT_USAGE;
	}

	static struct server s; /* large; static only to keep it off the stack */
	memset(&s, 0, sizeof(s));
	if (add_listeners(&s, bind_addr, tcp, n_tcp, SOCK_STREAM) ||
	    add_listeners(&s, bind_addr, udp, n_udp, SOCK_DGRAM))
		return EXIT_LOCAL;
	printf("ready\n");
	fflush(stdout);

	/* Runs until killed: the one unbounded loop, by design. */
	for (;;) {
		int r = poll(s.pfd, (nfds_t)s.n, 1000);
		if (r < 0 && errno != EINTR) {
			perror("probe: poll");
			return EXIT_LOCAL;
		}
		int64_t now = now_ms();
		for (int i = s.n - 1; i >= 0; i--) {
			short ev = s.pfd[i].revents;
			s.pfd[i].revents = 0;
			switch (s.kind[i]) {
			case SLOT_TCP_LISTEN:
				if (ev & POLLIN)
					tcp_accept(&s, s.pfd[i].fd);
				break;
			case SLOT_UDP:
				if (ev & POLLIN)
					udp_echo(s.pfd[i].fd);
				break;
			case SLOT_TCP_CLIENT:
				if (ev) {
					s.last[i] = now;
					if (!tcp_echo(s.pfd[i].fd) ||
					    (ev & (POLLERR | POLLHUP))) {
						drop_slot(&s, i);
						break;
					}
				}
				if (now - s.last[i] > CLIENT_IDLE_MS)
					drop_slot(&s, i);
				break;
			}
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	/* Subcommand options: getopt sees argv[1] as the program name. */
	argc--;
	argv++;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "tcp-connect") == 0)
		return cmd_tcp_connect(argc, argv);
	if (strcmp(cmd, "udp") == 0)
		return cmd_udp(argc, argv);
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc, argv);
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	fprintf(stderr, "probe: unknown command %s\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}

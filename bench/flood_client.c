/*
 * flood-client: the legitimate traffic of bench/flood - TCP
 * request/response against an echo server (tests/tools/probe serve),
 * with the latency of every request.
 *
 *   flood-client --dst ADDR --port N [--rate R] [--seconds S]
 *                [--max-requests N] [--timeout-ms T] [--size B]
 *
 * One persistent connection (TCP_NODELAY), paced to R requests per second
 * (default 2000): request i is sent at start + i/R, or at once when the
 * previous answer came later than that (closed loop: one request in
 * flight, so a slow answer delays the next one instead of piling up).
 * A request is B bytes (default 64) the server echoes; it succeeds when
 * all B bytes are back within T ms (default 1000).  A request that fails
 * (timeout, reset, short write) closes the connection and the next one
 * reconnects; a connect that fails within T ms counts as one failed
 * request.  The run ends after S seconds (default 5) or N requests
 * (default 1,000,000), whichever comes first; every wait is bounded by T.
 *
 * Prints one line:
 *   requests N ok N failed N reconnects N p50_us X p90_us X p99_us X
 *   p999_us X max_us X
 * (percentiles over the successful requests).  Exit 0, 1 when not even
 * the first connection could be made, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Wait for ev on fd until deadline_us; true when it came. */
static bool wait_fd(int fd, short ev, double deadline_us)
{
	for (;;) {
		double left = deadline_us - now_us();
		struct pollfd p = { .fd = fd, .events = ev };
		int r;

		if (left <= 0)
			return false;
		r = poll(&p, 1, (int)(left / 1000) + 1);
		if (r > 0)
			return !(p.revents & (POLLERR | POLLNVAL)) ||
			       (p.revents & ev);
		if (r < 0 && errno != EINTR)
			return false;
	}
}

/* A connected non-blocking socket, or -1 (within timeout_us). */
static int dial(const struct sockaddr_in *to, double timeout_us)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, err = 0;
	socklen_t el = sizeof(err);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) &&
	    errno != EINPROGRESS)
		goto fail;
	if (!wait_fd(fd, POLLOUT, now_us() + timeout_us) ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* One request: send size bytes, read them back; latency in us or -1. */
static double request(int fd, const char *msg, size_t size, double timeout_us)
{
	char buf[4096];
	double t0 = now_us(), deadline = t0 + timeout_us;
	size_t got = 0;

	if (send(fd, msg, size, MSG_NOSIGNAL) != (ssize_t)size)
		return -1;
	while (got < size) {
		ssize_t n;

		if (!wait_fd(fd, POLLIN, deadline))
			return -1;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (n > 0)
			got += (size_t)n;
	}
	return now_us() - t0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	const char *dst = NULL;
	unsigned long port = 0, size = 64;
	double rate = 2000, seconds = 5, timeout_ms = 1000;
	unsigned long max_req = 1000000;
	bool bad = argc % 2 == 0;
	struct sockaddr_in to = { .sin_family = AF_INET };

	for (int i = 1; !bad && i + 1 < argc; i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--dst"))
			dst = v;
		else if (!strcmp(o, "--port"))
			port = strtoul(v, NULL, 0);
		else if (!strcmp(o, "--rate"))
			rate = strtod(v, NULL);
		else if (!strcmp(o, "--seconds"))
			seconds = strtod(v, NULL);
		else if (!strcmp(o, "--max-requests"))
			max_req = strtoul(v, NULL, 0);
		else if (!strcmp(o, "--timeout-ms"))
			timeout_ms = strtod(v, NULL);
		else if (!strcmp(o, "--size"))
			size = strtoul(v, NULL, 0);
		else
			bad = true;
	}
	if (bad || !dst || inet_pton(AF_INET, dst, &to.sin_addr) != 1 ||
	    !port || port > 65535 || rate <= 0 || seconds <= 0 || !max_req ||
	    max_req > 100000000 || timeout_ms <= 0 || !size || size > 4096) {
		fprintf(stderr, "usage: flood-client --dst ADDR --port N [--rate R] "
			"[--seconds S] [--max-requests N] [--timeout-ms T] "
			"[--size B]\n");
		return 2;
	}
	to.sin_port = htons((uint16_t)port);

	double *lat = malloc(max_req * sizeof(*lat));
	char msg[4096];
	double timeout_us = timeout_ms * 1000, start, end;
	unsigned long n = 0, ok = 0, reconnects = 0;
	int fd;

	if (!lat)
		return 1;
	memset(msg, 'r', size);
	msg[size - 1] = '\n'; /* probe serve is a line echo */
	fd = dial(&to, timeout_us);
	if (fd < 0) {
		fprintf(stderr, "flood-client: cannot connect to %s:%lu\n", dst, port);
		return 1;
	}
	start = now_us();
	end = start + seconds * 1e6;
	while (n < max_req) {
		double due = start + (double)n * 1e6 / rate, t = now_us(), l;

		if (due >= end || t >= end)
			break;
		if (due > t) {
			struct timespec ts = { .tv_sec = (time_t)((due - t) / 1e6),
					       .tv_nsec = (long)(((long long)(due - t) %
								  1000000) * 1000) };

			nanosleep(&ts, NULL);
		}
		n++;
		if (fd < 0) {
			reconnects++;
			fd = dial(&to, timeout_us);
			if (fd < 0)
				continue;
		}
		l = request(fd, msg, size, timeout_us);
		if (l < 0) {
			close(fd);
			fd = -1;
			continue;
		}
		lat[ok++] = l;
	}
	if (fd >= 0)
		close(fd);
	qsort(lat, ok, sizeof(*lat), cmp_d);
	printf("requests %lu ok %lu failed %lu reconnects %lu p50_us %.1f "
	       "p90_us %.1f p99_us %.1f p999_us %.1f max_us %.1f\n", n, ok,
	       n - ok, reconnects, pct(lat, ok, 0.5), pct(lat, ok, 0.9),
	       pct(lat, ok, 0.99), pct(lat, ok, 0.999), pct(lat, ok, 1.0));
	free(lat);
	return 0;
}

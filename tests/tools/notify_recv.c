/*
 * notify_recv PATH [SECONDS]: what systemd does with NOTIFY_SOCKET, for
 * tests without systemd: bind a unix datagram socket at PATH and print
 * every message received, one per line ("READY=1 STATUS=..."; the
 * message's own newlines become spaces), until SECONDS (default 60) pass
 * or it is killed.  Prints "ready" once bound.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: notify_recv PATH [SECONDS]\n");
		return 2;
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof(a.sun_path)) {
		fprintf(stderr, "notify_recv: path too long\n");
		return 2;
	}
	strcpy(a.sun_path, argv[1]);
	int secs = argc == 3 ? atoi(argv[2]) : 60;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unlink(argv[1]);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		fprintf(stderr, "notify_recv: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	time_t end = time(NULL) + secs;
	while (time(NULL) < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				buf[i] = ' ';
		printf("%s\n", buf);
	}
	unlink(argv[1]);
	return 0;
}

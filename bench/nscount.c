/* See nscount.h. */
#include "bench/nscount.h"
#include "bench/die.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- sockets in a namespace --------------------------------------------- */

struct ns_sock_req {
	const char *ns;
	int domain, type, proto, fd, err;
};

int ns_enter(const char *ns)
{
	char path[128];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return rc;
}

static void *ns_sock_main(void *arg)
{
	struct ns_sock_req *r = arg;

	r->err = -ns_enter(r->ns);
	if (r->err)
		return NULL;
	r->fd = socket(r->domain, r->type | SOCK_CLOEXEC, r->proto);
	if (r->fd < 0)
		r->err = errno;
	return NULL;
}

int ns_socket(const char *ns, int domain, int type, int proto)
{
	struct ns_sock_req r = { .ns = ns, .domain = domain, .type = type,
				 .proto = proto, .fd = -1 };
	pthread_t th;

	/* setns changes only the calling thread: the caller stays put. */
	if (pthread_create(&th, NULL, ns_sock_main, &r))
		die("pthread_create");
	pthread_join(th, NULL);
	if (r.fd < 0)
		die("socket in namespace %s: %s", ns, strerror(r.err));
	return r.fd;
}

/* ---- ethtool statistics ------------------------------------------------------ */

static void ethtool(struct ethstats *e, void *cmd, const char *what)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", e->ifname);
	ifr.ifr_data = cmd;
	if (ioctl(e->fd, SIOCETHTOOL, &ifr))
		die("ethtool %s on %s: %s", what, e->ifname, strerror(errno));
}

void ethstats_open(struct ethstats *e, int fd, const char *ifname)
{
	struct {
		struct ethtool_sset_info hdr;
		uint32_t count;
	} info = { .hdr = { .cmd = ETHTOOL_GSSET_INFO,
			    .sset_mask = 1ull << ETH_SS_STATS } };
	struct ethtool_gstrings *gs;

	memset(e, 0, sizeof(*e));
	e->fd = fd;
	snprintf(e->ifname, sizeof(e->ifname), "%s", ifname);
	ethtool(e, &info, "GSSET_INFO");
	e->n = info.hdr.sset_mask ? info.count : 0;
	if (!e->n)
		die("%s has no ethtool statistics", ifname);
	gs = calloc(1, sizeof(*gs) + (size_t)e->n * ETH_GSTRING_LEN);
	e->names = calloc(e->n, ETH_GSTRING_LEN);
	e->buf = calloc(1, sizeof(struct ethtool_stats) + e->n * sizeof(uint64_t));
	if (!gs || !e->names || !e->buf)
		die("out of memory");
	gs->cmd = ETHTOOL_GSTRINGS;
	gs->string_set = ETH_SS_STATS;
	gs->len = e->n;
	ethtool(e, gs, "GSTRINGS");
	memcpy(e->names, gs->data, (size_t)e->n * ETH_GSTRING_LEN);
	for (uint32_t i = 0; i < e->n; i++)
		e->names[i][ETH_GSTRING_LEN - 1] = '\0';
	free(gs);
}

void ethstats_read(struct ethstats *e)
{
	struct ethtool_stats *st = e->buf;

	st->cmd = ETHTOOL_GSTATS;
	st->n_stats = e->n;
	ethtool(e, st, "GSTATS");
}

uint64_t ethstats_get(const struct ethstats *e, const char *name)
{
	const struct ethtool_stats *st = e->buf;

	for (uint32_t i = 0; i < e->n; i++)
		if (!strcmp(e->names[i], name))
			return st->data[i];
	die("%s has no ethtool statistic %s", e->ifname, name);
}

void ethstats_close(struct ethstats *e)
{
	free(e->names);
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

/* ---- rtnetlink ---------------------------------------------------------------- */

uint64_t link_tx_packets(int nlfd, const char *ifname)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		char attrs[64];
	} req = { 0 };
	struct rtattr *a = (struct rtattr *)req.attrs;
	size_t nl = strlen(ifname) + 1;
	char buf[16384];
	ssize_t n;

	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.ifi.ifi_family = AF_UNSPEC;
	a->rta_type = IFLA_IFNAME;
	a->rta_len = (unsigned short)RTA_LENGTH(nl);
	memcpy(RTA_DATA(a), ifname, nl);
	req.nh.nlmsg_len = (uint32_t)(NLMSG_LENGTH(sizeof(req.ifi)) + RTA_ALIGN(a->rta_len));
	if (send(nlfd, &req, req.nh.nlmsg_len, 0) < 0)
		die("RTM_GETLINK %s: %s", ifname, strerror(errno));
	n = recv(nlfd, buf, sizeof(buf), 0);
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(h, (size_t)n);
	     h = NLMSG_NEXT(h, n)) {
		struct ifinfomsg *ifi = NLMSG_DATA(h);
		int len = (int)IFLA_PAYLOAD(h);

		if (h->nlmsg_type == NLMSG_ERROR)
			break;
		if (h->nlmsg_type != RTM_NEWLINK)
			continue;
		for (struct rtattr *r = IFLA_RTA(ifi); RTA_OK(r, len); r = RTA_NEXT(r, len))
			if (r->rta_type == IFLA_STATS64) {
				struct rtnl_link_stats64 st;

				memcpy(&st, RTA_DATA(r), sizeof(st));
				return st.tx_packets;
			}
	}
	die("RTM_GETLINK %s: no statistics in the answer", ifname);
}

/* ---- nftables counters -------------------------------------------------------- */

void nftcount_start(struct nftcount *n, const char *ns, int rt_prio)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	n->pid = fork();
	if (n->pid < 0)
		die("fork: %s", strerror(errno));
	if (n->pid == 0) {
		struct sched_param sp = { .sched_priority = rt_prio };

		sched_setscheduler(0, rt_prio ? SCHED_FIFO : SCHED_OTHER, &sp);
		dup2(in[0], 0);
		dup2(out[1], 1);
		execlp("ip", "ip", "netns", "exec", ns, "nft", "-i", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	n->in = fdopen(in[1], "w");
	n->out = out[0];
	n->len = 0;
	if (!n->in)
		die("fdopen: %s", strerror(errno));
}

/* One line of nft's answer, waiting at most 5 s for it. */
static bool nft_line(struct nftcount *n, char *line, size_t len)
{
	for (;;) {
		char *nl = memchr(n->buf, '\n', n->len);
		struct pollfd p = { .fd = n->out, .events = POLLIN };
		ssize_t r;

		if (nl) {
			size_t l = (size_t)(nl - n->buf) + 1;

			snprintf(line, len, "%.*s", (int)l, n->buf);
			memmove(n->buf, n->buf + l, n->len - l);
			n->len -= l;
			return true;
		}
		if (n->len == sizeof(n->buf))
			n->len = 0; /* a line longer than the buffer: not ours */
		if (poll(&p, 1, 5000) <= 0)
			return false;
		r = read(n->out, n->buf + n->len, sizeof(n->buf) - n->len);
		if (r <= 0)
			return false;
		n->len += (size_t)r;
	}
}

void nftcount_read(struct nftcount *n, const char *table, const char *const *names,
		   uint64_t *out, int count)
{
	char line[512];
	int cur = -1, found = 0;

	fprintf(n->in, "list counters table %s\n", table);
	fflush(n->in);
	/* The answer is the table block: it ends with "}" in column 0. */
	for (int lines = 0; lines < 10000; lines++) {
		if (!nft_line(n, line, sizeof(line)))
			die("nft -i did not answer 'list counters table %s'", table);
		if (line[0] == '}')
			break;
		char *c = strstr(line, "counter ");

		if (c) {
			char name[64] = "";

			sscanf(c + 8, "%63s", name);
			cur = -1;
			for (int i = 0; i < count; i++)
				if (!strcmp(names[i], name))
					cur = i;
			continue;
		}
		c = strstr(line, "packets ");
		if (c && cur >= 0) {
			out[cur] = strtoull(c + 8, NULL, 10);
			found++;
			cur = -1;
		}
	}
	if (found != count)
		die("nft: %d of %d counters of table %s found", found, count, table);
}

void nftcount_stop(struct nftcount *n)
{
	if (n->in)
		fclose(n->in); /* EOF: nft -i exits */
	if (n->out > 0)
		close(n->out);
	if (n->pid > 0) {
		for (int i = 0; i < 300 && waitpid(n->pid, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		if (waitpid(n->pid, NULL, WNOHANG) == 0) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, NULL, 0);
		}
	}
	memset(n, 0, sizeof(*n));
}

/*
 * Counters of interfaces and nftables in other network namespaces, read
 * without starting a process per reading (bench/flood reads them under a
 * flood of millions of frames per second, where a reading that takes
 * tens of milliseconds skews the window it opens or closes):
 *
 *  - ns_socket: a socket created inside a named namespace (by a thread of
 *    its own that enters it), so ioctls and netlink requests on it see
 *    that namespace's interfaces;
 *  - ethtool statistics (SIOCETHTOOL) by name;
 *  - an interface's packet counters (rtnetlink, IFLA_STATS64);
 *  - nftables named counters, through one `nft -i` kept running in the
 *    namespace (`list counters table ...` answers in about a millisecond).
 *
 * Every function dies (exit 2) on failure, after printing why: these
 * are a benchmark's readings, and a missing one would silently make its
 * table wrong.
 */
#ifndef SN_BENCH_NSCOUNT_H
#define SN_BENCH_NSCOUNT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Move the calling thread into namespace ns (/run/netns/NS): 0 or
 * -errno.  Only that thread moves. */
int ns_enter(const char *ns);
/* A socket(domain, type, proto) living in namespace ns (/run/netns/NS). */
int ns_socket(const char *ns, int domain, int type, int proto);

struct ethstats {
	int fd;               /* a socket of the interface's namespace */
	char ifname[16];
	uint32_t n;           /* number of statistics */
	char (*names)[32];    /* ETH_GSTRING_LEN each */
	void *buf;            /* struct ethtool_stats + n values */
};

/* Look up the statistics' names of ifname once. */
void ethstats_open(struct ethstats *e, int fd, const char *ifname);
/* Read all values now. */
void ethstats_read(struct ethstats *e);
/* A value of the last read by name; dies if the driver has no such. */
uint64_t ethstats_get(const struct ethstats *e, const char *name);
void ethstats_close(struct ethstats *e);

/* tx_packets of ifname, by RTM_GETLINK on a NETLINK_ROUTE socket. */
uint64_t link_tx_packets(int nlfd, const char *ifname);

struct nftcount {
	pid_t pid;
	FILE *in;
	int out;         /* nft's stdout */
	char buf[8192];  /* what was read of it and not yet taken */
	size_t len;
};

/* `nft -i` in namespace ns, at SCHED_FIFO priority rt_prio (0: none). */
void nftcount_start(struct nftcount *n, const char *ns, int rt_prio);
/* The packet counts of the named counters of a table ("inet NAME"):
 * names[i] -> out[i]. */
void nftcount_read(struct nftcount *n, const char *table, const char *const *names,
		   uint64_t *out, int count);
void nftcount_stop(struct nftcount *n);

#endif

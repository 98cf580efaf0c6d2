/*
 * bench/reload: how fast a policy change is enforced (SPEC.md 4.3, 7).
 *
 *   build/bench/reload [--work DIR] [--compile PATH] [--sentryd PATH]
 *                      [--cases typical,1m] [--iters N] [--iters-1m N]
 *                      [--no-wire] [--no-nft]
 *
 * Cases: "typical", bench/typical.sentry (218 lines); "1m", the 1M-prefix
 * policy of bench/compile (its fixtures, written by running it once with
 * --cases 1m --no-nft when --work has none).  Changes:
 *
 *   one line  the line "allow from S" at the end of the policy names
 *             another blocked host S each time (a one-prefix change);
 *   10 %      typical: that line and the 20 hosts of a blocked set, all
 *             new each time (21 of 218 lines); 1m: that line, and 80k of
 *             the IPv4 and 20k of the IPv6 generated prefixes (100k of
 *             1M) replaced by new ones (from 240.0.0.0/4 and fc00::/7,
 *             so the nftables sets stay disjoint).
 *
 * Measured:
 *
 *  1. library (no traffic): the initial load of the policy - compile,
 *     program load, first apply (translate, write, flip, grace period,
 *     level) - and, per change, the diff apply alone: translate + write
 *     into the standby generation + flip (the new policy enforces), then
 *     the grace period and the levelling, and the entries written;
 *  2. wire: sentryd on a veth in a network namespace; a sender in another
 *     namespace sends UDP from S at 50k frames/s over AF_PACKET, a
 *     receiver on the server's interface (AF_PACKET: what XDP passed)
 *     timestamps the first frame from S.  The policy file is replaced by a
 *     rename (the list files too, for the 1m 10 % change): time from the
 *     rename to the first frame of S on the wire (the verdict changed),
 *     p50/p99/max; sentryd's own startup on the policy until it enforces;
 *  3. nftables, in a network namespace: `nft -f` of the equivalent
 *     ruleset (bench/typical.nft, the 1m fixture's .nft), and `nft -f`
 *     replacing the sets with the changed content (flush + add, one
 *     transaction: what regenerating the ruleset file does), beside one
 *     incremental `nft add element` for reference.
 *
 * Needs root.  Numbers go to stdout as tables; BENCHMARKS.md records runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compiler/compile.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"

struct opts {
	const char *work, *compile, *sentryd, *cases;
	int iters, iters_1m;
	bool wire, nft;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench/reload: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Percentile q (0..1) of v[0..n), sorted in place. */
static double pct(double *v, int n, double q)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	int i = (int)(q * (n - 1) + 0.5);

	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd))
		die("failed: %s", cmd);
}

/* Wall time of a shell command, ms; -1 when it fails. */
static double timed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static double timed(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	double t;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	t = now_ms();
	if (system(cmd))
		return -1;
	return now_ms() - t;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		die("cannot read %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read %s", path);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(text, 1, len, f) != len || fclose(f))
		die("cannot write %s", path);
}

/* ---- cases and changes ------------------------------------------------------ */

struct lines {
	char **v;
	size_t n;
};

/* The lines of a list file (without the newlines). */
static struct lines read_lines(const char *path)
{
	size_t len;
	char *t = slurp(path, &len);
	struct lines l = { 0 };
	size_t cap = 1024;

	l.v = malloc(cap * sizeof(*l.v));
	for (char *p = t, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		if (l.n == cap)
			l.v = realloc(l.v, (cap *= 2) * sizeof(*l.v));
		l.v[l.n++] = strndup(p, (size_t)(nl - p));
		if (!*nl)
			break;
	}
	free(t);
	return l;
}

struct bcase {
	const char *name;
	char dir[512];        /* where the policy and its lists live */
	char policy[600];     /* the policy file sentryd watches */
	char *base;           /* policy text without the managed lines */
	bool big;             /* the 1m case */
	struct lines gen4, gen6; /* 1m: generated lists */
	char nft[600];        /* the equivalent nftables file */
	char nft_table[64];
};

/* The k-th blocked host a change unblocks. */
static void host_of(const struct bcase *c, int k, char *out, size_t len)
{
	if (c->big)
		snprintf(out, len, "1.0.0.%d", 1 + k % 250);
	else /* 203.0.113.7 the typical policy allows itself */
		snprintf(out, len, "203.0.113.%d", 10 + k % 110);
}

/* Policy text for change k: the base, "allow from S_k", and for a 10 %
 * change of the typical case 20 new block lines. */
static char *policy_for(const struct bcase *c, int k, bool ten)
{
	size_t cap = strlen(c->base) + 4096, n;
	char *t = malloc(cap), host[64];

	host_of(c, k, host, sizeof(host));
	/* Sets, as a policy would name them: the rules stay, their
	 * contents change (and their counters go on). */
	n = (size_t)snprintf(t, cap, "%s\n# bench/reload: the changing lines\n"
			     "set bench_allow = { %s }\nallow from @bench_allow\n",
			     c->base, host);
	if (ten && !c->big) {
		n += (size_t)snprintf(t + n, cap - n, "set bench_block = {\n");
		/* Hosts nothing else in the policy names: new ranges. */
		for (int j = 0; j < 20; j++)
			n += (size_t)snprintf(t + n, cap - n, "    172.%d.%d.%d,\n",
					      16 + k % 16, j * 11, 1 + (k / 16) % 250);
		snprintf(t + n, cap - n, "}\nblock from @bench_block\n");
	} else if (!c->big) {
		snprintf(t + n, cap - n, "set bench_block = { 172.31.255.255 }\n"
			 "block from @bench_block\n");
	}
	return t;
}

/* 1m 10 %: replace 80k IPv4 and 20k IPv6 generated prefixes (variant k). */
static void write_gen_lists(const struct bcase *c, int k, const char *suffix)
{
	char path[700];
	size_t cap = 40u << 20, n = 0;
	char *t = malloc(cap);

	for (int fam = 0; fam < 2; fam++) {
		const struct lines *l = fam ? &c->gen6 : &c->gen4;
		size_t repl = fam ? 20000 : 80000;

		n = 0;
		for (size_t i = 0; i < l->n; i++) {
			if (n + 64 > cap)
				die("list too large");
			if (k >= 0 && i < repl) {
				if (fam)
					n += (size_t)snprintf(t + n, cap - n,
							      "fc00:%x:%x::/48\n",
							      (unsigned)(k & 0xffff),
							      (unsigned)i);
				else
					n += (size_t)snprintf(t + n, cap - n,
							      "%u.%u.%u.%u\n",
							      240 + (unsigned)(k % 16),
							      (unsigned)(i >> 16) & 255,
							      (unsigned)(i >> 8) & 255,
							      (unsigned)i & 255);
			} else {
				n += (size_t)snprintf(t + n, cap - n, "%s\n", l->v[i]);
			}
		}
		snprintf(path, sizeof(path), "%s/1m_gen_v%d.cidr%s", c->dir,
			 fam ? 6 : 4, suffix);
		spit(path, t, n);
	}
	free(t);
}

static void unlink_new_lists(const struct bcase *c)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/1m_gen_v4.cidr.new", c->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/1m_gen_v6.cidr.new", c->dir);
	unlink(path);
}

static void setup_case(const struct opts *o, struct bcase *c, const char *name)
{
	char path[700], src[700];

	memset(c, 0, sizeof(*c));
	c->name = name;
	snprintf(c->dir, sizeof(c->dir), "%s/%s", o->work, name);
	sh("mkdir -p '%s'", c->dir);
	snprintf(c->policy, sizeof(c->policy), "%s/policy.sentry", c->dir);
	if (!strcmp(name, "typical")) {
		c->base = slurp("bench/typical.sentry", NULL);
		snprintf(c->nft, sizeof(c->nft), "bench/typical.nft");
		snprintf(c->nft_table, sizeof(c->nft_table), "sentry_bench_typical");
		return;
	}
	c->big = true;
	snprintf(src, sizeof(src), "%s/compile-work/1m.sentry", o->work);
	if (access(src, R_OK))
		sh("%s --sentry build/sentry-compile --work '%s/compile-work' "
		   "--cases 1m --reps 1 --no-nft >/dev/null", o->compile, o->work);
	sh("cp '%s'/compile-work/1m* '%s'/", o->work, c->dir);
	snprintf(path, sizeof(path), "%s/1m.sentry", c->dir);
	c->base = slurp(path, NULL);
	snprintf(path, sizeof(path), "%s/1m_gen_v4.cidr", c->dir);
	c->gen4 = read_lines(path);
	snprintf(path, sizeof(path), "%s/1m_gen_v6.cidr", c->dir);
	c->gen6 = read_lines(path);
	snprintf(c->nft, sizeof(c->nft), "%s/1m.nft", c->dir);
	snprintf(c->nft_table, sizeof(c->nft_table), "sentry_bench_1m");
}

/* ---- 1. the library ------------------------------------------------------------ */

struct compiled {
	struct sn_ctx ctx;
	struct sn_image *img;
	double ms;
};

static void compile_file(const char *path, struct compiled *out)
{
	double t = now_ms();
	void *buf = NULL;
	size_t len;

	sn_ctx_init(&out->ctx);
	if (sn_compile_file(&out->ctx, path, NULL, &out->img) ||
	    out->ctx.diags.n_errors) {
		sn_diags_render_text(stderr, &out->ctx.diags, &out->ctx.sources);
		die("%s does not compile", path);
	}
	out->ms = now_ms() - t;
	sn_image_serialize(out->img, &buf, &len);
	free(buf);
}

static void library(const struct opts *o, struct bcase *c)
{
	struct compiled base, var;
	struct sn_dataplane *dp = NULL;
	char err[512], tmp[700];
	int iters = c->big ? o->iters_1m : o->iters;
	double t;

	/* The policy with the first host unblocked is the base. */
	char *text = policy_for(c, 0, false);

	spit(c->policy, text, strlen(text));
	free(text);
	if (c->big)
		write_gen_lists(c, -1, "");
	compile_file(c->policy, &base);
	t = now_ms();
	if (sn_dp_load(base.img, &dp, err, sizeof(err)))
		die("load: %s", err);
	double load_ms = now_ms() - t;

	if (sn_dp_apply(dp, base.img, err, sizeof(err)))
		die("apply: %s", err);
	const struct sn_dp_stats *st = sn_dp_stats(dp);

	printf("%-8s initial load: compile %.0f ms, program load %.0f ms, first "
	       "apply %.0f ms (translate %.0f, write %.0f, flip %.3f, grace "
	       "period %.1f, level %.0f), %zu entries per generation; enforcing "
	       "after %.0f ms\n", c->name, base.ms, load_ms, st->total_ms,
	       st->translate_ms, st->write_ms, st->flip_ms, st->sync_ms,
	       st->level_ms, st->entries,
	       base.ms + load_ms + st->translate_ms + st->write_ms + st->flip_ms);

	for (int ten = 0; ten < 2; ten++) {
		int n = ten && c->big ? (iters + 1) / 2 : iters;
		double *enf = calloc((size_t)n, sizeof(double));
		double *lvl = calloc((size_t)n, sizeof(double));
		size_t entries = 0;
		int replaced = 0;

		for (int k = 1; k <= n; k++) {
			text = policy_for(c, k, ten);
			snprintf(tmp, sizeof(tmp), "%s/variant.sentry", c->dir);
			spit(tmp, text, strlen(text));
			free(text);
			if (c->big && ten)
				write_gen_lists(c, k, "");
			compile_file(tmp, &var);
			if (sn_dp_update(dp, var.img, err, sizeof(err)))
				die("apply: %s", err);
			replaced += st->replaced;
			enf[k - 1] = st->translate_ms + st->write_ms + st->flip_ms;
			lvl[k - 1] = st->sync_ms + st->level_ms;
			entries += st->entries;
			sn_ctx_free(&var.ctx);
		}
		if (c->big && ten)
			write_gen_lists(c, -1, "");
		printf("%-8s diff apply, %-8s: enforced after p50 %.2f ms, p99 %.2f "
		       "ms, max %.2f ms (translate+write+flip); then grace period + "
		       "level p50 %.1f ms; %zu entries per apply (mean of %d)%s\n",
		       c->name, ten ? "10 %" : "one line", pct(enf, n, 0.5),
		       pct(enf, n, 0.99), pct(enf, n, 1.0), pct(lvl, n, 0.5),
		       entries / (size_t)n, n,
		       replaced ? " (some replaced the program: maps grew)" : "");
		free(enf);
		free(lvl);
	}
	sn_dp_close(dp);
	sn_ctx_free(&base.ctx);
}

/* ---- 2. the wire ------------------------------------------------------------------- */

struct wire {
	char ns_srv[64], ns_cli[64];
	_Atomic uint32_t target;   /* source address the sender sends (network order) */
	_Atomic double seen_at;    /* first frame of target seen by the receiver */
	atomic_bool stop;
	int srv_ifindex, cli_ifindex;
};

static void enter_ns(const char *ns)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		die("cannot enter %s", ns);
	close(fd);
}

static void *sender(void *arg)
{
	struct wire *w = arg;
	struct sockaddr_ll to = { .sll_family = AF_PACKET };
	uint8_t frame[PKT_MAX];
	uint32_t cur = 0;
	size_t len = 0;
	int fd;

	enter_ns(w->ns_cli);
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	if (fd < 0)
		die("sender socket: %s", strerror(errno));
	to.sll_ifindex = (int)if_nametoindex("cli0");
	to.sll_halen = 6;
	while (!atomic_load(&w->stop)) {
		uint32_t t = atomic_load(&w->target);

		if (!t) {
			usleep(1000);
			continue;
		}
		if (t != cur) {
			char a[INET_ADDRSTRLEN];
			struct pkt_spec s = { .src = a, .proto = PKT_IPPROTO_UDP,
					      .dport = 9 };
			struct sn_packet facts;

			inet_ntop(AF_INET, &t, a, sizeof(a));
			len = pkt_build(&s, frame, &facts);
			cur = t;
		}
		sendto(fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to));
		/* ~50k frames/s: 20 us apart, busy (a sleep is coarser). */
		double until = now_ms() + 0.02;

		while (now_ms() < until)
			;
	}
	close(fd);
	return NULL;
}

static void *receiver(void *arg)
{
	struct wire *w = arg;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_protocol = htons(ETH_P_IP) };
	int fd, size = 16 << 20;

	enter_ns(w->ns_srv);
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	if (fd < 0)
		die("receiver socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	sll.sll_ifindex = (int)if_nametoindex("srv0");
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("receiver bind: %s", strerror(errno));
	while (!atomic_load(&w->stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint8_t buf[256];
		uint32_t src;

		if (poll(&p, 1, 10) <= 0)
			continue;
		while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 34) {
			memcpy(&src, buf + 26, 4);
			if (src == atomic_load(&w->target) &&
			    atomic_load(&w->seen_at) == 0)
				atomic_store(&w->seen_at, now_ms());
		}
	}
	close(fd);
	return NULL;
}

static pid_t start_sentryd(const struct opts *o, const struct wire *w,
			   const struct bcase *c, const char *log, double *up_ms)
{
	char netns[128], pin[700], state[700];
	double t0 = now_ms();
	pid_t pid;

	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", w->ns_srv);
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/47sentry-benchreload-%d", (int)getpid());
	snprintf(state, sizeof(state), "%s/state", o->work);
	unlink(log); /* an old log's "attached" must not count */
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 2);
		execlp("nsenter", "nsenter", netns, o->sentryd, "--iface", "srv0",
		       "--policy", c->policy, "--pin-root", pin, "--state-dir",
		       state, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	/* Up when it logs that it attached (or adopted). */
	for (int i = 0; i < 6000; i++) {
		char *t = NULL;
		size_t len;
		FILE *f = fopen(log, "r");

		if (f) {
			fseek(f, 0, SEEK_END);
			len = (size_t)ftell(f);
			fseek(f, 0, SEEK_SET);
			t = malloc(len + 1);
			len = fread(t, 1, len, f);
			t[len] = '\0';
			fclose(f);
			if (strstr(t, "msg=\"attached to ")) {
				free(t);
				*up_ms = now_ms() - t0;
				return pid;
			}
			free(t);
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			die("sentryd exited, see %s", log);
		usleep(1000);
	}
	die("sentryd did not attach, see %s", log);
}

static void stop_sentryd(const struct opts *o, pid_t pid)
{
	char pin[700], dir[800];
	char err[256];

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/47sentry-benchreload-%d", (int)getpid());
	snprintf(dir, sizeof(dir), "%s/srv0", pin);
	sn_pinned_detach(dir, err, sizeof(err));
	rmdir(pin);
	(void)o;
}

/* Rename the prepared files into place; return the time of the rename. */
static double install(const struct bcase *c, bool lists)
{
	char from[700];
	double t;

	if (lists) {
		/* The lists first, back to back: sentryd's quiet period
		 * takes them as one change. */
		char to4[700], to6[700], f4[700], f6[700];

		snprintf(f4, sizeof(f4), "%s/1m_gen_v4.cidr.new", c->dir);
		snprintf(f6, sizeof(f6), "%s/1m_gen_v6.cidr.new", c->dir);
		snprintf(to4, sizeof(to4), "%s/1m_gen_v4.cidr", c->dir);
		snprintf(to6, sizeof(to6), "%s/1m_gen_v6.cidr", c->dir);
		snprintf(from, sizeof(from), "%s.new", c->policy);
		/* Exchanged, not renamed over: replacing a 10 MB file frees
		 * its pages in the rename, which would spread the three
		 * renames over milliseconds (past sentryd's quiet period). */
		t = now_ms();
		if (renameat2(AT_FDCWD, f4, AT_FDCWD, to4, RENAME_EXCHANGE) ||
		    renameat2(AT_FDCWD, f6, AT_FDCWD, to6, RENAME_EXCHANGE) ||
		    renameat2(AT_FDCWD, from, AT_FDCWD, c->policy, RENAME_EXCHANGE))
			die("rename: %s", strerror(errno));
		return t;
	}
	snprintf(from, sizeof(from), "%s.new", c->policy);
	t = now_ms();
	if (rename(from, c->policy))
		die("rename: %s", strerror(errno));
	return t;
}

static void wire(const struct opts *o, struct bcase *c)
{
	struct wire w = { 0 };
	pthread_t ts, tr;
	char log[700], tmp[700];
	int iters = c->big ? o->iters_1m : o->iters;
	double up;

	snprintf(w.ns_srv, sizeof(w.ns_srv), "snbr-srv-%d", (int)getpid());
	snprintf(w.ns_cli, sizeof(w.ns_cli), "snbr-cli-%d", (int)getpid());
	sh("ip netns add %s && ip netns add %s && "
	   "ip -n %s link add srv0 type veth peer name cli0 netns %s && "
	   "ip -n %s link set srv0 up && ip -n %s link set cli0 up && "
	   "ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && "
	   "ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
	   w.ns_srv, w.ns_cli, w.ns_srv, w.ns_cli, w.ns_srv, w.ns_cli,
	   w.ns_srv, w.ns_cli);

	char *text = policy_for(c, 0, false);

	spit(c->policy, text, strlen(text));
	free(text);
	if (c->big)
		write_gen_lists(c, -1, "");
	snprintf(log, sizeof(log), "%s/sentryd-%s.log", o->work, c->name);
	pid_t pid = start_sentryd(o, &w, c, log, &up);

	printf("%-8s sentryd start to enforcing: %.0f ms (compile, load, fill, "
	       "attach, pin)\n", c->name, up);
	pthread_create(&tr, NULL, receiver, &w);
	pthread_create(&ts, NULL, sender, &w);

	for (int ten = 0; ten < 2; ten++) {
		int n = ten && c->big ? (iters + 1) / 2 : iters;
		double *lat = calloc((size_t)n, sizeof(double));
		int got = 0, leak = 0;

		for (int k = 1; k <= n; k++) {
			char host[64];
			uint32_t a;

			/* The change, prepared beside the files. */
			text = policy_for(c, k + (ten ? 1000 : 0), ten);
			snprintf(tmp, sizeof(tmp), "%s.new", c->policy);
			spit(tmp, text, strlen(text));
			free(text);
			if (c->big && ten)
				write_gen_lists(c, k, ".new");
			else if (c->big)
				unlink_new_lists(c);
			host_of(c, k + (ten ? 1000 : 0), host, sizeof(host));
			inet_pton(AF_INET, host, &a);
			if (getenv("BR_DEBUG")) {
				struct timespec rt;
				clock_gettime(CLOCK_REALTIME, &rt);
				fprintf(stderr, "target k=%d %s at %ld.%03ld\n", k, host, (long)rt.tv_sec % 60, rt.tv_nsec / 1000000);
			}
			atomic_store(&w.seen_at, 0);
			atomic_store(&w.target, a);
			/* Blocked before the change: nothing may arrive. */
			usleep(30000);
			if (atomic_load(&w.seen_at) != 0) {
				leak++;
				fprintf(stderr, "bench/reload: %s: %s passed before "
					"the change %d\n", c->name, host, k);
			}
			atomic_store(&w.seen_at, 0);
			if (getenv("BR_DEBUG")) {
				struct timespec rt;
				clock_gettime(CLOCK_REALTIME, &rt);
				fprintf(stderr, "rename k=%d at %ld.%03ld\n", k, (long)rt.tv_sec % 60, rt.tv_nsec / 1000000);
			}
			double t0 = install(c, c->big && ten);
			double deadline = t0 + 10000;

			while (atomic_load(&w.seen_at) == 0 && now_ms() < deadline)
				usleep(50);
			double s = atomic_load(&w.seen_at);

			if (s > 0)
				lat[got++] = s - t0;
			/* Let sentryd finish its grace period and level. */
			usleep(c->big ? 100000 : 20000);
		}
		printf("%-8s rename to new verdict on the wire, %-8s: p50 %.1f ms, "
		       "p99 %.1f ms, max %.1f ms (%d of %d changes seen%s)\n",
		       c->name, ten ? "10 %" : "one line", pct(lat, got, 0.5),
		       pct(lat, got, 0.99), pct(lat, got, 1.0), got, n,
		       leak ? ", SOME BLOCKED FRAMES PASSED BEFORE THE CHANGE" : "");
		free(lat);
	}
	atomic_store(&w.stop, true);
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	stop_sentryd(o, pid);
	if (c->big)
		write_gen_lists(c, -1, "");
	sh("ip netns del %s; ip netns del %s", w.ns_srv, w.ns_cli);
}

/* ---- 3. nftables ------------------------------------------------------------------------ */

/* The elements of a list file as an nft element list. */
static void nft_elements(FILE *f, const struct lines *l, int k, int fam)
{
	size_t repl = fam ? 20000 : 80000;

	for (size_t i = 0; i < l->n; i++) {
		if (k >= 0 && i < repl) {
			if (fam)
				fprintf(f, "fc00:%x:%x::/48", (unsigned)(k & 0xffff),
					(unsigned)i);
			else
				fprintf(f, "%u.%u.%u.%u", 240 + (unsigned)(k % 16),
					(unsigned)(i >> 16) & 255,
					(unsigned)(i >> 8) & 255, (unsigned)i & 255);
		} else {
			fprintf(f, "%s", l->v[i]);
		}
		fputs(i + 1 < l->n ? ",\n" : "\n", f);
	}
}

static void nft(const struct opts *o, struct bcase *c)
{
	char ns[64], file[700];
	int reps = c->big ? 3 : 20;
	double v[32];

	snprintf(ns, sizeof(ns), "snbr-nft-%d", (int)getpid());
	sh("ip netns add %s", ns);
	if (system("nft --version >/dev/null 2>&1")) {
		printf("%-8s nft: not installed\n", c->name);
		sh("ip netns del %s", ns);
		return;
	}
	double first = timed("ip netns exec %s nft -f '%s'", ns, c->nft);

	printf("%-8s nft -f, initial load: %.0f ms\n", c->name, first);
	if (!c->big) {
		/* Regenerated ruleset file: the table replaced in one go. */
		snprintf(file, sizeof(file), "%s/replace.nft", c->dir);
		FILE *f = fopen(file, "w");

		fprintf(f, "table inet %s\ndelete table inet %s\ninclude \"%s/%s\"\n",
			c->nft_table, c->nft_table, getenv("PWD") ? getenv("PWD") : ".",
			c->nft);
		fclose(f);
		for (int i = 0; i < reps; i++)
			v[i] = timed("ip netns exec %s nft -f '%s'", ns, file);
		printf("%-8s nft -f replacing the ruleset (any change): p50 %.1f ms, "
		       "max %.1f ms\n", c->name, pct(v, reps, 0.5), pct(v, reps, 1.0));
		for (int i = 0; i < reps; i++)
			v[i] = timed("ip netns exec %s nft add element inet %s "
				      "office_v4 '{ 203.0.113.%d }' && ip netns exec %s "
				      "nft delete element inet %s office_v4 '{ 203.0.113.%d }'",
				      ns, c->nft_table, i + 1, ns, c->nft_table, i + 1) / 2;
		printf("%-8s nft add element (one, incremental): p50 %.1f ms\n",
		       c->name, pct(v, reps, 0.5));
	} else {
		for (int ten = 0; ten < 2; ten++) {
			for (int i = 0; i < reps; i++) {
				snprintf(file, sizeof(file), "%s/replace.nft", c->dir);
				FILE *f = fopen(file, "w");

				for (int fam = 0; fam < 2; fam++) {
					if (!ten && fam)
						continue;
					fprintf(f, "flush set inet %s gen_v%d\n"
						   "add element inet %s gen_v%d {\n",
						c->nft_table, fam ? 6 : 4, c->nft_table,
						fam ? 6 : 4);
					nft_elements(f, fam ? &c->gen6 : &c->gen4,
						     ten ? i + 1 : -1, fam);
					if (!ten)
						fprintf(f, ",240.1.%d.0/24\n", i);
					fprintf(f, "}\n");
				}
				fclose(f);
				v[i] = timed("ip netns exec %s nft -f '%s'", ns, file);
			}
			printf("%-8s nft -f replacing the set%s, %-8s: p50 %.0f ms, "
			       "max %.0f ms\n", c->name, ten ? "s" : "",
			       ten ? "10 %" : "one prefix", pct(v, reps, 0.5),
			       pct(v, reps, 1.0));
		}
		for (int i = 0; i < reps; i++)
			v[i] = timed("ip netns exec %s nft add element inet %s gen_v4 "
				      "'{ 240.9.%d.0/24 }'", ns, c->nft_table, i);
		printf("%-8s nft add element (one, incremental): p50 %.0f ms\n",
		       c->name, pct(v, reps, 0.5));
	}
	sh("ip netns del %s", ns);
	(void)o;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.work = "build/bench/reload-work",
		.compile = "build/bench/compile",
		.sentryd = "build/sentryd",
		.cases = "typical,1m",
		.iters = 100,
		.iters_1m = 10,
		.wire = true,
		.nft = true,
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--work") && v)
			o.work = argv[++i];
		else if (!strcmp(a, "--compile") && v)
			o.compile = argv[++i];
		else if (!strcmp(a, "--sentryd") && v)
			o.sentryd = argv[++i];
		else if (!strcmp(a, "--cases") && v)
			o.cases = argv[++i];
		else if (!strcmp(a, "--iters") && v)
			o.iters = atoi(argv[++i]);
		else if (!strcmp(a, "--iters-1m") && v)
			o.iters_1m = atoi(argv[++i]);
		else if (!strcmp(a, "--no-wire"))
			o.wire = false;
		else if (!strcmp(a, "--no-nft"))
			o.nft = false;
		else
			die("unknown option %s (see the top of bench/reload.c)", a);
	}
	if (geteuid() != 0)
		die("needs root (BPF, network namespaces)");
	if (o.iters < 1 || o.iters_1m < 1)
		die("--iters must be positive");
	sh("mkdir -p '%s'", o.work);
	char abs[4096];

	if (!realpath(o.work, abs))
		die("cannot resolve %s", o.work);
	o.work = strdup(abs);
	{
		FILE *f = popen("uname -r; nproc; uptime", "r");
		char line[256];

		printf("bench/reload on");
		while (f && fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			printf(" | %s", line);
		}
		if (f)
			pclose(f);
		printf("\n");
	}
	for (const char *p = o.cases; *p;) {
		size_t l = strcspn(p, ",");
		char name[32];
		struct bcase c;

		snprintf(name, sizeof(name), "%.*s", (int)l, p);
		p += l + (p[l] == ',');
		if (strcmp(name, "typical") && strcmp(name, "1m"))
			die("unknown case %s", name);
		setup_case(&o, &c, name);
		library(&o, &c);
		if (o.wire)
			wire(&o, &c);
		if (o.nft)
			nft(&o, &c);
	}
	return 0;
}

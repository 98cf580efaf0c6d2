/*
 * bench/compile: how fast sentry-compile checks and compiles policies of
 * 1k, 100k and 1M source prefixes and a typical 200-line policy, side by
 * side with `nft -c -f` on the nftables ruleset of the same shape.
 *
 *   build/bench/compile [--sentry PATH] [--data DIR] [--work DIR]
 *                       [--reps N] [--timeout S] [--cases LIST] [--no-nft]
 *
 * Fixtures (written to --work, default build/bench/compile-work):
 *   1k, 100k  real prefixes from the country lists (--data, default
 *             ../shared/data/country-ip-blocks), countries in name order,
 *             IPv4 then IPv6 of each, until the count is reached;
 *   1m        every real prefix plus generated ones (seeded xorshift, a
 *             blocklist-like length mix, both families) up to 1,000,000;
 *   typical   bench/typical.sentry and bench/typical.nft as written.
 * Each sized policy blocks its prefixes (set per family, list files) and
 * has a few port rules; the nftables ruleset holds the same prefixes in
 * `flags interval` sets (one per family) and the same port rules.  Within a
 * set the prefixes are made disjoint (a prefix inside an earlier one is
 * dropped, from both fixtures alike), because an nftables interval set
 * without auto-merge refuses overlaps and auto-merge would make nft do
 * merging work sentry does not: so both tools get exactly the same list.
 *
 * Each command runs --reps times (default 5) in a child with an alarm of
 * --timeout seconds (default 120); we report the median wall time and the
 * median peak RSS (getrusage of the child, ru_maxrss).  nft needs root and
 * a kernel with nf_tables (-c still talks to the kernel); without them its
 * columns say n/a.  Output: one table, times in ms, RSS in MiB, ratios
 * sentry/nft, and bytes of peak RSS per prefix.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

struct pfx {
	uint8_t addr[16];
	uint8_t len;
};

struct pfx_vec {
	struct pfx *v;
	size_t n, cap;
};

struct opts {
	const char *sentry, *data, *work, *bench_dir, *cases;
	int reps, timeout;
	bool nft;
};

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "bench/compile: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(2);
}

/* snprintf that refuses to truncate a path. */
static void fmt(char *buf, size_t n, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t n, const char *f, ...)
{
	va_list ap;
	int r;

	va_start(ap, f);
	r = vsnprintf(buf, n, f, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= n)
		die("%s", "path too long");
}

static void push(struct pfx_vec *v, const struct pfx *p)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 1024;
		v->v = realloc(v->v, v->cap * sizeof(*v->v));
		if (!v->v)
			die("%s", "out of memory");
	}
	v->v[v->n++] = *p;
}

/* ---- reading the real lists -------------------------------------------- */

static bool parse_line(char *s, int af, struct pfx *out)
{
	char *hash = strchr(s, '#'), *slash;

	if (hash)
		*hash = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, " \t\r\n");

	if (!n)
		return false;
	s[n] = '\0';
	slash = strchr(s, '/');
	memset(out, 0, sizeof(*out));
	out->len = af == AF_INET ? 32 : 128;
	if (slash) {
		*slash = '\0';
		out->len = (uint8_t)atoi(slash + 1);
	}
	return inet_pton(af, s, out->addr) == 1;
}

static void read_list(const char *path, int af, struct pfx_vec *v, size_t max)
{
	FILE *f = fopen(path, "r");
	char line[256];
	struct pfx p;

	if (!f)
		return; /* a country without an IPv6 list */
	while (v->n < max && fgets(line, sizeof(line), f))
		if (parse_line(line, af, &p))
			push(v, &p);
	fclose(f);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Country codes (the stems of the .cidr files in DIR/ipv4), sorted. */
static char **countries(const char *data, size_t *n)
{
	char path[4096];
	DIR *d;
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	fmt(path, sizeof(path), "%s/ipv4", data);
	d = opendir(path);
	if (!d)
		die("cannot open %s (use --data)", path);
	*n = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l < 6 || strcmp(de->d_name + l - 5, ".cidr"))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				die("%s", "out of memory");
		}
		v[(*n)++] = strndup(de->d_name, l - 5);
	}
	closedir(d);
	qsort(v, *n, sizeof(*v), cmp_name);
	return v;
}

/* ---- making a set nftables accepts: sorted, no prefix inside another --- */

static int cmp_pfx(const void *a, const void *b)
{
	const struct pfx *x = a, *y = b;
	int c = memcmp(x->addr, y->addr, 16);

	return c ? c : (int)x->len - (int)y->len;
}

static bool contains(const struct pfx *a, const struct pfx *b)
{
	if (a->len > b->len)
		return false;
	for (unsigned bit = 0; bit < a->len; bit += 8) {
		unsigned left = a->len - bit;
		uint8_t m = left >= 8 ? 0xff : (uint8_t)(0xff << (8 - left));

		if ((a->addr[bit / 8] ^ b->addr[bit / 8]) & m)
			return false;
	}
	return true;
}

/* Sort and drop every prefix that lies inside the last one kept. */
static void make_disjoint(struct pfx_vec *v)
{
	size_t m = 0;

	qsort(v->v, v->n, sizeof(*v->v), cmp_pfx);
	for (size_t i = 0; i < v->n; i++)
		if (m == 0 || !contains(&v->v[m - 1], &v->v[i]))
			v->v[m++] = v->v[i];
	v->n = m;
}

/* ---- generated prefixes --------------------------------------------------- */

static uint64_t rng = 0x5eed47c0ffeeull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

/*
 * A blocklist-like mix: mostly hosts and /24s (IPv4) or /48s, /64s and
 * hosts (IPv6), some aggregates.  Shares are out of 100.
 */
static uint8_t gen_len(int af)
{
	unsigned r = (unsigned)(rnd() % 100);

	if (af == AF_INET) {
		if (r < 50)
			return 32;
		if (r < 75)
			return 24;
		if (r < 90)
			return (uint8_t)(20 + rnd() % 4); /* /20-/23 */
		return (uint8_t)(25 + rnd() % 7);       /* /25-/31 */
	}
	if (r < 35)
		return 48;
	if (r < 60)
		return 64;
	if (r < 70)
		return 56;
	if (r < 80)
		return 32;
	if (r < 95)
		return 128;
	return (uint8_t)(40 + rnd() % 8); /* /40-/47 */
}

static void gen_one(int af, struct pfx *p)
{
	uint64_t hi = rnd(), lo = rnd();

	memset(p, 0, sizeof(*p));
	p->len = gen_len(af);
	if (af == AF_INET) {
		/* Public-looking space: first octet 1-223, not 10/127. */
		uint32_t a = (uint32_t)hi;
		unsigned o1 = 1 + (unsigned)(lo % 223);

		if (o1 == 10 || o1 == 127)
			o1 = 11;
		a = (a & 0x00ffffffu) | (uint32_t)o1 << 24;
		for (int i = 0; i < 4; i++)
			p->addr[i] = (uint8_t)(a >> (24 - 8 * i));
	} else {
		/* Global unicast 2000::/3. */
		for (int i = 0; i < 8; i++) {
			p->addr[i] = (uint8_t)(hi >> (56 - 8 * i));
			p->addr[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
		}
		p->addr[0] = (uint8_t)(0x20 | (p->addr[0] & 0x1f));
	}
	for (unsigned b = p->len; b < 128; b++)
		p->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
}

/* n disjoint generated prefixes of family af. */
static void generate(int af, size_t n, struct pfx_vec *v)
{
	while (v->n < n) {
		struct pfx p;

		while (v->n < n) {
			gen_one(af, &p);
			push(v, &p);
		}
		make_disjoint(v); /* drops duplicates and nested ones; top up */
	}
}

/* ---- fixtures ---------------------------------------------------------- */

static void write_cidr(const char *path, const struct pfx_vec *v, int af)
{
	FILE *f = fopen(path, "w");
	char a[INET6_ADDRSTRLEN];

	if (!f)
		die("cannot write %s", path);
	for (size_t i = 0; i < v->n; i++) {
		inet_ntop(af, v->v[i].addr, a, sizeof(a));
		fprintf(f, "%s/%u\n", a, v->v[i].len);
	}
	if (fclose(f))
		die("cannot write %s", path);
}

static void nft_set(FILE *f, const char *name, const struct pfx_vec *v, int af)
{
	char a[INET6_ADDRSTRLEN];

	fprintf(f, "\tset %s { type %s; flags interval;\n", name,
		af == AF_INET ? "ipv4_addr" : "ipv6_addr");
	if (v->n) {
		fprintf(f, "\t\telements = {\n");
		for (size_t i = 0; i < v->n; i++) {
			inet_ntop(af, v->v[i].addr, a, sizeof(a));
			fprintf(f, "\t\t\t%s/%u%s\n", a, v->v[i].len,
				i + 1 < v->n ? "," : "");
		}
		fprintf(f, "\t\t}\n");
	}
	fprintf(f, "\t}\n");
}

/*
 * The sized policy: the feed blocked, an admin set allowed to ssh/https,
 * and a few closed ports, so the image has a realistic number of L4
 * classes (the decision row width) and not just one.  v[0..1] are the real
 * IPv4/IPv6 prefixes, v[2..3] the generated ones (a separate list, as a
 * threat feed would be: its entries may lie inside real ones).
 */
static void write_fixtures(const char *dir, const char *name,
			   const struct pfx_vec v[4])
{
	static const char *const list[4] = { "v4", "v6", "gen_v4", "gen_v6" };
	char path[4096];
	FILE *f;

	for (int k = 0; k < 4; k++) {
		fmt(path, sizeof(path), "%s/%s_%s.cidr", dir, name, list[k]);
		write_cidr(path, &v[k], k % 2 ? AF_INET6 : AF_INET);
	}

	fmt(path, sizeof(path), "%s/%s.sentry", dir, name);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f,
		"# bench/compile fixture: %zu + %zu IPv4, %zu + %zu IPv6 "
		"prefixes (real + generated).\n"
		"default allow\n"
		"set feed_v4 = { file \"%s_v4.cidr\", file \"%s_gen_v4.cidr\" }\n"
		"set feed_v6 = { file \"%s_v6.cidr\", file \"%s_gen_v6.cidr\" }\n"
		"set admin = { 198.51.100.0/24, 2001:db8:1::/48 }\n"
		"block from @feed_v4\n"
		"block from @feed_v6\n"
		"allow from @admin to tcp port { 22, 443 }\n"
		"block to tcp port { 22, 23, 445, 3389 }\n"
		"block to udp port { 161-162, 1900, 11211 }\n",
		v[0].n, v[2].n, v[1].n, v[3].n, name, name, name, name);
	if (fclose(f))
		die("cannot write %s", path);

	fmt(path, sizeof(path), "%s/%s.nft", dir, name);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f, "table inet sentry_bench_%s {\n", name);
	nft_set(f, "feed_v4", &v[0], AF_INET);
	nft_set(f, "feed_v6", &v[1], AF_INET6);
	nft_set(f, "gen_v4", &v[2], AF_INET);
	nft_set(f, "gen_v6", &v[3], AF_INET6);
	fprintf(f,
		"\tset admin_v4 { type ipv4_addr; flags interval; elements = { 198.51.100.0/24 } }\n"
		"\tset admin_v6 { type ipv6_addr; flags interval; elements = { 2001:db8:1::/48 } }\n"
		"\tchain input {\n"
		"\t\ttype filter hook input priority 0; policy accept;\n"
		"\t\tip saddr @admin_v4 tcp dport { 22, 443 } accept\n"
		"\t\tip6 saddr @admin_v6 tcp dport { 22, 443 } accept\n"
		"\t\tip saddr @feed_v4 drop\n"
		"\t\tip6 saddr @feed_v6 drop\n"
		"\t\tip saddr @gen_v4 drop\n"
		"\t\tip6 saddr @gen_v6 drop\n"
		"\t\ttcp dport { 22, 23, 445, 3389 } drop\n"
		"\t\tudp dport { 161-162, 1900, 11211 } drop\n"
		"\t}\n}\n");
	if (fclose(f))
		die("cannot write %s", path);
}

/* Real prefixes, countries in name order, v4 then v6, until max in all. */
static void real_prefixes(const char *data, size_t max, struct pfx_vec *v4,
			  struct pfx_vec *v6)
{
	size_t n_c;
	char **cc = countries(data, &n_c);
	char path[4096];

	for (size_t i = 0; i < n_c; i++) {
		struct pfx_vec *fam[2] = { v4, v6 };
		const char *sub[2] = { "ipv4", "ipv6" };
		int af[2] = { AF_INET, AF_INET6 };

		for (int k = 0; k < 2; k++) {
			size_t have = v4->n + v6->n;

			if (have >= max)
				break;
			fmt(path, sizeof(path), "%s/%s/%s.cidr", data,
				 sub[k], cc[i]);
			read_list(path, af[k], fam[k],
				  fam[k]->n + (max - have));
		}
		free(cc[i]);
	}
	free(cc);
	make_disjoint(v4);
	make_disjoint(v6);
}

/* ---- running ----------------------------------------------------------- */

struct sample {
	double ms;
	long rss_kb;
	int status; /* 0 ok, 1 failed, 2 timed out */
};

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Run argv in dir, output to log; wall time and the child's peak RSS. */
static struct sample run_once(char *const argv[], const char *dir,
			      const char *log, int timeout)
{
	struct sample s = { 0 };
	struct rusage ru;
	int st;
	double t0 = now_ms();
	pid_t pid = fork();

	if (pid < 0)
		die("%s", "fork failed");
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (chdir(dir))
			_exit(126);
		alarm((unsigned)timeout); /* survives exec: SIGALRM kills it */
		execvp(argv[0], argv);
		_exit(127);
	}
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			die("%s", "wait4 failed");
	s.ms = now_ms() - t0;
	s.rss_kb = ru.ru_maxrss;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
		s.status = 2;
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		s.status = 1;
	return s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct result {
	bool ran;
	int status;
	double ms;     /* median */
	double rss_mb; /* median */
};

static struct result measure(char *const argv[], const char *dir,
			     const char *log, const struct opts *o)
{
	double ms[64], rss[64];
	struct result r = { .ran = true };
	int n = o->reps;

	for (int i = 0; i < n; i++) {
		struct sample s = run_once(argv, dir, log, o->timeout);

		if (s.status) {
			r.status = s.status;
			return r;
		}
		ms[i] = s.ms;
		rss[i] = s.rss_kb / 1024.0;
	}
	qsort(ms, (size_t)n, sizeof(ms[0]), cmp_double);
	qsort(rss, (size_t)n, sizeof(rss[0]), cmp_double);
	r.ms = ms[n / 2];
	r.rss_mb = rss[n / 2];
	return r;
}

static void cell(const struct result *r)
{
	if (!r->ran)
		printf(" %9s %7s", "n/a", "");
	else if (r->status == 2)
		printf(" %9s %7s", "timeout", "");
	else if (r->status)
		printf(" %9s %7s", "FAILED", "");
	else
		printf(" %9.1f %7.1f", r->ms, r->rss_mb);
}

static void ratio(const struct result *a, const struct result *b)
{
	if (a->ran && b->ran && !a->status && !b->status && b->ms > 0)
		printf(" %6.2f %6.2f", a->ms / b->ms, a->rss_mb / b->rss_mb);
	else
		printf(" %6s %6s", "n/a", "n/a");
}

static void per_prefix(const struct result *r, size_t n)
{
	if (n && r->ran && !r->status)
		printf(" %7.0f", r->rss_mb * 1048576.0 / (double)n);
	else
		printf(" %7s", "-");
}

/* Does `nft -c` work here (root, nf_tables)? */
static bool nft_usable(const struct opts *o, const char *dir)
{
	char path[4096], log[4096];
	FILE *f;

	if (geteuid() != 0)
		return false;
	fmt(path, sizeof(path), "%s/probe.nft", dir);
	fmt(log, sizeof(log), "%s/probe.log", dir);
	f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "table inet sentry_bench_probe { }\n");
	fclose(f);
	char *argv[] = { "nft", "-c", "-f", path, NULL };
	struct sample s = run_once(argv, dir, log, o->timeout);

	return s.status == 0;
}

static bool wanted(const struct opts *o, const char *name)
{
	size_t l = strlen(name);

	for (const char *p = o->cases; (p = strstr(p, name)); p += l)
		if ((p == o->cases || p[-1] == ',') && (p[l] == ',' || !p[l]))
			return true;
	return false;
}

static void bench_case(const struct opts *o, const char *dir, const char *name,
		       const char *label, size_t n_pfx, bool nft)
{
	char sentry[4096], nftf[4096], img[4096], log[4096];

	fmt(sentry, sizeof(sentry), "%s.sentry", name);
	fmt(nftf, sizeof(nftf), "%s.nft", name);
	fmt(img, sizeof(img), "%s/%s.img", o->work, label);
	fmt(log, sizeof(log), "%s/%s.log", o->work, label);

	char *check[] = { (char *)o->sentry, "--check", sentry, NULL };
	char *comp[] = { (char *)o->sentry, "-o", img, sentry, NULL };
	char *nftc[] = { "nft", "-c", "-f", nftf, NULL };
	struct result rc = measure(check, dir, log, o);
	struct result ro = measure(comp, dir, log, o);
	struct result rn = { 0 };

	if (nft)
		rn = measure(nftc, dir, log, o);
	printf("%-8s %9zu", label, n_pfx);
	cell(&rc);
	cell(&ro);
	cell(&rn);
	ratio(&rc, &rn);
	per_prefix(&rc, n_pfx);
	per_prefix(&ro, n_pfx);
	printf("\n");
	fflush(stdout);
	if (rc.status || ro.status || rn.status)
		printf("         (see %s for the last failing run)\n", log);
}

static void sized_case(const struct opts *o, const char *name, size_t target,
		       bool nft)
{
	struct pfx_vec v[4] = { { 0 } };

	real_prefixes(o->data, target, &v[0], &v[1]);
	size_t real = v[0].n + v[1].n;

	if (real < target) {
		/* 4:1 IPv4:IPv6 for what the real lists do not cover. */
		size_t n4 = (target - real) * 4 / 5;

		generate(AF_INET, n4, &v[2]);
		generate(AF_INET6, target - real - n4, &v[3]);
	}
	write_fixtures(o->work, name, v);
	bench_case(o, o->work, name, name, real + v[2].n + v[3].n, nft);
	for (int k = 0; k < 4; k++)
		free(v[k].v);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.sentry = "build/sentry-compile",
		.data = "../shared/data/country-ip-blocks",
		.work = "build/bench/compile-work",
		.bench_dir = "bench",
		.cases = "typical,1k,100k,1m",
		.reps = 5,
		.timeout = 120,
		.nft = true,
	};
	char abs_sentry[4096], abs_work[4096], abs_bench[4096];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-nft")) {
			o.nft = false;
			continue;
		}
		if (!v)
			die("usage: see the comment at the top of %s", "bench/compile.c");
		if (!strcmp(a, "--sentry"))
			o.sentry = v;
		else if (!strcmp(a, "--data"))
			o.data = v;
		else if (!strcmp(a, "--work"))
			o.work = v;
		else if (!strcmp(a, "--bench"))
			o.bench_dir = v;
		else if (!strcmp(a, "--cases"))
			o.cases = v;
		else if (!strcmp(a, "--reps"))
			o.reps = atoi(v);
		else if (!strcmp(a, "--timeout"))
			o.timeout = atoi(v);
		else
			die("unknown option %s", a);
		i++;
	}
	if (o.reps < 1 || o.reps > 64 || o.timeout < 1)
		die("%s", "--reps is 1-64, --timeout at least 1");
	mkdir(o.work, 0755);
	/* Children run in the fixture directory: absolute paths. */
	if (!realpath(o.sentry, abs_sentry))
		die("no sentry-compile at %s (run make)", o.sentry);
	if (!realpath(o.work, abs_work))
		die("cannot create %s", o.work);
	if (!realpath(o.bench_dir, abs_bench))
		die("no bench directory at %s", o.bench_dir);
	o.sentry = abs_sentry;
	o.work = abs_work;

	bool nft = o.nft && nft_usable(&o, o.work);

	printf("sentry-compile vs nft -c -f: median of %d runs, time in ms, "
	       "peak RSS in MiB%s\n\n", o.reps,
	       nft ? "" : " (nft: n/a, needs root and nf_tables)");
	printf("%-8s %9s %17s %17s %17s %13s %15s\n", "case", "prefixes",
	       "sentry --check", "sentry -o", "nft -c -f", "check/nft",
	       "RSS B/prefix");
	printf("%-8s %9s %9s %7s %9s %7s %9s %7s %6s %6s %7s %7s\n", "", "",
	       "ms", "MiB", "ms", "MiB", "ms", "MiB", "time", "rss", "check",
	       "-o");
	if (wanted(&o, "typical"))
		bench_case(&o, abs_bench, "typical", "typical", 0, nft);
	if (wanted(&o, "1k"))
		sized_case(&o, "1k", 1000, nft);
	if (wanted(&o, "100k"))
		sized_case(&o, "100k", 100000, nft);
	if (wanted(&o, "1m"))
		sized_case(&o, "1m", 1000000, nft);
	return 0;
}

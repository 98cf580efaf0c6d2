/*
 * bench/verdict: what one verdict costs in the kernel, per packet, at
 * policy sizes of 10, 10k, 100k and 1M source prefixes, IPv4 and IPv6.
 *
 *   build/bench/verdict [--data DIR] [--work DIR] [--obj PATH]
 *                       [--packets N] [--passes P] [--sizes LIST]
 *                       [--family 4|6|both] [--xdp-filter PATH|none]
 *                       [--srcmap auto|lpm|range] [--check 0|1]
 *                       [--interleave prog|frame]
 *
 * Programs, measured side by side in one run on the same packets:
 *   empty       XDP_PASS only: the timing floor of BPF_PROG_TEST_RUN;
 *   baseline    bench/verdict.bpf.c bench_base: parses the headers our
 *               program parses (VLAN, IPv4 options, IPv6 extension
 *               headers, L4 header, port) and passes;
 *   lpm         the same parse plus one lookup in a plain kernel LPM trie
 *               holding the policy's prefixes;
 *   sentry      our program (bpf/templates/sentry_xdp.bpf.c), loaded and
 *               populated through sn_dp_load/sn_dp_apply exactly as sentryd
 *               does, for the image sentry-compile builds from the policy
 *               (--srcmap forces the source lookup structure, SPEC 4.2);
 *   xdp-filter  Debian xdp-tools' xdpfilt_dny_ip.o with its source-address
 *               maps holding the policy's prefixes as exact addresses
 *               (xdp-filter has no CIDRs: only an address that equals a
 *               prefix's first address matches; its cost is a hash lookup
 *               of the source and one of the destination).
 *
 * Policies (written to --work, default build/bench/verdict-work): per
 * family and size N, real prefixes of that family from the country lists
 * (--data, default ../shared/data/country-ip-blocks, countries in name
 * order) up to N, then generated ones (seeded xorshift, blocklist-like
 * length mix as in bench/compile) up to N, all distinct.  The policy
 * blocks them and has an admin set and tcp/udp port rules (20 L4 classes).
 *
 * Packets: --packets distinct TCP/UDP frames per (family, size): half with
 * a source inside a policy prefix picked uniformly (host bits random), half
 * with a uniformly random public source (IPv4 1-223.x, IPv6 2000::/3);
 * destination ports from a small mix (some hit port rules).
 *
 * Measurement: every frame is run once per program per pass with
 * BPF_PROG_TEST_RUN repeat=1 and the kernel-reported duration is summed;
 * --passes passes (default 3), programs interleaved within a pass.  The
 * duration is taken by the kernel around the program run only (ktime at
 * entry and exit of the run loop), so the syscall is not in it, but the
 * clock reads are: that floor is the `empty` row.  With one run per
 * distinct frame, the lookup structure is as cold as a stream of distinct
 * sources leaves it.  Our program's verdict is checked against
 * sn_eval_image for every frame (a mismatch aborts the bench); --check 0
 * skips that, for variants of the program that do part of the work only.
 *
 * Memory: memlock of the maps each program uses, from
 * /proc/self/fdinfo (what `bpftool map show` prints), summed over the
 * maps that classify the source address, and per prefix.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "compiler/srcmap.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"

struct pfx {
	uint8_t addr[16];
	uint8_t len;
};

struct pfx_vec {
	struct pfx *v;
	size_t n, cap;
};

struct opts {
	const char *data, *work, *obj, *xdpf, *sizes;
	size_t packets;
	int passes;
	int families; /* bit 0: v4, bit 1: v6 */
	int srcmap;   /* enum sn_srcmap_kind: the structure sentry loads */
	int check;    /* compare sentry's verdicts with sn_eval_image */
	bool by_frame; /* --interleave frame */
};

static void die(const char *f, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	fprintf(stderr, "bench/verdict: ");
	vfprintf(stderr, f, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void push(struct pfx_vec *v, const struct pfx *p)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 1024;
		v->v = realloc(v->v, v->cap * sizeof(*v->v));
		if (!v->v)
			die("out of memory");
	}
	v->v[v->n++] = *p;
}

/* ---- prefixes (the generator is bench/compile's, same seed and mix) ---- */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ull;
}

static uint8_t gen_len(int af)
{
	unsigned r = (unsigned)(rnd() % 100);

	if (af == AF_INET) {
		if (r < 50)
			return 32;
		if (r < 75)
			return 24;
		if (r < 90)
			return (uint8_t)(20 + rnd() % 4);
		return (uint8_t)(25 + rnd() % 7);
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
	return (uint8_t)(40 + rnd() % 8);
}

static void mask(struct pfx *p)
{
	for (unsigned b = p->len; b < 128; b++)
		p->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
}

/* A random public address (IPv4 1-223.x without 10/127, IPv6 2000::/3). */
static void random_addr(int af, uint8_t *a)
{
	uint64_t hi = rnd(), lo = rnd();

	memset(a, 0, 16);
	if (af == AF_INET) {
		unsigned o1 = 1 + (unsigned)(lo % 223);

		if (o1 == 10 || o1 == 127)
			o1 = 11;
		a[0] = (uint8_t)o1;
		a[1] = (uint8_t)(hi >> 16);
		a[2] = (uint8_t)(hi >> 8);
		a[3] = (uint8_t)hi;
	} else {
		for (int i = 0; i < 8; i++) {
			a[i] = (uint8_t)(hi >> (56 - 8 * i));
			a[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
		}
		a[0] = (uint8_t)(0x20 | (a[0] & 0x1f));
	}
}

static int cmp_pfx(const void *a, const void *b)
{
	const struct pfx *x = a, *y = b;
	int c = memcmp(x->addr, y->addr, 16);

	return c ? c : (int)x->len - (int)y->len;
}

static void uniq(struct pfx_vec *v)
{
	size_t m = 0;

	qsort(v->v, v->n, sizeof(*v->v), cmp_pfx);
	for (size_t i = 0; i < v->n; i++)
		if (!m || cmp_pfx(&v->v[m - 1], &v->v[i]))
			v->v[m++] = v->v[i];
	v->n = m;
}

static bool parse_line(char *s, int af, struct pfx *out)
{
	char *hash = strchr(s, '#'), *slash;
	size_t n;

	if (hash)
		*hash = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	n = strcspn(s, " \t\r\n");
	if (!n)
		return false;
	s[n] = '\0';
	memset(out, 0, sizeof(*out));
	out->len = af == AF_INET ? 32 : 128;
	slash = strchr(s, '/');
	if (slash) {
		*slash = '\0';
		out->len = (uint8_t)atoi(slash + 1);
	}
	if (inet_pton(af, s, out->addr) != 1)
		return false;
	mask(out);
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Real prefixes of family af, countries in name order, up to max. */
static void real_prefixes(const char *data, int af, size_t max,
			  struct pfx_vec *v)
{
	char dir[4096], path[8192], line[256], *names[1024];
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", data, af == AF_INET ? "ipv4" : "ipv6");
	d = opendir(dir);
	if (!d)
		die("cannot open %s (use --data)", dir);
	while ((de = readdir(d)) && n < 1024)
		if (strstr(de->d_name, ".cidr"))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		FILE *f;
		struct pfx p;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		f = fopen(path, "r");
		while (f && v->n < max && fgets(line, sizeof(line), f))
			if (parse_line(line, af, &p))
				push(v, &p);
		if (f)
			fclose(f);
		free(names[i]);
	}
	uniq(v);
}

static void policy_prefixes(const struct opts *o, int af, size_t n,
			    struct pfx_vec *v)
{
	rnd_state = 0x5eed47c0ffeeull ^ (uint64_t)af;
	real_prefixes(o->data, af, n, v);
	while (v->n < n) {
		while (v->n < n) {
			struct pfx p;

			random_addr(af, p.addr);
			p.len = gen_len(af);
			mask(&p);
			push(v, &p);
		}
		uniq(v);
	}
}

static void write_policy(const char *dir, const char *name, int af,
			 const struct pfx_vec *v, char *path, size_t plen)
{
	char cidr[4096], buf[64];
	FILE *f;

	snprintf(cidr, sizeof(cidr), "%s/%s.cidr", dir, name);
	f = fopen(cidr, "w");
	if (!f)
		die("cannot write %s", cidr);
	for (size_t i = 0; i < v->n; i++) {
		inet_ntop(af, v->v[i].addr, buf, sizeof(buf));
		fprintf(f, "%s/%u\n", buf, v->v[i].len);
	}
	if (fclose(f))
		die("cannot write %s", cidr);
	snprintf(path, plen, "%s/%s.sentry", dir, name);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f,
		"# bench/verdict fixture: %zu IPv%d prefixes.\n"
		"default allow\n"
		"set feed = { file \"%s.cidr\" }\n"
		"set admin = { 198.51.100.0/24, 2001:db8:1::/48 }\n"
		"block from @feed\n"
		"allow from @admin to tcp port { 22, 443 }\n"
		"block to tcp port { 22, 23, 445, 3389 }\n"
		"block to udp port { 161-162, 1900, 11211 }\n",
		v->n, af == AF_INET ? 4 : 6, name);
	if (fclose(f))
		die("cannot write %s", path);
}

/* ---- packets ---------------------------------------------------------- */

struct frame {
	uint8_t buf[128];
	uint32_t len;
	struct sn_packet facts;
};

static void make_frames(int af, const struct pfx_vec *v, size_t n,
			struct frame *out)
{
	static const uint16_t ports[] = { 80, 443, 22, 8080, 53, 3389, 25, 123 };

	rnd_state = 0xfeedbeefcafe0000ull ^ (uint64_t)(n + v->n);
	for (size_t i = 0; i < n; i++) {
		uint8_t a[16], buf[PKT_MAX];
		char txt[64];
		struct pkt_spec s = { 0 };
		size_t len;

		random_addr(af, a);
		if (i % 2 == 0) {
			/* Inside a policy prefix: its bits, then random. */
			const struct pfx *p = &v->v[rnd() % v->n];

			for (unsigned b = 0; b < p->len; b++) {
				uint8_t m = (uint8_t)(0x80u >> (b % 8));

				a[b / 8] = (uint8_t)((a[b / 8] & ~m) |
						     (p->addr[b / 8] & m));
			}
		}
		inet_ntop(af, a, txt, sizeof(txt));
		s.src = txt;
		s.dport = ports[rnd() % 8];
		s.proto = s.dport == 53 || s.dport == 123 ? PKT_IPPROTO_UDP :
							    PKT_IPPROTO_TCP;
		len = pkt_build(&s, buf, &out[i].facts);
		if (!len || len > sizeof(out[i].buf))
			die("cannot build a frame for %s", txt);
		memcpy(out[i].buf, buf, len);
		out[i].len = (uint32_t)len;
	}
}

/* ---- programs ---------------------------------------------------------- */

enum { P_EMPTY, P_BASE, P_LPM, P_SENTRY, P_XDPF, P_DIR24, N_PROGS };
static const char *const prog_names[N_PROGS] = {
	"empty", "baseline", "lpm trie", "sentry", "xdp-filter", "dir24",
};

struct prog {
	int fd; /* -1: not available */
	uint64_t ns_sum, runs;
	uint64_t memlock;  /* bytes of the source-classifying maps */
	double load_ms;    /* populating those maps */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* memlock of a map fd, from /proc/self/fdinfo. */
static uint64_t fd_memlock(int fd)
{
	char path[64], line[256];
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lu", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * Sum memlock of the maps of prog_fd whose name starts with one of the
 * given prefixes (the maps that classify the source address).
 */
static uint64_t prog_memlock(int prog_fd, const char *const *names, int n_names)
{
	struct bpf_prog_info info = { 0 };
	uint32_t ids[64], len = sizeof(info);
	uint64_t sum = 0;

	info.nr_map_ids = 64;
	info.map_ids = (uint64_t)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return 0;
	for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++) {
		struct bpf_map_info mi = { 0 };
		uint32_t ml = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &mi, &ml))
			for (int k = 0; k < n_names; k++)
				if (!strncmp(mi.name, names[k], strlen(names[k])))
					sum += fd_memlock(fd);
		close(fd);
	}
	return sum;
}

static int run_once(int fd, const struct frame *f, uint32_t *retval,
		    uint32_t *duration)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = f->buf,
		    .data_size_in = f->len, .repeat = 1);
	int rc = bpf_prog_test_run_opts(fd, &t);

	*retval = t.retval;
	*duration = t.duration;
	return rc;
}

/* The reference programs: bench_v4/bench_v6 hold the policy's prefixes. */
static struct bpf_object *load_ref(const struct opts *o, int af,
				   const struct pfx_vec *v, struct prog *p)
{
	struct bpf_object *obj = bpf_object__open_file(o->obj, NULL);
	struct bpf_map *m;
	double t0;
	int fd;

	if (!obj)
		die("cannot open %s: %s", o->obj, strerror(errno));
	m = bpf_object__find_map_by_name(obj, af == AF_INET ? "bench_v4" : "bench_v6");
	if (!m || bpf_map__set_max_entries(m, (uint32_t)v->n + 1))
		die("sizing the LPM map");
	if (bpf_object__load(obj))
		die("loading %s: %s", o->obj, strerror(errno));
	fd = bpf_map__fd(m);
	t0 = now_ms();
	for (size_t i = 0; i < v->n; i++) {
		uint8_t key[20];
		uint32_t plen = v->v[i].len, val = 1;

		memcpy(key, &plen, 4);
		memcpy(key + 4, v->v[i].addr, 16);
		if (bpf_map_update_elem(fd, key, &val, BPF_ANY))
			die("filling the LPM map: %s", strerror(errno));
	}
	p[P_LPM].load_ms = now_ms() - t0;
	p[P_LPM].memlock = fd_memlock(fd);
	p[P_EMPTY].fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "bench_empty"));
	p[P_BASE].fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "bench_base"));
	p[P_LPM].fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "bench_lpm"));
	p[P_DIR24].fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "bench_dir24"));
	/* The candidate array, filled through mmap (contents do not matter). */
	m = bpf_object__find_map_by_name(obj, "cand_dir24");
	if (m) {
		size_t sz = (size_t)4 << 24;
		uint32_t *a = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED,
				   bpf_map__fd(m), 0);

		if (a == MAP_FAILED)
			die("mmap of cand_dir24: %s", strerror(errno));
		for (uint32_t i = 0; i < 1u << 24; i++)
			a[i] = i & 7;
		munmap(a, sz);
	}
	return obj;
}

/*
 * xdp-filter's own object.  Its maps are per-CPU hashes of exact
 * addresses, value a u64 of flags (bit 0: match as source) with a counter
 * above; it pins by name, which we switch off.
 */
static struct bpf_object *load_xdpf(const struct opts *o, int af,
				    const struct pfx_vec *v, struct prog *p)
{
	const char *name = af == AF_INET ? "filter_ipv4" : "filter_ipv6";
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *m, *fm;
	int ncpu = libbpf_num_possible_cpus(), fd;
	uint64_t *vals;
	double t0;

	if (!strcmp(o->xdpf, "none") || access(o->xdpf, R_OK))
		return NULL;
	obj = bpf_object__open_file(o->xdpf, NULL);
	if (!obj)
		return NULL;
	bpf_object__for_each_map(m, obj) bpf_map__set_pin_path(m, NULL);
	fm = bpf_object__find_map_by_name(obj, name);
	if (!fm || bpf_map__set_max_entries(fm, (uint32_t)v->n + 1) ||
	    bpf_object__load(obj)) {
		bpf_object__close(obj);
		return NULL;
	}
	fd = bpf_map__fd(fm);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	for (int c = 0; c < ncpu; c++)
		vals[c] = 1; /* MAP_FLAG_SRC */
	t0 = now_ms();
	for (size_t i = 0; i < v->n; i++)
		if (bpf_map_update_elem(fd, v->v[i].addr, vals, BPF_ANY))
			die("filling xdp-filter's map: %s", strerror(errno));
	p[P_XDPF].load_ms = now_ms() - t0;
	free(vals);
	p[P_XDPF].memlock = fd_memlock(fd);
	prog = bpf_object__next_program(obj, NULL);
	p[P_XDPF].fd = prog ? bpf_program__fd(prog) : -1;
	return obj;
}

struct row {
	int af;
	size_t n;
	double ns[N_PROGS];
	uint64_t memlock[N_PROGS];
	double load_ms[N_PROGS];
	uint32_t classes;
};

static void bench_one(const struct opts *o, int af, size_t n, struct row *r)
{
	char name[64], path[4096], err[512] = "";
	struct prog p[N_PROGS];
	struct pfx_vec v = { 0 };
	struct sn_ctx ctx;
	struct sn_policy *pol;
	struct sn_image *img;
	struct sn_dataplane *dp = NULL;
	struct bpf_object *ref, *xdpf;
	struct frame *frames;
	static const char *const src_maps[] = { "sn_lpm", "sn_src" };
	double t0;

	for (int i = 0; i < N_PROGS; i++)
		p[i] = (struct prog){ .fd = -1 };
	policy_prefixes(o, af, n, &v);
	snprintf(name, sizeof(name), "v%d_%zu", af == AF_INET ? 4 : 6, n);
	write_policy(o->work, name, af, &v, path, sizeof(path));

	sn_ctx_init(&ctx);
	if (sn_compile_file(&ctx, path, &pol, &img)) {
		sn_diags_render_text(stderr, &ctx.diags, &ctx.sources);
		die("compiling %s failed", path);
	}
	if (o->srcmap != SN_SRCMAP_AUTO &&
	    sn_srcmap_build(&ctx.arena, img, (enum sn_srcmap_kind)o->srcmap))
		die("rebuilding the source lookup");
	if (sn_dp_load(img, &dp, err, sizeof(err)))
		die("sn_dp_load: %s", err);
	t0 = now_ms();
	if (sn_dp_apply(dp, img, err, sizeof(err)))
		die("sn_dp_apply: %s", err);
	p[P_SENTRY].load_ms = now_ms() - t0;
	p[P_SENTRY].fd = sn_dp_prog_fd(dp);
	p[P_SENTRY].memlock = prog_memlock(p[P_SENTRY].fd, src_maps, 2);
	{
		/* The program's size and what the verifier walked (stderr). */
		struct bpf_prog_info pi = { 0 };
		uint32_t pl = sizeof(pi);

		if (!bpf_obj_get_info_by_fd(p[P_SENTRY].fd, &pi, &pl))
			fprintf(stderr, "sentry program: xlated %u insns, jited %u "
				"bytes, verified %u insns\n",
				pi.xlated_prog_len / 8, pi.jited_prog_len,
				pi.verified_insns);
	}
	r->classes = img->n_classes;

	ref = load_ref(o, af, &v, p);
	xdpf = load_xdpf(o, af, &v, p);

	frames = calloc(o->packets, sizeof(*frames));
	if (!frames)
		die("out of memory");
	make_frames(af, &v, o->packets, frames);

	/*
	 * Programs one after the other over all frames, or (--interleave
	 * frame) every program on one frame before the next frame: then the
	 * programs of a row see the same moment of a loaded machine, which
	 * makes the ratios steadier between builds (A/B runs).
	 */
	const bool by_frame = o->by_frame;
	const size_t n_outer = by_frame ? o->packets : N_PROGS;
	const size_t n_inner = by_frame ? N_PROGS : o->packets;

	for (int pass = 0; pass < o->passes; pass++) {
		for (size_t a = 0; a < n_outer; a++) {
			for (size_t b = 0; b < n_inner; b++) {
				const int k = (int)(by_frame ? b : a);
				const size_t i = by_frame ? a : b;
				uint32_t ret, d;

				if (p[k].fd < 0)
					continue;

				if (run_once(p[k].fd, &frames[i], &ret, &d))
					die("test run of %s: %s", prog_names[k],
					    strerror(errno));
				p[k].ns_sum += d;
				p[k].runs++;
				if (k == P_SENTRY && pass == 0 && o->check) {
					struct sn_eval_result want;

					sn_eval_image(img, &frames[i].facts, &want);
					if (ret != (want.verdict == SN_VERDICT_ALLOW ?
							    XDP_PASS : XDP_DROP))
						die("%s: frame %zu: kernel %u, sn_eval_image %u",
						    name, i, ret, want.verdict);
				}
			}
		}
	}
	r->af = af;
	r->n = v.n;
	for (int k = 0; k < N_PROGS; k++) {
		r->ns[k] = p[k].runs ? (double)p[k].ns_sum / p[k].runs : -1;
		r->memlock[k] = p[k].memlock;
		r->load_ms[k] = p[k].load_ms;
	}
	free(frames);
	if (xdpf)
		bpf_object__close(xdpf);
	bpf_object__close(ref);
	sn_dp_close(dp);
	sn_ctx_free(&ctx);
	free(v.v);
}

static size_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*end == 'k' || *end == 'K')
		v *= 1e3;
	else if (*end == 'm' || *end == 'M')
		v *= 1e6;
	return (size_t)v;
}

static void print_table(const struct row *rows, size_t n_rows)
{
	printf("\nns per packet (mean over distinct frames, repeat=1 each); "
	       "ratios: x base = / baseline of the row, x @10 = (sentry / base) "
	       "/ (sentry / base at 10 prefixes)\n\n");
	printf("%-4s %8s %7s | %6s %6s | %8s %6s %6s | %8s %6s | %8s %6s | %9s %6s | %9s %6s | %6s\n",
	       "fam", "prefixes", "classes", "empty", "base", "sentry", "x base",
	       "x @10", "lpm", "x base", "xdpfilt", "x base", "sentry B", "B/pfx",
	       "lpm B", "B/pfx", "dir24");
	for (size_t i = 0; i < n_rows; i++) {
		const struct row *r = &rows[i];
		double at10 = -1;

		/*
		 * Against sentry at 10 prefixes, each row normalised by its
		 * own baseline first: rows run minutes apart on a shared
		 * machine, and the baseline moves with the machine.
		 */
		for (size_t j = 0; j < n_rows; j++)
			if (rows[j].af == r->af && rows[j].n <= 10)
				at10 = rows[j].ns[P_SENTRY] / rows[j].ns[P_BASE];
		printf("v%-3d %8zu %7u | %6.1f %6.1f | %8.1f %6.2f ",
		       r->af == AF_INET ? 4 : 6, r->n, r->classes,
		       r->ns[P_EMPTY], r->ns[P_BASE], r->ns[P_SENTRY],
		       r->ns[P_SENTRY] / r->ns[P_BASE]);
		if (at10 > 0)
			printf("%6.2f | ", r->ns[P_SENTRY] / r->ns[P_BASE] / at10);
		else
			printf("%6s | ", "-");
		printf("%8.1f %6.2f | ", r->ns[P_LPM], r->ns[P_LPM] / r->ns[P_BASE]);
		if (r->ns[P_XDPF] >= 0)
			printf("%8.1f %6.2f | ", r->ns[P_XDPF],
			       r->ns[P_XDPF] / r->ns[P_BASE]);
		else
			printf("%8s %6s | ", "n/a", "");
		printf("%9lu %6.0f | %9lu %6.0f | %6.1f\n",
		       (unsigned long)r->memlock[P_SENTRY],
		       (double)r->memlock[P_SENTRY] / (double)r->n,
		       (unsigned long)r->memlock[P_LPM],
		       (double)r->memlock[P_LPM] / (double)r->n, r->ns[P_DIR24]);
	}
	printf("\nmap population (ms): ");
	for (size_t i = 0; i < n_rows; i++)
		printf("v%d/%zu sentry %.0f lpm %.0f%s", rows[i].af == AF_INET ? 4 : 6,
		       rows[i].n, rows[i].load_ms[P_SENTRY], rows[i].load_ms[P_LPM],
		       i + 1 < n_rows ? "; " : "\n");
}

static int quiet(enum libbpf_print_level l, const char *f, va_list ap)
{
	if (l == LIBBPF_WARN)
		return vfprintf(stderr, f, ap);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.data = "../shared/data/country-ip-blocks",
		.work = "build/bench/verdict-work",
		.obj = "build/bench/verdict.bpf.o",
		.xdpf = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_dny_ip.o",
		.sizes = "10,10k,100k,1m",
		.packets = 20000,
		.passes = 3,
		.families = 3,
		.check = 1,
	};
	struct row rows[32];
	size_t n_rows = 0;
	char sizes[256], *save, *tok;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			die("%s needs a value", a);
		if (!strcmp(a, "--data"))
			o.data = v;
		else if (!strcmp(a, "--work"))
			o.work = v;
		else if (!strcmp(a, "--obj"))
			o.obj = v;
		else if (!strcmp(a, "--xdp-filter"))
			o.xdpf = v;
		else if (!strcmp(a, "--sizes"))
			o.sizes = v;
		else if (!strcmp(a, "--packets"))
			o.packets = parse_size(v);
		else if (!strcmp(a, "--passes"))
			o.passes = atoi(v);
		else if (!strcmp(a, "--srcmap"))
			o.srcmap = !strcmp(v, "lpm") ? SN_SRCMAP_LPM :
				   !strcmp(v, "range") ? SN_SRCMAP_RANGE :
							 SN_SRCMAP_AUTO;
		else if (!strcmp(a, "--check"))
			o.check = atoi(v) != 0;
		else if (!strcmp(a, "--interleave"))
			o.by_frame = !strcmp(v, "frame");
		else if (!strcmp(a, "--family"))
			o.families = !strcmp(v, "4") ? 1 : !strcmp(v, "6") ? 2 : 3;
		else
			die("unknown option %s", a);
		i++;
	}
	if (!o.packets || o.passes < 1)
		die("--packets and --passes must be positive");
	libbpf_set_print(quiet);
	snprintf(sizes, sizeof(sizes), "%s", o.sizes);
	for (int f = 0; f < 2; f++) {
		if (!(o.families & (1 << f)))
			continue;
		snprintf(sizes, sizeof(sizes), "%s", o.sizes);
		for (tok = strtok_r(sizes, ",", &save); tok && n_rows < 32;
		     tok = strtok_r(NULL, ",", &save)) {
			size_t n = parse_size(tok);

			if (!n)
				die("bad size %s", tok);
			fprintf(stderr, "v%d %zu prefixes...\n", f ? 6 : 4, n);
			bench_one(&o, f ? AF_INET6 : AF_INET, n, &rows[n_rows++]);
		}
	}
	print_table(rows, n_rows);
	return 0;
}

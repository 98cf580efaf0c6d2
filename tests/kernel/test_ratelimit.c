/*
 * Rate limits in the real XDP program (SPEC.md 2.4), driven with
 * BPF_PROG_TEST_RUN.  bpf_ktime_get_ns() is real time, so the test is
 * built around real elapsed time (CLOCK_MONOTONIC, the same clock) with
 * bounded loops; the whole run takes about 12 seconds.
 *
 *  a) accuracy: one source floods as fast as test runs go (several Mpps
 *     on one core, far above the limit); the packets passed in each
 *     1-second window must be within 10% of the configured rate, on one
 *     CPU and with two CPUs hitting the same bucket at once;
 *  b) a random-source flood (three times the state map's capacity in
 *     distinct sources) neither evicts nor resets the bucket and block
 *     of a known source: the creation budget holds the new keys back;
 *  c) escalation: an exhausted bucket blocks its key prefix (the /24,
 *     not only the address) for the block duration, then the block
 *     expires by itself; IPv6 keys are masked to their key prefix;
 *  d) a reload (sn_dp_apply of another policy) keeps a bucket whose
 *     limit keeps its identity, even with another index, rule id, rate
 *     and burst; another key prefix is another identity: a new bucket.
 *
 * Every drop must be counted at the limit rule's id (SPEC.md 5.3).  The
 * measured numbers are printed.  Without root or BPF: exit 77.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"
#include "tests/check.h"

#define SKIP 77

struct loaded {
	struct sn_ctx ctx;
	struct sn_policy *policy;
	struct sn_image *image;
	struct sn_dataplane *dp; /* shared by a reloaded policy (d) */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull),
			       (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int compile(struct loaded *l, const char *text)
{
	memset(l, 0, sizeof(*l));
	sn_ctx_init(&l->ctx);
	int rc = sn_compile_text(&l->ctx, "ratelimit.sentry", text,
				 strlen(text), &l->policy, &l->image);

	if (rc) {
		sn_diags_render_text(stderr, &l->ctx.diags, &l->ctx.sources);
		CHECK(0, "compile failed: %d", rc);
	}
	return rc;
}

/* Compile, load and apply; SKIP when BPF is not available to us. */
static int load(struct loaded *l, const char *text)
{
	char err[512] = "";
	int rc = compile(l, text);

	if (rc)
		return rc;
	rc = sn_dp_load(l->image, &l->dp, err, sizeof(err));
	if (rc == -EPERM) {
		printf("SKIP: cannot load BPF programs: %s\n", err);
		return SKIP;
	}
	if (rc) {
		CHECK(0, "sn_dp_load: %d %s", rc, err);
		return rc;
	}
	rc = sn_dp_apply(l->dp, l->image, err, sizeof(err));
	CHECK(rc == 0, "sn_dp_apply: %d %s", rc, err);
	return rc;
}

static void unload(struct loaded *l)
{
	sn_dp_close(l->dp);
	sn_ctx_free(&l->ctx);
}

struct frame {
	uint8_t buf[PKT_MAX];
	size_t len;
	struct sn_packet facts;
};

static void make_frame(struct frame *f, const char *src, uint8_t proto,
		       uint16_t dport)
{
	struct pkt_spec s = { .src = src, .proto = proto, .dport = dport };

	f->len = pkt_build(&s, f->buf, &f->facts);
}

/*
 * Run a frame `repeat` times; the XDP action of the last run.  *ns, when
 * given, gets the kernel's mean time per run.
 */
static uint32_t run_ns(const struct loaded *l, const struct frame *f,
		       uint32_t repeat, uint32_t *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->buf,
		    .data_size_in = (uint32_t)f->len, .repeat = repeat);
	int rc = bpf_prog_test_run_opts(sn_dp_prog_fd(l->dp), &opts);

	if (rc) /* not a CHECK: it would count millions of checks */
		CHECK(0, "test run: %d", rc);
	if (ns)
		*ns = opts.duration;
	return rc ? (uint32_t)-1 : opts.retval;
}

static uint32_t run(const struct loaded *l, const struct frame *f,
		    uint32_t repeat)
{
	return run_ns(l, f, repeat, NULL);
}

/* Packets counted at rule id so far (all CPUs). */
static uint64_t counted(const struct loaded *l, uint32_t id)
{
	struct sn_counter *c = calloc(l->image->n_rules, sizeof(*c));
	uint64_t n = 0;

	if (c && sn_dp_read_counters(l->dp, c, l->image->n_rules) == 0 &&
	    id < l->image->n_rules)
		n = c[id].packets;
	free(c);
	return n;
}

/* The limit rule's counter id and the allow verdict's for a frame. */
static void ids_of(const struct loaded *l, const struct frame *f,
		   uint32_t *allow_id, uint32_t *limit_id)
{
	struct sn_eval_result r, p;

	sn_eval_image(l->image, &f->facts, &r);
	sn_eval_policy(l->policy, &f->facts, &p);
	CHECK(r.verdict == SN_VERDICT_ALLOW && r.limit != 0 &&
		      r.limit == p.limit && r.rule_id == p.rule_id,
	      "frame not limited as expected: image %u/#%u/limit %u, policy "
	      "limit %u", r.verdict, r.rule_id, r.limit, p.limit);
	*allow_id = r.rule_id;
	*limit_id = r.limit ? sn_image_limit_rule(l->image,
						  sn_image_features(l->image),
						  r.limit - 1)
			    : 0;
}

/* Send f until a run drops it (bounded); how many passed before. */
static long drain(const struct loaded *l, const struct frame *f, long max)
{
	for (long i = 0; i < max; i++)
		if (run(l, f, 1) != XDP_PASS)
			return i;
	return -1;
}

static int lookup_state(const struct loaded *l, uint64_t identity,
			const char *addr4, uint8_t len,
			struct sn_limit_state *st)
{
	struct sn_limit_key k = { .identity = identity, .family = 4,
				  .len = len };

	inet_pton(AF_INET, addr4, k.addr);
	for (int i = len / 8; i < 4; i++)
		k.addr[i] &= i == len / 8 ? (uint8_t)(0xff00 >> (len % 8)) : 0;
	return bpf_map_lookup_elem(sn_dp_map_fd(l->dp, "sn_limit_state"), &k,
				   st);
}

/*
 * Tokens in the bucket at `at_ns` (CLOCK_MONOTONIC, the clock of
 * bpf_ktime_get_ns): what the bucket held at its last refill plus what
 * has accrued since, capped at the burst.
 */
static double bucket_level(const struct loaded *l, uint64_t identity,
			   uint32_t rate, uint32_t burst, uint64_t at_ns)
{
	struct sn_limit_state st;
	double level;

	if (lookup_state(l, identity, "198.51.100.10", 32, &st))
		return 0;
	level = (double)(int64_t)st.tokens / 4294967296.0;
	if (at_ns > st.last_ns)
		level += (double)(at_ns - st.last_ns) * rate / 1e9;
	return level > burst ? burst : level;
}

/* ---- a) accuracy over 1-second windows ------------------------------------ */

/*
 * The flood: per CPU, test runs of one frame with a repeat count worth
 * 0.1 s each, until the window's second is over: several Mpps per CPU.
 * A test run with repeat > 1
 * swaps the XDP dispatcher and waits for an RCU grace period (~20 ms
 * here) before and after its loop, and the scheduler may take the CPU in
 * between: the flood has gaps.  The bucket's burst (1/4 s of rate)
 * carries the tokens of such gaps over, so the passes of a window are
 * rate x wall time, less at most the burst left in the bucket at its
 * end: what a token bucket promises.  A burst of 100 at 500000/s would
 * let the tokens of any gap over 0.2 ms fall away and read as too few.
 */
struct flood_arg {
	const struct loaded *l;
	const struct frame *f;
	int cpu;
	uint32_t repeat;
	uint64_t until;
	uint64_t runs;
};

static void *flood_thread(void *p)
{
	struct flood_arg *a = p;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(a->cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
	while (now_ns() < a->until) {
		run(a->l, a->f, a->repeat);
		a->runs += a->repeat;
	}
	return NULL;
}

/*
 * Flood one source for `windows` windows of about a second, from one CPU
 * or from two at once (one bucket updated from both); the packets passed
 * per window must be within 10% of rate x window.
 */
static void accuracy(uint32_t rate, int n_cpus, int windows)
{
	char policy[256];
	struct loaded l;
	struct frame f;
	uint32_t allow_id, limit_id, ns = 0;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t burst = rate / 4 ? rate / 4 : 1;

	snprintf(policy, sizeof(policy),
		 "limit from 198.51.100.0/24 rate %u/s burst %u\n", rate,
		 burst);
	if (load(&l, policy))
		goto out;
	make_frame(&f, "198.51.100.10", PKT_IPPROTO_UDP, 53);
	ids_of(&l, &f, &allow_id, &limit_id);
	const uint64_t identity = sn_image_features(l.image)->limits[0].identity;
	/* A short flood: how long a run takes, and it empties the bucket
	 * (2 x burst + 100000 packets are more than burst + refill). */
	uint64_t first = counted(&l, allow_id);
	const uint32_t drain_n = 2 * burst + 100000;

	run_ns(&l, &f, drain_n, &ns);
	first = counted(&l, allow_id) - first;
	CHECK(first >= burst && first < drain_n,
	      "%llu of the first %u passed, burst %u",
	      (unsigned long long)first, drain_n, burst);

	printf("a) rate %u/s burst %u, %d CPU%s (%u ns per limited packet):",
	       rate, burst, n_cpus, n_cpus > 1 ? "s" : "", ns);
	for (int w = 0, retries = 0; w < windows; w++) {
		struct flood_arg arg[2];
		pthread_t th[2];
		uint64_t p0 = counted(&l, allow_id), d0 = counted(&l, limit_id);
		uint64_t t0 = now_ns(), runs = 0;
		double level0 = bucket_level(&l, identity, rate, burst, t0);

		for (int c = 0; c < n_cpus; c++) {
			arg[c] = (struct flood_arg){
				.l = &l, .f = &f, .cpu = c % (ncpu > 0 ? ncpu : 1),
				.repeat = (uint32_t)(1e8 / (ns ? ns : 100)),
				.until = t0 + 1000000000ull,
			};
			pthread_create(&th[c], NULL, flood_thread, &arg[c]);
		}
		/*
		 * Watch the bucket while the flood runs: if it ever fills up
		 * to the burst, the flood stopped for longer than the burst
		 * covers (the CPUs were taken by other work) and the tokens of
		 * that pause fell away - lost offered load, not limiter error.
		 */
		bool capped = false;

		while (now_ns() < t0 + 1000000000ull) {
			usleep(5000);
			capped |= bucket_level(&l, identity, rate, burst,
					       now_ns()) >= 0.99 * burst;
		}
		for (int c = 0; c < n_cpus; c++) {
			pthread_join(th[c], NULL);
			runs += arg[c].runs;
		}
		uint64_t t1 = now_ns();
		double secs = (double)(t1 - t0) / 1e9;
		uint64_t passed = counted(&l, allow_id) - p0;
		uint64_t dropped = counted(&l, limit_id) - d0;
		/*
		 * A token bucket passes rate x time plus what it held at the
		 * start minus what it holds at the end.  The end level is not
		 * zero when the flood paused (the CPU was taken by other work)
		 * and tokens accrued; counting it keeps such pauses from
		 * reading as limiter error in either direction.
		 */
		double level1 = bucket_level(&l, identity, rate, burst, t1);
		double want = rate * secs + level0 - level1;
		double err = ((double)passed - want) / (rate * secs);

		printf("  [%.1f Mpps for %.2fs: %llu passed, %+.2f%% raw, "
		       "%+.2f%% with the bucket's start/end level]",
		       (double)runs / secs / 1e6, secs,
		       (unsigned long long)passed,
		       100 * ((double)passed / secs - rate) / rate, 100 * err);
		CHECK(passed + dropped == runs, "passed %llu + dropped %llu != "
		      "%llu runs", (unsigned long long)passed,
		      (unsigned long long)dropped, (unsigned long long)runs);
		/*
		 * The window measures the limiter only while the flood offers
		 * well above the rate.  Below twice the rate the generator was
		 * starved of CPU by other work (at 1M/s on one CPU the margin
		 * is small on this VM): measure the window again, and only
		 * then insist on a flood clearly above the rate.
		 */
		bool starved = (double)runs <= 2 * want;
		if ((starved || (capped && err <= -0.10)) && retries < 3) {
			printf(starved ? " (flood below twice the rate: window again)" :
					 " (flood paused past the burst: window again)");
			retries++;
			w--;
			continue;
		}
		CHECK((double)runs > 1.25 * want, "flood (%llu) not above the rate",
		      (unsigned long long)runs);
		CHECK(err > -0.10 && err < 0.10,
		      "window %d: %llu passed in %.3fs, want %.0f (+-10%%)", w,
		      (unsigned long long)passed, secs, want);
	}
	printf("\n");
out:
	unload(&l);
}

/* ---- b) a random-source flood does not evict known buckets ---------------- */

static uint64_t map_entries(int fd)
{
	struct sn_limit_key k, next;
	uint64_t n = 0;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

static uint64_t budget_denied(const struct loaded *l)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sn_limit_budget *b = calloc((size_t)ncpu, sizeof(*b));
	uint32_t zero = 0;
	uint64_t n = 0;

	if (b && !bpf_map_lookup_elem(sn_dp_map_fd(l->dp, "sn_limit_new"),
				      &zero, b))
		for (int c = 0; c < ncpu; c++)
			n += b[c].denied;
	free(b);
	return n;
}

static void random_flood(void)
{
	static const char policy[] =
		"limit rate 10/s burst 5 then block for 60s\n"
		"limit from 198.51.100.0/24 rate 1/m burst 3\n";
	const uint32_t n_flood = 3 * SN_CAP_LIMIT_STATE;
	struct loaded l;
	struct frame blocked, slow, f;
	uint32_t a1, lim_all, a2, lim_slow;
	struct sn_limit_state st;
	uint64_t id_all, id_slow;

	if (load(&l, policy))
		goto out;
	id_all = sn_image_features(l.image)->limits[0].identity;
	id_slow = sn_image_features(l.image)->limits[1].identity;
	make_frame(&blocked, "203.0.113.50", PKT_IPPROTO_TCP, 443);
	make_frame(&slow, "198.51.100.7", PKT_IPPROTO_TCP, 443);
	ids_of(&l, &blocked, &a1, &lim_all);
	ids_of(&l, &slow, &a2, &lim_slow);

	/* A known source over its limit, blocked; another one drained. */
	CHECK(drain(&l, &blocked, 100) == 5, "burst 5 of the blocked source");
	CHECK(drain(&l, &slow, 100) == 3, "burst 3 of the slow source");
	CHECK(lookup_state(&l, id_all, "203.0.113.50", 32, &st) == 0 &&
		      st.blocked_until > now_ns(),
	      "the first source is not blocked");

	/* Distinct random sources, one packet each. */
	uint64_t d0 = budget_denied(&l), t0 = now_ns();
	uint32_t passed = 0;

	for (uint32_t i = 0; i < n_flood; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.%u.%u.%u", (i >> 16) & 0xff,
			 (i >> 8) & 0xff, i & 0xff);
		make_frame(&f, a, PKT_IPPROTO_UDP, (uint16_t)i);
		passed += run(&l, &f, 1) == XDP_PASS;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	uint64_t entries = map_entries(sn_dp_map_fd(l.dp, "sn_limit_state"));
	uint64_t denied = budget_denied(&l) - d0;

	printf("b) %u random sources in %.2fs: %u passed, %llu judged without "
	       "state, %llu buckets in the map (capacity %u)\n", n_flood, secs,
	       passed, (unsigned long long)denied,
	       (unsigned long long)entries, SN_CAP_LIMIT_STATE);
	/* Every flood packet is its source's first: it passes, with or
	 * without state (SPEC.md 2.4). */
	CHECK(passed == n_flood, "flood packets dropped: %u of %u passed",
	      passed, n_flood);
	CHECK(denied > 0 && entries < SN_CAP_LIMIT_STATE / 2,
	      "the creation budget did not hold the flood back");
	CHECK(lookup_state(&l, id_all, "203.0.113.50", 32, &st) == 0 &&
		      st.blocked_until > now_ns(),
	      "the blocked source's state was evicted");
	CHECK(lookup_state(&l, id_slow, "198.51.100.7", 32, &st) == 0,
	      "the drained source's bucket was evicted");
	uint64_t before = counted(&l, lim_all);

	CHECK(run(&l, &blocked, 1) == XDP_DROP &&
		      counted(&l, lim_all) == before + 1,
	      "the blocked source passes after the flood");
	CHECK(run(&l, &slow, 1) == XDP_DROP,
	      "the drained source got a new bucket after the flood");
out:
	unload(&l);
}

/* ---- c) escalation to a timed block, and its expiry ----------------------- */

static void escalation(void)
{
	static const char policy[] =
		"limit from 203.0.113.0/24 rate 5/s burst 5 per ipv4 /24 "
		"then block for 2s\n"
		"limit from 2001:db8::/32 rate 1/m burst 2 per ipv6 /56\n";
	struct loaded l;
	struct frame a, b, other, v6a, v6b, v6c;
	uint32_t allow_id, limit_id, a6, l6;

	if (load(&l, policy))
		goto out;
	make_frame(&a, "203.0.113.1", PKT_IPPROTO_TCP, 22);
	make_frame(&b, "203.0.113.77", PKT_IPPROTO_UDP, 53);
	make_frame(&other, "198.51.100.1", PKT_IPPROTO_TCP, 22);
	ids_of(&l, &a, &allow_id, &limit_id);

	uint64_t t0 = now_ns();

	CHECK(drain(&l, &a, 100) == 5, "burst of 5");
	CHECK(counted(&l, limit_id) == 1, "the drop is counted at the limit");
	/* The whole /24 is blocked, not only the address. */
	CHECK(run(&l, &b, 1) == XDP_DROP, "the key prefix is not blocked");
	CHECK(run(&l, &other, 1) == XDP_PASS, "an unlimited source dropped");
	/* After 1.5 s the bucket would have refilled, the block holds. */
	sleep_ns(1500000000ull - (now_ns() - t0));
	CHECK(run(&l, &a, 1) == XDP_DROP && run(&l, &b, 1) == XDP_DROP,
	      "the block ended before its duration");
	/* At 2.2 s it has expired by itself, with a full bucket. */
	sleep_ns(2200000000ull - (now_ns() - t0));
	long after = drain(&l, &b, 100);

	printf("c) blocked for 2s: dropped at 1.5s, %ld passed at %.2fs, "
	       "blocked again\n", after, (double)(now_ns() - t0) / 1e9);
	CHECK(after == 5, "after the block, %ld passed (want the burst, 5)",
	      after);
	CHECK(counted(&l, limit_id) == 5, "limit counter %llu, want 5",
	      (unsigned long long)counted(&l, limit_id));

	/* IPv6: the key is the /56 */
	make_frame(&v6a, "2001:db8:0:1::1", PKT_IPPROTO_UDP, 53);
	make_frame(&v6b, "2001:db8:0:2::99", PKT_IPPROTO_UDP, 53);
	make_frame(&v6c, "2001:db8:0:100::1", PKT_IPPROTO_UDP, 53);
	ids_of(&l, &v6a, &a6, &l6);
	CHECK(run(&l, &v6a, 1) == XDP_PASS && run(&l, &v6b, 1) == XDP_PASS &&
		      run(&l, &v6a, 1) == XDP_DROP,
	      "two addresses of one /56 do not share a bucket of 2");
	CHECK(run(&l, &v6c, 1) == XDP_PASS, "another /56 shares the bucket");
out:
	unload(&l);
}

/* ---- d) a reload keeps buckets by identity -------------------------------- */

static void reload(void)
{
	static const char p1[] =
		"limit from 192.0.2.0/24 rate 1/m burst 3\n";
	/* Another rule and limit first: the kept limit gets another index
	 * and rule id, another rate and burst; same match and keys. */
	static const char p2[] =
		"block from 203.0.113.0/24\n"
		"limit from 198.51.100.0/24 rate 50/s\n"
		"limit from 192.0.2.0/24 rate 2/m burst 4\n";
	/* Another key prefix: another identity, a new bucket. */
	static const char p3[] =
		"limit from 192.0.2.0/24 rate 1/m burst 3 per ipv4 /24\n";
	struct loaded l1, l2, l3;
	struct frame f;
	uint32_t a1, lim1, a2, lim2;
	char err[512] = "";

	memset(&l2, 0, sizeof(l2));
	memset(&l3, 0, sizeof(l3));
	if (load(&l1, p1))
		goto out;
	make_frame(&f, "192.0.2.9", PKT_IPPROTO_TCP, 80);
	ids_of(&l1, &f, &a1, &lim1);
	CHECK(drain(&l1, &f, 100) == 3, "burst of 3");

	if (compile(&l2, p2))
		goto out;
	l2.dp = l1.dp;
	CHECK(sn_dp_apply(l2.dp, l2.image, err, sizeof(err)) == 0,
	      "apply: %s", err);
	ids_of(&l2, &f, &a2, &lim2);
	CHECK(lim2 != lim1, "the limit kept its rule id (%u)", lim2);
	uint64_t before = counted(&l2, lim2);

	CHECK(run(&l2, &f, 1) == XDP_DROP && counted(&l2, lim2) == before + 1,
	      "the bucket was reset by the reload");

	if (compile(&l3, p3))
		goto out;
	l3.dp = l1.dp;
	CHECK(sn_dp_apply(l3.dp, l3.image, err, sizeof(err)) == 0,
	      "apply: %s", err);
	CHECK(drain(&l3, &f, 100) == 3, "a new identity shares the old bucket");
	printf("d) reload: bucket kept across an apply with the same identity "
	       "(limit rule #%u -> #%u), new bucket for a new key prefix\n",
	       lim1, lim2);
out:
	l2.dp = l3.dp = NULL;
	sn_ctx_free(&l2.ctx);
	sn_ctx_free(&l3.ctx);
	unload(&l1);
}

int main(void)
{
	struct loaded probe;

	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF)\n");
		return SKIP;
	}
	int rc = load(&probe, "limit rate 1/s\n");

	unload(&probe);
	if (rc == SKIP)
		return SKIP;

	accuracy(1000, 1, 1);
	accuracy(100000, 1, 1);
	accuracy(1000000, 1, 2);
	accuracy(100000, 2, 1);
	accuracy(1000000, 2, 2);
	if (getenv("SN_RATELIMIT_ONLY_A"))
		return failures ? 1 : 0;
	random_flood();
	escalation();
	reload();
	printf("test_ratelimit: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

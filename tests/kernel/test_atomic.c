/*
 * The atomicity proof (SPEC.md 4.3): no packet is ever judged by a mix of
 * two policies, measured on real frames.
 *
 * A veth pair in a private network namespace; the policy under test on
 * sa-b (native XDP, a bpf_link).  Two threads flood sa-a with live frames
 * (tests/kernel/flood.h: BPF_PROG_TEST_RUN, BPF_F_TEST_XDP_LIVE_FRAMES,
 * XDP_TX), so every frame crosses to sa-b and meets the program there,
 * while the main thread flips between two policies 1000 times
 * (sn_dp_apply: difference into the standby generation, flip, grace
 * period, level):
 *
 *   A: default block; allow from 10.0.0.0/8;  block from 10.1.0.0/16;
 *      allow from the 128 hosts 10.1.0.1 ... (inside that /16)
 *   B: default block; allow from 10.0.0.0/9;  block from 10.2.0.0/16;
 *      allow from the 128 hosts 10.2.0.1 ...
 *
 * The frames come from those 256 hosts.  Each policy allows every one of
 * them, by a rule of its own: A by its /32s (10.1.0.x) and its /8
 * (10.2.0.x), B by its /9 (10.1.0.x) and its /32s (10.2.0.x).  The /16
 * block and the /32 allows inside it move together from one /16 to the
 * other; a packet that saw one policy's /16 without the same policy's
 * /32s - a torn read - is blocked, and counted at that /16 rule.  Every
 * rule has its own counter (texts differ, so slots differ), so:
 *
 *   verdicts of generation A = A's /8 + A's /32s, of B = B's /9 + B's /32s;
 *   mixed verdicts = the /16 rules of both + the IPv4 default + malformed:
 *   must be 0.
 *
 * (A policy's counters are read each time it is replaced: its rules leave
 * the policy then, and their slots are zeroed when the next apply of it
 * takes them again, SPEC.md 6.1.)
 *
 * A control run shows the test sees torn reads when there are any: the
 * same flood and flips on a second pair (sc-a, sc-b), but the difference
 * written in place into the active generation, entry by entry (what an
 * apply without generations does) - it must count mixed verdicts.
 *
 *   test_atomic [--flips N] [--control-flips N]
 *
 * Needs root, BPF and network namespaces (else exit 77).
 */
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "compiler/compile.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "runtime/pop.h"
#include "tests/kernel/flood.h"
#include "tests/check.h"

#define SKIP 77
#define HOSTS 128
#define FLOOD_REPEAT 65536

struct pol {
	struct sn_ctx ctx;
	struct sn_image *img;
};

static char *policy_text(int which)
{
	size_t cap = 64 * HOSTS + 512, n = 0;
	char *t = malloc(cap);
	int o = which ? 2 : 1;

	n += (size_t)snprintf(t + n, cap - n,
			      "default block\nallow from %s\nblock from 10.%d.0.0/16\n"
			      "set hosts_%c = {\n", which ? "10.0.0.0/9" : "10.0.0.0/8", o,
			      which ? 'b' : 'a');
	for (int k = 1; k <= HOSTS; k++)
		n += (size_t)snprintf(t + n, cap - n, "  10.%d.0.%d,\n", o, k);
	snprintf(t + n, cap - n, "}\nallow from @hosts_%c\n", which ? 'b' : 'a');
	return t;
}

static int compile(struct pol *p, int which)
{
	char *text = policy_text(which);
	int rc;

	sn_ctx_init(&p->ctx);
	rc = sn_compile_text(&p->ctx, which ? "B.sentry" : "A.sentry", text,
			     strlen(text), NULL, &p->img);
	if (rc || p->ctx.diags.n_errors) {
		sn_diags_render_text(stderr, &p->ctx.diags, &p->ctx.sources);
		rc = rc ? rc : -EINVAL;
	}
	free(text);
	return rc;
}

/* ---- the flood ------------------------------------------------------------- */

struct flood {
	int prog, ifindex;
	struct flood_src *src;
	size_t n;
	volatile bool stop;
	uint64_t sent;
};

struct worker {
	struct flood *f;
	int cpu;
	size_t first;
	int rc;
};

static void *flood_thread(void *arg)
{
	struct worker *w = arg;
	struct flood *f = w->f;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
	/* Each worker its own half of the sources, round robin. */
	for (size_t i = w->first; !f->stop && !w->rc; i = (i + 2) % f->n)
		w->rc = flood_send(f->prog, f->ifindex, &f->src[i], FLOOD_REPEAT, 64);
	return NULL;
}

/* ---- counters by slot --------------------------------------------------------- */

/*
 * A policy's rules hold counter slots only while it is applied: when the
 * other policy replaces it, its rules leave and their slots are freed (and
 * zeroed when a later apply takes them again, SPEC.md 6.1).  So each
 * policy's counts are read when it goes out - after the apply that
 * replaced it, when no generation names its slots any more and every
 * packet judged by it has been counted - and added up.
 */
struct pslots {
	uint32_t allow_wide, block16, allow32;
};

static uint32_t slot_of(const struct sn_pop *p, const struct sn_image *img,
			const char *text)
{
	for (uint32_t id = 0; id < img->n_rules && id < p->n_rules; id++)
		if (!strcmp(img->rules[id].text, text))
			return p->rule_slot[id];
	return UINT32_MAX;
}

static struct pslots pslots(const struct sn_pop *p, const struct sn_image *img,
			    int which)
{
	return (struct pslots){
		.allow_wide = slot_of(p, img, which ? "allow from 10.0.0.0/9" :
						       "allow from 10.0.0.0/8"),
		.block16 = slot_of(p, img, which ? "block from 10.2.0.0/16" :
						    "block from 10.1.0.0/16"),
		.allow32 = slot_of(p, img, which ? "allow from @hosts_b" :
						    "allow from @hosts_a"),
	};
}

static uint64_t slot_packets(int fd, uint32_t slot)
{
	int n = libbpf_num_possible_cpus();
	struct sn_counter *v = calloc((size_t)n, sizeof(*v));
	uint64_t sum = 0;

	if (v && !bpf_map_lookup_elem(fd, &slot, v))
		for (int c = 0; c < n; c++)
			sum += v[c].packets;
	free(v);
	return sum;
}

/* Distinct slot sets a policy had (the control). */
struct seen {
	struct pslots v[16];
	size_t n;
};

static void seen_add(struct seen *s, const struct pslots *p)
{
	for (size_t i = 0; i < s->n; i++)
		if (!memcmp(&s->v[i], p, sizeof(*p)))
			return;
	if (s->n < 16)
		s->v[s->n++] = *p;
}

struct tally {
	uint64_t gen[2];  /* verdicts of policy A, of policy B */
	uint64_t mixed;   /* the /16 blocks, the IPv4 default, malformed */
	uint64_t total;
};

/* Add what policy `which` counted at its slots s (read when it left). */
static void add_policy(struct tally *t, const struct sn_dataplane *dp,
		       const struct pslots *s, int which)
{
	int fd = sn_dp_map_fd(dp, "sn_counters");

	t->gen[which] += slot_packets(fd, s->allow_wide) +
			 slot_packets(fd, s->allow32);
	t->mixed += slot_packets(fd, s->block16);
}

/* Nothing the flood sends falls to the IPv4 default or is malformed
 * (IPv6 and non-IP frames of the links themselves are not ours). */
static uint64_t fixed_mixed(const struct sn_dataplane *dp)
{
	int fd = sn_dp_map_fd(dp, "sn_counters");

	return slot_packets(fd, SN_RULE_DEFAULT_V4) +
	       slot_packets(fd, SN_RULE_MALFORMED);
}

/* ---- the control: the difference written in place ------------------------------ */

/*
 * What an apply without generations does: the entries that differ written
 * into the generation the program reads, one by one, the decision table
 * first.  p is the population the maps hold (kept up to date here).
 */
static int apply_in_place(struct sn_dataplane *dp, struct sn_pop *p,
			  const struct sn_image *img)
{
	static const char *const maps[SN_PA_N] = {
		[SN_PA_PROTO] = "sn_proto", [SN_PA_PORTS] = "sn_ports",
		[SN_PA_DECISIONS] = "sn_decisions", [SN_PA_LIMITS] = "sn_limits",
		[SN_PA_NODES4] = "sn_src4_nodes", [SN_PA_NODES6] = "sn_src6_nodes",
	};
	static const int order[] = { SN_PA_DECISIONS, SN_PA_NODES4,
				     SN_PA_PROTO, SN_PA_PORTS, SN_PA_LIMITS,
				     SN_PA_NODES6 };
	const uint32_t gen = sn_dp_generation(dp);
	char err[256];
	int rc = sn_pop_translate(p, img, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "control translate: %s\n", err);
		return rc;
	}
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]) && !rc; k++) {
		const struct sn_pop_array *a = &p->a[order[k]];
		int fd = sn_dp_map_fd(dp, maps[order[k]]);

		for (size_t i = 0; i < a->n_dirty && !rc; i++) {
			uint32_t key = gen * a->cap + a->dirty[i];

			rc = bpf_map_update_elem(fd, &key,
						 a->v + (size_t)a->dirty[i] * a->esz,
						 BPF_ANY);
		}
	}
	sn_pop_commit(p);
	return rc;
}

/* ---- one run --------------------------------------------------------------------- */

static int setup_pair(const char *a, const char *b)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "ip link add %s type veth peer name %s && "
		 "sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 "
		 "net.ipv6.conf.%s.disable_ipv6=1 >/dev/null 2>&1; "
		 "ip link set %s up && ip link set %s up", a, b, a, b, a, b);
	return system(cmd) ? -1 : 0;
}

static int run(struct pol *pa, struct pol *pb, const char *ifa, const char *ifb,
	       int flips, bool control, struct tally *out, double *secs,
	       size_t *entries)
{
	struct sn_dataplane *dp = NULL;
	struct flood f = { 0 };
	struct worker w[2];
	pthread_t th[2];
	struct sn_pop ctl = { 0 };
	enum sn_attach_mode mode;
	char err[512] = "";
	int rc;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	rc = sn_dp_load(pa->img, &dp, err, sizeof(err));
	if (rc)
		return rc == -EPERM ? -EPERM : (fprintf(stderr, "load: %s\n", err), rc);
	rc = sn_dp_apply(dp, pa->img, err, sizeof(err));
	if (!rc)
		rc = sn_dp_attach(dp, (int)if_nametoindex(ifb), SN_XDP_MODE_NATIVE,
				  &mode, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "apply/attach: %s\n", err);
		goto out;
	}
	{
		/* The two policies must not share a counter. */
		struct pslots a0 = pslots(sn_dp_pop(dp), pa->img, 0), b0;

		rc = sn_dp_apply(dp, pb->img, err, sizeof(err));
		b0 = pslots(sn_dp_pop(dp), pb->img, 1);
		if (!rc)
			rc = sn_dp_apply(dp, pa->img, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "apply: %s\n", err);
			goto out;
		}
		CHECK(a0.allow32 != b0.allow32 && a0.allow_wide != b0.allow_wide &&
			      a0.block16 != b0.block16,
		      "the two policies share counter slots: the test cannot "
		      "tell them apart");
	}
	if (control) {
		struct sn_pop_geom g = sn_dp_pop(dp)->g;
		bool keep[SN_PA_N] = { false }, keepl[2] = { false };

		rc = sn_pop_clone(&ctl, sn_dp_pop(dp), &g, keep, keepl);
		if (rc)
			goto out;
	}

	/* The flood: 2 x HOSTS sources, two threads. */
	f.prog = flood_prog_load();
	if (f.prog < 0) {
		rc = f.prog;
		fprintf(stderr, "flood program: %s\n", strerror(-rc));
		goto out;
	}
	f.ifindex = (int)if_nametoindex(ifa);
	f.n = 2 * HOSTS;
	f.src = calloc(f.n, sizeof(*f.src));
	for (int k = 0; k < HOSTS; k++) {
		char a[32];

		snprintf(a, sizeof(a), "10.1.0.%d", k + 1);
		flood_src_init(&f.src[2 * k], a, 53);
		snprintf(a, sizeof(a), "10.2.0.%d", k + 1);
		flood_src_init(&f.src[2 * k + 1], a, 53);
	}
	/* A is applied: its counts so far are not part of the run. */
	struct tally base = { 0 };
	struct pslots cur = pslots(sn_dp_pop(dp), pa->img, 0);
	int cur_which = 0;

	add_policy(&base, dp, &cur, 0);
	uint64_t fixed0 = fixed_mixed(dp);
	struct tally acc = { 0 };
	struct seen seen[2] = { { .n = 0 }, { .n = 0 } };

	seen_add(&seen[0], &cur);

	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .f = &f, .cpu = i % (ncpu > 0 ? ncpu : 1),
					.first = (size_t)i };
		pthread_create(&th[i], NULL, flood_thread, &w[i]);
	}
	usleep(100000);
	uint64_t t0 = flood_now_ns();

	*entries = 0;
	for (int i = 0; i < flips && !rc; i++) {
		int which = i % 2 ? 0 : 1;
		struct pol *to = which ? pb : pa;

		if (control) {
			rc = apply_in_place(dp, &ctl, to->img);
			usleep(10000); /* the pace of the real flips */
			/* Nothing zeroes slots in place: every slot a policy
			 * ever had is read once, at the end. */
			struct pslots ps = pslots(&ctl, to->img, which);

			seen_add(&seen[which], &ps);
		} else {
			rc = sn_dp_apply(dp, to->img, err, sizeof(err));
			*entries += sn_dp_stats(dp)->entries;
			/* The policy that went out has counted its last. */
			add_policy(&acc, dp, &cur, cur_which);
			cur = pslots(sn_dp_pop(dp), to->img, which);
			cur_which = which;
		}
		if (rc)
			fprintf(stderr, "flip %d: %s\n", i, err);
	}
	*secs = (double)(flood_now_ns() - t0) / 1e9;
	usleep(100000);
	f.stop = true;
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		if (w[i].rc)
			fprintf(stderr, "flood: %s\n", strerror(-w[i].rc));
	}
	if (control) {
		for (int k = 0; k < 2; k++)
			for (size_t j = 0; j < seen[k].n; j++)
				add_policy(&acc, dp, &seen[k].v[j], k);
	} else {
		add_policy(&acc, dp, &cur, cur_which);
	}
	acc.gen[0] -= base.gen[0];
	acc.mixed -= base.mixed;
	acc.mixed += fixed_mixed(dp) - fixed0;
	*out = acc;
	out->total = acc.gen[0] + acc.gen[1] + acc.mixed;
	for (size_t i = 0; i < f.n; i++)
		f.sent += f.src[i].sent;
	printf("%s: %d flips in %.1f s, %llu frames sent, %llu judged: "
	       "policy A %llu, policy B %llu, mixed %llu\n",
	       control ? "control (in place, no generations)" : "generations",
	       flips, *secs, (unsigned long long)f.sent,
	       (unsigned long long)out->total, (unsigned long long)out->gen[0],
	       (unsigned long long)out->gen[1], (unsigned long long)out->mixed);
	close(f.prog);
	free(f.src);
out:
	if (control)
		sn_pop_free(&ctl);
	sn_dp_close(dp); /* not pinned: the link goes with it */
	return rc;
}

int main(int argc, char **argv)
{
	struct pol pa = { 0 }, pb = { 0 };
	struct tally t = { 0 }, c = { 0 };
	int flips = 1000, control_flips = 300, rc;
	double secs = 0, csecs = 0;
	size_t entries = 0, centries = 0;

	setvbuf(stdout, NULL, _IONBF, 0);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--flips"))
			flips = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--control-flips"))
			control_flips = atoi(argv[i + 1]);
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF, netns)\n");
		return SKIP;
	}
	if (unshare(CLONE_NEWNET)) {
		printf("SKIP: cannot create a network namespace: %s\n",
		       strerror(errno));
		return SKIP;
	}
	if (setup_pair("sa-a", "sa-b") || setup_pair("sc-a", "sc-b")) {
		printf("SKIP: cannot create veth pairs (iproute2?)\n");
		return SKIP;
	}
	if (compile(&pa, 0) || compile(&pb, 1))
		return 1;

	rc = run(&pa, &pb, "sa-a", "sa-b", flips, false, &t, &secs, &entries);
	if (rc == -EPERM) {
		printf("SKIP: cannot load BPF programs\n");
		return SKIP;
	}
	CHECK(rc == 0, "the run failed: %d", rc);
	CHECK(t.mixed == 0, "%llu packets judged by a mix of the two policies",
	      (unsigned long long)t.mixed);
	CHECK(t.gen[0] > 1000 && t.gen[1] > 1000,
	      "too little traffic to tell (A %llu, B %llu)",
	      (unsigned long long)t.gen[0], (unsigned long long)t.gen[1]);
	printf("generations: %zu entries written per flip on average (the /16 "
	       "and its /32s move), %.1f flips/s\n",
	       flips ? entries / (size_t)flips : 0, flips / secs);

	if (control_flips > 0) {
		rc = run(&pa, &pb, "sc-a", "sc-b", control_flips, true, &c, &csecs,
			 &centries);
		CHECK(rc == 0, "the control run failed: %d", rc);
		CHECK(c.mixed > 0,
		      "the control (in-place writes) showed no mixed verdict in %d "
		      "flips: the test would not see a torn read", control_flips);
	}
	sn_ctx_free(&pa.ctx);
	sn_ctx_free(&pb.ctx);
	printf("test_atomic: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

/*
 * Reloads on the real program (SPEC.md 4.3, 6): in a private network
 * namespace, a policy attached to a veth with a pinned link, then
 *
 *  a) a one-prefix change applied as a difference: a handful of entries,
 *     the new verdicts, both generations equal afterwards;
 *  b) lines moved: nothing written, every counter stays with its rule;
 *  c) a change of generated constants: a new program on the same maps,
 *     swapped in with bpf_link_update (the link now runs it, the pins
 *     point at it, the counters and rate-limit buckets are the same maps);
 *  d) a policy that outgrows the maps: a new program with bigger maps,
 *     counters carried over;
 *  e) adoption of the pinned state by a new loader (a restarted sentryd):
 *     same generation, population read back, an apply through it, and a
 *     program from another build replaced on adoption;
 *  f) a replacement a crash left half-way (prog_new pinned) undone or
 *     finished by the next adoption.
 *
 * Verdicts come from BPF_PROG_TEST_RUN on the program the link runs.
 * Without root, BPF or network namespaces the test skips (exit 77).
 */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "compiler/compile.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"
#include "tests/check.h"

#define SKIP 77

struct pol {
	struct sn_ctx ctx;
	struct sn_image *img;
};

static int compile(struct pol *p, const char *text)
{
	int rc;

	sn_ctx_init(&p->ctx);
	rc = sn_compile_text(&p->ctx, "reload.sentry", text, strlen(text), NULL,
			     &p->img);
	if (rc || p->ctx.diags.n_errors) {
		sn_diags_render_text(stderr, &p->ctx.diags, &p->ctx.sources);
		return rc ? rc : -EINVAL;
	}
	/* The checksum, as sentryd computes it. */
	void *buf = NULL;
	size_t len = 0;

	rc = sn_image_serialize(p->img, &buf, &len);
	free(buf);
	return rc;
}

static void release(struct pol *p)
{
	sn_ctx_free(&p->ctx);
	memset(p, 0, sizeof(*p));
}

/* XDP action for one frame through prog_fd. */
static int verdict(int prog_fd, const char *src, uint8_t proto, uint16_t dport)
{
	struct pkt_spec s = { .src = src, .proto = proto, .dport = dport };
	uint8_t frame[PKT_MAX];
	struct sn_packet facts;
	size_t len = pkt_build(&s, frame, &facts);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = (uint32_t)len, .repeat = 1);

	if (bpf_prog_test_run_opts(prog_fd, &o))
		return -1;
	return (int)o.retval;
}

static uint32_t rule_id(const struct sn_image *img, const char *text)
{
	for (uint32_t i = 0; i < img->n_rules; i++)
		if (!strcmp(img->rules[i].text, text))
			return i;
	return UINT32_MAX;
}

static uint64_t counted(struct sn_dataplane *dp, const struct sn_image *img,
			const char *text)
{
	struct sn_counter c[64];
	uint32_t id = rule_id(img, text);

	if (id >= 64 || sn_dp_read_counters(dp, c, img->n_rules))
		return UINT64_MAX;
	return c[id].packets;
}

static uint32_t link_prog(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	return bpf_xdp_query(ifindex, 0, &q) ? 0 : q.prog_id;
}

static uint32_t fd_prog_id(int fd)
{
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static uint32_t fd_map_id(int fd)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static uint32_t pinned_id(const char *dir, const char *name, bool prog)
{
	char path[512];
	int fd;
	uint32_t id;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	id = prog ? fd_prog_id(fd) : fd_map_id(fd);
	close(fd);
	return id;
}

/* Both generations of every array equal (read back from the kernel). */
static bool gens_level(struct sn_dataplane *dp)
{
	static const char *const arrays[] = {
		"sn_proto", "sn_ports", "sn_decisions", "sn_limits",
		"sn_src4_nodes", "sn_src6_nodes",
	};
	bool ok = true;

	for (size_t k = 0; k < sizeof(arrays) / sizeof(arrays[0]); k++) {
		int fd = sn_dp_map_fd(dp, arrays[k]);
		struct bpf_map_info info = { 0 };
		uint32_t len = sizeof(info);

		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			return false;
		uint32_t cap = info.max_entries / 2, vs = info.value_size;
		unsigned char a[64], b[64];

		for (uint32_t i = 0; i < cap && ok; i++) {
			uint32_t j = cap + i;

			if (bpf_map_lookup_elem(fd, &i, a) ||
			    bpf_map_lookup_elem(fd, &j, b) || memcmp(a, b, vs)) {
				fprintf(stderr, "%s: entry %u differs between "
					"generations\n", arrays[k], i);
				ok = false;
			}
		}
	}
	return ok;
}

static const char pol_a[] =
	"default allow\n"
	"block from 10.0.0.0/8\n"
	"allow from 10.1.2.3\n"
	"block to tcp port 22\n"
	"allow from 192.0.2.0/24 to tcp port 22\n"
	"limit from 198.51.100.0/24 rate 10/s\n";
/* a) one more prefix */
static const char pol_b[] =
	"default allow\n"
	"block from 10.0.0.0/8\n"
	"allow from 10.1.2.3\n"
	"allow from 10.7.7.7\n"
	"block to tcp port 22\n"
	"allow from 192.0.2.0/24 to tcp port 22\n"
	"limit from 198.51.100.0/24 rate 10/s\n";
/* b) the same rules, lines moved */
static const char pol_b_moved[] =
	"limit from 198.51.100.0/24 rate 10/s\n"
	"allow from 192.0.2.0/24 to tcp port 22\n"
	"block to tcp port 22\n"
	"allow from 10.7.7.7\n"
	"allow from 10.1.2.3\n"
	"block from 10.0.0.0/8\n"
	"default allow\n";
/* c) udp port rules: other constants (port tables) */
static const char pol_c[] =
	"default allow\n"
	"block from 10.0.0.0/8\n"
	"allow from 10.1.2.3\n"
	"block to tcp port 22\n"
	"allow from 192.0.2.0/24 to tcp port 22\n"
	"block to udp port 53\n"
	"limit from 198.51.100.0/24 rate 10/s\n";

int main(void)
{
	struct pol a = { 0 }, b = { 0 }, bm = { 0 }, c = { 0 }, big = { 0 };
	struct sn_dataplane *dp = NULL, *dp2 = NULL;
	char err[512] = "", dir[160], root[128];
	const struct sn_dp_stats *st;
	enum sn_attach_mode mode;
	int ifindex, rc, pfd;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF, netns)\n");
		return SKIP;
	}
	if (unshare(CLONE_NEWNET)) {
		printf("SKIP: cannot create a network namespace: %s\n",
		       strerror(errno));
		return SKIP;
	}
	if (system("ip link add rl-a type veth peer name rl-b && "
		   "ip link set rl-a up && ip link set rl-b up")) {
		printf("SKIP: cannot create a veth pair (iproute2?)\n");
		return SKIP;
	}
	ifindex = (int)if_nametoindex("rl-a");
	snprintf(root, sizeof(root), "/sys/fs/bpf/47sentry-reload-%d",
		 (int)getpid());
	snprintf(dir, sizeof(dir), "%s/rl-a", root);

	if (compile(&a, pol_a) || compile(&b, pol_b) ||
	    compile(&bm, pol_b_moved) || compile(&c, pol_c)) {
		failures++;
		goto out;
	}
	rc = sn_dp_load(a.img, &dp, err, sizeof(err));
	if (rc == -EPERM) {
		printf("SKIP: cannot load BPF programs: %s\n", err);
		rc = SKIP;
		goto out_rc;
	}
	CHECK(rc == 0, "load: %s", err);
	if (rc)
		goto out;
	rc = sn_dp_apply(dp, a.img, err, sizeof(err));
	CHECK(rc == 0, "apply a: %s", err);
	rc = sn_dp_attach(dp, ifindex, SN_XDP_MODE_NATIVE, &mode, err, sizeof(err));
	CHECK(rc == 0, "attach: %s", err);
	rc = sn_dp_pin(dp, dir, err, sizeof(err));
	CHECK(rc == 0, "pin: %s", err);
	if (failures)
		goto out;
	pfd = sn_dp_prog_fd(dp);
	CHECK(verdict(pfd, "10.7.7.7", 17, 53) == XDP_DROP, "a: 10.7.7.7 blocked");
	CHECK(verdict(pfd, "10.1.2.3", 17, 53) == XDP_PASS, "a: 10.1.2.3 allowed");
	for (int i = 0; i < 5; i++)
		verdict(pfd, "10.9.9.9", 17, 53);
	CHECK(counted(dp, a.img, "block from 10.0.0.0/8") == 6,
	      "a: block counted %llu", (unsigned long long)
	      counted(dp, a.img, "block from 10.0.0.0/8"));
	CHECK(gens_level(dp), "a: generations differ");

	/* a) one more prefix: a difference of a few entries */
	uint32_t g0 = sn_dp_generation(dp);

	rc = sn_dp_apply(dp, b.img, err, sizeof(err));
	CHECK(rc == 0, "apply b: %s", err);
	st = sn_dp_stats(dp);
	printf("a) one prefix: %zu entries, translate %.2f ms, write %.2f ms, "
	       "flip %.3f ms, sync %.1f ms, level %.2f ms\n", st->entries,
	       st->translate_ms, st->write_ms, st->flip_ms, st->sync_ms,
	       st->level_ms);
	CHECK(st->entries > 0 && st->entries <= 16, "a: %zu entries written",
	      st->entries);
	CHECK(sn_dp_generation(dp) == (g0 ^ 1), "a: no flip");
	CHECK(verdict(pfd, "10.7.7.7", 17, 53) == XDP_PASS, "b: 10.7.7.7 allowed");
	CHECK(verdict(pfd, "10.9.9.9", 17, 53) == XDP_DROP, "b: 10.9.9.9 blocked");
	CHECK(counted(dp, b.img, "block from 10.0.0.0/8") == 7,
	      "b: the block rule's counter went on");
	CHECK(gens_level(dp), "b: generations differ");

	/* b) lines moved: nothing for the program, counters stay */
	rc = sn_dp_apply(dp, bm.img, err, sizeof(err));
	CHECK(rc == 0, "apply moved: %s", err);
	st = sn_dp_stats(dp);
	CHECK(st->unchanged && st->entries == 0,
	      "moved lines wrote %zu entries", st->entries);
	CHECK(rule_id(bm.img, "block from 10.0.0.0/8") !=
		      rule_id(b.img, "block from 10.0.0.0/8"),
	      "the rule did not move (test bug)");
	CHECK(counted(dp, bm.img, "block from 10.0.0.0/8") == 7,
	      "moved: counter %llu, want 7", (unsigned long long)
	      counted(dp, bm.img, "block from 10.0.0.0/8"));
	CHECK(counted(dp, bm.img, "allow from 10.7.7.7") == 1,
	      "moved: the allow counter");

	/* c) other constants: a new program on the same maps */
	uint32_t old_prog = link_prog(ifindex);
	uint32_t counters_id = pinned_id(dir, "sn_counters", false);
	uint32_t state_id = pinned_id(dir, "sn_limit_state", false);

	rc = sn_dp_apply(dp, c.img, err, sizeof(err));
	CHECK(rc == -ESTALE, "apply with other constants: %d %s", rc, err);
	rc = sn_dp_update(dp, c.img, err, sizeof(err));
	CHECK(rc == 0, "update c: %s", err);
	st = sn_dp_stats(dp);
	printf("c) new constants: replaced %d, %zu entries, load %.1f ms, "
	       "write %.2f ms, link update %.3f ms\n", st->replaced, st->entries,
	       st->load_ms, st->write_ms, st->flip_ms);
	CHECK(st->replaced, "c: not replaced");
	pfd = sn_dp_prog_fd(dp);
	CHECK(link_prog(ifindex) == fd_prog_id(pfd) && link_prog(ifindex) != old_prog,
	      "c: the link does not run the new program");
	CHECK(pinned_id(dir, "prog", true) == fd_prog_id(pfd),
	      "c: the prog pin is not the new program");
	CHECK(pinned_id(dir, "sn_counters", false) == counters_id &&
		      pinned_id(dir, "sn_limit_state", false) == state_id,
	      "c: counters or buckets are not the same maps");
	{
		char p2[256];

		snprintf(p2, sizeof(p2), "%s/prog_new", dir);
		CHECK(access(p2, F_OK) != 0, "c: prog_new left behind");
	}
	CHECK(verdict(pfd, "192.0.2.9", 17, 53) == XDP_DROP, "c: udp/53 blocked");
	CHECK(verdict(pfd, "10.7.7.7", 17, 53) == XDP_DROP, "c: 10.7.7.7 blocked again");
	CHECK(counted(dp, c.img, "block from 10.0.0.0/8") == 8,
	      "c: counter %llu, want 8", (unsigned long long)
	      counted(dp, c.img, "block from 10.0.0.0/8"));
	CHECK(gens_level(dp), "c: generations differ");

	/* d) a policy that outgrows the maps: bigger maps, counters kept */
	{
		size_t cap = 400000, n = 0;
		char *text = malloc(cap);

		n += (size_t)snprintf(text + n, cap - n, "%s", pol_c);
		n += (size_t)snprintf(text + n, cap - n, "set many = {\n");
		/* Every other /24: 10000 ranges that do not aggregate. */
		for (int i = 0; i < 5000; i++)
			n += (size_t)snprintf(text + n, cap - n, "  172.%d.%d.0/24,\n",
					      16 + i / 128, (i % 128) * 2);
		snprintf(text + n, cap - n, "}\nblock from @many\n");
		CHECK(compile(&big, text) == 0, "compile big");
		free(text);
		rc = sn_dp_apply(dp, big.img, err, sizeof(err));
		CHECK(rc == -E2BIG, "apply big: %d %s", rc, err);
		rc = sn_dp_update(dp, big.img, err, sizeof(err));
		CHECK(rc == 0, "update big: %s", err);
		st = sn_dp_stats(dp);
		printf("d) outgrown maps: replaced %d, %zu entries\n", st->replaced,
		       st->entries);
		pfd = sn_dp_prog_fd(dp);
		CHECK(link_prog(ifindex) == fd_prog_id(pfd), "d: link not updated");
		CHECK(verdict(pfd, "172.30.4.1", 6, 80) == XDP_DROP, "d: @many blocked");
		CHECK(verdict(pfd, "172.30.5.1", 6, 80) == XDP_PASS, "d: between @many");
		CHECK(verdict(pfd, "192.0.2.9", 17, 53) == XDP_DROP, "d: udp/53 blocked");
		CHECK(counted(dp, big.img, "block from 10.0.0.0/8") == 8,
		      "d: counter lost");
		CHECK(gens_level(dp), "d: generations differ");
	}

	/* e) adoption: a new loader on the pins */
	g0 = sn_dp_generation(dp);
	sn_dp_close(dp);
	dp = NULL;
	CHECK(link_prog(ifindex) != 0, "e: enforcement gone with the loader");
	rc = sn_dp_adopt(dir, &dp2, err, sizeof(err));
	CHECK(rc == 0, "adopt: %s", err);
	if (rc)
		goto out;
	CHECK(sn_dp_generation(dp2) == g0, "e: generation %u, want %u",
	      sn_dp_generation(dp2), g0);
	pfd = sn_dp_prog_fd(dp2);
	CHECK(fd_prog_id(pfd) == link_prog(ifindex), "e: adopted another program");
	CHECK(!memcmp(sn_dp_meta(dp2)->checksum, big.img->checksum, 32),
	      "e: sn_meta checksum is not the applied image's");
	/* Back to c: a difference through the adopted state (constants of c
	 * are those of big), counters still there. */
	rc = sn_dp_update(dp2, c.img, err, sizeof(err));
	CHECK(rc == 0, "e: apply c through the adopted state: %s", err);
	st = sn_dp_stats(dp2);
	printf("e) adopted, back to c: replaced %d, %zu entries\n", st->replaced,
	       st->entries);
	CHECK(!st->replaced, "e: replaced although nothing required it");
	CHECK(verdict(pfd, "172.30.4.1", 6, 80) == XDP_PASS, "e: @many gone");
	CHECK(verdict(pfd, "10.1.2.3", 17, 53) == XDP_PASS, "e: 10.1.2.3 allowed");
	CHECK(counted(dp2, c.img, "block from 10.0.0.0/8") == 8,
	      "e: counter %llu after adoption", (unsigned long long)
	      counted(dp2, c.img, "block from 10.0.0.0/8"));
	CHECK(gens_level(dp2), "e: generations differ");

	/* A program of another build: replaced when adopted. */
	{
		struct sn_meta m = *sn_dp_meta(dp2);

		m.prog_tag[0] ^= 0xff;
		uint32_t key = 0;

		bpf_map_update_elem(sn_dp_map_fd(dp2, "sn_meta"), &key, &m, BPF_ANY);
		sn_dp_close(dp2);
		dp2 = NULL;
		old_prog = link_prog(ifindex);
		rc = sn_dp_adopt(dir, &dp2, err, sizeof(err));
		CHECK(rc == 0, "adopt again: %s", err);
		if (rc)
			goto out;
		rc = sn_dp_update(dp2, c.img, err, sizeof(err));
		CHECK(rc == 0 && sn_dp_stats(dp2)->replaced,
		      "e: another build's program not replaced: %d %s", rc, err);
		CHECK(link_prog(ifindex) != old_prog &&
			      link_prog(ifindex) == fd_prog_id(sn_dp_prog_fd(dp2)),
		      "e: link not updated");
		CHECK(!memcmp(sn_dp_meta(dp2)->prog_tag, m.prog_tag, 1) == 0,
		      "e: prog tag not updated");
	}

	/* f) a crash half-way through a replacement: prog_new pinned, the
	 * link still on the old program -> undone on adoption. */
	{
		char p[256];

		snprintf(p, sizeof(p), "%s/prog_new", dir);
		CHECK(bpf_obj_pin(sn_dp_prog_fd(dp2), p) == 0, "pin prog_new");
		/* Make it a different program id: a fresh load of a. */
		struct sn_dataplane *other = NULL;

		unlink(p);
		CHECK(sn_dp_load(a.img, &other, err, sizeof(err)) == 0, "load other");
		CHECK(bpf_obj_pin(sn_dp_prog_fd(other), p) == 0, "pin other as prog_new");
		sn_dp_close(other);
		sn_dp_close(dp2);
		dp2 = NULL;
		rc = sn_dp_adopt(dir, &dp2, err, sizeof(err));
		CHECK(rc == 0, "f: adopt: %s", err);
		CHECK(access(p, F_OK) != 0, "f: prog_new not removed");
		CHECK(dp2 && fd_prog_id(sn_dp_prog_fd(dp2)) == link_prog(ifindex),
		      "f: adopted a program the link does not run");
	}

out:
	rc = failures ? 1 : 0;
out_rc:
	sn_dp_close(dp);
	sn_dp_close(dp2);
	sn_pinned_detach(dir, NULL, 0);
	rmdir(root);
	release(&a);
	release(&b);
	release(&bm);
	release(&c);
	release(&big);
	if (rc != SKIP)
		printf("test_reload: %d checks, %d failed\n", checks, failures);
	return rc;
}

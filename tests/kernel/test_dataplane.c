/*
 * The data plane's kernel-facing life cycle on real interfaces, inside a
 * private network namespace (a veth pair): attach with a bpf_link in the
 * requested mode, pin program/maps/link, read meta and counters through
 * the pins without the loader, survive the loader closing, and detach
 * from the pins alone, including when the link pin is missing while a
 * process still holds the link.
 *
 * An ifb or bridge device (no native XDP) checks the AUTO fallback to generic.
 *
 * Without root, BPF or network namespaces the test skips (exit 77).
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "compiler/compile.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"

#define SKIP 77

struct t {
	int checks, failures;
};

#define CHECK(t, cond, ...)                                                \
	do {                                                               \
		(t)->checks++;                                             \
		if (!(cond)) {                                             \
			(t)->failures++;                                   \
			fprintf(stderr, "FAIL %s:%d ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
		}                                                          \
	} while (0)

static const char policy[] = "block to tcp port 22\n";

/* XDP program id on ifindex and how it is attached (0: none). */
static uint32_t xdp_prog_on(int ifindex, uint8_t *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q))
		return 0;
	if (mode)
		*mode = q.attach_mode;
	return q.prog_id;
}

static uint32_t prog_id(int fd)
{
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static int load(struct t *t, const struct sn_image *image,
		struct sn_dataplane **dp)
{
	char err[512] = "";
	int rc = sn_dp_load(image, dp, err, sizeof(err));

	CHECK(t, rc == 0, "sn_dp_load: %d %s", rc, err);
	if (rc)
		return rc;
	rc = sn_dp_apply(*dp, image, err, sizeof(err));
	CHECK(t, rc == 0, "sn_dp_apply: %d %s", rc, err);
	return rc;
}

/* Full cycle: native attach, pin, meta, counters, close, detach by pins. */
static void test_cycle(struct t *t, const struct sn_image *image,
		       const char *dir, int ifindex)
{
	struct sn_dataplane *dp = NULL;
	enum sn_attach_mode mode = 0;
	struct sn_meta meta = { 0 }, got = { 0 };
	struct sn_counter mine[SN_RULE_FIRST + 1], pinned[SN_RULE_FIRST + 1];
	uint8_t frame[PKT_MAX], qmode = 0;
	struct sn_packet facts;
	struct pkt_spec ssh = { .src = "192.0.2.1", .proto = 6, .dport = 22 };
	size_t len = pkt_build(&ssh, frame, &facts);
	char err[512] = "";
	uint32_t id;
	int rc;

	if (load(t, image, &dp))
		goto out;
	id = prog_id(sn_dp_prog_fd(dp));

	rc = sn_dp_attach(dp, ifindex, SN_XDP_MODE_AUTO, &mode, err,
			  sizeof(err));
	CHECK(t, rc == 0, "attach auto: %d %s", rc, err);
	CHECK(t, mode == SN_ATTACH_NATIVE, "veth has native XDP, got mode %d",
	      mode);
	CHECK(t, xdp_prog_on(ifindex, &qmode) == id &&
			 qmode == XDP_ATTACHED_DRV,
	      "our program is not attached in driver mode");
	rc = sn_dp_attach(dp, ifindex, SN_XDP_MODE_AUTO, &mode, err,
			  sizeof(err));
	CHECK(t, rc == -EBUSY, "second attach: %d", rc);

	rc = sn_dp_pin(dp, dir, err, sizeof(err));
	CHECK(t, rc == 0, "pin: %d %s", rc, err);
	rc = sn_dp_pin(dp, dir, err, sizeof(err));
	CHECK(t, rc == -EEXIST, "pinning over existing pins: %d", rc);

	meta.abi_version = SN_ABI_VERSION;
	meta.attach_mode = mode;
	meta.ifindex = (uint32_t)ifindex;
	meta.n_rules = image->n_rules;
	meta.applied_at_ns = 47;
	memcpy(meta.checksum, image->checksum, sizeof(meta.checksum));
	snprintf(meta.ifname, sizeof(meta.ifname), "sn-a");
	CHECK(t, sn_dp_write_meta(dp, &meta) == 0, "write meta");
	rc = sn_pinned_read_meta(dir, &got);
	CHECK(t, rc == 0 && !memcmp(&meta, &got,
				    offsetof(struct sn_meta, state_version)),
	      "pinned meta differs: %d", rc);
	CHECK(t, got.state_version == SN_STATE_VERSION &&
			 got.l4_stride == image->constants.l4_stride,
	      "sn_meta lacks the state fields: version %u stride %u",
	      got.state_version, got.l4_stride);

	/* Count something, then read it through both paths. */
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame,
		    .data_size_in = (uint32_t)len, .repeat = 3);
	rc = bpf_prog_test_run_opts(sn_dp_prog_fd(dp), &opts);
	CHECK(t, rc == 0 && opts.retval == XDP_DROP, "test run: %d %u", rc,
	      opts.retval);
	rc = sn_dp_read_counters(dp, mine, SN_RULE_FIRST + 1);
	CHECK(t, rc == 0, "read counters: %d", rc);
	rc = sn_pinned_read_counters(dir, pinned, SN_RULE_FIRST + 1);
	CHECK(t, rc == 0, "read pinned counters: %d", rc);
	CHECK(t, !memcmp(mine, pinned, sizeof(mine)),
	      "pinned counters differ");
	CHECK(t, pinned[SN_RULE_FIRST].packets == 3 &&
			 pinned[SN_RULE_FIRST].bytes == 3 * len,
	      "rule counter: %llu packets %llu bytes",
	      (unsigned long long)pinned[SN_RULE_FIRST].packets,
	      (unsigned long long)pinned[SN_RULE_FIRST].bytes);

	/* The pinned link keeps enforcing after the loader is gone. */
	sn_dp_close(dp);
	dp = NULL;
	CHECK(t, xdp_prog_on(ifindex, NULL) == id,
	      "program left the interface when the loader closed");

	rc = sn_pinned_detach(dir, err, sizeof(err));
	CHECK(t, rc == 0, "pinned detach: %d %s", rc, err);
	CHECK(t, xdp_prog_on(ifindex, NULL) == 0,
	      "program still attached after detach");
	CHECK(t, access(dir, F_OK) != 0, "pin directory still there");
	rc = sn_pinned_detach(dir, err, sizeof(err));
	CHECK(t, rc == -ENOENT, "detach of a missing dir: %d", rc);
out:
	sn_dp_close(dp);
}

/*
 * Generic mode, and a lost link pin while the loader still holds the
 * link: detach must find the link by program and take it off anyway.
 */
static void test_lost_link_pin(struct t *t, const struct sn_image *image,
			       const char *dir, int ifindex)
{
	struct sn_dataplane *dp = NULL;
	enum sn_attach_mode mode = 0;
	char err[512] = "", path[512];
	uint8_t qmode = 0;
	int rc;

	if (load(t, image, &dp))
		goto out;
	rc = sn_dp_attach(dp, ifindex, SN_XDP_MODE_GENERIC, &mode, err,
			  sizeof(err));
	CHECK(t, rc == 0 && mode == SN_ATTACH_GENERIC, "attach generic: %d %s",
	      rc, err);
	CHECK(t, xdp_prog_on(ifindex, &qmode) == prog_id(sn_dp_prog_fd(dp)) &&
			 qmode == XDP_ATTACHED_SKB,
	      "not attached in generic (skb) mode");
	rc = sn_dp_pin(dp, dir, err, sizeof(err));
	CHECK(t, rc == 0, "pin: %d %s", rc, err);
	snprintf(path, sizeof(path), "%s/link", dir);
	CHECK(t, unlink(path) == 0, "unlink link pin");

	rc = sn_pinned_detach(dir, err, sizeof(err));
	CHECK(t, rc == 0, "detach without link pin: %d %s", rc, err);
	CHECK(t, xdp_prog_on(ifindex, NULL) == 0,
	      "program still attached although its link pin was lost");
out:
	sn_dp_close(dp);
}

/*
 * A device without native XDP (ifb or bridge): NATIVE is refused with a reason,
 * AUTO falls back to generic and says so.
 */
static void test_auto_fallback(struct t *t, const struct sn_image *image,
			       int ifindex)
{
	struct sn_dataplane *dp = NULL;
	enum sn_attach_mode mode = 0;
	char err[512] = "";
	uint8_t qmode = 0;
	int rc;

	if (load(t, image, &dp))
		goto out;
	rc = sn_dp_attach(dp, ifindex, SN_XDP_MODE_NATIVE, &mode, err,
			  sizeof(err));
	CHECK(t, rc == -EOPNOTSUPP && strstr(err, "native"),
	      "native without driver support: %d %s", rc, err);
	rc = sn_dp_attach(dp, ifindex, SN_XDP_MODE_AUTO, &mode, err,
			  sizeof(err));
	CHECK(t, rc == 0 && mode == SN_ATTACH_GENERIC,
	      "auto without driver support: %d mode %d %s", rc, mode, err);
	CHECK(t, xdp_prog_on(ifindex, &qmode) == prog_id(sn_dp_prog_fd(dp)) &&
			 qmode == XDP_ATTACHED_SKB,
	      "auto without driver support is not attached in generic mode");
out:
	/* Not pinned: closing the link takes the program off. */
	sn_dp_close(dp);
	CHECK(t, xdp_prog_on(ifindex, NULL) == 0,
	      "unpinned link outlived sn_dp_close");
}

/* A half-removed directory is fine; a foreign entry is reported. */
static void test_partial_dirs(struct t *t, const struct sn_image *image,
			      const char *dir)
{
	struct sn_dataplane *dp = NULL;
	char err[512] = "", path[512];
	int rc;

	if (load(t, image, &dp))
		goto out;
	rc = sn_dp_pin(dp, dir, err, sizeof(err));
	CHECK(t, rc == 0, "pin: %d %s", rc, err);
	snprintf(path, sizeof(path), "%s/sn_ports", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/prog", dir);
	unlink(path);
	rc = sn_pinned_detach(dir, err, sizeof(err));
	CHECK(t, rc == 0, "detach of a partial dir: %d %s", rc, err);

	rc = sn_dp_pin(dp, dir, err, sizeof(err));
	CHECK(t, rc == 0, "pin again: %d %s", rc, err);
	snprintf(path, sizeof(path), "%s/foreign", dir);
	CHECK(t, mkdir(path, 0700) == 0, "mkdir foreign");
	rc = sn_pinned_detach(dir, err, sizeof(err));
	CHECK(t, rc == -ENOTEMPTY, "detach with a foreign entry: %d %s", rc,
	      err);
	rmdir(path);
	rmdir(dir);
out:
	sn_dp_close(dp);
}

int main(void)
{
	struct t t = { 0 };
	struct sn_ctx ctx;
	struct sn_image *image = NULL;
	char root[128], dir[160], err[512] = "";
	struct sn_dataplane *probe = NULL;
	int ifa, ifb, ifd, rc;

	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF, netns)\n");
		return SKIP;
	}
	if (unshare(CLONE_NEWNET)) {
		printf("SKIP: cannot create a network namespace: %s\n",
		       strerror(errno));
		return SKIP;
	}
	/* The namespace is ours alone: the veth pair dies with the process. */
	if (system("ip link add sn-a type veth peer name sn-b && "
		   "ip link set sn-a up && ip link set sn-b up")) {
		printf("SKIP: cannot create a veth pair (iproute2?)\n");
		return SKIP;
	}
	ifa = (int)if_nametoindex("sn-a");
	ifb = (int)if_nametoindex("sn-b");
	/* Without native XDP: ifb, else a bridge, whichever this kernel has. */
	if (system("ip link add sn-d type ifb 2>/dev/null || "
		   "ip link add sn-d type bridge") == 0)
		system("ip link set sn-d up");
	ifd = (int)if_nametoindex("sn-d");

	sn_ctx_init(&ctx);
	rc = sn_compile_text(&ctx, "policy", policy, strlen(policy), NULL,
			     &image);
	CHECK(&t, rc == 0, "compile: %d", rc);
	if (rc)
		goto out;
	rc = sn_dp_load(image, &probe, err, sizeof(err));
	sn_dp_close(probe);
	if (rc == -EPERM) {
		printf("SKIP: cannot load BPF programs: %s\n", err);
		sn_ctx_free(&ctx);
		return SKIP;
	}

	snprintf(root, sizeof(root), "/sys/fs/bpf/47sentry-test-%d",
		 (int)getpid());
	snprintf(dir, sizeof(dir), "%s/sn-a", root);
	test_cycle(&t, image, dir, ifa);
	snprintf(dir, sizeof(dir), "%s/sn-b", root);
	test_lost_link_pin(&t, image, dir, ifb);
	if (ifd)
		test_auto_fallback(&t, image, ifd);
	else
		printf("note: no device without native XDP, AUTO fallback untested\n");
	snprintf(dir, sizeof(dir), "%s/partial", root);
	test_partial_dirs(&t, image, dir);
	/* Leave nothing in bpffs, whatever failed above. */
	snprintf(dir, sizeof(dir), "%s/sn-a", root);
	sn_pinned_detach(dir, NULL, 0);
	snprintf(dir, sizeof(dir), "%s/sn-b", root);
	sn_pinned_detach(dir, NULL, 0);
	CHECK(&t, rmdir(root) == 0, "pin root not empty: %s", strerror(errno));
out:
	sn_ctx_free(&ctx);
	printf("%d checks, %d failed\n", t.checks, t.failures);
	return t.failures ? 1 : 0;
}

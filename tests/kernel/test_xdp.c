/*
 * The real XDP program against crafted frames (BPF_PROG_TEST_RUN).
 *
 * Each policy below is compiled from text with the real compiler, loaded
 * and populated with sn_dp_load/sn_dp_apply exactly as sentryd does (no
 * attach), and every frame is checked three ways:
 *
 *  - the XDP verdict and the one counter that moved (packets +1, bytes +
 *    frame length, every other counter unchanged) equal the expectation
 *    written in the case table;
 *  - for IP frames that are not malformed, the kernel's verdict and rule
 *    equal sn_eval_image() (the image walked as the program walks it) and
 *    sn_eval_policy() (the semantics of SPEC.md applied to the rules);
 *  - every `expect` line of the policy holds in the kernel too.
 *
 * Without root or BPF the test skips (exit 77) with a one-line reason.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/pkt.h"

#define SKIP 77

struct t {
	int checks, failures;
	const char *policy; /* name of the policy under test, for messages */
};

#define CHECK(t, cond, ...)                                                \
	do {                                                               \
		(t)->checks++;                                             \
		if (!(cond)) {                                             \
			(t)->failures++;                                   \
			fprintf(stderr, "FAIL %s:%d [%s] ", __FILE__,      \
				__LINE__, (t)->policy);                    \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
		}                                                          \
	} while (0)

/* A frame and what must happen to it. */
struct tcase {
	const char *name;
	struct pkt_spec pkt;
	uint32_t action; /* XDP_PASS or XDP_DROP */
	uint32_t rule;   /* the counter that must count it */
};

#define PASS XDP_PASS
#define DROP XDP_DROP
#define MALFORMED SN_RULE_MALFORMED
#define NON_IP SN_RULE_NON_IP
#define DEF4 SN_RULE_DEFAULT_V4
#define DEF6 SN_RULE_DEFAULT_V6

#define TCP PKT_IPPROTO_TCP
#define UDP PKT_IPPROTO_UDP
#define ICMP PKT_IPPROTO_ICMP
#define ICMP6 PKT_IPPROTO_ICMPV6
#define HBH PKT_IPPROTO_HOPOPTS
#define RT PKT_IPPROTO_ROUTING
#define DST PKT_IPPROTO_DSTOPTS
#define FRAG PKT_IPPROTO_FRAGMENT
#define AH PKT_IPPROTO_AH

#define ETH 14
#define IP4 20
#define IP6 40

/* ---- policy A: a realistic mix, IPv4 default allow, IPv6 default block --- */

/* Rule ids are assigned in source order from SN_RULE_FIRST. */
enum {
	A_NET = SN_RULE_FIRST, /* block from 203.0.113.0/24 */
	A_HOST,                /* allow from 203.0.113.7 */
	A_SSH,                 /* block to tcp port 22 */
	A_OFFICE_SSH,          /* allow from { office } to tcp port 22 */
	A_ALWAYS,              /* always block from 192.0.2.66 */
	A_LOSER,               /* allow from 192.0.2.66 to tcp port 22 */
	A_V6_RANGE,            /* block from 2001:db8:bad::/48 to udp 5000-5999 */
	A_ICMPV6,              /* allow to icmpv6 */
	A_V4_RANGE,            /* block from 10.7.0.0/16 to udp 5000-5999 */
	A_V4_MDNS,             /* allow from 10.7.0.0/16 to udp port 5353 */
	A_ICMP,                /* block from 10.9.0.0/16 to icmp */
	A_GRE,                 /* block from 10.8.0.0/16 to proto 47 */
	A_TCP,                 /* block from 10.6.0.0/16 to tcp */
	A_HTTPS,               /* allow from 10.6.0.0/16 to tcp port 443 */
};

static const char policy_a[] =
	"# IPv4 defaults to allow (not written), IPv6 to block.\n"
	"default ipv6 block\n"
	"block from 203.0.113.0/24\n"
	"allow from 203.0.113.7\n"
	"block to tcp port 22\n"
	"allow from { 198.51.100.0/24, 2001:db8:1::/48 } to tcp port 22\n"
	"always block from 192.0.2.66\n"
	"allow from 192.0.2.66 to tcp port 22\n"
	"block from 2001:db8:bad::/48 to udp port 5000-5999\n"
	"allow to icmpv6\n"
	"block from 10.7.0.0/16 to udp port 5000-5999\n"
	"allow from 10.7.0.0/16 to udp port 5353\n"
	"block from 10.9.0.0/16 to icmp\n"
	"block from 10.8.0.0/16 to proto 47\n"
	"block from 10.6.0.0/16 to tcp\n"
	"allow from 10.6.0.0/16 to tcp port 443\n"
	"\n"
	"expect block from 203.0.113.9 to tcp port 80\n"
	"expect allow from 203.0.113.7 to tcp port 22\n"
	"expect block from 192.0.2.66 to tcp port 22\n"
	"expect allow from 198.51.100.20 to tcp port 22\n"
	"expect block from 2001:db8:5::1 to tcp port 443\n"
	"expect allow from 2001:db8:5::1 to icmpv6\n"
	"expect block from 10.6.0.1 to tcp fragment\n"
	"expect allow from 192.0.2.1 to tcp fragment\n"
	"expect allow from 192.0.2.1\n";

static const struct tcase cases_a[] = {
	/* Prefixes, ports, ranges, protocols (IPv4). */
	{ "blocked /24", { .src = "203.0.113.9", .proto = TCP, .dport = 80 },
	  DROP, A_NET },
	{ "allowed /32 inside the blocked /24",
	  { .src = "203.0.113.7", .proto = TCP, .dport = 80 }, PASS, A_HOST },
	{ "/32 beats a port rule on /0",
	  { .src = "203.0.113.7", .proto = TCP, .dport = 22 }, PASS, A_HOST },
	{ "tcp port block", { .src = "192.0.2.1", .proto = TCP, .dport = 22 },
	  DROP, A_SSH },
	{ "tcp port allowed from the office",
	  { .src = "198.51.100.20", .proto = TCP, .dport = 22 }, PASS,
	  A_OFFICE_SSH },
	{ "other tcp port: ipv4 default allow",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 80 }, PASS, DEF4 },
	{ "udp to the ssh port is not tcp",
	  { .src = "192.0.2.1", .proto = UDP, .dport = 22 }, PASS, DEF4 },
	{ "always tier beats a more specific allow",
	  { .src = "192.0.2.66", .proto = TCP, .dport = 22 }, DROP, A_ALWAYS },
	{ "udp range, inside", { .src = "10.7.1.1", .proto = UDP, .dport = 5500 },
	  DROP, A_V4_RANGE },
	{ "udp range, low edge", { .src = "10.7.1.1", .proto = UDP, .dport = 5000 },
	  DROP, A_V4_RANGE },
	{ "udp range, high edge", { .src = "10.7.1.1", .proto = UDP, .dport = 5999 },
	  DROP, A_V4_RANGE },
	{ "udp range, below", { .src = "10.7.1.1", .proto = UDP, .dport = 4999 },
	  PASS, DEF4 },
	{ "udp range, above", { .src = "10.7.1.1", .proto = UDP, .dport = 6000 },
	  PASS, DEF4 },
	{ "single port beats the range around it",
	  { .src = "10.7.1.1", .proto = UDP, .dport = 5353 }, PASS, A_V4_MDNS },
	{ "icmp rule", { .src = "10.9.0.1", .proto = ICMP }, DROP, A_ICMP },
	{ "icmp rule leaves tcp alone",
	  { .src = "10.9.0.1", .proto = TCP, .dport = 80 }, PASS, DEF4 },
	{ "proto-only rule (GRE)", { .src = "10.8.0.1", .proto = 47 }, DROP,
	  A_GRE },
	{ "proto-only rule leaves udp alone",
	  { .src = "10.8.0.1", .proto = UDP, .dport = 53 }, PASS, DEF4 },
	{ "tcp proto block", { .src = "10.6.0.1", .proto = TCP, .dport = 80 },
	  DROP, A_TCP },
	{ "port allow beats the proto block",
	  { .src = "10.6.0.1", .proto = TCP, .dport = 443 }, PASS, A_HTTPS },

	/* IPv6. */
	{ "ipv6 default block", { .src = "2001:db8:5::1", .proto = TCP, .dport = 80 },
	  DROP, DEF6 },
	{ "icmpv6 allowed", { .src = "2001:db8:5::1", .proto = ICMP6 }, PASS,
	  A_ICMPV6 },
	{ "ipv6 tcp port block", { .src = "2001:db8:5::1", .proto = TCP, .dport = 22 },
	  DROP, A_SSH },
	{ "ipv6 office ssh", { .src = "2001:db8:1::5", .proto = TCP, .dport = 22 },
	  PASS, A_OFFICE_SSH },
	{ "ipv6 udp range", { .src = "2001:db8:bad::1", .proto = UDP, .dport = 5001 },
	  DROP, A_V6_RANGE },
	{ "ipv6 udp outside the range",
	  { .src = "2001:db8:bad::1", .proto = UDP, .dport = 6000 }, DROP, DEF6 },
	{ "ESP is a protocol without ports", { .src = "2001:db8:5::1", .proto = 50 },
	  DROP, DEF6 },
	{ "no-next-header", { .src = "2001:db8:5::1", .proto = 59 }, DROP, DEF6 },
	{ "IPv4-mapped IPv6 source", { .src = "::ffff:192.0.2.1", .proto = ICMP6 },
	  DROP, MALFORMED },
	{ "IPv4-mapped IPv6 source, /96 edge",
	  { .src = "::fffe:c000:201", .proto = ICMP6 }, PASS, A_ICMPV6 },

	/* VLAN. */
	{ "802.1Q, tcp port block",
	  { .tpids = { PKT_TPID_8021Q }, .src = "192.0.2.1", .proto = TCP, .dport = 22 },
	  DROP, A_SSH },
	{ "802.1Q, default allow",
	  { .tpids = { PKT_TPID_8021Q }, .src = "192.0.2.1", .proto = TCP, .dport = 80 },
	  PASS, DEF4 },
	{ "QinQ (802.1ad outer), /32 allow",
	  { .tpids = { PKT_TPID_8021AD, PKT_TPID_8021Q }, .src = "203.0.113.7",
	    .proto = TCP, .dport = 22 },
	  PASS, A_HOST },
	{ "QinQ, ipv6",
	  { .tpids = { PKT_TPID_8021AD, PKT_TPID_8021Q }, .src = "2001:db8:5::1",
	    .proto = TCP, .dport = 22 },
	  DROP, A_SSH },
	{ "double 802.1Q", { .tpids = { PKT_TPID_8021Q, PKT_TPID_8021Q }, .src = "203.0.113.9", .proto = UDP, .dport = 53 },
	  DROP, A_NET },
	{ "three VLAN tags",
	  { .tpids = { PKT_TPID_8021AD, PKT_TPID_8021Q, PKT_TPID_8021Q },
	    .src = "192.0.2.1", .proto = TCP, .dport = 80 },
	  DROP, MALFORMED },
	{ "VLAN tag cut short",
	  { .tpids = { PKT_TPID_8021Q }, .src = "192.0.2.1", .proto = TCP, .cut = ETH + 2 },
	  DROP, MALFORMED },

	/* Not IP. */
	{ "ARP", { .ethertype = 0x0806 }, PASS, NON_IP },
	{ "LLDP", { .ethertype = 0x88cc }, PASS, NON_IP },
	{ "ARP in a VLAN", { .tpids = { PKT_TPID_8021Q }, .ethertype = 0x0806 },
	  PASS, NON_IP },

	/* Truncated and invalid headers. */
	{ "IPv4 EtherType, no IP header",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 80, .cut = ETH }, DROP,
	  MALFORMED },
	{ "IPv4 header cut short",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 80, .cut = ETH + IP4 - 1 },
	  DROP, MALFORMED },
	{ "IPv4 version 5", { .src = "192.0.2.1", .proto = TCP, .dport = 80, .version = 5 },
	  DROP, MALFORMED },
	{ "IPv4 ihl 4", { .src = "192.0.2.1", .proto = TCP, .dport = 80, .ihl_override = 4 },
	  DROP, MALFORMED },
	{ "IPv4 options beyond the frame",
	  { .src = "192.0.2.1", .proto = UDP, .dport = 80, .ihl_override = 15 },
	  DROP, MALFORMED },
	{ "IPv4 tot_len below the header",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 80, .tot_len = 19 },
	  DROP, MALFORMED },
	{ "TCP header cut short",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 80, .cut = ETH + IP4 + 19 },
	  DROP, MALFORMED },
	{ "UDP header cut short",
	  { .src = "192.0.2.1", .proto = UDP, .dport = 80, .cut = ETH + IP4 + 7 },
	  DROP, MALFORMED },
	{ "ICMP header cut short",
	  { .src = "10.1.1.1", .proto = ICMP, .cut = ETH + IP4 + 3 }, DROP,
	  MALFORMED },
	{ "ICMP with just 4 bytes", { .src = "10.1.1.1", .proto = ICMP, .cut = ETH + IP4 + 4 },
	  PASS, DEF4 },
	{ "IPv6 header cut short",
	  { .src = "2001:db8:5::1", .proto = ICMP6, .cut = ETH + IP6 - 1 }, DROP,
	  MALFORMED },
	{ "IPv6 version 4", { .src = "2001:db8:5::1", .proto = ICMP6, .version = 4 },
	  DROP, MALFORMED },
	{ "ICMPv6 header cut short",
	  { .src = "2001:db8:5::1", .proto = ICMP6, .cut = ETH + IP6 + 3 }, DROP,
	  MALFORMED },
	{ "IPv6 TCP header cut short",
	  { .src = "2001:db8:1::5", .proto = TCP, .dport = 22, .cut = ETH + IP6 + 19 },
	  DROP, MALFORMED },
	{ "IPv6 extension header cut short",
	  { .src = "2001:db8:5::1", .proto = ICMP6, .ext = { HBH }, .n_ext = 1,
	    .cut = ETH + IP6 + 7 },
	  DROP, MALFORMED },

	/* IPv4 options and fragments. */
	{ "IPv4 with 40 bytes of options, port block",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 22, .ip_opts = 40 }, DROP,
	  A_SSH },
	{ "IPv4 with options, /32 allow",
	  { .src = "203.0.113.7", .proto = TCP, .dport = 22, .ip_opts = 8 }, PASS,
	  A_HOST },
	{ "first fragment carries the blocked port",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 22, .more_frags = true },
	  DROP, A_SSH },
	{ "non-first fragment: no port, default",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 22, .frag = 185 }, PASS,
	  DEF4 },
	{ "non-first fragment: proto rule applies",
	  { .src = "10.6.0.1", .proto = TCP, .dport = 443, .frag = 185 }, DROP,
	  A_TCP },
	{ "first fragment: port allow beats proto block",
	  { .src = "10.6.0.1", .proto = TCP, .dport = 443, .more_frags = true },
	  PASS, A_HTTPS },
	{ "non-first fragment: prefix rule applies",
	  { .src = "203.0.113.9", .proto = UDP, .dport = 53, .frag = 3 }, DROP,
	  A_NET },
	{ "non-first fragment without L4 bytes",
	  { .src = "192.0.2.1", .proto = UDP, .frag = 3, .cut = ETH + IP4 },
	  PASS, DEF4 },
	{ "TCP fragment at offset 8 bytes (RFC 1858)",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 80, .frag = 1 }, DROP,
	  MALFORMED },
	{ "UDP fragment at offset 8 bytes is fine",
	  { .src = "192.0.2.1", .proto = UDP, .dport = 80, .frag = 1 }, PASS,
	  DEF4 },
	{ "tiny first fragment (TCP header split)",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 22, .more_frags = true,
	    .cut = ETH + IP4 + 8 },
	  DROP, MALFORMED },

	/* IPv6 extension headers. */
	{ "hop-by-hop + destination options + fragment, port block",
	  { .src = "2001:db8:5::1", .proto = TCP, .dport = 22, .ext = { HBH, DST },
	    .n_ext = 2, .more_frags = true },
	  DROP, A_SSH },
	{ "hop-by-hop + routing + destination options + fragment, office",
	  { .src = "2001:db8:1::5", .proto = TCP, .dport = 22,
	    .ext = { HBH, RT, DST, FRAG }, .n_ext = 4, .more_frags = true },
	  PASS, A_OFFICE_SSH },
	{ "atomic fragment (offset 0, no MF) is judged in full",
	  { .src = "2001:db8:1::5", .proto = TCP, .dport = 22, .v6_frag_hdr = true },
	  PASS, A_OFFICE_SSH },
	{ "AH", { .src = "2001:db8:1::5", .proto = TCP, .dport = 22, .ext = { AH }, .n_ext = 1 },
	  PASS, A_OFFICE_SSH },
	{ "ipv6 non-first fragment: no port",
	  { .src = "2001:db8:1::5", .proto = TCP, .dport = 22, .ext = { HBH },
	    .n_ext = 1, .frag = 100 },
	  DROP, DEF6 },
	{ "ipv6 non-first fragment: proto rule",
	  { .src = "2001:db8:5::1", .proto = ICMP6, .frag = 100, .more_frags = true },
	  PASS, A_ICMPV6 },
	{ "ipv6 non-first fragment: the port range does not apply",
	  { .src = "2001:db8:bad::1", .proto = UDP, .dport = 5001, .frag = 100 },
	  DROP, DEF6 },
	{ "ipv6 TCP fragment at offset 8 bytes",
	  { .src = "2001:db8:5::1", .proto = TCP, .dport = 80, .frag = 1 }, DROP,
	  MALFORMED },
	{ "8 extension headers are walked",
	  { .src = "2001:db8:5::1", .proto = ICMP6,
	    .ext = { HBH, DST, DST, DST, DST, DST, DST, DST }, .n_ext = 8 },
	  PASS, A_ICMPV6 },
	{ "9 extension headers",
	  { .src = "2001:db8:5::1", .proto = ICMP6,
	    .ext = { HBH, DST, DST, DST, DST, DST, DST, DST, DST }, .n_ext = 9 },
	  DROP, MALFORMED },
	{ "8 extension headers, the last a non-first fragment",
	  { .src = "2001:db8:5::1", .proto = ICMP6,
	    .ext = { HBH, DST, DST, DST, DST, DST, DST, FRAG }, .n_ext = 8,
	    .frag = 7 },
	  PASS, A_ICMPV6 },
};

/* ---- policy B: IPv4 default block, IPv6 default allow -------------------- */

enum {
	B_HTTPS = SN_RULE_FIRST, /* allow from 192.0.2.0/24 to tcp port 443 */
	B_BAD,                   /* block from 2001:db8:bad::/48 */
};

static const char policy_b[] = "default ipv4 block\n"
			       "default ipv6 allow\n"
			       "allow from 192.0.2.0/24 to tcp port 443\n"
			       "block from 2001:db8:bad::/48\n"
			       "expect block from 198.51.100.1 to tcp port 443\n"
			       "expect allow from 2001:db8::1 to udp port 53\n";

static const struct tcase cases_b[] = {
	{ "ipv4 default block", { .src = "198.51.100.1", .proto = TCP, .dport = 443 },
	  DROP, DEF4 },
	{ "ipv4 allowed port", { .src = "192.0.2.5", .proto = TCP, .dport = 443 },
	  PASS, B_HTTPS },
	{ "ipv4 other port of the allowed net",
	  { .src = "192.0.2.5", .proto = TCP, .dport = 444 }, DROP, DEF4 },
	{ "ipv6 default allow", { .src = "2001:db8::1", .proto = UDP, .dport = 53 },
	  PASS, DEF6 },
	{ "ipv6 blocked /48", { .src = "2001:db8:bad::1", .proto = UDP, .dport = 53 },
	  DROP, B_BAD },
	{ "ARP still passes", { .ethertype = 0x0806 }, PASS, NON_IP },
};

/* ---- policy C: no port rule, so the program has no port path at all ----- */

enum {
	C_NET = SN_RULE_FIRST, /* allow from 192.0.2.0/24 */
	C_ICMPV6,              /* allow from 2001:db8::/32 to icmpv6 */
	C_ICMP,                /* always allow to icmp */
};

static const char policy_c[] = "default block\n"
			       "allow from 192.0.2.0/24\n"
			       "allow from 2001:db8::/32 to icmpv6\n"
			       "always allow to icmp\n";

static const struct tcase cases_c[] = {
	{ "allowed net", { .src = "192.0.2.1", .proto = TCP, .dport = 22 }, PASS,
	  C_NET },
	{ "ipv4 default block", { .src = "198.51.100.1", .proto = TCP, .dport = 22 },
	  DROP, DEF4 },
	{ "always icmp", { .src = "198.51.100.1", .proto = ICMP }, PASS, C_ICMP },
	{ "icmpv6", { .src = "2001:db8::1", .proto = ICMP6 }, PASS, C_ICMPV6 },
	{ "ipv6 default block", { .src = "2001:db8::1", .proto = TCP, .dport = 80 },
	  DROP, DEF6 },
	{ "TCP still needs its header",
	  { .src = "192.0.2.1", .proto = TCP, .dport = 22, .cut = ETH + IP4 + 10 },
	  DROP, MALFORMED },
};

/* ---- machinery ---------------------------------------------------------- */

struct loaded {
	struct sn_ctx ctx;
	struct sn_policy *policy;
	struct sn_image *image;
	struct sn_dataplane *dp;
};

/* Compile and load; SKIP when BPF is not available to us. */
static int load_policy(struct t *t, const char *name, const char *text,
		       struct loaded *l)
{
	char err[512] = "";
	int rc;

	memset(l, 0, sizeof(*l));
	sn_ctx_init(&l->ctx);
	rc = sn_compile_text(&l->ctx, name, text, strlen(text), &l->policy,
			     &l->image);
	if (rc) {
		sn_diags_render_text(stderr, &l->ctx.diags, &l->ctx.sources);
		CHECK(t, 0, "compile failed: %d", rc);
		return rc;
	}
	rc = sn_dp_load(l->image, &l->dp, err, sizeof(err));
	if (rc == -EPERM) {
		printf("SKIP: cannot load BPF programs: %s\n", err);
		return SKIP;
	}
	if (rc) {
		CHECK(t, 0, "sn_dp_load: %d %s", rc, err);
		return rc;
	}
	rc = sn_dp_apply(l->dp, l->image, err, sizeof(err));
	CHECK(t, rc == 0, "sn_dp_apply: %d %s", rc, err);
	return rc;
}

static void unload(struct loaded *l)
{
	sn_dp_close(l->dp);
	sn_ctx_free(&l->ctx);
}

/*
 * Run one frame.  *rule gets the one counter that moved (or -1 with a
 * failed check when not exactly one moved by 1 packet / len bytes).
 */
static int run_frame(struct t *t, const struct loaded *l, const char *what,
		     const uint8_t *frame, size_t len, uint32_t *action,
		     int64_t *rule)
{
	uint32_t n = l->image->n_rules;
	struct sn_counter *before = calloc(n, sizeof(*before));
	struct sn_counter *after = calloc(n, sizeof(*after));
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame,
		    .data_size_in = (uint32_t)len, .repeat = 1);
	int rc, moved = 0;

	*rule = -1;
	if (!before || !after) {
		CHECK(t, 0, "out of memory");
		free(before);
		free(after);
		return -ENOMEM;
	}
	rc = sn_dp_read_counters(l->dp, before, n);
	if (!rc)
		rc = bpf_prog_test_run_opts(sn_dp_prog_fd(l->dp), &opts);
	if (!rc)
		rc = sn_dp_read_counters(l->dp, after, n);
	CHECK(t, rc == 0, "%s: test run: %d", what, rc);
	*action = opts.retval;
	for (uint32_t id = 0; !rc && id < n; id++) {
		if (!memcmp(&before[id], &after[id], sizeof(before[id])))
			continue;
		moved++;
		*rule = id;
		CHECK(t, after[id].packets - before[id].packets == 1 &&
				 after[id].bytes - before[id].bytes == len,
		      "%s: rule %u counted %llu packets / %llu bytes, want 1 / %zu",
		      what, id,
		      (unsigned long long)(after[id].packets - before[id].packets),
		      (unsigned long long)(after[id].bytes - before[id].bytes),
		      len);
	}
	if (!rc && moved != 1) {
		CHECK(t, 0, "%s: %d counters moved, want exactly 1", what, moved);
		*rule = -1;
	}
	free(before);
	free(after);
	return rc;
}

static const char *action_name(uint32_t a)
{
	switch (a) {
	case XDP_ABORTED:
		return "ABORTED";
	case XDP_DROP:
		return "DROP";
	case XDP_PASS:
		return "PASS";
	default:
		return "?";
	}
}

/* The kernel's outcome must be what both reference evaluators say. */
static void check_evaluators(struct t *t, const struct loaded *l,
			     const char *what, const struct sn_packet *facts,
			     uint32_t action, int64_t rule)
{
	struct sn_eval_result img, pol;
	uint8_t verdict = action == XDP_PASS ? SN_VERDICT_ALLOW :
					       SN_VERDICT_BLOCK;

	sn_eval_image(l->image, facts, &img);
	sn_eval_policy(l->policy, facts, &pol);
	CHECK(t, img.verdict == verdict && img.rule_id == rule,
	      "%s: kernel %s rule %lld, sn_eval_image %s rule %u", what,
	      action_name(action), (long long)rule,
	      img.verdict == SN_VERDICT_ALLOW ? "allow" : "block", img.rule_id);
	CHECK(t, pol.verdict == verdict && pol.rule_id == rule,
	      "%s: kernel %s rule %lld, sn_eval_policy %s rule %u", what,
	      action_name(action), (long long)rule,
	      pol.verdict == SN_VERDICT_ALLOW ? "allow" : "block", pol.rule_id);
}

static void run_cases(struct t *t, const struct loaded *l,
		      const struct tcase *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct tcase *c = &cases[i];
		uint8_t frame[PKT_MAX];
		struct sn_packet facts;
		size_t len = pkt_build(&c->pkt, frame, &facts);
		uint32_t action = 0;
		int64_t rule;

		CHECK(t, len >= ETH, "%s: bad packet spec", c->name);
		if (len < ETH ||
		    run_frame(t, l, c->name, frame, len, &action, &rule))
			continue;
		CHECK(t, action == c->action && rule == c->rule,
		      "%s: got %s at rule %lld, want %s at rule %u", c->name,
		      action_name(action), (long long)rule,
		      action_name(c->action), c->rule);
		if (c->pkt.src && c->rule != MALFORMED)
			check_evaluators(t, l, c->name, &facts, action, rule);
	}
}

/* Every expect line of the policy, run through the kernel. */
static void run_expects(struct t *t, const struct loaded *l)
{
	for (size_t i = 0; i < l->policy->n_expects; i++) {
		const struct sn_expect *e = &l->policy->expects[i];
		char src[64];
		struct sn_packet facts, built;
		struct pkt_spec s = { 0 };
		uint8_t frame[PKT_MAX];
		uint32_t action = 0;
		int64_t rule;
		size_t len;

		sn_expect_packet(e, &facts);
		inet_ntop(facts.family == SN_FAMILY_V4 ? AF_INET : AF_INET6,
			  facts.src, src, sizeof(src));
		s.src = src;
		s.proto = facts.proto;
		s.dport = facts.has_port ? facts.dport : 0;
		/* A fragment expect: a non-first fragment, no port visible. */
		if (e->fragment)
			s.frag = 100;
		len = pkt_build(&s, frame, &built);
		if (run_frame(t, l, e->text, frame, len, &action, &rule))
			continue;
		CHECK(t, action == (e->verdict == SN_VERDICT_ALLOW ? XDP_PASS :
								     XDP_DROP),
		      "expect line %u (%s): kernel says %s", e->loc.line,
		      e->text, action_name(action));
		check_evaluators(t, l, e->text, &built, action, rule);
	}
}

static int test_policy(struct t *t, const char *name, const char *text,
		       const struct tcase *cases, size_t n, bool portless)
{
	struct loaded l;
	int rc;

	t->policy = name;
	rc = load_policy(t, name, text, &l);
	if (rc == SKIP)
		return SKIP;
	if (!rc) {
		if (portless)
			CHECK(t, l.image->constants.port_tables == 0,
			      "expected a policy without port tables, got 0x%x",
			      l.image->constants.port_tables);
		run_cases(t, &l, cases, n);
		run_expects(t, &l);
	}
	unload(&l);
	return 0;
}

/*
 * Re-applying a changed policy in place: prefixes only the old image had
 * must be gone from the LPM tries (otherwise the old /24 would still
 * match), and a change of generated constants is refused.
 */
static void test_reapply(struct t *t)
{
	static const char moved[] =
		"block from 203.0.114.0/24\n"
		"allow from 203.0.114.7\n"
		"block to tcp port 22\n";
	static const char orig[] =
		"block from 203.0.113.0/24\n"
		"allow from 203.0.113.7\n"
		"block to tcp port 22\n";
	static const char other_l4[] = "block to udp port 53\n";
	struct loaded l;
	struct sn_ctx c2, c3;
	struct sn_policy *p2, *p3;
	struct sn_image *i2, *i3;
	char err[512] = "";
	int rc;

	t->policy = "reapply";
	if (load_policy(t, "orig", orig, &l))
		goto out;
	sn_ctx_init(&c2);
	sn_ctx_init(&c3);
	rc = sn_compile_text(&c2, "moved", moved, strlen(moved), &p2, &i2);
	CHECK(t, rc == 0, "compile moved: %d", rc);
	if (!rc) {
		static const struct tcase after[] = {
			{ "old /24 gone", { .src = "203.0.113.9", .proto = UDP, .dport = 53 },
			  PASS, DEF4 },
			{ "old /32 gone", { .src = "203.0.113.7", .proto = TCP, .dport = 22 },
			  DROP, SN_RULE_FIRST + 2 },
			{ "new /24", { .src = "203.0.114.9", .proto = UDP, .dport = 53 },
			  DROP, SN_RULE_FIRST },
			{ "new /32", { .src = "203.0.114.7", .proto = TCP, .dport = 22 },
			  PASS, SN_RULE_FIRST + 1 },
		};
		struct loaded view = l;

		rc = sn_dp_apply(l.dp, i2, err, sizeof(err));
		CHECK(t, rc == 0, "apply moved: %d %s", rc, err);
		view.policy = p2;
		view.image = i2;
		if (!rc)
			run_cases(t, &view, after, sizeof(after) / sizeof(after[0]));
	}
	rc = sn_compile_text(&c3, "other", other_l4, strlen(other_l4), &p3, &i3);
	CHECK(t, rc == 0, "compile other: %d", rc);
	if (!rc) {
		rc = sn_dp_apply(l.dp, i3, err, sizeof(err));
		CHECK(t, rc == -ESTALE, "apply with other constants: %d %s", rc,
		      err);
	}
	sn_ctx_free(&c2);
	sn_ctx_free(&c3);
out:
	unload(&l);
}

/* Frames shorter than Ethernet cannot even be injected: document it. */
static void test_runt(struct t *t, const struct loaded *l)
{
	uint8_t frame[ETH] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame,
		    .data_size_in = ETH - 1, .repeat = 1);
	int rc = bpf_prog_test_run_opts(sn_dp_prog_fd(l->dp), &opts);

	t->policy = "runt";
	CHECK(t, rc == -EINVAL,
	      "a 13-byte frame was accepted by BPF_PROG_TEST_RUN (%d): add a "
	      "case for packet class 1",
	      rc);
}

int main(void)
{
	struct t t = { 0 };
	struct loaded l;
	int rc;

	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF)\n");
		return SKIP;
	}
	rc = test_policy(&t, "policy-a", policy_a, cases_a,
			 sizeof(cases_a) / sizeof(cases_a[0]), false);
	if (rc == SKIP)
		return SKIP;
	test_policy(&t, "policy-b", policy_b, cases_b,
		    sizeof(cases_b) / sizeof(cases_b[0]), false);
	test_policy(&t, "policy-c", policy_c, cases_c,
		    sizeof(cases_c) / sizeof(cases_c[0]), true);
	test_reapply(&t);
	if (!load_policy(&t, "runt", policy_c, &l))
		test_runt(&t, &l);
	unload(&l);

	printf("%d checks, %d failed\n", t.checks, t.failures);
	return t.failures ? 1 : 0;
}

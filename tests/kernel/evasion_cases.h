/*
 * The evasion suite's one table: a policy and, for every packet class of
 * SPEC.md section 3, frames that try to sneak a blocked source or a blocked
 * port past it (and allowed flows that must still pass).  Two transports
 * use it, so both judge exactly the same bytes:
 *
 *  - tests/kernel/test_evasion.c runs every case through the loaded
 *    program with BPF_PROG_TEST_RUN;
 *  - tests/e2e/evasion.sh sends every case as a real frame over veth from
 *    a namespace (tests/tools/sendframe --case NAME) into sentryd, and
 *    watches what arrives past XDP.
 *
 * Case names are "class/direction[-detail]": shell-safe, unique.
 * Header-only: the Makefile turns every C file under tests/kernel into
 * its own binary.
 */
#ifndef SN_TEST_EVASION_CASES_H
#define SN_TEST_EVASION_CASES_H

#include <linux/bpf.h>

#include "bpf/sentry_abi.h"
#include "tests/kernel/pkt.h"

/* Rule ids are assigned in source order from SN_RULE_FIRST. */
enum {
	EV_BAD4 = SN_RULE_FIRST, /* block from 203.0.113.0/24 */
	EV_BAD6,                 /* block from 2001:db8:bad::/48 */
	EV_SSH,                  /* block to tcp port 22 */
	EV_OFFICE,               /* allow from { office } to tcp port 22 */
	EV_TCP4,                 /* block from 10.6.0.0/16 to tcp */
	EV_TCP6,                 /* block from 2001:db8:6::/48 to tcp */
};

/*
 * Default allow: every way of confusing the parser into "no rule matched"
 * would pass, so a block that holds here is a block that holds.
 */
static const char evasion_policy[] =
	"# tests/kernel/evasion_cases.h: the evasion suite's policy\n"
	"default allow\n"
	"block from 203.0.113.0/24\n"
	"block from 2001:db8:bad::/48\n"
	"block to tcp port 22\n"
	"allow from { 198.51.100.0/24, 2001:db8:1::/48 } to tcp port 22\n"
	"block from 10.6.0.0/16 to tcp\n"
	"block from 2001:db8:6::/48 to tcp\n";

struct evasion_case {
	const char *name;
	const char *what; /* the SPEC.md section 3 class and the point made */
	struct pkt_spec pkt;
	uint32_t action; /* XDP_PASS or XDP_DROP */
	uint32_t rule;   /* the one counter that must count it */
};

/* Sources. */
#define EV_S_BAD4 "203.0.113.9"       /* blocked /24 */
#define EV_S_BAD6 "2001:db8:bad::9"   /* blocked /48 */
#define EV_S_OK4 "192.0.2.10"         /* nothing against it */
#define EV_S_OK6 "2001:db8:5::10"
#define EV_S_OFF4 "198.51.100.20"     /* may reach tcp/22 */
#define EV_S_OFF6 "2001:db8:1::20"
#define EV_S_TCP4 "10.6.0.1"          /* tcp blocked by protocol */
#define EV_S_TCP6 "2001:db8:6::1"

#define EV_PASS XDP_PASS
#define EV_DROP XDP_DROP
#define EV_MALFORMED SN_RULE_MALFORMED
#define EV_NON_IP SN_RULE_NON_IP
#define EV_DEF4 SN_RULE_DEFAULT_V4
#define EV_DEF6 SN_RULE_DEFAULT_V6

#define EV_TCP PKT_IPPROTO_TCP
#define EV_UDP PKT_IPPROTO_UDP
#define EV_ICMP PKT_IPPROTO_ICMP
#define EV_ICMP6 PKT_IPPROTO_ICMPV6
#define EV_HBH PKT_IPPROTO_HOPOPTS
#define EV_RT PKT_IPPROTO_ROUTING
#define EV_DST PKT_IPPROTO_DSTOPTS
#define EV_FRAG PKT_IPPROTO_FRAGMENT
#define EV_AH PKT_IPPROTO_AH
#define EV_Q PKT_TPID_8021Q
#define EV_AD PKT_TPID_8021AD

#define EV_ETH 14
#define EV_IP4 20
#define EV_IP6 40

/* The six flows every encapsulation is tried with. */
#define EV_SIX(cls, desc, ...)                                               \
	{ cls "/blocked-src-v4", desc ": blocked IPv4 source",               \
	  { .src = EV_S_BAD4, .proto = EV_TCP, .dport = 80, __VA_ARGS__ },   \
	  EV_DROP, EV_BAD4 },                                                \
	{ cls "/blocked-src-v6", desc ": blocked IPv6 source",               \
	  { .src = EV_S_BAD6, .proto = EV_UDP, .dport = 53, __VA_ARGS__ },   \
	  EV_DROP, EV_BAD6 },                                                \
	{ cls "/blocked-port-v4", desc ": blocked tcp port, IPv4",           \
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, __VA_ARGS__ },    \
	  EV_DROP, EV_SSH },                                                 \
	{ cls "/blocked-port-v6", desc ": blocked tcp port, IPv6",           \
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, __VA_ARGS__ },    \
	  EV_DROP, EV_SSH },                                                 \
	{ cls "/allowed-v4", desc ": allowed flow on the blocked port, IPv4", \
	  { .src = EV_S_OFF4, .proto = EV_TCP, .dport = 22, __VA_ARGS__ },   \
	  EV_PASS, EV_OFFICE },                                              \
	{ cls "/allowed-v6", desc ": allowed flow on the blocked port, IPv6", \
	  { .src = EV_S_OFF6, .proto = EV_TCP, .dport = 22, __VA_ARGS__ },   \
	  EV_PASS, EV_OFFICE }

static const struct evasion_case evasion_cases[] = {
	/* Class 12: the plain packets every other class is measured against. */
	EV_SIX("plain", "no encapsulation", .cut = 0),

	/* Class 2: VLAN tags are skipped, the inner packet judged. */
	EV_SIX("vlan-8021q", "802.1Q tag", .tpids = { EV_Q }),
	EV_SIX("vlan-8021ad", "802.1ad S-tag alone", .tpids = { EV_AD }),
	EV_SIX("vlan-qinq", "802.1ad + 802.1Q (QinQ)", .tpids = { EV_AD, EV_Q }),
	EV_SIX("vlan-qq", "two 802.1Q tags", .tpids = { EV_Q, EV_Q }),
	{ "vlan-3tags/blocked-src", "a third VLAN tag: malformed, fails closed",
	  { .tpids = { EV_AD, EV_Q, EV_Q }, .src = EV_S_BAD4, .proto = EV_TCP,
	    .dport = 80 },
	  EV_DROP, EV_MALFORMED },
	{ "vlan-3tags/allowed", "a third VLAN tag drops even an allowed flow",
	  { .tpids = { EV_AD, EV_Q, EV_Q }, .src = EV_S_OFF4, .proto = EV_TCP,
	    .dport = 22 },
	  EV_DROP, EV_MALFORMED },
	{ "vlan-cut/blocked-src", "VLAN tag cut short",
	  { .tpids = { EV_Q }, .src = EV_S_BAD4, .proto = EV_TCP, .cut = EV_ETH + 2 },
	  EV_DROP, EV_MALFORMED },

	/* Class 4: IPv4 options are skipped by ihl. */
	{ "ipv4-options/blocked-src", "40 bytes of IPv4 options, blocked source",
	  { .src = EV_S_BAD4, .proto = EV_UDP, .dport = 53, .ip_opts = 40 },
	  EV_DROP, EV_BAD4 },
	{ "ipv4-options/blocked-port", "4 bytes of IPv4 options, blocked port",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .ip_opts = 4 },
	  EV_DROP, EV_SSH },
	{ "ipv4-options/blocked-port-40", "40 bytes of IPv4 options, blocked port",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .ip_opts = 40 },
	  EV_DROP, EV_SSH },
	{ "ipv4-options/allowed", "8 bytes of IPv4 options, allowed flow",
	  { .src = EV_S_OFF4, .proto = EV_TCP, .dport = 22, .ip_opts = 8 },
	  EV_PASS, EV_OFFICE },

	/* Classes 5, 5a, 6: IPv4 fragments. */
	{ "ipv4-frag/first-blocked-port",
	  "first fragment carries the port: blocked, so the rest cannot be "
	  "reassembled",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .more_frags = true },
	  EV_DROP, EV_SSH },
	{ "ipv4-frag/first-blocked-src", "first fragment from a blocked source",
	  { .src = EV_S_BAD4, .proto = EV_UDP, .dport = 53, .more_frags = true },
	  EV_DROP, EV_BAD4 },
	{ "ipv4-frag/later-blocked-src", "non-first fragment from a blocked source",
	  { .src = EV_S_BAD4, .proto = EV_TCP, .dport = 22, .frag = 185 },
	  EV_DROP, EV_BAD4 },
	{ "ipv4-frag/later-proto-rule",
	  "non-first fragment: an L3-only (protocol) rule still applies",
	  { .src = EV_S_TCP4, .proto = EV_TCP, .dport = 443, .frag = 185,
	    .more_frags = true },
	  EV_DROP, EV_TCP4 },
	{ "ipv4-frag/later-blocked-port",
	  "non-first fragment of a blocked-port flow: no port, judged L3-only "
	  "(its first fragment was dropped)",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .frag = 185 },
	  EV_PASS, EV_DEF4 },
	{ "ipv4-frag/first-allowed", "first fragment of an allowed flow",
	  { .src = EV_S_OFF4, .proto = EV_TCP, .dport = 22, .more_frags = true },
	  EV_PASS, EV_OFFICE },
	{ "ipv4-frag/tiny-first-blocked-port",
	  "tiny first fragment: TCP header split after 8 bytes (port visible)",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .more_frags = true,
	    .tot_len = EV_IP4 + 8, .cut = EV_ETH + EV_IP4 + 8 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv4-frag/tiny-first-allowed",
	  "tiny first fragment of an allowed flow: dropped too",
	  { .src = EV_S_OFF4, .proto = EV_TCP, .dport = 22, .more_frags = true,
	    .tot_len = EV_IP4 + 8, .cut = EV_ETH + EV_IP4 + 8 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv4-frag/overlap-offset1",
	  "TCP fragment at offset 8 bytes would rewrite the TCP flags (RFC 1858)",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 80, .frag = 1 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv4-frag/overlap-offset1-allowed-src",
	  "offset-1 TCP fragment from an allowed source: dropped",
	  { .src = EV_S_OFF4, .proto = EV_TCP, .dport = 22, .frag = 1,
	    .more_frags = true },
	  EV_DROP, EV_MALFORMED },
	{ "ipv4-frag/udp-offset1-allowed", "UDP at offset 8 bytes is no overlap",
	  { .src = EV_S_OK4, .proto = EV_UDP, .dport = 53, .frag = 1 },
	  EV_PASS, EV_DEF4 },

	/* Classes 9, 10, 11: IPv6 extension header chains. */
	{ "ipv6-ext-hbh/blocked-port", "hop-by-hop options before TCP",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .ext = { EV_HBH },
	    .n_ext = 1 },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-routing/blocked-port", "routing header before TCP",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .ext = { EV_RT },
	    .n_ext = 1 },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-dstopts/blocked-port", "destination options before TCP",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .ext = { EV_DST },
	    .n_ext = 1 },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-ah/blocked-port", "AH before TCP",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .ext = { EV_AH },
	    .n_ext = 1 },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-frag/first-blocked-port", "first fragment (fragment header)",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .more_frags = true },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-frag/atomic-blocked-port", "atomic fragment (offset 0, no MF)",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .v6_frag_hdr = true },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-frag/later-blocked-src", "non-first fragment, blocked source",
	  { .src = EV_S_BAD6, .proto = EV_TCP, .dport = 22, .ext = { EV_HBH, EV_DST },
	    .n_ext = 2, .frag = 100 },
	  EV_DROP, EV_BAD6 },
	{ "ipv6-ext-frag/later-proto-rule",
	  "non-first fragment: an L3-only (protocol) rule still applies",
	  { .src = EV_S_TCP6, .proto = EV_TCP, .dport = 443, .frag = 100,
	    .more_frags = true },
	  EV_DROP, EV_TCP6 },
	{ "ipv6-ext-frag/later-blocked-port",
	  "non-first fragment of a blocked-port flow: no port, judged L3-only",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .frag = 100 },
	  EV_PASS, EV_DEF6 },
	{ "ipv6-ext-frag/overlap-offset1", "IPv6 TCP fragment at offset 8 bytes",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 80, .frag = 1 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv6-ext-chain8/blocked-port", "8 extension headers (the bound)",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22,
	    .ext = { EV_HBH, EV_DST, EV_RT, EV_AH, EV_DST, EV_DST, EV_DST, EV_FRAG },
	    .n_ext = 8, .more_frags = true },
	  EV_DROP, EV_SSH },
	{ "ipv6-ext-chain8/blocked-src", "8 extension headers, blocked source",
	  { .src = EV_S_BAD6, .proto = EV_UDP, .dport = 53,
	    .ext = { EV_HBH, EV_DST, EV_RT, EV_AH, EV_DST, EV_DST, EV_DST, EV_DST },
	    .n_ext = 8 },
	  EV_DROP, EV_BAD6 },
	{ "ipv6-ext-chain8/allowed", "8 extension headers, allowed flow",
	  { .src = EV_S_OFF6, .proto = EV_TCP, .dport = 22,
	    .ext = { EV_HBH, EV_DST, EV_RT, EV_AH, EV_DST, EV_DST, EV_DST, EV_DST },
	    .n_ext = 8 },
	  EV_PASS, EV_OFFICE },
	{ "ipv6-ext-chain9/blocked-port", "9 extension headers: beyond the bound",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22,
	    .ext = { EV_HBH, EV_DST, EV_RT, EV_AH, EV_DST, EV_DST, EV_DST, EV_DST,
		     EV_DST },
	    .n_ext = 9 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv6-ext-chain9/allowed", "9 extension headers drop even an allowed flow",
	  { .src = EV_S_OFF6, .proto = EV_TCP, .dport = 22,
	    .ext = { EV_HBH, EV_DST, EV_RT, EV_AH, EV_DST, EV_DST, EV_DST, EV_DST,
		     EV_DST },
	    .n_ext = 9 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv6-ext-chain12/blocked-port", "12 extension headers",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22,
	    .ext = { EV_HBH, EV_DST, EV_RT, EV_AH, EV_DST, EV_DST, EV_DST, EV_DST,
		     EV_DST, EV_DST, EV_DST, EV_DST },
	    .n_ext = 12 },
	  EV_DROP, EV_MALFORMED },
	{ "ipv6-ext-cut/blocked-port", "extension header cut short",
	  { .src = EV_S_OK6, .proto = EV_TCP, .dport = 22, .ext = { EV_HBH },
	    .n_ext = 1, .cut = EV_ETH + EV_IP6 + 7 },
	  EV_DROP, EV_MALFORMED },

	/* Classes 1, 4, 6, 7, 11: truncated and malformed headers. */
	{ "truncated/ipv4-no-header", "IPv4 EtherType, no IP header",
	  { .src = EV_S_BAD4, .proto = EV_TCP, .dport = 80, .cut = EV_ETH },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv4-header-cut", "IPv4 header cut short",
	  { .src = EV_S_BAD4, .proto = EV_TCP, .dport = 80, .cut = EV_ETH + EV_IP4 - 1 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv4-version5", "IPv4 EtherType, version 5",
	  { .src = EV_S_BAD4, .proto = EV_TCP, .dport = 80, .version = 5 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv4-ihl4", "ihl 4 (header shorter than 20 bytes)",
	  { .src = EV_S_BAD4, .proto = EV_TCP, .dport = 80, .ihl_override = 4 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv4-ihl-beyond-frame", "options reaching past the frame",
	  { .src = EV_S_OK4, .proto = EV_UDP, .dport = 53, .ihl_override = 15 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv4-totlen-short", "tot_len below the header length",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .tot_len = 19 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/tcp-header-blocked-port", "TCP header cut to 19 bytes",
	  { .src = EV_S_OK4, .proto = EV_TCP, .dport = 22, .cut = EV_ETH + EV_IP4 + 19 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/tcp-header-allowed", "TCP header cut: an allowed flow too",
	  { .src = EV_S_OFF4, .proto = EV_TCP, .dport = 22, .cut = EV_ETH + EV_IP4 + 4 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/udp-header", "UDP header cut to 7 bytes",
	  { .src = EV_S_OK4, .proto = EV_UDP, .dport = 53, .cut = EV_ETH + EV_IP4 + 7 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/icmp-header", "ICMP header cut to 3 bytes",
	  { .src = EV_S_OK4, .proto = EV_ICMP, .cut = EV_ETH + EV_IP4 + 3 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/icmp-4-bytes-allowed", "ICMP with just its 4-byte header",
	  { .src = EV_S_OK4, .proto = EV_ICMP, .cut = EV_ETH + EV_IP4 + 4 },
	  EV_PASS, EV_DEF4 },
	{ "truncated/ipv6-header-cut", "IPv6 header cut short",
	  { .src = EV_S_BAD6, .proto = EV_UDP, .dport = 53, .cut = EV_ETH + EV_IP6 - 1 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv6-version4", "IPv6 EtherType, version 4",
	  { .src = EV_S_BAD6, .proto = EV_UDP, .dport = 53, .version = 4 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/ipv6-tcp-header-allowed", "IPv6 TCP header cut to 19 bytes",
	  { .src = EV_S_OFF6, .proto = EV_TCP, .dport = 22, .cut = EV_ETH + EV_IP6 + 19 },
	  EV_DROP, EV_MALFORMED },
	{ "truncated/icmpv6-header", "ICMPv6 header cut to 3 bytes",
	  { .src = EV_S_OK6, .proto = EV_ICMP6, .cut = EV_ETH + EV_IP6 + 3 },
	  EV_DROP, EV_MALFORMED },

	/* Class 3: other EtherTypes pass; the stack never reads them as IP. */
	{ "non-ip/arp", "ARP", { .ethertype = 0x0806 }, EV_PASS, EV_NON_IP },
	{ "non-ip/lldp", "LLDP", { .ethertype = 0x88cc }, EV_PASS, EV_NON_IP },
	{ "non-ip/8023-length", "802.3 length field instead of an EtherType",
	  { .ethertype = 0x0042 }, EV_PASS, EV_NON_IP },
	{ "non-ip/arp-in-vlan", "ARP inside an 802.1Q tag",
	  { .tpids = { EV_Q }, .ethertype = 0x0806 }, EV_PASS, EV_NON_IP },
	{ "non-ip/tpid-9100", "TPID 0x9100 is not a tag we skip: not IP",
	  { .tpids = { 0x9100 }, .src = EV_S_BAD4, .proto = EV_TCP, .dport = 80 },
	  EV_PASS, EV_NON_IP },

	/* Class 8: IPv4-mapped IPv6 sources never reach the IPv6 rules. */
	{ "v4-mapped/blocked-src", "a blocked IPv4 source dressed as IPv6",
	  { .src = "::ffff:" EV_S_BAD4, .proto = EV_UDP, .dport = 53 },
	  EV_DROP, EV_MALFORMED },
	{ "v4-mapped/allowed-src", "an allowed IPv4 source dressed as IPv6",
	  { .src = "::ffff:" EV_S_OFF4, .proto = EV_TCP, .dport = 22 },
	  EV_DROP, EV_MALFORMED },
	{ "v4-mapped/edge-below", "::fffe:ffff:ffff, just below the mapped range",
	  { .src = "::fffe:ffff:ffff", .proto = EV_UDP, .dport = 53 },
	  EV_PASS, EV_DEF6 },
	{ "v4-mapped/edge-above", "::1:0:0:0, just above the mapped range",
	  { .src = "::1:0:0:0", .proto = EV_UDP, .dport = 53 },
	  EV_PASS, EV_DEF6 },
};

#define EVASION_N_CASES (sizeof(evasion_cases) / sizeof(evasion_cases[0]))

#endif

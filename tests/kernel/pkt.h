/*
 * Packet crafting for the kernel tests, header-only because the Makefile
 * turns every C file under tests/kernel into its own binary.
 *
 * A struct pkt_spec describes a frame declaratively (VLAN tags, family,
 * source, protocol, port, IPv4 options, fragment, IPv6 extension chain,
 * truncation); pkt_build() writes the bytes and the packet facts the
 * reference evaluators take (compiler/eval.h), so the kernel and the
 * evaluators judge the very same packet.
 */
#ifndef SN_TEST_PKT_H
#define SN_TEST_PKT_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "compiler/eval.h"

#define PKT_MAX 512

#define PKT_TPID_8021Q 0x8100
#define PKT_TPID_8021AD 0x88a8

#define PKT_IPPROTO_HOPOPTS 0
#define PKT_IPPROTO_ICMP 1
#define PKT_IPPROTO_TCP 6
#define PKT_IPPROTO_UDP 17
#define PKT_IPPROTO_ROUTING 43
#define PKT_IPPROTO_FRAGMENT 44
#define PKT_IPPROTO_ESP 50
#define PKT_IPPROTO_AH 51
#define PKT_IPPROTO_ICMPV6 58
#define PKT_IPPROTO_NONE 59
#define PKT_IPPROTO_DSTOPTS 60

struct pkt_spec {
	const char *src;      /* IPv4 or IPv6 literal; NULL: non-IP frame */
	uint16_t ethertype;   /* non-IP frames: the EtherType */
	uint16_t tpids[4];    /* VLAN tags, outermost first, 0-terminated */
	uint8_t proto;        /* IP protocol / last IPv6 next header */
	uint16_t dport;       /* TCP/UDP destination port */
	uint8_t ip_opts;      /* IPv4 option bytes (NOPs), multiple of 4 */
	uint16_t frag;        /* fragment offset in 8-byte units */
	bool more_frags;      /* MF set */
	bool v6_frag_hdr;     /* IPv6: fragment header even when frag == 0 */
	uint8_t ext[12];      /* IPv6 extension headers, in order */
	uint8_t n_ext;
	int cut;              /* > 0: keep only this many bytes of the frame */
	uint8_t ihl_override; /* IPv4: write this ihl instead (malformed) */
	uint8_t version;      /* write this IP version instead (malformed) */
	uint16_t tot_len;     /* IPv4: write this tot_len instead (malformed) */
};

static inline void pkt_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pkt_put32(uint8_t *p, uint32_t v)
{
	pkt_put16(p, (uint16_t)(v >> 16));
	pkt_put16(p + 2, (uint16_t)v);
}

/* L4 header bytes as a sender writes them: TCP 20, everything else 8. */
static inline size_t pkt_l4(uint8_t *p, uint8_t proto, uint16_t dport)
{
	switch (proto) {
	case PKT_IPPROTO_TCP:
		memset(p, 0, 20);
		pkt_put16(p, 40000);
		pkt_put16(p + 2, dport);
		pkt_put32(p + 4, 1);
		p[12] = 5 << 4; /* data offset */
		p[13] = 0x02;   /* SYN */
		pkt_put16(p + 14, 65535);
		return 20;
	case PKT_IPPROTO_UDP:
		memset(p, 0, 8);
		pkt_put16(p, 40000);
		pkt_put16(p + 2, dport);
		pkt_put16(p + 4, 8);
		return 8;
	case PKT_IPPROTO_ICMP:
	case PKT_IPPROTO_ICMPV6:
		memset(p, 0, 8);
		p[0] = proto == PKT_IPPROTO_ICMP ? 8 : 128; /* echo request */
		pkt_put16(p + 4, 0x4753);
		pkt_put16(p + 6, 1);
		return 8;
	default:
		memset(p, 0xab, 8);
		return 8;
	}
}

/* One IPv6 extension header of the given type; returns its length. */
static inline size_t pkt_ext(uint8_t *p, uint8_t type, uint8_t next,
			     const struct pkt_spec *s)
{
	switch (type) {
	case PKT_IPPROTO_FRAGMENT:
		memset(p, 0, 8);
		p[0] = next;
		pkt_put16(p + 2, (uint16_t)(s->frag << 3 | s->more_frags));
		pkt_put32(p + 4, 0x47000001);
		return 8;
	case PKT_IPPROTO_AH:
		memset(p, 0, 12);
		p[0] = next;
		p[1] = 1; /* (1 + 2) * 4 = 12 bytes */
		pkt_put32(p + 4, 0x100);
		return 12;
	default: /* hop-by-hop, routing, destination options: 8 bytes */
		memset(p, 0, 8);
		p[0] = next;
		p[1] = 0;
		if (type != PKT_IPPROTO_ROUTING) {
			p[2] = 1; /* PadN of 4 */
			p[3] = 4;
		}
		return 8;
	}
}

/*
 * Write the frame into buf (PKT_MAX bytes) and the packet facts into
 * facts.  Returns the frame length, 0 if the spec is invalid.
 */
static inline size_t pkt_build(const struct pkt_spec *s, uint8_t *buf,
			       struct sn_packet *facts)
{
	static const uint8_t dst4[4] = { 192, 0, 2, 1 };
	uint8_t addr[16] = { 0 }, *ip;
	size_t off = 12, len;
	int family = 0;

	memset(buf, 0, PKT_MAX);
	memset(facts, 0, sizeof(*facts));
	memcpy(buf, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
	for (int i = 0; i < 4 && s->tpids[i]; i++, off += 4) {
		pkt_put16(buf + off, s->tpids[i]);
		pkt_put16(buf + off + 2, (uint16_t)(100 + i)); /* VID */
	}
	if (s->src && inet_pton(AF_INET, s->src, addr) == 1)
		family = SN_FAMILY_V4;
	else if (s->src && inet_pton(AF_INET6, s->src, addr) == 1)
		family = SN_FAMILY_V6;
	else if (s->src)
		return 0;
	pkt_put16(buf + off, family == SN_FAMILY_V4 ? 0x0800 :
			     family == SN_FAMILY_V6 ? 0x86dd :
						      s->ethertype);
	off += 2;
	ip = buf + off;

	if (family == SN_FAMILY_V4) {
		size_t hlen = 20 + s->ip_opts;
		size_t l4 = pkt_l4(ip + hlen, s->proto, s->dport);

		ip[0] = (uint8_t)((s->version ? s->version : 4) << 4 |
				  (s->ihl_override ? s->ihl_override :
						     hlen / 4));
		pkt_put16(ip + 2, s->tot_len ? s->tot_len : (uint16_t)(hlen + l4));
		pkt_put16(ip + 4, 0x4753);
		pkt_put16(ip + 6,
			  (uint16_t)(s->frag | (s->more_frags ? 0x2000 : 0)));
		ip[8] = 64;
		ip[9] = s->proto;
		memcpy(ip + 12, addr, 4);
		memcpy(ip + 16, dst4, 4);
		memset(ip + 20, 1, s->ip_opts); /* NOP options */
		len = off + hlen + l4;
	} else if (family == SN_FAMILY_V6) {
		size_t e = 40;
		uint8_t types[13];
		size_t n = s->n_ext;

		memcpy(types, s->ext, n);
		if (s->v6_frag_hdr || s->frag || s->more_frags) {
			bool have = false;

			for (size_t i = 0; i < n; i++)
				have |= types[i] == PKT_IPPROTO_FRAGMENT;
			if (!have)
				types[n++] = PKT_IPPROTO_FRAGMENT;
		}
		ip[0] = (uint8_t)((s->version ? s->version : 6) << 4);
		ip[6] = n ? types[0] : s->proto;
		ip[7] = 64;
		memcpy(ip + 8, addr, 16);
		inet_pton(AF_INET6, "2001:db8::1", ip + 24);
		for (size_t i = 0; i < n; i++)
			e += pkt_ext(ip + e, types[i],
				     i + 1 < n ? types[i + 1] : s->proto, s);
		e += pkt_l4(ip + e, s->proto, s->dport);
		pkt_put16(ip + 4, (uint16_t)(e - 40));
		len = off + e;
	} else {
		memset(ip, 0x5a, 28); /* e.g. an ARP body */
		len = off + 28;
	}
	if (s->cut > 0 && (size_t)s->cut < len)
		len = (size_t)s->cut;

	facts->family = (uint8_t)family;
	memcpy(facts->src, addr, family == SN_FAMILY_V6 ? 16 : 4);
	facts->proto = s->proto;
	facts->has_port = s->frag == 0 && (s->proto == PKT_IPPROTO_TCP ||
					   s->proto == PKT_IPPROTO_UDP);
	facts->dport = facts->has_port ? s->dport : 0;
	return len;
}

#endif

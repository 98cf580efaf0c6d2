/*
 * The policy image: the compiled policy as the data plane consumes it.
 *
 * In memory it is the populations of the XDP maps plus the constants the
 * program is specialised with; on disk it is the same data in a versioned,
 * checksummed file (layout in SPEC.md, "Policy image").  Userspace
 * consumers (sentryd, sentryctl, the evaluators) read only this, never the
 * AST or the policy, so what was tested is what is loaded.
 */
#ifndef SN_IMAGE_H
#define SN_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../bpf/sentry_abi.h"
#include "arena.h"
#include "policy.h"

#define SN_IMAGE_MAGIC "47SNTIMG"
#define SN_IMAGE_VERSION 4u

/* One rule as the runtime reports it: pseudo-rules included. */
struct sn_image_rule {
	uint32_t id;
	uint8_t verdict; /* enum sn_verdict */
	uint8_t tier;    /* enum sn_tier */
	int16_t proto;   /* SN_PROTO_ANY or protocol number */
	const char *file; /* "" for pseudo-rules without a location */
	uint32_t line, col;
	const char *text; /* "block from 203.0.113.0/24", "default ipv4 allow" */
};

/* What a packet looks like to the classifier: one L4 class. */
struct sn_l4_class {
	int16_t proto;      /* SN_PROTO_ANY: every protocol no rule names */
	uint8_t port_table; /* enum sn_port_table; NONE: port not consulted */
	uint8_t noport;     /* port-table protocol without a port (fragment) */
	uint16_t lo, hi;    /* port interval when port_table && !noport */
};

/* A run of destination ports mapping to one L4 class. */
struct sn_port_run {
	uint8_t table; /* SN_PORT_TABLE_TCP / _UDP */
	uint16_t lo, hi;
	uint32_t l4_class;
};

/* An LPM entry: addresses whose longest policy prefix is this one. */
struct sn_class_prefix {
	struct sn_prefix prefix;
	uint32_t class_id;
};

/*
 * The source-classification structure of one family (SPEC.md 4, 5.1;
 * compiler/srcmap.h builds and walks it): ranges of one source class,
 * sorted, indexed by a multibit trie whose words (node entries and leaf
 * blocks, encoded as in bpf/sentry_abi.h) are what the program reads;
 * the ranges are what the words encode, kept for checking.  n_nodes ==
 * 0: the family uses the LPM trie of the class prefixes instead.
 */
struct sn_src_range {
	uint8_t start[16]; /* first address, network order (IPv4: 4 bytes) */
	uint32_t class_id;
};

struct sn_srcmap {
	uint32_t *nodes; /* the words; nodes[0]: the entry of the whole space */
	uint32_t n_nodes;
	struct sn_src_range *ranges;
	uint32_t n_ranges;
};

/* Compile-time constants the XDP program is specialised with (rodata). */
struct sn_constants {
	uint32_t abi_version;
	uint32_t l4_stride;   /* decision row length, >= n_l4 */
	uint32_t port_tables; /* bit (1 << table) for each table in use */
};

/* A port interval of a limit rule or a syncookies statement. */
struct sn_image_ports {
	uint16_t lo, hi;
};

/* A limit rule (SPEC.md 2.4) as the runtime consumes it. */
struct sn_image_limit {
	uint32_t id;         /* limits[id].id == id */
	uint64_t identity;   /* stable across reloads */
	uint32_t rate_count; /* rate as written: count per period seconds */
	uint32_t rate_period;
	uint64_t rate_fp;    /* tokens per second, 32.32 fixed point */
	uint32_t burst;
	uint8_t key_v4, key_v6;
	int16_t proto;       /* SN_PROTO_ANY or protocol number */
	uint32_t block_for;  /* seconds; 0: no escalation */
	struct sn_image_ports *ports; /* none: any port */
	uint32_t n_ports;
	struct sn_prefix *srcs; /* sorted, no duplicates, >= 1 */
	uint32_t n_srcs;
	const char *file;
	uint32_t line, col;
	const char *text;
};

/* SYN cookies for tcp destination ports lo..hi above count/period. */
struct sn_image_syncookie {
	uint16_t lo, hi;
	uint32_t count, period;
};

struct sn_image_dns_name {
	const char *name; /* lower case, no trailing dot */
	bool wildcard;    /* any subdomain of name, not name itself */
};

/* Bits of sn_image_dns.written / sn_image_autoblock.written. */
enum {
	SN_DNS_W_STALE_TTL = 1u << 0,
	SN_DNS_W_STALE_MAX_AGE = 1u << 1,
	SN_DNS_W_QUERY_RATE = 1u << 2,
	SN_DNS_W_MIN_TTL = 1u << 3,
	SN_DNS_W_NAME_LENGTH = 1u << 4,
	SN_DNS_W_LABEL_ENTROPY = 1u << 5,
	SN_DNS_W_NEW_DOMAINS = 1u << 6,
	SN_AB_W_MODE = 1u << 0,
	SN_AB_W_TTL = 1u << 1,
	SN_AB_W_MAX_V4 = 1u << 2,
	SN_AB_W_MAX_V6 = 1u << 3,
	SN_AB_W_RATE = 1u << 4,
};

struct sn_image_dns {
	uint32_t stale_ttl, stale_max_age;           /* seconds */
	uint32_t query_rate_count, query_rate_period; /* count 0: off */
	uint32_t min_ttl;             /* seconds; 0: off */
	uint32_t name_length;         /* 0: off */
	uint32_t label_entropy_milli; /* 0: off */
	uint32_t new_domains;         /* 0 or 1 */
	uint32_t written;             /* SN_DNS_W_*: set in the policy */
};

struct sn_image_autoblock {
	uint8_t mode; /* SN_MODE_DRY_RUN / SN_MODE_ENFORCE */
	uint8_t max_v4, max_v6;
	uint32_t ttl; /* seconds */
	uint32_t rate_count, rate_period;
	uint32_t written; /* SN_AB_W_* */
};

/*
 * The parts beyond the verdict tables: rate limits, SYN protection, DNS
 * rules and auto-block guardrails.  An image without them (built by
 * sn_image_build alone) has features == NULL and means the defaults
 * (sn_image_features).
 */
struct sn_image_features {
	struct sn_image_limit *limits;
	uint32_t n_limits;
	struct sn_image_syncookie *syncookies; /* sorted, disjoint */
	uint32_t n_syncookies;
	struct sn_image_dns_name *dns_names; /* policy order, no duplicates */
	uint32_t n_dns_names;
	struct sn_image_dns dns;
	struct sn_image_autoblock autoblock;
	struct sn_prefix *never; /* sorted, no duplicates */
	uint32_t n_never;
};

struct sn_image {
	struct sn_constants constants;
	uint32_t n_l4;
	struct sn_l4_class *l4;
	struct sn_proto_entry proto[256];
	struct sn_port_run *port_runs; /* sorted, cover each used table fully */
	size_t n_port_runs;
	uint32_t n_classes;
	struct sn_decision *decisions; /* n_classes * l4_stride */
	struct sn_class_prefix *v4, *v6; /* sorted by address then length */
	size_t n_v4, n_v6;
	struct sn_image_rule *rules; /* rules[id].id == id */
	uint32_t n_rules;
	uint8_t checksum[32]; /* SHA-256 of the serialised image */
	struct sn_image_features *features; /* NULL: defaults */
	struct sn_srcmap src_v4, src_v6; /* how the program finds the class */
};

/*
 * Rule id (counter) of limit rule `limit`: the limit rules follow the
 * policy rules in the rule table (SPEC.md 5.3).
 */
static inline uint32_t sn_image_limit_rule(const struct sn_image *img,
					   const struct sn_image_features *f,
					   uint32_t limit)
{
	return img->n_rules - f->n_limits + limit;
}

/* The image's features, or the defaults when it has none. */
const struct sn_image_features *sn_image_features(const struct sn_image *img);
/*
 * Add the policy's limits, syncookies, DNS rules and auto-block settings
 * to an image built by sn_image_build.  0 or -ENOMEM.
 */
int sn_image_add_features(struct sn_arena *arena, const struct sn_policy *p,
			  struct sn_image *img);

/* Serialise (also computes and stores image->checksum).  malloc'd buffer. */
int sn_image_serialize(struct sn_image *image, void **buf, size_t *len);
int sn_image_write_file(struct sn_image *image, const char *path);
/*
 * Parse and validate a serialised image: magic, version, ABI version,
 * checksum, section bounds, every index in range.  0 or -EINVAL/-ENOMEM;
 * err gets a one-line reason.
 */
int sn_image_parse(const void *buf, size_t len, struct sn_arena *arena,
		   struct sn_image **out, char *err, size_t errlen);
int sn_image_read_file(const char *path, struct sn_arena *arena,
		       struct sn_image **out, char *err, size_t errlen);
/* Hex of the checksum, 64 chars + NUL. */
void sn_checksum_hex(const uint8_t checksum[32], char out[65]);

#endif

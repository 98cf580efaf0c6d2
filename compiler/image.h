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
#define SN_IMAGE_VERSION 1u

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

/* Compile-time constants the XDP program is specialised with (rodata). */
struct sn_constants {
	uint32_t abi_version;
	uint32_t l4_stride;   /* decision row length, >= n_l4 */
	uint32_t port_tables; /* bit (1 << table) for each table in use */
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
};

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

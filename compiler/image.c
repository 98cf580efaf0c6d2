/*
 * Policy image file format (SPEC.md, "Policy image"): a fixed header, a
 * section table and 8-byte aligned sections of fixed-size little-endian
 * records.  The SHA-256 in the header covers the whole file with the
 * checksum field zeroed; it doubles as the policy's identity (no timestamp
 * is stored, so one policy always compiles to one checksum).
 */
#include "image.h"
#include "srcmap.h"

#include "addr.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the image format is little-endian; add byte swapping for this target"
#endif

enum sn_section {
	SEC_CONSTANTS = 1,
	SEC_L4_CLASSES = 2,
	SEC_PROTO = 3,
	SEC_PORT_RUNS = 4,
	SEC_DECISIONS = 5,
	SEC_PREFIX_V4 = 6,
	SEC_PREFIX_V6 = 7,
	SEC_RULES = 8,
	SEC_STRINGS = 9,
	SEC_LIMITS = 10,
	SEC_LIMIT_PORTS = 11,
	SEC_LIMIT_PREFIXES = 12,
	SEC_SYNCOOKIES = 13,
	SEC_DNS_NAMES = 14,
	SEC_DNS = 15,
	SEC_AUTOBLOCK = 16,
	SEC_AUTOBLOCK_NEVER = 17,
	SEC_SRC_NODES_V4 = 18,
	SEC_SRC_NODES_V6 = 19,
	SEC_SRC_RANGES_V4 = 20,
	SEC_SRC_RANGES_V6 = 21,
	SEC_COUNT = 21,
};

/* The last section of image format version 2 (no source structures). */
#define SEC_COUNT_V2 SEC_AUTOBLOCK_NEVER

struct file_header {
	char magic[8];
	uint32_t version;
	uint32_t abi_version;
	uint32_t header_size;
	uint32_t n_sections;
	uint64_t file_size;
	uint8_t checksum[32];
};

struct file_section {
	uint32_t type;
	uint32_t elem_size;
	uint64_t offset;
	uint64_t count;
};

struct file_constants {
	uint32_t abi_version;
	uint32_t l4_stride;
	uint32_t port_tables;
	uint32_t n_classes;
};

struct file_l4_class {
	int16_t proto;
	uint8_t port_table;
	uint8_t noport;
	uint16_t lo, hi;
};

struct file_port_run {
	uint16_t table;
	uint16_t lo, hi;
	uint16_t pad;
	uint32_t l4_class;
};

struct file_prefix_v4 {
	uint32_t class_id;
	uint8_t len;
	uint8_t pad[3];
	uint8_t addr[4];
};

struct file_prefix_v6 {
	uint32_t class_id;
	uint8_t len;
	uint8_t pad[3];
	uint8_t addr[16];
};

/* Sections 20/21: one range of the range trie of a family (SPEC.md 5.2). */
struct file_src_range_v4 {
	uint32_t class_id;
	uint8_t start[4];
};

struct file_src_range_v6 {
	uint32_t class_id;
	uint8_t start[16];
};

struct file_rule {
	uint32_t id;
	uint8_t verdict;
	uint8_t tier;
	int16_t proto;
	uint32_t file; /* offset into STRINGS */
	uint32_t line;
	uint32_t col;
	uint32_t text; /* offset into STRINGS */
};

/* Sections 10..17 (image version 2): SPEC.md 2.4-2.7 and 5.2. */
struct file_limit {
	uint32_t id;
	uint32_t burst;
	uint64_t identity;
	uint64_t rate_fp; /* tokens per second, 32.32 fixed point */
	uint32_t rate_count;
	uint32_t rate_period;
	uint32_t block_for;
	uint8_t key_v4, key_v6;
	int16_t proto;
	uint32_t first_port, n_ports;     /* into LIMIT_PORTS */
	uint32_t first_prefix, n_prefixes; /* into LIMIT_PREFIXES */
	uint32_t file, line, col, text;
};

struct file_limit_port {
	uint32_t limit;
	uint16_t lo, hi;
};

struct file_prefix_any {
	uint32_t owner; /* limit id; 0 for auto-block never */
	uint8_t family;
	uint8_t len;
	uint16_t pad;
	uint8_t addr[16];
};

struct file_syncookie {
	uint16_t lo, hi;
	uint32_t count, period;
};

struct file_dns_name {
	uint32_t name; /* offset into STRINGS */
	uint8_t wildcard;
	uint8_t pad[3];
};

struct file_dns {
	uint32_t stale_ttl, stale_max_age;
	uint32_t query_rate_count, query_rate_period;
	uint32_t min_ttl, name_length, label_entropy_milli, new_domains;
	uint32_t written;
};

struct file_autoblock {
	uint8_t mode, max_v4, max_v6, pad;
	uint32_t ttl, rate_count, rate_period, written;
};

_Static_assert(sizeof(struct file_limit) == 72, "image limit");
_Static_assert(sizeof(struct file_limit_port) == 8, "image limit port");
_Static_assert(sizeof(struct file_prefix_any) == 24, "image prefix");
_Static_assert(sizeof(struct file_syncookie) == 12, "image syncookie");
_Static_assert(sizeof(struct file_dns_name) == 8, "image dns name");
_Static_assert(sizeof(struct file_dns) == 36, "image dns");
_Static_assert(sizeof(struct file_autoblock) == 20, "image autoblock");

_Static_assert(sizeof(struct file_header) == 64, "image header");
_Static_assert(sizeof(struct file_section) == 24, "image section");
_Static_assert(sizeof(struct file_constants) == 16, "image constants");
_Static_assert(sizeof(struct file_l4_class) == 8, "image l4 class");
_Static_assert(sizeof(struct file_port_run) == 12, "image port run");
_Static_assert(sizeof(struct file_prefix_v4) == 12, "image v4 prefix");
_Static_assert(sizeof(struct file_prefix_v6) == 24, "image v6 prefix");
_Static_assert(sizeof(struct file_rule) == 24, "image rule");

static int sha256(const void *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	if (!EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) || n != 32)
		return -EIO;
	return 0;
}

void sn_checksum_hex(const uint8_t checksum[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[checksum[i] >> 4];
		out[2 * i + 1] = hex[checksum[i] & 15];
	}
	out[64] = '\0';
}

/* ---- writing --------------------------------------------------------------- */

struct strtab {
	char *buf;
	size_t len, cap;
};

/* Offset of s in the table; offset 0 is "". Strings are not deduplicated
 * beyond the previous one: files repeat in runs, texts rarely repeat. */
static long strtab_add(struct strtab *t, const char *s, long *last_off,
		       const char **last)
{
	size_t n = strlen(s);

	if (!n)
		return 0;
	if (*last && !strcmp(*last, s))
		return *last_off;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;

		while (cap < t->len + n + 1)
			cap *= 2;
		char *b = realloc(t->buf, cap);

		if (!b)
			return -ENOMEM;
		t->buf = b;
		t->cap = cap;
	}
	long off = (long)t->len;

	memcpy(t->buf + t->len, s, n + 1);
	t->len += n + 1;
	*last = s;
	*last_off = off;
	return off;
}

static size_t align8(size_t v)
{
	return (v + 7) & ~(size_t)7;
}

/* The feature sections in file form; malloc'd arrays, strings in st. */
struct feature_recs {
	struct file_limit *limits;
	struct file_limit_port *ports;
	struct file_prefix_any *prefixes;
	struct file_syncookie *syncookies;
	struct file_dns_name *names;
	struct file_prefix_any *never;
	size_t n_ports, n_prefixes;
	struct file_dns dns;
	struct file_autoblock ab;
};

static void feature_recs_free(struct feature_recs *r)
{
	free(r->limits);
	free(r->ports);
	free(r->prefixes);
	free(r->syncookies);
	free(r->names);
	free(r->never);
}

static struct file_prefix_any prefix_rec(uint32_t owner,
					 const struct sn_prefix *p)
{
	struct file_prefix_any f = { .owner = owner, .family = p->family,
				     .len = p->len };

	memcpy(f.addr, p->addr, 16);
	return f;
}

/* Strings go after the rules' strings, so an image without features has
 * the same STRINGS section as in version 1. */
static int features_to_file(const struct sn_image_features *f,
			    struct strtab *st, struct feature_recs *r)
{
	long off = 0;
	const char *last = NULL;

	for (uint32_t i = 0; i < f->n_limits; i++) {
		r->n_ports += f->limits[i].n_ports;
		r->n_prefixes += f->limits[i].n_srcs;
	}
	r->limits = calloc(f->n_limits + 1, sizeof(*r->limits));
	r->ports = calloc(r->n_ports + 1, sizeof(*r->ports));
	r->prefixes = calloc(r->n_prefixes + 1, sizeof(*r->prefixes));
	r->syncookies = calloc(f->n_syncookies + 1, sizeof(*r->syncookies));
	r->names = calloc(f->n_dns_names + 1, sizeof(*r->names));
	r->never = calloc(f->n_never + 1, sizeof(*r->never));
	if (!r->limits || !r->ports || !r->prefixes || !r->syncookies ||
	    !r->names || !r->never)
		return -ENOMEM;
	size_t np = 0, nx = 0;

	for (uint32_t i = 0; i < f->n_limits; i++) {
		const struct sn_image_limit *l = &f->limits[i];
		long fo = strtab_add(st, l->file ? l->file : "", &off, &last);
		long to = strtab_add(st, l->text ? l->text : "", &off, &last);

		if (fo < 0 || to < 0 || st->len > UINT32_MAX)
			return -ENOMEM;
		r->limits[i] = (struct file_limit){
			.id = l->id, .burst = l->burst, .identity = l->identity,
			.rate_fp = l->rate_fp, .rate_count = l->rate_count,
			.rate_period = l->rate_period, .block_for = l->block_for,
			.key_v4 = l->key_v4, .key_v6 = l->key_v6,
			.proto = l->proto, .first_port = (uint32_t)np,
			.n_ports = l->n_ports, .first_prefix = (uint32_t)nx,
			.n_prefixes = l->n_srcs, .file = (uint32_t)fo,
			.line = l->line, .col = l->col, .text = (uint32_t)to,
		};
		for (uint32_t j = 0; j < l->n_ports; j++)
			r->ports[np++] = (struct file_limit_port){
				l->id, l->ports[j].lo, l->ports[j].hi };
		for (uint32_t j = 0; j < l->n_srcs; j++)
			r->prefixes[nx++] = prefix_rec(l->id, &l->srcs[j]);
	}
	for (uint32_t i = 0; i < f->n_syncookies; i++) {
		const struct sn_image_syncookie *c = &f->syncookies[i];

		r->syncookies[i] = (struct file_syncookie){ c->lo, c->hi,
							    c->count, c->period };
	}
	for (uint32_t i = 0; i < f->n_dns_names; i++) {
		long o = strtab_add(st, f->dns_names[i].name, &off, &last);

		if (o <= 0 || st->len > UINT32_MAX)
			return -ENOMEM;
		r->names[i] = (struct file_dns_name){
			.name = (uint32_t)o, .wildcard = f->dns_names[i].wildcard };
	}
	for (uint32_t i = 0; i < f->n_never; i++)
		r->never[i] = prefix_rec(0, &f->never[i]);
	r->dns = (struct file_dns){
		f->dns.stale_ttl, f->dns.stale_max_age,
		f->dns.query_rate_count, f->dns.query_rate_period,
		f->dns.min_ttl, f->dns.name_length,
		f->dns.label_entropy_milli, f->dns.new_domains, f->dns.written,
	};
	r->ab = (struct file_autoblock){
		.mode = f->autoblock.mode, .max_v4 = f->autoblock.max_v4,
		.max_v6 = f->autoblock.max_v6, .ttl = f->autoblock.ttl,
		.rate_count = f->autoblock.rate_count,
		.rate_period = f->autoblock.rate_period,
		.written = f->autoblock.written,
	};
	return 0;
}

/* Sections 18-21 into buf at their offsets (sec[type - 1]). */
static void srcmap_to_file(uint8_t *buf, const struct file_section *sec,
			   const struct sn_image *img)
{
	for (int f = 0; f < 2; f++) {
		const struct sn_srcmap *m = f ? &img->src_v6 : &img->src_v4;
		const struct file_section *sn = &sec[SEC_SRC_NODES_V4 - 1 + f];
		const struct file_section *sr = &sec[SEC_SRC_RANGES_V4 - 1 + f];

		if (m->n_nodes) /* an LPM family has no nodes (NULL) */
			memcpy(buf + sn->offset, m->nodes,
			       m->n_nodes * sizeof(*m->nodes));
		for (uint32_t i = 0; i < m->n_ranges; i++) {
			struct file_src_range_v6 r = { m->ranges[i].class_id, { 0 } };

			memcpy(r.start, m->ranges[i].start, f ? 16 : 4);
			/* v4 records are the same with a 4-byte start. */
			memcpy(buf + sr->offset + i * sr->elem_size, &r,
			       sr->elem_size);
		}
	}
}

int sn_image_serialize(struct sn_image *img, void **out, size_t *out_len)
{
	struct strtab st = { .buf = calloc(1, 256), .len = 1, .cap = 256 };
	struct file_rule *rules = calloc(img->n_rules ? img->n_rules : 1,
					 sizeof(*rules));
	long file_off = 0, text_off = 0;
	const char *last_file = NULL, *last_text = NULL;
	const struct sn_image_features *feat = sn_image_features(img);
	struct feature_recs fr = { 0 };
	int rc = -ENOMEM;
	uint8_t *buf = NULL;

	if (!st.buf || !rules)
		goto out;
	for (uint32_t i = 0; i < img->n_rules; i++) {
		const struct sn_image_rule *r = &img->rules[i];
		long f = strtab_add(&st, r->file ? r->file : "", &file_off,
				    &last_file);
		long t = strtab_add(&st, r->text ? r->text : "", &text_off,
				    &last_text);

		if (f < 0 || t < 0 || st.len > UINT32_MAX)
			goto out;
		rules[i] = (struct file_rule){
			.id = r->id, .verdict = r->verdict, .tier = r->tier,
			.proto = r->proto, .file = (uint32_t)f,
			.line = r->line, .col = r->col, .text = (uint32_t)t,
		};
	}
	rc = features_to_file(feat, &st, &fr);
	if (rc)
		goto out;
	rc = -ENOMEM;

	struct file_section sec[SEC_COUNT] = {
		{ SEC_CONSTANTS, sizeof(struct file_constants), 0, 1 },
		{ SEC_L4_CLASSES, sizeof(struct file_l4_class), 0, img->n_l4 },
		{ SEC_PROTO, sizeof(struct sn_proto_entry), 0, 256 },
		{ SEC_PORT_RUNS, sizeof(struct file_port_run), 0, img->n_port_runs },
		{ SEC_DECISIONS, sizeof(struct sn_decision), 0,
		  (uint64_t)img->n_classes * img->constants.l4_stride },
		{ SEC_PREFIX_V4, sizeof(struct file_prefix_v4), 0, img->n_v4 },
		{ SEC_PREFIX_V6, sizeof(struct file_prefix_v6), 0, img->n_v6 },
		{ SEC_RULES, sizeof(struct file_rule), 0, img->n_rules },
		{ SEC_STRINGS, 1, 0, st.len },
		{ SEC_LIMITS, sizeof(struct file_limit), 0, feat->n_limits },
		{ SEC_LIMIT_PORTS, sizeof(struct file_limit_port), 0, fr.n_ports },
		{ SEC_LIMIT_PREFIXES, sizeof(struct file_prefix_any), 0,
		  fr.n_prefixes },
		{ SEC_SYNCOOKIES, sizeof(struct file_syncookie), 0,
		  feat->n_syncookies },
		{ SEC_DNS_NAMES, sizeof(struct file_dns_name), 0,
		  feat->n_dns_names },
		{ SEC_DNS, sizeof(struct file_dns), 0, 1 },
		{ SEC_AUTOBLOCK, sizeof(struct file_autoblock), 0, 1 },
		{ SEC_AUTOBLOCK_NEVER, sizeof(struct file_prefix_any), 0,
		  feat->n_never },
		{ SEC_SRC_NODES_V4, sizeof(uint32_t), 0, img->src_v4.n_nodes },
		{ SEC_SRC_NODES_V6, sizeof(uint32_t), 0, img->src_v6.n_nodes },
		{ SEC_SRC_RANGES_V4, sizeof(struct file_src_range_v4), 0,
		  img->src_v4.n_ranges },
		{ SEC_SRC_RANGES_V6, sizeof(struct file_src_range_v6), 0,
		  img->src_v6.n_ranges },
	};
	size_t off = sizeof(struct file_header) + sizeof(sec);

	for (int i = 0; i < SEC_COUNT; i++) {
		off = align8(off);
		sec[i].offset = off;
		off += sec[i].elem_size * sec[i].count;
	}
	size_t len = align8(off);

	buf = calloc(1, len);
	if (!buf)
		goto out;

	struct file_header hdr = {
		.version = SN_IMAGE_VERSION,
		.abi_version = SN_ABI_VERSION,
		.header_size = sizeof(struct file_header),
		.n_sections = SEC_COUNT,
		.file_size = len,
	};

	memcpy(hdr.magic, SN_IMAGE_MAGIC, 8);
	memcpy(buf, &hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), sec, sizeof(sec));

	struct file_constants fc = {
		.abi_version = img->constants.abi_version,
		.l4_stride = img->constants.l4_stride,
		.port_tables = img->constants.port_tables,
		.n_classes = img->n_classes,
	};

	memcpy(buf + sec[0].offset, &fc, sizeof(fc));
	for (uint32_t i = 0; i < img->n_l4; i++) {
		const struct sn_l4_class *c = &img->l4[i];
		struct file_l4_class f = { c->proto, c->port_table, c->noport,
					   c->lo, c->hi };

		memcpy(buf + sec[1].offset + i * sizeof(f), &f, sizeof(f));
	}
	memcpy(buf + sec[2].offset, img->proto, sizeof(img->proto));
	for (size_t i = 0; i < img->n_port_runs; i++) {
		const struct sn_port_run *r = &img->port_runs[i];
		struct file_port_run f = { r->table, r->lo, r->hi, 0, r->l4_class };

		memcpy(buf + sec[3].offset + i * sizeof(f), &f, sizeof(f));
	}
	memcpy(buf + sec[4].offset, img->decisions,
	       sec[4].count * sizeof(struct sn_decision));
	for (size_t i = 0; i < img->n_v4; i++) {
		struct file_prefix_v4 f = { .class_id = img->v4[i].class_id,
					    .len = img->v4[i].prefix.len };

		memcpy(f.addr, img->v4[i].prefix.addr, 4);
		memcpy(buf + sec[5].offset + i * sizeof(f), &f, sizeof(f));
	}
	for (size_t i = 0; i < img->n_v6; i++) {
		struct file_prefix_v6 f = { .class_id = img->v6[i].class_id,
					    .len = img->v6[i].prefix.len };

		memcpy(f.addr, img->v6[i].prefix.addr, 16);
		memcpy(buf + sec[6].offset + i * sizeof(f), &f, sizeof(f));
	}
	memcpy(buf + sec[7].offset, rules, img->n_rules * sizeof(*rules));
	memcpy(buf + sec[8].offset, st.buf, st.len);
	memcpy(buf + sec[9].offset, fr.limits, sec[9].count * sec[9].elem_size);
	memcpy(buf + sec[10].offset, fr.ports, sec[10].count * sec[10].elem_size);
	memcpy(buf + sec[11].offset, fr.prefixes,
	       sec[11].count * sec[11].elem_size);
	memcpy(buf + sec[12].offset, fr.syncookies,
	       sec[12].count * sec[12].elem_size);
	memcpy(buf + sec[13].offset, fr.names, sec[13].count * sec[13].elem_size);
	memcpy(buf + sec[14].offset, &fr.dns, sizeof(fr.dns));
	memcpy(buf + sec[15].offset, &fr.ab, sizeof(fr.ab));
	memcpy(buf + sec[16].offset, fr.never, sec[16].count * sec[16].elem_size);
	srcmap_to_file(buf, sec, img);

	rc = sha256(buf, len, img->checksum);
	if (rc)
		goto out;
	memcpy(buf + offsetof(struct file_header, checksum), img->checksum, 32);
	*out = buf;
	*out_len = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	free(st.buf);
	free(rules);
	feature_recs_free(&fr);
	return rc;
}

int sn_image_write_file(struct sn_image *img, const char *path)
{
	void *buf;
	size_t len;
	int rc = sn_image_serialize(img, &buf, &len);

	if (rc)
		return rc;
	FILE *f = fopen(path, "wb");

	if (!f) {
		rc = -errno;
		free(buf);
		return rc;
	}
	if (fwrite(buf, 1, len, f) != len)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -errno;
	free(buf);
	return rc;
}

/* ---- reading --------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int
bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char *str_at(const char *strings, uint64_t len, uint32_t off)
{
	return off < len ? strings + off : NULL;
}

/* ---- reading the feature sections (10..17) ------------------------------- */

static bool rate_ok(uint32_t count, uint32_t period)
{
	return count && (period == 1 || period == 60) &&
	       count / period <= SN_RATE_MAX_PER_S;
}

static bool duration_ok(uint32_t secs)
{
	return secs >= 1 && secs <= SN_DURATION_MAX;
}

/* A strict prefix of either family; false when malformed. */
static bool prefix_from_file(const struct file_prefix_any *f,
			     struct sn_prefix *out)
{
	struct sn_prefix m;

	if ((f->family != SN_FAMILY_V4 && f->family != SN_FAMILY_V6) ||
	    f->len > (f->family == SN_FAMILY_V4 ? 32 : 128) || f->pad)
		return false;
	*out = (struct sn_prefix){ .family = f->family, .len = f->len };
	memcpy(out->addr, f->addr, 16);
	m = *out;
	sn_prefix_mask(&m);
	return !memcmp(m.addr, out->addr, 16);
}

/* Lower-case host-name characters only, 1..253 long (sema normalised). */
static bool dns_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SN_DNS_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '.'))
			return false;
	return true;
}

static int parse_limits(const uint8_t *buf, const struct file_section *sec,
			const char *strings, struct sn_arena *a,
			struct sn_image_features *f, char *err, size_t errlen)
{
	const struct file_section *sl = &sec[SEC_LIMITS];
	const struct file_section *sp = &sec[SEC_LIMIT_PORTS];
	const struct file_section *sx = &sec[SEC_LIMIT_PREFIXES];
	uint64_t next_port = 0, next_prefix = 0;

	f->n_limits = (uint32_t)sl->count;
	f->limits = sn_arena_calloc(a, sl->count + 1, sizeof(*f->limits));
	struct sn_image_ports *ports =
		sn_arena_calloc(a, sp->count + 1, sizeof(*ports));
	struct sn_prefix *prefixes =
		sn_arena_calloc(a, sx->count + 1, sizeof(*prefixes));

	if (sl->count > UINT32_MAX || !f->limits || !ports || !prefixes)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->n_limits; i++) {
		struct file_limit l;

		memcpy(&l, buf + sl->offset + i * sizeof(l), sizeof(l));
		const char *file = str_at(strings, sec[SEC_STRINGS].count, l.file);
		const char *text = str_at(strings, sec[SEC_STRINGS].count, l.text);

		/* Records tile the port and prefix sections in id order. */
		if (l.id != i || !file || !text || !l.burst ||
		    l.burst > SN_BURST_MAX ||
		    !rate_ok(l.rate_count, l.rate_period) ||
		    l.rate_fp != ((uint64_t)l.rate_count << 32) / l.rate_period ||
		    l.key_v4 < SN_KEY_V4_MIN || l.key_v4 > 32 ||
		    l.key_v6 < SN_KEY_V6_MIN || l.key_v6 > 128 ||
		    l.proto < SN_PROTO_ANY || l.proto > 254 ||
		    (l.block_for && !duration_ok(l.block_for)) ||
		    (l.n_ports && l.proto != SN_PROTO_TCP &&
		     l.proto != SN_PROTO_UDP) ||
		    l.first_port != next_port ||
		    l.n_ports > sp->count - next_port ||
		    l.first_prefix != next_prefix || l.n_prefixes == 0 ||
		    l.n_prefixes > sx->count - next_prefix)
			return bad(err, errlen, "limit %u malformed", i);
		f->limits[i] = (struct sn_image_limit){
			.id = l.id, .identity = l.identity,
			.rate_count = l.rate_count, .rate_period = l.rate_period,
			.rate_fp = l.rate_fp, .burst = l.burst,
			.key_v4 = l.key_v4, .key_v6 = l.key_v6, .proto = l.proto,
			.block_for = l.block_for, .ports = ports + l.first_port,
			.n_ports = l.n_ports, .srcs = prefixes + l.first_prefix,
			.n_srcs = l.n_prefixes, .file = file, .line = l.line,
			.col = l.col, .text = text,
		};
		/* Ports ascending and disjoint, prefixes strictly ascending:
		 * the runtime may search them. */
		for (uint32_t j = 0; j < l.n_ports; j++) {
			struct file_limit_port p;

			memcpy(&p, buf + sp->offset + (next_port + j) * sizeof(p),
			       sizeof(p));
			if (p.limit != i || p.lo > p.hi ||
			    (j && p.lo <= ports[next_port + j - 1].hi))
				return bad(err, errlen, "limit port %llu malformed",
					   (unsigned long long)(next_port + j));
			ports[next_port + j] = (struct sn_image_ports){ p.lo, p.hi };
		}
		for (uint32_t j = 0; j < l.n_prefixes; j++) {
			struct file_prefix_any p;
			struct sn_prefix *x = &prefixes[next_prefix + j];

			memcpy(&p, buf + sx->offset + (next_prefix + j) * sizeof(p),
			       sizeof(p));
			if (p.owner != i || !prefix_from_file(&p, x) ||
			    (j && sn_prefix_cmp(x - 1, x) >= 0))
				return bad(err, errlen,
					   "limit prefix %llu malformed",
					   (unsigned long long)(next_prefix + j));
		}
		next_port += l.n_ports;
		next_prefix += l.n_prefixes;
	}
	if (next_port != sp->count || next_prefix != sx->count)
		return bad(err, errlen, "limit ports or prefixes left over");
	return 0;
}

static int parse_features(const uint8_t *buf, const struct file_section *sec,
			  const char *strings, struct sn_arena *a,
			  struct sn_image *img, char *err, size_t errlen)
{
	struct sn_image_features *f = sn_arena_calloc(a, 1, sizeof(*f));
	const struct file_section *sc = &sec[SEC_SYNCOOKIES];
	const struct file_section *sn = &sec[SEC_DNS_NAMES];
	const struct file_section *sv = &sec[SEC_AUTOBLOCK_NEVER];
	struct file_dns d;
	struct file_autoblock ab;
	int rc;

	if (!f)
		return -ENOMEM;
	rc = parse_limits(buf, sec, strings, a, f, err, errlen);
	if (rc)
		return rc;

	f->n_syncookies = (uint32_t)sc->count;
	f->syncookies = sn_arena_calloc(a, sc->count + 1, sizeof(*f->syncookies));
	f->n_dns_names = (uint32_t)sn->count;
	f->dns_names = sn_arena_calloc(a, sn->count + 1, sizeof(*f->dns_names));
	f->n_never = (uint32_t)sv->count;
	f->never = sn_arena_calloc(a, sv->count + 1, sizeof(*f->never));
	if (!f->syncookies || !f->dns_names || !f->never)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->n_syncookies; i++) {
		struct file_syncookie c;

		memcpy(&c, buf + sc->offset + i * sizeof(c), sizeof(c));
		if (c.lo > c.hi || !rate_ok(c.count, c.period) ||
		    (i && c.lo <= f->syncookies[i - 1].hi))
			return bad(err, errlen, "syncookies entry %u malformed", i);
		f->syncookies[i] = (struct sn_image_syncookie){ c.lo, c.hi,
								c.count, c.period };
	}
	for (uint32_t i = 0; i < f->n_dns_names; i++) {
		struct file_dns_name n;

		memcpy(&n, buf + sn->offset + i * sizeof(n), sizeof(n));
		const char *name = str_at(strings, sec[SEC_STRINGS].count, n.name);

		if (!name || !dns_name_ok(name) || n.wildcard > 1)
			return bad(err, errlen, "DNS name %u malformed", i);
		f->dns_names[i] = (struct sn_image_dns_name){ name, n.wildcard };
	}
	for (uint32_t i = 0; i < f->n_never; i++) {
		struct file_prefix_any p;

		memcpy(&p, buf + sv->offset + i * sizeof(p), sizeof(p));
		if (p.owner || !prefix_from_file(&p, &f->never[i]) ||
		    (i && sn_prefix_cmp(&f->never[i - 1], &f->never[i]) >= 0))
			return bad(err, errlen, "autoblock never prefix %u "
				   "malformed", i);
	}

	if (sec[SEC_DNS].count != 1 || sec[SEC_AUTOBLOCK].count != 1)
		return bad(err, errlen, "dns or autoblock section malformed");
	memcpy(&d, buf + sec[SEC_DNS].offset, sizeof(d));
	if (!duration_ok(d.stale_ttl) || !duration_ok(d.stale_max_age) ||
	    (d.query_rate_count ? !rate_ok(d.query_rate_count,
					    d.query_rate_period)
				: d.query_rate_period != 0) ||
	    d.min_ttl > SN_DURATION_MAX || d.name_length > SN_DNS_NAME_MAX ||
	    d.label_entropy_milli > SN_ENTROPY_MAX_MILLI || d.new_domains > 1 ||
	    d.written >= 1u << 7)
		return bad(err, errlen, "dns settings malformed");
	f->dns = (struct sn_image_dns){
		d.stale_ttl, d.stale_max_age, d.query_rate_count,
		d.query_rate_period, d.min_ttl, d.name_length,
		d.label_entropy_milli, d.new_domains, d.written,
	};
	memcpy(&ab, buf + sec[SEC_AUTOBLOCK].offset, sizeof(ab));
	if (ab.mode > SN_MODE_ENFORCE || ab.max_v4 < SN_KEY_V4_MIN ||
	    ab.max_v4 > 32 || ab.max_v6 < SN_KEY_V6_MIN || ab.max_v6 > 128 ||
	    ab.pad || !duration_ok(ab.ttl) ||
	    !rate_ok(ab.rate_count, ab.rate_period) || ab.written >= 1u << 5)
		return bad(err, errlen, "autoblock settings malformed");
	f->autoblock = (struct sn_image_autoblock){
		.mode = ab.mode, .max_v4 = ab.max_v4, .max_v6 = ab.max_v6,
		.ttl = ab.ttl, .rate_count = ab.rate_count,
		.rate_period = ab.rate_period, .written = ab.written,
	};
	img->features = f;
	return 0;
}

/* Sections 18-21 of a version 4 file, then sn_srcmap_check. */
static int srcmap_from_file(const uint8_t *buf, const struct file_section *sec,
			    struct sn_arena *a, struct sn_image *img, char *err,
			    size_t errlen)
{
	for (int f = 0; f < 2; f++) {
		struct sn_srcmap *m = f ? &img->src_v6 : &img->src_v4;
		const struct file_section *sn = &sec[SEC_SRC_NODES_V4 + f];
		const struct file_section *sr = &sec[SEC_SRC_RANGES_V4 + f];

		if (sn->count > SN_SRC_INDEX_MASK + 1ull ||
		    sr->count > SN_SRC_INDEX_MASK + 1ull ||
		    (!sn->count != !sr->count))
			return bad(err, errlen, "IPv%d source trie malformed",
				   f ? 6 : 4);
		m->n_nodes = (uint32_t)sn->count;
		m->n_ranges = (uint32_t)sr->count;
		m->nodes = sn_arena_calloc(a, m->n_nodes + 1, sizeof(*m->nodes));
		m->ranges = sn_arena_calloc(a, m->n_ranges + 1, sizeof(*m->ranges));
		if (!m->nodes || !m->ranges)
			return -ENOMEM;
		memcpy(m->nodes, buf + sn->offset, m->n_nodes * sizeof(*m->nodes));
		for (uint32_t i = 0; i < m->n_ranges; i++) {
			struct file_src_range_v6 r = { 0 };

			memcpy(&r, buf + sr->offset + i * sr->elem_size,
			       sr->elem_size);
			m->ranges[i].class_id = r.class_id;
			memcpy(m->ranges[i].start, r.start, f ? 16 : 4);
		}
	}
	return sn_srcmap_check(img, err, errlen);
}

int sn_image_parse(const void *data, size_t len, struct sn_arena *a,
		   struct sn_image **out, char *err, size_t errlen)
{
	const uint8_t *buf = data;
	struct file_header hdr;
	struct file_section sec[SEC_COUNT + 1] = { 0 }; /* indexed by type */

	if (len < sizeof(hdr))
		return bad(err, errlen, "image truncated (%zu bytes)", len);
	memcpy(&hdr, buf, sizeof(hdr));
	if (memcmp(hdr.magic, SN_IMAGE_MAGIC, 8))
		return bad(err, errlen, "not a 47Sentry policy image");
	/*
	 * Version 2 is version 3 without sections 18-21: LPM tries.  Version
	 * 3 encoded sections 18-19 differently (ranges in their own arrays):
	 * its structures are rebuilt from the class prefixes.
	 */
	if (hdr.version != SN_IMAGE_VERSION && hdr.version != 2 &&
	    hdr.version != 3)
		return bad(err, errlen, "image format version %u, expected %u",
			   hdr.version, SN_IMAGE_VERSION);
	if (hdr.abi_version != SN_ABI_VERSION)
		return bad(err, errlen, "image ABI version %u, expected %u",
			   hdr.abi_version, SN_ABI_VERSION);
	if (hdr.file_size != len || hdr.header_size != sizeof(hdr) ||
	    hdr.n_sections > 64 ||
	    sizeof(hdr) + hdr.n_sections * sizeof(struct file_section) > len)
		return bad(err, errlen, "image header inconsistent with size %zu",
			   len);

	/* Checksum first: nothing below needs to trust a corrupt file. */
	uint8_t want[32], got[32];
	uint8_t *copy = malloc(len);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	memcpy(want, hdr.checksum, 32);
	memset(copy + offsetof(struct file_header, checksum), 0, 32);
	int rc = sha256(copy, len, got);

	free(copy);
	if (rc)
		return rc;
	if (memcmp(want, got, 32))
		return bad(err, errlen, "image checksum mismatch (corrupt file)");

	for (uint32_t i = 0; i < hdr.n_sections; i++) {
		struct file_section s;

		memcpy(&s, buf + sizeof(hdr) + i * sizeof(s), sizeof(s));
		if (s.type == 0 || s.type > SEC_COUNT)
			continue; /* unknown sections are for newer readers */
		if (s.elem_size == 0 || s.count > len / s.elem_size ||
		    s.offset > len || s.count * s.elem_size > len - s.offset)
			return bad(err, errlen, "section %u out of bounds", s.type);
		sec[s.type] = s;
	}
	static const uint32_t elem[SEC_COUNT + 1] = {
		[SEC_CONSTANTS] = sizeof(struct file_constants),
		[SEC_L4_CLASSES] = sizeof(struct file_l4_class),
		[SEC_PROTO] = sizeof(struct sn_proto_entry),
		[SEC_PORT_RUNS] = sizeof(struct file_port_run),
		[SEC_DECISIONS] = sizeof(struct sn_decision),
		[SEC_PREFIX_V4] = sizeof(struct file_prefix_v4),
		[SEC_PREFIX_V6] = sizeof(struct file_prefix_v6),
		[SEC_RULES] = sizeof(struct file_rule),
		[SEC_STRINGS] = 1,
		[SEC_LIMITS] = sizeof(struct file_limit),
		[SEC_LIMIT_PORTS] = sizeof(struct file_limit_port),
		[SEC_LIMIT_PREFIXES] = sizeof(struct file_prefix_any),
		[SEC_SYNCOOKIES] = sizeof(struct file_syncookie),
		[SEC_DNS_NAMES] = sizeof(struct file_dns_name),
		[SEC_DNS] = sizeof(struct file_dns),
		[SEC_AUTOBLOCK] = sizeof(struct file_autoblock),
		[SEC_AUTOBLOCK_NEVER] = sizeof(struct file_prefix_any),
		[SEC_SRC_NODES_V4] = sizeof(uint32_t),
		[SEC_SRC_NODES_V6] = sizeof(uint32_t),
		[SEC_SRC_RANGES_V4] = sizeof(struct file_src_range_v4),
		[SEC_SRC_RANGES_V6] = sizeof(struct file_src_range_v6),
	};
	for (int t = 1; t <= (hdr.version == 2 ? SEC_COUNT_V2 : SEC_COUNT); t++)
		if (sec[t].elem_size != elem[t])
			return bad(err, errlen, "section %d missing or malformed", t);

	struct file_constants fc;

	memcpy(&fc, buf + sec[SEC_CONSTANTS].offset, sizeof(fc));
	if (sec[SEC_CONSTANTS].count != 1 || sec[SEC_PROTO].count != 256)
		return bad(err, errlen, "constants or protocol table malformed");

	struct sn_image *img = sn_arena_calloc(a, 1, sizeof(*img));

	if (!img)
		return -ENOMEM;
	img->constants = (struct sn_constants){ fc.abi_version, fc.l4_stride,
						fc.port_tables };
	img->n_l4 = (uint32_t)sec[SEC_L4_CLASSES].count;
	img->n_classes = fc.n_classes;
	if (img->n_l4 == 0 || fc.l4_stride < img->n_l4 ||
	    (uint64_t)fc.n_classes * fc.l4_stride != sec[SEC_DECISIONS].count)
		return bad(err, errlen, "decision table size inconsistent");
	memcpy(img->checksum, want, 32);

	img->l4 = sn_arena_calloc(a, img->n_l4, sizeof(*img->l4));
	img->n_port_runs = sec[SEC_PORT_RUNS].count;
	img->port_runs = sn_arena_calloc(a, img->n_port_runs + 1,
					 sizeof(*img->port_runs));
	img->decisions = sn_arena_calloc(a, sec[SEC_DECISIONS].count,
					 sizeof(*img->decisions));
	img->n_v4 = sec[SEC_PREFIX_V4].count;
	img->n_v6 = sec[SEC_PREFIX_V6].count;
	img->v4 = sn_arena_calloc(a, img->n_v4 + 1, sizeof(*img->v4));
	img->v6 = sn_arena_calloc(a, img->n_v6 + 1, sizeof(*img->v6));
	img->n_rules = (uint32_t)sec[SEC_RULES].count;
	img->rules = sn_arena_calloc(a, img->n_rules + 1, sizeof(*img->rules));
	const char *strings =
		sn_arena_strndup(a, (const char *)buf + sec[SEC_STRINGS].offset,
				 sec[SEC_STRINGS].count);
	if (!img->l4 || !img->port_runs || !img->decisions || !img->v4 ||
	    !img->v6 || !img->rules || !strings)
		return -ENOMEM;

	for (uint32_t i = 0; i < img->n_l4; i++) {
		struct file_l4_class f;

		memcpy(&f, buf + sec[SEC_L4_CLASSES].offset + i * sizeof(f),
		       sizeof(f));
		if (f.port_table > SN_PORT_TABLES)
			return bad(err, errlen, "L4 class %u malformed", i);
		img->l4[i] = (struct sn_l4_class){ f.proto, f.port_table,
						   f.noport, f.lo, f.hi };
	}
	memcpy(img->proto, buf + sec[SEC_PROTO].offset, sizeof(img->proto));
	for (int p = 0; p < 256; p++)
		if (img->proto[p].l4_noport >= img->n_l4 ||
		    img->proto[p].port_table > SN_PORT_TABLES)
			return bad(err, errlen, "protocol entry %d malformed", p);

	/* Port runs must be sorted and tile every table in use exactly. */
	uint32_t next[SN_PORT_TABLES + 1] = { 0 };

	for (size_t i = 0; i < img->n_port_runs; i++) {
		struct file_port_run f;

		memcpy(&f, buf + sec[SEC_PORT_RUNS].offset + i * sizeof(f),
		       sizeof(f));
		if (f.table < 1 || f.table > SN_PORT_TABLES ||
		    f.lo != next[f.table] || f.hi < f.lo ||
		    f.l4_class >= img->n_l4 ||
		    (i && f.table < img->port_runs[i - 1].table))
			return bad(err, errlen, "port run %zu malformed", i);
		next[f.table] = (uint32_t)f.hi + 1;
		img->port_runs[i] = (struct sn_port_run){
			(uint8_t)f.table, f.lo, f.hi, f.l4_class };
	}
	for (int t = 1; t <= SN_PORT_TABLES; t++) {
		bool used = img->constants.port_tables & (1u << t);

		if (used ? next[t] != 65536 : next[t] != 0)
			return bad(err, errlen, "port table %d incomplete", t);
	}
	for (int p = 0; p < 256; p++)
		if (img->proto[p].port_table &&
		    !(img->constants.port_tables & (1u << img->proto[p].port_table)))
			return bad(err, errlen, "protocol %d uses an empty port table",
				   p);

	memcpy(img->decisions, buf + sec[SEC_DECISIONS].offset,
	       sec[SEC_DECISIONS].count * sizeof(*img->decisions));
	for (uint64_t i = 0; i < sec[SEC_DECISIONS].count; i++) {
		const struct sn_decision *d = &img->decisions[i];

		if (i % fc.l4_stride >= img->n_l4)
			continue; /* padding columns */
		if (d->rule_id >= img->n_rules ||
		    (d->verdict != SN_VERDICT_ALLOW && d->verdict != SN_VERDICT_BLOCK))
			return bad(err, errlen, "decision %llu malformed",
				   (unsigned long long)i);
	}

	for (size_t i = 0; i < img->n_v4; i++) {
		struct file_prefix_v4 f;

		memcpy(&f, buf + sec[SEC_PREFIX_V4].offset + i * sizeof(f),
		       sizeof(f));
		if (f.len > 32 || f.class_id >= img->n_classes)
			return bad(err, errlen, "IPv4 prefix %zu malformed", i);
		img->v4[i].class_id = f.class_id;
		img->v4[i].prefix = (struct sn_prefix){ .family = SN_FAMILY_V4,
							.len = f.len };
		memcpy(img->v4[i].prefix.addr, f.addr, 4);
	}
	for (size_t i = 0; i < img->n_v6; i++) {
		struct file_prefix_v6 f;

		memcpy(&f, buf + sec[SEC_PREFIX_V6].offset + i * sizeof(f),
		       sizeof(f));
		if (f.len > 128 || f.class_id >= img->n_classes)
			return bad(err, errlen, "IPv6 prefix %zu malformed", i);
		img->v6[i].class_id = f.class_id;
		img->v6[i].prefix = (struct sn_prefix){ .family = SN_FAMILY_V6,
							.len = f.len };
		memcpy(img->v6[i].prefix.addr, f.addr, 16);
	}
	if (!img->n_v4 || img->v4[0].prefix.len || !img->n_v6 ||
	    img->v6[0].prefix.len)
		return bad(err, errlen, "image lacks a /0 root prefix");
	/* Evaluators binary-search these: strictly ascending, no host bits. */
	for (int f = 0; f < 2; f++) {
		const struct sn_class_prefix *v = f ? img->v6 : img->v4;
		size_t n = f ? img->n_v6 : img->n_v4;

		for (size_t i = 0; i < n; i++) {
			struct sn_prefix m = v[i].prefix;

			sn_prefix_mask(&m);
			if (memcmp(m.addr, v[i].prefix.addr, 16) ||
			    (i && sn_prefix_cmp(&v[i - 1].prefix, &v[i].prefix) >= 0))
				return bad(err, errlen, "IPv%d prefix %zu out of order "
					   "or with host bits", f ? 6 : 4, i);
		}
	}

	if (img->n_rules < SN_RULE_FIRST)
		return bad(err, errlen, "image lacks the pseudo-rules");
	for (uint32_t i = 0; i < img->n_rules; i++) {
		struct file_rule f;

		memcpy(&f, buf + sec[SEC_RULES].offset + i * sizeof(f), sizeof(f));
		const char *file = str_at(strings, sec[SEC_STRINGS].count, f.file);
		const char *text = str_at(strings, sec[SEC_STRINGS].count, f.text);

		if (f.id != i || !file || !text)
			return bad(err, errlen, "rule %u malformed", i);
		img->rules[i] = (struct sn_image_rule){
			.id = f.id, .verdict = f.verdict, .tier = f.tier,
			.proto = f.proto, .file = file, .line = f.line,
			.col = f.col, .text = text,
		};
	}
	rc = 0;
	if (hdr.version == SN_IMAGE_VERSION)
		rc = srcmap_from_file(buf, sec, a, img, err, errlen);
	else if (hdr.version == 3)
		rc = sn_srcmap_build(a, img, SN_SRCMAP_AUTO);
	if (rc)
		return rc;
	rc = parse_features(buf, sec, strings, a, img, err, errlen);
	if (rc)
		return rc;
	/* Limit rules have rule ids after the policy rules (SPEC.md 5.3). */
	uint32_t n_limits = sn_image_features(img)->n_limits;

	if (img->n_rules - SN_RULE_FIRST < n_limits)
		return bad(err, errlen, "rule table lacks the limit rules");
	for (uint64_t i = 0; i < sec[SEC_DECISIONS].count; i++)
		if (i % fc.l4_stride < img->n_l4 &&
		    img->decisions[i].limit > n_limits)
			return bad(err, errlen, "decision %llu names limit %u of %u",
				   (unsigned long long)i,
				   img->decisions[i].limit, n_limits);
	*out = img;
	return 0;
}

int sn_image_read_file(const char *path, struct sn_arena *a,
		       struct sn_image **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int rc;

	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)1 << 32) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file of sane size", path);
		return -EINVAL;
	}
	size_t len = (size_t)st.st_size, got = 0;
	uint8_t *buf = malloc(len ? len : 1);

	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			snprintf(err, errlen, "%s: read failed", path);
			return rc;
		}
		got += (size_t)n;
	}
	close(fd);
	rc = sn_image_parse(buf, len, a, out, err, errlen);
	free(buf);
	return rc;
}

/*
 * Policy image file format (SPEC.md, "Policy image"): a fixed header, a
 * section table and 8-byte aligned sections of fixed-size little-endian
 * records.  The SHA-256 in the header covers the whole file with the
 * checksum field zeroed; it doubles as the policy's identity (no timestamp
 * is stored, so one policy always compiles to one checksum).
 */
#include "image.h"

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
	SEC_COUNT = 9,
};

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

int sn_image_serialize(struct sn_image *img, void **out, size_t *out_len)
{
	struct strtab st = { .buf = calloc(1, 256), .len = 1, .cap = 256 };
	struct file_rule *rules = calloc(img->n_rules ? img->n_rules : 1,
					 sizeof(*rules));
	long file_off = 0, text_off = 0;
	const char *last_file = NULL, *last_text = NULL;
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
	if (hdr.version != SN_IMAGE_VERSION)
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
	};
	for (int t = 1; t <= SEC_COUNT; t++)
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

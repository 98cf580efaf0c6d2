/*
 * Human and machine renderings of a compiled image: `--dump ir` (text for
 * people and golden tests), `--dump json` (for tools), `--dump constants`
 * (the generated BPF constants as a C header).
 */
#include "dump.h"

#include <stdlib.h>

#include "addr.h"
#include "l4class.h"

static const char *verdict_name(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : v == SN_VERDICT_ALLOW ? "allow" : "?";
}

static const char *table_name(unsigned t)
{
	return t == SN_PORT_TABLE_TCP ? "tcp" : t == SN_PORT_TABLE_UDP ? "udp" : "none";
}

/* The protocol's name into buf ("other": protocols no rule names). */
static void proto_name(int16_t proto, char *buf, size_t n)
{
	char tmp[16];

	snprintf(buf, n, "%s", sn_proto_name(proto, "other", tmp, sizeof(tmp)));
}

static void l4_describe(const struct sn_l4_class *c, char *buf, size_t n)
{
	char p[16];

	proto_name(c->proto, p, sizeof(p));
	if (c->proto == SN_PROTO_ANY)
		snprintf(buf, n, "protocols no rule names");
	else if (c->noport)
		snprintf(buf, n, "%s without port (non-first fragment)", p);
	else if (c->port_table)
		snprintf(buf, n, "%s port %u-%u", p, c->lo, c->hi);
	else
		snprintf(buf, n, "%s", p);
}

static void rule_location(const struct sn_image_rule *r, char *buf, size_t n)
{
	if (r->file[0])
		snprintf(buf, n, "%s:%u:%u", r->file, r->line, r->col);
	else
		snprintf(buf, n, "-");
}

/* ---- features (limits, syncookies, dns, autoblock) ----------------------
 * Shown only when the policy has them, so the dumps of policies without
 * them are those of image version 1. */

static void rate_text(uint32_t count, uint32_t period, char *buf, size_t n)
{
	snprintf(buf, n, "%u/%s", count, period == 60 ? "m" : "s");
}

static void ports_text(const struct sn_image_ports *p, uint32_t n, char *buf,
		       size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < n && len + 16 < size; i++) {
		if (p[i].lo == p[i].hi)
			len += (size_t)snprintf(buf + len, size - len, "%s%u",
						i ? "," : "", p[i].lo);
		else
			len += (size_t)snprintf(buf + len, size - len, "%s%u-%u",
						i ? "," : "", p[i].lo, p[i].hi);
	}
	if (n && len + 16 >= size)
		snprintf(buf + len, size - len, ",...");
}

static bool dns_shown(const struct sn_image_features *f)
{
	return f->n_dns_names || f->dns.written;
}

static bool autoblock_shown(const struct sn_image_features *f)
{
	return f->n_never || f->autoblock.written;
}

static void ir_features(FILE *out, const struct sn_image_features *f)
{
	char buf[256], r[32];

	if (f->n_limits)
		fprintf(out, "limits (%u):\n", f->n_limits);
	for (uint32_t i = 0; i < f->n_limits; i++) {
		const struct sn_image_limit *l = &f->limits[i];
		char p[16];

		fprintf(out, "  #%-3u %s  %s:%u:%u\n", l->id, l->text, l->file,
			l->line, l->col);
		proto_name(l->proto, p, sizeof(p));
		rate_text(l->rate_count, l->rate_period, r, sizeof(r));
		ports_text(l->ports, l->n_ports, buf, sizeof(buf));
		fprintf(out, "       identity %016llx rate %s (%llu/2^32 per s) "
			"burst %u key /%u /%u block %us %s%s%s\n",
			(unsigned long long)l->identity, r,
			(unsigned long long)l->rate_fp, l->burst, l->key_v4,
			l->key_v6, l->block_for,
			l->proto == SN_PROTO_ANY ? "any" : p,
			l->n_ports ? " port " : "", buf);
		for (uint32_t j = 0; j < l->n_srcs; j++) {
			sn_prefix_format(&l->srcs[j], buf, sizeof(buf));
			fprintf(out, "       %s\n", buf);
		}
	}
	if (f->n_syncookies)
		fprintf(out, "syncookies (%u):\n", f->n_syncookies);
	for (uint32_t i = 0; i < f->n_syncookies; i++) {
		const struct sn_image_syncookie *c = &f->syncookies[i];

		rate_text(c->count, c->period, r, sizeof(r));
		fprintf(out, "  tcp port %u-%u above %s\n", c->lo, c->hi, r);
	}
	if (dns_shown(f)) {
		const struct sn_image_dns *d = &f->dns;

		fprintf(out, "dns (%u blocked names):\n", f->n_dns_names);
		for (uint32_t i = 0; i < f->n_dns_names; i++)
			fprintf(out, "  block %s%s\n",
				f->dns_names[i].wildcard ? "*." : "",
				f->dns_names[i].name);
		fprintf(out, "  stale ttl %us max-age %us\n", d->stale_ttl,
			d->stale_max_age);
		if (d->query_rate_count)
			rate_text(d->query_rate_count, d->query_rate_period, r,
				  sizeof(r));
		fprintf(out, "  alert query-rate %s min-ttl %us name-length %u "
			"label-entropy %u.%03u new-domains %s\n",
			d->query_rate_count ? r : "off", d->min_ttl,
			d->name_length, d->label_entropy_milli / 1000,
			d->label_entropy_milli % 1000,
			d->new_domains ? "on" : "off");
	}
	if (autoblock_shown(f)) {
		const struct sn_image_autoblock *ab = &f->autoblock;

		rate_text(ab->rate_count, ab->rate_period, r, sizeof(r));
		fprintf(out, "autoblock:\n  mode %s ttl %us max-prefix ipv4 /%u "
			"ipv6 /%u rate %s\n",
			ab->mode == SN_MODE_ENFORCE ? "enforce" : "dry-run",
			ab->ttl, ab->max_v4, ab->max_v6, r);
		for (uint32_t i = 0; i < f->n_never; i++) {
			sn_prefix_format(&f->never[i], buf, sizeof(buf));
			fprintf(out, "  never %s\n", buf);
		}
	}
}

void sn_dump_ir(FILE *out, const struct sn_image *img)
{
	char buf[256], loc[256];

	fprintf(out, "rules (%u):\n", img->n_rules);
	for (uint32_t i = 0; i < img->n_rules; i++) {
		const struct sn_image_rule *r = &img->rules[i];

		rule_location(r, loc, sizeof(loc));
		fprintf(out, "  #%-3u %-5s %-6s %-40s %s\n", r->id,
			verdict_name(r->verdict),
			r->tier == SN_TIER_ALWAYS ? "always" : "", r->text, loc);
	}
	fprintf(out, "l4 classes (%u, stride %u):\n", img->n_l4,
		img->constants.l4_stride);
	for (uint32_t i = 0; i < img->n_l4; i++) {
		l4_describe(&img->l4[i], buf, sizeof(buf));
		fprintf(out, "  L%-3u %s\n", i, buf);
	}
	fprintf(out, "source classes (%u):\n", img->n_classes);
	for (uint32_t c = 0; c < img->n_classes; c++) {
		fprintf(out, "  C%-3u", c);
		for (uint32_t l = 0; l < img->n_l4; l++) {
			const struct sn_decision *d =
				&img->decisions[(size_t)c * img->constants.l4_stride + l];

			fprintf(out, " L%u:#%u:%s", l, d->rule_id,
				verdict_name(d->verdict));
			if (d->limit) /* the limit's index, as under limits */
				fprintf(out, "+limit#%u", d->limit - 1u);
		}
		fputc('\n', out);
	}
	fprintf(out, "ipv4 prefixes (%zu):\n", img->n_v4);
	for (size_t i = 0; i < img->n_v4; i++) {
		sn_prefix_format(&img->v4[i].prefix, buf, sizeof(buf));
		fprintf(out, "  %-43s C%u\n", buf, img->v4[i].class_id);
	}
	fprintf(out, "ipv6 prefixes (%zu):\n", img->n_v6);
	for (size_t i = 0; i < img->n_v6; i++) {
		sn_prefix_format(&img->v6[i].prefix, buf, sizeof(buf));
		fprintf(out, "  %-43s C%u\n", buf, img->v6[i].class_id);
	}
	ir_features(out, sn_image_features(img));
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void json_prefixes(FILE *out, const struct sn_class_prefix *v, size_t n)
{
	char buf[64];

	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		sn_prefix_format(&v[i].prefix, buf, sizeof(buf));
		fprintf(out, "%s\n      {\"prefix\": \"%s\", \"class\": %u}",
			i ? "," : "", buf, v[i].class_id);
	}
	fprintf(out, "%s]", n ? "\n    " : "");
}

static void json_rate(FILE *out, uint32_t count, uint32_t period)
{
	fprintf(out, "{\"count\": %u, \"period_s\": %u}", count, period);
}

static void json_prefix_list(FILE *out, const struct sn_prefix *v, uint32_t n)
{
	char buf[SN_PREFIX_STRLEN];

	fputc('[', out);
	for (uint32_t i = 0; i < n; i++) {
		sn_prefix_format(&v[i], buf, sizeof(buf));
		fprintf(out, "%s\"%s\"", i ? ", " : "", buf);
	}
	fputc(']', out);
}

static void json_features(FILE *out, const struct sn_image_features *f)
{
	char p[16];

	if (f->n_limits)
		fprintf(out, ",\n  \"limits\": [");
	for (uint32_t i = 0; i < f->n_limits; i++) {
		const struct sn_image_limit *l = &f->limits[i];

		proto_name(l->proto, p, sizeof(p));
		fprintf(out, "%s\n    {\"id\": %u, \"identity\": \"%016llx\", "
			"\"text\": ", i ? "," : "", l->id,
			(unsigned long long)l->identity);
		json_str(out, l->text);
		fprintf(out, ", \"location\": {\"file\": ");
		json_str(out, l->file);
		fprintf(out, ", \"line\": %u, \"col\": %u},\n     \"rate\": ",
			l->line, l->col);
		json_rate(out, l->rate_count, l->rate_period);
		fprintf(out, ", \"rate_fp32\": %llu, \"burst\": %u, "
			"\"key\": {\"ipv4\": %u, \"ipv6\": %u}, "
			"\"block_for_s\": %u,\n     \"proto\": \"%s\", "
			"\"ports\": [",
			(unsigned long long)l->rate_fp, l->burst, l->key_v4,
			l->key_v6, l->block_for,
			l->proto == SN_PROTO_ANY ? "any" : p);
		for (uint32_t j = 0; j < l->n_ports; j++)
			fprintf(out, "%s[%u, %u]", j ? ", " : "", l->ports[j].lo,
				l->ports[j].hi);
		fprintf(out, "], \"sources\": ");
		json_prefix_list(out, l->srcs, l->n_srcs);
		fputc('}', out);
	}
	if (f->n_limits)
		fprintf(out, "\n  ]");
	if (f->n_syncookies)
		fprintf(out, ",\n  \"syncookies\": [");
	for (uint32_t i = 0; i < f->n_syncookies; i++) {
		const struct sn_image_syncookie *c = &f->syncookies[i];

		fprintf(out, "%s\n    {\"ports\": [%u, %u], \"above\": ",
			i ? "," : "", c->lo, c->hi);
		json_rate(out, c->count, c->period);
		fputc('}', out);
	}
	if (f->n_syncookies)
		fprintf(out, "\n  ]");
	if (dns_shown(f)) {
		const struct sn_image_dns *d = &f->dns;

		fprintf(out, ",\n  \"dns\": {\n    \"block\": [");
		for (uint32_t i = 0; i < f->n_dns_names; i++) {
			fprintf(out, "%s\n      {\"name\": ", i ? "," : "");
			json_str(out, f->dns_names[i].name);
			fprintf(out, ", \"wildcard\": %s}",
				f->dns_names[i].wildcard ? "true" : "false");
		}
		fprintf(out, "%s],\n    \"stale\": {\"ttl_s\": %u, "
			"\"max_age_s\": %u},\n    \"alert\": {\"query_rate\": ",
			f->n_dns_names ? "\n    " : "", d->stale_ttl,
			d->stale_max_age);
		if (d->query_rate_count)
			json_rate(out, d->query_rate_count, d->query_rate_period);
		else
			fputs("null", out);
		fprintf(out, ", \"min_ttl_s\": %u, \"name_length\": %u, "
			"\"label_entropy\": %u.%03u, \"new_domains\": %s}\n  }",
			d->min_ttl, d->name_length, d->label_entropy_milli / 1000,
			d->label_entropy_milli % 1000,
			d->new_domains ? "true" : "false");
	}
	if (autoblock_shown(f)) {
		const struct sn_image_autoblock *ab = &f->autoblock;

		fprintf(out, ",\n  \"autoblock\": {\"mode\": \"%s\", "
			"\"ttl_s\": %u, \"max_prefix\": {\"ipv4\": %u, "
			"\"ipv6\": %u},\n    \"rate\": ",
			ab->mode == SN_MODE_ENFORCE ? "enforce" : "dry-run",
			ab->ttl, ab->max_v4, ab->max_v6);
		json_rate(out, ab->rate_count, ab->rate_period);
		fprintf(out, ", \"never\": ");
		json_prefix_list(out, f->never, f->n_never);
		fputc('}', out);
	}
}

void sn_dump_json(FILE *out, const struct sn_image *img)
{
	char sum[65], p[16];

	sn_checksum_hex(img->checksum, sum);
	fprintf(out, "{\n  \"format\": \"47sentry-policy-image\",\n");
	fprintf(out, "  \"image_version\": %u,\n  \"abi_version\": %u,\n",
		SN_IMAGE_VERSION, img->constants.abi_version);
	fprintf(out, "  \"checksum\": \"sha256:%s\",\n", sum);
	fprintf(out, "  \"constants\": {\"l4_stride\": %u, \"port_tables\": %u},\n",
		img->constants.l4_stride, img->constants.port_tables);
	fprintf(out, "  \"rules\": [");
	for (uint32_t i = 0; i < img->n_rules; i++) {
		const struct sn_image_rule *r = &img->rules[i];

		proto_name(r->proto, p, sizeof(p));
		fprintf(out, "%s\n    {\"id\": %u, \"verdict\": \"%s\", \"tier\": \"%s\", "
			"\"pseudo\": %s, \"text\": ",
			i ? "," : "", r->id, verdict_name(r->verdict),
			r->tier == SN_TIER_ALWAYS ? "always" : "normal",
			r->id < SN_RULE_FIRST ? "true" : "false");
		json_str(out, r->text);
		if (r->file[0]) {
			fprintf(out, ", \"location\": {\"file\": ");
			json_str(out, r->file);
			fprintf(out, ", \"line\": %u, \"col\": %u}", r->line, r->col);
		}
		fputc('}', out);
	}
	fprintf(out, "\n  ],\n  \"l4_classes\": [");
	for (uint32_t i = 0; i < img->n_l4; i++) {
		const struct sn_l4_class *c = &img->l4[i];

		proto_name(c->proto, p, sizeof(p));
		fprintf(out, "%s\n    {\"id\": %u, \"proto\": \"%s\"", i ? "," : "",
			i, p);
		if (c->noport)
			fprintf(out, ", \"port\": \"none\"");
		else if (c->port_table)
			fprintf(out, ", \"ports\": [%u, %u]", c->lo, c->hi);
		fputc('}', out);
	}
	fprintf(out, "\n  ],\n  \"port_runs\": [");
	for (size_t i = 0; i < img->n_port_runs; i++) {
		const struct sn_port_run *r = &img->port_runs[i];

		fprintf(out, "%s\n    {\"table\": \"%s\", \"ports\": [%u, %u], "
			"\"l4_class\": %u}",
			i ? "," : "", table_name(r->table), r->lo, r->hi, r->l4_class);
	}
	fprintf(out, "%s],\n  \"source_classes\": [", img->n_port_runs ? "\n  " : "");
	for (uint32_t c = 0; c < img->n_classes; c++) {
		fprintf(out, "%s\n    {\"id\": %u, \"decisions\": [", c ? "," : "", c);
		for (uint32_t l = 0; l < img->n_l4; l++) {
			const struct sn_decision *d =
				&img->decisions[(size_t)c * img->constants.l4_stride + l];

			fprintf(out, "%s{\"l4_class\": %u, \"rule\": %u, \"verdict\": \"%s\"",
				l ? ", " : "", l, d->rule_id, verdict_name(d->verdict));
			if (d->limit)
				fprintf(out, ", \"limit\": %u", d->limit - 1u);
			fputc('}', out);
		}
		fprintf(out, "]}");
	}
	fprintf(out, "\n  ],\n  \"prefixes\": {\n    \"ipv4\": ");
	json_prefixes(out, img->v4, img->n_v4);
	fprintf(out, ",\n    \"ipv6\": ");
	json_prefixes(out, img->v6, img->n_v6);
	fprintf(out, "\n  }");
	json_features(out, sn_image_features(img));
	fprintf(out, "\n}\n");
}

void sn_dump_constants(FILE *out, const struct sn_image *img,
		       const char *source)
{
	char sum[65];

	sn_checksum_hex(img->checksum, sum);
	fprintf(out, "/* Generated by sentry-compile from %s. Do not edit. */\n",
		source);
	fprintf(out, "#ifndef SN_GENERATED_CONSTANTS_H\n");
	fprintf(out, "#define SN_GENERATED_CONSTANTS_H\n");
	fprintf(out, "#define SN_GEN_ABI_VERSION %uu\n", img->constants.abi_version);
	fprintf(out, "#define SN_GEN_L4_STRIDE %uu\n", img->constants.l4_stride);
	fprintf(out, "#define SN_GEN_PORT_TABLES 0x%xu\n",
		img->constants.port_tables);
	fprintf(out, "#define SN_GEN_L4_CLASSES %uu\n", img->n_l4);
	fprintf(out, "#define SN_GEN_SOURCE_CLASSES %uu\n", img->n_classes);
	fprintf(out, "#define SN_GEN_RULES %uu\n", img->n_rules);
	fprintf(out, "#define SN_GEN_PREFIXES_V4 %zuu\n", img->n_v4);
	fprintf(out, "#define SN_GEN_PREFIXES_V6 %zuu\n", img->n_v6);
	fprintf(out, "#define SN_GEN_POLICY_SHA256 \"%s\"\n", sum);
	fprintf(out, "#endif\n");
}

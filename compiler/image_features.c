/*
 * Image features: the policy's limit rules, syncookies ports, DNS rules
 * and auto-block guardrails, put in the form the runtime consumes (sorted,
 * deduplicated, rates in fixed point).  Separate from the verdict tables
 * (ir.c): nothing here changes which verdict a packet gets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "image.h"

static const struct sn_image_features defaults = {
	.dns = {
		.stale_ttl = SN_DNS_STALE_TTL_DEFAULT,
		.stale_max_age = SN_DNS_STALE_MAX_AGE_DEFAULT,
	},
	.autoblock = {
		.mode = SN_MODE_DRY_RUN,
		.max_v4 = SN_AUTOBLOCK_MAX_V4_DEFAULT,
		.max_v6 = SN_AUTOBLOCK_MAX_V6_DEFAULT,
		.ttl = SN_AUTOBLOCK_TTL_DEFAULT,
		.rate_count = SN_AUTOBLOCK_RATE_DEFAULT,
		.rate_period = 60,
	},
};

const struct sn_image_features *sn_image_features(const struct sn_image *img)
{
	return img->features ? img->features : &defaults;
}

static int prefix_cmp(const void *a, const void *b)
{
	return sn_prefix_cmp(a, b);
}

/* Sorted copy of srcs without duplicates, in the arena. */
static struct sn_prefix *sorted_prefixes(struct sn_arena *a,
					 const struct sn_src *srcs, size_t n,
					 uint32_t *n_out)
{
	struct sn_prefix *v = sn_arena_calloc(a, n + 1, sizeof(*v));
	size_t k = 0;

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = srcs[i].prefix;
	qsort(v, n, sizeof(*v), prefix_cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || sn_prefix_cmp(&v[k - 1], &v[i]))
			v[k++] = v[i];
	*n_out = (uint32_t)k;
	return v;
}

static int port_cmp(const void *pa, const void *pb)
{
	const struct sn_image_ports *a = pa, *b = pb;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return a->hi < b->hi ? -1 : a->hi > b->hi;
}

/* Sorted, merged copy of port ranges (overlaps join). */
static struct sn_image_ports *merged_ports(struct sn_arena *a,
					   const struct sn_port_range *r,
					   size_t n, uint32_t *n_out)
{
	struct sn_image_ports *v = sn_arena_calloc(a, n + 1, sizeof(*v));
	size_t k = 0;

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct sn_image_ports){ r[i].lo, r[i].hi };
	qsort(v, n, sizeof(*v), port_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && v[i].lo <= (uint32_t)v[k - 1].hi + 1) {
			if (v[i].hi > v[k - 1].hi)
				v[k - 1].hi = v[i].hi;
			continue;
		}
		v[k++] = v[i];
	}
	*n_out = (uint32_t)k;
	return v;
}

static int syncookie_cmp(const void *pa, const void *pb)
{
	const struct sn_image_syncookie *a = pa, *b = pb;

	return a->lo < b->lo ? -1 : a->lo > b->lo;
}

static int add_limits(struct sn_arena *a, const struct sn_policy *p,
		      struct sn_image_features *f)
{
	f->n_limits = (uint32_t)p->n_limits;
	f->limits = sn_arena_calloc(a, p->n_limits + 1, sizeof(*f->limits));
	if (!f->limits)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_limits; i++) {
		const struct sn_limit *l = &p->limits[i];
		struct sn_image_limit *o = &f->limits[i];

		*o = (struct sn_image_limit){
			.id = l->id, .identity = l->identity,
			.rate_count = l->rate.count,
			.rate_period = l->rate.period,
			.rate_fp = ((uint64_t)l->rate.count << 32) / l->rate.period,
			.burst = l->burst, .key_v4 = l->key_v4,
			.key_v6 = l->key_v6, .proto = l->proto,
			.block_for = l->block_for,
			.file = l->loc.file ? l->loc.file : "",
			.line = l->loc.line, .col = l->loc.col,
			.text = l->text ? l->text : "",
		};
		o->srcs = sorted_prefixes(a, l->srcs, l->n_srcs, &o->n_srcs);
		o->ports = merged_ports(a, l->ports, l->n_ports, &o->n_ports);
		if (!o->srcs || !o->ports)
			return -ENOMEM;
	}
	return 0;
}

static int add_syncookies(struct sn_arena *a, const struct sn_policy *p,
			  struct sn_image_features *f)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n_syncookies; i++)
		n += p->syncookies[i].n_ports;
	f->syncookies = sn_arena_calloc(a, n + 1, sizeof(*f->syncookies));
	if (!f->syncookies)
		return -ENOMEM;
	/* Sema refused ports shared by two statements, so merging each
	 * statement's ranges leaves the whole list disjoint. */
	for (size_t i = 0; i < p->n_syncookies; i++) {
		const struct sn_syncookies *c = &p->syncookies[i];
		uint32_t m;
		struct sn_image_ports *v = merged_ports(a, c->ports, c->n_ports,
							&m);

		if (!v)
			return -ENOMEM;
		for (uint32_t j = 0; j < m; j++)
			f->syncookies[f->n_syncookies++] =
				(struct sn_image_syncookie){
					v[j].lo, v[j].hi, c->above.count,
					c->above.period };
	}
	qsort(f->syncookies, f->n_syncookies, sizeof(*f->syncookies),
	      syncookie_cmp);
	return 0;
}

static uint32_t written(const struct sn_loc *l, uint32_t bit)
{
	return l->file ? bit : 0;
}

int sn_image_add_features(struct sn_arena *a, const struct sn_policy *p,
			  struct sn_image *img)
{
	struct sn_image_features *f = sn_arena_calloc(a, 1, sizeof(*f));
	const struct sn_dns *d = &p->dns;
	const struct sn_autoblock *ab = &p->autoblock;
	int rc;

	if (!f)
		return -ENOMEM;
	rc = add_limits(a, p, f);
	if (!rc)
		rc = add_syncookies(a, p, f);
	if (rc)
		return rc;
	f->dns_names = sn_arena_calloc(a, d->n_block + 1, sizeof(*f->dns_names));
	if (!f->dns_names)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_block; i++)
		f->dns_names[i] = (struct sn_image_dns_name){
			d->block[i].name, d->block[i].wildcard };
	f->n_dns_names = (uint32_t)d->n_block;
	f->dns = (struct sn_image_dns){
		.stale_ttl = d->stale_ttl,
		.stale_max_age = d->stale_max_age,
		.query_rate_count = d->query_rate.count,
		.query_rate_period = d->query_rate.count ? d->query_rate.period : 0,
		.min_ttl = d->min_ttl,
		.name_length = d->name_length,
		.label_entropy_milli = d->label_entropy_milli,
		.new_domains = d->new_domains,
		.written = written(&d->stale_ttl_loc, SN_DNS_W_STALE_TTL) |
			   written(&d->stale_max_age_loc, SN_DNS_W_STALE_MAX_AGE) |
			   written(&d->query_rate_loc, SN_DNS_W_QUERY_RATE) |
			   written(&d->min_ttl_loc, SN_DNS_W_MIN_TTL) |
			   written(&d->name_length_loc, SN_DNS_W_NAME_LENGTH) |
			   written(&d->label_entropy_loc, SN_DNS_W_LABEL_ENTROPY) |
			   written(&d->new_domains_loc, SN_DNS_W_NEW_DOMAINS),
	};
	f->autoblock = (struct sn_image_autoblock){
		.mode = ab->mode, .max_v4 = ab->max_v4, .max_v6 = ab->max_v6,
		.ttl = ab->ttl, .rate_count = ab->rate.count,
		.rate_period = ab->rate.period,
		.written = written(&ab->mode_loc, SN_AB_W_MODE) |
			   written(&ab->ttl_loc, SN_AB_W_TTL) |
			   written(&ab->max_v4_loc, SN_AB_W_MAX_V4) |
			   written(&ab->max_v6_loc, SN_AB_W_MAX_V6) |
			   written(&ab->rate_loc, SN_AB_W_RATE),
	};
	f->never = sorted_prefixes(a, ab->never, ab->n_never, &f->n_never);
	if (!f->never)
		return -ENOMEM;
	img->features = f;
	return 0;
}

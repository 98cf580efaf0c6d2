/* See blocklist.h. */
#include "bench/blocklist.h"
#include "bench/die.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void push(struct bl_vec *v, struct bl_prefix p)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 4096;
		v->v = realloc(v->v, v->cap * sizeof(*v->v));
		if (!v->v)
			die("out of memory");
	}
	v->v[v->n++] = p;
}

static uint32_t last(const struct bl_prefix *p)
{
	/* a shift by 32 is undefined: /32 and /0 by hand */
	if (p->len >= 32)
		return p->addr;
	return p->addr | (0xffffffffu >> p->len);
}

static bool parse(const char *s, struct bl_prefix *out)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	struct in_addr a;
	unsigned long len = 32;
	char *end = NULL;

	if (slash) {
		if ((size_t)(slash - s) >= sizeof(buf))
			return false;
		memcpy(buf, s, (size_t)(slash - s));
		buf[slash - s] = '\0';
		len = strtoul(slash + 1, &end, 10);
		if (end == slash + 1 || *end)
			return false;
	} else {
		snprintf(buf, sizeof(buf), "%s", s);
	}
	if (inet_pton(AF_INET, buf, &a) != 1 || len > 32)
		return false;
	out->addr = ntohl(a.s_addr);
	out->len = (uint8_t)len;
	return out->addr == (len ? out->addr & ~(uint32_t)(0xffffffffull >> len) : 0);
}

static int cmp(const void *a, const void *b)
{
	const struct bl_prefix *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (int)x->len - (int)y->len;
}

/* Sorted, with every prefix inside an earlier one removed (prefixes nest
 * or are disjoint, so what remains is disjoint). */
static void disjoint(struct bl_vec *v)
{
	size_t m = 0;
	uint64_t end = 0; /* one past the last address covered so far */

	qsort(v->v, v->n, sizeof(*v->v), cmp);
	for (size_t i = 0; i < v->n; i++) {
		if (m && v->v[i].addr < end)
			continue;
		v->v[m++] = v->v[i];
		end = (uint64_t)last(&v->v[i]) + 1;
	}
	v->n = m;
}

static void read_country(const char *data, const char *cc, struct bl_vec *v)
{
	char path[1024], line[128];
	FILE *f;
	size_t before = v->n;

	snprintf(path, sizeof(path), "%s/ipv4/%s.cidr", data, cc);
	f = fopen(path, "r");
	if (!f)
		die("cannot read %s (--data, --country)", path);
	while (fgets(line, sizeof(line), f)) {
		struct bl_prefix p = { .country = true };

		line[strcspn(line, " \t\r\n#")] = '\0';
		if (!line[0])
			continue;
		if (!parse(line, &p))
			die("%s: bad prefix %s", path, line);
		p.country = true;
		push(v, p);
	}
	fclose(f);
	if (v->n == before)
		die("%s holds no prefix", path);
}

void bl_build(struct blocklist *b, const char *data, const char *countries,
	      const char *attack)
{
	char buf[1024];
	struct bl_vec raw = { 0 };

	memset(b, 0, sizeof(*b));
	snprintf(buf, sizeof(buf), "%s", countries);
	for (char *save = NULL, *cc = strtok_r(buf, ",", &save); cc;
	     cc = strtok_r(NULL, ",", &save))
		read_country(data, cc, &raw);
	b->n_country_in = raw.n;
	snprintf(buf, sizeof(buf), "%s", attack);
	for (char *save = NULL, *c = strtok_r(buf, ",", &save); c;
	     c = strtok_r(NULL, ",", &save)) {
		struct bl_prefix p = { 0 };

		if (!parse(c, &p))
			die("bad attack range %s (a.b.c.d/len, host bits zero)", c);
		push(&raw, p);
		push(&b->ranges, p);
	}
	if (!b->ranges.n)
		die("no attack range given");
	b->all = raw;
	disjoint(&b->all);
	for (size_t i = 0; i < b->all.n; i++)
		if (b->all.v[i].country)
			push(&b->country, b->all.v[i]);
	if (!b->country.n)
		die("the attack ranges cover every country prefix");
}

void bl_free(struct blocklist *b)
{
	free(b->all.v);
	free(b->country.v);
	free(b->ranges.v);
	memset(b, 0, sizeof(*b));
}

bool bl_covers(const struct blocklist *b, uint32_t a)
{
	size_t lo = 0, hi = b->all.n;

	while (lo < hi) { /* one past the last prefix starting at or below a */
		size_t mid = (lo + hi) / 2;

		if (b->all.v[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && a <= last(&b->all.v[lo - 1]);
}

void bl_format(char *out, size_t len, const struct bl_prefix *p)
{
	snprintf(out, len, "%u.%u.%u.%u/%u", p->addr >> 24, (p->addr >> 16) & 255,
		 (p->addr >> 8) & 255, p->addr & 255, p->len);
}

uint64_t bl_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

uint32_t bl_inside(const struct bl_prefix *p, uint64_t *state)
{
	uint32_t host = p->len >= 32 ? 0 : (uint32_t)bl_rand(state) & (0xffffffffu >> p->len);

	return p->addr | host;
}

uint32_t bl_outside(const struct blocklist *b, uint64_t *state)
{
	/* Bounded: at least a third of the space is outside any real list. */
	for (int tries = 0; tries < 1000000; tries++) {
		uint32_t a = (uint32_t)bl_rand(state);
		unsigned o1 = a >> 24, o2 = (a >> 16) & 255;

		if (o1 == 0 || o1 == 10 || o1 == 127 || o1 >= 224 ||
		    (o1 == 100 && (o2 & 0xc0) == 64) || (o1 == 169 && o2 == 254) ||
		    (o1 == 172 && (o2 & 0xf0) == 16) || (o1 == 192 && o2 == 168) ||
		    (a >> 8) == 0xc00002 || (o1 == 198 && (o2 & 0xfe) == 18))
			continue;
		if (!bl_covers(b, a))
			return a;
	}
	die("no address outside the blocklist found");
}

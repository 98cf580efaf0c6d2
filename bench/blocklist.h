/*
 * The blocklist of bench/flood: real country lists plus attack ranges,
 * as disjoint IPv4 prefixes, and addresses drawn inside or outside it.
 * Every system of a run enforces exactly this list.
 *
 * Functions print why and exit 2 on bad input (a benchmark must not run
 * on a list it did not mean).
 */
#ifndef SN_BENCH_BLOCKLIST_H
#define SN_BENCH_BLOCKLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bl_prefix {
	uint32_t addr; /* host order, host bits zero */
	uint8_t len;
	bool country;  /* from a country list (else an attack range) */
};

struct bl_vec {
	struct bl_prefix *v;
	size_t n, cap;
};

struct blocklist {
	struct bl_vec all;     /* sorted, disjoint: what the filters load */
	struct bl_vec country; /* the country prefixes among them */
	struct bl_vec ranges;  /* the attack ranges as given */
	size_t n_country_in;   /* prefixes read from the country lists */
};

/*
 * Read <data>/ipv4/<cc>.cidr for every cc of the comma-separated
 * countries, add the comma-separated attack ranges, and drop every prefix
 * that lies inside another (nft refuses overlapping interval elements;
 * bench/compile does the same).
 */
void bl_build(struct blocklist *b, const char *data, const char *countries,
	      const char *attack);
void bl_free(struct blocklist *b);
bool bl_covers(const struct blocklist *b, uint32_t addr);
/* "a.b.c.d/len" */
void bl_format(char *out, size_t len, const struct bl_prefix *p);

/* xorshift64*: a fixed seed gives the same sources on every machine. */
uint64_t bl_rand(uint64_t *state);
/* A random address inside p. */
uint32_t bl_inside(const struct bl_prefix *p, uint64_t *state);
/* A random public unicast address no prefix of b covers (not 0/8, 10/8,
 * 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.2/24, 192.168/16,
 * 198.18/15, 224/3). */
uint32_t bl_outside(const struct blocklist *b, uint64_t *state);

#endif

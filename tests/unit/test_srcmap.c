/*
 * The range trie (compiler/srcmap.c) against a brute-force longest-prefix
 * match: random class-prefix sets of both families, shaped like real
 * lists (nested, adjacent, all lengths, dense clusters), looked up at
 * random addresses and at every prefix's first and last address and the
 * addresses next to them.  Also: sn_srcmap_check accepts what was built
 * and refuses corrupted structures.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/addr.h"
#include "compiler/arena.h"
#include "compiler/image.h"
#include "compiler/srcmap.h"
#include "tests/check.h"

static uint64_t rng_state = 0x47c0ffee5eedull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static int cmp_cp(const void *a, const void *b)
{
	const struct sn_class_prefix *x = a, *y = b;

	return sn_prefix_cmp(&x->prefix, &y->prefix);
}

/* Brute force: class of the longest prefix holding addr. */
static uint32_t brute(const struct sn_class_prefix *v, size_t n, int family,
		      const uint8_t *addr)
{
	struct sn_prefix host = { .family = (uint8_t)family,
				  .len = family == SN_FAMILY_V4 ? 32 : 128 };
	int best = -1;
	uint32_t cls = UINT32_MAX;

	memcpy(host.addr, addr, family == SN_FAMILY_V4 ? 4 : 16);
	for (size_t i = 0; i < n; i++)
		if (v[i].prefix.len > best && sn_prefix_contains(&v[i].prefix, &host)) {
			best = v[i].prefix.len;
			cls = v[i].class_id;
		}
	return cls;
}

/* n random distinct prefixes (plus /0) around a few cluster centres. */
static size_t make_prefixes(int family, size_t n, uint32_t n_classes,
			    struct sn_class_prefix *v)
{
	const int w = family == SN_FAMILY_V4 ? 32 : 128;
	uint8_t centres[4][16];
	size_t m = 1;

	for (int c = 0; c < 4; c++)
		for (int i = 0; i < 16; i++)
			centres[c][i] = (uint8_t)rnd();
	v[0] = (struct sn_class_prefix){ .prefix = { .family = (uint8_t)family },
					 .class_id = 0 };
	for (size_t i = 0; i < n; i++) {
		struct sn_class_prefix p = { .prefix = { .family = (uint8_t)family } };
		uint64_t r = rnd();
		int len = 1 + (int)(r % (uint64_t)w);

		/* Mostly near a centre (long shared prefixes: deep tries). */
		memcpy(p.prefix.addr, centres[r >> 40 & 3], 16);
		int keep = (int)((r >> 20) % (uint64_t)w);

		for (int b = keep; b < w; b++)
			if (rnd() & 1)
				p.prefix.addr[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
		if (r >> 60 == 0)
			len = w; /* hosts */
		p.prefix.len = (uint8_t)len;
		sn_prefix_mask(&p.prefix);
		p.class_id = 1 + (uint32_t)(rnd() % (n_classes - 1));
		v[m++] = p;
	}
	qsort(v, m, sizeof(*v), cmp_cp);
	size_t k = 0;

	for (size_t i = 0; i < m; i++)
		if (!k || sn_prefix_cmp(&v[k - 1].prefix, &v[i].prefix))
			v[k++] = v[i];
	return k;
}

static void addr_step(uint8_t *a, int w, int delta)
{
	for (int i = w / 8 - 1; i >= 0; i--) {
		int x = a[i] + delta;

		a[i] = (uint8_t)x;
		if (x >= 0 && x <= 255)
			break;
	}
}

static void probe(const struct sn_image *img, int family, const uint8_t *addr,
		  int round)
{
	const struct sn_srcmap *m = family == SN_FAMILY_V4 ? &img->src_v4 : &img->src_v6;
	const struct sn_class_prefix *v = family == SN_FAMILY_V4 ? img->v4 : img->v6;
	size_t n = family == SN_FAMILY_V4 ? img->n_v4 : img->n_v6;
	int64_t got = sn_srcmap_lookup(m, family, addr);
	uint32_t want = brute(v, n, family, addr);

	CHECK(got == want, "round %d IPv%d: trie %lld, LPM %u", round,
	      family == SN_FAMILY_V4 ? 4 : 6, (long long)got, want);
}

static void round_trip(int round, size_t n_v4, size_t n_v6)
{
	struct sn_arena a;
	struct sn_image img = { 0 };
	char err[256];
	uint32_t n_classes = 2 + (uint32_t)(rnd() % 6);

	sn_arena_init(&a);
	img.v4 = calloc(n_v4 + 1, sizeof(*img.v4));
	img.v6 = calloc(n_v6 + 1, sizeof(*img.v6));
	img.n_v4 = make_prefixes(SN_FAMILY_V4, n_v4, n_classes, img.v4);
	img.n_v6 = make_prefixes(SN_FAMILY_V6, n_v6, n_classes, img.v6);
	img.n_classes = n_classes;

	CHECK(sn_srcmap_build(&a, &img, SN_SRCMAP_RANGE) == 0, "build");
	CHECK(img.src_v4.n_nodes && img.src_v6.n_nodes, "range trie built");
	/* Big sets must really have nodes below the root (not one leaf). */
	CHECK(n_v4 < 300 || n_classes < 4 || (img.src_v4.n_nodes > 64 && img.src_v6.n_nodes > 64),
	      "deep tries: %u / %u node entries", img.src_v4.n_nodes,
	      img.src_v6.n_nodes);
	CHECK(sn_srcmap_check(&img, err, sizeof(err)) == 0, "check: %s", err);

	for (int f = 0; f < 2; f++) {
		int family = f ? SN_FAMILY_V6 : SN_FAMILY_V4, w = f ? 128 : 32;
		const struct sn_class_prefix *v = f ? img.v6 : img.v4;
		size_t n = f ? img.n_v6 : img.n_v4;

		for (size_t i = 0; i < n; i++) {
			/* First address, the one before, last, the one after. */
			uint8_t x[16];
			struct sn_prefix last = v[i].prefix;

			memcpy(x, v[i].prefix.addr, 16);
			probe(&img, family, x, round);
			addr_step(x, w, -1);
			probe(&img, family, x, round);
			for (int b = last.len; b < w; b++)
				last.addr[b / 8] |= (uint8_t)(0x80u >> (b % 8));
			probe(&img, family, last.addr, round);
			memcpy(x, last.addr, 16);
			addr_step(x, w, 1);
			probe(&img, family, x, round);
			/* And a random address inside. */
			for (int b = v[i].prefix.len; b < w; b++)
				if (rnd() & 1)
					x[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
			probe(&img, family, x, round);
		}
		for (int i = 0; i < 2000; i++) {
			uint8_t x[16];

			for (int j = 0; j < 16; j++)
				x[j] = (uint8_t)rnd();
			probe(&img, family, x, round);
		}
	}

	/* Corruptions the reader must refuse. */
	if (img.src_v4.n_nodes > 1) {
		uint32_t save = img.src_v4.nodes[0];

		img.src_v4.nodes[0] = SN_SRC_CHILD | 15u << SN_SRC_SPAN_SHIFT |
				      SN_SRC_INDEX_MASK;
		CHECK(sn_srcmap_check(&img, err, sizeof(err)) == -EINVAL,
		      "node out of bounds accepted");
		img.src_v4.nodes[0] = save;
	}
	if (img.src_v6.n_ranges > 2) {
		img.src_v6.ranges[1].class_id ^= 1;
		CHECK(sn_srcmap_check(&img, err, sizeof(err)) == -EINVAL,
		      "range of another class accepted");
		img.src_v6.ranges[1].class_id ^= 1;
	}
	/*
	 * Any changed word of a trie (node entry, block class or start):
	 * refused, since the words say exactly one thing.  Sampled, both
	 * families; a flipped low bit and a flipped format/count bit.
	 */
	for (int family = SN_FAMILY_V4; family <= SN_FAMILY_V6; family++) {
		struct sn_srcmap *m = family == SN_FAMILY_V4 ? &img.src_v4 : &img.src_v6;
		uint32_t step = m->n_nodes / 40 + 1;

		for (uint32_t i = 0; i < m->n_nodes; i += step) {
			static const uint32_t flips[] = { 1u, 1u << SN_SRC_FMT_SHIFT };

			for (int k = 0; k < 2; k++) {
				m->nodes[i] ^= flips[k];
				CHECK(sn_srcmap_check(&img, err, sizeof(err)) == -EINVAL,
				      "IPv%d word %u ^ %#x accepted",
				      family == SN_FAMILY_V4 ? 4 : 6, i, flips[k]);
				m->nodes[i] ^= flips[k];
			}
		}
	}
	CHECK(sn_srcmap_check(&img, err, sizeof(err)) == 0, "restored: %s", err);

	/* LPM forced: no trie, and the check accepts that too. */
	CHECK(sn_srcmap_build(&a, &img, SN_SRCMAP_LPM) == 0 &&
		      !img.src_v4.n_nodes && !img.src_v6.n_nodes,
	      "LPM forced");
	CHECK(sn_srcmap_check(&img, err, sizeof(err)) == 0, "LPM check: %s", err);
	free(img.v4);
	free(img.v6);
	sn_arena_free(&a);
}

int main(void)
{
	static const size_t sizes[][2] = {
		{ 0, 0 }, { 1, 1 }, { 10, 10 }, { 17, 40 }, { 300, 300 },
		{ 5000, 3000 },
	};
	int round = 0;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (int r = 0; r < (sizes[s][0] > 1000 ? 2 : 20); r++)
			round_trip(round++, sizes[s][0], sizes[s][1]);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("test_srcmap: %d rounds ok\n", round);
	return 0;
}

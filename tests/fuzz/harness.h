/*
 * Fuzz entry points, shared by the libFuzzer/AFL++ binaries (fuzz_*.c) and
 * by the regression test that replays every committed input under the
 * normal ASan/UBSan build (tests/unit/test_fuzz_regressions.c).
 *
 * Each one drives a whole stage the way a hostile input would reach it and
 * asserts the invariants that must hold for any input: the compile either
 * fails with at least one error diagnostic or yields an image that
 * serialises, parses back identically and judges packets the same way as
 * the policy semantics.
 */
#ifndef SN_FUZZ_HARNESS_H
#define SN_FUZZ_HARNESS_H

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"

#define SN_FUZZ_ASSERT(cond)                                               \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                \
			abort();                                           \
		}                                                          \
	} while (0)

/* A few packets around every prefix the image holds, plus fixed ones. */
static inline void sn_fuzz_compare_evaluators(const struct sn_policy *p,
				       const struct sn_image *img)
{
	static const uint8_t protos[] = { 6, 17, 1, 58, 47, 255 };
	size_t n = img->n_v4 + img->n_v6;

	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++) {
		const struct sn_class_prefix *cp =
			i < img->n_v4 ? &img->v4[i] : &img->v6[i - img->n_v4];

		for (size_t k = 0; k < sizeof(protos); k++) {
			struct sn_packet pkt = { .family = cp->prefix.family,
						 .proto = protos[k] };
			struct sn_eval_result a, b;

			memcpy(pkt.src, cp->prefix.addr, 16);
			pkt.src[15] ^= (uint8_t)k; /* not always the network address */
			pkt.has_port = k < 2 && (i & 1);
			pkt.dport = (uint16_t)(i * 7919 + k * 22);
			sn_eval_image(img, &pkt, &a);
			sn_eval_policy(p, &pkt, &b);
			SN_FUZZ_ASSERT(a.verdict == b.verdict);
			SN_FUZZ_ASSERT(a.rule_id == b.rule_id);
		}
	}
}

/* Lexer, parser, sema, image builder, analysis, rendering, image format. */
static inline int sn_fuzz_policy_one(const uint8_t *data, size_t size)
{
	struct sn_ctx ctx;
	struct sn_policy *policy = NULL;
	struct sn_image *image = NULL;
	static FILE *sink;

	if (!sink)
		sink = fopen("/dev/null", "w");
	sn_ctx_init(&ctx);
	int rc = sn_compile_text(&ctx, "fuzz.sentry", (const char *)data, size,
				 &policy, &image);

	SN_FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	SN_FUZZ_ASSERT(rc != -EINVAL || ctx.diags.n_errors > 0);
	sn_diags_sort(&ctx.diags);
	if (sink)
		sn_diags_render_text(sink, &ctx.diags, &ctx.sources);
	if (rc == 0) {
		void *buf = NULL;
		size_t len = 0;
		struct sn_image *back = NULL;
		char err[256];

		SN_FUZZ_ASSERT(policy && image);
		SN_FUZZ_ASSERT(sn_image_serialize(image, &buf, &len) == 0);
		SN_FUZZ_ASSERT(sn_image_parse(buf, len, &ctx.arena, &back, err,
					      sizeof(err)) == 0);
		SN_FUZZ_ASSERT(!memcmp(back->checksum, image->checksum, 32));
		free(buf);
		sn_fuzz_compare_evaluators(policy, image);
	}
	sn_ctx_free(&ctx);
	return 0;
}

/*
 * The image reader must refuse or accept any bytes without misbehaving.
 * A fuzzer cannot forge SHA-256, so the checksum is recomputed over the
 * mutated bytes first: otherwise every input would stop at the checksum
 * and the section validation behind it would never be exercised.
 */
static inline int sn_fuzz_image_one(const uint8_t *data, size_t size)
{
	struct sn_arena arena;
	struct sn_image *img = NULL;
	char err[256];
	uint8_t *copy = malloc(size ? size : 1);
	const size_t sum_off = 32; /* offsetof(header, checksum), SPEC 5.2 */

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (size >= sum_off + 32) {
		unsigned int n = 0;

		memset(copy + sum_off, 0, 32);
		EVP_Digest(copy, size, copy + sum_off, &n, EVP_sha256(), NULL);
	}
	sn_arena_init(&arena);
	if (sn_image_parse(copy, size, &arena, &img, err, sizeof(err)) == 0) {
		/* Accepted: every lookup the evaluator makes must stay in bounds. */
		struct sn_packet pkt = { .family = SN_FAMILY_V4, .proto = 6,
					 .has_port = true, .dport = 22 };
		struct sn_eval_result r;

		sn_eval_image(img, &pkt, &r);
		pkt.family = SN_FAMILY_V6;
		pkt.proto = 17;
		sn_eval_image(img, &pkt, &r);
	}
	sn_arena_free(&arena);
	free(copy);
	return 0;
}

#endif

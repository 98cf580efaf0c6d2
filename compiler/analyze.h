/*
 * Policy analysis: findings about a policy that compiles, reported as
 * warnings and notes with the exact place (SPEC.md 4.1, codes in 8).
 *
 *   W001  a rule that never decides any packet (shadowed)
 *   W002  a rule whose removal would change no verdict (redundant)
 *   W003  the same prefix twice among one rule's sources
 *   W004  a source prefix inside another source prefix of the same rule
 *   W005  sibling prefixes of one rule that form their parent (note)
 *   W006  rules that differ only in their ports (note)
 *   W007  the image uses 80% or more of a data-plane map capacity
 *   E031  the image exceeds a data-plane map capacity
 *
 * Only E031 is an error: analysis never makes a valid policy invalid for
 * any other reason.  Everything is O(n log n) in the number of source
 * prefixes (one radix sort per family, linear walks after it).
 */
#ifndef SN_ANALYZE_H
#define SN_ANALYZE_H

#include <stdbool.h>
#include <stdint.h>

#include "../bpf/sentry_abi.h"

struct sn_ctx;
struct sn_policy;
struct sn_image;

/*
 * Knobs of the analysis (struct sn_ctx.analysis; NULL means all defaults).
 * A zero field means its default, so a caller sets only what it knows,
 * e.g. sentryd's configured map sizes.
 */
struct sn_analysis_opts {
	uint64_t cap_lpm_v4;    /* IPv4 LPM entries; 0: SN_CAP_LPM_V4 */
	uint64_t cap_lpm_v6;    /* IPv6 LPM entries; 0: SN_CAP_LPM_V6 */
	uint64_t cap_decisions; /* classes * stride; 0: SN_CAP_DECISIONS */
	uint64_t cap_rules;     /* rule ids incl. pseudo; 0: SN_CAP_RULES */
	uint32_t max_per_rule;  /* W003/W004 shown per rule; 0: 8 */
	bool capacity_only;     /* skip W001-W006 (hot paths that lint elsewhere) */
};

#define SN_ANALYSIS_MAX_PER_RULE 8u

/*
 * Analyse a policy and the image built from it; findings go to
 * ctx->diags.  0, -EINVAL when a capacity is exceeded (E031), -ENOMEM.
 */
int sn_analyze(struct sn_ctx *ctx, const struct sn_policy *policy,
	       const struct sn_image *image,
	       const struct sn_analysis_opts *opts);

#endif

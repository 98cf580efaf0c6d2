/*
 * Two independent evaluators of one packet against a policy:
 *
 *  - sn_eval_image walks the compiled image exactly as the XDP program
 *    does (LPM, L4 class, decision table); `--test` uses it, so an expect
 *    line checks what will be loaded.
 *  - sn_eval_policy applies the semantics of SPEC.md directly to the
 *    resolved rules (most specific wins, override tier, defaults) and
 *    limit rules (2.4), sharing no code with the image builder.
 *
 * Differential tests compare both with the kernel's verdict.
 */
#ifndef SN_EVAL_H
#define SN_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"
#include "policy.h"

/* The packet facts the classifier looks at. */
struct sn_packet {
	uint8_t family;  /* SN_FAMILY_V4 / SN_FAMILY_V6 */
	uint8_t src[16]; /* network order; IPv4 in the first 4 bytes */
	uint8_t proto;   /* IP protocol (IPv6: last next header) */
	bool has_port;   /* false for non-first fragments and portless protocols */
	uint16_t dport;
};

struct sn_eval_result {
	uint8_t verdict; /* enum sn_verdict */
	uint32_t rule_id;
	/* The limit rule that applies (SPEC.md 2.4): 1 + its id, 0 none.
	 * Always 0 for a blocked packet: limits apply to allowed ones. */
	uint32_t limit;
};

void sn_eval_image(const struct sn_image *image, const struct sn_packet *pkt,
		   struct sn_eval_result *out);
void sn_eval_policy(const struct sn_policy *policy,
		    const struct sn_packet *pkt, struct sn_eval_result *out);
/* The packet an expect line describes. */
void sn_expect_packet(const struct sn_expect *e, struct sn_packet *pkt);

#endif

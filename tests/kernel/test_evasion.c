/*
 * Evasion suite, BPF_PROG_TEST_RUN half: every case of
 * tests/kernel/evasion_cases.h (one per packet class of SPEC.md section 3
 * and direction: a blocked source or port stays blocked, an allowed flow
 * passes) through the real XDP program, loaded and populated with
 * sn_dp_load/sn_dp_apply as sentryd does.  Each frame must get the case's
 * action, move exactly the case's counter (by 1 packet and the frame's
 * length), and, when it is judged by the policy, agree with
 * sn_eval_image and sn_eval_policy.  tests/e2e/evasion.sh sends the same
 * frames over veth.
 *
 * Prints one line per case ("ok" or "FAIL"); exit 77 without root or BPF.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "compiler/compile.h"
#include "compiler/eval.h"
#include "compiler/image.h"
#include "runtime/dataplane.h"
#include "tests/kernel/evasion_cases.h"

#define SKIP 77

static const char *action_name(uint32_t a)
{
	switch (a) {
	case XDP_ABORTED:
		return "ABORTED";
	case XDP_DROP:
		return "DROP";
	case XDP_PASS:
		return "PASS";
	default:
		return "?";
	}
}

/*
 * Run one frame: *action, and *rule the one counter that moved by one
 * packet of len bytes (-1 when none or several moved).
 */
static int run_frame(struct sn_dataplane *dp, uint32_t n_rules,
		     const uint8_t *frame, size_t len, uint32_t *action,
		     int64_t *rule)
{
	struct sn_counter *before = calloc(n_rules, sizeof(*before));
	struct sn_counter *after = calloc(n_rules, sizeof(*after));
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame,
		    .data_size_in = (uint32_t)len, .repeat = 1);
	int rc = before && after ? 0 : -ENOMEM, moved = 0;

	*rule = -1;
	if (!rc)
		rc = sn_dp_read_counters(dp, before, n_rules);
	if (!rc && bpf_prog_test_run_opts(sn_dp_prog_fd(dp), &opts))
		rc = -errno;
	if (!rc)
		rc = sn_dp_read_counters(dp, after, n_rules);
	*action = opts.retval;
	for (uint32_t id = 0; !rc && id < n_rules; id++) {
		if (!memcmp(&before[id], &after[id], sizeof(before[id])))
			continue;
		moved++;
		if (after[id].packets - before[id].packets == 1 &&
		    after[id].bytes - before[id].bytes == len)
			*rule = id;
	}
	if (moved != 1)
		*rule = -1;
	free(before);
	free(after);
	return rc;
}

/* 0 when the case holds; prints its line either way. */
static int run_case(const struct evasion_case *c, struct sn_dataplane *dp,
		    const struct sn_policy *policy, const struct sn_image *image)
{
	uint8_t frame[PKT_MAX];
	struct sn_packet facts;
	size_t len = pkt_build(&c->pkt, frame, &facts);
	uint32_t action = 0;
	int64_t rule = -1;
	int rc;

	if (len < 14) {
		printf("FAIL %s: the frame spec does not build\n", c->name);
		return 1;
	}
	rc = run_frame(dp, image->n_rules, frame, len, &action, &rule);
	if (rc) {
		printf("FAIL %s: test run: %s\n", c->name, strerror(-rc));
		return 1;
	}
	if (action != c->action || rule != (int64_t)c->rule) {
		printf("FAIL %s (%s): got %s at rule %lld, want %s at rule %u\n",
		       c->name, c->what, action_name(action), (long long)rule,
		       action_name(c->action), c->rule);
		return 1;
	}
	/* Judged by the policy: both reference evaluators must agree. */
	if (c->pkt.src && c->rule != SN_RULE_MALFORMED &&
	    c->rule != SN_RULE_NON_IP) {
		struct sn_eval_result img, pol;
		uint8_t v = action == XDP_PASS ? SN_VERDICT_ALLOW : SN_VERDICT_BLOCK;

		sn_eval_image(image, &facts, &img);
		sn_eval_policy(policy, &facts, &pol);
		if (img.verdict != v || img.rule_id != c->rule ||
		    pol.verdict != v || pol.rule_id != c->rule) {
			printf("FAIL %s: kernel rule %u, sn_eval_image rule %u, "
			       "sn_eval_policy rule %u\n",
			       c->name, c->rule, img.rule_id, pol.rule_id);
			return 1;
		}
	}
	printf("ok   %-44s %s at rule %u  (%s)\n", c->name, action_name(action),
	       c->rule, c->what);
	return 0;
}

int main(void)
{
	struct sn_ctx ctx;
	struct sn_policy *policy;
	struct sn_image *image;
	struct sn_dataplane *dp = NULL;
	char err[512] = "";
	unsigned failures = 0, passes = 0, drops = 0;
	int rc;

	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF)\n");
		return SKIP;
	}
	/* Names are what evasion.sh and sendframe --case go by. */
	for (size_t i = 0; i < EVASION_N_CASES; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(evasion_cases[i].name, evasion_cases[j].name)) {
				printf("FAIL duplicate case name %s\n",
				       evasion_cases[i].name);
				failures++;
			}

	sn_ctx_init(&ctx);
	rc = sn_compile_text(&ctx, "evasion.sentry", evasion_policy,
			     strlen(evasion_policy), &policy, &image);
	if (rc) {
		sn_diags_render_text(stderr, &ctx.diags, &ctx.sources);
		printf("FAIL the evasion policy does not compile: %d\n", rc);
		sn_ctx_free(&ctx);
		return 1;
	}
	rc = sn_dp_load(image, &dp, err, sizeof(err));
	if (rc == -EPERM) {
		printf("SKIP: cannot load BPF programs: %s\n", err);
		sn_ctx_free(&ctx);
		return SKIP;
	}
	if (!rc)
		rc = sn_dp_apply(dp, image, err, sizeof(err));
	if (rc) {
		printf("FAIL loading the evasion policy: %d %s\n", rc, err);
		sn_dp_close(dp);
		sn_ctx_free(&ctx);
		return 1;
	}
	for (size_t i = 0; i < EVASION_N_CASES; i++) {
		const struct evasion_case *c = &evasion_cases[i];

		failures += (unsigned)run_case(c, dp, policy, image);
		passes += c->action == XDP_PASS;
		drops += c->action == XDP_DROP;
	}
	sn_dp_close(dp);
	sn_ctx_free(&ctx);
	printf("evasion: %zu cases (%u must drop, %u must pass), %u failed\n",
	       EVASION_N_CASES, drops, passes, failures);
	return failures ? 1 : 0;
}

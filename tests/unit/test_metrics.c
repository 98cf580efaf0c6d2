/*
 * The Prometheus exposition of a fixed daemon state (two interfaces, one
 * not sampled; a limit rule; a file name that needs escaping; a failed
 * reload; program run time) against tests/golden/metrics/exposition.prom,
 * so a renamed metric or label is a test failure (Grafana dashboards and
 * alerts are written against them; SPEC.md 6.6).  `--print` writes the
 * text instead (`make golden-update` uses it).  tests/golden/run.sh runs
 * `promtool check metrics` on the golden file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/metrics.h"
#include "runtime/rt.h"

#define GOLDEN "tests/golden/metrics/exposition.prom"

static struct sn_rt_rule rules[] = {
	{ 0, "", 0, 0, "allow", "default ipv4 allow (implicit)" },
	{ 1, "", 0, 0, "block", "default ipv6 block" },
	{ 2, "", 0, 0, "allow", "non-IP traffic" },
	{ 3, "", 0, 0, "block", "malformed packet" },
	{ 4, "/etc/47sentry/policy.sentry", 3, 1, "block", "block from 203.0.113.0/24" },
	{ 5, "/etc/47sentry/team \"a\"\\x.sentry", 7, 5, "allow", "allow from 198.51.100.10 to tcp port 22" },
	{ 6, "/etc/47sentry/policy.sentry", 9, 1, "limit", "limit from 0.0.0.0/0 to tcp port 80 rate 100/s burst 50" },
};

static char *render(void)
{
	struct sn_rt rt;
	sn_rt_init(&rt);
	rt.started_ns = 1700000000123000000ull;
	rt.n_ifaces = 2;
	rt.ifaces[0].name = "eth0";
	rt.ifaces[1].name = "eth1";
	rt.policy.rules = rules;
	rt.policy.n_rules = 7;
	rt.policy.n_limits = 1;
	struct sn_rt_reload ok = { .at_ns = 1, .trigger = "watch",
				   .result = SN_RT_OK, .duration_s = 0.004 };
	struct sn_rt_reload bad = { .at_ns = 2, .trigger = "api",
				    .result = SN_RT_FAILED, .duration_s = 0.2,
				    .error = "policy x is invalid (1 error)" };
	sn_rt_record(&rt, &ok, NULL);
	sn_rt_record(&rt, &ok, NULL);
	sn_rt_record(&rt, &bad, "x:1:1: error[E001]: ...\n");

	struct sn_counter c[7] = {
		{ 10, 600 }, { 4, 300 }, { 2, 120 }, { 1, 60 }, { 500, 30000 },
		{ 20, 1400 }, { 7, 420 },
	};
	struct sn_rt_sample s[2] = { 0 };
	s[0].ok = true;
	s[0].meta.attach_mode = SN_ATTACH_NATIVE;
	s[0].meta.reloads = 3;
	s[0].meta.n_rules = 7;
	s[0].meta.applied_at_ns = 1700000100456000000ull;
	for (int i = 0; i < 32; i++)
		s[0].meta.checksum[i] = (uint8_t)(i * 7);
	s[0].active_gen = 1;
	s[0].counters = c;
	s[0].n_counters = 7;
	s[0].maps[0] = (struct sn_rt_map){ "sn_decisions", 24, 256 };
	s[0].maps[1] = (struct sn_rt_map){ "sn_limit_state", 3, 65536 };
	s[0].n_maps = 2;
	s[0].prog_stats = true;
	strcpy(s[0].prog_name, "sentry_xdp");
	s[0].run_time_ns = 1234567890;
	s[0].run_cnt = 9876543;
	/* s[1]: the kernel could not be read: left out */

	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	if (!m || sn_metrics_render(m, &rt, s))
		exit(1);
	fclose(m);
	rt.policy.rules = NULL; /* static */
	rt.policy.n_rules = 0;
	sn_rt_free(&rt);
	return text;
}

int main(int argc, char **argv)
{
	char *text = render();
	if (argc > 1 && !strcmp(argv[1], "--print")) {
		fputs(text, stdout);
		free(text);
		return 0;
	}
	FILE *f = fopen(GOLDEN, "r");
	if (!f) {
		fprintf(stderr, "test_metrics: cannot open %s (run from the "
			"repository root)\n", GOLDEN);
		return 1;
	}
	static char want[1 << 16];
	size_t n = fread(want, 1, sizeof(want) - 1, f);
	fclose(f);
	want[n] = '\0';
	int rc = strcmp(want, text) != 0;
	if (rc) {
		fprintf(stderr, "test_metrics: the exposition differs from %s; "
			"the new text:\n%s", GOLDEN, text);
	} else {
		printf("test_metrics: ok\n");
	}
	free(text);
	return rc;
}

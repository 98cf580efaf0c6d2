/*
 * Front-end unit test: parse + sema in memory and check the resolved
 * struct sn_policy (ids, expanded sources, ports, defaults, expects,
 * locations, list files) and the diagnostic codes of bad inputs.
 * Exit 0 when every check passes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf/sentry_abi.h"
#include "compiler/addr.h"
#include "compiler/compile.h"
#include "compiler/policy.h"

static int failures;
static char tmpdir[64];

#define CHECK(cond)                                                       \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",      \
				__FILE__, __LINE__, #cond);               \
			failures++;                                       \
		}                                                         \
	} while (0)

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* Parse + sema text named <tmpdir>/<name>; returns sema's result. */
static int compile(struct sn_ctx *ctx, const char *name, const char *text,
		   struct sn_policy **pol)
{
	char path[256];
	struct sn_ast *ast = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	sn_ctx_init(ctx);
	*pol = NULL;
	rc = sn_parse_text(ctx, path, text, strlen(text), &ast);
	if (rc)
		return rc;
	return sn_sema(ctx, ast, pol);
}

static bool has_code(const struct sn_ctx *ctx, const char *code)
{
	for (size_t i = 0; i < ctx->diags.n; i++)
		if (ctx->diags.v[i].code && !strcmp(ctx->diags.v[i].code, code))
			return true;
	return false;
}

static bool prefix_is(const struct sn_prefix *p, const char *text)
{
	char buf[SN_PREFIX_STRLEN];

	sn_prefix_format(p, buf, sizeof(buf));
	if (strcmp(buf, text) != 0) {
		fprintf(stderr, "  prefix %s, expected %s\n", buf, text);
		return false;
	}
	return true;
}

static bool loc_is(struct sn_loc l, const char *file, unsigned line,
		   unsigned col)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
	if (!l.file || strcmp(l.file, path) || l.line != line || l.col != col) {
		fprintf(stderr, "  loc %s:%u:%u, expected %s:%u:%u\n",
			l.file ? l.file : "(none)", l.line, l.col, path, line,
			col);
		return false;
	}
	return true;
}

static void dump_diags(struct sn_ctx *ctx)
{
	sn_diags_sort(&ctx->diags);
	sn_diags_render_text(stderr, &ctx->diags, &ctx->sources);
}

static void test_rules(void)
{
	struct sn_ctx ctx;
	struct sn_policy *p;

	write_file("inc.sentry", "block from 192.0.2.0/24\n");
	write_file("office.cidr", "# office\n\n  198.51.100.0/24\n"
				  "2001:db8:1::/48   # v6\n");
	int rc = compile(&ctx, "main.sentry",
		"set office = { @lan, file \"office.cidr\" }\n"
		"always allow from @office to tcp port { 22, 2200-2299 }\n"
		"include \"inc.sentry\"\n"
		"block to udp port 53; allow from any to icmp\n"
		"set lan = { 10.0.0.0/8 }\n" /* used before defined */
		"block from 203.0.113.0/24 to proto 6\n"
		"default ipv6 block\n",
		&p);
	if (rc) {
		dump_diags(&ctx);
		CHECK(rc == 0);
		sn_ctx_free(&ctx);
		return;
	}
	CHECK(p->n_rules == 5);
	for (size_t i = 0; i < p->n_rules; i++)
		CHECK(p->rules[i].id == SN_RULE_FIRST + i);

	const struct sn_rule *r = &p->rules[0];
	CHECK(r->tier == SN_TIER_ALWAYS && r->verdict == SN_VERDICT_ALLOW);
	CHECK(r->proto == SN_PROTO_TCP);
	CHECK(!strcmp(r->text,
		      "always allow from @office to tcp port { 22, 2200-2299 }"));
	CHECK(loc_is(r->loc, "main.sentry", 2, 1));
	CHECK(r->n_srcs == 3);
	if (r->n_srcs == 3) {
		/* literals first, then references in order: @lan, the list */
		CHECK(prefix_is(&r->srcs[0].prefix, "10.0.0.0/8"));
		CHECK(loc_is(r->srcs[0].loc, "main.sentry", 5, 13));
		CHECK(prefix_is(&r->srcs[1].prefix, "198.51.100.0/24"));
		CHECK(loc_is(r->srcs[1].loc, "office.cidr", 3, 3));
		CHECK(r->srcs[1].loc.len == 15);
		CHECK(prefix_is(&r->srcs[2].prefix, "2001:db8:1::/48"));
		CHECK(loc_is(r->srcs[2].loc, "office.cidr", 4, 1));
	}
	CHECK(r->n_ports == 2);
	if (r->n_ports == 2) {
		CHECK(r->ports[0].lo == 22 && r->ports[0].hi == 22);
		CHECK(r->ports[1].lo == 2200 && r->ports[1].hi == 2299);
		CHECK(loc_is(r->ports[1].loc, "main.sentry", 2, 45));
	}

	/* the included rule sits at the include point */
	r = &p->rules[1];
	CHECK(r->verdict == SN_VERDICT_BLOCK && r->n_srcs == 1);
	CHECK(loc_is(r->loc, "inc.sentry", 1, 1));
	CHECK(r->n_srcs == 1 && prefix_is(&r->srcs[0].prefix, "192.0.2.0/24"));

	/* no "from": any, both families */
	r = &p->rules[2];
	CHECK(r->proto == SN_PROTO_UDP && r->n_srcs == 2 && r->n_ports == 1);
	if (r->n_srcs == 2) {
		CHECK(prefix_is(&r->srcs[0].prefix, "0.0.0.0/0"));
		CHECK(prefix_is(&r->srcs[1].prefix, "::/0"));
	}
	CHECK(!strcmp(r->text, "block to udp port 53"));

	/* icmp keeps only the IPv4 half of "any" */
	r = &p->rules[3];
	CHECK(r->proto == SN_PROTO_ICMP && r->n_srcs == 1 && r->n_ports == 0);
	CHECK(r->n_srcs == 1 && prefix_is(&r->srcs[0].prefix, "0.0.0.0/0"));
	CHECK(loc_is(r->loc, "main.sentry", 4, 23));

	/* proto 6 is tcp, text as written */
	r = &p->rules[4];
	CHECK(r->proto == SN_PROTO_TCP && r->n_ports == 0);
	CHECK(!strcmp(r->text, "block from 203.0.113.0/24 to proto 6"));

	CHECK(!p->default_v4.written &&
	      p->default_v4.verdict == SN_VERDICT_ALLOW);
	CHECK(p->default_v6.written &&
	      p->default_v6.verdict == SN_VERDICT_BLOCK);
	CHECK(loc_is(p->default_v6.loc, "main.sentry", 7, 1));
	CHECK(p->n_expects == 0);
	sn_ctx_free(&ctx);
}

static void test_expects(void)
{
	struct sn_ctx ctx;
	struct sn_policy *p;
	int rc = compile(&ctx, "exp.sentry",
		"default block\n"
		"expect block from 203.0.113.9\n"
		"expect allow from 2001:db8::1 to tcp port 443\n"
		"expect block from 192.0.2.1 to udp fragment\n"
		"expect allow from 192.0.2.1/32 to proto 1\n"
		"expect allow from ::1 to icmpv6\n",
		&p);

	if (rc) {
		dump_diags(&ctx);
		CHECK(rc == 0);
		sn_ctx_free(&ctx);
		return;
	}
	CHECK(p->default_v4.written && p->default_v6.written);
	CHECK(p->default_v4.verdict == SN_VERDICT_BLOCK);
	CHECK(p->n_rules == 0 && p->n_expects == 5);
	if (p->n_expects != 5) {
		sn_ctx_free(&ctx);
		return;
	}
	const struct sn_expect *e = p->expects;
	CHECK(e[0].verdict == SN_VERDICT_BLOCK && e[0].proto == SN_PROTO_ANY);
	CHECK(e[0].port == -1 && !e[0].fragment);
	CHECK(prefix_is(&e[0].addr, "203.0.113.9/32"));
	CHECK(!strcmp(e[0].text, "expect block from 203.0.113.9"));
	CHECK(e[1].proto == SN_PROTO_TCP && e[1].port == 443);
	CHECK(prefix_is(&e[1].addr, "2001:db8::1/128"));
	CHECK(e[2].proto == SN_PROTO_UDP && e[2].port == -1 && e[2].fragment);
	CHECK(!strcmp(e[2].text, "expect block from 192.0.2.1 to udp fragment"));
	CHECK(e[3].proto == SN_PROTO_ICMP);
	CHECK(e[4].proto == SN_PROTO_ICMPV6);
	CHECK(loc_is(e[4].loc, "exp.sentry", 6, 1));
	sn_ctx_free(&ctx);
}

/* Each bad policy must fail with (at least) the given code. */
static void expect_code(const char *text, const char *code)
{
	struct sn_ctx ctx;
	struct sn_policy *p;
	int rc = compile(&ctx, "bad.sentry", text, &p);

	if (rc != -EINVAL || !has_code(&ctx, code)) {
		fprintf(stderr, "expected %s (rc %d) for:\n%s\n", code, rc, text);
		dump_diags(&ctx);
		failures++;
	}
	sn_ctx_free(&ctx);
}

static void test_errors(void)
{
	write_file("badlist.cidr", "10.0.0.0/8\nnot-a-prefix\n");
	write_file("hostbits.cidr", "10.0.0.1/8\n");
	write_file("cyc_a.sentry", "include \"cyc_b.sentry\"\n");
	write_file("cyc_b.sentry", "include \"cyc_a.sentry\"\n");

	expect_code("block from 10.0.0.0/8 to\n", "E001");
	expect_code("block from 300.1.1.1\n", "E002");
	expect_code("block from 2001:db8::/129\n", "E002");
	expect_code("block from 10.0.0.1/8\n", "E003");
	expect_code("block from @nope\n", "E004");
	expect_code("set a = { 1.1.1.1 }\nset a = { 2.2.2.2 }\n", "E005");
	expect_code("set a = file \"missing.cidr\"\nblock from @a\n", "E006");
	expect_code("set a = file \"badlist.cidr\"\nblock from @a\n", "E007");
	expect_code("set a = file \"hostbits.cidr\"\n", "E003");
	expect_code("block to tcp port 65536\n", "E008");
	expect_code("block to tcp port 99999999999999999999999999999\n", "E008");
	expect_code("include \"cyc_a.sentry\"\n", "E009");
	expect_code("include \"nothere.sentry\"\n", "E011");
	expect_code("block to udp port 20-10\n", "E012");
	expect_code("allow from 2001:db8::/32 to icmp\n", "E014");
	expect_code("expect allow from 10.0.0.1 to icmpv6\n", "E014");
	expect_code("block from ::ffff:10.0.0.0/104\n", "E016");
	expect_code("default block\ndefault ipv4 allow\n", "E017");
	expect_code("define p = 22\nblock from $p\n", "E018");
	expect_code("define a = 10.0.0.0/8\nblock to tcp port $a\n", "E018");
	expect_code("define m = { 22, 10.0.0.0/8 }\n", "E018");
	expect_code("block to proto 256\n", "E018");
	expect_code("set a = { @b }\nset b = { @a }\n", "E019");
	expect_code("expect block from 10.0.0.0/8\n", "E020");
	expect_code("expect block from 10.0.0.1 to tcp\n", "E020");
	expect_code("expect block from 10.0.0.1 to tcp port 1 fragment\n",
		    "E020");
	expect_code("set e = {}\nblock from @e\n", "E021");
}

/* Garbage must give errors, never a crash or a policy. */
static void test_garbage(void)
{
	static const char bin[] = "block\0from \xff\xfe 1.2.3.4\n{{{{ }}}} \"\\";
	struct sn_ctx ctx;
	struct sn_ast *ast = NULL;
	struct sn_policy *p = NULL;
	char *big = malloc(200000);

	sn_ctx_init(&ctx);
	CHECK(sn_parse_text(&ctx, "bin", bin, sizeof(bin) - 1, &ast) == 0);
	CHECK(sn_sema(&ctx, ast, &p) == -EINVAL);
	CHECK(ctx.diags.n_errors > 0);
	sn_ctx_free(&ctx);

	/* the per-file syntax error cap */
	if (!big)
		return;
	for (size_t i = 0; i < 200000; i++)
		big[i] = (i % 3 == 2) ? '\n' : '%';
	sn_ctx_init(&ctx);
	CHECK(sn_parse_text(&ctx, "big", big, 200000, &ast) == 0);
	CHECK(ctx.diags.n_errors <= 1001);
	CHECK(ctx.diags.n <= SN_DIAGS_DEFAULT_MAX);
	/* the last kept diagnostic says that parsing stopped */
	CHECK(ctx.diags.n > 0 &&
	      strstr(ctx.diags.v[ctx.diags.n - 1].message, "giving up"));
	sn_ctx_free(&ctx);

	/* with room for everything, the parser stops at 1000 errors */
	sn_ctx_init(&ctx);
	ctx.diags.max_kept = 5000;
	CHECK(sn_parse_text(&ctx, "big", big, 200000, &ast) == 0);
	CHECK(ctx.diags.n_errors == 1001);
	sn_ctx_free(&ctx);
	free(big);
}

static void test_render(void)
{
	struct sn_ctx ctx;
	struct sn_policy *p;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	compile(&ctx, "r.sentry", "block from 10.0.0.1/8\n", &p);
	f = open_memstream(&buf, &len);
	if (!f) {
		sn_ctx_free(&ctx);
		return;
	}
	sn_diags_render_text(f, &ctx.diags, &ctx.sources);
	fclose(f);
	CHECK(strstr(buf, ":1:12: error[E003]: host bits set in 10.0.0.1/8\n"));
	CHECK(strstr(buf, "    1 | block from 10.0.0.1/8\n"
			  "      |            ^~~~~~~~~~\n"
			  "      = hint: did you mean 10.0.0.0/8?\n"));
	CHECK(strstr(buf, "\n1 error\n"));
	free(buf);
	sn_ctx_free(&ctx);
}

static void test_addr(void)
{
	struct sn_prefix p;
	char buf[SN_PREFIX_STRLEN];

	CHECK(sn_prefix_parse("10.0.0.0/8", 10, &p) == SN_ADDR_OK);
	CHECK(sn_prefix_parse("010.0.0.0/8", 11, &p) == SN_ADDR_EINVAL);
	CHECK(sn_prefix_parse("10.0.0.0/08", 11, &p) == SN_ADDR_EPLEN);
	CHECK(sn_prefix_parse("10.0.0.0/", 9, &p) == SN_ADDR_EPLEN);
	CHECK(sn_prefix_parse("1.2.3", 5, &p) == SN_ADDR_EINVAL);
	CHECK(sn_prefix_parse("1.2.3.4.5", 9, &p) == SN_ADDR_EINVAL);
	CHECK(sn_prefix_parse("::1\0x", 5, &p) == SN_ADDR_EINVAL);
	CHECK(sn_prefix_parse("2001:db8::1/32", 14, &p) == SN_ADDR_EHOSTBITS);
	sn_prefix_format(&p, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2001:db8::/32"));
	CHECK(sn_prefix_parse("::ffff:1.2.3.4", 14, &p) == SN_ADDR_OK);
	CHECK(sn_prefix_is_v4mapped(&p));
	CHECK(sn_prefix_parse("1.2.3.4", 7, &p) == SN_ADDR_OK && p.len == 32);
	sn_prefix_format(&p, buf, sizeof(buf));
	CHECK(!strcmp(buf, "1.2.3.4/32"));
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sn-frontend-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_addr();
	test_rules();
	test_expects();
	test_errors();
	test_garbage();
	test_render();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	if (failures) {
		fprintf(stderr, "test_frontend: %d failures\n", failures);
		return 1;
	}
	printf("test_frontend: ok\n");
	return 0;
}

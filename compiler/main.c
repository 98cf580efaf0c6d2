/*
 * sentry-compile: check, compile, dump and test 47Sentry policies.
 *
 * Exit codes (SPEC.md, "CLI"): 0 valid (and every expect held), 1 invalid
 * policy or a failed expect, 2 usage or I/O error, 3 internal error (the
 * compiled image and the policy's semantics disagree: a compiler bug).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile.h"
#include "dump.h"
#include "eval.h"
#include "image.h"

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

enum mode { MODE_CHECK, MODE_COMPILE, MODE_DUMP, MODE_TEST };

struct options {
	enum mode mode;
	const char *output;
	const char *dump;
	size_t max_errors;
	bool werror;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentry-compile --check FILE...\n"
		"       sentry-compile -o IMAGE FILE\n"
		"       sentry-compile --dump ast|ir|json|constants FILE\n"
		"       sentry-compile --test FILE...\n"
		"\n"
		"  --check          validate the policy; print only diagnostics\n"
		"  -o, --output F   write the compiled policy image to F\n"
		"  --dump KIND      print the AST, the IR, the image as JSON, or the\n"
		"                   generated BPF constants as a C header\n"
		"  --test           run the policy's expect lines against the image\n"
		"  --max-errors N   keep at most N diagnostics per file (default %d)\n"
		"\n"
		"exit: 0 valid, 1 invalid policy or failed expect, 2 usage or I/O\n"
		"error, 3 internal error\n",
		SN_DIAGS_DEFAULT_MAX);
}

static void render(struct sn_ctx *ctx)
{
	sn_diags_sort(&ctx->diags);
	sn_diags_render_text(stderr, &ctx->diags, &ctx->sources);
}

/* Compile one file; reports I/O failure itself. Returns an exit code. */
static int compile_one(struct sn_ctx *ctx, const char *path,
		       struct sn_policy **policy, struct sn_image **image)
{
	int rc = sn_compile_file(ctx, path, policy, image);

	if (rc == -EINVAL || ctx->diags.n_errors) {
		render(ctx);
		return EXIT_INVALID;
	}
	if (rc) {
		fprintf(stderr, "sentry-compile: %s: %s\n", path, strerror(-rc));
		return EXIT_USAGE;
	}
	render(ctx); /* warnings */
	return EXIT_VALID;
}

static void describe_rule(const struct sn_image *img, uint32_t id, char *buf,
			  size_t n)
{
	const struct sn_image_rule *r = &img->rules[id];

	if (r->file[0])
		snprintf(buf, n, "#%u '%s' at %s:%u:%u", id, r->text, r->file,
			 r->line, r->col);
	else
		snprintf(buf, n, "#%u '%s'", id, r->text);
}

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

/*
 * Every expect is judged by the image evaluator (what the kernel will do)
 * and by the policy evaluator (what SPEC.md says); they must agree.
 */
static int run_expects(struct sn_ctx *ctx, const struct sn_policy *p,
		       const struct sn_image *img)
{
	size_t passed = 0, failed = 0;
	bool internal = false;
	char who[512];

	for (size_t i = 0; i < p->n_expects; i++) {
		const struct sn_expect *e = &p->expects[i];
		struct sn_packet pkt;
		struct sn_eval_result got, ref;

		sn_expect_packet(e, &pkt);
		sn_eval_image(img, &pkt, &got);
		sn_eval_policy(p, &pkt, &ref);
		describe_rule(img, got.rule_id, who, sizeof(who));
		if (got.verdict != ref.verdict || got.rule_id != ref.rule_id) {
			fprintf(stderr,
				"sentry-compile: internal error: %s:%u: image says %s "
				"by rule #%u, policy semantics say %s by rule #%u\n",
				e->loc.file, e->loc.line, verdict_word(got.verdict),
				got.rule_id, verdict_word(ref.verdict), ref.rule_id);
			internal = true;
		}
		if (got.verdict == e->verdict) {
			passed++;
			printf("ok    %s:%u: %s  (%s)\n", e->loc.file, e->loc.line,
			       e->text, who);
			continue;
		}
		failed++;
		printf("FAIL  %s:%u: %s\n", e->loc.file, e->loc.line, e->text);
		struct sn_diag *d = sn_diag_add(
			&ctx->diags, SN_SEV_ERROR, "E015", e->loc,
			"expectation failed: packet is %sed, not %sed",
			verdict_word(got.verdict), verdict_word(e->verdict));
		const struct sn_image_rule *r = &img->rules[got.rule_id];

		if (r->file[0])
			sn_diag_note(&ctx->diags, d,
				     (struct sn_loc){ r->file, r->line, r->col, 1 },
				     "decided by rule #%u '%s'", r->id, r->text);
		else
			sn_diag_note(&ctx->diags, d, (struct sn_loc){ 0 },
				     "decided by %s", r->text);
	}
	fflush(stdout); /* the report first, then the diagnostics */
	render(ctx);
	printf("%s: %zu passed, %zu failed\n", p->main_file ? p->main_file : "",
	       passed, failed);
	if (internal)
		return EXIT_INTERNAL;
	return failed ? EXIT_INVALID : EXIT_VALID;
}

static int write_image(struct sn_image *img, const char *path)
{
	char tmp[4096];
	int rc;

	/* Write beside the target and rename: readers never see half a file. */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	rc = sn_image_write_file(img, tmp);
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int run_file(const struct options *o, const char *path)
{
	struct sn_ctx ctx;
	struct sn_policy *policy = NULL;
	struct sn_image *image = NULL;
	int code;

	sn_ctx_init(&ctx);
	ctx.diags.max_kept = o->max_errors;

	if (o->mode == MODE_DUMP && !strcmp(o->dump, "ast")) {
		struct sn_ast *ast = NULL;
		int rc = sn_parse_file(&ctx, path, &ast);

		if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", path, strerror(-rc));
			code = EXIT_USAGE;
		} else {
			if (ast)
				sn_ast_dump(stdout, ast);
			render(&ctx);
			code = ctx.diags.n_errors ? EXIT_INVALID : EXIT_VALID;
		}
		sn_ctx_free(&ctx);
		return code;
	}

	code = compile_one(&ctx, path, &policy, &image);
	if (code == EXIT_VALID && o->werror && ctx.diags.n_warnings)
		code = EXIT_INVALID;
	if (code != EXIT_VALID)
		goto out;

	void *buf = NULL;
	size_t len;
	int rc = sn_image_serialize(image, &buf, &len); /* sets the checksum */

	free(buf);
	if (rc) {
		fprintf(stderr, "sentry-compile: %s: %s\n", path, strerror(-rc));
		code = EXIT_INTERNAL;
		goto out;
	}
	switch (o->mode) {
	case MODE_CHECK:
		break;
	case MODE_COMPILE:
		rc = write_image(image, o->output);
		if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", o->output,
				strerror(-rc));
			code = EXIT_USAGE;
		}
		break;
	case MODE_DUMP:
		if (!strcmp(o->dump, "ir"))
			sn_dump_ir(stdout, image);
		else if (!strcmp(o->dump, "json"))
			sn_dump_json(stdout, image);
		else
			sn_dump_constants(stdout, image, path);
		break;
	case MODE_TEST:
		code = run_expects(&ctx, policy, image);
		break;
	}
out:
	sn_ctx_free(&ctx);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "dump", required_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "max-errors", required_argument, NULL, 'm' },
		{ "Werror", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct options o = { .mode = MODE_CHECK, .max_errors = SN_DIAGS_DEFAULT_MAX };
	int modes = 0, c;

	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.mode = MODE_CHECK;
			modes++;
			break;
		case 'o':
			o.mode = MODE_COMPILE;
			o.output = optarg;
			modes++;
			break;
		case 'd':
			o.mode = MODE_DUMP;
			o.dump = optarg;
			modes++;
			if (strcmp(optarg, "ast") && strcmp(optarg, "ir") &&
			    strcmp(optarg, "json") && strcmp(optarg, "constants")) {
				fprintf(stderr, "sentry-compile: unknown dump '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			o.mode = MODE_TEST;
			modes++;
			break;
		case 'm': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !*optarg || v == 0 || v > 1000000) {
				fprintf(stderr, "sentry-compile: bad --max-errors '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			o.max_errors = v;
			break;
		}
		case 'W':
			o.werror = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_VALID;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	int nfiles = argc - optind;

	if (modes > 1 || nfiles < 1 ||
	    ((o.mode == MODE_COMPILE || o.mode == MODE_DUMP) && nfiles != 1)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	int worst = EXIT_VALID;

	for (int i = optind; i < argc; i++) {
		int code = run_file(&o, argv[i]);

		/* Internal beats usage beats invalid beats valid. */
		if (code == EXIT_INTERNAL || (worst != EXIT_INTERNAL && code > worst))
			worst = code;
	}
	return worst;
}

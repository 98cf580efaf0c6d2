/*
 * sentry-compile: check, compile, dump, test, plan and explain 47Sentry
 * policies.
 *
 * Exit codes (SPEC.md 7): 0 valid (and every expect held), 1 invalid
 * policy or a failed expect, 2 usage or I/O error, 3 internal error (the
 * compiled image and the policy's semantics disagree: a compiler bug).
 * --plan answers like terraform: 0 no change, 1 error, 2 changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile.h"
#include "diag_format.h"
#include "dump.h"
#include "eval.h"
#include "explain.h"
#include "fmt.h"
#include "image.h"
#include "jsonw.h"
#include "plan.h"
#include "runtime/dataplane.h"
#include "runtime/state.h"

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };
enum { PLAN_NO_CHANGE = 0, PLAN_ERROR = 1, PLAN_CHANGES = 2 };

enum mode { MODE_CHECK, MODE_COMPILE, MODE_DUMP, MODE_TEST, MODE_PLAN,
	    MODE_EXPLAIN };

/* Prefixes and ports listed per changed rule before "and K more". */
#define PLAN_MAX_ENTRIES 10

struct options {
	enum mode mode;
	const char *output;
	const char *dump;
	const char *packet; /* --explain */
	const char *live;   /* --plan --live IFACE */
	const char *state_dir;
	const char *pin_root;
	size_t max_errors;
	bool werror;
	enum sn_out_format format;
};

/* One expect line as judged, kept for the JSON report of --test. */
struct expect_row {
	const struct sn_expect *e;
	const struct sn_image_rule *rule; /* the deciding rule */
	uint8_t verdict;
};

/* One policy file and everything its compile produced (kept until the
 * end so machine-readable formats can render all files in one document). */
struct run {
	const char *path;
	struct sn_ctx ctx;
	char io_error[256];
	bool io_failed;
	struct expect_row *rows;
	size_t n_rows;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentry-compile --check FILE...\n"
		"       sentry-compile -o IMAGE FILE\n"
		"       sentry-compile --dump ast|ir|json|constants FILE\n"
		"       sentry-compile --test FILE...\n"
		"       sentry-compile --plan OLD NEW\n"
		"       sentry-compile --plan --live IFACE NEW\n"
		"       sentry-compile --explain 'from ADDR [to] [PROTO [port N]]' FILE\n"
		"       sentry-compile fmt [--check | --stdout] FILE...\n"
		"\n"
		"  --check          validate the policy and run its expect lines;\n"
		"                   print only diagnostics\n"
		"  -o, --output F   write the compiled policy image to F\n"
		"  --dump KIND      print the AST, the IR, the image as JSON, or the\n"
		"                   generated BPF constants as a C header\n"
		"  --test           run the policy's expect lines and report each\n"
		"  --plan           what changes from OLD (a policy or a compiled\n"
		"                   image) to NEW: per rule and per address\n"
		"  --live IFACE     compare against the policy sentryd runs on IFACE\n"
		"  --state-dir DIR  sentryd's state directory (default %s)\n"
		"  --pin-root DIR   sentryd's bpffs pin root (default %s)\n"
		"  --explain PKT    which rule decides the packet, and which it beat\n"
		"  --format F       text (default), json, sarif or github; --plan and\n"
		"                   --explain: text or json\n"
		"  --max-errors N   keep at most N diagnostics per file (default %d)\n"
		"  --Werror         warnings make the policy invalid\n"
		"\n"
		"  fmt              rewrite files in the canonical layout; --check\n"
		"                   lists files that are not (exit 1), --stdout prints\n"
		"\n"
		"exit: 0 valid, 1 invalid policy or failed expect, 2 usage or I/O\n"
		"error, 3 internal error; --plan: 0 no change, 1 error, 2 changes\n",
		SN_DEFAULT_STATE_DIR, SN_DEFAULT_PIN_ROOT, SN_DIAGS_DEFAULT_MAX);
}

static const char *verdict_word(uint8_t v)
{
	return v == SN_VERDICT_BLOCK ? "block" : "allow";
}

/* Text diagnostics go to stderr as soon as a file is done; the other
 * formats are rendered once, over every file, at the end. */
static void finish_diags(const struct options *o, struct run *r)
{
	sn_diags_sort(&r->ctx.diags);
	if (o->format == SN_FORMAT_TEXT)
		sn_diags_render_text(stderr, &r->ctx.diags, &r->ctx.sources);
}

static void io_fail(struct run *r, const char *path, int rc)
{
	snprintf(r->io_error, sizeof(r->io_error), "%s: %s", path, strerror(-rc));
	r->io_failed = true;
	fprintf(stderr, "sentry-compile: %s\n", r->io_error);
}

/* Compile one file.  Returns an exit code; diagnostics stay in r->ctx. */
static int compile_one(struct run *r, struct sn_policy **policy,
		       struct sn_image **image)
{
	int rc = sn_compile_file(&r->ctx, r->path, policy, image);

	if (rc == -EINVAL || r->ctx.diags.n_errors)
		return EXIT_INVALID;
	if (rc) {
		io_fail(r, r->path, rc);
		return EXIT_USAGE;
	}
	return EXIT_VALID;
}

static void describe_rule(const struct sn_image_rule *r, char *buf, size_t n)
{
	if (r->file[0])
		snprintf(buf, n, "#%u '%s' at %s:%u:%u", r->id, r->text, r->file,
			 r->line, r->col);
	else
		snprintf(buf, n, "#%u '%s'", r->id, r->text);
}

/*
 * Judge every expect by the image evaluator (what the kernel will do) and
 * by the policy evaluator (what SPEC.md says); they must agree.  A failed
 * expect is an E015 diagnostic.  report, when given, gets one line per
 * expect.  Returns an exit code.
 */
static int run_expects(struct run *r, const struct sn_policy *p,
		       const struct sn_image *img, FILE *report,
		       size_t *n_failed)
{
	struct sn_ctx *ctx = &r->ctx;
	bool internal = false;
	char who[512];

	*n_failed = 0;
	r->rows = sn_arena_calloc(&ctx->arena, p->n_expects + 1, sizeof(*r->rows));
	if (!r->rows) {
		fprintf(stderr, "sentry-compile: out of memory\n");
		return EXIT_INTERNAL;
	}
	for (size_t i = 0; i < p->n_expects; i++) {
		const struct sn_expect *e = &p->expects[i];
		struct sn_packet pkt;
		struct sn_eval_result got, ref;

		sn_expect_packet(e, &pkt);
		sn_eval_image(img, &pkt, &got);
		sn_eval_policy(p, &pkt, &ref);
		const struct sn_image_rule *rule = &img->rules[got.rule_id];

		r->rows[r->n_rows++] = (struct expect_row){ e, rule, got.verdict };
		describe_rule(rule, who, sizeof(who));
		if (got.verdict != ref.verdict || got.rule_id != ref.rule_id ||
		    got.limit != ref.limit) {
			fprintf(stderr,
				"sentry-compile: internal error: %s:%u: image says %s "
				"by rule #%u (limit %u), policy semantics say %s by "
				"rule #%u (limit %u)\n",
				e->loc.file, e->loc.line, verdict_word(got.verdict),
				got.rule_id, got.limit, verdict_word(ref.verdict),
				ref.rule_id, ref.limit);
			internal = true;
		}
		if (got.verdict == e->verdict) {
			if (report)
				fprintf(report, "ok    %s:%u: %s  (%s)\n", e->loc.file,
					e->loc.line, e->text, who);
			continue;
		}
		(*n_failed)++;
		if (report)
			fprintf(report, "FAIL  %s:%u: %s\n", e->loc.file,
				e->loc.line, e->text);
		struct sn_diag *d = sn_diag_add(
			&ctx->diags, SN_SEV_ERROR, "E015", e->loc,
			"expectation failed: packet is %sed, not %sed",
			verdict_word(got.verdict), verdict_word(e->verdict));

		if (rule->file[0])
			sn_diag_note(&ctx->diags, d,
				     (struct sn_loc){ rule->file, rule->line,
						      rule->col, 1 },
				     "decided by rule #%u '%s'", rule->id,
				     rule->text);
		else
			sn_diag_note(&ctx->diags, d, (struct sn_loc){ 0 },
				     "decided by %s", rule->text);
	}
	if (internal)
		return EXIT_INTERNAL;
	return *n_failed ? EXIT_INVALID : EXIT_VALID;
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

static int dump_ast(const struct options *o, struct run *r)
{
	struct sn_ast *ast = NULL;
	int rc = sn_parse_file(&r->ctx, r->path, &ast);

	if (rc) {
		io_fail(r, r->path, rc);
		return EXIT_USAGE;
	}
	if (ast)
		sn_ast_dump(stdout, ast);
	finish_diags(o, r);
	return r->ctx.diags.n_errors ? EXIT_INVALID : EXIT_VALID;
}

/* --check, -o, --dump and --test of one file. */
static int run_file(const struct options *o, struct run *r)
{
	struct sn_policy *policy = NULL;
	struct sn_image *image = NULL;
	size_t failed = 0;
	int code, rc;

	if (o->mode == MODE_DUMP && !strcmp(o->dump, "ast"))
		return dump_ast(o, r);

	code = compile_one(r, &policy, &image);
	if (code == EXIT_VALID && o->werror && r->ctx.diags.n_warnings)
		code = EXIT_INVALID;
	if (code == EXIT_VALID) {
		void *buf = NULL;
		size_t len;

		rc = sn_image_serialize(image, &buf, &len); /* sets the checksum */
		free(buf);
		if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", r->path,
				strerror(-rc));
			code = EXIT_INTERNAL;
		}
	}
	if (code != EXIT_VALID) {
		finish_diags(o, r);
		return code;
	}
	switch (o->mode) {
	case MODE_CHECK:
		code = run_expects(r, policy, image, NULL, &failed);
		finish_diags(o, r);
		break;
	case MODE_COMPILE:
		finish_diags(o, r);
		rc = write_image(image, o->output);
		if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", o->output,
				strerror(-rc));
			code = EXIT_USAGE;
		}
		break;
	case MODE_DUMP:
		finish_diags(o, r);
		if (!strcmp(o->dump, "ir"))
			sn_dump_ir(stdout, image);
		else if (!strcmp(o->dump, "json"))
			sn_dump_json(stdout, image);
		else
			sn_dump_constants(stdout, image, r->path);
		break;
	case MODE_TEST: {
		/* stdout belongs to the machine-readable document then. */
		FILE *report = o->format == SN_FORMAT_TEXT ? stdout : stderr;

		code = run_expects(r, policy, image, report, &failed);
		fflush(report); /* the report first, then the diagnostics */
		finish_diags(o, r);
		fprintf(report, "%s: %zu passed, %zu failed\n",
			policy->main_file ? policy->main_file : "",
			policy->n_expects - failed, failed);
		break;
	}
	case MODE_PLAN:
	case MODE_EXPLAIN:
		break;
	}
	return code;
}

/* The "expects" member of the JSON document of --test. */
struct expects_json {
	const struct run *runs;
	size_t n;
};

static void json_expects(FILE *out, void *arg)
{
	const struct expects_json *x = arg;
	bool first = true;

	fputs(",\"expects\":[", out);
	for (size_t i = 0; i < x->n; i++)
		for (size_t j = 0; j < x->runs[i].n_rows; j++) {
			const struct expect_row *row = &x->runs[i].rows[j];

			fputs(first ? "\n  {\"file\":" : ",\n  {\"file\":", out);
			first = false;
			sn_json_str(out, row->e->loc.file);
			fprintf(out, ",\"line\":%u,\"text\":", row->e->loc.line);
			sn_json_str(out, row->e->text);
			fprintf(out, ",\"expected\":\"%s\",\"verdict\":\"%s\","
				     "\"ok\":%s,\"rule\":{\"id\":%u,\"text\":",
				verdict_word(row->e->verdict),
				verdict_word(row->verdict),
				row->verdict == row->e->verdict ? "true" : "false",
				row->rule->id);
			sn_json_str(out, row->rule->text);
			fputs(",\"file\":", out);
			sn_json_str(out, row->rule->file[0] ? row->rule->file : NULL);
			fprintf(out, ",\"line\":%u,\"column\":%u}}", row->rule->line,
				row->rule->col);
		}
	fputs(first ? "]" : "\n]", out);
}

/* Render the runs' diagnostics in a machine-readable format. */
static void render_document(const struct options *o, FILE *out,
			    const struct run *runs, size_t n)
{
	struct sn_diag_file *files = calloc(n + 1, sizeof(*files));
	struct expects_json ex = { runs, n };

	if (!files) {
		fprintf(stderr, "sentry-compile: out of memory\n");
		return;
	}
	for (size_t i = 0; i < n; i++)
		files[i] = (struct sn_diag_file){
			runs[i].path, runs[i].io_failed ? NULL : &runs[i].ctx.diags,
			runs[i].io_failed ? runs[i].io_error : NULL };
	switch (o->format) {
	case SN_FORMAT_JSON:
		sn_diags_render_json(out, files, n,
				     o->mode == MODE_TEST ? json_expects : NULL, &ex);
		break;
	case SN_FORMAT_SARIF:
		sn_diags_render_sarif(out, files, n);
		break;
	case SN_FORMAT_GITHUB:
		sn_diags_render_github(out, files, n);
		break;
	case SN_FORMAT_TEXT:
		break;
	}
	fflush(out);
	free(files);
}

/* Internal beats usage beats invalid beats valid. */
static int worse(int worst, int code)
{
	if (code == EXIT_INTERNAL || (worst != EXIT_INTERNAL && code > worst))
		return code;
	return worst;
}

static int run_files(const struct options *o, char **paths, int n)
{
	struct run *runs = calloc((size_t)n, sizeof(*runs));
	int worst = EXIT_VALID;

	if (!runs) {
		fprintf(stderr, "sentry-compile: out of memory\n");
		return EXIT_INTERNAL;
	}
	for (int i = 0; i < n; i++) {
		runs[i].path = paths[i];
		sn_ctx_init(&runs[i].ctx);
		runs[i].ctx.diags.max_kept = o->max_errors;
		worst = worse(worst, run_file(o, &runs[i]));
	}
	/* --dump's stdout is the dump: the document goes beside it. */
	if (o->format != SN_FORMAT_TEXT)
		render_document(o, o->mode == MODE_DUMP ? stderr : stdout, runs,
				(size_t)n);
	for (int i = 0; i < n; i++)
		sn_ctx_free(&runs[i].ctx);
	free(runs);
	return worst;
}

/* ---- --explain ------------------------------------------------------------------ */

static int run_explain(const struct options *o, const char *path)
{
	struct sn_packet pkt;
	struct sn_policy *policy = NULL;
	struct sn_image *image = NULL;
	struct run r = { .path = path };
	char err[256];
	int code;

	if (sn_explain_parse(o->packet, &pkt, err, sizeof(err))) {
		fprintf(stderr, "sentry-compile: --explain '%s': %s\n", o->packet,
			err);
		return EXIT_USAGE;
	}
	sn_ctx_init(&r.ctx);
	r.ctx.diags.max_kept = o->max_errors;
	code = compile_one(&r, &policy, &image);
	if (code == EXIT_VALID && o->werror && r.ctx.diags.n_warnings)
		code = EXIT_INVALID;
	if (code != EXIT_VALID) {
		sn_diags_sort(&r.ctx.diags);
		if (o->format == SN_FORMAT_TEXT)
			sn_diags_render_text(stderr, &r.ctx.diags, &r.ctx.sources);
		else
			render_document(o, stdout, &r, 1);
		goto out;
	}
	/* A valid policy's warnings are --check's business: the question
	 * here is one packet's verdict. */
	struct sn_explain x;
	struct sn_eval_result got, ref;

	if (sn_explain_run(policy, &pkt, &r.ctx.arena, &x)) {
		fprintf(stderr, "sentry-compile: out of memory\n");
		code = EXIT_INTERNAL;
		goto out;
	}
	sn_eval_image(image, &pkt, &got);
	sn_eval_policy(policy, &pkt, &ref);
	if (got.verdict != ref.verdict || got.rule_id != ref.rule_id ||
	    got.limit != ref.limit ||
	    x.result.verdict != ref.verdict || x.result.rule_id != ref.rule_id) {
		fprintf(stderr,
			"sentry-compile: internal error: image says %s by rule #%u, "
			"policy semantics say %s by rule #%u, the explanation "
			"%s by rule #%u\n",
			verdict_word(got.verdict), got.rule_id,
			verdict_word(ref.verdict), ref.rule_id,
			verdict_word(x.result.verdict), x.result.rule_id);
		code = EXIT_INTERNAL;
		goto out;
	}
	if (o->format == SN_FORMAT_JSON)
		sn_explain_print_json(stdout, &x);
	else
		sn_explain_print_text(stdout, &x);
out:
	sn_ctx_free(&r.ctx);
	return code;
}

/* ---- --plan ---------------------------------------------------------------------- */

/* A compiled image starts with its magic; anything else is policy text. */
static bool is_image_file(const char *path)
{
	char magic[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool yes;

	if (fd < 0)
		return false; /* compiling it reports why it cannot be read */
	yes = read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
	      !memcmp(magic, SN_IMAGE_MAGIC, sizeof(magic));
	close(fd);
	return yes;
}

/*
 * The image sentryd saved for IFACE, checked against the checksum of the
 * policy the pins say is applied.  Without access to the pins (not root)
 * the image is used unverified, with a warning.
 */
static int load_live(const struct options *o, struct run *r,
		     struct sn_plan_side *side, char *name, size_t namelen)
{
	const char *state = o->state_dir ? o->state_dir : SN_DEFAULT_STATE_DIR;
	const char *pins = o->pin_root ? o->pin_root : SN_DEFAULT_PIN_ROOT;
	struct sn_image *img;
	struct sn_meta meta;
	char err[512], dir[4096];
	int rc = sn_state_load_image(state, o->live, &r->ctx.arena, &img, err,
				     sizeof(err));

	if (rc) {
		fprintf(stderr, "sentry-compile: --live %s: no saved policy: %s\n",
			o->live, err);
		return PLAN_ERROR;
	}
	snprintf(name, namelen, "%s (live)", o->live);
	side->name = name;
	side->image = img;
	if (sn_state_join(dir, sizeof(dir), pins, o->live))
		return PLAN_ERROR;
	rc = sn_pinned_read_meta(dir, &meta);
	if (rc) {
		fprintf(stderr, "sentry-compile: warning: cannot read %s/sn_meta "
				"(%s): the saved image is not verified against the "
				"policy the data plane runs\n",
			dir, strerror(-rc));
		return PLAN_NO_CHANGE;
	}
	if (meta.abi_version != SN_ABI_VERSION ||
	    memcmp(meta.checksum, img->checksum, sizeof(meta.checksum))) {
		char a[65], b[65];

		sn_checksum_hex(meta.checksum, a);
		sn_checksum_hex(img->checksum, b);
		fprintf(stderr, "sentry-compile: --live %s: the saved image (%.16s) "
				"is not the applied policy (%.16s, ABI %u): "
				"refusing to plan against it\n",
			o->live, b, a, meta.abi_version);
		return PLAN_ERROR;
	}
	return PLAN_NO_CHANGE;
}

/* Read one side: a compiled image, or a policy compiled now. */
static int load_side(const struct options *o, struct run *r,
		     struct sn_plan_side *side)
{
	char err[256];
	int code;

	side->name = r->path;
	if (is_image_file(r->path)) {
		struct sn_image *img;
		int rc = sn_image_read_file(r->path, &r->ctx.arena, &img, err,
					    sizeof(err));

		if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", r->path,
				err[0] ? err : strerror(-rc));
			return PLAN_ERROR;
		}
		side->image = img;
		return PLAN_NO_CHANGE;
	}
	struct sn_policy *policy = NULL;
	struct sn_image *image = NULL;

	code = compile_one(r, &policy, &image);
	if (code == EXIT_VALID && o->werror && r->ctx.diags.n_warnings)
		code = EXIT_INVALID;
	sn_diags_sort(&r->ctx.diags);
	if (code != EXIT_VALID)
		return code == EXIT_INTERNAL ? EXIT_INTERNAL : PLAN_ERROR;
	side->policy = policy;
	side->image = image;
	return PLAN_NO_CHANGE;
}

static int run_plan(const struct options *o, char **paths)
{
	struct run runs[2] = { 0 };
	struct sn_plan_side sides[2] = { 0 };
	char live_name[64];
	int code = PLAN_NO_CHANGE, codes[2] = { 0 };
	struct sn_plan plan = { 0 };

	for (int i = 0; i < 2; i++) {
		sn_ctx_init(&runs[i].ctx);
		runs[i].ctx.diags.max_kept = o->max_errors;
	}
	if (o->live) {
		runs[1].path = paths[0];
		codes[0] = load_live(o, &runs[0], &sides[0], live_name,
				     sizeof(live_name));
	} else {
		runs[0].path = paths[0];
		runs[1].path = paths[1];
		codes[0] = load_side(o, &runs[0], &sides[0]);
	}
	codes[1] = load_side(o, &runs[1], &sides[1]);
	code = codes[0] == EXIT_INTERNAL || codes[1] == EXIT_INTERNAL
		? EXIT_INTERNAL : codes[0] || codes[1] ? PLAN_ERROR : 0;
	if (code != PLAN_NO_CHANGE) {
		/* The diagnostics of the side(s) that failed; a valid side's
		 * warnings are --check's business. */
		struct run doc[2];
		size_t nd = 0;

		for (int i = 0; i < 2; i++)
			if (runs[i].path &&
			    (runs[i].ctx.diags.n_errors || runs[i].io_failed))
				doc[nd++] = runs[i];
		for (size_t i = 0; o->format == SN_FORMAT_TEXT && i < nd; i++)
			sn_diags_render_text(stderr, &doc[i].ctx.diags,
					     &doc[i].ctx.sources);
		if (o->format != SN_FORMAT_TEXT)
			render_document(o, stdout, doc, nd);
		goto out;
	}
	int rc = sn_plan_build(&sides[0], &sides[1], &runs[1].ctx.arena, &plan);

	if (rc) {
		fprintf(stderr, "sentry-compile: --plan: %s\n",
			rc == -EINVAL ? "an image lacks its /0 roots"
				      : strerror(-rc));
		code = rc == -EINVAL ? PLAN_ERROR : EXIT_INTERNAL;
		goto out;
	}
	if (o->format == SN_FORMAT_JSON)
		sn_plan_print_json(stdout, &plan, &sides[0], &sides[1]);
	else
		sn_plan_print_text(stdout, &plan, &sides[0], &sides[1],
				   PLAN_MAX_ENTRIES);
	code = sn_plan_has_changes(&plan) ? PLAN_CHANGES : PLAN_NO_CHANGE;
out:
	sn_plan_free(&plan);
	for (int i = 0; i < 2; i++)
		sn_ctx_free(&runs[i].ctx);
	return code;
}

/* ---- command line ------------------------------------------------------------- */

static int read_file(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			char *b = realloc(buf, cap + 1);

			if (!b) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = b;
		}
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (got == 0)
			break;
	}
	int err = ferror(f) ? -EIO : 0;

	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

/* Replace path's contents, keeping its mode; readers see old or new. */
static int rewrite_file(const char *path, const char *text, size_t len)
{
	char tmp[4096];
	struct stat st;
	int fd, rc = 0;

	if (stat(path, &st))
		return -errno;
	if (snprintf(tmp, sizeof(tmp), "%s.fmt.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd))
		rc = errno ? -errno : -EIO;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* sentry-compile fmt [--check | --stdout] FILE... */
static int run_fmt(int argc, char **argv)
{
	bool check = false, to_stdout = false;
	int i = 1, worst = EXIT_VALID;

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (!strcmp(argv[i], "--check"))
			check = true;
		else if (!strcmp(argv[i], "--stdout"))
			to_stdout = true;
		else if (!strcmp(argv[i], "--"))
			break;
		else {
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc || (check && to_stdout)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (; i < argc; i++) {
		const char *path = argv[i];
		struct sn_ctx ctx;
		char *text = NULL, *out = NULL;
		size_t len = 0, out_len = 0;
		int rc = read_file(path, &text, &len);

		if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", path, strerror(-rc));
			worst = worse(worst, EXIT_USAGE);
			continue;
		}
		sn_ctx_init(&ctx);
		rc = sn_fmt_text(&ctx, path, text, len, &out, &out_len);
		if (rc == -EINVAL) {
			/* Only this file's syntax matters to its layout. */
			sn_diags_sort(&ctx.diags);
			sn_diags_render_text(stderr, &ctx.diags, &ctx.sources);
			worst = worse(worst, EXIT_INVALID);
		} else if (rc) {
			fprintf(stderr, "sentry-compile: %s: %s\n", path, strerror(-rc));
			worst = worse(worst, EXIT_USAGE);
		} else if (to_stdout) {
			fwrite(out, 1, out_len, stdout);
		} else if (out_len != len || memcmp(out, text, len)) {
			if (check) {
				printf("%s: not formatted\n", path);
				worst = worse(worst, EXIT_INVALID);
			} else if ((rc = rewrite_file(path, out, out_len))) {
				fprintf(stderr, "sentry-compile: %s: %s\n", path,
					strerror(-rc));
				worst = worse(worst, EXIT_USAGE);
			}
		}
		free(out);
		free(text);
		sn_ctx_free(&ctx);
	}
	return worst;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "dump", required_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "plan", no_argument, NULL, 'p' },
		{ "live", required_argument, NULL, 'L' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "explain", required_argument, NULL, 'x' },
		{ "format", required_argument, NULL, 'f' },
		{ "max-errors", required_argument, NULL, 'm' },
		{ "Werror", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct options o = { .mode = MODE_CHECK, .max_errors = SN_DIAGS_DEFAULT_MAX };
	int modes = 0, c;
	bool bad = false;

	if (argc > 1 && !strcmp(argv[1], "fmt"))
		return run_fmt(argc - 1, argv + 1);

	/* Parse everything before judging: --plan changes what a usage
	 * error exits with (1, since 2 means "changes"). */
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
				bad = true;
			}
			break;
		case 't':
			o.mode = MODE_TEST;
			modes++;
			break;
		case 'p':
			o.mode = MODE_PLAN;
			modes++;
			break;
		case 'x':
			o.mode = MODE_EXPLAIN;
			o.packet = optarg;
			modes++;
			break;
		case 'L':
			o.live = optarg;
			break;
		case 'S':
			o.state_dir = optarg;
			break;
		case 'P':
			o.pin_root = optarg;
			break;
		case 'f':
			if (sn_format_parse(optarg, &o.format)) {
				fprintf(stderr, "sentry-compile: unknown format '%s' "
						"(text, json, sarif, github)\n",
					optarg);
				bad = true;
			}
			break;
		case 'm': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !*optarg || v == 0 || v > 1000000) {
				fprintf(stderr, "sentry-compile: bad --max-errors '%s'\n",
					optarg);
				bad = true;
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
			bad = true;
		}
	}
	int nfiles = argc - optind;
	const int usage_exit = o.mode == MODE_PLAN ? PLAN_ERROR : EXIT_USAGE;

	if (modes > 1 || nfiles < 1 ||
	    ((o.mode == MODE_COMPILE || o.mode == MODE_DUMP ||
	      o.mode == MODE_EXPLAIN) && nfiles != 1) ||
	    (o.mode == MODE_PLAN && nfiles != (o.live ? 1 : 2)) ||
	    ((o.live || o.state_dir || o.pin_root) && o.mode != MODE_PLAN) ||
	    ((o.mode == MODE_PLAN || o.mode == MODE_EXPLAIN) &&
	     o.format != SN_FORMAT_TEXT && o.format != SN_FORMAT_JSON))
		bad = true;
	if (bad) {
		usage(stderr);
		return usage_exit;
	}
	if (o.mode == MODE_PLAN)
		return run_plan(&o, argv + optind);
	if (o.mode == MODE_EXPLAIN)
		return run_explain(&o, argv[optind]);
	return run_files(&o, argv + optind, nfiles);
}

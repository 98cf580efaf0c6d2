/*
 * sentryctl: look at sentryd and the pinned 47Sentry state, reload, and
 * remove enforcement.
 *
 *   sentryctl status [--iface IF] [--json] [--source auto|api|pins] [...]
 *   sentryctl rules  [--top N] [--iface IF] [--json] [--source ...] [...]
 *   sentryctl reload [--json] [--api ADDR] [--token-file FILE]
 *   sentryctl detach --iface IF [--json] [--pin-root DIR] [--state-dir DIR]
 *
 * Where each command reads (SPEC.md 7 "sentryctl"):
 *  - status and rules ask sentryd's REST API first (source auto), and read
 *    the pins and the image sentryd saved beside them when the daemon
 *    does not answer or is not the one of these pins; --source forces one.
 *    From the pins the image is trusted only when its checksum equals the
 *    one the pins say is applied, so a stale or foreign file never puts
 *    the wrong rule text next to a counter.
 *  - reload needs the daemon (POST /v1/reload, with the bearer token).
 *  - detach never asks the daemon: it is the emergency exit and works
 *    while sentryd is dead, hung or gone, because the pinned link is
 *    enough to take the program off.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <jansson.h>

#include "../bpf/sentry_abi.h"
#include "../compiler/arena.h"
#include "../compiler/image.h"
#include "client.h"
#include "config.h"
#include "dataplane.h"
#include "state.h"

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1, /* nothing there, or it could not be read/removed */
	EXIT_USAGE = 2,
};

/* Guards the counter allocation against a corrupt sn_meta. */
#define MAX_RULES (1u << 22)

enum source { SRC_AUTO, SRC_API, SRC_PINS };

struct opts {
	const char *iface;
	const char *pin_root;
	const char *state_dir;
	bool json;
	enum source source;
	long top;             /* rules --top N; -1: all */
	const char *api;      /* --api ADDR */
	const char *token_file;
	const char *config;   /* sentryd's YAML: api, token, roots */
	struct sn_config cfg;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentryctl status [--iface IF] [--json] [--source auto|api|pins] [options]\n"
		"       sentryctl rules [--top N] [--iface IF] [--json] [--source ...] [options]\n"
		"       sentryctl reload [--json] [--api ADDR] [--token-file FILE] [--config FILE]\n"
		"       sentryctl detach --iface IF [--json] [--pin-root DIR] [--state-dir DIR]\n"
		"\n"
		"status  per interface: XDP mode, policy checksum, when it was applied,\n"
		"        the generation, sentryd's last reload (for a failure: why and\n"
		"        the diagnostics), and the packets/bytes each rule decided with\n"
		"        its source location and text\n"
		"rules   the rules by packets decided, most first (--top N: the first N)\n"
		"reload  make sentryd compile and apply its policy now (POST /v1/reload;\n"
		"        needs the API token)\n"
		"detach  take the XDP program off IF, unpin its state and delete the\n"
		"        saved image; never asks sentryd, works without it\n"
		"\n"
		"  --iface IF        one interface (required for detach)\n"
		"  --json            JSON instead of tables\n"
		"  --source SRC      status/rules: auto (default: the API, else the pins),\n"
		"                    api or pins\n"
		"  --api ADDR        sentryd's API: HOST:PORT, [V6]:PORT, unix:/PATH\n"
		"                    (default: the --config file's api.listen, else %s)\n"
		"  --token-file F    bearer token for reload (default: the --config\n"
		"                    file's api.token_file)\n"
		"  --config FILE     sentryd's configuration: API address, token file,\n"
		"                    pin root and state dir from there\n"
		"  --pin-root DIR    bpffs directory of the pins (default %s)\n"
		"  --state-dir DIR   saved policy images (default %s)\n"
		"\n"
		"exit: 0 success (status: state shown; reload: applied or unchanged;\n"
		"        detach: detached)\n"
		"      1 nothing there, sentryd not reachable (reload, --source api),\n"
		"        the reload failed, or state that could not be read or removed\n"
		"      2 usage\n",
		SN_API_DEFAULT_LISTEN, SN_DEFAULT_PIN_ROOT, SN_DEFAULT_STATE_DIR);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "source", required_argument, NULL, 's' },
		{ "top", required_argument, NULL, 't' },
		{ "api", required_argument, NULL, 'a' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct opts){ .top = -1 };
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (sn_ifname_check(optarg)) {
				fprintf(stderr, "sentryctl: bad interface name "
					"'%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->iface = optarg;
			break;
		case 'P': o->pin_root = optarg; break;
		case 'S': o->state_dir = optarg; break;
		case 'j': o->json = true; break;
		case 's':
			if (!strcmp(optarg, "auto"))
				o->source = SRC_AUTO;
			else if (!strcmp(optarg, "api"))
				o->source = SRC_API;
			else if (!strcmp(optarg, "pins"))
				o->source = SRC_PINS;
			else {
				fprintf(stderr, "sentryctl: bad --source '%s' "
					"(auto, api or pins)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't': {
			char *end;
			o->top = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->top < 0 || o->top > 1000000) {
				fprintf(stderr, "sentryctl: bad --top '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'a': {
			struct sn_listen l;
			char err[256];
			if (sn_listen_parse(optarg, &l, err, sizeof(err))) {
				fprintf(stderr, "sentryctl: bad --api '%s': %s\n",
					optarg, err);
				return EXIT_USAGE;
			}
			o->api = optarg;
			break;
		}
		case 'T': o->token_file = optarg; break;
		case 'c': o->config = optarg; break;
		case 'h': usage(stdout); exit(EXIT_OK);
		default:
			fprintf(stderr, "sentryctl: unknown option or missing "
				"argument: %s\n", argv[optind <= argc ? optind - 1 : argc - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sentryctl: unexpected argument '%s'\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	/* sentryd's configuration fills in what no flag says. */
	if (o->config) {
		struct sn_config_diags dg = { 0 };
		if (sn_config_load(o->config, &o->cfg, &dg)) {
			sn_config_render(stderr, o->config, &dg);
			sn_config_diags_free(&dg);
			return EXIT_USAGE;
		}
		if (!o->api)
			o->api = o->cfg.api_listen;
		if (!o->token_file)
			o->token_file = o->cfg.token_file;
		if (!o->pin_root)
			o->pin_root = o->cfg.pin_root;
		if (!o->state_dir)
			o->state_dir = o->cfg.state_dir;
	}
	if (!o->api)
		o->api = SN_API_DEFAULT_LISTEN;
	if (!o->pin_root)
		o->pin_root = SN_DEFAULT_PIN_ROOT;
	if (!o->state_dir)
		o->state_dir = SN_DEFAULT_STATE_DIR;
	return -1;
}

/* ---- status ------------------------------------------------------------- */

static const char *mode_name(uint32_t m)
{
	return m == SN_ATTACH_NATIVE ? "native" :
	       m == SN_ATTACH_GENERIC ? "generic" : "unknown";
}

static const char *verdict_name(uint8_t v)
{
	return v == SN_VERDICT_ALLOW ? "allow" :
	       v == SN_VERDICT_BLOCK ? "block" : "?";
}

static void format_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	if (!ns || !gmtime_r(&t, &tm)) {
		snprintf(buf, len, "unknown");
		return;
	}
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	time_t now = time(NULL);
	long ago = (long)(now - t);
	if (ago < 0)
		snprintf(buf, len, "%s", when);
	else if (ago < 120)
		snprintf(buf, len, "%s (%lds ago)", when, ago);
	else if (ago < 7200)
		snprintf(buf, len, "%s (%ldm ago)", when, ago / 60);
	else if (ago < 172800)
		snprintf(buf, len, "%s (%ldh ago)", when, ago / 3600);
	else
		snprintf(buf, len, "%s (%ldd ago)", when, ago / 86400);
}

static int digits(uint64_t v)
{
	int n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/*
 * A rule with its counters, from either source: the pins (the saved image
 * names the rule) or the API (/v1/rules).  action NULL: only the id is
 * known (no usable image).
 */
struct row {
	uint32_t id;
	const char *action;   /* allow, block, limit */
	uint64_t packets, bytes;
	const char *file;     /* "" or NULL: no location */
	uint32_t line, col;
	const char *text;
};

static void format_loc(const struct row *r, char *buf, size_t len)
{
	if (r->file && r->file[0])
		snprintf(buf, len, "%s:%u:%u", r->file, r->line, r->col);
	else
		snprintf(buf, len, "-");
}

/* The rule table, as `status` and `rules` print it. */
static void print_rows(const struct row *r, size_t n)
{
	int wid = 4, wpk = 7, wby = 5, wloc = 8;
	char loc[PATH_MAX + 32];
	bool described = n && r[0].action;

	for (size_t i = 0; i < n; i++) {
		if (digits(r[i].id) > wid)
			wid = digits(r[i].id);
		if (digits(r[i].packets) > wpk)
			wpk = digits(r[i].packets);
		if (digits(r[i].bytes) > wby)
			wby = digits(r[i].bytes);
		format_loc(&r[i], loc, sizeof(loc));
		if ((int)strlen(loc) > wloc)
			wloc = (int)strlen(loc);
	}
	if (described)
		printf("  %*s  %-7s  %*s  %*s  %-*s  %s\n", wid, "RULE",
		       "VERDICT", wpk, "PACKETS", wby, "BYTES", wloc,
		       "LOCATION", "TEXT");
	else
		printf("  %*s  %*s  %*s\n", wid, "RULE", wpk, "PACKETS", wby,
		       "BYTES");
	for (size_t i = 0; i < n; i++) {
		if (!described) {
			printf("  %*u  %*llu  %*llu\n", wid, r[i].id, wpk,
			       (unsigned long long)r[i].packets, wby,
			       (unsigned long long)r[i].bytes);
			continue;
		}
		format_loc(&r[i], loc, sizeof(loc));
		printf("  %*u  %-7s  %*llu  %*llu  %-*s  %s\n", wid, r[i].id,
		       r[i].action, wpk, (unsigned long long)r[i].packets, wby,
		       (unsigned long long)r[i].bytes, wloc, loc,
		       r[i].text ? r[i].text : "");
	}
}

/* Rows of the pinned counters c[0, n), named by img when it is usable. */
static struct row *rows_of_pins(const struct sn_counter *c, uint32_t n,
				const struct sn_image *img)
{
	struct row *r = calloc(n ? n : 1, sizeof(*r));
	uint32_t limits = img && img->features ? img->features->n_limits : 0;
	for (uint32_t id = 0; r && id < n; id++) {
		r[id] = (struct row){ .id = id, .packets = c[id].packets,
				      .bytes = c[id].bytes };
		if (!img)
			continue;
		const struct sn_image_rule *ir = &img->rules[id];
		r[id].action = id >= img->n_rules - limits ? "limit" :
			       verdict_name(ir->verdict);
		r[id].file = ir->file;
		r[id].line = ir->line;
		r[id].col = ir->col;
		r[id].text = ir->text;
	}
	return r;
}

static int by_packets(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->packets != y->packets)
		return x->packets < y->packets ? 1 : -1;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* A value of the reload status (key=value lines), unquoted, or "". */
static void status_value(const char *text, const char *key, char *out,
			 size_t len)
{
	size_t kl = strlen(key);

	out[0] = '\0';
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);

		if (!strncmp(p, "diagnostics:", 12))
			return;
		if (ll > kl && !strncmp(p, key, kl) && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t vl = ll - kl - 1, n = 0;

			if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
				/* logfmt quoting: \" and \\ escapes */
				for (size_t i = 1; i + 1 < vl && n + 1 < len; i++) {
					if (v[i] == '\\' && i + 2 < vl)
						i++;
					out[n++] = v[i];
				}
			} else {
				for (size_t i = 0; i < vl && n + 1 < len; i++)
					out[n++] = v[i];
			}
			out[n] = '\0';
			return;
		}
		p = nl ? nl + 1 : NULL;
	}
}

/*
 * What sentryd said about its last reload (<state-dir>/<if>/reload.status):
 * the result, and for a failure the reason and the diagnostics.
 */
static void print_reload_status(const struct opts *o, const char *ifname,
				const char *applied_hex)
{
	char *text = NULL, result[32], at[64], ok[32], failed[32], error[512],
	     enforced[80];

	if (sn_state_read_file(o->state_dir, ifname, SN_STATE_STATUS_NAME,
			       &text, NULL))
		return;
	status_value(text, "result", result, sizeof(result));
	status_value(text, "at", at, sizeof(at));
	status_value(text, "reloads_ok", ok, sizeof(ok));
	status_value(text, "reloads_failed", failed, sizeof(failed));
	status_value(text, "error", error, sizeof(error));
	status_value(text, "enforced", enforced, sizeof(enforced));
	printf("reload     %s at %s (%s applied, %s failed since the daemon "
	       "started)\n", result[0] ? result : "?", at[0] ? at : "?",
	       ok[0] ? ok : "0", failed[0] ? failed : "0");
	if (!strcmp(result, "failed")) {
		printf("           %s\n", error);
		printf("           the last good policy %.12s stays enforced%s\n",
		       enforced, strncmp(enforced, applied_hex, 12) ?
				 " (differs from sn_meta!)" : "");
		const char *dg = strstr(text, "\ndiagnostics:\n");
		int lines = 0;

		if (dg) {
			dg += strlen("\ndiagnostics:\n");
			while (*dg && lines < 40) {
				const char *nl = strchr(dg, '\n');
				int l = nl ? (int)(nl - dg) : (int)strlen(dg);

				printf("           | %.*s\n", l, dg);
				lines++;
				dg = nl ? nl + 1 : dg + l;
			}
			if (*dg)
				printf("           | ...\n");
		}
	}
	free(text);
}

/* A rule row as /v1/rules gives it (the pins know one interface). */
static json_t *row_json(const struct row *r, const char *ifname)
{
	json_t *per = json_object();
	if (ifname)
		json_object_set_new(per, ifname, json_pack("{s:I, s:I}",
			"packets", (json_int_t)r->packets,
			"bytes", (json_int_t)r->bytes));
	return json_pack("{s:I, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:o}",
			 "id", (json_int_t)r->id,
			 "file", r->file && r->file[0] ? json_string(r->file) :
							  json_null(),
			 "line", (json_int_t)r->line, "col", (json_int_t)r->col,
			 "action", r->action ? json_string(r->action) : json_null(),
			 "text", r->text ? json_string(r->text) : json_null(),
			 "packets", (json_int_t)r->packets,
			 "bytes", (json_int_t)r->bytes, "interfaces", per);
}

enum view { VIEW_STATUS, VIEW_RULES };

/*
 * Status (or only the rule table, sorted: `rules`) of one interface
 * directory, printed, or appended to js as JSON; 0 or -1 (reported).
 */
static int status_one(const struct opts *o, const char *ifname,
		      enum view view, json_t *js)
{
#define P(...) do { if (!js && view == VIEW_STATUS) printf(__VA_ARGS__); } while (0)
	char dir[PATH_MAX];
	if (sn_state_join(dir, sizeof(dir), o->pin_root, ifname)) {
		fprintf(stderr, "sentryctl: %s: path too long\n", ifname);
		return -1;
	}
	P("interface  %s\n", ifname);

	struct sn_meta meta;
	int rc = sn_pinned_read_meta(dir, &meta);
	if (rc) {
		P("state      incomplete (%s/sn_meta: %s); remove it with "
		  "`sentryctl detach --iface %s`\n\n",
		  dir, strerror(-rc), ifname);
		if (js || view != VIEW_STATUS)
			fprintf(stderr, "sentryctl: %s: incomplete state (%s)\n",
				ifname, strerror(-rc));
		return -1;
	}
	if (meta.abi_version != SN_ABI_VERSION) {
		P("state      ABI version %u; this sentryctl reads %u, "
		  "so its counters are not shown\n\n",
		  meta.abi_version, SN_ABI_VERSION);
		if (js || view != VIEW_STATUS)
			fprintf(stderr, "sentryctl: %s: ABI version %u\n", ifname,
				meta.abi_version);
		return -1;
	}
	char hex[65], when[96], name[sizeof(meta.ifname) + 1];
	sn_checksum_hex(meta.checksum, hex);
	format_time(meta.applied_at_ns, when, sizeof(when));
	memcpy(name, meta.ifname, sizeof(meta.ifname));
	name[sizeof(meta.ifname)] = '\0';
	P("ifindex    %u%s%s%s\n", meta.ifindex,
	  strcmp(name, ifname) ? " (recorded for " : "",
	  strcmp(name, ifname) ? name : "",
	  strcmp(name, ifname) ? ")" : "");
	P("xdp mode   %s\n", mode_name(meta.attach_mode));
	P("policy     %.12s  (%u rules incl. pseudo-rules)\n", hex,
	  meta.n_rules);
	P("applied    %s\n", when);
	if (meta.state_version)
		P("generation %u (%llu appl%s)\n", meta.active_gen,
		  (unsigned long long)meta.reloads,
		  meta.reloads == 1 ? "y" : "ies");
	if (!js && view == VIEW_STATUS)
		print_reload_status(o, ifname, hex);

	uint32_t n = meta.n_rules;
	if (n > MAX_RULES) {
		P("counters   not shown: sn_meta claims %u rules\n\n", n);
		return -1;
	}
	struct sn_counter *c = calloc(n ? n : 1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "sentryctl: out of memory\n");
		return -1;
	}
	rc = sn_pinned_read_counters(dir, c, n);
	if (rc) {
		P("counters   unreadable: %s\n\n", strerror(-rc));
		free(c);
		return -1;
	}

	struct sn_arena arena;
	sn_arena_init(&arena);
	struct sn_image *img = NULL;
	char err[PATH_MAX + 256] = "";
	rc = sn_state_load_image(o->state_dir, ifname, &arena, &img, err,
				 sizeof(err));
	if (rc) {
		P("rules      saved image unusable (%s): counters by rule "
		  "id only\n", err);
		img = NULL;
	} else if (memcmp(img->checksum, meta.checksum, 32) != 0) {
		char ihex[65];
		sn_checksum_hex(img->checksum, ihex);
		P("rules      saved image is policy %.12s, not the applied "
		  "%.12s: counters by rule id only\n",
		  ihex, hex);
		img = NULL;
	} else if (img->n_rules < n) {
		P("rules      saved image has %u rules, sn_meta %u: "
		  "counters by rule id only\n", img->n_rules, n);
		img = NULL;
	}
	P("\n");
	struct row *rows = rows_of_pins(c, n, img);
	size_t shown = n;
	if (rows && view == VIEW_RULES) {
		qsort(rows, n, sizeof(*rows), by_packets);
		if (o->top >= 0 && (size_t)o->top < shown)
			shown = (size_t)o->top;
	}
	if (rows && js) {
		json_t *rj = json_array();
		for (size_t i = 0; i < shown; i++)
			json_array_append_new(rj, row_json(&rows[i], ifname));
		if (view == VIEW_RULES) {
			json_array_extend(js, rj);
			json_decref(rj);
		} else {
			json_array_append_new(js, json_pack(
				"{s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:o}",
				"name", ifname, "ifindex", (json_int_t)meta.ifindex,
				"mode", mode_name(meta.attach_mode), "checksum", hex,
				"applied_at", when,
				"generation", (json_int_t)meta.reloads,
				"active_generation", (json_int_t)meta.active_gen,
				"rules", rj));
		}
	} else if (rows) {
		if (view == VIEW_RULES)
			printf("interface  %s  policy %.12s\n", ifname, hex);
		print_rows(rows, shown);
		printf("\n");
	}
	free(rows);
	sn_arena_free(&arena);
	free(c);
	return rows ? 0 : -1;
#undef P
}

static int only_dirs(const struct dirent *e)
{
	/* d_type is reliable on bpffs; "." and ".." are not interfaces. */
	return e->d_type == DT_DIR && strcmp(e->d_name, ".") &&
	       strcmp(e->d_name, "..");
}

/* status or rules from the pins, of --iface or every interface there. */
static int pins_view(const struct opts *o, enum view view)
{
	json_t *js = o->json ? json_array() : NULL;
	int n = 0, failed = 0;
	struct dirent **list = NULL;
	if (o->iface) {
		char dir[PATH_MAX];
		struct stat st;
		if (sn_state_join(dir, sizeof(dir), o->pin_root, o->iface) ||
		    stat(dir, &st) != 0) {
			fprintf(stderr, "sentryctl: no 47Sentry state for %s "
				"under %s\n", o->iface, o->pin_root);
			json_decref(js);
			return EXIT_FAIL;
		}
		n = 1;
		failed = status_one(o, o->iface, view, js) != 0;
	} else {
		n = scandir(o->pin_root, &list, only_dirs, alphasort);
		if (n < 0) {
			if (errno == ENOENT)
				fprintf(stderr, "sentryctl: no 47Sentry state: %s "
					"does not exist\n", o->pin_root);
			else
				fprintf(stderr, "sentryctl: %s: %s\n", o->pin_root,
					strerror(errno));
			json_decref(js);
			return EXIT_FAIL;
		}
		if (n == 0)
			fprintf(stderr, "sentryctl: no 47Sentry state under %s\n",
				o->pin_root);
		for (int i = 0; i < n; i++) {
			if (status_one(o, list[i]->d_name, view, js))
				failed++;
			free(list[i]);
		}
		free(list);
	}
	if (js) {
		json_t *doc = view == VIEW_RULES ? json_incref(js) :
			json_pack("{s:s, s:o}", "source", "pins", "interfaces",
				  json_incref(js));
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
		json_decref(js);
	}
	return n > 0 && !failed ? EXIT_OK : EXIT_FAIL;
}

/* ---- the API ------------------------------------------------------------- */

/*
 * GET path from sentryd into *doc.  0; 1 the daemon does not answer
 * (or, for auto, is not the daemon of these pins: *why says so); -1 an
 * error reported.
 */
static int api_get(const struct opts *o, const char *path, json_t **doc,
		   char *why, size_t whylen)
{
	struct sn_client cl = { .timeout_s = 10 };
	char err[512];
	if (sn_listen_parse(o->api, &cl.where, err, sizeof(err)) ||
	    cl.where.kind == SN_LISTEN_OFF) {
		snprintf(why, whylen, "the API is off (%s)", o->api);
		return 1;
	}
	struct sn_client_resp r;
	if (sn_client_call(&cl, "GET", path, NULL, &r, err, sizeof(err))) {
		snprintf(why, whylen, "sentryd does not answer on %s (%s)", o->api,
			 err);
		return 1;
	}
	json_error_t jerr;
	*doc = json_loads(r.body, 0, &jerr);
	if (r.status != 200 || !*doc) {
		fprintf(stderr, "sentryctl: GET %s: HTTP %ld: %s\n", path, r.status,
			*doc ? "unexpected answer" : jerr.text);
		json_decref(*doc);
		*doc = NULL;
		sn_client_resp_free(&r);
		return -1;
	}
	sn_client_resp_free(&r);
	return 0;
}

/*
 * The daemon behind the API must be the one whose pins were asked about:
 * with --source auto, a sentryd with another pin root (a test's, another
 * namespace's) is not the source.
 */
static bool same_daemon(const struct opts *o, json_t *status, char *why,
			size_t whylen)
{
	const char *pr = json_string_value(json_object_get(status, "pin_root"));
	if (pr && strcmp(pr, o->pin_root)) {
		snprintf(why, whylen, "the sentryd on %s uses pin root %s, not %s",
			 o->api, pr, o->pin_root);
		return false;
	}
	if (o->iface) {
		json_t *ifs = json_object_get(status, "interfaces"), *f;
		size_t i;
		json_array_foreach(ifs, i, f)
			if (!strcmp(json_string_value(json_object_get(f, "name")) ?: "",
				    o->iface))
				return true;
		snprintf(why, whylen, "the sentryd on %s does not manage %s",
			 o->api, o->iface);
		return false;
	}
	return true;
}

static uint64_t jnum(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static const char *jtext(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Rows of /v1/rules, packets and bytes of one interface (NULL: total). */
static struct row *rows_of_api(json_t *rules, const char *ifname, size_t *n)
{
	*n = json_array_size(rules);
	struct row *r = calloc(*n ? *n : 1, sizeof(*r));
	json_t *e;
	size_t i;
	json_array_foreach(rules, i, e) {
		if (!r)
			break;
		json_t *src = e;
		if (ifname)
			src = json_object_get(json_object_get(e, "interfaces"), ifname);
		r[i] = (struct row){
			.id = (uint32_t)jnum(e, "id"), .action = jtext(e, "action"),
			.packets = jnum(src, "packets"), .bytes = jnum(src, "bytes"),
			.file = jtext(e, "file"), .line = (uint32_t)jnum(e, "line"),
			.col = (uint32_t)jnum(e, "col"), .text = jtext(e, "text"),
		};
	}
	return r;
}

static void print_duration(double s)
{
	long t = (long)s;
	if (t < 120)
		printf("%lds", t);
	else if (t < 7200)
		printf("%ldm%02lds", t / 60, t % 60);
	else
		printf("%ldh%02ldm", t / 3600, t / 60 % 60);
}

/* status from the API: the daemon, its last reload, each interface with
 * its rule table (the same table as from the pins). */
static void print_api_status(const struct opts *o, json_t *st, json_t *rules,
			     json_t *policy)
{
	printf("sentryd    pid %llu, version %s, up ",
	       (unsigned long long)jnum(st, "pid"), jtext(st, "version"));
	print_duration(json_real_value(json_object_get(st, "uptime_seconds")));
	printf(", API %s\n", o->api);
	printf("policy     %.12s  %s, loaded %s\n", jtext(st, "checksum"),
	       jtext(st, "policy_path"), jtext(st, "loaded_at"));
	json_t *rl = json_object_get(st, "reloads"), *last =
		json_object_get(st, "last_reload");
	printf("reloads    %llu ok, %llu failed", (unsigned long long)jnum(rl, "success"),
	       (unsigned long long)jnum(rl, "failure"));
	if (json_is_object(last))
		printf("; last: %s (%s) at %s, %.1f ms, %llu entries written",
		       jtext(last, "result"), jtext(last, "trigger"),
		       jtext(last, "at"),
		       json_real_value(json_object_get(last, "duration_seconds")) * 1e3,
		       (unsigned long long)jnum(last, "entries"));
	printf("\n");
	json_t *fail = json_object_get(policy, "last_failed_reload");
	if (json_is_true(json_object_get(st, "reload_failing")) &&
	    json_is_object(fail)) {
		printf("           the last reload failed: %s\n", jtext(fail, "error"));
		printf("           the last good policy %.12s stays enforced\n",
		       jtext(st, "checksum"));
		const char *dg = jtext(fail, "diagnostics");
		for (int lines = 0; *dg && lines < 40; lines++) {
			int l = (int)strcspn(dg, "\n");
			printf("           | %.*s\n", l, dg);
			dg += l + (dg[l] == '\n');
		}
	}
	printf("\n");
	json_t *ifs = json_object_get(st, "interfaces"), *f;
	size_t i;
	json_array_foreach(ifs, i, f) {
		const char *name = jtext(f, "name");
		if (o->iface && strcmp(o->iface, name))
			continue;
		printf("interface  %s\n", name);
		if (!json_is_true(json_object_get(f, "ok"))) {
			printf("state      %s\n\n", jtext(f, "error"));
			continue;
		}
		printf("ifindex    %llu\n", (unsigned long long)jnum(f, "ifindex"));
		printf("xdp mode   %s\n", jtext(f, "mode"));
		printf("policy     %.12s\n", jtext(f, "checksum"));
		printf("generation %llu (%llu appl%s)\n",
		       (unsigned long long)jnum(f, "active_generation"),
		       (unsigned long long)jnum(f, "generation"),
		       jnum(f, "generation") == 1 ? "y" : "ies");
		printf("\n");
		size_t n;
		struct row *r = rows_of_api(rules, name, &n);
		if (r)
			print_rows(r, n);
		free(r);
		printf("\n");
	}
}

/*
 * status and rules: the API when it answers (and is the daemon of these
 * pins), else the pins; --source forces one.
 */
static int cmd_view(const struct opts *o, enum view view)
{
	if (o->source == SRC_PINS)
		return pins_view(o, view);
	char why[PATH_MAX + 256] = "", path[64];
	json_t *st = NULL, *rules = NULL, *policy = NULL;
	int rc = api_get(o, "/v1/status", &st, why, sizeof(why));
	if (rc == 0 && o->source == SRC_AUTO && !same_daemon(o, st, why, sizeof(why)))
		rc = 1;
	if (rc == 0) {
		if (view == VIEW_RULES && o->top >= 0)
			snprintf(path, sizeof(path), "/v1/rules?top=%ld", o->top);
		else
			snprintf(path, sizeof(path), "/v1/rules");
		rc = api_get(o, path, &rules, why, sizeof(why));
	}
	if (rc == 0 && view == VIEW_STATUS)
		rc = api_get(o, "/v1/policy", &policy, why, sizeof(why));
	if (rc == 1 && o->source == SRC_AUTO) {
		json_decref(st);
		json_decref(rules);
		/* Silent: no daemon is the usual reason, and the pins are
		 * what the emergency path reads anyway. */
		return pins_view(o, view);
	}
	if (rc) {
		if (rc == 1)
			fprintf(stderr, "sentryctl: %s\n", why);
		json_decref(st);
		json_decref(rules);
		json_decref(policy);
		return EXIT_FAIL;
	}
	if (o->json) {
		json_t *doc = view == VIEW_RULES ? json_incref(rules) :
			json_pack("{s:s, s:O, s:O, s:O}", "source", "api",
				  "status", st, "policy", policy, "rules", rules);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
	} else if (view == VIEW_STATUS) {
		print_api_status(o, st, rules, policy);
	} else {
		size_t n;
		struct row *r = rows_of_api(rules, o->iface, &n);
		if (r)
			print_rows(r, n);
		free(r);
	}
	json_decref(st);
	json_decref(rules);
	json_decref(policy);
	return EXIT_OK;
}

/* POST /v1/reload: 0 applied or unchanged, 1 otherwise. */
static int cmd_reload(const struct opts *o)
{
	struct sn_client cl = { .timeout_s = 120 };
	char err[PATH_MAX + 256], hint[PATH_MAX + 64];
	char *token = NULL;
	if (sn_listen_parse(o->api, &cl.where, err, sizeof(err)) ||
	    cl.where.kind == SN_LISTEN_OFF) {
		fprintf(stderr, "sentryctl: reload needs sentryd's API (%s)\n",
			o->api);
		return EXIT_FAIL;
	}
	if (!o->token_file) {
		fprintf(stderr, "sentryctl: reload needs the API token: "
			"--token-file FILE or --config FILE\n");
		return EXIT_USAGE;
	}
	if (sn_token_read(o->token_file, &token, err, sizeof(err), hint,
			  sizeof(hint))) {
		fprintf(stderr, "sentryctl: %s\n", err);
		return EXIT_FAIL;
	}
	cl.token = token;
	struct sn_client_resp r;
	int rc = sn_client_call(&cl, "POST", "/v1/reload", NULL, &r, err,
				sizeof(err));
	free(token);
	if (rc) {
		fprintf(stderr, "sentryctl: sentryd does not answer: %s\n", err);
		return EXIT_FAIL;
	}
	json_t *doc = json_loads(r.body, 0, NULL);
	if (o->json) {
		fputs(r.body, stdout);
	} else if (!doc) {
		fprintf(stderr, "sentryctl: HTTP %ld: %s\n", r.status, r.body);
	} else if (json_is_object(json_object_get(doc, "error"))) {
		fprintf(stderr, "sentryctl: HTTP %ld: %s\n", r.status,
			jtext(json_object_get(doc, "error"), "message"));
	} else {
		json_t *e = json_object_get(doc, "reload");
		const char *res = jtext(doc, "result");
		if (!strcmp(res, "failed")) {
			printf("reload failed: %s\n", jtext(e, "error"));
			printf("policy %.12s stays enforced\n", jtext(e, "checksum"));
			const char *dg = jtext(doc, "diagnostics");
			fputs(dg, stdout);
		} else {
			printf("reload %s: policy %.12s, %llu rules, %llu entries "
			       "written, %.1f ms\n", res, jtext(e, "checksum"),
			       (unsigned long long)jnum(e, "rules"),
			       (unsigned long long)jnum(e, "entries"),
			       json_real_value(json_object_get(e, "duration_seconds")) * 1e3);
		}
	}
	json_decref(doc);
	long status = r.status;
	sn_client_resp_free(&r);
	return status == 200 ? EXIT_OK : EXIT_FAIL;
}

/* ---- detach ------------------------------------------------------------- */

static int cmd_detach(const struct opts *o)
{
	if (!o->iface) {
		fprintf(stderr, "sentryctl: detach needs --iface IF\n");
		return EXIT_USAGE;
	}
	char dir[PATH_MAX], err[PATH_MAX + 256] = "";
	if (sn_state_join(dir, sizeof(dir), o->pin_root, o->iface)) {
		fprintf(stderr, "sentryctl: %s: path too long\n", o->iface);
		return EXIT_FAIL;
	}
	/* For the message only: detach must work on partial state too. */
	struct sn_meta meta;
	char policy[80] = "";
	if (sn_pinned_read_meta(dir, &meta) == 0) {
		char hex[65];
		sn_checksum_hex(meta.checksum, hex);
		snprintf(policy, sizeof(policy), " (policy %.12s)", hex);
	}

	int rc = sn_pinned_detach(dir, err, sizeof(err));
	char serr[PATH_MAX + 256] = "";
	int src = sn_state_remove(o->state_dir, o->iface, serr, sizeof(serr));

	if (rc == -ENOENT) {
		fprintf(stderr,
			"sentryctl: nothing to detach: no 47Sentry state for %s "
			"under %s%s\n",
			o->iface, o->pin_root,
			src == 0 ? " (removed a stale saved image)" : "");
		return EXIT_FAIL;
	}
	if (rc) {
		fprintf(stderr, "sentryctl: detaching %s failed: %s\n", o->iface,
			err);
		return EXIT_FAIL;
	}
	if (src && src != -ENOENT) {
		/* Enforcement is gone, which is what matters; say what is
		 * left so it can be cleaned by hand. */
		printf("detached 47Sentry from %s%s; XDP program removed, pins "
		       "deleted\n", o->iface, policy);
		fprintf(stderr, "sentryctl: warning: %s\n", serr);
		return EXIT_OK;
	}
	if (o->json)
		printf("{\"interface\": \"%s\", \"detached\": true}\n", o->iface);
	else
		printf("detached 47Sentry from %s%s: XDP program removed, pins "
		       "and saved image deleted\n", o->iface, policy);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	static struct opts o;
	int rc = parse_args(argc - 1, argv + 1, &o);
	if (rc < 0) {
		if (strcmp(cmd, "status") == 0)
			rc = cmd_view(&o, VIEW_STATUS);
		else if (strcmp(cmd, "rules") == 0)
			rc = cmd_view(&o, VIEW_RULES);
		else if (strcmp(cmd, "reload") == 0)
			rc = cmd_reload(&o);
		else if (strcmp(cmd, "detach") == 0)
			rc = cmd_detach(&o);
		else {
			fprintf(stderr, "sentryctl: unknown command '%s'\n", cmd);
			usage(stderr);
			rc = EXIT_USAGE;
		}
	}
	sn_config_free(&o.cfg);
	return rc;
}

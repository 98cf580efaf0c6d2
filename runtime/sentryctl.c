/*
 * sentryctl: look at and remove pinned 47Sentry state, without the daemon.
 *
 *   sentryctl status [--iface IF] [--pin-root DIR] [--state-dir DIR]
 *   sentryctl detach --iface IF [--pin-root DIR] [--state-dir DIR]
 *
 * Everything comes from the pins (sn_meta, the per-rule counters) and the
 * image sentryd saved beside them; the image is trusted only when its
 * checksum equals the one the pins say is applied, so a stale or foreign
 * file never puts the wrong rule text next to a counter.
 *
 * detach is the emergency exit: it works while sentryd is dead, hung or
 * gone, because the pinned link is enough to take the program off.
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

#include "../bpf/sentry_abi.h"
#include "../compiler/arena.h"
#include "../compiler/image.h"
#include "dataplane.h"
#include "state.h"

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1, /* nothing there, or it could not be read/removed */
	EXIT_USAGE = 2,
};

/* Guards the counter allocation against a corrupt sn_meta. */
#define MAX_RULES (1u << 22)

struct opts {
	const char *iface;
	const char *pin_root;
	const char *state_dir;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentryctl status [--iface IF] [--pin-root DIR] [--state-dir DIR]\n"
		"       sentryctl detach --iface IF [--pin-root DIR] [--state-dir DIR]\n"
		"\n"
		"status  show, per interface with pinned 47Sentry state: ifindex,\n"
		"        XDP mode, policy checksum, when it was applied, the active\n"
		"        generation, sentryd's last reload (for a failure: why, and\n"
		"        the diagnostics), and the packets/bytes each rule decided,\n"
		"        with the rule's source location and text\n"
		"detach  take the XDP program off IF, unpin its state and delete\n"
		"        the saved image; works without sentryd running\n"
		"\n"
		"  --iface IF       one interface (required for detach)\n"
		"  --pin-root DIR   bpffs directory of the pins (default %s)\n"
		"  --state-dir DIR  saved policy images (default %s)\n"
		"\n"
		"exit: 0 success (status: state shown; detach: detached)\n"
		"      1 nothing there (no state for the interface) or it could\n"
		"        not be read or removed\n"
		"      2 usage\n",
		SN_DEFAULT_PIN_ROOT, SN_DEFAULT_STATE_DIR);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct opts){ .pin_root = SN_DEFAULT_PIN_ROOT,
			    .state_dir = SN_DEFAULT_STATE_DIR };
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

/* The rule table; img may be NULL (ids and counters only). */
static void print_counters(const struct sn_counter *c, uint32_t n,
			   const struct sn_image *img)
{
	int wid = 4, wpk = 7, wby = 5, wloc = 8;
	char loc[PATH_MAX + 32];

	for (uint32_t id = 0; id < n; id++) {
		if (digits(id) > wid)
			wid = digits(id);
		if (digits(c[id].packets) > wpk)
			wpk = digits(c[id].packets);
		if (digits(c[id].bytes) > wby)
			wby = digits(c[id].bytes);
		if (img && img->rules[id].file[0]) {
			int l = snprintf(loc, sizeof(loc), "%s:%u:%u",
					 img->rules[id].file, img->rules[id].line,
					 img->rules[id].col);
			if (l > wloc)
				wloc = l;
		}
	}
	if (img)
		printf("  %*s  %-7s  %*s  %*s  %-*s  %s\n", wid, "RULE",
		       "VERDICT", wpk, "PACKETS", wby, "BYTES", wloc,
		       "LOCATION", "TEXT");
	else
		printf("  %*s  %*s  %*s\n", wid, "RULE", wpk, "PACKETS", wby,
		       "BYTES");
	for (uint32_t id = 0; id < n; id++) {
		if (!img) {
			printf("  %*u  %*llu  %*llu\n", wid, id, wpk,
			       (unsigned long long)c[id].packets, wby,
			       (unsigned long long)c[id].bytes);
			continue;
		}
		const struct sn_image_rule *r = &img->rules[id];
		if (r->file[0])
			snprintf(loc, sizeof(loc), "%s:%u:%u", r->file, r->line,
				 r->col);
		else
			snprintf(loc, sizeof(loc), "-");
		printf("  %*u  %-7s  %*llu  %*llu  %-*s  %s\n", wid, id,
		       verdict_name(r->verdict), wpk,
		       (unsigned long long)c[id].packets, wby,
		       (unsigned long long)c[id].bytes, wloc, loc,
		       r->text ? r->text : "");
	}
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

/* Status of one interface directory; 0 or -1 (reported). */
static int status_one(const struct opts *o, const char *ifname)
{
	char dir[PATH_MAX];
	if (sn_state_join(dir, sizeof(dir), o->pin_root, ifname)) {
		fprintf(stderr, "sentryctl: %s: path too long\n", ifname);
		return -1;
	}
	printf("interface  %s\n", ifname);

	struct sn_meta meta;
	int rc = sn_pinned_read_meta(dir, &meta);
	if (rc) {
		printf("state      incomplete (%s/sn_meta: %s); remove it with "
		       "`sentryctl detach --iface %s`\n\n",
		       dir, strerror(-rc), ifname);
		return -1;
	}
	if (meta.abi_version != SN_ABI_VERSION) {
		printf("state      ABI version %u; this sentryctl reads %u, "
		       "so its counters are not shown\n\n",
		       meta.abi_version, SN_ABI_VERSION);
		return -1;
	}
	char hex[65], when[96], name[sizeof(meta.ifname) + 1];
	sn_checksum_hex(meta.checksum, hex);
	format_time(meta.applied_at_ns, when, sizeof(when));
	memcpy(name, meta.ifname, sizeof(meta.ifname));
	name[sizeof(meta.ifname)] = '\0';
	printf("ifindex    %u%s%s%s\n", meta.ifindex,
	       strcmp(name, ifname) ? " (recorded for " : "",
	       strcmp(name, ifname) ? name : "",
	       strcmp(name, ifname) ? ")" : "");
	printf("xdp mode   %s\n", mode_name(meta.attach_mode));
	printf("policy     %.12s  (%u rules incl. pseudo-rules)\n", hex,
	       meta.n_rules);
	printf("applied    %s\n", when);
	if (meta.state_version)
		printf("generation %u (%llu appl%s)\n", meta.active_gen,
		       (unsigned long long)meta.reloads,
		       meta.reloads == 1 ? "y" : "ies");
	print_reload_status(o, ifname, hex);

	uint32_t n = meta.n_rules;
	if (n > MAX_RULES) {
		printf("counters   not shown: sn_meta claims %u rules\n\n", n);
		return -1;
	}
	struct sn_counter *c = calloc(n ? n : 1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "sentryctl: out of memory\n");
		return -1;
	}
	rc = sn_pinned_read_counters(dir, c, n);
	if (rc) {
		printf("counters   unreadable: %s\n\n", strerror(-rc));
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
		printf("rules      saved image unusable (%s): counters by rule "
		       "id only\n", err);
		img = NULL;
	} else if (memcmp(img->checksum, meta.checksum, 32) != 0) {
		char ihex[65];
		sn_checksum_hex(img->checksum, ihex);
		printf("rules      saved image is policy %.12s, not the applied "
		       "%.12s: counters by rule id only\n",
		       ihex, hex);
		img = NULL;
	} else if (img->n_rules < n) {
		printf("rules      saved image has %u rules, sn_meta %u: "
		       "counters by rule id only\n", img->n_rules, n);
		img = NULL;
	}
	printf("\n");
	print_counters(c, n, img);
	printf("\n");
	sn_arena_free(&arena);
	free(c);
	return 0;
}

static int only_dirs(const struct dirent *e)
{
	/* d_type is reliable on bpffs; "." and ".." are not interfaces. */
	return e->d_type == DT_DIR && strcmp(e->d_name, ".") &&
	       strcmp(e->d_name, "..");
}

static int cmd_status(const struct opts *o)
{
	if (o->iface) {
		char dir[PATH_MAX];
		struct stat st;
		if (sn_state_join(dir, sizeof(dir), o->pin_root, o->iface) ||
		    stat(dir, &st) != 0) {
			fprintf(stderr, "sentryctl: no 47Sentry state for %s "
				"under %s\n", o->iface, o->pin_root);
			return EXIT_FAIL;
		}
		return status_one(o, o->iface) ? EXIT_FAIL : EXIT_OK;
	}
	struct dirent **list = NULL;
	int n = scandir(o->pin_root, &list, only_dirs, alphasort);
	if (n < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "sentryctl: no 47Sentry state: %s does "
				"not exist\n", o->pin_root);
		else
			fprintf(stderr, "sentryctl: %s: %s\n", o->pin_root,
				strerror(errno));
		return EXIT_FAIL;
	}
	if (n == 0)
		fprintf(stderr, "sentryctl: no 47Sentry state under %s\n",
			o->pin_root);
	int failed = 0;
	for (int i = 0; i < n; i++) {
		if (status_one(o, list[i]->d_name))
			failed++;
		free(list[i]);
	}
	free(list);
	return n > 0 && !failed ? EXIT_OK : EXIT_FAIL;
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
	printf("detached 47Sentry from %s%s: XDP program removed, pins and "
	       "saved image deleted\n",
	       o->iface, policy);
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
	struct opts o;
	int rc = parse_args(argc - 1, argv + 1, &o);
	if (rc >= 0)
		return rc;
	if (strcmp(cmd, "status") == 0)
		return cmd_status(&o);
	if (strcmp(cmd, "detach") == 0)
		return cmd_detach(&o);
	fprintf(stderr, "sentryctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}

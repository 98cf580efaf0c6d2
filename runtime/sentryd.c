/*
 * sentryd: compile a policy, enforce it with XDP on one or more
 * interfaces, follow changes of the policy files, and stay until told to
 * stop.
 *
 *   sentryd [--config FILE] --iface IF [--iface IF2 ...] --policy PATH
 *           [--xdp-mode auto|native|generic] [--pin-root DIR]
 *           [--state-dir DIR] [--detach-on-exit] [--log-level LEVEL]
 *           [--log-format logfmt|json|text] [--api-listen ADDR]
 *           [--api-token-file FILE] [--no-watch] [--debounce-ms N]
 *           [--settle-ms N]
 *   sentryd --check-config FILE [flags]
 *
 * The configuration file (YAML, runtime/config.h) says the same as the
 * flags; a flag given overrides it.  An invalid file is reported with
 * line and column and nothing is attached (exit 2).
 *
 * Per interface: load the program for the image, fill its maps, attach
 * with a bpf_link, record sn_meta, save the image (rule locations for
 * sentryctl) and pin everything under <pin-root>/<ifname>.  Because the
 * link is pinned, enforcement outlives this process: a crash, a SIGKILL or
 * a clean exit leave the policy enforced, and `sentryctl detach` is the
 * way to remove it (or --detach-on-exit for a clean exit).  A daemon
 * started later adopts that pinned state (SPEC.md 6.3) without a gap and
 * applies its policy as a difference; one daemon per interface (a lock in
 * the state directory).
 *
 * Either every interface ends up enforced or none does: a failure half-way
 * rolls back what was attached, pinned and saved, so nothing partial stays.
 *
 * Then it watches the policy, its includes and list files (runtime/watch.h:
 * inotify on their directories) and, after a quiet period, recompiles and
 * applies the difference atomically (SPEC.md 4.3).  A policy that does
 * not compile, or that the data plane cannot take, changes nothing: the
 * last good policy keeps enforcing, the diagnostics are logged as
 * sentry-compile prints them and kept in <state-dir>/<ifname>/reload.status
 * for `sentryctl status`, and the next change is tried again.  SIGHUP
 * reloads at once, and so does POST /v1/reload.
 *
 * The control surface - Prometheus metrics and the REST API (http.h,
 * api.h) - runs in the same event loop, so handlers read the daemon's
 * state (rt.h) without locks.  Under systemd (Type=notify) it reports
 * READY=1 once every interface enforces and the API listens, RELOADING=1
 * around reloads and STOPPING=1 on the way out.
 *
 * Exit: 0 clean exit after SIGTERM/SIGINT, 1 invalid policy or runtime
 * failure, 2 usage or invalid configuration.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "../bpf/sentry_abi.h"
#include "../compiler/compile.h"
#include "../compiler/image.h"
#include "bpffs.h"
#include "config.h"
#include "dataplane.h"
#include "http.h"
#include "log.h"
#include "rt.h"
#include "state.h"
#include "watch.h"

enum {
	EXIT_CLEAN = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

#define MAX_IFACES 64
/* Quiet periods before a reload (SPEC.md 7 "sentryd"). */
#define SN_DEBOUNCE_MS 5
#define SN_SETTLE_MS 250
#define SN_MAX_WAIT_MS 2000

struct opts {
	const char *ifaces[MAX_IFACES];
	enum sn_xdp_mode_request modes[MAX_IFACES]; /* per interface */
	int n_ifaces;
	const char *policy;
	enum sn_xdp_mode_request mode; /* --xdp-mode, for every interface */
	const char *pin_root;
	const char *state_dir;
	bool detach_on_exit;
	enum sn_log_level level;
	enum sn_log_format format;
	const char *api_listen;  /* "off", "unix:PATH", "HOST:PORT" */
	const char *token_file;  /* NULL: no mutating API calls */
	bool api_listen_given;   /* by flag or file, not the default */
	bool watch;        /* follow changes of the policy files */
	int debounce_ms;   /* quiet period after a file is complete */
	int settle_ms;     /* ... while a file is being written */
	int max_wait_ms;   /* at most this long after the first change */
	const char *config;      /* --config FILE */
	bool check_config;       /* --check-config FILE: check and exit */
	/* which flags were given: they override the configuration file */
	bool mode_set, level_set, format_set, watch_set, debounce_set,
	     settle_set;
};

/* What has been done on one interface, so a rollback undoes exactly it. */
struct iface {
	const char *name;
	enum sn_xdp_mode_request mode_req;
	int ifindex;
	char pin_dir[PATH_MAX];
	struct sn_dataplane *dp;
	enum sn_attach_mode mode;
	bool pin_dir_existed; /* empty directory found before we started */
	bool pin_tried;       /* sn_dp_pin ran (it may have created pin_dir) */
	bool pinned;
	bool image_saved;
	bool adopted;         /* pinned state of an earlier daemon, taken over */
	int lock_fd;          /* <state-dir>/.<ifname>.lock, held while we run */
	char lock_path[PATH_MAX];
};

/* A file the last compile read or tried to read, as it was then. */
struct srcsig {
	char *path;
	bool read;      /* read; else it failed with err */
	int err;
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
};

struct daemon {
	struct opts o;
	struct sn_log log;
	struct iface ifs[MAX_IFACES];
	bool pin_root_existed, state_dir_existed;
	char checksum_hex[65];  /* of the image compiled last */
	char enforced_hex[65];  /* of the image enforcing now */
	struct sn_watch *watch;
	struct srcsig *sigs;
	size_t n_sigs;
	uint64_t reloads_ok, reloads_failed;
	struct sn_config cfg;     /* owns the strings opts point into */
	struct sn_rt rt;          /* what the API and metrics report */
	struct sn_http *http;     /* NULL: api.listen off */
	const char *trigger;      /* of the reload under way (rt.h) */
	bool deferred;            /* a reload found the files changing */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentryd [--config FILE] --iface IF [--iface IF2 ...] --policy PATH [options]\n"
		"       sentryd --check-config FILE [options]\n"
		"\n"
		"Compile PATH and enforce it with XDP on every --iface, then run\n"
		"until SIGTERM/SIGINT.  Enforcement is pinned: it stays after this\n"
		"process exits (even by crash) until `sentryctl detach`.\n"
		"\n"
		"  --config FILE       YAML configuration (SPEC.md 6.4); flags given\n"
		"                      here override it\n"
		"  --check-config FILE check FILE (and the flags) and exit: 0 valid,\n"
		"                      2 invalid; needs no root\n"
		"  --iface IF          interface to protect (repeatable, max %d;\n"
		"                      replaces the file's interfaces)\n"
		"  --policy PATH       policy file (.sentry)\n"
		"  --xdp-mode MODE     auto (default), native or generic, for every\n"
		"                      interface\n"
		"  --pin-root DIR      bpffs directory for pins (default %s)\n"
		"  --state-dir DIR     saved policy images (default %s)\n"
		"  --detach-on-exit    detach and unpin on SIGTERM/SIGINT\n"
		"  --log-level LEVEL   debug, info (default), warn, error\n"
		"  --log-format FMT    logfmt (default), json or text\n"
		"  --api-listen ADDR   HOST:PORT, [V6]:PORT, unix:/PATH or off\n"
		"                      (default %s)\n"
		"  --api-token-file F  bearer token for POST calls (root-owned, 0600)\n"
		"  --no-watch          do not follow changes of the policy files\n"
		"                      (SIGHUP still reloads)\n"
		"  --debounce-ms N     quiet time after a policy file is saved,\n"
		"                      renamed or removed before reloading (default %d)\n"
		"  --settle-ms N       quiet time while a file is being written\n"
		"                      (default %d)\n"
		"\n"
		"Logs go to stderr; invalid policies are reported like sentry-compile\n"
		"does.\n"
		"\n"
		"exit: 0 clean exit, 1 invalid policy or runtime failure,\n"
		"      2 usage or invalid configuration\n",
		MAX_IFACES, SN_DEFAULT_PIN_ROOT, SN_DEFAULT_STATE_DIR,
		SN_API_DEFAULT_LISTEN, SN_DEBOUNCE_MS, SN_SETTLE_MS);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sentryd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see sentryd --help)\n");
	return EXIT_USAGE;
}

static int parse_mode(const char *s, enum sn_xdp_mode_request *out)
{
	if (strcmp(s, "auto") == 0)
		*out = SN_XDP_MODE_AUTO;
	else if (strcmp(s, "native") == 0)
		*out = SN_XDP_MODE_NATIVE;
	else if (strcmp(s, "generic") == 0)
		*out = SN_XDP_MODE_GENERIC;
	else
		return -1;
	return 0;
}

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "policy", required_argument, NULL, 'p' },
		{ "xdp-mode", required_argument, NULL, 'm' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "detach-on-exit", no_argument, NULL, 'D' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "api-listen", required_argument, NULL, 'A' },
		{ "api-token-file", required_argument, NULL, 'T' },
		{ "no-watch", no_argument, NULL, 'W' },
		{ "debounce-ms", required_argument, NULL, 'b' },
		{ "settle-ms", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct opts){
		.mode = SN_XDP_MODE_AUTO,
		.level = SN_LOG_INFO,
		.format = SN_LOG_LOGFMT,
		.watch = true,
		.debounce_ms = SN_DEBOUNCE_MS,
		.settle_ms = SN_SETTLE_MS,
		.max_wait_ms = SN_MAX_WAIT_MS,
	};
	int c;
	opterr = 0; /* our own messages, one style */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (sn_ifname_check(optarg))
				return usage_error("bad interface name '%s'",
						   optarg);
			for (int i = 0; i < o->n_ifaces; i++)
				if (strcmp(o->ifaces[i], optarg) == 0)
					return usage_error(
						"--iface %s given twice", optarg);
			if (o->n_ifaces == MAX_IFACES)
				return usage_error("too many --iface (max %d)",
						   MAX_IFACES);
			o->ifaces[o->n_ifaces++] = optarg;
			break;
		case 'p': o->policy = optarg; break;
		case 'm':
			if (parse_mode(optarg, &o->mode))
				return usage_error("bad --xdp-mode '%s' (auto, "
						   "native or generic)", optarg);
			o->mode_set = true;
			break;
		case 'P': o->pin_root = optarg; break;
		case 'S': o->state_dir = optarg; break;
		case 'D': o->detach_on_exit = true; break;
		case 'l':
			if (sn_log_level_parse(optarg, &o->level))
				return usage_error("bad --log-level '%s'", optarg);
			o->level_set = true;
			break;
		case 'f':
			if (sn_log_format_parse(optarg, &o->format))
				return usage_error("bad --log-format '%s' (logfmt, "
						   "json or text)", optarg);
			o->format_set = true;
			break;
		case 'A': {
			struct sn_listen l;
			char err[256];
			if (sn_listen_parse(optarg, &l, err, sizeof(err)))
				return usage_error("bad --api-listen '%s': %s",
						   optarg, err);
			o->api_listen = optarg;
			break;
		}
		case 'T': o->token_file = optarg; break;
		case 'W': o->watch = false; o->watch_set = true; break;
		case 'b':
		case 's': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || end == optarg || v < 0 || v > 60000)
				return usage_error("bad --%s '%s' (0..60000)",
						   c == 'b' ? "debounce-ms" :
							      "settle-ms", optarg);
			if (c == 'b') {
				o->debounce_ms = (int)v;
				o->debounce_set = true;
			} else {
				o->settle_ms = (int)v;
				o->settle_set = true;
			}
			break;
		}
		case 'c':
		case 'C':
			if (o->config)
				return usage_error("one --config or --check-config");
			o->config = optarg;
			o->check_config = c == 'C';
			break;
		case 'h': usage(stdout); return EXIT_CLEAN;
		case '?':
		default:
			return usage_error("unknown option or missing "
					   "argument: %s", argv[optind <= argc ? optind - 1 : argc - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return -1;
}

/*
 * The configuration file under the flags: every flag given wins, the
 * file fills in the rest, the built-in defaults what neither says.
 * Problems of the merged result that the file could fix are reported
 * against it (diags); returns -1 to go on, or the exit code.
 */
static int merge_config(struct opts *o, struct sn_config *cfg,
			struct sn_config_diags *dg)
{
	if (o->config) {
		if (sn_config_load(o->config, cfg, dg) == -ENOMEM)
			return usage_error("out of memory");
	}
	if (!o->n_ifaces) {
		for (int i = 0; i < cfg->n_ifaces; i++) {
			o->ifaces[i] = cfg->ifaces[i].name;
			o->modes[i] = cfg->ifaces[i].mode;
		}
		o->n_ifaces = cfg->n_ifaces;
	} else {
		/* Interfaces by flag take the file's mode for the same name. */
		for (int i = 0; i < o->n_ifaces; i++)
			for (int k = 0; k < cfg->n_ifaces; k++)
				if (!strcmp(cfg->ifaces[k].name, o->ifaces[i]))
					o->modes[i] = cfg->ifaces[k].mode;
	}
	if (o->mode_set)
		for (int i = 0; i < o->n_ifaces; i++)
			o->modes[i] = o->mode;
	if (!o->policy)
		o->policy = cfg->policy;
	if (!o->pin_root)
		o->pin_root = cfg->pin_root ? cfg->pin_root : SN_DEFAULT_PIN_ROOT;
	if (!o->state_dir)
		o->state_dir = cfg->state_dir ? cfg->state_dir : SN_DEFAULT_STATE_DIR;
	o->api_listen_given = o->api_listen || cfg->api_listen;
	if (!o->api_listen)
		o->api_listen = cfg->api_listen ? cfg->api_listen :
						  SN_API_DEFAULT_LISTEN;
	if (!o->token_file)
		o->token_file = cfg->token_file;
	if (!o->level_set && cfg->log_level_set)
		o->level = cfg->log_level;
	if (!o->format_set && cfg->log_format_set)
		o->format = cfg->log_format;
	if (!o->watch_set && cfg->watch_set)
		o->watch = cfg->watch;
	if (!o->debounce_set && cfg->debounce_set)
		o->debounce_ms = cfg->debounce_ms;
	if (!o->settle_set && cfg->settle_set)
		o->settle_ms = cfg->settle_ms;

	if (dg->n)
		return EXIT_USAGE;
	if (!o->n_ifaces) {
		if (!o->config)
			return usage_error("at least one --iface is required");
		sn_config_diag(dg, 0, 0, "add  interfaces: [{name: eth0}]",
			       "no interfaces: give 'interfaces' or --iface");
		return EXIT_USAGE;
	}
	if (!o->policy) {
		if (!o->config)
			return usage_error("--policy is required");
		sn_config_diag(dg, 0, 0, NULL,
			       "no policy: give 'policy' or --policy");
		return EXIT_USAGE;
	}
	if (o->pin_root[0] != '/')
		return usage_error("--pin-root must be an absolute path (%s)",
				   o->pin_root);
	if (o->state_dir[0] == '\0')
		return usage_error("--state-dir must not be empty");
	if (o->token_file && o->token_file != cfg->token_file) {
		/* By flag (the file's own was checked by its parser). */
		char err[PATH_MAX + 128], hint[PATH_MAX + 64];
		if (sn_token_read(o->token_file, NULL, err, sizeof(err), hint,
				  sizeof(hint)))
			return usage_error("%s%s%s", err, hint[0] ? "; " : "",
					   hint);
	}
	return -1;
}

static const char *mode_name(enum sn_attach_mode m)
{
	return m == SN_ATTACH_NATIVE ? "native" :
	       m == SN_ATTACH_GENERIC ? "generic" : "unknown";
}

static bool dir_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* 1 when dir holds any entry, 0 when empty, -errno (-ENOENT: absent). */
static int dir_nonempty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d)))
		found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return found;
}

/*
 * The `sentryctl detach` command that removes this daemon's state, with
 * the non-default roots spelled out so it can be pasted as is.
 */
static void detach_hint(const struct opts *o, const char *ifname, char *buf,
			size_t len)
{
	char roots[2 * PATH_MAX + 32] = "";
	size_t n = 0;
	if (strcmp(o->pin_root, SN_DEFAULT_PIN_ROOT) != 0)
		n += (size_t)snprintf(roots + n, sizeof(roots) - n,
				      " --pin-root %s", o->pin_root);
	if (strcmp(o->state_dir, SN_DEFAULT_STATE_DIR) != 0 &&
	    n < sizeof(roots))
		snprintf(roots + n, sizeof(roots) - n, " --state-dir %s",
			 o->state_dir);
	snprintf(buf, len, "sentryctl detach --iface %s%s", ifname, roots);
}

/*
 * An interface that already has pinned state (a daemon that crashed, was
 * killed or upgraded, SPEC.md 6.3) is adopted: the pinned link keeps
 * enforcing throughout, the maps are read back, and the policy is applied
 * to them as a difference.  State that cannot be adopted (another layout
 * version, incomplete, attached elsewhere) is refused with the one command
 * that clears the way; state whose link holds no interface any more
 * enforces nothing and is removed.  Returns 0 (fresh or adopted) or -1.
 */
static int adopt_state(struct daemon *d, struct iface *f)
{
	char err[512] = "", hint[PATH_MAX * 3];
	int r = dir_nonempty(f->pin_dir);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "cannot inspect %s: %s",
		       f->pin_dir, strerror(-r));
		return -1;
	}
	if (r == 0) {
		/* An empty leftover directory holds no state: reuse it. */
		f->pin_dir_existed = true;
		return 0;
	}
	detach_hint(&d->o, f->name, hint, sizeof(hint));
	r = sn_dp_adopt(f->pin_dir, &f->dp, err, sizeof(err));
	if (r == -ENOLINK) {
		sn_log(&d->log, SN_LOG_WARN, f->name,
		       "removing stale state: %s", err);
		if (sn_pinned_detach(f->pin_dir, err, sizeof(err))) {
			sn_log(&d->log, SN_LOG_ERROR, f->name, "%s; run `%s`", err,
			       hint);
			return -1;
		}
		sn_state_remove(d->o.state_dir, f->name, NULL, 0);
		return 0;
	}
	if (r) {
		sn_log(&d->log, SN_LOG_ERROR, f->name,
		       "cannot adopt the pinned state of %s: %s; run `%s` first",
		       f->name, err, hint);
		return -1;
	}
	if (sn_dp_ifindex(f->dp) != f->ifindex) {
		sn_log(&d->log, SN_LOG_ERROR, f->name,
		       "the pinned state for %s is attached to ifindex %d, not "
		       "%d; run `%s` first", f->name, sn_dp_ifindex(f->dp),
		       f->ifindex, hint);
		sn_dp_close(f->dp);
		f->dp = NULL;
		return -1;
	}
	const struct sn_meta *m = sn_dp_meta(f->dp);
	char hex[65];
	sn_checksum_hex(m->checksum, hex);
	f->adopted = true;
	f->mode = sn_dp_mode(f->dp);
	sn_log(&d->log, SN_LOG_INFO, f->name,
	       "adopting the pinned state of %s: policy=%.12s mode=%s "
	       "generation=%u applies=%llu%s", f->name, hex, mode_name(f->mode),
	       sn_dp_generation(f->dp), (unsigned long long)m->reloads,
	       sn_dp_needs_new_program(f->dp) ?
		       " (another build's program: it will be replaced)" : "");
	if (f->mode_req != SN_XDP_MODE_AUTO &&
	    (f->mode_req == SN_XDP_MODE_NATIVE) != (f->mode == SN_ATTACH_NATIVE))
		sn_log(&d->log, SN_LOG_WARN, f->name,
		       "--xdp-mode differs from the adopted attachment (%s), "
		       "which stays: changing it needs a detach", mode_name(f->mode));
	return 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Load, fill, attach, record, save, pin - in that order, so that when the
 * pins appear (what sentryctl and a later sentryd look at) the meta and
 * the saved image are already complete.  An unpinned link dies with its
 * fd, so a crash before the pin step leaves nothing enforced behind.
 */
static int record_meta(struct daemon *d, struct iface *f,
		       const struct sn_image *img);

static int bring_up(struct daemon *d, struct iface *f, struct sn_image *img)
{
	char err[512] = "";
	int rc;

	rc = sn_dp_load(img, &f->dp, err, sizeof(err));
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "loading XDP program: %s",
		       err[0] ? err : strerror(-rc));
		return rc;
	}
	rc = sn_dp_apply(f->dp, img, err, sizeof(err));
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "filling maps: %s",
		       err[0] ? err : strerror(-rc));
		return rc;
	}
	rc = sn_dp_attach(f->dp, f->ifindex, f->mode_req, &f->mode, err,
			  sizeof(err));
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "%s",
		       err[0] ? err : strerror(-rc));
		return rc;
	}
	sn_log(&d->log, SN_LOG_DEBUG, f->name, "attached (mode=%s), not pinned yet",
	       mode_name(f->mode));

	rc = record_meta(d, f, img);
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "writing sn_meta: %s",
		       strerror(-rc));
		return rc;
	}

	rc = sn_state_save_image(d->o.state_dir, f->name, img, err,
				 sizeof(err));
	f->image_saved = true; /* even on failure: a temporary may be left */
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "saving the image: %s",
		       err);
		return rc;
	}

	f->pin_tried = true;
	rc = sn_dp_pin(f->dp, f->pin_dir, err, sizeof(err));
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "%s",
		       err[0] ? err : strerror(-rc));
		return rc;
	}
	f->pinned = true;
	return 0;
}

/* Undo whatever bring_up did on f; logs what fails but carries on. */
static void take_down(struct daemon *d, struct iface *f, const char *why)
{
	char err[512] = "";
	if (f->adopted) {
		/* It enforced before we came: it goes on enforcing. */
		sn_dp_close(f->dp);
		f->dp = NULL;
		return;
	}
	if (f->pinned) {
		/* Detaches through the pinned link, then unpins. */
		int rc = sn_pinned_detach(f->pin_dir, err, sizeof(err));
		if (rc)
			sn_log(&d->log, SN_LOG_ERROR, f->name, "%s: %s", why,
			       err);
		f->pinned = false;
	} else if (f->pin_tried && !f->pin_dir_existed) {
		/* sn_dp_pin unpinned its own on failure; only the (then
		 * empty) directory it created may be left.  Not ours if it
		 * holds anything, so plain rmdir. */
		rmdir(f->pin_dir);
	}
	f->pin_tried = false;
	if (f->dp) {
		/* Closing the unpinned link takes the program off. */
		sn_dp_close(f->dp);
		f->dp = NULL;
	}
	if (f->image_saved) {
		int rc = sn_state_remove(d->o.state_dir, f->name, err,
					 sizeof(err));
		if (rc && rc != -ENOENT)
			sn_log(&d->log, SN_LOG_WARN, f->name, "%s: %s", why, err);
		f->image_saved = false;
	}
}

/*
 * One daemon per interface: a lock file in the state directory, held
 * (flock) for as long as we run and released by the kernel when we die,
 * so a restarted daemon adopts the state of a dead one and never of a
 * live one.
 */
static int take_lock(struct daemon *d, struct iface *f)
{
	char name[64];
	int rc = sn_mkdir_p(d->o.state_dir);

	f->lock_fd = -1;
	snprintf(name, sizeof(name), ".%s.lock", f->name);
	if (rc || sn_state_join(f->lock_path, sizeof(f->lock_path),
				d->o.state_dir, name)) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "cannot create %s: %s",
		       d->o.state_dir, strerror(rc ? -rc : ENAMETOOLONG));
		return -1;
	}
	f->lock_fd = open(f->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f->lock_fd < 0) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "cannot open %s: %s",
		       f->lock_path, strerror(errno));
		return -1;
	}
	if (flock(f->lock_fd, LOCK_EX | LOCK_NB)) {
		char pid[32] = "";
		ssize_t n = pread(f->lock_fd, pid, sizeof(pid) - 1, 0);
		if (n > 0)
			pid[strcspn(pid, "\n")] = '\0';
		sn_log(&d->log, SN_LOG_ERROR, f->name,
		       "interface %s is managed by a running sentryd%s%s%s; "
		       "stop it first", f->name, pid[0] ? " (pid " : "", pid,
		       pid[0] ? ")" : "");
		close(f->lock_fd);
		f->lock_fd = -1;
		return -1;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(f->lock_fd, 0) || pwrite(f->lock_fd, pid, (size_t)len, 0) < 0)
		sn_log(&d->log, SN_LOG_DEBUG, f->name, "cannot record our pid "
		       "in %s", f->lock_path);
	return 0;
}

static void release_locks(struct daemon *d)
{
	for (int i = 0; i < d->o.n_ifaces; i++) {
		struct iface *f = &d->ifs[i];
		if (f->lock_fd < 0)
			continue;
		/* Unlinked while held: a daemon starting now makes a new one. */
		unlink(f->lock_path);
		close(f->lock_fd);
		f->lock_fd = -1;
	}
}

/* Remove the roots again when we created them and they are empty now. */
static void remove_roots(struct daemon *d)
{
	release_locks(d);
	if (!d->pin_root_existed)
		rmdir(d->o.pin_root);
	if (!d->state_dir_existed)
		rmdir(d->o.state_dir);
}

static void rollback(struct daemon *d)
{
	for (int i = 0; i < d->o.n_ifaces; i++)
		take_down(d, &d->ifs[i], "rolling back");
	remove_roots(d);
	bool adopted = false;
	for (int i = 0; i < d->o.n_ifaces; i++)
		adopted |= d->ifs[i].adopted;
	sn_log(&d->log, SN_LOG_ERROR, NULL, "%s",
	       adopted ? "every interface this daemon attached is rolled back; "
			 "adopted ones keep their policy" :
			 "nothing attached: every interface rolled back");
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Diagnostics as sentry-compile prints them: into *text (malloc'd, when
 * text is given) and onto stderr - as they are for the logfmt and text
 * formats, as one log line with a diagnostics field for json, so that
 * every line of a JSON log parses.
 */
static void report_diags(struct daemon *d, struct sn_ctx *ctx, char **text)
{
	char *buf = NULL;
	size_t len = 0;
	sn_diags_sort(&ctx->diags);
	FILE *m = open_memstream(&buf, &len);
	if (m) {
		sn_diags_render_text(m, &ctx->diags, &ctx->sources);
		fclose(m);
	}
	if (d->o.format == SN_LOG_JSON && buf) {
		struct sn_log_kv kv[] = { { .key = "diagnostics", .str = buf } };
		sn_log_kv(&d->log, ctx->diags.n_errors ? SN_LOG_ERROR : SN_LOG_WARN,
			  NULL, kv, 1, "diagnostics of %s", d->o.policy);
	} else if (buf) {
		fputs(buf, stderr);
		fflush(stderr);
	}
	if (text)
		*text = buf;
	else
		free(buf);
}

/*
 * Compile d->o.policy into ctx.  On failure report like sentry-compile
 * (the same rendering, on stderr), put that rendering into *diag_text
 * (malloc'd, when diag_text is given) and a one-line reason into why, and
 * return -1.  Warnings of a valid policy are printed too.
 */
static int compile_policy(struct daemon *d, struct sn_ctx *ctx,
			  struct sn_image **img, char **diag_text, char *why,
			  size_t whylen)
{
	if (diag_text)
		*diag_text = NULL;
	int rc = sn_compile_file(ctx, d->o.policy, NULL, img);
	if (rc == -EINVAL || ctx->diags.n_errors) {
		report_diags(d, ctx, diag_text);
		snprintf(why, whylen, "policy %s is invalid (%zu error%s)",
			 d->o.policy, ctx->diags.n_errors,
			 ctx->diags.n_errors == 1 ? "" : "s");
		return -1;
	}
	if (rc) {
		/* Only an unreadable main file (or no memory) gets here. */
		snprintf(why, whylen, "cannot read policy %s: %s", d->o.policy,
			 strerror(-rc));
		return -1;
	}
	if (ctx->diags.n) /* warnings, shown as sentry-compile shows them */
		report_diags(d, ctx, NULL);
	/* The checksum is defined over the serialised image; compute it now
	 * because sn_meta records it before the image is saved. */
	void *buf = NULL;
	size_t len = 0;
	rc = sn_image_serialize(*img, &buf, &len);
	free(buf);
	if (rc) {
		snprintf(why, whylen, "cannot serialise the image: %s",
			 strerror(-rc));
		return -1;
	}
	sn_checksum_hex((*img)->checksum, d->checksum_hex);
	sn_log(&d->log, SN_LOG_DEBUG, NULL,
	       "compiled %s: policy=%.12s rules=%u", d->o.policy,
	       d->checksum_hex, (*img)->n_rules);
	return 0;
}

/* ---- watching ------------------------------------------------------------- */

static void sigs_free(struct daemon *d)
{
	for (size_t i = 0; i < d->n_sigs; i++)
		free(d->sigs[i].path);
	free(d->sigs);
	d->sigs = NULL;
	d->n_sigs = 0;
}

static void sig_of_stat(struct srcsig *g, const struct stat *st)
{
	g->dev = (uint64_t)st->st_dev;
	g->ino = (uint64_t)st->st_ino;
	g->size = (uint64_t)st->st_size;
	g->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 +
		      st->st_mtim.tv_nsec;
	g->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 +
		      st->st_ctim.tv_nsec;
}

/*
 * Watch every file the compile read or tried to read, and remember how
 * each one was, so a change between the read and the watch is not lost
 * (sources_changed).
 */
static void update_watches(struct daemon *d, const struct sn_ctx *ctx)
{
	const struct sn_srcmgr *m = &ctx->sources;
	size_t n = 1 + m->n + m->n_miss;
	const char **paths = calloc(n, sizeof(*paths));
	struct srcsig *sigs = calloc(n, sizeof(*sigs));
	size_t k = 0;

	if (!paths || !sigs) {
		free(paths);
		free(sigs);
		return;
	}
	paths[k++] = d->o.policy;
	for (size_t i = 0; i < m->n; i++)
		paths[k++] = m->v[i].path;
	for (size_t i = 0; i < m->n_miss; i++)
		paths[k++] = m->miss[i].path;
	if (d->watch) {
		int rc = sn_watch_set(d->watch, paths, k);
		if (rc < 0)
			sn_log(&d->log, SN_LOG_WARN, NULL,
			       "cannot watch the policy files: %s (SIGHUP "
			       "reloads)", strerror(-rc));
		else
			sn_log(&d->log, SN_LOG_DEBUG, NULL,
			       "watching %d directories for %zu files", rc, k);
	}
	sigs_free(d);
	for (size_t i = 0; i < m->n; i++) {
		struct srcsig *g = &sigs[d->n_sigs];
		g->path = strdup(m->v[i].path);
		g->read = true;
		g->dev = m->v[i].dev;
		g->ino = m->v[i].ino;
		g->size = m->v[i].size;
		g->mtime_ns = m->v[i].mtime_ns;
		g->ctime_ns = m->v[i].ctime_ns;
		if (g->path)
			d->n_sigs++;
	}
	for (size_t i = 0; i < m->n_miss; i++) {
		struct srcsig *g = &sigs[d->n_sigs];
		g->path = strdup(m->miss[i].path);
		g->err = m->miss[i].err;
		if (g->path)
			d->n_sigs++;
	}
	d->sigs = sigs;
	free(paths);
}

/* Has any file the last compile looked at changed since? */
static bool sources_changed(const struct daemon *d)
{
	for (size_t i = 0; i < d->n_sigs; i++) {
		const struct srcsig *g = &d->sigs[i];
		struct stat st;
		struct srcsig now = { 0 };

		if (!g->read) {
			/* Readable now (and a regular file where one is
			 * needed)?  Then it is worth another compile. */
			int fd = open(g->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0) {
				if (-errno != g->err)
					return true;
				continue;
			}
			bool reg = !fstat(fd, &st) && S_ISREG(st.st_mode);
			close(fd);
			if (reg || g->err != -ENODEV)
				return true;
			continue;
		}
		if (stat(g->path, &st))
			return true;
		sig_of_stat(&now, &st);
		if (now.dev != g->dev || now.ino != g->ino ||
		    now.size != g->size || now.mtime_ns != g->mtime_ns ||
		    now.ctime_ns != g->ctime_ns)
			return true;
	}
	return false;
}

/* ---- the reload status (SPEC.md 6.2) --------------------------------------- */

static void iso_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/*
 * <state-dir>/<ifname>/reload.status: logfmt lines, then the diagnostics
 * as sentry-compile prints them.
 */
static void write_status(struct daemon *d, const char *result,
			 const char *error, const char *diags,
			 const struct iface *only, const char *extra)
{
	char when[64], ev[512];
	char *text = NULL;
	size_t len = 0;
	FILE *m;

	iso_time(when, sizeof(when));
	for (int i = 0; i < d->o.n_ifaces; i++) {
		const struct iface *f = &d->ifs[i];
		if ((only && f != only) || !f->dp)
			continue;
		m = open_memstream(&text, &len);
		if (!m)
			return;
		sn_logfmt_value(ev, sizeof(ev), d->o.policy);
		fprintf(m, "result=%s\nat=%s\npolicy=%s\nenforced=%s\n"
			"reloads_ok=%llu\nreloads_failed=%llu\n", result, when,
			ev, d->enforced_hex, (unsigned long long)d->reloads_ok,
			(unsigned long long)d->reloads_failed);
		if (extra && *extra)
			fprintf(m, "%s\n", extra);
		if (error) {
			sn_logfmt_value(ev, sizeof(ev), error);
			fprintf(m, "error=%s\n", ev);
		}
		if (diags && *diags)
			fprintf(m, "diagnostics:\n%s", diags);
		fclose(m);
		char err[512] = "";
		if (sn_state_write_file(d->o.state_dir, f->name,
					SN_STATE_STATUS_NAME, text, len, err,
					sizeof(err)))
			sn_log(&d->log, SN_LOG_WARN, f->name, "%s", err);
		free(text);
		text = NULL;
	}
}

/* sn_meta as sentryd records it for f and the image just applied. */
static int record_meta(struct daemon *d, struct iface *f,
		       const struct sn_image *img)
{
	struct sn_meta meta = {
		.abi_version = SN_ABI_VERSION,
		.attach_mode = f->mode,
		.ifindex = (uint32_t)f->ifindex,
		.n_rules = img->n_rules,
		.applied_at_ns = realtime_ns(),
	};
	memcpy(meta.checksum, img->checksum, sizeof(meta.checksum));
	snprintf(meta.ifname, sizeof(meta.ifname), "%s", f->name);
	(void)d;
	return sn_dp_write_meta(f->dp, &meta);
}

/*
 * Did a policy file change while it was compiled?  Then the compile is
 * of a state the files have already left (a burst spread over more than
 * the quiet period): not applied, compiled again.  The kind of change,
 * or SN_WATCH_NONE.
 */
static enum sn_watch_event changed_meanwhile(struct daemon *d)
{
	enum sn_watch_event ev = SN_WATCH_NONE;

	if (d->watch && sn_watch_read(d->watch, &ev))
		ev = SN_WATCH_NONE;
	if (ev == SN_WATCH_NONE && sources_changed(d))
		ev = SN_WATCH_CHANGED;
	return ev;
}

/* ---- systemd and the record of reloads ---------------------------------------- */

/*
 * sd_notify with a STATUS= line saying what enforces; state is READY=1,
 * RELOADING=1, STOPPING=1 or NULL.  A no-op unless systemd started us
 * (NOTIFY_SOCKET), so nothing here can fail the daemon.
 */
static void notify(struct daemon *d, const char *state, const char *what)
{
	char status[256];
	if (what)
		snprintf(status, sizeof(status), "%s", what);
	else
		snprintf(status, sizeof(status), "enforcing policy %.12s on %d "
			 "interface%s%s", d->enforced_hex, d->o.n_ifaces,
			 d->o.n_ifaces == 1 ? "" : "s",
			 d->rt.failure.at_ns && d->rt.failure.current ?
				 "; the last reload failed" : "");
	if (state && !strcmp(state, "RELOADING=1")) {
		/* Type=notify-reload wants the time the reload began. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
			   (unsigned long long)ts.tv_sec * 1000000ull +
				   (unsigned long long)ts.tv_nsec / 1000ull, status);
	} else {
		sd_notifyf(0, "%s%sSTATUS=%s", state ? state : "",
			   state ? "\n" : "", status);
	}
}

/*
 * One reload's outcome: into the API's history and histogram, and the
 * one log line every reload gets (result, rule count, entries written,
 * durations), with the message the line always had.
 */
static const struct sn_rt_reload *record_reload(
	struct daemon *d, enum sn_rt_result result, bool policy_error,
	double t0, uint64_t entries, uint32_t rules, const char *error,
	const char *diags, const char *previous, double compile_ms,
	double apply_ms, const char *msg)
{
	struct sn_rt_reload r = {
		.at_ns = realtime_ns(),
		.trigger = d->trigger ? d->trigger : "watch",
		.result = result,
		.policy_error = policy_error,
		.duration_s = (mono_ms() - t0) / 1e3,
		.entries = entries,
		.rules = rules,
		.error = (char *)error,
	};
	memcpy(r.checksum, d->enforced_hex, sizeof(r.checksum));
	const struct sn_rt_reload *e = sn_rt_record(&d->rt, &r, diags);
	char pol[13], prev[13] = "";
	snprintf(pol, sizeof(pol), "%.12s",
		 result == SN_RT_FAILED ? d->enforced_hex : d->checksum_hex);
	if (previous)
		snprintf(prev, sizeof(prev), "%.12s", previous);
	struct sn_log_kv kv[] = {
		{ .key = "event", .str = "reload" },
		{ .key = "result", .str = sn_rt_result_name(result) },
		{ .key = "trigger", .str = r.trigger },
		{ .key = "policy", .str = pol },
		{ .key = "rules", .num = rules },
		{ .key = "entries", .num = (double)entries },
		{ .key = "duration_ms", .num = (double)(long long)(r.duration_s * 1e5) / 1e2 },
		{ .key = "compile_ms", .num = (double)(long long)(compile_ms * 1e2) / 1e2 },
		{ .key = "apply_ms", .num = (double)(long long)(apply_ms * 1e2) / 1e2 },
		{ .key = "previous", .str = prev },
	};
	size_t n = sizeof(kv) / sizeof(kv[0]) - (previous ? 0 : 1);
	sn_log_kv(&d->log, result == SN_RT_FAILED ? SN_LOG_ERROR : SN_LOG_INFO,
		  NULL, kv, n, "%s", msg);
	return e;
}

/*
 * Recompile and apply.  Nothing changes unless every interface takes the
 * new policy; the last good one stays otherwise.  since: when the first
 * change was seen (CLOCK_MONOTONIC ms), 0 for SIGHUP and the API.
 * Returns SN_WATCH_NONE (the outcome is recorded: record_reload), or the
 * kind of change that made the compile outdated before it was applied
 * (the caller compiles again after a quiet period).
 */
static enum sn_watch_event reload(struct daemon *d, double since)
{
	const double t0 = mono_ms();
	struct sn_ctx ctx;
	struct sn_image *img = NULL;
	char why[PATH_MAX + 256] = "", *diags = NULL, msg[PATH_MAX + 512];
	char extra[512];
	int failed_at = -1, rc;

	notify(d, "RELOADING=1", "reloading the policy");
	sn_ctx_init(&ctx);
	rc = compile_policy(d, &ctx, &img, &diags, why, sizeof(why));
	const double t_compiled = mono_ms();
	update_watches(d, &ctx);
	if (rc) {
		d->reloads_failed++;
		snprintf(msg, sizeof(msg), "%s; policy %.12s stays enforced (fix "
			 "it and save again)", why, d->enforced_hex);
		record_reload(d, SN_RT_FAILED, true, t0, 0, d->rt.policy.n_rules,
			      why, diags, NULL, t_compiled - t0, 0, msg);
		write_status(d, "failed", why, diags, NULL, NULL);
		free(diags);
		sn_ctx_free(&ctx);
		notify(d, "READY=1", NULL);
		return SN_WATCH_NONE;
	}
	enum sn_watch_event again = changed_meanwhile(d);
	if (again != SN_WATCH_NONE) {
		sn_log(&d->log, SN_LOG_DEBUG, NULL,
		       "a policy file changed while it compiled (%.0f ms): "
		       "compiling again", t_compiled - t0);
		sn_ctx_free(&ctx);
		notify(d, "READY=1", NULL);
		return again;
	}
	if (!strcmp(d->checksum_hex, d->enforced_hex)) {
		snprintf(msg, sizeof(msg), "policy %.12s unchanged (compiled in "
			 "%.1f ms)", d->enforced_hex, t_compiled - t0);
		record_reload(d, SN_RT_UNCHANGED, false, t0, 0, img->n_rules,
			      NULL, NULL, NULL, t_compiled - t0, 0, msg);
		write_status(d, "unchanged", NULL, NULL, NULL, NULL);
		sn_ctx_free(&ctx);
		notify(d, "READY=1", NULL);
		return SN_WATCH_NONE;
	}
	char err[512] = "";
	size_t entries = 0;
	bool replaced = false;
	/* Every interface enforces it before any waits for its grace
	 * period: one wait for all. */
	double t_enforced = 0;
	for (int i = 0; i < d->o.n_ifaces; i++) {
		struct iface *f = &d->ifs[i];
		rc = sn_dp_stage(f->dp, img, err, sizeof(err));
		if (rc) {
			failed_at = i;
			snprintf(why, sizeof(why), "applying policy %.12s to %s: %s",
				 d->checksum_hex, f->name, err[0] ? err : strerror(-rc));
			break;
		}
		const struct sn_dp_stats *st = sn_dp_stats(f->dp);
		entries = st->entries;
		replaced |= st->replaced;
		if (st->enforced_at > t_enforced)
			t_enforced = st->enforced_at;
	}
	for (int i = 0; i < d->o.n_ifaces; i++)
		sn_dp_settle(d->ifs[i].dp, i == 0);
	if (failed_at >= 0) {
		/* Put back the interfaces that took it: the saved image is
		 * the last good policy. */
		for (int i = 0; i < failed_at; i++) {
			struct iface *f = &d->ifs[i];
			struct sn_arena arena;
			struct sn_image *old = NULL;
			sn_arena_init(&arena);
			if (sn_state_load_image(d->o.state_dir, f->name, &arena,
						&old, err, sizeof(err)) ||
			    sn_dp_update(f->dp, old, err, sizeof(err)))
				sn_log(&d->log, SN_LOG_ERROR, f->name,
				       "cannot put the last good policy back: %s",
				       err);
			sn_arena_free(&arena);
		}
		d->reloads_failed++;
		snprintf(msg, sizeof(msg), "%s; policy %.12s stays enforced", why,
			 d->enforced_hex);
		record_reload(d, SN_RT_FAILED, false, t0, 0, d->rt.policy.n_rules,
			      why, NULL, NULL, t_compiled - t0,
			      mono_ms() - t_compiled, msg);
		write_status(d, "failed", why, NULL, NULL, NULL);
		sn_ctx_free(&ctx);
		notify(d, "READY=1", NULL);
		return SN_WATCH_NONE;
	}
	for (int i = 0; i < d->o.n_ifaces; i++) {
		struct iface *f = &d->ifs[i];
		if (record_meta(d, f, img))
			sn_log(&d->log, SN_LOG_WARN, f->name, "writing sn_meta failed");
		if (sn_state_save_image(d->o.state_dir, f->name, img, err,
					sizeof(err)))
			sn_log(&d->log, SN_LOG_WARN, f->name,
			       "saving the image: %s (sentryctl shows rule ids "
			       "only)", err);
	}
	d->reloads_ok++;
	char was[13];
	snprintf(was, sizeof(was), "%.12s", d->enforced_hex);
	memcpy(d->enforced_hex, d->checksum_hex, sizeof(d->enforced_hex));
	if (sn_rt_set_policy(&d->rt, img, realtime_ns()))
		sn_log(&d->log, SN_LOG_WARN, NULL, "out of memory: the API "
		       "shows the previous rule table");
	const struct sn_dp_stats *st = sn_dp_stats(d->ifs[0].dp);
	if (t_enforced <= 0)
		t_enforced = mono_ms();
	snprintf(extra, sizeof(extra),
		 "previous=%s\nentries=%zu\nreplaced=%s\ncompile_ms=%.2f\n"
		 "apply_ms=%.2f\nsince_change_ms=%.2f", was, entries,
		 replaced ? "yes" : "no", t_compiled - t0, t_enforced - t_compiled,
		 since > 0 ? t_enforced - since : 0.0);
	snprintf(msg, sizeof(msg),
		 "applied policy=%.12s (was %s) entries=%zu%s compile=%.1fms "
		 "write=%.2fms flip=%.3fms level=%.2fms enforced %.1fms after the "
		 "change", d->enforced_hex, was, entries,
		 replaced ? " program replaced" : "", t_compiled - t0,
		 st->write_ms, st->flip_ms, st->level_ms,
		 since > 0 ? t_enforced - since : t_enforced - t0);
	record_reload(d, SN_RT_OK, false, t0, entries, img->n_rules, NULL, NULL,
		      was, t_compiled - t0, t_enforced - t_compiled, msg);
	write_status(d, "ok", NULL, NULL, NULL, extra);
	sn_ctx_free(&ctx);
	notify(d, "READY=1", NULL);
	return SN_WATCH_NONE;
}

/*
 * POST /v1/reload: the reload SIGHUP does, run to its outcome.  A compile
 * that the files overtake is repeated a few times; if they keep changing
 * the event loop takes over after the quiet period (NULL: HTTP 503).
 */
static const struct sn_rt_reload *api_reload(void *ctx)
{
	struct daemon *d = ctx;
	sn_log(&d->log, SN_LOG_INFO, NULL, "reload requested through the API");
	for (int i = 0; i < 3; i++) {
		d->trigger = "api";
		enum sn_watch_event again = reload(d, 0);
		d->trigger = NULL;
		if (again == SN_WATCH_NONE)
			return sn_rt_recent(&d->rt, 0);
	}
	d->deferred = true;
	return NULL;
}

/*
 * The policy onto adopted interfaces: nothing when they enforce it
 * already (checksum in sn_meta) with this build's program, else the
 * difference (or a new program on the same maps).  An interface that
 * cannot take it keeps what it enforced; 0 or -1 (why says what).
 */
static int adopt_apply(struct daemon *d, struct sn_image *img, char *why,
		       size_t whylen)
{
	char err[512] = "";
	int failed = 0;

	for (int i = 0; i < d->o.n_ifaces; i++) {
		struct iface *f = &d->ifs[i];
		if (!f->adopted)
			continue;
		const struct sn_meta *m = sn_dp_meta(f->dp);
		char hex[65];
		sn_checksum_hex(m->checksum, hex);
		if (!memcmp(m->checksum, img->checksum, 32) &&
		    !sn_dp_needs_new_program(f->dp)) {
			sn_log(&d->log, SN_LOG_INFO, f->name,
			       "adopted %s: it enforces policy %.12s already, "
			       "nothing written", f->name, hex);
			continue;
		}
		int rc = sn_dp_stage(f->dp, img, err, sizeof(err));
		sn_dp_settle(f->dp, true);
		if (rc) {
			snprintf(why, whylen, "applying policy %.12s to the adopted "
				 "%s: %s", d->checksum_hex, f->name, err);
			sn_log(&d->log, SN_LOG_ERROR, f->name, "%s; policy %.12s "
			       "stays enforced there", why, hex);
			failed = -1;
			continue;
		}
		const struct sn_dp_stats *st = sn_dp_stats(f->dp);
		sn_log(&d->log, SN_LOG_INFO, f->name,
		       "adopted %s and applied policy=%.12s (was %.12s): "
		       "entries=%zu%s", f->name, d->checksum_hex, hex, st->entries,
		       st->replaced ? ", program replaced" : "");
		if (record_meta(d, f, img))
			sn_log(&d->log, SN_LOG_WARN, f->name, "writing sn_meta failed");
		if (sn_state_save_image(d->o.state_dir, f->name, img, err,
					sizeof(err)))
			sn_log(&d->log, SN_LOG_WARN, f->name, "saving the image: %s",
			       err);
	}
	return failed;
}

/*
 * Wait for signals, file changes, quiet periods and HTTP requests;
 * returns the stop signal, or -errno.
 */
static int run_loop(struct daemon *d, int sfd)
{
	double deadline = 0, first = 0;

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = d->watch ? sn_watch_fd(d->watch) : -1,
			  .events = POLLIN },
			{ .fd = d->http ? sn_http_fd(d->http) : -1,
			  .events = POLLIN },
		};
		int timeout = -1;
		if (deadline > 0) {
			double left = deadline - mono_ms();
			timeout = left <= 0 ? 0 : (int)left + 1;
		}
		int ht = d->http ? sn_http_timeout_ms(d->http) : -1;
		if (ht >= 0 && (timeout < 0 || ht < timeout))
			timeout = ht;
		int n = poll(pfd, 3, timeout);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo != SIGHUP)
					return (int)si.ssi_signo;
				sn_log(&d->log, SN_LOG_INFO, NULL,
				       "SIGHUP: reloading %s", d->o.policy);
				deadline = first = 0;
				d->trigger = "signal";
				enum sn_watch_event again = reload(d, 0);
				d->trigger = NULL;
				if (again != SN_WATCH_NONE) {
					first = mono_ms();
					deadline = first + (again == SN_WATCH_WRITING ?
							    d->o.settle_ms :
							    d->o.debounce_ms);
				}
			}
		}
		if (n > 0 && d->watch && (pfd[1].revents & POLLIN)) {
			enum sn_watch_event ev;
			int rc = sn_watch_read(d->watch, &ev);
			if (rc)
				sn_log(&d->log, SN_LOG_WARN, NULL,
				       "reading file events: %s", strerror(-rc));
			if (ev != SN_WATCH_NONE) {
				double now = mono_ms();
				if (first <= 0)
					first = now;
				deadline = now + (ev == SN_WATCH_WRITING ?
						  d->o.settle_ms : d->o.debounce_ms);
				if (deadline > first + d->o.max_wait_ms)
					deadline = first + d->o.max_wait_ms;
			}
		}
		/* Always: MHD also has timeouts of its own to run. */
		if (d->http)
			sn_http_run(d->http);
		if (d->deferred) {
			/* An API reload found the files changing: the quiet
			 * period decides, as for a file event. */
			d->deferred = false;
			if (first <= 0)
				first = mono_ms();
			deadline = mono_ms() + d->o.debounce_ms;
		}
		if (deadline > 0 && mono_ms() >= deadline) {
			double since = first;
			deadline = first = 0;
			enum sn_watch_event again = reload(d, since);
			/* Changed while compiling, or between the compile's
			 * read and the watch: again, after a quiet period. */
			if (again == SN_WATCH_NONE && sources_changed(d))
				again = SN_WATCH_CHANGED;
			if (again != SN_WATCH_NONE) {
				first = since > 0 ? since : mono_ms();
				deadline = mono_ms() + (again == SN_WATCH_WRITING ?
							d->o.settle_ms :
							d->o.debounce_ms);
			}
		}
	}
}

static int shut_down(struct daemon *d)
{
	int status = EXIT_CLEAN;
	for (int i = 0; i < d->o.n_ifaces; i++) {
		struct iface *f = &d->ifs[i];
		if (d->o.detach_on_exit) {
			char err[512] = "";
			int rc = sn_pinned_detach(f->pin_dir, err, sizeof(err));
			if (rc) {
				sn_log(&d->log, SN_LOG_ERROR, f->name,
				       "detach failed: %s", err);
				status = EXIT_FAIL;
			} else {
				sn_log(&d->log, SN_LOG_INFO, f->name,
				       "detached from %s", f->name);
			}
			rc = sn_state_remove(d->o.state_dir, f->name, err,
					     sizeof(err));
			if (rc && rc != -ENOENT)
				sn_log(&d->log, SN_LOG_WARN, f->name, "%s", err);
		} else {
			sn_log(&d->log, SN_LOG_INFO, f->name,
			       "exiting; enforcement on %s stays pinned (remove "
			       "it with sentryctl detach)",
			       f->name);
		}
		sn_dp_close(f->dp);
		f->dp = NULL;
	}
	if (d->o.detach_on_exit)
		remove_roots(d);
	return status;
}

int main(int argc, char **argv)
{
	/* Large (per-interface path buffers); static keeps it off the stack.
	 * It is main's state, passed by pointer everywhere else. */
	static struct daemon d;
	int rc = parse_args(argc, argv, &d.o);
	if (rc >= 0)
		return rc;
	struct sn_config_diags dg = { 0 };
	rc = merge_config(&d.o, &d.cfg, &dg);
	if (dg.n)
		sn_config_render(stderr, d.o.config ? d.o.config : "sentryd", &dg);
	sn_config_diags_free(&dg);
	if (d.o.check_config && rc < 0)
		printf("%s: ok\n", d.o.config);
	if (rc >= 0 || d.o.check_config) {
		sn_config_free(&d.cfg);
		return rc >= 0 ? rc : EXIT_CLEAN;
	}
	d.log = (struct sn_log){ .out = stderr, .min = d.o.level,
				 .format = d.o.format };
	for (int i = 0; i < MAX_IFACES; i++)
		d.ifs[i].lock_fd = -1;
	for (int i = 0; i < d.o.n_ifaces; i++)
		d.ifs[i].mode_req = d.o.modes[i];

	/* The API's address and token, before anything is touched: a
	 * token that cannot be read is a configuration error. */
	struct sn_listen listen;
	char *token = NULL;
	{
		char lerr[PATH_MAX + 128], hint[PATH_MAX + 64] = "";
		if (sn_listen_parse(d.o.api_listen, &listen, lerr, sizeof(lerr)) ||
		    (d.o.token_file &&
		     sn_token_read(d.o.token_file, &token, lerr, sizeof(lerr),
				   hint, sizeof(hint)))) {
			sn_log(&d.log, SN_LOG_ERROR, NULL, "%s%s%s", lerr,
			       hint[0] ? "; " : "", hint);
			sn_config_free(&d.cfg);
			return EXIT_USAGE;
		}
	}
	sn_rt_init(&d.rt);
	d.rt.pid = getpid();
	d.rt.started_ns = realtime_ns();
	d.rt.policy_path = d.o.policy;
	d.rt.listen = d.o.api_listen;
	d.rt.pin_root = d.o.pin_root;
	d.rt.state_dir = d.o.state_dir;
	d.rt.reload = api_reload;
	d.rt.reload_ctx = &d;
	d.rt.n_ifaces = d.o.n_ifaces;
	for (int i = 0; i < d.o.n_ifaces; i++)
		d.rt.ifaces[i].name = d.o.ifaces[i];

	/* Block the stop signals first: one that arrives during setup waits
	 * in the signalfd and is honoured once setup is complete, instead
	 * of killing us half-way through an attach. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0) {
		sn_log(&d.log, SN_LOG_ERROR, NULL, "sigprocmask: %s",
		       strerror(errno));
		return EXIT_FAIL;
	}
	int sfd = signalfd(-1, &stop, SFD_CLOEXEC);
	if (sfd < 0) {
		sn_log(&d.log, SN_LOG_ERROR, NULL, "signalfd: %s",
		       strerror(errno));
		return EXIT_FAIL;
	}

	/* Watch before the first compile reads anything: a change made while
	 * we start up is seen. */
	if (d.o.watch) {
		rc = sn_watch_open(&d.watch);
		if (rc) {
			sn_log(&d.log, SN_LOG_WARN, NULL,
			       "cannot watch files (%s): changes need SIGHUP",
			       strerror(-rc));
			d.watch = NULL;
		}
	}
	struct sn_ctx ctx;
	sn_ctx_init(&ctx);
	struct sn_image *img = NULL;
	char why[PATH_MAX + 256] = "", *diags = NULL;
	bool compiled = compile_policy(&d, &ctx, &img, &diags, why,
				       sizeof(why)) == 0;
	update_watches(&d, &ctx);

	/* Check every interface before touching any of them. */
	rc = 0;
	for (int i = 0; i < d.o.n_ifaces; i++) {
		struct iface *f = &d.ifs[i];
		f->name = d.o.ifaces[i];
		f->ifindex = (int)if_nametoindex(f->name);
		if (!f->ifindex) {
			sn_log(&d.log, SN_LOG_ERROR, f->name,
			       "no interface %s in this network namespace",
			       f->name);
			rc = -1;
		}
		if (sn_state_join(f->pin_dir, sizeof(f->pin_dir), d.o.pin_root,
				 f->name)) {
			sn_log(&d.log, SN_LOG_ERROR, f->name, "pin path too long");
			rc = -1;
		}
	}
	if (rc)
		goto fail_early;

	d.pin_root_existed = dir_exists(d.o.pin_root);
	d.state_dir_existed = dir_exists(d.o.state_dir);
	char err[512] = "";
	struct sn_bpffs_info fs;
	if (sn_bpffs_prepare(d.o.pin_root, &fs, err, sizeof(err))) {
		sn_log(&d.log, SN_LOG_ERROR, NULL, "%s", err);
		goto fail_early;
	}
	if (fs.mounted)
		sn_log(&d.log, SN_LOG_INFO, NULL, "mounted bpffs at %s",
		       SN_BPFFS_MOUNT);

	for (int i = 0; i < d.o.n_ifaces; i++)
		d.ifs[i].lock_fd = -1;
	for (int i = 0; i < d.o.n_ifaces; i++)
		if (take_lock(&d, &d.ifs[i]))
			rc = -1;
	if (rc) {
		remove_roots(&d);
		goto fail_early;
	}

	/* The API listens before anything is attached, so an address in use
	 * leaves nothing behind; requests wait in the backlog until the
	 * event loop runs. */
	if (listen.kind != SN_LISTEN_OFF) {
		rc = sn_http_start(&listen, token, &d.rt, &d.log, &d.http, err,
				   sizeof(err));
		if (rc == -EADDRINUSE && !d.o.api_listen_given) {
			/* The default address, taken: another sentryd in this
			 * network namespace (one daemon per interface is how
			 * several interfaces may be run).  Enforcing matters
			 * more than the API nobody asked for explicitly. */
			sn_log(&d.log, SN_LOG_WARN, NULL, "API: %s; running "
			       "without the API (set api.listen to give this "
			       "daemon one)", err);
			rc = 0;
		} else if (rc) {
			sn_log(&d.log, SN_LOG_ERROR, NULL, "API: %s; nothing "
			       "attached", err);
			remove_roots(&d);
			goto fail_early;
		} else {
			sn_log(&d.log, SN_LOG_INFO, NULL, "API listening on %s%s",
			       d.o.api_listen,
			       token ? "" : " (read-only: no token file)");
		}
	}

	/* Pinned state of an earlier daemon: adopted, never interrupted. */
	int n_adopted = 0;
	for (int i = 0; i < d.o.n_ifaces; i++) {
		if (adopt_state(&d, &d.ifs[i]))
			rc = -1;
		n_adopted += d.ifs[i].adopted;
	}
	if (rc) {
		for (int i = 0; i < d.o.n_ifaces; i++)
			take_down(&d, &d.ifs[i], "refused");
		remove_roots(&d);
		goto fail_early;
	}
	if (!compiled) {
		if (n_adopted < d.o.n_ifaces) {
			sn_log(&d.log, SN_LOG_ERROR, NULL, "%s; nothing attached%s",
			       why, n_adopted ? " (adopted interfaces keep their "
						"policy)" : "");
			for (int i = 0; i < d.o.n_ifaces; i++)
				take_down(&d, &d.ifs[i], "invalid policy");
			remove_roots(&d);
			goto fail_early;
		}
		/* Everything is adopted: it keeps enforcing what it did, and
		 * we wait for the policy to be fixed. */
		sn_checksum_hex(sn_dp_meta(d.ifs[0].dp)->checksum, d.enforced_hex);
		d.reloads_failed++;
		sn_log(&d.log, SN_LOG_ERROR, NULL,
		       "%s; the adopted policy %.12s stays enforced (fix it and "
		       "save again)", why, d.enforced_hex);
		write_status(&d, "failed", why, diags, NULL, NULL);
		sn_rt_set_checksum(&d.rt, d.enforced_hex,
				   sn_dp_meta(d.ifs[0].dp)->applied_at_ns);
		sn_rt_record(&d.rt, &(struct sn_rt_reload){
			.at_ns = realtime_ns(), .trigger = "start",
			.result = SN_RT_FAILED, .policy_error = true,
			.error = why }, diags);
		memcpy(d.rt.history[(d.rt.head + SN_RT_HISTORY - 1) %
				    SN_RT_HISTORY].checksum,
		       d.enforced_hex, sizeof(d.enforced_hex));
	} else {
		for (int i = 0; i < d.o.n_ifaces && !rc; i++)
			if (!d.ifs[i].adopted)
				rc = bring_up(&d, &d.ifs[i], img);
		if (rc) {
			rollback(&d);
			goto fail_early;
		}
		for (int i = 0; i < d.o.n_ifaces; i++)
			if (!d.ifs[i].adopted)
				sn_log(&d.log, SN_LOG_INFO, d.ifs[i].name,
				       "attached to %s mode=%s policy=%.12s rules=%u",
				       d.ifs[i].name, mode_name(d.ifs[i].mode),
				       d.checksum_hex, img->n_rules);
		memcpy(d.enforced_hex, d.checksum_hex, sizeof(d.enforced_hex));
		if (n_adopted && adopt_apply(&d, img, why, sizeof(why))) {
			d.reloads_failed++;
			write_status(&d, "failed", why, NULL, NULL, NULL);
		} else {
			write_status(&d, "ok", NULL, NULL, NULL, "previous=none");
		}
		if (sn_rt_set_policy(&d.rt, img, realtime_ns()))
			sn_log(&d.log, SN_LOG_WARN, NULL, "out of memory: the "
			       "API shows no rule table until the next reload");
		struct sn_rt_reload start = {
			.at_ns = realtime_ns(), .trigger = "start",
			.result = SN_RT_OK, .rules = img->n_rules,
		};
		memcpy(start.checksum, d.enforced_hex, sizeof(start.checksum));
		sn_rt_record(&d.rt, &start, NULL);
	}
	for (int i = 0; i < d.o.n_ifaces; i++)
		d.rt.ifaces[i].dp = d.ifs[i].dp;
	free(diags);
	diags = NULL;
	/* The image (and its arena) is no longer needed while we wait. */
	sn_ctx_free(&ctx);
	if (d.watch)
		sn_log(&d.log, SN_LOG_INFO, NULL, "watching %s and its includes "
		       "and lists (%zu directories)", d.o.policy,
		       sn_watch_count(d.watch));
	/* Changed while we were attaching?  (run_loop handles a reload
	 * that finds the files changing again.) */
	if (sources_changed(&d))
		reload(&d, mono_ms());
	/* Every interface enforces and the API listens. */
	notify(&d, "READY=1", NULL);

	int sig = run_loop(&d, sfd);
	if (sig < 0)
		sn_log(&d.log, SN_LOG_ERROR, NULL, "waiting for signals: %s",
		       strerror(-sig));
	else
		sn_log(&d.log, SN_LOG_INFO, NULL, "received %s",
		       sig == SIGTERM ? "SIGTERM" : "SIGINT");
	notify(&d, "STOPPING=1", d.o.detach_on_exit ? "stopping; detaching" :
			"stopping; enforcement stays pinned");
	close(sfd);
	sn_http_stop(d.http);
	d.http = NULL;
	rc = shut_down(&d);
	release_locks(&d);
	sn_watch_close(d.watch);
	sigs_free(&d);
	sn_rt_free(&d.rt);
	sn_config_free(&d.cfg);
	free(token);
	return sig < 0 ? EXIT_FAIL : rc;

fail_early:
	notify(&d, NULL, "failed to start; nothing attached");
	sn_http_stop(d.http);
	d.http = NULL;
	release_locks(&d);
	free(diags);
	sn_ctx_free(&ctx);
	sn_watch_close(d.watch);
	sigs_free(&d);
	close(sfd);
	sn_rt_free(&d.rt);
	sn_config_free(&d.cfg);
	free(token);
	return EXIT_FAIL;
}

/*
 * sentryd: compile a policy, enforce it with XDP on one or more
 * interfaces, and stay until told to stop.
 *
 *   sentryd --iface IF [--iface IF2 ...] --policy PATH
 *           [--xdp-mode auto|native|generic] [--pin-root DIR]
 *           [--state-dir DIR] [--detach-on-exit] [--log-level LEVEL]
 *
 * Per interface: load the program for the image, fill its maps, attach
 * with a bpf_link, record sn_meta, save the image (rule locations for
 * sentryctl) and pin everything under <pin-root>/<ifname>.  Because the
 * link is pinned, enforcement outlives this process: a crash, a SIGKILL or
 * a clean exit leave the policy enforced, and `sentryctl detach` is the
 * way to remove it (or --detach-on-exit for a clean exit).
 *
 * Either every interface ends up enforced or none does: a failure half-way
 * rolls back what was attached, pinned and saved, so nothing partial stays.
 *
 * Exit: 0 clean exit after SIGTERM/SIGINT, 1 invalid policy or runtime
 * failure, 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bpf/sentry_abi.h"
#include "../compiler/compile.h"
#include "../compiler/image.h"
#include "bpffs.h"
#include "dataplane.h"
#include "log.h"
#include "state.h"

enum {
	EXIT_CLEAN = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

#define MAX_IFACES 64

struct opts {
	const char *ifaces[MAX_IFACES];
	int n_ifaces;
	const char *policy;
	enum sn_xdp_mode_request mode;
	const char *pin_root;
	const char *state_dir;
	bool detach_on_exit;
	enum sn_log_level level;
};

/* What has been done on one interface, so a rollback undoes exactly it. */
struct iface {
	const char *name;
	int ifindex;
	char pin_dir[PATH_MAX];
	struct sn_dataplane *dp;
	enum sn_attach_mode mode;
	bool pin_dir_existed; /* empty directory found before we started */
	bool pin_tried;       /* sn_dp_pin ran (it may have created pin_dir) */
	bool pinned;
	bool image_saved;
};

struct daemon {
	struct opts o;
	struct sn_log log;
	struct iface ifs[MAX_IFACES];
	bool pin_root_existed, state_dir_existed;
	char checksum_hex[65];
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentryd --iface IF [--iface IF2 ...] --policy PATH [options]\n"
		"\n"
		"Compile PATH and enforce it with XDP on every --iface, then run\n"
		"until SIGTERM/SIGINT.  Enforcement is pinned: it stays after this\n"
		"process exits (even by crash) until `sentryctl detach`.\n"
		"\n"
		"  --iface IF          interface to protect (repeatable, max %d)\n"
		"  --policy PATH       policy file (.sentry)\n"
		"  --xdp-mode MODE     auto (default), native or generic\n"
		"  --pin-root DIR      bpffs directory for pins (default %s)\n"
		"  --state-dir DIR     saved policy images (default %s)\n"
		"  --detach-on-exit    detach and unpin on SIGTERM/SIGINT\n"
		"  --log-level LEVEL   debug, info (default), warn, error\n"
		"\n"
		"Logs are logfmt lines on stderr; invalid policies are reported\n"
		"like sentry-compile does.\n"
		"\n"
		"exit: 0 clean exit, 1 invalid policy or runtime failure, 2 usage\n",
		MAX_IFACES, SN_DEFAULT_PIN_ROOT, SN_DEFAULT_STATE_DIR);
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
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct opts){
		.mode = SN_XDP_MODE_AUTO,
		.pin_root = SN_DEFAULT_PIN_ROOT,
		.state_dir = SN_DEFAULT_STATE_DIR,
		.level = SN_LOG_INFO,
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
			if (strcmp(optarg, "auto") == 0)
				o->mode = SN_XDP_MODE_AUTO;
			else if (strcmp(optarg, "native") == 0)
				o->mode = SN_XDP_MODE_NATIVE;
			else if (strcmp(optarg, "generic") == 0)
				o->mode = SN_XDP_MODE_GENERIC;
			else
				return usage_error("bad --xdp-mode '%s' (auto, "
						   "native or generic)", optarg);
			break;
		case 'P': o->pin_root = optarg; break;
		case 'S': o->state_dir = optarg; break;
		case 'D': o->detach_on_exit = true; break;
		case 'l':
			if (sn_log_level_parse(optarg, &o->level))
				return usage_error("bad --log-level '%s'", optarg);
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
	if (!o->n_ifaces)
		return usage_error("at least one --iface is required");
	if (!o->policy)
		return usage_error("--policy is required");
	if (o->pin_root[0] != '/')
		return usage_error("--pin-root must be an absolute path (%s)",
				   o->pin_root);
	if (o->state_dir[0] == '\0')
		return usage_error("--state-dir must not be empty");
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
 * Refuse an interface that already has pinned state.
 *
 * Decision: a second daemon (or a restarted one) does not adopt pinned
 * state yet.  Adopting means proving the pinned program/maps match what
 * we would load (ABI, constants), then applying the new image to the
 * pinned maps without a gap - the reload machinery of DESIGN.md section 5,
 * a later issue.  Until then refusing is the safe choice: it never
 * replaces a running policy behind the operator's back, and the message
 * names the one command that clears the way.
 */
static int check_no_state(struct daemon *d, struct iface *f)
{
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
	char policy[64] = "unknown", hint[PATH_MAX * 3];
	struct sn_meta meta;
	if (sn_pinned_read_meta(f->pin_dir, &meta) == 0) {
		char hex[65];
		sn_checksum_hex(meta.checksum, hex);
		snprintf(policy, sizeof(policy), "%.12s", hex);
	}
	detach_hint(&d->o, f->name, hint, sizeof(hint));
	sn_log(&d->log, SN_LOG_ERROR, f->name,
	       "interface %s already has 47Sentry state (policy %s); run `%s` "
	       "first",
	       f->name, policy, hint);
	return -1;
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
	rc = sn_dp_attach(f->dp, f->ifindex, d->o.mode, &f->mode, err,
			  sizeof(err));
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, f->name, "%s",
		       err[0] ? err : strerror(-rc));
		return rc;
	}
	sn_log(&d->log, SN_LOG_DEBUG, f->name, "attached (mode=%s), not pinned yet",
	       mode_name(f->mode));

	struct sn_meta meta = {
		.abi_version = SN_ABI_VERSION,
		.attach_mode = f->mode,
		.ifindex = (uint32_t)f->ifindex,
		.n_rules = img->n_rules,
		.applied_at_ns = realtime_ns(),
	};
	memcpy(meta.checksum, img->checksum, sizeof(meta.checksum));
	snprintf(meta.ifname, sizeof(meta.ifname), "%s", f->name);
	rc = sn_dp_write_meta(f->dp, &meta);
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

/* Remove the roots again when we created them and they are empty now. */
static void remove_roots(struct daemon *d)
{
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
	sn_log(&d->log, SN_LOG_ERROR, NULL,
	       "nothing attached: every interface rolled back");
}

/* Compile; on failure report like sentry-compile and return non-zero. */
static int compile_policy(struct daemon *d, struct sn_ctx *ctx,
			  struct sn_image **img)
{
	int rc = sn_compile_file(ctx, d->o.policy, NULL, img);
	if (rc == -EINVAL || ctx->diags.n_errors) {
		sn_diags_sort(&ctx->diags);
		sn_diags_render_text(stderr, &ctx->diags, &ctx->sources);
		sn_log(&d->log, SN_LOG_ERROR, NULL,
		       "policy %s is invalid (%zu error%s); nothing attached",
		       d->o.policy, ctx->diags.n_errors,
		       ctx->diags.n_errors == 1 ? "" : "s");
		return -1;
	}
	if (rc) {
		/* Only an unreadable main file (or no memory) gets here. */
		sn_log(&d->log, SN_LOG_ERROR, NULL, "cannot read policy %s: %s",
		       d->o.policy, strerror(-rc));
		return -1;
	}
	if (ctx->diags.n) { /* warnings, shown as sentry-compile shows them */
		sn_diags_sort(&ctx->diags);
		sn_diags_render_text(stderr, &ctx->diags, &ctx->sources);
	}
	/* The checksum is defined over the serialised image; compute it now
	 * because sn_meta records it before the image is saved. */
	void *buf = NULL;
	size_t len = 0;
	rc = sn_image_serialize(*img, &buf, &len);
	free(buf);
	if (rc) {
		sn_log(&d->log, SN_LOG_ERROR, NULL,
		       "cannot serialise the image: %s", strerror(-rc));
		return -1;
	}
	sn_checksum_hex((*img)->checksum, d->checksum_hex);
	sn_log(&d->log, SN_LOG_DEBUG, NULL,
	       "compiled %s: policy=%.12s rules=%u", d->o.policy,
	       d->checksum_hex, (*img)->n_rules);
	return 0;
}

/* Block until SIGTERM or SIGINT; returns the signal number or -errno. */
static int wait_for_signal(int sfd)
{
	/* A single read; retried only on EINTR from other causes, which
	 * cannot repeat without a signal arriving. */
	for (int tries = 0; tries < 1000; tries++) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n == (ssize_t)sizeof(si))
			return (int)si.ssi_signo;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
	return -EINTR;
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
	d.log = (struct sn_log){ .out = stderr, .min = d.o.level };

	/* Block the stop signals first: one that arrives during setup waits
	 * in the signalfd and is honoured once setup is complete, instead
	 * of killing us half-way through an attach. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
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

	struct sn_ctx ctx;
	sn_ctx_init(&ctx);
	struct sn_image *img = NULL;
	if (compile_policy(&d, &ctx, &img)) {
		sn_ctx_free(&ctx);
		return EXIT_FAIL;
	}

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
	if (rc) {
		sn_ctx_free(&ctx);
		return EXIT_FAIL;
	}

	d.pin_root_existed = dir_exists(d.o.pin_root);
	d.state_dir_existed = dir_exists(d.o.state_dir);
	char err[512] = "";
	struct sn_bpffs_info fs;
	if (sn_bpffs_prepare(d.o.pin_root, &fs, err, sizeof(err))) {
		sn_log(&d.log, SN_LOG_ERROR, NULL, "%s", err);
		sn_ctx_free(&ctx);
		return EXIT_FAIL;
	}
	if (fs.mounted)
		sn_log(&d.log, SN_LOG_INFO, NULL, "mounted bpffs at %s",
		       SN_BPFFS_MOUNT);

	for (int i = 0; i < d.o.n_ifaces; i++)
		if (check_no_state(&d, &d.ifs[i]))
			rc = -1;
	if (rc) {
		remove_roots(&d);
		sn_ctx_free(&ctx);
		return EXIT_FAIL;
	}

	for (int i = 0; i < d.o.n_ifaces && !rc; i++)
		rc = bring_up(&d, &d.ifs[i], img);
	if (rc) {
		rollback(&d);
		sn_ctx_free(&ctx);
		return EXIT_FAIL;
	}
	for (int i = 0; i < d.o.n_ifaces; i++)
		sn_log(&d.log, SN_LOG_INFO, d.ifs[i].name,
		       "attached to %s mode=%s policy=%.12s rules=%u",
		       d.ifs[i].name, mode_name(d.ifs[i].mode), d.checksum_hex,
		       img->n_rules);
	/* The image (and its arena) is no longer needed while we wait. */
	sn_ctx_free(&ctx);

	int sig = wait_for_signal(sfd);
	if (sig < 0)
		sn_log(&d.log, SN_LOG_ERROR, NULL, "waiting for signals: %s",
		       strerror(-sig));
	else
		sn_log(&d.log, SN_LOG_INFO, NULL, "received %s",
		       sig == SIGTERM ? "SIGTERM" : "SIGINT");
	close(sfd);
	rc = shut_down(&d);
	return sig < 0 ? EXIT_FAIL : rc;
}

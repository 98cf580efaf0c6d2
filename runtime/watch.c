/* Watching policy files through their directories (watch.h). */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* Symlinks followed per path, as the kernel's own limit. */
#define SN_WATCH_MAX_LINKS 40

#define SN_WATCH_MASK                                                       \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |              \
	 IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF |           \
	 IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

/* A name that matters in a watched directory. */
struct interest {
	int wd;
	char *name;
};

struct sn_watch {
	int fd;
	struct interest *v;
	size_t n, cap;
	int *wds; /* directories watched now */
	size_t n_wds, cap_wds;
};

int sn_watch_open(struct sn_watch **out)
{
	struct sn_watch *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int rc = -errno;

		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static void interests_free(struct interest *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

void sn_watch_close(struct sn_watch *w)
{
	if (!w)
		return;
	close(w->fd);
	interests_free(w->v, w->n);
	free(w->wds);
	free(w);
}

int sn_watch_fd(const struct sn_watch *w)
{
	return w->fd;
}

size_t sn_watch_count(const struct sn_watch *w)
{
	return w->n_wds;
}

/* The set being built by sn_watch_set. */
struct build {
	struct sn_watch *w;
	struct interest *v;
	size_t n, cap;
	int *wds;
	size_t n_wds, cap_wds;
	int err;
};

static void add_wd(struct build *b, int wd)
{
	for (size_t i = 0; i < b->n_wds; i++)
		if (b->wds[i] == wd)
			return;
	if (b->n_wds == b->cap_wds) {
		size_t cap = b->cap_wds ? b->cap_wds * 2 : 16;
		int *v = realloc(b->wds, cap * sizeof(*v));

		if (!v) {
			b->err = -ENOMEM;
			return;
		}
		b->wds = v;
		b->cap_wds = cap;
	}
	b->wds[b->n_wds++] = wd;
}

/* Watch dir (a path without symlinks) for name. */
static void interest(struct build *b, const char *dir, const char *name)
{
	int wd = inotify_add_watch(b->w->fd, dir[0] ? dir : "/", SN_WATCH_MASK);

	if (wd < 0) {
		/* Gone or not ours to watch: nothing to learn from it. */
		if (errno == ENOMEM || errno == ENOSPC)
			b->err = -errno;
		return;
	}
	add_wd(b, wd);
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].wd == wd && !strcmp(b->v[i].name, name))
			return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct interest *v = realloc(b->v, cap * sizeof(*v));

		if (!v) {
			b->err = -ENOMEM;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n].wd = wd;
	b->v[b->n].name = strdup(name);
	if (!b->v[b->n].name) {
		b->err = -ENOMEM;
		return;
	}
	b->n++;
}

/*
 * Walk path component by component over physical directories: every
 * symlink met is an interest in its directory, and the walk starts over
 * on its target; the file itself, or the first missing component, ends
 * it.
 */
static void watch_path(struct build *b, const char *path)
{
	char cur[PATH_MAX], phys[PATH_MAX], next[PATH_MAX];
	int links = 0;

	if (path[0] == '/') {
		if (strlen(path) >= sizeof(cur))
			return;
		strcpy(cur, path);
	} else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(cur, sizeof(cur), "%s/%s", cwd, path) >= (int)sizeof(cur))
			return;
	}
restart:
	phys[0] = '\0';
	for (const char *p = cur; *p;) {
		const char *end;
		char comp[NAME_MAX + 1];
		size_t len;
		struct stat st;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchr(p, '/');
		len = end ? (size_t)(end - p) : strlen(p);
		if (len > NAME_MAX)
			return;
		memcpy(comp, p, len);
		comp[len] = '\0';
		p += len;
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			char *slash = strrchr(phys, '/');

			if (slash)
				*slash = '\0';
			continue;
		}
		bool last = !*p || !p[strspn(p, "/")];
		char full[PATH_MAX];

		if (snprintf(full, sizeof(full), "%s/%s", phys, comp) >= (int)sizeof(full))
			return;
		if (lstat(full, &st)) {
			/* Missing (or unreadable): its directory tells when it
			 * appears. */
			interest(b, phys, comp);
			return;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(full, target, sizeof(target) - 1);

			interest(b, phys, comp);
			if (n < 0 || ++links > SN_WATCH_MAX_LINKS)
				return;
			target[n] = '\0';
			if (target[0] == '/')
				n = snprintf(next, sizeof(next), "%s%s", target, p);
			else
				n = snprintf(next, sizeof(next), "%s/%s%s", phys,
					     target, p);
			if (n < 0 || n >= (ssize_t)sizeof(next))
				return;
			strcpy(cur, next);
			goto restart;
		}
		if (last) {
			interest(b, phys, comp);
			return;
		}
		strcpy(phys, full);
	}
}

int sn_watch_set(struct sn_watch *w, const char *const *paths, size_t n)
{
	struct build b = { .w = w };

	for (size_t i = 0; i < n && !b.err; i++)
		if (paths[i] && paths[i][0])
			watch_path(&b, paths[i]);
	if (b.err) {
		interests_free(b.v, b.n);
		free(b.wds);
		return b.err;
	}
	/* Directories no path needs any more. */
	for (size_t i = 0; i < w->n_wds; i++) {
		bool keep = false;

		for (size_t j = 0; j < b.n_wds && !keep; j++)
			keep = b.wds[j] == w->wds[i];
		if (!keep)
			inotify_rm_watch(w->fd, w->wds[i]);
	}
	interests_free(w->v, w->n);
	free(w->wds);
	w->v = b.v;
	w->n = b.n;
	w->wds = b.wds;
	w->n_wds = b.n_wds;
	return (int)b.n_wds;
}

static bool watched_dir(const struct sn_watch *w, int wd)
{
	for (size_t i = 0; i < w->n_wds; i++)
		if (w->wds[i] == wd)
			return true;
	return false;
}

static bool interesting(const struct sn_watch *w, int wd, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].wd == wd && !strcmp(w->v[i].name, name))
			return true;
	return false;
}

int sn_watch_read(struct sn_watch *w, enum sn_watch_event *ev)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	*ev = SN_WATCH_NONE;
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EAGAIN)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;

			p += sizeof(*e) + e->len;
			if (e->mask & IN_Q_OVERFLOW) {
				/* Events were lost: assume the worst. */
				*ev = SN_WATCH_CHANGED;
				continue;
			}
			if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				/* A watched directory went away or moved. */
				if (watched_dir(w, e->wd))
					*ev = SN_WATCH_CHANGED;
				continue;
			}
			if (!e->len || !interesting(w, e->wd, e->name))
				continue;
			if (e->mask & IN_MODIFY) {
				*ev = SN_WATCH_WRITING;
			} else if ((e->mask & IN_CREATE) && !(e->mask & IN_ISDIR)) {
				/* A new file: its content is written next (a
				 * symlink made by `ln -sf` waits as long). */
				*ev = SN_WATCH_WRITING;
			} else {
				*ev = SN_WATCH_CHANGED;
			}
		}
	}
}

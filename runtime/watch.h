/*
 * Watching policy files for changes (sentryd, SPEC.md 7 "sentryd").
 *
 * inotify watches directories, not files: an editor that saves by writing
 * a new file and renaming it over the old one, `mv`, `git checkout` and a
 * Kubernetes ConfigMap (whose files are symlinks through a `..data`
 * symlink that is swapped by a rename) all replace the inode a file watch
 * would hold.  For every path a compile read or tried to read, the
 * directories along it are watched for the names that matter: each
 * symlink on the way (a path component or the file itself), the file, or
 * the first missing component when the file or a directory above it does
 * not exist yet.  The watch set is replaced after every compile, since
 * includes, list files and symlink targets change with the policy.
 *
 * Events are classified: a change that completes a file (renamed into
 * place, closed after writing, deleted, attributes changed, a symlink
 * created) or one still in progress (modified and not yet closed, a
 * regular file created).  sentryd waits for a short quiet period after the
 * first kind and a longer one after the second (debouncing bursts).
 */
#ifndef SN_WATCH_H
#define SN_WATCH_H

#include <stddef.h>

struct sn_watch;

enum sn_watch_event {
	SN_WATCH_NONE = 0,     /* nothing that concerns the policy */
	SN_WATCH_CHANGED = 1,  /* a file was completed, replaced or removed */
	SN_WATCH_WRITING = 2,  /* a file is being written */
};

int sn_watch_open(struct sn_watch **out);
void sn_watch_close(struct sn_watch *w);
/* The inotify fd, for poll(). */
int sn_watch_fd(const struct sn_watch *w);
/*
 * Watch exactly these paths (relative ones against the working
 * directory).  Directories that cannot be watched (permissions) are
 * skipped; returns how many were, or -errno for a failure of inotify
 * itself.
 */
int sn_watch_set(struct sn_watch *w, const char *const *paths, size_t n);
/*
 * Read the pending events: *ev gets the kind of the last one that
 * concerns a watched path (SN_WATCH_NONE if none).  0, or -errno.
 */
int sn_watch_read(struct sn_watch *w, enum sn_watch_event *ev);
/* The directories watched now (tests, logs). */
size_t sn_watch_count(const struct sn_watch *w);

#endif

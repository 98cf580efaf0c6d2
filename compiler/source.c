/*
 * Source manager: every file a compile reads is loaded whole and kept, so a
 * diagnostic can quote any line of any file long after parsing is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag.h"

#define SN_MAX_FILE_SIZE_DEFAULT ((size_t)256 << 20)

void sn_srcmgr_init(struct sn_srcmgr *m)
{
	sn_arena_init(&m->arena);
	m->v = NULL;
	m->n = m->cap = 0;
	m->miss = NULL;
	m->n_miss = m->cap_miss = 0;
	m->max_file_size = SN_MAX_FILE_SIZE_DEFAULT;
}

void sn_srcmgr_free(struct sn_srcmgr *m)
{
	/* Texts are malloc'd (not arena) so a failed or huge read can be
	 * given back at once; the arena holds only the records and paths. */
	for (size_t i = 0; i < m->n; i++)
		free((void *)m->v[i].text);
	free(m->v);
	free(m->miss);
	sn_arena_free(&m->arena);
	m->v = NULL;
	m->n = m->cap = 0;
	m->miss = NULL;
	m->n_miss = m->cap_miss = 0;
}

/*
 * Keep a record.  *out points at an arena copy, not into m->v, because
 * m->v moves when it grows and callers hold on to *out.  On failure text is
 * left to the caller.
 */
static int keep(struct sn_srcmgr *m, const char *path, char *text, size_t len,
		const struct stat *st, const struct sn_source **out)
{
	struct sn_source *rec = sn_arena_alloc(&m->arena, sizeof(*rec));
	char *p = sn_arena_strdup(&m->arena, path);

	if (!rec || !p)
		return -ENOMEM;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct sn_source *v = realloc(m->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	*rec = (struct sn_source){ .path = p, .text = text, .len = len };
	if (st) {
		rec->dev = (uint64_t)st->st_dev;
		rec->ino = (uint64_t)st->st_ino;
		rec->size = (uint64_t)st->st_size;
		rec->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 +
				st->st_mtim.tv_nsec;
		rec->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 +
				st->st_ctim.tv_nsec;
	}
	m->v[m->n++] = *rec;
	if (out)
		*out = rec;
	return 0;
}

/* Read fd to EOF into a malloc'd, NUL-terminated buffer of at most max
 * bytes.  hint is the expected size (st_size) or 0 when unknown. */
static int read_all(int fd, size_t hint, size_t max, char **out, size_t *len)
{
	/* One spare byte beyond the expected size, so the read that sees EOF
	 * does not force a doubling of a file's worth of memory. */
	size_t cap = (hint ? hint + 1 : 4096) + 1, n = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n + 1 == cap) {
			size_t ncap = cap * 2;
			char *nb;

			if (ncap < cap) {
				free(buf);
				return -EFBIG;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;

			free(buf);
			return err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			free(buf);
			return -EFBIG;
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int load(struct sn_srcmgr *m, const char *path, bool regular_only,
		const struct sn_source **out)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, err;

	/* O_NONBLOCK: opening a FIFO without a writer must not block. */
	fd = open(path, O_RDONLY | O_CLOEXEC | (regular_only ? O_NONBLOCK : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return -EISDIR;
	}
	if (regular_only && !S_ISREG(st.st_mode)) {
		close(fd);
		return -ENODEV;
	}
	if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > m->max_file_size) {
		close(fd);
		return -EFBIG;
	}
	/* Pipes and /dev/stdin have no size: read_all enforces the limit. */
	err = read_all(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0,
		       m->max_file_size, &text, &len);
	close(fd);
	if (err)
		return err;
	err = keep(m, path, text, len, &st, out);
	if (err)
		free(text);
	return err;
}

/* Remember a file that could not be read (not for lack of memory). */
static int missed(struct sn_srcmgr *m, const char *path, int err)
{
	char *p;

	if (err == -ENOMEM)
		return err;
	if (m->n_miss == m->cap_miss) {
		size_t cap = m->cap_miss ? m->cap_miss * 2 : 8;
		struct sn_source_miss *v = realloc(m->miss, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->miss = v;
		m->cap_miss = cap;
	}
	p = sn_arena_strdup(&m->arena, path);
	if (!p)
		return -ENOMEM;
	m->miss[m->n_miss++] = (struct sn_source_miss){ p, err };
	return err;
}

int sn_srcmgr_load(struct sn_srcmgr *m, const char *path,
		   const struct sn_source **out)
{
	int err = load(m, path, false, out);

	return err ? missed(m, path, err) : 0;
}

int sn_srcmgr_load_regular(struct sn_srcmgr *m, const char *path,
			   const struct sn_source **out)
{
	int err = load(m, path, true, out);

	return err ? missed(m, path, err) : 0;
}

const char *sn_srcmgr_strerror(int err)
{
	if (err == -ENODEV)
		return "not a regular file (a FIFO, socket or device)";
	return strerror(-err);
}

int sn_srcmgr_add(struct sn_srcmgr *m, const char *path, const char *text,
		  size_t len, const struct sn_source **out)
{
	char *copy;
	int err;

	if (len > m->max_file_size)
		return -EFBIG;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	err = keep(m, path, copy, len, NULL, out);
	if (err)
		free(copy);
	return err;
}

const struct sn_source *sn_srcmgr_find(const struct sn_srcmgr *m,
				       const char *path)
{
	if (!path)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].path, path) == 0)
			return &m->v[i];
	return NULL;
}

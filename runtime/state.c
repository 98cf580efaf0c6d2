/* Per-interface state directory: paths and the saved image (state.h). */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errmsg.h"

/* Linux IFNAMSIZ is 16 including the NUL. */
#define SN_IFNAME_MAX 15

int sn_ifname_check(const char *ifname)
{
	size_t n = strnlen(ifname, SN_IFNAME_MAX + 1);
	if (n == 0 || n > SN_IFNAME_MAX)
		return -EINVAL;
	if (strchr(ifname, '/') || strcmp(ifname, ".") == 0 ||
	    strcmp(ifname, "..") == 0)
		return -EINVAL;
	return 0;
}

int sn_state_join(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int sn_mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return n ? -ENAMETOOLONG : -EINVAL;
	memcpy(buf, path, n + 1);
	/* Create each prefix in turn; the loop is bounded by the length. */
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = saved;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Write buf to dir/name through a temporary file, fsynced, renamed. */
static int write_atomic(const char *dir, const char *name, const void *buf,
			size_t len, bool durable, char *err, size_t errlen)
{
	char path[4096], tmp[4096];
	int rc;

	if (sn_state_join(path, sizeof(path), dir, name) ||
	    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return sn_fail(err, errlen, -ENAMETOOLONG, "state path too long");
	rc = sn_mkdir_p(dir);
	if (rc)
		return sn_fail(err, errlen, rc, "cannot create %s: %s", dir,
			       strerror(-rc));
	int fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		return sn_fail(err, errlen, rc, "cannot create %s: %s", tmp,
			       strerror(-rc));
	}
	rc = write_all(fd, buf, len);
	if (!rc && fchmod(fd, 0644) != 0)
		rc = -errno;
	if (!rc && durable && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return sn_fail(err, errlen, rc, "cannot write %s: %s", path,
			       strerror(-rc));
	}
	if (!durable)
		return 0;
	/* The rename is durable only once the directory entry is. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			rc = -errno;
		close(dfd);
	}
	if (rc)
		return sn_fail(err, errlen, rc, "cannot sync %s: %s", dir,
			       strerror(-rc));
	return 0;
}

int sn_state_save_image(const char *state_dir, const char *ifname,
			struct sn_image *image, char *err, size_t errlen)
{
	char dir[4096];
	int rc;

	if (sn_ifname_check(ifname))
		return sn_fail(err, errlen, -EINVAL, "invalid interface name");
	if (sn_state_join(dir, sizeof(dir), state_dir, ifname))
		return sn_fail(err, errlen, -ENAMETOOLONG, "state path too long");

	void *buf = NULL;
	size_t len = 0;
	rc = sn_image_serialize(image, &buf, &len);
	if (rc)
		return sn_fail(err, errlen, rc, "cannot serialise the image: %s",
			    strerror(-rc));
	rc = write_atomic(dir, SN_STATE_IMAGE_NAME, buf, len, true, err, errlen);
	free(buf);
	return rc;
}

int sn_state_write_file(const char *state_dir, const char *ifname,
			const char *name, const void *buf, size_t len,
			char *err, size_t errlen)
{
	char dir[4096];

	if (sn_ifname_check(ifname))
		return sn_fail(err, errlen, -EINVAL, "invalid interface name");
	if (sn_state_join(dir, sizeof(dir), state_dir, ifname))
		return sn_fail(err, errlen, -ENAMETOOLONG, "state path too long");
	/* A status, not a record to survive a power cut: no fsync. */
	return write_atomic(dir, name, buf, len, false, err, errlen);
}

int sn_state_read_file(const char *state_dir, const char *ifname,
		       const char *name, char **out, size_t *len)
{
	char dir[4096], path[4096];
	struct stat st;
	char *buf;
	int fd, rc = 0;

	*out = NULL;
	if (sn_ifname_check(ifname))
		return -EINVAL;
	if (sn_state_join(dir, sizeof(dir), state_dir, ifname) ||
	    sn_state_join(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size > (1 << 24)) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	if (n < 0)
		rc = -errno;
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = (size_t)n;
	return 0;
}

int sn_state_load_image(const char *state_dir, const char *ifname,
			struct sn_arena *arena, struct sn_image **out,
			char *err, size_t errlen)
{
	char dir[4096], path[4096];
	if (sn_ifname_check(ifname))
		return sn_fail(err, errlen, -EINVAL, "invalid interface name");
	if (sn_state_join(dir, sizeof(dir), state_dir, ifname) ||
	    sn_state_join(path, sizeof(path), dir, SN_STATE_IMAGE_NAME))
		return sn_fail(err, errlen, -ENAMETOOLONG, "state path too long");
	if (access(path, R_OK) != 0) {
		int rc = -errno;
		return sn_fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
	}
	char why[256] = "";
	int rc = sn_image_read_file(path, arena, out, why, sizeof(why));
	if (rc)
		return sn_fail(err, errlen, rc, "%s: %s", path,
			    why[0] ? why : strerror(-rc));
	return 0;
}

/* Only what sentryd writes is ours to delete: its files and temporaries. */
static bool is_state_file(const char *name)
{
	static const char *const ours[] = { SN_STATE_IMAGE_NAME,
					    SN_STATE_STATUS_NAME };

	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		size_t n = strlen(ours[i]);

		if (strncmp(name, ours[i], n) == 0 &&
		    (name[n] == '\0' || name[n] == '.'))
			return true;
	}
	return false;
}

int sn_state_remove(const char *state_dir, const char *ifname, char *err,
		    size_t errlen)
{
	char dir[4096], path[4096];
	if (sn_ifname_check(ifname))
		return sn_fail(err, errlen, -EINVAL, "invalid interface name");
	if (sn_state_join(dir, sizeof(dir), state_dir, ifname))
		return sn_fail(err, errlen, -ENAMETOOLONG, "state path too long");

	DIR *d = opendir(dir);
	if (!d) {
		int rc = -errno;
		if (rc == -ENOENT)
			return rc;
		return sn_fail(err, errlen, rc, "%s: %s", dir, strerror(-rc));
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!is_state_file(e->d_name))
			continue;
		if (sn_state_join(path, sizeof(path), dir, e->d_name)) {
			rc = -ENAMETOOLONG;
			continue;
		}
		if (unlink(path) != 0 && errno != ENOENT && !rc)
			rc = -errno;
	}
	closedir(d);
	if (!rc && rmdir(dir) != 0)
		rc = -errno;
	if (rc)
		return sn_fail(err, errlen, rc, "cannot remove %s: %s", dir,
			    strerror(-rc));
	return 0;
}

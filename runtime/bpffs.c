/* bpffs mount and checks (bpffs.h). */
#include "bpffs.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "errmsg.h"
#include "state.h"

int sn_bpffs_check(const char *path)
{
	struct statfs sfs;
	if (statfs(path, &sfs) != 0)
		return -errno;
	return sfs.f_type == BPF_FS_MAGIC;
}

static bool under_default_mount(const char *path)
{
	size_t n = strlen(SN_BPFFS_MOUNT);
	return strncmp(path, SN_BPFFS_MOUNT, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

static int mntns_of(const char *path, struct stat *st)
{
	return stat(path, st) == 0 ? 0 : -errno;
}

/*
 * Is our mount namespace a private, short-lived one?  Compared with PID
 * 1's where we may read it; where we may not (some sandboxes deny it even
 * to root), with our parent's, which catches `ip netns exec` and
 * `unshare -m` - both start the command in a fresh mount namespace.
 * Unknown counts as not private.
 */
static bool mntns_is_private(void)
{
	struct stat self, other;
	char parent[64];

	if (mntns_of("/proc/self/ns/mnt", &self))
		return false;
	if (mntns_of("/proc/1/ns/mnt", &other) == 0)
		return self.st_ino != other.st_ino || self.st_dev != other.st_dev;
	snprintf(parent, sizeof(parent), "/proc/%d/ns/mnt", (int)getppid());
	if (mntns_of(parent, &other) == 0)
		return self.st_ino != other.st_ino || self.st_dev != other.st_dev;
	return false;
}

int sn_bpffs_prepare(const char *pin_root, struct sn_bpffs_info *info,
		     char *err, size_t errlen)
{
	struct sn_bpffs_info local = { .private_mntns = mntns_is_private() };
	int rc;

	if (pin_root[0] != '/')
		return sn_fail(err, errlen, -EINVAL,
			    "pin root %s is not an absolute path", pin_root);
	if (under_default_mount(pin_root) &&
	    sn_bpffs_check(SN_BPFFS_MOUNT) != 1) {
		/* A bpffs mounted here would vanish with this namespace, and
		 * the pinned link with it: enforcement that silently ends
		 * when we exit.  Refuse rather than promise what we cannot
		 * keep. */
		if (local.private_mntns)
			return sn_fail(err, errlen, -EXDEV,
				    "no bpffs at %s and this process runs in "
				    "a private mount namespace (ip netns "
				    "exec?), where pins would die with it; "
				    "mount bpffs on the host (mount -t bpf bpf "
				    "%s) or enter only the network namespace "
				    "(nsenter --net=/run/netns/NAME)",
				    SN_BPFFS_MOUNT, SN_BPFFS_MOUNT);
		if (mount("bpf", SN_BPFFS_MOUNT, "bpf", 0, "mode=0700") != 0) {
			rc = -errno;
			return sn_fail(err, errlen, rc,
				    "cannot mount bpffs at %s: %s",
				    SN_BPFFS_MOUNT, strerror(-rc));
		}
		local.mounted = true;
	}
	rc = sn_mkdir_p(pin_root);
	if (rc)
		return sn_fail(err, errlen, rc, "cannot create pin root %s: %s",
			    pin_root, strerror(-rc));
	rc = sn_bpffs_check(pin_root);
	if (rc < 0)
		return sn_fail(err, errlen, rc, "%s: %s", pin_root,
			    strerror(-rc));
	if (rc == 0)
		return sn_fail(err, errlen, -EINVAL,
			    "pin root %s is not on a bpffs (mount -t bpf bpf "
			    "<dir>)", pin_root);
	if (info)
		*info = local;
	return 0;
}

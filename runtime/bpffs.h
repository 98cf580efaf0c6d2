/*
 * Making sure a pin root is on a BPF filesystem.
 *
 * Pins live only as long as the bpffs instance that holds them.  Every
 * `mount -t bpf` creates a new instance, and one mounted inside a private
 * mount namespace (for example by `ip netns exec`, which unshares the mount
 * namespace and remounts /sys) disappears with that namespace - taking the
 * pinned link, and so the enforcement, with it.  sn_bpffs_prepare refuses
 * to mount in that case, so the daemon fails at start instead of failing
 * open when it exits.
 */
#ifndef SN_BPFFS_H
#define SN_BPFFS_H

#include <stdbool.h>
#include <stddef.h>

#define SN_BPFFS_MOUNT "/sys/fs/bpf"

struct sn_bpffs_info {
	bool mounted;      /* we mounted bpffs at /sys/fs/bpf */
	bool private_mntns; /* our mount namespace is not PID 1's (or, where
			     * that is unreadable, not our parent's) */
};

/*
 * If pin_root lies under /sys/fs/bpf and no bpffs is mounted there, mount
 * one (-EXDEV instead when our mount namespace is a private one, see
 * above).  Then create pin_root and check it is on a bpffs.  0 or -errno.
 */
int sn_bpffs_prepare(const char *pin_root, struct sn_bpffs_info *info,
		     char *err, size_t errlen);

/* 1 when path is on a bpffs, 0 when not, -errno when it cannot be told. */
int sn_bpffs_check(const char *path);

#endif

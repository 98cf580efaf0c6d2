/*
 * Where sentryd keeps per-interface state and how it is read back.
 *
 *   <pin_root>/<ifname>/           bpffs pins (runtime/dataplane.h)
 *   <state_dir>/<ifname>/policy.img the applied image, rule locations and
 *                                   texts included, so sentryctl can name
 *                                   the rule behind each counter
 *
 * The pins are the truth about enforcement; the saved image is only the
 * explanation of it, and sentryctl trusts it only when its checksum equals
 * the one in sn_meta.  Helpers return 0 or a negative errno and never
 * print; err, when given, receives a one-line reason.
 */
#ifndef SN_STATE_H
#define SN_STATE_H

#include <stddef.h>

#include "../compiler/arena.h"
#include "../compiler/image.h"

#define SN_DEFAULT_STATE_DIR "/run/47sentry"
#define SN_STATE_IMAGE_NAME "policy.img"
/* sentryd's account of its last reload attempt (SPEC.md 6.2). */
#define SN_STATE_STATUS_NAME "reload.status"

/*
 * An interface name must be usable as one path component: 1..15 bytes,
 * no '/', not "." or "..".  0 or -EINVAL.
 */
int sn_ifname_check(const char *ifname);

/* out = dir "/" name; -ENAMETOOLONG when it does not fit. */
int sn_state_join(char *out, size_t len, const char *dir, const char *name);

/* mkdir -p with mode 0755; 0 when it exists already as a directory. */
int sn_mkdir_p(const char *path);

/*
 * Serialise the image and store it as <state_dir>/<ifname>/policy.img
 * atomically: write a temporary file, fsync it, rename it over the old one
 * and fsync the directory, so a reader (or a crash) sees the old image or
 * the new one, never half of one.  Sets image->checksum.
 */
int sn_state_save_image(const char *state_dir, const char *ifname,
			struct sn_image *image, char *err, size_t errlen);

/*
 * Store text as <state_dir>/<ifname>/<name> atomically (temporary file,
 * rename), creating the directory.  name is SN_STATE_STATUS_NAME.
 */
int sn_state_write_file(const char *state_dir, const char *ifname,
			const char *name, const void *buf, size_t len,
			char *err, size_t errlen);

/*
 * Read <state_dir>/<ifname>/<name> whole into a malloc'd, NUL-terminated
 * buffer.  -ENOENT when there is none.
 */
int sn_state_read_file(const char *state_dir, const char *ifname,
		       const char *name, char **out, size_t *len);

/* Read and validate the saved image (sn_image_read_file) into arena. */
int sn_state_load_image(const char *state_dir, const char *ifname,
			struct sn_arena *arena, struct sn_image **out,
			char *err, size_t errlen);

/*
 * Remove <state_dir>/<ifname>/ and the files sentryd puts there (the image
 * and any temporary left by a crash).  0 when something was removed,
 * -ENOENT when there was nothing.
 */
int sn_state_remove(const char *state_dir, const char *ifname, char *err,
		    size_t errlen);

#endif

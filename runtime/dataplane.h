/*
 * The XDP data plane as userspace drives it: load the program specialised
 * for an image, populate its maps, attach it with a bpf_link, pin
 * everything, read counters, and tear it down.  sentryd, sentryctl and the
 * kernel tests all use this, so there is one way the maps get written.
 *
 * Pin layout under <pin_root>/<ifname>/ (SPEC.md, "Runtime state"):
 *   link  prog  sn_lpm_v4  sn_lpm_v6  sn_proto  sn_ports  sn_decisions
 *   sn_counters  sn_meta  sn_limits  sn_limit_state  sn_limit_new
 *   sn_src4_nodes  sn_src4_ranges  sn_src6_nodes  sn_src6_ranges
 * Functions return 0 or a negative errno and never print; err, when given,
 * receives a one-line human explanation.
 */
#ifndef SN_DATAPLANE_H
#define SN_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../bpf/sentry_abi.h"
#include "../compiler/image.h"

#define SN_DEFAULT_PIN_ROOT "/sys/fs/bpf/47sentry"

struct sn_dataplane;

enum sn_xdp_mode_request {
	SN_XDP_MODE_AUTO = 0, /* native where the driver has it, else generic */
	SN_XDP_MODE_NATIVE,
	SN_XDP_MODE_GENERIC,
};

/*
 * Open the BPF object, size the maps for the image (with headroom), set the
 * generated constants as rodata and load it into the kernel.  Nothing is
 * attached or pinned yet.
 */
int sn_dp_load(const struct sn_image *image, struct sn_dataplane **out,
	       char *err, size_t errlen);
/* Write the image into the maps (all of them; counters untouched). */
int sn_dp_apply(struct sn_dataplane *dp, const struct sn_image *image,
		char *err, size_t errlen);
/* Attach to ifindex with a bpf_link; *mode gets what was obtained. */
int sn_dp_attach(struct sn_dataplane *dp, int ifindex,
		 enum sn_xdp_mode_request req, enum sn_attach_mode *mode,
		 char *err, size_t errlen);
/* Pin program, maps and (if attached) link under dir, creating dir. */
int sn_dp_pin(struct sn_dataplane *dp, const char *dir, char *err,
	      size_t errlen);
/* Record what is applied in sn_meta (read by sentryctl). */
int sn_dp_write_meta(struct sn_dataplane *dp, const struct sn_meta *meta);
/* A map's fd by its pin name (tests, statistics); -ENOENT if unknown. */
int sn_dp_map_fd(const struct sn_dataplane *dp, const char *name);
/* The loaded XDP program's fd (BPF_PROG_TEST_RUN in tests). */
int sn_dp_prog_fd(const struct sn_dataplane *dp);
/* Sum per-CPU counters of rule ids [0, n) into out[n]. */
int sn_dp_read_counters(const struct sn_dataplane *dp, struct sn_counter *out,
			uint32_t n);
/* Close fds; pinned objects (and a pinned link) stay in the kernel. */
void sn_dp_close(struct sn_dataplane *dp);

/* ---- pinned state, without the daemon ---------------------------------- */

/* Read sn_meta of a pinned interface directory. */
int sn_pinned_read_meta(const char *dir, struct sn_meta *meta);
/* Sum the pinned per-CPU counters of rule ids [0, n). */
int sn_pinned_read_counters(const char *dir, struct sn_counter *out,
			    uint32_t n);
/*
 * Detach the pinned link (the program leaves the interface even if another
 * process still holds the link), unpin every object and remove dir.
 * Succeeds on a partially removed directory; -ENOENT if dir is absent.
 */
int sn_pinned_detach(const char *dir, char *err, size_t errlen);

#endif

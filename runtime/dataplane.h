/*
 * The XDP data plane as userspace drives it: load the program specialised
 * for an image, apply images to its maps atomically, attach it with a
 * bpf_link, pin everything, adopt pinned state, read counters, and tear
 * it down.  sentryd, sentryctl and the kernel tests all use this, so there
 * is one way the maps get written.
 *
 * Pin layout under <pin_root>/<ifname>/ (SPEC.md 6):
 *   link  prog  sn_gen  sn_meta  sn_slots  sn_counters
 *   sn_lpm4_g0  sn_lpm4_g1  sn_lpm6_g0  sn_lpm6_g1  sn_proto  sn_ports
 *   sn_decisions  sn_limits  sn_limit_state  sn_limit_new
 *   sn_src4_nodes  sn_src6_nodes
 * and, only while a program replacement is under way, `prog_new` and
 * `<map>_new` for the objects that replace others.
 *
 * Applying (SPEC.md 4.3): the image is translated into the population of
 * the maps (pop.h: stable ids, only the difference recorded), the
 * difference is written into the standby generation, one write of sn_gen
 * makes it active, and after an RCU grace period the same difference is
 * written into the old generation.  When the image needs other generated
 * constants or bigger maps, sn_dp_update loads a new program on the same
 * maps (new maps only where they must grow), fills its standby
 * generation, and swaps it in with bpf_link_update.
 *
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
#include "pop.h"

#define SN_DEFAULT_PIN_ROOT "/sys/fs/bpf/47sentry"

struct sn_dataplane;

enum sn_xdp_mode_request {
	SN_XDP_MODE_AUTO = 0, /* native where the driver has it, else generic */
	SN_XDP_MODE_NATIVE,
	SN_XDP_MODE_GENERIC,
};

/* What the last apply did (logs, benchmarks). */
struct sn_dp_stats {
	struct sn_pop_stats pop;  /* entries written per map, ids kept */
	size_t entries;           /* all entries written to one generation */
	bool replaced;            /* a new program was swapped in */
	bool unchanged;           /* nothing to write */
	double translate_ms;      /* image -> population difference */
	double write_ms;          /* difference into the standby generation */
	double flip_ms;           /* sn_gen written: the new policy decides */
	double enforced_at;       /* CLOCK_MONOTONIC ms of that moment */
	double sync_ms;           /* the RCU grace period after the flip */
	double level_ms;          /* difference into the old generation */
	double load_ms;           /* a new program loaded (replacement) */
	double total_ms;
};

/*
 * Open the BPF object, size the maps for the image (2x headroom, two
 * generations), set the generated constants as rodata and load it into
 * the kernel.  Nothing is written, attached or pinned yet.
 */
int sn_dp_load(const struct sn_image *image, struct sn_dataplane **out,
	       char *err, size_t errlen);
/*
 * Apply the image atomically (see the top).  Counters of rules whose
 * identity stays, and rate-limit buckets, are kept.  -ESTALE: the image
 * needs other generated constants; -E2BIG: it outgrew the maps (nothing
 * changed in both cases: sn_dp_update replaces the program).
 */
int sn_dp_apply(struct sn_dataplane *dp, const struct sn_image *image,
		char *err, size_t errlen);
/*
 * sn_dp_apply, or when the loaded program cannot take the image (or is
 * not this build's program: adopted state), a new program on the same
 * maps swapped in with bpf_link_update.  A failure changes nothing that
 * enforces.
 */
int sn_dp_update(struct sn_dataplane *dp, const struct sn_image *image,
		 char *err, size_t errlen);
const struct sn_dp_stats *sn_dp_stats(const struct sn_dataplane *dp);
/*
 * sn_dp_update in two halves, so several interfaces share one grace
 * period: sn_dp_stage returns once the new policy enforces (the flip, or
 * the link update); sn_dp_settle waits for the grace period (unless wait
 * is false: the caller waited after every stage) and levels the old
 * generation.  Every other call settles first by itself.
 */
int sn_dp_stage(struct sn_dataplane *dp, const struct sn_image *image,
		char *err, size_t errlen);
int sn_dp_settle(struct sn_dataplane *dp, bool wait);

/* Attach to ifindex with a bpf_link; *mode gets what was obtained. */
int sn_dp_attach(struct sn_dataplane *dp, int ifindex,
		 enum sn_xdp_mode_request req, enum sn_attach_mode *mode,
		 char *err, size_t errlen);
/*
 * Pin program, maps and (if attached) link under dir, creating dir; a
 * later program replacement re-pins what it replaces there.
 */
int sn_dp_pin(struct sn_dataplane *dp, const char *dir, char *err,
	      size_t errlen);
/*
 * Record what is applied in sn_meta (read by sentryctl): the caller's
 * fields; the state fields (state_version, constants, generation, reload
 * count, program tag) are the data plane's own.
 */
int sn_dp_write_meta(struct sn_dataplane *dp, const struct sn_meta *meta);
/* sn_meta as last written. */
const struct sn_meta *sn_dp_meta(const struct sn_dataplane *dp);
/* A map's fd by its pin name (tests, statistics); -ENOENT if unknown. */
int sn_dp_map_fd(const struct sn_dataplane *dp, const char *name);
/* The loaded XDP program's fd (BPF_PROG_TEST_RUN in tests). */
int sn_dp_prog_fd(const struct sn_dataplane *dp);
/* The active generation (0 or 1). */
uint32_t sn_dp_generation(const struct sn_dataplane *dp);
/* Where and how it is attached (adopted state: from the link). */
int sn_dp_ifindex(const struct sn_dataplane *dp);
enum sn_attach_mode sn_dp_mode(const struct sn_dataplane *dp);
/* Adopted state whose program is not this build's: the next
 * sn_dp_update replaces it (on the same maps). */
bool sn_dp_needs_new_program(const struct sn_dataplane *dp);
/* The population as the maps hold it (tests). */
const struct sn_pop *sn_dp_pop(const struct sn_dataplane *dp);
/* Sum per-CPU counters of the applied image's rule ids [0, n) into out[n]. */
int sn_dp_read_counters(const struct sn_dataplane *dp, struct sn_counter *out,
			uint32_t n);
/* Close fds; pinned objects (and a pinned link) stay in the kernel. */
void sn_dp_close(struct sn_dataplane *dp);

/*
 * Adopt the pinned state of dir (a restarted sentryd): the link, program
 * and maps, with the population read back from the active generation;
 * the standby generation is brought level with it first (a daemon killed
 * during an apply may have left it half-written) and a replacement left
 * half-way by a crash is finished or undone.  -ENOENT: nothing pinned;
 * -EPROTO: pinned state of another layout (state_version), which only
 * `sentryctl detach` removes; -ENOLINK: the pinned link holds no
 * interface any more (it was removed): the state enforces nothing.
 */
int sn_dp_adopt(const char *dir, struct sn_dataplane **out, char *err,
		size_t errlen);

/* ---- pinned state, without the daemon ---------------------------------- */

/* Read sn_meta of a pinned interface directory. */
int sn_pinned_read_meta(const char *dir, struct sn_meta *meta);
/* Sum the pinned per-CPU counters of the applied image's rule ids [0, n). */
int sn_pinned_read_counters(const char *dir, struct sn_counter *out,
			    uint32_t n);
/*
 * Detach the pinned link (the program leaves the interface even if another
 * process still holds the link), unpin every object and remove dir.
 * Succeeds on a partially removed directory; -ENOENT if dir is absent.
 */
int sn_pinned_detach(const char *dir, char *err, size_t errlen);

#endif

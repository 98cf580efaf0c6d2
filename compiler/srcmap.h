/*
 * The source-classification structure: how the XDP program finds the
 * source class of an address (SPEC.md 4 "Source lookup").
 *
 * The image builder emits the class prefixes of each family (image.h
 * v4/v6: an address's class is that of its longest matching prefix).  The
 * kernel's LPM trie answers that directly but walks one node per prefix
 * bit it tells apart, each a cache miss in a big trie (BENCHMARKS.md: 107
 * ns at 10 prefixes, 1.7 us at 1M for distinct sources).  The range trie
 * answers the same question with a few small, dense reads: the prefixes
 * are flattened into sorted ranges of one class each, and a multibit trie
 * over the leading address bits narrows an address down to at most 16
 * consecutive ranges, searched by bisection.
 *
 * sn_srcmap_lookup walks the structure exactly as the program does (same
 * entries, same bounds, same level limit), so sn_eval_image checks what
 * the kernel will read.
 */
#ifndef SN_SRCMAP_H
#define SN_SRCMAP_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "image.h"

enum sn_srcmap_kind {
	SN_SRCMAP_AUTO = 0, /* the compiler's choice (SPEC.md 4) */
	SN_SRCMAP_LPM,      /* the kernel LPM trie of the class prefixes */
	SN_SRCMAP_RANGE,    /* the range trie */
};

/* AUTO takes the LPM trie for IPv6 below this many class prefixes. */
#define SN_SRCMAP_V6_LPM_BELOW 32

/*
 * (Re)build img->src_v4 and img->src_v6 from img->v4/v6 with the given
 * kind for both families.  AUTO is what sn_image_build uses; tests force
 * LPM or RANGE on a built image to run both structures against the same
 * policy (then serialise again for a new checksum).  A RANGE that would
 * exceed the entry encoding (2^27 nodes or ranges) falls back to LPM.
 * 0 or -ENOMEM.
 */
int sn_srcmap_build(struct sn_arena *a, struct sn_image *img,
		    enum sn_srcmap_kind kind);

/* The kind a family ended up with. */
static inline enum sn_srcmap_kind sn_srcmap_kind_of(const struct sn_srcmap *m)
{
	return m->n_nodes ? SN_SRCMAP_RANGE : SN_SRCMAP_LPM;
}

/*
 * Class of addr (network order; IPv4: 4 bytes) through the range trie of
 * family (SN_FAMILY_V4/V6), read as the XDP program reads it; -1 when the
 * walk leaves the structure (a corrupt image: the program aborts).
 */
int64_t sn_srcmap_lookup(const struct sn_srcmap *m, int family,
			 const uint8_t *addr);

/*
 * The structures of a parsed image (its class prefixes already checked)
 * are exactly what sn_srcmap_build makes of them in meaning: the ranges
 * are the flattened class prefixes, and every address walks to the leaf
 * holding its range within the level limit, through node entries that
 * are each reached once.  So the range trie and the LPM trie of one image
 * can never disagree.  0, -ENOMEM, or -EINVAL with a reason in err.
 */
int sn_srcmap_check(const struct sn_image *img, char *err, size_t errlen);

#endif

/*
 * The population: what one generation of the classification maps holds,
 * entry by entry, in the ids the maps use (SPEC.md 4.3, 6.2).
 *
 * An image numbers its source classes, L4 classes, limit rules, rules and
 * range-trie blocks afresh on every compile, so one changed line can
 * renumber everything after it.  The maps do not use those numbers: the
 * translation keeps an id for everything that stays and allocates ids
 * only for what is new, so that the difference between two generations
 * is the difference between the two policies, not an artefact of
 * numbering:
 *
 *  - counter slots (sn_decision.rule_id, sn_limit_cfg.rule_id) follow a
 *    rule's identity: its tier, verdict and canonical text (a limit rule:
 *    its limit identity, SPEC.md 2.4); slots 0-3 are the pseudo-rules;
 *  - limit indexes (sn_decision.limit, sn_limits) follow the limit
 *    identity;
 *  - L4 class ids follow the (protocol, port) space: an old and a new
 *    class that cover the most of it in common share an id;
 *  - source class ids follow the decision rows (in slots and stable L4
 *    ids): a new class whose row the maps hold already takes that id;
 *    only when rows changed (a rule's verdict, new L4 columns) are old and
 *    new classes matched over the address space (the flattened ranges of
 *    both families overlaid);
 *  - the range trie is laid out by the loader and patched: the new trie is
 *    walked together with the layout the maps hold, a node of the same
 *    stride, or a leaf block of no more words, at the same place is
 *    rewritten in place word by word, anything else goes to free space
 *    (an allocator of its own over the trie's words) and what it replaces
 *    is freed, so a one-prefix change writes a few words, not every block
 *    after it.
 *
 * Every entry written is compared with what the generation holds and
 * recorded when it differs (with its old value), so the dirty lists are
 * exactly the entries a generation that holds the previous population
 * needs written.  The data plane (dataplane.c) writes them into the
 * standby generation, flips, waits for a grace period and writes them
 * again into the other one; then sn_pop_commit forgets them, or
 * sn_pop_rollback puts the old values back when a write failed.
 *
 * Pure userspace: no BPF here, so the unit tests drive it directly.
 */
#ifndef SN_POP_H
#define SN_POP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../bpf/sentry_abi.h"
#include "../compiler/image.h"

/* The arrays of a generation, in this order everywhere. */
enum sn_pop_array_id {
	SN_PA_PROTO,
	SN_PA_PORTS,
	SN_PA_DECISIONS,
	SN_PA_LIMITS,
	SN_PA_NODES4, /* range-trie words, two per element (sentry_abi.h) */
	SN_PA_NODES6,
	SN_PA_N
};

#define SN_POP_PROTO 256u
#define SN_POP_PORTS (SN_PORT_TABLES * SN_PORTS_PER_TABLE)

/* Entries per generation of each map, and the program's constants. */
struct sn_pop_geom {
	uint32_t l4_stride, port_tables;
	uint32_t cap[SN_PA_N];   /* entries per generation */
	uint32_t cap_lpm[2];     /* LPM entries per generation, [0] IPv4 */
	uint32_t cap_slots;      /* counter slots (not per generation) */
};

struct sn_pop_array {
	unsigned char *v; /* cap * esz bytes: what the generation holds */
	uint32_t cap, esz;
	uint64_t *dirty_bits;
	uint32_t *dirty;  /* indexes written since the last commit */
	unsigned char *undo; /* their values before, esz each */
	size_t n_dirty, cap_dirty;
};

/* An LPM entry: prefix and the (stable) source class. */
struct sn_pop_lpm_ent {
	uint8_t addr[16];
	uint8_t len;
	uint32_t cls;
};

enum { SN_LPM_SET = 1, SN_LPM_DEL = 2 };

struct sn_pop_lpm_op {
	struct sn_pop_lpm_ent e; /* SET: the new value; DEL: the key */
	uint8_t op;
	bool had;                /* the key was there before, with old_cls */
	uint32_t old_cls;
};

struct sn_pop_lpm {
	struct sn_pop_lpm_ent *v; /* sorted by address, then length */
	size_t n, cap;
	struct sn_pop_lpm_op *ops;
	size_t n_ops, cap_ops;
};

struct sn_pop_slot_op {
	uint32_t slot;
	struct sn_slot old;
};

/* What the last translation did, for logs and benchmarks. */
struct sn_pop_stats {
	size_t written[SN_PA_N]; /* dirty entries per array */
	size_t lpm_ops[2];
	size_t slots_new, slots_freed;
	size_t classes, classes_kept, l4_kept, limits;
	bool overlay;           /* classes matched over the address space */
	uint32_t blocks_new[2], blocks_kept[2]; /* range-trie blocks */
	bool trie_compacted[2]; /* free space was fragmented: laid out anew */
	double translate_ms;
};

struct sn_pop_trie;   /* pop.c: free space of a family's range-trie layout */
struct sn_pop_prev;   /* pop.c: what a translation replaced, until commit */

struct sn_pop {
	struct sn_pop_geom g;
	struct sn_pop_array a[SN_PA_N];
	struct sn_pop_lpm lpm[2];
	/* counter slots: mirror of sn_slots */
	struct sn_slot *slots;
	struct sn_pop_slot_op *slot_ops; /* changed since the last commit */
	size_t n_slot_ops, cap_slot_ops;
	uint32_t *slots_zero;  /* newly taken: counters to zero first */
	size_t n_zero, cap_zero;
	/* the applied image's rule ids -> slots (reading counters) */
	uint32_t *rule_slot;
	uint32_t n_rules;
	/* ids in use by the current population */
	uint8_t *class_used;  /* cap[SN_PA_DECISIONS] / l4_stride */
	uint8_t *l4_used;     /* l4_stride */
	uint8_t *limit_used;  /* cap[SN_PA_LIMITS] */
	uint64_t *limit_ident; /* identity per limit index in use */
	struct sn_pop_trie *trie[2];
	struct sn_pop_prev *prev;
	/* set once the population reflects an image (or pinned state) */
	bool valid;
	struct sn_pop_stats stats;
};

/*
 * A population of the given geometry, every array zero (what new BPF
 * maps hold) and the LPM tries empty.  0 or -ENOMEM.
 */
int sn_pop_init(struct sn_pop *p, const struct sn_pop_geom *g);
void sn_pop_free(struct sn_pop *p);

/*
 * A population for a new program (other constants, bigger maps) that
 * keeps some of src's maps: arrays with new_map[i] and LPM tries with
 * new_lpm[f] start as a new map does (zero, empty), the others keep src's
 * content (their capacity must be the same).  Slots are kept (the
 * counters move with them).  The derived state is rebuilt from the
 * content; when that is inconsistent with the new geometry only the
 * stable-id heuristics start over.  src is not changed.  0 or -ENOMEM.
 */
int sn_pop_clone(struct sn_pop *dst, const struct sn_pop *src,
		 const struct sn_pop_geom *g, const bool new_map[SN_PA_N],
		 const bool new_lpm[2]);

/*
 * Capacities for an image with headroom (2x, at least 64): what a new
 * program is loaded with.  0, or -E2BIG when something cannot be sized.
 */
int sn_pop_geom_for(const struct sn_image *img, struct sn_pop_geom *g);

/*
 * Translate img into the population (see the top of this file) and record
 * the dirty entries.  -ESTALE: the image needs other generated constants;
 * -E2BIG: it does not fit the capacities (nothing changed in both cases);
 * -EINVAL: a malformed image; -ENOMEM.  err gets a one-line reason.
 */
int sn_pop_translate(struct sn_pop *p, const struct sn_image *img,
		     char *err, size_t errlen);

/* Forget the dirty lists: both generations now hold the population. */
void sn_pop_commit(struct sn_pop *p);
/*
 * Put the old values back (a write failed): the dirty lists stay, now
 * describing what to write to restore a generation, until
 * sn_pop_commit.  Slots, rule ids and derived indexes are restored too.
 */
void sn_pop_rollback(struct sn_pop *p);

/*
 * Rebuild the derived state (ids in use, the tries' free space, rule
 * slots) from the arrays, LPM tries and slots as they are: after
 * reading pinned maps back.  -EINVAL when the content is inconsistent
 * (err says how), -ENOMEM.
 */
int sn_pop_derive(struct sn_pop *p, char *err, size_t errlen);

/*
 * Words of the family's range trie (0 IPv4, 1 IPv6) in use in each
 * generation, two per map element; -1 while the layout is not known
 * (adopted state before the first translation).
 */
int64_t sn_pop_trie_words_used(const struct sn_pop *p, int family);

/*
 * Classify like the XDP program over the population (tests): the decision
 * for a source address (network order) of family, an L4 protocol and a
 * port (-1: none, a non-first fragment).  Returns 0 and *out, or -1 when
 * the walk fails (a loader bug: the program would abort).
 */
int sn_pop_classify(const struct sn_pop *p, int family, const uint8_t *addr,
		    int proto, int port, struct sn_decision *out);

/*
 * The refill arithmetic of a token bucket of rate_fp tokens/s and
 * burst_fp tokens (32.32) into c (struct sn_limit_cfg says why).
 */
void sn_token_math(uint64_t rate_fp, uint64_t burst_fp,
		   struct sn_limit_cfg *c);

/* Counter identity of rule `id` of img (occurrence k of equal texts). */
uint64_t sn_pop_rule_identity(const struct sn_image *img, uint32_t id,
			      uint32_t k);

#endif

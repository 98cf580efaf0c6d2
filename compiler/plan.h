/*
 * `sentry-compile --plan OLD NEW`: what changes when NEW replaces OLD.
 *
 * Two parts.  Rules are matched by identity (their canonical text without
 * the verdict word, plus the tier), so a flipped verdict is one changed
 * rule rather than one removed and one added; with both policies at hand
 * the expanded source prefixes and port ranges of kept rules are compared
 * too.  The address-space summary reads only the two compiled images (so
 * it also works against the image a host runs): it counts, per family, L4
 * piece and direction, how many source addresses change their verdict.
 */
#ifndef SN_PLAN_H
#define SN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "image.h"
#include "policy.h"

/*
 * A number of addresses.  All of IPv6 is 2^128, one more than
 * unsigned __int128 holds, so the value is hi * 2^128 + lo (hi is 0 or 1:
 * counts never exceed one family's space).
 */
struct sn_count {
	unsigned __int128 lo;
	unsigned hi;
};

/* Addresses in a prefix of length len out of maxlen (32 or 128) bits. */
struct sn_count sn_count_prefix(unsigned len, unsigned maxlen);
void sn_count_add(struct sn_count *a, struct sn_count b);
/* a -= b; b must not exceed a. */
void sn_count_sub(struct sn_count *a, struct sn_count b);
bool sn_count_is_zero(struct sn_count c);
bool sn_count_eq(struct sn_count a, struct sn_count b);
/* Decimal; with commas as thousands separators when sep. */
#define SN_COUNT_STRLEN 64
void sn_count_format(struct sn_count c, bool sep, char buf[SN_COUNT_STRLEN]);

/* One line of the address-space summary. */
struct sn_space_line {
	uint8_t family;  /* SN_FAMILY_V4 / _V6 */
	uint8_t verdict; /* the new verdict: ALLOW = newly allows */
	struct sn_count count;
	char l4[48]; /* "any protocol", "tcp", "tcp/443", "tcp/1-100",
			"tcp fragments", "icmp", "proto 47", "other protocols" */
};

/*
 * The summary between two images, deterministic order (IPv4 first, newly
 * allowed before newly blocked, L4 pieces by protocol and port).  *out is
 * malloc'd.  0, -ENOMEM, or -EINVAL for an image without its /0 roots.
 */
int sn_plan_space(const struct sn_image *old, const struct sn_image *new_,
		  struct sn_space_line **out, size_t *n);

/* One side of a plan: a policy (with its image) or an image alone. */
struct sn_plan_side {
	const char *name;             /* for the header */
	const struct sn_policy *policy; /* NULL when only an image is known */
	const struct sn_image *image;
};

enum sn_rule_change_kind {
	SN_CHANGE_ADDED,
	SN_CHANGE_REMOVED,
	SN_CHANGE_CHANGED, /* kept, with another verdict and/or entries */
};

struct sn_rule_change {
	enum sn_rule_change_kind kind;
	const struct sn_image_rule *old_rule, *new_rule; /* NULL if absent */
	bool verdict_changed;
	const struct sn_src **src_added, **src_removed;
	size_t n_src_added, n_src_removed;
	const struct sn_port_range **port_added, **port_removed;
	size_t n_port_added, n_port_removed;
};

struct sn_plan {
	bool entries_compared; /* both sides are policies */
	struct sn_rule_change *changes;
	size_t n_changes;
	size_t n_added, n_removed, n_verdict, n_entries;
	uint8_t old_default[2], new_default[2]; /* [0] IPv4, [1] IPv6 */
	struct sn_space_line *space; /* malloc'd: sn_plan_free */
	size_t n_space;
};

/* Compare; everything but plan->space lives in arena.  0 or -errno. */
int sn_plan_build(const struct sn_plan_side *old, const struct sn_plan_side *new_,
		  struct sn_arena *arena, struct sn_plan *plan);
void sn_plan_free(struct sn_plan *plan);
bool sn_plan_has_changes(const struct sn_plan *plan);
/* Text for people; at most max_entries prefixes/ports listed per change. */
void sn_plan_print_text(FILE *out, const struct sn_plan *plan,
			const struct sn_plan_side *old,
			const struct sn_plan_side *new_, size_t max_entries);
void sn_plan_print_json(FILE *out, const struct sn_plan *plan,
			const struct sn_plan_side *old,
			const struct sn_plan_side *new_);

#endif

/*
 * List files: one prefix or address per line, '#' comments and blank lines
 * allowed (the format of shared/data/country-ip-blocks/ipv4/ files).
 * Hand-parsed, not flex: they hold up to millions of lines and must load in
 * well under a second, so the reader is one pass with no per-line
 * allocation.
 */
#ifndef SN_LISTS_H
#define SN_LISTS_H

#include <stdbool.h>
#include <stddef.h>

#include "compile.h"
#include "policy.h"

/*
 * Parse a loaded list file.  Every entry carries its location in the list
 * file.  Bad lines are reported into ctx->diags located in the list file
 * (E007 malformed, E003 host bits, E016 IPv4-mapped) and skipped;
 * *had_errors tells the caller the list is incomplete.  Returns 0 or
 * -ENOMEM.  *out is allocated in ctx->arena.
 */
int sn_list_parse(struct sn_ctx *ctx, const struct sn_source *src,
		  struct sn_src **out, size_t *n_out, bool *had_errors);

/*
 * Validate prefix text written at loc and report what is wrong with it:
 * E002 (policy) or E007 (list file) for text that is no address, E003 host
 * bits (hint: the masked prefix), E016 IPv4-mapped (hint: the IPv4 form).
 * Returns true and sets *out only for a usable prefix.
 */
bool sn_prefix_check(struct sn_diags *d, const char *text, size_t n,
		     struct sn_loc loc, bool in_list, struct sn_prefix *out);

/* Printable, bounded copy of s[0..n) for messages (escapes, "..."). */
void sn_excerpt(char *buf, size_t size, const char *s, size_t n);

#endif

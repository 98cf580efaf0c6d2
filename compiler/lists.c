#include "lists.h"

#include <errno.h>
#include <string.h>

#include "addr.h"

#define EXCERPT_MAX 60

void sn_excerpt(char *buf, size_t size, const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 8 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == EXCERPT_MAX) {
			memcpy(buf + k, "...", 3);
			k += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f)
			k += (size_t)snprintf(buf + k, size - k, "\\x%02X", c);
		else
			buf[k++] = (char)c;
	}
	buf[k] = '\0';
}

bool sn_prefix_check(struct sn_diags *d, const char *text, size_t n,
		     struct sn_loc loc, bool in_list, struct sn_prefix *out)
{
	char shown[EXCERPT_MAX * 4 + 16], fix[SN_PREFIX_STRLEN];
	const char *bad_code = in_list ? "E007" : "E002";
	struct sn_diag *g;
	int st = sn_prefix_parse(text, n, out);

	if (st == SN_ADDR_EINVAL || st == SN_ADDR_EPLEN) {
		sn_excerpt(shown, sizeof(shown), text, n);
		if (st == SN_ADDR_EPLEN) {
			g = sn_diag_add(d, SN_SEV_ERROR, bad_code, loc,
					"invalid prefix length in %s", shown);
			sn_diag_hint(d, g, "a prefix length is 0-32 for IPv4, "
					   "0-128 for IPv6, in decimal");
		} else if (in_list) {
			sn_diag_add(d, SN_SEV_ERROR, bad_code, loc,
				    "malformed list entry '%s': not an IPv4 or "
				    "IPv6 address or prefix", shown);
		} else {
			sn_diag_add(d, SN_SEV_ERROR, bad_code, loc,
				    "invalid address %s", shown);
		}
		return false;
	}
	if (st == SN_ADDR_EHOSTBITS) {
		sn_excerpt(shown, sizeof(shown), text, n);
		sn_prefix_format(out, fix, sizeof(fix));
		g = sn_diag_add(d, SN_SEV_ERROR, "E003", loc,
				"host bits set in %s", shown);
		sn_diag_hint(d, g, "did you mean %s?", fix);
		return false;
	}
	if (sn_prefix_is_v4mapped(out)) {
		struct sn_prefix v4;

		sn_excerpt(shown, sizeof(shown), text, n);
		sn_prefix_unmap(out, &v4);
		sn_prefix_format(&v4, fix, sizeof(fix));
		g = sn_diag_add(d, SN_SEV_ERROR, "E016", loc,
				"IPv4-mapped IPv6 %s %s never matches: the data "
				"plane drops IPv4-mapped sources",
				out->len == 128 ? "address" : "prefix", shown);
		sn_diag_hint(d, g, "write the IPv4 prefix %s", fix);
		return false;
	}
	return true;
}

static inline bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

int sn_list_parse(struct sn_ctx *ctx, const struct sn_source *src,
		  struct sn_src **out, size_t *n_out, bool *had_errors)
{
	const char *t = src->text, *end = src->text + src->len;
	size_t lines = 1, n = 0;
	uint32_t line = 0;
	struct sn_src *v;

	*had_errors = false;
	/* One allocation sized by the line count: an upper bound on the
	 * entries, and memchr-counting is far cheaper than regrowing. */
	for (const char *p = t; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		lines++;
	v = sn_arena_calloc(&ctx->arena, lines, sizeof(*v));
	if (!v)
		return -ENOMEM;

	for (const char *bol = t; bol < end;) {
		const char *nl = memchr(bol, '\n', (size_t)(end - bol));
		const char *eol = nl ? nl : end;
		const char *tok, *q, *r;
		struct sn_loc loc;

		line++;
		q = bol;
		while (q < eol && is_blank(*q))
			q++;
		tok = q;
		while (q < eol && !is_blank(*q) && *q != '#')
			q++;
		r = q;
		while (r < eol && is_blank(*r))
			r++;
		loc.file = src->path;
		loc.line = line;
		loc.col = (uint32_t)(tok - bol) + 1;
		loc.len = (uint32_t)(q - tok);
		bol = nl ? nl + 1 : end;
		if (q == tok)
			continue; /* blank or comment-only line */
		if (r < eol && *r != '#') {
			char shown[EXCERPT_MAX * 4 + 16];
			struct sn_loc rl = loc;

			sn_excerpt(shown, sizeof(shown), r, (size_t)(eol - r));
			rl.col = loc.col + (uint32_t)(r - tok);
			rl.len = (uint32_t)(eol - r);
			sn_diag_add(&ctx->diags, SN_SEV_ERROR, "E007", rl,
				    "malformed list line: unexpected '%s' after "
				    "the prefix (one prefix per line)", shown);
			*had_errors = true;
			continue;
		}
		if (!sn_prefix_check(&ctx->diags, tok, (size_t)(q - tok), loc,
				     true, &v[n].prefix)) {
			*had_errors = true;
			continue;
		}
		v[n].loc = loc;
		n++;
	}
	*out = v;
	*n_out = n;
	return 0;
}

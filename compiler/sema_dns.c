/*
 * DNS names of `dns block` (SPEC.md 2.6): host-name syntax (RFC 1035
 * 2.3.1 as relaxed by RFC 1123: labels of letters, digits and '-', 1 to 63
 * long, not starting or ending with '-'; at most 253 characters), an
 * optional leading "*." wildcard label, and one optional trailing dot.
 * Names are compared case-insensitively, so they are stored in lower
 * case, without the trailing dot and with the wildcard as a flag.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lists.h"
#include "sema_lang.h"

static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-';
}

/*
 * The columns of name[off..off+len) inside the string token.  Exact when
 * the string has no escapes (names never need one: '"' and '\' are not
 * allowed in them); otherwise the whole string.
 */
static struct sn_loc part_loc(const struct sn_ast_item *it, size_t off,
			      size_t len, bool exact)
{
	struct sn_loc l = it->loc;

	if (!exact)
		return l;
	l.col += 1 + (uint32_t)off;
	l.len = len ? (uint32_t)len : 1;
	return l;
}

static bool bad_name(struct sn_diags *d, const struct sn_ast_item *it,
		     struct sn_loc loc, const char *why, const char *hint)
{
	char buf[96];
	struct sn_diag *g;

	sn_excerpt(buf, sizeof(buf), it->text, strlen(it->text));
	g = sn_diag_add(d, SN_SEV_ERROR, "E044", loc,
			"invalid DNS name \"%s\": %s", buf, why);
	if (hint)
		sn_diag_hint(d, g, "%s", hint);
	return false;
}

bool sn_dns_name_check(struct sn_diags *d, struct sn_arena *a,
		       const struct sn_ast_item *it, struct sn_dns_name *out,
		       bool *oom)
{
	const char *s = it->text;
	size_t n = strlen(s), start = 0;
	bool exact = !strpbrk(s, "\"\\");
	bool wildcard = false;
	char *low;

	/* One trailing dot is the fully qualified form of the same name. */
	if (n > 1 && s[n - 1] == '.' && s[n - 2] != '.')
		n--;
	if (n == 0 || (n == 1 && s[0] == '.'))
		return bad_name(d, it, it->loc, "empty name",
				"write a domain, e.g. \"ads.example.com\"");
	if (n >= 2 && s[0] == '*' && s[1] == '.') {
		wildcard = true;
		start = 2;
	} else if (n == 1 && s[0] == '*') {
		return bad_name(d, it, part_loc(it, 0, 1, exact),
				"a wildcard needs a domain",
				"\"*.example.com\" blocks every subdomain of "
				"example.com");
	}
	if (n > SN_DNS_NAME_MAX)
		return bad_name(d, it, it->loc, "longer than 253 characters",
				NULL);
	for (size_t i = start; i <= n;) {
		size_t j = i;

		while (j < n && s[j] != '.')
			j++;
		if (j == i)
			return bad_name(d, it, part_loc(it, i, 1, exact),
					"empty label",
					i == start && start ? "write the "
					"domain after \"*.\"" : "labels are "
					"separated by single dots");
		if (j - i > SN_DNS_LABEL_MAX)
			return bad_name(d, it, part_loc(it, i, j - i, exact),
					"label longer than 63 characters",
					NULL);
		for (size_t k = i; k < j; k++) {
			unsigned char c = (unsigned char)s[k];

			if (c == '*')
				return bad_name(d, it,
					part_loc(it, k, 1, exact),
					"'*' is only allowed as a whole "
					"leading label (\"*.example.com\")",
					NULL);
			if (c >= 0x80)
				return bad_name(d, it,
					part_loc(it, k, 1, exact),
					"non-ASCII character",
					"write internationalised names in "
					"their ASCII form (xn--...)");
			if (!is_ldh(c))
				return bad_name(d, it,
					part_loc(it, k, 1, exact),
					"labels hold only letters, digits "
					"and '-'", NULL);
		}
		if (s[i] == '-' || s[j - 1] == '-')
			return bad_name(d, it, part_loc(it, i, j - i, exact),
					"a label cannot start or end with '-'",
					NULL);
		i = j + 1;
	}
	low = sn_arena_strndup(a, s + start, n - start);
	if (!low) {
		*oom = true;
		return false;
	}
	for (char *p = low; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	out->name = low;
	out->wildcard = wildcard;
	out->loc = it->loc;
	return true;
}

struct dn_ref {
	const struct sn_dns_name *v;
	size_t idx;
};

static int dn_cmp(const void *pa, const void *pb)
{
	const struct dn_ref *a = pa, *b = pb;
	int c = strcmp(a->v->name, b->v->name);

	if (c)
		return c;
	if (a->v->wildcard != b->v->wildcard)
		return a->v->wildcard ? 1 : -1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Sorting keeps this O(n log n) for blocklists of many thousand names. */
int sn_dns_names_dedupe(struct sn_diags *d, struct sn_dns_name *v, size_t *n)
{
	struct dn_ref *r;
	bool *drop;
	size_t k = 0;

	if (*n < 2)
		return 0;
	r = calloc(*n, sizeof(*r));
	drop = calloc(*n, sizeof(*drop));
	if (!r || !drop) {
		free(r);
		free(drop);
		return -ENOMEM;
	}
	for (size_t i = 0; i < *n; i++)
		r[i] = (struct dn_ref){ &v[i], i };
	qsort(r, *n, sizeof(*r), dn_cmp);
	for (size_t i = 1; i < *n; i++) {
		size_t first = i - 1;

		while (first > 0 && drop[r[first].idx])
			first--;
		if (strcmp(r[i].v->name, r[first].v->name) ||
		    r[i].v->wildcard != r[first].v->wildcard)
			continue;
		struct sn_diag *g = sn_diag_add(d, SN_SEV_WARNING, "W045",
			r[i].v->loc, "DNS name %s%s is already blocked",
			r[i].v->wildcard ? "*." : "", r[i].v->name);

		sn_diag_note(d, g, r[first].v->loc, "first given here");
		drop[r[i].idx] = true;
	}
	for (size_t i = 0; i < *n; i++)
		if (!drop[i])
			v[k++] = v[i];
	*n = k;
	free(r);
	free(drop);
	return 0;
}

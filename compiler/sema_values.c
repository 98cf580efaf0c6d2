/*
 * Values with units: rates ("100/s"), durations ("10m"), prefix lengths
 * ("/24") and bounded numbers.  The scanner hands them over as text with
 * the leading number already read (saturated at UINT32_MAX, so a huge
 * digit run is simply too big); units and ranges are judged here so each
 * mistake gets its own code and a hint at the place it was written.
 */
#include <stdio.h>
#include <string.h>

#include "lists.h"
#include "sema_lang.h"

/* Number text for messages, bounded (a 10^6-digit value stays short). */
static const char *shown(const struct sn_ast_num *v, char *buf, size_t n)
{
	sn_excerpt(buf, n, v->text, strlen(v->text));
	return buf;
}

/* The unit after the leading digits (and after a '/' for rates). */
static const char *unit_of(const char *text)
{
	text += strspn(text, "0123456789");
	return *text == '/' ? text + 1 : text;
}

bool sn_check_rate(struct sn_diags *d, const struct sn_ast_num *v,
		   const char *what, struct sn_rate *out)
{
	const char *unit = unit_of(v->text);
	char buf[96];
	struct sn_diag *g;

	if (strcmp(unit, "s") && strcmp(unit, "m")) {
		g = sn_diag_add(d, SN_SEV_ERROR, "E040", v->loc,
				"%s %s: unknown unit '/%s'", what,
				shown(v, buf, sizeof(buf)), unit);
		sn_diag_hint(d, g, "rates are per second or per minute: "
				   "write e.g. %u/s or %u/m",
			     v->value == UINT32_MAX ? 100 : v->value,
			     v->value == UINT32_MAX ? 100 : v->value);
		return false;
	}
	out->count = v->value;
	out->period = unit[0] == 's' ? 1 : 60;
	if (v->value == 0) {
		g = sn_diag_add(d, SN_SEV_ERROR, "E040", v->loc,
				"%s %s is zero", what,
				shown(v, buf, sizeof(buf)));
		sn_diag_hint(d, g, "the smallest rate is 1/m");
		return false;
	}
	if (v->value == UINT32_MAX ||
	    v->value / out->period > SN_RATE_MAX_PER_S ||
	    (v->value / out->period == SN_RATE_MAX_PER_S &&
	     v->value % out->period)) {
		sn_diag_add(d, SN_SEV_ERROR, "E040", v->loc,
			    "%s %s is too high (at most %u/s)", what,
			    shown(v, buf, sizeof(buf)), SN_RATE_MAX_PER_S);
		return false;
	}
	return true;
}

bool sn_check_duration(struct sn_diags *d, const struct sn_ast_num *v,
		       const char *what, uint32_t *secs)
{
	static const struct {
		const char *unit;
		uint32_t secs;
	} units[] = { { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 } };
	const char *unit = unit_of(v->text);
	char buf[96];
	struct sn_diag *g;

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit))
			continue;
		if (v->value == 0 || v->value > SN_DURATION_MAX / units[i].secs) {
			g = sn_diag_add(d, SN_SEV_ERROR, "E043", v->loc,
					"%s %s out of range (1s to 7d)", what,
					shown(v, buf, sizeof(buf)));
			if (v->value == 0)
				sn_diag_hint(d, g, "the shortest duration is 1s");
			return false;
		}
		*secs = v->value * units[i].secs;
		return true;
	}
	g = sn_diag_add(d, SN_SEV_ERROR, "E043", v->loc,
			"%s %s: unknown unit '%s'", what,
			shown(v, buf, sizeof(buf)), unit);
	sn_diag_hint(d, g, "durations are N followed by s, m, h or d, e.g. "
			   "30s, 10m, 1h, 1d");
	return false;
}

bool sn_check_plen(struct sn_diags *d, const struct sn_ast_num *v,
		   int family, unsigned min, const char *what, uint8_t *out)
{
	unsigned max = family == SN_FAMILY_V4 ? 32 : 128;
	char buf[96];

	if (v->value < min || v->value > max) {
		struct sn_diag *g = sn_diag_add(d, SN_SEV_ERROR, "E042", v->loc,
			"%s %s out of range for IPv%d (/%u to /%u)", what,
			shown(v, buf, sizeof(buf)), family, min, max);

		if (v->value < min)
			sn_diag_hint(d, g, "a shorter prefix than /%u would "
				     "treat too many addresses as one", min);
		return false;
	}
	*out = (uint8_t)v->value;
	return true;
}

bool sn_check_count(struct sn_diags *d, const struct sn_ast_num *v,
		    uint32_t lo, uint32_t hi, const char *what, uint32_t *out)
{
	char buf[96];

	if (v->value < lo || v->value > hi) {
		sn_diag_add(d, SN_SEV_ERROR, "E041", v->loc,
			    "%s %s out of range (%u to %u)", what,
			    shown(v, buf, sizeof(buf)), lo, hi);
		return false;
	}
	*out = v->value;
	return true;
}

bool sn_check_entropy(struct sn_diags *d, const struct sn_ast_num *v,
		      uint32_t *milli)
{
	const char *p = v->text;
	uint64_t whole = 0, frac = 0;
	unsigned decimals = 0;
	char buf[96];
	bool ok = *p >= '0' && *p <= '9';

	for (; ok && *p >= '0' && *p <= '9'; p++)
		whole = whole > 9 ? whole : whole * 10 + (uint64_t)(*p - '0');
	if (ok && *p == '.') {
		p++;
		ok = *p >= '0' && *p <= '9';
		for (; ok && *p >= '0' && *p <= '9'; p++, decimals++)
			if (decimals < 3)
				frac = frac * 10 + (uint64_t)(*p - '0');
	}
	if (!ok || *p || decimals > 3) {
		struct sn_diag *g = sn_diag_add(d, SN_SEV_ERROR, "E041", v->loc,
			"label-entropy %s is not a decimal with at most 3 "
			"decimals", shown(v, buf, sizeof(buf)));

		sn_diag_hint(d, g, "bits per character, e.g. 3.5");
		return false;
	}
	while (decimals < 3) {
		frac *= 10;
		decimals++;
	}
	if (whole * 1000 + frac == 0 || whole * 1000 + frac > 8000) {
		struct sn_diag *g = sn_diag_add(d, SN_SEV_ERROR, "E041", v->loc,
			"label-entropy %s out of range (more than 0, at most "
			"8.0)", shown(v, buf, sizeof(buf)));

		sn_diag_hint(d, g, "a byte carries at most 8 bits; random "
				   "base32/base64 labels score about 4 to 6");
		return false;
	}
	*milli = (uint32_t)(whole * 1000 + frac);
	return true;
}

void sn_format_duration(uint32_t secs, char *buf, size_t n)
{
	if (secs && secs % 86400 == 0)
		snprintf(buf, n, "%ud", secs / 86400);
	else if (secs && secs % 3600 == 0)
		snprintf(buf, n, "%uh", secs / 3600);
	else if (secs && secs % 60 == 0)
		snprintf(buf, n, "%um", secs / 60);
	else
		snprintf(buf, n, "%us", secs);
}

void sn_format_rate(const struct sn_rate *r, char *buf, size_t n)
{
	snprintf(buf, n, "%u/%s", r->count, r->period == 60 ? "m" : "s");
}

bool sn_rate_equal(const struct sn_rate *a, const struct sn_rate *b)
{
	return (uint64_t)a->count * b->period == (uint64_t)b->count * a->period;
}

uint64_t sn_fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

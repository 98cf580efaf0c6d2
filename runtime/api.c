/* REST handlers of sentryd (api.h, SPEC.md 6.5), JSON by jansson. */
#include "api.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../compiler/jsonw.h"
#include "dashboard_html.h" /* generated from runtime/dashboard.html */
#include "metrics.h"

/*
 * A JSON string of s.  jansson takes UTF-8 only, and paths and rule texts
 * are bytes: an invalid sequence becomes U+FFFD instead of losing the
 * whole value.
 */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	size_t n = strlen(s);
	char *buf = malloc(n * 3 + 1), *o = buf;
	if (!buf)
		return json_null();
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t k = *p < 0x80 ? 1 : sn_utf8_seq(p);
		if (k) {
			memcpy(o, p, k);
			o += k;
			p += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			p++;
		}
	}
	*o = '\0';
	j = json_string(buf);
	free(buf);
	return j ? j : json_null();
}

static json_t *jtime(uint64_t ns)
{
	char buf[64];
	sn_rt_time(ns, buf, sizeof(buf));
	return ns ? json_string(buf) : json_null();
}

static void set_json(struct sn_api_resp *r, unsigned status, json_t *doc)
{
	r->status = status;
	r->content_type = SN_API_JSON;
	r->body = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
				  JSON_REAL_PRECISION(10)) :
			NULL;
	json_decref(doc);
	if (!r->body) {
		sn_api_error(r, 500, "out of memory");
		return;
	}
	/* A trailing newline: friendlier to curl and shell tools. */
	size_t n = strlen(r->body);
	char *b = realloc(r->body, n + 2);
	if (b) {
		b[n] = '\n';
		b[n + 1] = '\0';
		r->body = b;
		n++;
	}
	r->len = n;
}

void sn_api_error(struct sn_api_resp *r, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_api_resp_free(r);
	r->status = status;
	r->content_type = SN_API_JSON;
	/* Built by hand: it must work when memory does not. */
	char *body = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&body, &len);
	if (m) {
		fprintf(m, "{\"error\":{\"code\":%u,\"message\":", status);
		sn_json_str(m, msg);
		fputs("}}\n", m);
		if (fclose(m) == 0) {
			r->body = body;
			r->len = len;
			return;
		}
		free(body);
	}
	static const char oom[] = "{\"error\":{\"code\":500,\"message\":\"out of memory\"}}\n";
	r->body = (char *)oom;
	r->len = sizeof(oom) - 1;
	r->body_static = true;
}

void sn_api_resp_free(struct sn_api_resp *r)
{
	if (!r->body_static)
		free(r->body);
	r->body = NULL;
	r->len = 0;
	r->body_static = false;
}

/* Samples of every interface; free with free_samples. */
static struct sn_rt_sample *take_samples(const struct sn_rt *rt)
{
	struct sn_rt_sample *s = calloc((size_t)rt->n_ifaces + 1, sizeof(*s));
	for (int i = 0; s && i < rt->n_ifaces; i++)
		sn_rt_sample(rt, i, &s[i]);
	return s;
}

static void free_samples(const struct sn_rt *rt, struct sn_rt_sample *s)
{
	for (int i = 0; s && i < rt->n_ifaces; i++)
		sn_rt_sample_free(&s[i]);
	free(s);
}

static json_t *reload_json(const struct sn_rt_reload *e)
{
	if (!e)
		return json_null();
	return json_pack("{s:o, s:s, s:s, s:f, s:I, s:I, s:o, s:o}",
			 "at", jtime(e->at_ns), "trigger", e->trigger,
			 "result", sn_rt_result_name(e->result),
			 "duration_seconds", e->duration_s,
			 "entries", (json_int_t)e->entries,
			 "rules", (json_int_t)e->rules,
			 "checksum", e->checksum[0] ? jstr(e->checksum) : json_null(),
			 "error", jstr(e->error));
}

static const char *mode_name(uint32_t m)
{
	return m == SN_ATTACH_NATIVE ? "native" :
	       m == SN_ATTACH_GENERIC ? "generic" : "unknown";
}

/* ---- GET /v1/status ------------------------------------------------------- */

static void get_status(struct sn_rt *rt, const struct sn_api_req *q,
		       struct sn_api_resp *r)
{
	(void)q;
	struct sn_rt_sample *s = take_samples(rt);
	if (!s) {
		sn_api_error(r, 500, "out of memory");
		return;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull +
			  (uint64_t)now.tv_nsec;
	json_t *ifs = json_array();
	for (int i = 0; i < rt->n_ifaces; i++) {
		char hex[65] = "";
		if (s[i].ok)
			sn_checksum_hex(s[i].meta.checksum, hex);
		json_array_append_new(ifs, json_pack(
			"{s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o}",
			"name", jstr(rt->ifaces[i].name), "ok", s[i].ok,
			"ifindex", s[i].ok ? json_integer(s[i].meta.ifindex) : json_null(),
			"mode", s[i].ok ? json_string(mode_name(s[i].meta.attach_mode)) :
					  json_null(),
			"checksum", s[i].ok ? json_string(hex) : json_null(),
			"generation", s[i].ok ? json_integer((json_int_t)s[i].meta.reloads) :
						json_null(),
			"active_generation", s[i].ok ? json_integer(s[i].active_gen) :
						       json_null(),
			"error", s[i].ok ? json_null() : jstr(s[i].err)));
	}
	json_t *doc = json_pack(
		"{s:I, s:s, s:o, s:f, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:I, s:I}, s:o, s:b}",
		"pid", (json_int_t)rt->pid, "version", SN_VERSION,
		"started_at", jtime(rt->started_ns),
		"uptime_seconds", (double)(now_ns - rt->started_ns) / 1e9,
		"policy_path", jstr(rt->policy_path),
		"pin_root", jstr(rt->pin_root), "state_dir", jstr(rt->state_dir),
		"checksum", rt->policy.checksum[0] ? jstr(rt->policy.checksum) :
						     json_null(),
		"loaded_at", jtime(rt->policy.loaded_at_ns),
		"interfaces", ifs,
		"reloads", "success", (json_int_t)rt->reloads_ok, "failure",
		(json_int_t)rt->reloads_failed,
		"last_reload", reload_json(sn_rt_recent(rt, 0)),
		"reload_failing", rt->failure.at_ns && rt->failure.current);
	free_samples(rt, s);
	set_json(r, 200, doc);
}

/* ---- GET /v1/rules -------------------------------------------------------- */

struct ranked {
	uint32_t id;
	uint64_t packets, bytes;
};

static int by_packets(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->packets != y->packets)
		return x->packets < y->packets ? 1 : -1;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* A query argument as a whole number in [0, max]; -1 absent, -2 bad. */
static long num_arg(const struct sn_api_req *q, const char *name, long max)
{
	const char *v = q->arg ? q->arg(q->arg_ctx, name) : NULL;
	if (!v)
		return -1;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < 0 || n > max || v[0] == '+' ||
	    v[0] == ' ')
		return -2;
	return n;
}

static void get_rules(struct sn_rt *rt, const struct sn_api_req *q,
		      struct sn_api_resp *r)
{
	long top = num_arg(q, "top", 1000000);
	if (top == -2) {
		sn_api_error(r, 400, "'top' must be a whole number 0..1000000");
		return;
	}
	uint32_t n = rt->policy.n_rules;
	struct sn_rt_sample *s = take_samples(rt);
	struct ranked *rank = calloc(n ? n : 1, sizeof(*rank));
	if (!s || !rank) {
		free_samples(rt, s);
		free(rank);
		sn_api_error(r, 500, "out of memory");
		return;
	}
	for (uint32_t id = 0; id < n; id++) {
		rank[id].id = id;
		for (int i = 0; i < rt->n_ifaces; i++) {
			if (id < s[i].n_counters) {
				rank[id].packets += s[i].counters[id].packets;
				rank[id].bytes += s[i].counters[id].bytes;
			}
		}
	}
	size_t shown = n;
	if (top >= 0) {
		qsort(rank, n, sizeof(*rank), by_packets);
		if ((size_t)top < shown)
			shown = (size_t)top;
	}
	json_t *doc = json_array();
	for (size_t k = 0; k < shown; k++) {
		const struct sn_rt_rule *rule = &rt->policy.rules[rank[k].id];
		json_t *per = json_object();
		for (int i = 0; i < rt->n_ifaces; i++) {
			if (rank[k].id >= s[i].n_counters)
				continue;
			const struct sn_counter *c = &s[i].counters[rank[k].id];
			json_object_set_new(per, rt->ifaces[i].name,
					    json_pack("{s:I, s:I}",
						      "packets", (json_int_t)c->packets,
						      "bytes", (json_int_t)c->bytes));
		}
		json_array_append_new(doc, json_pack(
			"{s:I, s:o, s:I, s:I, s:s, s:o, s:o, s:I, s:I, s:o}",
			"id", (json_int_t)rule->id,
			"file", rule->file[0] ? jstr(rule->file) : json_null(),
			"line", (json_int_t)rule->line, "col", (json_int_t)rule->col,
			"action", rule->action, "text", jstr(rule->text),
			"drop_reason", sn_drop_reason(rt, rule->id) ?
				json_string(sn_drop_reason(rt, rule->id)) : json_null(),
			"packets", (json_int_t)rank[k].packets,
			"bytes", (json_int_t)rank[k].bytes,
			"interfaces", per));
	}
	free(rank);
	free_samples(rt, s);
	set_json(r, 200, doc);
}

/* ---- GET /v1/policy, GET /v1/reloads ---------------------------------------- */

static void get_policy(struct sn_rt *rt, const struct sn_api_req *q,
		       struct sn_api_resp *r)
{
	(void)q;
	const struct sn_rt_failure *f = &rt->failure;
	json_t *fail = f->at_ns ?
		json_pack("{s:o, s:o, s:o, s:b}", "at", jtime(f->at_ns),
			  "error", jstr(f->error), "diagnostics",
			  jstr(f->diagnostics), "current", f->current) :
		json_null();
	json_t *doc = json_pack(
		"{s:o, s:o, s:o, s:I, s:I, s:o}",
		"checksum", rt->policy.checksum[0] ? jstr(rt->policy.checksum) :
						     json_null(),
		"loaded_at", jtime(rt->policy.loaded_at_ns),
		"path", jstr(rt->policy_path),
		"rules", (json_int_t)rt->policy.n_rules,
		"limits", (json_int_t)rt->policy.n_limits,
		"last_failed_reload", fail);
	set_json(r, 200, doc);
}

static void get_reloads(struct sn_rt *rt, const struct sn_api_req *q,
			struct sn_api_resp *r)
{
	long limit = num_arg(q, "limit", SN_RT_HISTORY);
	if (limit == -2) {
		sn_api_error(r, 400, "'limit' must be a whole number 0..%d",
			     SN_RT_HISTORY);
		return;
	}
	json_t *doc = json_array();
	for (size_t i = 0; i < rt->n_history &&
			   (limit < 0 || i < (size_t)limit); i++)
		json_array_append_new(doc, reload_json(sn_rt_recent(rt, i)));
	set_json(r, 200, doc);
}

/* ---- POST /v1/reload -------------------------------------------------------- */

static void post_reload(struct sn_rt *rt, const struct sn_api_req *q,
			struct sn_api_resp *r)
{
	/* The body is optional; when present it is an empty JSON object
	 * (room for options later, and a typo is not silently ignored). */
	if (q->body_len) {
		json_error_t jerr;
		json_t *b = json_loadb(q->body, q->body_len, JSON_REJECT_DUPLICATES,
				       &jerr);
		if (!b) {
			sn_api_error(r, 400, "bad JSON body: %s (line %d, column %d)",
				     jerr.text, jerr.line, jerr.column);
			return;
		}
		if (!json_is_object(b)) {
			json_decref(b);
			sn_api_error(r, 400, "the body must be a JSON object");
			return;
		}
		const char *key = json_object_iter_key(json_object_iter(b));
		if (key) {
			/* key lives in b: report before letting go of it */
			sn_api_error(r, 400, "unknown field '%s'", key);
			json_decref(b);
			return;
		}
		json_decref(b);
	}
	if (!rt->reload) {
		sn_api_error(r, 503, "reloads are not available");
		return;
	}
	const struct sn_rt_reload *e = rt->reload(rt->reload_ctx);
	if (!e) {
		sn_api_error(r, 503, "the policy files kept changing while they "
			     "compiled; the reload runs once they are quiet");
		return;
	}
	bool failed = e->result == SN_RT_FAILED;
	json_t *doc = json_pack("{s:s, s:o, s:o}", "result",
				sn_rt_result_name(e->result), "reload",
				reload_json(e), "diagnostics",
				failed ? jstr(rt->failure.diagnostics) : json_null());
	set_json(r, !failed ? 200 : e->policy_error ? 422 : 500, doc);
}

/* ---- GET /metrics, the dashboard --------------------------------------------- */

static void get_metrics(struct sn_rt *rt, const struct sn_api_req *q,
			struct sn_api_resp *r)
{
	(void)q;
	struct sn_rt_sample *s = take_samples(rt);
	char *body = NULL;
	size_t len = 0;
	FILE *m = s ? open_memstream(&body, &len) : NULL;
	if (!m) {
		free_samples(rt, s);
		sn_api_error(r, 500, "out of memory");
		return;
	}
	int rc = sn_metrics_render(m, rt, s);
	free_samples(rt, s);
	if (fclose(m) || rc) {
		free(body);
		sn_api_error(r, 500, "cannot render the metrics");
		return;
	}
	r->status = 200;
	r->content_type = SN_METRICS_CONTENT_TYPE;
	r->body = body;
	r->len = len;
}

static void get_dashboard(struct sn_rt *rt, const struct sn_api_req *q,
			  struct sn_api_resp *r)
{
	(void)rt;
	(void)q;
	if (!sn_dashboard_html_len) {
		sn_api_error(r, 404, "this sentryd was built without a dashboard");
		return;
	}
	r->status = 200;
	r->content_type = "text/html; charset=utf-8";
	r->body = (char *)sn_dashboard_html;
	r->len = sn_dashboard_html_len;
	r->body_static = true;
}

const struct sn_api_route sn_api_routes[] = {
	{ "/metrics", "GET", false, get_metrics },
	{ "/v1/status", "GET", false, get_status },
	{ "/v1/rules", "GET", false, get_rules },
	{ "/v1/policy", "GET", false, get_policy },
	{ "/v1/reloads", "GET", false, get_reloads },
	{ "/v1/reload", "POST", true, post_reload },
	{ "/", "GET", false, get_dashboard },
	{ "/dashboard", "GET", false, get_dashboard },
};
const size_t sn_api_n_routes = sizeof(sn_api_routes) / sizeof(sn_api_routes[0]);

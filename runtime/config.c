/*
 * sentryd's YAML configuration (config.h).  libyaml loads the document
 * into a node graph (aliases resolved, marks kept), and a small schema
 * walk checks it: the document must be exactly one mapping of known keys,
 * each of the type its key needs, none twice.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "../compiler/strdist.h"
#include "errmsg.h"
#include "state.h"

#define MAX_CONFIG_BYTES (1u << 20)

void sn_config_diag(struct sn_config_diags *d, unsigned line, unsigned col,
		    const char *hint, const char *fmt, ...)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		void *v = realloc(d->v, cap * sizeof(*d->v));
		if (!v)
			return; /* the caller sees the earlier ones */
		d->v = v;
		d->cap = cap;
	}
	struct sn_config_diag *g = &d->v[d->n];
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&g->message, fmt, ap) < 0)
		g->message = NULL;
	va_end(ap);
	g->hint = hint ? strdup(hint) : NULL;
	g->line = line;
	g->col = col;
	if (g->message)
		d->n++;
	else
		free(g->hint);
}

void sn_config_diags_free(struct sn_config_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].message);
		free(d->v[i].hint);
	}
	free(d->v);
	*d = (struct sn_config_diags){ 0 };
}

void sn_config_render(FILE *out, const char *name,
		      const struct sn_config_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct sn_config_diag *g = &d->v[i];
		if (g->line)
			fprintf(out, "%s:%u:%u: error: %s\n", name, g->line,
				g->col, g->message);
		else
			fprintf(out, "%s: error: %s\n", name, g->message);
		if (g->hint)
			fprintf(out, "    = hint: %s\n", g->hint);
	}
}

void sn_config_free(struct sn_config *cfg)
{
	free(cfg->policy);
	for (int i = 0; i < cfg->n_ifaces; i++)
		free(cfg->ifaces[i].name);
	free(cfg->pin_root);
	free(cfg->state_dir);
	free(cfg->api_listen);
	free(cfg->token_file);
	*cfg = (struct sn_config){ 0 };
}

/* ---- listen addresses and the token file --------------------------------- */

int sn_listen_parse(const char *s, struct sn_listen *out, char *err,
		    size_t errlen)
{
	*out = (struct sn_listen){ 0 };
	if (!strcmp(s, "off")) {
		out->kind = SN_LISTEN_OFF;
		return 0;
	}
	if (!strncmp(s, "unix:", 5)) {
		const char *p = s + 5;
		if (p[0] != '/')
			return sn_fail(err, errlen, -EINVAL,
				       "unix socket path must be absolute");
		if (strlen(p) >= sizeof(out->path))
			return sn_fail(err, errlen, -EINVAL,
				       "unix socket path longer than %zu bytes",
				       sizeof(out->path) - 1);
		out->kind = SN_LISTEN_UNIX;
		snprintf(out->path, sizeof(out->path), "%s", p);
		return 0;
	}
	const char *colon, *host = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return sn_fail(err, errlen, -EINVAL,
				       "expected [IPv6]:PORT");
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return sn_fail(err, errlen, -EINVAL, "expected HOST:PORT");
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return sn_fail(err, errlen, -EINVAL,
				       "an IPv6 address needs brackets: [ADDR]:PORT");
	}
	if (!hlen || hlen >= sizeof(out->host))
		return sn_fail(err, errlen, -EINVAL, "bad host");
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	unsigned char buf[16];
	if (strcmp(out->host, "localhost") &&
	    inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, out->host, buf) != 1)
		return sn_fail(err, errlen, -EINVAL,
			       "'%s' is not an IP%s address", out->host,
			       s[0] == '[' ? "v6" : "v4");
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 1 || port > 65535)
		return sn_fail(err, errlen, -EINVAL,
			       "bad port '%s' (1..65535)", colon + 1);
	out->port = (unsigned)port;
	out->kind = SN_LISTEN_TCP;
	return 0;
}

int sn_token_read(const char *path, char **token, char *err, size_t errlen,
		  char *hint, size_t hintlen)
{
	if (hint && hintlen)
		hint[0] = '\0';
	if (token)
		*token = NULL;
	/* O_NOFOLLOW: the checks below are of the file itself, not of
	 * whatever a symlink someone else controls points at. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			return sn_fail(err, errlen, -e,
				       "token file %s is a symlink", path);
		return sn_fail(err, errlen, -e, "cannot open token file %s: %s",
			       path, strerror(e));
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st)) {
		rc = sn_fail(err, errlen, -errno, "cannot stat token file %s: %s",
			     path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		rc = sn_fail(err, errlen, -EINVAL,
			     "token file %s is not a regular file", path);
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		rc = sn_fail(err, errlen, -EPERM,
			     "token file %s is owned by uid %u, not root",
			     path, (unsigned)st.st_uid);
		if (hint)
			snprintf(hint, hintlen, "chown root: %s", path);
	} else if (st.st_mode & 077) {
		rc = sn_fail(err, errlen, -EPERM,
			     "token file %s has mode %04o: group or others "
			     "may access it", path, (unsigned)(st.st_mode & 07777));
		if (hint)
			snprintf(hint, hintlen, "chmod 600 %s", path);
	} else if (st.st_size > 4096) {
		rc = sn_fail(err, errlen, -EINVAL,
			     "token file %s is larger than 4096 bytes", path);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	char buf[4097];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return sn_fail(err, errlen, -errno, "reading token file %s: %s",
			       path, strerror(errno));
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	size_t len = strlen(buf);
	while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	bool bad = false;
	for (size_t i = 0; i < len; i++)
		bad |= (unsigned char)buf[i] <= ' ' || buf[i] == 0x7f;
	if (bad || len < 16) {
		if (hint)
			snprintf(hint, hintlen, "write a random token: head -c 32 "
				 "/dev/urandom | base64 > %s", path);
		return sn_fail(err, errlen, -EINVAL,
			       "token file %s: the token (its first line) must "
			       "be at least 16 printable characters without "
			       "spaces", path);
	}
	if (token && !(*token = strdup(buf)))
		return -ENOMEM;
	return 0;
}

/* ---- the schema walk ------------------------------------------------------- */

struct walk {
	yaml_document_t *doc;
	struct sn_config *cfg;
	struct sn_config_diags *d;
};

static unsigned line_of(const yaml_node_t *n) { return (unsigned)n->start_mark.line + 1; }
static unsigned col_of(const yaml_node_t *n) { return (unsigned)n->start_mark.column + 1; }

static const char *kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return n->data.scalar.length ? "a scalar" : "an empty value";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

static void bad(struct walk *w, const yaml_node_t *n, const char *hint,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void bad(struct walk *w, const yaml_node_t *n, const char *hint,
		const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_config_diag(w->d, line_of(n), col_of(n), hint, "%s", msg);
}

/* A plain or quoted scalar with content: NUL-free text; else NULL. */
static const char *scalar(struct walk *w, const yaml_node_t *n,
			  const char *key, const char *what)
{
	if (n->type != YAML_SCALAR_NODE || !n->data.scalar.length ||
	    (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	     (!strcmp((const char *)n->data.scalar.value, "~") ||
	      !strcmp((const char *)n->data.scalar.value, "null")))) {
		bad(w, n, NULL, "'%s' must be %s, not %s", key, what,
		    n->type == YAML_SCALAR_NODE && n->data.scalar.length ?
			    "null" : kind_name(n));
		return NULL;
	}
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
		bad(w, n, NULL, "'%s' holds a NUL byte", key);
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

static void set_string(struct walk *w, const yaml_node_t *n, const char *key,
		       char **out)
{
	const char *s = scalar(w, n, key, "a string");
	if (s) {
		free(*out);
		*out = strdup(s);
	}
}

static void set_path(struct walk *w, const yaml_node_t *n, const char *key,
		     char **out, bool absolute)
{
	const char *s = scalar(w, n, key, "a path");
	if (!s)
		return;
	if (absolute && s[0] != '/') {
		bad(w, n, NULL, "'%s' must be an absolute path, not '%s'", key, s);
		return;
	}
	if (strlen(s) >= PATH_MAX) {
		bad(w, n, NULL, "'%s' is longer than %d bytes", key, PATH_MAX - 1);
		return;
	}
	free(*out);
	*out = strdup(s);
}

static bool get_bool(struct walk *w, const yaml_node_t *n, const char *key,
		     bool *out)
{
	const char *s = scalar(w, n, key, "true or false");
	if (!s)
		return false;
	if (!strcmp(s, "true") || !strcmp(s, "false")) {
		*out = s[0] == 't';
		return true;
	}
	bad(w, n, "YAML 1.2 booleans only: yes/no/on/off are not booleans here",
	    "'%s' must be true or false, not '%s'", key, s);
	return false;
}

static bool get_ms(struct walk *w, const yaml_node_t *n, const char *key,
		   int *out)
{
	const char *s = scalar(w, n, key, "a number of milliseconds");
	if (!s)
		return false;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (*end || end == s || errno || s[0] == '+' || s[0] == ' ') {
		bad(w, n, NULL, "'%s' must be a whole number of milliseconds, "
		    "not '%s'", key, s);
		return false;
	}
	if (v < 0 || v > 60000) {
		bad(w, n, NULL, "'%s' is %ld, out of range 0..60000", key, v);
		return false;
	}
	*out = (int)v;
	return true;
}

/* Which of choices s is (index), or -1 with a diagnostic. */
static int get_choice(struct walk *w, const yaml_node_t *n, const char *key,
		      const char *const *choices, size_t nc)
{
	char list[256] = "";
	size_t len = 0;
	const char *s = scalar(w, n, key, "a string");
	if (!s)
		return -1;
	for (size_t i = 0; i < nc; i++)
		if (!strcmp(s, choices[i]))
			return (int)i;
	for (size_t i = 0; i < nc && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
					i ? (i + 1 == nc ? " or " : ", ") : "",
					choices[i]);
	bad(w, n, NULL, "'%s' must be %s, not '%s'", key, list, s);
	return -1;
}

/*
 * The keys of one mapping, with the node each value is: rejects unknown
 * keys (with the nearest known one as a hint), keys that are not plain
 * strings, and duplicates.  vals[i] is NULL for keys not present.
 */
static bool mapping_keys(struct walk *w, const yaml_node_t *map,
			 const char *where, const char *const *keys, size_t nk,
			 yaml_node_t **vals)
{
	for (size_t i = 0; i < nk; i++)
		vals[i] = NULL;
	if (map->type != YAML_MAPPING_NODE) {
		bad(w, map, NULL, "%s must be a mapping, not %s", where,
		    kind_name(map));
		return false;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			bad(w, k, NULL, "keys of %s must be names, not %s", where,
			    kind_name(k));
			continue;
		}
		const char *name = (const char *)k->data.scalar.value;
		size_t i = 0;
		while (i < nk && strcmp(name, keys[i]))
			i++;
		if (i == nk) {
			char hint[128] = "";
			/* Close enough to be a typo: a third of the name. */
			size_t len = strlen(name);
			size_t best = (len < 6 ? 2 : len / 3 + 1), bi = nk;
			for (size_t j = 0; j < nk; j++) {
				size_t dist = sn_edit_distance(name, keys[j]);
				if (dist < best) {
					best = dist;
					bi = j;
				}
			}
			if (bi < nk)
				snprintf(hint, sizeof(hint), "did you mean '%s'?",
					 keys[bi]);
			else {
				size_t n = (size_t)snprintf(hint, sizeof(hint),
							    "known keys:");
				for (size_t j = 0; j < nk && n < sizeof(hint); j++)
					n += (size_t)snprintf(hint + n, sizeof(hint) - n,
							      " %s", keys[j]);
			}
			bad(w, k, hint, "unknown key '%s' in %s", name, where);
			continue;
		}
		if (vals[i]) {
			char hint[64];
			snprintf(hint, sizeof(hint), "first given at line %u",
				 line_of(vals[i]) > 0 ? line_of(vals[i]) : 0);
			bad(w, k, hint, "duplicate key '%s' in %s", name, where);
			continue;
		}
		vals[i] = v;
	}
	return true;
}

static const char *const mode_names[] = { "auto", "native", "generic" };
static const enum sn_xdp_mode_request mode_values[] = {
	SN_XDP_MODE_AUTO, SN_XDP_MODE_NATIVE, SN_XDP_MODE_GENERIC,
};

static void walk_ifaces(struct walk *w, const yaml_node_t *seq)
{
	static const char *const keys[] = { "name", "xdp_mode" };
	struct sn_config *cfg = w->cfg;

	if (seq->type != YAML_SEQUENCE_NODE) {
		bad(w, seq, "write it as: interfaces: [{name: eth0}]",
		    "'interfaces' must be a list of mappings, not %s",
		    kind_name(seq));
		return;
	}
	cfg->ifaces_set = true;
	if (seq->data.sequence.items.start == seq->data.sequence.items.top)
		bad(w, seq, NULL, "'interfaces' is empty");
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++) {
		yaml_node_t *n = yaml_document_get_node(w->doc, *it);
		yaml_node_t *v[2];
		if (!n || !mapping_keys(w, n, "an interface", keys, 2, v))
			continue;
		if (!v[0]) {
			bad(w, n, NULL, "an interface needs a 'name'");
			continue;
		}
		const char *name = scalar(w, v[0], "name", "an interface name");
		if (!name)
			continue;
		if (sn_ifname_check(name)) {
			bad(w, v[0], NULL, "bad interface name '%s' (1-15 bytes, "
			    "no '/')", name);
			continue;
		}
		int mode = 0;
		if (v[1] && (mode = get_choice(w, v[1], "xdp_mode", mode_names,
					       3)) < 0)
			continue;
		bool dup = false;
		for (int i = 0; i < cfg->n_ifaces; i++)
			dup |= !strcmp(cfg->ifaces[i].name, name);
		if (dup) {
			bad(w, v[0], NULL, "interface '%s' is listed twice", name);
			continue;
		}
		if (cfg->n_ifaces == SN_CONFIG_MAX_IFACES) {
			bad(w, n, NULL, "too many interfaces (at most %d)",
			    SN_CONFIG_MAX_IFACES);
			return;
		}
		struct sn_config_iface *f = &cfg->ifaces[cfg->n_ifaces];
		if (!(f->name = strdup(name)))
			return;
		f->mode = mode_values[mode];
		cfg->n_ifaces++;
	}
}

static void walk_api(struct walk *w, const yaml_node_t *map)
{
	static const char *const keys[] = { "listen", "token_file" };
	yaml_node_t *v[2];
	if (!mapping_keys(w, map, "'api'", keys, 2, v))
		return;
	if (v[0]) {
		const char *s = scalar(w, v[0], "listen", "an address");
		struct sn_listen l;
		char err[256];
		if (s && sn_listen_parse(s, &l, err, sizeof(err)))
			bad(w, v[0], "host:port, [v6]:port, unix:/path or off",
			    "bad 'listen' address '%s': %s", s, err);
		else if (s)
			w->cfg->api_listen = strdup(s);
	}
	if (v[1]) {
		size_t before = w->d->n;
		set_path(w, v[1], "token_file", &w->cfg->token_file, false);
		if (w->d->n == before) {
			char err[PATH_MAX + 128], hint[PATH_MAX + 64];
			if (sn_token_read(w->cfg->token_file, NULL, err, sizeof(err),
					  hint, sizeof(hint)))
				bad(w, v[1], hint[0] ? hint : NULL, "%s", err);
		}
	}
}

static void walk_log(struct walk *w, const yaml_node_t *map)
{
	static const char *const keys[] = { "format", "level" };
	static const char *const formats[] = { "logfmt", "json", "text" };
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	yaml_node_t *v[2];
	int i;
	if (!mapping_keys(w, map, "'log'", keys, 2, v))
		return;
	if (v[0] && (i = get_choice(w, v[0], "format", formats, 3)) >= 0) {
		w->cfg->log_format = (enum sn_log_format)i;
		w->cfg->log_format_set = true;
	}
	if (v[1] && (i = get_choice(w, v[1], "level", levels, 4)) >= 0) {
		w->cfg->log_level = (enum sn_log_level)i;
		w->cfg->log_level_set = true;
	}
}

static void walk_watch(struct walk *w, const yaml_node_t *map)
{
	static const char *const keys[] = { "enabled", "debounce_ms", "settle_ms" };
	yaml_node_t *v[3];
	struct sn_config *cfg = w->cfg;
	if (!mapping_keys(w, map, "'watch'", keys, 3, v))
		return;
	if (v[0])
		cfg->watch_set = get_bool(w, v[0], "enabled", &cfg->watch);
	if (v[1])
		cfg->debounce_set = get_ms(w, v[1], "debounce_ms", &cfg->debounce_ms);
	if (v[2])
		cfg->settle_set = get_ms(w, v[2], "settle_ms", &cfg->settle_ms);
}

static void walk_top(struct walk *w, const yaml_node_t *root)
{
	static const char *const keys[] = {
		"policy", "interfaces", "pin_root", "state_dir", "api", "log",
		"watch",
	};
	yaml_node_t *v[7];
	if (!mapping_keys(w, root, "the configuration", keys, 7, v))
		return;
	if (v[0])
		set_string(w, v[0], "policy", &w->cfg->policy);
	if (v[1])
		walk_ifaces(w, v[1]);
	if (v[2])
		set_path(w, v[2], "pin_root", &w->cfg->pin_root, true);
	if (v[3])
		set_path(w, v[3], "state_dir", &w->cfg->state_dir, false);
	if (v[4])
		walk_api(w, v[4]);
	if (v[5])
		walk_log(w, v[5]);
	if (v[6])
		walk_watch(w, v[6]);
}

static void parser_problem(struct sn_config_diags *d, const yaml_parser_t *p)
{
	const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
	char msg[256];
	if (p->context)
		snprintf(msg, sizeof(msg), "%s %s", p->problem ? p->problem :
			 "syntax error", p->context);
	else
		snprintf(msg, sizeof(msg), "%s", p->problem ? p->problem :
			 "syntax error");
	sn_config_diag(d, (unsigned)m->line + 1, (unsigned)m->column + 1, NULL,
		       "YAML: %s", msg);
}

int sn_config_parse(const char *name, const char *text, size_t len,
		    struct sn_config *cfg, struct sn_config_diags *d)
{
	(void)name;
	*cfg = (struct sn_config){ .watch = true };
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		parser_problem(d, &parser);
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		sn_config_diag(d, 1, 1, "see SPEC.md 6.4 for the keys",
			       "the configuration is empty");
	} else {
		struct walk w = { .doc = &doc, .cfg = cfg, .d = d };
		walk_top(&w, root);
		/* One document only: a second one would be silently ignored. */
		yaml_document_t more;
		if (!yaml_parser_load(&parser, &more)) {
			parser_problem(d, &parser);
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&more);
			if (r2)
				sn_config_diag(d, line_of(r2), col_of(r2), NULL,
					       "a second YAML document: the "
					       "configuration is one document");
			yaml_document_delete(&more);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	/* The walk checks a mapping's keys before its values: report in
	 * document order (insertion sort keeps equal places in order). */
	for (size_t i = 1; i < d->n; i++) {
		struct sn_config_diag g = d->v[i];
		size_t j = i;
		while (j > 0 && (d->v[j - 1].line > g.line ||
				 (d->v[j - 1].line == g.line &&
				  d->v[j - 1].col > g.col))) {
			d->v[j] = d->v[j - 1];
			j--;
		}
		d->v[j] = g;
	}
	return d->n ? -EINVAL : 0;
}

int sn_config_load(const char *path, struct sn_config *cfg,
		   struct sn_config_diags *d)
{
	*cfg = (struct sn_config){ .watch = true };
	FILE *f = fopen(path, "re");
	if (!f) {
		sn_config_diag(d, 0, 0, NULL, "cannot read: %s", strerror(errno));
		return -errno;
	}
	char *buf = malloc(MAX_CONFIG_BYTES + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
	int err = ferror(f);
	fclose(f);
	if (err || n > MAX_CONFIG_BYTES) {
		sn_config_diag(d, 0, 0, NULL, err ? "cannot read the file" :
			       "larger than %u bytes", MAX_CONFIG_BYTES);
		free(buf);
		return -EINVAL;
	}
	int rc = sn_config_parse(path, buf, n, cfg, d);
	free(buf);
	return rc;
}

/*
 * sentryd's configuration file (YAML, libyaml; schema in SPEC.md 6.4).
 *
 * The parser checks everything it can without touching the system but
 * the token file (whose owner and mode are part of the contract): unknown
 * keys, duplicate keys, wrong types, out-of-range values.  Problems are
 * returned as located diagnostics (line and column of the offending node,
 * 1-based), never printed here: sentryd renders them and refuses to
 * start, `sentryd --check-config` renders them and exits.
 */
#ifndef SN_CONFIG_H
#define SN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dataplane.h"
#include "log.h"

/* Default API listen address (SPEC.md 6.4, 6.5). */
#define SN_API_DEFAULT_LISTEN "127.0.0.1:9747"
#define SN_CONFIG_MAX_IFACES 64

struct sn_config_iface {
	char *name;
	enum sn_xdp_mode_request mode;
};

/*
 * Every field has a _set flag (or a NULL pointer) so that command-line
 * flags, which take precedence, can tell "not in the file" from a value.
 */
struct sn_config {
	char *policy;
	struct sn_config_iface ifaces[SN_CONFIG_MAX_IFACES];
	int n_ifaces;
	bool ifaces_set;
	char *pin_root;
	char *state_dir;
	char *api_listen;   /* NULL: not given */
	char *token_file;   /* NULL: not given */
	enum sn_log_format log_format;
	bool log_format_set;
	enum sn_log_level log_level;
	bool log_level_set;
	bool watch;
	bool watch_set;
	int debounce_ms, settle_ms;
	bool debounce_set, settle_set;
};

struct sn_config_diag {
	unsigned line, col; /* 1-based; 0: no location */
	char *message;
	char *hint;         /* NULL: none */
};

struct sn_config_diags {
	struct sn_config_diag *v;
	size_t n, cap;
};

/*
 * Parse text (name is what diagnostics are about).  0 when valid; -EINVAL
 * with diagnostics in d; -ENOMEM.  cfg is filled as far as it is valid
 * and must be freed either way.
 */
int sn_config_parse(const char *name, const char *text, size_t len,
		    struct sn_config *cfg, struct sn_config_diags *d);
/* Read path and parse it; an unreadable file is one diagnostic. */
int sn_config_load(const char *path, struct sn_config *cfg,
		   struct sn_config_diags *d);
void sn_config_free(struct sn_config *cfg);

/* Add a diagnostic (printf message); for checks of the merged options. */
void sn_config_diag(struct sn_config_diags *d, unsigned line, unsigned col,
		    const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void sn_config_diags_free(struct sn_config_diags *d);
/*
 * Render as `FILE:LINE:COL: error: message` and `    = hint: ...` lines,
 * in the order found (which is document order).
 */
void sn_config_render(FILE *out, const char *name,
		      const struct sn_config_diags *d);

/*
 * An API listen address, parsed: "off", "unix:/abs/path", "host:port",
 * "[v6]:port".  host is an IPv4 or IPv6 literal or "localhost".
 */
enum sn_listen_kind { SN_LISTEN_OFF, SN_LISTEN_TCP, SN_LISTEN_UNIX };
struct sn_listen {
	enum sn_listen_kind kind;
	char host[64];   /* TCP: the literal, without brackets */
	unsigned port;   /* TCP */
	char path[108];  /* UNIX: sockaddr_un.sun_path */
};
/* 0, or -EINVAL with a reason in err. */
int sn_listen_parse(const char *s, struct sn_listen *out, char *err,
		    size_t errlen);

/*
 * Read the API token from path: a regular file (not a symlink), owned by
 * root or by this process's user, no access for group or others; its
 * first line, at least 16 characters, no white space inside.  0 or
 * -errno with a reason in err (and a hint when there is an obvious fix).
 * token gets the malloc'd token when not NULL (a check alone otherwise).
 */
int sn_token_read(const char *path, char **token, char *err, size_t errlen,
		  char *hint, size_t hintlen);

#endif

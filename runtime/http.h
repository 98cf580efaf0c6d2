/*
 * sentryd's HTTP server (libmicrohttpd): the listen socket (TCP on
 * loopback by default, or a unix socket), limits, the bearer token of
 * mutating calls, and routing to the API handlers (api.h).
 *
 * It runs in sentryd's single-threaded event loop, not in threads of its
 * own: MHD in external epoll mode hands over one fd to poll, sentryd calls
 * sn_http_run when it is readable (or its timeout passed), and handlers
 * run to completion there.  So a handler reads the daemon's state without
 * locks, and POST /v1/reload runs the reload path inotify and SIGHUP take
 * (a reload blocks the API while it runs, as it blocks everything else).
 */
#ifndef SN_HTTP_H
#define SN_HTTP_H

#include <stddef.h>

#include "config.h"
#include "log.h"
#include "rt.h"

/* Largest request body taken (413 above). */
#define SN_HTTP_MAX_BODY 4096
/* Longest request path taken (414 above). */
#define SN_HTTP_MAX_PATH 1024

struct sn_http;

/*
 * Listen on l and serve rt.  token: what mutating calls must present as
 * `Authorization: Bearer TOKEN` (NULL: they are refused with 403).  log is
 * kept for MHD's own messages and request lines (debug).  0 or -errno
 * with a reason in err.
 */
int sn_http_start(const struct sn_listen *l, const char *token,
		  struct sn_rt *rt, const struct sn_log *log,
		  struct sn_http **out, char *err, size_t errlen);
/* The fd to poll for POLLIN. */
int sn_http_fd(const struct sn_http *h);
/* Milliseconds until sn_http_run is due anyway, or -1. */
int sn_http_timeout_ms(const struct sn_http *h);
/* Serve what is ready; never blocks. */
void sn_http_run(struct sn_http *h);
/* Close every connection and the listen socket (a unix socket file is
 * removed). */
void sn_http_stop(struct sn_http *h);

#endif

/*
 * A client of sentryd's REST API (SPEC.md 6.5) for sentryctl: one request
 * over TCP or a unix socket (libcurl), the response status and body.
 */
#ifndef SN_CLIENT_H
#define SN_CLIENT_H

#include <stddef.h>

#include "config.h"

struct sn_client {
	struct sn_listen where;
	const char *token;  /* NULL: no Authorization header */
	long timeout_s;
};

struct sn_client_resp {
	long status;       /* HTTP status */
	char *body;        /* NUL-terminated, malloc'd */
	size_t len;
};

/*
 * method path [body]: 0 with *out filled (any HTTP status), -ECONNREFUSED
 * / -ETIMEDOUT / -EIO when no response came (err says why).
 */
int sn_client_call(const struct sn_client *c, const char *method,
		   const char *path, const char *body,
		   struct sn_client_resp *out, char *err, size_t errlen);
void sn_client_resp_free(struct sn_client_resp *r);

#endif

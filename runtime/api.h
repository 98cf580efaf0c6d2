/*
 * The REST API of sentryd (SPEC.md 6.5): routes and their handlers.  The
 * HTTP layer (http.h) parses requests, enforces limits and the token, and
 * calls a handler with a complete request; handlers build the response
 * from the daemon's account of itself (rt.h) and the kernel's counters
 * (sampled per request).  No handler can fail the server: every error is
 * a response, `{"error":{"code":N,"message":"..."}}`.
 */
#ifndef SN_API_H
#define SN_API_H

#include <stdbool.h>
#include <stddef.h>

#include "rt.h"

struct sn_api_req {
	const char *method;   /* GET, HEAD, POST, ... */
	const char *path;     /* without the query */
	const char *body;     /* NULL or body_len bytes (not NUL-terminated) */
	size_t body_len;
	/* A query argument by name, or NULL (MHD's lookup, wrapped). */
	const char *(*arg)(void *ctx, const char *name);
	void *arg_ctx;
};

struct sn_api_resp {
	unsigned status;
	const char *content_type; /* static */
	char *body;               /* malloc'd, or NULL */
	size_t len;
	bool body_static;         /* body points at static data: not freed */
	char allow[64];           /* 405: the methods the path takes */
	bool auth_challenge;      /* 401: send WWW-Authenticate */
};

typedef void (*sn_api_handler)(struct sn_rt *rt, const struct sn_api_req *q,
			       struct sn_api_resp *r);

struct sn_api_route {
	const char *path;
	const char *method;  /* GET routes answer HEAD too */
	bool mutating;       /* needs the bearer token */
	sn_api_handler fn;
};

extern const struct sn_api_route sn_api_routes[];
extern const size_t sn_api_n_routes;

#define SN_API_JSON "application/json"

/* r becomes the JSON error response `{"error":{"code":..,"message":..}}`. */
void sn_api_error(struct sn_api_resp *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sn_api_resp_free(struct sn_api_resp *r);

#endif

/* sentryd's HTTP server on libmicrohttpd (http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "errmsg.h"
#include "state.h"

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78 /* linux/in6.h; not in glibc's netinet/in.h */
#endif

struct sn_http {
	struct MHD_Daemon *mhd;
	struct sn_rt *rt;
	const struct sn_log *log;
	bool have_token;
	unsigned char token_hash[SHA256_DIGEST_LENGTH];
	int listen_fd;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One request in progress. */
struct req {
	char body[SN_HTTP_MAX_BODY];
	size_t len;
	bool too_large;
	bool answered; /* a response went out before the body was read */
};

/* ---- listening -------------------------------------------------------------- */

static int listen_tcp(const struct sn_listen *l, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t slen;
	const char *host = strcmp(l->host, "localhost") ? l->host : "127.0.0.1";
	int fam = strchr(host, ':') ? AF_INET6 : AF_INET;
	if (fam == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)l->port);
		inet_pton(AF_INET6, host, &a->sin6_addr);
		slen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)l->port);
		inet_pton(AF_INET, host, &a->sin_addr);
		slen = sizeof(*a);
	}
	int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return sn_fail(err, errlen, -errno, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* Loopback may not be up yet (a network namespace just made): bind
	 * anyway, the socket answers once it is.  Only for loopback, so a
	 * mistyped address elsewhere is still an error. */
	if (!strncmp(host, "127.", 4) || !strcmp(host, "::1"))
		setsockopt(fd, fam == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
			   fam == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, &one,
			   sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) || listen(fd, 64)) {
		int e = errno;
		close(fd);
		return sn_fail(err, errlen, -e, "cannot listen on %s%s%s:%u: %s",
			       fam == AF_INET6 ? "[" : "", host,
			       fam == AF_INET6 ? "]" : "", l->port, strerror(e));
	}
	return fd;
}

/*
 * A unix socket: a stale socket file of a dead daemon is replaced, a live
 * one (something answers) or any other file is not.  Mode 0660: reading
 * needs the socket's group, changing needs the token as well.
 */
static int listen_unix(const struct sn_listen *l, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", l->path);
	char dir[sizeof(a.sun_path)];
	snprintf(dir, sizeof(dir), "%s", l->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int rc = sn_mkdir_p(dir);
		if (rc)
			return sn_fail(err, errlen, rc, "cannot create %s: %s", dir,
				       strerror(-rc));
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sn_fail(err, errlen, -errno, "socket: %s", strerror(errno));
	struct stat st;
	if (lstat(l->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return sn_fail(err, errlen, -EEXIST, "%s exists and is not "
				       "a socket", l->path);
		}
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(fd);
			return sn_fail(err, errlen, -EADDRINUSE, "%s: another "
				       "process listens there", l->path);
		}
		close(fd);
		unlink(l->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return sn_fail(err, errlen, -errno, "socket: %s",
				       strerror(errno));
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;
		close(fd);
		return sn_fail(err, errlen, -e, "cannot bind %s: %s", l->path,
			       strerror(e));
	}
	if (chmod(l->path, 0660) || listen(fd, 64) ||
	    fcntl(fd, F_SETFL, O_NONBLOCK)) {
		int e = errno;
		close(fd);
		unlink(l->path);
		return sn_fail(err, errlen, -e, "cannot listen on %s: %s", l->path,
			       strerror(e));
	}
	return fd;
}

/* ---- responses ------------------------------------------------------------ */

static enum MHD_Result send_resp(struct MHD_Connection *c,
				 struct sn_api_resp *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		r->len, r->body, r->body_static ? MHD_RESPMEM_PERSISTENT :
						  MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		sn_api_resp_free(r);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->content_type ? r->content_type : SN_API_JSON);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (r->allow[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->auth_challenge)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"sentryd\"");
	enum MHD_Result ok = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	sn_api_resp_free(r);
	return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
				  const char *msg)
{
	struct sn_api_resp r = { 0 };
	sn_api_error(&r, status, "%s", msg);
	return send_resp(c, &r);
}

static const char *query_arg(void *ctx, const char *name)
{
	return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

/*
 * The bearer token, compared in constant time: both sides are hashed
 * first, so neither the content nor the length of the configured token
 * shows in the time a wrong guess takes.
 */
static bool token_ok(const struct sn_http *h, struct MHD_Connection *c)
{
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return false;
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	unsigned char hash[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)tok, strlen(tok), hash);
	return CRYPTO_memcmp(hash, h->token_hash, sizeof(hash)) == 0;
}

/* The complete request: route, method, token, content type, handler. */
static enum MHD_Result dispatch(struct sn_http *h, struct MHD_Connection *c,
				const char *url, const char *method,
				struct req *q)
{
	const struct sn_api_route *route = NULL;
	char allow[64] = "";
	bool head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
	for (size_t i = 0; i < sn_api_n_routes; i++) {
		const struct sn_api_route *rt = &sn_api_routes[i];
		if (strcmp(rt->path, url))
			continue;
		if (!strcmp(rt->method, method) ||
		    (head && !strcmp(rt->method, "GET"))) {
			route = rt;
			break;
		}
		size_t n = strlen(allow);
		snprintf(allow + n, sizeof(allow) - n, "%s%s%s", n ? ", " : "",
			 rt->method, strcmp(rt->method, "GET") ? "" : ", HEAD");
	}
	if (!route && !allow[0])
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such resource");
	struct sn_api_resp r = { 0 };
	if (!route) {
		sn_api_error(&r, MHD_HTTP_METHOD_NOT_ALLOWED,
			     "%s is not allowed here (allowed: %s)", method, allow);
		snprintf(r.allow, sizeof(r.allow), "%s", allow);
		return send_resp(c, &r);
	}
	if (route->mutating) {
		if (!h->have_token)
			return send_error(c, MHD_HTTP_FORBIDDEN,
					  "changes through the API are disabled: "
					  "sentryd has no api.token_file");
		if (!token_ok(h, c)) {
			sn_api_error(&r, MHD_HTTP_UNAUTHORIZED,
				     "missing or wrong bearer token");
			r.auth_challenge = true;
			return send_resp(c, &r);
		}
	}
	if (q->len) {
		const char *ct = MHD_lookup_connection_value(
			c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		size_t n = ct ? strcspn(ct, "; ") : 0;
		if (!ct || n != strlen("application/json") ||
		    strncasecmp(ct, "application/json", n))
			return send_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
					  "a request body must be application/json");
	}
	struct sn_api_req ar = {
		.method = method, .path = url,
		.body = q->len ? q->body : NULL, .body_len = q->len,
		.arg = query_arg, .arg_ctx = c,
	};
	route->fn(h->rt, &ar, &r);
	sn_log(h->log, SN_LOG_DEBUG, NULL, "http %s %s %u", method, url, r.status);
	return send_resp(c, &r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct sn_http *h = cls;
	struct req *q = *con_cls;
	(void)version;

	if (!q) {
		/* First call: headers only.  What can be refused without
		 * the body is refused now, so a huge body is never read. */
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		if (strlen(url) > SN_HTTP_MAX_PATH) {
			q->answered = true;
			return send_error(c, MHD_HTTP_URI_TOO_LONG, "path too long");
		}
		const char *cl = MHD_lookup_connection_value(
			c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > SN_HTTP_MAX_BODY) {
			q->answered = true;
			return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
					  "request body too large");
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!q->answered && q->len + *upload_size > SN_HTTP_MAX_BODY) {
			q->too_large = q->answered = true;
			*upload_size = 0;
			return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
					  "request body too large");
		}
		if (!q->answered) {
			memcpy(q->body + q->len, upload, *upload_size);
			q->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->answered)
		return MHD_YES;
	q->answered = true;
	return dispatch(h, c, url, method, q);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	/* MHD reports clients that misbehave (bad requests, resets): our
	 * debug, never our problem. */
	sn_log(cls, SN_LOG_DEBUG, NULL, "http: %s", msg);
}

int sn_http_start(const struct sn_listen *l, const char *token,
		  struct sn_rt *rt, const struct sn_log *log,
		  struct sn_http **out, char *err, size_t errlen)
{
	struct sn_http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->rt = rt;
	h->log = log;
	if (token) {
		h->have_token = true;
		SHA256((const unsigned char *)token, strlen(token), h->token_hash);
	}
	h->listen_fd = l->kind == SN_LISTEN_UNIX ? listen_unix(l, err, errlen) :
						   listen_tcp(l, err, errlen);
	if (h->listen_fd < 0) {
		int rc = h->listen_fd;
		free(h);
		return rc;
	}
	if (l->kind == SN_LISTEN_UNIX)
		snprintf(h->unix_path, sizeof(h->unix_path), "%s", l->path);
	h->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
		MHD_OPTION_LISTEN_SOCKET, h->listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_done, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)log,
		/* Bounds on what one client can hold: a few dozen
		 * connections, 10 s of silence, 32 KiB of headers. */
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
		MHD_OPTION_END);
	if (!h->mhd) {
		close(h->listen_fd);
		if (h->unix_path[0])
			unlink(h->unix_path);
		free(h);
		return sn_fail(err, errlen, -EIO, "libmicrohttpd did not start");
	}
	*out = h;
	return 0;
}

int sn_http_fd(const struct sn_http *h)
{
	const union MHD_DaemonInfo *i =
		MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return i ? i->epoll_fd : -1;
}

int sn_http_timeout_ms(const struct sn_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(h->mhd, &ms) != MHD_YES)
		return -1;
	return ms > 60000 ? 60000 : (int)ms;
}

void sn_http_run(struct sn_http *h)
{
	MHD_run(h->mhd);
}

void sn_http_stop(struct sn_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd); /* closes the listen socket too */
	if (h->unix_path[0])
		unlink(h->unix_path);
	free(h);
}

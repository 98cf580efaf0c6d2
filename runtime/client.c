/* sentryd API client on libcurl (client.h). */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct sn_client_resp *r = ctx;
	size_t add = size * n;
	char *b = realloc(r->body, r->len + add + 1);
	if (!b)
		return 0; /* curl reports a write error */
	memcpy(b + r->len, p, add);
	r->len += add;
	b[r->len] = '\0';
	r->body = b;
	return add;
}

int sn_client_call(const struct sn_client *c, const char *method,
		   const char *path, const char *body,
		   struct sn_client_resp *out, char *err, size_t errlen)
{
	*out = (struct sn_client_resp){ 0 };
	if (c->where.kind == SN_LISTEN_OFF)
		return sn_fail(err, errlen, -ECONNREFUSED, "the API is off");
	CURL *h = curl_easy_init();
	if (!h)
		return sn_fail(err, errlen, -ENOMEM, "curl_easy_init failed");
	char url[512], auth[4200];
	struct curl_slist *hdr = NULL;
	if (c->where.kind == SN_LISTEN_UNIX) {
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->where.path);
		snprintf(url, sizeof(url), "http://localhost%s", path);
	} else {
		bool v6 = strchr(c->where.host, ':') != NULL;
		snprintf(url, sizeof(url), "http://%s%s%s:%u%s", v6 ? "[" : "",
			 c->where.host, v6 ? "]" : "", c->where.port, path);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* never through a proxy */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 2L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s ? c->timeout_s : 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (c->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		hdr = curl_slist_append(hdr, auth);
	}
	if (body) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	if (hdr)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	CURLcode rc = curl_easy_perform(h);
	int ret = 0;
	if (rc != CURLE_OK) {
		ret = rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED :
		      rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
		sn_seterr(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
		sn_client_resp_free(out);
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
		if (!out->body)
			out->body = strdup("");
		if (!out->body)
			ret = -ENOMEM;
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return ret;
}

void sn_client_resp_free(struct sn_client_resp *r)
{
	free(r->body);
	*r = (struct sn_client_resp){ 0 };
}

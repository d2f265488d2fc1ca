/*
 * httpc.h - the HTTPS client of a dedup server's REST API (libcurl), for
 * the agent and for dedup-server sync (which reads another server). One
 * client owns one curl easy handle, so successive requests reuse the connection (keep-alive);
 * a client is used by one thread at a time, and a concurrent uploader
 * gives each thread its own client.
 *
 * TLS is always verified: against a pinned certificate fingerprint (the
 * SHA-256 of the server's certificate; then nothing else is checked),
 * else the configured CA file (the server's self-signed certificate is its
 * own CA), else the system trust store. Every request carries the bearer
 * token. Every response body is capped while it is received.
 *
 * Errors: 0 means a 2xx answer. Otherwise a negative code with a one-line
 * reason recorded (dd_error_last):
 *   -ECONNREFUSED  cannot connect / resolve / timed out
 *   -EPROTO        TLS failure, transport failure, or an unexpected status
 *   -EACCES        401/403: the token was rejected
 *   -ENOENT        404, -E2BIG 413 or a reply over the cap, -EEXIST 409,
 *   -ENOSPC        507
 * For HTTP errors the reason carries the server's JSON "error" message and
 * the status.
 */
#ifndef DD_HTTPC_H
#define DD_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "util.h"

/* The largest response body accepted when the caller sets no cap. */
#define DD_HTTPC_MAX_RESPONSE (80u * 1024 * 1024)

struct dd_httpc;

/* What dd_httpc_new needs; the strings are copied. */
struct dd_httpc_opts {
	const char *server;       /* base URL, https://host:port */
	const char *token;        /* bearer token */
	const char *ca;           /* CA file, or NULL */
	const char *fingerprint;  /* 64 hex digits: pinned certificate, or NULL */
	const char *user_agent;   /* NULL: "dedup/VERSION" */
	int retries;              /* connection failures retried per request;
				   * negative: the default (6) */
	long timeout_sec;         /* a whole request at most this long; 0:
				   * no bound but the low-speed limit */
	long wait_max_s;          /* seconds from a request's start within
				   * which it waits out a Retry-After: 0
				   * the default (900), negative none
				   * (the 429 or 503 is the error) */
	/* Told before each Retry-After wait: its seconds and the server's
	 * reason (dd_error_last() of the refusal). NULL: nobody. */
	void (*on_wait)(void *payload, long seconds, const char *why);
	void *on_wait_payload;
	/* Asked about once a second during a transfer; true aborts it
	 * (-EINTR, "interrupted"). NULL: never. */
	bool (*cancel)(void *payload);
	void *cancel_payload;
};

/* Call once per process before any client (curl_global_init). */
int dd_httpc_global_init(void);
void dd_httpc_global_cleanup(void);

int dd_httpc_new(struct dd_httpc **out, const struct dd_httpc_opts *s);
void dd_httpc_free(struct dd_httpc *c);

/* The server's base URL, for messages (borrowed). */
const char *dd_httpc_server(const struct dd_httpc *c);

/*
 * One request. `method` is "GET" or "POST"; `path` starts with '/';
 * `ctype` is the body's Content-Type (POST only). The reply body replaces
 * the contents of *resp; it may not exceed resp->cap (or
 * DD_HTTPC_MAX_RESPONSE when the cap is 0 or larger).
 */
int dd_httpc_request(struct dd_httpc *c, const char *method,
		     const char *path, const char *ctype, const void *body,
		     size_t len, struct dd_buf *resp);

/* GET path and parse the JSON reply; the caller owns *out. */
int dd_httpc_get_json(struct dd_httpc *c, const char *path, json_t **out);
/* The same from a peer not trusted with this process's memory: a reply
 * longer than max_bytes, or with more than max_values JSON values (0:
 * any; parsing allocates a node for each, so a reply of tiny values can
 * cost ~80 times its bytes), fails before it is parsed (-EMSGSIZE or
 * -EBADMSG). */
int dd_httpc_get_json_bounded(struct dd_httpc *c, const char *path,
			      size_t max_bytes, size_t max_values,
			      json_t **out);
/* POST a JSON body and parse the JSON reply; the caller owns *out (which
 * may be NULL when not wanted). */
int dd_httpc_post_json(struct dd_httpc *c, const char *path,
		       const json_t *body, json_t **out);

#endif

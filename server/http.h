/*
 * http.h - the HTTPS front end: a libmicrohttpd daemon (TLS only, a thread
 * per connection, bounded connections and timeouts), a route table, bearer
 * token checks, and request bodies capped before they are read.
 *
 * Handlers never see libmicrohttpd: they get a complete, capped request
 * and fill a reply, so they are plain functions of (request) -> reply.
 */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>
#include "tokens.h"

struct http_request {
	const char *method;
	const char *url;
	const char *param;          /* prefix routes: the path after the
				     * prefix; "" otherwise */
	const uint8_t *body;        /* NULL when empty */
	size_t body_len;
	const struct tokens_identity *who;  /* NULL if the route needs none */
};

struct http_reply {
	unsigned status;
	const char *content_type;
	const uint8_t *body;
	size_t len;
	bool must_free;             /* body was malloc'ed; freed after sending */
	bool cacheable;             /* static assets; API replies are no-store */
};

typedef void (*http_handler)(void *payload, const struct http_request *req,
			     struct http_reply *rep);

struct http_route {
	const char *method;         /* "GET" also answers HEAD */
	const char *path;
	bool prefix;                /* path ends in '/'; the rest is the param */
	bool auth;                  /* needs a bearer token */
	size_t body_cap;            /* bytes; 0 = no body allowed */
	http_handler fn;
};

/* Reply helpers. Each replaces what the reply held. */
void http_reply_error(struct http_reply *rep, unsigned status,
		      const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Steals the reference to j; a NULL j (failed allocation) gives a 500. */
void http_reply_json(struct http_reply *rep, unsigned status, json_t *j);
/* Takes ownership of malloc'ed `data`. */
void http_reply_take(struct http_reply *rep, unsigned status,
		     const char *content_type, uint8_t *data, size_t len);
/* Borrows `data`, which must outlive the server. */
void http_reply_static(struct http_reply *rep, unsigned status,
		       const char *content_type, const void *data, size_t len);

struct http_config {
	const struct sockaddr *addr;
	socklen_t addrlen;
	const char *cert_pem;
	const char *key_pem;
	const struct http_route *routes;
	size_t nroutes;
	/* Called for any request no route's path matches (no token, no body). */
	http_handler fallback;
	void *payload;              /* passed to every handler */
	struct tokens *tokens;
	unsigned connection_limit;
	unsigned timeout_sec;
};

struct http_server;
/* Starts serving; the listening socket is bound when this returns. */
int http_start(struct http_server **out, const struct http_config *cfg);
/* The port actually bound (useful when the config asked for port 0). */
uint16_t http_port(const struct http_server *h);
/* Stops accepting, waits for the connection threads, frees. */
void http_stop(struct http_server *h);

#endif

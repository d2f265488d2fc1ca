/*
 * http.h - the HTTPS front end: a libmicrohttpd daemon (TLS only, a thread
 * per connection or a fixed pool, bounded connections and timeouts), a
 * route table, bearer token checks with roles, and request bodies capped
 * before they are read.
 *
 * Handlers never see libmicrohttpd: they get a complete, capped request
 * and fill a reply, so they are plain functions of (request) -> reply.
 *
 * TLS is 1.2 or 1.3 with AEAD ciphers and forward secrecy only; every
 * reply carries Strict-Transport-Security.
 *
 * A request body's memory grows with the bytes received, never with the
 * Content-Length declared.
 *
 * The listening socket belongs to the http_server, not to a daemon, so
 * http_reload() can start a daemon with a new certificate on the same
 * socket: new connections get the new certificate at once, requests in
 * flight finish on the old daemon, which stops once they are done (or
 * after drain_sec), closing its idle keep-alive connections.
 */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
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
	void *conn;                 /* private: for http_request_arg */
};

/* The unescaped value of query argument `key` (`?key=value`), or NULL.
 * Borrowed: valid while the handler runs. */
const char *http_request_arg(const struct http_request *req, const char *key);

/*
 * A reply body made while it is sent (http_reply_stream): `read` fills
 * buf with up to `max` bytes and returns how many (> 0), 0 at the end, or
 * a negative error, which cuts the connection (the status line has gone
 * out). `free` releases the payload once the reply is done or dropped.
 */
typedef ssize_t (*http_stream_read_fn)(void *payload, uint8_t *buf,
				       size_t max);
struct http_stream {
	http_stream_read_fn read;
	void (*free)(void *payload);
	void *payload;
	uint64_t len;               /* HTTP_STREAM_UNKNOWN: chunked */
};
#define HTTP_STREAM_UNKNOWN UINT64_MAX

struct http_reply {
	unsigned status;
	const char *content_type;
	const uint8_t *body;
	size_t len;
	bool must_free;             /* body was malloc'ed; freed after sending */
	bool cacheable;             /* static assets; API replies are no-store */
	unsigned retry_after;       /* seconds; sent as Retry-After when > 0 */
	struct http_stream stream;  /* read != NULL: the body (no `body`) */
	bool trusted;               /* a route without a token checked a
				     * credential of its own (a download
				     * ticket): the connection counts as
				     * trusted, as after a valid token */
	char disposition[512];      /* Content-Disposition when not "" */
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
	bool admin;                 /* needs an admin token (403 otherwise) */
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

/* Takes ownership of stream->payload (freed with stream->free even if
 * the reply is replaced or never sent). */
void http_reply_stream(struct http_reply *rep, unsigned status,
		       const char *content_type,
		       const struct http_stream *stream);

/* What the observe hook learns about each answered request. */
struct http_observation {
	const char *method;
	unsigned status;
	uint64_t bytes_in;          /* request body bytes received */
	uint64_t bytes_out;         /* reply body bytes */
	double seconds;             /* from the request line to the reply */
};

struct http_config {
	const struct sockaddr *addr;
	socklen_t addrlen;
	const char *cert_pem;       /* copied by http_start */
	const char *key_pem;
	const struct http_route *routes;
	size_t nroutes;
	/* Called for any request no route's path matches (no token, no body). */
	http_handler fallback;
	void *payload;              /* passed to every handler */
	struct tokens *tokens;
	/* Connection limits, enforced by a table (conns.h): untrusted
	 * connections (no valid token yet) get at most connection_limit -
	 * reserved slots, per_ip_limit from one address (0 = any), and must
	 * send request headers within header_timeout_sec; request bodies
	 * must arrive at min_body_rate bytes/s (0 = any). A new connection
	 * pushes out the oldest untrusted one rather than being refused. */
	unsigned connection_limit;
	unsigned reserved;          /* < connection_limit */
	unsigned per_ip_limit;
	unsigned header_timeout_sec;
	unsigned min_body_rate;
	/* Trusted connections of one client (0 = any); request bodies in
	 * memory at once, all and one client's (bytes, 0 = any): conns.h. */
	unsigned per_client_limit;
	uint64_t body_memory;
	uint64_t client_body_memory;
	unsigned timeout_sec;       /* idle timeout (trusted connections) */
	unsigned threads;           /* 0: a thread per connection; else a
				     * pool of this many threads */
	unsigned drain_sec;         /* how long requests in flight may take
				     * to finish on reload and stop */
	/* Optional; called once for every request that gets an answer. */
	void (*observe)(void *payload, const struct http_observation *o);
};

struct http_server;
struct conns_stats;
/* Binds the listening socket and starts serving. */
int http_start(struct http_server **out, const struct http_config *cfg);
/* The port actually bound (useful when the config asked for port 0). */
uint16_t http_port(const struct http_server *h);
/* The connection table's figures (conns.h): for /metrics. */
void http_conn_stats(struct http_server *h, struct conns_stats *out);
/* Trusted bodies' buffers (http.c, HTTP_STASH_*): those kept idle now,
 * and how each body of a MiB or more got its buffer. For /metrics. */
struct http_body_stats {
	unsigned kept;
	size_t kept_bytes;
	uint64_t reused;   /* a kept one that held it */
	uint64_t grown;    /* a kept one, grown */
	uint64_t fresh;    /* none kept: a new one */
};
void http_body_stats(struct http_server *h, struct http_body_stats *out);
/*
 * Serves new connections with a new certificate and key (PEM, copied).
 * On failure (a bad pair) nothing changes and the reason is recorded.
 * The previous daemon keeps its requests in flight; http_reap() stops it.
 */
int http_reload(struct http_server *h, const char *cert_pem,
		const char *key_pem);
/* Stops replaced daemons whose requests have finished or whose drain time
 * is over. Call it now and then (the serve loop does, every second). */
void http_reap(struct http_server *h);
/* Requests being handled right now, over all daemons. */
unsigned http_active(struct http_server *h);
/* Stops accepting, lets requests in flight finish (up to drain_sec),
 * closes every connection, frees. NULL is a no-op. */
void http_stop(struct http_server *h);

#endif

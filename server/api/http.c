/*
 * http.c - see http.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "conns.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* Past its cap, a chunked upload is read and dropped (so the client gets
 * its 413) for at most this many more bytes; then the connection is cut. */
#define HTTP_DISCARD_MAX (8u * 1024 * 1024)
/* A body over the memory limits (conns.h) is answered 503 with this
 * Retry-After, in seconds. */
#define HTTP_BODY_RETRY 2
/* libmicrohttpd's per-connection buffer: headers and upload pieces. */
#define HTTP_CONN_MEMORY (256u * 1024)

/* TLS 1.2 and 1.3 only, AEAD ciphers with forward secrecy (ECDHE; TLS 1.3
 * is always ephemeral), the server's order first. */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:" \
	"-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
/* Browsers that once saw the page never try it over plain HTTP (there is
 * no plaintext listener anyway). */
#define HTTP_HSTS "max-age=31536000"
/* A request body starts with at most this much memory and grows as bytes
 * arrive: a declared Content-Length alone reserves nothing more. A caller
 * with a valid token gets its whole declared length when its first body
 * bytes arrive, so that an agent's bundle (about 16 MiB) lands where it
 * stays instead of being copied at every doubling: address space within
 * the declared-length limits (body_memory, per_client_body_memory), its
 * pages touched as bytes arrive, and none for a body never sent
 * (docs/SECURITY.md). */
#define HTTP_BODY_START (64u * 1024)

/* Trusted bodies' buffers of at least HTTP_STASH_MIN bytes are kept for
 * the next ones (at most HTTP_STASH_SLOTS of them, HTTP_STASH_BYTES in
 * all, each for HTTP_STASH_IDLE seconds unused, looked at every
 * HTTP_STASH_TICK_MS): a fresh 16 MiB buffer is a fresh mapping, and the
 * kernel zeroes and maps every page of it as the bytes arrive (5% of the
 * server's CPU over a first backup). Memory the declared-length limits
 * do not count, so it is bounded here, and freed when the last
 * connection closes; and a body that takes a kept buffer more than
 * HTTP_STASH_SLACK larger than its declared length is counted at the
 * buffer's size by those limits (conns_body_hold: docs/SECURITY.md). */
#define HTTP_STASH_MIN (1u << 20)
#define HTTP_STASH_BYTES (64u << 20)
#define HTTP_STASH_SLOTS 4
#define HTTP_STASH_IDLE 10.0
#define HTTP_STASH_TICK_MS 1000u
#define HTTP_STASH_SLACK(need) ((need) / 16 + (64u << 10))

/* The status page's policy: only its own scripts, styles and API. */
#define HTTP_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; " \
	"form-action 'none'; frame-ancestors 'none'"

/* One libmicrohttpd daemon on the shared socket. A reload replaces the
 * current one; the replaced one is kept until its requests are done. */
struct http_daemon {
	struct http_server *h;
	struct MHD_Daemon *mhd;
	char *cert, *key;                 /* PEM copies it was started with */
	unsigned active;                  /* requests in flight (atomic) */
	unsigned conns;                   /* open connections (atomic) */
	double retired;                   /* dd_monotonic() when replaced */
	struct http_daemon *next;         /* in h->retired */
};

/* Idle body buffers (HTTP_STASH_MIN). */
struct http_stash {
	pthread_mutex_t mu;
	struct {
		uint8_t *data;
		size_t alloc;
		double since;             /* dd_monotonic() when kept */
	} slot[HTTP_STASH_SLOTS];
	unsigned n;
	size_t bytes;
	uint64_t reused, grown, fresh;    /* bodies given a buffer */
};

struct http_server {
	struct http_config cfg;
	struct http_stash stash;
	struct dd_ticker *stash_ticker;   /* frees idle kept buffers */
	unsigned open;                    /* connections, all daemons (atomic) */
	int fd;                           /* the listening socket */
	uint16_t port;
	pthread_mutex_t lock;             /* current and retired */
	struct http_daemon *current;
	struct http_daemon *retired;
	struct conns *conns;              /* every connection, all daemons */
};

/* One request's state, kept by libmicrohttpd between callbacks. */
struct http_call {
	struct http_daemon *dmn;
	struct conn *tracked;             /* NULL if the table had no memory */
	double t0;
	uint64_t bytes_in;
	const struct http_route *route;   /* NULL: the fallback */
	const char *param;
	struct tokens_identity who;
	struct dd_buf body;
	size_t cap;
	bool reserve_whole;               /* body.cap at its first bytes */
	uint64_t discarded;
	uint64_t discard_max;             /* 0: HTTP_DISCARD_MAX */
	char allow[64];                   /* for a 405: the methods allowed */
	bool too_large;
	bool no_memory;
	unsigned refused;                 /* 401/403 sent once the body is read */
	const char *refused_msg;          /* a string literal */
	enum conns_token token;           /* what its token was */
	unsigned retry_after;             /* for a refusal: Retry-After */
	bool reading_body;                /* the body is read after begin */
	bool counted;                     /* in dmn->active */
};

/* ---- replies ---- */

static void http_reply_clear(struct http_reply *rep)
{
	if (rep->must_free)
		free((void *)rep->body);
	rep->body = NULL;
	rep->len = 0;
	rep->must_free = false;
	if (rep->stream.read && rep->stream.free)
		rep->stream.free(rep->stream.payload);
	memset(&rep->stream, 0, sizeof(rep->stream));
	rep->disposition[0] = '\0';
}

void http_reply_take(struct http_reply *rep, unsigned status,
		     const char *content_type, uint8_t *data, size_t len)
{
	http_reply_clear(rep);
	rep->status = status;
	rep->content_type = content_type;
	rep->body = data;
	rep->len = len;
	rep->must_free = true;
}

void http_reply_static(struct http_reply *rep, unsigned status,
		       const char *content_type, const void *data, size_t len)
{
	http_reply_clear(rep);
	rep->status = status;
	rep->content_type = content_type;
	rep->body = data;
	rep->len = len;
}

void http_reply_stream(struct http_reply *rep, unsigned status,
		       const char *content_type,
		       const struct http_stream *stream)
{
	http_reply_clear(rep);
	rep->status = status;
	rep->content_type = content_type;
	rep->stream = *stream;
}

/* MHD's content reader over an http_stream. */
static ssize_t http_stream_reader(void *cls, uint64_t pos, char *buf,
				  size_t max)
{
	struct http_stream *st = cls;
	ssize_t n;

	(void)pos;              /* MHD reads in order */
	n = st->read(st->payload, (uint8_t *)buf, max);
	if (n > 0)
		return n;
	return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM
		      : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void http_stream_release(void *cls)
{
	struct http_stream *st = cls;

	if (st->free)
		st->free(st->payload);
	free(st);
}

/* The MHD response of a streamed reply; the reply's stream moves into it
 * (freed with the response, or here on failure). */
static struct MHD_Response *http_stream_response(struct http_reply *rep)
{
	struct http_stream *st = malloc(sizeof(*st));
	struct MHD_Response *r;

	if (!st) {
		http_reply_clear(rep);
		return NULL;
	}
	*st = rep->stream;
	memset(&rep->stream, 0, sizeof(rep->stream));
	r = MHD_create_response_from_callback(
		st->len == HTTP_STREAM_UNKNOWN ? MHD_SIZE_UNKNOWN : st->len,
		64 * 1024, http_stream_reader, st, http_stream_release);
	if (!r)
		http_stream_release(st);
	return r;
}

static const char http_oom_json[] = "{\"error\":\"out of memory\"}\n";

void http_reply_json(struct http_reply *rep, unsigned status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	size_t n;

	json_decref(j);
	if (!text) {
		http_reply_static(rep, 500, "application/json", http_oom_json,
				  sizeof(http_oom_json) - 1);
		return;
	}
	n = strlen(text);
	/* json_dumps leaves no room for the newline that curl users like. */
	{
		char *t = realloc(text, n + 2);

		if (t) {
			text = t;
			text[n++] = '\n';
			text[n] = '\0';
		}
	}
	http_reply_take(rep, status, "application/json", (uint8_t *)text, n);
}

void http_reply_error(struct http_reply *rep, unsigned status,
		      const char *fmt, ...)
{
	char msg[1024], clean[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote client input; JSON strings must be UTF-8. */
	log_sanitize(clean, sizeof(clean), msg, (size_t)-1);
	http_reply_json(rep, status, json_pack("{s:s}", "error", clean));
}

/* ---- libmicrohttpd glue ---- */

static enum MHD_Result http_send(struct MHD_Connection *conn,
				 const struct http_call *call,
				 const char *method, const char *url,
				 struct http_reply *rep)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (rep->status == 0)
		http_reply_error(rep, 500, "handler gave no reply");
	if (rep->status >= 500) {
		char clean[600];

		log_sanitize(clean, sizeof(clean), url, (size_t)-1);
		size_t n = rep->len > 400 ? 400 : rep->len;

		while (n > 0 && rep->body[n - 1] == '\n')
			n--;
		log_error("%s %s: %u %.*s", method, clean, rep->status, (int)n,
			  rep->body ? (const char *)rep->body : "");
	}
	if (rep->stream.read) {
		r = http_stream_response(rep);
	} else if (rep->len == 0) {
		http_reply_clear(rep);
		r = MHD_create_response_from_buffer(0, (void *)"",
						    MHD_RESPMEM_PERSISTENT);
	}
	else if (rep->must_free)
		r = MHD_create_response_from_buffer(rep->len, (void *)rep->body,
						    MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(rep->len, (void *)rep->body,
						    MHD_RESPMEM_PERSISTENT);
	if (!r) {
		http_reply_clear(rep);
		return MHD_NO;
	}
	/* The response owns the bytes now. */
	rep->must_free = false;
	if (rep->content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					rep->content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
				rep->cacheable ? "no-cache" : "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Strict-Transport-Security", HTTP_HSTS);
	if (rep->disposition[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION,
					rep->disposition);
	if (rep->status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"dedup\"");
	if (rep->retry_after) {
		char secs[16];

		snprintf(secs, sizeof(secs), "%u", rep->retry_after);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
	}
	if (rep->status == 405 && call && call->allow[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, call->allow);
	if (rep->cacheable)
		MHD_add_response_header(r, "Content-Security-Policy", HTTP_CSP);
	if (call && call->dmn && call->dmn->h->cfg.observe) {
		struct http_observation o;

		o.method = method;
		o.status = rep->status;
		o.bytes_in = call->bytes_in;
		o.bytes_out = strcmp(method, "HEAD") == 0 ? 0 : rep->len;
		o.seconds = dd_monotonic() - call->t0;
		call->dmn->h->cfg.observe(call->dmn->h->cfg.payload, &o);
	}
	ret = MHD_queue_response(conn, rep->status, r);
	MHD_destroy_response(r);
	return ret;
}

const char *http_request_arg(const struct http_request *req, const char *key)
{
	if (!req->conn)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					   key);
}

static bool http_method_ok(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return true;
	return strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static bool http_path_match(const struct http_route *rt, const char *url,
			    const char **param)
{
	size_t n = strlen(rt->path);

	if (!rt->prefix) {
		if (strcmp(url, rt->path) != 0)
			return false;
		*param = "";
		return true;
	}
	if (strncmp(url, rt->path, n) != 0 || url[n] == '\0' ||
	    strchr(url + n, '/'))
		return false;
	*param = url + n;
	return true;
}

/*
 * Picks the route for (method, url): exact paths win over prefixes, so
 * GET /api/v1/chunks/fetch is a 405 and not a chunk id. Returns 0 and
 * call->route (NULL for the fallback), or 405 with call->allow listing the
 * methods of the routes whose path matched.
 */
static unsigned http_route_find(const struct http_server *h,
				struct http_call *call, const char *method,
				const char *url)
{
	bool path_hit = false;
	const char *param;
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < h->cfg.nroutes; i++) {
			const struct http_route *rt = &h->cfg.routes[i];

			if (rt->prefix != (pass == 1) ||
			    !http_path_match(rt, url, &param))
				continue;
			if (http_method_ok(rt->method, method)) {
				call->route = rt;
				call->param = param;
				return 0;
			}
			path_hit = true;
			if (!strstr(call->allow, rt->method)) {
				size_t n = strlen(call->allow);

				snprintf(call->allow + n, sizeof(call->allow) - n,
					 "%s%s", n ? ", " : "", rt->method);
			}
		}
		if (path_hit) {
			call->route = NULL;
			return 405;
		}
	}
	call->route = NULL;
	call->param = "";
	return 0;
}

static enum MHD_Result http_fail_early(struct MHD_Connection *conn,
				       const struct http_call *call,
				       const char *method, const char *url,
				       unsigned status, const char *msg)
{
	struct http_reply rep = { 0 };

	http_reply_error(&rep, status, "%s", msg);
	return http_send(conn, call, method, url, &rep);
}

/*
 * Refuses a request that failed its token check. A client still sending a
 * body would see a reset instead of the answer (the kernel resets a socket
 * closed with unread bytes), so a body of the size the route takes is read
 * and dropped first; a larger one is refused at once.
 */
static enum MHD_Result http_refuse(struct MHD_Connection *conn,
				   struct http_call *call, const char *method,
				   const char *url, unsigned status,
				   const char *msg)
{
	const char *cl = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t len = 0;

	if (!cl || dd_parse_u64(cl, &len) < 0 || len == 0 ||
	    len > call->route->body_cap + (uint64_t)HTTP_DISCARD_MAX)
		return http_fail_early(conn, call, method, url, status, msg);
	call->refused = status;
	call->refused_msg = msg;
	call->discard_max = len;
	call->reading_body = true;
	return MHD_YES;
}

/* First call for a request: route, token, declared body size. */
static enum MHD_Result http_begin(struct http_server *h,
				  struct MHD_Connection *conn,
				  struct http_call *call, const char *method,
				  const char *url)
{
	const char *cl;
	char msg[128];
	uint64_t len = 0;
	unsigned st;
	bool chunked;

	st = http_route_find(h, call, method, url);
	if (st == 405) {
		snprintf(msg, sizeof(msg), "method not allowed (allowed: %s)",
			 call->allow);
		return http_fail_early(conn, call, method, url, 405, msg);
	}
	if (call->route && call->route->auth) {
		const char *authz = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

		if (tokens_authenticate(h->cfg.tokens, authz, &call->who) < 0) {
			call->token = CONNS_TOKEN_INVALID;
			return http_refuse(conn, call, method, url, 401,
					   authz ? "invalid token"
						 : "missing bearer token");
		}
		call->token = CONNS_TOKEN_VALID;
		if (call->route->admin && !call->who.admin)
			return http_refuse(conn, call, method, url, 403,
					   "this needs an admin token");
	}
	call->cap = call->route ? call->route->body_cap : 0;
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && dd_parse_u64(cl, &len) < 0)
		return http_fail_early(conn, call, method, url, 400,
				       "invalid Content-Length");
	if (!call->route && (len > 0 ||
			     MHD_lookup_connection_value(
				     conn, MHD_HEADER_KIND,
				     MHD_HTTP_HEADER_TRANSFER_ENCODING))) {
		/* No route takes a body: answer (404, 405) without reading
		 * it rather than call it too large. */
		struct http_request req = { method, url, "", NULL, 0, NULL,
					    conn };
		struct http_reply rep = { 0 };

		h->cfg.fallback(h->cfg.payload, &req, &rep);
		return http_send(conn, call, method, url, &rep);
	}
	if (len > call->cap) {
		/* Answering before the body is read makes the kernel reset
		 * the connection under a client still sending, which then
		 * never sees the 413. A body not far past the cap is read
		 * and dropped first; a huge one is refused at once. */
		if (len - call->cap > HTTP_DISCARD_MAX) {
			snprintf(msg, sizeof(msg), "request body too large "
				 "(limit %zu bytes)", call->cap);
			return http_fail_early(conn, call, method, url, 413,
					       msg);
		}
		call->too_large = true;
		call->discard_max = len;
		call->reading_body = true;
		return MHD_YES;
	}
	/* The body is held in memory: within the limits on all bodies and
	 * on this client's (conns.h), else it is read, dropped and answered
	 * 503, so that the client, still sending, sees the answer. */
	chunked = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	if ((len > 0 || chunked) &&
	    conns_body_admit(h->conns, call->tracked,
			     call->token == CONNS_TOKEN_VALID ? call->who.name
							      : NULL,
			     len > 0 ? len : call->cap) < 0) {
		call->refused = 503;
		call->refused_msg = "server busy: too many request bodies "
				    "are being received; try again";
		call->retry_after = HTTP_BODY_RETRY;
		call->discard_max = len > 0 ? len : call->cap;
		call->reading_body = true;
		return MHD_YES;
	}
	/* dd_buf's cap 0 means unlimited, so a no-body route gets 1 and the
	 * explicit check in http_upload. A declared length caps the buffer's
	 * growth (libmicrohttpd delivers no more). A valid token's declared
	 * body is reserved whole when its first bytes arrive (http_upload);
	 * anybody else's starts at HTTP_BODY_START. */
	dd_buf_init(&call->body, len > 0 ? (size_t)len : call->cap ? call->cap
									: 1);
	call->reserve_whole = len > 0 && call->token == CONNS_TOKEN_VALID;
	if (len > 0 && !call->reserve_whole &&
	    dd_buf_reserve(&call->body, len < HTTP_BODY_START ? (size_t)len :
			   HTTP_BODY_START) < 0)
		return http_fail_early(conn, call, method, url, 503,
				       "out of memory");
	call->reading_body = len > 0 || chunked;
	return MHD_YES;
}

/* Frees the stash's slots unused for HTTP_STASH_IDLE (all: `now` < 0).
 * With st->mu held. */
static void http_stash_trim(struct http_stash *st, double now)
{
	unsigned i = 0;

	while (i < st->n) {
		if (now >= 0 && now - st->slot[i].since < HTTP_STASH_IDLE) {
			i++;
			continue;
		}
		free(st->slot[i].data);
		st->bytes -= st->slot[i].alloc;
		st->slot[i] = st->slot[--st->n];
	}
}

/* Gives the body of `call` (empty) a buffer of `need` bytes or more:
 * the smallest kept one that holds it with at most HTTP_STASH_SLACK to
 * spare; else the smallest larger kept one, if the memory limits take
 * its whole size as this body's (conns_body_hold); else the largest kept
 * one too small for it, grown (the pages it has stay); else a new one.
 * A grown or new one gets half the slack as room, so that bodies a
 * little longer than this one fit it later. 0 or -ENOMEM. */
static int http_stash_take(struct http_server *h, struct http_call *call,
			   size_t need)
{
	struct http_stash *st = &h->stash;
	struct dd_buf *b = &call->body;
	unsigned i, fit = HTTP_STASH_SLOTS, big = HTTP_STASH_SLOTS;
	unsigned small = HTTP_STASH_SLOTS, take;
	size_t slack, want, have = 0;
	uint8_t *p = NULL;

	if (need < HTTP_STASH_MIN || need > SIZE_MAX / 2)
		return dd_buf_reserve(b, need);
	slack = HTTP_STASH_SLACK(need);
	want = need + slack / 2;
	pthread_mutex_lock(&st->mu);
	for (i = 0; i < st->n; i++) {
		size_t a = st->slot[i].alloc;
		unsigned *to = a < need ? &small : a <= need + slack ? &fit
								    : &big;

		if (*to == HTTP_STASH_SLOTS ||
		    (to == &small ? a > st->slot[*to].alloc
				  : a < st->slot[*to].alloc))
			*to = i;
	}
	take = fit;
	if (take == HTTP_STASH_SLOTS && big < HTTP_STASH_SLOTS &&
	    conns_body_hold(h->conns, call->tracked,
			    st->slot[big].alloc) == 0)
		take = big;
	if (take == HTTP_STASH_SLOTS)
		take = small;
	if (take < HTTP_STASH_SLOTS) {
		p = st->slot[take].data;
		have = st->slot[take].alloc;
		st->bytes -= have;
		st->slot[take] = st->slot[--st->n];
	}
	if (have >= need)
		st->reused++;
	else if (have)
		st->grown++;
	else
		st->fresh++;
	pthread_mutex_unlock(&st->mu);
	if (have >= need) {
		want = have;
	} else {
		uint8_t *q = realloc(p, want);

		if (!q) {
			free(p);
			return -ENOMEM;
		}
		p = q;
	}
	b->data = p;
	b->alloc = want;
	b->len = 0;
	return 0;
}

/* The ticker's: kept buffers unused for HTTP_STASH_IDLE go. */
static void http_stash_tick(void *arg)
{
	struct http_stash *st = arg;

	pthread_mutex_lock(&st->mu);
	http_stash_trim(st, dd_monotonic());
	pthread_mutex_unlock(&st->mu);
}

/* Releases a request's body, keeping its buffer if it was a trusted one
 * and the stash has room. */
static void http_body_done(struct http_server *h, struct http_call *call)
{
	struct http_stash *st = &h->stash;
	struct dd_buf *b = &call->body;

	if (call->reserve_whole && b->alloc >= HTTP_STASH_MIN) {
		pthread_mutex_lock(&st->mu);
		if (st->n < HTTP_STASH_SLOTS &&
		    b->alloc <= HTTP_STASH_BYTES - st->bytes) {
			st->slot[st->n].data = b->data;
			st->slot[st->n].alloc = b->alloc;
			st->slot[st->n].since = dd_monotonic();
			st->n++;
			st->bytes += b->alloc;
			b->data = NULL;
			b->alloc = 0;
			b->len = 0;
		}
		pthread_mutex_unlock(&st->mu);
	}
	dd_buf_release(b);
}

/* A request whose body is only read to be dropped (refused, too large)
 * is no longer in flight: a stop does not wait for a client sending it,
 * however slowly. */
static void http_uncount(struct http_call *call)
{
	if (call->counted && (call->refused || call->too_large)) {
		call->counted = false;
		__atomic_sub_fetch(&call->dmn->active, 1, __ATOMIC_SEQ_CST);
	}
}

/* A piece of the body: keep it while under the cap, else drop it. */
static enum MHD_Result http_upload(struct http_call *call, const char *data,
				   size_t n)
{
	call->bytes_in += n;
	conns_body(call->dmn->h->conns, call->tracked, n);
	if (!call->too_large && !call->no_memory && !call->refused) {
		if (n > call->cap - call->body.len) {
			call->too_large = true;
			dd_buf_release(&call->body);
		} else {
			int rc = 0;

			if (call->reserve_whole && !call->body.alloc)
				rc = http_stash_take(call->dmn->h, call,
						     call->body.cap);

			if (rc == 0)
				rc = dd_buf_append(&call->body, data, n);

			if (rc == -E2BIG) {
				call->too_large = true;
				dd_buf_release(&call->body);
			} else if (rc < 0) {
				call->no_memory = true;
				dd_buf_release(&call->body);
			}
		}
	}
	http_uncount(call);
	if (call->too_large || call->no_memory || call->refused) {
		call->discarded += n;
		if (call->discarded > (call->discard_max ? call->discard_max
							 : HTTP_DISCARD_MAX))
			return MHD_NO;
	}
	return MHD_YES;
}

/* The connection table's entry for `conn` (see http_conn_notify). */
static struct conn *http_conn_entry(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version,
				   const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_daemon *dmn = cls;
	struct http_server *h = dmn->h;
	struct http_call *call = *con_cls;
	struct http_request req;
	struct http_reply rep = { 0 };
	enum MHD_Result ret;
	http_handler fn;

	(void)version;
	if (!call) {
		call = calloc(1, sizeof(*call));
		if (!call)
			return MHD_NO;
		call->dmn = dmn;
		call->t0 = dd_monotonic();
		call->tracked = http_conn_entry(conn);
		__atomic_add_fetch(&dmn->active, 1, __ATOMIC_SEQ_CST);
		call->counted = true;
		*con_cls = call;
		ret = http_begin(h, conn, call, method, url);
		http_uncount(call);
		conns_request(h->conns, call->tracked, call->token,
			      call->token == CONNS_TOKEN_VALID ? call->who.name
							       : NULL,
			      call->reading_body, dd_monotonic());
		return ret;
	}
	if (*upload_data_size) {
		ret = http_upload(call, upload_data, *upload_data_size);

		*upload_data_size = 0;
		return ret;
	}
	conns_busy(h->conns, call->tracked);
	if (call->refused) {
		struct http_reply busy = { 0 };

		if (!call->retry_after)
			return http_fail_early(conn, call, method, url,
					       call->refused, call->refused_msg);
		http_reply_error(&busy, call->refused, "%s", call->refused_msg);
		busy.retry_after = call->retry_after;
		return http_send(conn, call, method, url, &busy);
	}
	if (call->too_large) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "request body too large (limit %zu bytes)", call->cap);
		return http_fail_early(conn, call, method, url, 413, msg);
	}
	if (call->no_memory)
		return http_fail_early(conn, call, method, url, 503,
				       "out of memory");

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.param = call->param;
	req.body = call->body.len ? call->body.data : NULL;
	req.body_len = call->body.len;
	req.who = call->route && call->route->auth ? &call->who : NULL;
	req.conn = conn;
	fn = call->route ? call->route->fn : h->cfg.fallback;
	dd_error_clear();
	fn(h->cfg.payload, &req, &rep);
	if (rep.trusted)
		conns_request(h->conns, call->tracked, CONNS_TOKEN_TICKET, NULL,
			      false, dd_monotonic());
	/* The body is no longer needed: free it before sending the reply. */
	http_body_done(h, call);
	return http_send(conn, call, method, url, &rep);
}

static void http_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_call *call = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!call)
		return;
	conns_idle(call->dmn->h->conns, call->tracked, dd_monotonic());
	if (call->counted)
		__atomic_sub_fetch(&call->dmn->active, 1, __ATOMIC_SEQ_CST);
	http_body_done(call->dmn->h, call);
	free(call);
	*con_cls = NULL;
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	if (n > 0 && msg[0] >= 'A' && msg[0] <= 'Z' && !(msg[1] >= 'A' &&
							  msg[1] <= 'Z'))
		msg[0] = (char)(msg[0] - 'A' + 'a');
	log_info("http: %s", msg);
}

/* ---- daemons on the shared socket ---- */

static void http_free_pem(char *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, strlen(p));
	free(p);
}

static void http_daemon_free(struct http_daemon *d)
{
	if (!d)
		return;
	if (d->mhd) {
		/* Quiesced first, so stopping it leaves the socket open. */
		MHD_quiesce_daemon(d->mhd);
		MHD_stop_daemon(d->mhd);
	}
	http_free_pem(d->key);
	http_free_pem(d->cert);
	free(d);
}

/*
 * MHD's connection notifications: a retired daemon is kept while it has a
 * connection open, even one whose request headers it has not parsed yet
 * (a request only counts in `active` from its headers on); and the
 * connection table sees each one. MHD calls CLOSED before it closes the
 * fd, so the table never shuts down a reused one.
 */
static void http_conn_notify(void *cls, struct MHD_Connection *connection,
			     void **socket_context,
			     enum MHD_ConnectionNotificationCode code)
{
	struct http_daemon *d = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd, *addr;

		__atomic_add_fetch(&d->conns, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&d->h->open, 1, __ATOMIC_SEQ_CST);
		fd = MHD_get_connection_info(connection,
					     MHD_CONNECTION_INFO_CONNECTION_FD);
		addr = MHD_get_connection_info(
			connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		*socket_context = fd ? conns_open(d->h->conns, fd->connect_fd,
						  addr ? addr->client_addr
						       : NULL,
						  dd_monotonic())
				     : NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		conns_close(d->h->conns, *socket_context);
		*socket_context = NULL;
		__atomic_sub_fetch(&d->conns, 1, __ATOMIC_SEQ_CST);
		/* Nobody connected: no body will want the kept buffers
		 * soon. */
		if (__atomic_sub_fetch(&d->h->open, 1, __ATOMIC_SEQ_CST) == 0) {
			pthread_mutex_lock(&d->h->stash.mu);
			http_stash_trim(&d->h->stash, -1);
			pthread_mutex_unlock(&d->h->stash.mu);
		}
	}
}

/* MHD's own limit: room for the table's connections plus those it cut
 * that MHD has not closed yet (it closes them within milliseconds). */
/* What libmicrohttpd accepts: the table's most live connections (max
 * trusted, and max - reserved untrusted beside them while every slot is
 * trusted: conns.h), and room for as many again, at least 64, cut but
 * not closed yet. */
static unsigned http_hard_limit(unsigned max, unsigned reserved)
{
	return 2 * max - reserved + (max < 64 ? 64 : max);
}

static int http_daemon_start(struct http_daemon **out, struct http_server *h,
			     const char *cert_pem, const char *key_pem)
{
	const struct http_config *cfg = &h->cfg;
	struct http_daemon *d;
	unsigned flags;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->h = h;
	d->cert = strdup(cert_pem);
	d->key = strdup(key_pem);
	if (!d->cert || !d->key) {
		http_daemon_free(d);
		return -ENOMEM;
	}
	flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
		MHD_USE_ERROR_LOG;
	if (cfg->threads == 0)
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else
		flags |= MHD_USE_AUTO;
	if (cfg->addr->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	{
		/* The pool size only when there is a pool: MHD warns about
		 * a size of 0. */
		struct MHD_OptionItem extra[] = {
			{ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->threads,
			  NULL },
			{ MHD_OPTION_END, 0, NULL },
		};

		if (cfg->threads < 2)
			extra[0].option = MHD_OPTION_END;
		d->mhd = MHD_start_daemon(
			flags, 0, NULL, NULL, http_access, d,
			/* First, so that every message goes through it. */
			MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, h,
			MHD_OPTION_LISTEN_SOCKET, h->fd,
			MHD_OPTION_HTTPS_MEM_KEY, d->key,
			MHD_OPTION_HTTPS_MEM_CERT, d->cert,
			MHD_OPTION_HTTPS_PRIORITIES, HTTP_TLS_PRIORITIES,
			/* The table (conns.h) enforces the limits: it makes
			 * room by cutting old untrusted connections, so MHD
			 * must accept past them while those close. */
			MHD_OPTION_CONNECTION_LIMIT,
			http_hard_limit(cfg->connection_limit, cfg->reserved),
			MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_sec,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT,
			(size_t)HTTP_CONN_MEMORY,
			MHD_OPTION_NOTIFY_COMPLETED, http_completed, d,
			MHD_OPTION_NOTIFY_CONNECTION, http_conn_notify, d,
			MHD_OPTION_ARRAY, extra,
			MHD_OPTION_END);
	}
	if (!d->mhd) {
		http_daemon_free(d);
		return dd_error_set(-EIO, "cannot start the HTTPS listener "
				    "(a bad TLS key or certificate?)");
	}
	*out = d;
	return 0;
}

/* A non-blocking listening socket for cfg->addr. */
static int http_listen(struct http_server *h)
{
	const struct http_config *cfg = &h->cfg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1, fd, rc;

	fd = socket(cfg->addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
	if (fd < 0)
		return dd_error_set(-errno, "cannot create a socket: %s",
				    strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (cfg->addr->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, cfg->addr, cfg->addrlen) < 0 || listen(fd, 128) < 0) {
		rc = dd_error_set(-errno, "cannot listen: %s", strerror(errno));
		close(fd);
		return rc;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6)
			h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else if (ss.ss_family == AF_INET)
			h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	h->fd = fd;
	return 0;
}

int http_start(struct http_server **out, const struct http_config *cfg)
{
	struct http_server *h;
	int rc;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cfg = *cfg;
	h->cfg.cert_pem = NULL;
	h->cfg.key_pem = NULL;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->stash.mu, NULL);
	rc = dd_ticker_start(&h->stash_ticker, HTTP_STASH_TICK_MS,
			     http_stash_tick, &h->stash);
	if (rc < 0) {
		pthread_mutex_destroy(&h->stash.mu);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return rc;
	}
	{
		struct conns_limits lim = {
			.max = cfg->connection_limit,
			.reserved = cfg->reserved,
			.per_addr = cfg->per_ip_limit,
			.header_sec = cfg->header_timeout_sec,
			.min_body_rate = cfg->min_body_rate,
			.per_client = cfg->per_client_limit,
			.body_bytes = cfg->body_memory,
			.client_body = cfg->client_body_memory,
		};

		rc = conns_new(&h->conns, &lim);
	}
	if (rc == 0)
		rc = http_listen(h);
	if (rc == 0)
		rc = http_daemon_start(&h->current, h, cfg->cert_pem,
				       cfg->key_pem);
	if (rc < 0) {
		http_stop(h);
		return rc;
	}
	*out = h;
	return 0;
}

uint16_t http_port(const struct http_server *h)
{
	return h->port;
}

void http_body_stats(struct http_server *h, struct http_body_stats *out)
{
	pthread_mutex_lock(&h->stash.mu);
	out->kept = h->stash.n;
	out->kept_bytes = h->stash.bytes;
	out->reused = h->stash.reused;
	out->grown = h->stash.grown;
	out->fresh = h->stash.fresh;
	pthread_mutex_unlock(&h->stash.mu);
}

void http_conn_stats(struct http_server *h, struct conns_stats *out)
{
	conns_stats(h->conns, out);
}

int http_reload(struct http_server *h, const char *cert_pem,
		const char *key_pem)
{
	struct http_daemon *fresh, *old;
	int rc;

	/* Both daemons poll the socket for a moment; either may accept. */
	rc = http_daemon_start(&fresh, h, cert_pem, key_pem);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&h->lock);
	old = h->current;
	h->current = fresh;
	if (old) {
		MHD_quiesce_daemon(old->mhd);
		old->retired = dd_monotonic();
		old->next = h->retired;
		h->retired = old;
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static unsigned http_daemon_conns(struct http_daemon *d)
{
	return __atomic_load_n(&d->conns, __ATOMIC_SEQ_CST);
}

static unsigned http_daemon_active(struct http_daemon *d)
{
	return __atomic_load_n(&d->active, __ATOMIC_SEQ_CST);
}

void http_reap(struct http_server *h)
{
	struct http_daemon **pp, *d, *done = NULL;
	double now = dd_monotonic();

	pthread_mutex_lock(&h->lock);
	pp = &h->retired;
	while ((d = *pp) != NULL) {
		if ((http_daemon_active(d) == 0 && http_daemon_conns(d) == 0) ||
		    now - d->retired >= h->cfg.drain_sec) {
			*pp = d->next;
			d->next = done;
			done = d;
		} else {
			pp = &d->next;
		}
	}
	pthread_mutex_unlock(&h->lock);
	/* Stopping joins connection threads: not under the lock. */
	while ((d = done) != NULL) {
		done = d->next;
		if (http_daemon_active(d))
			log_warning("reload: cutting %u request(s) still "
				    "running after %u s", http_daemon_active(d),
				    h->cfg.drain_sec);
		http_daemon_free(d);
	}
}

unsigned http_active(struct http_server *h)
{
	struct http_daemon *d;
	unsigned n = 0;

	pthread_mutex_lock(&h->lock);
	if (h->current)
		n += http_daemon_active(h->current);
	for (d = h->retired; d; d = d->next)
		n += http_daemon_active(d);
	pthread_mutex_unlock(&h->lock);
	return n;
}

void http_stop(struct http_server *h)
{
	double until;

	if (!h)
		return;
	/* Stop accepting, then give the requests in flight their time. */
	pthread_mutex_lock(&h->lock);
	if (h->current) {
		MHD_quiesce_daemon(h->current->mhd);
		/* and refuse new connections at once, rather than let them
		 * wait in the backlog through the drain (the fd stays open:
		 * the daemon may still hold it a moment) */
		if (h->fd >= 0)
			shutdown(h->fd, SHUT_RDWR);
		h->current->retired = dd_monotonic();
		h->current->next = h->retired;
		h->retired = h->current;
		h->current = NULL;
	}
	pthread_mutex_unlock(&h->lock);
	until = dd_monotonic() + h->cfg.drain_sec;
	while (http_active(h) > 0 && dd_monotonic() < until)
		usleep(20 * 1000);
	h->cfg.drain_sec = 0;
	http_reap(h);
	if (h->fd >= 0)
		close(h->fd);
	/* After the daemons: their connections are all closed now. */
	conns_free(h->conns);
	dd_ticker_stop(h->stash_ticker);
	http_stash_trim(&h->stash, -1);
	pthread_mutex_destroy(&h->stash.mu);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

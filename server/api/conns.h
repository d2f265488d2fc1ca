/*
 * conns.h - which connections the server keeps, and which it cuts, so that
 * strangers cannot lock agents out.
 *
 * The HTTP front end reports each connection's life here: opened, request
 * headers complete (with or without a valid token), body bytes, response
 * sent, closed. A connection is *untrusted* until a request on it showed a
 * valid token, then *trusted* until one shows an invalid one (a token
 * revoked meanwhile). The table enforces:
 *
 *  - a header deadline: an untrusted connection must deliver complete
 *    request headers within `header_sec` of its accept, and again of the
 *    end of each response. The deadline is absolute: trickling bytes does
 *    not extend it. It covers the TLS handshake too.
 *  - a minimum body rate: a request body (trusted or not) must arrive at
 *    `min_body_rate` bytes/s on average, after `header_sec` of grace.
 *  - reserved slots: untrusted connections hold at most max - reserved.
 *  - a per-address limit: at most `per_addr` untrusted connections from one
 *    IPv4 address or IPv6 /64.
 *
 * When a new connection would break a limit, the OLDEST untrusted
 * connection (from the same address, for the per-address limit; from an
 * address holding two or more, among those open a second or from an
 * address cut from lately, if any, for the untrusted slots) is
 * cut, not the new one: an agent that authenticates within milliseconds
 * always gets in while strangers churn, and a lone newcomer from an
 * address of its own is not pushed out by strangers churning from many
 * others. Only when every slot is trusted is the
 * new connection itself cut. Trusted connections are never cut for their
 * age; the front end's idle timeout governs them.
 *
 * "Cut" is shutdown(fd, SHUT_RDWR), never close(): the fd belongs to the
 * HTTP library, which sees end-of-file and closes it. The caller must call
 * conns_close() before the fd is closed (libmicrohttpd's CLOSED
 * notification does); both run under the table's lock, so a cut never hits
 * a reused fd.
 *
 * All functions are thread-safe. A watchdog thread (conns_new starts it,
 * conns_free stops it) applies the deadlines twice a second and logs what
 * it cut, at most every 10 s.
 */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conns_limits {
	unsigned max;               /* connections at once, >= 1 */
	unsigned reserved;          /* of max, kept for trusted ones; < max */
	unsigned per_addr;          /* untrusted from one address; 0 = any */
	unsigned header_sec;        /* >= 1 */
	unsigned min_body_rate;     /* bytes/s; 0 = no minimum */
};

/* What the table has done since it started (for logs and tests). */
struct conns_stats {
	unsigned open;              /* connections not cut yet */
	unsigned untrusted;         /* of them */
	uint64_t headers_late;      /* cut: no request headers in time */
	uint64_t body_slow;         /* cut: body below the minimum rate */
	uint64_t evicted;           /* cut: oldest untrusted, for a new one */
	uint64_t refused;           /* cut on arrival: every slot trusted */
};

struct conns;
struct conn;

/* A table with these limits and its watchdog thread. -ENOMEM, or the
 * pthread error as a negative code. */
int conns_new(struct conns **out, const struct conns_limits *lim);
/* Stops the watchdog and frees. Every connection must be closed first
 * (conns_close). NULL is a no-op. */
void conns_free(struct conns *t);

/*
 * A new connection on `fd` from `addr`: an untrusted entry, waiting for
 * request headers from `now` (dd_monotonic()). Older untrusted
 * connections may be cut to make room, or this one when every slot is
 * trusted. Returns the entry, owned by the table until conns_close(); NULL
 * when out of memory, and then the connection is cut at once.
 */
struct conn *conns_open(struct conns *t, int fd, const struct sockaddr *addr,
			double now);
/* The connection is going away; its fd is still open. NULL is a no-op. */
void conns_close(struct conns *t, struct conn *c);

/* What the request's token made of its connection. */
enum conns_token {
	CONNS_TOKEN_NONE,           /* the route needs none: no change */
	CONNS_TOKEN_VALID,          /* trusted from now on */
	CONNS_TOKEN_INVALID,        /* untrusted again (a revoked token) */
};

/* Request headers are complete; `body` when a request body follows.
 * NULL is a no-op. */
void conns_request(struct conns *t, struct conn *c, enum conns_token token,
		   bool body, double now);
/* `n` more body bytes arrived. */
void conns_body(struct conns *t, struct conn *c, size_t n);
/* The body is complete (or there was none); the request is being
 * handled or answered. */
void conns_busy(struct conns *t, struct conn *c);
/* The response was sent: the next request's header deadline starts. */
void conns_idle(struct conns *t, struct conn *c, double now);

/* Cuts connections past a deadline (the watchdog calls it; tests may). */
void conns_tick(struct conns *t, double now);

void conns_stats(struct conns *t, struct conns_stats *out);

#endif

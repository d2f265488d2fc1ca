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
 *  - a client's share of a full server: when every slot is trusted, a
 *    newcomer waits beyond `max` (as many as untrusted slots) until its
 *    header deadline or a valid token; with the token, the client (the
 *    token's name) holding the most gives up one for it: its oldest idle
 *    connection, else (holding more than `per_client`) its oldest. A
 *    stranger makes no trusted connection go, nor does a client past
 *    its share break its own request for its newcomer. A download
 *    ticket trusts its connection only into a free trusted slot and
 *    only until its response is sent, all tickets counting as one
 *    client.
 *  - a body-rate window: besides the average, every `2 * header_sec` of a
 *    body must bring min_body_rate bytes/s, so a fast start buys no
 *    stall.
 *  - body memory: a request body is read into memory only while the
 *    bodies being read hold under `body_bytes` in all and `client_body`
 *    for its client (declared lengths; conns_body_admit), else it is
 *    answered 503 and dropped as it arrives.
 *
 * When a new connection would break a limit, the OLDEST untrusted
 * connection (from the same address, for the per-address limit; from an
 * address holding two or more, among those open a second or from an
 * address cut from lately, if any, for the untrusted slots) is
 * cut, not the new one: an agent that authenticates within milliseconds
 * always gets in while strangers churn, and a lone newcomer from an
 * address of its own is not pushed out by strangers churning from many
 * others. When every slot is trusted, the newcomer waits beyond the
 * limit (above); once it shows a token, a connection of the client
 * holding the most goes for it, and only when there is none is the
 * newcomer itself cut. Trusted connections are never cut for their age;
 * the front end's idle timeout governs them.
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
	unsigned per_client;        /* a client's share of a full server:
				     * above it, a busy one may be cut;
				     * 0 = idle ones only */
	uint64_t body_bytes;        /* bodies in memory at once; 0 = any */
	uint64_t client_body;       /* of them, one client's; 0 = any */
};

/* What the table has done since it started (for logs and tests). */
struct conns_stats {
	unsigned open;              /* connections not cut yet */
	unsigned untrusted;         /* of them */
	uint64_t headers_late;      /* cut: no request headers in time */
	uint64_t body_slow;         /* cut: body below the minimum rate */
	uint64_t evicted;           /* cut: oldest untrusted, for a new one */
	uint64_t refused;           /* cut when it showed a token: every
				     * slot trusted, nobody holding more */
	uint64_t hoard_cut;         /* cut: the biggest holder's, for a newcomer */
	uint64_t body_refused;      /* bodies over the memory limits */
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
	CONNS_TOKEN_TICKET,         /* a download ticket: trusted until the
				     * response is sent */
};

/* Request headers are complete; `body` when a request body follows.
 * `who` is the valid token's client name (CONNS_TOKEN_VALID). NULL c is
 * a no-op. */
void conns_request(struct conns *t, struct conn *c, enum conns_token token,
		   const char *who, bool body, double now);
/* May the request on c (of client `who`, NULL when it showed no token)
 * read a body of `len` bytes into memory (the memory limits)? 0, or
 * -EBUSY. Admitted bytes are held until the
 * response is sent (conns_idle) or the connection closes. A NULL c is
 * admitted. */
int conns_body_admit(struct conns *t, struct conn *c, const char *who,
		     uint64_t len);
/* May the body admitted on c hold `held` bytes of memory instead (a
 * buffer larger than its declared length)? Within both memory limits
 * counting every other body, with no exemption for a body alone: 0 (then
 * counted so until the response), or -EBUSY. A NULL c is refused. */
int conns_body_hold(struct conns *t, struct conn *c, uint64_t held);
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

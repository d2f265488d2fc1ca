/*
 * conns.c - see conns.h.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conns.h"
#include "log.h"
#include "util.h"

/* How often the watchdog looks, and how often it may log. */
#define CONNS_TICK_MS 500
#define CONNS_LOG_SEC 10.0

/* Buckets of the address count conns_crowded() makes (a power of 2);
 * the age from which a connection of a crowded address goes first (past
 * a TLS handshake and a request's headers), and for how long after a cut
 * in its bucket a younger one does too (conns_crowded). */
#define CONNS_ADDR_BUCKETS 4096
#define CONNS_CROWD_GRACE 1.0
#define CONNS_CROWD_MEMORY 10.0

enum conn_state {
	CONN_WAITING,               /* for request headers (or TLS) */
	CONN_BODY,                  /* receiving a request body */
	CONN_BUSY,                  /* handling or answering a request */
};

struct conn {
	struct conn *prev, *next;   /* in t->head, oldest first */
	int fd;
	sa_family_t family;
	uint8_t addr[8];            /* IPv4 address, or IPv6 /64 prefix */
	enum conn_state state;
	bool trusted;
	bool cut;                   /* shut down; waiting for conns_close */
	unsigned bucket;            /* conns_addr_bucket() of its address */
	bool trust_ends;            /* a ticket's: untrusted once answered */
	double opened;
	double since;               /* CONN_WAITING from; CONN_BODY from */
	uint64_t body_bytes;
	double win_from;            /* the body-rate window's start */
	uint64_t win_bytes;         /* body_bytes then */
	bool win_set;               /* a window started (after the grace) */
	uint64_t who;               /* its client (conns_who), 0: none */
	uint64_t body_held;         /* admitted body bytes (conns_body_admit) */
};

struct conns {
	struct conns_limits lim;
	pthread_mutex_t lock;
	struct conn *head, *tail;
	struct conns_stats stats;   /* open, untrusted: counted on demand */
	struct dd_ticker *watchdog;   /* conns_watch every CONNS_TICK_MS */
	double logged_at;
	struct conns_stats logged;
	uint64_t addr_salt;         /* of conns_addr_bucket, random */
	double bucket_cut[CONNS_ADDR_BUCKETS];  /* its last cut, or 0 */
};

/* ---- the table (callers hold t->lock) ---- */

static void conns_cut(struct conns *t, struct conn *c, double now)
{
	/* The fd is open: conns_close has not run (we hold the lock). */
	shutdown(c->fd, SHUT_RDWR);
	c->cut = true;
	t->bucket_cut[c->bucket] = now;
}

static bool conns_same_addr(const struct conn *a, const struct conn *b)
{
	return a->family == b->family &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* Live (not cut) connections, overall and for c's address. */
struct conns_census {
	unsigned total, untrusted, from_addr;
	struct conn *oldest_from_addr;
};

static void conns_count(const struct conns *t, const struct conn *c,
			struct conns_census *n)
{
	struct conn *p;

	memset(n, 0, sizeof(*n));
	for (p = t->head; p; p = p->next) {
		if (p->cut)
			continue;
		n->total++;
		if (p->trusted)
			continue;
		n->untrusted++;
		if (conns_same_addr(p, c)) {
			n->from_addr++;
			if (!n->oldest_from_addr)
				n->oldest_from_addr = p;
		}
	}
}

/* An address's bucket in conns_crowded()'s count: salted, so that a
 * stranger cannot pick addresses that share another's bucket. */
static unsigned conns_addr_bucket(const struct conns *t, const struct conn *c)
{
	uint64_t h = t->addr_salt ^ c->family;

	for (size_t i = 0; i < sizeof(c->addr); i++)
		h = (h ^ c->addr[i]) * 0x100000001b3ull;
	h ^= h >> 29;
	return (unsigned)(h & (CONNS_ADDR_BUCKETS - 1));
}

/*
 * The victim when untrusted connections fill their slots: the oldest
 * untrusted connection of a crowd, else the oldest of all. A crowd is
 * an address holding two or more untrusted connections, counting those
 * open CONNS_CROWD_GRACE, or any when the address had one cut within
 * CONNS_CROWD_MEMORY. So strangers churning from many addresses push out
 * each other, however fast they come back, not a lone newcomer from an
 * address of its own that is still in its handshake (a monitoring probe,
 * an agent's first request); and an agent's connections opened together
 * from an address nothing was cut from are never taken for a crowd while
 * they are young. Addresses are counted in hashed buckets: two addresses
 * sharing one count as one, which can only make a lone one look crowded.
 */
static struct conn *conns_crowded(const struct conns *t, double now)
{
	uint16_t count[CONNS_ADDR_BUCKETS];
	struct conn *p, *oldest = NULL;

	memset(count, 0, sizeof(count));
	for (p = t->head; p; p = p->next)
		if (!p->cut && !p->trusted && count[p->bucket] < UINT16_MAX)
			count[p->bucket]++;
	for (p = t->head; p; p = p->next) {
		if (p->cut || p->trusted)
			continue;
		if (!oldest)
			oldest = p;
		if (count[p->bucket] >= 2 &&
		    (now - p->opened >= CONNS_CROWD_GRACE ||
		     (t->bucket_cut[p->bucket] > 0 &&
		      now - t->bucket_cut[p->bucket] < CONNS_CROWD_MEMORY)))
			return p;
	}
	return oldest;
}

/* A client's key: its name hashed with the table's salt (0: no name).
 * Tickets' connections count as one client of their own. */
static uint64_t conns_who(const struct conns *t, const char *name)
{
	uint64_t h = t->addr_salt ^ 0xcbf29ce484222325ull;

	if (!name)
		return 0;
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 0x100000001b3ull;
	h ^= h >> 31;
	return h ? h : 1;
}

/* Live trusted connections, c aside. */
static unsigned conns_trusted_count(const struct conns *t, const struct conn *c)
{
	const struct conn *p;
	unsigned n = 0;

	for (p = t->head; p; p = p->next)
		if (p != c && !p->cut && p->trusted)
			n++;
	return n;
}

/* A trusted connection's client and its place in the table, for
 * counting clients exactly (conns_hoarder). */
struct conns_holding {
	uint64_t who;
	size_t pos;
	struct conn *conn;
};

static int conns_holding_cmp(const void *a, const void *b)
{
	const struct conns_holding *x = a, *y = b;

	if (x->who != y->who)
		return x->who < y->who ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * When every slot is trusted and newcomer c shows a valid token, the
 * connection cut for it: of the client holding the most trusted ones (c
 * aside), if two or more, its oldest idle one; else, if it holds more
 * than per_client, its oldest (a request of it fails: the client holds
 * more than its share of a full server), unless that client is c's own.
 * NULL: none (c goes). Clients are counted exactly (sorted by client:
 * two sharing a hash bucket must not hide the one holding the most); out
 * of memory, none.
 */
static struct conn *conns_hoarder(const struct conns *t, const struct conn *c)
{
	struct conns_holding *v;
	struct conn *p, *top = NULL;
	size_t n = 0, i, j, best = 0;

	for (p = t->head; p; p = p->next)
		n += p != c && !p->cut && p->trusted && p->who != 0;
	if (!n || !(v = malloc(n * sizeof(*v))))
		return NULL;
	for (p = t->head, i = 0, j = 0; p; p = p->next, j++)
		if (p != c && !p->cut && p->trusted && p->who != 0) {
			v[i].who = p->who;
			v[i].pos = j;
			v[i++].conn = p;
		}
	qsort(v, n, sizeof(*v), conns_holding_cmp);
	/* runs of one client, its oldest first; the longest run wins,
	 * between equals the one whose oldest is oldest */
	for (i = 0; i < n; i = j) {
		for (j = i; j < n && v[j].who == v[i].who; j++)
			;
		if (j - i > best ||
		    (j - i == best && v[i].conn->opened < top->opened)) {
			best = j - i;
			top = v[i].conn;
		}
	}
	free(v);
	if (!top || best < 2)
		return NULL;
	for (p = t->head; p; p = p->next)
		if (p != c && !p->cut && p->trusted && p->who == top->who &&
		    p->state == CONN_WAITING)
			return p;
	/* none idle: past its share its oldest, unless the share is c's
	 * own client's (it would break its own request: c goes) */
	return t->lim.per_client && best > t->lim.per_client &&
	       top->who != c->who ? top : NULL;
}

/* Newcomer c showed a valid token: if trusted connections now overfill
 * the server (c waited beyond it), a client holding several gives one
 * up, or c goes. */
static void conns_make_trusted_room(struct conns *t, struct conn *c,
				    double now)
{
	struct conns_census n;
	struct conn *h;

	conns_count(t, c, &n);
	if (n.total - n.untrusted <= t->lim.max)
		return;     /* c's trusted slot was free */
	if ((h = conns_hoarder(t, c)) != NULL) {
		conns_cut(t, h, now);
		t->stats.hoard_cut++;
	} else {
		conns_cut(t, c, now);
		t->stats.refused++;
	}
}

/* Cuts older untrusted connections so that the new one `c` fits the
 * per-address and untrusted limits, and one for the total limit while
 * trusted ones hold less than all of it; with every slot trusted, c
 * waits beyond it. */
static void conns_make_room(struct conns *t, struct conn *c, double now)
{
	const struct conns_limits *lim = &t->lim;
	struct conns_census n;
	struct conn *victim;
	bool cut_one = false;

	for (;;) {
		conns_count(t, c, &n);
		if (lim->per_addr && n.from_addr > lim->per_addr)
			victim = n.oldest_from_addr;
		else if (n.untrusted > lim->max - lim->reserved)
			victim = conns_crowded(t, now);
		else if (!cut_one && n.total > lim->max &&
			 n.total - n.untrusted < lim->max)
			/* Past max_connections while agents hold less than
			 * all of it: a stranger makes room, one a newcomer
			 * (those waiting beyond a full server when a trusted
			 * one closed are not all cut by the next arrival).
			 * When agents hold all of it, newcomers wait beyond
			 * it, as many as the untrusted slots, until their
			 * deadline or a token (conns_make_trusted_room). */
			victim = conns_crowded(t, now);
		else
			return;
		/* c itself is untrusted, so there is always a victim; it is
		 * c only when c is the one untrusted, which no rule above
		 * cuts for: a guard */
		assert(victim != NULL);
		if (victim == c)
			return;
		conns_cut(t, victim, now);
		t->stats.evicted++;
		cut_one = true;
	}
}

static void conns_set_addr(struct conn *c, const struct sockaddr *sa)
{
	c->family = sa ? sa->sa_family : AF_UNSPEC;
	if (c->family == AF_INET)
		memcpy(c->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (c->family == AF_INET6)
		/* One host easily owns a /64: count it as one address. */
		memcpy(c->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		       8);
}

struct conn *conns_open(struct conns *t, int fd, const struct sockaddr *addr,
			double now)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		shutdown(fd, SHUT_RDWR);
		return NULL;
	}
	c->fd = fd;
	conns_set_addr(c, addr);
	c->bucket = conns_addr_bucket(t, c);
	c->state = CONN_WAITING;
	c->opened = now;
	c->since = now;
	pthread_mutex_lock(&t->lock);
	c->prev = t->tail;
	if (t->tail)
		t->tail->next = c;
	else
		t->head = c;
	t->tail = c;
	conns_make_room(t, c, now);
	pthread_mutex_unlock(&t->lock);
	return c;
}

void conns_close(struct conns *t, struct conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		t->tail = c->prev;
	pthread_mutex_unlock(&t->lock);
	free(c);
}

void conns_request(struct conns *t, struct conn *c, enum conns_token token,
		   const char *who, bool body, double now)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	switch (token) {
	case CONNS_TOKEN_NONE:
		break;
	case CONNS_TOKEN_VALID:
		c->trust_ends = false;
		c->who = conns_who(t, who);
		if (!c->trusted) {
			c->trusted = true;
			conns_make_trusted_room(t, c, now);
		}
		break;
	case CONNS_TOKEN_TICKET:
		/* only into a free trusted slot: tickets take none from
		 * clients, nor push trusted connections past max */
		if (!c->trusted &&
		    conns_trusted_count(t, c) < t->lim.max) {
			c->who = conns_who(t, "\n ticket");
			c->trusted = true;
			c->trust_ends = true;
		}
		break;
	case CONNS_TOKEN_INVALID:
		c->trusted = false;
		c->trust_ends = false;
		break;
	}
	c->state = body ? CONN_BODY : CONN_BUSY;
	c->since = now;
	c->body_bytes = 0;
	c->win_set = false;
	pthread_mutex_unlock(&t->lock);
}

/* The body memory held by every connection but c, and of it by client
 * `key`'s (0: none). With t->lock held. */
static void conns_held_others(const struct conns *t, const struct conn *c,
			      uint64_t key, uint64_t *all, uint64_t *mine)
{
	const struct conn *p;

	*all = *mine = 0;
	for (p = t->head; p; p = p->next) {
		if (p == c || p->cut)
			continue;
		*all += p->body_held;
		if (p->who == key && key != 0)
			*mine += p->body_held;
	}
}

int conns_body_admit(struct conns *t, struct conn *c, const char *who,
		     uint64_t len)
{
	uint64_t key, all, mine;
	int rc = 0;

	if (!c)
		return 0;
	pthread_mutex_lock(&t->lock);
	key = conns_who(t, who);
	conns_held_others(t, c, key, &all, &mine);
	/* A body alone is admitted whatever its size (within its route's
	 * cap): a limit below one request's size makes that client's
	 * requests, or all, take turns, never fail for good. */
	if ((t->lim.body_bytes && all > 0 && all + len > t->lim.body_bytes) ||
	    (t->lim.client_body && key != 0 && mine > 0 &&
	     mine + len > t->lim.client_body)) {
		t->stats.body_refused++;
		rc = -EBUSY;
	} else {
		c->body_held = len;
		if (key)
			c->who = key;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int conns_body_hold(struct conns *t, struct conn *c, uint64_t held)
{
	uint64_t all, mine;
	int rc = 0;

	if (!c)
		return -EBUSY;
	pthread_mutex_lock(&t->lock);
	conns_held_others(t, c, c->who, &all, &mine);
	if ((t->lim.body_bytes && all + held > t->lim.body_bytes) ||
	    (t->lim.client_body && c->who != 0 &&
	     mine + held > t->lim.client_body))
		rc = -EBUSY;
	else if (held > c->body_held)
		c->body_held = held;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void conns_body(struct conns *t, struct conn *c, size_t n)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	c->body_bytes += n;
	pthread_mutex_unlock(&t->lock);
}

void conns_busy(struct conns *t, struct conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	c->state = CONN_BUSY;
	pthread_mutex_unlock(&t->lock);
}

void conns_idle(struct conns *t, struct conn *c, double now)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	c->state = CONN_WAITING;
	c->since = now;
	c->body_held = 0;
	if (c->trust_ends) {
		c->trusted = false;
		c->trust_ends = false;
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- deadlines ---- */

static bool conns_headers_late(const struct conns *t, const struct conn *c,
			       double now)
{
	return !c->trusted && c->state == CONN_WAITING &&
	       now - c->since >= t->lim.header_sec;
}

/* Below the minimum rate averaged since the headers, after a grace of
 * header_sec: a slow start is forgiven, a trickle is not. Nor is a stall
 * after a fast start: every window of 2 * header_sec past the grace must
 * bring the minimum rate too (conns_body_window moves the window). */
static bool conns_body_slow(const struct conns *t, const struct conn *c,
			    double now)
{
	double late = now - c->since - t->lim.header_sec;
	double win = now - c->win_from;

	if (c->state != CONN_BODY || t->lim.min_body_rate == 0 || late <= 0)
		return false;
	if ((double)c->body_bytes < (double)t->lim.min_body_rate * late)
		return true;
	return c->win_set && win >= 2.0 * t->lim.header_sec &&
	       (double)(c->body_bytes - c->win_bytes) <
	       (double)t->lim.min_body_rate * win;
}

/* The first window starts when the grace ends (what came before counts
 * for none); one that brought the minimum rate makes way for the next. */
static void conns_body_window(const struct conns *t, struct conn *c,
			      double now)
{
	if (c->state != CONN_BODY ||
	    now - c->since < (double)t->lim.header_sec ||
	    (c->win_set && now - c->win_from < 2.0 * t->lim.header_sec))
		return;
	c->win_set = true;
	c->win_from = now;
	c->win_bytes = c->body_bytes;
}

void conns_tick(struct conns *t, double now)
{
	struct conn *c;

	pthread_mutex_lock(&t->lock);
	for (c = t->head; c; c = c->next) {
		if (c->cut)
			continue;
		if (conns_headers_late(t, c, now)) {
			conns_cut(t, c, now);
			t->stats.headers_late++;
		} else if (conns_body_slow(t, c, now)) {
			conns_cut(t, c, now);
			t->stats.body_slow++;
		} else {
			conns_body_window(t, c, now);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static void conns_stats_locked(const struct conns *t, struct conns_stats *out)
{
	const struct conn *c;

	*out = t->stats;
	out->open = 0;
	out->untrusted = 0;
	for (c = t->head; c; c = c->next) {
		if (c->cut)
			continue;
		out->open++;
		if (!c->trusted)
			out->untrusted++;
	}
}

void conns_stats(struct conns *t, struct conns_stats *out)
{
	pthread_mutex_lock(&t->lock);
	conns_stats_locked(t, out);
	pthread_mutex_unlock(&t->lock);
}

/* ---- the watchdog ---- */

/* Appends "; <n> <what>" to a message when n > 0. */
static void conns_log_part(char *msg, size_t size, uint64_t n,
			   const char *what)
{
	size_t len = strlen(msg);

	if (n > 0)
		snprintf(msg + len, size - len, "%s%llu %s", len ? "; " : "",
			 (unsigned long long)n, what);
}

/* One line for what was cut since the last one, at most every 10 s: a
 * flood must not flood the log too. */
static void conns_log(struct conns *t, double now)
{
	struct conns_stats s, *o = &t->logged;
	char msg[600] = "", late[80], slow[80];

	if (now - t->logged_at < CONNS_LOG_SEC)
		return;
	conns_stats(t, &s);
	snprintf(late, sizeof(late), "sent no request headers within %u s",
		 t->lim.header_sec);
	snprintf(slow, sizeof(slow), "sent a body slower than %u B/s",
		 t->lim.min_body_rate);
	conns_log_part(msg, sizeof(msg), s.headers_late - o->headers_late,
		       late);
	conns_log_part(msg, sizeof(msg), s.body_slow - o->body_slow, slow);
	conns_log_part(msg, sizeof(msg), s.evicted - o->evicted,
		       "untrusted made room for newer ones");
	conns_log_part(msg, sizeof(msg), s.refused - o->refused,
		       "refused, every slot trusted");
	conns_log_part(msg, sizeof(msg), s.hoard_cut - o->hoard_cut,
		       "of the client holding the most made room, every "
		       "slot trusted");
	conns_log_part(msg, sizeof(msg), s.body_refused - o->body_refused,
		       "request bodies answered 503, over the memory for "
		       "bodies");
	if (msg[0])
		log_info("http: cut connections: %s (now %u open, %u "
			 "untrusted)", msg, s.open, s.untrusted);
	*o = s;
	t->logged_at = now;
}

static void conns_watch(void *arg)
{
	struct conns *t = arg;

	conns_tick(t, dd_monotonic());
	conns_log(t, dd_monotonic());
}

int conns_new(struct conns **out, const struct conns_limits *lim)
{
	struct conns *t;
	int rc;

	*out = NULL;
	if (lim->max == 0 || lim->reserved >= lim->max || lim->header_sec == 0)
		return dd_error_set(-EINVAL, "bad connection limits");
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->lim = *lim;
	t->logged_at = dd_monotonic();
	if (dd_random(&t->addr_salt, sizeof(t->addr_salt)) < 0)
		t->addr_salt = (uint64_t)(uintptr_t)t ^
			       (uint64_t)(dd_monotonic() * 1e9);
	pthread_mutex_init(&t->lock, NULL);
	rc = dd_ticker_start(&t->watchdog, CONNS_TICK_MS, conns_watch, t);
	if (rc < 0) {
		pthread_mutex_destroy(&t->lock);
		free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void conns_free(struct conns *t)
{
	struct conn *c;

	if (!t)
		return;
	dd_ticker_stop(t->watchdog);
	conns_log(t, dd_monotonic() + CONNS_LOG_SEC);
	/* Normally empty; entries left by a library that skipped a
	 * notification are freed, not leaked. */
	while ((c = t->head) != NULL) {
		t->head = c->next;
		free(c);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

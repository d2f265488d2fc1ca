/*
 * test_conns_model.c - the connection table (server/api/conns.c) driven by
 * random sequences of what the HTTP front end reports (opens, requests with
 * and without tokens, tickets, bodies, responses, closes, deadlines),
 * checked after every step against a model of who is trusted:
 *
 *  - the table's counts equal the model's (open, trusted);
 *  - trusted connections never exceed max, live ones 2 max - reserved,
 *    untrusted ones max - reserved once an open made room;
 *  - a stranger (an open, a request without a valid token, a ticket)
 *    cuts no trusted connection, and a trusted idle one is never cut for
 *    its age;
 *  - a valid token shown while a trusted slot is free cuts nothing; when
 *    none is free, the connection cut is the one the policy names (the
 *    client holding the most gives way: its oldest idle one, else past
 *    its share and not the newcomer's own client, its oldest; else the
 *    newcomer).
 *
 * Each connection is one end of a socketpair: a cut shows as end-of-file
 * on the other end. DD_CONNS_SEEDS and DD_CONNS_STEPS make longer runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"
#include "unit.h"
#include "util.h"

#define SLOTS 40
#define NWHO 4              /* clients a..d; a ticket is client NWHO */
#define TICKET NWHO

enum mstate { M_FREE, M_WAITING, M_BODY, M_BUSY };

struct mconn {
	enum mstate st;
	int ours, peer;
	struct conn *c;
	bool cut;                   /* seen cut, waiting for its close */
	bool trusted, ticket;       /* the model's view */
	int who;                    /* -1 none, 0..NWHO-1, TICKET */
	double opened;
	long order;                 /* opening order (the table's list) */
};

static struct mconn m[SLOTS];
static double base, now;
static long opened_count;
static uint64_t rng;
static struct conns_limits lim;
static const char *const names[NWHO] = { "a", "b", "c", "d" };
static int violations;      /* stop a seed after its first failure */

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned pick(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static int live_slot(bool need_uncut)
{
	int idx[SLOTS], n = 0;

	for (int i = 0; i < SLOTS; i++)
		if (m[i].st != M_FREE && (!need_uncut || !m[i].cut))
			idx[n++] = i;
	return n ? idx[pick((unsigned)n)] : -1;
}

/* Marks what the table cut since the last look; returns the slots cut
 * (bitmask). */
static uint64_t collect_cuts(void)
{
	uint64_t cut = 0;
	char b;

	for (int i = 0; i < SLOTS; i++)
		if (m[i].st != M_FREE && !m[i].cut &&
		    recv(m[i].peer, &b, 1, MSG_DONTWAIT) == 0) {
			m[i].cut = true;
			cut |= 1ull << i;
		}
	return cut;
}

static unsigned model_trusted(int except)
{
	unsigned n = 0;

	for (int i = 0; i < SLOTS; i++)
		n += i != except && m[i].st != M_FREE && !m[i].cut &&
		     m[i].trusted;
	return n;
}

static void fail(const char *what, int seed, int step)
{
	fprintf(stderr, "FAIL seed %d step %d: %s\n", seed, step, what);
	violations++;
}

#define EXPECT(cond, seed, step) do { \
	if (cond) unit_passed++; \
	else { unit_failed++; fail(#cond, seed, step); } \
} while (0)

/* The policy's victim when newcomer c shows a valid token and every
 * trusted slot is taken: a slot, or c itself. */
static int expected_victim(int c)
{
	unsigned count[NWHO + 1] = { 0 };
	int first[NWHO + 1], top = -1, idle = -1, oldest = -1;

	for (int w = 0; w <= NWHO; w++)
		first[w] = -1;
	for (int i = 0; i < SLOTS; i++) {
		int w = m[i].who;

		if (i == c || m[i].st == M_FREE || m[i].cut || !m[i].trusted)
			continue;
		count[w]++;
		if (first[w] < 0 || m[i].order < m[first[w]].order)
			first[w] = i;
	}
	/* the client holding the most; between equals the one whose
	 * oldest is oldest (opens are at distinct times) */
	for (int w = 0; w <= NWHO; w++)
		if (count[w] && (top < 0 || count[w] > count[top] ||
				 (count[w] == count[top] &&
				  m[first[w]].order < m[first[top]].order)))
			top = w;
	if (top < 0 || count[top] < 2)
		return c;
	for (int i = 0; i < SLOTS; i++) {
		if (i == c || m[i].st == M_FREE || m[i].cut ||
		    !m[i].trusted || m[i].who != top)
			continue;
		if (m[i].st == M_WAITING &&
		    (idle < 0 || m[i].order < m[idle].order))
			idle = i;
		if (oldest < 0 || m[i].order < m[oldest].order)
			oldest = i;
	}
	if (idle >= 0)
		return idle;
	if (lim.per_client && count[top] > lim.per_client && top != m[c].who)
		return oldest;
	return c;
}

static void check_counts(struct conns *t, bool after_open, int seed,
			 int step)
{
	struct conns_stats s;
	unsigned live = 0, trusted = model_trusted(-1);

	for (int i = 0; i < SLOTS; i++)
		live += m[i].st != M_FREE && !m[i].cut;
	conns_stats(t, &s);
	EXPECT(s.open == live, seed, step);
	EXPECT(s.open - s.untrusted == trusted, seed, step);
	EXPECT(trusted <= lim.max, seed, step);
	EXPECT(live <= 2 * lim.max - lim.reserved, seed, step);
	if (after_open)
		EXPECT(s.untrusted <= lim.max - lim.reserved, seed, step);
}

static void do_open(struct conns *t, int seed, int step)
{
	struct sockaddr_in a;
	uint64_t cut;
	int sv[2], i;

	for (i = 0; i < SLOTS && m[i].st != M_FREE; i++)
		;
	if (i == SLOTS || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	now += 0.001;               /* opens at distinct times */
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x7f000001u + pick(5));
	m[i] = (struct mconn){ .st = M_WAITING, .ours = sv[0], .peer = sv[1],
			       .who = -1, .opened = now,
			       .order = opened_count++ };
	m[i].c = conns_open(t, sv[0], (struct sockaddr *)&a, now);
	EXPECT(m[i].c != NULL, seed, step);
	cut = collect_cuts();
	for (int j = 0; j < SLOTS; j++)
		if (cut >> j & 1)
			EXPECT(!m[j].trusted, seed, step);  /* no stranger
							     * cuts a trusted one */
	check_counts(t, true, seed, step);
}

static void do_request(struct conns *t, int seed, int step)
{
	int i = live_slot(true), kind = (int)pick(10), w = (int)pick(NWHO);
	bool body = pick(2), was;
	unsigned before;
	uint64_t cut;

	if (i < 0)
		return;
	was = m[i].trusted;
	before = model_trusted(i);
	if (kind < 6) {             /* a client's valid token */
		conns_request(t, m[i].c, CONNS_TOKEN_VALID, names[w], body,
			      now);
		m[i].who = w;
		m[i].ticket = false;
		if (!was && before >= lim.max) {
			int v = expected_victim(i);

			m[i].trusted = true;
			cut = collect_cuts();
			EXPECT(cut == 1ull << v, seed, step);
		} else {
			m[i].trusted = true;
			EXPECT(collect_cuts() == 0, seed, step);
		}
	} else {
		enum conns_token tok = kind < 7 ? CONNS_TOKEN_INVALID :
			kind < 8 ? CONNS_TOKEN_TICKET : CONNS_TOKEN_NONE;

		conns_request(t, m[i].c, tok, NULL, body, now);
		if (tok == CONNS_TOKEN_INVALID) {
			m[i].trusted = m[i].ticket = false;
		} else if (tok == CONNS_TOKEN_TICKET && !was &&
			   before < lim.max) {
			m[i].trusted = m[i].ticket = true;
			m[i].who = TICKET;
		}
		EXPECT(collect_cuts() == 0, seed, step);
	}
	if (!m[i].cut)
		m[i].st = body ? M_BODY : M_BUSY;
	check_counts(t, false, seed, step);
}

static void do_progress(struct conns *t, int seed, int step)
{
	int i = live_slot(true);

	if (i < 0)
		return;
	if (m[i].st == M_BODY && pick(3)) {
		if (pick(4) == 0)
			conns_body_admit(t, m[i].c,
					 m[i].trusted && m[i].who < NWHO ?
					 names[m[i].who] : NULL,
					 pick(1u << 20));
		conns_body(t, m[i].c, pick(40000));
		if (pick(3) == 0) {
			conns_busy(t, m[i].c);
			m[i].st = M_BUSY;
		}
	} else if (m[i].st == M_BUSY) {
		conns_idle(t, m[i].c, now);
		m[i].st = M_WAITING;
		if (m[i].ticket)
			m[i].trusted = m[i].ticket = false;
	}
	EXPECT(collect_cuts() == 0, seed, step);
	check_counts(t, false, seed, step);
}

static void do_tick(struct conns *t, int seed, int step)
{
	uint64_t cut;

	now += pick(4000) / 1000.0;
	conns_tick(t, now);
	cut = collect_cuts();
	for (int j = 0; j < SLOTS; j++)
		if (cut >> j & 1)   /* a trusted one goes only for a slow body */
			EXPECT(!m[j].trusted || m[j].st == M_BODY, seed, step);
	check_counts(t, false, seed, step);
}

static void do_close(struct conns *t, bool cut_only)
{
	for (int i = 0; i < SLOTS; i++) {
		if (m[i].st == M_FREE || (cut_only && !m[i].cut))
			continue;
		conns_close(t, m[i].c);
		close(m[i].ours);
		close(m[i].peer);
		m[i].st = M_FREE;
		if (cut_only)
			continue;
		return;
	}
}

/* conns_free logs what the table cut: a line a seed, not wanted here */
static void quiet_free(struct conns *t)
{
	int saved = dup(2), null = open("/dev/null", O_WRONLY);

	fflush(stderr);
	if (saved >= 0 && null >= 0)
		dup2(null, 2);
	conns_free(t);
	fflush(stderr);
	if (saved >= 0) {
		dup2(saved, 2);
		close(saved);
	}
	if (null >= 0)
		close(null);
}

static void run_seed(int seed, int steps)
{
	struct conns *t = NULL;

	rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)seed * 0x100000001b3ull;
	rnd();
	lim = (struct conns_limits){
		.max = 2 + pick(10), .per_addr = pick(4),
		.header_sec = 1 + pick(10), .min_body_rate = pick(2) * 1000,
		.per_client = pick(4), .body_bytes = pick(2) << 20,
		.client_body = pick(2) << 19,
	};
	lim.reserved = pick(lim.max);
	memset(m, 0, sizeof(m));
	now = base;
	opened_count = 0;
	violations = 0;
	if (conns_new(&t, &lim) < 0) {
		CHECK(!"conns_new");
		return;
	}
	for (int step = 0; step < steps && !violations; step++) {
		switch (pick(10)) {
		case 0: case 1: case 2:
			do_open(t, seed, step);
			break;
		case 3: case 4: case 5:
			do_request(t, seed, step);
			break;
		case 6: case 7:
			do_progress(t, seed, step);
			break;
		case 8:
			do_tick(t, seed, step);
			break;
		default:
			/* the front end closes what was cut, and clients
			 * go away */
			do_close(t, true);
			if (pick(3) == 0) {
				int i = live_slot(false);

				if (i >= 0) {
					conns_close(t, m[i].c);
					close(m[i].ours);
					close(m[i].peer);
					m[i].st = M_FREE;
				}
			}
			check_counts(t, false, seed, step);
			break;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		if (m[i].st != M_FREE) {
			conns_close(t, m[i].c);
			close(m[i].ours);
			close(m[i].peer);
			m[i].st = M_FREE;
		}
	quiet_free(t);
}

static void test_random_sequences(void)
{
	const char *e;
	int seeds = 200, steps = 600;

	if ((e = getenv("DD_CONNS_SEEDS")))
		seeds = atoi(e);
	if ((e = getenv("DD_CONNS_STEPS")))
		steps = atoi(e);
	for (int seed = 1; seed <= seeds; seed++)
		run_seed(seed, steps);
}

int main(void)
{
	/* far in the future: the table's watchdog (real clock) never
	 * finds anything late */
	base = dd_monotonic() + 1e6;
	UNIT_RUN(test_random_sequences);
	UNIT_DONE();
}

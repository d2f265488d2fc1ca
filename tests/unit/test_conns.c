/*
 * test_conns.c - the connection table (server/api/conns.c): who is cut when a
 * limit is reached, the header deadline, the minimum body rate. Each
 * "connection" is one end of a socketpair; a cut shows as end-of-file on
 * the other end. Times are far in the future, so the table's own watchdog
 * (which uses the real clock) never finds anything late.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"
#include "unit.h"
#include "util.h"

#define MAXC 16

struct fake {
	int ours, peer;
	struct conn *c;
};

static struct fake fakes[MAXC];
static double base;

static struct sockaddr_in addr4(unsigned last)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x7f000000u | last);
	return a;
}

static void open_fake(struct conns *t, int i, unsigned from, double at)
{
	int sv[2];
	struct sockaddr_in a = addr4(from);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		CHECK(!"socketpair");
		return;
	}
	fakes[i].ours = sv[0];
	fakes[i].peer = sv[1];
	fakes[i].c = conns_open(t, sv[0], (struct sockaddr *)&a, base + at);
	CHECK(fakes[i].c != NULL);
}

/* Connection i from 127.0.0.`from` at `at`, which then shows client
 * who's valid token (a request with a body or not). */
static void open_client(struct conns *t, int i, unsigned from, double at,
			const char *who, bool body)
{
	open_fake(t, i, from, at);
	conns_request(t, fakes[i].c, CONNS_TOKEN_VALID, who, body, base + at);
}

/* True if the table shut connection i down. */
static bool is_cut(int i)
{
	char b;

	return recv(fakes[i].peer, &b, 1, MSG_DONTWAIT) == 0;
}

static void close_all(struct conns *t, int n)
{
	for (int i = 0; i < n; i++) {
		conns_close(t, fakes[i].c);
		close(fakes[i].ours);
		close(fakes[i].peer);
	}
}

static struct conns *table(unsigned max, unsigned reserved, unsigned per_addr)
{
	struct conns_limits lim = { max, reserved, per_addr, 10, 1000, 0, 0,
				    0 };
	struct conns *t = NULL;

	CHECK_EQ(conns_new(&t, &lim), 0);
	return t;
}

static void test_per_address_evicts_its_own_oldest(void)
{
	struct conns *t = table(10, 2, 3);
	struct conns_stats s;

	open_fake(t, 0, 9, 0);              /* another address */
	for (int i = 1; i <= 5; i++)
		open_fake(t, i, 1, i);
	CHECK(!is_cut(0));
	CHECK(is_cut(1));
	CHECK(is_cut(2));
	CHECK(!is_cut(3) && !is_cut(4) && !is_cut(5));
	conns_stats(t, &s);
	CHECK_EQ(s.evicted, 2);
	CHECK_EQ(s.open, 4);
	close_all(t, 6);
	conns_free(t);
}

static void test_untrusted_pool_and_reserve(void)
{
	struct conns *t = table(6, 2, 0);
	struct conns_stats s;
	int i;

	/* Two agents, trusted. */
	open_fake(t, 0, 1, 0);
	open_fake(t, 1, 1, 0);
	conns_request(t, fakes[0].c, CONNS_TOKEN_VALID, "a", false, base);
	conns_request(t, fakes[1].c, CONNS_TOKEN_VALID, "a", false, base);
	/* Strangers: only 4 untrusted fit (6 - 2); oldest go first. */
	for (i = 2; i < 8; i++)
		open_fake(t, i, 10 + i, i);
	CHECK(!is_cut(0) && !is_cut(1));
	CHECK(is_cut(2) && is_cut(3));
	CHECK(!is_cut(4) && !is_cut(5) && !is_cut(6) && !is_cut(7));
	conns_stats(t, &s);
	CHECK_EQ(s.open, 6);
	CHECK_EQ(s.untrusted, 4);
	close_all(t, 8);
	conns_free(t);
}

/*
 * The untrusted pool full of strangers from two addresses, and a lone
 * newcomer from a third address between them: new strangers push out
 * the oldest connections of the crowded addresses, never the lone one,
 * older though it is than most of them. Once every address holds one,
 * the oldest goes, whoever it is.
 */
static void test_crowded_addresses_go_first(void)
{
	struct conns *t = table(6, 2, 0);      /* 4 untrusted slots */
	struct conns_stats s;

	open_fake(t, 0, 1, 0);
	open_fake(t, 1, 2, 1);
	open_fake(t, 2, 9, 2);                 /* the lone newcomer */
	open_fake(t, 3, 1, 3);
	for (int i = 4; i < 10; i++)           /* churn from 1 and 2 */
		open_fake(t, i, 1 + i % 2, i);
	CHECK(!is_cut(2));
	CHECK(is_cut(0) && is_cut(1) && is_cut(3));
	CHECK(is_cut(4) && is_cut(5) && is_cut(6));
	CHECK(!is_cut(7) && !is_cut(8) && !is_cut(9));
	conns_stats(t, &s);
	CHECK_EQ(s.evicted, 6);
	CHECK_EQ(s.untrusted, 4);
	close_all(t, 10);
	conns_free(t);

	/* one connection an address: the oldest is cut */
	t = table(6, 2, 0);
	for (int i = 0; i < 5; i++)
		open_fake(t, i, 20 + i, i);
	CHECK(is_cut(0));
	CHECK(!is_cut(1) && !is_cut(2) && !is_cut(3) && !is_cut(4));
	close_all(t, 5);
	conns_free(t);
}

/*
 * The untrusted pool full of strangers, one an address, and an agent
 * opening three connections at once from its address (before any shows
 * its token): the strangers go, oldest first, never the agent's young
 * connections, though together they make its address the only crowded
 * one. (A crowd counts only once it is past its handshake.)
 */
static void test_young_crowd_is_not_a_crowd(void)
{
	struct conns *t = table(6, 2, 0);      /* 4 untrusted slots */
	struct conns_stats s;

	for (int i = 0; i < 4; i++)
		open_fake(t, i, 30 + i, i);     /* strangers, one an address */
	for (int i = 4; i < 7; i++)
		open_fake(t, i, 7, 10 + 0.001 * i);   /* the agent's */
	CHECK(is_cut(0) && is_cut(1) && is_cut(2));
	CHECK(!is_cut(3));
	CHECK(!is_cut(4) && !is_cut(5) && !is_cut(6));
	conns_stats(t, &s);
	CHECK_EQ(s.evicted, 3);
	close_all(t, 7);
	conns_free(t);
}

/*
 * A fast flood: strangers from two addresses come back within a second
 * of every cut, so none of them is ever a second old, and a lone probe
 * arrives among them. The addresses cut from are crowds however young
 * their connections: the probe outlives a dozen arrivals after it.
 */
static void test_fast_flood_spares_the_lone(void)
{
	struct conns *t = table(6, 2, 0);      /* 4 untrusted slots */
	int i;

	for (i = 0; i < 5; i++)                /* the 5th cuts the 1st */
		open_fake(t, i, 1 + i % 2, 0.05 * i);
	CHECK(is_cut(0));
	open_fake(t, 5, 9, 0.30);               /* the probe */
	for (i = 6; i < 14; i++)
		open_fake(t, i, 1 + i % 2, 0.05 * i);
	CHECK(!is_cut(5));
	close_all(t, 14);
	conns_free(t);
}

static void test_all_trusted_refuses_the_new_one(void)
{
	struct conns *t = table(3, 1, 0);
	struct conns_stats s;

	static const char *const who[] = { "a", "b", "c" };

	/* three clients, one connection each: none holds more */
	for (int i = 0; i < 3; i++)
		open_client(t, i, 1, i, who[i], false);
	/* a newcomer stays beyond the limit until it shows a token... */
	open_fake(t, 3, 2, 5);
	CHECK(!is_cut(3));
	/* ...a stranger then meets its header deadline */
	conns_tick(t, base + 15);
	CHECK(is_cut(3));
	/* a client's, when nobody holds more than one: it goes */
	open_fake(t, 4, 3, 20);
	CHECK(!is_cut(4));
	conns_request(t, fakes[4].c, CONNS_TOKEN_VALID, "d", false,
		      base + 20);
	CHECK(is_cut(4));
	CHECK(!is_cut(0) && !is_cut(1) && !is_cut(2));
	conns_stats(t, &s);
	CHECK_EQ(s.refused, 1);
	CHECK_EQ(s.headers_late, 1);
	CHECK_EQ(s.evicted, 0);
	close_all(t, 5);
	conns_free(t);
}

/* Every slot trusted: strangers wait beyond the limit, as many as the
 * untrusted slots (max - reserved), and make no trusted one go. */
static void test_all_trusted_strangers_wait_beyond(void)
{
	struct conns *t = table(4, 1, 0);
	static const char *const who[] = { "a", "b", "c", "d" };
	struct conns_stats s;
	int i;

	for (i = 0; i < 4; i++) {
		open_client(t, i, 1, i, who[i], false);
		conns_idle(t, fakes[i].c, base + i);
	}
	for (i = 4; i < 9; i++)
		open_fake(t, i, 10 + i, i);
	CHECK(!is_cut(0) && !is_cut(1) && !is_cut(2) && !is_cut(3));
	CHECK(is_cut(4) && is_cut(5));      /* the oldest strangers */
	CHECK(!is_cut(6) && !is_cut(7) && !is_cut(8));
	conns_stats(t, &s);
	CHECK_EQ(s.open, 7);
	CHECK_EQ(s.untrusted, 3);
	CHECK_EQ(s.hoard_cut, 0);
	CHECK_EQ(s.refused, 0);
	close_all(t, 9);
	conns_free(t);
}

/* A ticket takes only a free trusted slot: with every slot trusted its
 * connection stays untrusted (before, tickets pushed trusted connections
 * past max, and the total past what the HTTP library accepts). */
static void test_ticket_takes_no_slot_of_a_full_server(void)
{
	struct conns *t = table(3, 1, 0);
	static const char *const who[] = { "a", "b", "c" };
	struct conns_stats s;
	int i;

	for (i = 0; i < 3; i++)
		open_client(t, i, 1, i, who[i], false);
	open_fake(t, 3, 2, 5);
	conns_request(t, fakes[3].c, CONNS_TOKEN_TICKET, NULL, false, base + 5);
	conns_stats(t, &s);
	CHECK_EQ(s.open, 4);
	CHECK_EQ(s.untrusted, 1);           /* the ticket's: not trusted */
	conns_close(t, fakes[0].c);         /* a slot frees */
	fakes[0].c = NULL;
	conns_request(t, fakes[3].c, CONNS_TOKEN_TICKET, NULL, false, base + 6);
	conns_stats(t, &s);
	CHECK_EQ(s.untrusted, 0);           /* into the free slot */
	close_all(t, 4);
	conns_free(t);
}

/* Newcomers waiting beyond a full server when a trusted connection
 * closes: the next arrival cuts one of them, not all. */
static void test_waiting_newcomers_go_one_at_a_time(void)
{
	struct conns *t = table(4, 1, 0);
	static const char *const who[] = { "a", "b", "c", "d" };
	struct conns_stats s;
	int i;

	for (i = 0; i < 4; i++)
		open_client(t, i, 1, i, who[i], false);
	for (i = 4; i < 7; i++)
		open_fake(t, i, 10 + i, 5);
	CHECK(!is_cut(4) && !is_cut(5) && !is_cut(6));
	conns_close(t, fakes[0].c);
	fakes[0].c = NULL;
	open_fake(t, 7, 30, 6);
	CHECK(is_cut(4));                   /* the oldest waiting */
	CHECK(!is_cut(5) && !is_cut(6) && !is_cut(7));
	conns_stats(t, &s);
	CHECK_EQ(s.evicted, 1);
	/* the first in line shows a token: the free slot is its */
	conns_request(t, fakes[5].c, CONNS_TOKEN_VALID, "e", false, base + 7);
	CHECK(!is_cut(5));
	conns_stats(t, &s);
	CHECK_EQ(s.hoard_cut, 0);
	CHECK_EQ(s.refused, 0);
	close_all(t, 8);
	conns_free(t);
}

/* A client past its share that opens one more connection does not
 * break one of its own requests for it: the newcomer goes. */
static void test_own_share_breaks_no_own_request(void)
{
	struct conns_limits lim = { 4, 1, 0, 10, 1000, 2, 0, 0 };
	struct conns *t = NULL;
	struct conns_stats s;
	int i;

	CHECK_EQ(conns_new(&t, &lim), 0);
	for (i = 0; i < 4; i++)
		open_client(t, i, 1, i, "alice", true);
	open_client(t, 4, 1, 5, "alice", false);
	CHECK(is_cut(4));
	CHECK(!is_cut(0) && !is_cut(1) && !is_cut(2) && !is_cut(3));
	conns_stats(t, &s);
	CHECK_EQ(s.refused, 1);
	CHECK_EQ(s.hoard_cut, 0);
	close_all(t, 5);
	conns_free(t);
}

static void test_header_deadline(void)
{
	struct conns *t = table(10, 2, 0);
	struct conns_stats s;

	open_fake(t, 0, 1, 0);              /* sends nothing */
	open_fake(t, 1, 2, 0);              /* a request, then idle */
	open_fake(t, 2, 3, 0);              /* trusted, then idle */
	conns_request(t, fakes[1].c, CONNS_TOKEN_NONE, NULL, false, base + 1);
	conns_request(t, fakes[2].c, CONNS_TOKEN_VALID, "a", false, base + 1);
	conns_tick(t, base + 9.9);
	CHECK(!is_cut(0));
	conns_tick(t, base + 10);
	CHECK(is_cut(0));
	CHECK(!is_cut(1));                  /* answering: no deadline */
	conns_idle(t, fakes[1].c, base + 20);
	conns_idle(t, fakes[2].c, base + 20);
	conns_tick(t, base + 29.9);
	CHECK(!is_cut(1));
	conns_tick(t, base + 30);
	CHECK(is_cut(1));                   /* from the end of the response */
	conns_tick(t, base + 1000);
	CHECK(!is_cut(2));                  /* trusted: the idle timeout's job */
	conns_stats(t, &s);
	CHECK_EQ(s.headers_late, 2);
	close_all(t, 3);
	conns_free(t);
}

static void test_body_rate(void)
{
	struct conns *t = table(10, 2, 0);
	struct conns_stats s;

	open_fake(t, 0, 1, 0);
	open_fake(t, 1, 2, 0);
	conns_request(t, fakes[0].c, CONNS_TOKEN_VALID, "a", true, base);
	conns_request(t, fakes[1].c, CONNS_TOKEN_VALID, "a", true, base);
	conns_body(t, fakes[0].c, 500);
	conns_body(t, fakes[1].c, 500);
	conns_tick(t, base + 10.4);         /* grace 10 s, 0.4 s at 1000 B/s */
	CHECK(!is_cut(0) && !is_cut(1));
	conns_body(t, fakes[1].c, 100000);
	conns_tick(t, base + 11);           /* 1000 B due: 500 is too slow */
	CHECK(is_cut(0));
	CHECK(!is_cut(1));
	conns_busy(t, fakes[1].c);          /* body done: no rate any more */
	conns_tick(t, base + 10000);
	CHECK(!is_cut(1));
	conns_stats(t, &s);
	CHECK_EQ(s.body_slow, 1);
	close_all(t, 2);
	conns_free(t);
}

static void test_invalid_token_untrusts(void)
{
	struct conns *t = table(10, 2, 0);

	open_client(t, 0, 1, 0, "a", false);
	conns_idle(t, fakes[0].c, base + 1);
	conns_request(t, fakes[0].c, CONNS_TOKEN_NONE, NULL, false, base + 2);
	conns_idle(t, fakes[0].c, base + 3);
	conns_tick(t, base + 100);
	CHECK(!is_cut(0));                  /* a health check keeps trust */
	conns_request(t, fakes[0].c, CONNS_TOKEN_INVALID, NULL, false, base + 101);
	conns_idle(t, fakes[0].c, base + 102);
	conns_tick(t, base + 112);
	CHECK(is_cut(0));                   /* revoked: a stranger again */
	close_all(t, 1);
	conns_free(t);
}

/*
 * Every slot trusted, one client holding most of them (a stolen token, or
 * a ticket's download): a newcomer takes the oldest idle one of that
 * client, not nothing; with none idle, a busy one only past the client's
 * share (per_client), else the newcomer goes.
 */
static void test_all_trusted_the_hoarder_gives_way(void)
{
	struct conns_limits lim = { 4, 1, 0, 10, 1000, 2, 0, 0 };
	struct conns *t = NULL;
	struct conns_stats s;
	int i;

	CHECK_EQ(conns_new(&t, &lim), 0);
	open_client(t, 0, 1, 0, "alice", true);
	for (i = 1; i < 4; i++) {
		open_client(t, i, 2, i, "bob", false);
		conns_idle(t, fakes[i].c, base + i);
	}
	/* a stranger makes no trusted connection go */
	open_fake(t, 4, 3, 5);
	CHECK(!is_cut(0) && !is_cut(1) && !is_cut(2) && !is_cut(3));
	conns_request(t, fakes[4].c, CONNS_TOKEN_NONE, NULL, false, base + 5);
	CHECK(!is_cut(0) && !is_cut(1) && !is_cut(2) && !is_cut(3));
	/* carol's token: bob, holding the most, gives his oldest idle one */
	conns_request(t, fakes[4].c, CONNS_TOKEN_VALID, "carol", true,
		      base + 5);
	CHECK(!is_cut(4));
	CHECK(is_cut(1));
	CHECK(!is_cut(0) && !is_cut(2) && !is_cut(3));
	/* bob's two left are busy: 2 is his share, not more, and alice's
	 * and carol's are one each: the newcomer goes */
	conns_request(t, fakes[2].c, CONNS_TOKEN_VALID, "bob", true, base + 6);
	conns_request(t, fakes[3].c, CONNS_TOKEN_VALID, "bob", true, base + 6);
	open_client(t, 5, 4, 7, "dora", false);
	CHECK(is_cut(5));
	CHECK(!is_cut(2) && !is_cut(3) && !is_cut(0) && !is_cut(4));
	conns_stats(t, &s);
	CHECK_EQ(s.hoard_cut, 1);
	CHECK_EQ(s.refused, 1);
	close_all(t, 6);
	conns_free(t);

	/* bob holds 3 busy of 4 slots, over his share of 2: one goes */
	CHECK_EQ(conns_new(&t, &lim), 0);
	open_client(t, 0, 1, 0, "alice", true);
	for (i = 1; i < 4; i++)
		open_client(t, i, 2, i, "bob", true);
	open_client(t, 4, 3, 5, "carol", false);
	CHECK(!is_cut(4));
	CHECK(is_cut(1));
	CHECK(!is_cut(0) && !is_cut(2) && !is_cut(3));
	close_all(t, 5);
	conns_free(t);

	/* the client holding the most gives way, not one that merely has
	 * an idle connection: alice holds 4 busy (her share: 2), bob 2, one
	 * of them idle: alice's oldest goes, not bob's idle one */
	lim.max = 6;
	CHECK_EQ(conns_new(&t, &lim), 0);
	for (i = 0; i < 4; i++)
		open_client(t, i, 1, i, "alice", true);
	for (i = 4; i < 6; i++)
		open_client(t, i, 2, i, "bob", false);
	conns_idle(t, fakes[5].c, base + 5);
	open_client(t, 6, 3, 7, "carol", false);
	CHECK(!is_cut(6));
	CHECK(is_cut(0));                   /* alice's oldest */
	CHECK(!is_cut(5));                  /* not bob's idle one */
	close_all(t, 7);
	conns_free(t);
}

/* A ticket trusts its connection for its download only: then the
 * untrusted rules (the header deadline) apply again. */
static void test_ticket_trust_ends_with_its_response(void)
{
	struct conns *t = table(10, 2, 0);

	open_fake(t, 0, 1, 0);
	open_fake(t, 1, 2, 0);
	conns_request(t, fakes[0].c, CONNS_TOKEN_NONE, NULL, false, base);
	conns_request(t, fakes[0].c, CONNS_TOKEN_TICKET, NULL, false, base);
	conns_request(t, fakes[1].c, CONNS_TOKEN_VALID, "a", false, base);
	conns_tick(t, base + 100);          /* a long download: kept */
	CHECK(!is_cut(0));
	conns_idle(t, fakes[0].c, base + 100);
	conns_idle(t, fakes[1].c, base + 100);
	conns_tick(t, base + 110);
	CHECK(is_cut(0));                   /* then a stranger's deadline */
	CHECK(!is_cut(1));                  /* a token's trust stays */
	close_all(t, 2);
	conns_free(t);
}

/* A fast start buys no stall: each window of 2 * header_sec (20 s) must
 * bring the minimum rate too, whatever came before. */
static void test_body_rate_window(void)
{
	struct conns *t = table(10, 2, 0);

	open_fake(t, 0, 1, 0);
	open_fake(t, 1, 2, 0);
	conns_request(t, fakes[0].c, CONNS_TOKEN_VALID, "a", true, base);
	conns_request(t, fakes[1].c, CONNS_TOKEN_VALID, "a", true, base);
	conns_body(t, fakes[0].c, 60u << 20);  /* 60 MiB at once */
	conns_body(t, fakes[1].c, 60u << 20);
	/* the first window starts at the first look past the grace */
	for (double at = 10.5; at < 30.5; at += 0.5)
		conns_tick(t, base + at);
	CHECK(!is_cut(0) && !is_cut(1));
	conns_body(t, fakes[1].c, 25000);      /* 1,250 B/s: enough */
	conns_tick(t, base + 30.5);            /* the first window ends */
	CHECK(is_cut(0));                      /* nothing in 20 s */
	CHECK(!is_cut(1));
	for (double at = 31; at < 50.5; at += 0.5)
		conns_tick(t, base + at);
	CHECK(!is_cut(1));
	conns_tick(t, base + 50.5);            /* the next: nothing */
	CHECK(is_cut(1));
	close_all(t, 2);
	conns_free(t);
}

/* Bodies in memory: within all (100 here) and one client's (60). */
static void test_body_memory(void)
{
	struct conns_limits lim = { 10, 2, 0, 10, 0, 0, 100, 60 };
	struct conns *t = NULL;
	struct conns_stats s;

	CHECK_EQ(conns_new(&t, &lim), 0);
	for (int i = 0; i < 4; i++)
		open_fake(t, i, 1, 0);
	/* alone, a body larger than every limit goes in: turns, not a
	 * refusal for good */
	CHECK_EQ(conns_body_admit(t, fakes[0].c, "a", 500), 0);
	CHECK_EQ(conns_body_admit(t, fakes[1].c, "b", 1), -EBUSY);
	conns_idle(t, fakes[0].c, base);
	CHECK_EQ(conns_body_admit(t, fakes[0].c, "a", 50), 0);
	CHECK_EQ(conns_body_admit(t, fakes[1].c, "a", 20), -EBUSY);
	CHECK_EQ(conns_body_admit(t, fakes[1].c, "b", 40), 0);
	CHECK_EQ(conns_body_admit(t, fakes[2].c, NULL, 20), -EBUSY);
	CHECK_EQ(conns_body_admit(t, fakes[2].c, NULL, 10), 0);
	conns_idle(t, fakes[0].c, base);       /* a's answer sent */
	CHECK_EQ(conns_body_admit(t, fakes[3].c, "a", 50), 0);
	conns_close(t, fakes[1].c);            /* b's connection gone */
	fakes[1].c = NULL;
	CHECK_EQ(conns_body_admit(t, fakes[1].c, "c", 1000), 0); /* NULL */
	CHECK_EQ(conns_body_admit(t, fakes[0].c, "c", 40), 0);
	conns_stats(t, &s);
	CHECK_EQ(s.body_refused, 3);
	close_all(t, 4);
	conns_free(t);
}

/* A body that would hold a buffer larger than its declared length is
 * counted at that size, within both limits and with no exemption for a
 * body alone; a refusal leaves what it was counted at. */
static void test_body_hold(void)
{
	struct conns_limits lim = { 10, 2, 0, 10, 0, 0, 100, 60 };
	struct conns *t = NULL;

	CHECK_EQ(conns_new(&t, &lim), 0);
	for (int i = 0; i < 3; i++)
		open_fake(t, i, 1, 0);
	CHECK_EQ(conns_body_admit(t, fakes[0].c, "a", 10), 0);
	CHECK_EQ(conns_body_hold(t, fakes[0].c, 61), -EBUSY); /* alone too */
	CHECK_EQ(conns_body_hold(t, fakes[0].c, 40), 0);
	/* her share: 40 of 60 held, so 30 more is refused, 20 taken */
	CHECK_EQ(conns_body_admit(t, fakes[1].c, "a", 30), -EBUSY);
	CHECK_EQ(conns_body_admit(t, fakes[1].c, "a", 20), 0);
	/* all: 60 of 100 held; b's body may hold 40, not 41 */
	CHECK_EQ(conns_body_admit(t, fakes[2].c, "b", 10), 0);
	CHECK_EQ(conns_body_hold(t, fakes[2].c, 41), -EBUSY);
	CHECK_EQ(conns_body_hold(t, fakes[2].c, 40), 0);
	/* a's first answer sent: its 40 freed */
	conns_idle(t, fakes[0].c, base);
	CHECK_EQ(conns_body_admit(t, fakes[0].c, "a", 40), 0);
	CHECK_EQ(conns_body_hold(t, NULL, 1), -EBUSY);
	close_all(t, 3);
	conns_free(t);
}

static void test_bad_limits(void)
{
	struct conns_limits lim = { 4, 4, 0, 10, 0, 0, 0, 0 };
	struct conns *t = (struct conns *)&lim;

	CHECK_EQ(conns_new(&t, &lim), -EINVAL);
	CHECK(t == NULL);
	conns_free(NULL);
}

int main(void)
{
	base = dd_monotonic() + 1e6;
	UNIT_RUN(test_per_address_evicts_its_own_oldest);
	UNIT_RUN(test_untrusted_pool_and_reserve);
	UNIT_RUN(test_crowded_addresses_go_first);
	UNIT_RUN(test_young_crowd_is_not_a_crowd);
	UNIT_RUN(test_fast_flood_spares_the_lone);
	UNIT_RUN(test_all_trusted_refuses_the_new_one);
	UNIT_RUN(test_all_trusted_strangers_wait_beyond);
	UNIT_RUN(test_ticket_takes_no_slot_of_a_full_server);
	UNIT_RUN(test_waiting_newcomers_go_one_at_a_time);
	UNIT_RUN(test_own_share_breaks_no_own_request);
	UNIT_RUN(test_header_deadline);
	UNIT_RUN(test_body_rate);
	UNIT_RUN(test_invalid_token_untrusts);
	UNIT_RUN(test_all_trusted_the_hoarder_gives_way);
	UNIT_RUN(test_ticket_trust_ends_with_its_response);
	UNIT_RUN(test_body_rate_window);
	UNIT_RUN(test_body_memory);
	UNIT_RUN(test_body_hold);
	UNIT_RUN(test_bad_limits);
	UNIT_DONE();
}

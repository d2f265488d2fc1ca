/*
 * routes.h - the REST API of docs/API.md: one handler per route, over the
 * store, the snapshots and the token table. Bodies and their caps as in
 * docs/FORMAT.md and shared/proto.h.
 */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include <stddef.h>
#include <stdint.h>
#include "http.h"
#include "config.h"
#include "metrics.h"
#include "notify.h"
#include "ratelimit.h"
#include "repo.h"
#include "sessions.h"
#include "snapshots.h"
#include "store.h"
#include "tokens.h"
#include "usage.h"

/* What every handler works on (the `payload` of the http config). */
struct routes_ctx {
	struct repo_config config;
	const char *repo;           /* the repository directory */
	struct store *store;
	struct snapshots *snapshots;
	struct tokens *tokens;
	struct sessions *sessions;
	struct metrics *metrics;
	struct usage *usage;
	struct ratelimit *missing_limit;  /* ids a client may ask about */
	struct notify *notify;      /* stale / failed backups (notify.h) */
	unsigned stale_after;       /* seconds without a backup: stale */
	const struct config *cfg;   /* retention policies, gc threshold */
	int64_t started;            /* unix seconds */
	/* Several front-ends on one pool: the others' figures for the stats
	 * (poolstats.h); NULL for a repository of one front-end. */
	struct poolstats *pool;
	/* Several front-ends on one pool: the heartbeat's fence and the gc
	 * epoch a snapshot is checked against (frontends.h); NULL for one. */
	struct frontends *fronts;
	/* The server, for its connection figures in /metrics; set (atomic)
	 * once it serves, NULL before. */
	struct http_server *http;
};

extern const struct http_route routes_table[];
extern const size_t routes_count;

/* Everything no API route matches: the embedded web assets ("/" is
 * "/index.html"), else a JSON 404. */
void routes_fallback(void *payload, const struct http_request *req,
		     struct http_reply *rep);

/* The http observe hook: counts the request in ctx->metrics. */
void routes_observe(void *payload, const struct http_observation *o);

#endif

/*
 * routes_impl.h - what the files of the REST API (routes*.c) share; private
 * to server/api/. routes.h is the API to the rest of the server.
 */
#ifndef SRV_ROUTES_IMPL_H
#define SRV_ROUTES_IMPL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "backend.h"
#include "bundle.h"
#include "domains.h"
#include "frontends.h"
#include "gc.h"
#include "log.h"
#include "prune.h"
#include "proto.h"
#include "web_assets.h"
#include "routes.h"

#define ROUTES_OCTETS "application/octet-stream"
#define ROUTES_IDS_CAP ((size_t)DD_MAX_IDS_PER_QUERY * DD_ID_LEN)
/* Session bodies: a host, paths, a few numbers. */
#define ROUTES_SESSION_CAP (64u * 1024)
/* Days of /history: by default, at most. */
#define ROUTES_HISTORY_DEFAULT 30
#define ROUTES_HISTORY_MAX 3650

/* Seconds a fenced front-end asks a client to wait (Retry-After). */
#define ROUTES_FENCE_RETRY 5
/* Seconds a quota-checked request waits for the first usage count after
 * a start (usage.h). */
#define ROUTES_USAGE_RETRY 5

/* Seconds a client waits (Retry-After) when the storage did not answer
 * in time: the RADOS backend's operations time out after 30 s by default
 * (OSDs or monitors down, the cluster paused). */
#define ROUTES_STORE_RETRY 5

/* routes.c */
void routes_fail(struct http_reply *rep, int rc);
/* Self-fencing (frontends_fenced): true when this front-end may
 * acknowledge chunks and snapshots; else false after a 503 with
 * Retry-After. */
bool routes_fence_ok(struct routes_ctx *ctx, struct http_reply *rep);
bool routes_ids(const struct http_request *req, struct http_reply *rep,
		size_t *n);
void routes_id_at(struct dd_id *id, const struct http_request *req,
		  size_t i);
const struct domains_tag *routes_domain(struct routes_ctx *ctx,
					const struct http_request *req,
					struct domains_tag *buf);
const struct domains_tag *routes_read_domain(struct routes_ctx *ctx,
					     const struct http_request *req,
					     struct domains_tag *buf);

/* routes_chunks.c */
void route_missing(void *payload, const struct http_request *req,
		   struct http_reply *rep);
bool routes_quota_ok(struct routes_ctx *ctx, const char *client,
		     struct http_reply *rep);
void route_upload(void *payload, const struct http_request *req,
		  struct http_reply *rep);
void route_chunk(void *payload, const struct http_request *req,
		 struct http_reply *rep);
void route_check(void *payload, const struct http_request *req,
		 struct http_reply *rep);
void route_fetch(void *payload, const struct http_request *req,
		 struct http_reply *rep);

/* routes_snapshots.c */
void route_snapshot_create(void *payload,
			   const struct http_request *req,
			   struct http_reply *rep);
bool routes_client_arg(const struct http_request *req,
		       struct http_reply *rep, const char **name);
void route_snapshot_list(void *payload, const struct http_request *req,
			 struct http_reply *rep);
void route_snapshot_get(void *payload, const struct http_request *req,
			struct http_reply *rep);
bool routes_json_body(const struct http_request *req,
		      struct http_reply *rep, json_t **out);
void route_session_open(void *payload, const struct http_request *req,
			struct http_reply *rep);
void route_session_list(void *payload, const struct http_request *req,
			struct http_reply *rep);
void route_session_get(void *payload, const struct http_request *req,
		       struct http_reply *rep);
void route_session_update(void *payload,
			  const struct http_request *req,
			  struct http_reply *rep);
void route_snapshot_delete(void *payload,
			   const struct http_request *req,
			   struct http_reply *rep);

/* routes_status.c */
void route_health(void *payload, const struct http_request *req,
		  struct http_reply *rep);
void route_config(void *payload, const struct http_request *req,
		  struct http_reply *rep);
void route_stats(void *payload, const struct http_request *req,
		 struct http_reply *rep);
void route_clients(void *payload, const struct http_request *req,
		   struct http_reply *rep);
void route_history(void *payload, const struct http_request *req,
		   struct http_reply *rep);
void route_metrics(void *payload, const struct http_request *req,
		   struct http_reply *rep);

/* routes_browse.c */
void route_browse_tree(void *payload, const struct http_request *req,
		       struct http_reply *rep);
void route_browse_ticket(void *payload, const struct http_request *req,
			 struct http_reply *rep);
void route_browse_download(void *payload, const struct http_request *req,
			   struct http_reply *rep);

/* routes_sync.c: GET /api/v1/sync, and the dedup_sync_* series of
 * /metrics (none before a first sync). */
void route_sync(void *payload, const struct http_request *req,
		struct http_reply *rep);
int routes_metrics_sync(struct dd_buf *b, struct routes_ctx *ctx,
			int64_t now);
/* routes_status.c: one gauge without labels. */
int routes_gauge(struct dd_buf *b, const char *name, const char *help,
		 double v);

/* routes_admin.c */
void route_gc(void *payload, const struct http_request *req,
	      struct http_reply *rep);
void route_prune(void *payload, const struct http_request *req,
		 struct http_reply *rep);

#endif

/*
 * routes_sync.c - replication as the status page and /metrics show it
 * (server/repo/sync.h, docs/REPLICATION.md): GET /api/v1/sync (admin)
 * and the dedup_sync_* series. Both read <repo>/sync.json, which the
 * serving process's sync thread and `dedup-server sync` write.
 */
#include "routes_impl.h"
#include "sync.h"

void route_sync(void *payload, const struct http_request *req,
		struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct config *cfg = ctx->cfg;
	json_t *last = NULL, *out, *lag;
	int rc;

	(void)req;
	rc = sync_state_load(ctx->repo, dd_now(), &last);
	if (rc < 0 && rc != -ENOENT) {
		routes_fail(rep, rc);
		return;
	}
	lag = last ? json_incref(json_object_get(last, "lag_seconds")) : NULL;
	if (last)
		json_object_del(last, "lag_seconds");
	out = json_pack("{s:b, s:s?, s:o?, s:o, s:o}",
			"configured", cfg && cfg->sync_from,
			"from", cfg ? cfg->sync_from : NULL,
			"interval_seconds", cfg && cfg->sync_from ?
				json_integer(cfg->sync_interval) : NULL,
			"last", last ? last : json_null(),
			"lag_seconds", lag ? lag : json_null());
	http_reply_json(rep, 200, out);
}

/* The last run's report fields shown as gauges (absent fields: no series). */
static const struct {
	const char *name, *field, *help;
} routes_sync_gauges[] = {
	{ "dedup_sync_last_run_timestamp_seconds", "finished_unix",
	  "when the last sync ended (unix time)" },
	{ "dedup_sync_last_ok_timestamp_seconds", "last_ok_unix",
	  "when the last successful sync ended" },
	{ "dedup_sync_lag_seconds", "lag_seconds",
	  "age of the oldest source snapshot not copied, else time since the "
	  "last successful sync" },
	{ "dedup_sync_last_snapshots_copied", "snapshots_copied",
	  "snapshots the last sync copied" },
	{ "dedup_sync_last_snapshots_failed", "snapshots_failed",
	  "snapshots the last sync could not copy" },
	{ "dedup_sync_last_snapshots_gone", "snapshots_gone",
	  "snapshots the last sync found forgotten on the source meanwhile" },
	{ "dedup_sync_last_bytes_copied", "bytes_copied",
	  "plain bytes of the chunks the last sync copied" },
};

int routes_metrics_sync(struct dd_buf *b, struct routes_ctx *ctx,
			int64_t now)
{
	json_t *j = NULL, *v;
	bool ok;
	size_t i;
	int rc;

	if (sync_state_load(ctx->repo, now, &j) < 0)
		return 0;    /* no sync ever ran here: no series */
	ok = json_is_string(json_object_get(j, "result")) &&
	     strcmp(json_string_value(json_object_get(j, "result")), "ok") == 0;
	rc = routes_gauge(b, "dedup_sync_last_success", "1 if the last sync "
			  "copied every selected snapshot", ok ? 1 : 0);
	for (i = 0; rc == 0 && i < DD_ARRAY_SIZE(routes_sync_gauges); i++) {
		v = json_object_get(j, routes_sync_gauges[i].field);
		if (json_is_integer(v))
			rc = routes_gauge(b, routes_sync_gauges[i].name,
					  routes_sync_gauges[i].help,
					  (double)json_integer_value(v));
	}
	json_decref(j);
	return rc;
}

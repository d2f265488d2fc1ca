/*
 * routes_status.c - what the server tells about itself and its clients:
 * /health, /config, /stats, /clients, /history and /metrics.
 */
#include "routes_impl.h"
#include "conns.h"
#include "poolstats.h"

/* ---- GET /api/v1/health ---- */

/* Free and total bytes of the file system holding the repository. */
static int routes_disk(const struct routes_ctx *ctx, uint64_t *free_b,
		       uint64_t *total_b, bool *read_only)
{
	struct statvfs vfs;

	if (statvfs(ctx->repo, &vfs) < 0)
		return -errno;
	*free_b = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	*total_b = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	*read_only = (vfs.f_flag & ST_RDONLY) != 0;
	return 0;
}

/* Can new chunks and snapshots be written? The directories exist and are
 * writable, the file system is not read-only and has room, and the index
 * takes writes. false with the reason in `why`. */
static bool routes_writable(const struct routes_ctx *ctx, char *why,
			    size_t whysz)
{
	static const char *const dirs[] = { REPO_PACKS, REPO_SNAPSHOTS,
					    REPO_INDEX };
	char path[4200];
	uint64_t free_b = 0, total_b = 0;
	bool ro = true;
	size_t i;

	for (i = 0; i < DD_ARRAY_SIZE(dirs); i++) {
		if (repo_path(path, sizeof(path), ctx->repo, dirs[i]) < 0 ||
		    access(path, W_OK | X_OK) < 0) {
			snprintf(why, whysz, "cannot write to the "
				 "repository's %s/", dirs[i]);
			return false;
		}
	}
	if (routes_disk(ctx, &free_b, &total_b, &ro) < 0 || ro) {
		snprintf(why, whysz, "the repository file system is "
			 "read-only");
		return false;
	}
	if (free_b == 0) {
		snprintf(why, whysz, "the repository disk is full");
		return false;
	}
	return store_index_health(ctx->store, why, whysz) == 0;
}

/* Liveness and writability. Always 200 while the server serves (reads and
 * restores go on when it cannot write); "status" says "degraded" and
 * "reason" why when new backups cannot be written. */
void route_health(void *payload, const struct http_request *req,
		  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char why[600] = "";
	bool w = routes_writable(ctx, why, sizeof(why));
	char *abs = realpath(ctx->repo, NULL);
	json_t *j;

	(void)req;
	/* "repository" lets the sign-in hint print a token command that works
	 * as written; docs/SECURITY.md says why showing it is acceptable. */
	j = json_pack("{s:s, s:b, s:s, s:b, s:s}", "status",
		      w ? "ok" : "degraded", "up", 1, "version", DD_VERSION,
		      "writable", w, "repository", abs ? abs : ctx->repo);
	free(abs);
	if (j && !w)
		json_object_set_new(j, "reason", json_string(why));
	http_reply_json(rep, 200, j);
}

/* ---- GET /api/v1/config ---- */

void route_config(void *payload, const struct http_request *req,
		  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct repo_config *c = &ctx->config;
	char seed[17];

	(void)req;
	snprintf(seed, sizeof(seed), "%016llx",
		 (unsigned long long)c->chunker.seed);
	http_reply_json(rep, 200, json_pack(
		"{s:i, s:s, s:{s:I, s:I, s:I, s:s}, "
		"s:{s:I, s:I, s:I, s:I, s:I}}",
		"format", REPO_FORMAT,
		"repo_id", c->repo_id,
		"chunker",
		"min_size", (json_int_t)c->chunker.min_size,
		"avg_size", (json_int_t)c->chunker.avg_size,
		"max_size", (json_int_t)c->chunker.max_size,
		"seed", seed,
		"limits",
		"max_upload_body", (json_int_t)DD_MAX_UPLOAD_BODY,
		"max_upload_plain", (json_int_t)DD_MAX_UPLOAD_PLAIN,
		"max_ids_per_query", (json_int_t)DD_MAX_IDS_PER_QUERY,
		"max_fetch_response", (json_int_t)DD_MAX_FETCH_RESPONSE,
		"max_json_body", (json_int_t)DD_MAX_JSON_BODY));
}

/* ---- GET /api/v1/stats ---- */

/*
 * A client token sees its own figures only, domains or not: its
 * snapshots, their logical and catalog bytes, the bytes only it
 * references (usage.h, what its quota counts), its quota and its own
 * backups in progress. The store's counters (chunks, packs, unique and
 * stored bytes, disk space) and the clients count would tell whether an
 * upload was written or was already there, stored by someone else.
 */
struct routes_own {
	const char *client;
	uint64_t snapshots, logical, catalogs;
};

static int routes_own_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_own *o = payload;

	if (strcmp(it->client, o->client) == 0) {
		o->snapshots++;
		o->logical += it->bytes_total;
		o->catalogs += it->catalog_bytes;
	}
	return 0;
}

static void routes_stats_client(struct routes_ctx *ctx, const char *client,
				struct http_reply *rep)
{
	struct routes_own o = { .client = client };
	struct usage_client *u = NULL;
	uint64_t only = 0, quota;
	size_t n = 0, i;
	bool counting;
	json_t *j;
	int rc;

	rc = snapshots_foreach(ctx->snapshots, routes_own_cb, &o);
	if (rc == 0)
		rc = usage_get(ctx->usage, ctx->snapshots, ctx->store, &u, &n);
	counting = rc == -EAGAIN;  /* the first count: not known yet */
	if (rc < 0 && !counting) {
		routes_fail(rep, rc);
		return;
	}
	for (i = 0; i < n; i++)
		if (strcmp(u[i].name, client) == 0)
			only = u[i].bytes_unique;
	free(u);
	quota = ctx->cfg ? config_client_quota(ctx->cfg, client) : 0;
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:I}",
		      "scope", "client", "client", client,
		      "snapshots", (json_int_t)o.snapshots,
		      "bytes_logical", (json_int_t)o.logical,
		      "bytes_catalog", (json_int_t)o.catalogs,
		      "bytes_only_client", counting ? json_null() :
			      json_integer((json_int_t)only),
		      "quota_bytes", quota ? json_integer((json_int_t)quota)
					   : json_null(),
		      "backups_in_progress",
		      (json_int_t)sessions_active(ctx->sessions, client));
	http_reply_json(rep, 200, j);
}

/*
 * The chunks, unique bytes and backups in progress: this front-end's own
 * (the local index's counters, its sessions) for a repository of one
 * front-end; on a shared pool the pool's (poolstats.h): the shared
 * index's count, and the backups of every live front-end. The snapshots,
 * clients and packs need nothing of this: every front-end reads them
 * from the pool already.
 */
struct routes_figures {
	uint64_t chunks, unique, backups;
	struct poolstats_view pool;
};

static void routes_figures(struct routes_ctx *ctx, struct routes_figures *f)
{
	poolstats_view(ctx->pool, &f->pool);
	store_counters(ctx->store, &f->chunks, &f->unique);
	f->backups = sessions_active(ctx->sessions, NULL);
	if (!ctx->pool)
		return;
	f->backups += f->pool.peer_backups;
	if (f->pool.counted) {
		f->chunks = f->pool.chunks;
		f->unique = f->pool.bytes_unique;
	}
}

/* How fresh the pool's figures are: "as_of" is the oldest of the shared
 * index count and the other front-ends' publications (null before the
 * first count). */
static json_t *routes_pool_json(const struct poolstats_view *v)
{
	int64_t as_of = v->index_as_of;

	if (v->peers_as_of && v->peers_as_of < as_of)
		as_of = v->peers_as_of;
	return json_pack("{s:I, s:o, s:o}",
			 "frontends", (json_int_t)v->frontends,
			 "as_of", v->counted ? json_integer(as_of) : json_null(),
			 "index_as_of", v->counted ?
			 json_integer(v->index_as_of) : json_null());
}

void route_stats(void *payload, const struct http_request *req,
		 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_figures fig;
	json_t *j;
	uint64_t snaps, logical, catalogs, chunks, unique, packs = 0;
	uint64_t stored = 0, disk_free = 0, disk_total = 0;
	bool ro;
	int rc;

	if (!req->who->admin) {
		routes_stats_client(ctx, req->who->name, rep);
		return;
	}
	snapshots_totals(ctx->snapshots, &snaps, &logical, &catalogs);
	routes_figures(ctx, &fig);
	chunks = fig.chunks;
	unique = fig.unique;
	rc = store_pack_usage_recent(ctx->store, &packs, &stored);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	rc = routes_disk(ctx, &disk_free, &disk_total, &ro);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	/* The ratio counts the catalogs on both sides: they are stored as
	 * chunks too, so a first backup reads 1.00, not below. */
	j = json_pack(
		"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, "
		"s:I, s:I}",
		"scope", "repository",
		"snapshots", (json_int_t)snaps,
		"chunks", (json_int_t)chunks,
		"packs", (json_int_t)packs,
		"clients", (json_int_t)tokens_count(ctx->tokens),
		"bytes_logical", (json_int_t)logical,
		"bytes_catalog", (json_int_t)catalogs,
		"bytes_unique", (json_int_t)unique,
		"bytes_stored", (json_int_t)stored,
		"dedup_ratio", unique ? (double)(logical + catalogs) /
			(double)unique : 0.0,
		"compression_ratio",
		stored ? (double)unique / (double)stored : 0.0,
		"disk_free", (json_int_t)disk_free,
		"disk_total", (json_int_t)disk_total,
		"backups_in_progress", (json_int_t)fig.backups);
	if (j && ctx->pool &&
	    json_object_set_new(j, "pool", routes_pool_json(&fig.pool)) < 0) {
		json_decref(j);
		j = NULL;
	}
	http_reply_json(rep, 200, j);
}

/* ---- per-client summaries from the manifests ---- */

struct routes_client_sum {
	char name[DD_CLIENT_NAME_MAX + 1];
	uint64_t snapshots;
	char last_id[DD_ID_HEX_LEN + 1];   /* "" when none */
	int64_t last_start;                /* unix_time of the last one */
	int64_t last_written;              /* unix seconds, server clock */
	uint64_t last_total, last_new;
};

struct routes_sums {
	struct routes_client_sum *v;
	size_t n, alloc;
};

static struct routes_client_sum *routes_sum_get(struct routes_sums *s,
						const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return &s->v[i];
	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 16;
		struct routes_client_sum *v = realloc(s->v, na * sizeof(*v));

		if (!v)
			return NULL;
		s->v = v;
		s->alloc = na;
	}
	memset(&s->v[s->n], 0, sizeof(s->v[0]));
	snprintf(s->v[s->n].name, sizeof(s->v[0].name), "%s", name);
	return &s->v[s->n++];
}

static int routes_sum_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_client_sum *c = routes_sum_get(payload, it->client);

	if (!c)
		return -ENOMEM;
	/* Oldest first: the last one seen is the latest. */
	c->snapshots++;
	snprintf(c->last_id, sizeof(c->last_id), "%s", it->id);
	c->last_start = it->unix_time;
	c->last_written = it->written_ns / 1000000000;
	c->last_total = it->bytes_total;
	c->last_new = it->bytes_new;
	return 0;
}

/* Every client with snapshots, plus every client in the token table. */
static int routes_sums(struct routes_ctx *ctx, struct routes_sums *out,
		       struct tokens_list *tl)
{
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = tokens_copy(ctx->tokens, tl);
	if (rc == 0)
		rc = snapshots_foreach(ctx->snapshots, routes_sum_cb, out);
	for (i = 0; rc == 0 && i < tl->n; i++)
		if (!routes_sum_get(out, tl->v[i].name))
			rc = -ENOMEM;
	if (rc < 0) {
		free(out->v);
		memset(out, 0, sizeof(*out));
		tokens_list_release(tl);
	}
	return rc;
}

static int routes_sum_cmp(const void *a, const void *b)
{
	const struct routes_client_sum *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* ---- GET /api/v1/clients (admin) ---- */

static json_t *routes_time_or_null(int64_t t)
{
	char buf[32];

	if (t <= 0)
		return json_null();
	dd_format_time(buf, t);
	return json_string(buf);
}

/* "quota_bytes" (null: none), "quota_used_percent", "over_quota",
 * "snapshots_limit" (null: none). */
/* used: NULL while the first usage count runs (unknown). */
static void routes_client_limits(struct routes_ctx *ctx, json_t *o,
				 const char *name, const uint64_t *used)
{
	uint64_t quota = ctx->cfg ? config_client_quota(ctx->cfg, name) : 0;
	unsigned limit = ctx->cfg ? ctx->cfg->max_snapshots_per_client : 0;

	json_object_set_new(o, "quota_bytes", quota ?
			    json_integer((json_int_t)quota) : json_null());
	json_object_set_new(o, "quota_used_percent", quota && used ?
			    json_real(100.0 * (double)*used / (double)quota) :
			    json_null());
	json_object_set_new(o, "over_quota", !quota ? json_false() :
			    used ? json_boolean(*used >= quota) : json_null());
	json_object_set_new(o, "snapshots_limit", limit ?
			    json_integer(limit) : json_null());
}

/* u, nu: the usage counts; u NULL and nu 0 while the first count runs
 * (bytes_unique and chunks_unique are then null). */
static json_t *routes_client_json(struct routes_ctx *ctx,
				  const struct routes_client_sum *c,
				  const struct tokens_list *tl,
				  const struct usage_client *u, size_t nu,
				  bool counting, int64_t now)
{
	struct sessions_result res;
	const struct tokens_client *tc = NULL;
	const struct usage_client *uc = NULL;
	bool have_res, stale;
	int64_t age = c->snapshots ? now - c->last_written : -1;
	uint64_t used;
	json_t *o;
	ssize_t at;
	size_t i;

	at = tokens_list_find(tl, c->name);
	if (at >= 0)
		tc = &tl->v[at];
	for (i = 0; i < nu; i++)
		if (strcmp(u[i].name, c->name) == 0)
			uc = &u[i];
	have_res = sessions_last_result(ctx->sessions, c->name, &res);
	if (age < 0 && c->snapshots)
		age = 0;
	/* An admin token that never backed up is someone's browser, not a
	 * machine that stopped backing up. */
	stale = c->snapshots ? age > (int64_t)ctx->stale_after
			     : !(tc && tc->admin);
	o = json_pack("{s:s, s:o, s:b, s:o, s:I, s:o, s:o, s:o, s:o, s:o, "
		      "s:o, s:b, s:I, s:o, s:o}",
		      "name", c->name,
		      "role", tc ? json_string(tc->admin ? "admin" : "client")
				 : json_null(),
		      "revoked", !tc,
		      "created", tc && tc->created[0] ?
				 json_string(tc->created) : json_null(),
		      "snapshots", (json_int_t)c->snapshots,
		      "last_snapshot", c->snapshots ? json_string(c->last_id)
						    : json_null(),
		      "last_backup_time", routes_time_or_null(
			      c->snapshots ? c->last_written : 0),
		      "last_backup_unix", c->snapshots ?
			      json_integer(c->last_written) : json_null(),
		      "last_backup_age_seconds", c->snapshots ?
			      json_integer(age) : json_null(),
		      "last_backup_bytes_total", c->snapshots ?
			      json_integer((json_int_t)c->last_total) :
			      json_null(),
		      "last_backup_bytes_new", c->snapshots ?
			      json_integer((json_int_t)c->last_new) :
			      json_null(),
		      "stale", stale,
		      "in_progress",
		      (json_int_t)sessions_active(ctx->sessions, c->name),
		      "bytes_unique", counting ? json_null() : json_integer(
			      (json_int_t)(uc ? uc->bytes_unique : 0)),
		      "chunks_unique", counting ? json_null() : json_integer(
			      (json_int_t)(uc ? uc->chunks_unique : 0)));
	if (!o)
		return NULL;
	used = uc ? uc->bytes_unique : 0;
	routes_client_limits(ctx, o, c->name, counting ? NULL : &used);
	/* The result of the last attempt this server saw, else what the
	 * snapshots on disk say. */
	if (have_res) {
		json_object_set_new(o, "last_result",
				    json_string(res.ok ? "ok" : "failed"));
		json_object_set_new(o, "last_result_time",
				    routes_time_or_null(res.time));
		json_object_set_new(o, "last_error", res.ok ? json_null() :
				    json_string(res.error));
	} else {
		json_object_set_new(o, "last_result", c->snapshots ?
				    json_string("ok") : json_null());
		json_object_set_new(o, "last_result_time", routes_time_or_null(
					    c->snapshots ? c->last_written : 0));
		json_object_set_new(o, "last_error", json_null());
	}
	return o;
}

void route_clients(void *payload, const struct http_request *req,
		   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_sums sums;
	struct tokens_list tl = { NULL, 0, false };
	struct usage_client *u = NULL;
	size_t nu = 0, i;
	int64_t now = dd_now();
	json_t *arr = NULL, *o;
	bool counting;
	int rc;

	(void)req;
	rc = routes_sums(ctx, &sums, &tl);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	rc = usage_get(ctx->usage, ctx->snapshots, ctx->store, &u, &nu);
	counting = rc == -EAGAIN;   /* the first count: not known yet */
	if (rc < 0 && !counting) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	if (sums.n)   /* qsort(NULL, 0, ...) is undefined */
		qsort(sums.v, sums.n, sizeof(sums.v[0]), routes_sum_cmp);
	arr = json_array();
	for (i = 0; arr && i < sums.n; i++) {
		o = routes_client_json(ctx, &sums.v[i], &tl, u, nu, counting,
				       now);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	http_reply_json(rep, 200, arr ? json_pack("{s:I, s:I, s:b, s:o}",
		"now", (json_int_t)now,
		"stale_after_seconds", (json_int_t)ctx->stale_after,
		"usage_counting", counting,
		"clients", arr) : NULL);
cleanup:
	free(u);
	free(sums.v);
	tokens_list_release(&tl);
}

/* ---- GET /api/v1/history ---- */

struct routes_day {
	uint64_t snapshots, ingested, new_bytes, stored;
};

struct routes_history {
	const char *client;         /* NULL: all */
	int64_t first, today;       /* day numbers (unix days) */
	struct routes_day *days;
	struct routes_day before;
};

static int routes_history_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_history *h = payload;
	struct routes_day *d;
	int64_t day = it->written_ns / 1000000000 / 86400;

	if (h->client && strcmp(h->client, it->client) != 0)
		return 0;
	if (day > h->today)
		day = h->today;
	d = day < h->first ? &h->before : &h->days[day - h->first];
	d->snapshots++;
	d->ingested += it->bytes_total;
	d->new_bytes += it->bytes_new;
	d->stored += it->bytes_sent;
	return 0;
}

void route_history(void *payload, const struct http_request *req,
		   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_history h;
	const char *days_s = http_request_arg(req, "days"), *only;
	uint64_t ndays = ROUTES_HISTORY_DEFAULT, tot_in, tot_st;
	json_t *arr;
	int64_t i;
	int rc;

	if (!routes_client_arg(req, rep, &only))
		return;
	if (days_s && (dd_parse_u64(days_s, &ndays) < 0 || ndays < 1 ||
		       ndays > ROUTES_HISTORY_MAX)) {
		http_reply_error(rep, 400, "days must be 1 to %d",
				 ROUTES_HISTORY_MAX);
		return;
	}
	memset(&h, 0, sizeof(h));
	h.client = only ? only : req->who->admin ? NULL : req->who->name;
	h.today = dd_now() / 86400;
	h.first = h.today - (int64_t)ndays + 1;
	h.days = calloc(ndays, sizeof(*h.days));
	if (!h.days) {
		routes_fail(rep, -ENOMEM);
		return;
	}
	rc = snapshots_foreach(ctx->snapshots, routes_history_cb, &h);
	if (rc < 0) {
		free(h.days);
		routes_fail(rep, rc);
		return;
	}
	tot_in = h.before.ingested;
	tot_st = h.before.stored;
	arr = json_array();
	for (i = 0; arr && i < (int64_t)ndays; i++) {
		const struct routes_day *d = &h.days[i];
		time_t t = (time_t)((h.first + i) * 86400);
		struct tm tm;
		char date[16];

		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		tot_in += d->ingested;
		tot_st += d->stored;
		if (json_array_append_new(arr, json_pack(
			    "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
			    "date", date,
			    "snapshots", (json_int_t)d->snapshots,
			    "bytes_ingested", (json_int_t)d->ingested,
			    "bytes_new", (json_int_t)d->new_bytes,
			    "bytes_stored", (json_int_t)d->stored,
			    "total_ingested", (json_int_t)tot_in,
			    "total_stored", (json_int_t)tot_st)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(h.days);
	http_reply_json(rep, 200, arr ? json_pack("{s:o, s:o}",
		"client", h.client ? json_string(h.client) : json_null(),
		"days", arr) : NULL);
}

/* ---- GET /metrics (admin) ---- */

int routes_gauge(struct dd_buf *b, const char *name, const char *help,
		 double v)
{
	return metrics_one(b, name, "gauge", help, v);
}

/* Each client's state as notify.h sees it (1 or 0 per gauge), and the
 * notifications sent since the server started. */
static int routes_metrics_states(struct dd_buf *b, struct routes_ctx *ctx,
				 const struct routes_sums *sums,
				 const struct tokens_list *tl, int64_t now)
{
	static const char *const gauges[] = {
		"dedup_client_stale", "dedup_client_last_backup_failed",
	};
	static const char *const helps[] = {
		"1 if the client has no snapshot newer than stale_after",
		"1 if the client's last backup attempt failed",
	};
	struct sessions_result res;
	struct notify_counts nc;
	enum notify_state st;
	size_t g, i;
	ssize_t at;
	int rc = 0;

	for (g = 0; rc == 0 && g < DD_ARRAY_SIZE(gauges); g++) {
		rc = metrics_header(b, gauges[g], "gauge", helps[g]);
		for (i = 0; rc == 0 && i < sums->n; i++) {
			const struct routes_client_sum *c = &sums->v[i];
			bool have = sessions_last_result(ctx->sessions,
							 c->name, &res);

			at = tokens_list_find(tl, c->name);
			if (at < 0)      /* revoked */
				continue;
			st = notify_state_of(tl->v[at].admin, c->snapshots,
					     c->last_written,
					     have ? &res : NULL, now,
					     ctx->stale_after);
			if (st == NOTIFY_NONE)
				continue;
			rc = metrics_sample(b, gauges[g], "client", c->name,
					    st == (g ? NOTIFY_FAILED :
						   NOTIFY_STALE));
		}
	}
	notify_counts(ctx->notify, &nc);
	if (rc == 0)
		rc = metrics_header(b, "dedup_notifications_total", "counter",
				    "notifications sent, by event");
	if (rc == 0)
		rc = metrics_sample(b, "dedup_notifications_total", "event",
				    "stale", (double)nc.events[NOTIFY_STALE]);
	if (rc == 0)
		rc = metrics_sample(b, "dedup_notifications_total", "event",
				    "failed", (double)nc.events[NOTIFY_FAILED]);
	if (rc == 0)
		rc = metrics_sample(b, "dedup_notifications_total", "event",
				    "recovered", (double)nc.events[NOTIFY_OK]);
	if (rc == 0)
		rc = routes_gauge(b, "dedup_notify_hook_failures",
				  "notification hooks that failed or were "
				  "killed", (double)nc.hook_failures);
	return rc;
}

/* Group commit (docs/GROUP-COMMIT.md): pack syncs and the ingests they
 * covered since the server started. */
static int routes_metrics_commits(struct dd_buf *b, struct routes_ctx *ctx)
{
	uint64_t commits, members;
	int rc;

	store_commit_stats(ctx->store, &commits, &members);
	rc = metrics_one(b, "dedup_ingest_commits_total", "counter",
			 "commits of stored chunks, each one pack sync and "
			 "one synced index write",
			 (double)commits);
	if (rc == 0)
		rc = metrics_one(b, "dedup_ingest_committed_total", "counter",
				 "uploads those commits acknowledged (several "
				 "share a commit)",
				 (double)members);
	return rc;
}

/* The buffers of trusted request bodies kept between them (http.c). */
static int routes_body_metrics(struct http_server *h, struct dd_buf *b)
{
	static const char *const got = "dedup_http_body_buffers_total";
	struct http_body_stats s;
	int rc;

	http_body_stats(h, &s);
	rc = metrics_one(b, "dedup_http_body_buffers_kept_bytes", "gauge",
			 "memory of request body buffers kept idle for the "
			 "next bodies", (double)s.kept_bytes);
	if (rc == 0)
		rc = metrics_header(b, got, "counter", "trusted request bodies "
				    "of a MiB or more, by how they got their "
				    "buffer");
	if (rc == 0)
		rc = metrics_sample(b, got, "how", "reused", (double)s.reused);
	if (rc == 0)
		rc = metrics_sample(b, got, "how", "grown", (double)s.grown);
	if (rc == 0)
		rc = metrics_sample(b, got, "how", "fresh", (double)s.fresh);
	return rc;
}

/* The connection table's figures (conns.h): who holds the slots, and
 * what was cut, so that an operator sees a flood or a hoarding client. */
static int routes_conn_metrics(const struct routes_ctx *ctx,
			       struct dd_buf *b)
{
	struct http_server *h = __atomic_load_n(&ctx->http, __ATOMIC_ACQUIRE);
	static const char *const cut = "dedup_http_connections_cut_total";
	struct conns_stats s;
	struct { const char *why; uint64_t n; } cuts[5];
	int rc;

	if (!h)
		return 0;
	http_conn_stats(h, &s);
	cuts[0].why = "headers_late";
	cuts[0].n = s.headers_late;
	cuts[1].why = "body_slow";
	cuts[1].n = s.body_slow;
	cuts[2].why = "untrusted_evicted";
	cuts[2].n = s.evicted;
	cuts[3].why = "all_trusted_refused";
	cuts[3].n = s.refused;
	cuts[4].why = "client_share";
	cuts[4].n = s.hoard_cut;
	rc = metrics_header(b, "dedup_http_connections", "gauge",
			    "connections open, by whether a request on them "
			    "showed a valid token");
	if (rc == 0)
		rc = metrics_sample(b, "dedup_http_connections", "kind",
				    "trusted", (double)(s.open - s.untrusted));
	if (rc == 0)
		rc = metrics_sample(b, "dedup_http_connections", "kind",
				    "untrusted", (double)s.untrusted);
	if (rc == 0)
		rc = metrics_header(b, cut, "counter", "connections the server "
				    "cut, by why");
	for (size_t i = 0; rc == 0 && i < sizeof(cuts) / sizeof(cuts[0]); i++)
		rc = metrics_sample(b, cut, "reason", cuts[i].why,
				    (double)cuts[i].n);
	if (rc == 0)
		rc = metrics_one(b, "dedup_http_bodies_refused_total",
				 "counter", "request bodies answered 503, over "
				 "body_memory or per_client_body_memory",
				 (double)s.body_refused);
	if (rc == 0)
		rc = routes_body_metrics(h, b);
	return rc;
}

void route_metrics(void *payload, const struct http_request *req,
		   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_sums sums;
	struct tokens_list tl = { NULL, 0, false };
	struct routes_figures fig;
	struct dd_buf b;
	char why[600];
	uint64_t snaps, logical, catalogs, chunks, unique, packs = 0;
	uint64_t stored = 0;
	uint64_t disk_free = 0, disk_total = 0, ok = 0, failed = 0;
	int64_t now = dd_now();
	uint8_t *data;
	size_t i, len;
	bool ro;
	int rc;

	(void)req;
	dd_buf_init(&b, 0);
	snapshots_totals(ctx->snapshots, &snaps, &logical, &catalogs);
	routes_figures(ctx, &fig);
	chunks = fig.chunks;
	unique = fig.unique;
	rc = store_pack_usage_recent(ctx->store, &packs, &stored);
	if (rc == 0)
		rc = routes_disk(ctx, &disk_free, &disk_total, &ro);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	rc = routes_sums(ctx, &sums, &tl);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	if (sums.n)   /* qsort(NULL, 0, ...) is undefined */
		qsort(sums.v, sums.n, sizeof(sums.v[0]), routes_sum_cmp);
	sessions_totals(ctx->sessions, &ok, &failed);

	rc = metrics_header(&b, "dedup_build_info", "gauge",
			    "the server's version");
	if (rc == 0)
		rc = metrics_sample(&b, "dedup_build_info", "version",
				    DD_VERSION, 1);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_start_time_seconds",
				  "when the server started (unix time)",
				  (double)ctx->started);
	if (rc == 0)
		rc = metrics_render(ctx->metrics, &b);
	if (rc == 0)
		rc = routes_conn_metrics(ctx, &b);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_backups_in_flight",
				  "backups in progress (open sessions)",
				  (double)fig.backups);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_backups_finished_total",
				    "counter", "backups that ended since the "
				    "server started, by result");
	if (rc == 0)
		rc = metrics_sample(&b, "dedup_backups_finished_total",
				    "result", "ok", (double)ok);
	if (rc == 0)
		rc = metrics_sample(&b, "dedup_backups_finished_total",
				    "result", "failed", (double)failed);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_snapshots", "snapshots stored",
				  (double)snaps);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_chunks", "distinct chunks stored",
				  (double)chunks);
	if (rc == 0)
		rc = routes_metrics_commits(&b, ctx);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_packs", "pack files",
				  (double)packs);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_logical_bytes",
				  "sum of the sizes of all snapshots",
				  (double)logical);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_catalog_bytes",
				  "sum of the catalog sizes of all snapshots",
				  (double)catalogs);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_unique_bytes",
				  "plain bytes of the distinct chunks",
				  (double)unique);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_stored_bytes",
				  "bytes of pack files on disk",
				  (double)stored);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_clients",
				  "clients with a token",
				  (double)tl.n);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_disk_free_bytes",
				  "free bytes on the repository's file system",
				  (double)disk_free);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_disk_total_bytes",
				  "size of the repository's file system",
				  (double)disk_total);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_repository_writable",
				  "1 if new backups can be written",
				  routes_writable(ctx, why, sizeof(why)) ? 1 :
				  0);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_client_snapshots", "gauge",
				    "snapshots per client");
	for (i = 0; rc == 0 && i < sums.n; i++)
		rc = metrics_sample(&b, "dedup_client_snapshots", "client",
				    sums.v[i].name, (double)sums.v[i].snapshots);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_last_backup_timestamp_seconds",
				    "gauge", "when each client's last snapshot "
				    "was written (unix time)");
	for (i = 0; rc == 0 && i < sums.n; i++)
		if (sums.v[i].snapshots)
			rc = metrics_sample(&b,
					    "dedup_last_backup_timestamp_seconds",
					    "client", sums.v[i].name,
					    (double)sums.v[i].last_written);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_last_backup_age_seconds",
				    "gauge", "seconds since each client's last "
				    "snapshot");
	for (i = 0; rc == 0 && i < sums.n; i++)
		if (sums.v[i].snapshots)
			rc = metrics_sample(&b, "dedup_last_backup_age_seconds",
					    "client", sums.v[i].name,
					    (double)(now - sums.v[i].last_written));
	if (rc == 0)
		rc = routes_metrics_states(&b, ctx, &sums, &tl, now);
	if (rc == 0)
		rc = routes_metrics_sync(&b, ctx, now);
	free(sums.v);
	tokens_list_release(&tl);
	if (rc < 0) {
		dd_buf_release(&b);
		routes_fail(rep, rc);
		return;
	}
	data = dd_buf_detach(&b, &len);
	http_reply_take(rep, 200, "text/plain; version=0.0.4; charset=utf-8",
			data, len);
}

void routes_observe(void *payload, const struct http_observation *o)
{
	struct routes_ctx *ctx = payload;

	metrics_request(ctx->metrics, o->method, o->status, o->bytes_in,
			o->bytes_out);
}

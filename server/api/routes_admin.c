/*
 * routes_admin.c - retention and garbage collection on request
 * (admin tokens only): POST /prune and POST /gc.
 */
#include "routes_impl.h"

/* ---- retention and garbage collection (admin only) ---- */

/* A JSON body that may be empty ({}); false after a 400. */
static bool routes_json_body_opt(const struct http_request *req,
				 struct http_reply *rep, json_t **out)
{
	if (req->body_len == 0) {
		*out = json_object();
		if (!*out) {
			routes_fail(rep, -ENOMEM);
			return false;
		}
		return true;
	}
	return routes_json_body(req, rep, out);
}

/* An optional boolean field; false after a 400. */
static bool routes_bool_field(json_t *o, const char *key, bool *out,
			      struct http_reply *rep)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return true;
	if (!json_is_boolean(v)) {
		http_reply_error(rep, 400, "field '%s' must be true or false",
				 key);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

/* For gc_opts.since: a collection keeps what backups in progress use,
 * for gc_protect_max seconds at most when that is set. */
static double routes_oldest_session(void *payload)
{
	struct routes_ctx *ctx = payload;
	double since = sessions_oldest_open(ctx->sessions), limit;

	if (ctx->cfg && ctx->cfg->gc_protect_max) {
		limit = dd_monotonic() - ctx->cfg->gc_protect_max;
		if (since < limit)
			since = limit;
	}
	return since;
}

static void routes_gc_opts(struct gc_opts *o, struct routes_ctx *ctx)
{
	memset(o, 0, sizeof(*o));
	o->threshold = ctx->cfg ? ctx->cfg->gc_repack_threshold :
		GC_DEFAULT_THRESHOLD;
	o->filter_max_bytes = ctx->cfg ?
		(size_t)ctx->cfg->gc_filter_max_mib << 20 : 0;
	o->since = routes_oldest_session;
	o->since_payload = ctx;
}

/* A name with a token or with snapshots: a prune naming another one is
 * a mistyped name, not "nothing to remove". */
static bool routes_client_known(struct routes_ctx *ctx, const char *client)
{
	struct tokens_list l = { NULL, 0, false };
	bool known;

	if (snapshots_count(ctx->snapshots, client) > 0)
		return true;
	if (tokens_copy(ctx->tokens, &l) < 0)
		return true;       /* cannot tell: as before */
	known = tokens_list_find(&l, client) >= 0;
	tokens_list_release(&l);
	return known;
}

static void routes_gc_reply(struct http_reply *rep, int rc)
{
	if (rc == -EBUSY)
		http_reply_error(rep, 409, "%s", log_reason(rc));
	else if (rc == -EBADMSG)
		http_reply_error(rep, 409, "%s", log_reason(rc));
	else
		routes_fail(rep, rc);
}

void route_gc(void *payload, const struct http_request *req,
	      struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct gc_opts o;
	struct gc_report r;
	json_t *body;
	int rc;

	routes_gc_opts(&o, ctx);
	if (!routes_json_body_opt(req, rep, &body))
		return;
	if (!routes_bool_field(body, "dry_run", &o.dry_run, rep)) {
		json_decref(body);
		return;
	}
	json_decref(body);
	dd_error_clear();
	rc = gc_run(ctx->store, ctx->snapshots, &o, &r);
	if (rc < 0) {
		routes_gc_reply(rep, rc);
		return;
	}
	log_info("gc by '%s': %llu chunk(s) removed, %llu pack(s) deleted, "
		 "%llu rewritten, %llu bytes freed%s", req->who->name,
		 (unsigned long long)r.chunks_removed,
		 (unsigned long long)r.packs_deleted,
		 (unsigned long long)r.packs_rewritten,
		 (unsigned long long)r.bytes_freed,
		 o.dry_run ? " (dry run)" : "");
	http_reply_json(rep, 200, gc_report_json(&r, o.dry_run));
}

/* The "policy" object: keep_* keys, each a number (keep_within: a
 * duration string or seconds). false after a 400. */
static bool routes_policy(json_t *v, struct retention_policy *p,
			  struct http_reply *rep)
{
	const char *key;
	json_t *x;
	char val[64], clean[80];

	memset(p, 0, sizeof(*p));
	if (!json_is_object(v)) {
		http_reply_error(rep, 400, "field 'policy' must be an object");
		return false;
	}
	json_object_foreach(v, key, x) {
		log_sanitize(clean, sizeof(clean), key, (size_t)-1);
		if (json_is_integer(x) && json_integer_value(x) >= 0)
			snprintf(val, sizeof(val), "%lld%s",
				 (long long)json_integer_value(x),
				 strstr(key, "within") &&
				 json_integer_value(x) ? "s" : "");
		else if (json_is_string(x) && json_string_length(x) < 32)
			snprintf(val, sizeof(val), "%s", json_string_value(x));
		else {
			http_reply_error(rep, 400, "policy '%s' must be a "
					 "number", clean);
			return false;
		}
		dd_error_clear();
		switch (retention_set(p, key, val, NULL)) {
		case 0:
			break;
		case -ENOENT:
			http_reply_error(rep, 400, "unknown policy '%s'", clean);
			return false;
		default:
			http_reply_error(rep, 400, "invalid policy '%s': %s",
					 clean, dd_error_last());
			return false;
		}
	}
	return true;
}

void route_prune(void *payload, const struct http_request *req,
		 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct gc_opts go;
	struct retention_policy pol;
	struct prune_plan plan;
	struct gc_report r;
	const char **ids = NULL;
	const char *client = NULL;
	json_t *body, *v, *x, *out = NULL;
	bool dry = false, gc = false, have_pol = false;
	size_t i, nids = 0;
	int rc;

	memset(&plan, 0, sizeof(plan));
	routes_gc_opts(&go, ctx);
	if (!routes_json_body_opt(req, rep, &body))
		return;
	if (!routes_bool_field(body, "dry_run", &dry, rep) ||
	    !routes_bool_field(body, "gc", &gc, rep))
		goto cleanup;
	v = json_object_get(body, "client");
	if (v) {
		if (!json_is_string(v) || !tokens_name_valid(json_string_value(v))) {
			http_reply_error(rep, 400, "field 'client' must be a "
					 "client name");
			goto cleanup;
		}
		client = json_string_value(v);
		if (!routes_client_known(ctx, client)) {
			http_reply_error(rep, 404, "no client '%s' (no token "
					 "and no snapshots)", client);
			goto cleanup;
		}
	}
	v = json_object_get(body, "policy");
	if (v) {
		if (!routes_policy(v, &pol, rep))
			goto cleanup;
		have_pol = true;
	}
	v = json_object_get(body, "snapshots");
	if (v) {
		if (!json_is_array(v) || json_array_size(v) < 1 ||
		    json_array_size(v) > 10000 || have_pol || client) {
			http_reply_error(rep, 400, "field 'snapshots' must be an "
					 "array of 1 to 10000 ids, without "
					 "'policy' or 'client'");
			goto cleanup;
		}
		nids = json_array_size(v);
		ids = calloc(nids, sizeof(*ids));
		if (!ids) {
			routes_fail(rep, -ENOMEM);
			goto cleanup;
		}
		json_array_foreach(v, i, x) {
			if (!json_is_string(x) ||
			    json_string_length(x) != DD_ID_HEX_LEN) {
				http_reply_error(rep, 400, "snapshots[%zu] is "
						 "not a snapshot id", i);
				goto cleanup;
			}
			ids[i] = json_string_value(x);
		}
	}
	dd_error_clear();
	rc = dry ? 0 : prune_pool_lock(ctx->store);
	if (rc < 0) {
		routes_gc_reply(rep, rc);
		goto cleanup;
	}
	if (ids)
		rc = prune_plan_ids(&plan, ctx->snapshots, ids, nids);
	else
		rc = prune_plan_make(&plan, ctx->snapshots, ctx->cfg,
				     have_pol ? &pol : NULL, client);
	if (rc == 0 && !dry)
		rc = prune_apply(&plan, ctx->snapshots);
	if (!dry)
		prune_pool_unlock(ctx->store);
	if (rc == -ENOENT) {
		http_reply_error(rep, 404, "%s", log_reason(rc));
		goto cleanup;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	if (!dry && plan.removed)
		log_info("prune by '%s': %zu snapshot(s) removed, %zu kept",
			 req->who->name, plan.removed, plan.keep);
	out = prune_plan_json(&plan, dry);
	if (out && gc) {
		go.dry_run = dry;
		/* a dry run's estimate: as if the plan's snapshots were gone */
		if (dry && prune_plan_drops_index(&plan) < 0) {
			json_decref(out);
			out = NULL;
			routes_fail(rep, -ENOMEM);
			goto cleanup;
		}
		if (dry) {
			go.without = prune_plan_drops;
			go.without_payload = &plan;
		}
		dd_error_clear();
		rc = gc_run(ctx->store, ctx->snapshots, &go, &r);
		if (rc < 0) {
			json_decref(out);
			out = NULL;
			routes_gc_reply(rep, rc);
			goto cleanup;
		}
		json_object_set_new(out, "gc", gc_report_json(&r, dry));
	}
	http_reply_json(rep, 200, out);
cleanup:
	free(ids);
	prune_plan_release(&plan);
	json_decref(body);
}

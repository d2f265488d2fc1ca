/*
 * prune.c - see prune.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frontends.h"
#include "log.h"
#include "prune.h"
#include "store.h"

#define PRUNE_LOCK "prune"

struct prune_collect {
	struct prune_plan *p;
	const char *only;
};

/* The group key of a snapshot: its client, and a digest of its host and
 * sorted paths. */
static char *prune_group(const struct snapshots_item *it)
{
	char hex[DD_ID_HEX_LEN + 1], *g;
	size_t n = strlen(it->client) + 1 + DD_ID_HEX_LEN + 1;

	g = malloc(n);
	if (!g)
		return NULL;
	dd_id_to_hex(hex, &it->group_digest);
	snprintf(g, n, "%s\n%s", it->client, hex);
	return g;
}

static int prune_collect_cb(void *payload, const struct snapshots_item *it)
{
	struct prune_collect *pc = payload;
	struct prune_plan *p = pc->p;
	struct prune_decision *v, *d;

	if (pc->only && strcmp(pc->only, it->client) != 0)
		return 0;
	v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->v = v;
	d = &v[p->n];
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", it->id);
	snprintf(d->client, sizeof(d->client), "%s", it->client);
	/* The server's clock: a client cannot date a snapshot into the
	 * future to make the rules drop its real history. */
	d->time = it->written_ns / 1000000000;
	d->written_ns = it->written_ns;
	d->keep = true;
	d->group = prune_group(it);
	if (!d->group)
		return -ENOMEM;
	p->n++;
	return 0;
}

/* Group, then newest first. */
static int prune_cmp(const void *a, const void *b)
{
	const struct prune_decision *x = a, *y = b;
	int c = strcmp(x->group, y->group);

	if (c)
		return c;
	if (x->time != y->time)
		return x->time > y->time ? -1 : 1;
	if (x->written_ns != y->written_ns)
		return x->written_ns > y->written_ns ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int prune_collect(struct prune_plan *out, struct snapshots *s,
			 const char *only)
{
	struct prune_collect pc = { out, only };
	int rc;

	memset(out, 0, sizeof(*out));
	rc = snapshots_foreach(s, prune_collect_cb, &pc);
	if (rc < 0) {
		prune_plan_release(out);
		return rc;
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(out->v[0]), prune_cmp);
	return 0;
}

static void prune_count(struct prune_plan *p)
{
	size_t i;

	p->keep = p->remove = 0;
	for (i = 0; i < p->n; i++) {
		if (p->v[i].keep)
			p->keep++;
		else
			p->remove++;
	}
}

int prune_plan_make(struct prune_plan *out, struct snapshots *s,
		    const struct config *cfg,
		    const struct retention_policy *policy,
		    const char *only_client)
{
	struct retention_item *items = NULL;
	struct retention_policy pol;
	size_t i, j, k;
	int rc;

	rc = prune_collect(out, s, only_client);
	if (rc < 0)
		return rc;
	if (out->n && !(items = calloc(out->n, sizeof(*items)))) {
		prune_plan_release(out);
		return -ENOMEM;
	}
	for (i = 0; i < out->n; i = j) {
		for (j = i; j < out->n &&
		     strcmp(out->v[j].group, out->v[i].group) == 0; j++)
			items[j - i].time = out->v[j].time;
		if (policy)
			pol = *policy;
		else
			config_client_policy(cfg, out->v[i].client, &pol);
		retention_apply(&pol, items, j - i);
		for (k = i; k < j; k++) {
			out->v[k].keep = items[k - i].keep;
			snprintf(out->v[k].why, sizeof(out->v[k].why), "%s",
				 items[k - i].why);
			retention_format(out->v[k].policy,
					 sizeof(out->v[k].policy), &pol);
		}
	}
	free(items);
	prune_count(out);
	return 0;
}

int prune_plan_ids(struct prune_plan *out, struct snapshots *s,
		   const char *const *ids, size_t n)
{
	size_t i, k;
	int rc;

	rc = prune_collect(out, s, NULL);
	if (rc < 0)
		return rc;
	for (i = 0; i < out->n; i++) {
		snprintf(out->v[i].why, sizeof(out->v[i].why), "not named");
		/* no retention rule applies: the snapshots are named */
		snprintf(out->v[i].policy, sizeof(out->v[i].policy),
			 "by id");
	}
	for (k = 0; k < n; k++) {
		for (i = 0; i < out->n; i++)
			if (strcmp(out->v[i].id, ids[k]) == 0)
				break;
		if (i == out->n) {
			char clean[80];

			log_sanitize(clean, sizeof(clean), ids[k], (size_t)-1);
			prune_plan_release(out);
			return dd_error_set(-ENOENT, "unknown snapshot %s",
					    clean);
		}
		out->v[i].keep = false;
		snprintf(out->v[i].why, sizeof(out->v[i].why), "named");
	}
	prune_count(out);
	return 0;
}

void prune_plan_release(struct prune_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->v[i].group);
	free(p->v);
	free(p->drops);
	memset(p, 0, sizeof(*p));
}

static int prune_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int prune_plan_drops_index(struct prune_plan *p)
{
	size_t i;

	free(p->drops);
	p->drops = NULL;
	p->ndrops = 0;
	if (!p->remove)
		return 0;
	if (!(p->drops = calloc(p->remove, sizeof(*p->drops))))
		return -ENOMEM;
	for (i = 0; i < p->n && p->ndrops < p->remove; i++)
		if (!p->v[i].keep)
			memcpy(p->drops[p->ndrops++], p->v[i].id,
			       sizeof(p->drops[0]));
	qsort(p->drops, p->ndrops, sizeof(p->drops[0]), prune_id_cmp);
	return 0;
}

bool prune_plan_drops(void *plan, const char *id)
{
	const struct prune_plan *p = plan;

	return p->ndrops && bsearch(id, p->drops, p->ndrops,
				    sizeof(p->drops[0]), prune_id_cmp);
}

int prune_apply(struct prune_plan *p, struct snapshots *s)
{
	size_t i;
	int rc;

	for (i = 0; i < p->n; i++) {
		if (p->v[i].keep)
			continue;
		dd_error_clear();
		rc = snapshots_remove(s, p->v[i].id);
		if (rc == -ENOENT)
			continue;      /* removed meanwhile */
		if (rc < 0)
			return rc;
		p->removed++;
	}
	return 0;
}

int prune_pool_lock(struct store *st)
{
	int rc;

	if (!store_shared_on(st))
		return 0;
	rc = backend_lock(store_backend(st), PRUNE_LOCK,
			  FRONTENDS_GC_LEASE_SEC * 1000u);
	if (rc == -EBUSY)
		return log_wrap(rc, "another front-end is pruning");
	return rc;
}

void prune_pool_unlock(struct store *st)
{
	if (store_shared_on(st))
		backend_unlock(store_backend(st), PRUNE_LOCK);
}

json_t *prune_plan_json(const struct prune_plan *p, bool dry_run)
{
	json_t *arr = json_array(), *o;
	char t[32];
	size_t i;

	for (i = 0; arr && i < p->n; i++) {
		const struct prune_decision *d = &p->v[i];

		dd_format_time(t, d->time);
		o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s}",
			      "id", d->id, "client", d->client, "time", t,
			      "unix_time", (json_int_t)d->time,
			      "action", d->keep ? "keep" : "remove",
			      "reason", d->why, "policy", d->policy);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	if (!arr)
		return NULL;
	return json_pack("{s:b, s:I, s:I, s:I, s:o}", "dry_run", dry_run,
			 "kept", (json_int_t)p->keep,
			 "removed", (json_int_t)(dry_run ? p->remove :
						 p->removed),
			 "to_remove", (json_int_t)p->remove,
			 "snapshots", arr);
}

void prune_plan_print(FILE *f, const struct prune_plan *p, bool dry_run)
{
	char t[32];
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct prune_decision *d = &p->v[i];

		if (i == 0 || strcmp(d->group, p->v[i - 1].group) != 0)
			fprintf(f, "client %s (policy: %s):\n", d->client,
				d->policy[0] ? d->policy : "-");
		dd_format_time(t, d->time);
		fprintf(f, "  %-6s %s  %s  (%s)\n", d->keep ? "keep" : "remove",
			d->id, t, d->why[0] ? d->why : "no rule keeps it");
	}
	fprintf(f, "%zu snapshot(s) kept, %zu %sremoved\n", p->keep,
		dry_run ? p->remove : p->removed, dry_run ? "would be " : "");
}

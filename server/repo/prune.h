/*
 * prune.h - applying retention policies (retention.h) to the snapshots:
 * a plan (what each snapshot's fate is, and why), then removing the
 * snapshots the plan drops. Used by `dedup-server prune` and by
 * POST /api/v1/prune.
 *
 * Snapshots are grouped like restic's default: by client, host and set of
 * paths, so that a client backing up /etc and /home separately keeps N of
 * each. Within a group the newest come first, by the time the server wrote
 * each snapshot (never the time the agent claims).
 */
#ifndef SRV_PRUNE_H
#define SRV_PRUNE_H

#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>
#include "config.h"
#include "proto.h"
#include "retention.h"
#include "snapshots.h"

struct prune_decision {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	char *group;                /* "client\n<digest of host and paths>" */
	int64_t time;               /* unix seconds the server wrote it */
	int64_t written_ns;
	bool keep;
	char why[RETENTION_WHY_MAX];
	char policy[200];
};

struct prune_plan {
	struct prune_decision *v;   /* grouped, newest first in a group */
	size_t n;
	size_t keep, remove;
	size_t removed;             /* after prune_apply */
	/* prune_plan_drops_index: the ids of those it drops, sorted */
	char (*drops)[DD_ID_HEX_LEN + 1];
	size_t ndrops;
};

/*
 * Plans for every snapshot (of `only_client` when not NULL): with
 * `policy` when not NULL, else each client's policy from `cfg`. A client
 * whose policy has no rule keeps everything.
 */
int prune_plan_make(struct prune_plan *out, struct snapshots *s,
		    const struct config *cfg,
		    const struct retention_policy *policy,
		    const char *only_client);
/* Plans to remove exactly the snapshots `ids` (full ids; -ENOENT naming
 * the first unknown one) and keep the others. */
int prune_plan_ids(struct prune_plan *out, struct snapshots *s,
		   const char *const *ids, size_t n);
void prune_plan_release(struct prune_plan *p);
/*
 * For a dry run's collection (gc_opts.without): indexes the snapshots the
 * plan drops, after which prune_plan_drops(p, id) says whether it drops
 * `id`, so that the estimate leaves their chunks unmarked, as the real
 * run will have removed them.
 */
int prune_plan_drops_index(struct prune_plan *p);
bool prune_plan_drops(void *plan, const char *id);
/* Removes the snapshots the plan drops; stops at the first failure. */
int prune_apply(struct prune_plan *p, struct snapshots *s);

/*
 * On a pool shared by several front-ends, one prune at a time in the whole
 * pool: the backend lock "prune" with a lease (FRONTENDS_GC_LEASE_SEC), so
 * it frees itself if its holder dies; -EBUSY with a reason while another
 * front-end prunes. A directory repository needs none (one server, and
 * the offline verb's flock): 0 at once. Taken around planning and applying.
 */
int prune_pool_lock(struct store *st);
void prune_pool_unlock(struct store *st);

json_t *prune_plan_json(const struct prune_plan *p, bool dry_run);
void prune_plan_print(FILE *f, const struct prune_plan *p, bool dry_run);

#endif

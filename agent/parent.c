/*
 * parent.c - pairing the walk with the parent snapshot's catalog.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "util.h"
#include "agent.h"
#include "catstream.h"
#include "client.h"
#include "parent.h"
#include "snapshots.h"

struct parent {
	struct catstream *cs;
	struct dd_entry cur;     /* the parent's next unpaired entry */
	bool have;               /* cur is valid */
	bool done;               /* end of the catalog, or it failed */
	uint64_t matched;
};

static int parent_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether the manifest's "paths" are exactly `sorted` (sorted strings). */
static bool parent_same_paths(const json_t *m, const char *const *sorted,
			      size_t n)
{
	const json_t *paths = json_object_get(m, "paths");
	const char **have;
	bool same = true;

	if (!json_is_array(paths) || json_array_size(paths) != n)
		return false;
	if (!(have = calloc(n ? n : 1, sizeof(*have))))
		return false;
	for (size_t i = 0; i < n && same; i++)
		same = (have[i] = json_string_value(json_array_get(paths, i)));
	if (same) {
		qsort(have, n, sizeof(*have), parent_cmp_str);
		for (size_t i = 0; i < n && same; i++)
			same = strcmp(have[i], sorted[i]) == 0;
	}
	free(have);
	return same;
}

struct parent_search {
	const char *host;
	const char *const *sorted;
	size_t n;
	char id[DD_ID_HEX_LEN + 1];
};

static int parent_match_cb(void *payload, json_t *m)
{
	struct parent_search *ps = payload;
	const char *h = json_string_value(json_object_get(m, "host"));
	const char *id = json_string_value(json_object_get(m, "id"));

	if (!id || !h || strcmp(h, ps->host) != 0 ||
	    !parent_same_paths(m, ps->sorted, ps->n))
		return 0;
	snprintf(ps->id, sizeof(ps->id), "%s", id);
	return 1;
}

int parent_find(json_t **out, struct client *c, const char *host,
		char *const *roots, size_t nroots)
{
	struct parent_search ps;
	const char **sorted = NULL;
	int rc;

	*out = NULL;
	if (!(sorted = calloc(nroots ? nroots : 1, sizeof(*sorted))))
		return dd_error_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < nroots; i++)
		sorted[i] = roots[i];
	qsort(sorted, nroots, sizeof(*sorted), parent_cmp_str);
	memset(&ps, 0, sizeof(ps));
	ps.host = host;
	ps.sorted = sorted;
	ps.n = nroots;
	/* Newest first (the server's order): usually the first page has it. */
	rc = snapshots_each(c, true, parent_match_cb, &ps);
	free(sorted);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return 0;
	return snapshots_fetch(out, c, ps.id);
}

int parent_open(struct parent **out, struct client *c, const json_t *manifest,
		size_t per_fetch)
{
	struct parent *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = catstream_new(&p->cs, c, manifest, per_fetch)) < 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void parent_free(struct parent *p)
{
	if (!p)
		return;
	catstream_free(p->cs);
	free(p);
}

uint64_t parent_matched(const struct parent *p)
{
	return p ? p->matched : 0;
}

/* Moves to the parent's next entry; on a read failure the parent is given
 * up for the rest of the backup. */
static void parent_advance(struct parent *p)
{
	int rc = catstream_next(p->cs, &p->cur);

	p->have = rc > 0;
	if (rc <= 0)
		p->done = true;
	if (rc < 0)
		agent_warn("cannot read the parent snapshot's catalog (%s); "
			   "reading every file", dd_error_last());
}

int parent_match(struct parent *p, const char *path, size_t len,
		 const struct stat *st, const struct dd_entry **out)
{
	const struct dd_entry *e = &p->cur;
	int cmp = 1;

	if (!p->have && !p->done)
		parent_advance(p);
	/* Skip the parent's entries that sort before this path: they were
	 * deleted, or are directories and symlinks the walk passed. */
	while (p->have &&
	       (cmp = dd_catalog_path_cmp(e->path, e->path_len, path, len)) < 0)
		parent_advance(p);
	if (!p->have || cmp != 0 || e->type != DD_ENTRY_FILE)
		return 0;
	if (e->size != (uint64_t)st->st_size ||
	    e->mtime_sec != st->st_mtim.tv_sec ||
	    e->mtime_nsec != (uint32_t)st->st_mtim.tv_nsec ||
	    e->ctime_sec != st->st_ctim.tv_sec ||
	    e->ctime_nsec != (uint32_t)st->st_ctim.tv_nsec ||
	    e->ino != (uint64_t)st->st_ino ||
	    e->mode != (st->st_mode & 07777))
		return 0;
	*out = e;
	p->matched++;
	return 1;
}

bool parent_meta_reusable(const struct parent *p)
{
	return catstream_version(p->cs) >= 2;
}

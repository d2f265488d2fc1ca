/*
 * storage.c - see storage.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "frontends.h"
#include "regrant.h"
#include "log.h"
#include "repo.h"
#include "snapshots.h"
#include "storage.h"
#include "tokens.h"
#include "util.h"

static char *storage_ceph_conf;
static char *storage_ceph_user;
static bool storage_opts_given;

static int storage_dup(char **to, const char *from)
{
	char *v = NULL;

	if (from && !(v = strdup(from)))
		return dd_error_set(-ENOMEM, "out of memory");
	free(*to);
	*to = v;
	return 0;
}

int repo_storage_set_opts(const char *ceph_conf, const char *ceph_user)
{
	int rc = storage_dup(&storage_ceph_conf, ceph_conf);

	storage_opts_given = true;
	return rc < 0 ? rc : storage_dup(&storage_ceph_user, ceph_user);
}

void repo_storage_default_opts(void)
{
	struct config cfg;

	if (storage_opts_given || config_init(&cfg) < 0)
		return;
	if (config_load(&cfg, CONFIG_DEFAULT_PATH, false) == 0)
		(void)repo_storage_set_opts(cfg.ceph_conf, cfg.ceph_user);
	dd_error_clear();
	config_release(&cfg);
}

int repo_storage_spec(char *out, size_t outsz, const char *repo)
{
	struct repo_config c;
	int rc = repo_config_load(&c, repo), n;

	if (rc < 0)
		return rc;
	n = c.store[0] ? snprintf(out, outsz, "%s", c.store) :
		snprintf(out, outsz, "dir:%s", repo);
	if (n < 0 || (size_t)n >= outsz)
		return dd_error_set(-ENAMETOOLONG, "path too long: '%s'", repo);
	return 0;
}

int repo_backend_open(struct backend **out, const char *repo)
{
	struct backend_opts o = { storage_ceph_conf, storage_ceph_user };
	char spec[4400];
	int rc;

	*out = NULL;
	rc = repo_storage_spec(spec, sizeof(spec), repo);
	if (rc < 0)
		return rc;
	return backend_open(out, spec, &o);
}

int repo_store_open(struct store **out, const char *repo, unsigned flags)
{
	struct backend *be;
	uint32_t fe;
	int rc = frontends_id(repo, &fe);

	*out = NULL;
	if (rc == 0)
		rc = repo_backend_open(&be, repo);
	if (rc < 0)
		return rc;
	return store_open_fe(out, repo, be, flags, fe);
}

int repo_store_pull_shared(const char *repo, uint64_t *entries)
{
	struct store *st;
	char spec[4400];
	int rc;

	*entries = 0;
	rc = repo_storage_spec(spec, sizeof(spec), repo);
	if (rc < 0 || strncmp(spec, "rados:", 6) != 0)
		return rc;  /* a directory: its index is the whole index */
	/* with the repository's domains: entries new here are held by no
	 * domain (domains_cache_learn) */
	rc = repo_store_open(&st, repo, tokens_store_flags(repo));
	if (rc < 0)
		return rc;
	rc = store_shared_pull(st, entries, false);
	store_close(st);
	return rc;
}

int repo_store_rebuild_index(const char *repo, unsigned flags,
			     uint64_t *chunks, uint64_t *bad)
{
	struct backend *be;
	int rc = repo_backend_open(&be, repo);

	*chunks = 0;
	*bad = 0;
	if (rc < 0)
		return rc;
	return store_rebuild_index_be(repo, be, flags, chunks, bad);
}

/* A manifest a lookup adopts from the pool is marked for its dedup-domain
 * memberships as the tick's adoption marks it (frontends.c). */
static int repo_storage_adopt_mark(void *payload, const char *id)
{
	return regrant_adopt_mark(payload, id);
}

void repo_storage_mirror(struct snapshots *snaps, struct store *st)
{
	struct backend *be = store_backend(st);

	if (strcmp(backend_kind(be), "dir") != 0) {
		snapshots_set_mirror(snaps, be);
		snapshots_set_adopt_hook(snaps, repo_storage_adopt_mark, st);
	}
}

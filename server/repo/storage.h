/*
 * storage.h - where a repository's packs live, as its config.json says
 * ("store", docs/FORMAT.md): the repository directory itself (the
 * default) or a RADOS pool (docs/STORAGE.md). Every verb opens the store
 * through these, so a rados repository is never mistaken for an empty
 * directory one. The repository directory keeps the local state either
 * way: the LevelDB index (a cache rebuildable from the packs), tokens,
 * TLS, snapshots, the lock.
 */
#ifndef SRV_STORAGE_H
#define SRV_STORAGE_H

#include <stdint.h>
#include "backend.h"
#include "store.h"

/*
 * The Ceph options from server.conf (ceph_conf, ceph_user) for every
 * later open in this process; the strings are copied. Unset (NULL),
 * librados finds its config as it always does ($CEPH_CONF,
 * /etc/ceph/ceph.conf) and connects as client.admin.
 */
int repo_storage_set_opts(const char *ceph_conf, const char *ceph_user);
/* For the verbs without --config (check, repair, gc, debug): the Ceph
 * options of the default server.conf (DD_SYSCONFDIR/dedup/server.conf)
 * when it exists and reads cleanly, unless set already. Quiet. */
void repo_storage_default_opts(void);

/* The backend spec of `repo` into out: "dir:<repo>" or its config's
 * "rados:..." spec. Errors as repo_config_load. */
int repo_storage_spec(char *out, size_t outsz, const char *repo);

/* Opens the backend of `repo`. A rados store whose module is missing is
 * -ENOENT with a reason naming the package dedup-server-rados. */
int repo_backend_open(struct backend **out, const char *repo);

/* A store that is not the repository directory keeps the snapshot
 * manifests too (snapshots_set_mirror); a no-op for a directory. */
struct snapshots;
void repo_storage_mirror(struct snapshots *snaps, struct store *st);

/* store_open_be / store_rebuild_index_be on the repository's backend. */
int repo_store_open(struct store **out, const char *repo, unsigned flags);
/* A repository in a pool shared by several front-ends: copies the whole
 * shared chunk index into the local one (a cache), for `check`, which
 * then judges the pool's packs against every front-end's chunks. 0 and
 * nothing done for a directory repository. */
int repo_store_pull_shared(const char *repo, uint64_t *entries);
int repo_store_rebuild_index(const char *repo, unsigned flags,
			     uint64_t *chunks, uint64_t *bad);

#endif

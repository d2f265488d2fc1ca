/*
 * repo.h - the repository directory: file names inside it, config.json,
 * and the locks that keep two writers apart. Layout in docs/FORMAT.md
 * ("Repository layout").
 */
#ifndef SRV_REPO_H
#define SRV_REPO_H

#include <stddef.h>
#include <jansson.h>
#include "chunker.h"

#define REPO_FORMAT 1
#define REPO_CONFIG "config.json"
#define REPO_CLIENTS "clients.json"
#define REPO_INDEX STORE_INDEX_DIR
#define REPO_PACKS STORE_PACKS_DIR
#define REPO_SNAPSHOTS "snapshots"
#define REPO_TLS "tls"
#define REPO_CERT "tls/cert.pem"
#define REPO_KEY "tls/key.pem"
#define REPO_LOCK "lock"

/* The longest "store" spec config.json may hold. */
#define REPO_STORE_MAX 200

/* What config.json holds. */
struct repo_config {
	char repo_id[33];       /* 32 lowercase hex digits */
	char created[32];       /* RFC 3339 */
	struct dd_chunker_params chunker;
	/* Where the packs live: "" for the repository directory itself
	 * (no "store" key: every repository before it), else a
	 * "rados:POOL[/NAMESPACE]" spec (server/store/backend.h). */
	char store[REPO_STORE_MAX + 1];
};

/* "<repo>/<name>" into out; -ENAMETOOLONG if it does not fit. */
int repo_path(char *out, size_t outsz, const char *repo, const char *name);

/* Reads and validates config.json: -ENOENT when the directory holds no
 * repository, -EBADMSG (with a reason) when the file is not valid. */
int repo_config_load(struct repo_config *out, const char *repo);
/* The config.json document (a new reference). NULL on out of memory. */
json_t *repo_config_to_json(const struct repo_config *c);

/*
 * Takes the server's exclusive lock on <repo>/lock without waiting; the
 * lock lasts as long as *out_fd stays open. -EBUSY if another process
 * holds it.
 */
int repo_lock_server(int *out_fd, const char *repo);
/*
 * Takes an exclusive lock on the repository directory itself, waiting for
 * it: serialises read-modify-write of clients.json between `token`
 * commands. Release by closing *out_fd.
 */
int repo_lock_dir(int *out_fd, const char *repo);

#endif

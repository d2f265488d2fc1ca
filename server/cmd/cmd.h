/*
 * cmd.h - the verbs of dedup-server, one file each (cmd_<verb>.c), called
 * from the table in main.c with argv[0] = the verb. Each returns the
 * process exit code: 0 ok, 1 error, 2 usage error.
 */
#ifndef SRV_CMD_H
#define SRV_CMD_H

#define CMD_OK 0
#define CMD_ERROR 1
#define CMD_USAGE 2

int cmd_init(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_debug(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_sync(int argc, char **argv);

/*
 * Run by root on a repository that belongs to another user (the packaged
 * server's `dedup`), a verb acts as that user (its primary group and its
 * groups; the repository directory's group for a uid without a passwd
 * entry; never group root), so that every file it creates or rewrites
 * stays the server's: `sudo dedup-server token add` must not lock the
 * server out of clients.json. A no-op for any other user, or a
 * repository of root's. 0, or a negative errno (logged).
 */
int cmd_as_repo_owner(const char *repo);

/* `repo` when given, else the `repo` of the default configuration file
 * (CONFIG_DEFAULT_PATH) when that exists and sets it, else NULL: for the
 * verbs that take no --config (token, check, repair). */
const char *cmd_default_repo(const char *repo);

/* For maintenance verbs (check, repair, debug): validates the repository
 * (acting as its owner, above) and takes the server lock, printing a
 * clear error (a running server holds the lock) on failure. Release by
 * closing *fd. */
int cmd_lock_repo(int *fd, const char *repo, const char *verb);

/* Usage texts, printed by `help` and on usage errors. */
extern const char cmd_init_usage[];
extern const char cmd_token_usage[];
extern const char cmd_serve_usage[];
extern const char cmd_cert_usage[];
extern const char cmd_check_usage[];
extern const char cmd_repair_usage[];
extern const char cmd_debug_usage[];
extern const char cmd_gc_usage[];
extern const char cmd_prune_usage[];
extern const char cmd_sync_usage[];

/* For gc and prune (cmd_gc.c): open the store and snapshots of a locked
 * repository, and run a collection printing its report. Both log their
 * error. */
struct store;
struct snapshots;
struct gc_opts;
int cmd_open_repo(const char *repo, struct store **st,
		  struct snapshots **snaps);
int cmd_gc_run(const char *repo, struct store *st, struct snapshots *snaps,
	       const struct gc_opts *o);
/* For gc and prune: loads the settings file `config` (NULL: the default
 * one, which may be missing) into *cfg (config_init'ed by the caller),
 * takes *repo from it when NULL, and sets the Ceph settings. CMD_OK, or
 * CMD_USAGE (no repository: `usage` printed) or CMD_ERROR, logged. */
struct config;
int cmd_load_config(struct config *cfg, const char *config,
		    const char **repo, const char *usage);

#endif

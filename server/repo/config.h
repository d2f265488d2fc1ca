/*
 * config.h - dedup-server's settings: built-in defaults, then the config
 * file (`key = value`, default DD_SYSCONFDIR "/dedup/server.conf"), then
 * command-line flags, each overriding the one before. Every key is
 * checked when it is read; a bad one is an error naming the file, the line
 * and the key (or the flag). conf/server.conf.example lists them all.
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proto.h"
#include "retention.h"

#define CONFIG_DEFAULT_PATH DD_SYSCONFDIR "/dedup/server.conf"
#define CONFIG_DEFAULT_LISTEN "127.0.0.1:8443"
#define CONFIG_RESERVED_AUTO (~0u)
/* Defaults of body_memory and per_client_body_memory. */
#define CONFIG_BODY_MEMORY (1024ull * 1024 * 1024)
#define CONFIG_CLIENT_BODY_MEMORY (256ull * 1024 * 1024)
/* Measured: a first backup asks about one id per chunk, at most a few
 * thousand a second per agent (docs/SECURITY.md, "Dedup domains"). */
#define CONFIG_MISSING_IDS_PER_SECOND 20000
#define CONFIG_MISSING_IDS_BURST 262144

struct config {
	char *repo;                 /* NULL until set */
	char *listen;
	char *tls_cert;             /* NULL: <repo>/tls/cert.pem */
	char *tls_key;              /* NULL: <repo>/tls/key.pem */
	/* A repository on RADOS (docs/STORAGE.md): the ceph.conf to read
	 * (NULL: librados' own search, $CEPH_CONF then /etc/ceph/ceph.conf)
	 * and the cephx user without "client." (NULL: admin). */
	char *ceph_conf;
	char *ceph_user;
	unsigned threads;           /* 0: a thread per connection */
	unsigned max_connections;
	/* Of max_connections, slots only connections that showed a valid
	 * token may use; CONFIG_RESERVED_AUTO: a quarter of them. */
	unsigned reserved_connections;
	unsigned per_ip_connections;/* untrusted ones from one address
				     * (IPv6: /64); 0: no limit */
	/* A client's share of a full server (conns.h); CONFIG_RESERVED_AUTO:
	 * a quarter of max_connections. */
	unsigned per_client_connections;
	/* Request bodies in memory at once, all and one client's; 0: no
	 * limit. */
	uint64_t body_memory;
	uint64_t per_client_body_memory;
	unsigned header_timeout;    /* seconds for request headers */
	unsigned min_body_rate;     /* bytes/s; 0: no minimum */
	unsigned connection_timeout;/* seconds idle */
	unsigned drain_timeout;     /* seconds */
	unsigned session_timeout;   /* seconds */
	unsigned stale_after;       /* seconds */
	unsigned gc_repack_threshold;  /* percent dead that makes a repack */
	unsigned gc_filter_max_mib; /* cap of gc's mark filter (gc.h) */
	/* 1: pack data leaves the page cache once synced (the directory
	 * backend: backend_dir_drop_appended) */
	unsigned pack_cache_drop;
	/* 1: pack data is written past the page cache, with O_DIRECT (the
	 * directory backend: backend_dir_direct_appends) */
	unsigned pack_direct_io;
	unsigned max_snapshots_per_client;  /* 0: no limit */
	/* Bytes a client's snapshots alone may reference (usage.h's
	 * bytes_unique); 0: no quota. `client.NAME.quota_bytes` overrides. */
	uint64_t quota_bytes;
	unsigned gc_protect_max;    /* seconds gc keeps a backup's chunks;
				     * 0: until the backup ends */
	/* /chunks/missing: ids a client may ask about a second (0: no
	 * limit) and how many it may save up. */
	unsigned missing_ids_per_second;
	unsigned missing_ids_burst;
	/* Notifications of stale and failed backups (notify.h): a command,
	 * an address (NULL: none), sendmail's path, seconds between checks,
	 * between reminders (0: none) and a hook may run. */
	char *notify_command;
	char *notify_email;
	char *sendmail;
	unsigned notify_interval;
	unsigned notify_repeat;
	unsigned notify_timeout;
	/* Replication (docs/REPLICATION.md): the source's URL (NULL: no
	 * sync), a file holding its token, its CA file or pinned
	 * certificate, the clients to copy (comma-separated; NULL: all) and
	 * the seconds between runs (0: only when asked, `dedup-server sync
	 * --repo DIR`). */
	char *sync_from;
	char *sync_token_file;
	char *sync_ca;
	char *sync_fingerprint;
	char *sync_clients;
	unsigned sync_interval;
	unsigned sync_max_clients;          /* sync.h */
	/* Retention: `keep_daily = 7` for every client, and overrides,
	 * `client.NAME.keep_daily = 14`, each replacing one rule. */
	struct retention_policy keep;
	struct config_client_keep *clients;
	size_t nclients;
};

struct config_client_keep {
	char name[DD_CLIENT_NAME_MAX + 1];
	struct retention_policy keep;
	bool set[RETENTION_RULES];  /* rules this client overrides */
	uint64_t quota_bytes;
	bool quota_set;             /* quota_bytes overrides the global one */
};

/* The retention policy of one client: the global one with its overrides. */
void config_client_policy(const struct config *c, const char *client,
			  struct retention_policy *out);

/* The storage quota of one client in bytes; 0: none. */
uint64_t config_client_quota(const struct config *c, const char *client);
/* Whether any client may have a quota. */
bool config_any_quota(const struct config *c);

/* The defaults (listen is CONFIG_DEFAULT_LISTEN). -ENOMEM. */
int config_init(struct config *c);
void config_release(struct config *c);

/*
 * Sets one key. `where` names the source for messages ("FILE:LINE" or
 * "--flag"). -EINVAL with "<where>: unknown key 'k'" or "<where>: invalid
 * value 'v' for 'k' (...)".
 */
int config_set(struct config *c, const char *key,
		      const char *value, const char *where);

/*
 * Checks what single keys cannot: reserved_connections below
 * max_connections. Resolves CONFIG_RESERVED_AUTO. -EINVAL with the reason.
 */
int config_check(struct config *c);

/*
 * Reads a config file. A missing file is fine when !must_exist. Syntax
 * errors and bad keys fail with the file and line in the reason.
 */
int config_load(struct config *c, const char *path,
		       bool must_exist);

#endif

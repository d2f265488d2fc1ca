/*
 * config.c - see config.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "config.h"
#include "log.h"
#include "snapshots.h"
#include "sync.h"
#include "tokens.h"
#include "util.h"

#define CONFIG_PATH_MAX 4000
#define CONFIG_YEAR (366u * 86400)

enum config_kind { CONFIG_STRING, CONFIG_PATH, CONFIG_COUNT, CONFIG_SECONDS,
		   CONFIG_BYTES };

struct config_key {
	const char *name;
	enum config_kind kind;
	size_t off;                 /* into struct config */
	unsigned min, max;          /* numbers */
};

#define CONFIG_OFF(f) offsetof(struct config, f)

static const struct config_key config_keys[] = {
	{ "repo", CONFIG_PATH, CONFIG_OFF(repo), 0, 0 },
	{ "listen", CONFIG_STRING, CONFIG_OFF(listen), 0, 0 },
	{ "tls_cert", CONFIG_PATH, CONFIG_OFF(tls_cert), 0, 0 },
	{ "tls_key", CONFIG_PATH, CONFIG_OFF(tls_key), 0, 0 },
	{ "ceph_conf", CONFIG_PATH, CONFIG_OFF(ceph_conf), 0, 0 },
	{ "ceph_user", CONFIG_STRING, CONFIG_OFF(ceph_user), 0, 0 },
	{ "threads", CONFIG_COUNT, CONFIG_OFF(threads), 0, 256 },
	{ "max_connections", CONFIG_COUNT, CONFIG_OFF(max_connections), 1, 10000 },
	{ "reserved_connections", CONFIG_COUNT,
	  CONFIG_OFF(reserved_connections), 0, 9999 },
	{ "per_ip_connections", CONFIG_COUNT, CONFIG_OFF(per_ip_connections), 0,
	  10000 },
	{ "per_client_connections", CONFIG_COUNT,
	  CONFIG_OFF(per_client_connections), 0, 10000 },
	{ "body_memory", CONFIG_BYTES, CONFIG_OFF(body_memory), 0, 0 },
	{ "per_client_body_memory", CONFIG_BYTES,
	  CONFIG_OFF(per_client_body_memory), 0, 0 },
	{ "header_timeout", CONFIG_SECONDS, CONFIG_OFF(header_timeout), 1,
	  3600 },
	{ "min_body_rate", CONFIG_COUNT, CONFIG_OFF(min_body_rate), 0,
	  1000000000 },
	{ "connection_timeout", CONFIG_SECONDS, CONFIG_OFF(connection_timeout), 1,
	  86400 },
	{ "drain_timeout", CONFIG_SECONDS, CONFIG_OFF(drain_timeout), 0, 3600 },
	{ "session_timeout", CONFIG_SECONDS, CONFIG_OFF(session_timeout), 1,
	  7 * 86400 },
	{ "stale_after", CONFIG_SECONDS, CONFIG_OFF(stale_after), 60,
	  10 * CONFIG_YEAR },
	{ "gc_repack_threshold", CONFIG_COUNT, CONFIG_OFF(gc_repack_threshold),
	  1, 100 },
	{ "gc_filter_max_mib", CONFIG_COUNT, CONFIG_OFF(gc_filter_max_mib),
	  1, 65536 },
	{ "pack_cache_drop", CONFIG_COUNT, CONFIG_OFF(pack_cache_drop), 0, 1 },
	{ "pack_direct_io", CONFIG_COUNT, CONFIG_OFF(pack_direct_io), 0, 1 },
	{ "max_snapshots_per_client", CONFIG_COUNT,
	  CONFIG_OFF(max_snapshots_per_client), 0, 10000000 },
	{ "quota_bytes", CONFIG_BYTES, CONFIG_OFF(quota_bytes), 0, 0 },
	{ "gc_protect_max", CONFIG_SECONDS, CONFIG_OFF(gc_protect_max), 0,
	  10 * CONFIG_YEAR },
	{ "missing_ids_per_second", CONFIG_COUNT,
	  CONFIG_OFF(missing_ids_per_second), 0, 100000000 },
	{ "missing_ids_burst", CONFIG_COUNT, CONFIG_OFF(missing_ids_burst), 1,
	  1000000000 },
	{ "notify_command", CONFIG_STRING, CONFIG_OFF(notify_command), 0, 0 },
	{ "notify_email", CONFIG_STRING, CONFIG_OFF(notify_email), 0, 0 },
	{ "sendmail", CONFIG_PATH, CONFIG_OFF(sendmail), 0, 0 },
	{ "notify_interval", CONFIG_SECONDS, CONFIG_OFF(notify_interval), 1,
	  86400 },
	{ "notify_repeat", CONFIG_SECONDS, CONFIG_OFF(notify_repeat), 0,
	  10 * CONFIG_YEAR },
	{ "notify_timeout", CONFIG_SECONDS, CONFIG_OFF(notify_timeout), 1,
	  3600 },
	{ "sync_from", CONFIG_STRING, CONFIG_OFF(sync_from), 0, 0 },
	{ "sync_token_file", CONFIG_PATH, CONFIG_OFF(sync_token_file), 0, 0 },
	{ "sync_ca", CONFIG_PATH, CONFIG_OFF(sync_ca), 0, 0 },
	{ "sync_fingerprint", CONFIG_STRING, CONFIG_OFF(sync_fingerprint), 0,
	  0 },
	{ "sync_clients", CONFIG_STRING, CONFIG_OFF(sync_clients), 0, 0 },
	{ "sync_interval", CONFIG_SECONDS, CONFIG_OFF(sync_interval), 0,
	  30 * 86400 },
	{ "sync_max_clients", CONFIG_COUNT, CONFIG_OFF(sync_max_clients), 1,
	  100000 },
};

int config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = strdup(CONFIG_DEFAULT_LISTEN);
	if (!c->listen)
		return -ENOMEM;
	c->threads = 0;
	c->max_connections = 64;
	c->reserved_connections = CONFIG_RESERVED_AUTO;
	c->per_ip_connections = 16;
	c->per_client_connections = CONFIG_RESERVED_AUTO;
	c->body_memory = CONFIG_BODY_MEMORY;
	c->per_client_body_memory = CONFIG_CLIENT_BODY_MEMORY;
	c->header_timeout = 10;
	c->min_body_rate = 1024;
	c->connection_timeout = 300;
	c->drain_timeout = 60;
	c->session_timeout = 900;
	c->stale_after = 2 * 86400;
	c->gc_repack_threshold = 30;
	c->gc_filter_max_mib = 256;
	c->pack_direct_io = 1;
	c->max_snapshots_per_client = SNAPSHOTS_PER_CLIENT_DEFAULT;
	c->quota_bytes = 0;
	c->gc_protect_max = 0;
	c->missing_ids_per_second = CONFIG_MISSING_IDS_PER_SECOND;
	c->missing_ids_burst = CONFIG_MISSING_IDS_BURST;
	c->sendmail = strdup("/usr/sbin/sendmail");
	if (!c->sendmail)
		return -ENOMEM;
	c->notify_interval = 60;
	c->notify_repeat = 86400;
	c->notify_timeout = 30;
	c->sync_interval = 3600;
	c->sync_max_clients = SYNC_MAX_CLIENTS_DEFAULT;
	return 0;
}

void config_release(struct config *c)
{
	free(c->repo);
	free(c->listen);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->notify_command);
	free(c->notify_email);
	free(c->sendmail);
	free(c->ceph_conf);
	free(c->ceph_user);
	free(c->sync_from);
	free(c->sync_token_file);
	free(c->sync_ca);
	free(c->sync_fingerprint);
	free(c->sync_clients);
	free(c->clients);
	memset(c, 0, sizeof(*c));
}

/* "90", "90s", "15m", "36h", "2d" -> seconds. */
static int config_parse_seconds(const char *v, uint64_t *out)
{
	char num[32];
	size_t n = strlen(v);
	uint64_t mult = 1, x;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	switch (v[n - 1]) {
	case 's': mult = 1; n--; break;
	case 'm': mult = 60; n--; break;
	case 'h': mult = 3600; n--; break;
	case 'd': mult = 86400; n--; break;
	default: break;
	}
	memcpy(num, v, n);
	num[n] = '\0';
	if (dd_parse_u64(num, &x) < 0 || x > UINT32_MAX)
		return -EINVAL;
	*out = x * mult;
	return 0;
}

/* "0", "500000", "200M", "50G", "2T" (powers of 1024) -> bytes. */
static int config_parse_bytes(const char *v, uint64_t *out)
{
	return dd_parse_bytes(v, out);
}

uint64_t config_client_quota(const struct config *c, const char *client)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (c->clients[i].quota_set &&
		    strcmp(c->clients[i].name, client) == 0)
			return c->clients[i].quota_bytes;
	return c->quota_bytes;
}

bool config_any_quota(const struct config *c)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (c->clients[i].quota_set && c->clients[i].quota_bytes)
			return true;
	return c->quota_bytes != 0;
}

void config_client_policy(const struct config *c, const char *client,
			  struct retention_policy *out)
{
	size_t i;
	int r;

	*out = c->keep;
	for (i = 0; i < c->nclients; i++) {
		if (strcmp(c->clients[i].name, client) != 0)
			continue;
		for (r = 0; r < RETENTION_RULES; r++)
			if (c->clients[i].set[r])
				out->v[r] = c->clients[i].keep.v[r];
	}
}

/* "keep_daily" or "client.NAME.keep_daily". 1 if the key is not one of
 * them, else 0 or a negative code with the reason set. */
static int config_set_keep(struct config *c, const char *key,
			   const char *value, const char *where,
			   const char *kclean, const char *clean)
{
	char name[DD_CLIENT_NAME_MAX + 1];
	struct config_client_keep *cl = NULL;
	struct retention_policy *p = &c->keep;
	enum retention_rule rule;
	const char *rkey = key, *dot;
	size_t i, n;
	int rc;

	if (strncmp(key, "client.", 7) == 0) {
		dot = strrchr(key, '.');
		n = (size_t)(dot - (key + 7));
		if (dot <= key + 7 || n > DD_CLIENT_NAME_MAX)
			return 1;
		memcpy(name, key + 7, n);
		name[n] = '\0';
		if (!tokens_name_valid(name))
			return dd_error_set(-EINVAL, "%s: invalid client name "
					    "in '%s'", where, kclean);
		rkey = dot + 1;
		if (strncmp(rkey, "keep_", 5) != 0 &&
		    strcmp(rkey, "quota_bytes") != 0)
			return 1;
		for (i = 0; i < c->nclients; i++)
			if (strcmp(c->clients[i].name, name) == 0)
				cl = &c->clients[i];
		if (!cl) {
			cl = realloc(c->clients,
				     (c->nclients + 1) * sizeof(*cl));
			if (!cl)
				return -ENOMEM;
			c->clients = cl;
			cl = &c->clients[c->nclients];
			memset(cl, 0, sizeof(*cl));
			snprintf(cl->name, sizeof(cl->name), "%s", name);
			/* Kept even if the key below is bad: config errors
			 * stop the server anyway. */
			c->nclients++;
		}
		p = &cl->keep;
		if (strcmp(rkey, "quota_bytes") == 0) {
			if (config_parse_bytes(value, &cl->quota_bytes) < 0)
				return dd_error_set(-EINVAL, "%s: invalid value "
						    "'%s' for '%s' (want bytes, "
						    "like 500M, 50G or 2T; 0 "
						    "for none)", where, clean,
						    kclean);
			cl->quota_set = true;
			return 0;
		}
	} else if (strncmp(key, "keep_", 5) != 0) {
		return 1;
	}
	dd_error_clear();
	rc = retention_set(p, rkey, value, &rule);
	if (rc == -ENOENT)
		return 1;
	if (rc < 0)
		return dd_error_set(-EINVAL, "%s: invalid value '%s' for '%s' "
				    "(%s)", where, clean, kclean,
				    dd_error_last());
	if (cl)
		cl->set[rule] = true;
	return 0;
}

int config_set(struct config *c, const char *key,
		      const char *value, const char *where)
{
	const struct config_key *k = NULL;
	char clean[200], kclean[100];
	uint64_t x;
	size_t i;

	log_sanitize(kclean, sizeof(kclean), key, (size_t)-1);
	log_sanitize(clean, sizeof(clean), value, (size_t)-1);
	for (i = 0; i < DD_ARRAY_SIZE(config_keys); i++)
		if (strcmp(config_keys[i].name, key) == 0)
			k = &config_keys[i];
	if (!k) {
		int rc = config_set_keep(c, key, value, where, kclean, clean);

		if (rc <= 0)
			return rc;
	}
	if (!k)
		return dd_error_set(-EINVAL, "%s: unknown key '%s'", where,
				    kclean);
	switch (k->kind) {
	case CONFIG_PATH:
	case CONFIG_STRING: {
		char **slot = (char **)((char *)c + k->off), *copy;

		if (value[0] == '\0' || strlen(value) > CONFIG_PATH_MAX)
			return dd_error_set(-EINVAL, "%s: invalid value '%s' "
					    "for '%s' (want 1 to %d bytes)",
					    where, clean, kclean,
					    CONFIG_PATH_MAX);
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
		free(*slot);
		*slot = copy;
		return 0;
	}
	case CONFIG_COUNT:
		if (dd_parse_u64(value, &x) < 0 || x < k->min || x > k->max)
			return dd_error_set(-EINVAL, "%s: invalid value '%s' "
					    "for '%s' (want a number from %u "
					    "to %u)", where, clean, kclean,
					    k->min, k->max);
		*(unsigned *)((char *)c + k->off) = (unsigned)x;
		return 0;
	case CONFIG_SECONDS:
		if (config_parse_seconds(value, &x) < 0 || x < k->min ||
		    x > k->max)
			return dd_error_set(-EINVAL, "%s: invalid value '%s' "
					    "for '%s' (want a duration from "
					    "%us to %us, like 90s, 15m, 36h "
					    "or 2d)", where, clean, kclean,
					    k->min, k->max);
		*(unsigned *)((char *)c + k->off) = (unsigned)x;
		return 0;
	case CONFIG_BYTES:
		if (config_parse_bytes(value, &x) < 0)
			return dd_error_set(-EINVAL, "%s: invalid value '%s' "
					    "for '%s' (want bytes, like 500M, "
					    "50G or 2T; 0 for none)", where,
					    clean, kclean);
		*(uint64_t *)((char *)c + k->off) = x;
		return 0;
	}
	return -EINVAL;
}

int config_check(struct config *c)
{
	if (c->sync_from && !c->sync_token_file)
		return dd_error_set(-EINVAL, "sync_from needs sync_token_file "
				    "(the source's token)");
	if (c->sync_from && strncmp(c->sync_from, "https://", 8) != 0)
		return dd_error_set(-EINVAL, "sync_from must be an https:// "
				    "URL, not '%s'", c->sync_from);
	if (c->per_client_connections == CONFIG_RESERVED_AUTO)
		c->per_client_connections = c->max_connections / 4 ?
					    c->max_connections / 4 : 1;
	if (c->reserved_connections == CONFIG_RESERVED_AUTO) {
		c->reserved_connections = c->max_connections / 4;
		return 0;
	}
	if (c->reserved_connections >= c->max_connections)
		return dd_error_set(-EINVAL, "reserved_connections (%u) must be "
				    "less than max_connections (%u)",
				    c->reserved_connections,
				    c->max_connections);
	return 0;
}

struct config_load {
	struct config *c;
	const char *path;
};

static int config_conf_cb(void *payload, const char *key, const char *value,
			  unsigned line)
{
	struct config_load *cl = payload;
	char where[4200];

	snprintf(where, sizeof(where), "%s:%u", cl->path, line);
	return config_set(cl->c, key, value, where);
}

int config_load(struct config *c, const char *path,
		       bool must_exist)
{
	struct config_load cl = { c, path };
	int rc;

	dd_error_clear();
	rc = dd_conf_parse_file(path, config_conf_cb, &cl);
	if (rc == -ENOENT && !must_exist)
		return 0;
	if (rc == -ENOENT || rc == -EACCES || rc == -EISDIR)
		return dd_error_set(rc, "cannot read config '%s': %s", path,
				    strerror(-rc));
	return rc;
}

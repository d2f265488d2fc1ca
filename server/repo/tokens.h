/*
 * tokens.h - client tokens. clients.json (mode 0600) lists each client's
 * name, role and the SHA-256 of its token; the token itself is shown once,
 * by `dedup-server token add`, and never stored.
 *
 *   {"version": 1, "clients": [{"name": "laptop", "role": "client",
 *     "token_sha256": "<64 hex>", "created": "2026-11-21T16:40:00Z",
 *     "domain": "home"}], "domains_used": true}
 *
 * "domain" names the client's dedup domain (server/store/domains.h); a client
 * without one is in the default domain (TOKENS_DEFAULT_DOMAIN), as every
 * client of a file written before domains existed. "domains_used" is
 * sticky: set once any client had another domain, it stays set when that
 * client is revoked, so that an index rebuilt from the packs knows it must
 * not show every chunk to the default domain.
 *
 * Two halves: a plain list for the `token` commands (load, change, save
 * atomically), and a live table for the server that re-reads the file when
 * it changes, so `token add` and `token revoke` take effect on a running
 * server without a restart.
 */
#ifndef SRV_TOKENS_H
#define SRV_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "proto.h"
#include "domains.h"

#define TOKENS_TOKEN_LEN 67     /* "dd_" + 64 hex digits */
#define TOKENS_DEFAULT_DOMAIN DOMAINS_DEFAULT

struct tokens_client {
	char name[DD_CLIENT_NAME_MAX + 1];
	bool admin;
	uint8_t hash[32];       /* SHA-256 of the token string */
	char created[32];
	char domain[DD_CLIENT_NAME_MAX + 1];   /* never empty */
};

struct tokens_list {
	struct tokens_client *v;
	size_t n;
	bool domains_used;      /* sticky; see above */
};

/* [A-Za-z0-9._-]{1,64}, not starting with '.'. */
bool tokens_name_valid(const char *name);

/* Reads clients.json; -ENOENT if missing, -EBADMSG with a reason if it is
 * not valid (bad names, roles, hashes, domains, duplicate names). The
 * caller releases *out with tokens_list_release. */
int tokens_list_load(struct tokens_list *out, const char *path);
/* Writes clients.json atomically with mode 0600; sets "domains_used" when
 * it was set or any client is outside the default domain. */
int tokens_list_save(const struct tokens_list *l, const char *path);
void tokens_list_release(struct tokens_list *l);
/* Index of the client called `name`, or -1. */
ssize_t tokens_list_find(const struct tokens_list *l, const char *name);
/* Appends a copy of *c; -ENOMEM. */
int tokens_list_add(struct tokens_list *l, const struct tokens_client *c);
/* Removes entry i. */
void tokens_list_remove(struct tokens_list *l, size_t i);

/* A fresh random token (NUL-terminated) and its SHA-256. */
int tokens_generate(char out[TOKENS_TOKEN_LEN + 1], uint8_t hash[32]);

/* True if any client of l is outside the default domain, or ever was. */
bool tokens_list_domains_used(const struct tokens_list *l);
/* The same for a repository's clients.json, as the flags store_open_ex()
 * takes: STORE_DOMAINS_USED or 0. A missing file says 0, an unreadable
 * one STORE_DOMAINS_USED (the safe answer, with a warning). */
unsigned tokens_store_flags(const char *repo);

/* Who a request comes from. */
struct tokens_identity {
	char name[DD_CLIENT_NAME_MAX + 1];
	bool admin;
	char domain[DD_CLIENT_NAME_MAX + 1];
};

/* The server's live table. */
struct tokens;
/* Loads `path`; an unreadable or invalid file is an error at startup. */
int tokens_new(struct tokens **out, const char *path);
void tokens_free(struct tokens *t);
/*
 * Checks an Authorization header value ("Bearer <token>", may be NULL).
 * Re-reads the file first if its inode, size or mtime changed; if the new
 * file is invalid, every token is refused until it is fixed (fail closed).
 * Hashes are compared in constant time. 0 and *who filled, or -EACCES.
 */
int tokens_authenticate(struct tokens *t, const char *authorization,
			struct tokens_identity *who);
/* tokens_list_domains_used() of the table (after a reload check). */
bool tokens_domains_used(struct tokens *t);
/* Number of clients in the table (after a reload check). */
size_t tokens_count(struct tokens *t);
/* A copy of the table (after a reload check); the caller releases it with
 * tokens_list_release. -ENOMEM. */
int tokens_copy(struct tokens *t, struct tokens_list *out);

#endif

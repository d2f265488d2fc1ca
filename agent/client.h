/*
 * client.h - the agent's HTTPS client (libcurl). One client owns one curl
 * easy handle, so successive requests reuse the connection (keep-alive);
 * a client is used by one thread at a time, and a concurrent uploader
 * gives each thread its own client.
 *
 * TLS is always verified: against a pinned certificate fingerprint (the
 * SHA-256 of the server's certificate; then nothing else is checked),
 * else the configured CA file (the server's self-signed certificate is its
 * own CA), else the system trust store. Every request carries the bearer
 * token. Every response body is capped while it is received.
 *
 * Errors: 0 means a 2xx answer. Otherwise a negative code with a one-line
 * reason recorded (dd_error_last):
 *   -ECONNREFUSED  cannot connect / resolve / timed out
 *   -EPROTO        TLS failure, transport failure, or an unexpected status
 *   -EACCES        401/403: the token was rejected
 *   -ENOENT        404, -E2BIG 413 or a reply over the cap, -EEXIST 409,
 *   -ENOSPC        507
 * For HTTP errors the reason carries the server's JSON "error" message and
 * the status.
 */
#ifndef DD_AGENT_CLIENT_H
#define DD_AGENT_CLIENT_H

#include <stddef.h>
#include <jansson.h>

#include "util.h"
#include "settings.h"

/* The largest response body accepted when the caller sets no cap. */
#define CLIENT_MAX_RESPONSE (80u * 1024 * 1024)

struct client;

/* Call once per process before any client (curl_global_init). */
int client_global_init(void);
void client_global_cleanup(void);

int client_new(struct client **out, const struct settings *s);
void client_free(struct client *c);

/* The server's base URL, for messages (borrowed). */
const char *client_server(const struct client *c);

/* The client-side encryption key (key.h) the settings named, loaded by
 * client_new; NULL without key_file. Borrowed, shared by all clients. */
struct dd_crypt;
const struct dd_crypt *client_crypt(const struct client *c);

/*
 * One request. `method` is "GET" or "POST"; `path` starts with '/';
 * `ctype` is the body's Content-Type (POST only). The reply body replaces
 * the contents of *resp; it may not exceed resp->cap (or
 * CLIENT_MAX_RESPONSE when the cap is 0 or larger).
 */
int client_request(struct client *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len,
		   struct dd_buf *resp);

/* GET path and parse the JSON reply; the caller owns *out. */
int client_get_json(struct client *c, const char *path, json_t **out);
/* POST a JSON body and parse the JSON reply; the caller owns *out (which
 * may be NULL when not wanted). */
int client_post_json(struct client *c, const char *path, const json_t *body,
		     json_t **out);

#endif

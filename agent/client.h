/*
 * client.h - the agent's HTTPS client: shared/httpc.h configured from the
 * agent's settings (server, token, --ca, --fingerprint), with the
 * DEDUP_AGENT_RETRIES environment override. Errors and TLS rules are
 * httpc.h's.
 */
#ifndef DD_AGENT_CLIENT_H
#define DD_AGENT_CLIENT_H

#include <stddef.h>
#include <jansson.h>

#include "httpc.h"
#include "settings.h"
#include "util.h"

/* The largest response body accepted when the caller sets no cap. */
#define CLIENT_MAX_RESPONSE DD_HTTPC_MAX_RESPONSE

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

/* dd_httpc_request, dd_httpc_get_json and dd_httpc_post_json. */
int client_request(struct client *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len,
		   struct dd_buf *resp);
int client_get_json(struct client *c, const char *path, json_t **out);
int client_post_json(struct client *c, const char *path, const json_t *body,
		     json_t **out);

#endif

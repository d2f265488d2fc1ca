/*
 * repo_config.h - the repository parameters the server publishes at
 * GET /api/v1/config: the chunker every agent must cut with, and the
 * server's request limits (0 = not announced).
 */
#ifndef DD_AGENT_REPO_CONFIG_H
#define DD_AGENT_REPO_CONFIG_H

#include <stddef.h>

#include "chunker.h"

struct client;

struct repo_config {
	struct dd_chunker_params chunker;
	size_t max_upload_body;
	size_t max_ids_per_query;
	size_t max_fetch_response;
	size_t max_json_body;
};

/* Fetches and validates the config; -EBADMSG naming the bad field. */
int repo_config_fetch(struct repo_config *out, struct client *c);

#endif

/*
 * repo_config.c - GET /api/v1/config.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "proto.h"
#include "util.h"
#include "client.h"
#include "repo_config.h"

static int repo_config_u32(uint32_t *out, const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > UINT32_MAX)
		return dd_error_set(-EBADMSG,
				    "server config has no valid chunker.%s", key);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

/* An optional limit: absent or not a positive integer means 0. */
static size_t repo_config_limit(const json_t *limits, const char *key)
{
	json_t *v = json_object_get(limits, key);

	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return 0;
	return (size_t)json_integer_value(v);
}

int repo_config_fetch(struct repo_config *out, struct client *c)
{
	json_t *j = NULL, *ch, *limits;
	const char *seed;
	uint8_t raw[8];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = client_get_json(c, DD_API_PREFIX "/config", &j)) < 0)
		return rc;
	ch = json_object_get(j, "chunker");
	if ((rc = repo_config_u32(&out->chunker.min_size, ch, "min_size")) < 0 ||
	    (rc = repo_config_u32(&out->chunker.avg_size, ch, "avg_size")) < 0 ||
	    (rc = repo_config_u32(&out->chunker.max_size, ch, "max_size")) < 0)
		goto cleanup;
	/* The seed is a 64-bit number written as 16 hex digits. */
	seed = json_string_value(json_object_get(ch, "seed"));
	if (!seed || dd_hex_decode(raw, sizeof(raw), seed, strlen(seed)) < 0) {
		rc = dd_error_set(-EBADMSG,
				  "server config has no valid chunker.seed");
		goto cleanup;
	}
	out->chunker.seed = 0;
	for (size_t i = 0; i < sizeof(raw); i++)
		out->chunker.seed = out->chunker.seed << 8 | raw[i];
	if ((rc = dd_chunker_params_check(&out->chunker)) < 0)
		goto cleanup;

	limits = json_object_get(j, "limits");
	out->max_upload_body = repo_config_limit(limits, "max_upload_body");
	out->max_ids_per_query = repo_config_limit(limits, "max_ids_per_query");
	out->max_fetch_response = repo_config_limit(limits, "max_fetch_response");
	out->max_json_body = repo_config_limit(limits, "max_json_body");
	if (out->max_ids_per_query > DD_MAX_IDS_PER_QUERY)
		out->max_ids_per_query = DD_MAX_IDS_PER_QUERY;
	rc = 0;
cleanup:
	json_decref(j);
	return rc;
}

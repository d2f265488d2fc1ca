/*
 * stats.c - `dedup-agent stats [--json]`: the repository's counters for
 * an admin token; a client token gets its own figures only (no store
 * counters, so no dedup ratio: docs/API.md, "Stats").
 */
#include <stdio.h>

#include <jansson.h>

#include "proto.h"
#include "agent.h"
#include "client.h"

static void stats_count(const json_t *j, const char *key, const char *label)
{
	json_t *v = json_object_get(j, key);

	if (json_is_integer(v))
		printf("%-18s %lld\n", label, (long long)json_integer_value(v));
}

static void stats_bytes(const json_t *j, const char *key, const char *label)
{
	json_t *v = json_object_get(j, key);
	char human[32];

	if (json_is_null(v)) {     /* a count the server has not made yet */
		printf("%-18s not known yet (the server is counting)\n",
		       label);
		return;
	}
	if (!json_is_integer(v))
		return;
	agent_fmt_bytes(human, (uint64_t)json_integer_value(v));
	printf("%-18s %s (%lld bytes)\n", label, human,
	       (long long)json_integer_value(v));
}

static void stats_ratio(const json_t *j, const char *key, const char *label)
{
	json_t *v = json_object_get(j, key);

	if (json_is_number(v))
		printf("%-18s %.2f\n", label, json_number_value(v));
}

/* Whose figures these are: the client's own, or the repository's. */
static void stats_scope(const json_t *j)
{
	const char *client = json_string_value(json_object_get(j, "client"));

	if (client)
		printf("%-18s client '%s' (its own figures)\n", "scope:", client);
	else
		printf("%-18s repository\n", "scope:");
}

static void stats_quota(const json_t *j)
{
	json_t *v = json_object_get(j, "quota_bytes");

	if (json_is_null(v))
		printf("%-18s none\n", "quota:");
	else
		stats_bytes(j, "quota_bytes", "quota:");
}

int cmd_stats(int argc, char **argv, const struct agent_globals *g,
	      const struct agent_verb *self)
{
	struct client *c = NULL;
	json_t *j = NULL;
	bool as_json;
	int rc;

	if ((rc = agent_parse_json_only(argc, argv, self, &as_json)) >= 0)
		return rc;

	if ((rc = agent_connect(&c, g)) < 0 ||
	    (rc = client_get_json(c, DD_API_PREFIX "/stats", &j)) < 0)
		goto cleanup;
	if (as_json) {
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		stats_scope(j);
		stats_count(j, "snapshots", "snapshots:");
		stats_count(j, "clients", "clients:");
		stats_count(j, "chunks", "chunks:");
		stats_count(j, "packs", "packs:");
		stats_bytes(j, "bytes_logical", "logical size:");
		stats_bytes(j, "bytes_catalog", "catalogs:");
		stats_bytes(j, "bytes_unique", "unique data:");
		stats_bytes(j, "bytes_stored", "stored on disk:");
		stats_bytes(j, "bytes_only_client", "only this client:");
		stats_quota(j);
		stats_ratio(j, "dedup_ratio", "dedup ratio:");
		stats_ratio(j, "compression_ratio", "compression ratio:");
	}
	rc = DD_EXIT_OK;
cleanup:
	json_decref(j);
	client_free(c);
	return rc;
}

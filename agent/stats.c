/*
 * stats.c - `dedup-agent stats [--json]`: the repository's counters.
 */
#include <getopt.h>
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

int cmd_stats(int argc, char **argv, const struct agent_globals *g,
	      const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct client *c = NULL;
	json_t *j = NULL;
	bool as_json = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			as_json = true;
			break;
		case 'h':
			return agent_usage_help(self);
		default:
			return agent_usage_error(self, "unknown option '%s'",
						 argv[optind - 1]);
		}
	}
	if (optind < argc)
		return agent_usage_error(self, "unexpected argument '%s'",
					 argv[optind]);

	if ((rc = agent_connect(&c, g)) < 0 ||
	    (rc = client_get_json(c, DD_API_PREFIX "/stats", &j)) < 0)
		goto cleanup;
	if (as_json) {
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		stats_count(j, "snapshots", "snapshots:");
		stats_count(j, "clients", "clients:");
		stats_count(j, "chunks", "chunks:");
		stats_count(j, "packs", "packs:");
		stats_bytes(j, "bytes_logical", "logical size:");
		stats_bytes(j, "bytes_unique", "unique data:");
		stats_bytes(j, "bytes_stored", "stored on disk:");
		stats_ratio(j, "dedup_ratio", "dedup ratio:");
		stats_ratio(j, "compression_ratio", "compression ratio:");
	}
	rc = DD_EXIT_OK;
cleanup:
	json_decref(j);
	client_free(c);
	return rc;
}

/*
 * forget.c - `dedup-agent forget` and `dedup-agent gc`: an admin removes
 * snapshots (named ones, or by retention rules) and collects garbage on a
 * running server (POST /api/v1/prune, POST /api/v1/gc). A client token is
 * refused by the server (403): clients can only add snapshots.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "snapshots.h"

#define FORGET_RULES 7

static const char *const forget_rules[FORGET_RULES] = {
	"keep-last", "keep-hourly", "keep-daily", "keep-weekly",
	"keep-monthly", "keep-yearly", "keep-within",
};

static void forget_print_gc(const json_t *g)
{
	bool dry = json_is_true(json_object_get(g, "dry_run"));
	const char *w = dry ? "would be " : "";
	char human[32];

#define GC_N(k) ((long long)json_integer_value(json_object_get(g, k)))
	printf("gc: %lld snapshot(s) use %lld chunk(s)\n", GC_N("snapshots"),
	       GC_N("chunks_referenced"));
	if (GC_N("chunks_in_use"))
		printf("gc: %lld unreferenced chunk(s) kept: backups in "
		       "progress use them\n", GC_N("chunks_in_use"));
	printf("gc: %lld unreferenced chunk(s) %sremoved\n",
	       GC_N("chunks_removed"), w);
	printf("gc: %lld pack(s) %sdeleted, %lld %srewritten\n",
	       GC_N("packs_deleted"), w, GC_N("packs_rewritten"), w);
	agent_fmt_bytes(human, (uint64_t)GC_N("bytes_freed"));
	printf("gc: %s (%lld bytes) %sfreed\n", human, GC_N("bytes_freed"), w);
#undef GC_N
}

static void forget_print(const json_t *r)
{
	bool dry = json_is_true(json_object_get(r, "dry_run"));
	json_t *arr = json_object_get(r, "snapshots"), *s;
	const char *prev = NULL;
	size_t i;

	json_array_foreach(arr, i, s) {
		const char *client = json_string_value(json_object_get(s, "client"));
		const char *action = json_string_value(json_object_get(s, "action"));
		const char *why = json_string_value(json_object_get(s, "reason"));

		if (!client || !action)
			continue;
		if (!prev || strcmp(prev, client) != 0)
			printf("client %s (policy: %s):\n", client,
			       json_string_value(json_object_get(s, "policy")) ?
			       json_string_value(json_object_get(s, "policy")) :
			       "-");
		prev = client;
		printf("  %-6s %s  %s  (%s)\n", action,
		       json_string_value(json_object_get(s, "id")),
		       json_string_value(json_object_get(s, "time")),
		       why && why[0] ? why : "no rule keeps it");
	}
	printf("%lld snapshot(s) kept, %lld %sremoved\n",
	       (long long)json_integer_value(json_object_get(r, "kept")),
	       (long long)json_integer_value(json_object_get(r, "removed")),
	       dry ? "would be " : "");
	if (json_is_object(json_object_get(r, "gc")))
		forget_print_gc(json_object_get(r, "gc"));
}

int cmd_forget(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "keep-last", required_argument, NULL, 0 },
		{ "keep-hourly", required_argument, NULL, 1 },
		{ "keep-daily", required_argument, NULL, 2 },
		{ "keep-weekly", required_argument, NULL, 3 },
		{ "keep-monthly", required_argument, NULL, 4 },
		{ "keep-yearly", required_argument, NULL, 5 },
		{ "keep-within", required_argument, NULL, 6 },
		{ "client", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "prune", no_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct client *c = NULL;
	json_t *body = NULL, *policy = NULL, *ids = NULL, *m, *out = NULL;
	const char *client = NULL;
	bool dry = false, prune = false, as_json = false;
	int opt, rc, i;

	opterr = 0;
	if (!(body = json_object()) || !(policy = json_object()) ||
	    !(ids = json_array())) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	while ((opt = getopt_long(argc, argv, "njh", opts, NULL)) != -1) {
		if (opt >= 0 && opt < FORGET_RULES) {
			if (!optarg[0] || strlen(optarg) > 20) {
				rc = agent_usage_error(self, "invalid --%s '%s'",
						       forget_rules[opt], optarg);
				goto cleanup;
			}
			json_object_set_new(policy, forget_rules[opt],
					    json_string(optarg));
			continue;
		}
		switch (opt) {
		case 'c':
			client = optarg;
			break;
		case 'n':
			dry = true;
			break;
		case 'p':
			prune = true;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			rc = agent_usage_help(self);
			goto cleanup;
		default:
			rc = agent_usage_error(self, "unknown option '%s'",
					       argv[optind - 1]);
			goto cleanup;
		}
	}
	if (optind < argc && (json_object_size(policy) || client)) {
		rc = agent_usage_error(self, "give snapshots or --keep-* rules, "
				       "not both");
		goto cleanup;
	}
	if ((rc = agent_connect(&c, g)) < 0)
		goto cleanup;
	for (i = optind; i < argc; i++) {
		if ((rc = snapshots_resolve(&m, c, argv[i])) < 0)
			goto cleanup;
		json_array_append(ids, json_object_get(m, "id"));
		json_decref(m);
	}
	json_object_set_new(body, "dry_run", json_boolean(dry));
	json_object_set_new(body, "gc", json_boolean(prune));
	if (json_array_size(ids))
		json_object_set(body, "snapshots", ids);
	if (json_object_size(policy))
		json_object_set(body, "policy", policy);
	if (client)
		json_object_set_new(body, "client", json_string(client));
	rc = client_post_json(c, DD_API_PREFIX "/prune", body, &out);
	if (rc == -EACCES)
		rc = agent_error_wrap(rc, "forget needs an admin token");
	if (rc < 0)
		goto cleanup;
	if (as_json) {
		json_dumpf(out, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!g->quiet) {
		forget_print(out);
	}
	rc = DD_EXIT_OK;
cleanup:
	json_decref(out);
	json_decref(body);
	json_decref(policy);
	json_decref(ids);
	client_free(c);
	return rc;
}

int cmd_gc(int argc, char **argv, const struct agent_globals *g,
	   const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct client *c = NULL;
	json_t *body = NULL, *out = NULL;
	bool dry = false, as_json = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "njh", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			dry = true;
			break;
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
	body = json_pack("{s:b}", "dry_run", dry);
	if (!body)
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = agent_connect(&c, g)) < 0)
		goto cleanup;
	rc = client_post_json(c, DD_API_PREFIX "/gc", body, &out);
	if (rc == -EACCES)
		rc = agent_error_wrap(rc, "gc needs an admin token");
	if (rc < 0)
		goto cleanup;
	if (as_json) {
		json_dumpf(out, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!g->quiet) {
		forget_print_gc(out);
	}
	rc = DD_EXIT_OK;
cleanup:
	json_decref(out);
	json_decref(body);
	client_free(c);
	return rc;
}

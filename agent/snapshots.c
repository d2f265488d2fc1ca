/*
 * snapshots.c - `dedup-agent snapshots [--json]`, and resolving the
 * snapshot argument of restore.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "snapshots.h"

int snapshots_list(json_t **out, struct client *c)
{
	int rc = client_get_json(c, DD_API_PREFIX "/snapshots", out);

	if (rc < 0)
		return rc;
	if (!json_is_array(*out)) {
		json_decref(*out);
		*out = NULL;
		return dd_error_set(-EBADMSG,
				    "server '%s' sent a snapshot list that is not an array",
				    client_server(c));
	}
	return 0;
}

static json_int_t snapshots_time(const json_t *m)
{
	return json_integer_value(json_object_get(m, "unix_time"));
}

int snapshots_resolve(json_t **out, struct client *c, const char *spec)
{
	char want[DD_ID_HEX_LEN + 1];
	char path[sizeof(DD_API_PREFIX "/snapshots/") + DD_ID_HEX_LEN];
	size_t len = strlen(spec);
	json_t *list = NULL, *m, *found = NULL;
	size_t i, matches = 0;
	int rc;

	*out = NULL;
	if (strcmp(spec, "latest") == 0) {
		if ((rc = snapshots_list(&list, c)) < 0)
			return rc;
		json_array_foreach(list, i, m)
			if (!found || snapshots_time(m) >= snapshots_time(found))
				found = m;
		if (!found) {
			json_decref(list);
			return dd_error_set(-ENOENT, "there are no snapshots yet");
		}
		*out = json_incref(found);
		json_decref(list);
		return 0;
	}

	if (len < SNAPSHOTS_MIN_PREFIX || len > DD_ID_HEX_LEN)
		goto bad_spec;
	for (i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)spec[i]))
			goto bad_spec;
		want[i] = (char)tolower((unsigned char)spec[i]);
	}
	want[len] = '\0';

	if (len == DD_ID_HEX_LEN) {
		snprintf(path, sizeof(path), DD_API_PREFIX "/snapshots/%s", want);
		rc = client_get_json(c, path, out);
		if (rc == -ENOENT)
			return dd_error_set(rc, "snapshot %s not found", want);
		if (rc == 0 && !json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			return dd_error_set(-EBADMSG, "server '%s' sent a bad manifest",
					    client_server(c));
		}
		return rc;
	}

	if ((rc = snapshots_list(&list, c)) < 0)
		return rc;
	json_array_foreach(list, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));

		if (id && strncmp(id, want, len) == 0) {
			found = m;
			matches++;
		}
	}
	if (matches == 1)
		*out = json_incref(found);
	json_decref(list);
	if (matches == 0)
		return dd_error_set(-ENOENT, "no snapshot id starts with '%s'", want);
	if (matches > 1)
		return dd_error_set(-EEXIST,
				    "snapshot prefix '%s' is ambiguous (%zu snapshots match); give more digits",
				    want, matches);
	return 0;

bad_spec:
	return dd_error_set(-EINVAL,
			    "bad snapshot '%s': give 'latest', a full id or at least %d hex digits of one",
			    spec, SNAPSHOTS_MIN_PREFIX);
}

static void snapshots_fmt_time(char out[32], const json_t *m)
{
	json_t *t = json_object_get(m, "unix_time");
	const char *s = json_string_value(json_object_get(m, "time"));
	struct tm tm;
	time_t tt;

	if (json_is_integer(t)) {
		tt = (time_t)json_integer_value(t);
		if (localtime_r(&tt, &tm) &&
		    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm) > 0)
			return;
	}
	dd_quote(out, 32, s ? s : "?", strlen(s ? s : "?"));
}

/* A string field of the server's JSON, escaped to print (dd_quote):
 * clients choose their host and paths. "?" when absent. */
static const char *snapshots_shown(char *out, size_t size, const json_t *v)
{
	if (!json_is_string(v))
		return "?";
	return dd_quote(out, size, json_string_value(v), json_string_length(v));
}

static void snapshots_print_table(const json_t *list)
{
	size_t i, hostw = 4;
	char h[4 * 255 + 8];
	json_t *m;

	json_array_foreach(list, i, m) {
		size_t n = strlen(snapshots_shown(h, sizeof(h),
						  json_object_get(m, "host")));

		if (n > hostw)
			hostw = n > 32 ? 32 : n;
	}
	printf("%-16s  %-19s  %-*s  %8s  %10s  %s\n", "ID", "TIME", (int)hostw,
	       "HOST", "FILES", "SIZE", "PATHS");
	json_array_foreach(list, i, m) {
		json_t *paths = json_object_get(m, "paths"), *p;
		char when[32], size[32], id[DD_ID_HEX_LEN * 4 + 8];
		char shown[4 * 4096 + 8];
		size_t k;

		snapshots_fmt_time(when, m);
		agent_fmt_bytes(size, (uint64_t)json_integer_value(
					json_object_get(m, "bytes_total")));
		printf("%-16.16s  %-19s  %-*s  %8lld  %10s ",
		       snapshots_shown(id, sizeof(id), json_object_get(m, "id")),
		       when, (int)hostw,
		       snapshots_shown(h, sizeof(h), json_object_get(m, "host")),
		       (long long)json_integer_value(json_object_get(m, "files")),
		       size);
		json_array_foreach(paths, k, p)
			printf(" %s", snapshots_shown(shown, sizeof(shown), p));
		putchar('\n');
	}
}

int cmd_snapshots(int argc, char **argv, const struct agent_globals *g,
		  const struct agent_verb *self)
{
	struct client *c = NULL;
	json_t *list = NULL;
	bool as_json;
	int rc;

	if ((rc = agent_parse_json_only(argc, argv, self, &as_json)) >= 0)
		return rc;

	if ((rc = agent_connect(&c, g)) < 0 ||
	    (rc = snapshots_list(&list, c)) < 0)
		goto cleanup;
	if (as_json) {
		json_dumpf(list, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		snapshots_print_table(list);
	}
	rc = DD_EXIT_OK;
cleanup:
	json_decref(list);
	client_free(c);
	return rc;
}

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

/* GET /snapshots with `query` ("limit=...&..."): one page, an array. */
static int snapshots_page(json_t **out, struct client *c, const char *query)
{
	char path[512];
	int rc;

	snprintf(path, sizeof(path), DD_API_PREFIX "/snapshots?%s", query);
	rc = client_get_json(c, path, out);
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

int snapshots_each(struct client *c, bool newest_first, snapshots_each_fn fn,
		   void *payload)
{
	char query[256], cursor[160] = "";
	json_t *page = NULL, *m;
	size_t i, n;
	int rc;

	for (;;) {
		snprintf(query, sizeof(query), "limit=%d&order=%s%s%s",
			 SNAPSHOTS_PAGE, newest_first ? "newest" : "oldest",
			 cursor[0] ? "&after=" : "", cursor);
		if ((rc = snapshots_page(&page, c, query)) < 0)
			return rc;
		n = json_array_size(page);
		json_array_foreach(page, i, m) {
			if ((rc = fn(payload, m)) != 0)
				goto done;
		}
		/* Only an empty page is the end: a snapshot removed while
		 * the server read its page shortens that page. */
		m = json_array_get(page, n - 1);
		if (n == 0 || !json_is_string(json_object_get(m, "cursor")) ||
		    json_string_length(json_object_get(m, "cursor")) >= sizeof(cursor)) {
			rc = 0;
			goto done;
		}
		snprintf(cursor, sizeof(cursor), "%s",
			 json_string_value(json_object_get(m, "cursor")));
		json_decref(page);
		page = NULL;
	}
done:
	json_decref(page);
	return rc;
}

static int snapshots_append_cb(void *payload, json_t *m)
{
	return json_array_append(payload, m) < 0 ?
	       dd_error_set(-ENOMEM, "out of memory") : 0;
}

int snapshots_list(json_t **out, struct client *c)
{
	int rc;

	if (!(*out = json_array()))
		return dd_error_set(-ENOMEM, "out of memory");
	rc = snapshots_each(c, false, snapshots_append_cb, *out);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

int snapshots_fetch(json_t **out, struct client *c, const char *id)
{
	char path[sizeof(DD_API_PREFIX "/snapshots/") + DD_ID_HEX_LEN];
	struct dd_id raw;
	int rc;

	/* The id may come from the server's list: only an id goes in a URL. */
	if (strlen(id) != DD_ID_HEX_LEN || dd_id_from_hex(&raw, id) < 0)
		return dd_error_set(-EBADMSG, "server '%s' listed a snapshot "
				    "without a valid id", client_server(c));
	snprintf(path, sizeof(path), DD_API_PREFIX "/snapshots/%.64s", id);
	rc = client_get_json(c, path, out);
	if (rc == -ENOENT)
		return dd_error_set(rc, "snapshot %.64s not found", id);
	if (rc == 0 && !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return dd_error_set(-EBADMSG, "server '%s' sent a bad manifest",
				    client_server(c));
	}
	return rc;
}

/*
 * An admin token sees every client's snapshots, and "latest" would be
 * whichever client backed up last: refused when more than one client has
 * snapshots. A client token (403 on the admins' client list) sees its
 * own only.
 */
static int snapshots_latest_is_one(struct client *c)
{
	json_t *list = NULL, *e;
	size_t i, with = 0;
	int rc = client_get_json(c, DD_API_PREFIX "/clients", &list);

	if (rc == -EACCES) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	json_array_foreach(json_object_get(list, "clients"), i, e)
		if (json_integer_value(json_object_get(e, "snapshots")) > 0)
			with++;
	json_decref(list);
	if (with > 1)
		return dd_error_set(-EINVAL, "'latest' with an admin token "
				    "would be whichever of %zu clients backed "
				    "up last: give the snapshot's id "
				    "(`snapshots` lists each with its client)",
				    with);
	return 0;
}

/* The newest snapshot: the first of the newest-first list. */
static int snapshots_latest(json_t **out, struct client *c)
{
	json_t *page = NULL;
	const char *id;
	int rc;

	if ((rc = snapshots_latest_is_one(c)) < 0 ||
	    (rc = snapshots_page(&page, c, "limit=1&order=newest")) < 0)
		return rc;
	id = json_string_value(json_object_get(json_array_get(page, 0), "id"));
	if (!id)
		rc = dd_error_set(-ENOENT, "there are no snapshots yet");
	else
		rc = snapshots_fetch(out, c, id);
	json_decref(page);
	return rc;
}

struct snapshots_prefix {
	const char *want;
	size_t len, matches;
	char id[DD_ID_HEX_LEN + 1];
};

static int snapshots_prefix_cb(void *payload, json_t *m)
{
	struct snapshots_prefix *p = payload;
	const char *id = json_string_value(json_object_get(m, "id"));

	if (id && strncmp(id, p->want, p->len) == 0) {
		snprintf(p->id, sizeof(p->id), "%s", id);
		p->matches++;
	}
	return 0;
}

int snapshots_resolve(json_t **out, struct client *c, const char *spec)
{
	char want[DD_ID_HEX_LEN + 1];
	struct snapshots_prefix p;
	size_t len = strlen(spec);
	size_t i;
	int rc;

	*out = NULL;
	if (strcmp(spec, "latest") == 0)
		return snapshots_latest(out, c);

	if (len < SNAPSHOTS_MIN_PREFIX || len > DD_ID_HEX_LEN)
		goto bad_spec;
	for (i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)spec[i]))
			goto bad_spec;
		want[i] = (char)tolower((unsigned char)spec[i]);
	}
	want[len] = '\0';

	if (len == DD_ID_HEX_LEN)
		return snapshots_fetch(out, c, want);

	memset(&p, 0, sizeof(p));
	p.want = want;
	p.len = len;
	if ((rc = snapshots_each(c, false, snapshots_prefix_cb, &p)) < 0)
		return rc;
	if (p.matches == 0)
		return dd_error_set(-ENOENT, "no snapshot id starts with '%s'", want);
	if (p.matches > 1)
		return dd_error_set(-EEXIST,
				    "snapshot prefix '%s' is ambiguous (%zu snapshots match); give more digits",
				    want, p.matches);
	return snapshots_fetch(out, c, p.id);

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

/* Whether the list holds more than one client's snapshots (an admin's):
 * then each row names its client. */
static bool snapshots_many_clients(const json_t *list)
{
	const char *first = json_string_value(json_object_get(
					json_array_get(list, 0), "client"));
	json_t *m;
	size_t i;

	json_array_foreach(list, i, m) {
		const char *c = json_string_value(json_object_get(m, "client"));

		if (first && c && strcmp(first, c) != 0)
			return true;
	}
	return false;
}

static void snapshots_print_table(const json_t *list)
{
	size_t i, hostw = 4, clientw = 0;
	char h[4 * 255 + 8], cl[4 * DD_CLIENT_NAME_MAX + 8];
	json_t *m;

	json_array_foreach(list, i, m) {
		size_t n = strlen(snapshots_shown(h, sizeof(h),
						  json_object_get(m, "host")));

		if (n > hostw)
			hostw = n > 32 ? 32 : n;
	}
	if (snapshots_many_clients(list)) {
		clientw = 6;
		json_array_foreach(list, i, m) {
			size_t n = strlen(snapshots_shown(cl, sizeof(cl),
				json_object_get(m, "client")));

			if (n > clientw)
				clientw = n > 24 ? 24 : n;
		}
		printf("%-16s  %-*s  ", "ID", (int)clientw, "CLIENT");
	} else {
		printf("%-16s  ", "ID");
	}
	printf("%-19s  %-*s  %8s  %10s  %s\n", "TIME", (int)hostw,
	       "HOST", "FILES", "SIZE", "PATHS");
	json_array_foreach(list, i, m) {
		json_t *paths = json_object_get(m, "paths"), *p;
		char when[32], size[32], id[DD_ID_HEX_LEN * 4 + 8];
		char shown[4 * 4096 + 8];
		size_t k;

		snapshots_fmt_time(when, m);
		agent_fmt_bytes(size, (uint64_t)json_integer_value(
					json_object_get(m, "bytes_total")));
		printf("%-16.16s  ",
		       snapshots_shown(id, sizeof(id), json_object_get(m, "id")));
		if (clientw)
			printf("%-*s  ", (int)clientw, snapshots_shown(cl,
			       sizeof(cl), json_object_get(m, "client")));
		printf("%-19s  %-*s  %8lld  %10s ",
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

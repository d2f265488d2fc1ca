/*
 * ls.c - `dedup-agent ls [--json] SNAPSHOT [PATH]...`
 *
 * Lists a snapshot's entries in catalog order, all of them or those a PATH
 * selects (a path or pattern; a directory selects everything beneath it,
 * pattern.h). Text: one line per entry like `ls -l`, with control bytes
 * and bytes that are not UTF-8 escaped (\n, \xNN) so each entry is one
 * line. JSON: an array of objects; a path or link target that is not valid
 * UTF-8 is given as "path_hex" / "link_hex" instead.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "catalog.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "catstream.h"
#include "client.h"
#include "meta.h"
#include "pattern.h"
#include "snapshots.h"

#define LS_CATALOG_IDS 16u

static const char *ls_type_name(uint8_t t)
{
	switch (t) {
	case DD_ENTRY_FILE: return "file";
	case DD_ENTRY_DIR: return "dir";
	case DD_ENTRY_SYMLINK: return "symlink";
	case DD_ENTRY_HARDLINK: return "hardlink";
	case DD_ENTRY_FIFO: return "fifo";
	case DD_ENTRY_CHR: return "chardev";
	case DD_ENTRY_BLK: return "blockdev";
	default: return "unknown";
	}
}

/* What the extension records say, for listing. */
struct ls_meta {
	char uname[DD_EXT_NAME_MAX + 1], gname[DD_EXT_NAME_MAX + 1];
	uint32_t major, minor;
	unsigned xattrs, acls;
};

/* A hard link's names: those its numbers had on the entries before it
 * (dd_owner_names_apply); every other entry's are noted. */
static void ls_names_apply(struct dd_owner_names *names,
			   const struct dd_entry *e, struct ls_meta *m)
{
	const char *u = m->uname, *g = m->gname;

	dd_owner_names_apply(names, e, &u, &g);
	if (u != m->uname)
		snprintf(m->uname, sizeof(m->uname), "%s", u);
	if (g != m->gname)
		snprintf(m->gname, sizeof(m->gname), "%s", g);
}

static void ls_meta(struct ls_meta *m, const struct dd_entry *e, bool v2)
{
	struct dd_ext_iter it;
	struct dd_ext_rec rec;

	memset(m, 0, sizeof(*m));
	if (!v2)
		return;
	dd_ext_iter_init(&it, e);
	while (dd_ext_next(&it, &rec) == 1) {
		switch (rec.tag) {
		case DD_EXT_UNAME:
			memcpy(m->uname, rec.v, rec.len);
			break;
		case DD_EXT_GNAME:
			memcpy(m->gname, rec.v, rec.len);
			break;
		case DD_EXT_RDEV:
			dd_ext_get_rdev(&rec, &m->major, &m->minor);
			break;
		case DD_EXT_XATTR:
			m->xattrs++;
			break;
		case DD_EXT_ACL:
			m->acls++;
			break;
		default:
			break;
		}
	}
}

static void ls_text(const struct dd_entry *e, const struct ls_meta *m)
{
	static const char types[] = "?-dlhpcb";
	/* Names are the backup host's, shown escaped (dd_quote). */
	char un[4 * DD_EXT_NAME_MAX + 8], gn[4 * DD_EXT_NAME_MAX + 8];
	char perm[11], who[sizeof(un) + sizeof(gn) + 32], when[32], size[32];
	char *path = malloc((size_t)e->path_len * 4 + 8);
	char *link = e->link_len ? malloc((size_t)e->link_len * 4 + 8) : NULL;
	time_t t = (time_t)e->mtime_sec;
	struct tm tm;

	perm[0] = e->type < sizeof(types) - 1 ? types[e->type] : '?';
	if (perm[0] == 'h')
		perm[0] = '-';
	for (int i = 0; i < 9; i++)
		perm[1 + i] = (e->mode >> (8 - i)) & 1 ? "rwxrwxrwx"[i] : '-';
	if (e->mode & 04000)
		perm[3] = perm[3] == 'x' ? 's' : 'S';
	if (e->mode & 02000)
		perm[6] = perm[6] == 'x' ? 's' : 'S';
	if (e->mode & 01000)
		perm[9] = perm[9] == 'x' ? 't' : 'T';
	perm[10] = '\0';
	if (m->uname[0] || m->gname[0])
		snprintf(who, sizeof(who), "%s/%s",
			 m->uname[0] ? dd_quote(un, sizeof(un), m->uname,
						strlen(m->uname)) : "?",
			 m->gname[0] ? dd_quote(gn, sizeof(gn), m->gname,
						strlen(m->gname)) : "?");
	else
		snprintf(who, sizeof(who), "%u/%u", e->uid, e->gid);
	if (e->type == DD_ENTRY_CHR || e->type == DD_ENTRY_BLK)
		snprintf(size, sizeof(size), "%u,%u", m->major, m->minor);
	else
		snprintf(size, sizeof(size), "%llu", (unsigned long long)e->size);
	/* local time, as ls -l and `snapshots` show it */
	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	else
		snprintf(when, sizeof(when), "%lld", (long long)e->mtime_sec);
	if (!path || (e->link_len && !link)) {
		free(path);
		free(link);
		return;
	}
	dd_quote(path, (size_t)e->path_len * 4 + 8, e->path, e->path_len);
	if (link)
		dd_quote(link, (size_t)e->link_len * 4 + 8, e->link,
			   e->link_len);
	printf("%s%s %-17s %10s %s %s%s%s\n", perm,
	       m->acls ? "+" : " ", who, size, when, path,
	       e->type == DD_ENTRY_SYMLINK ? " -> " :
	       e->type == DD_ENTRY_HARDLINK ? " link to " : "",
	       link ? link : "");
	free(path);
	free(link);
}

/* "key" as a string when valid UTF-8, else "key_hex". */
static int ls_json_bytes(json_t *o, const char *key, const char *p, size_t n)
{
	json_t *v = json_stringn(p, n);
	char hk[16];
	char *hex;

	if (v)
		return json_object_set_new(o, key, v);
	if (!(hex = malloc(n * 2 + 1)))
		return -1;
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)p[i]);
	snprintf(hk, sizeof(hk), "%s_hex", key);
	v = json_string(hex);
	free(hex);
	return json_object_set_new(o, hk, v);
}

static int ls_json(const struct dd_entry *e, const struct ls_meta *m,
		   bool first)
{
	json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:i}",
			      "type", ls_type_name(e->type),
			      "mode", (int)e->mode,
			      "uid", (json_int_t)e->uid,
			      "gid", (json_int_t)e->gid,
			      "size", (json_int_t)e->size,
			      "mtime", (json_int_t)e->mtime_sec,
			      "mtime_nsec", (int)e->mtime_nsec);
	char *s;

	if (!o || ls_json_bytes(o, "path", e->path, e->path_len) < 0 ||
	    (e->link_len && ls_json_bytes(o, "link", e->link, e->link_len) < 0) ||
	    (m->uname[0] && ls_json_bytes(o, "user", m->uname, strlen(m->uname)) < 0) ||
	    (m->gname[0] && ls_json_bytes(o, "group", m->gname, strlen(m->gname)) < 0) ||
	    ((e->type == DD_ENTRY_CHR || e->type == DD_ENTRY_BLK) &&
	     json_object_set_new(o, "rdev", json_pack("[i,i]", (int)m->major,
						     (int)m->minor)) < 0) ||
	    json_object_set_new(o, "xattrs", json_integer(m->xattrs)) < 0 ||
	    json_object_set_new(o, "acl_entries", json_integer(m->acls)) < 0) {
		json_decref(o);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return dd_error_set(-ENOMEM, "out of memory");
	printf("%s%s", first ? "[\n" : ",\n", s);
	free(s);
	return 0;
}

/* A PATH that lists nothing is named (as ls(1) names a missing one), and
 * ls exits 1 after printing what the others list. */
static int ls_unmatched(const struct pattern_list *sel)
{
	const char *pat;
	size_t i = 0, n = 0;

	for (; (pat = pattern_unmatched(sel, &i)) != NULL; i++, n++)
		agent_warn("'%s': no such path in the snapshot", pat);
	if (!n)
		return DD_EXIT_OK;
	return dd_error_set(-ENOENT, "%zu path(s) matched nothing: a path is "
			    "matched whole, from the top (home/ann/notes.txt, "
			    "home/*/notes.txt)", n);
}

int cmd_ls(int argc, char **argv, const struct agent_globals *g,
	   const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pattern_list sel;
	struct settings s = { 0 };
	struct client *c = NULL;
	struct catstream *cs = NULL;
	json_t *manifest = NULL;
	struct dd_entry e;
	struct dd_owner_names *names = NULL;
	char *path = NULL;
	bool as_json = false, first = true;
	int opt, rc;

	pattern_list_init(&sel);
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
	if (optind >= argc)
		return agent_usage_error(self, "no snapshot given");
	for (int i = optind + 1; i < argc; i++)
		if ((rc = pattern_add(&sel, argv[i])) < 0) {
			pattern_list_release(&sel);
			return agent_usage_error(self, "%s", dd_error_last());
		}
	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0 ||
	    (rc = snapshots_resolve(&manifest, c, argv[optind])) < 0 ||
	    (rc = catstream_new(&cs, c, manifest, LS_CATALOG_IDS)) < 0 ||
	    (rc = pattern_track(&sel)) < 0)
		goto cleanup;
	if (!(names = dd_owner_names_new())) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	while ((rc = catstream_next(cs, &e)) == 1) {
		struct ls_meta m;
		char *p = realloc(path, (size_t)e.path_len + 1);

		if (!p) {
			rc = dd_error_set(-ENOMEM, "out of memory");
			goto cleanup;
		}
		path = p;
		memcpy(path, e.path, e.path_len);
		path[e.path_len] = '\0';
		/* every entry's names are noted, listed or not */
		ls_meta(&m, &e, catstream_version(cs) >= 2);
		ls_names_apply(names, &e, &m);
		if (!pattern_selects(&sel, path))
			continue;
		if (as_json) {
			if ((rc = ls_json(&e, &m, first)) < 0)
				goto cleanup;
		} else {
			ls_text(&e, &m);
		}
		first = false;
	}
	if (rc < 0)
		goto cleanup;
	if (as_json)
		printf("%s]\n", first ? "[" : "\n");
	rc = ls_unmatched(&sel);
cleanup:
	dd_owner_names_free(names);
	free(path);
	catstream_free(cs);
	pattern_list_release(&sel);
	json_decref(manifest);
	client_free(c);
	settings_release(&s);
	return rc;
}

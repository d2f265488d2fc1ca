/*
 * syncask.c - requests for a sync run and their answers (syncask.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syncask.h"
#include "util.h"

/* What a request holds until it is answered (then padded with blanks). */
#define SYNCASK_PENDING "pending\n"
/* Directory entries one scan looks at, at most: the directory is the
 * repository owner's, but a scan runs once a second. */
#define SYNCASK_SCAN_ENTRIES 4096

bool syncask_id_valid(const char *s, size_t len)
{
	return len == SYNCASK_ID_LEN && dd_hex_lower(s, len);
}

static int syncask_path(char *out, size_t outsz, const char *repo,
			const char *name)
{
	int n = snprintf(out, outsz, "%s/%s%s%s", repo, SYNCASK_DIR,
			 name ? "/" : "", name ? name : "");

	if (n < 0 || (size_t)n >= outsz)
		return dd_error_set(-ENAMETOOLONG, "repository path too long");
	return 0;
}

int syncask_write(const char *repo, struct syncask_id *id)
{
	uint8_t raw[SYNCASK_ID_LEN / 2];
	char path[4200], *room;
	int rc;

	rc = syncask_path(path, sizeof(path), repo, NULL);
	if (rc < 0)
		return rc;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return dd_error_set(-errno, "cannot create '%s': %s", path,
				    strerror(errno));
	rc = dd_random(raw, sizeof(raw));
	if (rc < 0)
		return rc;
	dd_hex_encode(id->s, raw, sizeof(raw));
	rc = syncask_path(path, sizeof(path), repo, id->s);
	if (rc < 0)
		return rc;
	if (!(room = malloc(SYNCASK_ROOM)))
		return -ENOMEM;
	memset(room, ' ', SYNCASK_ROOM);
	memcpy(room, SYNCASK_PENDING, strlen(SYNCASK_PENDING));
	room[SYNCASK_ROOM - 1] = '\n';
	/* written and fsynced before it is linked in: its blocks exist */
	rc = dd_write_file_new(path, room, SYNCASK_ROOM, 0600);
	free(room);
	return rc;
}

/* Reads a request: 1 pending, 2 answered (*answer set if asked for), 0 a
 * torn answer (counts as pending for the server, not yet for the asker),
 * negative errno. */
static int syncask_load(const char *path, json_t **answer)
{
	uint8_t *data = NULL;
	size_t len = 0;
	json_t *j;
	int rc;

	rc = dd_read_file(path, SYNCASK_ROOM, &data, &len);
	if (rc < 0)
		return rc;
	if (len >= strlen(SYNCASK_PENDING) &&
	    memcmp(data, SYNCASK_PENDING, strlen(SYNCASK_PENDING)) == 0) {
		free(data);
		return 1;
	}
	j = json_loadb((const char *)data, len, 0, NULL);
	free(data);
	if (!json_is_object(j)) {
		json_decref(j);
		return 0;
	}
	if (answer)
		*answer = j;
	else
		json_decref(j);
	return 2;
}

int syncask_read(const char *repo, const struct syncask_id *id,
		 json_t **answer)
{
	char path[4200];
	int rc;

	*answer = NULL;
	rc = syncask_path(path, sizeof(path), repo, id->s);
	if (rc < 0)
		return rc;
	rc = syncask_load(path, answer);
	if (rc < 0)
		return rc;
	return rc == 2 ? 1 : 0;
}

void syncask_remove(const char *repo, const struct syncask_id *id)
{
	char path[4200];

	if (syncask_path(path, sizeof(path), repo, id->s) == 0)
		unlink(path);
}

/* A temporary of syncask_write's (<id>.tmp-...) left by a killed asker. */
static bool syncask_is_tmp(const char *name)
{
	return strlen(name) > SYNCASK_ID_LEN + 5 &&
	       syncask_id_valid(name, SYNCASK_ID_LEN) &&
	       strncmp(name + SYNCASK_ID_LEN, ".tmp-", 5) == 0;
}

static bool syncask_stale(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_mtime + SYNCASK_STALE_SEC < dd_now();
}

int syncask_scan(const char *repo, struct syncask_id *ids, size_t max,
		 size_t *n)
{
	char dir[4200], path[4200 + 258];   /* dir, "/", a name */
	struct dirent *e;
	size_t seen = 0;
	DIR *d;
	int rc;

	*n = 0;
	rc = syncask_path(dir, sizeof(dir), repo, NULL);
	if (rc < 0)
		return rc;
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 :
		       dd_error_set(-errno, "cannot read '%s': %s", dir,
				    strerror(errno));
	while (*n < max && seen++ < SYNCASK_SCAN_ENTRIES &&
	       (e = readdir(d)) != NULL) {
		if (syncask_is_tmp(e->d_name)) {
			if (syncask_stale(dirfd(d), e->d_name))
				unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (!syncask_id_valid(e->d_name, strlen(e->d_name)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		rc = syncask_load(path, NULL);
		if (rc == 2) {
			if (syncask_stale(dirfd(d), e->d_name))
				unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (rc < 0)     /* removed meanwhile, or unreadable */
			continue;
		memcpy(ids[*n].s, e->d_name, SYNCASK_ID_LEN + 1);
		(*n)++;
	}
	closedir(d);
	return 0;
}

/* Cuts s back to whole UTF-8 characters (a cut by size may halve one). */
static void syncask_utf8_whole(char *s)
{
	size_t n = strlen(s), k = n;

	while (k > 0 && ((unsigned char)s[k - 1] & 0xc0) == 0x80)
		k--;
	if (k > 0 && ((unsigned char)s[k - 1] & 0x80)) {
		unsigned char lead = (unsigned char)s[k - 1];
		size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 :
			      lead >= 0xc0 ? 2 : 1;

		if (n - (k - 1) < want)
			s[k - 1] = '\0';
	}
}

/* The report as text of at most SYNCASK_ROOM - 1 bytes, or NULL. */
static char *syncask_text(json_t *report, const struct syncask_id *id)
{
	char *text, error[256];
	json_t *small;

	if (json_object_set_new(report, "request", json_string(id->s)) < 0)
		return NULL;
	text = json_dumps(report, JSON_COMPACT);
	if (text && strlen(text) < SYNCASK_ROOM)
		return text;
	free(text);
	snprintf(error, sizeof(error), "%s",
		 json_is_string(json_object_get(report, "error")) ?
		 json_string_value(json_object_get(report, "error")) : "");
	syncask_utf8_whole(error);
	small = json_pack("{s:O?, s:O?, s:s, s:s}",
			  "result", json_object_get(report, "result"),
			  "exit_code", json_object_get(report, "exit_code"),
			  "error", error, "request", id->s);
	text = small ? json_dumps(small, JSON_COMPACT) : NULL;
	json_decref(small);
	return text;
}

int syncask_answer(const char *repo, const struct syncask_id *id,
		   json_t *report)
{
	char path[4200], *text, *room;
	size_t len;
	int fd, rc;

	rc = syncask_path(path, sizeof(path), repo, id->s);
	if (rc < 0)
		return rc;
	text = syncask_text(report, id);
	room = malloc(SYNCASK_ROOM);
	if (!text || !room) {
		rc = -ENOMEM;
		goto out;
	}
	len = strlen(text);
	memset(room, ' ', SYNCASK_ROOM);
	memcpy(room, text, len);
	room[SYNCASK_ROOM - 1] = '\n';
	/* over the request's own bytes, never truncated first: no block is
	 * freed or allocated */
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 :   /* withdrawn meanwhile */
		     dd_error_set(-errno, "cannot open '%s': %s", path,
				  strerror(errno));
		goto out;
	}
	rc = dd_pwrite_all(fd, room, SYNCASK_ROOM, 0);
	if (rc < 0)
		dd_error_set(rc, "cannot write '%s': %s", path, strerror(-rc));
	close(fd);
out:
	if (rc < 0)
		unlink(path);   /* its asker reports the missing answer */
	free(text);
	free(room);
	return rc;
}

/*
 * repo.c - see repo.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "repo.h"
#include "util.h"

#define REPO_CONFIG_MAX (64u * 1024)

int repo_path(char *out, size_t outsz, const char *repo, const char *name)
{
	return dd_path_join(out, outsz, repo, name);
}

static int hex_field(char *out, size_t digits, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	const char *s;

	if (!json_is_string(v))
		return -EBADMSG;
	s = json_string_value(v);
	if (strlen(s) != digits || !dd_hex_lower(s, digits))
		return -EBADMSG;
	memcpy(out, s, digits + 1);
	return 0;
}

static int u32_field(uint32_t *out, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > (json_int_t)UINT32_MAX)
		return -EBADMSG;
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

/* The optional "store" key: a "rados:" spec (a directory store has no
 * key; the packs are then the repository's own). */
static int repo_store_field(struct repo_config *out, json_t *root,
			    const char *path)
{
	json_t *v = json_object_get(root, "store");
	const char *spec;

	if (!v)
		return 0;
	spec = json_is_string(v) ? json_string_value(v) : "";
	if (strncmp(spec, "rados:", 6) != 0 || !spec[6] ||
	    strlen(spec) > REPO_STORE_MAX)
		return dd_error_set(-EBADMSG, "invalid '%s': bad store (expected "
				    "\"rados:POOL[/NAMESPACE]\")", path);
	snprintf(out->store, sizeof(out->store), "%s", spec);
	return 0;
}

int repo_config_load(struct repo_config *out, const char *repo)
{
	char path[4096], seed[17];
	uint8_t *text = NULL, seedb[8];
	size_t len;
	json_t *root = NULL, *ch, *created;
	json_error_t jerr;
	int rc, i;

	memset(out, 0, sizeof(*out));
	rc = repo_path(path, sizeof(path), repo, REPO_CONFIG);
	if (rc < 0)
		return rc;
	rc = dd_read_file(path, REPO_CONFIG_MAX, &text, &len);
	if (rc == -ENOENT)
		return dd_error_set(rc, "'%s' is not a dedup repository (no %s)",
				    repo, REPO_CONFIG);
	if (rc < 0)
		return rc;
	root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = dd_error_set(-EBADMSG, "invalid '%s': %s (line %d)", path,
				  jerr.text, jerr.line);
		goto cleanup;
	}
	rc = -EBADMSG;
	if (!json_is_object(root) ||
	    !json_is_integer(json_object_get(root, "format"))) {
		dd_error_set(rc, "invalid '%s': no format", path);
		goto cleanup;
	}
	if (json_integer_value(json_object_get(root, "format")) != REPO_FORMAT) {
		dd_error_set(rc, "'%s': unsupported repository format %lld", path,
			     (long long)json_integer_value(
				     json_object_get(root, "format")));
		goto cleanup;
	}
	if (hex_field(out->repo_id, 32, root, "repo_id") < 0) {
		dd_error_set(rc, "invalid '%s': bad repo_id", path);
		goto cleanup;
	}
	created = json_object_get(root, "created");
	if (json_is_string(created))
		snprintf(out->created, sizeof(out->created), "%s",
			 json_string_value(created));
	ch = json_object_get(root, "chunker");
	if (!json_is_object(ch) ||
	    u32_field(&out->chunker.min_size, ch, "min_size") < 0 ||
	    u32_field(&out->chunker.avg_size, ch, "avg_size") < 0 ||
	    u32_field(&out->chunker.max_size, ch, "max_size") < 0 ||
	    hex_field(seed, 16, ch, "seed") < 0 ||
	    dd_hex_decode(seedb, sizeof(seedb), seed, 16) < 0) {
		dd_error_set(rc, "invalid '%s': bad chunker parameters", path);
		goto cleanup;
	}
	/* The seed is written as 16 hex digits, most significant first. */
	out->chunker.seed = 0;
	for (i = 0; i < 8; i++)
		out->chunker.seed = out->chunker.seed << 8 | seedb[i];
	rc = dd_chunker_params_check(&out->chunker);
	if (rc < 0) {
		log_wrap(-EBADMSG, "invalid '%s'", path);
		rc = -EBADMSG;
		goto cleanup;
	}
	rc = repo_store_field(out, root, path);
	if (rc < 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(root);
	free(text);
	return rc;
}

json_t *repo_config_to_json(const struct repo_config *c)
{
	char seed[17];
	json_t *j;

	snprintf(seed, sizeof(seed), "%016llx",
		 (unsigned long long)c->chunker.seed);
	j = json_pack("{s:i, s:s, s:s, s:{s:I, s:I, s:I, s:s}}",
			 "format", REPO_FORMAT,
			 "repo_id", c->repo_id,
			 "created", c->created,
			 "chunker",
			 "min_size", (json_int_t)c->chunker.min_size,
			 "avg_size", (json_int_t)c->chunker.avg_size,
			 "max_size", (json_int_t)c->chunker.max_size,
			 "seed", seed);
	/* Only a rados store is named: a directory repository's config.json
	 * stays as it always was. */
	if (j && c->store[0] &&
	    json_object_set_new(j, "store", json_string(c->store)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int repo_lock_server(int *out_fd, const char *repo)
{
	char path[4096];
	int fd, rc;

	*out_fd = -1;
	rc = repo_path(path, sizeof(path), repo, REPO_LOCK);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return dd_error_set(-errno, "cannot open lock '%s': %s", path,
				    strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		close(fd);
		if (rc == -EWOULDBLOCK)
			return dd_error_set(-EBUSY,
					    "repository '%s' is in use by another "
					    "dedup-server (lock '%s' is held)",
					    repo, path);
		return dd_error_set(rc, "cannot lock '%s': %s", path,
				    strerror(-rc));
	}
	*out_fd = fd;
	return 0;
}

int repo_lock_dir(int *out_fd, const char *repo)
{
	int fd;

	*out_fd = -1;
	fd = open(repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dd_error_set(-errno, "cannot open '%s': %s", repo,
				    strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int rc = -errno;

			close(fd);
			return dd_error_set(rc, "cannot lock '%s': %s", repo,
					    strerror(-rc));
		}
	}
	*out_fd = fd;
	return 0;
}

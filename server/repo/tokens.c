/*
 * tokens.c - see tokens.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "hash.h"
#include "log.h"
#include "repo.h"
#include "tokens.h"
#include "util.h"

#define TOKENS_FILE_MAX (16u * 1024 * 1024)
#define TOKENS_AUTH_MAX 512

bool tokens_name_valid(const char *name)
{
	size_t i, n = strlen(name);

	if (n < 1 || n > DD_CLIENT_NAME_MAX || name[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void tokens_list_release(struct tokens_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
	l->domains_used = false;
}

ssize_t tokens_list_find(const struct tokens_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

int tokens_list_add(struct tokens_list *l, const struct tokens_client *c)
{
	struct tokens_client *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	l->v[l->n++] = *c;
	return 0;
}

void tokens_list_remove(struct tokens_list *l, size_t i)
{
	if (i >= l->n)
		return;
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
	l->n--;
}

static int tokens_parse_client(struct tokens_client *c, json_t *o)
{
	json_t *name = json_object_get(o, "name");
	json_t *role = json_object_get(o, "role");
	json_t *hash = json_object_get(o, "token_sha256");
	json_t *created = json_object_get(o, "created");
	json_t *domain = json_object_get(o, "domain");
	const char *h;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(o) || !json_is_string(name) ||
	    !tokens_name_valid(json_string_value(name)))
		return dd_error_set(-EBADMSG, "a client has no valid name");
	snprintf(c->name, sizeof(c->name), "%s", json_string_value(name));
	if (!json_is_string(role))
		return dd_error_set(-EBADMSG, "client '%s' has no role", c->name);
	if (strcmp(json_string_value(role), "admin") == 0)
		c->admin = true;
	else if (strcmp(json_string_value(role), "client") != 0)
		return dd_error_set(-EBADMSG, "client '%s' has an unknown role",
				    c->name);
	if (!json_is_string(hash))
		return dd_error_set(-EBADMSG, "client '%s' has no token_sha256",
				    c->name);
	h = json_string_value(hash);
	if (dd_hex_decode(c->hash, sizeof(c->hash), h, strlen(h)) < 0)
		return dd_error_set(-EBADMSG, "client '%s' has a bad token_sha256",
				    c->name);
	if (json_is_string(created))
		snprintf(c->created, sizeof(c->created), "%s",
			 json_string_value(created));
	/* Written before domains existed: the shared default domain. */
	snprintf(c->domain, sizeof(c->domain), "%s", TOKENS_DEFAULT_DOMAIN);
	if (domain && (!json_is_string(domain) ||
		       !tokens_name_valid(json_string_value(domain))))
		return dd_error_set(-EBADMSG, "client '%s' has an invalid "
				    "domain", c->name);
	if (domain)
		snprintf(c->domain, sizeof(c->domain), "%s",
			 json_string_value(domain));
	return 0;
}

bool tokens_list_domains_used(const struct tokens_list *l)
{
	size_t i;

	if (l->domains_used)
		return true;
	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].domain, TOKENS_DEFAULT_DOMAIN) != 0)
			return true;
	return false;
}

int tokens_list_load(struct tokens_list *out, const char *path)
{
	uint8_t *text = NULL;
	size_t len, i;
	json_t *root = NULL, *arr, *ver;
	json_error_t jerr;
	struct tokens_client c;
	int rc;

	out->v = NULL;
	out->n = 0;
	out->domains_used = false;
	rc = dd_read_file(path, TOKENS_FILE_MAX, &text, &len);
	if (rc < 0)
		return rc;
	root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = dd_error_set(-EBADMSG, "invalid '%s': %s (line %d)", path,
				  jerr.text, jerr.line);
		goto cleanup;
	}
	ver = json_object_get(root, "version");
	arr = json_object_get(root, "clients");
	if (!json_is_object(root) || !json_is_integer(ver) ||
	    json_integer_value(ver) != 1 || !json_is_array(arr)) {
		rc = dd_error_set(-EBADMSG, "invalid '%s': not a version 1 "
				  "clients file", path);
		goto cleanup;
	}
	out->domains_used = json_is_true(json_object_get(root,
							 "domains_used"));
	for (i = 0; i < json_array_size(arr); i++) {
		rc = tokens_parse_client(&c, json_array_get(arr, i));
		if (rc < 0) {
			log_wrap(rc, "invalid '%s'", path);
			goto cleanup;
		}
		if (tokens_list_find(out, c.name) >= 0) {
			rc = dd_error_set(-EBADMSG, "invalid '%s': client '%s' "
					  "is listed twice", path, c.name);
			goto cleanup;
		}
		rc = tokens_list_add(out, &c);
		if (rc < 0)
			goto cleanup;
	}
	rc = 0;
cleanup:
	if (rc < 0)
		tokens_list_release(out);
	json_decref(root);
	free(text);
	return rc;
}

int tokens_list_save(const struct tokens_list *l, const char *path)
{
	json_t *root, *arr;
	char hex[65], *text = NULL;
	size_t i, n;
	int rc = -ENOMEM;

	root = json_pack("{s:i, s:[]}", "version", 1, "clients");
	arr = json_object_get(root, "clients");
	if (!root || !arr)
		goto cleanup;
	for (i = 0; i < l->n; i++) {
		const struct tokens_client *c = &l->v[i];

		dd_hex_encode(hex, c->hash, sizeof(c->hash));
		if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, "
				"s:s}",
				"name", c->name,
				"role", c->admin ? "admin" : "client",
				"token_sha256", hex,
				"created", c->created,
				"domain", c->domain)) < 0)
			goto cleanup;
	}
	if (tokens_list_domains_used(l) &&
	    json_object_set_new(root, "domains_used", json_true()) < 0)
		goto cleanup;
	text = json_dumps(root, JSON_INDENT(2));
	if (!text)
		goto cleanup;
	/* End the file with a newline, written over the NUL. */
	n = strlen(text);
	text[n] = '\n';
	rc = dd_write_file_atomic(path, text, n + 1, 0600);
cleanup:
	free(text);
	json_decref(root);
	return rc;
}

int tokens_generate(char out[TOKENS_TOKEN_LEN + 1], uint8_t hash[32])
{
	uint8_t raw[32];
	struct dd_id id;
	int rc;

	rc = dd_random(raw, sizeof(raw));
	if (rc < 0)
		return rc;
	memcpy(out, "dd_", 3);
	dd_hex_encode(out + 3, raw, sizeof(raw));
	dd_sha256(&id, out, TOKENS_TOKEN_LEN);
	memcpy(hash, id.b, 32);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* ---- the live table ---- */

struct tokens {
	char *path;
	pthread_mutex_t lock;
	struct tokens_list list;
	/* identity of the file the list was read from */
	bool have_stat;
	struct stat st;
	/* the last read failed: read again from this time on, whatever the
	 * file's identity says (a directory above it made readable changes
	 * nothing of the file) */
	bool failed;
	int64_t retry_at;
};

/* Seconds between reads of a file that could not be read. */
#define TOKENS_RETRY_SEC 5

/* Same inode, size, mtime and ctime: a chown or chmod (which make an
 * unreadable file readable) changes the ctime alone. */
static bool tokens_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* With t->lock held: re-read the file if it changed. */
static void tokens_refresh(struct tokens *t)
{
	struct tokens_list fresh;
	struct stat st;
	int rc;

	if (stat(t->path, &st) < 0) {
		if (t->have_stat || t->list.n) {
			log_error("cannot stat '%s': %s; refusing all tokens",
				  t->path, strerror(errno));
			tokens_list_release(&t->list);
			t->have_stat = false;
		}
		return;
	}
	if (t->have_stat && tokens_same_file(&st, &t->st) &&
	    (!t->failed || dd_now() < t->retry_at))
		return;
	t->st = st;
	t->have_stat = true;
	rc = tokens_list_load(&fresh, t->path);
	tokens_list_release(&t->list);
	if (rc < 0) {
		if (!t->failed)
			log_error("%s; refusing all tokens until it is fixed",
				  log_reason(rc));
		t->failed = true;
		t->retry_at = dd_now() + TOKENS_RETRY_SEC;
		return;
	}
	if (t->failed)
		log_info("'%s' is readable again: tokens accepted", t->path);
	t->failed = false;
	t->list = fresh;
}

int tokens_new(struct tokens **out, const char *path)
{
	struct tokens *t;
	int rc;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->path = strdup(path);
	if (!t->path) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	if (stat(path, &t->st) < 0) {
		rc = dd_error_set(-errno, "cannot stat '%s': %s", path,
				  strerror(errno));
		tokens_free(t);
		return rc;
	}
	rc = tokens_list_load(&t->list, path);
	if (rc < 0) {
		tokens_free(t);
		return rc;
	}
	t->have_stat = true;
	*out = t;
	return 0;
}

void tokens_free(struct tokens *t)
{
	if (!t)
		return;
	tokens_list_release(&t->list);
	pthread_mutex_destroy(&t->lock);
	free(t->path);
	free(t);
}

int tokens_authenticate(struct tokens *t, const char *authorization,
			struct tokens_identity *who)
{
	struct dd_id h;
	const char *tok;
	size_t n, i;
	ssize_t found = -1;

	memset(who, 0, sizeof(*who));
	if (!authorization || strnlen(authorization, TOKENS_AUTH_MAX + 1) >
					      TOKENS_AUTH_MAX)
		return -EACCES;
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return -EACCES;
	tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	n = strlen(tok);
	while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
		n--;
	if (n != TOKENS_TOKEN_LEN || strncmp(tok, "dd_", 3) != 0)
		return -EACCES;
	dd_sha256(&h, tok, n);

	pthread_mutex_lock(&t->lock);
	tokens_refresh(t);
	/* Look at every entry, whatever matches, so timing tells nothing. */
	for (i = 0; i < t->list.n; i++)
		if (CRYPTO_memcmp(h.b, t->list.v[i].hash, sizeof(h.b)) == 0)
			found = (ssize_t)i;
	if (found >= 0) {
		memcpy(who->name, t->list.v[found].name, sizeof(who->name));
		who->admin = t->list.v[found].admin;
		memcpy(who->domain, t->list.v[found].domain,
		       sizeof(who->domain));
	}
	pthread_mutex_unlock(&t->lock);
	return found >= 0 ? 0 : -EACCES;
}

bool tokens_domains_used(struct tokens *t)
{
	bool used;

	pthread_mutex_lock(&t->lock);
	tokens_refresh(t);
	used = tokens_list_domains_used(&t->list);
	pthread_mutex_unlock(&t->lock);
	return used;
}

size_t tokens_count(struct tokens *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	tokens_refresh(t);
	n = t->list.n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

int tokens_copy(struct tokens *t, struct tokens_list *out)
{
	int rc = 0;

	out->v = NULL;
	out->n = 0;
	pthread_mutex_lock(&t->lock);
	tokens_refresh(t);
	out->domains_used = t->list.domains_used;
	if (t->list.n) {
		out->v = malloc(t->list.n * sizeof(*out->v));
		if (out->v) {
			memcpy(out->v, t->list.v, t->list.n * sizeof(*out->v));
			out->n = t->list.n;
		} else {
			rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

unsigned tokens_store_flags(const char *repo)
{
	char path[4200];
	struct tokens_list l;
	bool used;
	int rc;

	if (repo_path(path, sizeof(path), repo, REPO_CLIENTS) < 0)
		return STORE_DOMAINS_USED;
	rc = tokens_list_load(&l, path);
	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0) {
		log_warning("%s: treating every chunk as held by no domain",
			    log_reason(rc));
		return STORE_DOMAINS_USED;
	}
	used = tokens_list_domains_used(&l);
	tokens_list_release(&l);
	return used ? STORE_DOMAINS_USED : 0;
}

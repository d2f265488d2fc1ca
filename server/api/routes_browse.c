/*
 * routes_browse.c - restore from the browser (docs/API.md, "Browsing a
 * snapshot"): a directory's children a page at a time, and downloads of
 * one file or a directory as .tar behind short-lived tickets.
 *
 * A download link cannot carry the page's Authorization header, and a
 * token must never sit in a URL (logs, history, Referer). So the page asks
 * for a ticket with its token (POST /tickets/ID): an HMAC-SHA-256, under
 * a key the server draws at start and never stores, of (snapshot, kind,
 * path, expiry). The ticket opens that one download of that one path for
 * BROWSE_TICKET_TTL seconds and nothing else; a restart voids every
 * ticket. The key is process state rather than a routes_ctx field on
 * purpose: nothing configures it, nothing else uses it.
 */
#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "browse.h"
#include "routes_impl.h"

/* Seconds a download ticket is valid. */
#define BROWSE_TICKET_TTL 300
#define BROWSE_TICKET_LEN 32                    /* HMAC-SHA-256 bytes */
/* The ticket request body: a path and a kind. */
#define BROWSE_TICKET_BODY (16u * 1024)
/* Bytes of a download's name kept in Content-Disposition. */
#define BROWSE_FILENAME_MAX 100

static unsigned char browse_key[32];
static bool browse_key_ok;
static pthread_once_t browse_key_once = PTHREAD_ONCE_INIT;

static void browse_key_init(void)
{
	browse_key_ok = RAND_bytes(browse_key, sizeof(browse_key)) == 1;
}

/* The ticket of (id, kind, path, expires) as hex in out (65 bytes). */
static int browse_ticket(char *out, const char *id, const char *kind,
			 const char *path, uint64_t expires)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	char head[160];
	struct dd_buf msg;
	int n, rc = -ENOMEM;

	pthread_once(&browse_key_once, browse_key_init);
	if (!browse_key_ok)
		return dd_error_set(-EIO, "no random key for download tickets");
	n = snprintf(head, sizeof(head), "dedup-download/1\n%s\n%s\n%llu\n",
		     id, kind, (unsigned long long)expires);
	dd_buf_init(&msg, 0);
	if (n > 0 && (size_t)n < sizeof(head) &&
	    dd_buf_append(&msg, head, (size_t)n) == 0 &&
	    dd_buf_append(&msg, path, strlen(path)) == 0 &&
	    HMAC(EVP_sha256(), browse_key, sizeof(browse_key), msg.data,
		 msg.len, mac, &maclen) && maclen == BROWSE_TICKET_LEN) {
		dd_hex_encode(out, mac, BROWSE_TICKET_LEN);
		rc = 0;
	}
	dd_buf_release(&msg);
	return rc;
}

/* ---- what the routes share ---- */

static bool browse_kind_ok(const char *kind)
{
	return kind && (strcmp(kind, "file") == 0 || strcmp(kind, "tar") == 0);
}

/* The normalised form of a request's path in out; false after a 400. */
static bool browse_path_arg(const char *path, char *out, size_t outsz,
			    struct http_reply *rep)
{
	if (!path)
		path = "/";
	if (browse_path_norm(out, outsz, path) < 0) {
		http_reply_error(rep, 400, "%s", dd_error_last());
		return false;
	}
	return true;
}

/*
 * The catalog ids of snapshot `id` if the caller may read it (a client
 * its own snapshots, an admin any, as GET /snapshots/ID); who NULL: any
 * (a ticket was checked). False after a 404, a 409 (an encrypted
 * snapshot) or a 500.
 */
static bool browse_catalog(struct routes_ctx *ctx, const char *id,
			   const struct tokens_identity *who,
			   struct http_reply *rep, struct dd_id **ids,
			   size_t *n)
{
	json_t *m = NULL;
	char *text = NULL;
	size_t len;
	int rc;

	if (who) {
		rc = snapshots_get(ctx->snapshots, id, who->name, who->admin,
				   &text, &len);
		if (rc == 0) {
			m = json_loadb(text, len, 0, NULL);
			rc = m ? 0 : -ENOMEM;
		}
		free(text);
	} else {
		rc = strlen(id) == DD_ID_HEX_LEN ?
		     snapshots_load(ctx->snapshots, id, &m) : -ENOENT;
	}
	/* An encrypted snapshot's catalog is sealed: its manifest names only
	 * the reference list (docs/ENCRYPTION.md). */
	if (rc == 0 && json_object_get(m, "sealed"))
		rc = -EMEDIUMTYPE;
	if (rc == 0)
		rc = snapshots_manifest_catalog(m, ids, n);
	json_decref(m);
	if (rc == -ENOENT) {
		http_reply_error(rep, 404, "unknown snapshot");
		return false;
	}
	if (rc == -EMEDIUMTYPE) {
		http_reply_error(rep, 409, "the snapshot is encrypted by its "
				 "client: only dedup-agent with its key can "
				 "show its files");
		return false;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		return false;
	}
	return true;
}

/* A browse.h error as a reply. */
static void browse_fail(struct http_reply *rep, int rc)
{
	if (rc == -ENOENT)
		http_reply_error(rep, 404, "%s", dd_error_last());
	else if (rc == -ENOTDIR || rc == -EISDIR || rc == -EINVAL)
		http_reply_error(rep, 400, "%s", dd_error_last());
	else
		routes_fail(rep, rc);
}

/* ---- GET /tree/ID?path=&limit=&after= ---- */

/* ?limit= and ?after= (the hex cursor of the previous page, decoded into
 * *after, malloc'ed); false after a 400. */
static bool browse_page_args(const struct http_request *req,
			     struct http_reply *rep, size_t *limit,
			     uint8_t **after, size_t *after_len)
{
	const char *l = http_request_arg(req, "limit");
	const char *a = http_request_arg(req, "after");
	uint64_t v;
	size_t alen;

	*limit = BROWSE_PAGE_DEFAULT;
	*after = NULL;
	*after_len = 0;
	if (l && (dd_parse_u64(l, &v) < 0 || v < 1 || v > BROWSE_PAGE_MAX)) {
		http_reply_error(rep, 400, "limit must be 1 to %d",
				 BROWSE_PAGE_MAX);
		return false;
	}
	if (l)
		*limit = (size_t)v;
	if (!a || !*a)
		return true;
	alen = strlen(a);
	if (alen % 2 || alen > 2 * (size_t)BROWSE_PATH_MAX ||
	    !(*after = malloc(alen / 2)) ||
	    dd_hex_decode(*after, alen / 2, a, alen) < 0) {
		free(*after);
		*after = NULL;
		http_reply_error(rep, 400, "after must be the 'next' cursor of "
				 "a page");
		return false;
	}
	*after_len = alen / 2;
	return true;
}

void route_browse_tree(void *payload, const struct http_request *req,
		       struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char path[BROWSE_PATH_MAX + 1];
	struct dd_id *ids = NULL;
	uint8_t *after = NULL;
	size_t n, limit, after_len;
	json_t *page;
	int rc;

	if (!browse_path_arg(http_request_arg(req, "path"), path, sizeof(path),
			     rep) ||
	    !browse_page_args(req, rep, &limit, &after, &after_len) ||
	    !browse_catalog(ctx, req->param, req->who, rep, &ids, &n))
		goto cleanup;
	rc = browse_list(&page, ctx->store, ids, n, path, after, after_len,
			 limit);
	if (rc < 0)
		browse_fail(rep, rc);
	else
		http_reply_json(rep, 200, page);
cleanup:
	free(after);
	free(ids);
}

/* ---- POST /tickets/ID {"path", "kind"} ---- */

/* Appends s to out percent-encoded (all but unreserved characters). */
static int browse_pct(struct dd_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[3] = { '%', hex[c >> 4], hex[c & 15] };

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			if (dd_buf_append_u8(out, c) < 0)
				return -ENOMEM;
		} else if (dd_buf_append(out, e, 3) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* The download URL a ticket opens, as a JSON string. */
static json_t *browse_ticket_url(const char *id, const char *kind,
				 const char *path, uint64_t expires,
				 const char *ticket)
{
	struct dd_buf u;
	char tail[200], *abs;
	json_t *j = NULL;
	int n;

	dd_buf_init(&u, 0);
	n = snprintf(tail, sizeof(tail), "&kind=%s&expires=%llu&ticket=%s",
		     kind, (unsigned long long)expires, ticket);
	if (!(abs = malloc(strlen(path) + 2)))
		return NULL;
	snprintf(abs, strlen(path) + 2, "/%s", path);
	if (dd_buf_append(&u, DD_API_PREFIX "/download/",
			  strlen(DD_API_PREFIX "/download/")) == 0 &&
	    dd_buf_append(&u, id, strlen(id)) == 0 &&
	    dd_buf_append(&u, "?path=", 6) == 0 && browse_pct(&u, abs) == 0 &&
	    dd_buf_append(&u, tail, (size_t)n) == 0)
		j = json_stringn((const char *)u.data, u.len);
	free(abs);
	dd_buf_release(&u);
	return j;
}

void route_browse_ticket(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char path[BROWSE_PATH_MAX + 1], ticket[2 * BROWSE_TICKET_LEN + 1];
	struct dd_id *ids = NULL;
	const char *kind;
	json_t *body = NULL, *url, *jttl;
	json_int_t ttl = BROWSE_TICKET_TTL;
	uint64_t expires;
	size_t n;

	if (!routes_json_body(req, rep, &body))
		return;
	kind = json_string_value(json_object_get(body, "kind"));
	jttl = json_object_get(body, "ttl");
	if (jttl && (!json_is_integer(jttl) || json_integer_value(jttl) < 1 ||
		     json_integer_value(jttl) > BROWSE_TICKET_TTL)) {
		http_reply_error(rep, 400, "ttl must be 1 to %d seconds",
				 BROWSE_TICKET_TTL);
		goto cleanup;
	}
	if (jttl)
		ttl = json_integer_value(jttl);
	if (!browse_kind_ok(kind)) {
		http_reply_error(rep, 400, "kind must be 'file' or 'tar'");
		goto cleanup;
	}
	if (!json_is_string(json_object_get(body, "path"))) {
		http_reply_error(rep, 400, "path must be a string");
		goto cleanup;
	}
	if (!browse_path_arg(json_string_value(json_object_get(body, "path")),
			     path, sizeof(path), rep) ||
	    !browse_catalog(ctx, req->param, req->who, rep, &ids, &n))
		goto cleanup;
	expires = (uint64_t)time(NULL) + (uint64_t)ttl;
	if (browse_ticket(ticket, req->param, kind, path, expires) < 0) {
		routes_fail(rep, -EIO);
		goto cleanup;
	}
	url = browse_ticket_url(req->param, kind, path, expires, ticket);
	http_reply_json(rep, 201, url ? json_pack("{s:o,s:I,s:i}", "url", url,
						  "expires", (json_int_t)expires,
						  "ttl", (int)ttl)
				      : NULL);
cleanup:
	free(ids);
	json_decref(body);
}

/* ---- GET /download/ID?path=&kind=&expires=&ticket= ---- */

/* Whether the query's ticket opens (id, kind, path) now; 403 if not. */
static bool browse_ticket_ok(const struct http_request *req,
			     struct http_reply *rep, const char *kind,
			     const char *path)
{
	const char *exp = http_request_arg(req, "expires");
	const char *given = http_request_arg(req, "ticket");
	char want[2 * BROWSE_TICKET_LEN + 1];
	uint64_t expires, now = (uint64_t)time(NULL);

	if (!exp || !given || dd_parse_u64(exp, &expires) < 0 ||
	    strlen(given) != 2 * BROWSE_TICKET_LEN ||
	    browse_ticket(want, req->param, kind, path, expires) < 0 ||
	    CRYPTO_memcmp(want, given, sizeof(want) - 1) != 0) {
		http_reply_error(rep, 403, "invalid download ticket");
		return false;
	}
	if (now > expires || expires > now + BROWSE_TICKET_TTL) {
		http_reply_error(rep, 403, "download ticket expired");
		return false;
	}
	return true;
}

/* Content-Disposition for a download named `name` (no '/'): a plain
 * ASCII filename for old clients and the exact name as RFC 6266's
 * filename*, both cut to BROWSE_FILENAME_MAX bytes. */
static void browse_disposition(char *out, size_t outsz, const char *name,
			       const char *suffix)
{
	char plain[BROWSE_FILENAME_MAX + 8], full[BROWSE_FILENAME_MAX + 8];
	struct dd_buf pct;
	size_t i;

	snprintf(full, sizeof(full), "%.*s%s", BROWSE_FILENAME_MAX, name,
		 suffix);
	for (i = 0; full[i]; i++) {
		unsigned char c = (unsigned char)full[i];

		plain[i] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_' ||
			   (c == '.' && i > 0) ? (char)c : '_';
	}
	plain[i] = '\0';
	dd_buf_init(&pct, 0);
	if (browse_pct(&pct, full) == 0 && dd_buf_append_u8(&pct, 0) == 0)
		snprintf(out, outsz, "attachment; filename=\"%s\"; "
			 "filename*=UTF-8''%s", plain, (char *)pct.data);
	else
		snprintf(out, outsz, "attachment; filename=\"%s\"", plain);
	dd_buf_release(&pct);
}

static ssize_t browse_file_stream(void *payload, uint8_t *buf, size_t max)
{
	ssize_t n = browse_file_read(payload, buf, max);

	if (n < 0)
		log_error("download: %s", dd_error_last());
	return n;
}

static void browse_file_stream_free(void *payload)
{
	browse_file_free(payload);
}

static ssize_t browse_tar_stream(void *payload, uint8_t *buf, size_t max)
{
	ssize_t n = browse_tar_read(payload, buf, max);

	if (n < 0)
		log_error("download: %s", dd_error_last());
	return n;
}

static void browse_tar_stream_free(void *payload)
{
	browse_tar_free(payload);
}

static int browse_send_file(struct routes_ctx *ctx, struct http_reply *rep,
			    const struct dd_id *ids, size_t n,
			    const char *path)
{
	struct browse_file *f;
	struct http_stream st = { .read = browse_file_stream,
				  .free = browse_file_stream_free };
	const char *slash = strrchr(path, '/');
	int rc;

	if ((rc = browse_file_open(&f, ctx->store, ids, n, path)) < 0)
		return rc;
	st.payload = f;
	st.len = browse_file_size(f);
	http_reply_stream(rep, 200, ROUTES_OCTETS, &st);
	browse_disposition(rep->disposition, sizeof(rep->disposition),
			   slash ? slash + 1 : path, "");
	return 0;
}

static int browse_send_tar(struct routes_ctx *ctx, struct http_reply *rep,
			   const char *id, const struct dd_id *ids, size_t n,
			   const char *path)
{
	struct browse_tar *t;
	struct http_stream st = { .read = browse_tar_stream,
				  .free = browse_tar_stream_free,
				  .len = HTTP_STREAM_UNKNOWN };
	const char *slash = strrchr(path, '/');
	char root[32];
	int rc;

	if ((rc = browse_tar_open(&t, ctx->store, ids, n, path)) < 0)
		return rc;
	st.payload = t;
	http_reply_stream(rep, 200, "application/x-tar", &st);
	snprintf(root, sizeof(root), "snapshot-%.12s", id);
	browse_disposition(rep->disposition, sizeof(rep->disposition),
			   *path ? (slash ? slash + 1 : path) : root, ".tar");
	return 0;
}

void route_browse_download(void *payload, const struct http_request *req,
			   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const char *kind = http_request_arg(req, "kind");
	char path[BROWSE_PATH_MAX + 1];
	struct dd_id *ids = NULL;
	size_t n;
	int rc;

	if (!browse_kind_ok(kind)) {
		http_reply_error(rep, 400, "kind must be 'file' or 'tar'");
		return;
	}
	if (!browse_path_arg(http_request_arg(req, "path"), path, sizeof(path),
			     rep) ||
	    !browse_ticket_ok(req, rep, kind, path))
		goto cleanup;
	/* A long download must not be the first connection cut when
	 * strangers crowd in (conns.h): the ticket vouches for it. */
	rep->trusted = true;
	if (!browse_catalog(ctx, req->param, NULL, rep, &ids, &n))
		goto cleanup;
	rc = strcmp(kind, "file") == 0 ?
	     browse_send_file(ctx, rep, ids, n, path) :
	     browse_send_tar(ctx, rep, req->param, ids, n, path);
	if (rc < 0)
		browse_fail(rep, rc);
cleanup:
	free(ids);
}

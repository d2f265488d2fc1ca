/*
 * httpc.c - HTTPS requests to a dedup server over libcurl (the agent's
 * client, and dedup-server sync's client of its source).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proto.h"
#include "httpc.h"

/* Give up on a connection attempt after this long. */
#define DD_HTTPC_CONNECT_TIMEOUT 10L
/* Abort a transfer slower than LIMIT bytes/s over TIME seconds, instead of
 * a total timeout (a large upload on a slow link may take long; a server
 * that stopped answering may not). The time covers the server's sync of a
 * large bundle before it answers. */
#define DD_HTTPC_LOW_SPEED_LIMIT 1L
#define DD_HTTPC_LOW_SPEED_TIME 120L
/* A request that fails because the server cannot be reached or dropped
 * the connection (it is restarting) is retried this many times, waiting
 * 0.2 s, then twice as long each time, at most 3.2 s (9.4 s in all).
 * dd_httpc_opts.retries overrides the count (0 turns retries off). */
#define DD_HTTPC_RETRIES 6
#define DD_HTTPC_RETRY_FIRST_MS 200L
#define DD_HTTPC_RETRY_MAX_MS 3200L
/* A 429 or 503 with Retry-After (the server's rate limit, a fenced
 * front-end, storage that did not answer): wait what it asks, at most
 * this long at a time, and send the request again while it is within
 * this long of its start (unless dd_httpc_opts.wait_max_s says
 * otherwise). */
#define DD_HTTPC_RATE_WAIT_MAX_S 60L
#define DD_HTTPC_RATE_WAIT_TOTAL_S 900L

struct dd_httpc {
	CURL *curl;
	char *base;
	char *ca;
	bool pinned;
	uint8_t pin[32];         /* SHA-256 of the server's certificate */
	bool pin_mismatch;       /* the last handshake saw another one */
	char seen[65];           /* its fingerprint, hex */
	struct curl_slist *hdr_get;
	struct curl_slist *hdr_bin;
	struct curl_slist *hdr_json;
	char *url;               /* scratch: base + path */
	size_t url_alloc;
	char errbuf[CURL_ERROR_SIZE];
	/* state of the transfer in progress */
	struct dd_buf *resp;
	size_t resp_cap;
	bool overflow;
	CURLcode last_cc;        /* of the last transfer */
	long retry_after;        /* seconds a 429 asked for; 0: none */
	int retries;             /* connection failures retried per request */
	long wait_max_s;         /* Retry-After waits end this long after
				  * a request's start */
	void (*on_wait)(void *payload, long seconds, const char *why);
	void *on_wait_payload;
	bool (*cancel)(void *payload);
	void *cancel_payload;
	bool cancelled;          /* the last transfer was aborted by cancel */
};

int dd_httpc_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return dd_error_set(-ENOMEM, "cannot initialise libcurl");
	return 0;
}

void dd_httpc_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t dd_httpc_write_cb(char *p, size_t size, size_t n, void *payload)
{
	struct dd_httpc *c = payload;
	size_t len = size * n;

	if (c->resp->len + len > c->resp_cap ||
	    dd_buf_append(c->resp, p, len) < 0) {
		c->overflow = true;
		return 0;    /* makes curl fail with CURLE_WRITE_ERROR */
	}
	return len;
}

/* Aborts the transfer when the owner asks (dd_httpc_opts.cancel). */
static int dd_httpc_progress_cb(void *payload, curl_off_t dltotal,
				curl_off_t dlnow, curl_off_t ultotal,
				curl_off_t ulnow)
{
	struct dd_httpc *c = payload;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (c->cancel(c->cancel_payload)) {
		c->cancelled = true;
		return 1;
	}
	return 0;
}

static struct curl_slist *dd_httpc_headers(const char *auth, const char *ctype)
{
	struct curl_slist *l = NULL, *t;
	char line[64];

	if (!(t = curl_slist_append(l, auth)))
		goto fail;
	l = t;
	/* No 100-continue round trip: the server answers errors anyway. */
	if (!(t = curl_slist_append(l, "Expect:")))
		goto fail;
	l = t;
	if (ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		if (!(t = curl_slist_append(l, line)))
			goto fail;
		l = t;
	}
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

/*
 * OpenSSL's certificate check, replaced when a fingerprint is pinned: the
 * server's certificate must hash to the pin; chains, names and dates do
 * not matter (the pin names exactly one certificate).
 */
static int dd_httpc_pin_verify(X509_STORE_CTX *xs, void *arg)
{
	struct dd_httpc *c = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!leaf || !X509_digest(leaf, EVP_sha256(), md, &len) || len != 32) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	if (CRYPTO_memcmp(md, c->pin, sizeof(c->pin)) != 0) {
		dd_hex_encode(c->seen, md, 32);
		c->pin_mismatch = true;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

static CURLcode dd_httpc_ssl_ctx(CURL *curl, void *ssl_ctx, void *arg)
{
	(void)curl;
	SSL_CTX_set_cert_verify_callback(ssl_ctx, dd_httpc_pin_verify, arg);
	return CURLE_OK;
}

int dd_httpc_new(struct dd_httpc **out, const struct dd_httpc_opts *s)
{
	struct dd_httpc *c;
	char *auth = NULL;
	size_t auth_len;
	int rc = -ENOMEM;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))))
		return dd_error_set(-ENOMEM, "out of memory");
	c->retries = s->retries >= 0 ? s->retries : DD_HTTPC_RETRIES;
	c->wait_max_s = s->wait_max_s == 0 ? DD_HTTPC_RATE_WAIT_TOTAL_S :
			s->wait_max_s < 0 ? 0 : s->wait_max_s;
	c->on_wait = s->on_wait;
	c->on_wait_payload = s->on_wait_payload;
	c->cancel = s->cancel;
	c->cancel_payload = s->cancel_payload;
	if (!(c->base = strdup(s->server)) ||
	    (s->ca && !(c->ca = strdup(s->ca))))
		goto fail;
	if (s->fingerprint) {
		if (dd_hex_decode(c->pin, sizeof(c->pin), s->fingerprint,
				  strlen(s->fingerprint)) < 0) {
			dd_httpc_free(c);
			return dd_error_set(-EINVAL, "invalid fingerprint");
		}
		c->pinned = true;
	}
	auth_len = strlen(s->token) + 32;
	if (!(auth = malloc(auth_len)))
		goto fail;
	snprintf(auth, auth_len, "Authorization: Bearer %s", s->token);
	if (!(c->hdr_get = dd_httpc_headers(auth, NULL)) ||
	    !(c->hdr_bin = dd_httpc_headers(auth, "application/octet-stream")) ||
	    !(c->hdr_json = dd_httpc_headers(auth, "application/json")))
		goto fail;
	if (!(c->curl = curl_easy_init()))
		goto fail;

	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c->curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT,
			 s->user_agent ? s->user_agent : "dedup/" DD_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->pinned) {
		/* The pin replaces the CA and host name checks; a resumed
		 * TLS session would skip the check, so none is cached. */
		if (curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_FUNCTION,
				     dd_httpc_ssl_ctx) != CURLE_OK) {
			rc = -EPROTO;
			goto fail;
		}
		curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_DATA, c);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	} else if (c->ca) {
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca);
	}
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, DD_HTTPC_CONNECT_TIMEOUT);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, DD_HTTPC_LOW_SPEED_LIMIT);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, DD_HTTPC_LOW_SPEED_TIME);
	if (s->timeout_sec > 0)
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, s->timeout_sec);
	curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, dd_httpc_write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	if (c->cancel) {
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION,
				 dd_httpc_progress_cb);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	}

	memset(auth, 0, auth_len);
	free(auth);
	*out = c;
	return 0;
fail:
	if (auth) {
		memset(auth, 0, auth_len);
		free(auth);
	}
	dd_httpc_free(c);
	if (rc == -EPROTO)
		return dd_error_set(rc, "this libcurl cannot pin certificates "
				    "(not built with OpenSSL); use a CA file "
				    "instead");
	return dd_error_set(rc, "out of memory");
}

void dd_httpc_free(struct dd_httpc *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdr_get);
	curl_slist_free_all(c->hdr_bin);
	curl_slist_free_all(c->hdr_json);
	free(c->url);
	free(c->base);
	free(c->ca);
	free(c);
}

const char *dd_httpc_server(const struct dd_httpc *c)
{
	return c->base;
}

/* Turns a failed transfer into a one-line reason. */
static int dd_httpc_transport_error(struct dd_httpc *c, CURLcode cc)
{
	const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
	long oserr = 0;

	if (c->cancelled)
		return dd_error_set(-EINTR, "interrupted");
	if (c->pin_mismatch) {
		char want[65];

		dd_hex_encode(want, c->pin, sizeof(c->pin));
		return dd_error_set(-EPROTO, "TLS: server '%s' presented "
				    "certificate sha256:%s, not the pinned "
				    "sha256:%s", c->base, c->seen, want);
	}
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
		return dd_error_set(-ECONNREFUSED,
				    "cannot connect to server '%s': %s", c->base,
				    oserr ? strerror((int)oserr) : detail);
	case CURLE_COULDNT_RESOLVE_HOST:
		return dd_error_set(-ECONNREFUSED,
				    "cannot connect to server '%s': %s", c->base,
				    detail);
	case CURLE_OPERATION_TIMEDOUT:
		return dd_error_set(-ECONNREFUSED,
				    "server '%s' timed out: %s", c->base, detail);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		/* what to do about it: the first remote client meets this */
		return dd_error_set(-EPROTO, "TLS verification of '%s' failed: "
				    "%s (trust the server's tls/cert.pem as the "
				    "CA, or pin the fingerprint `dedup-server "
				    "cert show` prints; a name the certificate "
				    "lacks: `dedup-server cert new --name NAME`)",
				    c->base, detail);
	case CURLE_SSL_CACERT_BADFILE:
		return dd_error_set(-EPROTO, "cannot use CA file '%s': %s",
				    c->ca ? c->ca : "(system)", detail);
	case CURLE_SSL_CONNECT_ERROR:
		return dd_error_set(-EPROTO, "TLS handshake with '%s' failed: %s",
				    c->base, detail);
	case CURLE_UNSUPPORTED_PROTOCOL:
		return dd_error_set(-EPROTO, "server URL '%s' is not https: %s",
				    c->base, detail);
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (c->overflow || cc == CURLE_FILESIZE_EXCEEDED)
			return dd_error_set(-E2BIG,
					    "reply from server '%s' exceeds %zu bytes",
					    c->base, c->resp_cap);
		break;
	default:
		break;
	}
	return dd_error_set(-EPROTO, "request to server '%s' failed: %s",
			    c->base, detail);
}

/* Turns a non-2xx status into a reason with the server's message. */
static int dd_httpc_status_error(struct dd_httpc *c, const char *method,
			       const char *path, long status)
{
	json_t *j = NULL, *msg;
	char text[512] = "";
	int code;

	/* The text is the server's, and is printed: its control bytes are
	 * escaped so that it cannot drive the terminal. */

	if (status == 401)
		return dd_error_set(-EACCES, "server rejected the token (401)");
	j = json_loadb((const char *)c->resp->data, c->resp->len, 0, NULL);
	msg = j ? json_object_get(j, "error") : NULL;
	if (json_is_string(msg))
		dd_quote(text, sizeof(text), json_string_value(msg),
			 json_string_length(msg));
	json_decref(j);
	if (!text[0])
		snprintf(text, sizeof(text), "unexpected answer");

	switch (status) {
	case 403: code = -EACCES; break;
	case 404: code = -ENOENT; break;
	case 409: code = -EEXIST; break;
	case 413: code = -E2BIG; break;
	case 507: code = -ENOSPC; break;
	default: code = -EPROTO; break;
	}
	return dd_error_set(code, "server: %s (%ld on %s %s)", text, status,
			    method, path);
}

static int dd_httpc_request_once(struct dd_httpc *c, const char *method,
			       const char *path,
		   const char *ctype, const void *body, size_t len,
		   struct dd_buf *resp)
{
	size_t need = strlen(c->base) + strlen(path) + 1;
	bool post = strcmp(method, "POST") == 0;
	struct curl_slist *hdr;
	CURLcode cc;
	long status = 0;

	if (need > c->url_alloc) {
		char *u = realloc(c->url, need);

		if (!u)
			return dd_error_set(-ENOMEM, "out of memory");
		c->url = u;
		c->url_alloc = need;
	}
	snprintf(c->url, c->url_alloc, "%s%s", c->base, path);

	dd_buf_reset(resp);
	c->resp = resp;
	c->resp_cap = resp->cap && resp->cap < DD_HTTPC_MAX_RESPONSE ?
		resp->cap : DD_HTTPC_MAX_RESPONSE;
	c->overflow = false;
	c->pin_mismatch = false;
	c->cancelled = false;
	c->errbuf[0] = '\0';

	curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
	curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)c->resp_cap);
	if (post) {
		hdr = ctype && strcmp(ctype, "application/json") == 0 ?
			c->hdr_json : c->hdr_bin;
		curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	} else {
		hdr = c->hdr_get;
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdr);

	cc = curl_easy_perform(c->curl);
	c->last_cc = cc;
	if (cc != CURLE_OK)
		return dd_httpc_transport_error(c, cc);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	/* 429: rate limited; 503 with Retry-After: a server that cannot
	 * acknowledge for a moment (a fenced front-end, docs/STORAGE.md) */
	if (status == 429 || status == 503) {
		curl_off_t after = -1;

		if (curl_easy_getinfo(c->curl, CURLINFO_RETRY_AFTER, &after) ==
		    CURLE_OK && after > 0)
			c->retry_after = after > DD_HTTPC_RATE_WAIT_MAX_S ?
				DD_HTTPC_RATE_WAIT_MAX_S : (long)after;
	}
	if (status < 200 || status > 299)
		return dd_httpc_status_error(c, method, path, status);
	return 0;
}

static void dd_httpc_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* True when the last failure was the connection, not the request. */
static bool dd_httpc_retryable(const struct dd_httpc *c)
{
	if (c->pin_mismatch || c->cancelled)
		return false;
	switch (c->last_cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

/*
 * Every request is idempotent on the server except a snapshot create,
 * whose retry after a lost answer may record a second, identical snapshot:
 * harmless, and better than a failed backup.
 *
 * A 429 or 503 that carries Retry-After (the server rate-limits
 * /chunks/missing; a front-end of a shared pool that cannot write its
 * heartbeat refuses for a while) is waited out and sent again, up to
 * dd_httpc_opts.wait_max_s from the request's start (the refused attempts'
 * time counted); one without it is an error as before.
 */
int dd_httpc_request(struct dd_httpc *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len,
		   struct dd_buf *resp)
{
	long wait_ms = DD_HTTPC_RETRY_FIRST_MS;
	int tries = c->retries, rc;
	struct timespec t0, now;

	/* the bound counts the time the refused attempts took, not only
	 * the waits: storage that does not answer takes its op timeout
	 * before each 503 */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		c->last_cc = CURLE_OK;
		c->retry_after = 0;
		rc = dd_httpc_request_once(c, method, path, ctype, body, len,
					 resp);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (rc < 0 && c->retry_after > 0 &&
		    (now.tv_sec - t0.tv_sec) + c->retry_after <=
		    c->wait_max_s) {
			if (c->on_wait)
				c->on_wait(c->on_wait_payload, c->retry_after,
					   dd_error_last());
			dd_httpc_sleep_ms(c->retry_after * 1000);
			continue;
		}
		if (rc == 0 || tries-- <= 0 || !dd_httpc_retryable(c))
			return rc;
		dd_httpc_sleep_ms(wait_ms);
		wait_ms = wait_ms * 2 > DD_HTTPC_RETRY_MAX_MS ?
			  DD_HTTPC_RETRY_MAX_MS : wait_ms * 2;
	}
}

static int dd_httpc_parse_json(struct dd_httpc *c, const char *path,
			     const struct dd_buf *b, json_t **out)
{
	json_error_t jerr;
	char why[4 * JSON_ERROR_TEXT_LENGTH];
	json_t *j;

	j = json_loadb((const char *)b->data, b->len, 0, &jerr);
	if (!j)     /* jansson's text quotes the bytes it choked on */
		return dd_error_set(-EBADMSG,
				    "server '%s' sent invalid JSON for %s: %s",
				    c->base, path,
				    dd_quote(why, sizeof(why), jerr.text,
					     strlen(jerr.text)));
	*out = j;
	return 0;
}

/* An upper bound of the values in a JSON text (commas and opening
 * brackets outside strings, plus one): what parsing it would allocate
 * is about this many nodes, whatever the bytes. */
static size_t json_values_bound(const uint8_t *p, size_t n)
{
	size_t v = 1;
	bool in_str = false;

	for (size_t i = 0; i < n; i++) {
		if (in_str) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_str = false;
		} else if (p[i] == '"') {
			in_str = true;
		} else if (p[i] == ',' || p[i] == '[' || p[i] == '{') {
			v++;
		}
	}
	return v;
}

int dd_httpc_get_json_bounded(struct dd_httpc *c, const char *path,
			      size_t max_bytes, size_t max_values,
			      json_t **out)
{
	struct dd_buf b;
	size_t values;
	int rc;

	*out = NULL;
	dd_buf_init(&b, max_bytes);
	rc = dd_httpc_request(c, "GET", path, NULL, NULL, 0, &b);
	if (rc == 0 && max_values &&
	    (values = json_values_bound(b.data, b.len)) > max_values)
		rc = dd_error_set(-EBADMSG, "server '%s' sent %zu JSON values "
				  "or more for %s, more than the %zu expected",
				  c->base, values, path, max_values);
	if (rc == 0)
		rc = dd_httpc_parse_json(c, path, &b, out);
	dd_buf_release(&b);
	return rc;
}

int dd_httpc_get_json(struct dd_httpc *c, const char *path, json_t **out)
{
	return dd_httpc_get_json_bounded(c, path, DD_HTTPC_MAX_RESPONSE, 0,
					 out);
}

int dd_httpc_post_json(struct dd_httpc *c, const char *path, const json_t *body,
		     json_t **out)
{
	struct dd_buf b;
	char *text;
	int rc;

	if (out)
		*out = NULL;
	if (!(text = json_dumps(body, JSON_COMPACT)))
		return dd_error_set(-ENOMEM, "out of memory");
	dd_buf_init(&b, DD_HTTPC_MAX_RESPONSE);
	rc = dd_httpc_request(c, "POST", path, "application/json", text,
			    strlen(text), &b);
	if (rc == 0 && out)
		rc = dd_httpc_parse_json(c, path, &b, out);
	dd_buf_release(&b);
	free(text);
	return rc;
}

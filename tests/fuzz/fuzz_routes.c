/*
 * fuzz_routes.c - the HTTP request handlers, called as http.c calls them
 * once a request is routed, authenticated and its body read within the
 * route's cap. Input: byte 0 picks the route (255: the fallback, with the
 * path from the input), byte 1 flags (bit 0: an admin caller), byte 2 the
 * length of the path parameter of prefix routes, then that parameter,
 * then the body.
 */
#include <stdint.h>
#include "fuzz_srv.h"
#include "http.h"
#include "repo.h"
#include "routes.h"

static struct routes_ctx ctx;
static char repo[4200];

static void fz_setup(void)
{
	char path[4400];

	snprintf(repo, sizeof(repo), "%s", fz_repo("routes"));
	memset(&ctx, 0, sizeof(ctx));
	ctx.repo = repo;
	ctx.stale_after = 86400;
	ctx.started = 1;
	snprintf(path, sizeof(path), "%s/%s", repo, REPO_CLIENTS);
	if (repo_config_load(&ctx.config, repo) < 0 ||
	    tokens_new(&ctx.tokens, path) < 0 ||
	    store_open(&ctx.store, repo) < 0 ||
	    snapshots_open(&ctx.snapshots, repo) < 0 ||
	    sessions_new(&ctx.sessions, 300) < 0 ||
	    metrics_new(&ctx.metrics) < 0 || usage_new(&ctx.usage) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tokens_identity who;
	struct http_request req;
	struct http_reply rep;
	const struct http_route *rt = NULL;
	char param[256], url[512];
	size_t plen, i;

	if (!ctx.store)
		fz_setup();
	if (size < 3)
		return 0;
	snprintf(who.name, sizeof(who.name), "fuzz");
	who.admin = data[1] & 1;
	plen = data[2] % 200;
	if (plen > size - 3)
		plen = size - 3;
	for (i = 0; i < plen; i++)    /* a URL path holds no NUL */
		param[i] = data[3 + i] ? (char)data[3 + i] : '0';
	param[plen] = '\0';
	memset(&req, 0, sizeof(req));
	memset(&rep, 0, sizeof(rep));
	req.body = size - 3 - plen ? data + 3 + plen : NULL;
	req.body_len = size - 3 - plen;
	req.param = "";
	if (data[0] == 255 || routes_count == 0) {
		snprintf(url, sizeof(url), "/%s", param);
		req.method = data[1] & 2 ? "POST" : "GET";
		req.url = url;
		req.body = NULL;
		req.body_len = 0;
		routes_fallback(&ctx, &req, &rep);
	} else {
		rt = &routes_table[data[0] % routes_count];
		if (rt->admin && !who.admin)
			return 0;      /* http.c answers 403 first */
		req.method = rt->method;
		snprintf(url, sizeof(url), "%s%s", rt->path,
			 rt->prefix ? param : "");
		req.url = url;
		if (rt->prefix)
			req.param = param;
		if (req.body_len > rt->body_cap)
			req.body_len = rt->body_cap;
		if (req.body_len == 0)
			req.body = NULL;
		req.who = rt->auth ? &who : NULL;
		rt->fn(&ctx, &req, &rep);
	}
	if (rep.must_free)
		free((void *)rep.body);
	return 0;
}

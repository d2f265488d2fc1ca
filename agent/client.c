/*
 * client.c - the agent's HTTPS client over shared/httpc.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "agent.h"
#include "client.h"
#include "key.h"
#include "proto.h"

struct client {
	struct dd_httpc *h;
	const struct dd_crypt *crypt;  /* borrowed from key.c, or NULL */
};

const struct dd_crypt *client_crypt(const struct client *c)
{
	return c->crypt;
}

int client_global_init(void)
{
	return dd_httpc_global_init();
}

void client_global_cleanup(void)
{
	dd_httpc_global_cleanup();
}

/* DEDUP_AGENT_RETRIES=N: connection failures retried per request. */
static int client_retries(void)
{
	const char *v = getenv("DEDUP_AGENT_RETRIES");
	uint64_t n;

	if (v && dd_parse_u64(v, &n) == 0 && n <= 100)
		return (int)n;
	return -1;
}

/* DEDUP_AGENT_WAIT=SECONDS: for how long from its start one request is
 * sent again to a server that asks to be asked again later (429 or 503 with Retry-After: a rate
 * limit, a fenced front-end, storage that does not answer); 0 waits not
 * at all. Default 900. */
static long client_wait(void)
{
	const char *v = getenv("DEDUP_AGENT_WAIT");
	uint64_t n;

	if (v && dd_parse_u64(v, &n) == 0 && n <= 86400)
		return n ? (long)n : -1;
	return 0;
}

/* A Retry-After wait, told on stderr at most once a minute for the whole
 * process (several threads may wait at once, a request every 5 s). */
static void client_on_wait(void *payload, long seconds, const char *why)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct timespec last;
	struct timespec now;
	bool say;

	(void)payload;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&lock);
	say = last.tv_sec == 0 || now.tv_sec - last.tv_sec >= 60;
	if (say)
		last = now;
	pthread_mutex_unlock(&lock);
	if (say)
		agent_warn("%s; waiting %ld s and asking again", why, seconds);
}

int client_new(struct client **out, const struct settings *s)
{
	struct dd_httpc_opts o = {
		.server = s->server, .token = s->token, .ca = s->ca,
		.fingerprint = s->fingerprint,
		.user_agent = "dedup-agent/" DD_VERSION,
		.retries = client_retries(),
		.wait_max_s = client_wait(),
		.on_wait = client_on_wait,
	};
	struct client *c;
	int rc;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))))
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = key_load(&c->crypt, s)) < 0 ||
	    (rc = dd_httpc_new(&c->h, &o)) < 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	dd_httpc_free(c->h);
	free(c);
}

const char *client_server(const struct client *c)
{
	return dd_httpc_server(c->h);
}

int client_request(struct client *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len,
		   struct dd_buf *resp)
{
	return dd_httpc_request(c->h, method, path, ctype, body, len, resp);
}

int client_get_json(struct client *c, const char *path, json_t **out)
{
	return dd_httpc_get_json(c->h, path, out);
}

int client_post_json(struct client *c, const char *path, const json_t *body,
		     json_t **out)
{
	return dd_httpc_post_json(c->h, path, body, out);
}

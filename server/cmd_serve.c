/*
 * cmd_serve.c - `dedup-server serve`: opens the repository (taking its
 * lock), loads tokens, index and manifests, serves the API over HTTPS
 * until SIGTERM or SIGINT, then stops cleanly: no new requests, running
 * ones finish, the open pack is sealed, the index closed.
 *
 * Signals: SIGTERM and SIGINT are blocked before any thread exists (so
 * every thread inherits the mask) and only the main thread takes them,
 * with sigwait(); no async handler runs anywhere.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmd.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "repo.h"
#include "routes.h"
#include "snapshots.h"
#include "store.h"
#include "tls.h"
#include "tokens.h"
#include "util.h"

#define SERVE_DEFAULT_LISTEN "127.0.0.1:8443"
#define SERVE_DEFAULT_CONFIG DD_SYSCONFDIR "/dedup/server.conf"
#define SERVE_CONNECTIONS 64
#define SERVE_TIMEOUT_SEC 300

const char cmd_serve_usage[] =
	"usage: dedup-server serve --repo DIR [--listen ADDR:PORT]\n"
	"                          [--ready-file FILE] [--config FILE]\n"
	"\n"
	"Serves the repository in DIR over HTTPS until SIGTERM or SIGINT.\n"
	"--listen      address and port, default " SERVE_DEFAULT_LISTEN ";\n"
	"              IPv6 as [::1]:8443; port 0 picks a free port\n"
	"--ready-file  once serving, write the server's URL to FILE\n"
	"--config      a key = value file with `repo` and `listen` (default\n"
	"              " SERVE_DEFAULT_CONFIG ", read only when --repo is\n"
	"              not given); options given here win\n";

struct serve_opts {
	char *repo;
	char *listen;
};

static int serve_conf_cb(void *payload, const char *key, const char *value,
			 unsigned line)
{
	struct serve_opts *o = payload;
	char **slot;

	if (strcmp(key, "repo") == 0)
		slot = &o->repo;
	else if (strcmp(key, "listen") == 0)
		slot = &o->listen;
	else
		return dd_error_set(-EINVAL, "line %u: unknown key '%s'", line,
				    key);
	free(*slot);
	*slot = strdup(value);
	return *slot ? 0 : -ENOMEM;
}

/*
 * Parses "HOST:PORT" or "[IPV6]:PORT" into *ss. HOST may be a name (the
 * first address it resolves to is used). `urlhost` receives the host as it
 * goes into a URL (IPv6 in brackets).
 */
static int serve_parse_listen(const char *spec, struct sockaddr_storage *ss,
			      socklen_t *sslen, char *urlhost, size_t urlsz)
{
	char host[256];
	const char *port_s, *colon;
	uint64_t port;
	struct addrinfo hints, *res = NULL;
	size_t hlen;
	bool v6 = false;
	int rc;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || end[1] != ':')
			goto bad;
		hlen = (size_t)(end - spec - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, hlen);
		host[hlen] = '\0';
		port_s = end + 2;
		v6 = true;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || colon == spec)
			goto bad;
		hlen = (size_t)(colon - spec);
		if (hlen >= sizeof(host) || memchr(spec, ':', hlen))
			goto bad;
		memcpy(host, spec, hlen);
		host[hlen] = '\0';
		port_s = colon + 1;
	}
	if (dd_parse_u64(port_s, &port) < 0 || port > 65535)
		goto bad;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res)
		return dd_error_set(-EINVAL, "cannot resolve listen address "
				    "'%s': %s", host, gai_strerror(rc));
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		goto bad;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET6) {
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		snprintf(urlhost, urlsz, "[%s]", host);
	} else {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		snprintf(urlhost, urlsz, "%s", host);
	}
	return 0;
bad:
	return dd_error_set(-EINVAL, "invalid listen address '%s' (want "
			    "HOST:PORT or [IPV6]:PORT)", spec);
}

static int serve_run(const char *repo, const char *listen_spec,
		     const char *ready_file)
{
	struct routes_ctx ctx;
	struct http_config hc;
	struct http_server *http = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	sigset_t sigs;
	char urlhost[300], url[400], path[4200];
	char *cert = NULL, *key = NULL;
	int lockfd = -1, sig = 0, rc;

	memset(&ctx, 0, sizeof(ctx));

	/* Before any thread (LevelDB's, libmicrohttpd's) is created. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = serve_parse_listen(listen_spec, &ss, &sslen, urlhost,
				sizeof(urlhost));
	if (rc < 0)
		goto cleanup;
	rc = repo_config_load(&ctx.config, repo);
	if (rc < 0)
		goto cleanup;
	rc = repo_lock_server(&lockfd, repo);
	if (rc < 0)
		goto cleanup;
	rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);
	if (rc == 0)
		rc = tokens_new(&ctx.tokens, path);
	if (rc == 0)
		rc = repo_path(path, sizeof(path), repo, REPO_CERT);
	if (rc == 0)
		rc = tls_read_pem(&cert, path);
	if (rc == 0)
		rc = repo_path(path, sizeof(path), repo, REPO_KEY);
	if (rc == 0)
		rc = tls_read_pem(&key, path);
	if (rc < 0)
		goto cleanup;
	rc = store_open(&ctx.store, repo);
	if (rc < 0)
		goto cleanup;
	rc = snapshots_open(&ctx.snapshots, repo);
	if (rc < 0)
		goto cleanup;

	memset(&hc, 0, sizeof(hc));
	hc.addr = (const struct sockaddr *)&ss;
	hc.addrlen = sslen;
	hc.cert_pem = cert;
	hc.key_pem = key;
	hc.routes = routes_table;
	hc.nroutes = routes_count;
	hc.fallback = routes_fallback;
	hc.payload = &ctx;
	hc.tokens = ctx.tokens;
	hc.connection_limit = SERVE_CONNECTIONS;
	hc.timeout_sec = SERVE_TIMEOUT_SEC;
	rc = http_start(&http, &hc);
	if (rc < 0)
		goto cleanup;

	snprintf(url, sizeof(url), "https://%s:%u", urlhost,
		 (unsigned)http_port(http));
	log_info("serving %s", url);
	if (ready_file) {
		size_t n = strlen(url);

		url[n] = '\n';
		rc = dd_write_file_atomic(ready_file, url, n + 1, 0644);
		url[n] = '\0';
		if (rc < 0)
			goto cleanup;
	}

	for (;;) {
		rc = sigwait(&sigs, &sig);
		if (rc == 0 && (sig == SIGTERM || sig == SIGINT))
			break;
	}
	log_info("stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	rc = 0;
cleanup:
	if (rc < 0)
		log_error("%s", log_reason(rc));
	/* Order matters: no request may run once the store is closed. */
	http_stop(http);
	store_close(ctx.store);
	snapshots_free(ctx.snapshots);
	tokens_free(ctx.tokens);
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	if (lockfd >= 0)
		close(lockfd);
	if (rc == 0)
		log_info("stopped");
	return rc < 0 ? CMD_ERROR : CMD_OK;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ready-file", required_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts file = { NULL, NULL };
	const char *repo = NULL, *listen_spec = NULL, *ready = NULL;
	const char *config = NULL;
	int c, rc, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:l:f:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'l':
			listen_spec = optarg;
			break;
		case 'f':
			ready = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			fputs(cmd_serve_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_serve_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc) {
		fputs(cmd_serve_usage, stderr);
		return CMD_USAGE;
	}
	if (config || !repo) {
		const char *cf = config ? config : SERVE_DEFAULT_CONFIG;

		rc = dd_conf_parse_file(cf, serve_conf_cb, &file);
		if (rc < 0 && !(rc == -ENOENT && !config)) {
			log_error("cannot read config '%s': %s", cf,
				  log_reason(rc));
			ret = CMD_ERROR;
			goto cleanup;
		}
	}
	if (!repo)
		repo = file.repo;
	if (!listen_spec)
		listen_spec = file.listen ? file.listen : SERVE_DEFAULT_LISTEN;
	if (!repo) {
		log_error("no repository: give --repo DIR");
		fputs(cmd_serve_usage, stderr);
		ret = CMD_USAGE;
		goto cleanup;
	}
	ret = serve_run(repo, listen_spec, ready);
cleanup:
	free(file.repo);
	free(file.listen);
	return ret;
}

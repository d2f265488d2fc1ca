/*
 * cmd_serve.c - `dedup-server serve`: reads its settings (config.h),
 * opens the repository (taking its lock), loads tokens, index and
 * manifests, serves the API over HTTPS until SIGTERM or SIGINT, then stops
 * cleanly: no new connections, requests in flight finish (up to
 * drain_timeout), the open pack is sealed, the index closed.
 *
 * SIGHUP re-reads the TLS certificate and key from their paths and serves
 * new connections with them; requests in flight finish with the old ones
 * (see http.h). A pair that does not load is logged and the old one kept.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked before any thread exists
 * (so every thread inherits the mask) and only the main thread takes them,
 * with sigtimedwait(); no async handler runs anywhere.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmd.h"
#include "config.h"
#include "frontends.h"
#include "http.h"
#include "httpc.h"
#include "ldbenv.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "regrant.h"
#include "repo.h"
#include "routes.h"
#include "sessions.h"
#include "snapshots.h"
#include "storage.h"
#include "store.h"
#include "sync.h"
#include "tls.h"
#include "tokens.h"
#include "usage.h"
#include "util.h"

const char cmd_serve_usage[] =
	"usage: dedup-server serve [--repo DIR] [--listen ADDR:PORT]\n"
	"                          [--tls-cert FILE] [--tls-key FILE]\n"
	"                          [--threads N] [--set KEY=VALUE]...\n"
	"                          [--ready-file FILE] [--config FILE]\n"
	"\n"
	"Serves the repository in DIR over HTTPS until SIGTERM or SIGINT;\n"
	"SIGHUP reloads the TLS certificate and key.\n"
	"--config      settings file (default " CONFIG_DEFAULT_PATH ",\n"
	"              skipped when missing); options given here win\n"
	"--repo        the repository (key repo)\n"
	"--listen      address and port, default " CONFIG_DEFAULT_LISTEN ";\n"
	"              IPv6 as [::1]:8443; port 0 picks a free port\n"
	"--tls-cert    certificate (chain) PEM, default DIR/tls/cert.pem\n"
	"--tls-key     its private key PEM, default DIR/tls/key.pem\n"
	"--threads     0: a thread per connection (default); N: a pool\n"
	"--set         any config key, e.g. --set max_connections=128\n"
	"--ready-file  once serving, write the server's URL to FILE\n"
	"\n"
	"Config keys: repo, listen, tls_cert, tls_key, ceph_conf, ceph_user,\n"
	"threads, max_connections, reserved_connections, per_ip_connections,\n"
	"per_client_connections, body_memory, per_client_body_memory,\n"
	"header_timeout, min_body_rate, connection_timeout,\n"
	"drain_timeout, session_timeout, stale_after, gc_repack_threshold,\n"
	"gc_filter_max_mib, pack_cache_drop, pack_direct_io,\n"
	"max_snapshots_per_client,\n"
	"quota_bytes, gc_protect_max, keep_last, keep_hourly, keep_daily,\n"
	"keep_weekly, keep_monthly, keep_yearly, keep_within,\n"
	"client.NAME.KEY (quota_bytes, keep_*: for one client),\n"
	"missing_ids_per_second, missing_ids_burst, notify_command,\n"
	"notify_email, sendmail, notify_interval, notify_repeat,\n"
	"notify_timeout, sync_from, sync_token_file, sync_ca,\n"
	"sync_fingerprint, sync_clients, sync_interval, sync_max_clients\n"
	"(see conf/server.conf.example).\n";

/*
 * Root serving a repository that belongs to another user would make files
 * that user's server cannot read; switching to the user here would come
 * before the port is bound and the TLS files and ready file are opened,
 * which may need root. So it is refused, saying how to serve it.
 */
static int serve_owner_check(const char *repo)
{
	struct passwd *pw;
	struct stat st;

	if (geteuid() != 0 || stat(repo, &st) < 0 || st.st_uid == 0)
		return 0;
	pw = getpwuid(st.st_uid);
	return dd_error_set(-EPERM, "repository '%s' belongs to %s%s%s (uid "
			    "%u): serve it as that user (systemctl start "
			    "dedup-server, or runuser -u %s -- dedup-server "
			    "serve ...), not as root", repo,
			    pw ? "user '" : "another user", pw ? pw->pw_name :
			    "", pw ? "'" : "", (unsigned)st.st_uid,
			    pw ? pw->pw_name : "USER");
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

/* Reads the certificate and key and checks they make a usable pair. */
static int serve_read_tls(char **cert, char **key, const char *cert_path,
			  const char *key_path)
{
	int rc;

	*cert = NULL;
	*key = NULL;
	rc = tls_read_pem(cert, cert_path);
	if (rc == 0)
		rc = tls_read_pem(key, key_path);
	if (rc == 0)
		rc = tls_check_pair(*cert, *key, cert_path, key_path);
	if (rc < 0) {
		if (*key) {
			OPENSSL_cleanse(*key, strlen(*key));
			free(*key);
		}
		free(*cert);
		*cert = NULL;
		*key = NULL;
	}
	return rc;
}

static void serve_free_key(char *key)
{
	if (!key)
		return;
	OPENSSL_cleanse(key, strlen(key));
	free(key);
}

static void serve_reload(struct http_server *http, const char *cert_path,
			 const char *key_path)
{
	char *cert = NULL, *key = NULL, fp[65];
	int rc;

	dd_error_clear();
	rc = serve_read_tls(&cert, &key, cert_path, key_path);
	if (rc == 0)
		rc = http_reload(http, cert, key);
	if (rc < 0)
		log_error("reload: %s; still serving the previous certificate",
			  log_reason(rc));
	else if (tls_fingerprint(fp, cert) == 0)
		log_info("reloaded TLS certificate '%s' (sha256:%s)",
			 cert_path, fp);
	serve_free_key(key);
	free(cert);
}

/* The notifier when a hook is configured (notify.h); NULL otherwise. */
static int serve_notify_new(struct notify **out, const struct config *cfg)
{
	struct notify_opts o = {
		.command = cfg->notify_command,
		.email = cfg->notify_email,
		.sendmail = cfg->sendmail,
		.stale_after = cfg->stale_after,
		.interval = cfg->notify_interval,
		.repeat = cfg->notify_repeat,
		.timeout = cfg->notify_timeout,
	};

	*out = NULL;
	if (!o.command && !o.email)
		return 0;
	return notify_new(out, cfg->repo, &o);
}

/* The replication thread's settings (sync_from in server.conf). */
struct serve_sync {
	struct sync_opts o;
	char *token;
	char *names;                /* sync_clients, cut at the commas */
	const char **clients;
	struct sync_daemon *daemon;
};

/* Splits sync_clients ("a,b c") into names; each must be valid. */
static int serve_sync_clients(struct serve_sync *ss, const char *list)
{
	size_t n = 0;
	char *p, *save = NULL;

	if (!(ss->names = strdup(list)) ||
	    !(ss->clients = calloc(strlen(list) / 2 + 2, sizeof(char *))))
		return -ENOMEM;
	for (p = strtok_r(ss->names, ", ", &save); p;
	     p = strtok_r(NULL, ", ", &save)) {
		if (!tokens_name_valid(p))
			return dd_error_set(-EINVAL, "sync_clients: invalid "
					    "client name '%s'", p);
		ss->clients[n++] = p;
	}
	ss->o.clients = ss->clients;
	ss->o.nclients = n;
	return 0;
}

/* The source's token: the first line of sync_token_file. */
static int serve_sync_token(struct serve_sync *ss, const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	rc = dd_read_file(path, 4096, &data, &len);
	if (rc < 0)
		return log_wrap(rc, "cannot read sync_token_file '%s'", path);
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (len == 0 || memchr(data, '\n', len) || memchr(data, '\0', len)) {
		free(data);
		return dd_error_set(-EINVAL, "sync_token_file '%s' does not "
				    "hold one token", path);
	}
	ss->token = (char *)data;
	ss->token[len] = '\0';
	ss->o.token = ss->token;
	return 0;
}

/* Starts the replication thread when sync_from is set. */
static int serve_sync_start(struct serve_sync *ss, const struct config *cfg,
			    struct routes_ctx *ctx)
{
	int rc;

	if (!cfg->sync_from)
		return 0;
	ss->o.from = cfg->sync_from;
	ss->o.ca = cfg->sync_ca;
	ss->o.fingerprint = cfg->sync_fingerprint;
	ss->o.max_clients = cfg->sync_max_clients;
	rc = serve_sync_token(ss, cfg->sync_token_file);
	if (rc == 0 && cfg->sync_clients)
		rc = serve_sync_clients(ss, cfg->sync_clients);
	if (rc == 0)
		rc = sync_daemon_start(&ss->daemon, cfg->repo, ctx->store,
				       ctx->snapshots, ctx->tokens, &ss->o,
				       cfg->sync_interval);
	if (rc == 0 && cfg->sync_interval)
		log_info("syncing from %s every %u s", cfg->sync_from,
			 cfg->sync_interval);
	else if (rc == 0)
		log_info("syncing from %s when asked (dedup-server sync "
			 "--repo %s)", cfg->sync_from, cfg->repo);
	return rc;
}

static void serve_sync_stop(struct serve_sync *ss)
{
	sync_daemon_free(ss->daemon);
	ss->daemon = NULL;
	if (ss->token)
		OPENSSL_cleanse(ss->token, strlen(ss->token));
	free(ss->token);
	free(ss->names);
	free(ss->clients);
}

static int serve_run(const struct config *cfg, const char *ready_file)
{
	struct serve_sync sync;
	struct routes_ctx ctx;
	struct http_config hc;
	struct http_server *http = NULL;
	struct sockaddr_storage ss;
	struct timespec tick = { 1, 0 };
	struct frontends *fronts = NULL;
	socklen_t sslen = 0;
	sigset_t sigs;
	const char *repo = cfg->repo;
	char urlhost[300], url[400], path[4200];
	char cert_path[4200], key_path[4200];
	char *cert = NULL, *key = NULL;
	int lockfd = -1, sig = 0, rc;

	memset(&ctx, 0, sizeof(ctx));
	memset(&sync, 0, sizeof(sync));

	/* Before any thread (LevelDB's, libmicrohttpd's) is created. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = serve_parse_listen(cfg->listen, &ss, &sslen, urlhost,
				sizeof(urlhost));
	if (rc < 0)
		goto cleanup;
	rc = serve_owner_check(repo);
	if (rc == 0)
		rc = repo_config_load(&ctx.config, repo);
	if (rc == 0)    /* before any thread: libcurl's setup is not safe */
		rc = dd_httpc_global_init();
	if (rc < 0)
		goto cleanup;
	rc = repo_lock_server(&lockfd, repo);
	if (rc < 0)
		goto cleanup;
	rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);
	if (rc == 0)
		rc = tokens_new(&ctx.tokens, path);
	if (rc < 0)
		goto cleanup;
	if (cfg->tls_cert)
		snprintf(cert_path, sizeof(cert_path), "%s", cfg->tls_cert);
	else
		rc = repo_path(cert_path, sizeof(cert_path), repo, REPO_CERT);
	if (rc == 0 && cfg->tls_key)
		snprintf(key_path, sizeof(key_path), "%s", cfg->tls_key);
	else if (rc == 0)
		rc = repo_path(key_path, sizeof(key_path), repo, REPO_KEY);
	if (rc == 0)
		rc = serve_read_tls(&cert, &key, cert_path, key_path);
	if (rc < 0)
		goto cleanup;
	/* before the store opens: what it may append while it recovers */
	backend_dir_drop_appended(cfg->pack_cache_drop);
	backend_dir_direct_appends(cfg->pack_direct_io);
	rc = repo_storage_set_opts(cfg->ceph_conf, cfg->ceph_user);
	if (rc == 0)
		rc = repo_store_open(&ctx.store, repo,
				     tokens_store_flags(repo));
	if (rc < 0)
		goto cleanup;
	rc = snapshots_open(&ctx.snapshots, repo);
	if (rc == 0)
		repo_storage_mirror(ctx.snapshots, ctx.store);
	if (rc == 0)    /* after an index rebuild (regrant.h) */
		rc = regrant_run(ctx.store, ctx.snapshots, repo, NULL);
	if (rc < 0)
		goto cleanup;
	snapshots_set_max_per_client(ctx.snapshots,
				     cfg->max_snapshots_per_client);
	ldbenv_log();
	rc = sessions_new(&ctx.sessions, cfg->session_timeout);
	if (rc == 0)
		rc = frontends_new(&fronts, repo, ctx.store, ctx.snapshots);
	if (rc == 0) {
		frontends_attach_sessions(fronts, ctx.sessions);
		ctx.pool = frontends_poolstats(fronts);
		ctx.fronts = fronts;
	}
	if (rc == 0)
		rc = metrics_new(&ctx.metrics);
	if (rc == 0)
		rc = usage_new(&ctx.usage);
	if (rc == 0) {
		/* the counts of the last run, for the quota checks until
		 * this run's first count ends (usage.h) */
		char usage_file[4096];

		rc = dd_path_join(usage_file, sizeof(usage_file), repo,
				  "usage.json");
		if (rc == 0)
			rc = usage_set_file(ctx.usage, usage_file,
					    ctx.snapshots);
	}
	if (rc == 0)
		rc = serve_notify_new(&ctx.notify, cfg);
	if (rc == 0)
		rc = ratelimit_new(&ctx.missing_limit,
				   cfg->missing_ids_per_second,
				   cfg->missing_ids_burst);
	if (rc < 0)
		goto cleanup;
	/* The per-client counts read every catalog (usage.h): with quotas
	 * to check, begun now on their thread; otherwise when first asked
	 * for (the status page), on the same thread. */
	if (config_any_quota(cfg))
		usage_start(ctx.usage, ctx.snapshots, ctx.store);
	ctx.repo = repo;
	ctx.stale_after = cfg->stale_after;
	ctx.cfg = cfg;
	ctx.started = dd_now();

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
	hc.connection_limit = cfg->max_connections;
	hc.reserved = cfg->reserved_connections;
	hc.per_ip_limit = cfg->per_ip_connections;
	hc.per_client_limit = cfg->per_client_connections;
	hc.body_memory = cfg->body_memory;
	hc.client_body_memory = cfg->per_client_body_memory;
	hc.header_timeout_sec = cfg->header_timeout;
	hc.min_body_rate = cfg->min_body_rate;
	hc.timeout_sec = cfg->connection_timeout;
	hc.threads = cfg->threads;
	hc.drain_sec = cfg->drain_timeout;
	hc.observe = routes_observe;
	rc = http_start(&http, &hc);
	if (rc < 0) {
		log_wrap(rc, "cannot serve on '%s'", cfg->listen);
		goto cleanup;
	}
	__atomic_store_n(&ctx.http, http, __ATOMIC_RELEASE);
	/* The daemon has its own copies. */
	serve_free_key(key);
	key = NULL;

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
	rc = serve_sync_start(&sync, cfg, &ctx);
	if (rc < 0)
		goto cleanup;

	for (;;) {
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			serve_reload(http, cert_path, key_path);
		http_reap(http);
		sync_daemon_poll(sync.daemon, repo);
		notify_tick(ctx.notify, ctx.snapshots, ctx.sessions, ctx.tokens,
			    dd_now());
		frontends_tick(fronts);
		/* a token with a domain added meanwhile (perhaps through
		 * another front-end): the store's cache fills must know */
		if (ctx.store && tokens_domains_used(ctx.tokens))
			store_domains_note(ctx.store);
	}
	log_info("stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	rc = 0;
cleanup:
	if (rc < 0)
		log_error("%s", log_reason(rc));
	/* Order matters: no request may run once the store is closed. */
	serve_sync_stop(&sync);
	http_stop(http);
	/* its recount thread reads the store */
	usage_free(ctx.usage);
	frontends_free(fronts);
	if (ctx.store)  /* for the benchmarks (tests/bench/multife-bench.sh) */
		log_info("storage: %llu backend operation(s), %llu read(s)",
			 (unsigned long long)backend_ops_count(
				 store_backend(ctx.store)),
			 (unsigned long long)backend_reads_count(
				 store_backend(ctx.store)));
	notify_free(ctx.notify);
	store_close(ctx.store);
	snapshots_free(ctx.snapshots);
	tokens_free(ctx.tokens);
	sessions_free(ctx.sessions);
	metrics_free(ctx.metrics);
	ratelimit_free(ctx.missing_limit);
	serve_free_key(key);
	free(cert);
	if (lockfd >= 0)
		close(lockfd);
	dd_httpc_global_cleanup();
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
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "threads", required_argument, NULL, 't' },
		{ "set", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* Flags are applied after the file, in the order given. */
	struct { const char *key, *value, *flag; } *set = NULL;
	struct config cfg;
	const char *ready = NULL, *config = NULL;
	size_t nset = 0, i;
	int c, rc, ret = CMD_ERROR;

	if (config_init(&cfg) < 0) {
		log_error("out of memory");
		return CMD_ERROR;
	}
	set = calloc((size_t)argc + 1, sizeof(*set));
	if (!set) {
		log_error("out of memory");
		goto cleanup;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "r:l:f:c:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			set[nset].key = "repo";
			set[nset].flag = "--repo";
			set[nset++].value = optarg;
			break;
		case 'l':
			set[nset].key = "listen";
			set[nset].flag = "--listen";
			set[nset++].value = optarg;
			break;
		case 'C':
			set[nset].key = "tls_cert";
			set[nset].flag = "--tls-cert";
			set[nset++].value = optarg;
			break;
		case 'K':
			set[nset].key = "tls_key";
			set[nset].flag = "--tls-key";
			set[nset++].value = optarg;
			break;
		case 't':
			set[nset].key = "threads";
			set[nset].flag = "--threads";
			set[nset++].value = optarg;
			break;
		case 'o': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg) {
				log_error("--set wants KEY=VALUE, not '%s'",
					  optarg);
				ret = CMD_USAGE;
				goto cleanup;
			}
			*eq = '\0';
			set[nset].key = optarg;
			set[nset].flag = "--set";
			set[nset++].value = eq + 1;
			break;
		}
		case 'f':
			ready = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			fputs(cmd_serve_usage, stdout);
			ret = CMD_OK;
			goto cleanup;
		default:
			fputs(cmd_serve_usage, stderr);
			ret = CMD_USAGE;
			goto cleanup;
		}
	}
	if (optind != argc) {
		fputs(cmd_serve_usage, stderr);
		ret = CMD_USAGE;
		goto cleanup;
	}
	rc = config_load(&cfg, config ? config : CONFIG_DEFAULT_PATH,
				config != NULL);
	for (i = 0; rc == 0 && i < nset; i++)
		rc = config_set(&cfg, set[i].key, set[i].value,
				       set[i].flag);
	if (rc == 0)
		rc = config_check(&cfg);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		goto cleanup;
	}
	if (!cfg.repo) {
		log_error("no repository: give --repo DIR or set repo in %s",
			  config ? config : CONFIG_DEFAULT_PATH);
		fputs(cmd_serve_usage, stderr);
		ret = CMD_USAGE;
		goto cleanup;
	}
	ret = serve_run(&cfg, ready);
cleanup:
	free(set);
	config_release(&cfg);
	return ret;
}

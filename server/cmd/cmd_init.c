/*
 * cmd_init.c - `dedup-server init --repo DIR`: creates an empty repository
 * (docs/FORMAT.md, "Repository layout"). config.json is written last, so
 * a directory without it is never mistaken for a repository.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "frontends.h"
#include "cmd.h"
#include "config.h"
#include "log.h"
#include "packio.h"
#include "repo.h"
#include "store.h"
#include "tls.h"
#include "tokens.h"
#include "util.h"

const char cmd_init_usage[] =
	"usage: dedup-server init --repo DIR [--chunker MIN,AVG,MAX]\n"
	"                         [--store rados:POOL[/NAMESPACE] [--recover | --join]]\n"
	"                         [--config FILE] [--name NAME]...\n"
	"\n"
	"Creates a repository in DIR (which must not exist or be empty):\n"
	"config.json with fresh chunker parameters, an empty clients.json,\n"
	"the index, packs/, snapshots/ and a self-signed TLS certificate\n"
	"(tls/cert.pem, which agents use as their CA).\n"
	"\n"
	"  --chunker MIN,AVG,MAX  chunk sizes in bytes, with an optional K or M\n"
	"                         suffix (default 64K,256K,1M; AVG a power of two)\n"
	"  --store rados:POOL[/NAMESPACE]\n"
	"                         keep the packs in a Ceph RADOS pool (module\n"
	"                         dedup-server-rados); DIR keeps the index,\n"
	"                         tokens, TLS and snapshots\n"
	"  --name NAME            one more name agents reach the server by, in\n"
	"                         the certificate: a DNS name or an IP address\n"
	"                         (repeatable; localhost, 127.0.0.1, ::1 and\n"
	"                         this host's name are always there)\n"
	"  --config FILE          server.conf with ceph_conf and ceph_user\n"
	"                         (default " CONFIG_DEFAULT_PATH ")\n"
	"  --recover              with --store: take the repository the store\n"
	"                         holds (config.json, snapshots) into the new DIR\n"
	"                         after the old one was lost\n"
	"  --join                 with --store: add DIR as one more front-end of\n"
	"                         the repository the store holds (its own number,\n"
	"                         an empty index that caches the pool's shared one,\n"
	"                         the pool's clients and snapshots)\n";

/* Parses "64K,256K,1M" into the sizes of *p (the seed is left alone). */
static int init_parse_chunker(struct dd_chunker_params *p, const char *arg)
{
	uint32_t v[3];
	const char *s = arg;

	for (int i = 0; i < 3; i++) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(s, &end, 10);
		if (end == s || errno)
			goto bad;
		if (*end == 'K' || *end == 'k')
			n <<= 10, end++;
		else if (*end == 'M' || *end == 'm')
			n <<= 20, end++;
		if (n > UINT32_MAX || *end != (i < 2 ? ',' : '\0'))
			goto bad;
		v[i] = (uint32_t)n;
		s = end + 1;
	}
	p->min_size = v[0];
	p->avg_size = v[1];
	p->max_size = v[2];
	return 0;
bad:
	return dd_error_set(-EINVAL, "bad --chunker value '%s': want MIN,AVG,MAX", arg);
}

/* 0 if `dir` is missing or an empty directory; an error otherwise. */
static int init_check_target(const char *dir)
{
	char cfg[4200];
	struct stat st;
	struct dirent *de;
	DIR *d;
	int rc;

	rc = repo_path(cfg, sizeof(cfg), dir, REPO_CONFIG);
	if (rc < 0)
		return rc;
	if (stat(cfg, &st) == 0)
		return dd_error_set(-EEXIST, "'%s' already contains a dedup "
				    "repository", dir);
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return dd_error_set(-errno, "cannot stat '%s': %s", dir,
				    strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return dd_error_set(-ENOTDIR, "'%s' is not a directory", dir);
	d = opendir(dir);
	if (!d)
		return dd_error_set(-errno, "cannot open '%s': %s", dir,
				    strerror(errno));
	rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			rc = dd_error_set(-ENOTEMPTY, "'%s' is not empty", dir);
			break;
		}
	}
	closedir(d);
	return rc;
}

static int init_mkdir(const char *repo, const char *name)
{
	char path[4200];
	int rc = repo_path(path, sizeof(path), repo, name);

	if (rc < 0)
		return rc;
	if (mkdir(path, 0700) < 0)
		return dd_error_set(-errno, "cannot create '%s': %s", path,
				    strerror(errno));
	return 0;
}

/* Opens a rados store (the module, the cluster, the pool) with the Ceph
 * options of the config file. */
static int init_open_store(struct backend **be, const char *spec,
			   const char *config)
{
	struct backend_opts o = { NULL, NULL };
	struct config cfg;
	int rc;

	*be = NULL;
	if (strncmp(spec, "rados:", 6) != 0 || !spec[6] ||
	    strlen(spec) > REPO_STORE_MAX)
		return dd_error_set(-EINVAL, "bad --store '%.100s': expected "
				    "rados:POOL[/NAMESPACE]", spec);
	if (config_init(&cfg) < 0)
		return -ENOMEM;
	rc = config_load(&cfg, config ? config : CONFIG_DEFAULT_PATH,
			 config != NULL);
	if (rc == 0) {
		o.ceph_conf = cfg.ceph_conf;
		o.ceph_user = cfg.ceph_user;
		rc = backend_open(be, spec, &o);
	}
	config_release(&cfg);
	return rc;
}

/* A new repository never adopts another one's chunks: the store must hold
 * no packs and no config.json. */
static int init_check_empty(struct backend *be, const char *spec)
{
	uint64_t *seqs = NULL, size;
	size_t n = 0;
	int rc = packio_seqs(be, &seqs, &n);

	free(seqs);
	if (rc == 0 && n)
		return dd_error_set(-EEXIST, "'%s' holds %zu pack(s) already: "
				    "give an empty pool or namespace (or "
				    "--recover its repository)", spec, n);
	if (rc == 0 && backend_stat(be, REPO_CONFIG, &size) == 0)
		return dd_error_set(-EEXIST, "'%s' holds a repository already "
				    "(--recover it)", spec);
	dd_error_clear();
	return rc;
}

/* Reads a whole small object. */
static int init_get(struct backend *be, const char *name, uint8_t **out,
		    size_t *len)
{
	return backend_get(be, name, 64u * 1024 * 1024, out, len);
}

struct init_fetch {
	struct backend *be;
	const char *repo;
	size_t n;
};

/* Copies one "snapshots/<id>.json" of the store into the directory. */
static int init_fetch_cb(const char *name, void *payload)
{
	struct init_fetch *f = payload;
	char path[4200];
	uint8_t *data;
	size_t len;
	int rc;

	if (strlen(name) != strlen(REPO_SNAPSHOTS) + 1 + DD_ID_HEX_LEN + 5 ||
	    strcmp(name + strlen(name) - 5, ".json") != 0)
		return 0;
	rc = repo_path(path, sizeof(path), f->repo, name);
	if (rc == 0)
		rc = init_get(f->be, name, &data, &len);
	if (rc < 0)
		return rc;
	rc = dd_write_file_atomic(path, data, len, 0600);
	free(data);
	if (rc == 0)
		f->n++;
	return rc;
}

/* --recover: config.json and every snapshot manifest from the store; the
 * index is rebuilt from the packs when the server starts. */
static int init_recover(struct backend *be, const char *repo,
			const char *spec)
{
	struct init_fetch f = { be, repo, 0 };
	struct repo_config c;
	char path[4200];
	uint8_t *data;
	size_t len;
	int rc = init_get(be, REPO_CONFIG, &data, &len);

	if (rc == -ENOENT)
		return dd_error_set(rc, "'%s' holds no repository to recover "
				    "(no %s)", spec, REPO_CONFIG);
	if (rc == 0)
		rc = repo_path(path, sizeof(path), repo, REPO_CONFIG);
	if (rc == 0)
		rc = dd_write_file_atomic(path, data, len, 0644);
	free(data);
	if (rc == 0)
		rc = repo_config_load(&c, repo);
	if (rc == 0 && strcmp(c.store, spec) != 0)
		rc = dd_error_set(-EINVAL, "the repository in '%s' says it is "
				  "in '%s'", spec, c.store);
	if (rc == 0)
		rc = backend_list(be, REPO_SNAPSHOTS "/", init_fetch_cb, &f);
	if (rc < 0) {
		unlink(path);
		return rc;
	}
	printf("recovered repository %s and %zu snapshot(s) from '%s'; the "
	       "index is rebuilt from the packs when the server starts "
	       "(a joining front-end's fills from the shared index); "
	       "clients keep the tokens kept in the pool\n", c.repo_id, f.n,
	       spec);
	return 0;
}

/* --join (and --recover): a front-end number of its own, and the
 * pool's clients (tokens work on every front-end). */
static int init_join(struct backend *be, const char *repo, bool join)
{
	uint32_t fe = 0;
	bool changed;
	int rc = join ? frontends_join(be, repo, &fe) : 0;

	if (rc == 0)
		rc = frontends_clients_pull(be, repo, &changed, NULL, NULL);
	if (rc == -ENOENT) {
		dd_error_clear();
		rc = 0;
	}
	if (rc == 0 && join)
		printf("joined as front-end %u\n", (unsigned)fe);
	return rc;
}

/* The store's copy of config.json, written last: it marks the pool as
 * holding this repository. */
static int init_publish_config(struct backend *be, const char *repo)
{
	char path[4200];
	uint8_t *data = NULL;
	size_t len;
	int rc = repo_path(path, sizeof(path), repo, REPO_CONFIG);

	if (rc == 0)
		rc = dd_read_file(path, 64 * 1024, &data, &len);
	if (rc == 0)
		rc = backend_put(be, REPO_CONFIG, data, len);
	free(data);
	if (rc < 0)
		unlink(path);
	return rc;
}

static int init_config(const char *repo, const struct dd_chunker_params *chunker,
		       const char *store)
{
	struct repo_config c;
	uint8_t raw[16], seed[8];
	char path[4200], *text = NULL;
	json_t *j;
	int rc, i;

	memset(&c, 0, sizeof(c));
	rc = dd_random(raw, sizeof(raw));
	if (rc == 0)
		rc = dd_random(seed, sizeof(seed));
	if (rc < 0)
		return log_wrap(rc, "cannot get random bytes");
	dd_hex_encode(c.repo_id, raw, sizeof(raw));
	dd_format_time(c.created, dd_now());
	c.chunker = *chunker;
	if (store)
		snprintf(c.store, sizeof(c.store), "%s", store);
	c.chunker.seed = 0;
	for (i = 0; i < 8; i++)
		c.chunker.seed = c.chunker.seed << 8 | seed[i];
	rc = dd_chunker_params_check(&c.chunker);
	if (rc < 0)
		return log_wrap(rc, "bad default chunker parameters");

	j = repo_config_to_json(&c);
	text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	rc = repo_path(path, sizeof(path), repo, REPO_CONFIG);
	if (rc == 0) {
		/* JSON_INDENT output ends without a newline; write one. */
		size_t n = strlen(text);

		text[n] = '\n';   /* replaces the NUL; length n + 1 below */
		rc = dd_write_file_atomic(path, text, n + 1, 0644);
	}
	free(text);
	return rc;
}

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "chunker", required_argument, NULL, 'C' },
		{ "store", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "recover", no_argument, NULL, 'R' },
		{ "join", no_argument, NULL, 'J' },
		{ "name", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL, *store = NULL, *config = NULL;
	const char *names[TLS_NAMES_MAX];
	size_t nnames = 0;
	struct backend *be = NULL;
	bool recover = false, join = false;
	struct tokens_list none = { NULL, 0, false };
	char path[4200], cert[4200], key[4200], host[256];
	struct dd_chunker_params chunker;
	int c, rc;

	dd_chunker_params_default(&chunker);
	optind = 1;
	while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'C':
			if (init_parse_chunker(&chunker, optarg) < 0 ||
			    dd_chunker_params_check(&chunker) < 0) {
				log_error("%s", dd_error_last());
				return CMD_USAGE;
			}
			break;
		case 'S':
			store = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'R':
			recover = true;
			break;
		case 'J':
			join = recover = true;
			break;
		case 'N':
			if (tls_names_add(names, &nnames, optarg) < 0) {
				log_error("--name: %s", dd_error_last());
				return CMD_USAGE;
			}
			break;
		case 'h':
			fputs(cmd_init_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_init_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (!repo || optind != argc || (recover && !store)) {
		fputs(cmd_init_usage, stderr);
		return CMD_USAGE;
	}

	/* an empty directory made for the service (its owner's): the
	 * repository is that user's too, as the other verbs keep it */
	if (cmd_as_repo_owner(repo) < 0)
		return CMD_ERROR;
	rc = init_check_target(repo);
	if (rc == 0 && store)
		rc = init_open_store(&be, store, config);
	if (rc == 0 && store && !recover)
		rc = init_check_empty(be, store);
	if (rc < 0) {
		backend_free(be);
		log_error("%s", log_reason(rc));
		return CMD_ERROR;
	}
	{
		rc = dd_mkdir_p(repo, 0700);
	}
	if (rc == 0)
		rc = init_mkdir(repo, REPO_PACKS);
	if (rc == 0)
		rc = init_mkdir(repo, REPO_SNAPSHOTS);
	if (rc == 0)
		rc = init_mkdir(repo, REPO_TLS);
	/* A recovered repository gets no index yet: the server's start
	 * rebuilds it from the packs (an empty new index would say "no
	 * chunks"). */
	/* A joining front-end's index is a cache of the pool's shared one:
	 * it starts empty instead of being rebuilt from every pack. */
	if (rc == 0 && (!recover || join))
		rc = init_mkdir(repo, REPO_INDEX);
	if (rc == 0 && (!recover || join))
		rc = repo_path(path, sizeof(path), repo, REPO_INDEX);
	if (rc == 0 && (!recover || join))
		rc = store_index_create(path);
	if (rc == 0)
		rc = repo_path(cert, sizeof(cert), repo, REPO_CERT);
	if (rc == 0)
		rc = repo_path(key, sizeof(key), repo, REPO_KEY);
	if (rc == 0) {
		if (gethostname(host, sizeof(host)) < 0)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		rc = tls_generate(cert, key, host, names, nnames);
	}
	if (rc == 0)
		rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);
	if (rc == 0)
		rc = tokens_list_save(&none, path);
	if (rc == 0 && recover)
		rc = init_recover(be, repo, store);
	else if (rc == 0)
		rc = init_config(repo, &chunker, store);
	if (rc == 0 && be && !recover)
		rc = init_publish_config(be, repo);
	if (rc == 0 && recover)
		rc = init_join(be, repo, join);
	backend_free(be);
	if (rc == 0)
		rc = dd_fsync_dir(repo);
	if (rc < 0) {
		log_error("cannot initialise repository '%s': %s", repo,
			  log_reason(rc));
		return CMD_ERROR;
	}
	printf("initialised dedup repository '%s'\n"
	       "agents need its certificate as their CA: %s\n"
	       "next: dedup-server token add --repo %s NAME\n",
	       repo, cert, repo);
	return CMD_OK;
}

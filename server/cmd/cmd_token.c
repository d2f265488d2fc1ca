/*
 * cmd_token.c - `dedup-server token add|list|revoke`: the clients allowed
 * to use a repository. A running server picks up changes by itself.
 *
 * Edits of clients.json are read-modify-write under a lock on the
 * repository directory, so two `token add` at once lose nothing, and the
 * file is replaced atomically, so the server never reads half of it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmd.h"
#include "config.h"
#include "log.h"
#include "repo.h"
#include "tokens.h"
#include "frontends.h"
#include "storage.h"
#include "util.h"

const char cmd_token_usage[] =
	"usage: dedup-server token add --repo DIR [--admin] [--domain D] NAME\n"
	"       dedup-server token list --repo DIR\n"
	"       dedup-server token revoke --repo DIR NAME\n"
	"\n"
	"add     creates a client and prints its token (only the token, on\n"
	"        stdout; it is not stored and cannot be shown again)\n"
	"        --admin: the client may see every client's snapshots\n"
	"        --domain D: the client's dedup domain (default: 'default',\n"
	"        shared by every client added without one); a client learns\n"
	"        only of chunks its own domain stored\n"
	"list    shows each client's name, role, creation time and domain\n"
	"revoke  removes a client; its token stops working at once\n"
	"\n"
	"NAME and D are 1 to 64 of [A-Za-z0-9._-], not starting with '.'.\n";

enum token_op { TOKEN_ADD, TOKEN_LIST, TOKEN_REVOKE };

static int token_usage(void)
{
	fputs(cmd_token_usage, stderr);
	return CMD_USAGE;
}

/* For a repository in a pool: opens it into *be and copies the pool's
 * clients.json into the directory (*seen: what it held; NULL when the
 * pool has none yet). A directory repository: *be stays NULL. */
static int token_pool_pull(const char *repo, struct backend **be,
			   uint8_t **seen, size_t *seen_len)
{
	struct repo_config cfg;
	bool changed;
	int rc = repo_config_load(&cfg, repo);

	*be = NULL;
	if (rc < 0 || !cfg.store[0])
		return rc;
	repo_storage_default_opts();
	rc = repo_backend_open(be, repo);
	if (rc == 0)
		rc = frontends_clients_pull(*be, repo, &changed, seen,
					    seen_len);
	if (rc == -ENOENT) {
		dd_error_clear();
		rc = 0;
	}
	return rc;
}

static int token_run(enum token_op op, const char *repo, const char *name,
		     bool admin, const char *domain)
{
	struct repo_config cfg;
	struct tokens_list list = { NULL, 0, false };
	struct tokens_client c;
	char path[4200], token[TOKENS_TOKEN_LEN + 1];
	ssize_t at;
	size_t i, seen_len = 0;
	struct backend *be = NULL;
	uint8_t *seen = NULL;
	int lockfd = -1, rc;

	if (cmd_as_repo_owner(repo) < 0)
		return CMD_ERROR;
	rc = repo_config_load(&cfg, repo);
	if (rc < 0)
		goto cleanup;
	rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);
	if (rc < 0)
		goto cleanup;
	if (op != TOKEN_LIST) {
		rc = repo_lock_dir(&lockfd, repo);
		if (rc < 0)
			goto cleanup;
	}
	/* A repository in a pool keeps its clients there (every front-end
	 * shares them): the pool's copy first, changed by CAS after. */
	rc = token_pool_pull(repo, &be, &seen, &seen_len);
	if (rc < 0)
		goto cleanup;
	rc = tokens_list_load(&list, path);
	if (rc < 0)
		goto cleanup;

	switch (op) {
	case TOKEN_LIST:
		for (i = 0; i < list.n; i++)
			printf("%-24s %-6s %-20s %s\n", list.v[i].name,
			       list.v[i].admin ? "admin" : "client",
			       list.v[i].created, list.v[i].domain);
		break;
	case TOKEN_ADD:
		if (tokens_list_find(&list, name) >= 0) {
			rc = dd_error_set(-EEXIST, "client '%s' already exists "
					  "(a new token for it: `token revoke`, "
					  "then `token add`; its snapshots "
					  "stay)", name);
			goto cleanup;
		}
		memset(&c, 0, sizeof(c));
		snprintf(c.name, sizeof(c.name), "%s", name);
		c.admin = admin;
		snprintf(c.domain, sizeof(c.domain), "%s",
			 domain ? domain : TOKENS_DEFAULT_DOMAIN);
		dd_format_time(c.created, dd_now());
		rc = tokens_generate(token, c.hash);
		if (rc == 0)
			rc = tokens_list_add(&list, &c);
		if (rc == 0)
			rc = tokens_list_save(&list, path);
		if (rc == 0 && be)
			rc = frontends_clients_push(be, repo, seen, seen_len);
		if (rc < 0)
			goto cleanup;
		/* Only now that it is stored does the token exist. */
		printf("%s\n", token);
		OPENSSL_cleanse(token, sizeof(token));
		break;
	case TOKEN_REVOKE:
		at = tokens_list_find(&list, name);
		if (at < 0) {
			rc = dd_error_set(-ENOENT, "no client named '%s'", name);
			goto cleanup;
		}
		tokens_list_remove(&list, (size_t)at);
		rc = tokens_list_save(&list, path);
		if (rc == 0 && be)
			rc = frontends_clients_push(be, repo, seen, seen_len);
		if (rc < 0)
			goto cleanup;
		fprintf(stderr, "dedup-server: revoked client '%s'\n", name);
		break;
	}
	if (fflush(stdout) != 0)
		rc = dd_error_set(-EIO, "cannot write to stdout: %s",
				  strerror(errno));
cleanup:
	if (lockfd >= 0)
		close(lockfd);
	backend_free(be);
	free(seen);
	tokens_list_release(&list);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		return CMD_ERROR;
	}
	return CMD_OK;
}

/* Client and domain names: false after a message. */
static bool token_name_ok(const char *what, const char *name)
{
	char clean[300];

	if (tokens_name_valid(name))
		return true;
	log_sanitize(clean, sizeof(clean), name, (size_t)-1);
	log_error("invalid %s '%s': use 1 to %d of [A-Za-z0-9._-], not "
		  "starting with '.'", what, clean, DD_CLIENT_NAME_MAX);
	return false;
}

int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "admin", no_argument, NULL, 'a' },
		{ "domain", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL, *sub, *name = NULL, *domain = NULL;
	enum token_op op;
	bool admin = false;
	int c;

	if (argc < 2)
		return token_usage();
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
	    strcmp(sub, "help") == 0) {
		fputs(cmd_token_usage, stdout);
		return CMD_OK;
	}
	if (strcmp(sub, "add") == 0)
		op = TOKEN_ADD;
	else if (strcmp(sub, "list") == 0)
		op = TOKEN_LIST;
	else if (strcmp(sub, "revoke") == 0)
		op = TOKEN_REVOKE;
	else {
		log_error("unknown token command '%s'", sub);
		return token_usage();
	}

	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "r:ad:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'a':
			admin = true;
			break;
		case 'd':
			domain = optarg;
			break;
		case 'h':
			fputs(cmd_token_usage, stdout);
			return CMD_OK;
		default:
			return token_usage();
		}
	}
	argc -= 1 + optind;
	argv += 1 + optind;
	if (!(repo = cmd_default_repo(repo))) {
		log_error("no repository: give --repo DIR (or set repo in "
			  CONFIG_DEFAULT_PATH ")");
		return token_usage();
	}
	if (op == TOKEN_LIST) {
		if (argc != 0 || admin || domain)
			return token_usage();
	} else {
		if (argc != 1 || ((admin || domain) && op != TOKEN_ADD))
			return token_usage();
		name = argv[0];
		if (!token_name_ok("client name", name))
			return CMD_ERROR;
		if (domain && !token_name_ok("domain", domain))
			return CMD_ERROR;
	}
	return token_run(op, repo, name, admin, domain);
}

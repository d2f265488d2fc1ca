/*
 * cmd_cert.c - `dedup-server cert show`: the SHA-256 fingerprint of the
 * certificate the server presents, for agents that pin it
 * (`dedup-agent --fingerprint sha256:...`) instead of trusting a CA file;
 * `dedup-server cert new`: a new self-signed certificate for the
 * repository, with the names agents reach the server by.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "log.h"
#include "repo.h"
#include "tls.h"
#include "util.h"

const char cmd_cert_usage[] =
	"usage: dedup-server cert show [--repo DIR] [--cert FILE]\n"
	"                              [--config FILE]\n"
	"       dedup-server cert new --repo DIR [--name NAME]...\n"
	"\n"
	"show: prints the SHA-256 fingerprint of the server's certificate as\n"
	"sha256:<64 hex digits>, for `dedup-agent --fingerprint`. The\n"
	"certificate is FILE, else tls_cert from the config file, else\n"
	"DIR/tls/cert.pem (DIR from --repo or the config's repo).\n"
	"new: replaces DIR/tls/cert.pem and key.pem with a new self-signed\n"
	"certificate for localhost, 127.0.0.1, ::1, this host's name and each\n"
	"--name (a DNS name or an IP address agents use), and prints its\n"
	"fingerprint. A running server presents it after SIGHUP (systemctl\n"
	"reload dedup-server); agents need the new cert.pem or fingerprint.\n";

/* A server whose configuration names tls_cert presents that one, not the
 * repository's: said, so that nobody waits for the new one. */
static void cert_configured_elsewhere(void)
{
	struct config cfg;

	if (config_init(&cfg) < 0)
		return;
	if (config_load(&cfg, CONFIG_DEFAULT_PATH, false) == 0 &&
	    cfg.tls_cert)
		log_warning("%s names tls_cert '%s': a server started with it "
			    "presents that certificate, not this one",
			    CONFIG_DEFAULT_PATH, cfg.tls_cert);
	config_release(&cfg);
}

/* `cert new`: argv[0] is "new". */
static int cert_new(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL, *names[TLS_NAMES_MAX];
	char cert[4200], key[4200], host[256], fp[65], *pem = NULL;
	size_t nnames = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'N':
			if (tls_names_add(names, &nnames, optarg) < 0) {
				log_error("--name: %s", dd_error_last());
				return CMD_USAGE;
			}
			break;
		case 'h':
			fputs(cmd_cert_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_cert_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (!repo || optind != argc) {
		fputs(cmd_cert_usage, stderr);
		return CMD_USAGE;
	}
	if (cmd_as_repo_owner(repo) < 0)
		return CMD_ERROR;
	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	rc = repo_path(cert, sizeof(cert), repo, REPO_CERT);
	if (rc == 0)
		rc = repo_path(key, sizeof(key), repo, REPO_KEY);
	if (rc == 0 && access(cert, F_OK) < 0)
		rc = dd_error_set(-ENOENT, "'%s' is not a repository (no %s)",
				  repo, REPO_CERT);
	if (rc == 0)
		rc = tls_generate(cert, key, host, names, nnames);
	if (rc == 0)
		rc = tls_read_pem(&pem, cert);
	if (rc == 0)
		rc = tls_fingerprint(fp, pem);
	free(pem);
	if (rc < 0) {
		log_error("cert new: %s", log_reason(rc));
		return CMD_ERROR;
	}
	printf("sha256:%s\n", fp);
	log_info("new certificate in '%s': a running server presents it "
		 "after SIGHUP; give agents the new cert.pem (ca =) or this "
		 "fingerprint", cert);
	cert_configured_elsewhere();
	return fflush(stdout) == 0 ? CMD_OK : CMD_ERROR;
}

int cmd_cert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "cert", required_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	const char *repo = NULL, *cert = NULL, *config = NULL;
	char path[4200], fp[65], *pem = NULL;
	int c, rc, ret = CMD_ERROR;

	if (argc >= 2 && strcmp(argv[1], "new") == 0)
		return cert_new(argc - 1, argv + 1);
	if (argc < 2 || strcmp(argv[1], "show") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
				  strcmp(argv[1], "-h") == 0)) {
			fputs(cmd_cert_usage, stdout);
			return CMD_OK;
		}
		fputs(cmd_cert_usage, stderr);
		return CMD_USAGE;
	}
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "r:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			fputs(cmd_cert_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_cert_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(cmd_cert_usage, stderr);
		return CMD_USAGE;
	}
	if (config_init(&cfg) < 0) {
		log_error("out of memory");
		return CMD_ERROR;
	}
	/* Flags win; the config file only fills in what they leave out. */
	rc = 0;
	if (!cert && (config || !repo))
		rc = config_load(&cfg, config ? config :
					CONFIG_DEFAULT_PATH, config != NULL);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		goto cleanup;
	}
	if (!cert && !repo && cfg.tls_cert)
		cert = cfg.tls_cert;
	if (!cert) {
		if (!repo)
			repo = cfg.repo;
		if (!repo) {
			log_error("no certificate: give --repo DIR or --cert "
				  "FILE");
			fputs(cmd_cert_usage, stderr);
			ret = CMD_USAGE;
			goto cleanup;
		}
		rc = repo_path(path, sizeof(path), repo, REPO_CERT);
		if (rc < 0) {
			log_error("%s", log_reason(rc));
			goto cleanup;
		}
		cert = path;
	}
	rc = tls_read_pem(&pem, cert);
	if (rc == 0)
		rc = tls_fingerprint(fp, pem);
	if (rc < 0) {
		log_error("cannot read certificate '%s': %s", cert,
			  log_reason(rc));
		goto cleanup;
	}
	printf("sha256:%s\n", fp);
	ret = fflush(stdout) == 0 ? CMD_OK : CMD_ERROR;
cleanup:
	free(pem);
	config_release(&cfg);
	return ret;
}

/*
 * cmd_check.c - `dedup-server check`: verifies a repository (check.h) and
 * exits 0 when it is clean, 1 when problems were found or the check could
 * not run.
 *
 * It needs the server stopped: the index is a LevelDB database, which only
 * one process may open, and a running server appends to packs and index
 * meanwhile. So check takes the server's lock (DIR/lock) and, when a server
 * holds it, says so and refuses; while check runs, a server refuses to
 * start.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cmd.h"
#include "config.h"
#include "log.h"
#include "repo.h"
#include "storage.h"
#include "util.h"

const char cmd_check_usage[] =
	"usage: dedup-server check --repo DIR [--read-data] [--quiet]\n"
	"\n"
	"Verifies that the index, the packs and the snapshot manifests of\n"
	"the repository in DIR agree, and that every chunk every snapshot\n"
	"uses is stored. The server must be stopped.\n"
	"--read-data  also decompress and re-hash every chunk, and name each\n"
	"             damaged chunk with the snapshots and files that use it\n"
	"--quiet      print only problems and the last line\n"
	"\n"
	"Exit status: 0 no problems, 1 problems found (or the check could\n"
	"not run), 2 usage error.\n";

int cmd_as_repo_owner(const char *repo)
{
	struct passwd *pw;
	struct stat st;
	gid_t gid;
	int rc;

	if (geteuid() != 0 || stat(repo, &st) < 0 || st.st_uid == 0)
		return 0;      /* a missing repository: the verb says so */
	/* the owner's own group (root's would stay with a directory only
	 * chowned to the user); without a passwd entry, the directory's */
	pw = getpwuid(st.st_uid);
	gid = pw ? pw->pw_gid : st.st_gid;
	if (gid == 0) {
		log_error("'%s' belongs to uid %u, whose group is root's: "
			  "give it a group of its own (chown %u:GROUP) or run "
			  "the verb as that user", repo, (unsigned)st.st_uid,
			  (unsigned)st.st_uid);
		return -EPERM;
	}
	rc = pw ? initgroups(pw->pw_name, gid) : setgroups(1, &gid);
	if (rc == 0)
		rc = setgid(gid);
	if (rc == 0)
		rc = setuid(st.st_uid);
	if (rc < 0) {
		log_error("cannot act as the owner of '%s' (uid %u): %s", repo,
			  (unsigned)st.st_uid, strerror(errno));
		return -errno;
	}
	log_info("acting as user '%s' (uid %u), the owner of '%s'",
		 pw ? pw->pw_name : "?", (unsigned)st.st_uid, repo);
	return 0;
}

/* Takes the server lock for a maintenance verb; a clear message when a
 * server is running. */
int cmd_lock_repo(int *fd, const char *repo, const char *verb)
{
	struct repo_config cfg;
	int rc;

	dd_error_clear();
	if ((rc = cmd_as_repo_owner(repo)) < 0)
		return rc;
	rc = repo_config_load(&cfg, repo);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		return rc;
	}
	repo_storage_default_opts();
	rc = repo_lock_server(fd, repo);
	if (rc == -EBUSY) {
		log_error("repository '%s' is in use by a running dedup-server "
			  "(its lock '%s/%s' is held): stop the server before "
			  "`%s`", repo, repo, REPO_LOCK, verb);
		return rc;
	}
	if (rc < 0)
		log_error("%s", log_reason(rc));
	return rc;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "read-data", no_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct check_opts o = { false, false };
	struct check_result res;
	const char *repo = NULL;
	int c, fd = -1, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:dqh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'd':
			o.read_data = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			fputs(cmd_check_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_check_usage, stderr);
			return CMD_USAGE;
		}
	}
	repo = cmd_default_repo(repo);
	if (optind != argc || !repo) {
		if (!repo)
			log_error("no repository: give --repo DIR (or set repo "
				  "in " CONFIG_DEFAULT_PATH ")");
		fputs(cmd_check_usage, stderr);
		return CMD_USAGE;
	}
	if (cmd_lock_repo(&fd, repo, "check") < 0)
		return CMD_ERROR;
	if (!o.quiet)
		printf("checking repository '%s'%s\n", repo,
		       o.read_data ? " (reading all data)" : "");
	dd_error_clear();
	rc = check_repo(repo, &o, &res);
	fflush(stdout);
	close(fd);
	if (rc < 0) {
		log_error("check failed: %s", log_reason(rc));
		return CMD_ERROR;
	}
	return res.problems ? CMD_ERROR : CMD_OK;
}

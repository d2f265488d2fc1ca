/*
 * fuzz_srv.h - a scratch repository for the server harnesses, made by
 * the real `init` verb.
 */
#ifndef DD_FUZZ_SRV_H
#define DD_FUZZ_SRV_H

#include "cmd.h"
#include "fuzz.h"

/* Creates "<scratch>/repo" and returns its path (static). */
static inline const char *fz_repo(const char *name)
{
	static char repo[4200];
	char *argv[4];
	int saved = dup(1);

	snprintf(repo, sizeof(repo), "%s/repo", fz_scratch(name));
	argv[0] = (char *)"init";
	argv[1] = (char *)"--repo";
	argv[2] = repo;
	argv[3] = NULL;
	/* init talks on stdout; keep libFuzzer's output clean. */
	if (saved >= 0) {
		int devnull = open("/dev/null", O_WRONLY);

		if (devnull >= 0) {
			dup2(devnull, 1);
			close(devnull);
		}
	}
	if (cmd_init(3, argv) != 0)
		abort();
	if (saved >= 0) {
		fflush(stdout);
		dup2(saved, 1);
		close(saved);
	}
	return repo;
}

#endif

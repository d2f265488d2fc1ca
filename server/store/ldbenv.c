/*
 * ldbenv.c - LevelDB's environment: open-files limit, tables read with
 * pread (ldbenv.h).
 *
 * LevelDB has no option for reading tables without mmap. Its POSIX
 * environment takes the number of tables it may map from a variable that
 * only leveldb::EnvPosixTestHelper::SetReadOnlyMMapLimit(int) sets, and
 * reads it when the environment is created. That function is a static
 * member taking one int, so calling it is a plain C call of its mangled
 * name. LevelDB's static archive exports it (its shared library hides
 * it): the Makefile links the archive when it finds one and then defines
 * DD_LEVELDB_STATIC; a build without it maps tables as before.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "ldbenv.h"
#include "log.h"

#define LDBENV_NOFILE 65536

static bool ldbenv_pread;

#ifdef DD_LEVELDB_STATIC
/* leveldb::EnvPosixTestHelper::SetReadOnlyMMapLimit(int) */
void _ZN7leveldb18EnvPosixTestHelper20SetReadOnlyMMapLimitEi(int limit);
#endif

static void ldbenv_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
	    rl.rlim_cur >= LDBENV_NOFILE || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max < LDBENV_NOFILE ? rl.rlim_max :
						    LDBENV_NOFILE;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warning("cannot raise the open-files limit: %s",
			    strerror(errno));
}

bool ldbenv_setup(void)
{
	ldbenv_raise_nofile();
#ifdef DD_LEVELDB_STATIC
	_ZN7leveldb18EnvPosixTestHelper20SetReadOnlyMMapLimitEi(0);
	ldbenv_pread = true;
#endif
	return ldbenv_pread;
}

const char *ldbenv_reads(void)
{
	return ldbenv_pread ? "pread" : "mmap";
}

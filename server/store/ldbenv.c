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
 * it): the Makefile links the archive and defines DD_LEVELDB_STATIC; a
 * build with LEVELDB_SHARED=1 links the shared library instead, and its
 * tables are mapped as LevelDB does by default.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "ldbenv.h"
#include "log.h"

static bool ldbenv_pread;
static unsigned long long ldbenv_nofile_cur;

#ifdef DD_LEVELDB_STATIC
/* leveldb::EnvPosixTestHelper::SetReadOnlyMMapLimit(int) */
void _ZN7leveldb18EnvPosixTestHelper20SetReadOnlyMMapLimitEi(int limit);
#endif

static void ldbenv_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < LDBENV_NOFILE && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < LDBENV_NOFILE ? rl.rlim_max :
							    LDBENV_NOFILE;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warning("cannot raise the open-files limit: %s",
				    strerror(errno));
			getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	ldbenv_nofile_cur = rl.rlim_cur;
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

void ldbenv_log(void)
{
	log_info("index tables read with %s", ldbenv_pread ? "pread" : "mmap");
	if (ldbenv_nofile_cur && ldbenv_nofile_cur < LDBENV_NOFILE_LOW)
		log_warning("the open-files limit is %llu: a large index keeps "
			    "at most %llu tables open and reopens the others "
			    "on every read (raise LimitNOFILE or ulimit -n to "
			    "%d)", ldbenv_nofile_cur, ldbenv_nofile_cur / 5,
			    LDBENV_NOFILE);
}

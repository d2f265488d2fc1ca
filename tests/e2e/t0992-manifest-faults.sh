#!/usr/bin/env bash
# A snapshot whose manifest cannot be made durable is refused, and
# nothing of it is left: the server writes the manifest to a temporary
# file, syncs it, renames it into snapshots/ and syncs the directory;
# when that last sync fails (EIO from an LD_PRELOAD shim while a trigger
# file exists), the renamed manifest is removed again, so that a restart
# does not list a snapshot its client was told failed (on the code
# before, the file stayed and came back after the restart). The server
# keeps serving, and the next backup succeeds once syncs work again.
. "$(dirname "$0")/lib.sh"

cat > "$T/failsync.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* fsync of a directory named ".../snapshots" fails with EIO while the
 * file named by DD_FAILSYNC_TRIGGER exists. */
int fsync(int fd)
{
	static int (*real)(int);
	const char *trigger = getenv("DD_FAILSYNC_TRIGGER");
	char link[64], path[4096];
	ssize_t n;

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n > 10 && trigger && access(trigger, F_OK) == 0) {
		path[n] = 0;
		if (strcmp(path + n - 10, "/snapshots") == 0) {
			errno = EIO;
			return -1;
		}
	}
	return real(fd);
}
C
shim_preload failsync
export DD_FAILSYNC_TRIGGER=$T/fail-now

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
SRC=$T/src
mkdir -p "$SRC"
prand one 300000 > "$SRC/one.bin"
echo hello > "$SRC/small"

manifests() { find "$R/snapshots" -maxdepth 1 -name '*.json' | wc -l; }
LD_PRELOAD=$PRELOAD server_start "$R" || exit 1
agent "$A" backup "$SRC" >/dev/null 2>"$T/b1.err"
check "a first backup succeeds" test $? = 0
check_eq "one manifest" 1 "$(manifests)"

touch "$T/fail-now"
echo more > "$SRC/small"
DEDUP_AGENT_RETRIES=0 agent "$A" backup "$SRC" >/dev/null 2>"$T/b2.err"
check "a backup whose manifest cannot be synced fails" test $? != 0
sed 's/^/# /' "$T/b2.err" | tail -n 2
check_eq "and leaves no manifest behind" 1 "$(manifests)"
check "nor a temporary" test -z "$(find "$R/snapshots" -name '*.tmp*')"
check "the server says it could not sync" grep -q "cannot sync directory" "$T/server.log"
check_eq "it keeps serving" 200 "$(api_status "" GET /api/v1/health)"
rm -f "$T/fail-now"
server_stop TERM

server_start "$R" || exit 1
out=$(api "$A" GET /api/v1/snapshots)
check_eq "after a restart one snapshot is listed" 1 \
	"$(head -n -1 <<<"$out" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')"
agent "$A" backup "$SRC" >/dev/null 2>"$T/b3.err"
check "the next backup succeeds" test $? = 0
check_eq "two manifests" 2 "$(manifests)"
server_stop TERM
"$SERVER" check --repo "$R" --read-data >/dev/null 2>&1
check_eq "the repository checks clean" 0 "$?"
finish

#!/usr/bin/env bash
# check and repair: a clean repository checks clean (with and without
# --read-data), check refuses while the server runs, and
# `repair --rebuild-index` after deleting index/ brings back the same ids,
# every file of the rebuilt index synced before it is put in place.
. "$(dirname "$0")/lib.sh"

export DD_TEST_BIG_MB=${DD_TEST_BIG_MB_CHECK:-6} DD_TEST_SMALL_FILES=300
SRC=$T/data/tree
make_mixed_tree "$SRC" >/dev/null
R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
server_start "$R" || exit 1
ID1=$(json_get "$(agent "$A" backup --json "$SRC")" snapshot_id)
echo "a second version" > "$SRC/src/new.txt"
ID2=$(json_get "$(agent "$A" backup --json "$SRC")" snapshot_id)
check "two snapshots" grep -qE '^[0-9a-f]{64}$' <<<"$ID2"

# While the server runs: refused, with a plain reason.
"$SERVER" check --repo "$R" >"$T/out" 2>"$T/err"
check_eq "check exits 1 while the server runs" 1 $?
check "and says a server is running" grep -q "in use by a running dedup-server" "$T/err"
"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>"$T/err"
check_eq "repair exits 1 while the server runs" 1 $?
check "and says why" grep -q "stop the server" "$T/err"
server_stop TERM

"$SERVER" check --repo "$R" >"$T/out" 2>&1
check_eq "check of a clean repository exits 0" 0 $?
check "it says so" grep -qx "no problems found" "$T/out"
check "it counts both snapshots" grep -qx "snapshots: 2" "$T/out"
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "check --read-data of a clean repository exits 0" 0 $?
check "no damaged chunk named" not grep -q "damaged chunk" "$T/out"
"$SERVER" check --repo "$R" --read-data --quiet >"$T/out" 2>&1
check_eq "--quiet prints only the last line" "no problems found" "$(cat "$T/out")"

# Usage errors exit 2.
"$SERVER" check >/dev/null 2>&1
check_eq "check without --repo is a usage error" 2 $?
"$SERVER" repair --repo "$R" >/dev/null 2>&1
check_eq "repair without an action is a usage error" 2 $?
"$SERVER" check --repo "$T/nothing" >/dev/null 2>"$T/err"
check_eq "check of a non-repository exits 1" 1 $?
check "and names it" grep -q "is not a dedup repository" "$T/err"

# Rebuild: delete the index, rebuild it from the packs, same ids.
"$SERVER" debug list-chunks --repo "$R" > "$T/ids.before"
check "the index lists chunks" test "$(wc -l < "$T/ids.before")" -gt 20
check "ids are sorted and unique" cmp -s "$T/ids.before" <(sort -u "$T/ids.before")
rm -rf "$R/index"
"$SERVER" check --repo "$R" >"$T/out" 2>&1
check_eq "check without an index exits 1" 1 $?
check "and points to repair" grep -q "repair --rebuild-index" "$T/out"
"$SERVER" repair --repo "$R" --rebuild-index >"$T/out" 2>&1
check_eq "repair --rebuild-index exits 0" 0 $?
check "it reports the chunk count" grep -q "index rebuilt from the packs: $(wc -l < "$T/ids.before") chunk(s)" "$T/out"
"$SERVER" debug list-chunks --repo "$R" > "$T/ids.after"
check "the same ids come back" cmp -s "$T/ids.before" "$T/ids.after"
check "no work directories are left" test ! -e "$R/index.new" -a ! -e "$R/index.old"
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "check --read-data after the rebuild exits 0" 0 $?

# Rebuild over an existing index, and the server's own rebuild at start.
"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
"$SERVER" debug list-chunks --repo "$R" > "$T/ids.again"
check "a rebuild over an index gives the same ids" cmp -s "$T/ids.before" "$T/ids.again"
# The rebuild writes without syncing, and LevelDB leaves a full log file
# unsynced: every file of the new index is synced (fsync, which LevelDB
# itself never calls: it uses fdatasync) before the counters say it is
# whole, so a power loss cannot leave entries missing behind them.
# (LeakSanitizer cannot run under ptrace: off for this traced run)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -y -e trace=fsync -o "$T/rebuild.strace" \
	"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
check_eq "a rebuild under strace exits 0" 0 $?
check "it syncs the new index's log" \
	grep -qE 'fsync\([0-9]+<[^>]*/index\.new/[0-9]+\.log>\) = 0' "$T/rebuild.strace"
check "and its MANIFEST" \
	grep -qE 'fsync\([0-9]+<[^>]*/index\.new/MANIFEST-[0-9]+>\) = 0' "$T/rebuild.strace"
rm -rf "$R/index"
server_start "$R" || exit 1
agent "$A" restore "$ID1" --target "$T/r1" 2>/dev/null
check "the server rebuilds a deleted index and restores" diff -r --no-dereference "$SRC/bin" "$T/r1/${SRC#/}/bin"
server_stop TERM
"$SERVER" debug list-chunks --repo "$R" > "$T/ids.server"
check "the server's rebuild gives the same ids" cmp -s "$T/ids.before" "$T/ids.server"
"$SERVER" check --repo "$R" --quiet >/dev/null 2>&1
check_eq "and checks clean" 0 $?

# A pack the server created just before a crash, before its header: a note.
: > "$R/packs/00000000000000f0.pack"
printf 'DDPK\001' > "$R/packs/00000000000000f1.pack"
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "packs shorter than their header are harmless" 0 $?
check "and noted" grep -q "^note: pack .*00000000000000f1.pack' has only 5 byte(s)" "$T/out"
rm -f "$R/packs/00000000000000f0.pack" "$R/packs/00000000000000f1.pack"

# An interrupted repair (a leftover index.new) is harmless.
mkdir -p "$R/index.new" && echo junk > "$R/index.new/junk"
"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
check_eq "repair over a leftover index.new exits 0" 0 $?
"$SERVER" debug list-chunks --repo "$R" > "$T/ids.left"
check "and gives the same ids" cmp -s "$T/ids.before" "$T/ids.left"

# A repair killed as it puts the new index in place leaves an index at
# its name, whichever (the new one takes the old one's place in one
# step): check is clean. The shim kills the process right after the
# first rename that moves index or index.new.
cat > "$T/killrename.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
static int ends(const char *p, const char *s)
{
	size_t a = strlen(p), b = strlen(s);
	return a >= b && strcmp(p + a - b, s) == 0;
}
static void maybe_die(int r, const char *from)
{
	if (r == 0 && (ends(from, "/index") || ends(from, "/index.new")))
		raise(SIGKILL);
}
int rename(const char *a, const char *b)
{
	int (*real)(const char *, const char *) =
		(int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
	int r = real(a, b);
	maybe_die(r, a);
	return r;
}
int renameat2(int fa, const char *a, int fb, const char *b, unsigned fl)
{
	int (*real)(int, const char *, int, const char *, unsigned) =
		(int (*)(int, const char *, int, const char *, unsigned))
		dlsym(RTLD_NEXT, "renameat2");
	int r = real(fa, a, fb, b, fl);
	maybe_die(r, a);
	return r;
}
C
shim_preload killrename
LD_PRELOAD=$PRELOAD "$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
check_eq "the shim kills the repair as it puts the index in place" 137 $?
"$SERVER" check --repo "$R" > "$T/killed.out" 2>&1
check_eq "check after that kill is clean" 0 $?
"$SERVER" debug list-chunks --repo "$R" > "$T/ids.killed"
check "and the index gives the same ids" cmp -s "$T/ids.before" "$T/ids.killed"
"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
check_eq "the next repair exits 0" 0 $?
check "and leaves neither index.new nor index.old" \
	test ! -e "$R/index.new" -a ! -e "$R/index.old"
finish

#!/usr/bin/env bash
# Incremental backups: a file whose path, size, mtime, ctime, inode and mode
# are unchanged since the parent snapshot is not opened at all (checked with
# strace), a changed one is read again, --force-read reads everything, a
# file written just before it was read ("racily clean") is read again by
# the next backup, and every snapshot restores to the tree as it was.
. "$(dirname "$0")/lib.sh"

SRC=$T/tree
mkdir -p "$SRC/a/b" "$SRC/a-b" "$SRC/c"
for i in $(seq 1 500); do printf 'file %d\n' "$i" > "$SRC/a/b/f$i"; done
for i in $(seq 1 50); do printf 'other %d\n' "$i" > "$SRC/a-b/g$i"; done
prand inc1 3000000 > "$SRC/c/big.bin"
prand inc2 200000 > "$SRC/c/same-size.bin"
ln -s a/b "$SRC/link"
age_tree "$SRC"
nfiles=$(find "$SRC" -type f | wc -l)

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
server_start "$T/repo" || exit 1

# opened_files LOG: how many files below $SRC the traced run opened
# (strace -y shows the path of each returned fd; directories are opened to
# list them and do not count).
opened_files() {
	grep -E "= [0-9]+<$SRC/" "$1" | grep -vc O_DIRECTORY
}
# opened LOG PATH: whether the traced run opened PATH.
opened() { grep -qE "= [0-9]+<$2>" "$1"; }
trace() { strace -f -qq -y -e trace=open,openat -o "$@"; }

out=$(agent "$A" backup --json "$SRC")
ID1=$(json_get "$out" snapshot_id)
check_eq "first backup has no parent" 0 "$(json_get "$out" files_unchanged)"
tree_manifest "$SRC" > "$T/m1"

out=$(trace "$T/trace2" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$SRC")
check "unchanged re-backup succeeds" grep -qE '^[0-9a-f]{64}$' <<<"$(json_get "$out" snapshot_id)"
ID2=$(json_get "$out" snapshot_id)
check_eq "every file is known from the parent" "$nfiles" "$(json_get "$out" files_unchanged)"
check_eq "no file below the tree is opened" 0 "$(opened_files "$T/trace2")"
check_eq "nothing is sent" 0 "$(json_get "$out" bytes_sent)"
check_eq "the snapshot still counts every file" "$nfiles" "$(json_get "$out" files)"
check "the manifest names its parent" grep -q "\"parent\": *\"$ID1\"" <<<"$(api "$A" GET "/api/v1/snapshots/$ID2" | head -n1)"

# Change the tree: append to one file, rewrite one in place keeping size
# and mtime (only ctime tells), replace one by a copy (new inode), chmod
# one, add one, delete one.
echo "appended" >> "$SRC/a/b/f1"
printf 'FILE 2\n' | dd of="$SRC/a/b/f2" conv=notrunc status=none
touch -d "$(date -d @"$(stat -c %Y "$SRC/a/b/f3")")" "$SRC/a/b/f2"
cp -p "$SRC/c/same-size.bin" "$T/tmpcopy" && prand inc3 200000 > "$T/tmpcopy2"
cp "$T/tmpcopy2" "$SRC/c/same-size.bin.new" && touch -r "$SRC/c/same-size.bin" "$SRC/c/same-size.bin.new" && mv "$SRC/c/same-size.bin.new" "$SRC/c/same-size.bin"
chmod 0600 "$SRC/a/b/f4"
echo "new file" > "$SRC/a/new"
rm "$SRC/a/b/f5"
sleep 0.01

out=$(trace "$T/trace3" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$SRC")
ID3=$(json_get "$out" snapshot_id)
check_eq "only the changed files are opened" 5 "$(opened_files "$T/trace3")"
check "the rewritten file was read" opened "$T/trace3" "$SRC/a/b/f2"
check "the replaced file was read" opened "$T/trace3" "$SRC/c/same-size.bin"
check "the big unchanged file was not" not opened "$T/trace3" "$SRC/c/big.bin"
check "the trace does see opened files" opened "$T/trace3" "$SRC/a/new"
tree_manifest "$SRC" > "$T/m3"

out=$(trace "$T/trace4" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json --force-read "$SRC")
check_eq "--force-read opens every file" "$(find "$SRC" -type f | wc -l)" "$(opened_files "$T/trace4")"
check_eq "--force-read uses no parent" 0 "$(json_get "$out" files_unchanged)"

# Another set of paths does not use this parent.
out=$(agent "$A" backup --json "$SRC/a")
check_eq "a different path set has no parent" 0 "$(json_get "$out" files_unchanged)"

# An xattr set on an otherwise unchanged file changes its ctime: the file
# is not taken from the parent, and the new xattr is in the snapshot.
if setfattr -n user.note -v "set later" "$SRC/c/big.bin" 2>/dev/null; then
	out=$(trace "$T/trace5" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$SRC")
	check "the file whose xattr changed is read again" opened "$T/trace5" "$SRC/c/big.bin"
	agent "$A" restore "$(json_get "$out" snapshot_id)" --target "$T/r5" 2>/dev/null
	check_eq "and the restore has the new xattr" "set later" \
		"$(getfattr --only-values -n user.note "$T/r5/${SRC#/}/c/big.bin" 2>/dev/null)"
else
	echo "skipped: xattrs are not supported on $T"
fi

# Every snapshot restores to the tree as it was.
agent "$A" restore "$ID2" --target "$T/r2" 2>/dev/null
tree_manifest "$T/r2/${SRC#/}" > "$T/r2m"
check "the snapshot made from the parent restores the original tree" cmp -s "$T/m1" "$T/r2m"
agent "$A" restore "$ID3" --target "$T/r3" 2>/dev/null
tree_manifest "$T/r3/${SRC#/}" > "$T/r3m"
check "the changed snapshot restores the changed tree" cmp -s "$T/m3" "$T/r3m"
check "with the in-place rewrite" cmp -s "$SRC/a/b/f2" "$T/r3/${SRC#/}/a/b/f2"
check "and the replaced file" cmp -s "$SRC/c/same-size.bin" "$T/r3/${SRC#/}/c/same-size.bin"

# A file whose metadata (xattrs) could not be read whole is recorded with
# what was read and a warning (exit 3); the next backup reads it again
# rather than take that incomplete metadata from the parent (before, it
# did, silently, and every later snapshot lacked the xattr). The failure
# is an LD_PRELOAD shim: flistxattr of the file fails while a trigger
# file exists.
if setfattr -n user.keep -v "keep me" "$SRC/c/same-size.bin" 2>/dev/null; then
	cat > "$T/failxattr.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
ssize_t flistxattr(int fd, char *list, size_t size)
{
	static ssize_t (*real)(int, char *, size_t);
	const char *trigger = getenv("DD_FAILXATTR_TRIGGER");
	char link[64], path[4096];
	ssize_t n;

	if (!real)
		real = (ssize_t (*)(int, char *, size_t))dlsym(RTLD_NEXT, "flistxattr");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n > 0 && trigger && access(trigger, F_OK) == 0) {
		path[n] = 0;
		if (strstr(path, "same-size.bin")) {
			errno = EIO;
			return -1;
		}
	}
	return real(fd, list, size);
}
C
	shim_preload failxattr
	agent "$A" backup --json "$SRC" > /dev/null 2>&1   # the xattr is new: read
	touch "$T/fail-xattr"
	DD_FAILXATTR_TRIGGER=$T/fail-xattr LD_PRELOAD=$PRELOAD \
		agent "$A" backup --json --force-read "$SRC" > /dev/null 2>"$T/mf.err"
	check_eq "a backup that cannot read a file's xattrs is partial (exit 3)" 3 "$?"
	check "saying so" grep -q "metadata.*same-size.bin" "$T/mf.err"
	rm -f "$T/fail-xattr"
	out=$(trace "$T/trace6" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$SRC")
	check "the next backup reads that file again" opened "$T/trace6" "$SRC/c/same-size.bin"
	agent "$A" restore "$(json_get "$out" snapshot_id)" --target "$T/r6" 2>/dev/null
	check_eq "and its snapshot has the xattr" "keep me" \
		"$(getfattr --only-values -n user.keep "$T/r6/${SRC#/}/c/same-size.bin" 2>/dev/null)"
else
	echo "skipped: xattrs are not supported on $T"
fi

# "Racily clean" files: one written just before the agent read it could be
# written again after that, with the same size and times, and match its
# entry at the next backup although its bytes changed. Such a file is read
# again by the next backup, once. The window (20 ms, 2 s on a file system
# without sub-second times) is widened with the test hook so that every
# file falls in it.
out=$(DEDUP_TEST_RACY_SEC=86400 agent "$A" backup --json --force-read "$SRC")
check "a backup with every file in the racy window succeeds" test -n "$(json_get "$out" snapshot_id)"
out=$(agent "$A" backup --json "$SRC")
check_eq "the next backup reads every one of them again" 0 "$(json_get "$out" files_unchanged)"
out=$(agent "$A" backup --json "$SRC")
check_eq "and the one after trusts them all" "$nfiles" "$(json_get "$out" files_unchanged)"
check_eq "reading nothing" 0 "$(json_get "$out" bytes_read)"

# A recent ctime counts as much as a recent mtime: a file rewritten and
# its mtime put back (touch -d, cp -p, rsync -t) within the window keeps
# both times on a whole-second file system, and only a ctime off the
# window's tick tells. Here the mtime is a day old and the ctime new; a
# window of an hour takes in the ctime only. (A tree of its own: every
# file above has a ctime that new.)
PB=$T/put-back
mkdir -p "$PB"
printf 'AAAA\n' > "$PB/f"
touch -m -d '-1 day' "$PB/f"
out=$(DEDUP_TEST_RACY_SEC=3600 agent "$A" backup --json "$PB")
check "a backup of a put-back mtime succeeds" test -n "$(json_get "$out" snapshot_id)"
trace "$T/trace7" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$PB" > /dev/null
check "the next backup reads the file whose ctime was in the window" \
	opened "$T/trace7" "$PB/f"
trace "$T/trace8" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$PB" > /dev/null
check "and the one after does not" not opened "$T/trace8" "$PB/f"
finish

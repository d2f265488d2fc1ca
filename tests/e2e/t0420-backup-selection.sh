#!/usr/bin/env bash
# What a backup takes and how it reports what it could not: --exclude
# patterns (a name, a path, a trailing path), --exclude-file, directories
# tagged with a valid CACHEDIR.TAG (kept with their tag, contents
# skipped; a wrong signature does not count; --include-caches takes them),
# --one-file-system (a mount point is kept empty). A file that vanishes or
# changes while it is read is a warning (exit 0); an unreadable one is
# reported, the snapshot is still created, and the exit code is 3
# (DD_EXIT_PARTIAL). Faults are injected with strace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/t04lib.sh"

SRC=$T/src
mkdir -p "$SRC/keep" "$SRC/build/tmp" "$SRC/x/build/tmp" "$SRC/cache/sub" "$SRC/notcache" "$SRC/logs"
echo k > "$SRC/keep/file.c"
echo o > "$SRC/keep/file.o"
echo t > "$SRC/build/tmp/t"
echo t > "$SRC/x/build/tmp/t"
echo b > "$SRC/build/keep.txt"
echo l > "$SRC/logs/a.log"
printf 'Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n' > "$SRC/cache/CACHEDIR.TAG"
echo c > "$SRC/cache/sub/blob"
printf 'Signature: 00000000000000000000000000000000\n' > "$SRC/notcache/CACHEDIR.TAG"
echo n > "$SRC/notcache/data"
P=${SRC#/}

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
server_start "$T/repo" || exit 1

# paths ID: the snapshot's paths below $SRC, sorted.
paths() { agent "$A" ls --json "$1" | python3 -c '
import json, sys
p = sys.argv[1]
print("\n".join(sorted(e["path"][len(p) + 1:] for e in json.load(sys.stdin) if e["path"].startswith(p + "/"))))' "$P"; }

printf '# comments and blank lines are skipped\n\n/%s/logs\n' "$P" > "$T/excludes"
out=$(agent "$A" backup --json --exclude '*.o' --exclude build/tmp --exclude-file "$T/excludes" "$SRC" 2>"$T/err")
check_eq "the backup exits 0" 0 $?
ID=$(json_get "$out" snapshot_id)
paths "$ID" > "$T/got"
cat > "$T/want" <<LIST
build
build/keep.txt
cache
cache/CACHEDIR.TAG
keep
keep/file.c
notcache
notcache/CACHEDIR.TAG
notcache/data
x
x/build
LIST
check "exclusions, patterns and a cache directory" cmp -s "$T/want" "$T/got"
cmp -s "$T/want" "$T/got" || diff "$T/want" "$T/got"
check_eq "excluded entries are counted" 5 "$(json_get "$out" excluded)"
out=$(agent "$A" backup --json --include-caches "$SRC/cache" 2>/dev/null)
check_eq "--include-caches takes a cache's contents" 3 "$(paths "$(json_get "$out" snapshot_id)" | grep -c '^cache/')"
check_eq "a missing exclude file is an error" 1 "$(agent "$A" backup --exclude-file "$T/nope" "$SRC" >/dev/null 2>&1; echo $?)"
check_eq "an empty pattern is a usage error" 2 "$(agent "$A" backup --exclude '' "$SRC" >/dev/null 2>&1; echo $?)"

# --one-file-system: a tmpfs mounted inside the tree
mkdir -p "$T/fs/mnt" && echo top > "$T/fs/top"
if mount -t tmpfs dedup-test "$T/fs/mnt" 2>/dev/null; then
	echo inner > "$T/fs/mnt/inner"
	out=$(agent "$A" backup --json --one-file-system "$T/fs" 2>/dev/null)
	FP=${T#/}/fs
	l=$(agent "$A" ls "$(json_get "$out" snapshot_id)" | awk '{print $NF}' | tr '\n' ' ')
	check_eq "--one-file-system keeps the mount point, not its contents" "$FP $FP/mnt $FP/top " "$l"
	out=$(agent "$A" backup --json "$T/fs" 2>/dev/null)
	check "without it the mount is entered" grep -q "mnt/inner" <(agent "$A" ls "$(json_get "$out" snapshot_id)")
	# the mount given too (backup -x / /home): its file system is walked
	# (it was recorded empty, exit 0)
	out=$(agent "$A" backup --json --one-file-system "$T/fs" "$T/fs/mnt" 2>"$T/fs.err")
	check_eq "--one-file-system with the mount given too: exit 0" 0 "$?"
	check "its contents are in the snapshot" grep -q "mnt/inner" <(agent "$A" ls "$(json_get "$out" snapshot_id)")
	umount "$T/fs/mnt"
else
	echo "# cannot mount a tmpfs here: --one-file-system not tested"
fi

# A path given inside another is recorded by the other's walk; when that
# walk cannot reach it (a symlink on its way, which the outer backup
# records as a symlink) the backup refuses before it starts, where it
# dropped the path silently (exit 0).
mkdir -p "$T/nest/home/ann/real/projects" "$T/nest/elsewhere/projects"
echo p > "$T/nest/elsewhere/projects/plan"
ln -s ../../elsewhere "$T/nest/home/ann/data"
agent "$A" backup "$T/nest/home" "$T/nest/home/ann/data/projects" >/dev/null 2>"$T/nest.err"
check_eq "a path inside another behind a symlink: exit 1" 1 "$?"
check "naming the symlink" grep -q "'$T/nest/home/ann/data' on its way is a symlink" "$T/nest.err"
agent "$A" backup "$T/nest/home/ann/data" "$T/nest/home/ann/data/projects" >/dev/null 2>"$T/nest2.err"
check_eq "a path inside a symlink given too: exit 1" 1 "$?"
check "naming it" grep -q "'$T/nest/home/ann/data' on its way is a symlink" "$T/nest2.err"
out=$(agent "$A" backup --json "$T/nest/home" "$T/nest/home/ann/real/projects" 2>/dev/null)
check "a path inside another, reached by its walk, is in the snapshot once" \
	test "$(agent "$A" ls "$(json_get "$out" snapshot_id)" | grep -c 'ann/real/projects$')" -eq 1
# A path given but excluded by a pattern: said, and the snapshot partial.
agent "$A" backup "$T/nest/home" --exclude home >/dev/null 2>"$T/excl.err"
check_eq "a given path excluded by a pattern: exit 3" 3 "$?"
check "naming it" grep -q "'$T/nest/home' is not in the snapshot" "$T/excl.err"

# A pattern with a trailing slash names the directory (it matched nothing).
mkdir -p "$T/ts/build/obj" "$T/ts/src"
echo o > "$T/ts/build/obj/a.o"
echo c > "$T/ts/src/a.c"
out=$(agent "$A" backup --json --exclude build/ "$T/ts" 2>/dev/null)
check "--exclude build/ leaves build out" \
	not grep -q "ts/build" <(agent "$A" ls "$(json_get "$out" snapshot_id)")

# ".." after a symlink means what the kernel makes of it: link/../proj
# is the proj beside link's target (it was the one beside link, by text).
mkdir -p "$T/dd/work/proj" "$T/dd/elsewhere/sub" "$T/dd/elsewhere/proj"
echo "beside the target" > "$T/dd/elsewhere/proj/README"
echo "beside the link" > "$T/dd/work/proj/README"
ln -s ../elsewhere/sub "$T/dd/work/link"
out=$(cd "$T/dd/work" && agent "$A" backup --json link/../proj 2>/dev/null)
check "a path with .. after a symlink backs up what the kernel names" \
	grep -q "dd/elsewhere/proj/README$" <(agent "$A" ls "$(json_get "$out" snapshot_id)")
out=$(agent "$A" backup --json "$T/dd/work/./proj/" 2>/dev/null)
check "a path without .. is kept as written" \
	grep -q "dd/work/proj/README$" <(agent "$A" ls "$(json_get "$out" snapshot_id)")

# Faults: a file that vanishes, one that changes while read, unreadable
# ones.
F=$T/faults
mkdir -p "$F"
for n in vanish change eacces eio good; do echo "$n" > "$F/$n"; done
prand change 2000000 > "$F/change"
# inject PATH FAULT...: a backup of $F under strace with faults on PATH (a
# name alone matches the walk's openat(dirfd, name); a full path matches
# calls on an open fd).
inject() {
	local p=$1; shift
	# LeakSanitizer cannot run under ptrace: off for ASan builds.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -qq -o /dev/null -P "$p" "$@" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json --force-read "$F"
}
out=$(inject vanish -e trace=openat -e inject=openat:error=ENOENT 2>"$T/err")
check_eq "a file that vanishes: exit 0" 0 $?
check "with a warning naming it" grep -q "'/${F#/}/vanish' vanished while being read" "$T/err"
check "the snapshot has the others" grep -q "faults/good" <(agent "$A" ls "$(json_get "$out" snapshot_id)")

# The change lands while the agent holds the file open (each read of it
# is delayed by strace): wait until some process has it open, then append.
(
	for i in $(seq 1 1000); do
		if ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -qF -- "-> $F/change"; then
			echo more >> "$F/change"
			exit 0
		fi
		sleep 0.01
	done
	exit 1
) &
changer=$!
out=$(inject "$F/change" -e trace=read -e inject=read:delay_enter=400000 2>"$T/err")
check_eq "a file that changes while read: exit 0" 0 $?
wait "$changer"
check "the change was made while the file was open" test $? = 0
check "with a warning naming it" grep -q "'/${F#/}/change' changed while being read" "$T/err"

out=$(inject eacces -e trace=openat -e inject=openat:error=EACCES 2>"$T/err")
check_eq "an unreadable file: exit 3 (partial)" 3 $?
check "it is reported" grep -q "cannot open '/${F#/}/eacces': Permission denied" "$T/err"
check "the snapshot is said to be partial" grep -q "the snapshot is partial: 1 entries" "$T/err"
ID=$(json_get "$out" snapshot_id)
check_eq "the snapshot was created, without that file" "change eio good vanish" "$(agent "$A" ls "$ID" | grep -o "faults/.*" | cut -d/ -f2 | tr "\n" " " | sed "s/ $//")"
check_eq "--json counts it" 1 "$(json_get "$out" unreadable)"
out=$(inject "$F/eio" -e trace=read -e inject=read:error=EIO 2>"$T/err")
check_eq "a read error: exit 3 (partial)" 3 $?
check "it is reported" grep -q "cannot read '/${F#/}/eio': Input/output error" "$T/err"

# A user's own directory below one it may enter but not list (a home of
# mode 0711): the agent only searches the parent, as tar does.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 1777 "$T"
	mkdir -p "$T/home711/ann/docs" "$T/ann-state"
	echo "ann's notes" > "$T/home711/ann/docs/n.txt"
	install -m 0644 "$CA" "$T/ann-ca.pem"
	chown -R nobody:nogroup "$T/home711/ann" "$T/ann-state"
	chmod 0711 "$T/home711"
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$T/home711/ann" \
		DEDUP_STATE_DIR="$T/ann-state" "$AGENT" --server "$URL" --token "$A" --ca "$T/ann-ca.pem" \
		backup --json "$T/home711/ann" 2>"$T/err")
	check_eq "a directory whose parent has mode 0711, backed up by its owner: exit 0" 0 $?
	check_eq "... its file is in the snapshot" 1 "$(json_get "$out" files)"
else
	ok "skipped the 0711 parent: needs root and setpriv"
fi
finish

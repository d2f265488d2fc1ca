#!/usr/bin/env bash
# Reading, cutting and hashing on several threads (issue 13, item 1): the
# same tree backed up with --threads 1 and --threads 4 gives byte-identical
# catalogs (the manifests name the same catalog chunk ids), the same `ls`,
# and the same counts; the tree has many small files in several
# directories, a few large ones, sparse files, hard links, symlinks, a fifo
# and empty files, and restores identical from the 4-thread snapshot.
# On the parallel path: the parent's unchanged files are not read,
# excludes hold, a read error in the middle of a large batch leaves that
# file out (exit 3, the same catalog as one thread gives), a file that
# shrinks while read is a warning (exit 0), the agent's peak RSS stays
# under 256 MiB with 4 threads, and a failure of the upload
# (the client's quota) stops the backup with no snapshot created.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
C=$(token_add "$R" carol)
printf 'client.carol.quota_bytes = 1M\n' > "$T/server.conf"
SRC=$T/src
MiB=$((1024 * 1024))

# The tree: 3 directories of 500 small files (0..20 KB, some repeated),
# large files of 6..20 MiB, sparse files, links.
python3 - "$SRC" <<'PY'
import hashlib, os, sys
top = sys.argv[1]
def prand(seed, n):
    out, i = bytearray(), 0
    while len(out) < n:
        out += hashlib.sha256(b"%s-%d" % (seed.encode(), i)).digest()
        i += 1
    return bytes(out[:n])
for d in ("a", "b/deeper", "c"):
    os.makedirs(os.path.join(top, d))
    for i in range(500):
        n = (i * 7919) % 20000
        data = prand("%s%d" % (d, i % 450), n)
        if i % 3 == 0:
            data = (b"text line %d of %s\n" % (i, d.encode())) * (n // 20)
        with open(os.path.join(top, d, "f%03d" % i), "wb") as f:
            f.write(data)
big = os.path.join(top, "big")
os.makedirs(big)
for name, mib in (("one.img", 20), ("two.img", 9), ("three.img", 6)):
    with open(os.path.join(big, name), "wb") as f:
        for k in range(mib):
            f.write(prand("%s%d" % (name, k % 5), 1 << 20))
PY
truncate -s 64M "$SRC/big/sparse.img"
prand s1 300000 | dd of="$SRC/big/sparse.img" bs=64K seek=1000 oflag=seek_bytes conv=notrunc status=none
prand s2 2000000 | dd of="$SRC/big/sparse.img" bs=64K seek=$((40 * MiB)) oflag=seek_bytes conv=notrunc status=none
truncate -s 16M "$SRC/c/all-hole"
ln "$SRC/big/two.img" "$SRC/c/two-again.img"
ln "$SRC/a/f007" "$SRC/c/f007-link"
ln -s ../a/f001 "$SRC/b/link"
mkfifo "$SRC/b/fifo"
: > "$SRC/b/empty"

server_start "$R" --config "$T/server.conf" || exit 1

# snap_catalog ID: the catalog chunk ids the snapshot's manifest lists.
snap_catalog() {
	api "$A" GET "/api/v1/snapshots/$1" | head -n1 |
		python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["catalog"]))'
}
# counts JSON: the backup's counts that must not depend on the threads.
counts() {
	python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(" ".join(str(j[k]) for k in ("files", "unreadable", "bytes_total", "chunks_total", "bytes_read", "bytes_holes")))' "$1"
}

age_tree "$SRC"
# 1. one thread and four threads, each reading every file
out1=$(agent "$A" backup --json --force-read --threads 1 "$SRC" 2>"$T/err1")
check_eq "--threads 1: exit 0" 0 $?
out4=$(/usr/bin/time -f %M -o "$T/rss4" "$AGENT" --server "$URL" --token "$A" --ca "$CA" \
	backup --json --force-read --threads 4 "$SRC" 2>"$T/err4")
check_eq "--threads 4: exit 0" 0 $?
# A sanitizer's shadow memory is not the agent's.
if grep -qaE '__asan_init|__tsan_init' "$AGENT"; then
	echo "# sanitizer build: the RSS check is skipped"
else
	check "--threads 4: peak RSS under 256 MiB" test "$(tail -n1 "$T/rss4")" -lt $((256 * 1024))
fi
ID1=$(json_get "$out1" snapshot_id)
ID4=$(json_get "$out4" snapshot_id)
check "two snapshots" test -n "$ID1" -a -n "$ID4" -a "$ID1" != "$ID4"
check_eq "1506 files each" 1506 "$(json_get "$out4" files)"
check_eq "the same counts (files, bytes, chunks, bytes read, holes)" "$(counts "$out1")" "$(counts "$out4")"
check "the holes were not read" test "$(json_get "$out4" bytes_holes)" -gt $((70 * MiB))
cat1=$(snap_catalog "$ID1")
check "the catalog has chunks" test -n "$cat1"
check_eq "byte-identical catalogs: the same catalog chunk ids" "$cat1" "$(snap_catalog "$ID4")"
agent "$A" ls "$ID1" > "$T/ls1"
agent "$A" ls "$ID4" > "$T/ls4"
check "ls lists every entry" test "$(wc -l < "$T/ls4")" -ge 1512
check "the same ls output" cmp -s "$T/ls1" "$T/ls4"
check "the second run sent nothing new" test "$(json_get "$out4" chunks_new)" = 0
check "no warnings" test ! -s "$T/err4"

# 2. the 4-thread snapshot restores the tree
agent "$A" restore "$ID4" --target "$T/restore" 2>"$T/restore.err"
check_eq "restore exits 0" 0 $?
check "the restored tree is the tree" diff <(tree_manifest "$SRC") <(tree_manifest "$T/restore/${SRC#/}")
check "the hard link is one inode" test "$(stat -c %i "$T/restore/${SRC#/}/big/two.img")" = "$(stat -c %i "$T/restore/${SRC#/}/c/two-again.img")"

# 3. unchanged files are not read; excludes hold
out=$(agent "$A" backup --json --threads 4 "$SRC" 2>"$T/err")
check_eq "incremental: exit 0" 0 $?
check_eq "incremental: every file unchanged" 1506 "$(json_get "$out" files_unchanged)"
check_eq "incremental: no file data read" 0 "$(json_get "$out" bytes_read)"
check_eq "incremental: the same catalog" "$cat1" "$(snap_catalog "$(json_get "$out" snapshot_id)")"
out=$(agent "$A" backup --json --threads 4 --exclude 'f1*' --exclude big "$SRC" 2>"$T/err")
ls_ex=$(agent "$A" ls "$(json_get "$out" snapshot_id)")
check "excluded: no f1* files" not grep -q '/f1[0-9]*$' <<<"$ls_ex"
check "excluded: nothing under big" not grep -q '/big/' <<<"$ls_ex"
check "excluded: the rest is there" grep -q '/a/f299$' <<<"$ls_ex"

# inject PATH FAULT... -- AGENT-ARGS: a backup under strace with faults on
# PATH (a full path matches calls on an open descriptor of it).
inject() {
	local p=$1; shift
	local args=()
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -qq -o /dev/null -P "$p" "${args[@]}" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json --force-read "$@"
}

# 4. a read error in the middle of the batch
out4=$(inject "$SRC/b/deeper/f250" -e trace=read -e inject=read:error=EIO -- --threads 4 "$SRC" 2>"$T/err4")
check_eq "a read error with 4 threads: exit 3 (partial)" 3 $?
check "it is reported" grep -q "cannot read '/${SRC#/}/b/deeper/f250': Input/output error" "$T/err4"
check_eq "reported once" 1 "$(grep -c "cannot read" "$T/err4")"
check_eq "--json counts it" 1 "$(json_get "$out4" unreadable)"
out1=$(inject "$SRC/b/deeper/f250" -e trace=read -e inject=read:error=EIO -- --threads 1 "$SRC" 2>"$T/err1")
check_eq "the same with 1 thread: exit 3" 3 $?
l4=$(agent "$A" ls "$(json_get "$out4" snapshot_id)")
check "the file is left out" not grep -q 'deeper/f250$' <<<"$l4"
check "its neighbours are there" grep -q 'deeper/f251$' <<<"$l4"
check_eq "the same catalog as with 1 thread" "$(snap_catalog "$(json_get "$out1" snapshot_id)")" "$(snap_catalog "$(json_get "$out4" snapshot_id)")"

# 5. a file that shrinks while it is read (each read of it delayed): a
# warning, the rest recorded
cp "$SRC/big/one.img" "$T/shrink.src"
mkdir -p "$T/shr/x"
cp "$SRC"/a/f0* "$T/shr/x/"
cp "$T/shrink.src" "$T/shr/shrinks"
(
	for i in $(seq 1 1000); do
		if ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -qF -- "-> $T/shr/shrinks"; then
			truncate -s 3M "$T/shr/shrinks"
			exit 0
		fi
		sleep 0.01
	done
	exit 1
) &
shrinker=$!
out=$(inject "$T/shr/shrinks" -e trace=read -e inject=read:delay_enter=300000 -- --threads 4 "$T/shr" 2>"$T/err")
check_eq "a file that shrinks while read: exit 0" 0 $?
wait "$shrinker"
check "it shrank while the agent had it open" test $? = 0
check "with a warning naming it" grep -q "'/${T#/}/shr/shrinks' changed while being read" "$T/err"
check_eq "every file recorded" 101 "$(json_get "$out" files)"

# 6. an upload failure stops the backup: carol's first backup crosses
# her 1 MiB quota, so the server refuses the chunks of her next one (507)
# while the readers are busy; an error, and no snapshot from it
mkdir -p "$T/carol1" "$T/carol2/many"
prand carol1 2000000 > "$T/carol1/data"
prand carol2 30000000 > "$T/carol2/new.img"
for i in $(seq 1 200); do echo "carol $i" > "$T/carol2/many/f$i"; done
carol() { "$AGENT" --server "$URL" --token "$C" --ca "$CA" "$@"; }
carol backup --threads 4 "$T/carol1" >/dev/null 2>"$T/err"
check_eq "carol's first backup completes" 0 $?
carol backup --json --threads 4 "$T/carol2" >/dev/null 2>"$T/err"
rc=$?
check "over quota: the backup fails" test "$rc" != 0 -a "$rc" != 3
check "with the server's reason" grep -q "storage quota exceeded" "$T/err"
check_eq "and no snapshot from it" 1 "$(carol snapshots --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')"
check "the server still serves" test "$(api_status "$A" GET /api/v1/snapshots)" = 200

finish

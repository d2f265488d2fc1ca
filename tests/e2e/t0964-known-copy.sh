#!/usr/bin/env bash
# The bytes of a chunk the server already holds are not copied into an
# upload batch (issue 13): the new chunks of a reader's window of a file
# of 1 MiB or more are asked about (/chunks/missing) before they are
# copied, and only the missing ones are. The backup's JSON counts `bytes_copied`:
# on a first backup it equals bytes_new (everything is missing); on a
# copy of large files the server holds, only the new catalog is copied;
# with a new large file among known ones, exactly the missing bytes are;
# small files (under 1 MiB) are still copied, known or not. Asking for
# every file (DEDUP_ASK_BYTES=1) or none gives the same catalog and the
# same counts as the default, with one reader and with several, with a
# key too, and the snapshots restore the tree.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
MiB=$((1024 * 1024))
SRC=$T/src
mkdir -p "$SRC/big" "$SRC/small"
for f in one:9 two:6 three:4; do
	prand "big-${f%:*}" $((${f#*:} * MiB)) > "$SRC/big/${f%:*}.img"
done
for i in $(seq 1 150); do
	prand "small-$i" $((i * 97)) > "$SRC/small/f$i"
done
SMALL_BYTES=$(cat "$SRC"/small/* | wc -c)
BIG_BYTES=$((19 * MiB))

server_start "$R" || exit 1

# backup OUT ERR ARGS...: a backup with --json; its output in OUT.
backup() {
	local out=$1 err=$2; shift 2
	agent "$A" backup --json "$@" > "$out" 2> "$err"
}
jget() { json_get "$(cat "$1")" "$2"; }
snap_catalog() {
	api "$A" GET "/api/v1/snapshots/$1" | head -n1 |
		python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["catalog"]))'
}
counts() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(" ".join(str(j[k]) for k in ("files", "bytes_total", "chunks_total", "bytes_read")))' "$1"
}

# 1. a first backup: every chunk is missing, every byte copied once
backup "$T/o1" "$T/e1" --threads 2 "$SRC"
check_eq "first backup: exit 0" 0 $?
check "first backup: bytes_copied is counted" test -n "$(jget "$T/o1" bytes_copied 2>/dev/null)"
check_eq "first backup: bytes copied = bytes new" "$(jget "$T/o1" bytes_new)" "$(jget "$T/o1" bytes_copied 2>/dev/null)"
check "first backup: the files' bytes were new" test "$(jget "$T/o1" bytes_new)" -ge $((BIG_BYTES + SMALL_BYTES))

# 2. the large files copied to a second path: nothing of them is copied
# (the first run's catalog is new, so it is copied and sent; the later
# ones read every file again and copy only the known catalog)
cp -a "$SRC/big" "$T/bigcopy"
for th in 1 2 4; do
	backup "$T/o2" "$T/e2" --threads $th --force-read "$T/bigcopy"
	check_eq "copy of the large files, $th thread(s): exit 0" 0 $?
	check_eq "copy of the large files, $th thread(s): all read" $BIG_BYTES "$(jget "$T/o2" bytes_read)"
	check "copy of the large files, $th thread(s): under 64 KiB copied" \
		test "$(jget "$T/o2" bytes_copied 2>/dev/null || echo $MiB)" -lt 65536
	[ $th = 1 ] && check_eq "copy of the large files: only the new catalog is copied" \
		"$(jget "$T/o2" bytes_new)" "$(jget "$T/o2" bytes_copied 2>/dev/null)"
done

# 3. the whole tree copied: the small files are copied, the large not
cp -a "$SRC" "$T/copy"
racy_wait "$T/copy"
backup "$T/o3" "$T/e3" --threads 2 "$T/copy"
check_eq "copy of the tree: exit 0" 0 $?
copied=$(jget "$T/o3" bytes_copied 2>/dev/null || echo -1)
check "copy of the tree: at least the small files copied" test "$copied" -ge "$SMALL_BYTES"
check "copy of the tree: no more than small files + new bytes" \
	test "$copied" -le $((SMALL_BYTES + $(jget "$T/o3" bytes_new)))
cat3=$(snap_catalog "$(jget "$T/o3" snapshot_id)")

# 4. asking for every file, or none, changes nothing but what is copied
DEDUP_ASK_BYTES=1 backup "$T/o4" "$T/e4" --threads 2 --force-read "$T/copy"
check_eq "ask for every file: exit 0" 0 $?
check "ask for every file: only the catalog copied" \
	test "$(jget "$T/o4" bytes_copied 2>/dev/null || echo $MiB)" -lt 65536
check_eq "ask for every file: the same catalog" "$cat3" "$(snap_catalog "$(jget "$T/o4" snapshot_id)")"
check_eq "ask for every file: the same counts" "$(counts "$T/o3")" "$(counts "$T/o4")"
DEDUP_ASK_BYTES=999999999999 backup "$T/o5" "$T/e5" --threads 2 --force-read "$T/copy"
check_eq "ask for none: exit 0" 0 $?
check "ask for none: every file byte copied" test "$(jget "$T/o5" bytes_copied 2>/dev/null || echo 0)" -ge $((BIG_BYTES + SMALL_BYTES))
check_eq "ask for none: the same catalog" "$cat3" "$(snap_catalog "$(jget "$T/o5" snapshot_id)")"
check_eq "ask for none: the same counts" "$(counts "$T/o3")" "$(counts "$T/o5")"

# 5. a new large file among known ones: exactly the missing bytes copied
for th in 1 3; do
	prand "big-new-$th" $((5 * MiB)) > "$T/copy/big/new-$th.img"
	backup "$T/o6" "$T/e6" --threads $th --force-read "$T/copy/big"
	check_eq "new file among known, $th thread(s): exit 0" 0 $?
	check "new file among known, $th thread(s): 5 MiB new" test "$(jget "$T/o6" bytes_new)" -ge $((5 * MiB))
	check_eq "new file among known, $th thread(s): bytes copied = bytes new" \
		"$(jget "$T/o6" bytes_new)" "$(jget "$T/o6" bytes_copied 2>/dev/null)"
done
ID6=$(jget "$T/o6" snapshot_id)
agent "$A" restore "$ID6" --target "$T/r6" 2>"$T/r6.err"
check_eq "new file among known: restore exits 0" 0 $?
check "new file among known: the restored tree is the tree" \
	diff <(tree_manifest "$T/copy/big") <(tree_manifest "$T/r6/${T#/}/copy/big")
check "no warnings" test ! -s "$T/e6" -a ! -s "$T/e3" -a ! -s "$T/e4"

# 6. with a key: sealed chunks are asked about as sealed
export DEDUP_PASSPHRASE_FILE=$T/pass
echo "correct horse battery staple" > "$T/pass"
unset DEDUP_PASSPHRASE DEDUP_NEW_PASSPHRASE DEDUP_KEY_FILE
"$AGENT" --config /dev/null key init --key-file "$T/k.key" >/dev/null 2>&1
ebackup() {
	local out=$1; shift
	"$AGENT" --config /dev/null --server "$URL" --token "$A" --ca "$CA" \
		--key-file "$T/k.key" backup --json "$@" > "$out" 2>"$T/ee"
}
ebackup "$T/o7" --threads 2 "$SRC/big"
check_eq "with a key, first: exit 0" 0 $?
check_eq "with a key, first: bytes copied = bytes new" "$(jget "$T/o7" bytes_new)" "$(jget "$T/o7" bytes_copied 2>/dev/null)"
ebackup "$T/o8" --threads 2 "$T/bigcopy"
check_eq "with a key, the copy: exit 0" 0 $?
check "with a key, the copy: under 64 KiB copied" \
	test "$(jget "$T/o8" bytes_copied 2>/dev/null || echo $MiB)" -lt 65536
check_eq "with a key, the copy: only the new catalog sent" "$(jget "$T/o8" bytes_new)" "$(jget "$T/o8" bytes_copied 2>/dev/null)"
"$AGENT" --config /dev/null --server "$URL" --token "$A" --ca "$CA" \
	--key-file "$T/k.key" restore "$(jget "$T/o8" snapshot_id)" --target "$T/r8" 2>"$T/r8.err"
check_eq "with a key: restore exits 0" 0 $?
check "with a key: the restored copy is the copy" \
	diff <(tree_manifest "$T/bigcopy") <(tree_manifest "$T/r8/${T#/}/bigcopy")

finish

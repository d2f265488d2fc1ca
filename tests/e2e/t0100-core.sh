#!/usr/bin/env bash
# Core end to end: back up a mixed tree, restore it bit-identical, back it up
# again (almost nothing sent), cross-client dedup and isolation, and a
# SIGKILL of the server after an acknowledged backup.
. "$(dirname "$0")/lib.sh"

SRC=$T/data/tree
make_mixed_tree "$SRC"
repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
B=$(token_add "$T/repo" bob)
ADM=$(token_add "$T/repo" ops --admin)
check "token is printed alone" test "$(printf '%s' "$A" | wc -l)" = 0
server_start "$T/repo" || exit 1

# 1. back up, restore, compare
out=$(agent "$A" backup --json "$SRC")
check "first backup exits 0" test $? = 0
ID1=$(json_get "$out" snapshot_id)
check "snapshot id is 64 hex digits" grep -qE '^[0-9a-f]{64}$' <<<"$ID1"
files=$(json_get "$out" files)
small=${DD_TEST_SMALL_FILES:-10000}
check "file count covers every regular file" test "$files" -ge "$((small + 9))"
sent1=$(json_get "$out" bytes_sent)
total1=$(json_get "$out" bytes_total)
check "bytes_total counts the big file" test "$total1" -ge $(( ${DD_TEST_BIG_MB:-200} * 1048576 ))
check "first backup sent data" test "$sent1" -gt 0

agent "$A" restore "$ID1" --target "$T/restore1" 2>"$T/restore1.err"
check "restore exits 0" test $? = 0
R1=$T/restore1/${SRC#/}
check "diff -r shows nothing" diff -r --no-dereference "$SRC" "$R1"
tree_manifest "$SRC" > "$T/m.src"
tree_manifest "$R1" > "$T/m.r1"
check "modes, mtimes, sizes and symlink targets match" cmp -s "$T/m.src" "$T/m.r1"
cmp -s "$T/m.src" "$T/m.r1" || diff "$T/m.src" "$T/m.r1" | head -n 10

# 2. the same tree again: below 1% of the first run's bytes
out=$(agent "$A" backup --json "$SRC")
check "second backup exits 0" test $? = 0
ID2=$(json_get "$out" snapshot_id)
sent2=$(json_get "$out" bytes_sent)
check "second backup sends < 1% ($sent2 of $sent1 bytes)" test "$((sent2 * 100))" -lt "$sent1"
check "a new snapshot id" test "$ID2" != "$ID1"

# restore by 'latest' and by a unique prefix
agent "$A" restore latest --target "$T/restore2" 2>/dev/null
check "restore latest" diff -r --no-dereference "$SRC" "$T/restore2/${SRC#/}"

# 3. a second client with a copy of the tree: cross-client dedup
cp -a "$SRC" "$T/data/copy"
out=$(agent "$B" backup --json "$T/data/copy")
check "second client backup exits 0" test $? = 0
sentb=$(json_get "$out" bytes_sent)
IDB=$(json_get "$out" snapshot_id)
check "second client sends < 1% ($sentb of $sent1 bytes)" test "$((sentb * 100))" -lt "$sent1"
list=$(agent "$B" snapshots --json)
check "bob lists his snapshot" grep -q "$IDB" <<<"$list"
check "bob does not see alice's snapshots" not grep -q "$ID1" <<<"$list"
check "bob cannot restore alice's snapshot" not agent "$B" restore "$ID1" --target "$T/stolen"
check "nothing was written for the refused restore" test ! -e "$T/stolen/${SRC#/}"
check_eq "alice's manifest is 404 for bob" 404 "$(api_status "$B" GET "/api/v1/snapshots/$ID1")"
list=$(agent "$A" snapshots --json)
check "alice sees her first snapshot" grep -q "$ID1" <<<"$list"
check "alice sees her second snapshot" grep -q "$ID2" <<<"$list"
check "alice does not see bob's" not grep -q "$IDB" <<<"$list"

# the repository's figures are an admin's (a client gets its own)
stats=$(agent "$ADM" stats --json)
check_eq "stats count three snapshots" 3 "$(json_get "$stats" snapshots)"
logical=$(json_get "$stats" bytes_logical)
unique=$(json_get "$stats" bytes_unique)
check "bytes_logical is three trees" test "$logical" -ge "$((3 * total1))"
check "bytes_unique is about one tree" test "$unique" -lt "$((total1 + total1 / 10))"
check "dedup ratio above 2.5" python3 -c "import sys; sys.exit(0 if float('$(json_get "$stats" dedup_ratio)') > 2.5 else 1)"

# 5. SIGKILL after an acknowledged backup, restart, restore
echo "written just before the kill" > "$SRC/src/late.txt"
out=$(agent "$A" backup --json "$SRC")
ID3=$(json_get "$out" snapshot_id)
check "backup before the kill acknowledged" grep -qE '^[0-9a-f]{64}$' <<<"$ID3"
server_stop KILL
server_start "$T/repo" || exit 1
agent "$A" restore "$ID3" --target "$T/restore3" 2>/dev/null
check "after SIGKILL and restart the snapshot restores" diff -r --no-dereference "$SRC" "$T/restore3/${SRC#/}"
tree_manifest "$T/restore3/${SRC#/}" > "$T/m.r3"
tree_manifest "$SRC" > "$T/m.src3"
check "and matches bit for bit with metadata" cmp -s "$T/m.src3" "$T/m.r3"

server_stop TERM
check_eq "server exits 0 on SIGTERM" 0 "$SERVER_RC"
finish

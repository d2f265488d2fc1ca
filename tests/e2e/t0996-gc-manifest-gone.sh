#!/usr/bin/env bash
# A collection never takes a snapshot it cannot read for one with nothing
# to mark: when the manifest file of a snapshot the server still lists is
# gone (deleted by hand, lost by the file system), `gc` stops with "nothing
# was deleted" and frees nothing; on the code before, it took the snapshot
# for removed meanwhile and swept every chunk only it used. With the file
# back, gc runs and both snapshots restore.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
ADM=$(token_add "$R" ops --admin)
mkdir -p "$T/one" "$T/two"
prand gone-one 2000000 > "$T/one/a.bin"
prand gone-two 2000000 > "$T/two/b.bin"
server_start "$R" || exit 1
ID1=$(json_get "$(agent "$A" backup --json "$T/one")" snapshot_id)
ID2=$(json_get "$(agent "$A" backup --json "$T/two")" snapshot_id)
check "two snapshots" test -n "$ID1" -a -n "$ID2"
packs() { du -sb "$R/packs" | cut -f1; }
B0=$(packs)

mv "$R/snapshots/$ID2.json" "$T/saved.json"
agent "$ADM" gc --json > "$T/gc1.json" 2>"$T/gc1.err"
check "gc with a listed snapshot's manifest gone fails" test $? != 0
check "naming it, and that nothing was deleted" \
	grep -q "snapshot $ID2.*nothing was deleted" "$T/gc1.err" "$T/server.log"
# (the open pack may have been sealed: a trailer more, nothing less)
check "no pack byte was freed" test "$(packs)" -ge "$B0"

mv "$T/saved.json" "$R/snapshots/$ID2.json"
agent "$ADM" gc --json > "$T/gc2.json" 2>"$T/gc2.err"
check "with the file back, gc runs" test $? = 0
for id in "$ID1" "$ID2"; do
	rm -rf "$T/r"
	agent "$A" restore "$id" --target "$T/r" >/dev/null 2>&1
	check "snapshot ${id:0:8} restores" test $? = 0
done
check "the second one whole" cmp -s "$T/two/b.bin" "$T/r/${T#/}/two/b.bin"
server_stop TERM
"$SERVER" check --repo "$R" --read-data >/dev/null 2>&1
check_eq "the repository checks clean" 0 "$?"
finish

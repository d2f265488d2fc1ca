#!/usr/bin/env bash
# `dedup-server gc` reads server.conf (or --config FILE) as a running
# server does (docs/OPERATIONS.md, "Garbage collection"): the repository
# when --repo is not given and gc_repack_threshold (also
# gc_filter_max_mib, pack_cache_drop, ceph_conf, ceph_user); --threshold
# wins over the file; a bad file is an error naming it. A pack a quarter
# dead is rewritten under a threshold of 10 and kept under one of 90.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
ADM=$(token_add "$R" admin --admin)
server_start "$R" || exit 1
mkdir -p "$T/src"
prand keep 3000000 > "$T/src/keep.bin"
prand drop 1000000 > "$T/src/drop.bin"
S1=$(json_get "$(agent "$A" backup --json "$T/src")" snapshot_id)
check "the first backup (keep.bin, drop.bin)" test -n "$S1"
rm "$T/src/drop.bin"
check "the second (keep.bin)" agent "$A" backup --json "$T/src"
check "the first is forgotten" agent "$ADM" forget "$S1"
server_stop TERM

# rewritten COUNT-LINE: the "would be rewritten" count of a dry run's report
rewritten() { sed -n 's/^gc: [0-9]* pack(s) would be deleted, \([0-9]*\) would be rewritten.*/\1/p' "$1"; }
printf 'repo = %s\ngc_repack_threshold = 90\n' "$R" > "$T/c90.conf"
printf 'repo = %s\ngc_repack_threshold = 10\n' "$R" > "$T/c10.conf"
"$SERVER" gc --config "$T/c90.conf" --dry-run > "$T/o90" 2>&1
check "gc takes the repository from the file" test $? = 0
check_eq "a threshold of 90 from the file rewrites no pack" 0 "$(rewritten "$T/o90")"
"$SERVER" gc --config "$T/c10.conf" --repo "$R" --dry-run > "$T/o10" 2>&1
check_eq "one of 10 rewrites the quarter-dead pack" 1 "$(rewritten "$T/o10")"
"$SERVER" gc --config "$T/c10.conf" --threshold 90 --dry-run > "$T/o10t" 2>&1
check_eq "--threshold 90 wins over the file's 10" 0 "$(rewritten "$T/o10t")"
"$SERVER" gc --config /dev/null --repo "$R" --dry-run > "$T/odef" 2>&1
check_eq "no file: the default, 30, keeps it (a quarter dead)" 0 "$(rewritten "$T/odef")"
printf 'gc_repack_threshold = 500\n' > "$T/bad.conf"
"$SERVER" gc --config "$T/bad.conf" --repo "$R" > "$T/obad" 2>&1
check "a bad value fails" test $? != 0
check "naming the file" grep -q "bad.conf" "$T/obad"
"$SERVER" gc --config "$T/none.conf" --repo "$R" > "$T/onone" 2>&1
check "a --config file that does not exist fails" test $? != 0
"$SERVER" gc --config /dev/null > "$T/onorepo" 2>&1
check_eq "no repository anywhere is a usage error" 2 $?

"$SERVER" gc --config "$T/c10.conf" > "$T/orun" 2>&1
check "the collection with the file's threshold runs" test $? = 0
check "and rewrote the pack" grep -q "pack(s) deleted, 1 rewritten" "$T/orun"
"$SERVER" check --repo "$R" --read-data --quiet
check "check --read-data is clean" test $? = 0
server_start "$R" || exit 1
S2=$(agent "$A" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
agent "$A" restore "$S2" --target "$T/r" 2>/dev/null
check "the second snapshot restores" cmp -s "$T/src/keep.bin" "$T/r/$T/src/keep.bin"
finish

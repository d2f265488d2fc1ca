#!/usr/bin/env bash
# Garbage collection: forgetting snapshots then gc frees pack bytes; check
# --read-data stays clean and every remaining snapshot restores
# bit-identical; gc running while several agents back up overlapping data
# loses nothing; a kill at any point of a repack (the test hook
# DEDUP_TEST_GC_CRASH, and SIGKILL of the server during an online gc)
# loses nothing.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
# One token per concurrent agent: an agent allows one backup at a time
# per server and token.
# Agents backing up at once in the concurrency part (issue: 8).
NW=${DD_GC_AGENTS:-8}
W=()
for i in $(seq 1 "$NW"); do W[$i]=$(token_add "$R" "w$i"); done
ADM=$(token_add "$R" boss --admin)
SRC=$T/src
mkdir -p "$SRC" "$T/ver"
ALL_IDS=()
# version N: files that change between versions plus a stable one.
version() {
	prand "stable" 1500000 > "$SRC/stable"
	prand "v$1" 1200000 > "$SRC/changing"
	echo "version $1" > "$SRC/small"
}
keep_copy() { # ID DIR: what restoring ID must give back
	mkdir -p "$T/ver/$1$(dirname "$2")"
	cp -a "$2" "$T/ver/$1$2"
}
backup_v() { # N TOKEN
	version "$1"
	local id
	id=$(json_get "$(agent "$2" backup --json "$SRC")" snapshot_id) || return 1
	keep_copy "$id" "$SRC"
	ALL_IDS+=("$id")
}
live_ids() { ls "$R/snapshots" | sed -n 's/\.json$//p'; }
# restore_all: every remaining snapshot restores equal to its copy.
restore_all() {
	local id bad=0
	for id in $(live_ids); do
		rm -rf "$T/r"
		agent "$ADM" restore "$id" --target "$T/r" >/dev/null 2>>"$T/restore.err" || { bad=1; continue; }
		diff -r "$T/ver/$id" "$T/r" >/dev/null || bad=1
	done
	return $bad
}
packs_bytes() { du -sb "$R/packs" | cut -f1; }

server_start "$R" || exit 1
for v in 1 2 3 4 5 6; do backup_v $v "$A" || not_ok "backup $v"; done
B0=$(packs_bytes)
check_eq "a client cannot gc" 403 "$(api_status "$A" POST /api/v1/gc)"
agent "$ADM" gc --dry-run --json > "$T/dry.json"
check_eq "gc --dry-run with nothing forgotten frees nothing" 0 "$(json_get "$(cat "$T/dry.json")" chunks_removed)"
agent "$ADM" forget "${ALL_IDS[0]}" "${ALL_IDS[1]}" "${ALL_IDS[2]}" "${ALL_IDS[3]}" >/dev/null
agent "$ADM" gc --dry-run --json > "$T/dry.json"
check "gc --dry-run predicts removals" test "$(json_get "$(cat "$T/dry.json")" chunks_removed)" -gt 0
check_eq "and changes nothing" "$B0" "$(packs_bytes)"
agent "$ADM" gc --json > "$T/gc.json"
check_eq "gc exits 0" 0 $?
B1=$(packs_bytes)
check "gc frees pack bytes ($B0 -> $B1)" test "$B1" -lt $((B0 - 3 * 1000000))
check "gc reports the bytes freed" test "$(json_get "$(cat "$T/gc.json")" bytes_freed)" -gt 3000000
check "remaining snapshots restore bit-identical" restore_all
backup_v 7 "$A"
check_eq "a backup after gc works" 0 $?
server_stop TERM
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "check --read-data is clean after gc" 0 $?
"$SERVER" gc --repo "$R" >"$T/out" 2>&1
check_eq "offline gc exits 0" 0 $?
check "and reports" grep -q "bytes freed" "$T/out"
server_start "$R" || exit 1
"$SERVER" gc --repo "$R" >/dev/null 2>"$T/err"
check_eq "offline gc refuses while the server runs" 1 $?
check "and says so" grep -q "in use by a running dedup-server" "$T/err"

# Concurrency: $NW agents back up overlapping data in loops while an admin
# forgets old snapshots and collects, over and over.
for i in $(seq 1 "$NW"); do
	mkdir -p "$T/c$i"
done
worker() { # I: 4 backups of a tree sharing data with the others
	local i=$1 k id
	for k in 1 2 3 4; do
		prand "shared$((k % 2))" 800000 > "$T/c$i/shared"
		prand "own$i.$k" 300000 > "$T/c$i/own"
		id=$(json_get "$(agent "${W[$i]}" backup --json "$T/c$i" 2>>"$T/work$i.err")" snapshot_id) || { echo fail >> "$T/work$i.err"; continue; }
		keep_copy "$id" "$T/c$i"
		echo "$id $T/c$i $i" >> "$T/made"
	done
}
: > "$T/made"
PIDS=()
for i in $(seq 1 "$NW"); do worker $i & PIDS+=($!); done
any_running() {
	local p
	for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
GCS=0
PRUNES=0
while any_running; do
	# Forget the oldest concurrent snapshot still there, keeping 4.
	OLD=$(head -n -4 "$T/made" | cut -d' ' -f1 | while read -r x; do
		[ -e "$R/snapshots/$x.json" ] && { echo "$x"; break; }; done)
	[ -n "$OLD" ] && agent "$ADM" forget "$OLD" >/dev/null 2>&1
	# And a retention prune of one client's snapshots by a keep rule.
	agent "$ADM" forget --client "w$((GCS % NW + 1))" --keep-last 2 >/dev/null 2>>"$T/prune.err" &&
		PRUNES=$((PRUNES + 1))
	agent "$ADM" gc >/dev/null 2>>"$T/gc.err" && GCS=$((GCS + 1))
	sleep 0.2
done
wait "${PIDS[@]}"
check "several collections ran during the backups ($GCS)" test "$GCS" -ge 2
check "several keep-rule prunes ran during the backups ($PRUNES)" test "$PRUNES" -ge 2
check_eq "no backup failed" "" "$(cat "$T"/work*.err 2>/dev/null | grep -v '^warning' | grep -v '^note: ' )"
RETRIED=$(cat "$T"/work*.err 2>/dev/null | grep -c 'backing up again')
echo "# backups retried after a gc removed a chunk they relied on: $RETRIED"
check_eq "$((NW * 4)) snapshots were made" "$((NW * 4))" "$(wc -l < "$T/made")"
# Restore what remains of the concurrent snapshots.
check "every remaining snapshot restores bit-identical" restore_all
server_stop TERM
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "check --read-data is clean after concurrent gc" 0 $?

# Kills during a repack: the offline gc dies at each point; nothing is lost.
for point in swept repack-copied repack-indexed repack-deleted; do
	server_start "$R" || exit 1
	backup_v "k$point" "$A" >/dev/null
	backup_v "k2$point" "$A" >/dev/null
	agent "$ADM" forget "${ALL_IDS[-2]}" >/dev/null
	server_stop TERM
	DEDUP_TEST_GC_CRASH=$point "$SERVER" gc --repo "$R" >/dev/null 2>"$T/err"
	check "gc killed at $point" grep -q "test crash at '$point'" "$T/err"
	"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
	check_eq "check --read-data clean after a kill at $point" 0 $?
	server_start "$R" || exit 1
	check "all snapshots restore after a kill at $point" restore_all
	server_stop TERM
	"$SERVER" gc --repo "$R" >/dev/null 2>&1
	check_eq "the next gc completes after $point" 0 $?
done

# SIGKILL of the server while an online gc runs, at a few moments.
for delay in 0.05 0.15 0.3; do
	server_start "$R" || exit 1
	backup_v "s$delay" "$A" >/dev/null
	agent "$ADM" forget "${ALL_IDS[-2]}" >/dev/null
	# No retries: the server stays down until this gc has given up, so
	# retrying would only wait (9.4 s) before the check below.
	DEDUP_AGENT_RETRIES=0 agent "$ADM" gc >/dev/null 2>&1 &
	GCP=$!
	sleep "$delay"
	server_stop KILL
	wait $GCP 2>/dev/null
	"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
	check_eq "check clean after SIGKILL during gc (+${delay}s)" 0 $?
	server_start "$R" || exit 1
	check "all snapshots restore after SIGKILL (+${delay}s)" restore_all
	server_stop TERM
done
"$SERVER" gc --repo "$R" >/dev/null 2>&1
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "a final gc leaves the repository clean" 0 $?
finish

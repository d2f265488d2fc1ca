#!/usr/bin/env bash
# Replication asked of a serving destination (`dedup-server sync --repo
# DIR`, docs/REPLICATION.md "Asking a serving server"): each ask is a
# request file of its own, answered in place. Two asks at once both get
# an answer; an ask whose run a kill interrupted is run for after the
# restart and answered then; a run that fills the destination's disk
# still answers its asker (exit 1, "No space left"); an answer nobody
# read is removed after an hour. And a snapshot forgotten on the source
# after the run listed it is "gone", not failed (the source's list is
# read again at the end), while one the source still lists but cannot
# serve stays failed.
. "$(dirname "$0")/lib.sh"

S=$T/source
D=$T/dest
repo_init "$S"
repo_init "$D"
F=$(token_add "$S" frank)
SADM=$(token_add "$S" boss --admin)
DADM=$(token_add "$D" root --admin)
printf '%s\n' "$SADM" > "$T/sync.token"
chmod 600 "$T/sync.token"
mkdir -p "$T/data/f"

server_start "$S" || exit 1
SURL=$URL SCA=$CA SPID=$SERVER_PID
backup() { # DIR: backs up as frank on the source, prints the id
	json_get "$(URL=$SURL CA=$SCA agent "$F" backup --json "$1")" snapshot_id
}
have_snap() { [ -f "$D/snapshots/$1.json" ]; }
asks_left() { find "$D/sync.requests" -type f 2>/dev/null | wc -l; }
# dest_start [ARGS]: the destination, syncing frank's snapshots when asked.
dest_start() {
	server_start "$D" --set sync_from="$SURL" \
		--set sync_token_file="$T/sync.token" --set sync_ca="$SCA" \
		--set sync_interval=0 "$@" || exit 1
	DPID=$SERVER_PID
}
dest_stop() { SERVER_PID=$DPID; server_stop TERM; }
field() { json_get "$(cat "$1")" "$2"; }

# ---- two asks at the same moment: both answered ----
prand f1 700000 > "$T/data/f/f1.bin"
I1=$(backup "$T/data/f")
dest_start
"$SERVER" sync --repo "$D" --json --wait 30 >"$T/ask1.out" 2>"$T/ask1.err" &
P1=$!
"$SERVER" sync --repo "$D" --json --wait 30 >"$T/ask2.out" 2>"$T/ask2.err" &
P2=$!
wait "$P1"; R1=$?
wait "$P2"; R2=$?
check_eq "two asks at once: the first exits 0" 0 "$R1"
check_eq "... the second exits 0" 0 "$R2"
check_eq "... each answered with the run's report" "ok ok" "$(field "$T/ask1.out" result) $(field "$T/ask2.out" result)"
check "... each its own request" test "$(field "$T/ask1.out" request)" != "$(field "$T/ask2.out" request)"
check "... the snapshot is here" have_snap "$I1"
check_eq "... both requests removed by their askers" 0 "$(asks_left)"
dest_stop

# ---- a kill during the run asked for: run again after the restart ----
prand f2 3000000 > "$T/data/f/f2.bin"
I2=$(backup "$T/data/f")
# the test hooks kill the serving process once one fetch of 4 ids is
# stored, in the middle of the copy
DEDUP_TEST_SYNC_BATCH=4 DEDUP_TEST_SYNC_KILL_AFTER=1 dest_start
KILLED=$DPID
"$SERVER" sync --repo "$D" --json --wait 60 >"$T/ask3.out" 2>"$T/ask3.err" &
P3=$!
for _ in $(seq 1 200); do kill -0 "$KILLED" 2>/dev/null || break; sleep 0.05; done
wait "$KILLED" 2>/dev/null
check_eq "the destination was killed mid-run (SIGKILL)" 137 $?
check "... before the snapshot was complete" not have_snap "$I2"
check "... the asker still waits" kill -0 "$P3"
dest_start
wait "$P3"; R3=$?
check_eq "after the restart the request is run for: exit 0" 0 "$R3"
check_eq "... 1 snapshot copied" 1 "$(field "$T/ask3.out" snapshots_copied)"
check "... it is here" have_snap "$I2"
check_eq "... no request left" 0 "$(asks_left)"

# ---- an answer nobody reads is removed after an hour ----
mkdir -p "$D/sync.requests"
OLD=0123456789abcdef0123456789abcdef
printf '%-8191s\n' '{"result":"ok","exit_code":0}' > "$D/sync.requests/$OLD"
touch -d '2 hours ago' "$D/sync.requests/$OLD"
for _ in $(seq 1 60); do [ -e "$D/sync.requests/$OLD" ] || break; sleep 0.1; done
check "an answered request older than an hour is removed by the server" test ! -e "$D/sync.requests/$OLD"
dest_stop

# ---- a source's error text of any bytes: the ask is still answered ----
# Its 404 reason holds multi-byte characters; the run's first error, cut
# to its size, could end in half of one, and then neither sync.json nor
# the answer could be written: the request was run for again and again.
cat > "$T/utf8.py" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from tlsproxy import serve
portfile, upstream, upca, cert, key = sys.argv[2:7]
msg = "x" + "\u20ac" * 300 + "\udcff"
def handler(method, path, body, headers, forward):
    p = path.split("?")[0]
    if method == "GET" and "/snapshots/" in p:
        return 404, "application/json", json.dumps({"error": msg}).encode("utf-8", "surrogateescape")
    return forward(method, path, body, headers)
serve(portfile, upstream, upca, cert, key, handler)
PY
prand f9 200000 > "$T/data/f/f9.bin"
I9=$(backup "$T/data/f")
python3 "$T/utf8.py" "$(dirname "$0")" "$T/utf8.port" "$SURL" "$SCA" "$S/tls/cert.pem" "$S/tls/key.pem" 2>>"$T/utf8.log" &
UPID=$!
for _ in $(seq 1 200); do [ -s "$T/utf8.port" ] && break; sleep 0.05; done
server_start "$D" --set sync_from="https://127.0.0.1:$(cat "$T/utf8.port")" \
	--set sync_token_file="$T/sync.token" --set sync_ca="$SCA" --set sync_interval=0 || exit 1
DPID=$SERVER_PID
"$SERVER" sync --repo "$D" --json --wait 30 >"$T/ask6.out" 2>"$T/ask6.err"
check_eq "a source whose error holds any bytes: answered, exit 1" 1 $?
check_eq "... result partial" partial "$(field "$T/ask6.out" result)"
check "... sync.json says so too" grep -q '"result":"partial"' "$D/sync.json"
check_eq "... no request left" 0 "$(asks_left)"
sleep 1.5   # a poll or two: a request left pending would start a run
check_eq "... and one run, not one after another" 1 "$(grep -c "sync from https://127.0.0.1:$(cat "$T/utf8.port")" "$T/server.log")"
dest_stop
kill "$UPID" 2>/dev/null
wait "$UPID" 2>/dev/null

# ---- a full disk: the run fails, and still answers ----
# The destination's file system is filled up to the room of one request;
# the ask takes that room; the run then cannot store a chunk nor write
# sync.json, and its answer goes over the request's own bytes.
MNT=$T/small
mkdir -p "$MNT"
if mount -t tmpfs -o size=16m dedup-test "$MNT" 2>"$T/mount.err"; then
	cp -a "$D" "$MNT/dest"
	mkdir -p "$MNT/dest/sync.requests"
	prand f3 2000000 > "$T/data/f/f3.bin"
	I3=$(backup "$T/data/f")
	server_start "$MNT/dest" --set sync_from="$SURL" \
		--set sync_token_file="$T/sync.token" --set sync_ca="$SCA" \
		--set sync_interval=0 || exit 1
	dd if=/dev/zero of="$MNT/filler" bs=4096 >/dev/null 2>&1
	truncate -s -8192 "$MNT/filler"
	check_eq "the small disk has 8 KiB left" 8192 "$(df -B1 --output=avail "$MNT" | tail -1 | tr -d ' ')"
	"$SERVER" sync --repo "$MNT/dest" --json --wait 30 >"$T/ask4.out" 2>"$T/ask4.err"
	R4=$?
	check_eq "a full disk: the asker gets its answer, exit 1" 1 "$R4"
	check_eq "... result failed" failed "$(field "$T/ask4.out" result)"
	check "... naming the full disk" grep -q "No space left" "$T/ask4.out"
	check "... not a timeout" not grep -q "did not answer" "$T/ask4.err"
	check "... sync.json could not say it" not grep -qs "No space left" "$MNT/dest/sync.json"
	check "... the snapshot is not there" not test -f "$MNT/dest/snapshots/$I3.json"
	check_eq "the server still serves" 200 "$(api_status "" GET /api/v1/health)"
	rm -f "$MNT/filler"
	"$SERVER" sync --repo "$MNT/dest" --json --wait 30 >"$T/ask5.out" 2>"$T/ask5.err"
	check_eq "with room again, asked again: exit 0" 0 $?
	check "... the snapshot is there" test -f "$MNT/dest/snapshots/$I3.json"
	server_stop TERM
	"$SERVER" check --repo "$MNT/dest" >"$T/check4.out" 2>&1
	check_eq "... and the repository checks clean" 0 $?
	rm -rf "$MNT/dest"
	umount "$MNT" 2>/dev/null || umount -l "$MNT"
else
	ok "skipped the full disk: cannot mount a tmpfs here ($(head -c 200 "$T/mount.err"))"
fi

# ---- a snapshot forgotten on the source mid-run is gone, not failed ----
# A proxy in front of the source forgets JO1 (a real DELETE with the
# admin token) the moment its manifest is asked for; JO2 it lists but
# answers 404 for without forgetting it, as a failing source would.
J=$(token_add "$S" jo)
mkdir -p "$T/data/jo"
prand jo1 300000 > "$T/data/jo/one.bin"
JO1=$(json_get "$(URL=$SURL CA=$SCA agent "$J" backup --json "$T/data/jo")" snapshot_id)
prand jo2 300000 > "$T/data/jo/two.bin"
JO2=$(json_get "$(URL=$SURL CA=$SCA agent "$J" backup --json "$T/data/jo")" snapshot_id)
prand jo3 300000 > "$T/data/jo/three.bin"
JO3=$(json_get "$(URL=$SURL CA=$SCA agent "$J" backup --json "$T/data/jo")" snapshot_id)
cat > "$T/forget.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from tlsproxy import serve
portfile, upstream, upca, cert, key, forget, fail, admin = sys.argv[2:10]
def handler(method, path, body, headers, forward):
    p = path.split("?")[0]
    if method == "GET" and p.endswith("/snapshots/" + forget):
        forward("DELETE", "/api/v1/snapshots/" + forget, None,
                {"Authorization": "Bearer " + admin})
    if method == "GET" and p.endswith("/snapshots/" + fail):
        return 404, "application/json", b'{"error":"not found"}'
    return forward(method, path, body, headers)
serve(portfile, upstream, upca, cert, key, handler)
PY
python3 "$T/forget.py" "$(dirname "$0")" "$T/forget.port" "$SURL" "$SCA" \
	"$S/tls/cert.pem" "$S/tls/key.pem" "$JO1" "$JO2" "$SADM" 2>>"$T/forget.log" &
FPID=$!
for _ in $(seq 1 200); do [ -s "$T/forget.port" ] && break; sleep 0.05; done
"$SERVER" sync --repo "$D" --from "https://127.0.0.1:$(cat "$T/forget.port")" \
	--token-file "$T/sync.token" --ca "$SCA" --json --client jo >"$T/sync.out" 2>"$T/sync.err"
check_eq "one forgotten mid-run, one the source cannot serve: exit 1" 1 $?
check_eq "... the forgotten one counts as gone" 1 "$(field "$T/sync.out" snapshots_gone)"
check_eq "... the one still listed counts as failed" 1 "$(field "$T/sync.out" snapshots_failed)"
check_eq "... the third is copied" 1 "$(field "$T/sync.out" snapshots_copied)"
check "... and is here" have_snap "$JO3"
check "... the forgotten one is not" not have_snap "$JO1"
check "... the error names the one that failed" grep -q "$JO2" "$T/sync.err"
check "... the log says which was forgotten" grep -q "snapshot $JO1 was forgotten on the source" "$T/sync.err"
check_eq "... it is gone from the source" 404 "$(URL=$SURL CA=$SCA api_status "$SADM" GET "/api/v1/snapshots/$JO1")"
check "... the lag counts from the failed one only" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["snapshots_gone"] == 1 and j["oldest_pending_unix"] is not None, j' "$D/sync.json"
kill "$FPID" 2>/dev/null
wait "$FPID" 2>/dev/null
server_start "$D" || exit 1
DPID=$SERVER_PID
api "$DADM" GET /metrics | sed '$d' > "$T/metrics.txt"
check "... /metrics: dedup_sync_last_snapshots_gone 1" grep -qx "dedup_sync_last_snapshots_gone 1" "$T/metrics.txt"
check "... /metrics: dedup_sync_last_snapshots_failed 1" grep -qx "dedup_sync_last_snapshots_failed 1" "$T/metrics.txt"
dest_stop
"$SERVER" sync --repo "$D" --from "$SURL" --token-file "$T/sync.token" --ca "$SCA" \
	--json --client jo >"$T/sync.out" 2>"$T/sync.err"
check_eq "the next run, straight from the source: exit 0" 0 $?
check_eq "... copies the one that failed" 1 "$(field "$T/sync.out" snapshots_copied)"
check_eq "... nothing gone, nothing failed" "0 0" "$(field "$T/sync.out" snapshots_gone) $(field "$T/sync.out" snapshots_failed)"
check "... it is here" have_snap "$JO2"
SERVER_PID=$SPID; server_stop TERM
"$SERVER" check --repo "$D" --read-data >"$T/check.out" 2>&1
check_eq "check --read-data on the destination is clean" 0 $?
finish

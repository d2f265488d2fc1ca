#!/usr/bin/env bash
# Replication (docs/REPLICATION.md): `dedup-server sync` copies snapshots
# from a real source server into a second repository, fetching only the
# chunks it lacks: a full sync restores identical from the destination, a
# second sync copies nothing, an incremental one only the new chunks;
# --client and --newer-than select; a sync killed with SIGKILL mid-transfer
# leaves no snapshot and the next run completes it without fetching again
# what was stored; a damaged chunk on the source is refused with its id
# named, its snapshot is not created, the others are, and the destination
# checks clean; wrong token / not a dedup server / TLS mismatch give clear
# errors and their exit codes; a serving destination syncs by itself
# (sync_from), shown by GET /api/v1/sync and /metrics; and snapshots of
# new client names stop at --max-clients (sync_max_clients).
. "$(dirname "$0")/lib.sh"

S=$T/source
D=$T/dest
repo_init "$S"
repo_init "$D"
A=$(token_add "$S" alice)
B=$(token_add "$S" bob)
C=$(token_add "$S" carol)
DV=$(token_add "$S" dave)
E=$(token_add "$S" erin)
F=$(token_add "$S" frank)
SADM=$(token_add "$S" boss --admin)
DADM=$(token_add "$D" root --admin)
printf '%s\n' "$SADM" > "$T/sync.token"
chmod 600 "$T/sync.token"

# Trees, and a copy of each version as it was backed up.
mkdir -p "$T/keep" "$T/data"
tree_a() { mkdir -p "$T/data/a"; prand a1 2500000 > "$T/data/a/one.bin"; seq 1 150000 > "$T/data/a/seq.txt"; echo "v$1" > "$T/data/a/version"; [ "$1" -ge 2 ] && prand "a$1" 900000 > "$T/data/a/new$1.bin"; return 0; }
tree_b() { mkdir -p "$T/data/b"; prand b1 1800000 > "$T/data/b/b.bin"; cp "$T/data/a/seq.txt" "$T/data/b/shared.txt"; echo "b$1" > "$T/data/b/version"; [ "$1" -ge 2 ] && prand "b$1" 700000 > "$T/data/b/new$1.bin"; return 0; }
backup() { # TOKEN DIR KEEPNAME: backs up, keeps a copy, prints the id
	local id
	URL=$SURL CA=$SCA
	id=$(json_get "$(agent "$1" backup --json "$2")" snapshot_id) || return 1
	rm -rf "$T/keep/$3"
	cp -a "$2" "$T/keep/$3"
	echo "$id"
}
src_start() { server_start "$S" || exit 1; SURL=$URL SCA=$CA SPID=$SERVER_PID; }
src_stop() { SERVER_PID=$SPID; server_stop TERM; }
# sync ARGS...: the verb against the source, report in $T/sync.out (JSON),
# errors in $T/sync.err, exit code in $T/sync.rc.
sync_run() {
	"$SERVER" sync --repo "$D" --from "$SURL" --token-file "$T/sync.token" --ca "$SCA" --json "$@" >"$T/sync.out" 2>"$T/sync.err"
	echo $? > "$T/sync.rc"
}
field() { json_get "$(cat "$T/sync.out")" "$1"; }
dest_chunks() { "$SERVER" debug list-chunks --repo "$D" 2>/dev/null; }
have_snap() { [ -f "$D/snapshots/$1.json" ]; }
# restore_same TOKEN ID KEEPNAME DIR: ID restored from the current server
# equals the kept copy of DIR.
restore_same() {
	rm -rf "$T/r"
	agent "$1" restore "$2" --target "$T/r" >/dev/null 2>>"$T/restore.err" || return 1
	[ "$(tree_manifest "$T/keep/$3")" = "$(tree_manifest "$T/r$4")" ]
}

src_start
tree_a 1; tree_b 1
IA1=$(backup "$A" "$T/data/a" a1)
IB1=$(backup "$B" "$T/data/b" b1)

# ---- full sync, then nothing to do ----
sync_run
check_eq "full sync: exit 0" 0 "$(cat "$T/sync.rc")"
check_eq "full sync: 2 snapshots copied" 2 "$(field snapshots_copied)"
N1=$(dest_chunks | wc -l)
URL=$SURL CA=$SCA
SRC_CHUNKS=$(json_get "$(api "$SADM" GET /api/v1/stats | sed '$d')" chunks)
check_eq "full sync: the destination holds every chunk of the source" "$SRC_CHUNKS" "$N1"
check_eq "full sync: chunks copied = chunks stored" "$N1" "$(field chunks_copied)"
check "full sync: the copy keeps the source's id and client" python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
assert m["id"] == sys.argv[2] and m["client"] == "alice", m
assert "synced_ns" in m and m["written_ns"] <= m["synced_ns"], m' "$D/snapshots/$IA1.json" "$IA1"
SRC_MAN=$(api "$SADM" GET "/api/v1/snapshots/$IA1" | sed '$d')
check "full sync: times, host, paths and counts as at the source" python3 -c '
import json, sys
s = json.loads(sys.argv[1]); d = json.load(open(sys.argv[2]))
for k in ("time", "unix_time", "time_end", "unix_written", "written_ns", "host", "paths", "catalog", "files", "bytes_total", "chunks_total", "parent"):
    assert s[k] == d[k], (k, s[k], d[k])' "$SRC_MAN" "$D/snapshots/$IA1.json"
sync_run
check_eq "second sync: exit 0" 0 "$(cat "$T/sync.rc")"
check_eq "second sync copies no snapshot" 0 "$(field snapshots_copied)"
check_eq "second sync copies no chunk" 0 "$(field chunks_copied)"
check_eq "second sync receives no byte" 0 "$(field bytes_received)"
check_eq "second sync finds both present" 2 "$(field snapshots_present)"

# ---- restores from the destination ----
DA=$(token_add "$D" alice)
server_start "$D" || exit 1
DPID=$SERVER_PID
check "alice's snapshot restores identical from the destination (admin)" restore_same "$DADM" "$IA1" a1 "$T/data/a"
check "bob's snapshot restores identical from the destination" restore_same "$DADM" "$IB1" b1 "$T/data/b"
check "alice's own token on the destination sees her copied snapshot" restore_same "$DA" "$IA1" a1 "$T/data/a"
check_eq "alice's token does not see bob's copy" 404 "$(api_status "$DA" GET "/api/v1/snapshots/$IB1")"
# The destination is served: the verb refuses and says what to do.
sync_run
check_eq "sync into a served repository: exit 1" 1 "$(cat "$T/sync.rc")"
check "... naming sync_from" grep -q "sync_from" "$T/sync.err"
"$SERVER" sync --repo "$D" --wait 20 >/dev/null 2>"$T/err"
check_eq "asking a server without sync_from: exit 1" 1 $?
check "... it answers that sync_from is not set" grep -q "sync_from is not set" "$T/err"
SERVER_PID=$DPID; server_stop TERM
"$SERVER" sync --repo "$D" >/dev/null 2>"$T/err"
check_eq "asking when no server serves the repository: exit 1" 1 $?
check "... says so" grep -q "no dedup-server is serving" "$T/err"

# ---- incremental: only the new chunks ----
tree_a 2
IA2=$(backup "$A" "$T/data/a" a2)
sync_run
N2=$(dest_chunks | wc -l)
check_eq "incremental sync: exit 0" 0 "$(cat "$T/sync.rc")"
check_eq "incremental sync: 1 snapshot copied" 1 "$(field snapshots_copied)"
check_eq "incremental sync: chunks copied = chunks new at the destination" "$((N2 - N1))" "$(field chunks_copied)"
check "incremental sync: a few new chunks, not all of them" test "$(field chunks_copied)" -lt "$N1"
check "incremental sync: received less than 1.5 MB (900 KB of new data)" test "$(field bytes_received)" -lt 1500000

# ---- --client and --newer-than ----
tree_b 2; tree_a 3
IB2=$(backup "$B" "$T/data/b" b2)
IA3=$(backup "$A" "$T/data/a" a3)
sync_run --newer-than 2099-01-01
check_eq "--newer-than in the future selects nothing" 0 "$(field snapshots_listed)"
sync_run --client bob
check_eq "--client bob: exit 0" 0 "$(cat "$T/sync.rc")"
check_eq "--client bob: only bob's new snapshot copied" 1 "$(field snapshots_copied)"
check "--client bob: bob's new snapshot is here" have_snap "$IB2"
check "--client bob: alice's new snapshot is not" not have_snap "$IA3"
sync_run --newer-than 1d --client alice --client bob
check_eq "--newer-than 1d --client alice --client bob: alice's copied" 1 "$(field snapshots_copied)"
check "alice's third snapshot is here" have_snap "$IA3"

# ---- bad input: clear errors, exit codes ----
printf 'dd_%064d\n' 0 > "$T/bad.token"
"$SERVER" sync --repo "$D" --from "$SURL" --token-file "$T/bad.token" --ca "$SCA" >/dev/null 2>"$T/err"
check_eq "wrong token: exit 4" 4 $?
check "wrong token: says the source rejected it" grep -q "rejected the token" "$T/err"
"$SERVER" sync --repo "$D" --from "$SURL/not-dedup" --token "$SADM" --ca "$SCA" >/dev/null 2>"$T/err"
check_eq "not a dedup server: exit 3" 3 $?
check "not a dedup server: says so" grep -q "is not a dedup server" "$T/err"
"$SERVER" sync --repo "$D" --from "${SURL/https/http}" --token "$SADM" >/dev/null 2>"$T/err"
check_eq "http:// URL: exit 3" 3 $?
check "http:// URL: says it is not https" grep -q "not https" "$T/err"
"$SERVER" sync --repo "$D" --from "$SURL" --token "$SADM" --fingerprint "$(printf '%064d' 0)" >/dev/null 2>"$T/err"
check_eq "pinned fingerprint mismatch: exit 3" 3 $?
check "fingerprint mismatch: names both certificates" grep -q "not the pinned sha256:0000" "$T/err"
"$SERVER" sync --repo "$D" --from "$SURL" --token "$SADM" --ca "$D/tls/cert.pem" >/dev/null 2>"$T/err"
check_eq "another CA: exit 3" 3 $?
check "another CA: a TLS error" grep -qi "TLS\|certificate" "$T/err"
FP=$("$SERVER" cert show --repo "$S" | sed -n 's/.*sha256[:= ]*\([0-9a-f]\{64\}\).*/\1/p' | head -n1)
"$SERVER" sync --repo "$D" --from "$SURL" --token "$SADM" --fingerprint "$FP" >/dev/null 2>"$T/err"
check_eq "the right pinned fingerprint: exit 0" 0 $?
"$SERVER" sync --repo "$D" --from "$SURL" >/dev/null 2>&1
check_eq "no token: usage, exit 2" 2 $?

# ---- SIGKILL mid-transfer, then a re-run completes ----
mkdir -p "$T/data/c"
prand c1 9000000 > "$T/data/c/big.bin"
IC=$(backup "$C" "$T/data/c" c1)
K0=$(dest_chunks | wc -l)
DEDUP_TEST_SYNC_BATCH=2 DEDUP_TEST_SYNC_KILL_AFTER=3 sync_run
check_eq "sync killed (SIGKILL) after 3 fetches" 137 "$(cat "$T/sync.rc")"
K1=$(dest_chunks | wc -l)
check "the killed sync stored some chunks" test "$K1" -gt "$K0"
check "the killed sync created no snapshot" not have_snap "$IC"
sync_run
K2=$(dest_chunks | wc -l)
check_eq "re-run: exit 0" 0 "$(cat "$T/sync.rc")"
check_eq "re-run: the snapshot is copied" 1 "$(field snapshots_copied)"
check_eq "re-run fetches only what the killed run had not stored" "$((K2 - K1))" "$(field chunks_copied)"
check "re-run fetched fewer chunks than the snapshot needed" test "$(field chunks_copied)" -lt "$((K2 - K0))"

# ---- a damaged chunk at the source ----
src_stop
"$SERVER" debug list-records --repo "$S" | sort > "$T/rec.before"
src_start
mkdir -p "$T/data/d" "$T/data/e"
prand d1 3000000 > "$T/data/d/d.bin"
prand e1 2000000 > "$T/data/e/e.bin"
ID=$(backup "$DV" "$T/data/d" d1)
src_stop
"$SERVER" debug list-records --repo "$S" | sort > "$T/rec.d"
src_start
IE=$(backup "$E" "$T/data/e" e1)
src_stop
# dave's largest new record: file data, used by no other snapshot.
read -r BAD PACK OFF PLAIN STORED < <(comm -13 "$T/rec.before" "$T/rec.d" | sort -k4 -n | tail -n1)
python3 - "$S/packs/$PACK.pack" "$((OFF + 48 + STORED / 2))" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x20]))
PY
src_start
sync_run
check_eq "damaged chunk at the source: exit 1 (some snapshots not copied)" 1 "$(cat "$T/sync.rc")"
grep -m1 "not copied" "$T/sync.err" | sed 's/^/# /'
check_eq "damaged chunk: one snapshot not copied" 1 "$(field snapshots_failed)"
check "damaged chunk: the error names the chunk" grep -q "chunk $BAD" "$T/sync.err"
check "damaged chunk: dave's snapshot is not created" not have_snap "$ID"
check "damaged chunk: erin's snapshot is" have_snap "$IE"
check "damaged chunk: the destination does not hold it" not grep -q "$BAD" <(dest_chunks)
"$SERVER" check --repo "$D" --read-data >"$T/check.out" 2>&1
check_eq "check --read-data on the destination is clean" 0 $?

# page_view URL OUT: the Replication table as a headless Chromium shows it
# (DevTools over --remote-debugging-pipe, as t0870 does).
cat > "$T/page.py" <<'PY'
import json, os, sys, time
sys.path.insert(0, os.environ["E2E_DIR"])
from cdp import Browser
chromium, url, out = sys.argv[1], sys.argv[2], sys.argv[3]
with Browser(chromium, 40) as b:
    js = b.js
    s = b.page("Runtime.enable", "Log.enable")
    b.call("Page.navigate", {"url": url}, s)
    state = None
    while time.time() < b.deadline:
        state = js("document.body && document.body.dataset.state", s)
        if state == "ready": break
        time.sleep(0.1)
    seen = js("""({shown: !document.getElementById("sync-section").classList.contains("hidden"),
                  row: [...document.querySelectorAll("#sync tr td")].map((t) => t.textContent)})""", s)
    seen["state"] = state
    seen["errors"] = b.log_errors()
    json.dump(seen, open(out, "w"))
PY
page_view() {
	local chromium
	chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
	if [ -z "$chromium" ]; then
		echo '{"skipped": "chromium is not installed"}' > "$2"
		return
	fi
	T="$T" timeout 60 python3 "$T/page.py" "$chromium" "$1" "$2" 2>>"$T/page.err"
}

# ---- a source that sends damaged bytes under a chunk's id ----
# A TLS proxy in front of the source (with the source's certificate)
# flips a byte in every fetched record of more than 100 KB: gina's big
# file; hank's snapshot has only small chunks and must still be copied.
cat > "$T/evil.py" <<'PY'
import http.server, json, os, ssl, struct, sys, threading, urllib.request
up, cert, key, portfile, log = sys.argv[1:6]
ctx_up = ssl.create_default_context(cafile=cert)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def fwd(self, body=None):
        req = urllib.request.Request(up + self.path, data=body, method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")})
        try:
            r = urllib.request.urlopen(req, context=ctx_up)
            status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        if self.path.endswith("/chunks/fetch") and status == 200:
            data = bytearray(data); off = 12
            for _ in range(struct.unpack_from("<I", data, 8)[0]):
                plain, stored = struct.unpack_from("<II", data, off + 36)
                if plain > 100000:
                    data[off + 44 + stored // 2] ^= 0x40
                    open(log, "a").write(data[off:off + 32].hex() + "\n")
                off += 44 + stored
            data = bytes(data)
        self.send_response(status)
        self.send_header("Content-Type", ctype); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def do_GET(self): self.fwd()
    def do_POST(self): self.fwd(self.rfile.read(int(self.headers.get("Content-Length", 0))))
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(portfile + ".tmp", "w").write(str(srv.server_address[1])); os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
PY
G=$(token_add "$S" gina)
H=$(token_add "$S" hank)
mkdir -p "$T/data/g" "$T/data/h"
prand g1 2500000 > "$T/data/g/g.bin"
for i in $(seq 1 30); do echo "hank's small file $i" > "$T/data/h/f$i"; done
IG=$(backup "$G" "$T/data/g" g1)
IH=$(backup "$H" "$T/data/h" h1)
python3 "$T/evil.py" "$SURL" "$SCA" "$S/tls/key.pem" "$T/evil.port" "$T/evil.log" 2>"$T/evil.err" &
EVIL_PID=$!
for i in $(seq 1 100); do [ -s "$T/evil.port" ] && break; sleep 0.05; done
"$SERVER" sync --repo "$D" --from "https://127.0.0.1:$(cat "$T/evil.port")" --token-file "$T/sync.token" \
	--ca "$SCA" --json --client gina --client hank >"$T/sync.out" 2>"$T/sync.err"
echo $? > "$T/sync.rc"
kill "$EVIL_PID" 2>/dev/null; wait "$EVIL_PID" 2>/dev/null
check_eq "damaged bytes from the source: exit 1" 1 "$(cat "$T/sync.rc")"
grep -m1 "not copied" "$T/sync.err" | sed 's/^/# /'
check "the proxy damaged some chunks" test -s "$T/evil.log"
check "the error names a damaged chunk as refused" grep -qE "chunk ($(paste -sd'|' "$T/evil.log")) refused" "$T/sync.err"
check "... and says why (damaged or does not decompress)" grep -qE "damaged|does not decompress" "$T/sync.err"
check "gina's snapshot is not created" not have_snap "$IG"
check "hank's snapshot is" have_snap "$IH"
check "no damaged chunk is stored at the destination" not grep -qFf "$T/evil.log" <(dest_chunks)
"$SERVER" check --repo "$D" --read-data >"$T/check.out" 2>&1
check_eq "check --read-data on the destination is clean after it" 0 $?
sync_run --client gina
check_eq "straight from the source, gina's snapshot is copied" 1 "$(field snapshots_copied)"

# ---- a serving destination syncs by itself (sync_from) ----
mkdir -p "$T/data/f"
prand f1 1500000 > "$T/data/f/f.bin"
IF=$(backup "$F" "$T/data/f" f1)
T0=$(date +%s)
server_start "$D" --set sync_from="$SURL" --set sync_token_file="$T/sync.token" \
	--set sync_ca="$SCA" --set sync_clients=frank,erin --set sync_interval=1h || exit 1
DPID=$SERVER_PID
for i in $(seq 1 200); do
	[ "$(api_status "$DADM" GET "/api/v1/snapshots/$IF")" = 200 ] && break
	sleep 0.05
done
check_eq "while serving: frank's snapshot arrives by itself" 200 "$(api_status "$DADM" GET "/api/v1/snapshots/$IF")"
for i in $(seq 1 200); do
	save st "$DADM" GET /api/v1/sync
	python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["last"]; sys.exit(0 if l and l["finished_unix"] >= int(sys.argv[2]) and l["from"] == sys.argv[3] else 1)' "$T/st.json" "$T0" "$SURL" 2>/dev/null && break
	sleep 0.05
done
save client_st "$DA" GET /api/v1/sync
api "$DADM" GET /metrics | sed '$d' > "$T/metrics.txt"
pycheck "$SURL" "$T/metrics.txt" <<'PY'
st = J("st")
check_eq("GET /api/v1/sync: 200", 200, S("st"))
check("GET /api/v1/sync: configured, from the source", st["configured"] and st["from"] == sys.argv[1], st)
last = st["last"] or {}
check_eq("the last sync: ok", "ok", last.get("result"))
check_eq("the last sync copied frank's snapshot", 1, last.get("snapshots_copied"))
check("the last sync copied bytes", (last.get("bytes_copied") or 0) > 1000000, last)
check("lag is the time since that sync: small", st["lag_seconds"] is not None and 0 <= st["lag_seconds"] < 120, st)
check_eq("a client token may not read it", 403, S("client_st"))
m = open(sys.argv[2]).read()
check("/metrics: dedup_sync_last_success 1", "\ndedup_sync_last_success 1\n" in m)
check("/metrics: dedup_sync_lag_seconds", "\ndedup_sync_lag_seconds " in m)
check("/metrics: dedup_sync_last_snapshots_copied 1", "\ndedup_sync_last_snapshots_copied 1\n" in m)
PY
check_eq "the destination serves meanwhile" 200 "$(api_status "" GET /api/v1/health)"
page_view "$URL/#token=$DADM" "$T/page.json"
pycheck "$SURL" <<'PY'
try:
    v = J("page")
except Exception as e:
    v = None
if v is None or v.get("skipped"):
    print("ok - status page: skipped (%s)" % ((v or {}).get("skipped") or "no chromium run"))
else:
    check_eq("status page: ready", "ready", v["state"])
    check("status page: the Replication section is shown", v["shown"], v)
    row = v["row"]
    check("status page: its row names the source", row and row[0] == sys.argv[1], row)
    check_eq("status page: result ok", "ok", row[2] if row else None)
    check_eq("status page: 1 snapshot copied", "1", row[3] if row else None)
    check("status page: a lag is shown", row and row[5] not in ("", "-"), row)
    check_eq("status page: no console error", [], v["errors"])
PY
check "frank's snapshot restores identical from the destination" restore_same "$DADM" "$IF" f1 "$T/data/f"
SERVER_PID=$DPID; server_stop TERM

# ---- a timer asks the serving destination (sync_interval = 0) ----
prand f2 800000 > "$T/data/f/f2.bin"
IF2=$(backup "$F" "$T/data/f" f2)
server_start "$D" --set sync_from="$SURL" --set sync_token_file="$T/sync.token" \
	--set sync_ca="$SCA" --set sync_clients=frank --set sync_interval=0 || exit 1
DPID=$SERVER_PID
check_eq "sync_interval=0: nothing copied at start" 404 "$(api_status "$DADM" GET "/api/v1/snapshots/$IF2")"
"$SERVER" sync --repo "$D" --json --wait 60 >"$T/sync.out" 2>"$T/sync.err"
check_eq "the timer's \`sync --repo DIR\`: exit 0" 0 $?
check_eq "... reports the serving process's run: 1 snapshot copied" 1 "$(field snapshots_copied)"
check_eq "... frank's new snapshot is on the serving destination" 200 "$(api_status "$DADM" GET "/api/v1/snapshots/$IF2")"
"$SERVER" sync --repo "$D" --json --wait 60 >"$T/sync.out" 2>"$T/sync.err"
check_eq "asked again: nothing to copy" 0 "$(field chunks_copied)"
SERVER_PID=$DPID; server_stop TERM
"$SERVER" check --repo "$D" --read-data >"$T/check.out" 2>&1
check_eq "check --read-data on the destination is clean at the end" 0 $?

# ---- sync_max_clients: new client names are bounded ----
# Here now: snapshots of bob, carol, erin, frank, gina and hank, who have
# no token here (6 names), and alice's, who has one. ivan is new here.
I=$(token_add "$S" ivan)
mkdir -p "$T/data/i"
prand i1 600000 > "$T/data/i/i.bin"
II=$(backup "$I" "$T/data/i" i1)
IB3=$(backup "$B" "$T/data/b" b3)
sync_run --client bob --client ivan --max-clients 6
check_eq "--max-clients 6 with 6 names here: exit 1" 1 "$(cat "$T/sync.rc")"
check_eq "... bob's new snapshot is copied (his name is here)" 1 "$(field snapshots_copied)"
check_eq "... ivan's is not" 1 "$(field snapshots_failed)"
check "... naming the limit" grep -q "client 'ivan' has no token and no snapshot here, and 6 client names.*(sync_max_clients 6)" "$T/sync.err"
check "... ivan's snapshot is not here" not have_snap "$II"
check "... bob's is" have_snap "$IB3"
sync_run --client ivan --max-clients 7
check_eq "--max-clients 7: ivan's snapshot is copied" 1 "$(field snapshots_copied)"
check "... and is here" have_snap "$II"

# The timer and its service as packaged.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
check "dedup-sync.service and .timer pass the unit lint" python3 "$ROOT/packaging/lint-units.py" "$ROOT/conf/dedup-sync.service" "$ROOT/conf/dedup-sync.timer"
check "the Debian copies of the units are the same" sh -c "cmp -s '$ROOT/conf/dedup-sync.service' '$ROOT/packaging/debian/dedup-server.dedup-sync.service' && cmp -s '$ROOT/conf/dedup-sync.timer' '$ROOT/packaging/debian/dedup-server.dedup-sync.timer'"
check "the unit asks the packaged repository's server" grep -qx "ExecStart=/usr/sbin/dedup-server sync --repo /var/lib/dedup" "$ROOT/conf/dedup-sync.service"
finish

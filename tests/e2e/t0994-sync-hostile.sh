#!/usr/bin/env bash
# Replication from a hostile or broken source (docs/REPLICATION.md): a
# fake source on 127.0.0.1 answers `dedup-server sync` the way a
# compromised server could, and each run ends with a clear error in
# bounded time and memory, storing nothing:
#   loop    every listing page is the same item: the run stops ("goes
#           back"), not after a timeout (on the code before, it listed and
#           fetched for ever);
#   filter  asked for client web1, it lists db1's snapshot: refused
#           before its manifest is asked for (before, it was fetched and
#           imported under db1);
#   409     the manifest answers 409: the snapshot is not copied, exit 1
#           (before: "already here", exit 0, the lag alert silenced), and
#           the source's "written in 2100" does not hide its lag;
#   big     a listing page of four million empty objects (8 MB): refused
#           before it is parsed, the process staying small (before, the
#           parse took some 900 MB);
#   trickle an answer of two bytes a second (under the low-speed limit):
#           the request times out (600 s; 3 s here by the test hook), the
#           run ends (before, it waited for ever);
#   clients snapshots of 50 client names, none known here, whose
#           manifests all fail (404), with --max-clients 3: a name whose
#           snapshot was not copied takes no place, so every manifest is
#           asked for and none is refused for the limit (t0930 checks the
#           limit itself with real copies);
#   sealed  a plain snapshot's catalog chunk sent sealed (client-side
#           encrypted, so only its layout could be checked): refused and
#           not stored (before, it was stored on its layout alone; a plain
#           snapshot's file chunks sent sealed were imported as copied).
. "$(dirname "$0")/lib.sh"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/key.pem" -out "$T/cert.pem" -days 1 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
	{ echo "# cannot make the fake source's certificate"; exit 1; }
cat > "$T/fake.py" <<'PY'
import hashlib, http.server, json, ssl, struct, sys, time
mode, portfile, logfile, d = sys.argv[1:5]
SID = "ab" * 32
CAT = hashlib.sha256(b"a catalog").digest()
def item(client):
    # mode 409: a time far in the future (year 2100)
    return {"id": SID, "client": client, "cursor": "1-" + SID,
            "unix_written": 4102444800 if mode == "409" else 1}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def send(self, code, body):
        b = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        p = self.path
        with open(logfile, "a") as f:
            f.write(p.split("?")[0] + "\n")
        if p.startswith("/api/v1/health"):
            return self.send(200, {"up": True, "version": "fake"})
        if p.startswith("/api/v1/config"):
            return self.send(200, {})
        if p.startswith("/api/v1/snapshots?") and mode == "trickle":
            # a page promised, then two bytes a second: under the
            # low-speed limit's 1 byte a second, so only a timeout ends it
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(600):
                self.wfile.write(b"  ")
                self.wfile.flush()
                time.sleep(1)
            return
        if p.startswith("/api/v1/snapshots?"):
            if mode == "loop":
                return self.send(200, [item("web1")])
            if mode == "big":
                return self.send(200, b"[" + b"{}," * 4000000 + b"{}]")
            # one page: a request for what comes after it gets none (a
            # run lists again from the start when snapshots were not
            # copied, to tell the forgotten from the failed)
            if mode == "clients":
                if "after=" in p:
                    return self.send(200, [])
                return self.send(200, [
                    {"id": "%064x" % (i + 1), "client": "c%02d" % i,
                     "cursor": "%d-%064x" % (i + 1, i + 1),
                     "unix_written": 1} for i in range(50)])
            if "after=" in p:
                return self.send(200, [])
            return self.send(200, [item("db1" if mode == "filter" else "web1")])
        if p.startswith("/api/v1/snapshots/"):
            if mode == "409":
                return self.send(409, {"error": "conflict"})
            if mode == "sealed":
                return self.send(200, {"id": SID, "client": "web1", "catalog": [CAT.hex()]})
            return self.send(404, {"error": "no such snapshot"})
        self.send(404, {"error": "no"})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with open(logfile, "a") as f:
            f.write(self.path.split("?")[0] + "\n")
        if mode == "sealed" and self.path.startswith("/api/v1/chunks/fetch"):
            # the catalog chunk, sent sealed: 10 plain bytes, 38 stored
            rec = CAT + struct.pack("<III", 2, 10, 38) + b"\x5a" * 38
            return self.send(200, b"DDBN" + struct.pack("<II", 1, 1) + rec)
        self.send(404, {"error": "no"})
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/cert.pem", d + "/key.pem")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(portfile, "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY

R=$T/dst
repo_init "$R"
echo "fake-token" > "$T/token"
FAKE_PID=
stop_fake() {
	ours "$FAKE_PID" && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
	FAKE_PID=
}
trap 'stop_fake; cleanup' EXIT

# sync_against MODE [ARGS...]: a fresh fake source in MODE, then one sync
# run against it; sets RC, SECS, RSS (KiB); its output in $T/MODE.out/.err
sync_against() {
	local mode=$1 i
	shift
	rm -f "$T/port" "$T/$mode.log"
	python3 "$T/fake.py" "$mode" "$T/port" "$T/$mode.log" "$T" &
	FAKE_PID=$!
	for i in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
	local t0=$EPOCHREALTIME
	/usr/bin/time -f %M -o "$T/$mode.rss" timeout 120 "$SERVER" sync \
		--repo "$R" --from "https://127.0.0.1:$(cat "$T/port")" \
		--token-file "$T/token" --ca "$T/cert.pem" "$@" \
		>"$T/$mode.out" 2>"$T/$mode.err"
	RC=$?
	SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
	RSS=$(tail -n1 "$T/$mode.rss")
	stop_fake
	echo "# $mode: exit $RC in $SECS s, peak RSS $RSS KiB; $(tail -n1 "$T/$mode.err")"
}
snapshots_here() { find "$R/snapshots" -name '*.json' | wc -l; }

sync_against loop
check "a source whose list never ends: the run stops by itself" test "$RC" != 0 -a "$RC" != 124
check "saying the list goes back" grep -q "goes back" "$T/loop.err"
check "after at most 2 pages" test "$(grep -c '^/api/v1/snapshots$' "$T/loop.log")" -le 2

sync_against filter --client web1
check "another client's snapshot listed for web1: refused" test "$RC" != 0
check "saying so" grep -q "listed a snapshot of client 'db1' when asked for 'web1'" "$T/filter.err"
check "its manifest is never asked for" not grep -q "^/api/v1/snapshots/" "$T/filter.log"

sync_against 409
check_eq "a manifest answered with 409: not copied, exit 1" 1 "$RC"
check "the report says it failed, not that it is here" \
	grep -q "0 copied, 0 already here, 1 not copied" "$T/409.out"
check "naming the 409" grep -q "answered 409" "$T/409.err"
pending=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["oldest_pending_unix"])' "$R/sync.json")
check "its lag counts from now, not from the year 2100 the source gave" \
	test "${pending:-0}" -gt 0 -a "${pending:-0}" -le "$(date +%s)"

sync_against big
check "a listing page of 4 million values: refused" test "$RC" != 0
check "before it is parsed" grep -q "JSON values or more" "$T/big.err"
check "the process stays under 200 MB" test "${RSS:-999999}" -lt 204800

DEDUP_TEST_SYNC_TIMEOUT_SEC=3 sync_against trickle
check "a source that trickles its answer: the run ends by itself" test "$RC" != 0 -a "$RC" != 124
check "within seconds (a 3 s bound for the test; 600 s otherwise)" \
	python3 -c "import sys; sys.exit(0 if float('$SECS') < 30 else 1)"

"$SERVER" token add --repo "$R" c45 >/dev/null 2>&1 ||
	{ echo "# cannot add a token for c45"; exit 1; }
sync_against clients --max-clients 3
check_eq "snapshots of 50 new client names, none copied: exit 1" 1 "$RC"
check "the report counts 50 listed, 50 not copied" \
	grep -q "50 not copied" "$T/clients.out"
check_eq "every manifest was asked for: failed names take no place" 50 \
	"$(grep -c '^/api/v1/snapshots/' "$T/clients.log")"
check "none was refused for the limit" not grep -q "sync_max_clients" "$T/clients.err"

sync_against sealed
check_eq "a catalog chunk sent sealed: not copied, exit 1" 1 "$RC"
check "saying the chunk came sealed" grep -q "sent it sealed" "$T/sealed.err"
check_eq "and it was not stored" "" "$("$SERVER" debug list-records --repo "$R" 2>/dev/null)"

check_eq "nothing was stored" 0 "$(snapshots_here)"
"$SERVER" check --repo "$R" >/dev/null 2>&1
check_eq "the repository checks clean" 0 "$?"
finish

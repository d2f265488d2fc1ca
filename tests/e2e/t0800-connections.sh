#!/usr/bin/env bash
# Connections: strangers cannot lock agents out. Idle TCP connections from
# one address (no TLS handshake, no token), many addresses trickling a byte
# a second, an authenticated upload that trickles its body, and huge
# declared bodies never sent: health answers and a real agent backs up,
# the trickling connections are cut by the header deadline, the slow body
# by the minimum rate, and declared lengths reserve no memory. Reserved
# slots: with every untrusted slot taken, an agent still gets in and its
# kept-alive connections are never pushed out. One client's token holding
# every slot gives way to another client; request bodies in memory are
# bounded per client and in all. Sources 127.0.0.2... play other
# addresses (all of 127/8 is loopback on Linux).
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
mkdir -p "$T/d"
seq 1 200000 > "$T/d/numbers"
prand data 300000 > "$T/d/random"

# hold.py PORT STATUS STOP N FIRST NADDR [trickle] [reconnect]: opens N
# plain TCP connections from 127.0.0.FIRST.. (NADDR addresses, in turn)
# and holds them; with `trickle` sends a byte a second (a TLS record header,
# then its payload); with `reconnect` opens a closed one again after 1 s.
# Writes STATUS ("key value" lines) every 0.1 s until STOP exists (or 60 s): open now,
# opened, closed by the server, the shortest and longest life of a closed
# one, and the age of the oldest still open.
cat > "$T/hold.py" <<'PY'
import os, socket, sys, time
port, status, stop, n, first, naddr = sys.argv[1:7]
n, first, naddr = int(n), int(first), int(naddr)
trickle, reconnect = "trickle" in sys.argv[7:], "reconnect" in sys.argv[7:]
RECORD = bytes([0x16, 0x03, 0x01, 0x40, 0x00])
slots = []  # [src, sock or None, opened_at, closed_at, bytes_sent, last_send]
st = {"opened": 0, "closed": 0, "failed": 0, "lives": []}
def connect(slot):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.bind((slot[0], 0))
        s.connect(("127.0.0.1", int(port)))
    except OSError:
        st["failed"] += 1
        s.close()
        slot[1], slot[3] = None, time.monotonic()
        return
    s.setblocking(False)
    slot[1], slot[2], slot[3], slot[4], slot[5] = s, time.monotonic(), None, 0, 0
    st["opened"] += 1
for i in range(n):
    slot = ["127.0.0.%d" % (first + i % naddr), None, 0, None, 0, 0]
    slots.append(slot)
    connect(slot)
start = time.monotonic()
def write_status(now):
    lives = st["lives"]
    alive = [now - s[2] for s in slots if s[1]]
    out = {"open": len(alive), "opened": st["opened"], "closed": st["closed"],
           "failed": st["failed"], "min_life": min(lives) if lives else -1,
           "max_life": max(lives) if lives else -1,
           "oldest_open": max(alive) if alive else 0}
    with open(status + ".tmp", "w") as f:
        for k, v in out.items():
            f.write("%s %s\n" % (k, v if isinstance(v, int) else "%.2f" % v))
    os.replace(status + ".tmp", status)
while not os.path.exists(stop) and time.monotonic() - start < 60:
    now = time.monotonic()
    for slot in slots:
        s = slot[1]
        if s is None:
            if reconnect and now - slot[3] >= 1.0:
                connect(slot)
            continue
        try:
            gone = s.recv(4096) == b""
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        if not gone and trickle and now - slot[5] >= 1.0:
            b = RECORD[slot[4]:slot[4] + 1] or b"\0"
            try:
                s.send(b)
                slot[4] += 1
                slot[5] = now
            except BlockingIOError:
                pass
            except OSError:
                gone = True
        if gone:
            s.close()
            slot[1], slot[3] = None, now
            st["closed"] += 1
            st["lives"].append(now - slot[2])
    write_status(now)
    time.sleep(0.1)
write_status(time.monotonic())
PY

# hold_start NAME ARGS...: hold.py in the background; hold_stop NAME ends
# it; hold NAME FIELD reads its status.
declare -A HOLD_PID
hold_start() {
	local name=$1; shift
	rm -f "$T/$name.stop" "$T/$name.json"
	python3 "$T/hold.py" "${URL##*:}" "$T/$name.json" "$T/$name.stop" "$@" &
	HOLD_PID[$name]=$!
}
hold_stop() {
	touch "$T/$1.stop"
	wait "${HOLD_PID[$1]}" 2>/dev/null
}
hold() { awk -v k="$2" '$1 == k { print $2 }' "$T/$1.json"; }
# hold_wait NAME: until hold.py has opened its connections (<= 20 s).
hold_wait() {
	local i
	for i in $(seq 1 200); do
		[ -s "$T/$1.json" ] && return 0
		sleep 0.1
	done
	return 1
}
# until_true SECONDS COMMAND...: polls COMMAND every 0.1 s.
until_true() {
	local n=$(($1 * 10)) i
	shift
	for i in $(seq 1 "$n"); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
field_is() { [ "$(hold "$1" "$2")" = "$3" ]; }
field_ge() { [ "$(hold "$1" "$2")" -ge "$3" ]; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'; }
# lt A B, ge A B: compare decimal numbers.
# health: the status code (or 000) and curl's exit code, in at most 10 s.
health() {
	local code rc
	code=$(curl -sS --cacert "$CA" --max-time 10 -o /dev/null -w '%{http_code}' "$URL/api/v1/health" 2>/dev/null)
	rc=$?
	echo "$code/$rc"
}
backup() { timeout 30 "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup "$T/d" >/dev/null 2>>"$T/agent.err"; }

# ---- the settings ----
timeout 10 "$SERVER" serve --config /dev/null --repo "$T/repo" --listen 127.0.0.1:0 \
	--set max_connections=8 --set reserved_connections=8 2>"$T/err"
check_eq "reserved_connections must be below max_connections (exit 1)" 1 $?
check "saying so" grep -q "reserved_connections (8) must be less than max_connections (8)" "$T/err"
timeout 10 "$SERVER" serve --config /dev/null --repo "$T/repo" --listen 127.0.0.1:0 --set header_timeout=0 2>"$T/err"
check "header_timeout 0 is refused" grep -q "invalid value '0' for 'header_timeout'" "$T/err"

# ---- idle strangers: the per-address limit and the untrusted pool ----
server_start "$T/repo" --set header_timeout=30s || exit 1
PID1=$SERVER_PID
hold_start idle1 80 1 1
hold_wait idle1
check "80 idle connections from one address: all but per_ip_connections (16) are cut at once" \
	until_true 5 field_is idle1 open 16
check_eq "the server cut the oldest ones as newer ones came" 64 "$(hold idle1 closed)"
t=$(now); h=$(health); dt=$(since "$t")
check_eq "health answers while they are held" 200/0 "$h"
echo "# 80 idle from one address: health in ${dt}s"
t=$(now); backup; rc=$?; dt=$(since "$t")
check_eq "and an agent backs up" 0 "$rc"
echo "# 80 idle from one address: backup in ${dt}s"
hold_stop idle1

hold_start idle200 200 2 200
hold_wait idle200
check "200 idle strangers from 200 addresses: at most max - reserved (48) are kept" \
	until_true 5 field_is idle200 open 48
t=$(now); h=$(health); dt=$(since "$t")
check_eq "health answers" 200/0 "$h"
echo "# 200 idle from 200 addresses: health in ${dt}s"
t=$(now); backup; rc=$?; dt=$(since "$t")
check_eq "and an agent backs up" 0 "$rc"
echo "# 200 idle from 200 addresses: backup in ${dt}s"
hold_stop idle200

# ---- a declared Content-Length reserves no memory (a token's body is
# reserved whole only when its first bytes arrive) ----
vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
cat > "$T/declare.py" <<'PY'
import os, socket, ssl, sys, time
hostport, ca, token, n, stop = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
socks = []
for i in range(int(n)):
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)
    s.sendall(("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (token, 64 * 1024 * 1024 - 4096)).encode())
    socks.append(s)
print("sent", flush=True)
for _ in range(300):
    if os.path.exists(stop):
        break
    time.sleep(0.1)
PY
data0=$(vm "$PID1" VmData); rss0=$(vm "$PID1" VmRSS)
python3 "$T/declare.py" "${URL#https://}" "$CA" "$A" 12 "$T/declare.stop" > "$T/declare.out" 2>&1 &
DPID=$!
until_true 20 grep -q sent "$T/declare.out"
# Watch for 2 s: a reservation would show at once.
data1=$data0; rss1=$rss0
for i in $(seq 1 20); do
	d=$(vm "$PID1" VmData); r=$(vm "$PID1" VmRSS)
	[ "$d" -gt "$data1" ] && data1=$d
	[ "$r" -gt "$rss1" ] && rss1=$r
	sleep 0.1
done
touch "$T/declare.stop"; wait "$DPID"
echo "# 12 uploads declaring 64 MiB, no bytes sent: VmData +$(( (data1 - data0) / 1024 )) MiB, VmRSS +$(( (rss1 - rss0) / 1024 )) MiB"
check "12 uploads declaring 64 MiB each commit no body memory (VmData +$(( (data1 - data0) / 1024 )) MiB < 384)" \
	test $((data1 - data0)) -lt $((384 * 1024))
check "nor resident memory (VmRSS +$(( (rss1 - rss0) / 1024 )) MiB < 64)" test $((rss1 - rss0)) -lt $((64 * 1024))
check "the agent still backs up after" backup
server_stop TERM

# ---- trickling strangers ----
server_start "$T/repo" --set header_timeout=2s --set min_body_rate=1024 || exit 1
# Fewer than the untrusted pool holds: the header deadline alone cuts them.
hold_start few 40 2 40 trickle
hold_wait few
check "40 connections trickling 1 byte/s are all cut" until_true 10 field_is few closed 40
check "by the header deadline: none before 2 s (shortest $(hold few min_life)s)" \
	ge "$(hold few min_life)" 1.9
check "none after 2 s and a tick (longest $(hold few max_life)s)" \
	eval 'ge "$(hold few max_life)" 1.9 && lt "$(hold few max_life)" 3.6'
hold_stop few
# More than it holds, reconnecting 1 s after each cut: a sustained flood.
hold_start trickle 200 2 40 trickle reconnect
hold_wait trickle
check "200 connections trickling 1 byte/s from 40 addresses: cut within 2 s + a tick" \
	until_true 10 field_ge trickle closed 200
t=$(now); h=$(health); dt=$(since "$t")
check_eq "health answers during the flood" 200/0 "$h"
echo "# 200 trickling (reconnecting) from 40 addresses: health in ${dt}s"
t=$(now); backup; rc=$?; dt=$(since "$t")
check_eq "an agent backs up during the flood" 0 "$rc"
echo "# 200 trickling (reconnecting) from 40 addresses: backup in ${dt}s"
hold_stop trickle
max_life=$(hold trickle max_life)
lt "$max_life" "$(hold trickle oldest_open)" && max_life=$(hold trickle oldest_open)
echo "# trickling connections: $(hold trickle opened) opened, $(hold trickle closed) cut by the server, longest life ${max_life}s"
check "none lived past the header deadline (2 s) and a tick (longest ${max_life}s)" \
	lt "$max_life" 3.6

# an authenticated upload whose body trickles below min_body_rate
cat > "$T/slow.py" <<'PY'
import socket, ssl, sys, time
hostport, ca, token = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=15), server_hostname=host)
s.sendall(("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n" % token).encode())
t0 = time.monotonic()
s.settimeout(0.5)
while time.monotonic() - t0 < 15:
    try:
        s.sendall(b"x" * 50)
        d = s.recv(4096)
        if not d:
            break
        print("answer", d.split(b"\r\n")[0].decode(), flush=True)
        break
    except socket.timeout:
        continue
    except OSError:
        break
print("closed after %.1f" % (time.monotonic() - t0), flush=True)
PY
python3 "$T/slow.py" "${URL#https://}" "$CA" "$A" > "$T/slow.out" 2>&1
cut=$(sed -n 's/^closed after //p' "$T/slow.out")
echo "# an upload trickling 100 B/s: closed after ${cut:-?}s"
check "an upload trickling 100 B/s is cut by the minimum body rate (after ${cut:-?}s)" \
	lt "${cut:-99}" 6
check "without an answer" not grep -q '^answer' "$T/slow.out"
check "the server still serves" backup

# a wrong token on an upload: the 401 is read after the whole body was
# sent, as a client does that streams its body before it reads (answering
# at once and closing with the body unread made the kernel reset the
# connection, and the client saw a broken pipe instead of the 401)
cat > "$T/wrong.py" <<'PY'
import socket, ssl, sys, time
hostport, ca = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
n = 4 << 20
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=15), server_hostname=host)
try:
    s.sendall(("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dd_wrong\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % n).encode())
    s.sendall(b"x" * (1 << 20))
    time.sleep(0.5)
    s.sendall(b"x" * (n - (1 << 20)))
    print("answer", s.recv(4096).split(b"\r\n")[0].decode())
except OSError as e:
    print("error", e)
PY
python3 "$T/wrong.py" "${URL#https://}" "$CA" > "$T/wrong.out" 2>&1
check_eq "a wrong token on a 4 MiB upload: the client reads the 401" \
	"answer HTTP/1.1 401 Unauthorized" "$(cat "$T/wrong.out")"
server_stop TERM
check "the server logged what it cut" grep -q 'http: cut connections: .*[0-9]* sent no request headers within 2 s' "$T/server.log"
sum() { awk '{ n += $1 } END { print n + 0 }'; }
cuts=$(sed -n 's/.*http: cut connections: \(.*; \)*\([0-9]*\) sent no request headers.*/\2/p' "$T/server.log" | sum)
slow=$(sed -n 's/.*http: cut connections: \(.*; \)*\([0-9]*\) sent a body slower than.*/\2/p' "$T/server.log" | sum)
echo "# server log: ${cuts:-0} cut by the header deadline, ${slow:-0} slow upload(s)"
check "the header deadline cut at least the 40 (${cuts:-0})" test "${cuts:-0}" -ge 40
check "and the slow upload" test "${slow:-0}" -ge 1

# ---- reserved slots: every untrusted slot taken, an agent still gets in ----
server_start "$T/repo" --set max_connections=6 --set reserved_connections=2 \
	--set per_ip_connections=0 --set header_timeout=30s || exit 1
# httpget.get(SOCK, TOKEN): a GET of the snapshots on a kept-alive
# connection; the whole answer's status, or "closed".
cat > "$T/httpget.py" <<'PY'
def get(s, token):
    s.sendall(("GET /api/v1/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % token).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            return "closed"
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            return "closed"
        body += d
    return head.split(b" ")[1].decode()
PY
cat > "$T/keep.py" <<'PY'
import os, socket, ssl, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[0]))
from httpget import get as get_as
hostport, ca, token, go, stop = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
def get(s):
    return get_as(s, token)
socks = [ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host) for _ in range(4)]
print("first", " ".join(get(s) for s in socks), flush=True)
for _ in range(300):
    if os.path.exists(go):
        break
    time.sleep(0.1)
out = []
for s in socks:
    try:
        out.append(get(s))
    except OSError:
        out.append("error")
print("again", " ".join(out), flush=True)
PY
python3 "$T/keep.py" "${URL#https://}" "$CA" "$A" "$T/keep.go" "$T/keep.stop" > "$T/keep.out" 2>&1 &
KPID=$!
check "4 agents' connections, kept alive" until_true 20 grep -q '^first 200 200 200 200$' "$T/keep.out"
hold_start fill 10 2 10
hold_wait fill
check "10 strangers: 2 fit beside the 4 trusted ones (max_connections 6)" until_true 5 field_is fill open 2
code=$(curl -sS --cacert "$CA" --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $A" "$URL/api/v1/snapshots" 2>/dev/null)
check_eq "a new agent request still gets in (a stranger makes room)" 200 "$code"
touch "$T/keep.go"
wait "$KPID"
check "the kept-alive agent connections were never pushed out" grep -q '^again 200 200 200 200$' "$T/keep.out"
hold_stop fill
server_stop TERM

# ---- one client's token holding every slot ----
# (a stolen token, or a client gone wrong): bob's connections fill all 6
# slots, 3 idle and 3 uploading slowly (but above min_body_rate); alice
# still gets in, each of her connections taking one of bob's: his idle
# ones first, then, as he holds more than his share of a full server
# (per_client_connections, a quarter of 6: 1), a busy one. Before, every
# slot trusted meant every newcomer was cut: her backup failed.
B=$(token_add "$T/repo" bob)
server_start "$T/repo" --set max_connections=6 --set reserved_connections=2 \
	--set per_ip_connections=0 --set header_timeout=30s || exit 1
cat > "$T/hog.py" <<'PY'
import os, socket, ssl, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[0]))
from httpget import get
hostport, ca, token, stop, status = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
def tls():
    return ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)
auth = token
idle, slow, dead = [], [], set()
for i in range(3):
    s = tls()
    get(s, auth)
    idle.append(s)
for i in range(3):
    s = tls()
    get(s, auth)                 # answered: the server trusts it now
    s.sendall(("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n" % token).encode())
    s.sendall(b"x" * 8192)
    slow.append(s)
print("holding", flush=True)
t0 = time.monotonic()
while not os.path.exists(stop) and time.monotonic() - t0 < 120:
    for s in slow:
        try:
            s.sendall(b"x" * 1024)   # 2 KiB/s each: above the minimum
        except OSError:
            dead.add(s)
    time.sleep(0.5)
alive = 0
for s in idle:
    try:
        alive += get(s, auth) == "200"
    except OSError:
        pass
for s in slow:
    try:
        s.settimeout(0.5)
        alive += s not in dead and s.recv(1) != b""
    except socket.timeout:
        alive += 1               # still sending its body: no answer
    except OSError:
        pass
with open(status, "w") as f:
    f.write("%d\n" % alive)
PY
hog_start() {
	rm -f "$T/hog.stop" "$T/hog.alive" "$T/hog.out"
	python3 "$T/hog.py" "${URL#https://}" "$CA" "$B" "$T/hog.stop" "$T/hog.alive" > "$T/hog.out" 2>&1 &
	HPID=$!
	check "bob's 6 connections hold every slot" until_true 20 grep -q holding "$T/hog.out"
}
hog_start
# strangers (no token) then wait beyond the limit, as many as the
# untrusted slots (6 - 2), and make none of bob's connections go: only a
# newcomer that shows a valid token takes a slot from him
hold_start strangers 8 2 8
hold_wait strangers
check "8 strangers: 4 wait beside bob's 6, the older ones are cut" until_true 5 field_is strangers open 4
hold_stop strangers
touch "$T/hog.stop"
wait "$HPID"
check_eq "none of bob's connections went for them" 6 "$(cat "$T/hog.alive" 2>/dev/null)"
hog_start
t=$(now); backup; rc=$?; dt=$(since "$t")
check_eq "alice still backs up" 0 "$rc"
echo "# every slot held by bob's token: alice's backup in ${dt}s"
check_eq "and health answers" 200/0 "$(health)"
ADM=$(token_add "$T/repo" adm --admin)
metric() { curl -sS --cacert "$CA" -H "Authorization: Bearer $ADM" "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
check "/metrics counts the connections of bob's cut for her ($(metric 'dedup_http_connections_cut_total{reason="client_share"}'))" \
	test "$(metric 'dedup_http_connections_cut_total{reason="client_share"}')" -ge 1
touch "$T/hog.stop"
wait "$HPID"
check "bob's connections were the ones cut (alive: $(cat "$T/hog.alive" 2>/dev/null))" \
	test "$(cat "$T/hog.alive" 2>/dev/null || echo 6)" -lt 6
server_stop TERM
check "the server logged it" grep -q 'http: cut connections: .*of the client holding the most made room' "$T/server.log"

# ---- request bodies in memory: one client's, and all ----
# bob's first upload, declared 6 MiB and sent slowly, is admitted; his
# second would put him past per_client_body_memory (8 MiB): it is read,
# dropped and answered 503 with Retry-After, so he sees the answer. Alice
# (her own share, within body_memory) still backs up meanwhile. Before, each
# declared body was buffered as it came: a client held 64 MiB a
# connection for as long as it trickled.
server_start "$T/repo" --set per_client_body_memory=8M --set body_memory=12M || exit 1
cat > "$T/mem.py" <<'PY'
import os, socket, ssl, sys, time
hostport, ca, token, stop = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
def tls():
    return ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname=host)
head = ("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (token, 6 << 20)).encode()
a = tls()
a.sendall(head)
a.sendall(b"x" * (1 << 20))
b = tls()
b.sendall(head)
b.sendall(b"x" * (6 << 20))
ans = b""
while b"\r\n\r\n" not in ans:
    d = b.recv(4096)
    if not d:
        break
    ans += d
lines = ans.split(b"\r\n")
print("second", lines[0].decode(), flush=True)
print("retry", [l.decode() for l in lines if l.lower().startswith(b"retry-after")], flush=True)
t0 = time.monotonic()
while not os.path.exists(stop) and time.monotonic() - t0 < 60:
    a.sendall(b"x" * 2048)
    time.sleep(0.5)
print("done", flush=True)
PY
python3 "$T/mem.py" "${URL#https://}" "$CA" "$B" "$T/mem.stop" > "$T/mem.out" 2>&1 &
MPID=$!
check "bob's second upload past his share is answered 503" until_true 30 grep -q '^second HTTP/1.1 503' "$T/mem.out"
check "with Retry-After" grep -q "^retry \['Retry-After: [0-9]" "$T/mem.out"
check "alice backs up meanwhile" backup
check_eq "/metrics counts the refused body" 1 "$(metric dedup_http_bodies_refused_total)"
touch "$T/mem.stop"
wait "$MPID"
server_stop TERM
check "the server logged it" grep -q 'request bodies answered 503, over the memory for bodies' "$T/server.log"

# ---- an agent whose uploads take turns ----
# per_client_body_memory of 1 byte: one body of alice's at a time (a body
# alone always goes in); her other upload threads are answered 503 with
# Retry-After, wait, and send again: the backup completes, identical.
server_start "$T/repo" --set per_client_body_memory=1 || exit 1
mkdir -p "$T/big"
for i in 1 2 3; do prand "big$i" 12000000 > "$T/big/f$i"; done
timeout 120 "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$T/big" > "$T/big.out" 2>"$T/big.err"
check_eq "with one body at a time, alice's 36 MB backup completes" 0 $?
check "her agent waited out the server's 503s" grep -q "server busy.*waiting [0-9]* s and asking again" "$T/big.err"
# restores_same DIR: the snapshot $T/DIR.out names restores to DIR's bytes
restores_same() {
	local id
	id=$(json_get "$(cat "$T/$1.out")" snapshot_id)
	timeout 120 "$AGENT" --server "$URL" --token "$A" --ca "$CA" restore "$id" \
		--target "$T/$1.r" 2>>"$T/agent.err" &&
		diff -r "$T/$1" "$T/$1.r/$T/$1"
}
check "and restores identical" restores_same big
server_stop TERM

# ---- trusted bodies' buffers are kept for the next ones, within bounds ----
# 96 MB of incompressible data: about six bundles of 16 MiB over the
# agent's upload threads, so later bodies find the buffers of earlier
# ones. bufs.py samples /metrics over one kept-alive connection while
# the backup runs and once after it (its connection still open, the
# agent's closed); then it closes, and with no connection left nothing is
# kept. The backup restores identical (a reused buffer's old bytes never
# reach a body).
# bodies.py: one kept-alive HTTPS connection to the server, and its
# /metrics body-buffer series (both scripts below import it).
cat > "$T/bodies.py" <<'PY'
import http.client, ssl
def connect(hostport, ca):
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPSConnection(
        host, int(port), timeout=30,
        context=ssl.create_default_context(cafile=ca))
def buffers(c, token):
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
    m = {}
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith("dedup_http_body_buffers"):
            k, v = line.rsplit(" ", 1)
            m[k] = int(float(v))
    return m
KEPT = "dedup_http_body_buffers_kept_bytes"
PY
cat > "$T/bufs.py" <<'PY'
import os, sys, time
from bodies import connect, buffers, KEPT
hostport, ca, token, stop, out = sys.argv[1:]
c = connect(hostport, ca)
def kept():
    return buffers(c, token).get(KEPT, -1)
with open(out, "w") as f:
    t0 = time.monotonic()
    while not os.path.exists(stop) and time.monotonic() - t0 < 120:
        print("during", kept(), file=f, flush=True)
        time.sleep(0.05)
    print("after", kept(), file=f, flush=True)
c.close()
PY
server_start "$T/repo" || exit 1
mkdir -p "$T/bufs"
for i in 1 2 3 4; do prand "bufs$i" 24000000 > "$T/bufs/f$i"; done
python3 "$T/bufs.py" "${URL#https://}" "$CA" "$ADM" "$T/bufs.stop" "$T/bufs.samples" 2>"$T/bufs.py.err" &
KPID=$!
timeout 120 "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$T/bufs" > "$T/bufs.out" 2>"$T/bufs.err"
check_eq "alice's 96 MB backup completes" 0 $?
touch "$T/bufs.stop"; wait "$KPID"
reused=$(metric 'dedup_http_body_buffers_total{how="reused"}')
grown=$(metric 'dedup_http_body_buffers_total{how="grown"}')
fresh=$(metric 'dedup_http_body_buffers_total{how="fresh"}')
after=$(awk '$1 == "after" { print $2 }' "$T/bufs.samples")
most=$(awk '{ print $2 }' "$T/bufs.samples" | sort -n | tail -n1)
echo "# body buffers: reused $reused, grown $grown, fresh $fresh; kept bytes: at most $most while sampled, $after after the backup"
check "later bodies took kept buffers (reused $reused, grown $grown)" \
	test "$((reused + grown))" -ge 1
check "after the backup, with a connection open, buffers are kept ($after bytes)" \
	test "${after:-0}" -ge 1048576
check "never more than 64 MiB ($most)" test "${most:-0}" -le 67108864
kept_none() { test "$(metric dedup_http_body_buffers_kept_bytes)" = 0; }
check "once every connection closed, nothing is kept" until_true 10 kept_none
check "and restores identical" restores_same bufs
server_stop TERM

# ---- a kept buffer is counted at its size by the body memory limits ----
# On one kept-alive connection with alice's token: a 20 MB body (refused
# as a bundle, its buffer kept), then a 2 MB one. With the default
# limits the 2 MB body may take the 20 MB buffer, counted as 20 MB of
# hers; with per_client_body_memory=8M it may not (else a client could
# hold 10x what the limits count) and gets a new one. Then, the
# connection still open and nothing sent, the kept buffers go once idle
# (10 s), by the server's own clock.
cat > "$T/stash.py" <<'PY'
import sys, time
from bodies import connect, buffers, KEPT
hostport, ca, tok, adm, idle = sys.argv[1:]
c = connect(hostport, ca)
def post(n):
    c.request("POST", "/api/v1/chunks", body=b"x" * n,
              headers={"Authorization": "Bearer " + tok,
                       "Content-Type": "application/octet-stream"})
    r = c.getresponse(); r.read()
    return r.status
def metrics():
    return buffers(c, adm)
def show(what):
    m = metrics()
    print(what, m.get('dedup_http_body_buffers_total{how="reused"}', -1),
          m.get('dedup_http_body_buffers_total{how="fresh"}', -1),
          m.get(KEPT, -1), flush=True)
print("big", post(20000000), flush=True)
show("after_big")
print("small", post(2000000), flush=True)
show("after_small")
t0 = time.monotonic()
while idle == "idle" and time.monotonic() - t0 < 25:
    if metrics().get(KEPT, -1) == 0:
        print("idle_freed %.1f" % (time.monotonic() - t0), flush=True)
        break
    time.sleep(0.5)
c.close()
PY
server_start "$T/repo" || exit 1
python3 "$T/stash.py" "${URL#https://}" "$CA" "$A" "$ADM" - > "$T/stash1.out" 2>&1
sed 's/^/# default limits: /' "$T/stash1.out"
check "the 20 MB body is answered (refused as a bundle)" grep -q '^big 4[0-9][0-9]$' "$T/stash1.out"
check "its buffer is kept (about 20 MB)" \
	awk '$1 == "after_big" && $4 >= 20000000 && $4 <= 22000000 { f = 1 } END { exit !f }' "$T/stash1.out"
check "within the limits the 2 MB body takes it (reused 1, fresh 1)" \
	grep -q '^after_small 1 1 ' "$T/stash1.out"
server_stop TERM
server_start "$T/repo" --set per_client_body_memory=8M || exit 1
python3 "$T/stash.py" "${URL#https://}" "$CA" "$A" "$ADM" idle > "$T/stash2.out" 2>&1
sed 's/^/# per_client_body_memory=8M: /' "$T/stash2.out"
check "past her 8 MB the 2 MB body gets a new buffer (reused 0, fresh 2)" \
	grep -q '^after_small 0 2 ' "$T/stash2.out"
check "both kept then" \
	awk '$1 == "after_small" && $4 >= 22000000 && $4 <= 25000000 { f = 1 } END { exit !f }' "$T/stash2.out"
check "kept buffers go once idle, the connection still open" \
	grep -q '^idle_freed' "$T/stash2.out"
server_stop TERM

# ---- a stop: not held up by a stranger's body, and not hanging newcomers ----
# trickle.py TOKEN|- STOP: an upload declaring 60 MB, 1 MiB at once,
# then 2 KiB/s (above min_body_rate) until STOP exists (at most 60 s).
cat > "$T/trickle.py" <<'PY'
import os, socket, ssl, sys, time
hostport, ca, token, stop = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname=host)
auth = "" if token == "-" else "Authorization: Bearer %s\r\n" % token
s.sendall(("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\n%s"
           "Content-Type: application/octet-stream\r\nContent-Length: 60000000\r\n\r\n" % auth).encode())
s.sendall(b"x" * (1 << 20))
print("sent", flush=True)
t0 = time.monotonic()
try:
    while not os.path.exists(stop) and time.monotonic() - t0 < 60:
        s.sendall(b"x" * 1024)
        time.sleep(0.5)
except OSError:
    pass
PY
# stop_timed: SIGTERM to the server, and STOP_SECS the seconds until it
# exits (not in a subshell: wait needs the server as its child)
stop_timed() {
	local t; t=$(now)
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null
	SERVER_PID=
	STOP_SECS=$(since "$t")
}
server_start "$T/repo" --set drain_timeout=20s || exit 1
rm -f "$T/trickle.stop"
python3 "$T/trickle.py" "${URL#https://}" "$CA" - "$T/trickle.stop" > "$T/trickle1.out" 2>&1 &
TPID=$!
check "a stranger's upload (no token) trickles its body" until_true 20 grep -q sent "$T/trickle1.out"
stop_timed
echo "# stop with a stranger's body trickling: ${STOP_SECS}s (drain_timeout 20s)"
check "a stop does not wait for a body it only drops (${STOP_SECS}s)" lt "$STOP_SECS" 5
touch "$T/trickle.stop"; wait "$TPID"

server_start "$T/repo" --set drain_timeout=20s || exit 1
rm -f "$T/trickle.stop"
python3 "$T/trickle.py" "${URL#https://}" "$CA" "$A" "$T/trickle.stop" > "$T/trickle2.out" 2>&1 &
TPID=$!
check "alice's upload trickles its body" until_true 20 grep -q sent "$T/trickle2.out"
kill -TERM "$SERVER_PID"
until_true 10 grep -q "stopping on SIGTERM" "$T/server.log"
t=$(now)
curl -sS --cacert "$CA" --max-time 10 -o /dev/null "$URL/api/v1/health" 2>/dev/null
rc=$?; dt=$(since "$t")
check_eq "while it drains her upload, a new connection is refused at once (curl 7 in ${dt}s)" 7 "$rc"
check "the server is still draining" kill -0 "$SERVER_PID"
touch "$T/trickle.stop"; wait "$TPID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
finish

#!/usr/bin/env bash
# Sessions of killed agents (issue 11, item 15): an agent killed mid-backup
# leaves its session open; the next backup of the same configuration closes
# it ("abandoned: a new backup of the same configuration started"), so 17
# kills in a row neither fill the per-client limit (16) nor leave phantom
# backups in progress. A session refused anyway (429: 16 other
# configurations at once) is a warning, and the backup still succeeds.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
B=$(token_add "$T/repo" bob)
ADM=$(token_add "$T/repo" boss --admin)
server_start "$T/repo" || exit 1

SRC=$T/src
mkdir -p "$SRC"
prand kill 48000000 > "$SRC/big.bin"
echo small > "$SRC/small"

open_sessions() { # TOKEN: how many open sessions it sees
	api "$1" GET /api/v1/sessions | head -n1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# Starts the agent N times and kills it with SIGKILL as soon as the server
# shows a session it had not shown before (bounded waits throughout).
python3 - "$AGENT" "$URL" "$A" "$CA" "$SRC" 17 > "$T/kills.out" <<'PY'
import json, os, signal, ssl, subprocess, sys, time, urllib.request
agent, url, tok, ca, src, n = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
def sessions():
    req = urllib.request.Request(url + "/api/v1/sessions",
                                 headers={"Authorization": "Bearer " + tok})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return {s["id"] for s in json.load(r)}
seen, landed, finished = set(), 0, 0
for i in range(int(n)):
    p = subprocess.Popen([agent, "--server", url, "--token", tok, "--ca", ca,
                          "--quiet", "backup", src],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        new = sessions() - seen
        if new:
            seen |= new
            got = True
            break
        time.sleep(0.005)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        if got:
            landed += 1
    else:
        finished += 1
    p.wait()
print(landed, finished)
PY
read -r landed finished < "$T/kills.out"
check_eq "17 agents killed mid-backup, each with its session open" "17 0" "$landed $finished"
check_eq "only the last killed run's session is still open" 1 "$(open_sessions "$A")"

start=$(date +%s.%N)
agent "$A" --quiet backup "$SRC" > "$T/new.out" 2> "$T/new.err"
rc=$?
took=$(python3 -c "import sys; print(round($(date +%s.%N) - $start, 2))")
cat "$T/new.err"
check_eq "a new backup of the same configuration succeeds" 0 "$rc"
check "at once (${took} s), without a warning" test ! -s "$T/new.err"
check_eq "no backup is shown in progress" 0 "$(open_sessions "$A")"
save stats "$A" GET /api/v1/stats
save clients "$ADM" GET /api/v1/clients
pycheck <<'PY'
check_eq("stats: no backups in progress", 0, J("stats")["backups_in_progress"])
alice = [c for c in J("clients")["clients"] if c["name"] == "alice"][0]
check_eq("the status page's client row: nothing in progress", 0, alice["in_progress"])
check_eq("its last result is the new backup's", "ok", alice["last_result"])
PY
check "the server logs the sessions it closed" \
	grep -q "client 'alice': 1 backup(s) in progress closed: abandoned: a new backup of the same configuration started" "$T/server.log"

# A progress report on a replaced session answers 404; the other client's
# session with the same key is not touched; a malformed key is refused.
K=0123456789abcdef0123456789abcdef
s1=$(api "$B" POST /api/v1/sessions -d "{\"host\":\"h\",\"paths\":[\"/x\"],\"config\":\"$K\"}" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
s2=$(api "$A" POST /api/v1/sessions -d "{\"host\":\"h\",\"paths\":[\"/x\"],\"config\":\"$K\"}" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
check_eq "another client's session with the same key stays open" 200 "$(api_status "$B" GET "/api/v1/sessions/$s1")"
s3=$(api "$A" POST /api/v1/sessions -d "{\"host\":\"h\",\"paths\":[\"/x\"],\"config\":\"$K\"}" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
check_eq "a replaced session is gone" 404 "$(api_status "$A" GET "/api/v1/sessions/$s2")"
check_eq "its replacement is open" 200 "$(api_status "$A" GET "/api/v1/sessions/$s3")"
check_eq "a session without a key replaces nothing" 201 "$(api_status "$A" POST /api/v1/sessions -d '{"host":"h","paths":["/x"]}')"
check_eq "the keyed one is still open" 200 "$(api_status "$A" GET "/api/v1/sessions/$s3")"
check_eq "a malformed key is refused" 400 "$(api_status "$A" POST /api/v1/sessions -d '{"host":"h","paths":["/x"],"config":"../NOT HEX"}')"

# 16 backups of other configurations in progress: the limit holds, and the
# agent says so instead of ignoring it.
for i in $(seq 1 16); do
	api_status "$B" POST /api/v1/sessions -d "{\"host\":\"h$i\",\"paths\":[\"/x\"],\"config\":\"$(printf '%032x' "$i")\"}" > /dev/null
done
check_eq "bob has 16 backups in progress" 16 "$(open_sessions "$B")"
agent "$B" --quiet backup "$T/src/small" > /dev/null 2> "$T/full.err"
check_eq "bob's backup still succeeds" 0 "$?"
check "with a warning that it is not shown in progress, saying why" \
	grep -q "^warning: the server does not show this backup as in progress: server: too many backups in progress (for this client) (429" "$T/full.err"
finish

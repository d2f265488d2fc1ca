#!/usr/bin/env bash
# The status API of docs/API.md: stats, clients (with the bytes only one
# client references), history, health, backups in progress (sessions),
# Prometheus metrics, and JSON errors everywhere.
. "$(dirname "$0")/lib.sh"

# jstr NAME KEY: a string field of the compact JSON saved as NAME.
jstr() { grep -o "\"$2\":\"[^\"]*\"" "$T/$1.json" | head -n1 | cut -d'"' -f4; }

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
B=$(token_add "$T/repo" bob)
token_add "$T/repo" carol >/dev/null
OPS=$(token_add "$T/repo" ops --admin)
server_start "$T/repo" || exit 1

mkdir -p "$T/shared" "$T/own"
seq 1 200000 > "$T/shared/numbers"
prand shared 400000 > "$T/shared/random"
prand alice-only 300000 > "$T/own/random"
agent "$A" backup "$T/shared" >/dev/null
agent "$B" backup "$T/shared" >/dev/null
ID3=$(agent "$A" backup "$T/own")

# ---- health, stats, clients, snapshots, history ----
save health "" GET /api/v1/health
mv "$T/repo/packs" "$T/repo/packs.away"
save health_ro "" GET /api/v1/health
mv "$T/repo/packs.away" "$T/repo/packs"
save health_back "" GET /api/v1/health
save stats "$OPS" GET /api/v1/stats
save stats_client "$A" GET /api/v1/stats
save clients "$OPS" GET /api/v1/clients
save clients_client "$A" GET /api/v1/clients
save manifest3 "$A" GET "/api/v1/snapshots/$ID3"
save snaps_bob "$OPS" GET '/api/v1/snapshots?client=bob'
save snaps_all "$OPS" GET /api/v1/snapshots
save snaps_self "$A" GET '/api/v1/snapshots?client=alice'
save snaps_badname "$OPS" GET '/api/v1/snapshots?client=..%2Fx'
save hist7 "$OPS" GET '/api/v1/history?days=7'
save hist_client "$A" GET /api/v1/history
save hist_default "$OPS" GET /api/v1/history
save hist_0 "$OPS" GET '/api/v1/history?days=0'
save hist_x "$OPS" GET '/api/v1/history?days=x'
save hist_big "$OPS" GET '/api/v1/history?days=99999'
pycheck "$ID3" "$(date -u +%F)" "$(df -B1 --output=avail "$T/repo" | tail -n1)" <<'PY'
id3, today, df_avail = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = J("health")
check_eq("health needs no token and says ok", ("ok", True, True), (h["status"], h["up"], h["writable"]))
check("health has the version", re.match(r"^\d+\.\d+\.\d+$", h["version"]), h)
check_eq("health names the repository (absolute) for the sign-in hint", os.path.realpath(os.path.join(T, "repo")), h.get("repository"))
check_eq("health: not writable without packs/", (False, "degraded"), (J("health_ro")["writable"], J("health_ro")["status"]))
check_eq("health: writable again", True, J("health_back")["writable"])

st = J("stats")
c0 = {x["name"]: x for x in J("clients")["clients"]}
fields = ["bytes_logical", "bytes_catalog", "bytes_unique", "bytes_stored", "dedup_ratio", "compression_ratio", "chunks",
          "packs", "snapshots", "clients", "disk_free", "disk_total", "backups_in_progress"]
check("stats has every field", all(k in st for k in fields), st)
check_eq("stats: 3 snapshots, 4 clients", (3, 4), (st["snapshots"], st["clients"]))
check("stats: dedup ratio is (logical + catalogs) / unique", abs(st["dedup_ratio"] - (st["bytes_logical"] + st["bytes_catalog"]) / st["bytes_unique"]) < 1e-9, st)
check("stats: the catalogs take some bytes", st["bytes_catalog"] > 0, st)
check("stats: compression ratio is unique / stored", abs(st["compression_ratio"] - st["bytes_unique"] / st["bytes_stored"]) < 1e-9, st)
check("stats: the text compresses (ratio > 1)", st["compression_ratio"] > 1, st)
check("stats: free disk is known", 0 < st["disk_free"] <= st["disk_total"], st)
check("stats: free disk matches df within 1%", abs(st["disk_free"] - df_avail) < st["disk_total"] / 100, (st["disk_free"], df_avail))
check_eq("a client may read the stats", 200, S("stats_client"))
# Without dedup domains too, a client token sees its own figures only.
sc = J("stats_client")
check_eq("client stats: scoped to alice", ("client", "alice"), (sc.get("scope"), sc.get("client")))
check_eq("client stats: her own 2 snapshots, not the repository's 3", 2, sc.get("snapshots"))
check("client stats: no repository field",
      not [k for k in ("chunks", "clients", "packs", "bytes_unique", "bytes_stored", "dedup_ratio",
                       "compression_ratio", "disk_free", "disk_total") if k in sc], sc)
check_eq("client stats: what only she references is the clients table's figure",
         c0["alice"]["bytes_unique"], sc.get("bytes_only_client"))
check("client stats: her logical bytes are below the repository's", 0 < sc.get("bytes_logical", 0) < st["bytes_logical"], sc)
check_eq("client stats: no quota configured", None, sc.get("quota_bytes", "missing"))
check_eq("admin stats: the repository's", "repository", st.get("scope"))

cl = J("clients")
check_eq("clients: all four, sorted", ["alice", "bob", "carol", "ops"], [c["name"] for c in cl["clients"]])
c = {x["name"]: x for x in cl["clients"]}
m3 = J("manifest3")
check_eq("alice has 2 snapshots, the last one the third backup", (2, id3), (c["alice"]["snapshots"], c["alice"]["last_snapshot"]))
check_eq("alice's last backup succeeded", "ok", c["alice"]["last_result"])
check("alice's last backup time is RFC 3339", re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", c["alice"]["last_backup_time"] or ""), c["alice"])
check("alice's last backup is fresh", c["alice"]["last_backup_age_seconds"] < 120 and not c["alice"]["stale"], c["alice"])
check_eq("alice's last new bytes are the manifest's", m3["bytes_new"], c["alice"]["last_backup_bytes_new"])
check_eq("bob's backup of the same tree was all known (0 new bytes)", 0, c["bob"]["last_backup_bytes_new"])
check_eq("bob references nothing on his own", 0, c["bob"]["bytes_unique"])
check("alice alone references her own file (and catalogs)", 300000 <= c["alice"]["bytes_unique"] < 300000 + 4096, c["alice"])
check("carol never backed up: stale", c["carol"]["stale"] and c["carol"]["snapshots"] == 0 and c["carol"]["last_backup_time"] is None, c["carol"])
check_eq("an admin that never backs up is not stale", False, c["ops"]["stale"])
check_eq("roles are shown", ("client", "admin"), (c["alice"]["role"], c["ops"]["role"]))
check_eq("the stale limit is shown (2 days by default)", 172800, cl["stale_after_seconds"])
check_eq("clients need an admin token", 403, S("clients_client"))

check_eq("admin: ?client=bob lists bob's only", {"bob"}, set(s["client"] for s in J("snaps_bob")))
check_eq("admin: all snapshots", 3, len(J("snaps_all")))
check_eq("alice: ?client=alice is fine", 2, len(J("snaps_self")))
check_eq("?client= with a bad name is 400", 400, S("snaps_badname"))

hi = J("hist7")["days"]
check_eq("history: 7 days, the last one today (UTC)", (7, today), (len(hi), hi[-1]["date"]))
check_eq("history: today's 3 snapshots", 3, hi[-1]["snapshots"])
check_eq("history: ingested adds up to the logical bytes", st["bytes_logical"], hi[-1]["total_ingested"])
check("history: per-day stored adds up", sum(d["bytes_stored"] for d in hi) == hi[-1]["total_stored"] > 0, hi)
check_eq("history for a client token is its own", 2, J("hist_client")["days"][-1]["snapshots"])
check_eq("history: 30 days by default", 30, len(J("hist_default")["days"]))
check_eq("history: days=0, x, 99999 are 400", (400, 400, 400), (S("hist_0"), S("hist_x"), S("hist_big")))
PY

# ---- backups in progress ----
save s1 "$A" POST /api/v1/sessions --data-binary "{\"host\": \"ann-laptop\", \"paths\": [\"$T/shared\"]}"
S1=$(jstr s1 id)
save s1_update "$A" POST "/api/v1/sessions/$S1" --data-binary '{"files": 1, "bytes_done": 1000, "phase": "backup"}'
# uploads of alice while the session is open count towards it (an upload
# straight through the API: the agent opens a session of its own)
prand during-session 200000 > "$T/during-session"
bundle_raw "$(sha256sum < "$T/during-session" | cut -c1-64)" "$T/during-session" > "$T/during-session.bin"
api "$A" POST /api/v1/chunks --data-binary @"$T/during-session.bin" >/dev/null
save sess_admin "$OPS" GET /api/v1/sessions
save sess_bob "$B" GET /api/v1/sessions
save s1_bob_get "$B" GET "/api/v1/sessions/$S1"
save s1_bob_post "$B" POST "/api/v1/sessions/$S1" --data-binary '{"files": 9}'
save stats_running "$OPS" GET /api/v1/stats
save clients_running "$OPS" GET /api/v1/clients
api "$OPS" GET /metrics > "$T/metrics_running.txt"
# the snapshot create that names the session closes it
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(json.dumps({"host": "ann-laptop", "paths": m["paths"], "catalog": m["catalog"], "time_start": m["unix_time"], "bytes_new": 0}))' "$T/manifest3.json" > "$T/snapreq.json"
save snap_badsession "$A" POST '/api/v1/snapshots?session=xyz' --data-binary @"$T/snapreq.json"
save snap_session "$A" POST "/api/v1/snapshots?session=$S1" --data-binary @"$T/snapreq.json"
save s1_after "$A" GET "/api/v1/sessions/$S1"
save stats_after "$OPS" GET /api/v1/stats
# a failed backup
save s2 "$A" POST /api/v1/sessions --data-binary '{"host": "h", "paths": ["/x"]}'
save s2_fail "$A" POST "/api/v1/sessions/$(jstr s2 id)" --data-binary '{"state": "failed", "error": "disk on fire"}'
save clients_failed "$OPS" GET /api/v1/clients
# malformed session requests
save bad_nohost "$A" POST /api/v1/sessions --data-binary '{"paths": ["/x"]}'
save bad_relative "$A" POST /api/v1/sessions --data-binary '{"host": "h", "paths": ["x"]}'
save bad_json "$A" POST /api/v1/sessions --data-binary '{"host": '
head -c 70000 /dev/zero > "$T/70k"
save bad_big "$A" POST /api/v1/sessions --data-binary @"$T/70k" -H 'Expect:'
save s3 "$A" POST /api/v1/sessions --data-binary '{"host": "h", "paths": ["/x"]}'
S3=$(jstr s3 id)
save bad_negative "$A" POST "/api/v1/sessions/$S3" --data-binary '{"files": -1}'
save bad_state "$A" POST "/api/v1/sessions/$S3" --data-binary '{"state": "paused"}'
save bad_phase "$A" POST "/api/v1/sessions/$S3" --data-binary '{"phase": "<script>"}'
save bad_unknown "$A" POST /api/v1/sessions/0123456789abcdef0123456789abcdef --data-binary '{"files": 1}'
pycheck "$S1" <<'PY'
s1 = sys.argv[1]
check_eq("opening a session is 201", 201, S("s1"))
check("the session id is 32 hex digits", re.match(r"^[0-9a-f]{32}$", s1), s1)
alice_shared = [s for s in J("snaps_all") if s["client"] == "alice"][0]
check_eq("its expected size is the last backup of the same paths", alice_shared["bytes_total"], J("s1")["expected_bytes"])
u = J("s1_update")
check_eq("a progress update is stored", (1, 1000, "backup"), (u["files"], u["bytes_done"], u["phase"]))
check("progress is done / expected", abs(u["progress"] - 1000 / u["expected_bytes"]) < 1e-6, u)
ss = J("sess_admin")
check_eq("admin sees the backup in progress", [s1], [s["id"] for s in ss])
check("the server counted alice's uploads in it", ss[0]["uploaded_chunks"] >= 1 and ss[0]["uploaded_bytes"] > 0, ss)
check_eq("bob does not see alice's session", [], J("sess_bob"))
check_eq("bob can neither read nor update it", (404, 404), (S("s1_bob_get"), S("s1_bob_post")))
check_eq("stats count it", 1, J("stats_running")["backups_in_progress"])
check_eq("clients count it", 1, {c["name"]: c for c in J("clients_running")["clients"]}["alice"]["in_progress"])
met = open(os.path.join(T, "metrics_running.txt")).read()
check("metrics count it", "\ndedup_backups_in_flight 1\n" in met)
check_eq("a snapshot with a malformed session id is 400", 400, S("snap_badsession"))
check_eq("the snapshot create with ?session= is 201", 201, S("snap_session"))
check_eq("and closes the session", 404, S("s1_after"))
check_eq("nothing is in progress any more", 0, J("stats_after")["backups_in_progress"])
check_eq("failing a session is 200", 200, S("s2_fail"))
a = {c["name"]: c for c in J("clients_failed")["clients"]}["alice"]
check_eq("alice's last result is the failure", ("failed", "disk on fire"), (a["last_result"], a["last_error"]))
for name in ["bad_nohost", "bad_relative", "bad_json", "bad_negative", "bad_state", "bad_phase"]:
    check_eq("malformed session request %s is 400" % name, 400, S(name))
check_eq("session body over 64 KiB is 413", 413, S("bad_big"))
check_eq("an unknown session is 404", 404, S("bad_unknown"))
PY

# ---- metrics ----
save met_none "" GET /metrics
save met_client "$A" GET /metrics
curl -sS --cacert "$CA" -H "Authorization: Bearer $OPS" -D "$T/met.headers" -o "$T/metrics.txt" "$URL/metrics"
save st_now "$OPS" GET /api/v1/stats
pycheck <<'PY'
check_eq("metrics need an (admin) token", (401, 403), (S("met_none"), S("met_client")))
hdr = open(os.path.join(T, "met.headers")).read().lower()
check("metrics are Prometheus text", "content-type: text/plain; version=0.0.4" in hdr, hdr)
text = open(os.path.join(T, "metrics.txt")).read()
typed, seen, bad = {}, set(), []
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.e+]+|\+Inf|NaN)$')
for line in text.splitlines():
    if line.startswith("# HELP "):
        continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        typed[name] = kind
        continue
    m = sample.match(line)
    base = re.sub(r"_(bucket|sum|count)$", "", m.group(1)) if m else None
    if not m or not (m.group(1) in typed or base in typed):
        bad.append(line)
    else:
        seen.add(m.group(1))
check_eq("every metrics line parses and has a TYPE", [], bad)
check("types are counter, gauge or histogram", set(typed.values()) <= {"counter", "gauge", "histogram"}, typed)
want = ["dedup_http_requests_total", "dedup_http_received_bytes_total", "dedup_http_sent_bytes_total",
        "dedup_chunks_stored_total", "dedup_ingest_duration_seconds_bucket",
        "dedup_ingest_duration_seconds_count", "dedup_backups_in_flight",
        "dedup_last_backup_age_seconds", "dedup_last_backup_timestamp_seconds", "dedup_disk_free_bytes",
        "dedup_stored_bytes", "dedup_logical_bytes", "dedup_snapshots"]
check_eq("every series is there", [], [w for w in want if w not in seen])
check("last backup age per client", re.search(r'^dedup_last_backup_age_seconds\{client="alice"\} \d+$', text, re.M))
check("requests by method and code", re.search(r'^dedup_http_requests_total\{method="GET",code="200"\} [1-9]', text, re.M))
check("chunks stored are counted", re.search(r"^dedup_chunks_stored_total [1-9]", text, re.M))
check("the ingest histogram counted the uploads", re.search(r'^dedup_ingest_duration_seconds_bucket\{le="\+Inf"\} [1-9]', text, re.M))
check("bytes in and out are counted", re.search(r"^dedup_http_received_bytes_total [1-9]", text, re.M) and re.search(r"^dedup_http_sent_bytes_total [1-9]", text, re.M))
check_eq("metrics count the backups by result", (True, True),
         (bool(re.search(r'^dedup_backups_finished_total\{result="failed"\} 1$', text, re.M)),
          bool(re.search(r'^dedup_backups_finished_total\{result="ok"\} [1-9]', text, re.M))))
stored = re.search(r"^dedup_stored_bytes (\d+)$", text, re.M)
check_eq("stored bytes agree with the stats", J("st_now")["bytes_stored"], int(stored.group(1)) if stored else None)
PY

# ---- every error is JSON ----
n=0
for req in "GET /api/v1/nothing" "DELETE /api/v1/stats" "GET /api/v1/snapshots/zz" "GET /api/v1/clients" \
           "POST /api/v1/sessions" "GET /nothing.html" "GET /api/v1/history?days=-1"; do
	save "err$n" "$A" ${req%% *} "${req#* }"
	n=$((n + 1))
done
save "err$n" "" GET /api/v1/stats
pycheck "$n" <<'PY'
got = []
for i in range(int(sys.argv[1]) + 1):
    try:
        e = J("err%d" % i)["error"]
    except Exception as x:
        e = None
    got.append((S("err%d" % i), bool(e)))
check_eq("404, 405, 403, 400 and 401 answers are JSON errors",
         [(404, True), (405, True), (404, True), (403, True), (400, True), (404, True), (400, True), (401, True)], got)
PY

# ---- abandoned sessions time out ----
server_stop TERM
server_start "$T/repo" --set session_timeout=1s || exit 1
save s4 "$B" POST /api/v1/sessions --data-binary '{"host": "h", "paths": ["/y"]}'
save st_s4 "$OPS" GET /api/v1/stats
sleep 2.2
save st_s4_after "$OPS" GET /api/v1/stats
save clients_s4 "$OPS" GET /api/v1/clients
save health_end "" GET /api/v1/health
pycheck <<'PY'
check_eq("a session is open", 1, J("st_s4")["backups_in_progress"])
check_eq("after the timeout it is gone", 0, J("st_s4_after")["backups_in_progress"])
b = {c["name"]: c for c in J("clients_s4")["clients"]}["bob"]
check("and counts as a failed backup (abandoned)", b["last_result"] == "failed" and b["last_error"].startswith("abandoned"), b)
check_eq("the server still serves", 200, S("health_end"))
PY

# A real agent backup opens its own session, which an admin sees while the
# backup runs, and closes it at the end.
mkdir -p "$T/agent-session" && prand agent-session $((160 * 1024 * 1024)) > "$T/agent-session/f"
agent "$A" backup "$T/agent-session" > /dev/null &
apid=$!
seen=
for i in $(seq 1 500); do
	if api "$OPS" GET /api/v1/sessions | head -n1 | grep -q "agent-session"; then seen=1; break; fi
	kill -0 "$apid" 2>/dev/null || break
	sleep 0.02
done
wait "$apid"; arc=$?
check_eq "the agent's backup succeeds" 0 "$arc"
check_eq "an admin saw it in progress" 1 "${seen:-0}"
save sess_after_agent "$OPS" GET /api/v1/sessions
pycheck <<'PY'
check_eq("no session is left open by the agent", [], [s for s in J("sess_after_agent") if s["client"] == "alice"])
PY
rm -f "$T/agent-session/f"
finish

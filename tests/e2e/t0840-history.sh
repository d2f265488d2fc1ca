#!/usr/bin/env bash
# History a client cannot abuse (issue 11, items 3, 5, 6):
#  - a create naming one catalog chunk 65,536 times is refused at once;
#  - a stream of creates holding the commit lock does not starve gc;
#  - a time_start in year 9999 is refused, and a future-dated manifest left
#    by an older server neither becomes "latest" nor makes prune drop the
#    real history (the server's write time decides);
#  - GET /snapshots pages (limit, cursor, order) over 250 snapshots made by
#    API, items without catalogs, while the server's memory stays flat;
#  - max_snapshots_per_client and quota_bytes answer 507 naming the figures,
#    and /api/v1/clients (what the status page shows) reports the quota.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
B=$(token_add "$R" bob)
C=$(token_add "$R" carol)
D=$(token_add "$R" dave)
ADM=$(token_add "$R" boss --admin)
server_start "$R" || exit 1

# h.py: catalogs and bundles built by hand, and many requests from one
# Python process (see each command).
cat > "$T/h.py" <<'PY'
import hashlib, json, os, ssl, struct, sys, threading, time, urllib.request
import urllib.error

def req(method, path, token, body=None):
    ctx = ssl.create_default_context(cafile=os.environ["CA"])
    r = urllib.request.Request(os.environ["URL"] + path, data=body, method=method,
                               headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(r, context=ctx, timeout=120) as f:
            return f.status, f.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

def entry(typ, path, data_chunks):
    refs = b"".join(cid + struct.pack("<I", n) for cid, n in data_chunks)
    size = sum(n for _, n in data_chunks)
    mode = 0o644 if typ == 1 else 0o755
    return struct.pack("<BBHIIIqIqIQQQIIIQ", typ, 0, 0, mode, 0, 0, 1, 0, 1, 0,
                       1, 1, size, len(path), 0, 0, len(data_chunks)) + path + refs

def bundle(chunks):
    b = bytearray(b"DDBN" + struct.pack("<II", 1, len(chunks)))
    for k, v in chunks.items():
        b += k + struct.pack("<III", 0, len(v), len(v)) + v
    return bytes(b)

cmd = sys.argv[1]
if cmd == "mkcat":
    # mkcat TOKEN FILES [missing]: uploads a catalog of FILES files sharing
    # one data chunk (and, with "missing", a last file naming a chunk that
    # is not stored, so a create reads everything, then fails); prints the
    # catalog id.
    tok, nfiles = sys.argv[2], int(sys.argv[3])
    data = b"hi"
    did = hashlib.sha256(data).digest()
    cat = bytearray(b"DDCT" + struct.pack("<I", 2)) + entry(2, b"d", [])
    for i in range(nfiles):
        cat += entry(1, b"d/f%07d" % i, [(did, 2)])
    if len(sys.argv) > 4 and sys.argv[4] == "missing":
        cat += entry(1, b"d/zz", [(hashlib.sha256(b"absent").digest(), 6)])
    chunks = {did: data}
    if len(sys.argv) > 4 and sys.argv[4] == "split":
        # the header and "d" in one chunk, the files in another: a catalog
        # naming the second one again and again reads as a long catalog
        # to a reader that does not check the order
        head = bytes(cat[:8 + 84 + 1])
        rest = bytes(cat[8 + 84 + 1:])
        ids = [hashlib.sha256(head).digest(), hashlib.sha256(rest).digest()]
        chunks.update({ids[0]: head, ids[1]: rest})
    else:
        ids = [hashlib.sha256(bytes(cat)).digest()]
        chunks[ids[0]] = bytes(cat)
    st, body = req("POST", "/api/v1/chunks", tok, bundle(chunks))
    assert st == 200, (st, body)
    print(" ".join(i.hex() for i in ids))
elif cmd == "create":
    # create TOKEN CATID COPIES TIME_START [HEADID]: one create of CATID
    # COPIES times (after HEADID); prints status, seconds taken, and the
    # new id or the reply's first 300 bytes.
    tok, cid, copies, ts = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    head = sys.argv[6:7]
    body = json.dumps({"host": "h", "paths": ["/d"], "catalog": head + [cid] * copies,
                       "time_start": ts}).encode()
    t0 = time.time()
    st, out = req("POST", "/api/v1/snapshots", tok, body)
    secs = "%.2f" % (time.time() - t0)
    if st == 201:
        print(st, secs, json.loads(out)["id"])
    else:
        print(st, secs, out[:300].decode(errors="replace").strip())
elif cmd == "many":
    # many TOKEN CATID N NPATHS: N snapshots, each naming NPATHS long
    # paths; prints their ids, or the first failure.
    tok, cid, n, npaths = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    paths = ["/srv/" + ("p%04d-" % i) + "x" * 300 for i in range(npaths)]
    for i in range(n):
        body = json.dumps({"host": "h", "paths": paths, "catalog": [cid],
                           "time_start": int(time.time())}).encode()
        st, out = req("POST", "/api/v1/snapshots", tok, body)
        if st != 201:
            print("failed", st, out[:200])
            sys.exit(1)
        print(json.loads(out)["id"])
elif cmd == "flood":
    # flood TOKEN CATID THREADS SECONDS STOPFILE: THREADS threads, each on
    # one kept-alive connection, post the create until STOPFILE exists or
    # SECONDS pass; prints the count.
    import http.client, urllib.parse
    tok, cid, nt, secs, stop = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    body = json.dumps({"host": "h", "paths": ["/d"], "catalog": [cid],
                       "time_start": int(time.time())}).encode()
    u = urllib.parse.urlparse(os.environ["URL"])
    ctx = ssl.create_default_context(cafile=os.environ["CA"])
    end = time.time() + secs
    counts = []
    def run():
        n = 0
        c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=300)
        while time.time() < end and not os.path.exists(stop):
            c.request("POST", "/api/v1/snapshots", body,
                      {"Authorization": "Bearer " + tok})
            c.getresponse().read()
            n += 1
            if n == 1:
                open(stop + ".started", "w").close()
        counts.append(n)
    ts = [threading.Thread(target=run) for _ in range(nt)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(sum(counts))
elif cmd == "timed":
    # timed TOKEN METHOD PATH BODY: prints status and seconds.
    t0 = time.time()
    st, out = req(sys.argv[3], sys.argv[4], sys.argv[2], sys.argv[5].encode())
    print(st, "%.2f" % (time.time() - t0))
PY
h() { python3 "$T/h.py" "$@"; }
export T

# ---- item 3: catalog amplification ----
CAT1=$(h mkcat "$A" 3)
check "a small catalog is stored" test -n "$CAT1"
read -r HEAD BODY <<<"$(h mkcat "$A" 10 split)"
read -r st secs rest <<<"$(h create "$A" "$BODY" 1 "$(date +%s)" "$HEAD")"
check_eq "a catalog in two chunks (header, 10 files): 201" 201 "$st"
read -r st secs rest <<<"$(h create "$A" "$BODY" 65535 "$(date +%s)" "$HEAD")"
check_eq "the files' chunk named 65,535 times: 400" 400 "$st"
check "refused within 5 s (took $secs s)" python3 -c "import sys; sys.exit(not float('$secs') < 5)"
check "naming the repeated chunk" grep -q "names chunk $BODY more than once" <<<"$rest"
read -r st secs rest <<<"$(h create "$A" "$BODY" 2 "$(date +%s)" "$HEAD")"
check_eq "even twice: 400" 400 "$st"
read -r st secs rest <<<"$(h create "$A" "$CAT1" 1 "$(date +%s)")"
check_eq "one copy: 201" 201 "$st"

# A stream of creates that each read a 50,000-entry catalog under the
# commit lock (and then fail: a missing chunk, so nothing piles up), while
# gc is asked for: gc must get its turn.
SLOW=$(h mkcat "$A" 50000 missing)
read -r st secs rest <<<"$(h create "$A" "$SLOW" 1 "$(date +%s)")"
check_eq "the slow catalog fails as meant (missing chunk): 409" 409 "$st"
read -r st idle <<<"$(h timed "$ADM" POST /api/v1/gc '{"dry_run": true}')"
check_eq "gc alone: 200" 200 "$st"
rm -f "$T/stop"
h flood "$A" "$SLOW" 12 60 "$T/stop" > "$T/flood.out" &
FLOOD=$!
for i in $(seq 1 600); do [ -e "$T/stop.started" ] && break; sleep 0.1; done
check "the stream is under way" test -e "$T/stop.started"
read -r st busy <<<"$(h timed "$ADM" POST /api/v1/gc '{"dry_run": true}')"
touch "$T/stop"
wait "$FLOOD"
check_eq "gc during a stream of creates: 200" 200 "$st"
check "and done in under 15 s (took $busy s, $idle s idle; $(cat "$T/flood.out") creates)" python3 -c "import sys; sys.exit(not float('$busy') < 15)"
check "the creates kept coming meanwhile" test "$(cat "$T/flood.out")" -gt 12

# ---- item 6: the server's clock decides ----
read -r st secs rest <<<"$(h create "$A" "$CAT1" 1 253402300799)"
check_eq "time_start in year 9999: 400" 400 "$st"
check "saying it is ahead of the server's clock" grep -q "ahead of the server's clock" <<<"$rest"
read -r st secs rest <<<"$(h create "$A" "$CAT1" 1 $(( $(date +%s) + 600 )))"
check_eq "10 minutes of clock skew: 201" 201 "$st"
read -r st secs rest <<<"$(h create "$A" "$CAT1" 1 "$(date +%s)")"
REAL_NEWEST=$rest
check_eq "a real newest snapshot" 201 "$st"
check "the manifest records the server's write time" grep -q '"written_ns":' "$R/snapshots/$REAL_NEWEST.json"

# A future-dated manifest an older server accepted: no written_ns, its
# time_end (the server's clock then) a day ago.
server_stop TERM
python3 - "$R/snapshots" "$REAL_NEWEST" <<'PY'
import json, os, sys, time
d, src = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(d, src + ".json")))
m["id"] = "f" * 64
m["unix_time"] = 253402300799
m["time"] = "9999-12-31T23:59:59Z"
m["time_end"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
del m["written_ns"], m["unix_written"]
open(os.path.join(d, m["id"] + ".json"), "w").write(json.dumps(m) + "\n")
PY
server_start "$R" || exit 1
save newest "$A" GET '/api/v1/snapshots?order=newest&limit=1'
save alist "$A" GET /api/v1/snapshots
agent "$A" snapshots --json > "$T/agent_list.json"
NA=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/alist.json")
save plan "$ADM" POST /api/v1/prune --data-binary "{\"client\": \"alice\", \"policy\": {\"keep_last\": $((NA - 1))}, \"dry_run\": true}"
pycheck "$REAL_NEWEST" <<'PY'
real = sys.argv[1]
fake = "f" * 64
check_eq("latest (newest first, one item) is the real newest", real, J("newest")[0]["id"])
lst = J("alist")
check_eq("the list ends with the real newest", real, lst[-1]["id"])
check_eq("the planted one sorts by its server time (a day ago): first", fake, lst[0]["id"])
check("written times ascend", all(a["unix_written"] <= b["unix_written"] for a, b in zip(lst, lst[1:])))
ag = json.load(open(os.path.join(T, "agent_list.json")))
check("the agent lists the same, in the same order", [m["id"] for m in lst] == [m["id"] for m in ag])
plan = {s["id"]: s["action"] for s in J("plan")["snapshots"]}
check_eq("prune keep_last=N-1 drops only the planted one", [fake], sorted(i for i, a in plan.items() if a == "remove"))
check_eq("every real snapshot is kept", ["keep"], sorted(set(a for i, a in plan.items() if i != fake)))
PY

# ---- item 5: paging 250 snapshots, memory flat ----
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status"; }
CATB=$(h mkcat "$B" 2)
RSS0=$(rss)
h many "$B" "$CATB" 250 200 > "$T/bob.ids"
check_eq "250 snapshots of 60 KiB of paths each made by API" 250 "$(grep -c '^[0-9a-f]\{64\}$' "$T/bob.ids")"
RSS1=$(rss)
if grep -q __asan_init "$SERVER"; then
	ok "server RSS not measured under ASan (its quarantine keeps freed memory)"
else
	check "server RSS grew by less than 8 MiB (${RSS0} -> ${RSS1} kB; the manifests hold 15 MiB)" test $((RSS1 - RSS0)) -lt 8192
fi
save p1 "$B" GET '/api/v1/snapshots?limit=100'
CUR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[-1]["cursor"])' "$T/p1.json")
save p2 "$B" GET "/api/v1/snapshots?limit=100&after=$CUR"
CUR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[-1]["cursor"])' "$T/p2.json")
save p3 "$B" GET "/api/v1/snapshots?limit=100&after=$CUR"
save n1 "$B" GET '/api/v1/snapshots?limit=100&order=newest'
save lim0 "$B" GET '/api/v1/snapshots?limit=0'
save lim1001 "$B" GET '/api/v1/snapshots?limit=1001'
save badcur "$B" GET '/api/v1/snapshots?after=xyz'
save badorder "$B" GET '/api/v1/snapshots?order=sideways'
save dflt "$B" GET /api/v1/snapshots
save one "$B" GET "/api/v1/snapshots/$(head -n1 "$T/bob.ids")"
save adm "$ADM" GET '/api/v1/snapshots?client=bob&limit=7'
agent "$B" snapshots --json > "$T/bob_agent.json"
agent "$B" snapshots > "$T/bob_table.txt"
pycheck <<'PY'
ids = open(os.path.join(T, "bob.ids")).read().split()
pages = [J("p1"), J("p2"), J("p3")]
check_eq("pages of 100, 100, 50", [100, 100, 50], [len(p) for p in pages])
got = [m["id"] for p in pages for m in p]
check("together: every snapshot once, in creation order", ids == got, "%d items" % len(got))
check("items carry no catalog", all("catalog" not in m for p in pages for m in p))
check("but its size and a cursor", all(m["catalog_chunks"] == 1 and m["cursor"] for p in pages for m in p))
check("newest first: the reverse", ids[::-1][:100] == [m["id"] for m in J("n1")])
for name in ("lim0", "lim1001", "badcur", "badorder"):
    check_eq("bad paging argument %s: 400" % name, 400, S(name))
check("limit's range is named", "limit must be 1 to 1000" in J("lim0")["error"], J("lim0"))
check_eq("no limit: the default page (all 250 here)", 250, len(J("dflt")))
check_eq("GET by id gives the full manifest with its catalog", 1, len(J("one")["catalog"]))
check_eq("an admin pages another client's", ids[:7], [m["id"] for m in J("adm")])
ag = json.load(open(os.path.join(T, "bob_agent.json")))
check("the agent's list pages through all 250", ids == [m["id"] for m in ag], "%d items" % len(ag))
check_eq("its table too (a header and 250 rows)", 251, len(open(os.path.join(T, "bob_table.txt")).read().splitlines()))
PY
# A manifest damaged on disk keeps its place in the list, marked.
BAD=$(sed -n 7p "$T/bob.ids")
cp "$R/snapshots/$BAD.json" "$T/bad.keep"
printf 'not json' > "$R/snapshots/$BAD.json"
save dmg "$B" GET '/api/v1/snapshots?limit=10'
pycheck "$BAD" <<'PY'
items = {m["id"]: m for m in J("dmg")}
check_eq("a damaged manifest is still listed in its place", 10, len(items))
check("marked damaged, with the reason", items.get(sys.argv[1], {}).get("damaged") is True and "error" in items[sys.argv[1]], items.get(sys.argv[1]))
PY
check_eq "the server still serves" 200 "$(api_status "$B" GET /api/v1/snapshots?limit=1)"
cp "$T/bad.keep" "$R/snapshots/$BAD.json"

# ---- item 5: per-client snapshot limit and storage quota ----
server_stop TERM
cat > "$T/server.conf" <<CONF
max_snapshots_per_client = 250
quota_bytes = 1G
client.carol.quota_bytes = 4K
CONF
server_start "$R" --config "$T/server.conf" || exit 1
read -r st secs rest <<<"$(h create "$B" "$CATB" 1 "$(date +%s)")"
check_eq "bob at the limit of 250: 507" 507 "$st"
check "naming count and limit" grep -q "client 'bob' has 250 snapshots, the limit is 250 (max_snapshots_per_client)" <<<"$rest"
read -r st secs rest <<<"$(h create "$A" "$CAT1" 1 "$(date +%s)")"
check_eq "alice below it: 201" 201 "$st"

mkdir -p "$T/src"
prand quota1 20000 > "$T/src/a"
agent "$C" backup "$T/src" > "$T/c1.out" 2>&1
check_eq "carol's first backup (nothing stored yet) succeeds" 0 $?
prand quota2 20000 > "$T/src/b"
agent "$C" backup "$T/src" > "$T/c2.out" 2>&1
check "her next one fails" test $? -ne 0
check "saying the quota is exceeded, with the figures" grep -qE "storage quota exceeded: client 'carol' uses [0-9]+ bytes, its quota is 4096 bytes" "$T/c2.out"
save cup "$C" POST /api/v1/chunks --data-binary @/dev/null
check_eq "an upload by carol: 507" 507 "$(cat "$T/cup.status")"
CATC=$(h mkcat "$D" 1)
read -r st secs rest <<<"$(h create "$C" "$CATC" 1 "$(date +%s)")"
check_eq "a snapshot create by carol: 507" 507 "$st"
check "with the quota message" grep -q "storage quota exceeded" <<<"$rest"
save clients "$ADM" GET /api/v1/clients
mkdir -p "$T/dsrc"
prand quota3 20000 > "$T/dsrc/a"
agent "$D" backup "$T/dsrc" > "$T/d1.out" 2>&1
check_eq "dave (1G quota) backs up" 0 $?
pycheck <<'PY'
cl = {c["name"]: c for c in J("clients")["clients"]}
c = cl["carol"]
check_eq("carol's quota is reported", 4096, c["quota_bytes"])
check("she is over it", c["over_quota"] and c["bytes_unique"] >= 4096 and c["quota_used_percent"] >= 100, c)
check_eq("dave's is the global 1G", 1 << 30, cl["dave"]["quota_bytes"])
check("and he is not over it", not cl["dave"]["over_quota"], cl["dave"])
check_eq("the snapshot limit is reported", 250, cl["bob"]["snapshots_limit"])
PY
printf 'quota_bytes = lots\n' > "$T/bad.conf"
"$SERVER" serve --config "$T/bad.conf" --repo "$R" --listen 127.0.0.1:0 > /dev/null 2> "$T/bad.err"
check "a bad quota value stops the server with the line and key" grep -q "bad.conf:1: invalid value 'lots' for 'quota_bytes'" "$T/bad.err"
finish

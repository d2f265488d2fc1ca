#!/usr/bin/env bash
# Dedup domains (docs/SECURITY.md, "Dedup domains"): a client learns only
# of chunks its own domain stored. Client A (domain a) backs up a file
# holding a 4-digit PIN; client B (domain b) asks about every one of the
# 10,000 candidate files through /chunks/missing and through the upload
# reply (and /stats) and learns nothing; a second client of domain a, and
# two clients of the shared default domain, do find it (the documented
# shared-domain behaviour). B backing up the same content then counts as
# present for B and is stored once. The per-token rate limit on
# /chunks/missing answers 429 with Retry-After, and the agent waits and
# completes its backup. GET /chunks/ID, /chunks/fetch and a snapshot's
# references answer by domain as well. gc, check, repair --rebuild-index
# (which gives each domain back what its snapshots use) and restores after
# mixed-domain uploads stay clean and identical.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice --domain a)
A2=$(token_add "$R" carol --domain a)
B=$(token_add "$R" bob --domain b)
D1=$(token_add "$R" dave)
D2=$(token_add "$R" erin)
ADM=$(token_add "$R" boss --admin)
check "token list shows the domains" grep -qE '^bob +client .* b$' <("$SERVER" token list --repo "$R")
check "a client without --domain is in the default domain" grep -qE '^dave +client .* default$' <("$SERVER" token list --repo "$R")
check "token add refuses a bad domain name" not "$SERVER" token add --repo "$R" --domain '../x' mallory
check_eq "clients.json records that domains are used" True \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("domains_used"))' "$R/clients.json")"

PIN=4821
mkdir -p "$T/a" "$T/d"
printf 'PIN=%04d\n' "$PIN" > "$T/a/pin.txt"
prand shared 2000000 > "$T/a/shared.bin"
prand only-a 300000 > "$T/a/only-a.bin"
printf 'PIN=%04d\n' 1234 > "$T/d/pin.txt"

server_start "$R" || exit 1
ID_A=$(json_get "$(agent "$A" backup --json "$T/a")" snapshot_id)
check "A backs up" test -n "$ID_A"
ID_D=$(json_get "$(agent "$D1" backup --json "$T/d")" snapshot_id)
check "dave (default domain) backs up" test -n "$ID_D"

# attack.py TOKEN MODE [PREFIX]: every candidate file "PIN=0000\n" ..
# "PIN=9999\n"; MODE missing: one /chunks/missing request for all their
# ids, prints the PINs answered present; MODE upload: uploads them all in
# one bundle (raw records) and prints the reply's "duplicates"; MODE stats:
# uploads them one by one and prints the PINs whose upload left /stats'
# chunk counter unchanged (the counters, if shown, would tell).
cat > "$T/attack.py" <<'PY'
import hashlib, json, os, ssl, struct, sys, urllib.request, urllib.error
tok, mode = sys.argv[1], sys.argv[2]
url, ctx = os.environ["URL"], ssl.create_default_context(cafile=os.environ["CA"])
cands = [b"PIN=%04d\n" % i for i in range(10000)]
ids = [hashlib.sha256(c).digest() for c in cands]
def req(method, path, body=None, ctype="application/octet-stream"):
    r = urllib.request.Request(url + path, data=body, method=method, headers={
        "Authorization": "Bearer " + tok, "Content-Type": ctype})
    try:
        with urllib.request.urlopen(r, context=ctx) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers
def bundle(items):
    b = bytearray(b"DDBN" + struct.pack("<II", 1, len(items)))
    for c in items:
        b += hashlib.sha256(c).digest() + struct.pack("<III", 0, len(c), len(c)) + c
    return bytes(b)
if mode == "missing":
    st, body, _ = req("POST", "/api/v1/chunks/missing", b"".join(ids))
    assert st == 200, (st, body)
    present = [i for i in range(len(ids)) if not body[i // 8] & (1 << (i % 8))]
    print(" ".join("%04d" % i for i in present))
elif mode == "upload":
    st, body, _ = req("POST", "/api/v1/chunks", bundle(cands))
    assert st == 200, (st, body)
    print(json.loads(body)["duplicates"])
elif mode == "stats":
    lo, hi = int(sys.argv[3]), int(sys.argv[4])
    found = []
    def chunks():
        st, body, _ = req("GET", "/api/v1/stats")
        return json.loads(body).get("chunks")
    before = chunks()
    for i in range(lo, hi):
        st, body, _ = req("POST", "/api/v1/chunks", bundle([cands[i]]))
        after = chunks()
        if after is not None and after == before:
            found.append("%04d" % i)
        before = after
    print(" ".join(found) if before is not None else "hidden")
elif mode in ("get", "fetch", "create"):
    # MODE LO HI: asks for each candidate's chunk by GET /chunks/ID, by
    # /chunks/fetch, or names it as a snapshot's catalog; prints the PINs
    # answered otherwise than an id nothing holds (404, 404, 409).
    import http.client, urllib.parse
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
    hdrs = {"Authorization": "Bearer " + tok}
    absent = {"get": 404, "fetch": 404, "create": 409}[mode]
    found = []
    for i in range(int(sys.argv[3]), int(sys.argv[4])):
        if mode == "get":
            conn.request("GET", "/api/v1/chunks/" + ids[i].hex(), headers=hdrs)
        elif mode == "fetch":
            conn.request("POST", "/api/v1/chunks/fetch", body=ids[i], headers=hdrs)
        else:
            body = json.dumps({"host": "h", "paths": ["/x"], "catalog": [ids[i].hex()],
                               "time_start": 1700000000}).encode()
            conn.request("POST", "/api/v1/snapshots", body=body,
                         headers=dict(hdrs, **{"Content-Type": "application/json"}))
        r = conn.getresponse()
        r.read()
        if r.status != absent:
            found.append("%04d" % i)
    print(" ".join(found))
elif mode in ("repeats", "fetchrep"):
    # MODE NAME...: the ids of PIN=4821 (a), PIN=1234 (d, the default
    # domain's) and PIN=0000 (x, nobody's), in the order given, asked in
    # one request. repeats: /chunks/missing, prints 1 for each missing,
    # 0 for each present; fetchrep: /chunks/fetch, prints the status and
    # the reply's record count.
    pick = {"a": ids[4821], "d": ids[1234], "x": ids[0]}
    ask = [pick[c] for c in sys.argv[3:]]
    if mode == "repeats":
        st, body, _ = req("POST", "/api/v1/chunks/missing", b"".join(ask))
        assert st == 200, (st, body)
        print("".join("1" if body[i // 8] & (1 << (i % 8)) else "0" for i in range(len(ask))))
    else:
        st, body, _ = req("POST", "/api/v1/chunks/fetch", b"".join(ask))
        print(st, struct.unpack("<I", body[8:12])[0] if st == 200 else "-")
elif mode == "put":
    # put TEXT...: uploads each TEXT as one chunk, prints /stats after each
    out = [json.loads(req("GET", "/api/v1/stats")[1])]
    for t in sys.argv[3:]:
        st, body, _ = req("POST", "/api/v1/chunks", bundle([t.encode()]))
        assert st == 200, (st, body)
        out.append(json.loads(req("GET", "/api/v1/stats")[1]))
    print(json.dumps(out))
PY
attack() { URL=$URL CA=$CA python3 "$T/attack.py" "$@"; }

# 1. B guesses every candidate: nothing is present, the real PIN included.
check_eq "B (domain b): /chunks/missing finds none of the 10,000 candidates" "" "$(attack "$B" missing)"
check_eq "carol (domain a, as A): /chunks/missing finds A's PIN" "$PIN" "$(attack "$A2" missing)"
check_eq "erin (default domain, as dave): finds dave's PIN, not A's" "1234" "$(attack "$D2" missing)"
# Ids named again in one request are looked up once, each answered as its
# first (repeats made another domain's chunk measurably slower to answer
# than an absent one: 65,536 repeats took 27 ms against 11 ms to fetch,
# 51 ms against 18 ms to ask about).
check_eq "repeated ids: B finds none" 111111111 "$(attack "$B" repeats a d x a d x a a d)"
check_eq "repeated ids: dave finds his each time, A's none" 101101110 "$(attack "$D1" repeats a d x a d x a a d)"
check_eq "repeated ids: carol finds A's each time" 011011001 "$(attack "$A2" repeats a d x a d x a a d)"
check_eq "fetch with repeats: dave gets his chunk three times" "200 3" "$(attack "$D1" fetchrep d d d)"
check_eq "B's fetch of A's chunk, repeated: 404 as for nobody's" "404 -" "$(attack "$B" fetchrep a a a)"
check_eq "B's fetch of nobody's chunk, repeated: 404" "404 -" "$(attack "$B" fetchrep x x x)"
check_eq "carol's fetch naming dave's chunk between two of A's: 404" "404 -" "$(attack "$A2" fetchrep a d a)"
check_eq "carol's fetch of A's chunk, repeated" "200 2" "$(attack "$A2" fetchrep a a)"

# Every read path answers by domain too: B learns nothing by reading a
# chunk (GET, fetch) or by naming it in a snapshot; its domain's other
# client does, and an admin reads every chunk.
for how in get fetch create; do
	check_eq "B (domain b): $how finds none of candidates 4800..4849" "" "$(attack "$B" $how 4800 4850)"
	check_eq "carol (domain a): $how finds A's PIN" "$PIN" "$(attack "$A2" $how 4800 4850)"
done
check_eq "an admin reads any client's chunk" "$PIN" "$(attack "$ADM" get 4800 4850)"
check_eq "erin (default domain): GET finds dave's PIN, not A's" "1234" \
	"$(echo $(attack "$D2" get 1230 1240) $(attack "$D2" get 4820 4823))"

# 2. the upload reply: B uploading every candidate sees no duplicate.
check_eq "B's upload of the 10,000 candidates reports 0 duplicates" 0 "$(attack "$B" upload)"
check_eq "B's own upload now counts as present for B" 10000 \
	"$(attack "$B" missing | wc -w)"
check_eq "B's upload left A's PIN unknown to the default domain" "1234" "$(attack "$D2" missing)"
# /stats counters would tell an upload that was already stored: hidden.
check_eq "/stats hides the store's counters from a client" "hidden" "$(attack "$B" stats 4820 4823)"
save stats_adm "$ADM" GET /api/v1/stats
pycheck <<'PY'
check("an admin still sees the store's counters", isinstance(J("stats_adm").get("chunks"), int))
PY
# /stats as a whole: A (domain a) stores a chunk; B uploads that one, then
# a fresh one. The store grows by 0 then by 1 (the admin sees it); B's own
# figures are the same three times and hold nothing of the repository's.
attack "$A" put "held by domain a" >/dev/null
attack "$ADM" put > "$T/adm0.json"
attack "$B" put "held by domain a" "fresh from b" > "$T/b_seq.json"
attack "$ADM" put > "$T/adm1.json"
pycheck <<'PY'
seq = json.load(open(os.path.join(T, "b_seq.json")))
a0, a1 = json.load(open(os.path.join(T, "adm0.json")))[0], json.load(open(os.path.join(T, "adm1.json")))[0]
check_eq("the store grew by 1 chunk over B's two uploads (0 for the held one)", 1, a1["chunks"] - a0["chunks"])
check("B's /stats is the same before, after the held chunk and after the fresh one", seq[0] == seq[1] == seq[2], seq)
for key in ("chunks", "clients", "packs", "bytes_unique", "bytes_stored", "dedup_ratio", "disk_free"):
    check("B's /stats has no repository field %s" % key, key not in seq[0], seq[0])
check_eq("B's /stats is scoped to B", ("client", "bob"), (seq[0].get("scope"), seq[0].get("client")))
check_eq("B's snapshot count is its own (none yet)", 0, seq[0].get("snapshots"))
check_eq("the admin's /stats is the repository's", "repository", a0.get("scope"))
check("the admin sees the clients count", isinstance(a0.get("clients"), int) and a0["clients"] >= 6, a0)
PY

# 3. B backs up the same content as A: uploaded once by B, stored once.
mkdir -p "$T/b"
cp -a "$T/a/shared.bin" "$T/a/pin.txt" "$T/b/"
racy_wait "$T/b"
P0=$(du -sb "$R/packs" | cut -f1)
OUT_B=$(agent "$B" backup --json "$T/b")
ID_B=$(json_get "$OUT_B" snapshot_id)
P1=$(du -sb "$R/packs" | cut -f1)
check "B had to send shared.bin (it was not present for B)" test "$(json_get "$OUT_B" bytes_new)" -ge 2000000
check "pack bytes did not grow by shared.bin again ($((P1 - P0)) bytes)" test $((P1 - P0)) -lt 200000
out=$(agent "$B" backup --json "$T/b")
check_eq "B's second backup sends nothing" 0 "$(json_get "$out" bytes_sent)"
save stats_adm2 "$ADM" GET /api/v1/stats
chunks_before_b=$(json_get "$(cat "$T/stats_adm.json")" chunks)
check "the store counts shared.bin once" test "$(json_get "$(cat "$T/stats_adm2.json")" chunks)" -le $((chunks_before_b + 4))

# 4. a client moved to another domain starts afresh.
"$SERVER" token revoke --repo "$R" carol 2>/dev/null
A2=$(token_add "$R" carol --domain c)
check_eq "carol, re-added in domain c, no longer finds A's PIN" "" "$(attack "$A2" missing)"

# 5. restores are identical; gc and check after mixed uploads are clean.
restore_eq() { # TOKEN ID SRC
	rm -rf "$T/r"
	agent "$1" restore "$2" --target "$T/r" >/dev/null 2>>"$T/restore.err" &&
		diff -r "$3" "$T/r/${3#/}" >/dev/null
}
check "A's snapshot restores identical" restore_eq "$A" "$ID_A" "$T/a"
check "B's snapshot restores identical" restore_eq "$B" "$ID_B" "$T/b"
# Forget A's snapshot: its own chunks go, the shared ones stay for B. A
# gc killed between its sweep and the membership drop leaves orphan
# memberships: check notes them (harmless), the next gc drops them.
check_eq "forget A's snapshot" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$ID_A")"
server_stop
DEDUP_TEST_GC_CRASH=swept "$SERVER" gc --repo "$R" >/dev/null 2>"$T/gc-crash.err"
check "gc killed right after its sweep" grep -q "test crash at 'swept'" "$T/gc-crash.err"
"$SERVER" check --repo "$R" > "$T/check0.out" 2>&1
check "check notes the orphan memberships the crash left" grep -q '^note: .*orphan' "$T/check0.out"
check "... as harmless (no problems)" grep -q '^no problems found' "$T/check0.out"
server_start "$R" || exit 1
# Of B's 10,000 uploaded candidates only those a snapshot uses survived
# the sweep: its own PIN, and 1234, which dave's snapshot uses. The
# memberships of the swept ones are still in the index, and count for
# nothing.
check_eq "orphan memberships make nothing present" "1234 4821" "$(attack "$B" missing)"
server_stop
"$SERVER" gc --repo "$R" > "$T/gc.out" 2>&1
check "the next gc succeeds" test $? = 0
"$SERVER" check --repo "$R" --read-data > "$T/check.out" 2>&1
check "check after mixed-domain uploads and gc: no problems" grep -q '^no problems found' "$T/check.out"
check "check reports no orphan memberships after gc" not grep -q 'orphan' "$T/check.out"
check "check counts the dedup-domain keys" grep -q 'dedup-domain key' "$T/check.out"
server_start "$R" || exit 1
check "B's snapshot still restores after gc" restore_eq "$B" "$ID_B" "$T/b"
check_eq "after gc B holds only the candidates a snapshot uses" "1234 4821" "$(attack "$B" missing)"
server_stop

# 7. repair --rebuild-index: packs do not say who stored what, so with
# domains in use every chunk first counts as absent to every domain; then
# each domain gets back what its clients' snapshots use (regrant.h):
# clients read their own snapshots and learn of nothing else.
"$SERVER" repair --repo "$R" --rebuild-index > "$T/repair.out" 2>&1
check "repair --rebuild-index succeeds" test $? = 0
check "and gives the memberships back from the snapshots" grep -q 'membership(s) given back' "$T/repair.out"
server_start "$R" || exit 1
check_eq "after a rebuild B holds what its snapshot uses (its PIN file)" "4821" "$(attack "$B" missing)"
check_eq "... and the default domain what dave's uses" "1234" "$(attack "$D2" missing)"
check_eq "... and B still reads nothing of the default domain's" "4821" "$(echo $(attack "$B" get 1230 1240) $(attack "$B" get 4820 4823))"
P0=$(du -sb "$R/packs" | cut -f1)
out=$(agent "$B" backup --json --force-read "$T/b")
P1=$(du -sb "$R/packs" | cut -f1)
echo "# B's backup after the rebuild: bytes_new $(json_get "$out" bytes_new), packs grew $((P1 - P0)) bytes"
check "B's backup (--force-read) after the rebuild sends nothing again" test "$(json_get "$out" bytes_new)" -lt 100000
check "... and stores nothing twice ($((P1 - P0)) bytes)" test $((P1 - P0)) -lt 200000
check "B's new snapshot restores identical" restore_eq "$B" "$(json_get "$out" snapshot_id)" "$T/b"
check "B's old snapshot restores identical after the rebuild" restore_eq "$B" "$ID_B" "$T/b"
check "dave's snapshot restores identical after the rebuild" restore_eq "$D1" "$ID_D" "$T/d"
server_stop
"$SERVER" check --repo "$R" > "$T/check2.out" 2>&1
check "check after the rebuild: no problems" grep -q '^no problems found' "$T/check2.out"
check "... and no memberships left to give back" not grep -q 'not yet given back' "$T/check2.out"
# An index lost while the server is down is rebuilt at start, and the
# memberships come back before the first request is served.
rm -rf "$R/index"
server_start "$R" || exit 1
check_eq "after an index rebuilt at start B holds its PIN file again" "4821" "$(attack "$B" missing)"
check "B's snapshot restores identical after it" restore_eq "$B" "$ID_B" "$T/b"
check "dave's snapshot restores identical after it" restore_eq "$D1" "$ID_D" "$T/d"
server_stop

# 8. the rate limit: 429 with Retry-After over the limit; the agent, whose
# bucket was just emptied, gets 429 too, waits and completes a backup of a
# tree that asks about ~3,000 ids.
mkdir -p "$T/many"
(cd "$T/many" && for i in $(seq 1 3000); do printf 'file %d of many\n' "$i" > "f$i"; done)
python3 -c 'import sys; sys.stdout.buffer.write(bytes(32*1500))' > "$T/ids.bin"
count429() {
	api "$ADM" GET /metrics | sed -n 's/^dedup_http_requests_total{method="POST",code="429"} \([0-9]*\)$/\1/p' | grep . || echo 0
}
server_start "$R" --set missing_ids_per_second=200 --set missing_ids_burst=1500 || exit 1
check_eq "1,500 ids within the burst: 200" 200 "$(api_status "$D1" POST /api/v1/chunks/missing --data-binary @"$T/ids.bin")"
curl -sS --cacert "$CA" -H "Authorization: Bearer $D1" -D "$T/429.h" -o /dev/null \
	-w '%{http_code}' --data-binary @"$T/ids.bin" "$URL/api/v1/chunks/missing" > "$T/429.status"
check_eq "the next 1,500 at once: 429" 429 "$(cat "$T/429.status")"
check "the 429 carries Retry-After" grep -qiE '^retry-after: [1-9]' "$T/429.h"
check_eq "another client's bucket is its own" 200 "$(api_status "$D2" POST /api/v1/chunks/missing --data-binary @"$T/ids.bin")"
out=$(agent "$D1" backup --json "$T/many" 2>"$T/limited.err")
rc=$?
check_eq "the agent completes its backup under a low limit" 0 "$rc"
check "... after a 429 of its own ($(count429) in all)" test "$(count429)" -ge 2
check "the limited backup restores identical" restore_eq "$D1" "$(json_get "$out" snapshot_id)" "$T/many"
server_stop

finish

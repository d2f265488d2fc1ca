#!/usr/bin/env bash
# Dedup domains' memberships in the pool's shared index (docs/SECURITY.md,
# "Dedup domains on several front-ends"). A front-end publishes the
# memberships its clients make (an upload of a new chunk, a join) beside
# the entries, as "<id>.<domain tag>" valued by the entry's location; a
# front-end takes one for a client of that domain only when it names the
# location the entry has. So a domain's clients find through B what they
# uploaded through A, in a snapshot or not, and nobody else does; a
# collection that moves a chunk publishes its memberships at the new
# location; a collection's pull takes the memberships that name their
# entry's location and deletes those of chunks removed (the sweep, for the
# domains the pull met; the next pull, any left); one naming another
# location grants nothing. With no domain in use nothing is published.
# Both front-ends run with DEDUP_TEST_NO_ADOPT_GRANT=1: snapshots they
# adopt from the pool give no memberships, so that every grant checked
# here is the pool's. Outside CI a machine without Ceph skips.
. "$(dirname "$0")/lib.sh"
ceph_up
NS=t1002
rados_() { rados -p "$CEPH_POOL" -N "$NS" "$@" 2>/dev/null; }

RA=$T/fa RB=$T/fb
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
check "init --join adds front-end B" "$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null
DAVE=$(token_add "$RA" dave)
ADM=$(token_add "$RA" admin --admin)
export DEDUP_TEST_NO_ADOPT_GRANT=1
fe_start "$RA" A
fe_start "$RB" B

# pool.py MODE: "members" prints the pool's membership keys, one a line;
# "stale" those whose chunk has no entry in the shared index
cat > "$T/pool.py" <<'PY'
import subprocess, sys
def rados(*a):
    return subprocess.run(["rados", "-p", sys.argv[2], "-N", sys.argv[3]] + list(a),
                          capture_output=True, text=True, check=True).stdout.split()
keys = []
for o in rados("ls"):
    if o.startswith("index/") and len(o) == 8:
        keys += rados("listomapkeys", o)
entries = {k for k in keys if len(k) == 64}
members = [k for k in keys if "." in k]
if sys.argv[1] == "stale":
    members = [k for k in members if k[:64] not in entries]
print("\n".join(members))
PY
pool() { python3 "$T/pool.py" "$1" "$CEPH_POOL" "$NS" | grep -c .; }

# ask.py TOKEN missing HEX...: prints the ids answered present;
# ask.py TOKEN upload FILE: uploads FILE as one raw chunk, prints the
# reply's "duplicates"; ask.py TOKEN sealed FILE: uploads, under FILE's
# id, a "sealed" record of 37 zero bytes (its layout is all the server
# can check), prints the reply's "stored"
cat > "$T/ask.py" <<'PY'
import hashlib, http.client, json, os, ssl, struct, sys, urllib.parse
tok, mode = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(os.environ["URL"])
ctx = ssl.create_default_context(cafile=os.environ["CA"])
conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=60)
hdrs = {"Authorization": "Bearer " + tok, "Content-Type": "application/octet-stream"}
if mode == "missing":
    ids = [bytes.fromhex(h) for h in sys.argv[3:]]
    conn.request("POST", "/api/v1/chunks/missing", b"".join(ids), hdrs)
    r = conn.getresponse(); body = r.read()
    assert r.status == 200, (r.status, body)
    print(" ".join(sys.argv[3 + i] for i in range(len(ids)) if not body[i // 8] & (1 << (i % 8))))
else:
    data = open(sys.argv[3], "rb").read()
    if mode == "sealed":
        rec = struct.pack("<III", 2, len(data), 37) + bytes(37)
    else:
        rec = struct.pack("<III", 0, len(data), len(data)) + data
    b = b"DDBN" + struct.pack("<II", 1, 1) + hashlib.sha256(data).digest() + rec
    conn.request("POST", "/api/v1/chunks", b, hdrs)
    r = conn.getresponse(); body = r.read()
    assert r.status == 200, (r.status, body)
    print(json.loads(body)["stored" if mode == "sealed" else "duplicates"])
PY
ask() { local f=$1; shift; on "$f" python3 "$T/ask.py" "$@"; }
cid() { sha256sum "$1" | cut -c1-64; }
omap() { rados_ getomapval "index/${1:0:2}" "$1" "$2"; }

# 1. no domain in use: nothing but entries in the pool
mkdir -p "$T/d"
printf 'PIN=1234\n' > "$T/d/pin.txt"
check "dave (default domain) backs up through A" on A agent "$DAVE" backup --json "$T/d"
check_eq "no domain in use: the shared index holds no membership" 0 "$(pool members)"
# a sealed record through B of a plain chunk stored through A, which B
# has not cached: B looks the id up in the pool first and stores
# nothing; before, its copy replaced the plain one in the shared index
# (and a collection would have reclaimed the plain one)
printf 'PIN=7000\n' > "$T/p7000"
P7000=$(cid "$T/p7000")
tok_ok() { on "$1" api_status "$2" GET /api/v1/snapshots | grep -q '^200$'; }
check "dave's token reaches B" poll_until 10 tok_ok B "$DAVE"
check_eq "dave uploads PIN 7000 through A" 0 "$(ask A "$DAVE" upload "$T/p7000")"
omap "$P7000" "$T/e7000a"
check_eq "dave uploads a sealed record under its id through B: a duplicate (no domain in use), nothing stored" 0 "$(ask B "$DAVE" sealed "$T/p7000")"
omap "$P7000" "$T/e7000b"
check "a sealed record of it through B leaves the shared index naming the plain one" cmp -s "$T/e7000a" "$T/e7000b"
check_eq "... and it reads back intact through B" "PIN=7000" "$(on B api "$DAVE" GET "/api/v1/chunks/$P7000" | head -n1)"

ALICE=$(token_add "$RA" alice --domain a)
CAROL=$(token_add "$RA" carol --domain a)
BOB=$(token_add "$RA" bob --domain b)
ERIN=$(token_add "$RA" erin)
check "the tokens reach B" poll_until 10 tok_ok B "$ERIN"
TAG_A=$(printf 'dedup-domain:a' | sha256sum | cut -c1-16)
TAG_0=0000000000000000

# 2. uploads in no snapshot: the domain's clients find them through the
# other front-end at once; the other domains do not
printf 'PIN=4900\n' > "$T/p4900"
printf 'PIN=4950\n' > "$T/p4950"
P4900=$(cid "$T/p4900") P4950=$(cid "$T/p4950")
check_eq "alice (domain a) uploads PIN 4900 through A, in no snapshot" 0 "$(ask A "$ALICE" upload "$T/p4900")"
omap "$P4900" "$T/e4900"; omap "$P4900.$TAG_A" "$T/m4900"
check "A published domain a's membership beside the entry, valued by its location" cmp -s "$T/e4900" "$T/m4900"
# a snapshot's references are checked the same way: carol names, in a
# catalog of her own posted through B, a chunk alice uploaded through A
# that carol never asked about
printf 'PIN=4901\n' > "$T/p4901"
check_eq "alice uploads PIN 4901 through A, in no snapshot" 0 "$(ask A "$ALICE" upload "$T/p4901")"
cat > "$T/mk.py" <<'PY'
import hashlib, json, os, struct, sys, time
out, data = sys.argv[1], open(sys.argv[2], "rb").read()
now = int(time.time())
cat = bytearray(b"DDCT" + struct.pack("<I", 2))
cat += struct.pack("<BBHIIIqIqIQQQIIIQ", 1, 0, 0, 0o644, 0, 0, now, 0, now, 0,
                   1, 1, len(data), 5, 0, 0, 1)
cat += b"f4901" + hashlib.sha256(data).digest() + struct.pack("<I", len(data))
cid = hashlib.sha256(bytes(cat)).digest()
with open(os.path.join(out, "bundle.bin"), "wb") as f:
    f.write(b"DDBN" + struct.pack("<II", 1, 1) + cid +
            struct.pack("<III", 0, len(cat), len(cat)) + bytes(cat))
with open(os.path.join(out, "snap.json"), "w") as f:
    json.dump({"host": "h", "paths": ["/c"], "catalog": [cid.hex()],
               "time_start": now}, f)
PY
python3 "$T/mk.py" "$T" "$T/p4901"
create() { # FE TOKEN: uploads the catalog, asks for the snapshot
	on "$1" api "$2" POST /api/v1/chunks --data-binary @"$T/bundle.bin" -H 'Content-Type: application/octet-stream' >/dev/null
	on "$1" api_status "$2" POST /api/v1/snapshots --data-binary @"$T/snap.json" -H 'Content-Type: application/json'
}
check_eq "erin (default) through B: a snapshot naming 4901 is refused" 409 "$(create B "$ERIN")"
check_eq "carol (domain a) through B: the same snapshot is made" 201 "$(create B "$CAROL")"
check_eq "carol (domain a) through B finds 4900" "$P4900" "$(ask B "$CAROL" missing "$P4900")"
check_eq "erin (default) through B does not" "" "$(ask B "$ERIN" missing "$P4900")"
check_eq "bob (domain b) through B does not" "" "$(ask B "$BOB" missing "$P4900")"
check_eq "dave (default) uploads PIN 4950 through B, in no snapshot" 0 "$(ask B "$DAVE" upload "$T/p4950")"
omap "$P4950" "$T/e4950"; omap "$P4950.$TAG_0" "$T/m4950"
check "B published the default domain's membership" cmp -s "$T/e4950" "$T/m4950"
check_eq "erin (default) through A finds it" "$P4950" "$(ask A "$ERIN" missing "$P4950")"
check_eq "alice (domain a) through A does not" "" "$(ask A "$ALICE" missing "$P4950")"
check_eq "erin's upload of it through A is a duplicate" 1 "$(ask A "$ERIN" upload "$T/p4950")"
check_eq "bob (domain b) joins 4900 through B (uploads it: no duplicate)" 0 "$(ask B "$BOB" upload "$T/p4900")"
omap "$P4900.$(printf 'dedup-domain:b' | sha256sum | cut -c1-16)" "$T/j4900"
check "B published domain b's join at the entry's location" cmp -s "$T/e4900" "$T/j4900"
check_eq "so bob finds 4900 through A too" "$P4900" "$(ask A "$BOB" missing "$P4900")"

# 3. a membership that names another location grants nothing; one at
# the entry's location is what grants (bob's PIN 5555, domain b, stored
# through B; the pool is trusted: these keys are written by hand)
mkdir -p "$T/b"
printf 'PIN=5555\n' > "$T/b/pin.txt"
check "bob backs up PIN 5555 through B" on B agent "$BOB" backup --json "$T/b"
P5555=$(cid "$T/b/pin.txt")
omap "$P5555" "$T/e5555"
check_eq "carol (domain a) through A does not find it" "" "$(ask A "$CAROL" missing "$P5555")"
rados_ setomapval "index/${P5555:0:2}" "$P5555.$TAG_A" --input-file "$T/e4900"
check_eq "a membership of domain a naming another location: still not found" "" "$(ask A "$CAROL" missing "$P5555")"
rados_ setomapval "index/${P5555:0:2}" "$P5555.$TAG_A" --input-file "$T/e5555"
check_eq "one naming the entry's location: found" "$P5555" "$(ask A "$CAROL" missing "$P5555")"

# 4. a collection that moves a chunk publishes its memberships at the new
# location: keep.bin (one chunk) shares a pack with junk.bin, which only
# the first snapshot names; the second names keep.bin alone. Bob's PIN
# 6666, backed up through B, is new to A until the collection's pull
mkdir -p "$T/a1" "$T/c"
prand keep 60000 > "$T/a1/keep.bin"
prand junk 3000000 > "$T/a1/junk.bin"
S1=$(json_get "$(on A agent "$ALICE" backup --json "$T/a1")" snapshot_id)
check "alice backs up keep.bin and junk.bin through A" test -n "$S1"
rm "$T/a1/junk.bin"
check "alice backs up keep.bin alone through A" on A agent "$ALICE" backup --json "$T/a1"
KEEP=$(cid "$T/a1/keep.bin")
omap "$KEEP" "$T/k0"
mkdir -p "$T/b6"
printf 'PIN=6666\n' > "$T/b6/pin.txt"
check "bob backs up PIN 6666 through B" on B agent "$BOB" backup --json "$T/b6"
P6666=$(cid "$T/b6/pin.txt")
check_eq "A never learned it: bob cannot read it through A" 404 "$(on A api_status "$BOB" GET "/api/v1/chunks/$P6666")"
check "admin forgets the first snapshot" on A agent "$ADM" forget "$S1"
check "gc through A" on A agent "$ADM" gc
omap "$KEEP" "$T/k1"; omap "$KEEP.$TAG_A" "$T/km1"
check "the collection moved keep.bin's chunk (its pack was mostly junk.bin)" not cmp -s "$T/k0" "$T/k1"
check "domain a's membership moved with it" cmp -s "$T/k1" "$T/km1"
check_eq "the pull gave A domain b's membership of 6666: bob reads it through A" 200 "$(on A api_status "$BOB" GET "/api/v1/chunks/$P6666")"
check_eq "... and carol (domain a) cannot" 404 "$(on A api_status "$CAROL" GET "/api/v1/chunks/$P6666")"
drops() { grep -c 'a collection ran on another front-end: dropped' "$T/server.log"; }
dropped() { [ "$(drops)" -gt 0 ]; }
check "B drops its cache for A's collection" poll_until 20 dropped
check_eq "carol (domain a) through B finds keep.bin's chunk at its new place" "$KEEP" "$(ask B "$CAROL" missing "$KEEP")"
check_eq "erin (default) through B does not" "" "$(ask B "$ERIN" missing "$KEEP")"
cp "$T/a1/keep.bin" "$T/c/"
OUT=$(on B agent "$CAROL" backup --json "$T/c")
check_eq "carol's backup of keep.bin through B sends none of it" 0 "$(json_get "$OUT" bytes_sent | awk '{print ($1 > 20000)}')"

# 5. the sweep deleted the memberships of the chunks it removed (junk.bin's,
# 4900's, 4950's) for the domains its pull met; one the pull could not
# know of (a key for a chunk no entry names, written by hand) is deleted
# by the next collection's pull, which keeps the valid ones
check_eq "no membership of a removed chunk is left" 0 "$(pool stale)"
GHOST=$(printf 'gone' | sha256sum | cut -c1-64)
rados_ setomapval "index/${GHOST:0:2}" "$GHOST.$TAG_A" --input-file "$T/k1"
check_eq "a membership of a chunk nobody stored, by hand" 1 "$(pool stale)"
check "a second gc through A" on A agent "$ADM" gc
check "... deletes it from the pool" grep -q 'deleted 1 stale domain membership' "$T/server.log"
check_eq "none is left" 0 "$(pool stale)"
omap "$KEEP.$TAG_A" "$T/km2"; omap "$P5555.$TAG_A" "$T/m5555"
check "the valid ones stay: domain a's of keep.bin" cmp -s "$T/k1" "$T/km2"
check "... and the one written by hand for 5555" cmp -s "$T/e5555" "$T/m5555"
check_eq "carol through B still finds keep.bin's chunk" "$KEEP" "$(ask B "$CAROL" missing "$KEEP")"
finish

#!/usr/bin/env bash
# Retention: keep-last/hourly/daily/weekly/monthly/yearly/within keep
# exactly the expected snapshots of synthetic histories (`dedup-server
# prune` with server.conf policies, per-client overrides, and `dedup-agent
# forget` with an admin token); client tokens cannot delete anything.
#
# Synthetic histories: with the server stopped, copies of a real manifest
# are written under new ids with chosen times (manifests are plain JSON
# files, docs/FORMAT.md): retention goes by the server's write time,
# written_ns, so that is what is set (unix_time too, to match). They share
# the real catalog, so check stays clean and each one restores.
. "$(dirname "$0")/lib.sh"

SRC=$T/src
mkdir -p "$SRC"
prand ret1 200000 > "$SRC/a"
echo hello > "$SRC/b"
R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
B=$(token_add "$R" bob)
ADM=$(token_add "$R" boss --admin)
server_start "$R" || exit 1
IDA=$(json_get "$(agent "$A" backup --json "$SRC")" snapshot_id)
IDB=$(json_get "$(agent "$B" backup --json "$SRC")" snapshot_id)
server_stop TERM

# fake CLIENT SOURCE_ID UNIX_TIME...: manifests copied from SOURCE_ID.
fake() {
	python3 - "$R/snapshots" "$@" <<'PY'
import json, os, sys, time, hashlib
d, client, src = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open(os.path.join(d, src + ".json")))
for t in sys.argv[4:]:
    t = int(t)
    m["id"] = hashlib.sha256(("%s-%d" % (client, t)).encode()).hexdigest()
    m["unix_time"] = t
    m["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    m["written_ns"] = t * 10**9
    m["unix_written"] = t
    m["time_end"] = m["time"]
    p = os.path.join(d, m["id"] + ".json")
    with open(p + ".tmp", "w") as f:
        f.write(json.dumps(m, separators=(",", ":")) + "\n")
    os.rename(p + ".tmp", p)
    print(m["id"], t)
PY
}
ids_of() { ls "$R/snapshots" | sed -n 's/\.json$//p' | sort; }

# alice: a snapshot every 5 hours for 400 days before 2024-03-15 12:00 UTC.
END=1710504000
TIMES=$(python3 -c "print(' '.join(str($END - i * 5 * 3600) for i in range(0, 400 * 24 // 5)))")
fake alice "$IDA" $TIMES > "$T/alice.list"
# bob: three snapshots.
fake bob "$IDB" $((END - 7200)) $((END - 3600)) $END > "$T/bob.list"
rm -f "$R/snapshots/$IDA.json" "$R/snapshots/$IDB.json"
NA=$(wc -l < "$T/alice.list")

# The expected kept set, computed here independently (restic's rules, UTC).
expect() { # LIST keep_last hourly daily weekly monthly yearly within_s
	python3 - "$@" <<'PY'
import sys, datetime
lst, last, hourly, daily, weekly, monthly, yearly, within = sys.argv[1], *map(int, sys.argv[2:])
snaps = sorted((int(l.split()[1]), l.split()[0]) for l in open(lst))[::-1]
def key(kind, t):
    d = datetime.datetime.utcfromtimestamp(t)
    return {"h": (d.year, d.month, d.day, d.hour), "d": (d.year, d.month, d.day),
            "w": d.isocalendar()[:2], "m": (d.year, d.month), "y": d.year}[kind]
keep = set()
for i, (t, sid) in enumerate(snaps):
    if i < last: keep.add(sid)
    if within and snaps[0][0] - t < within: keep.add(sid)
rules = [("h", hourly), ("d", daily), ("w", weekly), ("m", monthly), ("y", yearly)]
for kind, n in rules:
    seen = []
    for t, sid in snaps:
        k = key(kind, t)
        if len(seen) < n and (not seen or seen[-1] != k):
            seen.append(k); keep.add(sid)
for s in sorted(keep): print(s)
PY
}

# Config errors name the file, line and key.
printf 'keep_daily = many\n' > "$T/bad.conf"
"$SERVER" prune --repo "$R" --config "$T/bad.conf" --dry-run >/dev/null 2>"$T/err"
check_eq "a bad policy value fails" 1 $?
check "naming the line and key" grep -q "bad.conf:1: invalid value 'many' for 'keep_daily'" "$T/err"
printf 'client.alice.keep_bogus = 1\n' > "$T/bad.conf"
"$SERVER" prune --repo "$R" --config "$T/bad.conf" --dry-run >/dev/null 2>"$T/err"
check "an unknown per-client key fails" grep -q "unknown key 'client.alice.keep_bogus'" "$T/err"

# No policy: everything is kept.
"$SERVER" prune --repo "$R" --config /dev/null > "$T/out" 2>&1
check_eq "prune without a policy exits 0" 0 $?
check "and keeps everything" grep -q "^$((NA + 3)) snapshot(s) kept, 0 removed" "$T/out"
check_eq "no manifest removed" $((NA + 3)) "$(ids_of | wc -l)"

# A policy with every rule; bob keeps only his last one.
cat > "$T/server.conf" <<CONF
keep_last = 3
keep_hourly = 10
keep_daily = 7
keep_weekly = 5
keep_monthly = 6
keep_yearly = 3
keep_within = 2d
client.bob.keep_last = 1
client.bob.keep_hourly = 0
client.bob.keep_daily = 0
client.bob.keep_within = 0
CONF
{ expect "$T/alice.list" 3 10 7 5 6 3 172800; expect "$T/bob.list" 1 0 0 5 6 3 0; } | sort > "$T/expected"
"$SERVER" prune --repo "$R" --config "$T/server.conf" --dry-run > "$T/out" 2>&1
check_eq "prune --dry-run exits 0" 0 $?
check_eq "--dry-run removes nothing" $((NA + 3)) "$(ids_of | wc -l)"
check "--dry-run says what it would remove" grep -q "would be removed" "$T/out"
check "each line gives its reasons" grep -qE "^  keep   [0-9a-f]{64}  [0-9TZ:-]+  \(last, hourly, daily, weekly, monthly, yearly, within\)" "$T/out"
DRY_MARKED=$(sed -n 's/^gc: \([0-9]*\) snapshot(s) use .*/\1/p' "$T/out")
"$SERVER" prune --repo "$R" --config "$T/server.conf" > "$T/out" 2>&1
check_eq "prune exits 0" 0 $?
check_eq "the dry run's collection marked only the snapshots the plan keeps" "$(wc -l < "$T/expected")" "$DRY_MARKED"
ids_of > "$T/kept"
check "exactly the expected snapshots are kept ($(wc -l < "$T/expected"))" cmp -s "$T/expected" "$T/kept"
check "bob keeps his newest only" grep -q "$(tail -n1 "$T/bob.list" | cut -d' ' -f1)" "$T/kept"
check_eq "bob's older ones are gone" 0 "$(head -n2 "$T/bob.list" | cut -d' ' -f1 | grep -cFf - "$T/kept")"
check "prune ran gc" grep -q "^gc: " "$T/out"
"$SERVER" check --repo "$R" >"$T/out" 2>&1
check_eq "check is clean after prune" 0 $?

# Running server: prune refuses plainly; admins use the API.
server_start "$R" || exit 1
"$SERVER" prune --repo "$R" --config "$T/server.conf" >/dev/null 2>"$T/err"
check_eq "prune refuses while the server runs" 1 $?
check "and says so" grep -q "in use by a running dedup-server" "$T/err"
check "and names the online way" grep -q "dedup-agent forget --prune" "$T/err"
"$SERVER" prune --repo "$R" --config "$T/server.conf" --dry-run >/dev/null 2>"$T/err"
check "a dry run refused too names the online dry run" grep -q "dedup-agent forget --dry-run --prune. shows its plan" "$T/err"

# Append-only: client tokens cannot delete.
VICTIM=$(head -n1 "$T/kept")
N0=$(ids_of | wc -l)
check_eq "a client token gets 403 on DELETE" 403 "$(api_status "$A" DELETE /api/v1/snapshots/$VICTIM)"
check_eq "and 403 on POST /prune" 403 "$(api_status "$A" POST /api/v1/prune -d '{"policy":{"keep_last":1}}')"
check_eq "and 403 on POST /gc" 403 "$(api_status "$A" POST /api/v1/gc -d '{}')"
agent "$A" forget --keep-last 1 >/dev/null 2>"$T/err"
check_eq "agent forget with a client token exits 1" 1 $?
check "saying it needs an admin token" grep -q "admin token" "$T/err"
check_eq "nothing was deleted" "$N0" "$(ids_of | wc -l)"
check_eq "no token: 401" 401 "$(api_status "" DELETE /api/v1/snapshots/$VICTIM)"
check_eq "malformed id: 404" 404 "$(api_status "$ADM" DELETE /api/v1/snapshots/zz)"
check_eq "bad policy: 400" 400 "$(api_status "$ADM" POST /api/v1/prune -d '{"policy":{"keep_often":1}}')"
check_eq "bad JSON: 400" 400 "$(api_status "$ADM" POST /api/v1/prune -d '{')"
check_eq "the server still serves" 200 "$(api_status "" GET /api/v1/health)"

# Admin forget by id, by prefix, and by rules.
agent "$ADM" forget "$VICTIM" > "$T/out" 2>&1
check_eq "admin forget ID exits 0" 0 $?
check "... its header names no policy but the ids" grep -q "(policy: by id):" "$T/out"
check "the snapshot is gone" test ! -e "$R/snapshots/$VICTIM.json"
check_eq "and unlisted" 404 "$(api_status "$ADM" GET /api/v1/snapshots/$VICTIM)"
V2=$(sed -n 2p "$T/kept")
agent "$ADM" forget "${V2:0:12}" >/dev/null 2>&1
check "forget by prefix" test ! -e "$R/snapshots/$V2.json"
check_eq "DELETE by an admin: 200" 200 "$(api_status "$ADM" DELETE /api/v1/snapshots/$(sed -n 3p "$T/kept"))"
check_eq "DELETE again: 404" 404 "$(api_status "$ADM" DELETE /api/v1/snapshots/$(sed -n 3p "$T/kept"))"
agent "$ADM" forget --dry-run --client alice --keep-last 2 > "$T/out" 2>&1
check "forget --dry-run lists what it would remove" grep -q "would be removed" "$T/out"
agent "$ADM" forget --dry-run --client alcie --keep-last 2 > "$T/out" 2>&1
check_eq "forget --client of a name unknown here: exit 1" 1 $?
check "... saying there is no such client" grep -q "no client 'alcie' (no token and no snapshots)" "$T/out"
agent "$ADM" forget --client alice --keep-last 2 --keep-within 1h > "$T/out" 2>&1
check_eq "forget --keep-last 2 exits 0" 0 $?
tail -n1 "$T/alice.list" >/dev/null
check_eq "alice keeps 2 snapshots" 2 "$(agent "$ADM" snapshots --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s["client"]=="alice"))')"
check_eq "bob is untouched" 1 "$(agent "$B" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
LAST=$(agent "$A" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
check_eq "alice's newest is kept" "$(head -n1 "$T/alice.list" | cut -d' ' -f1)" "$LAST"
agent "$A" restore "$LAST" --target "$T/out1" >/dev/null 2>&1
check "it restores" cmp -s "$SRC/a" "$T/out1$SRC/a"
agent "$ADM" forget --prune --client bob --keep-last 1 > "$T/out" 2>&1
check "forget --prune reports gc" grep -q "^gc: " "$T/out"
# A dry run's collection is estimated as if the plan had been applied:
# carol's first backup's data is hers alone, and goes.
C=$(token_add "$R" carol)
mkdir -p "$T/carol"
prand carol1 3000000 > "$T/carol/data"
agent "$C" backup "$T/carol" >/dev/null 2>&1
prand carol2 3000000 > "$T/carol/data"
agent "$C" backup "$T/carol" >/dev/null 2>&1
agent "$ADM" forget --dry-run --prune --client carol --keep-last 1 > "$T/out" 2>&1
DRY_GC=$(sed -n 's/^gc: \([0-9]*\) unreferenced chunk(s) would be removed/\1/p' "$T/out")
DRY_FREED=$(sed -n 's/^gc: .*(\([0-9]*\) bytes) would be freed/\1/p' "$T/out")
agent "$ADM" forget --prune --client carol --keep-last 1 > "$T/out" 2>&1
REAL_GC=$(sed -n 's/^gc: \([0-9]*\) unreferenced chunk(s) removed/\1/p' "$T/out")
check "forget --prune of carol's first backup removes chunks" test "${REAL_GC:-0}" -gt 0
check_eq "... as many as its dry run said" "$REAL_GC" "$DRY_GC"
check "... whose freed bytes it estimated (over 2.5 MB)" test "${DRY_FREED:-0}" -gt 2500000
server_stop TERM
"$SERVER" check --repo "$R" --read-data >"$T/out" 2>&1
check_eq "check --read-data is clean" 0 $?
finish

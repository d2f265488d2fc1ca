#!/usr/bin/env bash
# The per-client counts (bytes_unique: quotas, GET /api/v1/clients, the
# status page) after a snapshot goes away. Its chunks may now belong to
# another client alone, so every catalog is read again; that recount runs
# on a thread of its own (server/repo/usage.h), and requests wait for it
# at most half a second: on a large repository they used to wait for the
# whole recount under one lock, every quota check of every upload too.
#   - small repository, no delay: the answer right after a forget is
#     already the new count (as before);
#   - a recount held 4 s by a test hook (DEDUP_TEST_USAGE_REBUILD_MS):
#     requests answer within about half a second with the counts from
#     before, a quota check of an upload is not held, and the new counts
#     are there once the recount ends;
#   - a server stopped while a recount runs stops at once;
#   - the first count after a start runs on that thread too, begun with
#     the server when quotas are set: meanwhile GET /clients says the
#     counts are not known (null), a quota check answers 503 with
#     Retry-After, and the agent's backup waits it out (a create so
#     answered leaves the backup's session open, not failed);
#   - unless the last run saved its counts (usage.json) and the
#     snapshots are still the set they counted: then a quota check
#     during the first count goes by them at once (a client over its
#     quota by them gets 507, not 503) until a snapshot they counted is
#     forgotten (503 again); a file that counted another set
#     of snapshots, or a malformed one, is not used (said so in the log)
#     and the checks answer 503 as without one;
#   - the save at the stop counts the newest snapshots within a bound
#     (a test hook sets it to 0 s): past it nothing is saved, the log
#     says so, and the next start does not go by the older counts.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
C=$(token_add "$R" carol)
ADM=$(token_add "$R" root --admin)
mkdir -p "$T/a" "$T/c"
prand shared 300000 > "$T/a/shared.bin"
cp "$T/a/shared.bin" "$T/c/shared.bin"
prand own 100000 > "$T/c/own.bin"

# unique NAME CLIENT: CLIENT's bytes_unique in $T/NAME.json (GET /clients)
unique() {
	python3 -c 'import json, sys
cl = {c["name"]: c for c in json.load(open(sys.argv[1]))["clients"]}
print(cl.get(sys.argv[2], {}).get("bytes_unique", -1))' "$T/$1.json" "$2"
}
# counting NAME: usage_counting of GET /clients saved as NAME
counting() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["usage_counting"])' "$T/$1.json"
}
# since T0: the seconds from $EPOCHREALTIME T0 until now
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}'; }
# timed NAME TOKEN METHOD PATH: save, printing the seconds it took
timed() {
	local t0=$EPOCHREALTIME
	save "$@"
	since "$t0"
}

# ---- no delay: exact at once ----
server_start "$R" || exit 1
IA=$(json_get "$(agent "$A" backup --json "$T/a")" snapshot_id)
IC=$(json_get "$(agent "$C" backup --json "$T/c")" snapshot_id)
save c0 "$ADM" GET /api/v1/clients
check "alice alone owns little (the shared file is carol's too)" \
	test "$(unique c0 alice)" -lt 300000
check "carol owns her own file, not the shared one" \
	test "$(unique c0 carol)" -ge 100000 -a "$(unique c0 carol)" -lt 300000
check_eq "carol's snapshot forgotten" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$IC")"
save c1 "$ADM" GET /api/v1/clients
check "right after it, alice owns the shared file (the recount was quick)" \
	test "$(unique c1 alice)" -ge 300000
check "carol owns nothing" test "$(unique c1 carol)" -le 0
server_stop TERM

# ---- a recount held 4 s ----
cat > "$T/server.conf" <<CONF
client.alice.quota_bytes = 200K
CONF
check "the server saved its counts (usage.json)" test -s "$R/usage.json"
rm "$R/usage.json"      # the first count with nothing saved to go by
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server.conf" || exit 1
# With a quota to check, the first count starts with the server, on its
# thread (held 4 s by the hook): nothing waits for it in a request.
secs=$(timed f0 "$ADM" GET /api/v1/clients)
echo "# GET /clients during the first count: $secs s"
check "during the first count, GET /clients answers within 2 s" \
	lt "$secs" 2
check_eq "it says the counts are not known yet" True \
	"$(counting f0)"
check_eq "alice's bytes_unique is null, not 0" None "$(unique f0 alice)"
check "her own stats say so too" grep -q "^only this client: *not known yet" <(agent "$A" stats 2>&1)
t0=$EPOCHREALTIME
curl -sS --cacert "$CA" -H "Authorization: Bearer $A" -D "$T/f1.headers" -o "$T/f1.body" \
	-X POST --data-binary @/dev/null "$URL/api/v1/chunks"
secs=$(since "$t0")
check "alice's upload (quota checked) is answered within 2 s" \
	lt "$secs" 2
check "with 503" grep -q "^HTTP/[0-9.]* 503" "$T/f1.headers"
check "and Retry-After" grep -qi "^retry-after: *5" "$T/f1.headers"
check "saying why" grep -q "usage counts are being computed" "$T/f1.body"
# carol's snapshot is gone: alice alone holds the shared file, over her
# 200K quota. Her backup's upload is answered 503 until the count ends,
# then 507: it waited for the count instead of failing on the 503.
echo changed > "$T/a/new.txt"
t0=$EPOCHREALTIME
agent "$A" backup "$T/a" > "$T/f2.out" 2>&1
check_eq "alice's backup meanwhile fails" 1 "$?"
secs=$(since "$t0")
echo "# alice's backup during the first count: $secs s"
check "after waiting out the 503 (the count held 4 s)" \
	ge "$secs" 3
check "on her quota, once the counts are known" grep -q "storage quota exceeded.*507" "$T/f2.out"
rm "$T/a/new.txt"
save f3 "$ADM" GET /api/v1/clients
check_eq "after it, the counts are known" False \
	"$(counting f3)"
check "alice owns the shared file" test "$(unique f3 alice)" -ge 300000
IC2=$(json_get "$(agent "$C" backup --json "$T/c")" snapshot_id)
save c2 "$ADM" GET /api/v1/clients
check "carol's new snapshot shares the file again" test "$(unique c2 alice)" -lt 200000
check_eq "carol's snapshot forgotten again" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$IC2")"
secs=$(timed c3 "$ADM" GET /api/v1/clients)
echo "# GET /clients during the recount: $secs s"
check "during the recount, GET /clients answers within 2 s" \
	lt "$secs" 2
check "with the counts from before (the file still shared)" \
	test "$(unique c3 alice)" -lt 200000
secs=$(timed up "$A" POST /api/v1/chunks --data-binary @/dev/null)
echo "# alice's upload (quota checked) during the recount: $secs s, status $(cat "$T/up.status")"
check "an upload of a client with a quota is not held by it (under 2 s)" \
	lt "$secs" 2
check "nor refused: alice is under her quota by the old counts" \
	test "$(cat "$T/up.status")" != 507
for i in $(seq 1 200); do
	save c4 "$ADM" GET /api/v1/clients
	[ "$(unique c4 alice)" -ge 300000 ] && break
	sleep 0.05
done
check "once it ends, alice owns the shared file" test "$(unique c4 alice)" -ge 300000
save up2 "$A" POST /api/v1/chunks --data-binary @/dev/null
check_eq "and now she is over her 200K quota: 507" 507 "$(cat "$T/up2.status")"
server_stop TERM

# ---- the last run's counts, saved ----
pycheck "$R/usage.json" <<'PY'
u = {c["name"]: c for c in json.load(open(sys.argv[1]))["clients"]}
check("the stop saved alice's count, over her quota",
      u.get("alice", {}).get("bytes_unique", 0) >= 300000)
PY
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server.conf" || exit 1
save s0 "$ADM" GET /api/v1/clients
check_eq "the first count runs again" True \
	"$(counting s0)"
secs=$(timed s1 "$A" POST /api/v1/chunks --data-binary @/dev/null)
echo "# alice's upload during the first count, counts saved: $secs s, status $(cat "$T/s1.status")"
check "alice's upload meanwhile is answered within 2 s" \
	lt "$secs" 2
check_eq "refused on her quota by the saved counts: 507, not 503" 507 "$(cat "$T/s1.status")"
check "saying how much she uses" grep -q "uses [0-9]* bytes" "$T/s1.json"
# she forgets her snapshot meanwhile: the saved counts no longer hold
check_eq "alice's snapshot forgotten during the first count" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$IA")"
save s1b "$A" POST /api/v1/chunks --data-binary @/dev/null
check_eq "then her upload waits for the count (503), not refused by the saved counts" 503 "$(cat "$T/s1b.status")"
check "the log says why" grep -q "usage: a snapshot the saved counts counted is gone" "$T/server.log"
server_stop TERM
# counts of another set of snapshots: carol backs up while the file is
# kept aside, then it is put back (a restored directory, another
# front-end's snapshots)
cp "$R/usage.json" "$T/usage.old"
server_start "$R" || exit 1
agent "$C" backup "$T/c" >/dev/null
server_stop TERM
cp "$T/usage.old" "$R/usage.json"
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server.conf" || exit 1
save s2 "$A" POST /api/v1/chunks --data-binary @/dev/null
check_eq "counts of another set of snapshots are not gone by: 503 while counting" 503 "$(cat "$T/s2.status")"
check "the log says so" grep -q "usage: .*usage.json counts another set of snapshots" "$T/server.log"
server_stop TERM
echo '{"version": 1, "clients": [{"name": 5}]}' > "$R/usage.json"
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server.conf" || exit 1
save s3 "$A" POST /api/v1/chunks --data-binary @/dev/null
check_eq "a malformed usage.json is not gone by: 503 while counting" 503 "$(cat "$T/s3.status")"
check "the log says it was ignored" grep -q "usage: ignoring .*usage.json" "$T/server.log"
server_stop TERM
rm -f "$R/usage.json"   # the next section: nothing saved

# ---- a create answered 503 while the first count runs ----
# Nothing new to upload: the snapshot create is the backup's first quota
# check. Its 503 must not end the backup's session as failed.
cat > "$T/server2.conf" <<CONF
client.carol.quota_bytes = 100M
CONF
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server2.conf" || exit 1
# carol's last result as GET /clients tells it, every 0.1 s meanwhile
(for _ in $(seq 1 60); do
	api "$ADM" GET /api/v1/clients | head -n -1 | python3 -c 'import json, sys
c = {x["name"]: x for x in json.load(sys.stdin)["clients"]}["carol"]
print(c["last_result"], c["last_error"])'
	sleep 0.1
done) > "$T/g0.poll" 2>&1 &
poller=$!
t0=$EPOCHREALTIME
agent "$C" backup "$T/c" > "$T/g1.out" 2>&1
check_eq "carol's unchanged backup during the first count succeeds" 0 "$?"
secs=$(since "$t0")
wait "$poller"
check "it was never shown as failed meanwhile (its session stayed open)" \
	not grep -q "failed" "$T/g0.poll"
check "the poll saw answers" grep -q "^ok\|^None" "$T/g0.poll"
echo "# carol's backup during the first count: $secs s"
check "after waiting for the count" ge "$secs" 3
save g2 "$ADM" GET /api/v1/clients
pycheck <<'PY'
cl = {c["name"]: c for c in J("g2")["clients"]}
check_eq("carol's last result is ok, not a refusal on her quota",
         ("ok", None), (cl["carol"]["last_result"], cl["carol"]["last_error"]))
check_eq("a client without a quota is not over one (false, not null)", False, cl["alice"]["over_quota"])
check_eq("carol, under hers, neither", False, cl["carol"]["over_quota"])
PY
server_stop TERM

# ---- the save at the stop is bounded ----
# The stop's save counts the snapshots created since the last save (here
# carol's backup: no quota, so no request counted it); past a bound
# (10 s; 0 s by a test hook) it saves nothing, says so, and the next
# start counts afresh, as with a file of another set of snapshots.
# stop_save NAME SECONDS: a server with that bound counts (GET /clients)
# and saves (usage.json, copied to $T/NAME.before); carol backs up; the
# server stops at once.
stop_save() {
	local i
	rm -f "$R/usage.json"
	DEDUP_TEST_USAGE_FINAL_SECONDS=$2 server_start "$R" || return 1
	save "$1.c" "$ADM" GET /api/v1/clients
	for i in $(seq 1 50); do
		[ -s "$R/usage.json" ] && break
		sleep 0.1
	done
	cp "$R/usage.json" "$T/$1.before" 2>/dev/null
	agent "$C" backup "$T/c" >/dev/null
	server_stop TERM
}
stop_save unbounded 10
check "the counts were saved before the backup" test -s "$T/unbounded.before"
check "the stop saves them again, with carol's new snapshot" \
	not cmp -s "$R/usage.json" "$T/unbounded.before"
: > "$T/server.log"
stop_save bounded 0
check "the counts were saved before the backup (bounded)" test -s "$T/bounded.before"
check "past the bound the stop saves nothing" cmp -s "$R/usage.json" "$T/bounded.before"
check "and says so" grep -q "usage: the counts were not saved at the stop" "$T/server.log"
check_eq "the server still stops cleanly" 0 "$SERVER_RC"
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server.conf" || exit 1
save s4 "$A" POST /api/v1/chunks --data-binary @/dev/null
check_eq "the next start does not go by the older counts: 503 while counting" 503 "$(cat "$T/s4.status")"
check "the log says why" grep -q "usage: .*usage.json counts another set of snapshots" "$T/server.log"
server_stop TERM

# ---- stopped during a recount ----
DEDUP_TEST_USAGE_REBUILD_MS=600000 server_start "$R" || exit 1
IC3=$(json_get "$(agent "$C" backup --json "$T/c")" snapshot_id)
save c5 "$ADM" GET /api/v1/clients
check_eq "a third snapshot forgotten" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$IC3")"
save c6 "$ADM" GET /api/v1/clients      # starts a recount held 10 minutes
t0=$EPOCHREALTIME
server_stop TERM
secs=$(since "$t0")
echo "# stopped in $secs s"
check_eq "the server stops cleanly" 0 "$SERVER_RC"
check "within 5 s, not after the recount" lt "$secs" 5
"$SERVER" check --repo "$R" >/dev/null 2>&1
check_eq "the repository checks clean" 0 "$?"
finish

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
#   - a server stopped while a recount runs stops at once.
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
# timed NAME TOKEN METHOD PATH: save, printing the seconds it took
timed() {
	local t0=$EPOCHREALTIME
	save "$@"
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}'
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
DEDUP_TEST_USAGE_REBUILD_MS=4000 server_start "$R" --config "$T/server.conf" || exit 1
IC2=$(json_get "$(agent "$C" backup --json "$T/c")" snapshot_id)
save c2 "$ADM" GET /api/v1/clients
check "carol's new snapshot shares the file again" test "$(unique c2 alice)" -lt 200000
check_eq "carol's snapshot forgotten again" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$IC2")"
secs=$(timed c3 "$ADM" GET /api/v1/clients)
echo "# GET /clients during the recount: $secs s"
check "during the recount, GET /clients answers within 2 s" \
	python3 -c "import sys; sys.exit(0 if $secs < 2 else 1)"
check "with the counts from before (the file still shared)" \
	test "$(unique c3 alice)" -lt 200000
secs=$(timed up "$A" POST /api/v1/chunks --data-binary @/dev/null)
echo "# alice's upload (quota checked) during the recount: $secs s, status $(cat "$T/up.status")"
check "an upload of a client with a quota is not held by it (under 2 s)" \
	python3 -c "import sys; sys.exit(0 if $secs < 2 else 1)"
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

# ---- stopped during a recount ----
DEDUP_TEST_USAGE_REBUILD_MS=600000 server_start "$R" || exit 1
IC3=$(json_get "$(agent "$C" backup --json "$T/c")" snapshot_id)
save c5 "$ADM" GET /api/v1/clients
check_eq "a third snapshot forgotten" 200 "$(api_status "$ADM" DELETE "/api/v1/snapshots/$IC3")"
save c6 "$ADM" GET /api/v1/clients      # starts a recount held 10 minutes
t0=$EPOCHREALTIME
server_stop TERM
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
echo "# stopped in $secs s"
check_eq "the server stops cleanly" 0 "$SERVER_RC"
check "within 5 s, not after the recount" python3 -c "import sys; sys.exit(0 if $secs < 5 else 1)"
"$SERVER" check --repo "$R" >/dev/null 2>&1
check_eq "the repository checks clean" 0 "$?"
finish

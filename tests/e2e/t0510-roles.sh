#!/usr/bin/env bash
# Tokens and roles: `token add [--admin]`, `token list`, `token revoke`;
# a client sees, lists and restores only its own snapshots, whatever the id
# looks like ("../", "%2F", another client's real id, its case, a prefix),
# and gets 403 for admin-only routes; an admin sees every client.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
B=$(token_add "$T/repo" bob)
OPS=$(token_add "$T/repo" ops --admin)

# ---- the token commands ----
check "token add prints only the token" grep -qxE 'dd_[0-9a-f]{64}' <<<"$A"
check_eq "and nothing else (one line)" 1 "$(printf '%s\n' "$OPS" | wc -l)"
"$SERVER" token list --repo "$T/repo" > "$T/list"
check "token list shows alice as a client" grep -qE '^alice +client ' "$T/list"
check "token list shows ops as an admin" grep -qE '^ops +admin ' "$T/list"
check "token list shows no token" not grep -q 'dd_' "$T/list"
check "tokens are stored hashed" not grep -qE "${A#dd_}|${OPS#dd_}" "$T/repo/clients.json"
check_eq "clients.json is private" 600 "$(stat -c %a "$T/repo/clients.json")"
check "adding an existing name fails" not "$SERVER" token add --repo "$T/repo" alice
"$SERVER" token add --repo "$T/repo" alice 2>"$T/exists.err"
check "... saying how to give it a new token" grep -q "already exists (a new token for it: .token revoke., then .token add.; its snapshots stay)" "$T/exists.err"
check "a bad name is refused" not "$SERVER" token add --repo "$T/repo" '../evil'
check "revoking an unknown name fails" not "$SERVER" token revoke --repo "$T/repo" nobody
check "--admin is only for add" not "$SERVER" token revoke --repo "$T/repo" --admin alice

server_start "$T/repo" || exit 1
mkdir -p "$T/a" "$T/b"
echo "alice's secret" > "$T/a/secret"
echo "bob's file" > "$T/b/file"
IDA=$(agent "$A" backup "$T/a")
IDB=$(agent "$B" backup "$T/b")
UPPER=$(tr a-f A-F <<<"$IDA")

# ---- bob reaching for alice's snapshot, every way ----
save list_b "$B" GET /api/v1/snapshots
save own_b "$B" GET "/api/v1/snapshots/$IDB"
save real "$B" GET "/api/v1/snapshots/$IDA"
save upper "$B" GET "/api/v1/snapshots/$UPPER"
save prefix "$B" GET "/api/v1/snapshots/${IDA:0:16}"
save dotdot "$B" GET "/api/v1/snapshots/../snapshots/$IDA" --path-as-is
save dotdot_enc "$B" GET "/api/v1/snapshots/..%2F$IDA"
save slash_enc "$B" GET "/api/v1/snapshots/%2E%2E%2Fsnapshots%2F$IDA"
save dotdot_file "$B" GET "/api/v1/snapshots/..%2F..%2Fsnapshots%2F$IDA.json"
save dotdot_json "$B" GET "/api/v1/snapshots/$IDA.json"
save nul "$B" GET "/api/v1/snapshots/$IDA%00"
save query_other "$B" GET '/api/v1/snapshots?client=alice'
save query_enc "$B" GET '/api/v1/snapshots?client=alice%2F..'
save history_other "$B" GET '/api/v1/history?client=alice'
save clients_b "$B" GET /api/v1/clients
save metrics_b "$B" GET /metrics
save delete_b "$B" DELETE "/api/v1/snapshots/$IDA"
save delete_own "$B" DELETE "/api/v1/snapshots/$IDB"
# admin
save admin_get "$OPS" GET "/api/v1/snapshots/$IDA"
save admin_list "$OPS" GET /api/v1/snapshots
save admin_only "$OPS" GET '/api/v1/snapshots?client=alice'
save admin_clients "$OPS" GET /api/v1/clients
pycheck "$IDA" "$IDB" <<'PY'
ida, idb = sys.argv[1], sys.argv[2]
check_eq("bob lists only his own snapshot", [idb], [s["id"] for s in J("list_b")])
check_eq("bob reads his own snapshot", 200, S("own_b"))
for name, what in [("real", "alice's real id"), ("upper", "alice's id in upper case"),
                   ("prefix", "a prefix of alice's id"), ("dotdot", "../snapshots/<id>"),
                   ("dotdot_enc", "..%2F<id>"), ("slash_enc", "%2E%2E%2Fsnapshots%2F<id>"),
                   ("dotdot_file", "..%2F..%2Fsnapshots%2F<id>.json"), ("dotdot_json", "<id>.json"),
                   ("nul", "<id>%00")]:
    st = S(name)
    check("bob gets 404 for %s" % what, st == 404, st)
    try:
        body = J(name)
    except Exception:
        body = {}
    check("... with a JSON error that leaks nothing", "error" in body and ida not in json.dumps(body) and "secret" not in json.dumps(body), body)
check_eq("bob gets 403 for ?client=alice", 403, S("query_other"))
check("bob gets 400 or 403 for ?client=alice%2F..", S("query_enc") in (400, 403), S("query_enc"))
check_eq("bob gets 403 for alice's history", 403, S("history_other"))
check_eq("bob gets 403 for the clients table", 403, S("clients_b"))
check_eq("bob gets 403 for the metrics", 403, S("metrics_b"))
check("bob cannot delete alice's snapshot (403/404/405)", S("delete_b") in (403, 404, 405), S("delete_b"))
check("a client cannot delete even its own (403/405)", S("delete_own") in (403, 405), S("delete_own"))
check_eq("the admin reads alice's snapshot", (200, ida), (S("admin_get"), J("admin_get")["id"]))
check_eq("the admin lists every client's snapshots", {ida, idb}, set(s["id"] for s in J("admin_list")))
check_eq("the admin can ask for alice's only", [ida], [s["id"] for s in J("admin_only")])
check_eq("the admin sees every client", ["alice", "bob", "ops"], [c["name"] for c in J("admin_clients")["clients"]])
PY

# ---- restore through the agent ----
agent "$B" restore "$IDA" --target "$T/r1" 2>"$T/err"; rc=$?
check_eq "bob cannot restore alice's snapshot by id" 1 "$rc"
check "and is told it is unknown" grep -qi 'unknown\|not found\|no snapshot' "$T/err"
check "and nothing was written" test ! -e "$T/r1/${T#/}/a/secret"
agent "$B" restore "${IDA:0:12}" --target "$T/r2" 2>"$T/err"; rc=$?
check_eq "nor by a prefix of its id" 1 "$rc"
check "nothing was written" test ! -e "$T/r2/${T#/}/a/secret"
agent "$B" restore latest --target "$T/r3" 2>/dev/null
check "bob's latest is his own" test -e "$T/r3/${T#/}/b/file" -a ! -e "$T/r3/${T#/}/a/secret"
agent "$B" snapshots > "$T/snaps"
check "bob's snapshot list shows only his" bash -c "grep -q '${IDB:0:12}' '$T/snaps' && ! grep -q '${IDA:0:12}' '$T/snaps'"
check "... without a CLIENT column (one client)" not grep -q "CLIENT" "$T/snaps"
agent "$OPS" snapshots > "$T/snaps"
check "the admin's list names each snapshot's client" bash -c "head -1 '$T/snaps' | grep -q '^ID  *CLIENT  *TIME' && grep -q '^${IDA:0:16}  alice ' '$T/snaps' && grep -q '^${IDB:0:16}  bob ' '$T/snaps'"
agent "$OPS" restore latest --target "$T/r5" 2>"$T/err"; rc=$?
check_eq "the admin's 'latest' over two clients' snapshots: refused (exit 1)" 1 "$rc"
check "... saying why and what to give" grep -q "'latest' with an admin token would be whichever of 2 clients backed up last: give the snapshot's id" "$T/err"
check "... nothing restored" test ! -e "$T/r5"
check "the admin can restore alice's snapshot" agent "$OPS" restore "$IDA" --target "$T/r4"
check "and gets her file back" cmp -s "$T/a/secret" "$T/r4/${T#/}/a/secret"

# ---- revoking ----
check_eq "bob's token works" 200 "$(api_status "$B" GET /api/v1/snapshots)"
"$SERVER" token revoke --repo "$T/repo" bob 2>/dev/null
check_eq "a revoked token stops working at once" 401 "$(api_status "$B" GET /api/v1/snapshots)"
check "the agent says the token was rejected" bash -c "! '$AGENT' --server '$URL' --token '$B' --ca '$CA' snapshots 2>&1 | grep -qv 'token'"
check "token list no longer shows bob" not grep -q '^bob ' <("$SERVER" token list --repo "$T/repo")
save revoked_clients "$OPS" GET /api/v1/clients
pycheck "$IDB" <<'PY'
c = {x["name"]: x for x in J("revoked_clients")["clients"]}
check_eq("bob's snapshots are still listed for the admin, marked revoked", (True, None, 1),
         (c["bob"]["revoked"], c["bob"]["role"], c["bob"]["snapshots"]))
PY
B2=$(token_add "$T/repo" bob)
check_eq "a new token for the same name works" 200 "$(api_status "$B2" GET /api/v1/snapshots)"
check_eq "the old one still does not" 401 "$(api_status "$B" GET /api/v1/snapshots)"
check_eq "and the new bob sees the old bob's snapshots (same name)" 1 "$(api "$B2" GET /api/v1/snapshots | head -n1 | grep -o '"id":' | wc -l)"
finish

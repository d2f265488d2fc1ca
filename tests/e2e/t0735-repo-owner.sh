#!/usr/bin/env bash
# A repository that belongs to the server's own user (the packaged
# `dedup`; here `nobody`), served by that user, and verbs run by root on
# it, as an operator types them with sudo: each acts as the repository's
# owner, so nothing it writes locks the server out (`token add` made
# clients.json root's 0600 and every client got 401: found by a new
# user's review). And the server reads clients.json again once it is
# readable again, a chown or chmod being all that changed.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	ok "skipped: needs root and setpriv"
	finish
fi

R=$T/repo
repo_init "$R"
chown -R nobody:nogroup "$R"
chmod 1777 "$T"          # the server, as nobody, writes its ready file here
REAL=$SERVER
cat > "$T/as-nobody.sh" <<SH
#!/bin/sh
exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$REAL" "\$@"
SH
chmod 755 "$T/as-nobody.sh"
start_as_owner() { SERVER=$T/as-nobody.sh server_start "$R" "$@" || exit 1; }
owner_of() { stat -c %U "$1"; }
not_owned() { find "$R" ! -user nobody | head -5; }

start_as_owner
check_eq "the server runs as the repository's owner" 65534 "$(ps -o uid= -p "$SERVER_PID" | tr -d ' ')"

# ---- token add by root ----
ALICE=$("$REAL" token add --repo "$R" alice 2>"$T/token.err")
check_eq "token add by root: exit 0" 0 $?
check "... says whose it acts as" grep -q "acting as user 'nobody'" "$T/token.err"
check_eq "... clients.json stays the owner's" nobody "$(owner_of "$R/clients.json")"
mkdir -p "$T/data/sub"
prand o1 1200000 > "$T/data/one.bin"
seq 1 40000 > "$T/data/sub/seq.txt"
OUT=$(agent "$ALICE" backup --json "$T/data" 2>"$T/backup.err")
check_eq "the server accepts the new client's backup" 0 $?
SNAP=$(json_get "$OUT" snapshot_id)
BOB=$("$REAL" token add --repo "$R" bob 2>/dev/null)
"$REAL" token revoke --repo "$R" bob 2>/dev/null
check_eq "token revoke by root: clients.json stays the owner's" nobody "$(owner_of "$R/clients.json")"
check_eq "... bob is refused" 401 "$(api_status "$BOB" GET /api/v1/snapshots)"

# ---- clients.json unreadable, then readable again by a chown ----
chown root:root "$R/clients.json"
chmod 600 "$R/clients.json"
alice_gets() { [ "$(api_status "$ALICE" GET /api/v1/snapshots)" = "$1" ]; }
poll_until 10 alice_gets 401
check_eq "clients.json made unreadable to the server: tokens refused" 401 "$(api_status "$ALICE" GET /api/v1/snapshots)"
chown nobody:nogroup "$R/clients.json"
poll_until 10 alice_gets 200
check_eq "a chown alone makes it readable: tokens accepted again" 200 "$(api_status "$ALICE" GET /api/v1/snapshots)"
check "the server's log says so" grep -q "readable again" "$T/server.log"

# ---- a sync asked by root reaches the server ----
"$REAL" sync --repo "$R" --wait 20 >/dev/null 2>"$T/sync.err"
check_eq "sync asked by root: the server answers (no sync_from: exit 1)" 1 $?
check "... with its answer, not a timeout" grep -q "sync_from is not set" "$T/sync.err"
server_stop TERM

# ---- maintenance verbs by root ----
"$REAL" repair --repo "$R" --rebuild-index >"$T/repair.out" 2>&1
check_eq "repair --rebuild-index by root: exit 0" 0 $?
"$REAL" gc --repo "$R" --config /dev/null >"$T/gc.out" 2>&1
check_eq "gc by root: exit 0" 0 $?
"$REAL" check --repo "$R" --read-data >"$T/check.out" 2>&1
check_eq "check --read-data by root: clean" 0 $?
check_eq "every file of the repository is still the owner's" "" "$(not_owned)"
start_as_owner
rm -rf "$T/r"
agent "$ALICE" restore "$SNAP" --target "$T/r" >/dev/null 2>"$T/restore.err"
check_eq "the owner's server restores the snapshot afterwards" 0 $?
check_eq "... identical" "$(tree_manifest "$T/data")" "$(tree_manifest "$T/r$T/data")"
"$REAL" serve --repo "$R" --config /dev/null --listen 127.0.0.1:0 2>"$T/serve.err" &
RPID=$!
for _ in $(seq 1 100); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$RPID" 2>/dev/null; then kill "$RPID"; fi
wait "$RPID"
check_eq "serve by root on the owner's repository: refused (exit 1)" 1 $?
check "... saying how to serve it" grep -q "belongs to user 'nobody' (uid 65534): serve it as that user" "$T/serve.err"
server_stop TERM

# A repository never served (no lock file yet), chowned to the user alone
# (its group left root's): a sync by root neither leaves a lock of root's
# nor acts as group root.
R2=$T/repo2
repo_init "$R2"
chown -R nobody:root "$R2"
"$REAL" sync --repo "$R2" --wait 2 >/dev/null 2>"$T/sync2.err"
check_eq "sync asked by root, no server: exit 1" 1 $?
check "... saying no server serves it" grep -q "no dedup-server is serving" "$T/sync2.err"
check_eq "... every file still the owner's" "" "$(find "$R2" ! -user nobody | head -3)"
"$REAL" token add --repo "$R2" carol >/dev/null 2>&1
check_eq "token add by root acts as the owner's own group, not root's" nogroup "$(stat -c %G "$R2/clients.json")"
SERVER=$T/as-nobody.sh server_start "$R2" || exit 1
check "the owner's server starts on it" test -n "$SERVER_PID"
server_stop TERM

# init by root into an empty directory made for the service (the
# user's): the repository is the user's.
mkdir "$T/repo3"
chown nobody:nogroup "$T/repo3"
"$REAL" init --repo "$T/repo3" >/dev/null 2>"$T/init3.err"
check_eq "init by root into the user's empty directory: exit 0" 0 $?
check_eq "... every file the user's" "" "$(find "$T/repo3" ! -user nobody | head -3)"
SERVER=$T/as-nobody.sh server_start "$T/repo3" || exit 1
check "... and the user's server serves it" test -n "$SERVER_PID"
server_stop TERM
finish

#!/usr/bin/env bash
# An agent newer than its server: the server refuses the new catalog
# version at the snapshot's create (as a server built before catalog
# version 3 answers: 400, "invalid catalog: unsupported catalog version
# 3"), and the agent says what to do, upgrade the server first
# (docs/OPERATIONS.md, "Upgrading"), instead of curl's words alone. A
# proxy in front of a real server stands for the older one.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
TOK=$(token_add "$T/repo" laptop)
server_start "$T/repo" || exit 1
cat > "$T/older.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from tlsproxy import serve
def older(method, path, body, headers, forward):
    if method == "POST" and path.split("?")[0] == "/api/v1/snapshots":
        return (400, "application/json",
                b'{"error": "invalid catalog: unsupported catalog version 3"}')
    return forward(method, path, body, headers)
serve(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], older)
PY
python3 "$T/older.py" "$(dirname "$0")" "$T/older.port" "$URL" "$CA" \
	"$T/repo/tls/cert.pem" "$T/repo/tls/key.pem" 2>>"$T/older.log" &
PPID_=$!
for _ in $(seq 1 200); do [ -s "$T/older.port" ] && break; sleep 0.05; done
mkdir -p "$T/data"
prand o1 300000 > "$T/data/f"
"$AGENT" --server "https://127.0.0.1:$(cat "$T/older.port")" --token "$TOK" --ca "$CA" \
	backup "$T/data" >/dev/null 2>"$T/err"
check_eq "a backup into an older server: exit 1" 1 $?
check "... saying the server is older and to upgrade it first" grep -q "the server is older than this agent (upgrade servers before agents" "$T/err"
check "... with the server's reason" grep -q "unsupported catalog version 3" "$T/err"
check_eq "... and no snapshot was made" "[]" "$(agent "$TOK" snapshots --json)"
kill "$PPID_" 2>/dev/null
wait "$PPID_" 2>/dev/null
"$AGENT" --server "$URL" --token "$TOK" --ca "$CA" backup "$T/data" >/dev/null 2>"$T/err2"
check_eq "the same agent against the server itself: exit 0" 0 $?
finish

#!/usr/bin/env bash
# server.conf: every key from a file, flags winning over it, a thread pool,
# and bad files refused with the file, line and key named.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
OPS=$(token_add "$T/repo" ops --admin)
mkdir -p "$T/d" && seq 1 100000 > "$T/d/f" && prand conf 500000 > "$T/d/r"

# serve_conf CONFIG [args]: a server from a config file only (no --repo);
# sets SERVER_PID, URL and CA like server_start.
serve_conf() {
	local conf=$1 ready=$T/ready.$RANDOM i
	shift
	"$SERVER" serve --config "$conf" --ready-file "$ready" "$@" 2>>"$T/server.log" &
	SERVER_PID=$!
	track_pid "$SERVER_PID"
	for i in $(seq 1 200); do
		[ -s "$ready" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -s "$ready" ] || { echo "server did not start:"; tail -n 5 "$T/server.log"; return 1; }
	URL=$(cat "$ready")
	CA=$T/repo/tls/cert.pem
}

cat > "$T/server.conf" <<EOF
# every key
repo = $T/repo
listen = 127.0.0.1:0
tls_cert = $T/repo/tls/cert.pem
tls_key = "$T/repo/tls/key.pem"
threads = 4
max_connections = 32
per_ip_connections = 16
connection_timeout = 2m
drain_timeout = 10s
session_timeout = 1h
stale_after = 36h
EOF
serve_conf "$T/server.conf" || exit 1
check "the server starts from the config file alone" test -n "$URL"
q() { "$@" >/dev/null; }
check "a backup works with a pool of 4 threads" q agent "$A" backup "$T/d"
check "a second backup works too" bash -c "'$AGENT' --server '$URL' --token '$A' --ca '$CA' backup '$T/d' >/dev/null"
check_eq "stale_after is read (36h)" 129600 "$(api "$OPS" GET /api/v1/clients | head -n1 | grep -o '"stale_after_seconds":[0-9]*' | cut -d: -f2)"
# parallel requests on the pool
for i in 1 2 3 4 5 6 7 8; do api_status "$A" GET /api/v1/stats > "$T/par.$i" & done
wait_ok=1
for i in 1 2 3 4 5 6 7 8; do
	for j in $(seq 1 100); do [ -s "$T/par.$i" ] && break; sleep 0.05; done
	[ "$(cat "$T/par.$i" 2>/dev/null)" = 200 ] || wait_ok=0
done
check "eight parallel requests on the pool are all answered" test "$wait_ok" = 1
server_stop TERM
check_eq "it stops cleanly" 0 "$SERVER_RC"

# flags win over the file
printf 'repo = %s/nowhere\nlisten = 127.0.0.1:1\nstale_after = 1h\n' "$T" > "$T/other.conf"
serve_conf "$T/other.conf" --repo "$T/repo" --listen 127.0.0.1:0 --set stale_after=2h --threads 2 || exit 1
check_eq "--repo, --listen and --set win over the file" 7200 "$(api "$OPS" GET /api/v1/clients | head -n1 | grep -o '"stale_after_seconds":[0-9]*' | cut -d: -f2)"
server_stop TERM

# bad files: the error names the file, the line and the key
bad() { # DESCRIPTION CONTENT PATTERN...
	local desc=$1 content=$2 rc
	shift 2
	printf '%b' "$content" > "$T/bad.conf"
	# No --listen: one case is about the file's; the others fail
	# before anything listens.
	timeout 10 "$SERVER" serve --config "$T/bad.conf" --repo "$T/repo" \
		--ready-file "$T/bad.ready" 2>"$T/bad.err" &
	local pid=$!
	track_pid "$pid"
	wait "$pid"; rc=$?
	local okk=1 p
	[ "$rc" = 1 ] || okk=0
	[ "$(wc -l < "$T/bad.err")" = 1 ] || okk=0
	for p in "$@"; do grep -q -- "$p" "$T/bad.err" || okk=0; done
	if [ "$okk" = 1 ]; then ok "$desc"; else not_ok "$desc (exit $rc: $(cat "$T/bad.err"))"; fi
}
bad "an unknown key is refused, naming file, line and key" '# c\nrepo = /x\nbogus = 1\n' "$T/bad.conf:3" "'bogus'" "unknown key"
bad "a bad number names the key and line" 'threads = many\n' "bad.conf:1" "'threads'" "invalid value 'many'"
bad "a number out of range too" '\n\nmax_connections = 0\n' "bad.conf:3" "'max_connections'"
bad "a bad duration names the key" 'stale_after = 3 weeks\n' "bad.conf:1" "'stale_after'" "duration"
bad "a line without '=' names the line" 'repo = /x\nlisten\n' "bad.conf:2" "key = value"
bad "an empty value is refused" 'tls_cert =\n' "bad.conf:1" "'tls_cert'"
bad "a bad listen address is named" 'listen = nowhere\n' "invalid listen address 'nowhere'"
bad "a missing certificate file is named" "tls_cert = $T/missing.pem\n" "missing.pem"
"$SERVER" serve --config "$T/does-not-exist.conf" --repo "$T/repo" 2>"$T/err"; rc=$?
check_eq "a missing --config file is an error" 1 "$rc"
check "naming it" grep -q 'does-not-exist.conf' "$T/err"
"$SERVER" serve --config /dev/null --repo "$T/repo" --set nope 2>"$T/err"; rc=$?
check_eq "--set without '=' is a usage error" 2 "$rc"
"$SERVER" serve --config /dev/null --repo "$T/repo" --set threads=-1 2>"$T/err"; rc=$?
check_eq "--set with a bad value is an error" 1 "$rc"
check "naming the flag and key" grep -q -- "--set: invalid value '-1' for 'threads'" "$T/err"
"$SERVER" serve --config /dev/null 2>"$T/err"; rc=$?
check_eq "no repository anywhere is a usage error" 2 "$rc"
EXAMPLE=$(cd "$(dirname "$0")/../.." && pwd)/conf/server.conf.example
sed "s|^repo = .*|repo = $T/repo|; s|^listen = .*|listen = 127.0.0.1:0|" "$EXAMPLE" > "$T/example.conf"
check "the example config has every key" test "$(grep -cE '^#?(repo|listen|tls_cert|tls_key|threads|max_connections|per_ip_connections|connection_timeout|drain_timeout|session_timeout|stale_after) =' "$T/example.conf")" = 11
serve_conf "$T/example.conf"
check "the example config works" test -n "$URL"
check_eq "and its server answers" 200 "$(api_status "" GET /api/v1/health)"
server_stop TERM
finish

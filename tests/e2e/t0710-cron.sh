#!/usr/bin/env bash
# The agent under cron: -q prints nothing on success, errors still reach
# stderr, the bare environment of `env -i` is enough, one backup at a time
# per configuration (exit 4 for the second, with the lock file where
# dedup-agent(1) says), the documented exit codes, and a progress line on a
# terminal only.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" cron)
server_start "$T/repo" || exit 1
mkdir -p "$T/data/sub"
seq 1 50000 > "$T/data/numbers"
prand cron 3000000 > "$T/data/sub/random.bin"
printf 'server = %s\ntoken = %s\nca = %s\n' "$URL" "$A" "$CA" > "$T/agent.conf"
chmod 0600 "$T/agent.conf"

# lock_file URL TOKEN [USER]: the lock path as dedup-agent(1) documents it.
lock_file() {
	local dir=/tmp uid key as=()
	[ -n "${3:-}" ] && as=("$(command -v setpriv)" --reuid="$3" --regid="$(id -g "$3")" --clear-groups)
	"${as[@]}" test -d /run/lock -a -w /run/lock && dir=/run/lock
	uid=$(id -u "${3:-$(id -un)}")
	key=$(printf '%s\n%s' "$1" "$2" | sha256sum | cut -c1-16)
	echo "$dir/dedup-agent.$uid.$key.lock"
}
L=$(lock_file "$URL" "$A")

# 1. the cron line: no environment, no terminal, no output on success
(cd / && env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" backup -q "$T/data" \
	>"$T/out" 2>"$T/err" </dev/null)
rc=$?
check_eq "env -i backup -q exits 0" 0 "$rc"
check_eq "env -i backup -q prints nothing on stdout" "" "$(cat "$T/out")"
check_eq "env -i backup -q prints nothing on stderr" "" "$(cat "$T/err")"
nsnap() { agent "$A" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
check_eq "the snapshot was made" 1 "$(nsnap)"
check "the lock file is removed when the run ends" test ! -e "$L"
env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" backup "$T/data" >"$T/out" 2>"$T/err"
check "without -q the id is printed" grep -qE '^[0-9a-f]{64}$' "$T/out"
check "no progress line when stderr is not a terminal" test ! -s "$T/err"

# 2. errors still reach stderr under -q, with the documented codes
env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" --token wrong backup -q "$T/data" >"$T/out" 2>"$T/err"
rc=$?
check_eq "-q with a wrong token exits 1" 1 "$rc"
check "and says why on stderr" grep -q '^error: ' "$T/err"
check_eq "and prints nothing on stdout" "" "$(cat "$T/out")"
env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" backup -q --frobnicate "$T/data" 2>"$T/err"
check_eq "-q with a bad option exits 2" 2 "$?"
check "and prints the usage" grep -q '^usage: ' "$T/err"

# 3. one at a time: a lock held elsewhere (flock(1) on the same file)
flock -n "$L" env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" backup -q "$T/data" >"$T/out" 2>"$T/err"
rc=$?
check_eq "a second backup while the lock is held exits 4" 4 "$rc"
check "with a message saying so" grep -q 'still running' "$T/err"
check "naming the lock file" grep -qF "$L" "$T/err"
check_eq "it prints nothing on stdout" "" "$(cat "$T/out")"
check_eq "and made no snapshot" 2 "$(nsnap)"
flock -n "$L" "$AGENT" --config "$T/agent.conf" backup --help >/dev/null
check_eq "backup --help still answers while locked" 0 "$?"
flock -n "$L" env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" snapshots >/dev/null
check_eq "other verbs take no lock" 0 "$?"
flock -n "$L" env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" --token other backup -q "$T/data" >/dev/null 2>&1
check_eq "another configuration (token) has its own lock" 1 "$?"
rm -f "$L"    # made by flock(1), which does not remove it

# 4. two real backups at once. The server is stopped (SIGSTOP) so that the
# first run holds the lock, blocked in its TLS handshake, for as long as
# the test needs: no timing luck involved.
kill -STOP "$SERVER_PID"
env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" backup -q "$T/data" >"$T/a.out" 2>"$T/a.err" &
apid=$!
# Polling with flock(1) would take the lock itself: watch for the pid the
# holder writes into the lock file instead.
held=no
for _ in $(seq 1 250); do
	if grep -qx "$apid" "$L" 2>/dev/null; then held=yes; break; fi
	sleep 0.02
done
check_eq "the first backup holds the lock" yes "$held"
env -i DEDUP_STATE_DIR="$DEDUP_STATE_DIR" "$AGENT" --config "$T/agent.conf" backup -q "$T/data" >"$T/b.out" 2>"$T/b.err"
check_eq "the second one exits 4 at once" 4 "$?"
check "naming the first one's pid" grep -q "pid $apid" "$T/b.err"
kill -CONT "$SERVER_PID"
wait "$apid"
check_eq "the first one succeeds" 0 "$?"
check_eq "silently" "" "$(cat "$T/a.out" "$T/a.err")"
check "and removes its lock file" test ! -e "$L"

# 5. progress: drawn on a terminal, never with -q
if command -v script >/dev/null; then
	prand cron2 40000000 > "$T/data/sub/big.bin"
	script -qec "$AGENT --config $T/agent.conf backup --force-read $T/data" /dev/null > "$T/tty" 2>&1
	check "on a terminal, a progress line with files and bytes" grep -qaE '[0-9]+ files +[0-9.]+ (B|KiB|MiB|GiB)' "$T/tty"
	check "and the id after it" grep -qaE '[0-9a-f]{64}' "$T/tty"
	script -qec "$AGENT --config $T/agent.conf backup -q --force-read $T/data" /dev/null > "$T/tty" 2>&1
	check_eq "with -q on a terminal: nothing at all" "" "$(tr -d '\r\n' < "$T/tty")"
else
	echo "# script(1) missing: progress checks skipped"
fi

# 6. as a normal user under env -i: own lock, and exit 3 for unreadable files
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	U=$T/user
	mkdir -p "$U/data"
	echo readable > "$U/data/ok"
	echo secret > "$U/data/secret" && chmod 0600 "$U/data/secret"
	cp "$T/agent.conf" "$U/agent.conf"
	chmod 0755 "$T" "$U" "$U/data"
	chown nobody "$U/agent.conf"
	chmod 0644 "$T/repo/tls/cert.pem" 2>/dev/null
	chmod 0755 "$T/repo" "$T/repo/tls" 2>/dev/null
	NB=("$(command -v setpriv)" --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
	# The build may sit where nobody cannot reach it (a checkout under
	# /root is mode 0700): nobody runs a copy in the test's own folder.
	UA=$T/bin/dedup-agent
	mkdir -p "$T/bin" && cp "$AGENT" "$UA" && chmod 0755 "$T/bin" "$UA"
	check "nobody can run the agent's copy" "${NB[@]}" "$UA" --version
	(cd / && env -i "${NB[@]}" "$UA" --config "$U/agent.conf" backup -q "$U/data" \
		>"$T/out" 2>"$T/err")
	rc=$?
	check_eq "a user's backup with an unreadable file exits 3 (partial)" 3 "$rc"
	check "naming the file in a warning" grep -q 'secret' "$T/err"
	check_eq "and nothing on stdout" "" "$(cat "$T/out")"
	rm -f "$U/data/secret"
	LU=$(lock_file "$URL" "$A" nobody)
	check "the user's lock file name carries its uid" test "$LU" != "$L"
	env -i "${NB[@]}" flock -n "$LU" "$UA" --config "$U/agent.conf" backup -q "$U/data" >/dev/null 2>&1
	check_eq "the user's lock held on the documented path: exit 4" 4 "$?"
	rm -f "$LU"
	flock -n "$L" env -i "${NB[@]}" "$UA" --config "$U/agent.conf" backup -q "$U/data" >/dev/null 2>&1
	check_eq "root holding its lock does not block the user" 0 "$?"
	rm -f "$L"
else
	echo "# not root: the normal-user checks are skipped"
fi

finish

#!/usr/bin/env bash
# The agent's systemd unit (conf/dedup-agent.service) as it runs: under
# ProtectSystem=strict nothing is writable but what the unit names. A
# mount namespace stands for that sandbox where the agent writes: /var/lib
# becomes an empty file system, read-only but for one writable directory
# per StateDirectory= of the unit. The agent runs there as root with no
# DEDUP_STATE_DIR (its state goes where the packaged one's does), twice
# over an unchanged tree: the second run must find the snapshot the first
# made and read no file again, and say nothing of a state it could not
# write. (Before the unit named its state directory, every timer run read
# every file: found by a new user's review.)
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=$ROOT/conf/dedup-agent.service

if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
	ok "skipped: needs root and mount namespaces"
	finish
fi

repo_init "$T/repo"
TOK=$(token_add "$T/repo" host1)
server_start "$T/repo" || exit 1
mkdir -p "$T/data/sub"
prand u1 1500000 > "$T/data/one.bin"
seq 1 50000 > "$T/data/sub/seq.txt"
age_tree "$T/data"

STATE_DIRS=$(sed -n 's/^StateDirectory=//p' "$UNIT")
check "the unit names a state directory" test -n "$STATE_DIRS"
check "... and keeps the file system read-only otherwise" grep -qx "ProtectSystem=strict" "$UNIT"

# Both runs in one namespace: its /var/lib lives as long as it does.
cat > "$T/two-runs.sh" <<'SH'
set -e
t=$1; shift
mount -t tmpfs -o size=4m,mode=0755 dedup-unit-test /var/lib
for d in $STATE_DIRS; do
	mkdir -p -m 0700 "/var/lib/$d"
	mount --bind "/var/lib/$d" "/var/lib/$d"
done
mount -o remount,bind,ro /var/lib
{ echo probe > /var/lib/probe; } 2>/dev/null && echo "writable" > "$t/varlib.state" || echo "read-only" > "$t/varlib.state"
env -u DEDUP_STATE_DIR "$@" >"$t/run1.out" 2>"$t/run1.err"
env -u DEDUP_STATE_DIR "$@" >"$t/run2.out" 2>"$t/run2.err"
SH
STATE_DIRS=$STATE_DIRS unshare -m --propagation private \
	sh "$T/two-runs.sh" "$T" "$AGENT" --server "$URL" --token "$TOK" \
	--ca "$CA" --quiet backup --json "$T/data"
check_eq "the sandbox's /var/lib is read-only outside the state directory" read-only "$(cat "$T/varlib.state")"
check "the first run in the unit's sandbox made a snapshot" test -n "$(json_get "$(cat "$T/run1.out")" snapshot_id)"
check_eq "the second run found every file unchanged" 2 "$(json_get "$(cat "$T/run2.out")" files_unchanged)"
check_eq "... and read no byte" 0 "$(json_get "$(cat "$T/run2.out")" bytes_read)"
check "... no warning about its state" not grep -q "cannot record" "$T/run1.err" "$T/run2.err"
check "nothing of the sandbox reached this machine's /var/lib" test ! -e /var/lib/probe
finish

#!/usr/bin/env bash
# test: alone (installs into /etc/dedup and /usr, which other scripts' agents would read)
# test: plain-only (packages its own plain build; no sanitized binary runs)
# The Debian packages, end to end on this machine: `make deb` (lintian
# clean of errors), install both with dpkg, check what they put where,
# lint the systemd units, start the installed server the way its unit
# does (as the user dedup, no systemd needed), back up with the installed
# agent the way cron does, two backups at once, reinstall (upgrade path),
# remove, purge (the repository stays unless asked), and leave the machine
# as it was.
#
# Needs root, dpkg-buildpackage and debhelper (packaging/deps.sh installs
# them); without them it is skipped, counted as neither passed nor failed.
# DD_SKIP_PACKAGES=1 skips it too. It refuses to touch a machine where
# dedup is installed or /var/lib/dedup exists.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NAME=$(basename "$0" .sh)

skip() {
	echo "skipped: $1"
	echo "$NAME: 0 passed, 0 failed"
	exit 0
}
[ "${DD_SKIP_PACKAGES:-}" = 1 ] && skip "DD_SKIP_PACKAGES=1"
[ "$(id -u)" = 0 ] || skip "not root (installing packages needs root)"
command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
	skip "dpkg-buildpackage or debhelper missing (packaging/deps.sh)"
# The packages are built without sanitizers; the plain run tests them.
grep -qa __asan_init "$AGENT" 2>/dev/null && skip "sanitizer build"

# One package test at a time on this machine (other checkouts may run it).
LOCKDIR=/tmp
[ -d /run/lock ] && [ -w /run/lock ] && LOCKDIR=/run/lock
exec 9>"$LOCKDIR/dedup-t0700-packages.lock"
flock -w 800 9 || skip "another package test held the machine too long"

has() { command -v "$1" >/dev/null; }
user_exists() { getent passwd "$1" >/dev/null; }
installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qv '^not-installed$'; }
installed dedup-server && skip "dedup-server is installed on this machine"
installed dedup-agent && skip "dedup-agent is installed on this machine"
[ -e /var/lib/dedup ] && skip "/var/lib/dedup exists on this machine"
USER_EXISTED=no
getent passwd dedup >/dev/null && USER_EXISTED=yes

# dpkg ARGS...: dpkg, waiting (up to 5 minutes) while another process,
# such as apt, holds the dpkg lock.
dpkg() {
	local i rc
	for i in $(seq 1 150); do
		command dpkg "$@" 2>"$T/dpkg.err"
		rc=$?
		if [ "$rc" != 2 ] || ! grep -q 'lock' "$T/dpkg.err"; then
			cat "$T/dpkg.err" >&2
			return "$rc"
		fi
		sleep 2
	done
	cat "$T/dpkg.err" >&2
	return "$rc"
}

REPO=/var/lib/dedup
SRV_PID=
pkg_cleanup() {
	if ours "$SRV_PID"; then
		kill -TERM "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	if installed dedup-server || installed dedup-agent; then
		DEDUP_PURGE_REPOSITORY=yes dpkg --purge dedup-agent dedup-server >/dev/null 2>&1
	fi
	# Only what this test made: the skip checks above ensure that.
	installed dedup-server || rm -rf "$REPO"
	if [ "$USER_EXISTED" = no ] && ! installed dedup-server &&
	   getent passwd dedup >/dev/null; then
		userdel dedup 2>/dev/null
		getent group dedup >/dev/null && groupdel dedup 2>/dev/null
	fi
	cleanup
}
trap pkg_cleanup EXIT

# srv_start: the installed server as its unit runs it (user dedup, the
# packaged config, a bare environment), on a free port.
srv_start() {
	rm -f "$RUN/ready"
	env -i "$(command -v setpriv)" --reuid=dedup --regid=dedup --init-groups -- \
		/usr/sbin/dedup-server serve --config /etc/dedup/server.conf \
		--listen 127.0.0.1:0 --ready-file "$RUN/ready" 2>>"$T/pkgserver.log" &
	SRV_PID=$!
	for _ in $(seq 1 200); do
		[ -s "$RUN/ready" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -s "$RUN/ready" ] || { echo "server did not start:"; cat "$T/pkgserver.log"; return 1; }
	URL=$(cat "$RUN/ready")
	printf 'server = %s\ntoken = %s\nca = %s\n' "$URL" "$TOKEN" "$REPO/tls/cert.pem" > "$T/agent.conf"
	chmod 0600 "$T/agent.conf"
}
srv_stop() {
	kill -TERM "$SRV_PID"
	wait "$SRV_PID"
	SRV_RC=$?
	SRV_PID=
}
# repo_sum: one hash of every file of the repository (its lock aside).
repo_sum() { (cd "$REPO" && find . -type f ! -name lock -print0 | sort -z |
	xargs -0 sha256sum | sha256sum); }
nsnap() { /usr/bin/dedup-agent --config "$T/agent.conf" snapshots --json |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# 1. build
start=$(date +%s)
make -C "$ROOT" --no-print-directory O="$T/pkg" deb >"$T/deb.log" 2>&1
rc=$?
echo "# make deb took $(( $(date +%s) - start ))s"
check_eq "make deb succeeds (lintian --fail-on error included)" 0 "$rc"
[ "$rc" = 0 ] || { tail -n 40 "$T/deb.log"; finish; }
SRV_DEB=$(ls "$T"/pkg/deb/dedup-server_*.deb)
AGT_DEB=$(ls "$T"/pkg/deb/dedup-agent_*.deb)
check "both .debs were built" test -f "$SRV_DEB" -a -f "$AGT_DEB"
# The RADOS storage module is a package of its own: the server needs no
# Ceph library (docs/STORAGE.md).
RAD_DEB=$(ls "$T"/pkg/deb/dedup-server-rados_*.deb 2>/dev/null)
check "dedup-server-rados .deb was built" test -f "$RAD_DEB"
check "it ships the module in /usr/lib/dedup" \
	grep -q ' ./usr/lib/dedup/dedup-backend-rados.so$' <(dpkg-deb -c "$RAD_DEB")
check "it depends on librados2 and on dedup-server of its version" \
	grep -q 'dedup-server (= .*librados2' <(dpkg-deb -f "$RAD_DEB" Depends)
check "dedup-server does not depend on librados" \
	not grep -q rados <(dpkg-deb -f "$SRV_DEB" Depends)
check "dedup-server does not ship the module" \
	not grep -q 'dedup-backend-rados' <(dpkg-deb -c "$SRV_DEB")
check "dedup-server loads modules from /usr/lib/dedup" \
	grep -qx /usr/lib/dedup <(dpkg-deb --fsys-tarfile "$SRV_DEB" |
		tar -xOf - ./usr/sbin/dedup-server | strings)
check "lintian is installed (packaging/deps.sh)" has lintian
check_eq "lintian: no errors" "" "$(grep '^E: ' "$T/deb.log")"
grep -E '^[WI]: ' "$T/deb.log" | sed 's/^/# lintian /'
V=$(sed -n 's/^#define DD_VERSION "\(.*\)"/\1/p' "$ROOT/shared/proto.h")
check_eq "debian/changelog has the version of proto.h" "$V" \
	"$(dpkg-parsechangelog -l "$ROOT/packaging/debian/changelog" -S Version)"
check_eq "dedup.spec has the version of proto.h" "$V" \
	"$(sed -n 's/^Version: *//p' "$ROOT/packaging/dedup.spec")"

# 2. install
dpkg -i "$SRV_DEB" "$AGT_DEB" >"$T/install.log" 2>&1
check_eq "dpkg -i installs both" 0 "$?"
check "the system user dedup exists" user_exists dedup
check "the repository was created in /var/lib/dedup" test -f "$REPO/config.json"
check_eq "owned by dedup, mode 0700" "dedup 700" "$(stat -c '%U %a' "$REPO")"
check_eq "every file in it belongs to dedup" "" "$(find "$REPO" ! -user dedup)"
check "the install says where the repository is" grep -q "repository in $REPO" "$T/install.log"
check "/usr/sbin/dedup-server" test -x /usr/sbin/dedup-server
check "/usr/bin/dedup-agent" test -x /usr/bin/dedup-agent
check_eq "/etc/dedup/agent.conf is mode 0600 root" "600 root" "$(stat -c '%a %U' /etc/dedup/agent.conf)"
check "/etc/dedup/server.conf" test -f /etc/dedup/server.conf
conff=$(dpkg-query -W -f='${Conffiles}\n' dedup-server dedup-agent)
for f in /etc/dedup/server.conf /etc/dedup/agent.conf /etc/cron.d/dedup-agent; do
	check "$f is a conffile" grep -q "^ $f " <<<"$conff"
done
check "the cron example is all comments" test -z "$(grep -v '^[[:space:]]*\(#\|$\)' /etc/cron.d/dedup-agent)"
check "the cron example uses -q" grep -q 'dedup-agent -q backup' /etc/cron.d/dedup-agent
check "the web files are under /usr/share/dedup" test -f /usr/share/dedup/web/index.html
check "dedup-agent(1) is installed" test -f /usr/share/man/man1/dedup-agent.1.gz
check "dedup-server(8) is installed" test -f /usr/share/man/man8/dedup-server.8.gz
# the guides the man pages point to (docs/*.md), with each package
for f in dedup-server/OPERATIONS.md dedup-server/REPLICATION.md dedup-server/SECURITY.md dedup-agent/OPERATIONS.md dedup-agent/ENCRYPTION.md; do
	check "/usr/share/doc/$f is installed" sh -c "test -f /usr/share/doc/$f || test -f /usr/share/doc/$f.gz"
done
UNITS="/lib/systemd/system/dedup-server.service /lib/systemd/system/dedup-agent.service /lib/systemd/system/dedup-agent.timer"
check "the three units are installed" ls $UNITS >/dev/null
check "the timer is not enabled by the package" test ! -e /etc/systemd/system/timers.target.wants/dedup-agent.timer

# 3. the units
check "the unit lint passes" python3 "$ROOT/packaging/lint-units.py" $UNITS
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify --man=no $UNITS >"$T/verify.log" 2>&1
	check_eq "systemd-analyze verify: no complaints" "0 " "$? $(cat "$T/verify.log")"
else
	echo "# systemd-analyze not installed: the lint above stands in for it"
fi

# 4. the server as its unit runs it, a client token made as the user dedup
RUN=$T/run
chmod 0711 "$T"
install -d -o dedup -g dedup "$RUN"
TOKEN=$(runuser -u dedup -- /usr/sbin/dedup-server token add --repo "$REPO" pkgtest)
check "token add as the user dedup" test -n "$TOKEN"
srv_start
check "the installed server serves the packaged repository" test -n "$URL"
mkdir -p "$T/data/d"
seq 1 30000 > "$T/data/numbers"
prand pkg 2000000 > "$T/data/d/random.bin"

# 5. the cron line
(cd / && env -i /usr/bin/dedup-agent --config "$T/agent.conf" backup -q "$T/data" >"$T/out" 2>&1 </dev/null)
check_eq "env -i dedup-agent --config FILE backup -q DIR exits 0" 0 "$?"
check_eq "and prints nothing" "" "$(cat "$T/out")"
check_eq "one snapshot" 1 "$(nsnap)"
/usr/bin/dedup-agent --config "$T/agent.conf" restore latest --target "$T/restore" -q
check "it restores identical" diff -r "$T/data" "$T/restore/${T#/}/data"

# 6. two at once: the first holds the lock (the server is stopped, so it
# waits in its TLS handshake), the second exits 4 at once
LOCK=/tmp
[ -d /run/lock ] && [ -w /run/lock ] && LOCK=/run/lock
LOCK=$LOCK/dedup-agent.0.$(printf '%s\n%s' "$URL" "$TOKEN" | sha256sum | cut -c1-16).lock
kill -STOP "$SRV_PID"
env -i /usr/bin/dedup-agent --config "$T/agent.conf" backup -q "$T/data" >"$T/a.out" 2>&1 &
apid=$!
# Polling with flock(1) would take the lock itself: watch for the pid the
# holder writes into the lock file instead.
for _ in $(seq 1 250); do grep -qx "$apid" "$LOCK" 2>/dev/null && break; sleep 0.02; done
env -i /usr/bin/dedup-agent --config "$T/agent.conf" backup -q "$T/data" >"$T/b.out" 2>&1
check_eq "a second backup while the first runs exits 4" 4 "$?"
check "saying another backup is still running" grep -q 'still running' "$T/b.out"
kill -CONT "$SRV_PID"
wait "$apid"
check_eq "the first one succeeds" 0 "$?"
check_eq "silently" "" "$(cat "$T/a.out")"
flock -n "$LOCK" env -i /usr/bin/dedup-agent --config "$T/agent.conf" backup -q "$T/data" >/dev/null 2>&1
check_eq "a lock held by flock(1) on the documented path: exit 4" 4 "$?"
rm -f "$LOCK"    # made by flock(1), which does not remove it
check_eq "two snapshots in all" 2 "$(nsnap)"

# 7. upgrade path: reinstalling keeps the repository and an edited config
echo "# edited by $NAME" >> /etc/dedup/server.conf
srv_stop
check_eq "the server stops cleanly on SIGTERM" 0 "$SRV_RC"
sum_before=$(repo_sum)
dpkg -i "$SRV_DEB" "$AGT_DEB" >"$T/upgrade.log" 2>&1
check_eq "reinstalling (the upgrade path) succeeds" 0 "$?"
check "the edited server.conf is kept" grep -q "edited by $NAME" /etc/dedup/server.conf
sum_after=$(repo_sum)
check_eq "the repository is untouched" "$sum_before" "$sum_after"
check "no new repository was made" not grep -q "created a repository" "$T/upgrade.log"
srv_start
check_eq "the snapshots are still there" 2 "$(nsnap)"
srv_stop
sum_before=$(repo_sum)

# 8. remove, then purge: the repository stays
dpkg -r dedup-agent dedup-server >"$T/remove.log" 2>&1
check_eq "dpkg -r removes both" 0 "$?"
check "the binaries are gone" test ! -e /usr/sbin/dedup-server -a ! -e /usr/bin/dedup-agent
check "the configuration stays after remove" test -f /etc/dedup/server.conf
dpkg --purge dedup-agent dedup-server >"$T/purge.log" 2>&1
check_eq "dpkg --purge succeeds" 0 "$?"
check "purge removes the configuration" test ! -e /etc/dedup/server.conf -a ! -e /etc/dedup/agent.conf
check "purge keeps the repository" test -f "$REPO/config.json"
check "and says so" grep -q "kept the repository" "$T/purge.log"

# 9. a new installation adopts the kept repository; purge when asked
dpkg -i "$SRV_DEB" >"$T/reinstall.log" 2>&1
check_eq "installing again over a kept repository" 0 "$?"
sum_again=$(repo_sum)
check_eq "uses it as it is" "$sum_before" "$sum_again"
DEDUP_PURGE_REPOSITORY=yes dpkg --purge dedup-server >"$T/purge2.log" 2>&1
check_eq "purge with DEDUP_PURGE_REPOSITORY=yes succeeds" 0 "$?"
check "and deletes the repository" test ! -e "$REPO"
check "nothing of dedup stays installed" not installed dedup-server

finish

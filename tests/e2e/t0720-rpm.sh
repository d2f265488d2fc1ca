#!/usr/bin/env bash
# test: plain-only (packages its own plain build; no sanitized binary runs)
# The RPM packages: `make rpm` (rpmbuild --nodeps on Debian) builds
# dedup-server and dedup-agent, and `rpm -qpl` lists the files each must
# ship, with the modes and config flags that matter. Skipped, counted as
# neither passed nor failed, when rpmbuild is missing (packaging/deps.sh
# installs Debian's rpm package).
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NAME=$(basename "$0" .sh)

skip() {
	echo "skipped: $1"
	echo "$NAME: 0 passed, 0 failed"
	exit 0
}
command -v rpmbuild >/dev/null || skip "rpmbuild missing (packaging/deps.sh installs rpm)"
# The packages are built without sanitizers; the plain run tests them.
grep -qa __asan_init "$AGENT" 2>/dev/null && skip "sanitizer build"

start=$(date +%s)
make -C "$ROOT" --no-print-directory O="$T/pkg" rpm >"$T/rpm.log" 2>&1
rc=$?
echo "# make rpm took $(( $(date +%s) - start ))s"
check_eq "make rpm succeeds" 0 "$rc"
[ "$rc" = 0 ] || { tail -n 40 "$T/rpm.log"; finish; }
V=$(sed -n 's/^#define DD_VERSION "\(.*\)"/\1/p' "$ROOT/shared/proto.h")
SRV=$(ls "$T"/pkg/rpm/dedup-server-"$V"-*.rpm 2>/dev/null)
AGT=$(ls "$T"/pkg/rpm/dedup-agent-"$V"-*.rpm 2>/dev/null)
check "dedup-server-$V rpm built" test -f "$SRV"
check "dedup-agent-$V rpm built" test -f "$AGT"

rpm -qpl "$SRV" > "$T/srv.list" 2>/dev/null
rpm -qpl "$AGT" > "$T/agt.list" 2>/dev/null
for f in /usr/sbin/dedup-server /etc/dedup/server.conf \
	/usr/lib/systemd/system/dedup-server.service \
	/usr/share/dedup/web/index.html /var/lib/dedup; do
	check "dedup-server ships $f" grep -qx "$f" "$T/srv.list"
done
check "dedup-server ships dedup-server(8)" grep -q '^/usr/share/man/man8/dedup-server\.8' "$T/srv.list"
for f in /usr/bin/dedup-agent /etc/dedup/agent.conf /etc/cron.d/dedup-agent \
	/usr/lib/systemd/system/dedup-agent.service \
	/usr/lib/systemd/system/dedup-agent.timer; do
	check "dedup-agent ships $f" grep -qx "$f" "$T/agt.list"
done
check "dedup-agent ships dedup-agent(1)" grep -q '^/usr/share/man/man1/dedup-agent\.1' "$T/agt.list"
check "dedup-server ships the guides (OPERATIONS.md, REPLICATION.md)" sh -c "grep -q '^/usr/share/doc/dedup-server/OPERATIONS.md$' '$T/srv.list' && grep -q '^/usr/share/doc/dedup-server/REPLICATION.md$' '$T/srv.list'"
check "dedup-agent ships OPERATIONS.md and ENCRYPTION.md" sh -c "grep -q '^/usr/share/doc/dedup-agent/OPERATIONS.md$' '$T/agt.list' && grep -q '^/usr/share/doc/dedup-agent/ENCRYPTION.md$' '$T/agt.list'"
check "the server is not in the agent package" not grep -q dedup-server "$T/agt.list"
# The RADOS storage module is a package of its own (docs/STORAGE.md).
RAD=$(ls "$T"/pkg/rpm/dedup-server-rados-"$V"-*.rpm 2>/dev/null)
check "dedup-server-rados-$V rpm built" test -f "$RAD"
check "it ships the module in the libdir's dedup/" \
	grep -q '^/usr/lib[0-9]*/dedup/dedup-backend-rados\.so$' <(rpm -qpl "$RAD" 2>/dev/null)
check "it requires dedup-server of its version" \
	grep -qx "dedup-server = $V-1" <(rpm -qpR "$RAD" 2>/dev/null)
check "and librados" grep -q '^librados\.so' <(rpm -qpR "$RAD" 2>/dev/null)
check "dedup-server does not require librados" \
	not grep -q rados <(rpm -qpR "$SRV" 2>/dev/null)
check "dedup-server does not ship the module" not grep -q dedup-backend "$T/srv.list"

# --dump: path size mtime digest mode owner group isconfig isdoc ...
dump() { rpm -qp --dump "$1" 2>/dev/null | awk -v f="$2" '$1 == f { print $5, $6, $7, $8 }'; }
check_eq "agent.conf: mode 0600 root, a config file" "0100600 root root 1" "$(dump "$AGT" /etc/dedup/agent.conf)"
check_eq "server.conf: a config file" "1" "$(dump "$SRV" /etc/dedup/server.conf | cut -d' ' -f4)"
check_eq "the cron example: a config file" "1" "$(dump "$AGT" /etc/cron.d/dedup-agent | cut -d' ' -f4)"
check_eq "/var/lib/dedup: mode 0700, owned by dedup" "040700 dedup dedup" "$(dump "$SRV" /var/lib/dedup | cut -d' ' -f1-3)"
rpm -qp --scripts "$SRV" > "$T/scripts" 2>/dev/null
check "the server package makes the user dedup before installing" grep -q 'useradd -r' "$T/scripts"
check "and a repository on first installation" grep -q 'dedup-server init' "$T/scripts"

finish

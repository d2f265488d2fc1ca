#!/usr/bin/env bash
# The verbs that take only --repo (token, check, repair) take the
# repository from the system's server.conf when it is not given, as serve,
# gc and prune do: on a packaged server `dedup-server token add laptop`
# works as written (it said "no repository": found by a new user's
# review). The system's /etc is overlaid in a mount namespace of the test
# alone, so that its /etc/dedup/server.conf names the test's repository.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
	ok "skipped: needs root and mount namespaces"
	finish
fi
R=$T/repo
repo_init "$R"
mkdir -p "$T/up/dedup" "$T/work"
printf 'repo = %s\n' "$R" > "$T/up/dedup/server.conf"
cat > "$T/in-ns.sh" <<'SH'
set -e
t=$1; server=$2
mount -t overlay dedup-etc -o "lowerdir=/etc,upperdir=$t/up,workdir=$t/work" /etc
"$server" token add laptop > "$t/token" 2>"$t/token.err"
"$server" token list > "$t/list" 2>&1
"$server" check > "$t/check" 2>&1
"$server" repair --rebuild-index > "$t/repair" 2>&1
SH
if ! unshare -m --propagation private sh "$T/in-ns.sh" "$T" "$SERVER" 2>"$T/ns.err"; then
	if grep -q "overlay" "$T/ns.err" && ! grep -qs "token" "$T/token.err"; then
		ok "skipped: no overlay file system here ($(head -c 200 "$T/ns.err"))"
		finish
	fi
fi
check "token add without --repo: a token printed" grep -q "^dd_" "$T/token"
check "... into the repository server.conf names" grep -q '"laptop"' "$R/clients.json"
check "token list without --repo lists it" grep -q "^laptop " "$T/list"
check "check without --repo checks it" grep -q "checking repository '$R'" "$T/check"
check "repair without --repo rebuilds its index" grep -q "rebuilt" "$T/repair"
check "nothing of it reached this machine's /etc" test ! -e /etc/dedup/server.conf -o "$(cat /etc/dedup/server.conf 2>/dev/null)" != "repo = $R"
if [ ! -e /etc/dedup/server.conf ]; then
	"$SERVER" token list 2>"$T/err" >/dev/null
	check_eq "outside, with no such file and no --repo: usage error" 2 $?
	check "... saying where the repository may come from" grep -q "give --repo DIR (or set repo in /etc/dedup/server.conf)" "$T/err"
fi
finish

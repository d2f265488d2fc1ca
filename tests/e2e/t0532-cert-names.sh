#!/usr/bin/env bash
# The names in the repository's self-signed certificate: `init --name`
# adds the names agents reach the server by, `cert new --name` makes a
# new certificate for an existing repository (the server presents it
# after SIGHUP), and an agent that reaches the server by a name the
# certificate lacks is told what to do (found by a new user's review: a
# client by the server's address failed with curl's words alone).
. "$(dirname "$0")/lib.sh"

R=$T/repo
"$SERVER" init --repo "$R" --name backup.example.org --name 192.0.2.7 --name 2001:db8::5 >/dev/null 2>&1
check_eq "init --name: exit 0" 0 $?
SAN=$(openssl x509 -in "$R/tls/cert.pem" -noout -ext subjectAltName)
check "the certificate names localhost and the loopback addresses" bash -c "grep -q 'DNS:localhost' <<<'$SAN' && grep -q 'IP Address:127.0.0.1' <<<'$SAN'"
check "... and each --name, DNS or IP" bash -c "grep -q 'DNS:backup.example.org' <<<'$SAN' && grep -q 'IP Address:192.0.2.7' <<<'$SAN' && grep -q 'IP Address:2001:DB8:0:0:0:0:0:5' <<<'$SAN'"
"$SERVER" init --repo "$T/bad" --name 'not a name' 2>"$T/err"
check_eq "a --name that is neither: usage error" 2 $?
check "... saying so" grep -q "'not a name' is neither an IP address nor a DNS name" "$T/err"
check "... and no repository made" test ! -e "$T/bad/config.json"

TOK=$(token_add "$R" laptop)
server_start "$R" || exit 1
PORT=${URL##*:}
ALT="https://[::ffff:127.0.0.1]:$PORT"
"$AGENT" --server "$ALT" --token "$TOK" --ca "$CA" snapshots >/dev/null 2>"$T/err"
check_eq "an address the certificate lacks: exit 1" 1 $?
check "... the error says what to do" grep -q "cert new --name NAME" "$T/err"
check "... or to pin it" grep -q "dedup-server cert show" "$T/err"

OLD=$("$SERVER" cert show --repo "$R")
NEW=$("$SERVER" cert new --repo "$R" --name ::ffff:127.0.0.1 2>"$T/new.err")
check_eq "cert new: exit 0" 0 $?
check "... prints the new fingerprint" test "$NEW" != "$OLD" -a "${NEW:0:7}" = sha256:
check_eq "... the one cert show prints" "$NEW" "$("$SERVER" cert show --repo "$R")"
check "... and says what comes next" grep -q "after SIGHUP" "$T/new.err"
check_eq "... the key stays the owner's alone" 600 "$(stat -c %a "$R/tls/key.pem")"
kill -HUP "$SERVER_PID"
for _ in $(seq 1 100); do grep -q "reloaded TLS certificate" "$T/server.log" && break; sleep 0.05; done
check "the server reloads it on SIGHUP" grep -q "reloaded TLS certificate" "$T/server.log"
"$AGENT" --server "$ALT" --token "$TOK" --ca "$R/tls/cert.pem" snapshots >/dev/null 2>"$T/err"
check_eq "the address it now names connects" 0 $?
"$AGENT" --server "$URL" --token "$TOK" --fingerprint "$NEW" snapshots >/dev/null 2>&1
check_eq "... and the new fingerprint pins it" 0 $?
"$AGENT" --server "$URL" --token "$TOK" --fingerprint "$OLD" snapshots >/dev/null 2>&1
check_eq "... the old one no longer does" 1 $?
"$SERVER" cert new --repo "$T/nowhere" 2>"$T/err"
check_eq "cert new of no repository: exit 1" 1 $?
# A certificate that cannot be replaced (immutable here): the old pair
# stays, not a new key beside the old certificate.
if [ "$(id -u)" = 0 ] && chattr +i "$R/tls/cert.pem" 2>/dev/null; then
	KEY0=$(sha256sum < "$R/tls/key.pem")
	"$SERVER" cert new --repo "$R" >/dev/null 2>"$T/err"
	rc=$?
	chattr -i "$R/tls/cert.pem"
	check_eq "cert new whose certificate cannot be written: exit 1" 1 "$rc"
	check_eq "... the old key is back beside the old certificate" "$KEY0" "$(sha256sum < "$R/tls/key.pem")"
	check "... and nothing left aside" test ! -e "$R/tls/key.pem.old"
	check_eq "... the pair still serves: its fingerprint" "$NEW" "$("$SERVER" cert show --repo "$R")"
else
	ok "skipped the unwritable certificate: needs root and chattr"
fi
server_stop TERM
finish

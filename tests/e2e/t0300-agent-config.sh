#!/usr/bin/env bash
# The agent's connection settings (flags > environment > file), global
# options before the verb, and clear one-line errors for a server that is
# down, a wrong token and a wrong CA.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
server_start "$T/repo" || exit 1
mkdir -p "$T/d" && echo hello > "$T/d/f"

printf 'server = %s\ntoken = %s\nca = %s\n' "$URL" "$A" "$CA" > "$T/agent.conf"
check "config file alone works, option before the verb" "$AGENT" --config "$T/agent.conf" backup "$T/d"
check "config file option after the verb" "$AGENT" backup --config "$T/agent.conf" "$T/d"
check "environment alone works" env DEDUP_SERVER="$URL" DEDUP_TOKEN="$A" DEDUP_CA="$CA" "$AGENT" snapshots
check "environment wins over the file" env DEDUP_TOKEN="$A" "$AGENT" --config <(printf 'server = %s\ntoken = wrong\nca = %s\n' "$URL" "$CA") snapshots
check "a flag wins over the environment" env DEDUP_TOKEN=wrong "$AGENT" --config "$T/agent.conf" --token "$A" snapshots
check "the file's bad token fails when nothing overrides it" not "$AGENT" --config <(printf 'server = %s\ntoken = wrong\nca = %s\n' "$URL" "$CA") snapshots
# A relative ca = in the file is taken from the file's directory, from
# any working directory (cron's is /); --ca from the working directory.
mkdir -p "$T/etc"
cp "$CA" "$T/etc/server-cert.pem"
printf 'server = %s\ntoken = %s\nca = server-cert.pem\n' "$URL" "$A" > "$T/etc/agent.conf"
check "a relative ca = is found beside the config file, run from /" sh -c "cd / && '$AGENT' --config '$T/etc/agent.conf' snapshots >/dev/null"
check "... and from its own directory" sh -c "cd '$T/etc' && '$AGENT' --config agent.conf snapshots >/dev/null"
check "a relative --ca is the working directory's" sh -c "cd '$T/etc' && '$AGENT' --server '$URL' --token '$A' --ca server-cert.pem snapshots >/dev/null"
printf 'server = %s\nbogus = 1\n' "$URL" > "$T/bad.conf"
"$AGENT" --config "$T/bad.conf" snapshots 2>"$T/err"; rc=$?
check "unknown config key fails" test "$rc" != 0
check "and names the key and the line" grep -q 'bogus' "$T/err"
check "and the line number" grep -q ':2' "$T/err"

"$AGENT" --server "$URL" --token wrong --ca "$CA" snapshots 2>"$T/err"; rc=$?
check_eq "wrong token exits 1" 1 "$rc"
check "wrong token: one line saying so" grep -qi 'token' "$T/err"
check_eq "wrong token: exactly one line" 1 "$(wc -l < "$T/err")"

"$SERVER" init --repo "$T/other" >/dev/null
"$AGENT" --server "$URL" --token "$A" --ca "$T/other/tls/cert.pem" snapshots 2>"$T/err"; rc=$?
check_eq "wrong CA exits 1" 1 "$rc"
check "wrong CA: a clear message" grep -qiE 'tls|certificate|verif' "$T/err"
check_eq "wrong CA: exactly one line" 1 "$(wc -l < "$T/err")"

"$AGENT" --token "$A" --ca "$CA" --config /dev/null snapshots 2>"$T/err"; rc=$?
check "no server configured fails" test "$rc" != 0
check "and says so" grep -qi 'server' "$T/err"

"$AGENT" --server "$URL" --token "$A" --ca "$CA" frobnicate 2>"$T/err"; rc=$?
check_eq "unknown verb is a usage error (2)" 2 "$rc"

server_stop TERM
"$AGENT" --server "$URL" --token "$A" --ca "$CA" snapshots 2>"$T/err"; rc=$?
check_eq "server down exits 1" 1 "$rc"
check "server down: a clear message" grep -qiE 'connect|refused' "$T/err"
check_eq "server down: exactly one line" 1 "$(wc -l < "$T/err")"

# the repository refuses to be initialised twice
"$SERVER" init --repo "$T/repo" 2>"$T/err"; rc=$?
check "init refuses an existing repository" test "$rc" != 0
check "the existing config is intact" test -s "$T/repo/config.json"
check "tls key is private" test "$(stat -c %a "$T/repo/tls/key.pem")" = 600
check "certificate names localhost and 127.0.0.1" bash -c "openssl x509 -in '$T/repo/tls/cert.pem' -noout -ext subjectAltName | grep -q 'DNS:localhost' && openssl x509 -in '$T/repo/tls/cert.pem' -noout -ext subjectAltName | grep -q '127.0.0.1'"
check "tokens are stored hashed" not grep -q "$A" "$T/repo/clients.json"
finish

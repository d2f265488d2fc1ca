#!/usr/bin/env bash
# TLS: the certificate `init` writes, `cert show` and pinning it in the
# agent (--fingerprint, DEDUP_FINGERPRINT, fingerprint = in the config),
# a CA-issued certificate from configurable paths, and SIGHUP reloads that
# let a request in flight finish.
. "$(dirname "$0")/lib.sh"

# wait_for FILE PATTERN: until FILE has a line matching PATTERN (<= 10 s).
wait_for() {
	local i
	for i in $(seq 1 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
quiet() { "$@" >/dev/null; }
# served_fp: the SHA-256 fingerprint of the certificate the server presents.
served_fp() {
	local hostport=${URL#https://}
	echo | timeout 10 openssl s_client -connect "$hostport" 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2 | tr -d : | tr A-F a-f
}

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
server_start "$T/repo" || exit 1
PORT=${URL##*:}
mkdir -p "$T/d" && seq 1 100000 > "$T/d/f"

# ---- the certificate init wrote ----
san=$(openssl x509 -in "$CA" -noout -ext subjectAltName 2>/dev/null)
check "the certificate names localhost, 127.0.0.1 and ::1" bash -c "grep -q 'DNS:localhost' <<<'$san' && grep -q 'IP Address:127.0.0.1' <<<'$san' && grep -q 'IP Address:0:0:0:0:0:0:0:1' <<<'$san'"
check "it is a leaf, not a CA (basicConstraints CA:FALSE)" bash -c "openssl x509 -in '$CA' -noout -ext basicConstraints | grep -q 'CA:FALSE'"
check "that cannot sign certificates (no keyCertSign)" not bash -c "openssl x509 -in '$CA' -noout -ext keyUsage | grep -qi 'Certificate Sign'"
check "and verifies as its own trust anchor (what --ca does)" quiet openssl verify -CAfile "$CA" -purpose sslserver "$CA"
# handshake VERSION [CIPHER]: the protocol and cipher the server agreed to
# ("none" if it refused). The client allows everything (@SECLEVEL=0), so
# only the server can say no.
handshake() {
	echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" "-$1" \
		-cipher "${2:-DEFAULT}:@SECLEVEL=0" 2>/dev/null |
		awk '/^New, / { gsub(",", ""); none = $2 == "(NONE)"; n = $2; c = $5 }
		     /^ *Protocol *:/ { p = $3 }
		     END { print none || c == "" ? "none" : (p ? p : n) " " c }'
}
check_eq "TLS 1.0 is refused" none "$(handshake tls1)"
check_eq "TLS 1.1 is refused" none "$(handshake tls1_1)"
check "TLS 1.2 is accepted, with an AEAD cipher" grep -qE '^TLSv1.2 ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$' <<<"$(handshake tls1_2)"
check_eq "TLS 1.2 with a CBC cipher is refused" none "$(handshake tls1_2 ECDHE-ECDSA-AES128-SHA)"
check_eq "TLS 1.2 without forward secrecy is refused" none "$(handshake tls1_2 AES128-GCM-SHA256)"
check "TLS 1.3 is accepted" grep -q '^TLSv1.3 TLS_' <<<"$(handshake tls1_3)"
hsts() { curl -sS --cacert "$CA" -o /dev/null -D - "$@" | tr -d '\r' | grep -qix 'Strict-Transport-Security: max-age=31536000'; }
check "HSTS on the status page" hsts "$URL/"
check "on API replies" hsts "$URL/api/v1/health"
check "and on errors" hsts "$URL/api/v1/snapshots"
FP=$("$SERVER" cert show --repo "$T/repo")
check "cert show prints sha256:<64 hex>" grep -qxE 'sha256:[0-9a-f]{64}' <<<"$FP"
check_eq "it is the certificate's SHA-256 fingerprint" \
	"$(openssl x509 -in "$CA" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)" "${FP#sha256:}"
check_eq "and the one the server presents" "${FP#sha256:}" "$(served_fp)"
check "cert show needs a repository or a file" not "$SERVER" cert show --config /dev/null
check "cert show of a missing file fails" not "$SERVER" cert show --cert "$T/nothing.pem"

# ---- pinning ----
pin() { "$AGENT" --server "$URL" --token "$A" "$@" >/dev/null; }
check "--fingerprint alone (no CA) works" pin --fingerprint "$FP" snapshots
check "a backup with a pinned certificate works (every upload worker)" pin --fingerprint "$FP" backup "$T/d"
check "by the name localhost too" quiet "$AGENT" --server "https://localhost:$PORT" --token "$A" --fingerprint "$FP" snapshots
colon=$(openssl x509 -in "$CA" -noout -fingerprint -sha256 | cut -d= -f2)
check "openssl's AB:CD:... form is accepted" pin --fingerprint "sha256:$colon" snapshots
check "in capitals too" pin --fingerprint "SHA256:$(tr a-f A-F <<<"${FP#sha256:}")" snapshots
WRONG=sha256:$(printf 'other' | sha256sum | cut -c1-64)
pin --fingerprint "$WRONG" snapshots 2>"$T/err"; rc=$?
check_eq "a wrong fingerprint fails (exit 1)" 1 "$rc"
check_eq "with exactly one line" 1 "$(wc -l < "$T/err")"
check "naming both fingerprints" bash -c "grep -q '${FP#sha256:}' '$T/err' && grep -q '${WRONG#sha256:}' '$T/err' && grep -qi pinned '$T/err'"
pin --fingerprint "$WRONG" backup "$T/d" 2>"$T/err"; rc=$?
check_eq "a backup with a wrong fingerprint fails too" 1 "$rc"
check_eq "with one line" 1 "$(wc -l < "$T/err")"
for bad in "sha256:1234" "md5:${FP#sha256:}" "${FP#sha256:}" "sha256:${FP#sha256:}00" "sha256:zz${FP:9}"; do
	pin --fingerprint "$bad" snapshots 2>"$T/err"; rc=$?
	check "malformed fingerprint '${bad:0:20}...' fails with one clear line" \
		bash -c "test $rc = 1 && test \$(wc -l < '$T/err') = 1 && grep -q 'fingerprint must be sha256:' '$T/err'"
done
check "DEDUP_FINGERPRINT works" quiet env DEDUP_FINGERPRINT="$FP" "$AGENT" --server "$URL" --token "$A" snapshots
printf 'server = %s\ntoken = %s\nfingerprint = %s\n' "$URL" "$A" "$FP" > "$T/agent.conf"
chmod 644 "$T/agent.conf"
"$AGENT" --config "$T/agent.conf" snapshots >/dev/null 2>"$T/err"
check "a config file with a token that every user may read: a warning" grep -q "config file '$T/agent.conf' holds a token and every user may read it (mode 0644): chmod 600 it" "$T/err"
chmod 600 "$T/agent.conf"
"$AGENT" --config "$T/agent.conf" snapshots >/dev/null 2>"$T/err"
check_eq "... none once it is 0600" "" "$(cat "$T/err")"
check "fingerprint = in the config file works" quiet "$AGENT" --config "$T/agent.conf" snapshots
check "the flag wins over the file" not quiet "$AGENT" --config "$T/agent.conf" --fingerprint "$WRONG" snapshots
check "a pin wins over a wrong CA" pin --fingerprint "$FP" --ca /etc/hostname snapshots
"$AGENT" --server "$URL" --token "$A" --ca /dev/null snapshots >/dev/null 2>&1
check "without a pin, an unrelated CA still fails" test $? = 1
check "no plaintext HTTP listener" not curl -sS --max-time 5 "http://127.0.0.1:$PORT/api/v1/health"

# ---- a certificate from a real CA, at configurable paths ----
mkdir -p "$T/pki"
(
	cd "$T/pki" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
		-days 2 -subj /CN=test-ca -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.pem
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.pem \
		-days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1
) >/dev/null 2>&1
server_stop TERM
"$SERVER" serve --config /dev/null --repo "$T/repo" --listen 127.0.0.1:0 --tls-cert "$T/pki/srv.pem" \
	--tls-key "$T/pki/other.key" 2>"$T/err"; rc=$?
check_eq "a key that does not match the certificate is refused at start" 1 "$rc"
check "saying so" grep -q 'does not belong' "$T/err"
server_start "$T/repo" --tls-cert "$T/pki/srv.pem" --tls-key "$T/pki/srv.key" || exit 1
check "the agent trusts it through the CA" quiet "$AGENT" --server "$URL" --token "$A" --ca "$T/pki/ca.pem" snapshots
"$AGENT" --server "$URL" --token "$A" --ca "$CA" snapshots >/dev/null 2>&1
check "the repository's own certificate no longer verifies it" test $? = 1
FP2=$("$SERVER" cert show --cert "$T/pki/srv.pem")
check_eq "cert show --cert prints the served certificate's fingerprint" "${FP2#sha256:}" "$(served_fp)"
printf 'repo = %s\ntls_cert = %s\n' "$T/repo" "$T/pki/srv.pem" > "$T/server.conf"
check_eq "cert show reads tls_cert from the config" "$FP2" "$("$SERVER" cert show --config "$T/server.conf")"

# ---- SIGHUP: a new certificate for new connections, old requests finish ----
echo "content of the chunk uploaded across a reload" > "$T/chunk"
CID=$(sha256sum < "$T/chunk" | cut -c1-64)
bundle_raw "$CID" "$T/chunk" > "$T/bundle.bin"
python3 - "${URL#https://}" "$T/pki/ca.pem" "$A" "$T/bundle.bin" "$T/go" > "$T/inflight.out" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
hostport, ca, token, path, flag = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname=host)
body = open(path, "rb").read()
head = ("POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (token, len(body))).encode()
s.sendall(head + body[:20])
print("sent-part", flush=True)
for _ in range(300):
    if os.path.exists(flag):
        break
    time.sleep(0.05)
s.sendall(body[20:])
resp = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    resp += d
print(resp.split(b"\r\n")[0].decode(), flush=True)
PY
PY_PID=$!
wait_for "$T/inflight.out" sent-part
cp "$T/pki/other.pem" "$T/pki/srv.pem.new" && mv "$T/pki/srv.pem.new" "$T/pki/srv.pem"
cp "$T/pki/other.key" "$T/pki/srv.key.new" && mv "$T/pki/srv.key.new" "$T/pki/srv.key"
kill -HUP "$SERVER_PID"
check "the server logs the reload" wait_for "$T/server.log" 'reloaded TLS certificate'
FP3=$("$SERVER" cert show --cert "$T/pki/other.pem")
check_eq "new connections get the new certificate" "${FP3#sha256:}" "$(served_fp)"
check "the agent pinned to the new one connects" quiet "$AGENT" --server "$URL" --token "$A" --fingerprint "$FP3" snapshots
check "the new one is an old-style self-signed CA:TRUE certificate" bash -c "openssl x509 -in '$T/pki/other.pem' -noout -ext basicConstraints | grep -q 'CA:TRUE'"
check "which still works as the agent's --ca" quiet "$AGENT" --server "$URL" --token "$A" --ca "$T/pki/other.pem" snapshots
check "the one pinned to the old one is refused" not quiet "$AGENT" --server "$URL" --token "$A" --fingerprint "$FP2" snapshots
touch "$T/go"
for i in $(seq 1 200); do kill -0 "$PY_PID" 2>/dev/null || break; sleep 0.05; done
kill "$PY_PID" 2>/dev/null
wait "$PY_PID" 2>/dev/null
check "the upload in flight during the reload finished (200)" grep -q '^HTTP/1.1 200' "$T/inflight.out"
check_eq "and its chunk is stored" 200 "$(curl -sS -k -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $A" "$URL/api/v1/chunks/$CID")"
# a broken pair on reload keeps the old one
echo "not a key" > "$T/pki/srv.key"
kill -HUP "$SERVER_PID"
check "a bad key on reload is logged" wait_for "$T/server.log" 'still serving the previous certificate'
check_eq "and the previous certificate is still served" "${FP3#sha256:}" "$(served_fp)"
check "the server still serves" quiet "$AGENT" --server "$URL" --token "$A" --fingerprint "$FP3" backup "$T/d"

# ---- IPv6 loopback, where there is one ----
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	server_stop TERM
	server_start "$T/repo" --listen '[::1]:0' || exit 1
	check "the server listens on [::1]" grep -q '^https://\[::1\]:' <<<"$URL"
	check "the agent reaches it with a pinned certificate" quiet "$AGENT" --server "$URL" --token "$A" --fingerprint "$FP" snapshots
	check "and with the CA (::1 is in the certificate)" quiet "$AGENT" --server "$URL" --token "$A" --ca "$CA" snapshots
fi
finish

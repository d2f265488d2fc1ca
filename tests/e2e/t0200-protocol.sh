#!/usr/bin/env bash
# The server's edges: tampered uploads are rejected and store nothing,
# malformed and oversized requests get a 4xx with a JSON message, tokens are
# enforced, and the server keeps serving throughout.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
ADM=$(token_add "$T/repo" ops --admin)
server_start "$T/repo" || exit 1

check_eq "health needs no token" 200 "$(api_status "" GET /api/v1/health)"
check_eq "stats without a token is 401" 401 "$(api_status "" GET /api/v1/stats)"
check_eq "stats with a wrong token is 401" 401 "$(api_status dd_0000 GET /api/v1/stats)"
check_eq "stats with the token is 200" 200 "$(api_status "$A" GET /api/v1/stats)"
check_eq "config with the token is 200" 200 "$(api_status "$A" GET /api/v1/config)"
check "the status page is served at /" bash -c "curl -sS --cacert '$CA' '$URL/' | grep -qi '<html'"
check "no plaintext HTTP" not curl -sS --max-time 5 "http://${URL#https://}/api/v1/health"

# 4. a tampered upload: bytes that do not hash to their id
echo "the real content" > "$T/good"
echo "evil replacement" > "$T/evil"
GOOD=$(sha256sum < "$T/good" | cut -c1-64)
bundle_raw "$GOOD" "$T/evil" > "$T/tampered.bin"
chunks_before=$(json_get "$(api "$ADM" GET /api/v1/stats | head -n1)" chunks)
check "the store's chunk count is known (admin)" test -n "$chunks_before"
resp=$(api "$A" POST /api/v1/chunks --data-binary @"$T/tampered.bin" -H 'Content-Type: application/octet-stream')
check_eq "tampered chunk is rejected with 400" 400 "$(tail -n1 <<<"$resp")"
check "the rejection names the id" grep -q "$GOOD" <<<"$resp"
check_eq "nothing was stored" "$chunks_before" "$(json_get "$(api "$ADM" GET /api/v1/stats | head -n1)" chunks)"
check_eq "the id is still unknown" 404 "$(api_status "$A" GET "/api/v1/chunks/$GOOD")"
hexbytes "$GOOD" > "$T/q.bin"
api "$A" POST /api/v1/chunks/missing --data-binary @"$T/q.bin" | head -c 1 | xxd -p > "$T/bitmap"
check_eq "missing query still reports it missing" 01 "$(cat "$T/bitmap")"

# a good upload of the same id works and the chunk reads back
bundle_raw "$GOOD" "$T/good" > "$T/good.bin"
check_eq "a correct chunk is stored" 200 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/good.bin")"
api "$A" GET "/api/v1/chunks/$GOOD" | head -n1 > "$T/back"
check "the chunk reads back" cmp -s "$T/good" "$T/back"
api "$A" POST /api/v1/chunks/missing --data-binary @"$T/q.bin" | head -c 1 | xxd -p > "$T/bitmap"
check_eq "missing query now says present" 00 "$(cat "$T/bitmap")"
# a second record with a bad hash poisons the whole request
printf 'other' > "$T/other"
{ printf 'DDBN'; le32 1; le32 2
  hexbytes "$(sha256sum < "$T/other" | cut -c1-64)"; le32 0; le32 5; le32 5; cat "$T/other"
  hexbytes "$GOOD"; le32 0; le32 5; le32 5; printf 'wrong'; } > "$T/mixed.bin"
check_eq "a bundle with one bad record is rejected" 400 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/mixed.bin")"
check_eq "and its good record was not stored" 404 "$(api_status "$A" GET "/api/v1/chunks/$(sha256sum < "$T/other" | cut -c1-64)")"

# 6. malformed requests
head -c 30 "$T/good.bin" > "$T/trunc.bin"
r=$(api "$A" POST /api/v1/chunks --data-binary @"$T/trunc.bin")
check_eq "truncated bundle is 400" 400 "$(tail -n1 <<<"$r")"
check "with a JSON error message" bash -c "head -n1 <<<'$r' | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"error\"]'"
{ cat "$T/good.bin"; printf 'junk'; } > "$T/trailing.bin"
check_eq "bundle with trailing bytes is 400" 400 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/trailing.bin")"
{ printf 'DDBN'; le32 1; le32 4000000000; } > "$T/hugecount.bin"
check_eq "bundle with an absurd count is 400" 400 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/hugecount.bin")"
{ printf 'DDBN'; le32 1; le32 1; hexbytes "$GOOD"; le32 0; le32 4000000000; le32 17; cat "$T/good"; } > "$T/hugelen.bin"
check_eq "record with an absurd length is 400" 400 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/hugelen.bin")"
{ printf 'DDBN'; le32 1; le32 1; hexbytes "$GOOD"; le32 1; le32 17; le32 17; cat "$T/good"; } > "$T/badzstd.bin"
check_eq "record that is not a zstd frame is 400" 400 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/badzstd.bin")"
check_eq "empty missing query is 400" 400 "$(api_status "$A" POST /api/v1/chunks/missing --data-binary '')"
check_eq "missing query of 33 bytes is 400" 400 "$(api_status "$A" POST /api/v1/chunks/missing --data-binary 012345678901234567890123456789012)"
check_eq "unknown chunk id is 404" 404 "$(api_status "$A" GET "/api/v1/chunks/$(printf 'x' | sha256sum | cut -c1-64)")"
check_eq "non-hex chunk id is 400 or 404" 1 "$(api_status "$A" GET /api/v1/chunks/zz%2F..%2Fetc | grep -cE '^40[04]$')"
check_eq "unknown snapshot is 404" 404 "$(api_status "$A" GET "/api/v1/snapshots/$GOOD")"
check_eq "path traversal in a snapshot id is 404" 404 "$(api_status "$A" GET "/api/v1/snapshots/..%2F..%2Fconfig.json")"
check_eq "bad JSON snapshot is 400" 400 "$(api_status "$A" POST /api/v1/snapshots --data-binary '{"host": ')"
check_eq "snapshot with wrong types is 400" 400 "$(api_status "$A" POST /api/v1/snapshots --data-binary '{"host": 5, "paths": "x", "catalog": [1]}')"
check_eq "snapshot naming an unknown catalog chunk is 4xx" 1 "$(api_status "$A" POST /api/v1/snapshots --data-binary "{\"host\":\"h\",\"paths\":[\"/x\"],\"catalog\":[\"$(printf y | sha256sum | cut -c1-64)\"],\"time_start\":1}" | grep -cE '^4(00|04|09)$')"
# a catalog chunk that is not a catalog
check_eq "snapshot whose catalog is garbage is 400" 400 "$(api_status "$A" POST /api/v1/snapshots --data-binary "{\"host\":\"h\",\"paths\":[\"/x\"],\"catalog\":[\"$GOOD\"],\"time_start\":1}")"
check_eq "unknown route is 404" 404 "$(api_status "$A" GET /api/v1/nothing-here)"
check_eq "wrong method is 405" 405 "$(api_status "$A" DELETE /api/v1/stats)"
# The cap is applied to the declared length before any body byte is read:
# a client that waits for "100 Continue" (curl does) gets the 413.
head -c $((65 * 1024 * 1024)) /dev/zero > "$T/big.bin"
check_eq "oversized body is refused with 413" 413 "$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/big.bin" -H 'Expect: 100-continue')"
head -c $((17 * 1024 * 1024)) /dev/zero > "$T/bigjson.bin"
check_eq "oversized JSON body is refused with 413" 413 "$(api_status "$A" POST /api/v1/snapshots --data-binary @"$T/bigjson.bin" -H 'Expect: 100-continue')"
# A client that pushes the whole body regardless is cut off (it may see the
# 413 or a closed connection); the server goes on serving.
api_status "$A" POST /api/v1/chunks --data-binary @"$T/big.bin" -H 'Expect:' >/dev/null 2>&1
check_eq "the server serves after a pushed oversized body" 200 "$(api_status "" GET /api/v1/health)"
rm -f "$T/big.bin" "$T/bigjson.bin"
# a client that hangs up in the middle of a body
python3 - "$URL" "$CA" "$A" <<'PY'
import socket, ssl, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2])
for _ in range(5):
    s = ctx.wrap_socket(socket.create_connection((u.hostname, u.port), timeout=10), server_hostname=u.hostname)
    s.sendall(b"POST /api/v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + sys.argv[3].encode() +
              b"\r\nContent-Length: 1000000\r\n\r\nDDBN\x01\x00\x00\x00")
    s.close()
PY
check_eq "after all that the server still serves" 200 "$(api_status "" GET /api/v1/health)"
check_eq "and its stats still answer" 200 "$(api_status "$A" GET /api/v1/stats)"
mkdir -p "$T/d" && echo hi > "$T/d/f"
check "and a backup still works" agent "$A" backup "$T/d"
check "the server process is still the same one" kill -0 "$SERVER_PID"
finish

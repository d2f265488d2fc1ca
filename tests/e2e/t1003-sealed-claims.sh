#!/usr/bin/env bash
# A sealed record proves nothing about a plain chunk (docs/SECURITY.md,
# "Sealed records and domains"). The server checks a sealed (client-
# encrypted) record's layout only, never its bytes against its id, so a
# client of domain b that uploads a forged sealed record under the id of
# domain a's plain chunk must not become a member of it: before, bob was
# then told the chunk was present and read alice's bytes by GET. Now his
# upload is answered "stored", as a new sealed chunk's is, and nothing is
# written: the chunk stays alice's alone, intact.
. "$(dirname "$0")/lib.sh"
R=$T/repo
repo_init "$R"
ALICE=$(token_add "$R" alice --domain a)
BOB=$(token_add "$R" bob --domain b)
CAROL=$(token_add "$R" carol --domain a)
server_start "$R" || exit 1
OCT=(-H 'Content-Type: application/octet-stream')

printf 'PIN=4821\n' > "$T/pin"
PID=$(sha256sum "$T/pin" | cut -c1-64)
hexbytes "$PID" > "$T/id.bin"
bundle_raw "$PID" "$T/pin" > "$T/plain.bin"
check_eq "alice (domain a) uploads the PIN chunk" 200 "$(api_status "$ALICE" POST /api/v1/chunks --data-binary @"$T/plain.bin" "${OCT[@]}")"
missing() { # TOKEN IDFILE [?sealed=1]: the bitmap's first byte, hex
	api "$1" POST "/api/v1/chunks/missing${3:-}" --data-binary @"$2" "${OCT[@]}" -o "$T/bits" >/dev/null
	xxd -p "$T/bits"
}
check_eq "bob (domain b): missing" 01 "$(missing "$BOB" "$T/id.bin")"

# a sealed record of the layout the server checks: version, then bytes
sealed() { # ID_HEX: a one-record bundle, flag 2 (sealed), 37 zero bytes
	printf 'DDBN'; le32 1; le32 1; hexbytes "$1"; le32 2; le32 9; le32 37
	head -c 37 /dev/zero
}
sealed "$PID" > "$T/forged.bin"
api "$BOB" POST /api/v1/chunks --data-binary @"$T/forged.bin" "${OCT[@]}" > "$T/up"
check_eq "bob's forged sealed record under alice's id: answered stored, as a new one" '{"stored": 1, "duplicates": 0}' "$(head -n1 "$T/up" | python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())))')"
printf 'PIN=1111\n' > "$T/pin2"
QID=$(sha256sum "$T/pin2" | cut -c1-64)
hexbytes "$QID" > "$T/id2.bin"
sealed "$QID" > "$T/fresh.bin"
api "$BOB" POST /api/v1/chunks --data-binary @"$T/fresh.bin" "${OCT[@]}" > "$T/up2"
check "... the same reply as a sealed record under an id nobody stored" cmp -s <(head -n1 "$T/up") <(head -n1 "$T/up2")
check_eq "bob still finds alice's chunk missing" 01 "$(missing "$BOB" "$T/id.bin")"
check_eq "... also when sealed chunks count (?sealed=1)" 01 "$(missing "$BOB" "$T/id.bin" '?sealed=1')"
check "bob cannot read alice's bytes" not test "$(api_status "$BOB" GET "/api/v1/chunks/$PID")" = 200
check_eq "nor fetch them" 404 "$(api_status "$BOB" POST /api/v1/chunks/fetch --data-binary @"$T/id.bin" "${OCT[@]}")"
check_eq "nor name them in a snapshot" 409 "$(api_status "$BOB" POST /api/v1/snapshots --data-binary "{\"host\":\"h\",\"paths\":[\"/x\"],\"catalog\":[\"$PID\"],\"time_start\":1}")"
api "$CAROL" GET "/api/v1/chunks/$PID" > "$T/got"
check_eq "carol (domain a) reads alice's chunk, intact" "PIN=4821 200" "$(head -n1 "$T/got") $(tail -n1 "$T/got")"
server_stop
"$SERVER" check --repo "$R" --read-data > "$T/check.out" 2>&1
check "the repository checks clean" grep -q '^no problems found' "$T/check.out"
finish

#!/usr/bin/env bash
# A restore's chunks are checked once, by the agent (issue 13, item 4;
# docs/API.md, "Damaged chunks"): its fetches say ?verify=client, so the
# server sends the stored bytes without decoding and re-hashing them; a
# chunk that fails the agent's check is reported to POST /chunks/check,
# where the server checks it itself and drops it only if it is damaged,
# so that the next backup sends it again. Checked here:
#   - a clean restore: every file chunk fetched unchecked by the server,
#     none reported, the tree identical;
#   - the route: a bad verify value is 400; a fetch with ?verify=client
#     sends a damaged chunk's bytes (the caller checks) and drops nothing;
#     POST /chunks/check keeps an intact chunk, says "unknown" for an id
#     the caller's domain does not hold (another domain's damaged chunk
#     stays indexed), refuses a malformed body, checks an id listed many
#     times once, and drops a damaged one (named once); what one request
#     makes the server decode is bounded: a fetch it checks of a
#     compressible chunk asked for until it decodes past 128 MiB is 413;
#   - the agent: a restore over a damaged chunk fails naming it, the
#     server has dropped it, the next backup sends it again and its
#     snapshot restores identical; the server kept serving throughout.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
B=$(token_add "$R" bob --domain b)
ADM=$(token_add "$R" admin --admin)
SRC=$T/src
mkdir -p "$SRC/small"
prand one 3000000 > "$SRC/one.bin"
prand two 2000000 > "$SRC/two.bin"
for i in $(seq 1 30); do echo "small file $i" > "$SRC/small/f$i"; done
# one chunk that decodes to far more than it stores (the plain-bytes cap)
head -c 1048576 /dev/zero | tr '\0' a > "$SRC/aaa.txt"
tree_manifest "$SRC" > "$T/m.src"

metric() {
	api "$ADM" GET /metrics | sed -n "s/^$1 \([0-9.e+]*\)$/\1/p" | head -n1
}

# 1. a clean restore: the server checks nothing, the agent everything
server_start "$R" || exit 1
ID=$(json_get "$(agent "$A" backup --json "$SRC")" snapshot_id)
agent "$A" restore "$ID" --target "$T/r1" >/dev/null 2>"$T/r1.err"
check "a clean restore exits 0" test $? = 0
tree_manifest "$T/r1/${SRC#/}" > "$T/m.r1"
check "and is identical" cmp -s "$T/m.src" "$T/m.r1"
sent=$(metric dedup_fetch_chunks_total)
unchecked=$(metric dedup_fetch_client_checked_chunks_total)
echo "# fetched: $sent chunk(s), $unchecked of them left to the agent to check"
# (the catalog's chunk is read the old way: the server checks it)
check "every chunk of the files was left to the agent to check" \
	test "${unchecked:-0}" -gt 0 -a "$((sent - unchecked))" -le 1
check_eq "and it reported none" 0 "$(metric dedup_check_chunks_total)"
server_stop TERM

# Damage the middle of the biggest record (a chunk of one.bin or two.bin).
"$SERVER" debug list-records --repo "$R" > "$T/records"
read -r vid pack voff _ vstored < <(sort -k5 -n "$T/records" | tail -n1)
read -r okid _ < <(sort -k5 -n "$T/records" | tail -n2 | head -n1)
python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); d=bytearray(open(p,"rb").read()); d[o]^=0xff; open(p,"wb").write(d)' \
	"$R/packs/$pack.pack" $((voff + 48 + vstored / 2))
hexbytes "$vid" > "$T/vid.bin"
hexbytes "$okid" > "$T/okid.bin"
octets=(-H 'Content-Type: application/octet-stream')
# damaged_again: the damaged repository as it was before any server saw
# it (the chunk still indexed), served again with a fresh log.
cp -a "$R" "$T/repo.damaged"
damaged_again() {
	server_stop TERM
	rm -rf "$R"
	cp -a "$T/repo.damaged" "$R"
	: > "$T/server.log"
	server_start "$R" || exit 1
}

# 2. the route
server_start "$R" || exit 1
check_eq "a fetch with verify=sometimes is refused" 400 \
	"$(api_status "$A" POST '/api/v1/chunks/fetch?verify=sometimes' "${octets[@]}" --data-binary @"$T/vid.bin")"
api "$A" POST '/api/v1/chunks/fetch?verify=client' "${octets[@]}" \
	--data-binary @"$T/vid.bin" > "$T/fetch.out"
check_eq "a fetch with verify=client sends the damaged chunk (its caller checks)" \
	200 "$(tail -n1 "$T/fetch.out")"
check "with its stored bytes" test "$(wc -c < "$T/fetch.out")" -gt "$vstored"
check "and the server dropped nothing" not grep -q "is damaged" "$T/server.log"
check_eq "the same fetch checked by the server is refused" 500 \
	"$(api_status "$A" POST '/api/v1/chunks/fetch?verify=server' "${octets[@]}" --data-binary @"$T/vid.bin")"
check "and that dropped the chunk" grep -q "chunk $vid is damaged" "$T/server.log"
damaged_again  # the index as it was before that fetch

out=$(api "$A" POST /api/v1/chunks/check "${octets[@]}" --data-binary @"$T/okid.bin")
check_eq "check of an intact chunk: 200" 200 "$(tail -n1 <<<"$out")"
check_eq "it is checked" 1 "$(json_get "$(head -n1 <<<"$out")" checked)"
check_eq "and not damaged" "[]" "$(json_get "$(head -n1 <<<"$out")" damaged)"
out=$(api "$B" POST /api/v1/chunks/check "${octets[@]}" --data-binary @"$T/vid.bin")
check_eq "check by another domain: 200" 200 "$(tail -n1 <<<"$out")"
check_eq "the chunk is unknown to it" "[\"$vid\"]" "$(json_get "$(head -n1 <<<"$out")" unknown)"
check_eq "and not checked" 0 "$(json_get "$(head -n1 <<<"$out")" checked)"
check "so the damaged chunk is still indexed" not grep -q "is damaged" "$T/server.log"
head -c 33 /dev/zero > "$T/33.bin"
check_eq "a body that is not whole ids is 400" 400 \
	"$(api_status "$A" POST /api/v1/chunks/check "${octets[@]}" --data-binary @"$T/33.bin")"
check_eq "an empty body is 400" 400 \
	"$(api_status "$A" POST /api/v1/chunks/check "${octets[@]}" --data-binary '')"
check_eq "GET of the route is 405" 405 "$(api_status "$A" GET /api/v1/chunks/check)"
# What one request makes the server decode is bounded: the most
# compressible chunk asked for again and again decodes past 128 MiB.
read -r zid _ _ zplain zstored < <(awk '$4 >= 65536' "$T/records" | sort -k5 -n | head -n1)
reps=$((134217728 / ${zplain:-1} + 1))
for _ in $(seq 1 "$reps"); do hexbytes "$zid"; done > "$T/zids.bin"
echo "# chunk $zid: $zplain plain bytes stored in $zstored, asked for $reps times"
check_eq "a fetch the server checks that decodes past 128 MiB is 413" 413 \
	"$(api_status "$A" POST '/api/v1/chunks/fetch?verify=server' "${octets[@]}" --data-binary @"$T/zids.bin")"
check_eq "the same fetch left to the client is 200 (it sends stored bytes)" 200 \
	"$(api_status "$A" POST '/api/v1/chunks/fetch?verify=client' "${octets[@]}" --data-binary @"$T/zids.bin")"
out=$(api "$A" POST /api/v1/chunks/check "${octets[@]}" --data-binary @"$T/zids.bin")
check_eq "a check lists it $reps times: 200" 200 "$(tail -n1 <<<"$out")"
check_eq "and checks it once" 1 "$(json_get "$(head -n1 <<<"$out")" checked)"
# The damaged chunk listed three times: checked, named and dropped once.
cat "$T/vid.bin" "$T/vid.bin" "$T/vid.bin" > "$T/vid3.bin"
out=$(api "$A" POST /api/v1/chunks/check "${octets[@]}" --data-binary @"$T/vid3.bin")
check_eq "check of the damaged chunk (listed 3 times): 200" 200 "$(tail -n1 <<<"$out")"
check_eq "it is named damaged once" "[\"$vid\"]" "$(json_get "$(head -n1 <<<"$out")" damaged)"
check_eq "and not unknown" "[]" "$(json_get "$(head -n1 <<<"$out")" unknown)"
check_eq "checked once" 1 "$(json_get "$(head -n1 <<<"$out")" checked)"
check "the server log says it dropped it" grep -q "chunk $vid is damaged" "$T/server.log"
api "$A" POST /api/v1/chunks/missing "${octets[@]}" --data-binary @"$T/vid.bin" > "$T/miss"
check_eq "it is missing now" 01 "$(head -c1 "$T/miss" | xxd -p)"
check_eq "the counters say so" "1 1" \
	"$(metric dedup_check_damaged_total) $(api "$ADM" GET /metrics | grep -c '^dedup_check_chunks_total [1-9]')"

# 3. the agent's restore over the damaged chunk
damaged_again
agent "$A" restore "$ID" --target "$T/r2" >/dev/null 2>"$T/r2.err"
check "a restore over the damaged chunk fails" test $? != 0
sed 's/^/# /' "$T/r2.err" | tail -n 3
check "naming it" grep -q "chunk $vid is corrupt" "$T/r2.err"
check "the agent told the server, which dropped it" \
	grep -q "chunk $vid is damaged" "$T/server.log"
check_eq "and keeps serving" 200 "$(api_status "" GET /api/v1/health)"
out=$(DEDUP_STATE_DIR=$T/state2 agent "$A" backup --json "$SRC")
check "the next backup sends it again ($(json_get "$out" bytes_sent) bytes)" \
	test "$(json_get "$out" bytes_sent)" -gt 0
ID2=$(json_get "$out" snapshot_id)
agent "$A" restore "$ID2" --target "$T/r3" >/dev/null 2>&1
check "whose snapshot restores" test $? = 0
tree_manifest "$T/r3/${SRC#/}" > "$T/m.r3"
check "identical" cmp -s "$T/m.src" "$T/m.r3"
agent "$A" restore "$ID" --target "$T/r4" >/dev/null 2>&1
check "and so does the first snapshot" test $? = 0
server_stop TERM
"$SERVER" check --repo "$R" --read-data >/dev/null 2>&1
check_eq "the repository checks clean after the heal" 0 "$?"
finish

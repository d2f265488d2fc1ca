# The group-commit scripts' shared parts (t0635, t0636), sourced after
# lib.sh with a server started and $TOK (an agent's token), $OPS (an
# admin's) and up() (tests/e2e/group_upload.py with the script's chunk
# shape) set.

metric() { # NAME: its value in $T/metrics.txt
	awk -v n="$1" '$1 == n { printf "%d\n", $2 }' "$T/metrics.txt"
}

# same_chunk_once CONNS BYTES CHUNKS WHAT: one chunk of BYTES sent by
# CONNS connections at once is stored once, and the stats count CHUNKS
# chunks after it.
same_chunk_once() {
	local conns=$1 bytes=$2 chunks=$3 what=$4 sid k stored=0 okn=0 pids=()
	prand samechunk "$bytes" > "$T/same.bin"
	sid=$(sha256sum "$T/same.bin" | cut -c1-64)
	bundle_raw "$sid" "$T/same.bin" > "$T/same.bundle"
	for k in $(seq 1 "$conns"); do
		( api "$TOK" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/same.bundle" > "$T/same.$k" ) &
		pids+=($!)
	done
	wait "${pids[@]}"
	for k in $(seq 1 "$conns"); do
		[ "$(tail -n1 "$T/same.$k")" = 200 ] && okn=$((okn + 1))
		stored=$((stored + $(json_get "$(head -n1 "$T/same.$k")" stored)))
	done
	check_eq "$conns simultaneous uploads of one $what all succeed" "$conns" "$okn"
	check_eq "exactly one of them stored it" 1 "$stored"
	save stats "$OPS" GET /api/v1/stats
	check_eq "the chunk counter counts it once" "$chunks" "$(json_get "$(cat "$T/stats.json")" chunks)"
}

# kill_mid_uploads CONNS KILL_AFTER: the server killed with SIGKILL once
# KILL_AFTER uploads from CONNS connections are acknowledged; every chunk
# acknowledged (then or in $T/acked1 before) is in the index, check
# --read-data is clean, and 20 of them read back after a restart.
kill_mid_uploads() {
	local conns=$1 after=$2 res nacked missing n id
	res=$(up kill "$URL" "$CA" "$TOK" "$conns" 0 "$T/acked2" "$SERVER_PID" "$after")
	wait "$SERVER_PID" 2>/dev/null
	SERVER_PID=
	check "the server was killed after $after acknowledged uploads ($res)" \
		test "$(json_get "$res" killed)" = True
	nacked=$(wc -l < "$T/acked2")
	check "at least 160 chunks were acknowledged before the kill ($nacked)" test "$nacked" -ge 160
	"$SERVER" debug list-chunks --repo "$R" > "$T/ids"
	sort -u "$T/ids" > "$T/ids.sorted"
	sort -u "$T/acked1" "$T/acked2" > "$T/acked.sorted"
	missing=$(comm -23 "$T/acked.sorted" "$T/ids.sorted" | wc -l)
	check_eq "every acknowledged chunk is in the index after the kill" 0 "$missing"
	"$SERVER" check --repo "$R" --read-data > "$T/check.out" 2>&1
	check_eq "check --read-data is clean after the kill" 0 $?

	server_start "$R" || exit 1
	n=0
	for id in $(shuf -n 20 --random-source=<(prand pick 100000) "$T/acked2"); do
		[ "$(api_status "$TOK" GET "/api/v1/chunks/$id")" = 200 ] && n=$((n + 1))
	done
	check_eq "20 acknowledged chunks picked at random read back after a restart" 20 "$n"
	server_stop TERM
}

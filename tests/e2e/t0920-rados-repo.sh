#!/usr/bin/env bash
# A repository whose packs live in a RADOS pool (init --store rados:POOL/NS)
# on a throw-away single-node Ceph (tests/ceph/up.sh, down at the end):
# backup/restore bit-identical, incremental, cross-client dedup, the packs
# in the pool and none in the directory, check --read-data finding a
# corruption injected into a RADOS pack object, repair --rebuild-index from
# the pool alone, gc concurrent with backups then check clean, and kill -9
# of the server mid-upload with every acknowledged snapshot restoring
# identical. A configured rados store without its module is one clear
# error naming the package. Outside CI a machine without Ceph skips; under
# CI (CI set) a missing Ceph fails.
. "$(dirname "$0")/lib.sh"
ceph_up
NS=t0920
R=$T/repo
rados_ls() { rados -p "$CEPH_POOL" -N "$NS" ls 2>/dev/null | sort; }
npacks() { rados_ls | grep -c '^packs/.*\.pack$'; }

check "init --store rados:POOL/NS" "$SERVER" init --repo "$R" --store "rados:$CEPH_POOL/$NS" --config /dev/null >/dev/null
check "config.json names the store" grep -q "\"store\": \"rados:$CEPH_POOL/$NS\"" "$R/config.json"

# the module missing: one clear error naming the package
out=$(DEDUP_BACKEND_DIR=$T/none "$SERVER" serve --config /dev/null --repo "$R" --listen 127.0.0.1:0 2>&1)
check "serve without the module fails" test $? != 0
check "naming the package dedup-server-rados" grep -q "dedup-server-rados" <<<"$out"
out=$(DEDUP_BACKEND_DIR=$T/none "$SERVER" check --repo "$R" 2>&1)
check "check without the module names it too" grep -q "dedup-server-rados" <<<"$out"

A=$(token_add "$R" alice)
B=$(token_add "$R" bob)
ADM=$(token_add "$R" admin --admin)
server_start "$R" || exit 1

SRC=$T/src
mkdir -p "$SRC/d"
prand one 6000000 > "$SRC/one.bin"
prand two 3000000 > "$SRC/d/two.bin"
seq 1 200000 > "$SRC/d/numbers.txt"
for i in $(seq 1 50); do echo "small $i" > "$SRC/d/s$i"; done

# 1. backup, restore bit-identical
out=$(agent "$A" backup --json "$SRC")
check "first backup exits 0" test $? = 0
ID1=$(json_get "$out" snapshot_id)
sent1=$(json_get "$out" bytes_sent)
check "packs are objects in the pool ($(npacks))" test "$(npacks)" -ge 1
check "and none are files in the directory" test -z "$(ls -A "$R/packs")"
mkdir -p "$T/other"
out=$("$SERVER" init --repo "$T/other/r" --store "rados:$CEPH_POOL/$NS" --config /dev/null 2>&1)
check "a second repository on a namespace holding packs is refused" test $? != 0
check "saying it holds packs" grep -q "holds 1 pack(s) already" <<<"$out"
agent "$A" restore "$ID1" --target "$T/r1" 2>"$T/r1.err"
check "restore exits 0" test $? = 0
tree_manifest "$SRC" > "$T/m.src"
tree_manifest "$T/r1/${SRC#/}" > "$T/m.r1"
check "restore is bit-identical (contents, modes, times)" cmp -s "$T/m.src" "$T/m.r1"

# 2. incremental: a small change sends little
prand three 200000 > "$SRC/d/three.bin"
out=$(agent "$A" backup --json "$SRC")
ID2=$(json_get "$out" snapshot_id)
sent2=$(json_get "$out" bytes_sent)
check "an incremental backup sends little ($sent2 of $sent1 bytes)" test "$((sent2 * 10))" -lt "$sent1"

# 3. cross-client dedup: bob backs up a copy of the same data
mkdir -p "$T/bobsrc"
cp -a "$SRC/one.bin" "$SRC/d" "$T/bobsrc/"
out=$(agent "$B" backup --json "$T/bobsrc")
sentb=$(json_get "$out" bytes_sent)
IDB=$(json_get "$out" snapshot_id)
check "bob's backup of the same data sends < 1% ($sentb bytes)" test "$((sentb * 100))" -lt "$sent1"
tree_manifest "$T/bobsrc" > "$T/m.bob"

# 4. check --read-data finds a corruption injected into a RADOS object
server_stop
check "check --read-data is clean" "$SERVER" check --repo "$R" --read-data --quiet
P=$(rados_ls | grep '^packs/' | head -n1)
rados -p "$CEPH_POOL" -N "$NS" get "$P" "$T/pack.orig"
cp "$T/pack.orig" "$T/pack.bad"
python3 - "$T/pack.bad" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.find(b"DDRC")            # the first record
b[i + 48 + 1000] ^= 0xff       # a byte inside its chunk's bytes
open(p, "wb").write(b)
PY
rados -p "$CEPH_POOL" -N "$NS" put "$P" "$T/pack.bad"
"$SERVER" check --repo "$R" --read-data > "$T/check.bad" 2>&1
check "check --read-data fails on the corrupt object" test $? != 0
check "naming a damaged chunk in the RADOS pack" grep -q "damaged chunk .*rados:$CEPH_POOL/$NS:$P" "$T/check.bad"
grep damaged "$T/check.bad" | head -n 2
rados -p "$CEPH_POOL" -N "$NS" put "$P" "$T/pack.orig"
check "clean again with the object restored" "$SERVER" check --repo "$R" --read-data --quiet

# 5. repair --rebuild-index from the pool alone
chunks_before=$("$SERVER" debug list-chunks --repo "$R" | sort | sha256sum)
rm -rf "$R/index"
check "repair --rebuild-index from the pool" "$SERVER" repair --repo "$R" --rebuild-index
check_eq "the rebuilt index holds the same chunks" "$chunks_before" \
	"$("$SERVER" debug list-chunks --repo "$R" | sort | sha256sum)"
check "check --read-data is clean after the rebuild" "$SERVER" check --repo "$R" --read-data --quiet
server_start "$R" || exit 1
rm -rf "$T/r2"
agent "$B" restore "$IDB" --target "$T/r2" 2>/dev/null
tree_manifest "$T/r2/${T#/}/bobsrc" > "$T/m.r2"
check "bob's snapshot restores identical after the rebuild" cmp -s "$T/m.bob" "$T/m.r2"

# 5b. One prune at a time in the pool: while another holder has the
# pool's prune lock (taken here with the rados tool, a 20 s lease as a
# front-end that died would leave it), a forget answers 409 and removes
# nothing; once the lease runs out it goes through.
rados -p "$CEPH_POOL" -N "$NS" lock get .lock.prune dedup --lock-cookie t0920 --lock-duration 20 2>/dev/null
out=$(agent "$ADM" forget "$ID1" 2>&1)
check "a forget while another front-end prunes fails" test $? -ne 0
check "... saying another front-end is pruning ($out)" grep -q 'another front-end is pruning' <<<"$out"
check "... and removes nothing" rados -p "$CEPH_POOL" -N "$NS" stat "snapshots/$ID1.json"
forgot=no
for _ in $(seq 1 60); do
	agent "$ADM" forget "$ID1" >/dev/null 2>&1 && { forgot=yes; break; }
	sleep 1
done
check_eq "the forget goes through once the lock's lease runs out" yes "$forgot"

# 6. gc concurrent with backups, then check clean
(
	for r in 1 2 3; do
		prand "gc$r" 1500000 > "$SRC/gc$r.bin"
		agent "$A" backup --json "$SRC" > "$T/gcb.$r" 2>>"$T/gcb.err" || echo "$r" >> "$T/gcb.failed"
	done
) &
BK=$!
gcs=0
for r in 1 2 3; do
	agent "$ADM" gc >/dev/null 2>>"$T/gc.err" && gcs=$((gcs + 1))
done
wait "$BK"
check_eq "three gc runs succeeded beside the backups" 3 "$gcs"
check "every backup beside gc succeeded" test ! -e "$T/gcb.failed"
IDG=$(json_get "$(cat "$T/gcb.3")" snapshot_id)
tree_manifest "$SRC" > "$T/m.g"
server_stop
check "check --read-data is clean after gc" "$SERVER" check --repo "$R" --read-data --quiet
server_start "$R" || exit 1
rm -rf "$T/r3"
agent "$A" restore "$IDG" --target "$T/r3" 2>/dev/null
tree_manifest "$T/r3/${SRC#/}" > "$T/m.r3"
check "the last backup beside gc restores identical" cmp -s "$T/m.g" "$T/m.r3"

# 7. kill -9 mid-upload: every acknowledged snapshot restores identical
PORT=${URL##*:}
mkdir -p "$T/k"
: > "$T/k/acked"
(
	for r in 1 2 3 4 5 6; do
		d=$T/k/src.$r
		mkdir -p "$d"
		prand "k$r" 4000000 > "$d/data.bin"
		out=$(DEDUP_AGENT_RETRIES=8 agent "$A" backup --json "$d" 2>>"$T/k/err") &&
			echo "$(json_get "$out" snapshot_id) $r" >> "$T/k/acked"
	done
) &
KB=$!
kills=0
for delay in 0.7 0.9 1.1; do
	sleep "$delay"
	server_stop KILL
	kills=$((kills + 1))
	"$SERVER" check --repo "$R" --quiet > "$T/k/check.$kills" 2>&1 ||
		{ echo "# check after kill $kills:"; head -n 5 "$T/k/check.$kills"; }
	server_start "$R" --listen "127.0.0.1:$PORT" || { sleep 1; server_start "$R" --listen "127.0.0.1:$PORT"; }
done
timeout 120 tail --pid="$KB" -f /dev/null
wait "$KB"
nacked=$(wc -l < "$T/k/acked")
check "backups were acknowledged through $kills kills ($nacked)" test "$nacked" -ge 1
bad=0
while read -r id r; do
	rm -rf "$T/k/out"
	agent "$A" restore "$id" --target "$T/k/out" 2>/dev/null || { bad=$((bad + 1)); continue; }
	cmp -s "$T/k/src.$r/data.bin" "$T/k/out/$T/k/src.$r/data.bin" || bad=$((bad + 1))
done < "$T/k/acked"
check_eq "every acknowledged snapshot restores identical" 0 "$bad"
server_stop
check "check --read-data is clean at the end" "$SERVER" check --repo "$R" --read-data --quiet
check "the directory still holds no pack" test -z "$(ls -A "$R/packs")"

# 8. the directory lost: a new front-end recovers the repository, its
# snapshots and its index from the pool alone
nsnap=$(ls "$R/snapshots" | grep -c '\.json$')
check_eq "every manifest is in the pool too" "$nsnap" "$(rados_ls | grep -c '^snapshots/.*\.json$')"
check "the forgotten snapshot's manifest left the pool" not rados -p "$CEPH_POOL" -N "$NS" stat "snapshots/$ID1.json"
read -r KID KR < <(tail -n1 "$T/k/acked")
rm -rf "$R"
R2=$T/repo2
check "init --recover into a new directory" "$SERVER" init --repo "$R2" --store "rados:$CEPH_POOL/$NS" --recover --config /dev/null
check_eq "it brought back every snapshot" "$nsnap" "$(ls "$R2/snapshots" | grep -c '\.json$')"
check "and not the forgotten one" test ! -e "$R2/snapshots/$ID1.json"
check "and the clients (kept in the pool)" grep -q '"alice"' "$R2/clients.json"
A2=$A   # alice's old token works on the new front-end
server_start "$R2" || exit 1
rm -rf "$T/k/out"
agent "$A2" restore "$KID" --target "$T/k/out" 2>/dev/null
check "the last acknowledged snapshot restores identical on the new front-end" \
	cmp -s "$T/k/src.$KR/data.bin" "$T/k/out/$T/k/src.$KR/data.bin"
server_stop
check "check --read-data is clean on the new front-end" "$SERVER" check --repo "$R2" --read-data --quiet
finish

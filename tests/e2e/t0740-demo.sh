#!/usr/bin/env bash
# The README's first command as a newcomer meets it: packaging/demo.sh (with
# the binaries already built) makes a repository, starts a server, backs a
# folder up, and prints what to run next. Every printed command must work
# word for word from the folder the demo ran in, the restore must put files
# where the demo says, and the first backup's stats must read right.
. "$(dirname "$0")/lib.sh"

TOP=$(cd "$(dirname "$0")/../.." && pwd)
D=$T/demo
mkdir -p "$T/data/sub" "$T/cwd"
seq 1 30000 > "$T/data/numbers"
prand demo 2000000 > "$T/data/sub/random.bin"
echo hello > "$T/data/sub/small.txt"
# Many small files, as in a source tree: their catalog is a visible part of
# what is stored.
mkdir -p "$T/data/src"
for i in $(seq 1 300); do printf 'file %d\n%0200d\n' "$i" "$i" > "$T/data/src/f$i.c"; done

# Run from a folder of its own, with a relative path, as a user would.
(cd "$T" && DEDUP_DEMO_PREBUILT=1 O="$DD_BUILD" DEDUP_DEMO_DIR="$D" \
	DEDUP_DEMO_LISTEN=127.0.0.1:0 bash "$TOP/packaging/demo.sh" data \
	>"$T/demo.out" 2>"$T/demo.err")
rc=$?
[ -s "$D/server.pid" ] && track_pid "$(cat "$D/server.pid")"
check_eq "the demo exits 0" 0 "$rc"
[ "$rc" = 0 ] || { cat "$T/demo.out" "$T/demo.err"; finish; }
check "it prints the snapshot id" grep -qE '^snapshot id: [0-9a-f]{64}$' "$T/demo.out"

# The commands it prints, run exactly as printed, from where it ran.
sed -n '/^== what to run next/,$p' "$T/demo.out" > "$T/next"
next_cmd() { grep -E "^ +[^ (].* $1( |$)" "$T/next" | head -n1 | sed 's/^ *//'; }
for verb in snapshots stats; do
	cmd=$(next_cmd "$verb")
	check "a '$verb' command is printed" test -n "$cmd"
	(cd "$T" && eval "$cmd") >"$T/$verb.out" 2>&1
	check_eq "'$cmd' works as written" 0 "$?"
done
check "snapshots lists the backup" grep -q "$T/data" "$T/snapshots.out"

cmd=$(next_cmd restore)
check "a 'restore' command is printed" test -n "$cmd"
target=$(sed -n 's/.*--target \([^ ]*\).*/\1/p' <<<"$cmd")
check "with its target" test -n "$target"
# Restore into this test's folder instead of the printed one, which is
# shared with whoever runs the demo by hand.
cmd=${cmd/--target $target/--target $T/restored}
(cd "$T" && eval "$cmd") >"$T/restore.out" 2>&1
check_eq "the printed restore works" 0 "$?"
said=$(sed -n 's/.* is restored as \(.*\))$/\1/p' "$T/next")
check_eq "the demo says where the files land" "$target$T/data" "$said"
check "and they land there" cmp -s "$T/data/sub/random.bin" \
	"$T/restored$T/data/sub/random.bin"

# The demo's token is a client's: stats shows that client's own figures
# (its logical size, what only it references) and no dedup ratio, which
# would be computed from the store that every client shares.
check "stats says whose figures these are" grep -q "^scope: *client 'demo'" "$T/stats.out"
logical=$(sed -n 's/^logical size: .*(\([0-9]*\) bytes)$/\1/p' "$T/stats.out")
check "stats shows the backup's logical size ($logical)" test "${logical:-0}" -gt 0
check "stats shows what only this client references" grep -q "^only this client: " "$T/stats.out"
check "and no repository counter or dedup ratio for a client" \
	bash -c "! grep -qE '^(dedup ratio|chunks|clients|stored on disk):' '$T/stats.out'"

# The stop command it prints stops the server it started.
cmd=$(grep -E '^ +kill [0-9]+ ' "$T/next" | sed 's/^ *//; s/ *(.*//')
check "a stop command is printed" test -n "$cmd"
pid=$(cat "$D/server.pid")
eval "$cmd"
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
check "and stops the demo server" not kill -0 "$pid"

finish

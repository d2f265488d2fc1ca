#!/usr/bin/env bash
# test: plain-only (reads the Makefile's install commands; runs nothing built)
# `make install PREFIX=/usr` puts each program where the shipped systemd
# units and cron example run it from (the units named /usr/sbin/dedup-server
# while make install put it in /usr/bin: found by a new user's review).
# A dry run (make -n) of the install, so nothing is built or written.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

make -s -n -C "$ROOT" install PREFIX=/usr DESTDIR=/nonexistent O="$DD_BUILD" >"$T/install.txt" 2>"$T/install.err"
check_eq "make -n install: exit 0" 0 $?
dests=$(sed -n 's|^install -m 0755 [^ ]* /nonexistent||p' "$T/install.txt")
check "it installs both programs" test "$(wc -l <<<"$dests")" -ge 2
for unit in "$ROOT"/conf/*.service; do
	bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
	check "$(basename "$unit") runs $bin, where make install puts it" grep -qx "$bin" <<<"$dests"
done
cronbin=$(grep -o '/usr/[a-z]*/dedup-agent' "$ROOT/conf/dedup-agent.cron" 2>/dev/null | head -1)
[ -n "$cronbin" ] && check "the cron example runs $cronbin, where make install puts it" grep -qx "$cronbin" <<<"$dests"
finish

#!/usr/bin/env bash
# test: plain-only (compares --help texts with the man pages; the help printing is no code worth a sanitizer run)
# The man pages keep up with the programs: every verb and every long option
# that `--help` and `help VERB` print is documented in dedup-agent(1) and
# dedup-server(8), every agent exit code of shared/proto.h is in EXIT
# STATUS, and groff renders both pages without a warning.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AMAN=$ROOT/docs/man/dedup-agent.1
SMAN=$ROOT/docs/man/dedup-server.8

# plain PAGE: the roff source with \- as - and font escapes gone.
plain() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(aq/'"'"'/g' "$1"; }
plain "$AMAN" > "$T/agent.txt"
plain "$SMAN" > "$T/server.txt"

# verbs HELP-TEXT HEADING: the first word of each line of a "HEADING:" list.
verbs() { awk -v h="$2" '$0 == h { on = 1; next } on && /^$/ { on = 0 } on { print $1 }' <<<"$1"; }
# longopts TEXT: every --option named in it (a family as --keep-*).
longopts() { grep -oE -- '--[a-z][a-z-]*([a-z]|-\*)' <<<"$1" | sort -u; }
documented_verb() { grep -qE "^\.B[IR]? +\"?$2( |\"|$)" "$1"; }
documented_opt() { grep -qE -- "(^|[^a-z-])${2//\*/\\*}([^a-z-]|$)" "$1"; }

ahelp=$("$AGENT" --help)
for v in $(verbs "$ahelp" "commands:"); do
	check "dedup-agent(1) documents the verb '$v'" documented_verb "$T/agent.txt" "$v"
	for o in $(longopts "$("$AGENT" help "$v")"); do
		check "dedup-agent(1) documents '$v $o'" documented_opt "$T/agent.txt" "$o"
	done
done
for o in $(longopts "$ahelp"); do
	check "dedup-agent(1) documents the option '$o'" documented_opt "$T/agent.txt" "$o"
done
for code in $(sed -n 's/^#define DD_EXIT_[A-Z]* \([0-9]*\).*/\1/p' "$ROOT/shared/proto.h"); do
	check "dedup-agent(1) documents exit status $code" \
		sh -c "sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' '$T/agent.txt' | grep -qx '.B $code'"
done

shelp=$("$SERVER" --help)
for v in $(verbs "$shelp" "verbs:"); do
	check "dedup-server(8) documents the verb '$v'" documented_verb "$T/server.txt" "$v"
	[ "$v" = help ] && continue
	for o in $(longopts "$("$SERVER" help "$v")"); do
		check "dedup-server(8) documents '$v $o'" documented_opt "$T/server.txt" "$o"
	done
done

if command -v groff >/dev/null; then
	check_eq "groff: no warnings in dedup-agent(1)" "" "$(groff -man -ww -z "$AMAN" 2>&1)"
	check_eq "groff: no warnings in dedup-server(8)" "" "$(groff -man -ww -z "$SMAN" 2>&1)"
fi

# The chunk sizes `help init` and dedup-server(8) give as the default are
# the ones `init` writes.
"$SERVER" init --repo "$T/chunk-default" >/dev/null 2>&1
written=$(python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))["chunker"]
k = lambda n: "%dM" % (n >> 20) if n % (1 << 20) == 0 else "%dK" % (n >> 10)
print(",".join(k(c[f]) for f in ("min_size", "avg_size", "max_size")))' "$T/chunk-default/config.json")
check "help init gives the chunk sizes init writes ($written)" \
	grep -q "default $written;" <<<"$("$SERVER" help init)"
check "and so does dedup-server(8)" grep -qF "$written ;" "$SMAN"

# Every key of the server's configuration table is in `help serve` (its
# list missed eight; found by a new user's review).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
shelp_serve=$("$SERVER" help serve)
keys=$(sed -n 's/^[[:space:]]*{ "\([a-z_]*\)", CONFIG_.*/\1/p' "$ROOT/server/repo/config.c")
check "the configuration table is read (over 30 keys)" test "$(wc -w <<<"$keys")" -gt 30
missing=
for k in $keys; do grep -qw "$k" <<<"$shelp_serve" || missing="$missing $k"; done
check_eq "help serve names every config key" "" "$missing"

finish

#!/usr/bin/env bash
# test: plain-only (reads the sources; runs no binary)
# The server's layers (docs/HACKING.md): store/ < repo/ < api/ < cmd/ <
# main.c, each using only the layers below it and the project library
# (shared/) and log.h. Every #include "..." of every server file is
# resolved to the folder that holds it, and one that points up a layer
# fails, naming the file and the header.
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
rank() { # FOLDER -> its layer; shared/ and server/ (log) are the floor
	case $1 in
	shared|server) echo 0 ;;
	server/store) echo 1 ;;
	server/repo) echo 2 ;;
	server/api) echo 3 ;;
	server/cmd) echo 4 ;;
	main) echo 5 ;;
	*) echo 9 ;;
	esac
}
where() { # HEADER -> the folder holding it, or nothing (system, build)
	local d
	for d in shared server server/store server/repo server/api server/cmd; do
		[ -e "$d/$1" ] && { echo "$d"; return; }
	done
}
layer_of() { # FILE -> its folder's layer (main.c and log.[ch] apart)
	case $1 in
	server/main.c) echo 5 ;;
	server/log.c|server/log.h) echo 0 ;;
	server/*/*) rank "$(dirname "$1")" ;;
	*) echo 9 ;;
	esac
}
scan() { # FILE LAYER: prints each include of FILE that points up
	local h hd
	for h in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$1"); do
		hd=$(where "$h")
		[ -n "$hd" ] || continue
		[ "$(rank "$hd")" -gt "$2" ] && echo "$1 includes $hd/$h (a layer above)"
	done
	return 0
}
files=0 unknown=0
: > "$T/bad"
for f in server/*.[ch] server/*/*.[ch]; do
	files=$((files + 1))
	mine=$(layer_of "$f")
	if [ "$mine" = 9 ]; then
		echo "$f: in no layer (server/store, repo, api or cmd)" >> "$T/bad"
		unknown=$((unknown + 1))
		continue
	fi
	scan "$f" "$mine" >> "$T/bad"
done
up=$(grep -c 'a layer above' "$T/bad")
check "the layers hold the server's files ($files)" test "$files" -ge 40
check_eq "every server file is in a layer" 0 "$unknown"
check_eq "no server file includes a header of a layer above it" 0 "$up"
[ -s "$T/bad" ] && sed 's/^/# /' "$T/bad"
# The check itself: a store file including a repo header is caught.
echo '#include "snapshots.h"' > "$T/probe.c"
check_eq "a store file that includes snapshots.h is caught" 1 \
	"$(scan "$T/probe.c" "$(rank server/store)" | grep -c 'server/repo/snapshots.h')"
# Each folder's files are named in docs/HACKING.md.
for d in store repo api cmd; do
	check "docs/HACKING.md describes server/$d/" grep -q "server/$d/" docs/HACKING.md
done
finish

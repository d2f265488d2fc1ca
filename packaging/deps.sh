#!/bin/sh
# Installs the Debian packages dedup needs to build and test.
#   packaging/deps.sh          build + test dependencies
#   packaging/deps.sh bench    also restic and borg for `make bench`
set -eu
PKGS="build-essential pkg-config libssl-dev libmicrohttpd-dev libjansson-dev
libleveldb-dev libzstd-dev libarchive-dev libcurl4-openssl-dev
curl openssl ca-certificates python3 xxd procps time attr acl strace
libarchive-tools"
# dedup-agent mount (FUSE) and its test (t0890-mount): the library and
# fusermount3.
PKGS="$PKGS libfuse3-dev fuse3"
# make deb / make rpm and their tests (t07*): Debian's packaging tools,
# rpmbuild, adduser for the server package's postinst, util-linux for
# flock/setpriv/script, groff for the man page check, and systemd only for
# `systemd-analyze verify` (nothing starts it).
PKGS="$PKGS debhelper dpkg-dev lintian rpm adduser util-linux bsdutils groff-base
systemd"
# The status page's test (t0520-web) loads it in a headless Chromium.
PKGS="$PKGS chromium"
# make fuzz (tests/fuzz): clang and its libFuzzer runtime.
PKGS="$PKGS clang libclang-rt-14-dev"
# The RADOS storage backend: librados' header for its module, and the
# daemons and tools of the throw-away Ceph its tests start (tests/ceph/up.sh,
# t0900-rados-backend, tests/bench/rados-bench.sh).
PKGS="$PKGS librados-dev ceph-mon ceph-osd ceph-mgr ceph-base ceph-common"
case "${1:-}" in
bench) PKGS="$PKGS restic borgbackup" ;;
esac
# Every package installed already (a CI machine used before): nothing to
# fetch, so no `apt-get update` either (it takes most of a minute).
# (dpkg-query fails on a package it does not know.)
# shellcheck disable=SC2086
if st=$(dpkg-query -W -f='${db:Status-Status}\n' $PKGS 2>/dev/null) &&
	! printf '%s\n' "$st" | grep -qvx installed; then
	echo "deps: all $(echo $PKGS | wc -w) packages are installed"
	exit 0
fi
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $PKGS

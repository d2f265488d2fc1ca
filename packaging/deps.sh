#!/bin/sh
# Installs the Debian packages dedup needs to build and test.
#   packaging/deps.sh          build + test dependencies
#   packaging/deps.sh bench    also restic and borg for `make bench`
set -eu
PKGS="build-essential pkg-config libssl-dev libmicrohttpd-dev libjansson-dev
libleveldb-dev libzstd-dev libarchive-dev libcurl4-openssl-dev
curl openssl ca-certificates python3 xxd procps time attr acl strace"
case "${1:-}" in
bench) PKGS="$PKGS restic borgbackup" ;;
esac
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $PKGS

#!/usr/bin/env bash
# deps.sh: installs the Debian 12 packages p2psip needs to build, test and benchmark.
# Usage: scripts/deps.sh [build|test|bench]   (default: test, which includes build)
# Runs apt-get only when something is missing, so a second run costs nothing.
set -euo pipefail

build=(build-essential cmake pkg-config libuv1-dev libsodium-dev libsqlite3-dev sqlite3
       nettle-dev libgtk-3-dev libcmocka-dev libjansson-dev libmicrohttpd-dev)
# dpkg-dev (dpkg-shlibdeps), file, systemd (systemd-analyze), man-db, strace: the
# Debian package test (tests/integration/test_package.sh).  tshark (test_wireshark.sh):
# noninteractive, wireshark-common's setuid question takes its default (no); the tests
# run dumpcap as root.  xvfb, xdotool: the ring viewer's tests (test_gui*.sh).
test=(clang libclang-rt-14-dev clang-format iproute2 procps python3 sip-tester baresip nftables
      linphone-cli xvfb xdotool dpkg-dev file systemd man-db strace tshark)
# gnuplot-nox: bench/plot.sh draws the benchmarks' CSVs.
bench=(libosip2-dev kamailio kamailio-sqlite-modules dhtnode python3-opendht time gnuplot-nox)

case "${1:-test}" in
build) want=("${build[@]}") ;;
test) want=("${build[@]}" "${test[@]}") ;;
bench) want=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${missing[*]}" >&2
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

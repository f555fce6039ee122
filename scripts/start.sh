#!/usr/bin/env bash
# start.sh: installs what p2psip needs, builds it and starts a node.
# Arguments are passed to p2psipd (default: -s, a new overlay of one).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$(nproc)"
if [ ! -x build/p2psipd/p2psipd ]; then
    echo "start: the build did not produce build/p2psipd/p2psipd" >&2
    exit 1
fi
[ $# -gt 0 ] || set -- -s
exec build/p2psipd/p2psipd "$@"

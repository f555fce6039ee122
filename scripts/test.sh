#!/usr/bin/env bash
# test.sh: installs what the tests need, builds p2psip with warnings as errors and
# runs every test (unit, fuzz-corpus replay, integration with real SIP clients);
# then builds again with AddressSanitizer + UBSan and runs the unit tests there.
# This is the README's test command and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
jobs=$(nproc)
scripts/format.sh --check

cmake -S . -B build -DP2P_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

cmake -S . -B build-asan -DP2P_WERROR=ON -DP2P_SANITIZE=ON -DP2P_GUI=OFF \
      -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j "$jobs"
(cd build-asan && ctest --output-on-failure -j "$jobs" -L unit)

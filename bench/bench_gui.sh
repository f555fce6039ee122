#!/usr/bin/env bash
# bench_gui.sh: the ring viewer under load, on a virtual display (Xvfb).
#
# One stand-in daemon (bench/gui_fake_daemon.py: a super-node of a ring of NODES,
# RATE message events per second after "watch") per run; p2psip-gui watches it for
# SECONDS.  Prints, per run: the events the viewer took in per second, the frames it
# drew per second, its CPU and the X server's (user+system, % of one core: on X11
# cairo's drawing is done by the server, through XRender), events lost (the daemon
# side's "lost" count; always 0 with the stand-in) and the arrows alive at the end,
# then one JSON line.  Figures, never assertions; docs/BENCHMARKS.md keeps them.
# Redraws follow the frame clock, so frames/s stays at the display's rate however
# many events arrive; the CPU is what grows.
#
# Usage: bench/bench_gui.sh [build-dir]   (default: $P2P_BUILD_DIR or ./build)
#        NODES="100" RATES="0 100 1000 3000" SECONDS_EACH=10 to change the runs.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-${P2P_BUILD_DIR:-build}}
gui=$build/gui/p2psip-gui
[ -x "$gui" ] || { echo "bench_gui.sh: $gui not built (-DP2P_GUI=ON)" >&2; exit 1; }
command -v Xvfb >/dev/null || { echo "bench_gui.sh: Xvfb missing (scripts/deps.sh test)" >&2; exit 1; }
py=$(python3 -c 'import sys; print(sys.executable)')
nodes=${NODES:-100}
rates=${RATES:-0 100 1000 3000}
secs=${SECONDS_EACH:-10}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/p2p-bench-gui.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$tmp/display" 2>"$tmp/xvfb.log" &
xvfb=$!
pids+=("$xvfb")
for _ in $(seq 100); do [ -s "$tmp/display" ] && break; sleep 0.1; done
[ -s "$tmp/display" ] || { echo "bench_gui.sh: Xvfb did not start" >&2; exit 1; }
export DISPLAY=:$(tr -dc 0-9 <"$tmp/display")

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
model() { # model PID FILE: asks the viewer for its model, bounded
    rm -f "$2"
    kill -USR1 "$1"
    for _ in $(seq 100); do [ -s "$2" ] && return 0; sleep 0.05; done
    echo "bench_gui.sh: no model from the viewer" >&2
    exit 1
}
field() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

hz=$(getconf CLK_TCK)
printf '%-6s %-7s %10s %9s %8s %8s %6s %7s\n' nodes rate events/s frames/s cpu% xvfb-cpu% lost arrows
json="["
for rate in $rates; do
    sock=$tmp/fake.sock
    "$py" bench/gui_fake_daemon.py "$sock" "$nodes" "$rate" 2>>"$tmp/fake.log" &
    fake=$!
    pids+=("$fake")
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    NO_AT_BRIDGE=1 "$gui" --control "$sock" --model-file "$tmp/m.json" 2>>"$tmp/gui.log" &
    viewer=$!
    pids+=("$viewer")
    sleep 3 # connected, first poll round done, arrows at their steady count
    model "$viewer" "$tmp/m.json"
    e0=$(field "$tmp/m.json" events)
    f0=$(field "$tmp/m.json" frames)
    c0=$(ticks "$viewer")
    x0=$(ticks "$xvfb")
    t0=$(date +%s.%N)
    sleep "$secs"
    model "$viewer" "$tmp/m.json"
    t1=$(date +%s.%N)
    c1=$(ticks "$viewer")
    x1=$(ticks "$xvfb")
    read -r eps fps cpu xcpu < <(awk -v e0="$e0" -v e1="$(field "$tmp/m.json" events)" \
        -v f0="$f0" -v f1="$(field "$tmp/m.json" frames)" -v c0="$c0" -v c1="$c1" \
        -v x0="$x0" -v x1="$x1" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
        'BEGIN { d = t1 - t0; printf "%.0f %.1f %.1f %.1f\n", (e1 - e0) / d, (f1 - f0) / d,
                 100 * (c1 - c0) / hz / d, 100 * (x1 - x0) / hz / d }')
    lost=$(field "$tmp/m.json" lost)
    arrows=$(field "$tmp/m.json" arrows)
    count=$(field "$tmp/m.json" count)
    printf '%-6s %-7s %10s %9s %8s %8s %6s %7s\n' "$count" "$rate" "$eps" "$fps" "$cpu" "$xcpu" "$lost" "$arrows"
    json+=$(printf '%s{"nodes":%s,"rate":%s,"events_per_s":%s,"frames_per_s":%s,"cpu_pct":%s,"xvfb_cpu_pct":%s,"lost":%s,"arrows":%s}' \
        "$([ "$json" = "[" ] || echo ,)" "$count" "$rate" "$eps" "$fps" "$cpu" "$xcpu" "$lost" "$arrows")
    kill "$viewer" "$fake"
    wait "$viewer" "$fake" 2>/dev/null || true
done
echo "$json]"

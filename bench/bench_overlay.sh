#!/usr/bin/env bash
#
# bench_overlay.sh: N = 100 p2psipd nodes beside N = 100 OpenDHT dhtnode 2.4.12
# nodes, in one run, each on a private LAN of network namespaces, with the same
# workload through each one's own client (p2psipd: its control socket; dhtnode:
# python3-opendht DhtRunners, one per issuing node as for p2psipd).  Prints a table
# (one column per peer), then one JSON object on the last line, and writes every
# latency sample set as CSV (one sample per line, milliseconds) under bench/results/
# (BENCH_RESULTS), with the bytes sent per node over time during the churn
# (overlay_churn_bytes.csv); then bench/plot.sh draws them as PNGs there.
#
# Usage: bench/bench_overlay.sh        (as root, or where `unshare -r -n -m` works)
# Environment: P2P_BUILD_DIR (default ./build; p2psipd built there), BENCH_RESULTS
#   (default bench/results), BENCH_NODES (100), BENCH_STABLE (10: nodes of each
#   system never churned; the p2psipd ones issue the operations), BENCH_PUTS (500),
#   BENCH_PUT_RATE (50/s), BENCH_GETS (3000), BENCH_GET_RATE (100/s),
#   BENCH_VALUE_SIZE (100 bytes), BENCH_IDLE_SECONDS (30), BENCH_CHURN_SECONDS (120),
#   BENCH_MEDIAN_SESSION (60 s), BENCH_CHURN_GET_RATE (20/s), BENCH_CHURN_PUT_RATE
#   (2/s), BENCH_OP_TIMEOUT (10 s), BENCH_SEED (1), BENCH_SETTLE (20 s).
#
# Safety.  dhtnode binds every interface and would join the public OpenDHT network if
# it could reach it: here every node runs in a host namespace of
# tests/integration/hosts.sh (198.18.0.0/24 on a bridge inside this script's own
# network namespace, no route anywhere else), with a private network id (-n 7560);
# the first dhtnode gets no -b and every other one -b to the first only; the
# DhtRunner clients bootstrap to the first node only.  Every process is started by
# overlay_load.py and stopped by its pid; the pids are also listed in a file that the
# EXIT trap goes through (signalling only live p2psipd/dhtnode processes listed
# there) before the namespaces are deleted.
#
# docs/BENCHMARKS.md says what each figure is.  Never asserts a speed.
set -u
IT_TIMEOUT=${BENCH_TIMEOUT:-1500}
# The driver needs up to 10 s to stop its nodes after SIGTERM.
IT_STOP_WAIT=30
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../tests/integration/overlay.sh"
IT_NAME=bench_overlay
it_begin "$@"
it_need dhtnode ip

PY=/usr/bin/python3 # python3-opendht is a Debian package: the system interpreter
"$PY" -c 'import opendht' 2>/dev/null || it_fail "python3-opendht missing for $PY"
BIN=$(it_p2psipd_bin)
[ -x "$BIN" ] || it_fail "p2psipd not built: $BIN (P2P_BUILD_DIR)"
RESULTS=${BENCH_RESULTS:-$IT_SRC/bench/results}
mkdir -p "$RESULTS" || it_fail "mkdir $RESULTS"
N=${BENCH_NODES:-100}
[ "$N" -ge 2 ] && [ "$N" -le 100 ] || it_fail "BENCH_NODES must be 2..100"

PIDFILE=$IT_TMP/node.pids
: >"$PIDFILE"

# EXIT hook, before hosts_destroy: whatever the driver left running (it stops its
# nodes itself; this is for a driver that was killed).  Only pids it listed, only
# while they are still p2psipd or dhtnode.
bench_kill_left() {
    local pid comm
    [ -f "$PIDFILE" ] || return 0
    while read -r pid; do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        case $comm in p2psipd | dhtnode) kill -KILL "$pid" 2>/dev/null ;; esac
    done <"$PIDFILE"
    return 0
}
IT_CLEANUP_HOOKS=(bench_kill_left "${IT_CLEANUP_HOOKS[@]}")

t0=$SECONDS
ovl_hosts_create $((2 * N)) --no-multicast
# The DhtRunner clients live in this (the bench's own) namespace, on the LAN too.
# br0 gets a fixed MAC (a bridge otherwise takes its ports' lowest, which moves).
ip link set br0 address 02:00:c6:12:00:fa || it_fail "cannot set br0's MAC"
ip addr add 198.18.0.250/24 dev br0 || it_fail "cannot address br0"

# Static ARP on the LAN.  The kernel's neighbour table is one table for all network
# namespaces, capped by the machine's net.ipv4.neigh.default.gc_thresh3 (1024 by
# default): 200 hosts that each talk to dozens of others overflow it ("neighbour:
# arp_cache: neighbor table overflow!" in dmesg), and then hosts silently drop
# datagrams (IpOutDiscards) -- for every namespace on the machine, other people's
# tests included.  Permanent entries are exempt from that cap (Linux >= 4.20), so
# every host and this namespace get one for every address on the LAN, and no ARP
# entry is ever created dynamically.  (Raising gc_thresh3 would change the machine.)
bench_static_arp() {
    local i h mac lines=() f=$IT_TMP/neigh.batch
    lines+=("198.18.0.250 02:00:c6:12:00:fa")
    for ((i = 1; i <= 2 * N; i++)); do
        mac=$(ip -n "h$i" -br link show eth0 | awk '{ print $3 }')
        [[ $mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || it_fail "h$i: no MAC for eth0 ('$mac')"
        lines+=("198.18.0.$((10 + i)) $mac")
    done
    for h in "" $(seq -f 'h%g' 1 $((2 * N))); do
        local dev=eth0 self=198.18.0.250 l a
        if [ -n "$h" ]; then self=198.18.0.$((10 + ${h#h})); else dev=br0; fi
        for l in "${lines[@]}"; do
            a=${l% *}
            [ "$a" = "$self" ] || echo "neigh replace $a lladdr ${l#* } dev $dev nud permanent"
        done >"$f"
        if [ -n "$h" ]; then
            ip -n "$h" -batch "$f" || it_fail "$h: static ARP entries"
        else
            ip -batch "$f" || it_fail "static ARP entries on br0"
        fi
    done
}
bench_static_arp
it_log "hosts ready in $((SECONDS - t0)) s (static ARP: $((2 * N + 1)) addresses)"

# The driver runs in its own process group (the EXIT trap stops it by that group).
setsid "$PY" "$HERE/overlay_load.py" --tmp "$IT_TMP" --pidfile "$PIDFILE" --p2psipd "$BIN" \
    --results "$RESULTS" --nodes "$N" &
DRIVER=$!
IT_PIDS+=("$DRIVER")
wait "$DRIVER"
rc=$?
[ "$rc" -eq 0 ] || it_fail "overlay_load.py exited with status $rc"
# The PNGs from the CSVs just written; a missing gnuplot costs only the pictures.
"$HERE/plot.sh" "$RESULTS" >&2 || it_log "bench/plot.sh failed: no PNG (scripts/deps.sh bench)"
it_log "done in $((SECONDS - t0)) s"
IT_VERDICT=PASS
exit 0

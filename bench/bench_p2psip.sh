#!/usr/bin/env bash
#
# bench_p2psip.sh: p2psipd as a whole system, N nodes (default 100: 10 hosts of 10)
# on a private LAN of network namespaces, against kamailio 5.6 as one registrar +
# stateful proxy, with the very same sipp phones (tests/integration/sipp/) and the
# same counts and rates, step by step in one run.  docs/BENCHMARKS.md says more.
#
# Usage: bench/bench_p2psip.sh
# Environment (defaults are the figures of issue 9):
#   P2P_BUILD_DIR (./build)      where p2psipd and p2psipctl are built
#   BENCH_HOSTS (10), BENCH_PER_HOST (10)   the ring: HOSTS x PER_HOST nodes (>= 2 x 3)
#   BENCH_CALLS (1000), BENCH_CALL_RATE (50)  calls (one distinct AoR each) and calls/s
#   BENCH_REG_RATE (200)         REGISTERs/s of the AoRs the calls go to (their
#                                response times are the REGISTER figure)
#   BENCH_FLOOD (10000), BENCH_FLOOD_RATE (2000)   the REGISTER flood through one node
#   BENCH_IDLE_SECONDS (10)      the idle CPU window before the calls
#   BENCH_RESULTS (bench/results) where the CSV files (and plot.sh's PNGs) go
#   IT_KAMAILIO_CHILDREN (2)     kamailio -n
#
# What it measures; each figure for p2psipd and for kamailio:
#   register    BENCH_CALLS REGISTERs (register.xml, one new AoR each, contact: the
#               callee phone), at BENCH_REG_RATE through one node (the callee's), whose
#               200 comes only after the quorum put in the DHT; kamailio: usrloc in
#               memory.  REGISTER to 200 at the phone: p50, p99, samples in
#               BENCH_RESULTS/p2psip_register_{p2psipd,kamailio}.csv.
#   call setup  BENCH_CALLS calls (uac.xml -> proxy(s) -> uas.xml / uas_overlay.xml:
#               INVITE, 180, 200, ACK, BYE), each to another of those AoRs, at
#               BENCH_CALL_RATE.  p2psipd: the caller phone is on node n1_1 (host h1),
#               the callee phone on node nH_1 (the last host): the caller's node finds
#               every AoR in the DHT and sends the INVITE over the overlay (the UAS
#               checks that it crossed two nodes).  INVITE to 180 at the caller (to
#               the 200 when it overtook the 180): p50, p99, samples in
#               p2psip_call_setup_{p2psipd,kamailio}.csv.
#   CPU/call    utime+stime (/proc/PID/stat) over the call step, summed over the
#               caller's and the callee's nodes, per call; kamailio: all its processes
#               (one proxy).  Beside it, the whole ring's CPU over the step, and each
#               side's idle CPU over BENCH_IDLE_SECONDS just before (at a low call rate
#               the idle timers weigh in).
#   flood       BENCH_FLOOD REGISTERs of new AoRs at BENCH_FLOOD_RATE through one node
#               (n<(H+1)/2>_2, n5_2 by default): failed REGISTERs (how many were answered 503), the
#               achieved rate (sipp's completed calls / elapsed seconds) and that
#               node's own count of puts attempted (those refused at once included)
#               and failed after starting; the same against kamailio.
#   own view    the nodes' own latency histograms (p2psipctl metrics; buckets in
#               powers of two from 0.25 ms): INVITE in to 18x out and DHT get at the
#               caller's node, REGISTER in to 200 out and its put at the registrar
#               node, puts at the flooded node; printed as the bucket holding p99.
#   CPU per REGISTER on one node is bench_sip_server.sh's figure, not repeated here.
# Response times: sipp 3.6.1 reads its clock from CLOCK_MONOTONIC_COARSE (4 ms steps
# here, whatever -timer_resol says); the sipp phones here run with
# bench/sipp_fine_clock.c preloaded (CLOCK_MONOTONIC: microseconds), the servers
# never.  The timer starts when sipp sends the request (start_rtd) and stops when it
# reads the response (rtd), so the figures include both phones' sipp loops.
# Order: the ring is grown first; then kamailio starts in this script's namespace
# (127.0.0.1:5062, its phones beside it) and each step runs against kamailio and at
# once against the ring, so both see the same load of the machine (the idle ring
# included: BENCH_IDLE_SECONDS measures it).
#
# Output: a table, then one JSON object on the last line.  Never asserts a speed;
# exits 1 only when the set-up fails (the ring does not form, a phone cannot start).
set -u
here=$(cd "$(dirname "$0")" && pwd)
IT_TIMEOUT=${BENCH_TIMEOUT:-1500}
IT_LOG_TAIL=${IT_LOG_TAIL:-4}
. "$here/../tests/integration/p2psip.sh"
IT_NAME=bench_p2psip
it_begin "$@"
it_need sipp kamailio ip nft python3 cc awk

HOSTS_N=${BENCH_HOSTS:-10}
PER_HOST=${BENCH_PER_HOST:-10}
CALLS=${BENCH_CALLS:-1000}
CALL_RATE=${BENCH_CALL_RATE:-50}
REG_RATE=${BENCH_REG_RATE:-200}
FLOOD=${BENCH_FLOOD:-10000}
FLOOD_RATE=${BENCH_FLOOD_RATE:-2000}
IDLE=${BENCH_IDLE_SECONDS:-10}
RESULTS=${BENCH_RESULTS:-$IT_SRC/bench/results}
NODES=$((HOSTS_N * PER_HOST))
[ "$HOSTS_N" -ge 2 ] && [ "$PER_HOST" -ge 3 ] || it_fail "need BENCH_HOSTS >= 2, BENCH_PER_HOST >= 3"
mkdir -p "$RESULTS" || it_fail "mkdir $RESULTS"
CLK_TCK=$(getconf CLK_TCK)
KAM_PORT=5062
UAS_PORT=5080

# The phones: sipp with the fine clock preloaded, first in PATH for this script and
# everything it starts (ip netns exec finds it there too).
mkdir -p "$IT_TMP/bin"
cc -O2 -shared -fPIC -o "$IT_TMP/bin/sipp_fine_clock.so" "$IT_SRC/bench/sipp_fine_clock.c" ||
    it_fail "cannot build bench/sipp_fine_clock.c"
real_sipp=$(command -v sipp)
printf '#!/bin/sh\nLD_PRELOAD=%s exec %s "$@"\n' "$IT_TMP/bin/sipp_fine_clock.so" "$real_sipp" \
    >"$IT_TMP/bin/sipp"
chmod 755 "$IT_TMP/bin/sipp"
export PATH=$IT_TMP/bin:$PATH

# The scenarios, derived from the integration tests' own (the same messages), with
# one response-time timer each, started when the request is sent: REGISTER to its
# 200; INVITE to the 180, or to the 200 when that comes first (kamailio's two
# workers may forward the callee's 180 and 200, sent back to back, out of order;
# the 180 stays optional as in uac.xml, and -trace_counts tells how many calls
# got their 180 first).
sed -e '0,/<send retrans="500">/s//<send retrans="500" start_rtd="true">/' \
    "$IT_SIPP_DIR/register.xml" >"$IT_TMP/bench_register.xml"
sed -e '0,/<send retrans="500">/s//<send retrans="500" start_rtd="true">/' \
    -e 's|<recv response="180" optional="true" />|<recv response="180" optional="true" rtd="true" />|' \
    "$IT_SIPP_DIR/uac.xml" >"$IT_TMP/bench_uac.xml"
grep -q 'start_rtd="true"' "$IT_TMP/bench_register.xml" &&
    grep -q 'start_rtd="true"' "$IT_TMP/bench_uac.xml" &&
    grep -q '<recv response="180" optional="true" rtd="true" />' "$IT_TMP/bench_uac.xml" &&
    grep -q '<recv response="200" rtd="true"' "$IT_TMP/bench_uac.xml" ||
    it_fail "cannot derive the bench scenarios from register.xml and uac.xml"

users=$IT_TMP/users.csv
flood_users=$IT_TMP/flood.csv
it_users "$CALLS" "$users" callee
it_users "$FLOOD" "$flood_users" flood

declare -A R # results: R[system.metric]

# ticks PID...: utime + stime summed over the processes (gone ones count 0).
ticks() {
    local f=() p
    for p in "$@"; do [ -r "/proc/$p/stat" ] && f+=("/proc/$p/stat"); done
    [ ${#f[@]} -gt 0 ] || { echo 0; return; }
    awk '{ s += $14 + $15 } END { print s + 0 }' "${f[@]}" 2>/dev/null
}

# sipp_args COUNT RATE: the load and response-time options of one sipp run.  sipp
# writes the samples in batches of -rtt_freq and drops a last partial batch (a failed
# call makes one), so every sample is written at once: a line per call, at these
# rates a negligible cost.
sipp_args() {
    echo "-m $1 -r $2 -l $(($2 * 4 > 20 ? $2 * 4 : 20)) -trace_rtt -rtt_freq 1 -timer_resol 1"
}

# sipp_result NAME COUNT T0 T1: OK, FAILED and RATE (achieved, /s) of one sipp run.
sipp_result() {
    OK=$(it_sipp_stat "$1" "SuccessfulCall(C)")
    FAILED=$(it_sipp_stat "$1" "FailedCall(C)")
    OK=${OK:-0}
    FAILED=${FAILED:-$2}
    [ "$OK" -eq "$2" ] || FAILED=$(($2 - OK > FAILED ? $2 - OK : FAILED))
    RATE=$(awk -v n="$OK" -v a="$3" -v b="$4" 'BEGIN { printf "%.0f", (b > a ? n / (b - a) : 0) }')
}

# save_rtt NAME OUT: sipp run NAME's response times (-trace_rtt lines
# "date_ms;response_time_ms;rtd") as OUT, one sample in ms per line; then
# R[KEY.p50], R[KEY.p99] (nearest rank) and R[KEY.n] for KEY=$3.
save_rtt() {
    local f
    f=$(ls "$IT_TMP/$1"_*_rtt.csv 2>/dev/null | head -n 1)
    if [ -z "$f" ]; then
        it_log "no response times traced for $1"
        : >"$2"
    else
        awk -F';' '$2 ~ /^[0-9.e+-]+$/ { printf "%.3f\n", $2 }' "$f" >"$2"
    fi
    local n
    n=$(wc -l <"$2")
    R[$3.n]=$n
    [ "$n" -gt 0 ] || return 0
    R[$3.p50]=$(sort -g "$2" | awk -v n="$n" 'NR == int((n * 50 + 99) / 100) { print; exit }')
    R[$3.p99]=$(sort -g "$2" | awk -v n="$n" 'NR == int((n * 99 + 99) / 100) { print; exit }')
    # The resolution sipp's clock gave: the smallest non-zero step between samples.
    R[$3.resolution_ms]=$(sort -gu "$2" | awk 'NR > 1 && $1 - p > 0 { d = $1 - p; if (m == "" || d < m) m = d }
        { p = $1 } END { printf "%.3f", m + 0 }')
}

# busy_ticks: the whole machine's busy time (/proc/stat: user, nice, system, irq,
# softirq, steal), in clock ticks summed over the cores.
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# cpu_per_call D_TICKS CALLS: milliseconds of CPU per call.
cpu_per_call() { awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", (n > 0 ? d / hz * 1000 / n : 0) }'; }
# cpu_pct D_TICKS SECONDS: % of one core.
cpu_pct() { awk -v d="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? d / hz * 100 / s : 0) }'; }

# node_metrics NODE: the node's Prometheus text (p2psipctl metrics) into
# $IT_TMP/NODE.metrics.  hist_le NODE METRIC LABELS Q: the upper bound (ms) of the
# bucket of the node's histogram METRIC (the series whose labels contain LABELS)
# that holds its quantile Q: the daemon's own view, from the request in to the
# answer out, in powers of two from 0.25 ms (p2p/metrics.h).
node_metrics() {
    "$IT_BUILD/p2psipd/p2psipctl" --data-dir "${OVL_DIR[$1]}" metrics >"$IT_TMP/$1.metrics" 2>&1 ||
        it_log "$1: p2psipctl metrics failed"
}
hist_le() {
    awk -v m="$2" -v lab="$3" -v q="$4" '
        index($0, m "_bucket{") == 1 && index($0, lab) {
            match($0, /le="[^"]*"/); le[n] = substr($0, RSTART + 4, RLENGTH - 5); cum[n++] = $NF }
        index($0, m "_count") == 1 && index($0, lab) { count = $NF }
        END { for (i = 0; i < n; i++) if (count > 0 && cum[i] >= q * count) {
                  if (le[i] == "+Inf") print "inf"; else printf "%g", le[i] * 1000; exit } }' \
        "$IT_TMP/$1.metrics" 2>/dev/null
}

rows=()
row() {
    rows+=("$(printf '%-9s %-10s %s' "$1" "$2" "$3")")
    it_log "${rows[-1]}"
}

# ---------------------------------------------------------------------------------
# The two systems, side by side.  Per system: where its phones run (HOST: a host of
# the LAN, or "" for this namespace's loopback), the proxy address they use, the
# callee's scenario, and which processes its CPU is taken from.

declare -A REG_HOST REG_TO CALL_HOST CALL_TO UAS_HOST UAS_SCEN FLOOD_HOST FLOOD_TO

# phone H NAME TIMEOUT SCENARIO [SIPP ARGS...] / phone_bg H NAME SCENARIO [ARGS...]:
# a sipp phone in host H, or on this namespace's loopback when H is "".
phone() {
    local h=$1
    shift
    if [ -z "$h" ]; then it_sipp "$@"; else ovl_sipp "$h" "$@"; fi
}
phone_bg() {
    local h=$1
    shift
    if [ -z "$h" ]; then it_sipp_bg "$@"; else ovl_sipp_bg "$h" "$@"; fi
}
udp_bound() { if [ -z "$1" ]; then it__udp_bound "$2"; else ovl_udp_bound "$1" "$2"; fi; }

# cpu_pids SYS: the processes whose CPU counts for SYS's calls: kamailio's process
# group; p2psipd's caller and callee nodes.
cpu_pids() {
    case $1 in
    kamailio) ps -e -o pid=,pgid= | awk -v g="$(it_pid kam)" '$2 == g { print $1 }' ;;
    p2psipd) printf '%s\n' "$(it_pid "$caller")" "$(it_pid "$callee")" ;;
    esac
}

# measure_register SYS: BENCH_CALLS REGISTERs of the callees' AoRs, from the callee
# phone's own address (as a phone registers itself), traced.
measure_register() {
    local s=$1 t0 t1
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    phone "${REG_HOST[$s]}" "$s.reg" $((CALLS / REG_RATE + 60)) "$IT_TMP/bench_register.xml" \
        -i 127.0.0.1 -p "$UAS_PORT" -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
        -key contact_hp "127.0.0.1:$UAS_PORT" -key expires 3600 \
        $(sipp_args "$CALLS" "$REG_RATE") "${REG_TO[$s]}"
    t1=$(date +%s.%N)
    sipp_result "$s.reg" "$CALLS" "$t0" "$t1"
    save_rtt "$s.reg" "$RESULTS/p2psip_register_$s.csv" "$s.register"
    R[$s.register.failed]=$FAILED
    local own=""
    if [ "$s" = p2psipd ]; then
        node_metrics "$callee"
        R[$s.register.node_p99_le]=$(hist_le "$callee" p2psip_sip_register_duration_seconds "" 0.99)
        R[$s.register.put_p99_le]=$(hist_le "$callee" p2psip_dht_put_duration_seconds 'origin="register"' 0.99)
        own=" (at $callee: REGISTER p99 <= ${R[$s.register.node_p99_le]:-?} ms, its put p99 <= ${R[$s.register.put_p99_le]:-?} ms)"
    fi
    row "$s" register "$CALLS at $REG_RATE/s to ${REG_TO[$s]}${REG_HOST[$s]:+ in ${REG_HOST[$s]}}: $OK ok, $FAILED failed, p50 ${R[$s.register.p50]:--} ms, p99 ${R[$s.register.p99]:--} ms$own"
}

# start_callee SYS: the callee phone, for BENCH_CALLS calls.
start_callee() {
    phone_bg "${UAS_HOST[$1]}" "$1.uas" "${UAS_SCEN[$1]}" -i 127.0.0.1 -p "$UAS_PORT" -t u1 \
        -default_behaviors -bye -m "$CALLS"
    it_wait_until 10 "$1's callee phone" udp_bound "${UAS_HOST[$1]}" "$UAS_PORT"
}

# measure_calls SYS: BENCH_CALLS calls, INVITE-180 traced, CPU over the step.
measure_calls() {
    local s=$1 t0 t1 c0 c1 r0 r1 m0 m1 pids
    mapfile -t pids < <(cpu_pids "$s")
    c0=$(ticks "${pids[@]}")
    r0=$(ticks "${ring[@]}")
    m0=$(busy_ticks)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    phone "${CALL_HOST[$s]}" "$s.call" $((CALLS / CALL_RATE + 90)) "$IT_TMP/bench_uac.xml" \
        -i 127.0.0.1 -p 5071 -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
        $(sipp_args "$CALLS" "$CALL_RATE") -trace_counts -rsa "${CALL_TO[$s]}" "${CALL_TO[$s]}"
    t1=$(date +%s.%N)
    c1=$(ticks "${pids[@]}")
    r1=$(ticks "${ring[@]}")
    m1=$(busy_ticks)
    sipp_result "$s.call" "$CALLS" "$t0" "$t1"
    R[$s.call.machine_busy_pct]=$(cpu_pct $((m1 - m0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    save_rtt "$s.call" "$RESULTS/p2psip_call_setup_$s.csv" "$s.call"
    R[$s.call.failed]=$FAILED
    R[$s.call.got_180_first]=$(it_sipp_count "$s.call" 180)
    R[$s.call.rate]=$RATE
    R[$s.call.cpu_ms]=$(cpu_per_call $((c1 - c0)) "$OK")
    local extra=""
    if [ "$s" = p2psipd ]; then
        R[$s.call.ring_cpu_ms]=$(cpu_per_call $((r1 - r0)) "$OK")
        node_metrics "$caller"
        R[$s.call.node_p99_le]=$(hist_le "$caller" p2psip_sip_call_setup_duration_seconds "" 0.99)
        R[$s.call.get_p99_le]=$(hist_le "$caller" p2psip_dht_get_duration_seconds 'origin="lookup"' 0.99)
        extra=", ${R[$s.call.ring_cpu_ms]} ms/call on all $NODES nodes; at $caller: INVITE to 18x p99 <= ${R[$s.call.node_p99_le]:-?} ms, its DHT get p99 <= ${R[$s.call.get_p99_le]:-?} ms"
    fi
    # The callee phone ends after its last call; one whose call failed at the caller
    # waits for an ACK that never comes, so it gets 10 s, then SIGTERM (status 143).
    local i
    for ((i = 0; i < 200; i++)); do it_alive "$s.uas" || break; sleep 0.05; done
    it_stop "$s.uas"
    R[$s.call.callee_status]=${IT_EXIT_OF[$s.uas]}
    row "$s" call "$CALLS at $CALL_RATE/s ($RATE/s) to ${CALL_TO[$s]}${CALL_HOST[$s]:+ in ${CALL_HOST[$s]}}: $OK ok, $FAILED failed (callee phone exit ${IT_EXIT_OF[$s.uas]}), ${R[$s.call.got_180_first]:-?} got the 180 first; INVITE-180 p50 ${R[$s.call.p50]:--} ms, p99 ${R[$s.call.p99]:--} ms; CPU ${R[$s.call.cpu_ms]} ms/call$extra; the machine ${R[$s.call.machine_busy_pct]} % of a core busy"
}

# measure_flood SYS: BENCH_FLOOD REGISTERs of new AoRs at BENCH_FLOOD_RATE; failures
# by kind (503 answers, other answers, no answer).
measure_flood() {
    local s=$1 t0 t1 secs r0 r1 f0 f1 m0 m1 fp
    fp=$(if [ "$s" = p2psipd ]; then it_pid "$flooded"; else cpu_pids kamailio; fi)
    # shellcheck disable=SC2086 # fp: a list of pids
    f0=$(ticks $fp)
    r0=$(ticks "${ring[@]}")
    m0=$(busy_ticks)
    t0=$(date +%s.%N)
    phone "${FLOOD_HOST[$s]}" "$s.flood" $((FLOOD / FLOOD_RATE + 60)) register.xml -i 127.0.0.1 \
        -p 5072 -t u1 -inf "$flood_users" -key domain "$IT_DOMAIN" \
        -key contact_hp 127.0.0.1:5999 -key expires 3600 -m "$FLOOD" -r "$FLOOD_RATE" \
        -l "$FLOOD" -max_recv_loops 2000 "${FLOOD_TO[$s]}"
    t1=$(date +%s.%N)
    # shellcheck disable=SC2086
    f1=$(ticks $fp)
    r1=$(ticks "${ring[@]}")
    m1=$(busy_ticks)
    sipp_result "$s.flood" "$FLOOD" "$t0" "$t1"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    # CPU over the sipp run, % of one core: the server (the flooded node), the whole
    # ring, the whole machine (2 cores: 200 %).
    R[$s.flood.server_cpu_pct]=$(cpu_pct $((f1 - f0)) "$secs")
    R[$s.flood.machine_busy_pct]=$(cpu_pct $((m1 - m0)) "$secs")
    [ "$s" != p2psipd ] || R[$s.flood.ring_cpu_pct]=$(cpu_pct $((r1 - r0)) "$secs")
    R[$s.flood.failed]=$FAILED
    R[$s.flood.rate]=$RATE
    R[$s.flood.seconds]=$secs
    # REGISTERs answered 503: distinct Call-IDs (a retransmission answered again is
    # logged again, as a "Dead call").
    R[$s.flood.answered_503]=$(cat "$IT_TMP/$s.flood.err.log" 2>/dev/null |
        sed -n "s/.*\(Call-Id '\|Dead call \)\([^' ]*\).*received 'SIP\/2.0 503.*/\2/p" | sort -u | wc -l)
    row "$s" flood "$FLOOD at $FLOOD_RATE/s to ${FLOOD_TO[$s]}${FLOOD_HOST[$s]:+ in ${FLOOD_HOST[$s]}}: $OK ok, $FAILED failed (${R[$s.flood.answered_503]} answered 503), achieved $RATE/s over $secs s; CPU % of a core: server ${R[$s.flood.server_cpu_pct]}${R[$s.flood.ring_cpu_pct]:+, ring ${R[$s.flood.ring_cpu_pct]}}, machine ${R[$s.flood.machine_busy_pct]}"
}

rm -f "$RESULTS"/p2psip_{register,call_setup}_{p2psipd,kamailio}.csv

# kamailio: one proxy on this namespace's loopback, its phones beside it.
REG_HOST[kamailio]="" REG_TO[kamailio]=127.0.0.1:$KAM_PORT
CALL_HOST[kamailio]="" CALL_TO[kamailio]=127.0.0.1:$KAM_PORT
UAS_HOST[kamailio]="" UAS_SCEN[kamailio]=uas.xml
FLOOD_HOST[kamailio]="" FLOOD_TO[kamailio]=127.0.0.1:$KAM_PORT

# p2psipd: the ring.  The callee phone registers with and is called through the
# second node of the last host; the caller phone uses the second node of h1; the
# flood goes to the third node of the middle host.
caller=n1_1
callee=n${HOSTS_N}_1
flooded=n$(((HOSTS_N + 1) / 2))_2
REG_HOST[p2psipd]=h$HOSTS_N REG_TO[p2psipd]=127.0.0.1:5101
CALL_HOST[p2psipd]=h1 CALL_TO[p2psipd]=127.0.0.1:5101
UAS_HOST[p2psipd]=h$HOSTS_N UAS_SCEN[p2psipd]=uas_overlay.xml
FLOOD_HOST[p2psipd]=h$(((HOSTS_N + 1) / 2)) FLOOD_TO[p2psipd]=127.0.0.1:5102

printf '[sip]\ndomain = %s\n' "$IT_DOMAIN" >"$IT_TMP/phones.conf"
t_ring=$SECONDS
ovl_hosts_create "$HOSTS_N" --no-multicast
ovl_ring_grow "$HOSTS_N" "$PER_HOST" --conf "$IT_TMP/phones.conf"
R[p2psipd.ring_seconds]=$((SECONDS - t_ring))
it_log "all $NODES daemons are members after ${R[p2psipd.ring_seconds]} s"
mapfile -t ring < <(while read -r name _; do it_pid "$name"; done <"$IT_TMP/all.nodes")

P2P_IT_SERVER=kamailio it_server_start kam "$KAM_PORT" --data-dir "$IT_TMP/kam.data"
n=0 prev=-1
for ((i = 0; i < 40 && n != prev; i++)); do # its workers fork after the bind
    prev=$n
    sleep 0.1
    n=$(cpu_pids kamailio | wc -l)
done

# Each step: kamailio, then p2psipd at once, under the same load of the machine.
measure_register kamailio
measure_register p2psipd
start_callee kamailio
start_callee p2psipd
# Idle CPU of each side, both phones waiting, over one window.
mapfile -t kp < <(cpu_pids kamailio)
mapfile -t ep < <(cpu_pids p2psipd)
k0=$(ticks "${kp[@]}") e0=$(ticks "${ep[@]}") r0=$(ticks "${ring[@]}")
sleep "$IDLE"
k1=$(ticks "${kp[@]}") e1=$(ticks "${ep[@]}") r1=$(ticks "${ring[@]}")
R[kamailio.idle_cpu_pct]=$(cpu_pct $((k1 - k0)) "$IDLE")
R[p2psipd.idle_cpu_pct]=$(cpu_pct $((e1 - e0)) "$IDLE")
R[p2psipd.ring_idle_cpu_pct]=$(cpu_pct $((r1 - r0)) "$IDLE")
row idle cpu "over ${IDLE} s, % of one core: kamailio ${R[kamailio.idle_cpu_pct]}, p2psipd $caller+$callee ${R[p2psipd.idle_cpu_pct]}, all $NODES nodes ${R[p2psipd.ring_idle_cpu_pct]}"
measure_calls kamailio
measure_calls p2psipd
measure_flood kamailio
measure_flood p2psipd
it_stop kam

node_metrics "$flooded"
R[p2psipd.flood.put_p50_le]=$(hist_le "$flooded" p2psip_dht_put_duration_seconds 'origin="register"' 0.5)
R[p2psipd.flood.put_p99_le]=$(hist_le "$flooded" p2psip_dht_put_duration_seconds 'origin="register"' 0.99)
row p2psipd flood "at $flooded: DHT put p50 <= ${R[p2psipd.flood.put_p50_le]:-?} ms, p99 <= ${R[p2psipd.flood.put_p99_le]:-?} ms"
# The flooded node's own account of its puts (logged when it stops): puts attempted
# (a put refused at once, answered 503 at once, counts too) and puts that failed
# after they started.
it_stop "$flooded"
line_puts=$(grep -o 'DHT bindings: .*' "$IT_TMP/$flooded.log" | tail -n 1)
R[p2psipd.flood.node_puts]=$(sed -n 's/.* lookups ([0-9]* found other nodes. bindings), \([0-9]*\) puts.*/\1/p' <<<"$line_puts")
R[p2psipd.flood.node_puts_failed]=$(sed -n 's/.* puts (\([0-9]*\) failed.*/\1/p' <<<"$line_puts")
row p2psipd flood "$flooded: ${line_puts:-no DHT summary in its log}"

# Every other daemon still runs.
dead=0
while read -r name _; do
    [ "$name" = "$flooded" ] || it_alive "$name" || dead=$((dead + 1))
done <"$IT_TMP/all.nodes"
R[p2psipd.nodes_exited]=$dead

# ---------------------------------------------------------------------------------
# The table.

ratio() { # ratio A B: A / B, or null
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) print "null"; else printf "%.2f", a / b }'
}
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "p2psip benchmark: $NODES p2psipd nodes ($HOSTS_N hosts x $PER_HOST) against kamailio" \
    "-n $IT_KAMAILIO_CHILDREN as one proxy; sipp phones, UDP; $(nproc) cores, load $load"
printf '%s\n' "${rows[@]}"
echo
printf '%-44s %12s %12s %8s %s\n' measure p2psipd kamailio ratio target
line() { printf '%-44s %12s %12s %8s %s\n' "$1" "${2:--}" "${3:--}" "$(ratio "${2:-}" "${3:-}")" "$4"; }
line "call setup INVITE-180 p50 (ms)" "${R[p2psipd.call.p50]:-}" "${R[kamailio.call.p50]:-}" ""
line "call setup INVITE-180 p99 (ms)" "${R[p2psipd.call.p99]:-}" "${R[kamailio.call.p99]:-}" "p2psipd <= 10 ms"
line "calls failed (of $CALLS)" "${R[p2psipd.call.failed]}" "${R[kamailio.call.failed]}" ""
line "REGISTER-200 p50 (ms)" "${R[p2psipd.register.p50]:-}" "${R[kamailio.register.p50]:-}" ""
line "REGISTER-200 p99 (ms)" "${R[p2psipd.register.p99]:-}" "${R[kamailio.register.p99]:-}" "p2psipd <= 3 ms"
line "REGISTERs failed (of $CALLS)" "${R[p2psipd.register.failed]}" "${R[kamailio.register.failed]}" ""
line "flood $FLOOD REGISTERs @$FLOOD_RATE/s: failed" "${R[p2psipd.flood.failed]}" "${R[kamailio.flood.failed]}" "p2psipd 0"
line "flood: achieved REGISTER/s" "${R[p2psipd.flood.rate]}" "${R[kamailio.flood.rate]}" ""
line "CPU per call (ms; caller+callee node | proxy)" "${R[p2psipd.call.cpu_ms]}" "${R[kamailio.call.cpu_ms]}" "<= 1.0x"
line "CPU per call, all $NODES nodes (ms)" "${R[p2psipd.call.ring_cpu_ms]}" "${R[kamailio.call.cpu_ms]}" ""
line "idle CPU before the calls (% of a core)" "${R[p2psipd.idle_cpu_pct]}" "${R[kamailio.idle_cpu_pct]}" ""
echo "(CPU per REGISTER on one node: bench/bench_sip_server.sh; response-time resolution:" \
    "${R[p2psipd.call.resolution_ms]:-?} ms or finer, sipp with bench/sipp_fine_clock.c)"

json="{\"bench\":\"p2psip\",\"nodes\":$NODES,\"hosts\":$HOSTS_N,\"calls\":$CALLS"
json+=",\"call_rate\":$CALL_RATE,\"reg_rate\":$REG_RATE,\"flood\":$FLOOD,\"flood_rate\":$FLOOD_RATE"
json+=",\"cores\":$(nproc),\"loadavg\":\"$load\",\"kamailio_children\":$IT_KAMAILIO_CHILDREN"
for k in $(printf '%s\n' "${!R[@]}" | sort); do
    v=${R[$k]:-null}
    [[ $v =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || [ "$v" = null ] || v="\"$v\"" # "inf": a string
    json+=",\"$k\":$v"
done
json+=",\"cpu_per_call_ratio\":$(ratio "${R[p2psipd.call.cpu_ms]}" "${R[kamailio.call.cpu_ms]}")}"
echo "$json"
"$IT_SRC/bench/plot.sh" "$RESULTS" >&2 || it_log "bench/plot.sh failed: no PNG (scripts/deps.sh bench)"
IT_VERDICT=PASS
exit 0

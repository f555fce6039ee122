#!/usr/bin/env bash
#
# bench_p2psip.sh: p2psipd as a whole system, N nodes (default 100: 10 hosts of 10)
# on a private LAN of network namespaces, against kamailio 5.6 as one registrar +
# stateful proxy, with the very same sipp phones (tests/integration/sipp/) and the
# same counts and rates, one after the other in one run.  docs/BENCHMARKS.md says more.
#
# Usage: bench/bench_p2psip.sh
# Environment (defaults are the figures of issue 9):
#   P2P_BUILD_DIR (./build)      where p2psipd is built
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
#               checks that it crossed two nodes).  INVITE to 180 at the caller: p50,
#               p99, samples in p2psip_call_setup_{p2psipd,kamailio}.csv.
#   CPU/call    utime+stime (/proc/PID/stat) over the call step, summed over the
#               caller's and the callee's nodes, per call; kamailio: all its processes
#               (one proxy).  Beside it, the whole ring's CPU over the step, and each
#               side's idle CPU over BENCH_IDLE_SECONDS just before (at a low call rate
#               the idle timers weigh in, for kamailio most).
#   flood       BENCH_FLOOD REGISTERs of new AoRs at BENCH_FLOOD_RATE through one node
#               (n<H/2>_2): failed REGISTERs and the achieved rate (sipp's completed
#               calls / elapsed seconds); the same against kamailio.
#   CPU per REGISTER on one node is bench_sip_server.sh's figure, not repeated here.
# Response times: sipp 3.6.1 reads its clock from CLOCK_MONOTONIC_COARSE (4 ms steps
# here, whatever -timer_resol says); the sipp phones here run with
# bench/sipp_fine_clock.c preloaded (CLOCK_MONOTONIC: microseconds), the servers
# never.  The timer starts when sipp sends the request (start_rtd) and stops when it
# reads the response (rtd), so the figures include both phones' sipp loops.
# kamailio runs first, alone, in this script's namespace (127.0.0.1:5062); then the
# ring is grown and measured.
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
# one response-time timer each: REGISTER sent to its 200; INVITE sent to the 180
# (which becomes mandatory: both callees send it).
sed -e '0,/<send retrans="500">/s//<send retrans="500" start_rtd="true">/' \
    "$IT_SIPP_DIR/register.xml" >"$IT_TMP/bench_register.xml"
sed -e '0,/<send retrans="500">/s//<send retrans="500" start_rtd="true">/' \
    -e 's|<recv response="180" optional="true" />|<recv response="180" rtd="true" />|' \
    -e 's|<recv response="200" rtd="true" rrs="true"|<recv response="200" rrs="true"|' \
    "$IT_SIPP_DIR/uac.xml" >"$IT_TMP/bench_uac.xml"
grep -q 'start_rtd="true"' "$IT_TMP/bench_register.xml" &&
    [ "$(grep -c 'start_rtd="true"\|response="180" rtd="true"' "$IT_TMP/bench_uac.xml")" = 2 ] &&
    [ "$(grep -c 'rtd="true"' "$IT_TMP/bench_uac.xml")" = 2 ] ||
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

# kam_pids: kamailio's processes (its process group: it_start runs it under setsid).
kam_pids() {
    ps -e -o pid=,pgid= | awk -v g="$(it_pid kam)" '$2 == g { print $1 }'
}

# sipp_args COUNT RATE: the load and response-time options of one sipp run.  sipp
# writes the samples in batches of -rtt_freq and drops a last partial batch, so the
# batch divides COUNT.
sipp_args() {
    local f
    for f in 100 50 10 1; do [ $(($1 % f)) -ne 0 ] || break; done
    echo "-m $1 -r $2 -l $(($2 * 4 > 20 ? $2 * 4 : 20)) -trace_rtt -rtt_freq $f -timer_resol 1"
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

# cpu_per_call D_TICKS CALLS: milliseconds of CPU per call.
cpu_per_call() { awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", (n > 0 ? d / hz * 1000 / n : 0) }'; }
# cpu_pct D_TICKS SECONDS: % of one core.
cpu_pct() { awk -v d="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? d / hz * 100 / s : 0) }'; }

rows=()
row() {
    rows+=("$(printf '%-9s %-10s %s' "$1" "$2" "$3")")
    it_log "${rows[-1]}"
}

# ---------------------------------------------------------------------------------
# kamailio: one proxy, the phones on this namespace's loopback.

rm -f "$RESULTS"/p2psip_{register,call_setup}_{p2psipd,kamailio}.csv
P2P_IT_SERVER=kamailio it_server_start kam "$KAM_PORT" --data-dir "$IT_TMP/kam.data"
n=0 prev=-1
for ((i = 0; i < 40 && n != prev; i++)); do # its workers fork after the bind
    prev=$n
    sleep 0.1
    n=$(kam_pids | wc -l)
done

t0=$(date +%s.%N)
# shellcheck disable=SC2046
it_sipp kam_reg $((CALLS / REG_RATE + 60)) "$IT_TMP/bench_register.xml" -i 127.0.0.1 \
    -p "$UAS_PORT" -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
    -key contact_hp "127.0.0.1:$UAS_PORT" -key expires 3600 $(sipp_args "$CALLS" "$REG_RATE") \
    "127.0.0.1:$KAM_PORT"
t1=$(date +%s.%N)
sipp_result kam_reg "$CALLS" "$t0" "$t1"
save_rtt kam_reg "$RESULTS/p2psip_register_kamailio.csv" kamailio.register
R[kamailio.register.failed]=$FAILED
row kamailio register "$CALLS at $REG_RATE/s: $OK ok, $FAILED failed, p50 ${R[kamailio.register.p50]:--} ms, p99 ${R[kamailio.register.p99]:--} ms"

it_sipp_bg kam_uas uas.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -default_behaviors -bye \
    -m "$CALLS"
it_wait_udp "$UAS_PORT"
mapfile -t kp < <(kam_pids)
c0=$(ticks "${kp[@]}")
sleep "$IDLE"
c1=$(ticks "${kp[@]}")
R[kamailio.idle_cpu_pct]=$(cpu_pct $((c1 - c0)) "$IDLE")

t0=$(date +%s.%N)
# shellcheck disable=SC2046
it_sipp kam_call $((CALLS / CALL_RATE + 90)) "$IT_TMP/bench_uac.xml" -i 127.0.0.1 -p 5071 -t u1 \
    -inf "$users" -key domain "$IT_DOMAIN" $(sipp_args "$CALLS" "$CALL_RATE") \
    -rsa "127.0.0.1:$KAM_PORT" "127.0.0.1:$KAM_PORT"
t1=$(date +%s.%N)
c2=$(ticks "${kp[@]}")
sipp_result kam_call "$CALLS" "$t0" "$t1"
save_rtt kam_call "$RESULTS/p2psip_call_setup_kamailio.csv" kamailio.call
R[kamailio.call.failed]=$FAILED
R[kamailio.call.rate]=$RATE
R[kamailio.call.cpu_ms]=$(cpu_per_call $((c2 - c1)) "$OK")
it_wait_until 30 "kamailio's callee phone to end" eval '! it_alive kam_uas'
it_stop kam_uas
row kamailio call "$CALLS at $CALL_RATE/s ($RATE/s): $OK ok, $FAILED failed; INVITE-180 p50 ${R[kamailio.call.p50]:--} ms, p99 ${R[kamailio.call.p99]:--} ms; CPU ${R[kamailio.call.cpu_ms]} ms/call (idle ${R[kamailio.idle_cpu_pct]} % of a core)"

t0=$(date +%s.%N)
it_sipp kam_flood $((FLOOD / FLOOD_RATE + 60)) register.xml -i 127.0.0.1 -p 5072 -t u1 \
    -inf "$flood_users" -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5999 \
    -key expires 3600 -m "$FLOOD" -r "$FLOOD_RATE" -l "$FLOOD" -max_recv_loops 2000 \
    "127.0.0.1:$KAM_PORT"
t1=$(date +%s.%N)
sipp_result kam_flood "$FLOOD" "$t0" "$t1"
R[kamailio.flood.failed]=$FAILED
R[kamailio.flood.rate]=$RATE
row kamailio flood "$FLOOD at $FLOOD_RATE/s: $OK ok, $FAILED failed, achieved $RATE/s"
it_stop kam

# ---------------------------------------------------------------------------------
# p2psipd: the ring.

caller=n1_1
callee=n${HOSTS_N}_1
flooded=n$(((HOSTS_N + 1) / 2))_2
caller_h=h1
callee_h=h$HOSTS_N
flooded_h=h$(((HOSTS_N + 1) / 2))
printf '[sip]\ndomain = %s\n' "$IT_DOMAIN" >"$IT_TMP/phones.conf"
t_ring=$SECONDS
ovl_hosts_create "$HOSTS_N" --no-multicast
ovl_ring_grow "$HOSTS_N" "$PER_HOST" --conf "$IT_TMP/phones.conf"
R[p2psipd.ring_seconds]=$((SECONDS - t_ring))
it_log "all $NODES daemons are members after ${R[p2psipd.ring_seconds]} s"
mapfile -t ring < <(while read -r name _; do it_pid "$name"; done <"$IT_TMP/all.nodes")
ends=("$(it_pid "$caller")" "$(it_pid "$callee")")

t0=$(date +%s.%N)
# shellcheck disable=SC2046
ovl_sipp "$callee_h" p2p_reg $((CALLS / REG_RATE + 60)) "$IT_TMP/bench_register.xml" \
    -i 127.0.0.1 -p "$UAS_PORT" -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
    -key contact_hp "127.0.0.1:$UAS_PORT" -key expires 3600 $(sipp_args "$CALLS" "$REG_RATE") \
    127.0.0.1:5101
t1=$(date +%s.%N)
sipp_result p2p_reg "$CALLS" "$t0" "$t1"
save_rtt p2p_reg "$RESULTS/p2psip_register_p2psipd.csv" p2psipd.register
R[p2psipd.register.failed]=$FAILED
row p2psipd register "$CALLS at $REG_RATE/s through $callee: $OK ok, $FAILED failed, p50 ${R[p2psipd.register.p50]:--} ms, p99 ${R[p2psipd.register.p99]:--} ms"

ovl_sipp_bg "$callee_h" p2p_uas uas_overlay.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 \
    -default_behaviors -bye -m "$CALLS"
it_wait_until 10 "the callee phone" ovl_udp_bound "$callee_h" "$UAS_PORT"
e0=$(ticks "${ends[@]}")
r0=$(ticks "${ring[@]}")
sleep "$IDLE"
e1=$(ticks "${ends[@]}")
r1=$(ticks "${ring[@]}")
R[p2psipd.idle_cpu_pct]=$(cpu_pct $((e1 - e0)) "$IDLE")
R[p2psipd.ring_idle_cpu_pct]=$(cpu_pct $((r1 - r0)) "$IDLE")

t0=$(date +%s.%N)
# shellcheck disable=SC2046
ovl_sipp "$caller_h" p2p_call $((CALLS / CALL_RATE + 90)) "$IT_TMP/bench_uac.xml" -i 127.0.0.1 \
    -p 5071 -t u1 -inf "$users" -key domain "$IT_DOMAIN" $(sipp_args "$CALLS" "$CALL_RATE") \
    -rsa 127.0.0.1:5101 127.0.0.1:5101
t1=$(date +%s.%N)
e2=$(ticks "${ends[@]}")
r2=$(ticks "${ring[@]}")
sipp_result p2p_call "$CALLS" "$t0" "$t1"
save_rtt p2p_call "$RESULTS/p2psip_call_setup_p2psipd.csv" p2psipd.call
R[p2psipd.call.failed]=$FAILED
R[p2psipd.call.rate]=$RATE
R[p2psipd.call.cpu_ms]=$(cpu_per_call $((e2 - e1)) "$OK")
R[p2psipd.call.ring_cpu_ms]=$(cpu_per_call $((r2 - r1)) "$OK")
call_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
R[p2psipd.call.ring_cpu_pct]=$(cpu_pct $((r2 - r1)) "$call_secs")
it_wait_until 30 "the callee phone to end" eval '! it_alive p2p_uas'
it_stop p2p_uas
row p2psipd call "$CALLS at $CALL_RATE/s ($RATE/s), $caller -> $callee: $OK ok, $FAILED failed; INVITE-180 p50 ${R[p2psipd.call.p50]:--} ms, p99 ${R[p2psipd.call.p99]:--} ms; CPU ${R[p2psipd.call.cpu_ms]} ms/call on the two nodes (idle ${R[p2psipd.idle_cpu_pct]} % of a core), ${R[p2psipd.call.ring_cpu_ms]} ms/call on all $NODES (idle ${R[p2psipd.ring_idle_cpu_pct]} %)"

t0=$(date +%s.%N)
ovl_sipp "$flooded_h" p2p_flood $((FLOOD / FLOOD_RATE + 60)) register.xml -i 127.0.0.1 \
    -p 5072 -t u1 -inf "$flood_users" -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5999 \
    -key expires 3600 -m "$FLOOD" -r "$FLOOD_RATE" -l "$FLOOD" -max_recv_loops 2000 \
    127.0.0.1:5102
t1=$(date +%s.%N)
sipp_result p2p_flood "$FLOOD" "$t0" "$t1"
R[p2psipd.flood.failed]=$FAILED
R[p2psipd.flood.rate]=$RATE
row p2psipd flood "$FLOOD at $FLOOD_RATE/s through $flooded: $OK ok, $FAILED failed, achieved $RATE/s"

# Every daemon still runs.
dead=0
while read -r name _; do it_alive "$name" || dead=$((dead + 1)); done <"$IT_TMP/all.nodes"
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
    json+=",\"$k\":${R[$k]:-null}"
done
json+=",\"cpu_per_call_ratio\":$(ratio "${R[p2psipd.call.cpu_ms]}" "${R[kamailio.call.cpu_ms]}")}"
echo "$json"
"$IT_SRC/bench/plot.sh" "$RESULTS" >&2 || it_log "bench/plot.sh failed: no PNG (scripts/deps.sh bench)"
IT_VERDICT=PASS
exit 0

#!/usr/bin/env bash
#
# bench_sip_server.sh: p2psipd against kamailio 5.6 as registrar + stateful proxy,
# with the same sipp scenarios (tests/integration/sipp/), one server after the other
# in one run, on loopback inside a private network namespace.
#
# Usage: bench/bench_sip_server.sh [SERVER...]
#   SERVER: kamailio (bindings in memory), kamailio-sqlite (bindings persisted by
#   usrloc db_mode 2 in sqlite), p2psipd (bindings in memory + sqlite WAL, always).
#   Default: all three (p2psipd only when it is built).
# Environment: P2P_BUILD_DIR (default ./build), BENCH_AORS (30000),
#   BENCH_REG_RATES ("2000 5000 10000 15000 20000"), BENCH_AUTH_RATES
#   ("1000 2000 5000 10000 15000"), BENCH_CALL_RATES ("100 200 500 1000 2000"),
#   BENCH_CALL_SECONDS (10: calls per step = rate x this), IT_KAMAILIO_CHILDREN (2).
#
# What it measures, per server (docs/BENCHMARKS.md says more):
#   reg    30,000 REGISTERs for 30,000 new AoRs, no authentication, at each rate of
#          BENCH_REG_RATES on a freshly started server, stepping up until a step has
#          a failure: the highest zero-failure rate, CPU seconds per 10,000
#          REGISTERs (at the first step), memory per 10,000 bindings (at the first
#          step: PSS of all the server's processes after minus before).
#   auth   the same with digest authentication (401 + REGISTER with credentials).
#   call   30,000 AoRs bound to one sipp UAS, then INVITE/180/200/ACK/BYE calls
#          through the proxy at each rate of BENCH_CALL_RATES: highest zero-failure
#          rate, CPU seconds per 10,000 calls (first step).
# CPU is utime+stime of every process of the server (/proc/PID/stat), memory the sum
# of Pss (/proc/PID/smaps_rollup) over them: kamailio's shared memory is counted once.
# sipp runs on the same 2 cores; at the top rates sipp itself is often the limit,
# so "achieved" (completed calls / elapsed seconds) is printed beside each rate.
#
# Response times: at the reference rates (BENCH_*_CPU_RATE) sipp records every call's
# response time (-trace_rtt; REGISTER to its 200, with digest from the first REGISTER
# to the final 200, INVITE to 200), written as BENCH_RESULTS/sip_TEST_SERVER.csv (one
# sample per line, ms; default bench/results); bench/plot.sh draws them as CDFs.
#
# Output: a table, then one JSON object on the last line.  Never asserts a speed.
set -u
IT_TIMEOUT=${BENCH_TIMEOUT:-1200}
. "$(cd "$(dirname "$0")/.." && pwd)/tests/integration/lib.sh"
IT_NAME=bench_sip_server
it_begin "$@"
it_need sipp ss awk

AORS=${BENCH_AORS:-30000}
REG_RATES=${BENCH_REG_RATES:-2000 5000 10000 15000 20000}
AUTH_RATES=${BENCH_AUTH_RATES:-1000 2000 5000 10000 15000}
CALL_RATES=${BENCH_CALL_RATES:-100 200 500 1000 2000}
CALL_SECONDS=${BENCH_CALL_SECONDS:-10}
# CPU per operation is reported at one reference rate per test, the same for every
# server (at low rates the servers' idle timers weigh on it; at the top ones sipp
# competes for the cores).
REG_CPU_RATE=${BENCH_REG_CPU_RATE:-5000}
AUTH_CPU_RATE=${BENCH_AUTH_CPU_RATE:-2000}
CALL_CPU_RATE=${BENCH_CALL_CPU_RATE:-500}
RESULTS=${BENCH_RESULTS:-$IT_SRC/bench/results}
mkdir -p "$RESULTS" || it_fail "mkdir $RESULTS"
PORT=5062
UAS_PORT=5080
CLK_TCK=$(getconf CLK_TCK)

servers=("$@")
if [ ${#servers[@]} -eq 0 ]; then
    servers=(kamailio kamailio-sqlite)
    [ -x "$(it_p2psipd_bin)" ] && servers+=(p2psipd)
fi

users=$IT_TMP/users.csv
it_users "$AORS" "$users"

# The pids of a started server: its process group (it_start runs it under setsid).
server_pids() {
    local pg
    pg=$(it_pid server)
    ps -e -o pid=,pgid= | awk -v g="$pg" '$2 == g { print $1 }'
}

# CPU ticks (utime + stime) summed over the server's processes.
server_ticks() {
    local p sum=0 t
    for p in $(server_pids); do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || continue
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}

# Proportional set size in KiB summed over the server's processes.
server_pss_kb() {
    local p sum=0 k
    for p in $(server_pids); do
        k=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        sum=$((sum + ${k:-0}))
    done
    echo "$sum"
}

# start SERVER [--auth]: a fresh instance with a fresh data directory.
start_server() {
    local kind=$1
    shift
    local dir
    dir=$(mktemp -d "$IT_TMP/data.XXXX")
    case $kind in
    kamailio) P2P_IT_SERVER=kamailio it_server_start server "$PORT" --data-dir "$dir" "$@" ;;
    kamailio-sqlite)
        P2P_IT_SERVER=kamailio it_server_start server "$PORT" --data-dir "$dir" --persist "$@" ;;
    p2psipd) P2P_IT_SERVER=p2psipd it_server_start server "$PORT" --data-dir "$dir" "$@" ;;
    esac
    # Readiness is the port being bound; kamailio forks its workers right after
    # binding, so wait until the process count stops changing (bounded).
    local n=0 prev=-1 i
    for ((i = 0; i < 40 && n != prev; i++)); do
        prev=$n
        sleep 0.1
        n=$(server_pids | wc -l)
    done
}

# run_sipp NAME SCENARIO COUNT RATE [ARGS...]: one sipp run; sets OK, FAILED, SECS.
run_sipp() {
    local name=$1 scen=$2 count=$3 rate=$4
    shift 4
    local t0 t1
    t0=$(date +%s.%N)
    it_sipp "$name" $((count / rate + 40)) "$scen" -i 127.0.0.1 -p "${SIPP_PORT:-5090}" -t u1 \
        -inf "$users" -key domain "$IT_DOMAIN" -key expires 3600 -default_behaviors -bye \
        -auth_uri "$IT_DOMAIN" \
        -m "$count" -r "$rate" -l "$count" -max_recv_loops 2000 "$@" 127.0.0.1:$PORT
    t1=$(date +%s.%N)
    OK=$(it_sipp_stat "$name" "SuccessfulCall(C)")
    FAILED=$(it_sipp_stat "$name" "FailedCall(C)")
    OK=${OK:-0}
    FAILED=${FAILED:-$count}
    [ "$OK" -eq "$count" ] || FAILED=$((count - OK > FAILED ? count - OK : FAILED))
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

declare -A R # results: R[server.metric]

# rtt_args COUNT: sipp options that trace the response time of each of COUNT calls.
# sipp writes the samples in batches of -rtt_freq calls and drops a last partial
# batch, so the batch size divides COUNT; -timer_resol 1 keeps its scheduling tight.
rtt_args() {
    local f
    for f in 1000 500 200 100 50 10 1; do
        [ $(($1 % f)) -ne 0 ] || break
    done
    echo "-trace_rtt -rtt_freq $f -timer_resol 1"
}

# save_rtt NAME TEST SERVER: the response times sipp run NAME traced (-trace_rtt:
# "date_ms;response_time_ms;rtd" lines) as RESULTS/sip_TEST_SERVER.csv, ms per line.
save_rtt() {
    local f
    f=$(ls "$IT_TMP/$1"_*_rtt.csv 2>/dev/null | head -n 1)
    [ -n "$f" ] || { it_log "no response times traced for $1"; return 0; }
    awk -F';' '$2 ~ /^[0-9.]+$/ { printf "%.3f\n", $2 }' "$f" >"$RESULTS/sip_$2_$3.csv"
}

# sustained RATE ACHIEVED: a step counts when no call failed and sipp completed at
# least 80 % of the target rate (beyond that the server, or sipp, is saturated and
# the step only measures retransmissions).  The stepping stops at the first step
# that does not count.
sustained() {
    [ "$FAILED" -eq 0 ] && [ "$2" -ge $(($1 * 8 / 10)) ]
}
rows=()

# reg_steps SERVER KIND(reg|auth) SCENARIO RATES...: steps the rate up on fresh servers.
reg_steps() {
    local srv=$1 kind=$2 scen=$3
    shift 3
    local rate first=1 best=0 start_args=() cpu_rate=$REG_CPU_RATE
    [ "$kind" = reg ] || { start_args=(--auth "$users" --md5); cpu_rate=$AUTH_CPU_RATE; }
    for rate in "$@"; do
        start_server "$srv" "${start_args[@]}"
        local mem0 cpu0 mem1 cpu1
        mem0=$(server_pss_kb)
        cpu0=$(server_ticks)
        local rtt=()
        [ "$rate" != "$cpu_rate" ] || read -ra rtt <<<"$(rtt_args "$AORS")"
        run_sipp "$srv.$kind.$rate" "$scen" "$AORS" "$rate" -key contact_hp 127.0.0.1:5999 \
            "${rtt[@]}"
        cpu1=$(server_ticks)
        [ "$rate" != "$cpu_rate" ] || save_rtt "$srv.$kind.$rate" "$kind" "$srv"
        mem1=$(server_pss_kb)
        it_stop server
        local cpu achieved
        cpu=$(awk -v d=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$AORS" \
            'BEGIN { printf "%.3f", d / hz * 10000 / n }')
        achieved=$(awk -v n="$OK" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
        rows+=("$(printf '%-16s %-5s %7s/s %8s/s %7s ok %6s failed %8s s CPU/10k' \
            "$srv" "$kind" "$rate" "$achieved" "$OK" "$FAILED" "$cpu")")
        it_log "${rows[-1]}"
        # CPU per operation only from a step that was sustained (a failing step mostly
        # measures retransmissions and timeouts).
        if [ "$rate" = "$cpu_rate" ] && sustained "$rate" "$achieved"; then
            R[$srv.$kind.cpu_s_per_10k]=$cpu
            R[$srv.$kind.cpu_rate]=$rate
        fi
        if [ "$first" = 1 ]; then
            [ "$kind" != reg ] || R[$srv.mem_kb_per_10k_bindings]=$(awk -v a="$mem0" \
                -v b="$mem1" -v n="$AORS" 'BEGIN { printf "%.0f", (b - a) * 10000 / n }')
            first=0
        fi
        sustained "$rate" "$achieved" || break
        best=$rate
        R[$srv.$kind.achieved]=$achieved
    done
    R[$srv.$kind.max_rate]=$best
}

call_steps() {
    local srv=$1
    shift
    start_server "$srv"
    # The AoRs are registered from the UAS's own address (as a phone registers itself),
    # then the UAS takes that port.
    SIPP_PORT=$UAS_PORT run_sipp "$srv.call.register" register.xml "$AORS" 5000 \
        -key contact_hp "127.0.0.1:$UAS_PORT"
    it_sipp_bg uas uas.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -default_behaviors -bye \
        -max_recv_loops 2000
    it_wait_udp "$UAS_PORT"
    if [ "$FAILED" -ne 0 ]; then
        rows+=("$(printf '%-16s call  registration of %s AoRs failed (%s)' "$srv" "$AORS" "$FAILED")")
        R[$srv.call.max_rate]=0
        it_stop uas
        it_stop server
        return
    fi
    local rate best=0
    for rate in "$@"; do
        local n=$((rate * CALL_SECONDS))
        [ "$n" -le "$AORS" ] || n=$AORS
        local cpu0 cpu1 cpu achieved
        cpu0=$(server_ticks)
        local rtt=()
        [ "$rate" != "$CALL_CPU_RATE" ] || read -ra rtt <<<"$(rtt_args "$n")"
        run_sipp "$srv.call.$rate" uac.xml "$n" "$rate" -rsa 127.0.0.1:$PORT "${rtt[@]}"
        cpu1=$(server_ticks)
        [ "$rate" != "$CALL_CPU_RATE" ] || save_rtt "$srv.call.$rate" call "$srv"
        cpu=$(awk -v d=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$n" \
            'BEGIN { printf "%.3f", d / hz * 10000 / n }')
        achieved=$(awk -v n="$OK" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
        rows+=("$(printf '%-16s %-5s %7s/s %8s/s %7s ok %6s failed %8s s CPU/10k' \
            "$srv" call "$rate" "$achieved" "$OK" "$FAILED" "$cpu")")
        it_log "${rows[-1]}"
        if [ "$rate" = "$CALL_CPU_RATE" ] && sustained "$rate" "$achieved"; then
            R[$srv.call.cpu_s_per_10k]=$cpu
            R[$srv.call.cpu_rate]=$rate
        fi
        sustained "$rate" "$achieved" || break
        best=$rate
        R[$srv.call.achieved]=$achieved
    done
    R[$srv.call.max_rate]=$best
    it_stop uas
    it_stop server
}

for srv in "${servers[@]}"; do
    # No stale samples of an earlier run: a test that does not reach its reference
    # rate this time has no file.
    rm -f "$RESULTS/sip_reg_$srv.csv" "$RESULTS/sip_auth_$srv.csv" "$RESULTS/sip_call_$srv.csv"
    case $srv in
    kamailio | p2psipd)
        # shellcheck disable=SC2086
        reg_steps "$srv" reg register.xml $REG_RATES
        # shellcheck disable=SC2086
        reg_steps "$srv" auth register_auth.xml $AUTH_RATES
        # shellcheck disable=SC2086
        call_steps "$srv" $CALL_RATES
        ;;
    kamailio-sqlite)
        # shellcheck disable=SC2086
        reg_steps "$srv" reg register.xml $REG_RATES
        ;;
    *) it_fail "unknown server '$srv' (kamailio, kamailio-sqlite, p2psipd)" ;;
    esac
done

echo
echo "SIP server benchmark: $AORS AoRs, sipp over UDP on loopback, $(nproc) cores," \
    "kamailio -n ${IT_KAMAILIO_CHILDREN}"
printf '%-16s %-5s %9s %10s %10s %13s %s\n' server test rate achieved ok failed "CPU s"
printf '%s\n' "${rows[@]}"
echo
printf '%-16s %12s %12s %12s %13s %13s %13s %14s\n' server "reg max/s" "auth max/s" \
    "call max/s" "CPU/10k reg" "CPU/10k auth" "CPU/10k call" "KiB/10k bind"
for srv in "${servers[@]}"; do
    printf '%-16s %12s %12s %12s %13s %13s %13s %14s\n' "$srv" "${R[$srv.reg.max_rate]:--}" \
        "${R[$srv.auth.max_rate]:--}" "${R[$srv.call.max_rate]:--}" \
        "${R[$srv.reg.cpu_s_per_10k]:--}" "${R[$srv.auth.cpu_s_per_10k]:--}" \
        "${R[$srv.call.cpu_s_per_10k]:--}" "${R[$srv.mem_kb_per_10k_bindings]:--}"
done

# Ratios against the targets (docs/BENCHMARKS.md): CPU at most half of kamailio's,
# memory per binding at most kamailio's, no failure at kamailio's highest rate.
ratio() { # ratio A B: A / B, or null
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) print "null"; else printf "%.2f", a / b }'
}
if [ -n "${R[p2psipd.reg.max_rate]:-}" ] && [ -n "${R[kamailio.reg.max_rate]:-}" ]; then
    echo
    echo "p2psipd / kamailio: CPU per REGISTER $(ratio "${R[p2psipd.reg.cpu_s_per_10k]:-}" \
        "${R[kamailio.reg.cpu_s_per_10k]:-}") (target <= 0.50)," \
        "with digest $(ratio "${R[p2psipd.auth.cpu_s_per_10k]:-}" \
        "${R[kamailio.auth.cpu_s_per_10k]:-}")," \
        "per call $(ratio "${R[p2psipd.call.cpu_s_per_10k]:-}" \
        "${R[kamailio.call.cpu_s_per_10k]:-}") (target <= 0.50)," \
        "memory per binding $(ratio "${R[p2psipd.mem_kb_per_10k_bindings]:-}" \
        "${R[kamailio.mem_kb_per_10k_bindings]:-}") (target <= 1.00)"
fi

# One JSON object, keys "server.test.metric".
json="{\"bench\":\"sip_server\",\"aors\":$AORS,\"cores\":$(nproc)"
json+=",\"kamailio_children\":$IT_KAMAILIO_CHILDREN"
for k in $(printf '%s\n' "${!R[@]}" | sort); do
    json+=",\"$k\":${R[$k]:-null}"
done
json+="}"
echo "$json"
# The response-time CDFs (bench/plot.sh); a missing gnuplot costs only the picture.
"$IT_SRC/bench/plot.sh" "$RESULTS" >&2 || it_log "bench/plot.sh failed: no PNG (scripts/deps.sh bench)"
IT_VERDICT=PASS
exit 0

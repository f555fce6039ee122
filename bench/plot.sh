#!/usr/bin/env bash
#
# plot.sh: draws the benchmarks' CSV files as PNG images, with gnuplot
# (scripts/deps.sh bench installs gnuplot-nox).
#
# Usage: bench/plot.sh [DIR]      (DIR: where the CSVs are and the PNGs go;
#                                 default bench/results)
#
# What it draws, each only when its CSV files are there (docs/BENCHMARKS.md):
#   overlay_cdf.png          bench_overlay.sh: latency CDFs of p2psipd beside
#                            dhtnode, four panels: get and put without churn, get and
#                            put under churn (overlay_{get,put,churn_get,churn_put}_
#                            {p2psipd,dhtnode}.csv, one sample in ms per line).
#   overlay_churn_bytes.png  bench_overlay.sh: bytes each host sent on the LAN per
#                            node and second during the churn, both systems
#                            (overlay_churn_bytes.csv: t_s,p2psipd,dhtnode).
#   sip_cdf.png              bench_sip_server.sh: response-time CDFs of p2psipd
#                            beside kamailio at the reference rates: REGISTER, REGISTER
#                            with digest, INVITE to 200 (sip_{reg,auth,call}_SERVER.csv).
# The overlay CDFs have a logarithmic x axis (the tails are what the benchmark
# compares); the SIP ones a linear one from 0, since sipp's response times come in
# steps of its coarse clock (4 ms here) and most are 0.
# Prints the PNGs it wrote; exits 1 when gnuplot is missing or fails, 0 otherwise
# (also when there was nothing to draw).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/results}
[ -d "$dir" ] || { echo "plot.sh: no directory $dir" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot missing (scripts/deps.sh bench)" >&2; exit 1; }
cd "$dir"

# lines FILE: samples in a one-column CSV.
lines() { grep -c '^[0-9]' "$1" || true; }

# cdf_curves PANEL STYLE SYSTEM... : the gnuplot plot arguments of one panel, a curve per
# SYSTEM whose file PANEL_SYSTEM.csv has samples (empty when none has).
declare -A colour=([p2psipd]='#1f5fbf' [dhtnode]='#d0651b' [kamailio]='#2a9d3a'
                   [kamailio-sqlite]='#8a3ab9')
cdf_curves() {
    local panel=$1 style=$2 s f out=""
    shift 2
    for s in "$@"; do
        f=${panel}_$s.csv
        [ -s "$f" ] && [ "$(lines "$f")" -gt 0 ] || continue
        [ -z "$out" ] || out+=", "
        out+="'$f' using 1:(1) smooth cnormal with $style lw 2 lc rgb '${colour[$s]}'"
        out+=" title '$s (n = $(lines "$f"))'"
    done
    echo "$out"
}

common='set terminal pngcairo size 1200,900 font "DejaVu Sans,10"
set datafile separator ","
set logscale x 10
set format x "%g"
set yrange [0:1]
set ytics 0.1
set grid xtics mxtics ytics
set key right bottom
set ylabel "fraction of operations at or below"
set xlabel "latency (ms)"'
wrote=()

# 1. The overlay: four panels.
panels=(get put churn_get churn_put)
titles=("get, no churn" "put, no churn" "get under churn" "put under churn")
script="$common
set output 'overlay_cdf.png'
set multiplot layout 2,2 title 'bench\\_overlay.sh: latency CDF, p2psipd beside dhtnode'"
any=0
for i in "${!panels[@]}"; do
    c=$(cdf_curves "overlay_${panels[i]}" lines p2psipd dhtnode)
    [ -n "$c" ] || continue
    any=1
    script+="
set title '${titles[i]}'
plot $c"
done
if [ "$any" = 1 ]; then
    gnuplot <<<"$script
unset multiplot" || { echo "plot.sh: gnuplot failed on overlay_cdf.png" >&2; exit 1; }
    wrote+=(overlay_cdf.png)
fi

# 2. Bytes per node over time under churn.
if [ -s overlay_churn_bytes.csv ]; then
    gnuplot <<EOF || { echo "plot.sh: gnuplot failed on overlay_churn_bytes.png" >&2; exit 1; }
set terminal pngcairo size 1000,500 font "DejaVu Sans,10"
set datafile separator ","
set output 'overlay_churn_bytes.png'
set title 'bench\\_overlay.sh: bytes sent on the LAN per node and second, during the churn'
set xlabel "time since the churn began (s)"
set ylabel "bytes/s per node (Ethernet frames)"
set yrange [0:*]
set grid
set key right top
plot 'overlay_churn_bytes.csv' using 1:2 with lines lw 2 lc rgb '${colour[p2psipd]}' title 'p2psipd', \
     '' using 1:3 with lines lw 2 lc rgb '${colour[dhtnode]}' title 'dhtnode'
EOF
    wrote+=(overlay_churn_bytes.png)
fi

# 3. The SIP server: one panel per test that has samples.
tests=(reg auth call)
stitles=("REGISTER to 200" "REGISTER, 401, REGISTER with digest, to 200" "INVITE to 200, through the proxy")
script="$common
set output 'sip_cdf.png'
set terminal pngcairo size 1500,500 font 'DejaVu Sans,10'
unset logscale x
set xrange [0:*]
set xlabel 'response time (ms; sipp measures in steps of its clock)'
set multiplot layout 1,3 title 'bench\\_sip\\_server.sh: response-time CDF at the reference rates, p2psipd beside kamailio'"
any=0
for i in "${!tests[@]}"; do
    c=$(cdf_curves "sip_${tests[i]}" steps p2psipd kamailio kamailio-sqlite)
    [ -n "$c" ] || continue
    any=1
    script+="
set title '${stitles[i]}'
plot $c"
done
if [ "$any" = 1 ]; then
    gnuplot <<<"$script
unset multiplot" || { echo "plot.sh: gnuplot failed on sip_cdf.png" >&2; exit 1; }
    wrote+=(sip_cdf.png)
fi

if [ ${#wrote[@]} -eq 0 ]; then
    echo "plot.sh: no benchmark CSV in $dir, nothing drawn"
else
    for p in "${wrote[@]}"; do echo "plot.sh: wrote $dir/$p"; done
fi

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
#   p2psip_cdf.png           bench_p2psip.sh: response-time CDFs of a p2psipd ring
#                            beside kamailio as one proxy: INVITE to 180 across the
#                            ring, REGISTER to 200 after the quorum put
#                            (p2psip_{call_setup,register}_{p2psipd,kamailio}.csv).
# Every figure is drawn by cdf_png (one panel per CSV pair) but the bytes over time.
# The overlay and p2psip CDFs have a logarithmic x axis (the tails are what the
# benchmarks compare); the sip_cdf ones a linear one from 0, since
# bench_sip_server.sh's sipp reads a coarse clock (4 ms steps here) and most samples
# are 0 (bench_p2psip.sh preloads bench/sipp_fine_clock.c into sipp: microseconds).
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

# cdf_png PNG LAYOUT SETTINGS TITLE STYLE "SYSTEM..." PANEL PANEL_TITLE [PANEL PANEL_TITLE...]:
# one figure PNG of CDF panels (gnuplot multiplot LAYOUT, "rows,columns"), one panel per
# PANEL with samples (cdf_curves PANEL STYLE SYSTEM...), SETTINGS (gnuplot commands)
# after $common.  Draws nothing when no panel has samples; fails when gnuplot does.
cdf_png() {
    local png=$1 layout=$2 settings=$3 title=$4 style=$5 systems=$6 c any=0 script
    shift 6
    script="$common
set output '$png'
$settings
set multiplot layout $layout title '$title'"
    while [ $# -ge 2 ]; do
        # shellcheck disable=SC2086 # systems: a list of words
        c=$(cdf_curves "$1" "$style" $systems)
        if [ -n "$c" ]; then
            any=1
            script+="
set title '$2'
plot $c"
        fi
        shift 2
    done
    [ "$any" = 1 ] || return 0
    gnuplot <<<"$script
unset multiplot" || { echo "plot.sh: gnuplot failed on $png" >&2; exit 1; }
    wrote+=("$png")
}

# 1. The overlay: four panels.
cdf_png overlay_cdf.png 2,2 "" 'bench\_overlay.sh: latency CDF, p2psipd beside dhtnode' \
    lines "p2psipd dhtnode" \
    overlay_get "get, no churn" overlay_put "put, no churn" \
    overlay_churn_get "get under churn" overlay_churn_put "put under churn"

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
cdf_png sip_cdf.png 1,3 "set terminal pngcairo size 1500,500 font 'DejaVu Sans,10'
unset logscale x
set xrange [0:*]
set xlabel 'response time (ms; sipp measures in steps of its clock)'" \
    'bench\_sip\_server.sh: response-time CDF at the reference rates, p2psipd beside kamailio' \
    steps "p2psipd kamailio kamailio-sqlite" \
    sip_reg "REGISTER to 200" sip_auth "REGISTER, 401, REGISTER with digest, to 200" \
    sip_call "INVITE to 200, through the proxy"

# 4. The whole system: calls across the ring, REGISTER with its quorum put.
cdf_png p2psip_cdf.png 1,2 "set terminal pngcairo size 1300,550 font 'DejaVu Sans,10'
set xlabel 'response time at the phone (ms; sipp with bench/sipp\\_fine\\_clock.c)'" \
    'bench\_p2psip.sh: response-time CDF, p2psipd ring beside kamailio as one proxy' \
    lines "p2psipd kamailio" \
    p2psip_call_setup "call setup, INVITE to 180 at the caller" \
    p2psip_register "REGISTER to 200 (p2psipd: after the quorum put)"

if [ ${#wrote[@]} -eq 0 ]; then
    echo "plot.sh: no benchmark CSV in $dir, nothing drawn"
else
    for p in "${wrote[@]}"; do echo "plot.sh: wrote $dir/$p"; done
fi

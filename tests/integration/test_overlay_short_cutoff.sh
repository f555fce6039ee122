#!/usr/bin/env bash
#
# test_overlay_short_cutoff.sh: a short cutoff ([p2p] cutoff, allowed down to 2 s)
# does not make healthy members call themselves cut off.  Leaves are pinged when not
# heard for 5 s; with a cutoff under 7 s the overlay pings them sooner (overlay/node.c,
# cutoff - 2 s, at least 1 s), so a live leaf is always heard within the cutoff.
#
# x1 (-s), x2, x3 with cutoff 3 s: a monitor polls the three every 0.5 s for 20 s and
# none may ever say isolated.  Then x3 is SIGKILLed: x1 and x2 still have each other,
# so neither may say isolated while they drop x3 from their leaf sets.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip python3

ovl_hosts_create 3 --no-multicast
ovl_ring_up 30 x1 x2 x3 -- --no-multicast --cutoff 3
for n in x1 x2 x3; do ovl_wait "$n" 20 "$n to have 2 leaves" "f('leaf_count') == 2"; done

it_start monitor "$OVL_PY" "$OVL_CTL_PY" monitor 20 "$(ovl_sock x1)" "$(ovl_sock x2)" "$(ovl_sock x3)"
it_wait_until 40 "the monitor's 20 s" eval '! it_alive monitor'
it_stop monitor
polls=$(grep -c 'isolated=' "$IT_TMP/monitor.log")
[ "$polls" -ge 60 ] || it_fail "the monitor polled only $polls times"
bad=$(grep -v 'isolated=false' "$IT_TMP/monitor.log" | head -n 3)
[ -z "$bad" ] || it_fail "a healthy member said it was cut off (or did not answer): $bad"
it_log "$polls polls over 20 s: no member ever isolated with cutoff 3 s"

it_start monitor2 "$OVL_PY" "$OVL_CTL_PY" monitor 60 "$(ovl_sock x1)" "$(ovl_sock x2)"
kill -9 "$(it_pid x3)" || it_fail "cannot kill x3"
for n in x1 x2; do ovl_wait "$n" 20 "$n to drop x3" "f('leaf_count') == 1"; done
it_stop monitor2
bad=$(grep -v 'isolated=false' "$IT_TMP/monitor2.log" | head -n 3)
[ -z "$bad" ] || it_fail "x1 or x2 said it was cut off after x3 died: $bad"
it_pass "cutoff 3 s: healthy members never isolated; x3's death noticed without a false cut-off"

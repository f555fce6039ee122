#!/usr/bin/env bash
#
# test_overlay_flood.sh: a flood of valid HS1 frames (right PSK: anyone holding the
# overlay secret, or replaying a genuine HS1, can make them) costs a member bounded
# memory and no service (docs/OVERLAY-WIRE.md: "the node should cap half-open
# handshakes"; overlay_node.h "Bounds").
#
# x1 (-s) on h1 and x2 on h2 form a ring.  tools/p2p_rogue flood on h3 sends 3000
# HS1s to x1, each with a fresh ephemeral key and index, never finishing one.
# Checks: x1 answered at least 64 of them (so they reached it) and its dropped_full
# grew by at least the HS2s beyond the 64 half-open slots (NODE_HALF_OPEN_MAX); no
# handshake completed; x1's resident memory grew by less than 16 MB; its log gained
# at most 3 lines; within 15 s its peer list is x2 alone again (half-open handshakes
# expire); x1 and x2 stay healthy members.  Then, while a second flood of 20000 HS1s
# runs, x3 on h4 given -S x1 becomes a member within 25 s; afterwards a genuine
# channel to x1 still comes up (p2p_rogue's normal run).
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip nft python3
ROGUE=$IT_BUILD/tests/integration/tools/p2p_rogue
[ -x "$ROGUE" ] || it_fail "p2p_rogue not built: $ROGUE (target p2p_rogue)"

ovl_hosts_create 4 --no-multicast
X1_IP=$(host_ip h1)
ovl_ring_start x1 x2
ovl_wait x2 25 "role member" "f('role') == 'member' and f('leaf_count') == 1"
ovl_wait x1 10 "x2 in its leaf set" "f('leaf_count') == 1"
X2=$(ovl_node_id x2)

rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$(it_pid x1)/status"; }
c0=$(ovl_ctl x1 counters) || it_fail "x1: counters failed"
rss0=$(rss_kb)
lines0=$(wc -l <"$IT_TMP/x1.log")
host_run h3 60 "$ROGUE" flood "$X1_IP" 7560 - 3000 >"$IT_TMP/flood1.out" 2>&1 ||
    it_fail "p2p_rogue flood failed: $(cat "$IT_TMP/flood1.out")"
hs1=$(awk '$1 == "hs1" {print $2}' "$IT_TMP/flood1.out")
hs2=$(awk '$1 == "hs2" {print $2}' "$IT_TMP/flood1.out")
it_log "flood: $hs1 HS1 sent, $hs2 HS2 back"
c1=$(ovl_ctl x1 counters) || it_fail "x1 does not answer counters after the flood"
rss1=$(rss_kb)
lines1=$(wc -l <"$IT_TMP/x1.log")
[ "${hs2:-0}" -ge 64 ] || it_fail "x1 answered only ${hs2:-?} of $hs1 HS1s (want >= 64: the flood did not reach it)"
"$OVL_PY" - "$c0" "$c1" "$hs2" <<'EOF' || it_fail "x1's counters after the flood"
import json, sys
c0, c1, hs2 = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
full = c1["dropped_full"] - c0["dropped_full"]
done = c1["handshakes_done"] - c0["handshakes_done"]
print("x1 dropped_full +%d (HS2s beyond 64 half-open: %d), handshakes_done +%d" % (full, hs2 - 64, done),
      file=sys.stderr)
sys.exit(0 if full >= hs2 - 64 and done == 0 else 1)
EOF
[ $((rss1 - rss0)) -lt 16384 ] || it_fail "x1's memory grew by $((rss1 - rss0)) kB during the flood ($rss0 -> $rss1)"
[ $((lines1 - lines0)) -le 3 ] || it_fail "x1 logged $((lines1 - lines0)) lines for the flood: $(tail -n 5 "$IT_TMP/x1.log")"
ovl_wait x1 15 "its peer list to be x2 alone again" "[p['id'] for p in r] == ['$X2']" peers
for n in x1 x2; do
    ovl_wait "$n" 5 "a healthy ring member" "f('role') in ('member', 'super-node') and f('isolated') is False and f('leaf_count') == 1"
done
it_log "flood 1: x1 +$((rss1 - rss0)) kB, $((lines1 - lines0)) log lines, half-open handshakes gone"

# A node joins while a longer flood runs.
host_start h3 flood2 "$ROGUE" flood "$X1_IP" 7560 - 20000
ovl_node_start h4 x3 --boot "$X1_IP:7560"
t0=$SECONDS
until "$OVL_PY" "$OVL_CTL_PY" wait "$(ovl_sock x3)" 1 "f('role') == 'member' and f('leaf_count') == 2" >/dev/null 2>&1; do
    [ $((SECONDS - t0)) -lt 25 ] || it_fail "x3 not a member 25 s after it started during the flood (flood still running: $(it_alive flood2 && echo yes || echo no)): x3 status $(ovl_ctl x3 status 2>&1 | head -c 400); x3 peers $(ovl_ctl x3 peers 2>&1); x1 handshakes_done $(ovl_field x1 counters handshakes_done 2>&1), dropped_nosession $(ovl_field x1 counters dropped_nosession 2>&1)"
done
flood_running=0
! it_alive flood2 || flood_running=1
it_wait_until 60 "the second flood to end" eval '! it_alive flood2'
it_stop flood2
[ "${IT_EXIT_OF[flood2]}" = 0 ] || it_fail "the second flood failed: $(cat "$IT_TMP/flood2.log")"
it_log "x3 joined while the second flood ran (still running when x3 was a member: $flood_running): $(tr '\n' ' ' <"$IT_TMP/flood2.log")"

host_run h3 60 "$ROGUE" "$X1_IP" 7560 - "$X2" 1 >"$IT_TMP/rogue.out" 2>&1 ||
    it_fail "no genuine channel to x1 after the floods: $(tr '\n' '|' <"$IT_TMP/rogue.out")"
for n in x1 x2 x3; do
    ovl_wait "$n" 10 "a healthy ring member" "f('role') in ('member', 'super-node') and f('isolated') is False and f('leaf_count') == 2"
done
it_pass "HS1 floods: bounded memory ($((rss1 - rss0)) kB), half-open slots capped and freed, x3 joined during a flood, handshakes still work"

#!/usr/bin/env bash
#
# test_overlay_forged.sh: a peer holding the overlay secret, with a genuine channel,
# cannot speak for another node, replay its own frames or upset a member with
# malformed ones (docs/OVERLAY-WIRE.md: Inner messages, Replay window).
#
# x1 (-s) on h1 and x2 on h2 form a ring.  tools/p2p_rogue on h3 opens a genuine
# channel to x1 as itself and then sends (5 rounds each):
#   - DHT PINGs and LEAFSET announcements whose header sender is x2's ID, the
#     LEAFSET naming x2 at the rogue's own address: x1's dropped_forged grows by
#     exactly their number;
#   - every DATA frame it sent, again, verbatim: dropped_replay grows by exactly that;
#   - random bytes, a truncated HS1, a bare DATA header, version 2, reserved flags:
#     dropped_malformed grows by exactly that;
#   - genuine frames with a flipped tag bit: dropped_auth grows by exactly that;
# and at the end the channel still answers a KEEPALIVE (so x1 processed all of the
# above before it).  x1's leaf set is what it was (x2 at x2's own address), no leaf
# or routing entry has the rogue's ID or address, x1 still answers status as a
# healthy super-node, and its log gained no line per bad packet (at most 3 lines for
# the ~50 bad frames: the log stays quiet above debug level).
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip nft python3
ROGUE=$IT_BUILD/tests/integration/tools/p2p_rogue
[ -x "$ROGUE" ] || it_fail "p2p_rogue not built: $ROGUE (target p2p_rogue)"

ovl_hosts_create 3
ovl_ring_start --multicast x1 x2
ovl_wait x1 10 "role super-node" "f('role') == 'super-node'"
ovl_wait x2 25 "role member" "f('role') == 'member' and f('leaf_count') >= 1"
ovl_wait x1 10 "x2 in x1's leaf set" "f('leaf_count') >= 1"
X2=$(ovl_node_id x2)
X2_ADDR=$(host_ip h2):7560

ls0=$(ovl_ctl x1 leafset) || it_fail "x1: leafset failed"
"$OVL_PY" - "$ls0" "$X2" "$X2_ADDR" <<'EOF' || it_fail "x1's leaf set before the rogue is not {x2 at $X2_ADDR}: $ls0"
import json, sys
ls, x2, addr = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
want = [{"id": x2, "addr": addr}]
sys.exit(0 if ls["preds"] == want and ls["succs"] == want else 1)
EOF
c0=$(ovl_ctl x1 counters) || it_fail "x1: counters failed"
lines0=$(wc -l <"$IT_TMP/x1.log")

host_run h3 60 "$ROGUE" "$(host_ip h1)" 7560 - "$X2" 5 >"$IT_TMP/rogue.out" 2>&1
st=$?
cat "$IT_TMP/rogue.out" >&2
[ "$st" -eq 0 ] || it_fail "p2p_rogue exit status $st (want 0: channel up, and still answered at the end); x1 counters: $(ovl_ctl x1 counters 2>&1 | head -c 900)"
grep -qx alive "$IT_TMP/rogue.out" || it_fail "p2p_rogue did not report 'alive'"
ROGUE_ID=$(awk '$1 == "id" {print $2}' "$IT_TMP/rogue.out")
ROGUE_ADDR=$(awk '$1 == "local" {print $2}' "$IT_TMP/rogue.out")
c1=$(ovl_ctl x1 counters) || it_fail "x1 does not answer counters after the rogue"
lines1=$(wc -l <"$IT_TMP/x1.log")

"$OVL_PY" - "$c0" "$c1" "$IT_TMP/rogue.out" <<'EOF' || it_fail "x1's drop counters do not match what the rogue sent"
import json, sys
c0, c1 = json.loads(sys.argv[1]), json.loads(sys.argv[2])
did = dict(l.split()[:2] for l in open(sys.argv[3]) if len(l.split()) == 2)
bad = []
for counter, what in (("dropped_forged", "forged"), ("dropped_replay", "replayed"),
                      ("dropped_malformed", "malformed"), ("dropped_auth", "tampered")):
    d, want = c1[counter] - c0[counter], int(did[what])
    print("x1 %s +%d, rogue %s %d" % (counter, d, what, want), file=sys.stderr)
    if d != want or want == 0:
        bad.append("%s +%d, want +%d" % (counter, d, want))
if bad:
    print("; ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF

# Routing state: as before, and nothing under the rogue's ID or at its address.
ls1=$(ovl_ctl x1 leafset) || it_fail "x1: leafset failed after the rogue"
routes1=$(ovl_ctl x1 routes) || it_fail "x1: routes failed after the rogue"
[ "$ls1" = "$ls0" ] || it_fail "x1's leaf set changed: before $ls0, after $ls1"
"$OVL_PY" - "$routes1" "$X2" "$X2_ADDR" "$ROGUE_ID" "$ROGUE_ADDR" <<'EOF' || it_fail "x1's routing table took the rogue's word: $routes1"
import json, sys
routes, x2, x2addr, rid, raddr = json.loads(sys.argv[1]), *sys.argv[2:]
for e in routes:
    if e["id"] == rid or e["addr"] == raddr or (e["id"] == x2 and e["addr"] != x2addr):
        sys.exit(1)
EOF
st=$(ovl_ctl x1 status) || it_fail "x1 does not answer status after the rogue"
"$OVL_PY" - "$st" <<'EOF' || it_fail "x1 is not a healthy super-node after the rogue: $st"
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["role"] == "super-node" and s["isolated"] is False and s["leaf_count"] >= 1 else 1)
EOF
it_alive x1 || it_fail "x1 died"
added=$((lines1 - lines0))
[ "$added" -le 3 ] || it_fail "x1 logged $added lines for the rogue's ~50 bad frames (one per packet?): $(tail -n "$added" "$IT_TMP/x1.log" | head -n 8)"
it_pass "forged sender IDs, replays, malformed and tampered frames dropped and counted exactly; x1's routing state untouched; $added log lines"

#!/usr/bin/env bash
#
# test_overlay_secret.sh: the overlay secret separates overlays on one LAN, and a node
# with the wrong secret gets no answer at all (docs/OVERLAY-WIRE.md, "PSK").
#
# One bridge, multicast on.  Ring X: x1 (-s, secret A) on h1 and x2 (secret A, found
# by multicast) on h2.  Ring Y: y1 (-s, secret B) on h3 and y2 (secret B) on h4.
# Checks:
#   - each ring is exactly its two members: every leaf set holds the other member of
#     its own ring and nothing else, and no node has a channel to the other ring;
#   - z (secret B, multicast off, -S x1) on h5 cannot join X, nor can z0 (no secret
#     at all: the public overlay; -P 7561 -p 5064) on h5: each stays seeking, says
#     isolated after its cutoff (3 s), has no super-node, cannot put;
#   - x1 answers none of their HS1 frames: a packet capture on h5 sees HS1s of each
#     go to x1 and nothing at all come back from x1, their own counters show no frame
#     in and no handshake done (handshakes_failed grows), x1's dropped_auth grows by
#     at least the HS1s seen and its handshakes_done does not move;
#   - nothing of them is stored in X (no peer with their IDs, no record they own).
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 5
A=$(ovl_secret_file ringA "secret-of-ring-A-$$")
B=$(ovl_secret_file ringB "secret-of-ring-B-$$")
X1_IP=$(host_ip h1)

ovl_node_start h1 x1 --server --secret "$A"
ovl_node_start h3 y1 --server --secret "$B"
ovl_node_start h2 x2 --secret "$A"
ovl_node_start h4 y2 --secret "$B"
for n in x1 y1; do ovl_wait "$n" 10 "role super-node" "f('role') == 'super-node'"; done
for n in x2 y2; do ovl_wait "$n" 25 "role member" "f('role') == 'member' and f('leaf_count') >= 1"; done

declare -A ID=()
for n in x1 x2 y1 y2; do ID[$n]=$(ovl_node_id "$n"); done

# leaf_exactly NODE OTHER: NODE's leaf set is OTHER on both sides and nothing else,
# and NODE has channels to no node but OTHER.
leaf_exactly() {
    local node=$1 other=$2 ls peers
    ls=$(ovl_ctl "$node" leafset) || it_fail "$node: leafset failed"
    "$OVL_PY" - "$ls" "${ID[$other]}" <<'EOF' || it_fail "$node's leaf set is not exactly {$other}: $ls"
import json, sys
ls, other = json.loads(sys.argv[1]), sys.argv[2]
sides = [[p["id"] for p in ls["preds"]], [p["id"] for p in ls["succs"]]]
sys.exit(0 if sides == [[other], [other]] else 1)
EOF
    peers=$(ovl_ctl "$node" peers) || it_fail "$node: peers failed"
    "$OVL_PY" - "$peers" "${ID[$other]}" <<'EOF' || it_fail "$node has a channel to a node other than $other: $peers"
import json, sys
ids = {p["id"] for p in json.loads(sys.argv[1])}
sys.exit(0 if ids <= {sys.argv[2]} else 1)
EOF
}
rings_apart() {
    leaf_exactly x1 x2
    leaf_exactly x2 x1
    leaf_exactly y1 y2
    leaf_exactly y2 y1
}
rings_apart
it_log "rings X (x1 x2) and Y (y1 y2) formed on one LAN, apart"

# Multicast is quiet once nobody seeks: from here on x1's dropped_auth moves only for
# what z and z0 send it.
auth0=$(ovl_counter x1 dropped_auth)
hsdone0=$(ovl_counter x1 handshakes_done)

host_start h5 sniff "$OVL_PY" "$OVL_TOOLS/udp_sniff.py" eth0 60 7560
it_wait_log sniff '^ready' 10
INTRUDERS=(z z0)
declare -A ZPORT=([z]=7560 [z0]=7561)
ovl_node_start h5 z --secret "$B" --p2p-port 7560 --no-multicast --boot "$X1_IP:7560" --cutoff 3
ovl_node_start h5 z0 --p2p-port 7561 --sip-port 5064 --no-multicast --boot "$X1_IP:7560" --cutoff 3
for z in "${INTRUDERS[@]}"; do ID[$z]=$(ovl_node_id "$z"); done

for z in "${INTRUDERS[@]}"; do
    # At least two rounds of handshake attempts (4 HS1s each, the last one given up).
    ovl_wait "$z" 20 "a failed handshake and a second one started" \
        "f('handshakes_failed') >= 1 and f('handshakes_started') >= 2" counters
    ovl_wait "$z" 10 "isolated: true" "f('isolated') is True"
    # Well past promote_after (2 s) and the cutoff: still seeking.
    ovl_wait "$z" 5 "uptime 6 s" "f('overlay_uptime_s') >= 6"
    st=$(ovl_ctl "$z" status) || it_fail "$z: status failed"
    "$OVL_PY" - "$st" <<'EOF' || it_fail "$z is not a lone seeker without a super-node: $st"
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s.get("role") == "seeking" and s.get("isolated") is True and "super" not in s
         and s.get("peer_count") == 0 else 1)
EOF
    if ovl_ctl "$z" put z-key z-value >/dev/null 2>&1; then it_fail "$z (not X's secret) could put a record"; fi
    if ovl_ctl "$z" leafset >/dev/null 2>&1; then it_fail "$z (not X's secret) has a leaf set"; fi
    zc=$(ovl_ctl "$z" counters) || it_fail "$z: counters failed"
    "$OVL_PY" - "$zc" <<'EOF' || it_fail "$z got an answer from ring X: $zc"
import json, sys
c = json.loads(sys.argv[1])
sys.exit(0 if c["frames_in"] == 0 and c["handshakes_done"] == 0 and c["frames_out"] >= 2 else 1)
EOF
done
for z in "${INTRUDERS[@]}"; do it_stop "$z"; done
it_stop sniff

hs1_from() {
    awk -v x="$X1_IP" -v p="$1" '$1 == "out" && $3 == p && $4 == x && $5 == 7560 && $7 == "b5" && $9 == "01"' \
        "$IT_TMP/sniff.log" | wc -l
}
hs1_z=$(hs1_from "${ZPORT[z]}")
hs1_z0=$(hs1_from "${ZPORT[z0]}")
from_x1=$(awk -v x="$X1_IP" '$1 == "in" && $2 == x' "$IT_TMP/sniff.log" | wc -l)
[ "$hs1_z" -ge 2 ] && [ "$hs1_z0" -ge 2 ] ||
    it_fail "the capture on h5 saw $hs1_z HS1 frames from z and $hs1_z0 from z0 to x1, want >= 2 each"
[ "$from_x1" -eq 0 ] || it_fail "x1 answered: $from_x1 datagrams from $X1_IP reached h5: $(grep " $X1_IP " "$IT_TMP/sniff.log" | head -5)"

auth1=$(ovl_counter x1 dropped_auth)
hsdone1=$(ovl_counter x1 handshakes_done)
[ $((auth1 - auth0)) -ge $((hs1_z + hs1_z0)) ] ||
    it_fail "x1's dropped_auth grew by $((auth1 - auth0)), want >= $((hs1_z + hs1_z0)) (the HS1 frames of z and z0)"
[ "$hsdone1" -eq "$hsdone0" ] || it_fail "x1 completed $((hsdone1 - hsdone0)) handshakes while z and z0 knocked"

# Nothing of them in X: no channel, no record owned by their keys.
for n in x1 x2; do
    peers=$(ovl_ctl "$n" peers) || it_fail "$n: peers failed"
    recs=$(ovl_ctl "$n" records) || it_fail "$n: records failed"
    for z in "${INTRUDERS[@]}"; do
        ! grep -q "${ID[$z]}" <<<"$peers" || it_fail "$n knows $z: $peers"
        "$OVL_PY" - "$recs" "${ID[$z]}" <<'EOF' || it_fail "$n stores a record of $z: $recs"
import hashlib, json, sys
recs, z = json.loads(sys.argv[1]), sys.argv[2]
owners = {hashlib.blake2b(bytes.fromhex(r["owner"]), digest_size=20).hexdigest() for r in recs}
sys.exit(1 if z in owners else 0)
EOF
    done
done
rings_apart
for n in x1 x2 y1 y2; do
    [ "$(ovl_field "$n" status isolated)" = false ] || it_fail "$n says it is isolated"
done
it_pass "two overlays on one LAN stay apart; nodes with the wrong secret or none got no answer ($hs1_z + $hs1_z0 HS1 frames, x1 dropped_auth +$((auth1 - auth0)))"

#!/usr/bin/env bash
#
# test_p2psip_nat_pair.sh: two nodes behind two different NATs, clients of two
# different super-nodes, reach each other over pipes (issue 9: a call between phones
# on two such hosts).  A client knows no address of the other's super-node and sits in
# no ring, so it finds it by a lookup through its own super-node (overlay/node.c,
# pipe_forward), opens a channel to it from behind its NAT, and that super-node relays
# to its client.
#
# n1 (-s) on h1, n2 on h2: members.  c3 on h3 behind one NAT router (-S n1 only), c4 on
# h4 behind another (-S n2 only): c3 a client of n1, c4 of n2.  Checks: a pipe echo from
# c3 to c4 through c4's super-node n2 comes back (from c4, relayed by n2), and one from
# c4 to c3 through n1; n2 and n1 count the relaying.  Then a call: alice's phone on h3
# calls bob's on h4 (both loopback-only, tools/mini_ua.py): set up, RTP both ways
# through the anchoring nodes, BYE answered.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 4 --no-multicast
hosts_nat h3
ovl_hosts_nat h4
ovl_ring_up 30 n1 n2 -- --no-multicast
declare -A ID=()
for n in n1 n2; do ID[$n]=$(ovl_node_id "$n"); done
ovl_node_start h3 c3 --boot "$(host_ip h1):7560" --no-multicast
ovl_node_start h4 c4 --boot "$(host_ip h2):7560" --no-multicast
ovl_wait c3 20 "c3 a client of n1" "f('role') == 'client' and (f('super') or {}).get('id') == '${ID[n1]}'"
ovl_wait c4 20 "c4 a client of n2" "f('role') == 'client' and (f('super') or {}).get('id') == '${ID[n2]}'"
for n in c3 c4; do ID[$n]=$(ovl_node_id "$n"); done

ping_via() { # ping_via FROM TO VIA
    local pong
    pong=$(ovl_ctl "$1" pipe-ping "${ID[$2]}" --via "${ID[$3]}" --timeout 8) ||
        it_fail "pipe-ping $1 -> $2 via $3 failed: $pong"
    "$OVL_PY" - "$pong" "${ID[$2]}" "${ID[$3]}" <<'PY' || it_fail "pipe-ping $1 -> $2 via $3: wrong answer $pong"
import json, sys
r, to, via = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.exit(0 if r.get("from") == to and r.get("relayed_by") == via else 1)
PY
    it_log "pipe echo $1 -> $2 via $3: $pong"
}
r2=$(ovl_counter n2 relayed)
ping_via c3 c4 n2
[ "$(ovl_counter n2 relayed)" -gt "$r2" ] || it_fail "n2 relayed nothing"
r1=$(ovl_counter n1 relayed)
ping_via c4 c3 n1
[ "$(ovl_counter n1 relayed)" -gt "$r1" ] || it_fail "n1 relayed nothing"
p2psip_ua_call h4 h3
it_pass "clients of two super-nodes behind two NATs reach each other over pipes, and call"

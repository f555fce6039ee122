#!/usr/bin/env bash
#
# test_overlay_ipv6.sh: the overlay over IPv6 (docs/OVERLAY-WIRE.md: addresses of 18
# bytes; overlay_node.h: the advertised address is the local one toward the
# super-node).
#
# Hosts h1..h3 on an IPv6-only LAN (hosts.sh --ipv6, then their IPv4 addresses
# removed), multicast off (IPv6 discovery is not implemented: an IPv6 node is given
# -S).  n1 (-s) on h1; n2 and n3 given -S [2001:2::11]:7560.  Checks: all three
# advertise their IPv6 address ([2001:2::1X]:7560), n2 and n3 become members; every
# leaf set is exactly the two others, each at its IPv6 address; a put on n2 is read back on n3 and on n1; a pipe-ping n3 -> n2 is
# answered.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 3 --ipv6 --no-multicast
# An IPv6-only LAN: the hosts' IPv4 addresses go (loopback keeps 127.0.0.1 for SIP).
for h in h1 h2 h3; do host_addr_del "$h" "$(host_ip "$h")"; done
BOOT="[$(host_ip6 h1)]:7560"
ovl_node_start h1 n1 --server
ovl_node_start h2 n2 --boot "$BOOT" --no-multicast
ovl_node_start h3 n3 --boot "$BOOT" --no-multicast
declare -A ID=() ADDR=()
for n in n2 n3; do
    h=h${n#n}
    ovl_wait "$n" 25 "a member advertising [$(host_ip6 "$h")]:7560" \
        "f('role') == 'member' and f('advertised') == '[$(host_ip6 "$h")]:7560'"
done
ovl_wait n1 5 "n1 advertising [$(host_ip6 h1)]:7560" "f('advertised') == '[$(host_ip6 h1)]:7560'"
for n in n1 n2 n3; do
    ID[$n]=$(ovl_node_id "$n")
    ADDR[$n]="[$(host_ip6 "h${n#n}")]:7560"
done
for n in n1 n2 n3; do
    ovl_wait "$n" 20 "2 leaves" "f('leaf_count') == 2"
    ls=$(ovl_ctl "$n" leafset) || it_fail "$n: leafset failed"
    want=()
    for o in n1 n2 n3; do [ "$o" = "$n" ] || want+=("${ID[$o]}=${ADDR[$o]}"); done
    "$OVL_PY" - "$ls" "${want[@]}" <<'EOF' || it_fail "$n's leaf set is not the two others at their IPv6 addresses: $ls; want ${want[*]}"
import json, sys
ls = json.loads(sys.argv[1])
want = dict(w.split("=", 1) for w in sys.argv[2:])
got = {p["id"]: p["addr"] for p in ls["preds"] + ls["succs"]}
sys.exit(0 if got == want else 1)
EOF
done
it_log "ring of 3 over IPv6; leaf sets carry IPv6 addresses"

ovl_ctl n2 put v6-key "stored over IPv6" >/dev/null || it_fail "put on n2 failed: $(ovl_ctl n2 put v6-key x 2>&1)"
for n in n3 n1; do
    got=$(ovl_ctl "$n" get v6-key) || it_fail "get on $n failed: $(ovl_ctl "$n" get v6-key 2>&1)"
    "$OVL_PY" -c 'import json,sys; sys.exit(0 if [r["value"] for r in json.loads(sys.argv[1])] == ["stored over IPv6"] else 1)' "$got" ||
        it_fail "get v6-key on $n: $got"
done
pong=$(ovl_ctl n3 pipe-ping "${ID[n2]}" --timeout 8) || it_fail "pipe-ping n3 -> n2 failed: $(ovl_ctl n3 pipe-ping "${ID[n2]}" --timeout 8 2>&1)"
"$OVL_PY" -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]).get("from") == sys.argv[2] else 1)' "$pong" "${ID[n2]}" ||
    it_fail "pipe-ping n3 -> n2: wrong answer $pong"
it_pass "3 nodes over IPv6: members, exact leaf sets with IPv6 addresses, put/get, pipe-ping"

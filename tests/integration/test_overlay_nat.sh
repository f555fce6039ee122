#!/usr/bin/env bash
#
# test_overlay_nat.sh: a node behind a NAT stays a client of its super-node and still
# uses the overlay through it (overlay_node.h "Roles": the reachability probe).
#
# h3 is behind a masquerading router (hosts_nat, before its node starts).  n1 (-s)
# on h1, n2 on h2 (a member), n3 on h3 given -S h1:7560, promote_after 2 s.  Checks:
#   - n3 becomes a client with a super-node (status "super", one of n1/n2) and stays
#     one: a monitor polls its role every 0.5 s until the super-nodes have sent at
#     least two more probes for it (first probe plus two 20 s retries), and n3 never
#     says member, never isolated; no probe for it succeeded (probes_ok), n3 is in
#     no leaf set, and has no leaf set of its own;
#   - put on n3, get on n2, and the reverse, return the values;
#   - a pipe datagram (p2psipctl pipe-ping, the echo service) from the member that is
#     not n3's super-node reaches n3 through the super-node (--via) and its echo
#     comes back: "from" is n3, "relayed_by" is the super-node, whose relayed
#     counter grew; and pipe-pings from n3 to n1 and to n2 are answered by them.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 3
ovl_hosts_nat h3
ovl_node_start h1 n1 --server
ovl_node_start h2 n2
ovl_wait n2 25 "role member" "f('role') == 'member' and f('leaf_count') >= 1"
probes0=$(($(ovl_counter n1 probes_sent) + $(ovl_counter n2 probes_sent)))
ok0=$(($(ovl_counter n1 probes_ok) + $(ovl_counter n2 probes_ok)))
ovl_node_start h3 n3 --boot "$(host_ip h1):7560"
ovl_wait n3 15 "role client with a super-node" "f('role') == 'client' and f('super') is not None"
declare -A ID=()
for n in n1 n2 n3; do ID[$n]=$(ovl_node_id "$n"); done
SUPER_ID=$("$OVL_PY" -c 'import json,sys; print(json.loads(sys.argv[1])["super"]["id"])' "$(ovl_ctl n3 status)") ||
    it_fail "n3's status has no super id"
case $SUPER_ID in
"${ID[n1]}") SUPER=n1 OTHER=n2 ;;
"${ID[n2]}") SUPER=n2 OTHER=n1 ;;
*) it_fail "n3's super-node $SUPER_ID is neither n1 nor n2" ;;
esac
it_log "n3 is a client of $SUPER"

it_start monitor "$OVL_PY" "$OVL_CTL_PY" monitor 70 "$(ovl_sock n3)"
it_wait_log monitor 'isolated=' 10

# DHT use through the super-node, both ways.
put_get() {
    local from=$1 to=$2 key=$3 val=$4 got
    ovl_ctl "$from" put "$key" "$val" >/dev/null || it_fail "put $key on $from failed: $(ovl_ctl "$from" put "$key" "$val" 2>&1)"
    got=$(ovl_ctl "$to" get "$key") || it_fail "get $key on $to failed"
    "$OVL_PY" - "$got" "$val" <<'EOF' || it_fail "get $key on $to: $got, want the value '$val'"
import json, sys
sys.exit(0 if [r.get("value") for r in json.loads(sys.argv[1])] == [sys.argv[2]] else 1)
EOF
}
put_get n3 n2 key-from-n3 "value from behind the NAT"
put_get n2 n3 key-from-n2 "value for the client"
put_get n3 n3 key-from-n3 "value from behind the NAT"
it_log "put/get from n3 through $SUPER work both ways"

# A pipe datagram from the other member reaches n3 through its super-node.
rel0=$(ovl_counter "$SUPER" relayed)
pong=$(ovl_ctl "$OTHER" pipe-ping "${ID[n3]}" --via "$SUPER_ID" --timeout 8) ||
    it_fail "pipe-ping from $OTHER to n3 via $SUPER failed: $(ovl_ctl "$OTHER" pipe-ping "${ID[n3]}" --via "$SUPER_ID" --timeout 8 2>&1)"
"$OVL_PY" - "$pong" "${ID[n3]}" "$SUPER_ID" <<'EOF' || it_fail "pipe-ping answer from the wrong node or not relayed: $pong"
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r.get("from") == sys.argv[2] and r.get("relayed_by") == sys.argv[3] else 1)
EOF
rel1=$(ovl_counter "$SUPER" relayed)
[ "$rel1" -gt "$rel0" ] || it_fail "$SUPER's relayed counter did not grow ($rel0 -> $rel1)"
it_log "pipe datagram $OTHER -> n3 relayed by $SUPER: $pong"
# And from n3 out to each member (n3 opens its channels from behind the NAT).
for n in n1 n2; do
    pong=$(ovl_ctl n3 pipe-ping "${ID[$n]}" --timeout 8) ||
        it_fail "pipe-ping from n3 to $n failed: $(ovl_ctl n3 pipe-ping "${ID[$n]}" --timeout 8 2>&1)"
    "$OVL_PY" - "$pong" "${ID[$n]}" <<'EOF2' || it_fail "pipe-ping n3 -> $n: answer from the wrong node: $pong"
import json, sys
sys.exit(0 if json.loads(sys.argv[1]).get("from") == sys.argv[2] else 1)
EOF2
done

# Still a client after two more probe rounds (NODE_PROBE_RETRY_MS 20 s each).
probes_at_least() { [ $(($(ovl_counter n1 probes_sent) + $(ovl_counter n2 probes_sent))) -ge "$1" ]; }
it_wait_until 55 "two probe retries for n3 (probes_sent of n1 + n2 >= $((probes0 + 3)))" \
    probes_at_least $((probes0 + 3))
ovl_wait n3 2 "role client" "f('role') == 'client' and f('super') is not None and f('isolated') is False"
it_stop monitor
polls=$(grep -c 'isolated=' "$IT_TMP/monitor.log")
[ "$polls" -ge 40 ] || it_fail "the monitor polled n3 only $polls times"
bad=$(grep -v 'isolated=false role=client' "$IT_TMP/monitor.log" | head -n 3)
[ -z "$bad" ] || it_fail "n3 was not a healthy client throughout: $bad"
ok1=$(($(ovl_counter n1 probes_ok) + $(ovl_counter n2 probes_ok)))
[ "$ok1" -eq "$ok0" ] || it_fail "a probe through the NAT succeeded ($ok0 -> $ok1 probes_ok)"
for n in n1 n2; do
    ! ovl_ctl "$n" leafset | grep -q "${ID[n3]}" || it_fail "n3 (a client) is in $n's leaf set"
done
if ovl_ctl n3 leafset >/dev/null 2>&1; then it_fail "n3 (a client) has a leaf set"; fi
it_pass "n3 behind NAT stays a client of $SUPER ($polls polls), put/get both ways, pipe datagram relayed"

#!/usr/bin/env bash
#
# test_overlay_failover.sh: a client whose super-node dies attaches to another member
# and goes on using the overlay (overlay_node.h "Health": a client is cut off when
# its super-node has been silent for cutoff, and seeks again).
#
# n1 (-s) on h1, n2 on h2, n3 on h3: ring members.  c on h4, behind a NAT (so it
# stays a client and hears no multicast), is given -S h1:7560,h2:7560, cutoff 4 s.
# c attaches to one of n1/n2 (its super-node S) and puts a record.  S is SIGKILLed.
# Checks: within 25 s c is again a healthy client (isolated: false) of a live member;
# the record it put is still read back through the new super-node; a new put from c
# is read back from a member; a pipe-ping from a member reaches c relayed by its new
# super-node; and the ring's survivors stay healthy members.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 4
ovl_hosts_nat h4
ovl_ring_start --multicast n1 n2 n3
for n in n2 n3; do ovl_wait "$n" 25 "role member" "f('role') == 'member' and f('leaf_count') == 2"; done
ovl_node_start h4 c --boot "$(host_ip h1):7560,$(host_ip h2):7560" --cutoff 4
ovl_wait c 15 "role client with a super-node" "f('role') == 'client' and f('super') is not None"
declare -A ID=() NAME_OF=()
for n in n1 n2 n3 c; do
    ID[$n]=$(ovl_node_id "$n")
    NAME_OF[${ID[$n]}]=$n
done
super_of_c() {
    "$OVL_PY" -c 'import json,sys; s=json.loads(sys.argv[1]).get("super"); print(s["id"] if s else "")' \
        "$(ovl_ctl c status)"
}
S=${NAME_OF[$(super_of_c)]:-}
[ -n "$S" ] || it_fail "c's super-node is not one of the members"
it_log "c is a client of $S"

get_is() {
    local node=$1 key=$2 val=$3 got
    got=$(ovl_ctl "$node" get "$key") || it_fail "get $key on $node failed: $(ovl_ctl "$node" get "$key" 2>&1)"
    "$OVL_PY" - "$got" "$val" <<'EOF' || it_fail "get $key on $node: $got, want '$val'"
import json, sys
sys.exit(0 if [r.get("value") for r in json.loads(sys.argv[1])] == [sys.argv[2]] else 1)
EOF
}
ovl_ctl c put before-failover "put by c through $S" >/dev/null || it_fail "put from c failed"
get_is n3 before-failover "put by c through $S"

it_stop "$S" KILL
t0=$SECONDS
survivors=()
for n in n1 n2 n3; do [ "$n" = "$S" ] || survivors+=("$n"); done
ovl_wait c 25 "a healthy client of a live member after $S died" \
    "f('role') == 'client' and f('isolated') is False and f('super') is not None and f('super')['id'] != '${ID[$S]}'"
S2=${NAME_OF[$(super_of_c)]:-}
case " ${survivors[*]} " in *" $S2 "*) ;; *) it_fail "c's new super-node '$S2' is not a survivor (${survivors[*]})" ;; esac
it_log "c is a client of $S2 $((SECONDS - t0)) s after $S was killed"

get_is c before-failover "put by c through $S"
ovl_ctl c put after-failover "put by c through $S2" >/dev/null ||
    it_fail "put from c after the failover failed: $(ovl_ctl c put after-failover x 2>&1)"
for n in "${survivors[@]}"; do get_is "$n" after-failover "put by c through $S2"; done
other=${survivors[0]}
[ "$other" != "$S2" ] || other=${survivors[1]}
pong=$(ovl_ctl "$other" pipe-ping "${ID[c]}" --via "${ID[$S2]}" --timeout 8) ||
    it_fail "pipe-ping $other -> c via $S2 failed: $(ovl_ctl "$other" pipe-ping "${ID[c]}" --via "${ID[$S2]}" --timeout 8 2>&1)"
"$OVL_PY" - "$pong" "${ID[c]}" "${ID[$S2]}" <<'EOF' || it_fail "pipe-ping $other -> c via $S2: wrong answer $pong"
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r.get("from") == sys.argv[2] and r.get("relayed_by") == sys.argv[3] else 1)
EOF
for n in "${survivors[@]}"; do
    ovl_wait "$n" 20 "a healthy member with 1 leaf" \
        "f('role') in ('member', 'super-node') and f('isolated') is False and f('leaf_count') == 1"
done
it_pass "c failed over from $S to $S2; its record, a new put and a relayed pipe-ping work"

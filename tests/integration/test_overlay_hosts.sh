#!/usr/bin/env bash
# test_overlay_hosts.sh: three hosts form one ring, by multicast and by -S, and a
# restarted node comes back with its identity through its saved peers.
#
# Part 1: h1 runs `p2psipd -s`; h2 and h3 are started with neither -S nor -P, so they
# must find h1 by LAN multicast.  All three become ring members, every leaf set holds
# the two others, and a record put on h2 is read on h3.
# Part 2: the same on a LAN that forwards no multicast, with -S h1:7560 instead.
# Part 3: h3 is stopped (SIGTERM) and started again on the same data directory with
# -P (no multicast) and no -S: it has the same node ID and rejoins through the peers
# it saved, and the record is still readable from it.
source "$(dirname "$0")/hosts.sh"
it_begin "$@"

CTL=$IT_BUILD/p2psipd/p2psipctl
[ -x "$CTL" ] || it_fail "p2psipctl not built"
printf '[p2p]\npromote_after = 2\n' >"$IT_TMP/fast.conf"

ctl() { # ctl H CMD... : p2psipctl --json against host H's node
    local h=$1
    shift
    host_exec "$h" "$CTL" --control "$IT_TMP/$h/control.sock" --json "$@"
}

json() { # json FIELD: reads a JSON document on stdin, prints FIELD (a.b.c)
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1"
}

start_node() { # start_node H NAME ARGS...
    local h=$1 name=$2
    shift 2
    mkdir -p "$IT_TMP/$h"
    host_start "$h" "$name" "$IT_BUILD/p2psipd/p2psipd" --data-dir "$IT_TMP/$h" \
        --config "$IT_TMP/fast.conf" -d "$@"
}

is_member() { # is_member H: the node on H is in the ring
    local role
    role=$(ctl "$1" status 2>/dev/null | json role 2>/dev/null) || return 1
    [ "$role" = member ] || [ "$role" = super-node ]
}

leaves_ok() { # leaves_ok H N: H's leaf set holds exactly the N other nodes' IDs
    local h=$1 want=$2 ids
    ids=$(ctl "$h" leafset 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(sorted({p["id"] for p in d["preds"] + d["succs"]})))') || return 1
    [ "$ids" = "$want" ]
}

others() { # others H...: the sorted IDs of the given hosts' nodes
    local h out=()
    for h in "$@"; do out+=("${ID[$h]}"); done
    printf '%s\n' "${out[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

got_value() { # got_value H KEY VALUE
    local v
    v=$(ctl "$1" get "$2" 2>/dev/null | json 0.value 2>/dev/null) || return 1
    [ "$v" = "$3" ]
}

declare -A ID=()

form_ring() { # form_ring MODE: checks three hosts become one ring
    local mode=$1 h
    for h in h1 h2 h3; do
        it_wait_until 40 "$h to join the ring ($mode)" is_member "$h"
        ID[$h]=$(ctl "$h" status | json node_id)
    done
    it_wait_until 20 "h1's leaf set ($mode)" leaves_ok h1 "$(others h2 h3)"
    it_wait_until 20 "h2's leaf set ($mode)" leaves_ok h2 "$(others h1 h3)"
    it_wait_until 20 "h3's leaf set ($mode)" leaves_ok h3 "$(others h1 h2)"
    ctl h2 put "alice-$mode" "at-h2-$mode" --ttl 600 >/dev/null || it_fail "put on h2 ($mode)"
    it_wait_until 10 "h3 to read the record put on h2 ($mode)" \
        got_value h3 "alice-$mode" "at-h2-$mode"
    it_log "$mode: one ring of 3, leaf sets right, a put on h2 read on h3"
}

# ---- part 1: multicast discovery ----
hosts_create 3
start_node h1 n1 -s
it_wait_until 20 "h1 to start its ring" is_member h1
start_node h2 n2
start_node h3 n3
form_ring multicast
[ "$(ctl h2 status | json role)" = member ] || it_fail "h2 is not a member"
ctl h2 counters | json discover_recv | grep -qv '^0$' || it_fail "h2 got no discovery answer"
for n in n1 n2 n3; do
    it_stop "$n"
    [ "${IT_EXIT_OF[$n]}" = 0 ] || it_fail "$n did not stop cleanly (${IT_EXIT_OF[$n]})"
done
hosts_destroy

# ---- part 2: no multicast on the LAN, -S instead ----
rm -rf "$IT_TMP/h1" "$IT_TMP/h2" "$IT_TMP/h3"
hosts_create 3 --no-multicast
start_node h1 m1 -s
it_wait_until 20 "h1 to start its ring" is_member h1
start_node h2 m2 -S "$(host_ip h1):7560"
start_node h3 m3 -S "$(host_ip h1):7560"
form_ring unicast

# ---- part 3: restart through saved peers ----
old_id=${ID[h3]}
it_stop m3
[ "${IT_EXIT_OF[m3]}" = 0 ] || it_fail "m3 did not stop cleanly (${IT_EXIT_OF[m3]})"
start_node h3 m3b -P 7560
it_wait_until 40 "h3 to rejoin through its saved peers" is_member h3
[ "$(ctl h3 status | json node_id)" = "$old_id" ] || it_fail "h3 has a new node ID after restart"
it_wait_until 20 "h3's leaf set after restart" leaves_ok h3 "$(others h1 h2)"
it_wait_until 10 "h3 to read the record after restart" got_value h3 alice-unicast at-h2-unicast
grep -q 'saved peers' "$IT_TMP/m3b.log" || it_fail "no saved-peers line in the restart log"
grep -Eq '0 bootstrap, [1-9][0-9]* saved peers' "$IT_TMP/m3b.log" ||
    it_fail "the restarted node had no saved peers"

it_pass "three hosts: one ring by multicast and by -S; restart keeps the ID and rejoins via saved peers"

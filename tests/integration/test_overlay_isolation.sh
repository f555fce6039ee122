#!/usr/bin/env bash
#
# test_overlay_isolation.sh: a node cut off from the ring says so, and its registrar
# answers 503 until the ring answers again (overlay_node.h "Health", [p2p] cutoff).
#
# n1 (-s) on h1, n2 on h2, n3 on h3 (multicast), all ring members, default cutoff
# (10 s).  A phone on h3 (tools/sip_register.py on 127.0.0.1:5062) registers: 200.
# h3's link is cut (carrier down): within 12 s n3 says isolated: true, and a
# REGISTER on h3 gets 503.  The link comes back: within 12 s n3 says isolated: false
# again and a REGISTER gets 200; n3 is a member again and back in n1's and n2's leaf
# sets.  Then the same with a silent partition (the link stays up, every frame is
# dropped both ways: nothing tells n3 but the silence of its peers), kept until n1
# and n2 have dropped n3 from their leaf sets, so that n3 has to rejoin.  Throughout, a monitor polls n1 and n2 every 0.5 s: both answer every time
# and never say isolated (they still have each other).
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 3
ovl_ring_start --multicast n1 n2 n3
for n in n1 n2 n3; do
    ovl_wait "$n" 25 "a ring member with 2 leaves, not isolated" \
        "f('role') in ('member', 'super-node') and f('leaf_count') == 2 and f('isolated') is False"
done

# register H USER: prints the final status line of a REGISTER from H's loopback.
register() {
    host_run "$1" 15 "$OVL_PY" "$OVL_TOOLS/sip_register.py" 127.0.0.1 5062 "$2"
}
expect_register() {
    local got
    got=$(register "$1" "$2") || it_fail "REGISTER on $1 got no final response ($got)"
    [ "${got%% *}" = "$3" ] || it_fail "REGISTER on $1 $4: got '$got', want $3"
    it_log "REGISTER on $1 $4: $got"
}
expect_register h3 alice 200 "before the cut"

it_start monitor "$OVL_PY" "$OVL_CTL_PY" monitor 100 "$(ovl_sock n1)" "$(ovl_sock n2)"
it_wait_log monitor 'isolated=' 10

users=(alice bob carol dave erin frank)
for mode in carrier silent; do
    opt=""
    [ "$mode" = carrier ] || opt=--silent
    host_link_down h3 $opt
    t0=$SECONDS
    ovl_wait n3 12 "isolated: true after h3's link was cut ($mode)" "f('isolated') is True"
    it_log "$mode: n3 isolated $((SECONDS - t0)) s after the cut"
    expect_register h3 "${users[0]}" 503 "while cut off ($mode)"
    if [ "$mode" = silent ]; then
        # A longer cut: the other two repair their leaf sets around n3, so n3 has to
        # rejoin a ring that forgot it.
        for n in n1 n2; do ovl_wait "$n" 30 "n3 gone from $n's leaf set" "f('leaf_count') == 1"; done
        it_log "$mode: n1 and n2 dropped n3 $((SECONDS - t0)) s after the cut"
    fi

    host_link_up h3
    t1=$SECONDS
    ovl_wait n3 12 "isolated: false after h3's link came back ($mode)" "f('isolated') is False"
    it_log "$mode: n3 healthy again $((SECONDS - t1)) s after the link came back"
    expect_register h3 "${users[1]}" 200 "after the link came back ($mode)"
    ovl_wait n3 15 "n3 a member with 2 leaves again ($mode)" "f('role') == 'member' and f('leaf_count') == 2"
    for n in n1 n2; do ovl_wait "$n" 15 "n3 back in $n's leaf set ($mode)" "f('leaf_count') == 2"; done
    users=("${users[@]:2}")
done

it_stop monitor
polls=$(grep -c 'isolated=' "$IT_TMP/monitor.log")
[ "$polls" -ge 20 ] || it_fail "the monitor polled n1 and n2 only $polls times"
! grep -q 'noanswer' "$IT_TMP/monitor.log" || it_fail "n1 or n2 did not answer status: $(grep -m 3 noanswer "$IT_TMP/monitor.log")"
! grep -q 'isolated=true' "$IT_TMP/monitor.log" ||
    it_fail "n1 or n2 said isolated while only h3 was cut: $(grep -m 3 'isolated=true' "$IT_TMP/monitor.log")"
it_pass "n3 isolated within 12 s of a cut, carrier or silent (503), healthy within 12 s of the restore (200); n1 and n2 healthy in $polls polls"

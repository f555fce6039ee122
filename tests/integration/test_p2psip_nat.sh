#!/usr/bin/env bash
# test_p2psip_nat.sh: a phone on a host behind NAT is called from another host.
#
# h1 runs `p2psipd -s`; h2 joins it; h3 sits behind a masquerading router (no port
# forwarding), so its node can reach out but nobody can reach it first: it attaches
# to h1 as a client and stays one (its reachability probe fails).  bob registers on
# h3 (his binding names h3's node and its super-node h1); alice on h2 calls him: the
# INVITE goes over the pipe to h1, which relays it to its client h3, and the answer
# comes back the same way.  Both phones are loopback-only (tools/mini_ua.py), and h3
# is a client behind NAT, so the nodes anchor the media: RTP flows both ways through
# the relay (at least 100 of about 150 packets each way).
#
# Fails when: h3 becomes a member, the call is not set up, fewer packets arrive than
# the bound, the BYE is not answered, or a node keeps its streams after the call.
source "$(dirname "$0")/hosts.sh"
it_begin "$@"

CTL=$IT_BUILD/p2psipd/p2psipctl
UA="$IT_SRC/tests/integration/tools/mini_ua.py"
printf '[p2p]\npromote_after = 2\n' >"$IT_TMP/node.conf"
ctl() { host_exec "$1" "$CTL" --control "$IT_TMP/$1/control.sock" --json "${@:2}"; }
is_member() {
    local r
    r=$(ctl "$1" status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])' 2>/dev/null) || return 1
    [ "$r" = member ] || [ "$r" = super-node ]
}

hosts_create 3 --no-multicast
hosts_nat h3
mkdir -p "$IT_TMP/h1" "$IT_TMP/h2" "$IT_TMP/h3"
host_start h1 n1 "$IT_BUILD/p2psipd/p2psipd" -s --data-dir "$IT_TMP/h1" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 20 "h1's ring" is_member h1
host_start h2 n2 "$IT_BUILD/p2psipd/p2psipd" -S "$(host_ip h1):7560" --data-dir "$IT_TMP/h2" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 30 "h2 to join" is_member h2
host_start h3 n3 "$IT_BUILD/p2psipd/p2psipd" -S "$(host_ip h1):7560" --data-dir "$IT_TMP/h3" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
role_of() { ctl "$1" status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])' 2>/dev/null; }
is_client() { [ "$(role_of "$1")" = client ]; }
it_wait_until 30 "h3 to attach as a client" is_client h3

host_start h3 bob python3 "$UA" callee sip:bob@example.org --port 5090 --rtp 40000 \
    --timeout 30 --min 100
it_wait_log bob '^registered' 15
host_start h2 alice python3 "$UA" caller sip:alice@example.org sip:bob@example.org \
    --port 5090 --rtp 41000 --seconds 3 --min 100 --timeout 20
it_wait_until 40 "the call to end" eval '! it_alive alice && ! it_alive bob'
it_stop alice
it_stop bob
grep -h '^result' "$IT_TMP/alice.log" "$IT_TMP/bob.log" >&2
[ "${IT_EXIT_OF[alice]}" = 0 ] || it_fail "caller: $(grep -h 'result\|failure' "$IT_TMP/alice.log")"
[ "${IT_EXIT_OF[bob]}" = 0 ] || it_fail "callee: $(grep -h 'result\|failure' "$IT_TMP/bob.log")"

# Behind NAT it never became a ring member: promote_after (2 s) is long past.
[ "$(role_of h3)" = client ] || it_fail "h3 is $(role_of h3), not a client"
relayed=$(ctl h1 counters | python3 -c 'import json,sys; print(json.load(sys.stdin)["relayed"])')
[ "$relayed" -gt 0 ] || it_fail "h1 relayed nothing for its client"

# The streams went with the BYE.
for h in h2 h3; do
    n=$(ctl "$h" status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("media_streams", -1))')
    [ "$n" = 0 ] || it_fail "$h still has $n media streams after the BYE"
done

for n in n1 n2 n3; do it_server_stop "$n"; done
it_pass "a phone behind NAT called through its super-node's relay; RTP both ways, streams freed at BYE"

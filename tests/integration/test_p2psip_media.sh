#!/usr/bin/env bash
# test_p2psip_media.sh: loopback-only phones on two hosts talk: the nodes anchor media.
#
# Each phone (tools/mini_ua.py) binds 127.0.0.1 only, so its SDP offers 127.0.0.1,
# which the other host cannot reach.  The caller's node marks the offer for anchoring,
# the callee's node points its phone at a relay port of its own and relays RTP over
# the pipe to the caller's node, which does the same on its side.  The check: RTP
# arrives at both phones (at least 100 of about 150 packets each way), the SDP each
# phone received names 127.0.0.1 and a port the node opened (not the other phone's),
# and after the BYE the nodes' relay streams are gone.
#
# Fails when: the call is not set up, fewer packets arrive than the bound, the BYE is
# not answered, or a node keeps its streams after the call.
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

hosts_create 2 --no-multicast
mkdir -p "$IT_TMP/h1" "$IT_TMP/h2"
host_start h1 n1 "$IT_BUILD/p2psipd/p2psipd" -s --data-dir "$IT_TMP/h1" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 20 "h1's ring" is_member h1
host_start h2 n2 "$IT_BUILD/p2psipd/p2psipd" -S "$(host_ip h1):7560" --data-dir "$IT_TMP/h2" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 30 "h2 to join" is_member h2

host_start h2 bob python3 "$UA" callee sip:bob@example.org --port 5090 --rtp 40000 \
    --timeout 30 --min 100
it_wait_log bob '^registered' 15
host_start h1 alice python3 "$UA" caller sip:alice@example.org sip:bob@example.org \
    --port 5090 --rtp 41000 --seconds 3 --min 100 --timeout 20
it_wait_until 40 "the call to end" eval '! it_alive alice && ! it_alive bob'
it_stop alice
it_stop bob
grep -h '^result' "$IT_TMP/alice.log" "$IT_TMP/bob.log" >&2
[ "${IT_EXIT_OF[alice]}" = 0 ] || it_fail "caller: $(grep -h 'result\|failure' "$IT_TMP/alice.log")"
[ "${IT_EXIT_OF[bob]}" = 0 ] || it_fail "callee: $(grep -h 'result\|failure' "$IT_TMP/bob.log")"

# The streams went with the BYE.
for h in h1 h2; do
    n=$(ctl "$h" status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("media_streams", -1))')
    [ "$n" = 0 ] || it_fail "$h still has $n media streams after the BYE"
done

for n in n1 n2; do it_server_stop "$n"; done
it_pass "loopback-only phones on two hosts: RTP both ways through the nodes' relay, streams freed at BYE"

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
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
it_begin "$@"

hosts_create 3 --no-multicast
hosts_nat h3
p2psip_node_start h1 n1 --server --no-wait
it_wait_until 20 "h1's ring" p2psip_is_member n1
p2psip_node_start h2 n2 --boot "$(host_ip h1):7560" --no-wait
it_wait_until 30 "h2 to join" p2psip_is_member n2
p2psip_node_start h3 n3 --boot "$(host_ip h1):7560" --no-wait
role_of() { ovl_field "$1" status role 2>/dev/null; }
is_client() { [ "$(role_of "$1")" = client ]; }
it_wait_until 30 "h3 to attach as a client" is_client n3

p2psip_ua_call h3 h2

# Behind NAT it never became a ring member: promote_after (2 s) is long past.
[ "$(role_of n3)" = client ] || it_fail "n3 is $(role_of n3), not a client"
relayed=$(ovl_counter n1 relayed)
[ "$relayed" -gt 0 ] || it_fail "n1 relayed nothing for its client"

# The streams went with the BYE.
for n in n2 n3; do
    s=$(p2psip_media_streams "$n")
    [ "$s" = 0 ] || it_fail "$n still has $s media streams after the BYE"
done

for n in n1 n2 n3; do it_server_stop "$n"; done
it_pass "a phone behind NAT called through its super-node's relay; RTP both ways, streams freed at BYE"

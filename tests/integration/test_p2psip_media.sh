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
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
it_begin "$@"

hosts_create 2 --no-multicast
p2psip_node_start h1 n1 --server --no-wait
it_wait_until 20 "h1's ring" p2psip_is_member n1
p2psip_node_start h2 n2 --boot "$(host_ip h1):7560" --no-wait
it_wait_until 30 "h2 to join" p2psip_is_member n2

p2psip_ua_call h2 h1

# The streams went with the BYE.
for n in n1 n2; do
    s=$(p2psip_media_streams "$n")
    [ "$s" = 0 ] || it_fail "$n still has $s media streams after the BYE"
done

for n in n1 n2; do it_server_stop "$n"; done
it_pass "loopback-only phones on two hosts: RTP both ways through the nodes' relay, streams freed at BYE"

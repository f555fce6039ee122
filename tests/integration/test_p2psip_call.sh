#!/usr/bin/env bash
# test_p2psip_call.sh: phones on different hosts call each other through the DHT.
#
# Two hosts on a LAN: h1 runs `p2psipd -s`, h2 joins it with -S.  On h2 a sipp UAS
# registers 50 AoRs with its own node (127.0.0.1:5062 inside h2): each REGISTER is
# answered 200 only once the binding is stored in the DHT.  On h1 a sipp UAC calls
# those AoRs through its own node (127.0.0.1:5062 inside h1), which knows nothing of
# them locally: it finds h2's node in the DHT and sends the INVITE over the overlay's
# pipe; h2's node proxies it to the UAS (sipp/uas_overlay.xml checks two proxies'
# Max-Forwards, three Vias and both nodes' double Record-Route).  ACK and BYE follow
# the recorded route back across the pipe.  Then calls the other way round (h2's
# node to an AoR registered on h1), and an AoR nobody registered gets 404/480.
#
# Fails when: a REGISTER is not answered 200; any call fails or the UAS does not
# complete every call; no SIP crossed the overlay (pipe counters); a node exits.
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
it_begin "$@"
it_need sipp

p2psip_conf "$IT_DOMAIN"
ovl_hosts_create 2 --no-multicast
p2psip_node_start h1 n1 --server --conf "$P2PSIP_CONF"
it_wait_until 20 "h1's ring" p2psip_is_member n1
p2psip_node_start h2 n2 --boot "$(host_ip h1):7560" --conf "$P2PSIP_CONF"
it_wait_until 30 "h2 to join the ring" p2psip_is_member n2

# One direction at a time: callee host, caller host (p2psip.sh).
p2psip_call_round h2 h1 a
p2psip_call_round h1 h2 b

# The SIP really crossed the overlay, both ways, on both nodes.
for n in n1 n2; do
    tx=$(ovl_counter "$n" pipe_tx) # counters: sip.pipe_tx, sip.pipe_rx
    rx=$(ovl_counter "$n" pipe_rx)
    [ "$tx" -gt 0 ] && [ "$rx" -gt 0 ] || it_fail "$n: no SIP over the overlay (tx $tx, rx $rx)"
done

# Nobody registered this one anywhere: 404 or 480, from the DHT's answer.
nobody=$IT_TMP/nobody.csv
printf 'SEQUENTIAL\nnobody\n' >"$nobody"
ovl_sipp h1 notfound 60 uac_notfound.xml -i 127.0.0.1 -p 5072 -t u1 -inf "$nobody" \
    -key domain "$IT_DOMAIN" -default_behaviors -bye -m 5 -r 5 127.0.0.1:5062
it_sipp_expect notfound $? 5

for n in n1 n2; do
    it_alive "$n" || it_fail "$n exited during the calls"
    it_server_stop "$n"
done
it_pass "calls across two hosts through the DHT and the overlay's pipes, both ways, 0 failures"

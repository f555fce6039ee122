#!/usr/bin/env bash
# test_p2psip_phones_loopback.sh: baresip phones whose media is bound to loopback,
# on two hosts, call each other through the DHT, and audio must flow both ways.
# PENDING: it fails today and is kept outside the ctest glob
# (tests/integration/test_*.sh) until it passes; then it moves next to the others.
#
# A phone on a p2psip host talks only to its own node on 127.0.0.1, so a phone that
# binds only loopback offers c=IN IP4 127.0.0.1, which the other host cannot reach.
# The nodes anchor such media (p2psipd/media_glue.c, overlay/media.c): each node
# points its phone at a relay port pair of its own on 127.0.0.1 and relays RTP and
# RTCP over the pipe between them.  test_p2psip_media.sh covers it with
# tools/mini_ua.py, which sends RTP only; baresip also sends RTCP, on port+1.
#
# Why it fails today: overlay/media.c never sets struct msock's rtcp flag (the RTCP
# socket of a relay pair is opened like the RTP one), so a packet from the phone's
# RTCP port is taken for RTP: it latches the phone's RTP address (baresip sends an
# RTCP packet first, so the relay latches port+1) and goes to the far node marked as
# RTP.  Each relay then sends the other phone's RTP, and RTCP, from its RTP port to
# its phone's RTCP port: the call is established, alice gets at most the one RTP
# packet sent before the latch, and neither phone's status line shows audio
# received.  test_p2psip_phones.sh is the same kind of call with the phones' media on
# their host's eth0 address (no anchoring), and passes.
#
# Two hosts on a LAN: h1 runs `p2psipd -s`, h2 finds it by multicast.  alice (baresip
# on h1) and carol (baresip on h2) register with their own nodes, with SIP and media
# on 127.0.0.1 (lib.sh it_baresip_config as it is).  alice calls carol.
#
# Fails when: a node does not join the ring; a REGISTER is not answered 200; the
# call is not established on both sides; either side receives no RTP within 15 s
# (today's failure) or its status line does not show audio sent and received; after
# alice's hangup, the BYE does not reach carol or its 200 does not come back; a node
# exits or does not exit 0 on SIGTERM.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-180}
it_begin "$@"
it_need baresip python3 ss

PROXY=127.0.0.1:5062
PH=127.0.0.1:$P2PSIP_PHONE_PORT
it_wav "$IT_TMP/tone.wav" 120

ovl_hosts_create 2
p2psip_conf "$IT_DOMAIN"
p2psip_node_start h1 nA --server --conf "$P2PSIP_CONF"
it_wait_until 20 "A's ring" p2psip_is_member nA
p2psip_node_start h2 nC --conf "$P2PSIP_CONF"
it_wait_until 40 "h2 to find A by multicast and join the ring" p2psip_is_member nC

# Media on loopback, like SIP: what a phone configured for "my node is on this host"
# does.
p2psip_baresip_start h1 alice carol 127.0.0.1
p2psip_baresip_start h2 carol alice 127.0.0.1
for p in alice carol; do p2psip_baresip_wait_registered "$p"; done
bitrate_both() { sed 's/\r/\n/g' "$IT_TMP/$1.log" | grep -Eq '^\[[0-9:]+\] audio=[1-9][0-9]*/[1-9][0-9]* '; }

p2psip_phone_cmd alice "dial sip:carol@$IT_DOMAIN"
it_wait_log alice "Call established: sip:carol@$IT_DOMAIN" 30
it_wait_log carol "Call established: sip:alice@$IT_DOMAIN" 30
it_log "the call is established; now the media"
it_wait_log alice "incoming rtp for 'audio' established" 15
it_wait_log carol "incoming rtp for 'audio' established" 15
# baresip's status line, "audio=TX/RX (bit/s)", once a second: audio both ways.
it_wait_until 15 "audio both ways in alice's status line" bitrate_both alice
it_wait_until 15 "audio both ways in carol's status line" bitrate_both carol

p2psip_phone_cmd alice hangup
it_sip_wait_saw carol "^$PROXY>$PH\|BYE sip:carol[^|]*\|[0-9]+ BYE$"
it_sip_wait_saw carol "^$PH>$PROXY\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$"
it_sip_wait_saw alice "^$PROXY>$PH\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$"

for p in alice carol; do p2psip_phone_cmd "$p" quit; done
it_wait_until 30 "the phones to quit" eval '! it_alive alice && ! it_alive carol'
for p in alice carol; do it_stop "$p"; done
for n in nA nC; do
    it_alive "$n" || it_fail "$n exited during the call"
    it_server_stop "$n"
done
it_pass "phones with media on loopback, on two hosts: established, RTP both ways, BYE answered"

#!/usr/bin/env bash
# test_p2psip_phones.sh: real softphones on four hosts call each other through the DHT.
#
# Four hosts on a LAN that forwards multicast: h1 (A) runs `p2psipd -s`; h2, h3 and h4
# (B, C, D) start with neither -S nor -P and must find it by multicast.  Each host
# runs a baresip registered with its own node (127.0.0.1:5062 inside the host):
# alice on A, bob on B, carol on C, dave on D.
#
#   - alice calls carol: the INVITE reaches carol through both nodes (A's and C's
#     double Record-Route), both see the call established and RTP arrive; alice sends
#     carol a MESSAGE during the call (carol's log shows its text, alice gets 200);
#     alice hangs up: carol gets the BYE from her node and answers 200, which reaches
#     alice.  RTP both ways: baresip's own statistics (rtcpsummary: packets sent and
#     received, the far end's address) and a sniffer on A's eth0 (tools/udp_sniff.py)
#     counting the RTP packets between the two phones' media ports, each way.
#   - linphonec on B (linus, not registered: a caller need not be) calls dave on D:
#     established on both sides, RTP both ways (dave's statistics and a sniffer on
#     B's eth0), linus hangs up, dave gets the BYE from his node and answers 200.
#   - sipp: 200 calls A -> C and 200 calls C -> A (p2psip.sh p2psip_call_round), 0
#     failures.
#
# Media.  Each phone's SDP offers its host's eth0 address, so media goes from host to
# host directly and the nodes leave the SDP alone (they anchor media only for phones
# that cannot be reached: SDP on loopback, or a node behind NAT).  baresip keeps SIP
# on 127.0.0.1 (sip_listen) and binds media to eth0's address (net_interface);
# linphonec takes its address from the routing table (eth0).  baresip phones that
# offer 127.0.0.1, so that the nodes must relay their media, are
# test_p2psip_phones_loopback.sh.
#
# Fails when: a node does not join the ring; a phone's REGISTER is not answered 200;
# a call is not established on both sides or did not cross the overlay; fewer than
# 100 RTP packets cross the LAN each way between the ports the callee's statistics
# name, or those statistics count fewer than 50 each way or name another host; the
# MESSAGE's text does not reach carol or alice gets no 200; a BYE does not reach the
# callee from its node or its 200 does not come back; a sipp call fails; a node's
# pipe counters did not move; a node exits or does not exit 0 on SIGTERM.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-300}
it_begin "$@"
it_need baresip linphonec sipp python3 ss

PROXY=127.0.0.1:5062
PH=127.0.0.1:$P2PSIP_PHONE_PORT
LINUS_PORT=5120
RTP_MIN=100 # packets each way on the LAN: 2 s of 20 ms audio
# baresip's statistics are those of its last RTCP report (the first one goes out
# after a randomised interval of at least about 1.25 s): fewer.
STAT_MIN=50
SNIFF=$IT_LIB_DIR/tools/udp_sniff.py
it_wav "$IT_TMP/tone.wav" 120

# ---- the ring: A by -s, B, C and D by multicast
declare -A NODE_HOST=([nA]=h1 [nB]=h2 [nC]=h3 [nD]=h4)
ovl_hosts_create 4
A=$(host_ip h1) B=$(host_ip h2) C=$(host_ip h3) D=$(host_ip h4)
p2psip_conf "$IT_DOMAIN"
p2psip_node_start h1 nA --server --conf "$P2PSIP_CONF"
it_wait_until 20 "A's ring" p2psip_is_member nA
for n in nB nC nD; do
    # No --boot, no --no-multicast: they must find A by LAN multicast.
    p2psip_node_start "${NODE_HOST[$n]}" "$n" --conf "$P2PSIP_CONF"
done
for n in nB nC nD; do
    it_wait_until 40 "$n to find A by multicast and join the ring" p2psip_is_member "$n"
done
it_log "the four nodes are ring members"

# ---- a baresip on every host, registered with its own node
p2psip_baresip_start h1 alice carol "$A"
p2psip_baresip_start h2 bob dave "$B"
p2psip_baresip_start h3 carol alice "$C"
p2psip_baresip_start h4 dave bob "$D"
for p in alice bob carol dave; do p2psip_baresip_wait_registered "$p"; done
it_log "alice, bob, carol and dave registered with their own nodes"

# rtp_count SNIFFER SRC SPORT DST DPORT: RTP packets (version 2, PCMU or PCMA, 160
# bytes of audio) the sniffer saw from SRC:SPORT to DST:DPORT; a port "*" is any
# port but the overlay's (7560).
rtp_count() {
    awk -v s="$2" -v sp="$3" -v d="$4" -v dp="$5" '
        $2 == s && $4 == d && (sp == "*" ? $3 != 7560 : $3 == sp) &&
        (dp == "*" ? $5 != 7560 : $5 == dp) && $6 == 172 && $7 == "80" &&
        ($8 == "00" || $8 == "80" || $8 == "08" || $8 == "88") { n++ }
        END { print n + 0 }' "$IT_TMP/$1.log"
}
# rtcp_sr SNIFFER SRC DST: RTCP sender reports (packet type 200) from SRC to DST.
rtcp_sr() {
    awk -v s="$2" -v d="$3" '
        $2 == s && $4 == d && $7 ~ /^8[0-9a-f]$/ && $8 == "c8" && $3 != 7560 && $5 != 7560 { n++ }
        END { print n + 0 }' "$IT_TMP/$1.log"
}
# media_both_ways SNIFFER X Y: at least RTP_MIN RTP packets each way so far, and an
# RTCP sender report each way (baresip's statistics need one).
media_both_ways() {
    [ "$(rtp_count "$1" "$2" "*" "$3" "*")" -ge "$RTP_MIN" ] &&
        [ "$(rtp_count "$1" "$3" "*" "$2" "*")" -ge "$RTP_MIN" ] &&
        [ "$(rtcp_sr "$1" "$2" "$3")" -ge 1 ] && [ "$(rtcp_sr "$1" "$3" "$2")" -ge 1 ]
}
# media_checked CALLEE_PHONE SNIFFER X Y: the callee (on Y) counted at least
# STAT_MIN RTP packets received and as many sent, its media came from X's eth0, and
# the sniffer saw at least RTP_MIN cross the LAN each way between exactly the ports
# the callee's statistics name.
media_checked() {
    local p=$1 sn=$2 x=$3 y=$4 pr ps ip lport rhost rport n1 n2
    pr=$(p2psip_rtp_stat "$p" PR) ps=$(p2psip_rtp_stat "$p" PS) ip=$(p2psip_rtp_stat "$p" IP)
    [ -n "$pr" ] || it_fail "$p logged no RTP statistics at the end of the call"
    [ "$pr" -ge "$STAT_MIN" ] && [ "$ps" -ge "$STAT_MIN" ] ||
        it_fail "$p: RTP received $pr, sent $ps (want at least $STAT_MIN each)"
    # IP=0.0.0.0:LPORT,RHOST:RPORT
    lport=${ip%%,*} lport=${lport##*:} rhost=${ip#*,} rport=${rhost##*:} rhost=${rhost%:*}
    [ "$rhost" = "$x" ] || it_fail "$p: media from $rhost, not from the caller's host $x"
    n1=$(rtp_count "$sn" "$x" "$rport" "$y" "$lport")
    n2=$(rtp_count "$sn" "$y" "$lport" "$x" "$rport")
    [ "$n1" -ge "$RTP_MIN" ] && [ "$n2" -ge "$RTP_MIN" ] ||
        it_fail "$sn: RTP $x:$rport -> $y:$lport $n1 packets, back $n2 (want at least $RTP_MIN each)"
    it_log "$p: RTP received $pr, sent $ps; on the LAN $x:$rport -> $y:$lport $n1, back $n2"
}
# pipes NODE: its counters "sip.pipe_tx sip.pipe_rx" (SIP sent and received over the
# overlay's pipes).
pipes() { echo "$(ovl_counter "$1" pipe_tx) $(ovl_counter "$1" pipe_rx)"; }
# pipes_moved NODE "TX0 RX0": fails unless NODE sent and received SIP over the
# overlay's pipes since it had the counters TX0 RX0.
pipes_moved() {
    local tx0 rx0 tx rx
    read -r tx0 rx0 <<<"$2"
    read -r tx rx <<<"$(pipes "$1")"
    [[ "$tx0 $rx0 $tx $rx" =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]] ||
        it_fail "$1: cannot read its pipe counters ('$2', then '$tx $rx')"
    if [ "$tx" -le "$tx0" ] || [ "$rx" -le "$rx0" ]; then
        it_fail "$1: the call's SIP did not cross the overlay both ways (pipe tx $tx0 -> $tx, rx $rx0 -> $rx)"
    fi
}
# double_rr PHONE: the INVITE PHONE got carries both nodes' double Record-Route
# (RFC 5658: the callee's node, phone side first, then the caller's, node side
# first), which only a call that crossed the overlay has.
double_rr() {
    local rr='^Record-Route: <sip:127\.0\.0\.1:5062;lr>, <sip:[0-9a-f]{40}\.node\.invalid;lr>' \
        rr2='^Record-Route: <sip:[0-9a-f]{40}\.node\.invalid;lr>, <sip:127\.0\.0\.1:5062;lr>'
    grep -Eq "$rr" "$IT_TMP/$1.log" && grep -Eq "$rr2" "$IT_TMP/$1.log" ||
        it_fail "$1's INVITE lacks the two nodes' double Record-Route (it did not cross the overlay)"
}

# ---- alice (A) calls carol (C)
host_start h1 sniff_a "$HOSTS_PY" "$SNIFF" eth0 300
it_wait_log sniff_a '^ready' 10
pipes_a=$(pipes nA) pipes_c=$(pipes nC)
p2psip_phone_cmd alice "dial sip:carol@$IT_DOMAIN"
it_wait_log alice "Call established: sip:carol@$IT_DOMAIN" 30
it_wait_log carol "Call established: sip:alice@$IT_DOMAIN" 30
it_sip_saw carol "^$PROXY>$PH\|INVITE sip:carol[^|]*\|[0-9]+ INVITE$" ||
    it_fail "carol's INVITE did not come from her node"
it_sip_saw alice "^$PROXY>$PH\|SIP/2.0 200 [^|]*\|[0-9]+ INVITE$" ||
    it_fail "alice did not get the 200 for her INVITE from her node"
double_rr carol
it_wait_log alice "incoming rtp for 'audio' established, receiving from $C:" 30
it_wait_log carol "incoming rtp for 'audio' established, receiving from $A:" 30

# A MESSAGE during the call (RFC 3428), to carol's AoR: found in the DHT too.
text="hello-carol-$RANDOM$RANDOM"
p2psip_phone_cmd alice "message $text"
it_wait_log carol "sip:alice@$IT_DOMAIN: \"$text\"" 30
it_sip_wait_saw alice "^$PROXY>$PH\|SIP/2.0 200 [^|]*\|[0-9]+ MESSAGE$"
it_sip_saw carol "^$PROXY>$PH\|MESSAGE sip:carol[^|]*\|[0-9]+ MESSAGE$" ||
    it_fail "carol's MESSAGE did not come from her node"

it_wait_until 30 "$RTP_MIN RTP packets and an RTCP report each way between A and C" \
    media_both_ways sniff_a "$A" "$C"
p2psip_phone_cmd alice hangup
it_wait_log alice "terminate call '[^']*' with sip:carol@$IT_DOMAIN" 30
it_sip_wait_saw carol "^$PROXY>$PH\|BYE sip:carol[^|]*\|[0-9]+ BYE$"
it_wait_log carol "sip:alice@$IT_DOMAIN: session closed|Call with sip:alice@$IT_DOMAIN terminated" 30
it_sip_wait_saw carol "^$PH>$PROXY\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$"
it_sip_wait_saw alice "^$PROXY>$PH\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$"
! it_sip_saw carol "^$PH>[^|]*\|BYE " || it_fail "carol sent a BYE: the call did not end by alice's"
it_wait_until 10 "alice's RTP statistics" eval '[ -n "$(p2psip_rtp_stat alice PR)" ]'
it_wait_until 10 "carol's RTP statistics" eval '[ -n "$(p2psip_rtp_stat carol PR)" ]'
it_stop sniff_a
media_checked carol sniff_a "$A" "$C"
pr=$(p2psip_rtp_stat alice PR) ps=$(p2psip_rtp_stat alice PS)
[ "$pr" -ge "$STAT_MIN" ] && [ "$ps" -ge "$STAT_MIN" ] ||
    it_fail "alice: RTP received $pr, sent $ps (want at least $STAT_MIN each)"
pipes_moved nA "$pipes_a"
pipes_moved nC "$pipes_c"
it_log "alice -> carol: established, RTP both ways across the LAN, MESSAGE delivered, BYE answered"

# ---- linus (linphonec on B) calls dave (D)
host_start h2 sniff_b "$HOSTS_PY" "$SNIFF" eth0 300
it_wait_log sniff_b '^ready' 10
pipes_b=$(pipes nB) pipes_d=$(pipes nD)
it_linphone_config linus "$PROXY"
exec {linus_fd}<>"$IT_TMP/linus/in"
HOME=$IT_TMP/linus XDG_DATA_HOME=$IT_TMP/linus XDG_CONFIG_HOME=$IT_TMP/linus \
    IT_STDIN=$IT_TMP/linus/in host_start h2 linus linphonec -c "$IT_TMP/linus/linphonerc" -S -d 0
linus() { printf '%s\n' "$1" >&"$linus_fd"; }
it_wait_log linus "linphonec> " 30
# linphonec 5.1 ignores sip_port from the file when started this way; the command
# sets it and opens the UDP listening point.
linus "ports sip $LINUS_PORT"
it_wait_log linus "Setting sip port to $LINUS_PORT" 10
it_wait_until 10 "linus's SIP port" ovl_udp_bound h2 "$LINUS_PORT"
linus "soundcard use files"
linus "play $IT_TMP/tone.wav"
linus "call sip:dave@$IT_DOMAIN"
it_wait_log dave "Call established: sip:linus@$IT_DOMAIN" 30
it_sip_saw dave "^$PROXY>$PH\|INVITE sip:dave[^|]*\|[0-9]+ INVITE$" ||
    it_fail "dave's INVITE did not come from his node"
double_rr dave
it_wait_log linus "Call [0-9]+ with sip:dave@$IT_DOMAIN connected" 30
it_wait_log dave "incoming rtp for 'audio' established, receiving from $B:" 30
it_wait_until 30 "$RTP_MIN RTP packets and an RTCP report each way between B and D" \
    media_both_ways sniff_b "$B" "$D"
linus "terminate"
it_sip_wait_saw dave "^$PROXY>$PH\|BYE sip:dave[^|]*\|[0-9]+ BYE$" 30
it_sip_wait_saw dave "^$PH>$PROXY\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$" 30
it_wait_log linus "Call [0-9]+ with sip:dave@$IT_DOMAIN ended" 30
! it_sip_saw dave "^$PH>[^|]*\|BYE " || it_fail "dave sent a BYE: the call did not end by linus's"
it_wait_until 10 "dave's RTP statistics" eval '[ -n "$(p2psip_rtp_stat dave PR)" ]'
it_stop sniff_b
media_checked dave sniff_b "$B" "$D"
pipes_moved nB "$pipes_b"
pipes_moved nD "$pipes_d"
it_log "linus (linphone) -> dave: established, RTP both ways across the LAN, BYE answered"
linus quit
it_wait_until 20 "linphonec to quit" eval '! it_alive linus'
it_stop linus

# ---- sipp: 200 calls A -> C, 200 calls C -> A
p2psip_call_round h3 h1 ac
p2psip_call_round h1 h3 ca

# ---- the end: every phone quits, every node is still there and exits 0
for p in alice bob carol dave; do p2psip_phone_cmd "$p" quit; done
it_wait_until 30 "the phones to quit" eval \
    '! it_alive alice && ! it_alive bob && ! it_alive carol && ! it_alive dave'
for p in alice bob carol dave; do it_stop "$p"; done
for n in nA nB nC nD; do
    it_alive "$n" || it_fail "$n exited during the calls"
    it_server_stop "$n"
done
it_pass "four hosts: baresip A -> C (RTP both ways, MESSAGE, BYE), linphone B -> baresip D (RTP, BYE), 2 x $P2PSIP_CALLS sipp calls A <-> C, 0 failures"

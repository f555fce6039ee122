#!/usr/bin/env bash
#
# test_linphone_baresip.sh: two different SIP stacks through the node: linphone
# (linphonec, belle-sip) calls baresip (libre) via the proxy; baresip answers
# automatically; audio from WAV files on both sides (linphone "soundcard use files",
# baresip aufile; no sound card); linphone hangs up.
#
# Fails when: the INVITE does not reach baresip through the proxy, the call is not
# established on both sides, baresip receives no RTP from linphone, the BYE does not
# reach baresip through the proxy and get its 200, or the server exits.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need baresip linphonec python3 ss

PORT=5062
PROXY=127.0.0.1:$PORT
B=127.0.0.1:5110
CAROL_PORT=5120
# linphone picks its own address from the routing table: give it a default route
# (inside the namespace, everything stays on loopback).
ip route add default dev lo || it_fail "cannot add a default route on lo"
it_wav "$IT_TMP/tone.wav" 120

it_server_start server "$PORT"
it_baresip_config bob 5110 carol "$PROXY" "$IT_TMP/tone.wav"
exec {bob_fd}<>"$IT_TMP/bob/in"
IT_STDIN=$IT_TMP/bob/in it_start bob baresip -s -t 300 -f "$IT_TMP/bob"
it_wait_log bob "useragent registered successfully" 30

# carol: linphonec with its own HOME; calls go through the proxy (route set), she
# does not register (a caller need not be registered).
it_linphone_config carol "$PROXY"
exec {carol_fd}<>"$IT_TMP/carol/in"
HOME=$IT_TMP/carol XDG_DATA_HOME=$IT_TMP/carol XDG_CONFIG_HOME=$IT_TMP/carol \
    IT_STDIN=$IT_TMP/carol/in it_start carol linphonec -c "$IT_TMP/carol/linphonerc" -S -d 0
carol() { printf '%s\n' "$1" >&"$carol_fd"; }
it_wait_log carol "linphonec> " 30
# linphonec 5.1 ignores sip_port from the file when started this way; the command
# sets it and opens the UDP listening point.
carol "ports sip $CAROL_PORT"
it_wait_log carol "Setting sip port to $CAROL_PORT" 10
it_wait_udp "$CAROL_PORT" 10
carol "soundcard use files"
carol "play $IT_TMP/tone.wav"
carol "call sip:bob@$IT_DOMAIN"

it_wait_log bob "Call established: sip:carol@$IT_DOMAIN" 30
it_sip_saw bob "^$PROXY>$B\|INVITE sip:bob[^|]*\|[0-9]+ INVITE$" ||
    it_fail "bob's INVITE did not come from the proxy"
it_wait_log carol "Call [0-9]+ with sip:bob@$IT_DOMAIN connected" 30
it_wait_log bob "incoming rtp for 'audio' established" 30

carol "terminate"
it_sip_wait_saw bob "^$PROXY>$B\|BYE sip:bob[^|]*\|[0-9]+ BYE$" 30
it_sip_wait_saw bob "^$B>$PROXY\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$" 30
it_wait_log carol "Call [0-9]+ with sip:bob@$IT_DOMAIN ended" 30
! it_sip_saw bob "^$B>[^|]*\|BYE " || it_fail "bob sent a BYE: the call did not end by carol's"

it_alive server || it_fail "server exited during the call"
carol quit
printf '/quit\n' >&"$bob_fd"
it_wait_until 30 "the phones to quit" eval '! it_alive carol && ! it_alive bob'
it_stop carol
it_stop bob
it_server_stop server
it_pass "linphone carol -> baresip bob via the proxy: established, RTP, BYE answered"

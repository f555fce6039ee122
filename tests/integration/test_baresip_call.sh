#!/usr/bin/env bash
#
# test_baresip_call.sh: two real softphones (baresip) register with the node, alice
# calls bob through the proxy, bob answers automatically, audio flows both ways
# (RTP, from WAV files; no sound card), alice sends bob a MESSAGE during the call,
# alice hangs up.
#
# Each phone runs with its own config directory and a SIP trace (-s); commands go to
# its stdin through a FIFO.  The verdict comes from the traces: the sequence of SIP
# messages each phone sent and received (lib.sh it_sip_trace_summary), and
# baresip's own "Call established" / "terminated" lines.
#
# Fails when: a phone cannot register (no 200), the INVITE does not reach bob through
# the proxy, either side does not see the call established or does not get media,
# the BYE does not reach bob through the proxy or is not answered 200 back to alice,
# the MESSAGE is not delivered to bob with its text or not answered 200 to alice, or
# the server exits.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need baresip python3 ss

PORT=5062
PROXY=127.0.0.1:$PORT
it_wav "$IT_TMP/tone.wav" 120

# cmd NAME COMMAND: types a long command ("/dial ...") into the phone.
cmd() {
    local fd
    case $1 in alice) fd=$alice_fd ;; bob) fd=$bob_fd ;; esac
    printf '/%s\n' "$2" >&"$fd"
}

saw() { it_sip_saw "$@"; }
wait_saw() { it_sip_wait_saw "$@"; }

it_server_start server "$PORT"
it_baresip_config alice 5100 bob "$PROXY" "$IT_TMP/tone.wav"
it_baresip_config bob 5110 alice "$PROXY" "$IT_TMP/tone.wav"
# Opened read-write, the FIFOs never block and never see EOF while we hold them.
exec {alice_fd}<>"$IT_TMP/alice/in" {bob_fd}<>"$IT_TMP/bob/in"
IT_STDIN=$IT_TMP/alice/in it_start alice baresip -s -t 300 -f "$IT_TMP/alice"
IT_STDIN=$IT_TMP/bob/in it_start bob baresip -s -t 300 -f "$IT_TMP/bob"

A=127.0.0.1:5100
B=127.0.0.1:5110
for p in alice bob; do
    it_wait_log "$p" "useragent registered successfully" 30
done
saw alice "^$PROXY>$A\|SIP/2.0 200 [^|]*\|[0-9]+ REGISTER$" || it_fail "alice: no 200 to REGISTER"
saw bob "^$PROXY>$B\|SIP/2.0 200 [^|]*\|[0-9]+ REGISTER$" || it_fail "bob: no 200 to REGISTER"

# The call: INVITE via the proxy, auto-answer, established on both sides.
cmd alice "dial sip:bob@$IT_DOMAIN"
it_wait_log alice "Call established: sip:bob@$IT_DOMAIN" 30
it_wait_log bob "Call established: sip:alice@$IT_DOMAIN" 30
saw bob "^$PROXY>$B\|INVITE sip:bob[^|]*\|[0-9]+ INVITE$" ||
    it_fail "bob's INVITE did not come from the proxy"
saw alice "^$PROXY>$A\|SIP/2.0 200 [^|]*\|[0-9]+ INVITE$" ||
    it_fail "alice did not get the 200 for her INVITE from the proxy"
# Media: each side receives RTP from the other (the SDP went through the proxy).
it_wait_log alice "incoming rtp for 'audio' established" 30
it_wait_log bob "incoming rtp for 'audio' established" 30

# A MESSAGE during the call (RFC 3428), routed by the proxy to bob's binding.
text="hello-bob-$RANDOM$RANDOM"
cmd alice "message $text"
it_wait_log bob "sip:alice@$IT_DOMAIN: \"$text\"" 30
wait_saw alice "^$PROXY>$A\|SIP/2.0 200 [^|]*\|[0-9]+ MESSAGE$"
saw bob "^$PROXY>$B\|MESSAGE sip:bob[^|]*\|[0-9]+ MESSAGE$" ||
    it_fail "bob's MESSAGE did not come from the proxy"

# Alice hangs up: BYE to bob along the route set, 200 back to alice.
cmd alice hangup
it_wait_log alice "terminate call '[^']*' with sip:bob@$IT_DOMAIN" 30
wait_saw bob "^$PROXY>$B\|BYE sip:bob[^|]*\|[0-9]+ BYE$"
# baresip logs a remote hangup as "session closed" (BYE) or "Call ... terminated".
it_wait_log bob "sip:alice@$IT_DOMAIN: session closed|Call with sip:alice@$IT_DOMAIN terminated" 30
wait_saw bob "^$B>$PROXY\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$"
wait_saw alice "^$PROXY>$A\|SIP/2.0 200 [^|]*\|[0-9]+ BYE$"
saw alice "^$A>$PROXY\|BYE sip:bob" || it_fail "alice's BYE did not go to the proxy"
# Only alice hung up: bob never sent a BYE of its own.
! saw bob "^$B>[^|]*\|BYE " || it_fail "bob sent a BYE: the call ended on bob's side, not by alice's BYE"

it_alive server || it_fail "server exited during the call"
for p in alice bob; do
    cmd "$p" quit
done
it_wait_until 30 "the phones to quit" eval '! it_alive alice && ! it_alive bob'
it_stop alice
it_stop bob
it_server_stop server
it_pass "baresip alice -> bob via the proxy: established, RTP both ways, MESSAGE delivered, BYE answered"

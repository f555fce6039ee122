#!/usr/bin/env bash
#
# test_sipp_call.sh: calls through the stateful proxy reach a registered UAS.
# 100 AoRs are registered with the contact of a sipp UAS (from the UAS's own address,
# as a phone registers itself; with IT_THIRD_PARTY=1 from another port, a third-party
# registration, RFC 3261 10.2: pending/test_sipp_call_thirdparty.sh); a sipp UAC then
# places 1,000
# calls (INVITE, 100, 180, 200, ACK, BYE, 200) to those AoRs via the proxy at 100
# calls/s; the UAS checks each INVITE was retargeted to its contact with Max-Forwards
# decremented and a Via added (sipp/uas.xml).  Then 20 INVITEs to a user with no
# binding must get 404 or 480, and the UAS must not see them.
#
# Fails when: any sipp run exits non-zero or counts a failed call; the UAS does not
# complete exactly 1,000 calls; the caller did not get every 180; a call to an
# unregistered user is answered otherwise or reaches the UAS; the server exits.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need sipp ss

CALLS=1000
RATE=${IT_RATE:-100}
PORT=5062
UAS_PORT=5080
users=$IT_TMP/users.csv
it_users 100 "$users" callee

it_server_start server "$PORT"

reg_port=$UAS_PORT
if [ "${IT_THIRD_PARTY:-0}" = 1 ]; then
    reg_port=5070
    it_log "third-party registration: REGISTERs from port $reg_port for contacts on $UAS_PORT"
fi
it_sipp reg 60 register.xml -i 127.0.0.1 -p "$reg_port" -t u1 -inf "$users" \
    -key domain "$IT_DOMAIN" -key contact_hp "127.0.0.1:$UAS_PORT" -key expires 3600 \
    -default_behaviors -bye -m 100 -r 100 127.0.0.1:$PORT
it_sipp_expect reg $? 100

# -m: the UAS exits after the expected number of calls, so more calls than placed
# can never go unnoticed.
it_sipp_bg uas uas.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m "$CALLS" -trace_counts \
    -default_behaviors -bye
it_wait_udp "$UAS_PORT"

it_sipp uac 240 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
    -trace_counts -m "$CALLS" -r "$RATE" -l 200 -rsa 127.0.0.1:$PORT 127.0.0.1:$PORT
it_sipp_expect uac $? "$CALLS"

# The UAS ends by itself once its calls are complete (BYE answered).
it_wait_until 60 "the UAS to finish its $CALLS calls" eval '! it_alive uas'
it_stop uas
it_sipp_expect uas "${IT_EXIT_OF[uas]}" "$CALLS"

# Every call rang: the proxy relayed the 180 (RFC 3261 16.7 step 5: provisional
# responses other than 100 are forwarded).
got180=$(it_sipp_count uac 180)
[ "$got180" = "$CALLS" ] || it_fail "caller received ${got180:-no} 180 Ringing, want $CALLS"

# A user of the domain with no binding: 404/480, never the UAS (it has exited: any
# request sent to its port now would be lost, so a forwarded INVITE times out and
# the call fails; the proxy answering 404/480 is the only way to pass).
nobody=$IT_TMP/nobody.csv
printf 'SEQUENTIAL\nnobody\n' >"$nobody"
it_sipp notfound 60 uac_notfound.xml -i 127.0.0.1 -p 5072 -t u1 -inf "$nobody" \
    -key domain "$IT_DOMAIN" -default_behaviors -bye -m 20 -r 20 127.0.0.1:$PORT
it_sipp_expect notfound $? 20

it_alive server || it_fail "server exited during the calls"
it_server_stop server
it_pass "$CALLS calls via the proxy to registered UAS contacts, 0 failures; unregistered user refused"

#!/usr/bin/env bash
#
# test_sipp_call_tcp_udp.sh: a phone on TCP calls a phone on UDP through p2psipd, and
# the reverse (issue 3: "TCP and UDP on either side").  The server listens on UDP and
# TCP (its default).  Two rounds, each with a callee that registers itself from its
# own socket (sipp/uas_register.xml, Contact ;transport=tcp or udp) and answers the
# calls on that same socket (sipp/uas_check_via.xml as its out-of-call scenario), and
# a caller (sipp/uac.xml) placing CALLS calls at RATE/s:
#   1. callee on TCP, caller on UDP; the callee's Contact names a port nothing
#      listens on (a phone behind NAT), so only its one connection to the proxy,
#      which the proxy must reuse (RFC 3261 18.2.2, 10.3), reaches it;
#   2. callee on UDP, caller on TCP (responses back over the caller's connection,
#      RFC 3261 18.2.2).
# The callee checks every INVITE: top Via the proxy's with the callee's transport
# (SIP/2.0/TCP resp. UDP, RFC 3261 16.6 step 8, 18.1.1), second Via the caller's with
# the caller's transport, Request-URI the registered contact; a mismatch is answered
# 500 and fails the call.
#
# Fails when: the registration fails; the caller's sipp exits non-zero or does not
# count exactly CALLS successful and 0 failed calls; the callee did not complete
# exactly CALLS calls with the expected Vias; the server exits or does not exit 0.
# IT_WRONG_TRANSPORT=tcp_callee (or udp_callee) makes that round's callee expect the
# wrong transport on the top Via (a self-test: the test must then fail).
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need sipp ss

CALLS=${IT_CALLS:-200}
RATE=${IT_RATE:-50}
PORT=5066
UAS_PORT=5086
UAC_PORT=5076
DEAD_PORT=5099 # nothing listens there

it_server_start server "$PORT"
it_wait_tcp "$PORT"

# round NAME UAS_TRANSPORT UAC_TRANSPORT: (u1 or t1 each) one callee, CALLS calls.
round() {
    local name=$1 uas_t=$2 uac_t=$3
    local uas=uas_$name uac=uac_$name want_top want_caller
    # One AoR per round, so that the first round's binding cannot take the second's calls.
    local users=$IT_TMP/$name.users.csv
    printf 'SEQUENTIAL\n%s\n' "$name" >"$users"
    want_top=$([ "$uas_t" = t1 ] && echo TCP || echo UDP)
    want_caller=$([ "$uac_t" = t1 ] && echo TCP || echo UDP)
    # Over TCP a Contact port nothing listens on; over UDP the callee's own port (the
    # proxy sends to a same-host UDP Contact as registered).
    local contact_port=$UAS_PORT
    [ "$uas_t" = u1 ] || contact_port=$DEAD_PORT
    local expect_top=$want_top
    if [ "${IT_WRONG_TRANSPORT:-}" = "$name" ]; then
        expect_top=$([ "$want_top" = TCP ] && echo UDP || echo TCP)
    fi

    # The callee: registers, then answers calls for up to 200 s (stopped below).
    cp "$IT_SIPP_DIR/uas_check_via.xml" "$IT_TMP/$uas.ooc.xml" || it_fail "cp uas_check_via.xml"
    it_sipp_bg "$uas" uas_register.xml -i 127.0.0.1 -p "$UAS_PORT" -t "$uas_t" \
        -oocsf "$uas.ooc.xml" -inf "$users" -key domain "$IT_DOMAIN" -key expires 600 \
        -key contact_port "$contact_port" -key via_top "$expect_top" \
        -key via_caller "$want_caller" -trace_logs -d 200000 -m 1 127.0.0.1:$PORT
    it_wait_until 30 "$uas to register" eval \
        "grep -qs '^registered: ' '$IT_TMP'/${uas}_*_logs.log"
    grep -qs "^registered: .*@127\.0\.0\.1:$contact_port;transport=$want_top>" \
        "$IT_TMP/${uas}"_*_logs.log ||
        it_fail "$uas: the 200 to its REGISTER does not list its contact (port $contact_port, transport=$want_top)"

    it_sipp "$uac" 240 uac.xml -i 127.0.0.1 -p "$UAC_PORT" -t "$uac_t" -inf "$users" \
        -key domain "$IT_DOMAIN" -trace_counts -m "$CALLS" -r "$RATE" -l 200 \
        -rsa 127.0.0.1:$PORT 127.0.0.1:$PORT
    it_sipp_expect "$uac" $? "$CALLS"

    # The callee logs a line once a call's BYE is answered: wait for all of them.
    local done_re="^call done: INVITE top Via $want_top, caller Via $want_caller$"
    it_wait_until 30 "$uas to complete $CALLS calls" eval \
        "[ \"\$(cat '$IT_TMP'/${uas}_*_logs.log 2>/dev/null | grep -c '$done_re')\" -ge $CALLS ]"
    it_alive "$uas" || it_fail "$uas exited during the calls"
    # The proxy reached the TCP callee over the connection the callee registered
    # on, never over a new one to its Contact: the only TCP connection left is the
    # callee's to the proxy's port (both ends are in this namespace: two sockets).
    if [ "$uas_t" = t1 ]; then
        local socks want_socks
        socks=$(ss -Htn state established | awk '{print $3 ">" $4}' | sort | tr '\n' ' ')
        want_socks="127.0.0.1:$PORT>127.0.0.1:$UAS_PORT 127.0.0.1:$UAS_PORT>127.0.0.1:$PORT "
        if [ "$socks" != "$want_socks" ]; then
            it_fail "TCP connections after round $name: '$socks', want only the callee's ('$want_socks')"
        fi
    fi
    it_stop "$uas"
    local n bad
    n=$(cat "$IT_TMP/${uas}"_*_logs.log | grep -c "$done_re")
    bad=$(cat "$IT_TMP/${uas}"_*_logs.log | grep -c '^BAD VIA')
    if [ "$n" != "$CALLS" ] || [ "$bad" != 0 ]; then
        it_fail "$uas completed $n calls with top Via $want_top (want $CALLS), $bad bad Vias"
    fi
    it_log "round $name: callee on $want_top, caller on $want_caller: $CALLS calls, 0 failed"
}

round tcp_callee t1 u1
round udp_callee u1 t1

it_alive server || it_fail "server exited during the calls"
it_server_stop server
it_pass "$CALLS calls UDP caller -> TCP callee and $CALLS calls TCP caller -> UDP callee via p2psipd, 0 failures, Vias as expected"

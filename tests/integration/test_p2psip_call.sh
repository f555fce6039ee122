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
source "$(dirname "$0")/hosts.sh"
it_begin "$@"
it_need sipp

CALLS=${IT_CALLS:-200}
CTL=$IT_BUILD/p2psipd/p2psipctl
printf '[p2p]\npromote_after = 2\n[sip]\ndomain = %s\n' "$IT_DOMAIN" >"$IT_TMP/node.conf"

ctl() { host_exec "$1" "$CTL" --control "$IT_TMP/$1/control.sock" --json "${@:2}"; }
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
is_member() {
    local r
    r=$(ctl "$1" status 2>/dev/null | field role 2>/dev/null) || return 1
    [ "$r" = member ] || [ "$r" = super-node ]
}
udp_bound() { [ -n "$(host_exec "$1" ss -Hnlu "sport = :$2")" ]; }
sipp_on() { # sipp_on H NAME TIMEOUT SCENARIO ARGS...: sipp in host H, foreground
    local h=$1 name=$2 t=$3 sc=$4
    shift 4
    cp "$IT_SIPP_DIR/$sc" "$IT_TMP/$name.xml"
    (cd "$IT_TMP" && host_run "$h" "$t" sipp -sf "$name.xml" -nostdin -trace_stat \
        -stf "$name.stat.csv" -fd 1 -trace_err -error_file "$name.err.log" "$@" \
        >>"$IT_TMP/$name.log" 2>&1)
}
sipp_bg() { # sipp_bg H NAME SCENARIO ARGS...: a UAS in host H
    local h=$1 name=$2 sc=$3
    shift 3
    cp "$IT_SIPP_DIR/$sc" "$IT_TMP/$name.xml"
    # Not in a subshell: host_start records the pid in this shell.
    cd "$IT_TMP" || it_fail "cd $IT_TMP"
    host_start "$h" "$name" sipp -sf "$name.xml" -nostdin -trace_stat \
        -stf "$name.stat.csv" -fd 1 -trace_err -error_file "$name.err.log" "$@"
    cd - >/dev/null || it_fail "cd back"
}

hosts_create 2 --no-multicast
for h in h1 h2; do mkdir -p "$IT_TMP/$h"; done
host_start h1 n1 "$IT_BUILD/p2psipd/p2psipd" -s --data-dir "$IT_TMP/h1" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 20 "h1's ring" is_member h1
host_start h2 n2 "$IT_BUILD/p2psipd/p2psipd" -S "$(host_ip h1):7560" --data-dir "$IT_TMP/h2" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 30 "h2 to join the ring" is_member h2

# One direction at a time: callee host, caller host.
call_round() {
    local callee=$1 caller=$2 tag=$3 users=$IT_TMP/users_$3.csv
    it_users 50 "$users" "bob$tag"
    sipp_on "$callee" "reg_$tag" 60 register.xml -i 127.0.0.1 -p 5080 -t u1 -inf "$users" \
        -key domain "$IT_DOMAIN" -key contact_hp "127.0.0.1:5080" -key expires 600 \
        -default_behaviors -bye -m 50 -r 50 127.0.0.1:5062
    it_sipp_expect "reg_$tag" $? 50
    sipp_bg "$callee" "uas_$tag" uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -m "$CALLS" \
        -trace_counts -default_behaviors -bye
    it_wait_until 10 "the UAS on $callee" udp_bound "$callee" 5080
    sipp_on "$caller" "uac_$tag" 240 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$users" \
        -key domain "$IT_DOMAIN" -trace_counts -m "$CALLS" -r 50 -l 100 \
        -rsa 127.0.0.1:5062 127.0.0.1:5062
    it_sipp_expect "uac_$tag" $? "$CALLS"
    it_wait_until 60 "the UAS to finish its $CALLS calls" eval "! it_alive uas_$tag"
    it_stop "uas_$tag"
    it_sipp_expect "uas_$tag" "${IT_EXIT_OF[uas_$tag]}" "$CALLS"
    it_log "$tag: $CALLS calls from $caller to phones registered on $callee, 0 failures"
}

call_round h2 h1 a
call_round h1 h2 b

# The SIP really crossed the overlay, both ways, on both nodes.
for h in h1 h2; do
    tx=$(ctl "$h" counters | field sip.pipe_tx)
    rx=$(ctl "$h" counters | field sip.pipe_rx)
    [ "$tx" -gt 0 ] && [ "$rx" -gt 0 ] || it_fail "$h: no SIP over the overlay (tx $tx, rx $rx)"
done

# Nobody registered this one anywhere: 404 or 480, from the DHT's answer.
nobody=$IT_TMP/nobody.csv
printf 'SEQUENTIAL\nnobody\n' >"$nobody"
sipp_on h1 notfound 60 uac_notfound.xml -i 127.0.0.1 -p 5072 -t u1 -inf "$nobody" \
    -key domain "$IT_DOMAIN" -default_behaviors -bye -m 5 -r 5 127.0.0.1:5062
it_sipp_expect notfound $? 5

for n in n1 n2; do
    it_alive "$n" || it_fail "$n exited during the calls"
    it_server_stop "$n"
done
it_pass "calls across two hosts through the DHT and the overlay's pipes, both ways, 0 failures"

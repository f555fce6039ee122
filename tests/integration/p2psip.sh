# shellcheck shell=bash
#
# p2psip.sh: helpers for the integration tests where phones on different hosts call
# each other through p2psipd nodes (test_p2psip_*.sh).  Sourced, never run; it
# sources overlay.sh (and so hosts.sh and lib.sh) itself, whose ovl_node_start,
# ovl_ring_up, ovl_counter, ovl_sipp, ovl_sipp_bg and ovl_udp_bound the tests use
# directly.
#
# Design.  One node per host, started by ovl_node_start, p2psip_node_start or
# ovl_ring_up, with --conf $P2PSIP_CONF (p2psip_conf: the [sip] section) where the
# test needs a domain or accounts; its SIP listener is 127.0.0.1:5062 inside the
# host, where the phones of that host register and send their calls (registrar and
# outbound proxy).  Phones are sipp (p2psip_register, p2psip_calls,
# p2psip_call_round), baresip (below) or tools/mini_ua.py (p2psip_ua_call), run
# inside a host through host_run or host_start, with their files in $IT_TMP.
#
# Functions (H is a host made by hosts_create, NODE a name given to ovl_node_start):
#   p2psip_conf [DOMAIN]        writes $P2PSIP_CONF, the nodes' [sip] section: domain
#       DOMAIN (default: none, the node's own default "*").  A test may append more
#       sections to the file ([auth], [p2p]) before it starts the nodes.
#   p2psip_node_start H NODE [OPTIONS...]   ovl_node_start H NODE OPTIONS, with the
#       words of $IT_P2PSIPD_ARGS (e.g. "-d") added to p2psipd's command line.
#   p2psip_is_member NODE       true when NODE is in the ring (member or super-node).
#   p2psip_register H NAME USERS [--auth]   a sipp phone in H (127.0.0.1:5070,
#       sipp run NAME, bounded 60 s) registers the first user of USERS (it_users)
#       with H's node, contact 127.0.0.1:5080, expires 600 (register.xml; --auth:
#       register_auth.xml, digest); fails the test unless it got 200.
#   p2psip_calls CALLEE CALLER TAG USERS N T WAIT [SIPP ARGS...]   N calls to the
#       users of USERS, registered from host CALLEE: a sipp UAS there on
#       127.0.0.1:5080 (run uas_TAG, sipp/uas_overlay.xml, which passes only calls
#       that crossed two nodes; -trace_counts) and a sipp UAC in host CALLER (run
#       uac_TAG, 127.0.0.1:5071, uac.xml through its node, bounded T seconds, SIPP
#       ARGS added: e.g. "-r 5 -l 5").  Fails the test unless every call succeeded at
#       the UAC and the UAS completed all N within WAIT s of the UAC's end.
#   p2psip_call_round CALLEE CALLER TAG  50 AoRs bob<TAG>00001... registered by sipp
#       on host CALLEE (127.0.0.1:5080) with its node, a UAS there, and $P2PSIP_CALLS
#       calls (default 200, or $IT_CALLS) to them from a sipp UAC on host CALLER
#       (127.0.0.1:5071) through its node (p2psip_calls, 240 s, UAS within 60 s);
#       fails the test unless every REGISTER got 200 and every call succeeded on
#       both ends.  The UAS checks two proxies'
#       Max-Forwards, three Vias and both nodes' double Record-Route
#       (sipp/uas_overlay.xml), so it passes only for calls that crossed the overlay.
#   p2psip_baresip_start H NAME PEER MEDIA_ADDR  a baresip for NAME@$IT_DOMAIN in H
#       (lib.sh it_baresip_config: SIP on 127.0.0.1:$P2PSIP_PHONE_PORT, registered
#       through H's node, auto-answer, PEER the target of /message, audio from
#       $IT_TMP/tone.wav, which the test writes with it_wav), media bound to
#       MEDIA_ADDR (baresip's net_interface: the address its SDP offers), and
#       baresip's rtcpsummary module, which logs the call's RTP statistics when it
#       ends (p2psip_rtp_stat).
#   p2psip_phone_cmd NAME COMMAND   types "/COMMAND" into NAME's baresip (its stdin).
#   p2psip_baresip_wait_registered NAME  until NAME's REGISTER got 200 (bounded), then
#       checks the 200 came from its node, 127.0.0.1:5062.
#   p2psip_rtp_stat NAME KEY    prints KEY of the last rtcpsummary line NAME logged
#       (PR: RTP packets received, PS: sent, IP: "LOCAL,REMOTE" media addresses);
#       empty when there is none.  baresip takes them from its last RTCP report, so
#       they lag the call's end by up to one RTCP interval.
# Loopback-only phones (tools/mini_ua.py), whose media the nodes must relay:
#   p2psip_ua_call CALLEE CALLER  one call: bob (sip:bob@example.org, RTP port
#       40000) in host CALLEE registers with its node (within 15 s), then alice (RTP
#       41000) in host CALLER calls him, sends 3 s of RTP and hangs up; both on SIP
#       port 5090 of their host's 127.0.0.1.  Fails the test unless both have ended
#       within 40 s with status 0 (the call set up, at least 100 RTP packets received
#       by each, the BYE answered).  Their "result" lines go to stderr.
#   p2psip_media_streams NODE   the number of media streams (relays) NODE holds now
#       (status media_streams; -1 when its status has none).
#
# Invariants: every wait is bounded; every process goes through host_start or
# host_run; all files live under $IT_TMP.

declare -F ovl_node_start >/dev/null || . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/overlay.sh"

P2PSIP_CONF=""
P2PSIP_CALLS=${IT_CALLS:-200}
P2PSIP_PHONE_PORT=5100
declare -A P2PSIP_PHONE_FD=()

p2psip_conf() {
    P2PSIP_CONF=$IT_TMP/sip.conf
    if [ -n "${1:-}" ]; then
        printf '[sip]\ndomain = %s\n' "$1" >"$P2PSIP_CONF"
    else
        : >"$P2PSIP_CONF"
    fi || it_fail "cannot write $P2PSIP_CONF"
}

p2psip_node_start() {
    local h=$1 node=$2
    shift 2
    # shellcheck disable=SC2086 # IT_P2PSIPD_ARGS: extra words, e.g. "-d"
    ovl_node_start "$h" "$node" "$@" -- ${IT_P2PSIPD_ARGS:-}
}

p2psip_is_member() {
    local r
    r=$(ovl_field "$1" status role 2>/dev/null) || return 1
    [ "$r" = member ] || [ "$r" = super-node ]
}

p2psip_register() {
    local h=$1 name=$2 users=$3 scen=register.xml auth=()
    if [ "${4:-}" = --auth ]; then
        scen=register_auth.xml
        auth=(-auth_uri "$IT_DOMAIN")
    fi
    ovl_sipp "$h" "$name" 60 "$scen" -i 127.0.0.1 -p 5070 -t u1 -inf "$users" \
        -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5080 -key expires 600 \
        "${auth[@]}" -m 1 127.0.0.1:5062
    it_sipp_expect "$name" $? 1
}

p2psip_calls() {
    local callee=$1 caller=$2 tag=$3 users=$4 n=$5 t=$6 wait=$7
    shift 7
    ovl_sipp_bg "$callee" "uas_$tag" uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -m "$n" \
        -trace_counts -default_behaviors -bye
    it_wait_until 10 "the phone on $callee" ovl_udp_bound "$callee" 5080
    ovl_sipp "$caller" "uac_$tag" "$t" uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$users" \
        -key domain "$IT_DOMAIN" -m "$n" "$@" -rsa 127.0.0.1:5062 127.0.0.1:5062
    it_sipp_expect "uac_$tag" $? "$n"
    it_wait_until "$wait" "the phone on $callee to finish its $n calls" eval "! it_alive uas_$tag"
    it_stop "uas_$tag"
    it_sipp_expect "uas_$tag" "${IT_EXIT_OF[uas_$tag]}" "$n"
}

p2psip_call_round() {
    local callee=$1 caller=$2 tag=$3 users=$IT_TMP/users_$3.csv
    it_users 50 "$users" "bob$tag"
    ovl_sipp "$callee" "reg_$tag" 60 register.xml -i 127.0.0.1 -p 5080 -t u1 \
        -inf "$users" -key domain "$IT_DOMAIN" -key contact_hp "127.0.0.1:5080" \
        -key expires 600 -default_behaviors -bye -m 50 -r 50 127.0.0.1:5062
    it_sipp_expect "reg_$tag" $? 50
    p2psip_calls "$callee" "$caller" "$tag" "$users" "$P2PSIP_CALLS" 240 60 -trace_counts -r 50 -l 100
    it_log "$tag: $P2PSIP_CALLS calls from $caller to phones registered on $callee, 0 failures"
}

# ---------------------------------------------------------------------------------
# baresip on a host.

p2psip_baresip_start() {
    local h=$1 name=$2 peer=$3 media=$4 fd
    it_baresip_config "$name" "$P2PSIP_PHONE_PORT" "$peer" 127.0.0.1:5062 "$IT_TMP/tone.wav"
    sed -i "s/^net_interface.*/net_interface\t\t$media/" "$IT_TMP/$name/config" ||
        it_fail "$name: cannot set net_interface"
    grep -q "^net_interface[[:space:]]*$media\$" "$IT_TMP/$name/config" ||
        it_fail "$name: net_interface is not $media"
    printf 'module\t\t\trtcpsummary.so\n' >>"$IT_TMP/$name/config"
    # Opened read-write, the FIFO never blocks and never sees EOF while we hold it.
    exec {fd}<>"$IT_TMP/$name/in"
    P2PSIP_PHONE_FD[$name]=$fd
    IT_STDIN=$IT_TMP/$name/in host_start "$h" "$name" baresip -s -t 600 -f "$IT_TMP/$name"
}

p2psip_phone_cmd() { printf '/%s\n' "$2" >&"${P2PSIP_PHONE_FD[$1]}"; }

p2psip_baresip_wait_registered() {
    it_wait_log "$1" "useragent registered successfully" 30
    it_sip_saw "$1" "^127.0.0.1:5062>127.0.0.1:$P2PSIP_PHONE_PORT\|SIP/2.0 200 [^|]*\|[0-9]+ REGISTER$" ||
        it_fail "$1: no 200 to its REGISTER from its node"
}

p2psip_rtp_stat() {
    sed 's/\r/\n/g' "$IT_TMP/$1.log" | grep '^EX=BareSip;' | tail -n 1 |
        tr ';' '\n' | sed -n "s/^$2=//p"
}

# ---------------------------------------------------------------------------------
# Loopback-only phones (tools/mini_ua.py).

p2psip_ua_call() {
    local callee=$1 caller=$2 ua=$OVL_TOOLS/mini_ua.py
    host_start "$callee" bob python3 "$ua" callee sip:bob@example.org --port 5090 --rtp 40000 \
        --timeout 30 --min 100
    it_wait_log bob '^registered' 15
    host_start "$caller" alice python3 "$ua" caller sip:alice@example.org sip:bob@example.org \
        --port 5090 --rtp 41000 --seconds 3 --min 100 --timeout 20
    it_wait_until 40 "the call to end" eval '! it_alive alice && ! it_alive bob'
    it_stop alice
    it_stop bob
    grep -h '^result' "$IT_TMP/alice.log" "$IT_TMP/bob.log" >&2
    [ "${IT_EXIT_OF[alice]}" = 0 ] || it_fail "caller: $(grep -h 'result\|failure' "$IT_TMP/alice.log")"
    [ "${IT_EXIT_OF[bob]}" = 0 ] || it_fail "callee: $(grep -h 'result\|failure' "$IT_TMP/bob.log")"
}

p2psip_media_streams() {
    ovl_ctl "$1" status | "$OVL_PY" -c 'import json,sys; print(json.load(sys.stdin).get("media_streams", -1))'
}

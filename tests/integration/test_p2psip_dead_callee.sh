#!/usr/bin/env bash
#
# test_p2psip_dead_callee.sh: the node of the callee dies; a call to the AoR still
# gets a final answer.
#
# Hosts A (h1, p2psipd -s), B (h2) and C (h3), one node each.  A sipp phone on C
# registers bob00001 with C's node, and a call from a phone on A reaches it (the
# setup works).  Then C's node is SIGKILLed (its phone stays; the DHT still holds
# the record naming C's node, which lives until its expiry).  A phone on A calls bob
# twice (sipp/uac_unavailable.xml): at once, and again once A's and B's nodes have
# dropped C from their leaf sets.  Each call must end with 408, 480 or 503 (never
# a 2xx, never another code, never a hang: within 40 s).  How long each took is
# logged ("MEASURED"), never asserted (the target is 480 within 2 s).
#
# Fails when: the REGISTER or the first call fails; a call after the kill gets no
# final response within 40 s, or one other than 408/480/503; A's or B's node exits.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-240}
it_begin "$@"
it_need sipp ip nft python3

# elapsed T1 T0: T1 - T0 in seconds (date +%s.%N stamps), 3 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

USERS=$IT_TMP/users.csv
it_users 1 "$USERS" bob
AOR=sip:bob00001@$IT_DOMAIN
printf '[sip]\ndomain = %s\n' "$IT_DOMAIN" >"$IT_TMP/phones.conf"

ovl_hosts_create 3 --no-multicast
BOOT=$(host_ip h1):7560
ovl_node_start h1 nA --server --no-multicast --conf "$IT_TMP/phones.conf"
ovl_node_start h2 nB --boot "$BOOT" --no-multicast --conf "$IT_TMP/phones.conf"
ovl_node_start h3 nC --boot "$BOOT" --no-multicast --conf "$IT_TMP/phones.conf"
for n in nA nB nC; do
    ovl_wait "$n" 30 "$n to be a ring member" "f('role') in ('member', 'super-node')"
done
idC=$(ovl_node_id nC)

ovl_sipp h3 reg 60 register.xml -i 127.0.0.1 -p 5070 -t u1 -inf "$USERS" -key domain "$IT_DOMAIN" \
    -key contact_hp 127.0.0.1:5080 -key expires 600 -m 1 127.0.0.1:5062
it_sipp_expect reg $? 1
ovl_sipp_bg h3 uas uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -m 1 -default_behaviors -bye
it_wait_until 10 "bob's phone" ovl_udp_bound h3 5080
ovl_sipp h1 uac_alive 60 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$USERS" -key domain "$IT_DOMAIN" \
    -m 1 -rsa 127.0.0.1:5062 127.0.0.1:5062
it_sipp_expect uac_alive $? 1
it_wait_until 40 "bob's phone to finish its call" eval "! it_alive uas"
it_stop uas
it_sipp_expect uas "${IT_EXIT_OF[uas]}" 1
it_log "a call from A reached bob's phone on C"

# call_dead TAG: one call from A's phone to bob; its final response must be 408, 480
# or 503; the time it took is logged.
call_dead() {
    local tag=$1 t0 t1 st code=""
    t0=$(date +%s.%N)
    ovl_sipp h1 "dead_$tag" 60 uac_unavailable.xml -i 127.0.0.1 -p 5072 -t u1 -inf "$USERS" \
        -key domain "$IT_DOMAIN" -trace_counts -m 1 127.0.0.1:5062
    st=$?
    t1=$(date +%s.%N)
    for c in 408 480 503; do
        [ "$(it_sipp_count "dead_$tag" "$c")" != 1 ] || code=$c
    done
    # ResponseTime1: sipp's own clock, from the INVITE to the final response (rtd).
    it_log "MEASURED: call to $AOR $tag: final response ${code:-none} after" \
        "$(it_sipp_stat "dead_$tag" "ResponseTime1(C)") (INVITE to final response, sipp;" \
        "$(elapsed "$t1" "$t0") s for the whole sipp run), sipp status $st"
    it_sipp_expect "dead_$tag" "$st" 1
    [ -n "$code" ] || it_fail "call $tag: no 408/480/503 in the counts"
}

it_stop nC KILL
call_dead at_once
# A's and B's nodes drop C (its leaf-set entries time out), then call again.
for n in nA nB; do
    ovl_wait "$n" 40 "$n to drop C's node from its leaf set" "'$idC' not in str(r)" leafset
done
call_dead after_drop

for n in nA nB; do
    it_alive "$n" || it_fail "$n exited"
    it_server_stop "$n"
done
it_pass "C's node dead: calls to $AOR end with 408/480/503 (times: MEASURED lines above)"

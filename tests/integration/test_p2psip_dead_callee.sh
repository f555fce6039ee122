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
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-240}
it_begin "$@"
it_need sipp ip nft python3

USERS=$IT_TMP/users.csv
it_users 1 "$USERS" bob
AOR=sip:bob00001@$IT_DOMAIN
p2psip_conf "$IT_DOMAIN"

ovl_hosts_create 3 --no-multicast
ovl_ring_up 30 nA nB nC -- --no-multicast --conf "$P2PSIP_CONF"
idC=$(ovl_node_id nC)

p2psip_register h3 reg "$USERS"
p2psip_calls h3 h1 alive "$USERS" 1 60 40
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
        "$(it_elapsed "$t1" "$t0") s for the whole sipp run), sipp status $st"
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

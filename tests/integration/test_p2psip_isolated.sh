#!/usr/bin/env bash
#
# test_p2psip_isolated.sh: a node cut off from the overlay tells its phones so at
# once (503 or 480), it never leaves them hanging.
#
# Hosts A (h1, p2psipd -s), B (h2) and C (h3), one node each.  A sipp phone on A
# registers bob00001 with A's node; a call from C's phone reaches it (the setup
# works).  Then C's link is cut (host_link_down h3: C sees its carrier go).
#   - Within 12 s of the cut, a REGISTER from C's phone (tools/sip_register.py, for
#     carol) gets 503 (the node says it is cut off: [p2p] cutoff, 8 s).  Attempts
#     are repeated until then, each bounded (8 s).  The ones before may get 200:
#     that is not checked (see the log: C's node state after each attempt).
#   - Then a call from C's phone to bob (sipp/uac_unavailable.xml) must end with 503
#     or 480, within 40 s (a final response, not a hang).
# The times (cut -> 503 to the REGISTER; INVITE -> final response) are logged
# ("MEASURED"), never asserted.
#
# Fails when: the setup call fails; no REGISTER from C gets 503 within 12 s of the
# cut; the call from C gets no final response within 40 s, or one other than 480 or
# 503; a node exits.
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

p2psip_register h1 reg "$USERS"
p2psip_calls h1 h3 linked "$USERS" 1 60 40
it_log "a call from C's phone reached bob's phone on A"

# C's node as it reports itself: role, isolated, leaf-set size, records stored.
c_state() {
    ovl_ctl nC status 2>&1 | "$OVL_PY" -c 'import json,sys
try:
    r = json.load(sys.stdin)
    print("role=%s isolated=%s leaf_count=%s record_count=%s" % (r.get("role"), r.get("isolated"), r.get("leaf_count"), r.get("record_count")))
except ValueError:
    print("no status")'
}
it_log "C's node before the cut: $(c_state)"
host_link_down h3
t_cut=$(date +%s.%N)
deadline=$((SECONDS + 12))
got=""
for ((a = 1; a <= 40; a++)); do
    st=$(host_run h3 15 "$OVL_PY" "$OVL_TOOLS/sip_register.py" 127.0.0.1 5062 carol "$IT_DOMAIN" 300)
    it_log "REGISTER from C's phone, attempt $a: ${st:-no final response}; C's node: $(c_state)"
    if [[ $st == 503* ]]; then
        got=$(date +%s.%N)
        break
    fi
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
done
[ -n "$got" ] || it_fail "no REGISTER from C's phone got 503 within 12 s of the cut (last: ${st:-none})"
it_log "MEASURED: REGISTER from C's phone answered 503 $(it_elapsed "$got" "$t_cut") s after the cut"

it_log "C's node before the call: $(c_state)"
t0=$(date +%s.%N)
ovl_sipp h3 call_cut 60 uac_unavailable.xml -i 127.0.0.1 -p 5072 -t u1 -inf "$USERS" \
    -key domain "$IT_DOMAIN" -trace_counts -m 1 127.0.0.1:5062
st=$?
t1=$(date +%s.%N)
code=""
for c in 408 480 503; do
    [ "$(it_sipp_count call_cut "$c")" != 1 ] || code=$c
done
it_log "MEASURED: call from C's phone to $AOR while cut off: final response ${code:-none} after" \
    "$(it_sipp_stat call_cut "ResponseTime1(C)") (INVITE to final response, sipp;" \
    "$(it_elapsed "$t1" "$t0") s for the whole sipp run), sipp status $st"
it_sipp_expect call_cut "$st" 1
[ "$code" = 480 ] || [ "$code" = 503 ] || it_fail "the call from C's phone got ${code:-no final response}, want 480 or 503"

for n in nA nB nC; do
    it_alive "$n" || it_fail "$n exited"
    it_server_stop "$n"
done
it_pass "C cut off: its phone's REGISTER got 503 and its call got $code (times: MEASURED lines above)"

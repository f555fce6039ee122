#!/usr/bin/env bash
#
# test_p2psip_replica.sh: the nodes that store a binding's record die; calls to the
# AoR connect again once the remaining nodes serve it.
#
# Six hosts h1..h6, one node each (h1: p2psipd -s, the others -S h1), every node with
# replicas = 2 (a record lives on its root and 2 replicas: 3 of the 6 nodes, so some
# nodes survive whatever is killed).  A sipp phone on h2 registers bob00001 with its
# node.  The record's holders are found by asking every node for its stored records
# (control "records", key H(AoR)).  Every holder except bob's own node is SIGKILLed
# at once.  Then a phone on a surviving host other than bob's calls bob, one call per
# attempt, until one connects (at most $ATTEMPTS attempts, each bounded): the record
# is served again either by a surviving holder's copy (bob's node, when it was one)
# or by bob's node re-publishing it (every 30 s).  Then $CALLS more calls must all
# connect, and some surviving node other than bob's must store the record.
#
# Fails when: bob's REGISTER fails; no node other than bob's holds the record before
# the kill; no call connects within $ATTEMPTS attempts; any of the $CALLS calls
# after that fails; no survivor but bob's node stores the record at the end; a
# surviving node exits.  The log gives the time from the kill to the first call
# that connected.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-300}
it_begin "$@"
it_need sipp ip nft python3

N=6
CALLS=${IT_CALLS:-10}
ATTEMPTS=30
USERS=$IT_TMP/users.csv
it_users 1 "$USERS" bob
AOR=sip:bob00001@$IT_DOMAIN
p2psip_conf "$IT_DOMAIN"
printf '[p2p]\nreplicas = 2\n' >>"$P2PSIP_CONF"
all=()
for ((i = 1; i <= N; i++)); do all+=("n$i"); done

ovl_hosts_create "$N" --no-multicast
ovl_ring_up 40 "${all[@]}" -- --no-multicast --conf "$P2PSIP_CONF"
# Every leaf set complete (a ring of 6: everyone sees the 5 others), so the record is
# placed on its final root and replicas before we look for them.
for ((i = 1; i <= N; i++)); do
    ovl_wait "n$i" 30 "n$i to see the other $((N - 1)) in its leaf set" "f('leaf_count') >= $((N - 1))"
done

p2psip_register h2 reg "$USERS"
KEY=$(ovl_ctl n1 get "$AOR" | "$OVL_PY" -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["key"])') ||
    it_fail "get $AOR: no record"
it_log "$AOR: key $KEY"

# holders: the nodes (of those given) whose store has a live record under KEY.
holders() {
    local n
    for n in "$@"; do
        ovl_ctl "$n" records | "$OVL_PY" -c 'import json,sys
sys.exit(0 if any(r["key"] == sys.argv[1] and not r["tombstone"] for r in json.load(sys.stdin)) else 1)' \
            "$KEY" && echo "$n"
    done
}
# The record reaches the replicas after the put's quorum: wait (bounded) for root + 2.
# shellcheck disable=SC2016 # expanded by eval, at each poll
it_wait_until 10 "3 nodes to store the record" eval '[ "$(holders "${all[@]}" | wc -l)" -ge 3 ]'
mapfile -t held < <(holders "${all[@]}")
victims=()
for n in "${held[@]}"; do [ "$n" = n2 ] || victims+=("$n"); done
[ "${#victims[@]}" -gt 0 ] || it_fail "no node but bob's holds the record (holders: ${held[*]})"
survivors=()
for n in "${all[@]}"; do
    [[ " ${victims[*]} " == *" $n "* ]] || survivors+=("$n")
done
caller=""
for n in "${survivors[@]}"; do [ "$n" = n2 ] || { caller=$n; break; }; done
[ -n "$caller" ] || it_fail "no survivor to call from (holders: ${held[*]})"
ch=h${caller#n}
it_log "holders of the record: ${held[*]}; bob's node n2 $([[ " ${held[*]} " == *" n2 "* ]] && echo is || echo is not) one; killing ${victims[*]}; caller on $ch"

ovl_sipp_bg h2 uas_poll uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -default_behaviors -bye
it_wait_until 10 "bob's phone" ovl_udp_bound h2 5080

for v in "${victims[@]}"; do kill -KILL -- "-$(it_pid "$v")" || it_fail "cannot signal $v"; done
t_kill=$(date +%s.%N)
for v in "${victims[@]}"; do it_stop "$v" KILL; done

ok=0
for ((a = 1; a <= ATTEMPTS; a++)); do
    t0=$SECONDS
    if ovl_sipp "$ch" "poll_$a" 15 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$USERS" \
        -key domain "$IT_DOMAIN" -m 1 -rsa 127.0.0.1:5062 127.0.0.1:5062; then
        ok=1
        break
    fi
    # A failure answered at once (404/480 while nobody serves the record): pace the
    # attempts about 2 s apart.
    [ $((SECONDS - t0)) -ge 2 ] || sleep 2
done
t_ok=$(date +%s.%N)
[ "$ok" = 1 ] || it_fail "no call to $AOR connected in $ATTEMPTS attempts after the kill"
it_log "first call connected at attempt $a, $(it_elapsed "$t_ok" "$t_kill") s after the kill"
it_stop uas_poll

p2psip_calls h2 "$ch" after "$USERS" "$CALLS" 120 40 -r 5 -l 5

others=()
for n in "${survivors[@]}"; do [ "$n" = n2 ] || others+=("$n"); done
# The record reaches the new replicas by handoff once the dead are out of the leaf
# sets, or by bob's node re-publishing it (every 30 s): wait for it, bounded.
others_hold() { local h; h=$(holders "${others[@]}"); [ -n "$h" ]; }
it_wait_until 40 "a survivor other than bob's node to store the record" others_hold
mapfile -t now_held < <(holders "${others[@]}")
it_log "the record is now stored by ${now_held[*]} (and bob's node: $(holders n2 | wc -l))"
for n in "${survivors[@]}"; do
    it_alive "$n" || it_fail "$n exited"
    it_server_stop "$n"
done
it_pass "${#victims[@]} holders of $AOR SIGKILLed (${victims[*]}); calls connect again, $CALLS of $CALLS"

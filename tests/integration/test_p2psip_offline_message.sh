#!/usr/bin/env bash
#
# test_p2psip_offline_message.sh: a MESSAGE to a user who is offline is kept in the
# overlay, sealed to the user's key, and delivered when the user registers on
# another host (docs/P2PSIP.md, "A MESSAGE to a user who is offline").
#
# Hosts A (h1, p2psipd -s, no accounts: alice), B (h2) and C (h3); B and C hold the
# same accounts file with bob, so both derive bob's AoR key.  bob registers on B and
# unregisters (Expires: 0): his node publishes his owner record.  alice's phone on A
# sends a MESSAGE to bob: 202, kept.  Then:
#   - the mailbox value is in the DHT (a mailbox record held by some node) and the
#     text appears in no node's database, nor in any record `records` shows: sealed;
#   - A's node, which has no key of bob's, delivers nothing and keeps nothing for
#     itself (its mailbox counters say found 0);
#   - a MESSAGE to a user nobody ever registered gets 404, not 202; an OPTIONS to bob
#     gets 480 (a known user, offline: his owner record lives) and to nobody 404;
#   - bob's phone (sipp, uas_message.xml) registers on C: it gets the MESSAGE from
#     alice with the text, answers 200, and C's node then removes the value (a
#     tombstone signed by bob's key): no live mailbox value is left anywhere, and
#     registering again delivers nothing more.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-180}
it_begin "$@"
it_need sipp ip python3 sqlite3

USERS=$IT_TMP/users.csv
it_users 1 "$USERS" offl
BOB=sip:offl00001@$IT_DOMAIN
TEXT="hello bob, this waited for you $$"
it_accounts_p2psipd "$USERS" "$IT_TMP/accounts"
p2psip_conf "$IT_DOMAIN"
cp "$P2PSIP_CONF" "$IT_TMP/sip_noacc.conf"
cat >>"$P2PSIP_CONF" <<EOF
[auth]
accounts = $IT_TMP/accounts
realm = $IT_REALM
algorithms = md5
EOF

ovl_hosts_create 3 --no-multicast
boot=$(host_ip h1):7560
p2psip_node_start h1 nA --server --no-multicast --conf "$IT_TMP/sip_noacc.conf"
p2psip_node_start h2 nB --boot "$boot" --no-multicast --conf "$P2PSIP_CONF"
p2psip_node_start h3 nC --boot "$boot" --no-multicast --conf "$P2PSIP_CONF"
for n in nA nB nC; do
    ovl_wait "$n" 40 "$n to be a member with 2 leaves" \
        "f('role') in ('member', 'super-node') and f('leaf_count') == 2"
done

register_bob() { # register_bob H NAME EXPIRES (0: unregister)
    local scen=register_auth.xml
    [ "$3" != 0 ] || scen=unregister_auth.xml
    ovl_sipp "$1" "$2" 60 "$scen" -i 127.0.0.1 -p 5070 -t u1 -inf "$USERS" \
        -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5080 -key expires "$3" \
        -auth_uri "$IT_DOMAIN" -m 1 127.0.0.1:5062
    it_sipp_expect "$2" $? 1
}
message() { # message H TO: prints the final status line of alice's MESSAGE on H
    host_run "$1" 15 "$OVL_PY" "$OVL_TOOLS/sip_message.py" 127.0.0.1 5062 \
        "sip:alice@$IT_DOMAIN" "$2" "$TEXT"
}
mailbox() { # mailbox NODE FIELD: a mailbox counter of NODE
    ovl_field "$1" counters "$2" 2>/dev/null | tail -n 1
}
mailbox_values() { # mailbox_values: live mailbox values held by any node
    local n total=0 k
    for n in nA nB nC; do
        k=$(ovl_ctl "$n" records --json 2>/dev/null | "$OVL_PY" -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin) if r.get("mailbox") and not r["tombstone"]))') || k=0
        total=$((total + k))
    done
    echo "$total"
}

# bob comes and goes on B: his node leaves his owner record in the DHT.
register_bob h2 reg_on 600
register_bob h2 reg_off 0
ovl_wait nB 15 "B's node to publish bob's owner record" "f('owner_puts') >= 2" counters

# alice, on A, writes to bob while he is offline.
got=$(message h1 "$BOB") || it_fail "alice's MESSAGE got no final response ($got)"
[ "${got%% *}" = 202 ] || it_fail "alice's MESSAGE to offline bob: got '$got', want 202"
it_log "alice's MESSAGE to offline bob: $got"
[ "$(mailbox nA kept)" = 1 ] || it_fail "A's node did not count the kept message"

# Sealed: the mailbox value is held, and its text is in no database or record.
it_wait_until 10 "a node to hold the mailbox value" eval '[ "$(mailbox_values)" -ge 1 ]'
held=$(mailbox_values)
for n in nA nB nC; do
    ovl_ctl "$n" records --json | grep -qF "$TEXT" && it_fail "$n shows the text in clear"
    db=${OVL_DIR[$n]}/p2psip.db
    sqlite3 "$db" .dump 2>/dev/null | grep -qF "$TEXT" && it_fail "$n's database holds the text in clear"
    grep -qaF "$TEXT" "$db" "$db-wal" 2>/dev/null && it_fail "$n's database file holds the text in clear"
done
it_log "$held node(s) hold the sealed value; the text is in no record or database"

# Nobody ever registered: nothing to keep it for.
got=$(message h1 "sip:nobody@$IT_DOMAIN") || it_fail "MESSAGE to nobody: no final response ($got)"
[ "${got%% *}" = 404 ] || it_fail "MESSAGE to a user nobody registered: got '$got', want 404"
# Another method is not kept: a known user who is offline is 480 (his owner record
# lives), an unknown one 404.
options() {
    host_run h1 15 "$OVL_PY" "$OVL_TOOLS/sip_message.py" 127.0.0.1 5062 "sip:alice@$IT_DOMAIN" "$1" "" OPTIONS
}
got=$(options "$BOB") || it_fail "OPTIONS to bob: no final response ($got)"
[ "${got%% *}" = 480 ] || it_fail "OPTIONS to offline bob: got '$got', want 480 (known, not reachable)"
got=$(options "sip:nobody@$IT_DOMAIN") || it_fail "OPTIONS to nobody: no final response ($got)"
[ "${got%% *}" = 404 ] || it_fail "OPTIONS to a user nobody registered: got '$got', want 404"

# bob registers on C: his phone gets the message, and the value goes.
ovl_sipp_bg h3 uas_bob uas_message.xml -i 127.0.0.1 -p 5080 -t u1 -m 1 -trace_counts
it_wait_until 10 "bob's phone on C" ovl_udp_bound h3 5080
register_bob h3 reg_c 600
it_wait_until 20 "bob's phone to get the kept MESSAGE" eval "! it_alive uas_bob"
it_stop uas_bob
it_sipp_expect uas_bob "${IT_EXIT_OF[uas_bob]}" 1
ovl_wait nC 15 "C's node to count the delivery and the removal" \
    "f('delivered') == 1 and f('cleared') == 1" counters
it_wait_until 15 "no live mailbox value to be left after the delivery" \
    eval '[ "$(mailbox_values)" = 0 ]'
[ "$(mailbox nA found)" = 0 ] || it_fail "A's node found a message it should not be able to read"

# Registering again delivers nothing more.
register_bob h3 reg_c2 600
[ "$(mailbox nC found)" = 1 ] || it_fail "C's node found the message again: $(mailbox nC found)"
for n in nA nB nC; do it_alive "$n" || it_fail "$n exited"; done
it_pass "kept on A while bob was offline, sealed, delivered on C when bob registered there, removed"

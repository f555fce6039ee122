#!/usr/bin/env bash
#
# test_p2psip_rogue.sh: a node cannot take over, or remove, an AoR another node's key
# owns.
#
# Hosts A (h1, p2psipd -s), B (h2) and R (h3), one node each, no accounts file: the
# record of an AoR is then signed by the key of the node its phone registered with
# (locator_dht.h, Ownership).  A sipp phone on B registers bob00001; the DHT holds
# one record for it, owned by B's node.  Then a phone on R registers the same AoR
# with R's node (tools/sip_register.py): R's node signs its record with its own key,
# the root refuses it (-EPERM: another owner) and the REGISTER gets 403.  The
# refusal is counted by the DHT node that refused it (counters: dht.records_refused;
# the locator's own put_refused is not in the counters).  The DHT still holds only
# B's record, and calls from a phone on A reach bob's phone on B.  Then R's phone
# sends an un-REGISTER (Expires: 0): whatever R's node answers, B's record stays as
# it was (same value id, owner, not a tombstone, no record from R) and calls from A
# still reach B.
#
# Fails when: B's REGISTER is not answered 200; R's REGISTER gets anything but 403;
# no node counts a refused record; R's node gets a record of the AoR into the DHT or
# B's record changes owner or becomes a tombstone; any call from A fails; a node
# exits.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-240}
it_begin "$@"
it_need sipp ip nft python3

CALLS=${IT_CALLS:-10}
USERS=$IT_TMP/users.csv
it_users 1 "$USERS" bob
USER=bob00001
AOR=sip:$USER@$IT_DOMAIN
p2psip_conf "$IT_DOMAIN"

ovl_hosts_create 3 --no-multicast
ovl_ring_up 30 nA nB nR -- --no-multicast --conf "$P2PSIP_CONF"
idB=$(ovl_node_id nB)
idR=$(ovl_node_id nR)

# check_records TAG: A's node reads H(AoR): exactly one live record, B's (value id
# H("p2psip-binding:" || B's ID)); its owner is printed, and must equal $OWNER if set.
check_records() {
    local recs
    recs=$(ovl_ctl nA get "$AOR") || it_fail "$1: get $AOR from A's node: $recs"
    "$OVL_PY" - "$recs" "$idB" "$idR" "${OWNER:-}" <<'EOF' || it_fail "$1: the DHT's records of $AOR: $recs"
import hashlib, json, sys
recs, b, r, owner = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
vid = lambda n: hashlib.blake2b(b"p2psip-binding:" + bytes.fromhex(n), digest_size=20).hexdigest()
if any(x["value_id"] == vid(r) for x in recs):
    sys.exit("a record from R's node is in the DHT")
if len(recs) != 1 or recs[0]["value_id"] != vid(b) or recs[0]["tombstone"]:
    sys.exit("want exactly B's live record")
if owner and recs[0]["owner"] != owner:
    sys.exit("B's record changed owner")
print(recs[0]["owner"])
EOF
}

refused_sum() {
    local n s=0 v
    for n in nA nB nR; do
        v=$(ovl_counter "$n" records_refused)
        s=$((s + v))
        printf '%s=%s ' "$n" "$v" >&2
    done
    echo "$s"
}

calls() {
    p2psip_calls h2 h1 "$1" "$USERS" "$CALLS" 120 40 -r 5 -l 5
    it_log "$1: $CALLS calls from A reached bob's phone on B"
}

p2psip_register h2 reg_B "$USERS"
OWNER=$(check_records "after B's REGISTER")
it_log "$AOR: one record, B's, owner key $OWNER"
calls before

# R's phone registers bob with R's node.
before=$(refused_sum 2>"$IT_TMP/refused_before")
st=$(host_run h3 15 "$OVL_PY" "$OVL_TOOLS/sip_register.py" 127.0.0.1 5062 "$USER" "$IT_DOMAIN" 300) ||
    it_fail "R's REGISTER got no final response: $st"
it_log "R's REGISTER of $AOR: $st"
[[ $st == 403* ]] || it_fail "R's REGISTER of $AOR got '$st', want 403"
after=$(refused_sum 2>"$IT_TMP/refused_after")
it_log "dht.records_refused before: $(cat "$IT_TMP/refused_before")after: $(cat "$IT_TMP/refused_after")"
[ "$after" -gt "$before" ] || it_fail "no node counted the refused record (dht.records_refused $before -> $after)"
check_records "after R's REGISTER" >/dev/null
calls after_register

# R's phone tries to remove the binding.
st=$(host_run h3 15 "$OVL_PY" "$OVL_TOOLS/sip_register.py" 127.0.0.1 5062 "$USER" "$IT_DOMAIN" 0) ||
    it_fail "R's un-REGISTER got no final response: $st"
it_log "R's un-REGISTER of $AOR (Expires: 0): $st"
check_records "after R's un-REGISTER" >/dev/null
calls after_unregister

for n in nA nB nR; do
    it_alive "$n" || it_fail "$n exited"
    it_server_stop "$n"
done
it_pass "R's REGISTER of $AOR refused (403, counted in dht.records_refused), its un-REGISTER changed nothing, calls from A still reach B"

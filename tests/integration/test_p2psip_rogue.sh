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
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-240}
it_begin "$@"
it_need sipp ip nft python3

CALLS=${IT_CALLS:-10}
USERS=$IT_TMP/users.csv
it_users 1 "$USERS" bob
USER=bob00001
AOR=sip:$USER@$IT_DOMAIN
printf '[sip]\ndomain = %s\n' "$IT_DOMAIN" >"$IT_TMP/phones.conf"

ovl_hosts_create 3 --no-multicast
BOOT=$(host_ip h1):7560
ovl_node_start h1 nA --server --no-multicast --conf "$IT_TMP/phones.conf"
ovl_node_start h2 nB --boot "$BOOT" --no-multicast --conf "$IT_TMP/phones.conf"
ovl_node_start h3 nR --boot "$BOOT" --no-multicast --conf "$IT_TMP/phones.conf"
for n in nA nB nR; do
    ovl_wait "$n" 30 "$n to be a ring member" "f('role') in ('member', 'super-node')"
done
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
    local tag=$1
    ovl_sipp_bg h2 "uas_$tag" uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -m "$CALLS" \
        -trace_counts -default_behaviors -bye
    it_wait_until 10 "bob's phone on B" ovl_udp_bound h2 5080
    ovl_sipp h1 "uac_$tag" 120 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$USERS" \
        -key domain "$IT_DOMAIN" -m "$CALLS" -r 5 -l 5 -rsa 127.0.0.1:5062 127.0.0.1:5062
    it_sipp_expect "uac_$tag" $? "$CALLS"
    it_wait_until 40 "bob's phone to finish its $CALLS calls" eval "! it_alive uas_$tag"
    it_stop "uas_$tag"
    it_sipp_expect "uas_$tag" "${IT_EXIT_OF[uas_$tag]}" "$CALLS"
    it_log "$tag: $CALLS calls from A reached bob's phone on B"
}

ovl_sipp h2 reg_B 60 register.xml -i 127.0.0.1 -p 5070 -t u1 -inf "$USERS" \
    -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5080 -key expires 600 -m 1 127.0.0.1:5062
it_sipp_expect reg_B $? 1
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

#!/usr/bin/env bash
#
# test_p2psip_fork.sh: one AoR registered on two hosts rings on both; the first to
# answer gets the call and the other one is cancelled.
#
# Hosts A (h1, p2psipd -s), B (h2) and D (h3), one node each, all with the same
# accounts file (digest, md5) holding the AoR fork00001: every node derives the same
# signing key for its record (locator_dht.h, Ownership), so both B's and D's node
# may publish for it.  A sipp phone on B and one on D register the AoR with their
# own node (register_auth.xml: 401, then 200).  The DHT then holds two records under
# H(AoR), one per node (value ids differ), with the same owner key.  A sipp UAC on A
# calls the AoR $CALLS times, one call at a time: A's node finds both nodes in the DHT
# and forks the INVITE over two pipes.  B's phone (uas_overlay.xml) answers 180 and
# 200 at once; D's phone (uas_ring_cancel.xml) answers 180 and waits, so A's node
# cancels D's branch: D's phone must get a CANCEL, answer 200 and 487, and get the ACK.
#
# Fails when: a REGISTER is not answered 200; the DHT does not hold the two records
# with one owner; any call fails at the caller; B's phone does not complete every
# call or D's phone does not get every INVITE and its CANCEL; a node exits.
set -u
here=$(dirname "$0"); [ -f "$here/p2psip.sh" ] || here=$here/..
. "$here/p2psip.sh"
IT_TIMEOUT=${IT_TIMEOUT:-240}
it_begin "$@"
it_need sipp ip nft python3

CALLS=${IT_CALLS:-5}
USERS=$IT_TMP/users.csv
it_users 1 "$USERS" fork
AOR=sip:fork00001@$IT_DOMAIN
it_accounts_p2psipd "$USERS" "$IT_TMP/accounts"
p2psip_conf "$IT_DOMAIN"
cat >>"$P2PSIP_CONF" <<EOF
[auth]
accounts = $IT_TMP/accounts
realm = $IT_REALM
algorithms = md5
EOF

ovl_hosts_create 3 --no-multicast
ovl_ring_up 30 nA nB nD -- --no-multicast --conf "$P2PSIP_CONF"

# The same AoR from a phone on B and one on D, each through its own node.
for hn in h2:B h3:D; do
    h=${hn%:*} x=${hn#*:}
    p2psip_register "$h" "reg_$x" "$USERS" --auth
done

# Two records under H(AoR), one from each node, signed by the one account key.
recs=$(ovl_ctl nA get "$AOR") || it_fail "get $AOR from A's node: $recs"
idB=$(ovl_node_id nB)
idD=$(ovl_node_id nD)
"$OVL_PY" - "$recs" "$idB" "$idD" <<'EOF' || it_fail "the DHT's records of $AOR: $recs"
import hashlib, json, sys
recs = [r for r in json.loads(sys.argv[1]) if not r["tombstone"]]
want = {hashlib.blake2b(b"p2psip-binding:" + bytes.fromhex(n), digest_size=20).hexdigest()
        for n in sys.argv[2:]}
got = {r["value_id"] for r in recs}
owners = {r["owner"] for r in recs}
print("value ids", sorted(got), "owners", sorted(owners), file=sys.stderr)
sys.exit(0 if got == want and len(recs) == 2 and len(owners) == 1 else 1)
EOF
it_log "the DHT holds B's and D's records of $AOR, one owner key"

ovl_sipp_bg h2 uas_B uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -m "$CALLS" -trace_counts \
    -default_behaviors -bye
ovl_sipp_bg h3 uas_D uas_ring_cancel.xml -i 127.0.0.1 -p 5080 -t u1 -m "$CALLS" -trace_counts \
    -default_behaviors -bye
it_wait_until 10 "B's phone" ovl_udp_bound h2 5080
it_wait_until 10 "D's phone" ovl_udp_bound h3 5080

ovl_sipp h1 uac 120 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$USERS" -key domain "$IT_DOMAIN" \
    -trace_counts -m "$CALLS" -r 1 -l 1 -rsa 127.0.0.1:5062 127.0.0.1:5062
it_sipp_expect uac $? "$CALLS"
for x in B D; do
    it_wait_until 40 "$x's phone to finish its $CALLS calls" eval "! it_alive uas_$x"
    it_stop "uas_$x"
    it_sipp_expect "uas_$x" "${IT_EXIT_OF[uas_$x]}" "$CALLS"
done
inv=$(it_sipp_count uas_D INVITE)
can=$(it_sipp_count uas_D CANCEL)
if [ "$inv" != "$CALLS" ] || [ "$can" != "$CALLS" ]; then
    it_fail "D's phone got ${inv:-?} INVITEs and ${can:-?} CANCELs (want $CALLS each)"
fi
it_log "caller: $(it_sipp_count uac 180) 180s, $(it_sipp_count uac 200) 200s"

for n in nA nB nD; do
    it_alive "$n" || it_fail "$n exited during the calls"
    it_server_stop "$n"
done
it_pass "$CALLS calls to $AOR forked to B and D: B answered each, D was cancelled each time"

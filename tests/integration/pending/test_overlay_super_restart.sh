#!/usr/bin/env bash
#
# test_overlay_super_restart.sh: the node that started the ring (-s) restarts, and the
# overlay stays one ring (node_roles.c: a restarted -s node first rejoins through the
# peers it saved, and starts a new ring only when none of them answers).
#
# x1 (-s) on h1, x2 on h2, x3 on h3 (-S x1, no multicast): one ring.  x1 is stopped
# (SIGTERM) and x2 and x3 repair their leaf sets without it.  x1 starts again with -s
# on the same data directory: it must come back into the same ring (x2 and x3 in its
# leaf set, and it in theirs), not start a ring of its own beside it.  Then x4 on h4
# joins through x1 only (-S x1): its leaf set holds x1, x2 and x3, and a record put
# on x2 before the restart is read on x4.
#
# PENDING (not run by ctest): flaky.  It passed 3 of 5 runs here; in the others the
# restarted x1's JOINs through x2 and x3 timed out three times in a row (6 s each)
# and x1 fell back to a ring of its own after 3 cutoffs, as before the change.  The
# suspicion is the channel x2 still holds with x1's previous process: a JOIN_REPLY
# sealed for the old session would never open at x1.  A seeking node does not hit
# this because its ATTACH round trip confirms the channel before it joins.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip python3

ovl_hosts_create 4 --no-multicast
ovl_ring_up 30 x1 x2 x3 -- --no-multicast
for n in x1 x2 x3; do
    ovl_wait "$n" 20 "$n to have 2 leaves" "f('leaf_count') == 2"
done
X1=$(ovl_node_id x1)
out=$(ovl_ctl x2 put before-restart kept --ttl 600) || it_fail "put on x2: $out"
# x1 saves its peers every 30 s: wait for a save, so that the restart finds them.
it_wait_until 40 "x1 to save its peers" sh -c \
    "sqlite3 '${OVL_DIR[x1]}/p2psip.db' 'select count(*) from node_peer' 2>/dev/null | grep -qv '^0\$'"

it_stop x1 TERM
for n in x2 x3; do
    ovl_wait "$n" 30 "$n to drop x1 from its leaf set" "f('leaf_count') == 1"
done
it_log "x1 stopped; x2 and x3 repaired their leaf sets without it"

ovl_node_start h1 x1 --server --no-multicast
ovl_wait x1 45 "x1 to rejoin with x2 and x3 as leaves" \
    "f('role') == 'super-node' and f('leaf_count') == 2"
[ "$(ovl_node_id x1)" = "$X1" ] || it_fail "x1 came back with another node ID"
for n in x2 x3; do
    ovl_wait "$n" 20 "x1 back in $n's leaf set" "f('leaf_count') == 2"
done
it_log "x1 restarted with -s and rejoined the ring"

ovl_node_start h4 x4 --boot "$(host_ip h1):7560" --no-multicast
ovl_wait x4 40 "x4 to be a member with 3 leaves" \
    "f('role') == 'member' and f('leaf_count') == 3"
ids=$(ovl_ctl x4 leafset | "$OVL_PY" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(sorted({p["id"] for p in d["preds"] + d["succs"]})))')
want=$(for n in x1 x2 x3; do ovl_node_id "$n"; done | sort | tr '\n' ' ' | sed 's/ $//')
[ "$ids" = "$want" ] || it_fail "x4's leaf set is {$ids}, want {$want}: two rings"
v=$(ovl_ctl x4 get before-restart | "$OVL_PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["value"])') ||
    it_fail "get on x4 failed"
[ "$v" = kept ] || it_fail "the record put before the restart reads '$v' on x4"
it_pass "a restarted -s node rejoined its ring; a node joining through it sees one ring"

#!/usr/bin/env bash
#
# test_overlay_restart.sh: when a node restarts (same identity, from its database),
# a client whose super-node it was notices that its session is gone and attaches
# again (overlay_node.h "Health": a cut-off node keeps retrying its bootstrap list
# and is healthy again as soon as a peer answers).
#
# x1 (-s) on h1, x2 on h2, x3 on h3: ring members.  c on h4, behind a NAT (so it
# stays a client), given -S x2 only, cutoff 4 s: a client of x2.  x2 is stopped
# (SIGTERM) and started again on the same data directory.  Checks: x2 comes back
# with the same node ID and in the ring (2 leaves); within 30 s of x2's restart a put
# from c works again and is read back on x3, and c is a healthy client of x2.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 4
ovl_hosts_nat h4
X1_IP=$(host_ip h1)
X2_IP=$(host_ip h2)
ovl_ring_start x1 x2 x3
for n in x2 x3; do ovl_wait "$n" 25 "role member" "f('role') == 'member' and f('leaf_count') == 2"; done
ovl_node_start h4 c --boot "$X2_IP:7560" --cutoff 4
X2=$(ovl_node_id x2)
ovl_wait c 15 "a client of x2" "f('role') == 'client' and (f('super') or {}).get('id') == '$X2'"

it_stop x2 TERM
[ "${IT_EXIT_OF[x2]}" = 0 ] || it_fail "x2 exit status ${IT_EXIT_OF[x2]} on SIGTERM"
mv "$IT_TMP/x2.log" "$IT_TMP/x2.first.log"
ovl_node_start h2 x2 --boot "$X1_IP:7560"
t0=$SECONDS
[ "$(ovl_node_id x2)" = "$X2" ] || it_fail "x2 came back with another node ID"
ovl_wait x2 25 "x2 back in the ring" "f('role') == 'member' and f('leaf_count') == 2 and f('isolated') is False"
it_log "x2 back in the ring $((SECONDS - t0)) s after its restart"
# c only learns that its session is gone from x2's silence (cutoff 4 s); until then
# its status still says client.  What counts is a put that works again.
put_works() {
    ovl_ctl c put after-restart "put by c after x2 restarted" >/dev/null 2>&1 || return 1
    local got
    got=$(ovl_ctl x3 get after-restart 2>/dev/null) || return 1
    "$OVL_PY" -c 'import json,sys; sys.exit(0 if [r["value"] for r in json.loads(sys.argv[1])] == ["put by c after x2 restarted"] else 1)' "$got"
}
deadline=$((t0 + 30))
until put_works; do
    [ "$SECONDS" -lt "$deadline" ] || it_fail "30 s after x2's restart a put from c still fails: $(ovl_ctl c put after-restart x 2>&1); c's status: $(ovl_ctl c status 2>&1 | head -c 500); c's peers: $(ovl_ctl c peers 2>&1); x2's dropped_nosession: $(ovl_field x2 counters dropped_nosession 2>&1)"
    sleep 0.5
done
it_log "a put from c works again $((SECONDS - t0)) s after x2 restarted"
ovl_wait c 5 "a healthy client of x2" \
    "f('role') == 'client' and f('isolated') is False and (f('super') or {}).get('id') == '$X2'"
it_pass "c works through x2 again $((SECONDS - t0)) s after x2 restarted"

#!/usr/bin/env bash
#
# test_overlay_failover_single.sh: a client that was given one bootstrap node only
# fails over to another member when that node dies: its super-node told it of other
# members when it attached (ATTACH_ACK, docs/OVERLAY-WIRE.md), since a client sits in
# no leaf set and hears no multicast behind its NAT.
#
# n1 (-s) on h1, n2 on h2, n3 on h3 (-S n1): ring members.  c on h4, behind a NAT, is
# given -S h1:7560 only, cutoff 4 s: a client of n1.  n1 is SIGKILLed.  Within 30 s c
# must be a healthy client (isolated: false) of n2 or n3, and a put from it must be
# read back on a member.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip nft python3

ovl_hosts_create 4 --no-multicast
ovl_hosts_nat h4
ovl_ring_up 30 n1 n2 n3 -- --no-multicast
for n in n1 n2 n3; do ovl_wait "$n" 20 "$n to have 2 leaves" "f('leaf_count') == 2"; done
N1=$(ovl_node_id n1)
ovl_node_start h4 c --boot "$(host_ip h1):7560" --cutoff 4 --no-multicast
ovl_wait c 15 "a client of n1" "f('role') == 'client' and (f('super') or {}).get('id') == '$N1'"

kill -9 "$(it_pid n1)" || it_fail "cannot kill n1"
ovl_wait c 30 "a healthy client of another member" \
    "f('role') == 'client' and f('isolated') is False and (f('super') or {}).get('id') not in (None, '$N1')"
s=$(ovl_field c status super) || it_fail "c: no super"
it_log "c failed over from n1 to $s"
out=$(ovl_ctl c put after-failover here --ttl 600) || it_fail "put from c after the failover: $out"
v=$(ovl_ctl n2 get after-failover | "$OVL_PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["value"])') ||
    it_fail "get on n2 failed"
[ "$v" = here ] || it_fail "n2 reads '$v', want 'here'"
it_pass "a client given one bootstrap node failed over to another member when it died"

#!/usr/bin/env bash
# test_overlay_addr_change.sh: a node whose host changes address tells its peers at once.
#
# h1 runs `p2psipd -s`, h2 joins it.  Then h2's address changes: a new one is added
# and the old one removed (a new DHCP lease, a cable moved to another port).  h2's
# node notices within its 2 s address check and sends a keep-alive to every peer from
# the new address; h1 follows the authenticated source (like WireGuard's roaming).
# Checks: within 5 s of the change h1 lists h2 at its new address; a pipe datagram
# from h1 reaches h2 and its echo comes back; a record put on h1 is read on h2.
#
# Fails when: h1 still has the old address after 5 s, the echo or the record does not
# get through, or a node exits.
here=$(dirname "$0"); [ -f "$here/hosts.sh" ] || here=$here/..
source "$here/hosts.sh"
it_begin "$@"

CTL=$IT_BUILD/p2psipd/p2psipctl
printf '[p2p]\npromote_after = 2\n' >"$IT_TMP/node.conf"
ctl() { host_exec "$1" "$CTL" --control "$IT_TMP/$1/control.sock" --json "${@:2}"; }
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"; }
is_member() {
    local r
    r=$(ctl "$1" status 2>/dev/null | field role 2>/dev/null) || return 1
    [ "$r" = member ] || [ "$r" = super-node ]
}
# h1 lists node $1 at address $2.
h1_sees() {
    ctl h1 peers 2>/dev/null | python3 -c '
import json, sys
want_id, want_addr = sys.argv[1], sys.argv[2]
sys.exit(0 if any(p["id"] == want_id and p["addr"] == want_addr for p in json.load(sys.stdin)) else 1)' "$1" "$2"
}

hosts_create 2 --no-multicast
mkdir -p "$IT_TMP/h1" "$IT_TMP/h2"
host_start h1 n1 "$IT_BUILD/p2psipd/p2psipd" -s --data-dir "$IT_TMP/h1" --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 20 "h1's ring" is_member h1
host_start h2 n2 "$IT_BUILD/p2psipd/p2psipd" -S "$(host_ip h1):7560" --data-dir "$IT_TMP/h2" \
    --config "$IT_TMP/node.conf" ${IT_P2PSIPD_ARGS:-}
it_wait_until 30 "h2 to join" is_member h2
id2=$(ctl h2 status | field node_id)
old=$(host_ip h2)
it_wait_until 10 "h1 to list h2 at $old" h1_sees "$id2" "$old:7560"

new=198.18.0.77
# Keep the new address when the old (primary) one goes: by default Linux deletes the
# secondary addresses of a subnet with its primary.
host_exec h2 sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1 ||
    it_fail "cannot set promote_secondaries in h2"
host_addr_add h2 "$new/24"
host_addr_del h2 "$old/24"
t0=$SECONDS
it_wait_until 5 "h1 to list h2 at its new address $new" h1_sees "$id2" "$new:7560"
it_log "h1 follows h2 to $new after $((SECONDS - t0)) s"

out=$(ctl h1 pipe-ping "$id2") || it_fail "no pipe echo from h2 after its move: $out"
ctl h1 put moved-key here --ttl 600 >/dev/null || it_fail "put on h1 after the move"
got() { [ "$(ctl h2 get moved-key 2>/dev/null | field 0.value 2>/dev/null)" = here ]; }
it_wait_until 10 "h2 to read the record put on h1" got
grep -q "addresses changed" "$IT_TMP/n2.log" || it_fail "h2 did not notice its address change"

for n in n1 n2; do it_server_stop "$n"; done
it_pass "a node that changed address was followed by its peer within 5 s; pipe and DHT work"

#!/usr/bin/env bash
#
# test_overlay_trust.sh: the role messages of the overlay are taken only from the peer
# they belong to (docs/OVERLAY-WIRE.md, Inner messages).  A peer holding the overlay
# secret, with a genuine channel (tools/p2p_rogue ctl), cannot:
#   - make a seeking node its client with an ATTACH_ACK the node never asked for:
#     s3 (on h3, bootstrap list naming nobody) stays seeking, and counts the drop;
#   - answer a node's proxied DHT requests unless it is that node's super-node: a
#     PROXY_REPLY from it is dropped and counted (s3, and the ring member x1);
#   - make a member probe another host: once attached to x1 as a client, its probe
#     request for h3's address is refused (probes_refused), no probe is sent, and the
#     answer says "not reachable".
# Legitimate attachment and promotion still work (x2 joined through them), and every
# node still answers at the end.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip python3
ROGUE=$IT_BUILD/tests/integration/tools/p2p_rogue
[ -x "$ROGUE" ] || it_fail "p2p_rogue not built: $ROGUE (target p2p_rogue)"

ovl_hosts_create 3 --no-multicast
ovl_ring_up 30 x1 x2 -- --no-multicast
# s3 seeks a super-node that does not exist: it stays seeking.
ovl_node_start h3 s3 --boot 198.18.0.99:7560 --no-multicast
ovl_wait s3 10 "s3 to be seeking" "f('role') == 'seeking'"

counter() { ovl_counter "$1" "$2"; }
rogue() { # rogue TARGET_HOST_IP: p2p_rogue ctl from h2 against it, probe target h3
    host_run h2 60 "$ROGUE" ctl "$1" 7560 - "$(host_ip h3)" 7560 >"$IT_TMP/rogue.out" 2>"$IT_TMP/rogue.err"
    local st=$?
    cat "$IT_TMP/rogue.out" >&2
    [ "$st" -eq 0 ] || it_fail "p2p_rogue against $1: exit status $st: $(tail -n 5 "$IT_TMP/rogue.err" | tr '\n' '|')"
    grep -qx alive "$IT_TMP/rogue.out" || it_fail "p2p_rogue against $1 did not report 'alive'"
}

# 1. The seeking node.
d0=$(counter s3 dropped_inner)
rogue "$(host_ip h3)"
ovl_wait s3 5 "s3 to still be seeking" "f('role') == 'seeking'"
d1=$(counter s3 dropped_inner)
# the ATTACH_ACK and the PROXY_REPLY; the ATTACH (a seeker has no ring to offer) and
# the probe request (from no client of its) are refused too
[ $((d1 - d0)) -ge 2 ] || it_fail "s3 counted $((d1 - d0)) refused inner messages, want >= 2"
it_log "s3 stayed seeking; $((d1 - d0)) inner messages refused"

# 2. The ring member: attach, then ask for a probe of another host.
d0=$(counter x1 dropped_inner)
r0=$(counter x1 probes_refused)
p0=$(counter x1 probes_sent)
rogue "$(host_ip h1)"
grep -qx "attached 0" "$IT_TMP/rogue.out" || it_fail "x1 did not take the rogue as a client: $(cat "$IT_TMP/rogue.out")"
d1=$(counter x1 dropped_inner)
r1=$(counter x1 probes_refused)
p1=$(counter x1 probes_sent)
[ $((d1 - d0)) -ge 1 ] || it_fail "x1 took a PROXY_REPLY from a peer that is not its super-node"
[ $((r1 - r0)) -eq 1 ] || it_fail "x1 refused $((r1 - r0)) probe requests, want 1"
[ "$p1" -eq "$p0" ] || it_fail "x1 sent $((p1 - p0)) probes for the rogue, want 0"
it_log "x1: probe of another host refused, none sent; $((d1 - d0)) inner messages refused"

for n in x1 x2 s3; do
    ovl_ctl "$n" status >/dev/null || it_fail "$n does not answer after the rogue"
done
ovl_wait x2 5 "x2 still a member" "f('role') == 'member'"
it_pass "unasked ATTACH_ACK, foreign PROXY_REPLY and a probe of another host: refused and counted"

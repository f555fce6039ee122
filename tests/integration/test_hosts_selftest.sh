#!/usr/bin/env bash
#
# test_hosts_selftest.sh: proves the multi-host harness (hosts.sh) the daemon tests
# build on.  Three parts:
#   A. 3 hosts, multicast LAN, IPv4+IPv6: every host reaches every other (ICMP echo,
#      both families); a datagram h1 sends to 239.255.75.60 (TTL 1) and to ff02::7560
#      reaches h2 and h3; host_link_down h2 (carrier, then --silent) makes h2
#      unreachable both ways while its process lives, host_link_up restores it;
#      hosts_nat h3: h3 reaches h1 and gets a UDP reply, its datagrams come from the
#      router's address with the source port kept, and later datagrams of that flow
#      reach h3 too; h1 gets nothing else through to h3 (not to its inside address
#      even with a route, not through the router's address, not from another port to
#      h3's mapped port), while a test-only accept rule in the router lets the same
#      direct datagram through (so the check can fail);
#      hosts_destroy leaves no namespace, link or process.
#   B. 3 hosts with --no-multicast: unicast (ICMP, UDP; IPv4 and IPv6, i.e. ARP and
#      neighbour discovery) works; multicast of either family reaches no one.
#   C. A child test with hosts, a NAT router and processes in two hosts is stopped
#      with SIGTERM: its EXIT trap leaves no namespace, no link, no process, no files.
#
# Fails when any of those does not hold.
set -u
here=$(dirname "$0"); [ -f "$here/hosts.sh" ] || here=$here/..
. "$here/hosts.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip nft python3

G4=239.255.75.60
G6=ff02::7560

# probe H NAME ARGS...: $HOSTS_PROBE ARGS in H, in the background (host_start).
probe() {
    local h=$1 name=$2
    shift 2
    host_start "$h" "$name" "$HOSTS_PY" "$HOSTS_PROBE" "$@"
}

# ready NAME...: until each receiver listens.
ready() {
    local n
    for n in "$@"; do it_wait_log "$n" '^ready ' 10; done
}

# finish NAME: waits (15 s at most) for a probe to end; its exit status in ST.
finish() {
    it_wait_until 15 "$1 to finish" eval "! it_alive $1"
    it_stop "$1"
    ST=${IT_EXIT_OF[$1]}
}

# expect NAME STATUS WHY: the probe NAME ended with STATUS, or the test fails.
expect() {
    finish "$1"
    [ "$ST" = "$2" ] || it_fail "$3 ($1 exit status $ST, want $2: $(tr '\n' ' ' <"$IT_TMP/$1.log"))"
}

# tx H NAME ADDR PORT TOKEN [send options]: a sender in H, in the foreground (15 s at
# most), output appended to $IT_TMP/NAME.log; returns its status.
tx() {
    local h=$1 name=$2
    shift 2
    host_run "$h" 15 "$HOSTS_PY" "$HOSTS_PROBE" send "$@" >>"$IT_TMP/$name.log" 2>&1
}

has() { grep -Eq -- "$2" "$IT_TMP/$1.log"; }

# mesh HOST...: every host reaches every other one over IPv4 and IPv6 (all at once).
mesh() {
    local a b addrs
    for a in "$@"; do
        addrs=()
        for b in "$@"; do
            [ "$a" = "$b" ] || addrs+=("$(host_ip "$b")" "$(host_ip6 "$b")")
        done
        probe "$a" "mesh_$a" ping --tries 5 "${addrs[@]}"
    done
    for a in "$@"; do expect "mesh_$a" 0 "$a does not reach every other host"; done
}

# nothing_left WHAT: no host namespace, no bridge, no veth in the test's namespace.
nothing_left() {
    local ns links
    ns=$(ip netns list)
    [ -z "$ns" ] || it_fail "$1: namespaces left: $ns"
    links=$( (ip -o link show type bridge; ip -o link show type veth) | awk -F': ' '{print $2}' | tr '\n' ' ')
    [ -z "$links" ] || it_fail "$1: bridge or veth links left in the test namespace: $links"
}

# ---------------------------------------------------------------------------------
# A. Multicast LAN.
hosts_create 3 --ipv6
[ "$(host_ip h2)" = 198.18.0.12 ] && [ "$(host_ip6 h3)" = 2001:2::13 ] ||
    it_fail "address plan: h2 $(host_ip h2), h3 $(host_ip6 h3)"
[ "$(ip -n h1 -o -4 addr show dev eth0 | awk '{print $4}')" = 198.18.0.11/24 ] ||
    it_fail "h1's eth0 does not carry 198.18.0.11/24"
[ -z "$(ip -n h1 -6 addr show tentative)" ] || it_fail "hosts_create returned with tentative IPv6 addresses"
ip -d link show br0 | grep -q 'mcast_snooping 0' || it_fail "br0 still snoops multicast"
mesh h1 h2 h3
# A negative control for the probe itself: addresses no one has.
host_unreachable h1 198.18.0.99 2001:2::99 || it_fail "198.18.0.99 or 2001:2::99 (nobody) answered"

# Multicast from h1: IPv4 with TTL 1, and IPv6 link-local from h1's link-local
# address; h2 and h3 hear both.
for h in h2 h3; do
    probe "$h" "m4_$h" recv "$G4" 47000 --iface eth0 --max 1 --timeout 10
    probe "$h" "m6_$h" recv "$G6" 47001 --iface eth0 --max 1 --timeout 10
done
ready m4_h2 m4_h3 m6_h2 m6_h3
tx h1 m4_tx "$G4" 47000 mc4-token --ttl 1 --times 3 || it_fail "the IPv4 multicast sender failed"
tx h1 m6_tx "$G6" 47001 mc6-token --iface eth0 --ttl 1 --times 3 || it_fail "the IPv6 multicast sender failed"
for h in h2 h3; do
    it_wait_log "m4_$h" '^got mc4-token from 198\.18\.0\.11 ' 5
    it_wait_log "m6_$h" '^got mc6-token from fe80::' 5
done
it_log "A: ping mesh (IPv4, IPv6) and multicast (IPv4, IPv6) on the LAN"

# Link cut and restored, twice: carrier loss, then a silent partition.  A process in
# h2 answers UDP throughout.
probe h2 echo_h2 recv any 47010 --reply --timeout 40
ready echo_h2
tx h1 link_tx 198.18.0.12 47010 before --wait-reply 2 || it_fail "h2 did not answer before the cut"
for mode in carrier silent; do
    opt=""
    [ "$mode" = carrier ] || opt=--silent
    host_link_down h2 $opt
    carrier=$(host_exec h2 cat /sys/class/net/eth0/carrier 2>/dev/null)
    case $mode:$carrier in
    carrier:0 | silent:1) ;;
    *) it_fail "link down ($mode): h2's eth0 carrier is '$carrier'" ;;
    esac
    probe h1 cut_h1 ping --none 198.18.0.12 2001:2::12
    probe h2 cut_h2 ping --none 198.18.0.11 2001:2::13
    probe h1 cut_tx send 198.18.0.12 47010 "cut-$mode" --wait-reply 1
    expect cut_h1 0 "link down ($mode): h1 still reaches h2"
    expect cut_h2 0 "link down ($mode): h2 still reaches h1 or h3"
    expect cut_tx 3 "link down ($mode): h2 answered a datagram"
    it_alive echo_h2 || it_fail "link down ($mode): h2's process died"
    host_link_up h2
    host_wait_reach h1 198.18.0.12 2001:2::12
    host_wait_reach h2 198.18.0.13 2001:2::11
    tx h1 link_tx 198.18.0.12 47010 "back-$mode" --wait-reply 2 ||
        it_fail "link up ($mode): h2 did not answer"
    ! has echo_h2 "^got cut-$mode " || it_fail "link down ($mode): h2 received a datagram"
done
it_log "A: host_link_down/up (carrier and silent) cut h2 off and restore it"

# NAT: h3 behind r1.
hosts_nat h3
[ "$(host_ip h3)" = 198.19.1.2 ] && [ "$(host_public_ip h3)" = 198.18.0.254 ] ||
    it_fail "NAT address plan: h3 $(host_ip h3), public $(host_public_ip h3)"
! host_ip6 h3 >/dev/null || it_fail "a NATed host has an IPv6 address: $(host_ip6 h3)"
probe h1 nat_h1 recv any 47020 --reply --max 1 --timeout 30
probe h3 nat_in recv any 47030 --timeout 30
ready nat_h1 nat_in
host_wait_reach h3 198.18.0.11
probe h3 nat_tx send 198.18.0.11 47020 out-token --sport 47021 --wait-reply 5 --linger 30
it_wait_log nat_tx '^reply re:out-token from 198\.18\.0\.11 47020$' 10
expect nat_h1 0 "h1 did not get h3's datagram"
src=$(awk '$1 == "got" && $2 == "out-token" {print $4, $5; exit}' "$IT_TMP/nat_h1.log")
[ "$src" = "198.18.0.254 47021" ] ||
    it_fail "h1 saw h3's datagram from '$src', want the router's address and the kept port 198.18.0.254 47021"
# To h3's mapped port, from another port of h1: no flow matches, nothing gets in;
# then from the port h3 talked to (h1's receiver has exited and freed it): it does.
tx h1 nat_probe 198.18.0.254 47021 other-port --sport 47022 || it_fail "sender failed"
tx h1 nat_probe 198.18.0.254 47021 same-flow --sport 47020 || it_fail "sender failed"
it_wait_log nat_tx '^extra same-flow from 198\.18\.0\.11 47020$' 10
! has nat_tx 'other-port' || it_fail "a datagram from another port of h1 reached h3's mapped port"
it_stop nat_tx

# First datagrams from outside: to the inside address (h1 even gets a route to it)
# and to the router's address.
host_exec h1 ip route add 198.19.0.0/16 via 198.18.0.254 || it_fail "route on h1"
probe h1 nat_ping ping --none 198.19.1.2
tx h1 nat_probe 198.19.1.2 47030 in-direct || it_fail "sender failed"
tx h1 nat_probe 198.18.0.254 47030 in-wan || it_fail "sender failed"
expect nat_ping 0 "h1 pings h3's inside address through the NAT"
# Control: the same direct datagram passes once the router accepts it, so only the
# NAT's filter stopped the first one.
host_exec r1 nft insert rule ip p2p_it_nat forward ip daddr 198.19.1.2 accept ||
    it_fail "cannot add the control rule"
tx h1 nat_probe 198.19.1.2 47030 in-control || it_fail "sender failed"
it_wait_log nat_in '^got in-control from 198\.18\.0\.11 ' 5
sleep 0.3 # anything sent earlier would have arrived before the control
! has nat_in '^got in-(direct|wan) ' || it_fail "a first datagram from outside reached h3: $(grep '^got' "$IT_TMP/nat_in.log")"
it_log "A: NAT: h3 gets out and replies back, nothing from outside gets in"

# hosts_destroy stops host_start's processes and leaves nothing.
pids="$(it_pid echo_h2) $(it_pid nat_in)"
hosts_destroy || it_fail "hosts_destroy reported leftovers"
nothing_left "after hosts_destroy"
for p in $pids; do
    ! it__running "$p" || it_fail "pid $p still runs after hosts_destroy"
done

# ---------------------------------------------------------------------------------
# B. No multicast: unicast only.
hosts_create 3 --no-multicast --ipv6
for h in h2 h3; do
    probe "$h" "nm4_$h" recv "$G4" 47040 --iface eth0 --timeout 20
    probe "$h" "nm6_$h" recv "$G6" 47041 --iface eth0 --timeout 20
done
mesh h1 h2 h3
ready nm4_h2 nm4_h3 nm6_h2 nm6_h3
tx h1 nm_tx "$G4" 47040 nomc4 --ttl 1 --times 3 || it_fail "the IPv4 multicast sender failed"
tx h1 nm_tx "$G6" 47041 nomc6 --iface eth0 --ttl 1 --times 3 || it_fail "the IPv6 multicast sender failed"
# Unicast to the same sockets arrives: they listen, and the multicast, sent first on
# the same path, would have arrived before it.
for h in h2 h3; do
    tx h1 nm_tx "$(host_ip "$h")" 47040 "uni4-$h" || it_fail "sender failed"
    tx h1 nm_tx "$(host_ip6 "$h")" 47041 "uni6-$h" || it_fail "sender failed"
done
for h in h2 h3; do
    it_wait_log "nm4_$h" "^got uni4-$h from 198\.18\.0\.11 " 5
    it_wait_log "nm6_$h" "^got uni6-$h from 2001:2::11 " 5
done
sleep 0.3
for n in nm4_h2 nm4_h3 nm6_h2 nm6_h3; do
    ! has "$n" '^got nomc' || it_fail "--no-multicast: $n received multicast"
done
hosts_destroy || it_fail "hosts_destroy reported leftovers"
nothing_left "after the second hosts_destroy"
it_log "B: --no-multicast LAN carries unicast (IPv4, IPv6) and no multicast"

# ---------------------------------------------------------------------------------
# C. The EXIT trap of a test that is stopped cleans up after it.
cat >"$IT_TMP/child.sh" <<'EOF'
set -u
. "$1/hosts.sh"
it_begin
hosts_create 2
hosts_nat h2
host_start h1 sleep_h1 sleep 300
host_start h2 sleep_h2 sleep 300
echo "$IT_TMP $(it_pid sleep_h1) $(it_pid sleep_h2)" >"$2/child.state.tmp"
mv "$2/child.state.tmp" "$2/child.state"
for ((i = 0; i < 600; i++)); do sleep 0.1; done
EOF
it_start child bash "$IT_TMP/child.sh" "$IT_LIB_DIR" "$IT_TMP"
it_wait_until 30 "the child test to set up its hosts" test -s "$IT_TMP/child.state"
read -r child_tmp c1 c2 <"$IT_TMP/child.state"
[ "$(ip netns list | wc -l)" = 3 ] || it_fail "the child's namespaces are not visible: $(ip netns list)"
it__running "$c1" && it__running "$c2" || it_fail "the child's processes do not run"
it_stop child TERM
[ "${IT_EXIT_OF[child]}" = 143 ] || it_fail "child exit status ${IT_EXIT_OF[child]}, want 143 (SIGTERM trap)"
nothing_left "after the child's EXIT trap"
! it__running "$c1" && ! it__running "$c2" || it_fail "the child's host processes survived its EXIT trap"
[ ! -e "$child_tmp" ] || it_fail "the child's $child_tmp survived its EXIT trap"
it_log "C: a stopped test's EXIT trap removes its hosts, router, bridge, processes and files"

it_pass "hosts.sh: LAN, multicast on/off (IPv4, IPv6), link cut/restore, NAT, cleanup"

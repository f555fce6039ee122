# shellcheck shell=bash
#
# hosts.sh: several "hosts" (network namespaces) on a private LAN, for the
# integration tests that run p2psipd on more than one machine.  Sourced, never run;
# it sources lib.sh itself.  docs/TESTING.md describes it with examples.
#
# Design.  A script sources this file instead of lib.sh and calls it_begin "$@" as
# usual.  Sourcing sets IT_UNSHARE_MOUNT=1, so it_begin's re-execution enters a
# private mount namespace as well as the private network namespace (unshare -n -m
# --propagation private).  The first hosts_create mounts a tmpfs of its own on
# /run/netns there, so every `ip netns add` below lives in that tmpfs and is
# invisible to the machine and to other tests run at the same time; when the test's
# last process ends, the mount namespace goes and takes every host namespace with it,
# even if the EXIT trap could not run.  Before any of this, hosts.sh checks that the
# network and mount namespaces differ from the ones the script was started in.
# The test's own network namespace holds the bridge br0 (the LAN switch);
# each host hI is a network namespace joined to it by a veth pair (veth-hI on the
# bridge, eth0 in the host).  A NAT router rK is one more namespace, with its outside
# leg "wan" on br0 and the NATed host's eth0 on its inside leg (veth-hI in rK).
#
# Address plan (benchmarking ranges only: RFC 2544 198.18.0.0/15, RFC 5180
# 2001:2::/48):
#   LAN             198.18.0.0/24            2001:2::/64 (with --ipv6)
#   host hI         198.18.0.(10+I)          2001:2::(10+I), I = 1..200
#   router rK wan   198.18.0.(255-K)         (IPv4 only)
#   rK inside net   198.19.K.0/24: rK 198.19.K.1, its host 198.19.K.2
# Each host has lo up (multicast on), eth0 up with an on-link default route and a
# 224.0.0.0/4 route on eth0 (multicast to 239.x.x.x leaves through eth0).  The bridge
# floods multicast (IGMP/MLD snooping off); with --no-multicast an nftables bridge
# rule drops IPv4 and IPv6 multicast (neighbour discovery excepted), so only unicast
# and broadcast (ARP) cross the LAN.  The bridge and its ports carry no IP address.
#
# Functions (H is a host name, h1..hN):
#   hosts_create N [--no-multicast] [--ipv6]  creates br0 and hosts h1..hN (1..200);
#       --ipv6 adds the IPv6 addresses and waits (bounded) for their duplicate address
#       detection to end; without it the hosts' IPv6 is disabled (an IPv4-only LAN).
#       Fails the test if hosts exist (hosts_destroy first).
#   hosts_nat H [--symmetric]  puts H behind a new NAT router rK (K = 1, 2, ...):
#       masquerade on rK's wan, forwarding only from inside to outside plus
#       conntrack replies, no port forwarding.  The default mapping keeps the source
#       port (Linux conntrack); --symmetric maps every flow to a random port
#       (masquerade fully-random).  H becomes IPv4-only.  Call it before starting
#       processes in H (H's eth0 is replaced).
#   host_ip H / host_ip6 H     H's planned IPv4 / IPv6 address (for a NATed host its
#       inside address; host_ip6 fails when H has none).
#   host_public_ip H           the address H's traffic comes from on the LAN (its
#       router's wan address when NATed, else host_ip).
#   host_exec H CMD...         runs CMD in H (ip netns exec), in the foreground; H may
#       also be a router rK.
#   host_run H TIMEOUT CMD...  the same, bounded by TIMEOUT seconds (it_run).
#   host_start H NAME CMD...   it_start inside H: own process group, log
#       $IT_TMP/NAME.log, tracked by pid, stopped with it_stop or by the EXIT trap.
#   host_ping H ADDR...        one ICMP echo from H to each ADDR (IPv4 or IPv6, all at
#       once); true when every ADDR answers within 1 s.  Uses $HOSTS_PROBE (raw
#       sockets in python3; no ping binary needed).  H may also be a router.
#   host_unreachable H ADDR... the opposite: true when no ADDR answers within 1 s.
#   host_wait_reach [-t TIMEOUT] H ADDR...  pings until every ADDR answers; fails
#       the test after TIMEOUT seconds (default 10).
#   host_link_down H [--silent] / host_link_up H  cuts / restores H's link.  Default:
#       the far end of H's veth goes down, so H sees its carrier go (a pulled cable).
#       --silent: the link stays up but drops every frame both ways (nftables netdev
#       ingress on both ends: a partition H cannot see).  H's processes keep running.
#       host_link_up waits (bounded) for the carrier and for IPv6 DAD.
#   host_addr_add H ADDR[/LEN] / host_addr_del H ADDR[/LEN]  adds / removes an address
#       on H's eth0 (default LEN 24 for IPv4, 64 for IPv6; an IPv6 address is waited
#       for until its DAD ends).
#   hosts_destroy              stops every process host_start started, deletes the
#       hosts, routers and bridge.  Runs from the EXIT trap (lib.sh IT_CLEANUP_HOOKS,
#       after the processes are stopped); may also be called by the test.  Never
#       fails the test (it runs inside the trap); returns 1 if something was left.
#       With P2P_IT_HOLD=SECONDS set, a test that did not pass first holds (below).
#   hosts_hold [SECONDS]       pauses (default $P2P_IT_HOLD or 300 s) until the time is
#       up or $IT_TMP/continue exists, after printing how to enter the hosts by hand.
# Variables: HOSTS (the host names), HOSTS_ROUTERS, HOSTS_V6 and HOSTS_NO_MCAST (1 when
# hosts_create had --ipv6 / --no-multicast), HOSTS_PROBE and HOSTS_PY (below).
# $HOSTS_PROBE is a python3 tool, written at the first hosts_create ($HOSTS_PY is the
# python3 interpreter, resolved once):
#   "$HOSTS_PY" "$HOSTS_PROBE" recv ADDR PORT [--iface IF] [--timeout S] [--max N] [--reply]
#       binds PORT (ADDR: a multicast group to join on IF, or "any"), prints
#       "ready PORT", then "got DATA from SRC SPORT" per datagram; exit 0 if any came.
#   "$HOSTS_PY" "$HOSTS_PROBE" send ADDR PORT TOKEN [--iface IF] [--ttl N] [--times N]
#       [--sport P] [--wait-reply S] [--linger S]: prints "local PORT", sends TOKEN,
#       optionally waits for a reply ("reply DATA from SRC SPORT", exit 3 if none)
#       and then prints every further datagram for S seconds ("extra ...").
#   "$HOSTS_PY" "$HOSTS_PROBE" ping ADDR... [--timeout S] [--tries N] [--none]
#
# Invariants: nothing here touches the machine's interfaces or its /run/netns (the
# functions refuse to run outside a private network and mount namespace); every wait
# is bounded; processes are only ever signalled by the pids lib.sh recorded.

[ -n "${IT_LIB_DIR:-}" ] || . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

IT_UNSHARE_MOUNT=1
IT_CLEANUP_HOOKS+=(hosts_destroy)
# The namespaces the test was started in, remembered before it_begin leaves them:
# hosts__private refuses to run in them.  (/proc/1/ns may not be readable, even as
# root, so comparing with init's is no safeguard.)
if [ "${P2P_IT_IN_NETNS:-}" != 1 ]; then
    HOSTS_OUTER_NS="$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/mnt)"
    export HOSTS_OUTER_NS
fi

HOSTS_NETNS_DIR=/run/netns
HOSTS_TMPFS_NAME=p2p-it-netns
HOSTS_PROBE=""
HOSTS_PY=python3
HOSTS_V6=0
HOSTS_NO_MCAST=0
declare -a HOSTS=()         # h1..hN
declare -a HOSTS_ROUTERS=() # r1..rK
declare -a HOSTS_PROCS=()   # names given to host_start
declare -A HOSTS_IP4=() HOSTS_IP6=() HOSTS_PUB4=()
declare -A HOSTS_PEER_NS=() # where the far end of H's eth0 (veth-H) lives: "" = here
declare -A HOSTS_CUT=()     # "carrier" or "silent" while H's link is down

# Refuses to go on unless this shell is in a network and a mount namespace of its
# own (it_begin with IT_UNSHARE_MOUNT=1), then mounts the private /run/netns once.
hosts__private() {
    [ "${P2P_IT_IN_NETNS:-}" = 1 ] || it_fail "hosts.sh: call it_begin first"
    [ -n "${HOSTS_OUTER_NS:-}" ] ||
        it_fail "hosts.sh: the test's original namespaces are unknown (run the script itself, without P2P_IT_IN_NETNS)"
    local outer_net=${HOSTS_OUTER_NS% *} outer_mnt=${HOSTS_OUTER_NS#* } net mnt
    net=$(readlink /proc/self/ns/net) && mnt=$(readlink /proc/self/ns/mnt) ||
        it_fail "hosts.sh: cannot read /proc/self/ns"
    [ "$net" != "$outer_net" ] || it_fail "hosts.sh: not in a private network namespace"
    [ "$mnt" != "$outer_mnt" ] ||
        it_fail "hosts.sh: not in a private mount namespace (source hosts.sh before it_begin)"
    # A private mount namespace has no mount shared with the machine's.
    ! awk '$5 == "/"' /proc/self/mountinfo | grep -q ' shared:' ||
        it_fail "hosts.sh: / is a shared mount here: not a private mount namespace"
    # Mounted once per mount namespace, by us: a tmpfs found there already may be a
    # copy of one left in the machine's namespace, shared with every other test.
    [ "${HOSTS_NETNS_MOUNTED_IN:-}" != "$mnt" ] || return 0
    # The mount point itself: an empty directory, what `ip netns add` would create.
    [ -d "$HOSTS_NETNS_DIR" ] || mkdir -m 755 "$HOSTS_NETNS_DIR" ||
        it_fail "hosts.sh: cannot create $HOSTS_NETNS_DIR"
    mount -t tmpfs -o size=1m,mode=755 "$HOSTS_TMPFS_NAME" "$HOSTS_NETNS_DIR" ||
        it_fail "hosts.sh: cannot mount a tmpfs on $HOSTS_NETNS_DIR"
    # Exported: a child test sharing this namespace (test_hosts_selftest) reuses it.
    export HOSTS_NETNS_MOUNTED_IN=$mnt
}

# Name checks: H must be a host hosts_create made.
hosts__host() {
    local h=$1
    [ -n "${HOSTS_IP4[$h]:-}" ] || it_fail "hosts.sh: no host '$h' (hosts: ${HOSTS[*]:-none})"
}

# ... or one of the routers hosts_nat made.
hosts__ns() {
    local r
    for r in "${HOSTS_ROUTERS[@]}"; do [ "$r" != "$1" ] || return 0; done
    hosts__host "$1"
}

# hosts__sysctl NS KEY=VALUE...: sysctls in namespace NS ("" = the test's own).
hosts__sysctl() {
    local ns=$1
    shift
    if [ -z "$ns" ]; then
        sysctl -q -w "$@" >/dev/null
    else
        # nsenter, not ip netns exec: /proc/sys/net is the caller's network
        # namespace's, and no sysfs needs mounting.
        nsenter "--net=$HOSTS_NETNS_DIR/$ns" sysctl -q -w "$@" >/dev/null
    fi
}

# ip in namespace NS ("" = the test's own).
hosts__ip() {
    local ns=$1
    shift
    if [ -z "$ns" ]; then ip "$@"; else ip -n "$ns" "$@"; fi
}

hosts__nft() {
    local ns=$1
    shift
    if [ -z "$ns" ]; then nft "$@"; else ip netns exec "$ns" nft "$@"; fi
}

# True while some address of H is still tentative (IPv6 duplicate address detection).
hosts__dad_pending() {
    [ -n "$(ip -n "$1" -6 addr show dev eth0 tentative 2>/dev/null)" ]
}

# hosts__wait_dad H...: until no address of the hosts is tentative (10 s at most);
# fails on an address whose DAD failed.
hosts__wait_dad() {
    local deadline=$((SECONDS + 10)) h pending
    while :; do
        pending=""
        for h in "$@"; do
            [ -z "$(ip -n "$h" -6 addr show dev eth0 dadfailed 2>/dev/null)" ] ||
                it_fail "hosts.sh: IPv6 DAD failed on $h: $(ip -n "$h" -6 -o addr show dev eth0 dadfailed)"
            ! hosts__dad_pending "$h" || pending="$pending $h"
        done
        [ -n "$pending" ] || return 0
        [ "$SECONDS" -lt "$deadline" ] || it_fail "hosts.sh: IPv6 DAD still running on$pending after 10 s"
        sleep 0.1
    done
}

# hosts__host_config H ADDR4 GW4 [ADDR6]: H's loopback and eth0 (one `ip -batch`): up,
# addresses, default route (on-link when GW4 is empty), multicast route.
hosts__host_config() {
    local h=$1 a4=$2 gw=$3 a6=${4:-}
    {
        echo "link set lo up multicast on"
        echo "addr add $a4 dev eth0"
        [ -z "$a6" ] || echo "addr add $a6 dev eth0"
        echo "link set eth0 up"
        if [ -n "$gw" ]; then
            echo "route add default via $gw dev eth0"
        else
            echo "route add default dev eth0"
        fi
        echo "route add 224.0.0.0/4 dev eth0"
        [ -z "$a6" ] || echo "route add ::/0 dev eth0 metric 2048"
    } | ip -n "$h" -batch - || it_fail "hosts.sh: $h: cannot configure lo and eth0"
}

# hosts__netns_setup NS V6: the sysctls of a new namespace: IPv6 off unless V6=1.
hosts__netns_setup() {
    local ns=$1 v6=$2
    [ -d /proc/sys/net/ipv6 ] || return 0
    if [ "$v6" != 1 ]; then
        hosts__sysctl "$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 ||
            it_fail "hosts.sh: $ns: cannot disable IPv6"
    else
        # DAD starts after a random delay below router_solicitation_delay (1 s), then
        # takes one RetransTimer (1 s); no router on the LAN needs the delay.  Only
        # a speed-up, so a kernel without the knob is no failure.
        hosts__sysctl "$ns" net.ipv6.conf.default.router_solicitation_delay=0 2>/dev/null ||
            it_log "hosts.sh: $ns: router_solicitation_delay left as it is"
    fi
}

hosts_create() {
    local n=${1:-} i h
    shift || true
    local v6=0 nomc=0
    while [ $# -gt 0 ]; do
        case $1 in
        --ipv6) v6=1 ;;
        --no-multicast) nomc=1 ;;
        *) it_fail "hosts_create: unknown option $1" ;;
        esac
        shift
    done
    case $n in '' | *[!0-9]*) it_fail "hosts_create: N must be a number, not '$n'" ;; esac
    [ "$n" -ge 1 ] && [ "$n" -le 200 ] || it_fail "hosts_create: N must be 1..200, not $n"
    [ ${#HOSTS[@]} -eq 0 ] || it_fail "hosts_create: hosts exist (${HOSTS[*]}); hosts_destroy first"
    [ "$v6" = 0 ] || [ -d /proc/sys/net/ipv6 ] || it_fail "hosts_create --ipv6: the kernel has no IPv6"
    it_need ip nft python3
    hosts__private
    hosts__probe_write
    HOSTS_V6=$v6
    HOSTS_NO_MCAST=$nomc

    # The LAN switch and its ports carry no IPv6 (nor any address): new interfaces
    # of the test's namespace get IPv6 disabled while they are made.
    local old6=""
    if [ -d /proc/sys/net/ipv6 ]; then
        old6=$(sysctl -n net.ipv6.conf.default.disable_ipv6) &&
            hosts__sysctl "" net.ipv6.conf.default.disable_ipv6=1 ||
            it_fail "hosts.sh: cannot disable IPv6 on new interfaces"
    fi
    # No STP (ports forward at once), no multicast snooping (a snooping bridge
    # floods only while it knows no querier, then forwards a group only to the ports
    # that reported it: timing-dependent; off, it always floods).
    ip link add br0 type bridge stp_state 0 mcast_snooping 0 ||
        it_fail "hosts.sh: cannot create bridge br0"
    ip link set br0 up || it_fail "hosts.sh: br0 up"
    if [ "$nomc" = 1 ]; then
        # Bridge-family filter: multicast frames are dropped at every output port.
        # Broadcast (ARP) and IPv6 neighbour discovery (to solicited-node groups)
        # pass, or unicast would break too.
        nft -f - <<'EOF' || it_fail "hosts.sh: cannot install the no-multicast rules"
table bridge p2p_it_hosts {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr 224.0.0.0/4 counter drop
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, nd-redirect } accept
        ip6 daddr ff00::/8 counter drop
    }
}
EOF
    fi
    # A few processes per host, not a dozen: `ip -batch` makes the namespaces and
    # the veth pairs of all hosts at once.
    for ((i = 1; i <= n; i++)); do
        h=h$i
        HOSTS+=("$h")
        HOSTS_IP4[$h]=198.18.0.$((10 + i))
        HOSTS_PUB4[$h]=198.18.0.$((10 + i))
        HOSTS_PEER_NS[$h]=""
        [ "$v6" = 0 ] || HOSTS_IP6[$h]=2001:2::$((10 + i))
    done
    printf 'netns add %s\n' "${HOSTS[@]}" | ip -batch - ||
        it_fail "hosts.sh: cannot create the host namespaces"
    for h in "${HOSTS[@]}"; do hosts__netns_setup "$h" "$v6"; done
    for h in "${HOSTS[@]}"; do
        echo "link add veth-$h type veth peer name eth0 netns $h"
        echo "link set veth-$h master br0 up"
    done | ip -batch - || it_fail "hosts.sh: cannot create the hosts' veth pairs"
    [ -z "$old6" ] || hosts__sysctl "" "net.ipv6.conf.default.disable_ipv6=$old6" ||
        it_fail "hosts.sh: cannot restore net.ipv6.conf.default.disable_ipv6"
    for h in "${HOSTS[@]}"; do
        if [ "$v6" = 1 ]; then
            hosts__host_config "$h" "${HOSTS_IP4[$h]}/24" "" "${HOSTS_IP6[$h]}/64"
        else
            hosts__host_config "$h" "${HOSTS_IP4[$h]}/24" ""
        fi
    done
    [ "$v6" = 0 ] || hosts__wait_dad "${HOSTS[@]}"
    it_log "hosts: ${HOSTS[*]} on br0 (198.18.0.0/24${HOSTS_IP6[h1]:+, 2001:2::/64}$([ "$nomc" = 0 ] || echo ", no multicast")); enter one with: nsenter -t $$ -n -m ip netns exec h1 bash"
}

hosts_nat() {
    local h=${1:-} sym=0
    shift || true
    [ "${1:-}" != --symmetric ] || { sym=1; shift; }
    [ $# -eq 0 ] || it_fail "hosts_nat: unknown option $1"
    hosts__host "$h"
    [ -z "${HOSTS_PEER_NS[$h]}" ] || it_fail "hosts_nat: $h is already behind ${HOSTS_PEER_NS[$h]}"
    [ -z "${HOSTS_CUT[$h]:-}" ] || it_fail "hosts_nat: $h's link is down"
    local k=$((${#HOSTS_ROUTERS[@]} + 1))
    [ "$k" -le 40 ] || it_fail "hosts_nat: at most 40 routers"
    local r=r$k wan=198.18.0.$((255 - k)) net=198.19.$k
    ip netns add "$r" || it_fail "hosts.sh: ip netns add $r"
    HOSTS_ROUTERS+=("$r")
    hosts__netns_setup "$r" 0
    hosts__sysctl "$r" net.ipv4.ip_forward=1 || it_fail "hosts.sh: $r: forwarding on"
    ip link add "veth-$r" type veth peer name wan netns "$r" ||
        it_fail "hosts.sh: cannot create the veth pair of $r"
    [ ! -d /proc/sys/net/ipv6 ] || hosts__sysctl "" "net.ipv6.conf.veth-$r.disable_ipv6=1" ||
        it_fail "hosts.sh: veth-$r: cannot disable IPv6"
    ip link set "veth-$r" master br0 up || it_fail "hosts.sh: veth-$r into br0"
    # H's link now goes to the router: the old pair goes (both ends), a new one comes.
    ip link del "veth-$h" || it_fail "hosts.sh: cannot delete veth-$h"
    ip -n "$r" link add "veth-$h" type veth peer name eth0 netns "$h" ||
        it_fail "hosts.sh: cannot create $h's link to $r"
    printf '%s\n' "link set lo up" "addr add $wan/24 dev wan" "link set wan up" \
        "addr add $net.1/24 dev veth-$h" "link set veth-$h up" | ip -n "$r" -batch - ||
        it_fail "hosts.sh: $r: cannot configure its interfaces"
    if [ -d /proc/sys/net/ipv6 ]; then
        hosts__sysctl "$h" net.ipv6.conf.eth0.disable_ipv6=1 || it_fail "hosts.sh: $h: IPv6 off"
    fi
    hosts__host_config "$h" "$net.2/24" "$net.1"
    local masq=masquerade
    [ "$sym" = 0 ] || masq="masquerade fully-random"
    # No DNAT anywhere: a flow can only start inside; from outside, only conntrack
    # replies (same 5-tuple) get through.  A datagram to the wan address that matches
    # no flow is the router's own (and finds no socket there).
    hosts__nft "$r" -f - <<EOF || it_fail "hosts.sh: $r: cannot install the NAT rules"
table ip p2p_it_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" $masq
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "veth-$h" oifname "wan" accept
        counter
    }
}
EOF
    HOSTS_PEER_NS[$h]=$r
    HOSTS_IP4[$h]=$net.2
    HOSTS_PUB4[$h]=$wan
    HOSTS_IP6[$h]=""
    it_log "hosts: $h behind NAT router $r (inside $net.2, outside $wan$([ "$sym" = 0 ] || echo ", symmetric"))"
}

host_ip() {
    hosts__host "$1"
    echo "${HOSTS_IP4[$1]}"
}

host_ip6() {
    hosts__host "$1"
    [ -n "${HOSTS_IP6[$1]:-}" ] || return 1
    echo "${HOSTS_IP6[$1]}"
}

host_public_ip() {
    hosts__host "$1"
    echo "${HOSTS_PUB4[$1]}"
}

host_exec() {
    local h=$1
    shift
    hosts__ns "$h"
    ip netns exec "$h" "$@"
}

host_run() {
    local h=$1 t=$2
    shift 2
    hosts__ns "$h"
    it_run "$t" ip netns exec "$h" "$@"
}

host_start() {
    local h=$1 name=$2
    shift 2
    hosts__host "$h"
    it_start "$name" ip netns exec "$h" "$@"
    HOSTS_PROCS+=("$name")
}

host_ping() {
    local h=$1
    shift
    hosts__ns "$h"
    timeout -k 2 10 ip netns exec "$h" "$HOSTS_PY" "$HOSTS_PROBE" ping "$@" >/dev/null 2>&1
}

host_unreachable() {
    local h=$1
    shift
    hosts__ns "$h"
    timeout -k 2 10 ip netns exec "$h" "$HOSTS_PY" "$HOSTS_PROBE" ping --none "$@" >/dev/null 2>&1
}

host_wait_reach() {
    local t=10
    [ "$1" != -t ] || { t=$2; shift 2; }
    local h=$1
    shift
    it_wait_until "$t" "$h to reach $*" host_ping "$h" "$@"
}

host_link_down() {
    local h=$1 mode=carrier
    [ "${2:-}" != --silent ] || mode=silent
    hosts__host "$h"
    [ -z "${HOSTS_CUT[$h]:-}" ] || it_fail "host_link_down: $h's link is already down"
    local peer_ns=${HOSTS_PEER_NS[$h]}
    if [ "$mode" = carrier ]; then
        hosts__ip "$peer_ns" link set "veth-$h" down || it_fail "host_link_down: veth-$h down"
    else
        # Ingress on both ends: nothing H sends arrives, nothing reaches H.
        hosts__nft "$peer_ns" -f - <<EOF || it_fail "host_link_down: nft at veth-$h"
table netdev p2p_it_cut_$h {
    chain ingress { type filter hook ingress device "veth-$h" priority 0; policy drop; }
}
EOF
        hosts__nft "$h" -f - <<EOF || it_fail "host_link_down: nft in $h"
table netdev p2p_it_cut {
    chain ingress { type filter hook ingress device "eth0" priority 0; policy drop; }
}
EOF
    fi
    HOSTS_CUT[$h]=$mode
    it_log "hosts: $h's link cut ($mode)"
}

host_link_up() {
    local h=$1
    hosts__host "$h"
    local mode=${HOSTS_CUT[$h]:-}
    [ -n "$mode" ] || it_fail "host_link_up: $h's link is not down"
    local peer_ns=${HOSTS_PEER_NS[$h]}
    if [ "$mode" = carrier ]; then
        hosts__ip "$peer_ns" link set "veth-$h" up || it_fail "host_link_up: veth-$h up"
    else
        hosts__nft "$peer_ns" delete table netdev "p2p_it_cut_$h" || it_fail "host_link_up: nft at veth-$h"
        hosts__nft "$h" delete table netdev p2p_it_cut || it_fail "host_link_up: nft in $h"
    fi
    unset "HOSTS_CUT[$h]"
    it_wait_until 10 "$h's eth0 to have its carrier back" hosts__carrier "$h"
    # Linux 6.x keeps IPv6 addresses valid through a carrier loss (no new DAD); the
    # wait costs nothing then and covers a kernel that does restart it.
    [ -z "${HOSTS_IP6[$h]:-}" ] || hosts__wait_dad "$h"
    it_log "hosts: $h's link restored"
}

hosts__carrier() {
    [ "$(ip netns exec "$1" cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ]
}

# ADDR with its default prefix length.
hosts__cidr() {
    case $1 in
    */*) echo "$1" ;;
    *:*) echo "$1/64" ;;
    *) echo "$1/24" ;;
    esac
}

host_addr_add() {
    local h=$1 a
    hosts__host "$h"
    a=$(hosts__cidr "$2")
    ip -n "$h" addr add "$a" dev eth0 || it_fail "host_addr_add: $h: cannot add $a"
    case $a in *:*) hosts__wait_dad "$h" ;; esac
    it_log "hosts: $h: address $a added"
}

host_addr_del() {
    local h=$1 a
    hosts__host "$h"
    a=$(hosts__cidr "$2")
    ip -n "$h" addr del "$a" dev eth0 || it_fail "host_addr_del: $h: cannot remove $a"
    it_log "hosts: $h: address $a removed"
}

# hosts__netns_pids NS...: "NS:PID ..." for every process in those namespaces (one
# pass over /proc instead of one `ip netns pids` each).
hosts__netns_pids() {
    (
        cd "$HOSTS_NETNS_DIR" && stat -L -c 'ns %i %n' -- "$@"
        find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%h %l\n' 2>/dev/null
    ) | awk '$1 == "ns" { name[$2] = $3; next }
        { split($1, p, "/"); ino = $2; gsub(/[^0-9]/, "", ino)
          if (ino in name) printf "%s:%s ", name[ino], p[3] }'
}

hosts_hold() {
    local t=${1:-${P2P_IT_HOLD:-300}}
    case $t in '' | *[!0-9]*) it_log "hosts_hold: '$t' is no number of seconds"; return 0 ;; esac
    [ ${#HOSTS[@]} -gt 0 ] || return 0
    rm -f "$IT_TMP/continue"
    it_log "hosts: holding up to ${t}s; enter with: nsenter -t $$ -n -m ip netns exec h1 bash" \
        "(hosts: ${HOSTS[*]} ${HOSTS_ROUTERS[*]}); go on with: touch $IT_TMP/continue"
    local deadline=$((SECONDS + t))
    while [ "$SECONDS" -lt "$deadline" ] && [ ! -e "$IT_TMP/continue" ]; do sleep 0.5; done
    return 0
}

hosts_destroy() {
    local rc=0 name ns pids
    # P2P_IT_HOLD=SECONDS: a test that did not pass keeps its network that long.
    if [ -n "${P2P_IT_HOLD:-}" ] && [ "$IT_VERDICT" != PASS ]; then hosts_hold "$P2P_IT_HOLD"; fi
    for name in "${HOSTS_PROCS[@]}"; do
        if it_alive "$name"; then it_stop "$name"; fi
    done
    HOSTS_PROCS=()
    local all=()
    for ns in "${HOSTS[@]}" "${HOSTS_ROUTERS[@]}"; do
        [ ! -e "$HOSTS_NETNS_DIR/$ns" ] || all+=("$ns")
    done
    if [ ${#all[@]} -gt 0 ]; then
        pids=$(hosts__netns_pids "${all[@]}")
        if [ -n "$pids" ]; then
            it_log "hosts_destroy: processes not started by host_start still run: $pids"
            rc=1
        fi
        printf 'netns del %s\n' "${all[@]}" | ip -batch - || rc=1
    fi
    if ip link show br0 >/dev/null 2>&1; then ip link del br0 || rc=1; fi
    if nft list table bridge p2p_it_hosts >/dev/null 2>&1; then
        nft delete table bridge p2p_it_hosts || rc=1
    fi
    HOSTS=()
    HOSTS_ROUTERS=()
    HOSTS_IP4=()
    HOSTS_IP6=()
    HOSTS_PUB4=()
    HOSTS_PEER_NS=()
    HOSTS_CUT=()
    HOSTS_V6=0
    HOSTS_NO_MCAST=0
    return $rc
}

# Writes $HOSTS_PROBE (once per test).
hosts__probe_write() {
    [ -z "$HOSTS_PROBE" ] || return 0
    # The interpreter itself: a wrapper (pyenv's shim is a shell script) would cost
    # a third of a second per probe.
    HOSTS_PY=$(python3 -c 'import sys; print(sys.executable)') && [ -x "$HOSTS_PY" ] ||
        it_fail "hosts.sh: cannot find the python3 interpreter"
    HOSTS_PROBE=$IT_TMP/hosts_probe.py
    cat >"$HOSTS_PROBE" <<'PYEOF' || it_fail "hosts.sh: cannot write $HOSTS_PROBE"
# hosts_probe.py: UDP and ICMP probes for tests/integration/hosts.sh (written there).
# Every wait is bounded by a timeout; output is line by line, flushed.
import argparse, os, select, socket, struct, sys, time


def fam(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def is_mcast(addr):
    if ":" in addr:
        return addr.lower().startswith("ff")
    return 224 <= int(addr.split(".")[0]) <= 239


def out(*a):
    print(*a, flush=True)


def ifindex(name):
    return socket.if_nametoindex(name) if name else 0


def dest(addr, port, idx):
    if ":" in addr:
        scope = idx if addr.lower().startswith(("ff02", "fe80")) else 0
        return (addr, port, 0, scope)
    return (addr, port)


def wait_datagrams(s, until, fn):
    n = 0
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return n
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            data, src = s.recvfrom(65535)
        except OSError as e:
            out("error", e)
            continue
        n += 1
        if not fn(data, src):
            return n


def recv(a):
    f = socket.AF_INET6 if a.addr == "any6" or ":" in a.addr else socket.AF_INET
    s = socket.socket(f, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    idx = ifindex(a.iface)
    if f == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if f == socket.AF_INET6 else "0.0.0.0", a.port))
    if a.addr not in ("any", "any6") and is_mcast(a.addr):
        if f == socket.AF_INET:
            mreq = struct.pack("=4s4si", socket.inet_aton(a.addr), socket.inet_aton("0.0.0.0"), idx)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        else:
            mreq = struct.pack("=16sI", socket.inet_pton(f, a.addr), idx)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    out("ready", s.getsockname()[1])
    got = [0]

    def on(data, src):
        got[0] += 1
        out("got", data.decode(errors="replace"), "from", src[0], src[1])
        if a.reply:
            s.sendto(b"re:" + data, src)
        return not (a.max and got[0] >= a.max)

    wait_datagrams(s, time.monotonic() + a.timeout, on)
    return 0 if got[0] else 3


def send(a):
    f = fam(a.addr)
    s = socket.socket(f, socket.SOCK_DGRAM)
    idx = ifindex(a.iface)
    s.bind(("::" if f == socket.AF_INET6 else "0.0.0.0", a.sport))
    if is_mcast(a.addr):
        if f == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, a.ttl)
            if idx:
                mreqn = struct.pack("=4s4si", socket.inet_aton("0.0.0.0"), socket.inet_aton("0.0.0.0"), idx)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, a.ttl)
            if idx:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
    out("local", s.getsockname()[1])
    for i in range(a.times):
        if i:
            time.sleep(0.1)
        try:
            s.sendto(a.token.encode(), dest(a.addr, a.port, idx))
        except OSError as e:
            out("error", e)
    rc = 0
    if a.wait_reply:
        def on_reply(data, src):
            out("reply", data.decode(errors="replace"), "from", src[0], src[1])
            return False
        rc = 0 if wait_datagrams(s, time.monotonic() + a.wait_reply, on_reply) else 3
    if a.linger:
        def on_extra(data, src):
            out("extra", data.decode(errors="replace"), "from", src[0], src[1])
            return True
        wait_datagrams(s, time.monotonic() + a.linger, on_extra)
    out("done")
    return rc


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF)
    t += t >> 16
    return ~t & 0xFFFF


def ping(a):
    # Echo requests to every address at once (one raw socket per family), up to
    # --tries rounds of --timeout seconds for those that have not answered; prints
    # "reply ADDR" or "noreply ADDR" for each.  Exit 0 when all answered, 1 when some
    # did not; with --none, 0 when none answered and 2 when some did.
    ident = os.getpid() & 0xFFFF
    payload = b"p2p-it" + os.urandom(8)
    socks = {}
    for addr in a.addr:
        f = fam(addr)
        if f not in socks:
            proto = socket.IPPROTO_ICMP if f == socket.AF_INET else socket.IPPROTO_ICMPV6
            socks[f] = socket.socket(f, socket.SOCK_RAW, proto)
    answered = set()
    seq = 0
    for _ in range(max(1, a.tries)):
        want = {}  # (family, seq) -> index in a.addr
        for n, addr in enumerate(a.addr):
            if n in answered:
                continue
            f = fam(addr)
            v4 = f == socket.AF_INET
            seq += 1
            typ = 8 if v4 else 128
            hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
            if v4:  # the kernel sums ICMPv6 itself
                hdr = struct.pack("!BBHHH", typ, 0, csum(hdr + payload), ident, seq)
            try:
                socks[f].sendto(hdr + payload, dest(addr, 0, 0))
            except OSError as e:
                out("error", addr, e)
            want[(f, seq)] = n
        until = time.monotonic() + a.timeout
        while any(n not in answered for n in want.values()):
            left = until - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select(list(socks.values()), [], [], left)
            for s in r:
                data, src = s.recvfrom(2048)
                v4 = s.family == socket.AF_INET
                if v4:
                    data = data[(data[0] & 0xF) * 4:]
                if len(data) < 8:
                    continue
                t, _, _, i, sq = struct.unpack("!BBHHH", data[:8])
                n = want.get((s.family, sq))
                if t == (0 if v4 else 129) and i == ident and data[8:] == payload and n is not None:
                    answered.add(n)
        if len(answered) == len(a.addr) or (a.none and answered):
            break
    for n, addr in enumerate(a.addr):
        out("reply" if n in answered else "noreply", addr)
    if a.none:
        return 2 if answered else 0
    return 0 if len(answered) == len(a.addr) else 1


p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd", required=True)
r = sub.add_parser("recv")
r.add_argument("addr")
r.add_argument("port", type=int)
r.add_argument("--iface")
r.add_argument("--timeout", type=float, default=5)
r.add_argument("--max", type=int, default=0)
r.add_argument("--reply", action="store_true")
r.set_defaults(fn=recv)
t = sub.add_parser("send")
t.add_argument("addr")
t.add_argument("port", type=int)
t.add_argument("token")
t.add_argument("--iface")
t.add_argument("--ttl", type=int, default=1)
t.add_argument("--times", type=int, default=1)
t.add_argument("--sport", type=int, default=0)
t.add_argument("--wait-reply", type=float, default=0)
t.add_argument("--linger", type=float, default=0)
t.set_defaults(fn=send)
g = sub.add_parser("ping")
g.add_argument("addr", nargs="+")
g.add_argument("--timeout", type=float, default=1)
g.add_argument("--tries", type=int, default=1)
g.add_argument("--none", action="store_true")
g.set_defaults(fn=ping)
a = p.parse_args()
sys.exit(a.fn(a))
PYEOF
}

# shellcheck shell=bash
#
# overlay.sh: helpers for the overlay integration tests (test_overlay_*.sh): p2psipd
# nodes on the hosts of hosts.sh, their control sockets, bounded waits on what they
# report.  Sourced, never run; it sources hosts.sh (and so lib.sh) itself.
#
# Design.  Each node NAME gets a directory $IT_TMP/NAME.d holding its database, its
# configuration file (p2p.conf, [p2p] settings only) and its control socket
# (control.sock).  Unix sockets live in the file system, not in a network namespace,
# so the test talks to every node's control socket from its own namespace, without
# entering the host.  The client is tools/ovl_ctl.py (p2psipd/control.h's NDJSON):
# no dependency on p2psipctl's output format, and one python process can run
# thousands of requests over a few connections (ovl_batch).  Values in the results
# are found by key, breadth first (ovl_field), so a field works whether the daemon
# puts it at the top of "status" or in a sub-object.
#
# Functions:
#   ovl_node_start H NAME [--server] [--secret FILE] [--p2p-port P] [--sip-port P]
#       [--boot HOST:PORT,...] [--promote S] [--cutoff S] [--no-multicast]
#       [--conf FILE] [--debug] [--no-wait] [-- EXTRA P2PSIPD ARGS]
#     starts p2psipd in host H through host_start (log $IT_TMP/NAME.log), then waits
#     (bounded, 15 s) until its control socket answers (not with --no-wait).
#     --p2p-port gives -P (which also turns multicast off); without it the default
#     port 7560 and multicast.  --promote defaults to 2 s (the daemon's is 15 s).
#     --conf FILE: FILE's lines are appended to the node's p2p.conf (other sections,
#     e.g. "[sip]" domain or "[auth]" accounts, for the tests with phones).
#   ovl_sock NAME            the control socket's path.
#   ovl_ctl NAME CMD [ARG...] [--opt K=V]   one request; the result JSON on stdout;
#     status 1 on an error answer, 2 when the socket does not answer.
#   ovl_field NAME CMD KEY [ARG...]   only the value of KEY in the result (true/false
#     for booleans, JSON for objects); status 3 when the result has no KEY.
#   ovl_wait NAME TIMEOUT DESC EXPR [CMD]  polls CMD (status) until the python
#     expression EXPR holds (r: the result, f('key'): a field); fails the test after
#     TIMEOUT seconds, naming DESC and showing the last result.
#   ovl_batch [--conc N] [--timeout S]   JSON lines {"sock","cmd","args","opts"} on
#     stdin, one answer line per request on stdout, in order (ovl_ctl.py batch).
#   ovl_node_id NAME         the node's ID (status node_id), 40 hex digits.
#   ovl_counter NAME KEY     a counter from "counters" (a number; fails the test if
#     the daemon reports no such counter).
#   ovl_secret_file NAME TEXT  a 0600 file holding an overlay secret; prints its path.
#   ovl_hosts_create ARGS... / ovl_hosts_nat H [--symmetric]   hosts_create /
#     hosts_nat, then ovl_static_neigh (permanent neighbour entries: see there).
# Rings:
#   ovl_ring_start [--multicast] NODE... [-- OPTIONS...]   ovl_node_start for each
#     NODE in turn, the Ith in host hI (each waits for its control socket): the
#     first with --server, the others with --boot <h1's IPv4 address>:7560, or,
#     with --multicast, with no --boot (they find the first by LAN multicast);
#     OPTIONS (ovl_node_start's) go to every node.  Waits for nothing more: what the
#     ring must look like is the test's to check.
#   ovl_ring_up T NODE... [-- OPTIONS...]   ovl_ring_start NODE... [-- OPTIONS...]
#     (the others given --boot h1:7560), then waits (ovl_wait, up to T seconds for
#     each, in order) until every NODE is a ring member (role member or super-node).
#   ovl_ring_grow HOSTS PER_HOST [OPTIONS...]   PER_HOST nodes in each of h1..hHOSTS,
#     nH_J (J = 0..PER_HOST-1) with P2P port 7560+J and SIP port 5100+J; n1_0 is the
#     server, every other one gets --boot h1:7560 and --no-wait; OPTIONS go to every
#     node.  One host at a time: the next host's nodes start once all of this host's
#     are ring members (40 s), and at the end all of them must be members (20 s);
#     fails the test otherwise.  Writes "NAME SOCKET" lines, the node list of
#     tools/ovl_ring.py, to $IT_TMP/all.nodes.
#   ovl_ring MODE NODES_FILE ARGS...   tools/ovl_ring.py (below).
# Phones (sipp) on the hosts, for the tests where calls cross nodes (test_p2psip_*):
#   ovl_sipp H NAME TIMEOUT SCENARIO [SIPP ARGS...]   sipp in host H in the
#     foreground, bounded by TIMEOUT seconds, files in $IT_TMP as with lib.sh's
#     it_sipp (NAME.log, NAME.stat.csv, NAME.err.log); returns sipp's exit status.
#   ovl_sipp_bg H NAME SCENARIO [SIPP ARGS...]   the same in the background (a UAS),
#     through host_start; stop it with it_stop NAME (status in IT_EXIT_OF[NAME]).
#   ovl_udp_bound H PORT     true when something in H has UDP PORT bound.
# Ring-wide checks (all members, exact leaf sets, bulk puts/gets) are in
# tools/ovl_ring.py, run by ovl_ring.
#
# Invariants: every wait is bounded; every daemon is started by host_start and
# stopped by pid (it_stop) or by the EXIT trap.

declare -F hosts_create >/dev/null || . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hosts.sh"

OVL_TOOLS=$IT_LIB_DIR/tools
OVL_CTL_PY=$OVL_TOOLS/ovl_ctl.py
declare -A OVL_DIR=()

# The python interpreter itself (pyenv's shim costs 0.3 s per start).
OVL_PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || OVL_PY=python3

ovl_bin() { it_p2psipd_bin; }

# ovl_hosts_create ARGS... / ovl_hosts_nat H [--symmetric]: hosts_create / hosts_nat,
# then ovl_static_neigh.
ovl_hosts_create() {
    hosts_create "$@"
    ovl_static_neigh
}

ovl_hosts_nat() {
    hosts_nat "$@"
    ovl_static_neigh
}

# ovl_static_neigh: a permanent neighbour entry (ARP, and NDP for global IPv6
# addresses) in every host and router for every other address on its segments (the
# LAN, each NAT router's inside link).  The kernel's
# neighbour table and its gc_thresh3 limit (1024) are shared by every network
# namespace of the machine: another test or benchmark with many hosts running at the
# same time fills it ("neighbour: arp_cache: neighbor table overflow!"), and then no
# new ARP entry can be made anywhere, so hosts created after that cannot reach each
# other at all (seen on the shared machine: h2 never sent a frame to h1).  Permanent
# entries are exempt from that limit and from garbage collection.
ovl_static_neigh() {
    local ns plan
    plan=$IT_TMP/static_neigh
    mkdir -p "$plan" || it_fail "mkdir $plan"
    for ns in "${HOSTS[@]}" "${HOSTS_ROUTERS[@]}"; do
        ip -n "$ns" -j addr show >"$plan/$ns.json" || it_fail "ovl_static_neigh: ip -n $ns addr"
    done
    "$OVL_PY" - "$plan" "${HOSTS[@]}" "${HOSTS_ROUTERS[@]}" <<'EOF' || it_fail "ovl_static_neigh: cannot plan the entries"
import ipaddress, json, os, sys
plan, names = sys.argv[1], sys.argv[2:]
ends = []  # (ns, dev, ip, mac, net)
for ns in names:
    for link in json.load(open(os.path.join(plan, ns + ".json"))):
        if link.get("ifname") == "lo" or not link.get("address"):
            continue
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" or (a.get("family") == "inet6" and a.get("scope") == "global"):
                net = ipaddress.ip_network("%s/%s" % (a["local"], a["prefixlen"]), strict=False)
                ends.append((ns, link["ifname"], a["local"], link["address"], net))
for ns in names:
    with open(os.path.join(plan, ns + ".batch"), "w") as f:
        for (ans, dev, ip, mac, net) in ends:
            if ans != ns:
                continue
            for (bns, _, bip, bmac, bnet) in ends:
                if bns != ns and bnet == net:
                    f.write("neigh replace %s lladdr %s dev %s nud permanent\n" % (bip, bmac, dev))
EOF
    for ns in "${HOSTS[@]}" "${HOSTS_ROUTERS[@]}"; do
        [ ! -s "$plan/$ns.batch" ] || ip -n "$ns" -batch "$plan/$ns.batch" ||
            it_fail "ovl_static_neigh: ip -n $ns -batch failed"
    done
}

ovl_node_start() {
    local h=$1 name=$2
    shift 2
    local server=0 secret="" p2p_port="" sip_port="" boot="" promote=2 cutoff="" nomc=0 debug=0
    local wait=1 conf_extra=""
    local extra=()
    while [ $# -gt 0 ]; do
        case $1 in
        --server) server=1; shift ;;
        --secret) secret=$2; shift 2 ;;
        --p2p-port) p2p_port=$2; shift 2 ;;
        --sip-port) sip_port=$2; shift 2 ;;
        --boot) boot=$2; shift 2 ;;
        --promote) promote=$2; shift 2 ;;
        --cutoff) cutoff=$2; shift 2 ;;
        --no-multicast) nomc=1; shift ;;
        --conf) conf_extra=$2; shift 2 ;;
        --debug) debug=1; shift ;;
        --no-wait) wait=0; shift ;;
        --) shift; extra=("$@"); break ;;
        *) it_fail "ovl_node_start: unknown option $1" ;;
        esac
    done
    local bin dir=$IT_TMP/$name.d
    bin=$(ovl_bin)
    [ -x "$bin" ] || it_fail "p2psipd not built: $bin"
    mkdir -p "$dir" || it_fail "mkdir $dir"
    chmod 700 "$dir"
    {
        echo "[p2p]"
        echo "promote_after = $promote"
        [ -z "$cutoff" ] || echo "cutoff = $cutoff"
        [ -z "$secret" ] || echo "secret = $secret"
        [ "$nomc" = 0 ] || echo "multicast = no"
        [ -z "$conf_extra" ] || cat "$conf_extra"
    } >"$dir/p2p.conf"
    local args=(--config "$dir/p2p.conf" --data-dir "$dir" --control "$dir/control.sock")
    [ "$server" = 0 ] || args+=(-s)
    [ -z "$p2p_port" ] || args+=(-P "$p2p_port")
    [ -z "$sip_port" ] || args+=(-p "$sip_port")
    [ -z "$boot" ] || args+=(-S "$boot")
    [ "$debug" = 0 ] || args+=(-d)
    OVL_DIR[$name]=$dir
    host_start "$h" "$name" "$bin" "${args[@]}" "${extra[@]}"
    [ "$wait" = 0 ] || it_wait_until 15 "$name's control socket to answer" ovl__answers "$name"
}

ovl__answers() {
    it_alive "$1" || it_fail "$1 exited: $(tail -n 5 "$IT_TMP/$1.log" | tr '\n' '|')"
    "$OVL_PY" "$OVL_CTL_PY" call "$(ovl_sock "$1")" ping --timeout 1 >/dev/null 2>&1
}

ovl_sock() {
    [ -n "${OVL_DIR[$1]:-}" ] || it_fail "ovl_sock: no node '$1'"
    echo "${OVL_DIR[$1]}/control.sock"
}

ovl_ctl() {
    local name=$1
    shift
    "$OVL_PY" "$OVL_CTL_PY" call "$(ovl_sock "$name")" "$@"
}

ovl_field() {
    local name=$1 cmd=$2 key=$3
    shift 3
    "$OVL_PY" "$OVL_CTL_PY" field "$(ovl_sock "$name")" "$cmd" "$key" "$@"
}

ovl_wait() {
    local name=$1 t=$2 desc=$3 expr=$4 cmd=${5:-status} err
    err=$("$OVL_PY" "$OVL_CTL_PY" wait "$(ovl_sock "$name")" "$t" "$expr" "$cmd" 2>&1 >/dev/null) ||
        it_fail "$name: timed out after ${t}s waiting for $desc: $err"
}

ovl_batch() { "$OVL_PY" "$OVL_CTL_PY" batch "$@"; }

ovl_node_id() {
    local id
    id=$(ovl_field "$1" status node_id) || it_fail "$1: status has no node_id"
    [[ $id =~ ^[0-9a-f]{40}$ ]] || it_fail "$1: node_id '$id' is not 40 hex digits"
    echo "$id"
}

ovl_counter() {
    local v
    v=$(ovl_field "$1" counters "$2") || it_fail "$1: counters has no $2: $(ovl_ctl "$1" counters 2>&1 | head -c 1500)"
    [[ $v =~ ^[0-9]+$ ]] || it_fail "$1: counter $2 is '$v', not a number"
    echo "$v"
}

# ovl_secret_file NAME TEXT: a 0600 file holding an overlay secret; prints its path.
ovl_secret_file() {
    local f=$IT_TMP/$1.secret
    (umask 077 && printf '%s\n' "$2" >"$f") || it_fail "cannot write $f"
    echo "$f"
}

# ---------------------------------------------------------------------------------
# Rings.

# ovl__ring_split NODE... [-- OPTIONS...]: the nodes into OVL__NODES, the options
# into OVL__OPTS.
ovl__ring_split() {
    OVL__NODES=()
    OVL__OPTS=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        OVL__NODES+=("$1")
        shift
    done
    [ $# -eq 0 ] || { shift; OVL__OPTS=("$@"); }
    [ ${#OVL__NODES[@]} -gt 0 ] || it_fail "ovl_ring: no node"
}

ovl_ring_start() {
    local mcast=0 i boot=()
    [ "${1:-}" != --multicast ] || { mcast=1; shift; }
    ovl__ring_split "$@"
    [ "$mcast" = 1 ] || boot=(--boot "$(host_ip h1):7560")
    ovl_node_start h1 "${OVL__NODES[0]}" --server "${OVL__OPTS[@]}"
    for ((i = 1; i < ${#OVL__NODES[@]}; i++)); do
        ovl_node_start "h$((i + 1))" "${OVL__NODES[i]}" "${boot[@]}" "${OVL__OPTS[@]}"
    done
}

ovl_ring_up() {
    local t=$1 n
    shift
    ovl_ring_start "$@"
    for n in "${OVL__NODES[@]}"; do
        ovl_wait "$n" "$t" "$n to be a ring member" "f('role') in ('member', 'super-node')"
    done
}

ovl_ring_grow() {
    local hosts=$1 per=$2 h j name out boot
    shift 2
    boot=$(host_ip h1):7560
    : >"$IT_TMP/all.nodes"
    for ((h = 1; h <= hosts; h++)); do
        : >"$IT_TMP/batch.nodes"
        for ((j = 0; j < per; j++)); do
            name=n${h}_$j
            if [ "$h.$j" = 1.0 ]; then
                ovl_node_start h1 "$name" --server --p2p-port 7560 --sip-port 5100 "$@"
            else
                ovl_node_start "h$h" "$name" --p2p-port $((7560 + j)) --sip-port $((5100 + j)) \
                    --boot "$boot" --no-wait "$@"
            fi
            echo "$name $(ovl_sock "$name")" | tee -a "$IT_TMP/all.nodes" >>"$IT_TMP/batch.nodes"
        done
        out=$(ovl_ring members "$IT_TMP/batch.nodes" 40 2>&1) || it_fail "h$h's daemons did not all become members: $out"
        it_log "h$h: $out"
    done
    out=$(ovl_ring members "$IT_TMP/all.nodes" 20 2>&1) || it_fail "not all $((hosts * per)) are members: $out"
}

ovl_ring() { "$OVL_PY" "$OVL_TOOLS/ovl_ring.py" "$@"; }

# ---------------------------------------------------------------------------------
# Phones (sipp) on the hosts.

ovl_sipp() {
    local h=$1 name=$2 t=$3
    it__sipp_scenario "$name" "$4"
    shift 4
    (cd "$IT_TMP" && host_run "$h" "$t" sipp -sf "$name.xml" -nostdin -trace_stat \
        -stf "$name.stat.csv" -fd 1 -trace_err -error_file "$name.err.log" "$@" \
        >>"$IT_TMP/$name.log" 2>&1)
}

ovl_sipp_bg() {
    local h=$1 name=$2
    it__sipp_scenario "$name" "$3"
    shift 3
    local here=$PWD
    # Not in a subshell: host_start records the pid in this shell.
    cd "$IT_TMP" || it_fail "cd $IT_TMP"
    host_start "$h" "$name" sipp -sf "$name.xml" -nostdin -trace_stat \
        -stf "$name.stat.csv" -fd 1 -trace_err -error_file "$name.err.log" "$@"
    cd "$here" || it_fail "cd $here"
}

ovl_udp_bound() { [ -n "$(host_exec "$1" ss -Hnlu "sport = :$2")" ]; }

#!/usr/bin/env bash
#
# test_overlay_nat.sh: nodes behind NATs stay clients of their super-nodes and still
# use the overlay through them (overlay_node.h "Roles": the reachability probe).
#
# h3 is behind a masquerading router that keeps source ports (r1), h4 behind one that
# maps every flow to a random port (r2, --symmetric); both set up before their nodes
# start.  n1 (-s) on h1, n2 on h2 (a member), n3 on h3 and n4 on h4 given -S
# h1:7560, promote_after 2 s.  For each of n3 and n4:
#   - it becomes a client with a super-node (status "super", n1 or n2) and stays one:
#     a monitor polls its role every 0.5 s until the super-nodes have answered at
#     least two more probe requests for each (first request plus two 20 s retries;
#     the client's advertised address is not the one its packets come from, so the
#     super-node refuses to probe it: probes_refused), and it never says
#     member, never isolated; no probe succeeded (probes_ok), it is in no leaf set,
#     and has no leaf set of its own;
#   - put on it, get on n2, and the reverse, return the values;
#   - a pipe datagram (p2psipctl pipe-ping, the echo service) from the member that
#     is not its super-node reaches it through the super-node (--via) and the echo
#     comes back: "from" is the client, "relayed_by" its super-node, whose relayed
#     counter grew; pipe-pings from it to n1 and to n2 are answered by them;
# and a pipe-ping from n3 to n4 through n4's super-node (client to client, both
# behind NATs) is answered by n4.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_begin "$@"
it_need ip nft python3

CLIENTS=(n3 n4)
ovl_hosts_create 4
ovl_hosts_nat h3
ovl_hosts_nat h4 --symmetric
ovl_ring_start --multicast n1 n2
ovl_wait n2 25 "role member" "f('role') == 'member' and f('leaf_count') >= 1"
probes_total() { # probe requests answered: sent, or refused (not the client's own address)
    echo $(($(ovl_counter n1 probes_sent) + $(ovl_counter n2 probes_sent) +
        $(ovl_counter n1 probes_refused) + $(ovl_counter n2 probes_refused)))
}
probes0=$(probes_total)
ok0=$(($(ovl_counter n1 probes_ok) + $(ovl_counter n2 probes_ok)))
ovl_node_start h3 n3 --boot "$(host_ip h1):7560"
ovl_node_start h4 n4 --boot "$(host_ip h1):7560"
declare -A ID=() SUPER=() SUPER_ID=() OTHER=()
for n in n1 n2; do ID[$n]=$(ovl_node_id "$n"); done
for c in "${CLIENTS[@]}"; do
    ovl_wait "$c" 15 "role client with a super-node" "f('role') == 'client' and f('super') is not None"
    ID[$c]=$(ovl_node_id "$c")
    SUPER_ID[$c]=$("$OVL_PY" -c 'import json,sys; print(json.loads(sys.argv[1])["super"]["id"])' \
        "$(ovl_ctl "$c" status)") || it_fail "$c's status has no super id"
    case ${SUPER_ID[$c]} in
    "${ID[n1]}") SUPER[$c]=n1 OTHER[$c]=n2 ;;
    "${ID[n2]}") SUPER[$c]=n2 OTHER[$c]=n1 ;;
    *) it_fail "$c's super-node ${SUPER_ID[$c]} is neither n1 nor n2" ;;
    esac
    it_log "$c is a client of ${SUPER[$c]}"
done

it_start monitor "$OVL_PY" "$OVL_CTL_PY" monitor 80 "$(ovl_sock n3)" "$(ovl_sock n4)"
it_wait_log monitor 'isolated=' 10

# DHT use through the super-node, both ways.
put_get() {
    local from=$1 to=$2 key=$3 val=$4 got
    ovl_ctl "$from" put "$key" "$val" >/dev/null || it_fail "put $key on $from failed: $(ovl_ctl "$from" put "$key" "$val" 2>&1)"
    got=$(ovl_ctl "$to" get "$key") || it_fail "get $key on $to failed"
    "$OVL_PY" - "$got" "$val" <<'EOF' || it_fail "get $key on $to: $got, want the value '$val'"
import json, sys
sys.exit(0 if [r.get("value") for r in json.loads(sys.argv[1])] == [sys.argv[2]] else 1)
EOF
}

# pipe_ping FROM TO [VIA]: FROM's echo request reaches TO (through VIA's relay when
# given) and TO's echo comes back; prints the answer.
pipe_ping() {
    local from=$1 to=$2 via=${3:-} pong
    local args=("${ID[$to]}" --timeout 8)
    [ -z "$via" ] || args+=(--via "${ID[$via]}")
    pong=$(ovl_ctl "$from" pipe-ping "${args[@]}") ||
        it_fail "pipe-ping $from -> $to${via:+ via $via} failed: $(ovl_ctl "$from" pipe-ping "${args[@]}" 2>&1)"
    "$OVL_PY" - "$pong" "${ID[$to]}" "${via:+${ID[$via]}}" <<'EOF' || it_fail "pipe-ping $from -> $to${via:+ via $via}: wrong answer $pong"
import json, sys
r, to, via = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.exit(0 if r.get("from") == to and (not via or r.get("relayed_by") == via) else 1)
EOF
    echo "$pong"
}

for c in "${CLIENTS[@]}"; do
    put_get "$c" n2 "key-from-$c" "value from behind the NAT of $c"
    put_get n2 "$c" "key-for-$c" "value for the client $c"
    put_get "$c" "$c" "key-from-$c" "value from behind the NAT of $c"
    it_log "put/get from $c through ${SUPER[$c]} work both ways"

    s=${SUPER[$c]}
    rel0=$(ovl_counter "$s" relayed)
    pong=$(pipe_ping "${OTHER[$c]}" "$c" "$s")
    rel1=$(ovl_counter "$s" relayed)
    [ "$rel1" -gt "$rel0" ] || it_fail "$s's relayed counter did not grow ($rel0 -> $rel1)"
    it_log "pipe datagram ${OTHER[$c]} -> $c relayed by $s: $pong"
    # And from the client out to each member (it opens its channels from inside).
    for n in n1 n2; do pipe_ping "$c" "$n" >/dev/null; done
done
pong=$(pipe_ping n3 n4 "${SUPER[n4]}")
it_log "pipe datagram n3 -> n4 (both behind NATs) relayed by ${SUPER[n4]}: $pong"

# Still clients after two more probe rounds each (NODE_PROBE_RETRY_MS 20 s).
probes_at_least() { [ "$(probes_total)" -ge "$1" ]; }
it_wait_until 60 "two probe retries for each client (probe requests of n1 + n2 >= $((probes0 + 6)))" \
    probes_at_least $((probes0 + 6))
for c in "${CLIENTS[@]}"; do
    ovl_wait "$c" 2 "role client" "f('role') == 'client' and f('super') is not None and f('isolated') is False"
done
it_stop monitor
polls=$(grep -c 'isolated=' "$IT_TMP/monitor.log")
[ "$polls" -ge 80 ] || it_fail "the monitor polled n3 and n4 only $polls times"
bad=$(grep -v 'isolated=false role=client' "$IT_TMP/monitor.log" | head -n 3)
[ -z "$bad" ] || it_fail "n3 or n4 was not a healthy client throughout: $bad"
ok1=$(($(ovl_counter n1 probes_ok) + $(ovl_counter n2 probes_ok)))
[ "$ok1" -eq "$ok0" ] || it_fail "a probe through a NAT succeeded ($ok0 -> $ok1 probes_ok)"
for c in "${CLIENTS[@]}"; do
    for n in n1 n2; do
        ! ovl_ctl "$n" leafset | grep -q "${ID[$c]}" || it_fail "$c (a client) is in $n's leaf set"
    done
    if ovl_ctl "$c" leafset >/dev/null 2>&1; then it_fail "$c (a client) has a leaf set"; fi
done
it_pass "n3 (NAT) and n4 (symmetric NAT) stay clients ($polls polls), put/get both ways, pipe datagrams relayed to them and between them"

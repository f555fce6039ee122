#!/usr/bin/env bash
#
# test_overlay_events.sh: `p2psipctl watch` streams what a node does, and `route KEY`
# returns the hops a lookup took (docs/CONTROL.md, Events and route).
#
# n1 (-s) on h1 is watched from the start; n2 and n3 join it with -S and are
# watched once their sockets answer.  Checked, each against the truth from status
# and the other commands:
#   - n1's watcher sees n2 and n3 enter its leaf set (neighbour add, set leaf) and
#     DHT messages from both (msg recv, with type names);
#   - a put on n2 of key k shows as a record event: "stored" at the root that
#     `route k` names, "replicated" at another node, both with H(k);
#   - `route k` from n3: the path runs from n3 (self) to the root, one entry per
#     hop plus the root, and each rtt_ms is a number of ms or null;
#   - a REGISTER on h2 shows as a binding event (published, the AoR, its key) on n2;
#   - n3 killed: n1's watcher sees it leave the leaf set.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_begin "$@"
it_need ip python3

CTL=$IT_BUILD/p2psipd/p2psipctl
[ -x "$CTL" ] || it_fail "p2psipctl not built"

# has W PYEXPR: a line of watcher W's output, as JSON e, makes PYEXPR true.
has() {
    python3 - "$IT_TMP/$1.log" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if isinstance(e, dict) and eval(sys.argv[2], {}, {"e": e}):
        sys.exit(0)
sys.exit(1)
EOF
}
wait_event() { # wait_event W T DESC PYEXPR
    it_wait_until "$2" "$1 to see $3" has "$1" "$4"
}
watch() { # watch NODE: starts watcher w_NODE and waits until it is subscribed
    local n=$1 before
    before=$(ovl_field "$n" counters subscribers) || it_fail "$n: no subscriber count"
    it_start "w_$n" "$CTL" --control "$(ovl_sock "$n")" --json watch
    ovl_wait "$n" 10 "w_$n to subscribe" "f('subscribers') == $before + 1" counters
}

ovl_hosts_create 3
ovl_node_start h1 n1 --server
watch n1
ovl_node_start h2 n2 --boot "$(host_ip h1):7560"
watch n2
ovl_node_start h3 n3 --boot "$(host_ip h1):7560"
watch n3
for n in n1 n2 n3; do
    ovl_wait "$n" 40 "$n to be a member with 2 leaves" \
        "f('role') in ('member', 'super-node') and f('leaf_count') == 2"
done
declare -A ID=()
for n in n1 n2 n3; do ID[$n]=$(ovl_node_id "$n"); done

# 1. The leaf set as it changes, and the messages.
for n in n2 n3; do
    wait_event w_n1 10 "$n enter the leaf set" \
        "e.get('event') == 'neighbour' and e['op'] == 'add' and e['set'] == 'leaf' and e['id'] == '${ID[$n]}' and ':' in e['addr']"
    wait_event w_n1 10 "messages from $n" \
        "e.get('event') == 'msg' and e['dir'] == 'recv' and e['peer'] == '${ID[$n]}' and e['type'].isupper() and e['size'] > 0"
done
wait_event w_n1 10 "a message sent" "e.get('event') == 'msg' and e['dir'] == 'sent' and e['type'] == 'LEAFSET'"

# 2. Records, and the route to their root.
out=$(ovl_ctl n2 put evkey evvalue --ttl 600) || it_fail "put on n2: $out"
route=$("$CTL" --control "$(ovl_sock n3)" --json route evkey) || it_fail "route on n3: $route"
it_log "route evkey from n3: $route"
read -r key root hops <<<"$(python3 - "$route" "${ID[n3]}" <<'EOF'
import json, sys
r, me = json.loads(sys.argv[1]), sys.argv[2]
p = r["path"]
assert len(p) == r["hops"] + 1, "path %d entries for %d hops" % (len(p), r["hops"])
assert p[0]["id"] == me and p[0].get("self") is True, "path does not start at n3: %r" % p[0]
assert p[-1]["id"] == r["root"]["id"], "path does not end at the root"
assert p[-1]["rtt_ms"] == 0, "the root's rtt_ms is %r" % p[-1]["rtt_ms"]
for h in p[:-1]:
    assert h["rtt_ms"] is None or (isinstance(h["rtt_ms"], int) and 0 <= h["rtt_ms"] < 65535), h
print(r["key"], r["root"]["id"], r["hops"])
EOF
)" || it_fail "route evkey from n3 is not a path from n3 to the root: $route"
[[ $key =~ ^[0-9a-f]{40}$ ]] || it_fail "route gave key '$key'"
rootnode=""
for n in n1 n2 n3; do [ "${ID[$n]}" != "$root" ] || rootnode=$n; done
[ -n "$rootnode" ] || it_fail "route's root $root is none of the three nodes"
it_log "key $key: root $rootnode, $hops hop(s) from n3"
wait_event "w_$rootnode" 10 "the record stored at the root" \
    "e.get('event') == 'record' and e['op'] == 'stored' and e['key'] == '$key' and e['tombstone'] is False"
replicated=0
for n in n1 n2 n3; do
    [ "$n" = "$rootnode" ] && continue
    if it_wait_until 10 "w_$n to see the record replicated" has "w_$n" \
        "e.get('event') == 'record' and e['op'] == 'replicated' and e['key'] == '$key'" 2>/dev/null; then
        replicated=$((replicated + 1))
    fi
done
[ "$replicated" -ge 1 ] || it_fail "no replica reported the record replicated"

# 3. A phone's binding, published by its node.
got=$(host_run h2 15 "$OVL_PY" "$OVL_TOOLS/sip_register.py" 127.0.0.1 5062 evalice) ||
    it_fail "REGISTER on h2 got no final response ($got)"
[ "${got%% *}" = 200 ] || it_fail "REGISTER on h2: got '$got', want 200"
wait_event w_n2 10 "alice's binding published" \
    "e.get('event') == 'binding' and e['op'] == 'published' and e['aor'] == 'sip:evalice@p2p.test' and len(e['key']) == 40"

# 4. A node dies: it leaves the others' leaf sets.
kill -9 "$(it_pid n3)" || it_fail "cannot kill n3"
wait_event w_n1 30 "n3 leave the leaf set" \
    "e.get('event') == 'neighbour' and e['op'] == 'remove' and e['set'] == 'leaf' and e['id'] == '${ID[n3]}'"
lost=$(ovl_field n1 counters events_dropped) || it_fail "n1: no events_dropped"
it_log "n1: $(grep -c '"event"' "$IT_TMP/w_n1.log") events seen by w_n1, $lost dropped"
it_pass

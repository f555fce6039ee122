#!/usr/bin/env bash
#
# test_forward_foreign.sh: proxy.forward_foreign = yes sends requests for domains that
# are not ours where RFC 3263 says (overlay/sip_resolver.c), in a private network
# namespace (lib.sh) where no DNS server is reachable: the only name used is
# "localhost" with an explicit port, an A/AAAA lookup answered from /etc/hosts.
#
# Checks (daemon/foreign.py): the MESSAGE to sip:bob@localhost:PORT reaches a UDP sink
# on that port with the proxy's Via on top, the sink's 200 reaches the UA; a sips URI
# is refused with a 5xx and reaches nobody; the log names the sips refusal; SIGTERM
# exits 0 (the resolver is closed before the proxy, no handle leaks).
set -u
. "$(dirname "$0")/lib.sh"
it_begin "$@"
it_need python3

bin=$(it_p2psipd_bin)
[ -x "$bin" ] || it_fail "p2psipd not built: $bin"
port=25280
sink=25281
conf=$IT_TMP/p2psipd.conf
printf '[sip]\nport = %s\nlisten = 127.0.0.1\ndomain = p2p.test\n[proxy]\nforward_foreign = yes\n' \
    "$port" >"$conf"
mkdir -p "$IT_TMP/data"
it_start node "$bin" -s -d --config "$conf" --data-dir "$IT_TMP/data"
it_wait_udp "$port" 30

it_run 30 python3 "$IT_LIB_DIR/daemon/foreign.py" "$port" "$sink" >"$IT_TMP/foreign.out" 2>&1
st=$?
cat "$IT_TMP/foreign.out" >&2
[ "$st" -eq 0 ] || it_fail "foreign.py exited with $st"
it_wait_log node "RFC 3263: sips:bob@far.example: sips needs TLS" 10
it_server_stop node
it_pass "foreign request forwarded through the RFC 3263 resolver, sips refused"

#!/usr/bin/env bash
#
# test_torture_udp.sh: the RFC 4475 and RFC 5118 torture messages, each sent over UDP
# to the running server as one datagram, get the answer their RFC gives (the verdict
# table of tests/unit/test_sip_torture.c, mapped to the wire by
# sip_torture_udp.py), are never forwarded, and never stop the server: after every
# message it still answers an OPTIONS, and it is still running at the end.
#
# The namespace routes every destination to loopback, so that whatever the server
# sends (responses go to the hosts named in each message's Via) is captured.
# Digest accounts are configured and every domain is served (p2psipd's default), so
# REGISTERs are challenged and bind nothing.
#
# Messages that share a server transaction (RFC 3261 17.2.3: same branch, sent-by,
# method) are sent to separate server runs (sip_torture_udp.py --groups).
#
# Fails when: a message gets another answer than its verdict (or an answer where it
# must be dropped), the server sends any request (forwarding; a valid request with a
# foreign Route set must go to that Route only), answers trailing bytes of a
# datagram, stops answering, exits, or does not exit 0 on SIGTERM.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need python3 ss
[ "$(id -u)" -eq 0 ] || it_fail "needs root (in the namespace) to sniff loopback"

PORT=5062
ip route add default dev lo || it_fail "cannot route everything to loopback"
ip -6 route add default dev lo 2>/dev/null || true

users=$IT_TMP/users.csv
it_users 2 "$users"
table=$IT_SRC/tests/unit/test_sip_torture.c
[ -f "$table" ] || it_fail "no verdict table $table"
torture=(python3 "$IT_LIB_DIR/sip_torture_udp.py" --server "127.0.0.1:$PORT"
         --data "$IT_SRC/tests/data/sip-torture" --table "$table" --domain "$IT_DOMAIN")

# Messages of one server transaction (same branch, sent-by, method) go to different
# server runs: for one server the second would be a retransmission of the first.
"${torture[@]}" --groups >"$IT_TMP/groups" 2>&1 ||
    it_fail "cannot plan the torture run: $(cat "$IT_TMP/groups")"
mapfile -t groups <"$IT_TMP/groups"
[ ${#groups[@]} -gt 0 ] || it_fail "no torture messages"
bad=0 total=0 g=0
for group in "${groups[@]}"; do
    g=$((g + 1))
    only=()
    for f in $group; do only+=(--only "$f"); done
    IT_DOMAIN_ANY=1 it_server_start server "$PORT" --auth "$users" --data-dir "$IT_TMP/data.$g"
    it_run 300 "${torture[@]}" "${only[@]}" >"$IT_TMP/torture.$g.out" 2>&1
    st=$?
    grep -E '^(ok  |FAIL)' "$IT_TMP/torture.$g.out"
    n=$(grep -Ec '^(ok  |FAIL)' "$IT_TMP/torture.$g.out")
    nbad=$(grep -c '^FAIL' "$IT_TMP/torture.$g.out")
    total=$((total + n))
    bad=$((bad + nbad))
    [ "$st" -eq 0 ] || [ "$nbad" -gt 0 ] || it_fail "torture group $g: status $st: $(tail -n 3 "$IT_TMP/torture.$g.out")"
    it_alive server || it_fail "server exited during torture group $g"
    it_server_stop server
done
[ "$bad" -eq 0 ] || it_fail "$bad of $total torture lines not as their RFCs say (see above)"
it_pass "$total torture messages handled as their RFCs say, none forwarded, server alive"

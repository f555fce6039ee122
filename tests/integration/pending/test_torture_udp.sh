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
# Fails when: a message gets another answer than its verdict (or an answer where it
# must be dropped), the server sends any request (forwarding), answers trailing bytes
# of a datagram, stops answering, or exits.
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
IT_DOMAIN_ANY=1 it_server_start server "$PORT" --auth "$users"

table=$IT_SRC/tests/unit/test_sip_torture.c
[ -f "$table" ] || it_fail "no verdict table $table"
it_run 300 python3 "$IT_LIB_DIR/sip_torture_udp.py" --server "127.0.0.1:$PORT" \
    --data "$IT_SRC/tests/data/sip-torture" --table "$table" --domain "$IT_DOMAIN" \
    >"$IT_TMP/torture.log" 2>&1
st=$?
cat "$IT_TMP/torture.log"
it_alive server || it_fail "server exited during the torture run"
[ "$st" -eq 0 ] || it_fail "torture messages not handled as their RFCs say (see above)"
it_stop server
[ "${IT_EXIT_OF[server]}" -eq 0 ] || it_fail "server exit status ${IT_EXIT_OF[server]} on SIGTERM"
it_pass "$(tail -n 1 "$IT_TMP/torture.log")"

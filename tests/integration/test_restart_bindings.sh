#!/usr/bin/env bash
#
# test_restart_bindings.sh: bindings survive a restart.  50 AoRs are registered
# (sipp, from the UAS's own address), the server is stopped with SIGTERM and started
# again on the same data directory, then 50 calls to those AoRs through the proxy
# must all reach the sipp UAS, and a call to an AoR never registered must still get
# 404/480 (the server does not route everything to the UAS).
#
# Fails when: the server does not exit 0 on SIGTERM, any of the 50 calls after the
# restart fails or does not reach the UAS, or the unregistered AoR is routed.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need sipp ss

N=50
PORT=5062
UAS_PORT=5080
data=$IT_TMP/data
users=$IT_TMP/users.csv
it_users "$N" "$users" kept

it_server_start server "$PORT" --data-dir "$data" --persist
# Registered from the UAS's address and port: the contact is where the REGISTER
# came from, as for a real phone.
it_sipp reg 60 register.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -inf "$users" \
    -key domain "$IT_DOMAIN" -key contact_hp "127.0.0.1:$UAS_PORT" -key expires 3600 \
    -default_behaviors -bye -m "$N" -r 50 127.0.0.1:$PORT
it_sipp_expect reg $? "$N"

it_server_stop server
it_server_start server "$PORT" --data-dir "$data" --persist

it_sipp_bg uas uas.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m "$N" -default_behaviors -bye
it_wait_udp "$UAS_PORT"
it_sipp uac 120 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
    -m "$N" -r 20 127.0.0.1:$PORT
it_sipp_expect uac $? "$N"
it_wait_until 60 "the UAS to finish its $N calls" eval '! it_alive uas'
it_stop uas
it_sipp_expect uas "${IT_EXIT_OF[uas]}" "$N"

nobody=$IT_TMP/nobody.csv
printf 'SEQUENTIAL\nnever-registered\n' >"$nobody"
it_sipp notfound 60 uac_notfound.xml -i 127.0.0.1 -p 5072 -t u1 -inf "$nobody" \
    -key domain "$IT_DOMAIN" -default_behaviors -bye -m 1 127.0.0.1:$PORT
it_sipp_expect notfound $? 1

it_alive server || it_fail "server exited"
it_server_stop server
it_pass "$N bindings kept across a SIGTERM restart: $N calls reached the UAS"

#!/usr/bin/env bash
#
# test_sipp_register.sh: the registrar takes 10,000 REGISTERs for 10,000 distinct AoRs
# from sipp (2,000/s, UDP) with no failure, first without authentication, then with
# digest authentication (RFC 3261 22.4) against an accounts file of those 10,000
# users; a wrong password never binds.
#
# Fails when: sipp exits non-zero, its statistics show a failed call or fewer than
# 10,000 successful ones, a 200 does not list the contact just registered
# (sipp/register.xml), the server answers 200 without a challenge when accounts are
# configured, accepts a wrong password, or exits during the test.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need sipp ss

N=10000
RATE=${IT_RATE:-2000}
PORT=5062
users=$IT_TMP/users.csv
it_users "$N" "$users"
sipp_common=(-i 127.0.0.1 -p 5070 -t u1 -inf "$users" -key domain "$IT_DOMAIN"
             -key contact_hp 127.0.0.1:5999 -key expires 3600 -max_retrans 6
             -default_behaviors -bye -auth_uri "$IT_DOMAIN")

# 1. No authentication: every REGISTER binds.
it_server_start server "$PORT" --data-dir "$IT_TMP/data-open"
it_sipp reg_open 180 register.xml "${sipp_common[@]}" -m "$N" -r "$RATE" -l 2000 \
    127.0.0.1:$PORT
it_sipp_expect reg_open $? "$N"
it_alive server || it_fail "server exited during the REGISTER run"
it_server_stop server

# 2. Digest authentication: challenged, then bound.
it_server_start server "$PORT" --auth "$users" --md5 --data-dir "$IT_TMP/data-auth"
it_sipp reg_auth 240 register_auth.xml "${sipp_common[@]}" -m "$N" -r "$RATE" -l 2000 \
    127.0.0.1:$PORT
it_sipp_expect reg_auth $? "$N"

# 3. Wrong passwords (each user's own password with a character added) are refused.
bad=$IT_TMP/bad.csv
{ echo SEQUENTIAL; sed -n '2,101p' "$users" | sed 's/password=\([^]]*\)]$/password=\1x]/'; } >"$bad"
it_sipp reg_bad 120 register_badauth.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$bad" \
    -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5998 -key expires 3600 \
    -default_behaviors -bye -auth_uri "$IT_DOMAIN" -m 100 -r 100 127.0.0.1:$PORT
it_sipp_expect reg_bad $? 100
it_alive server || it_fail "server exited during the digest runs"
it_server_stop server
it_pass "10000 REGISTERs without and with digest, 0 failures; 100 wrong passwords refused"

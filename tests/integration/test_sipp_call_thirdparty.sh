#!/usr/bin/env bash
#
# test_sipp_call_thirdparty.sh: test_sipp_call.sh with the UAS's AoRs registered from
# another address than the contact's (third-party registration, RFC 3261 10.2): the
# proxy must send the calls to the registered contact (RFC 3261 16.5, 16.6 steps
# 6-7), not to where the REGISTER came from.
here=$(dirname "$0"); [ -f "$here/test_sipp_call.sh" ] || here=$here/..
IT_THIRD_PARTY=1 exec bash "$here/test_sipp_call.sh" "$@"

#!/usr/bin/env bash
#
# test_metrics.sh: the Prometheus metrics of a real p2psipd ("p2psipctl metrics" and
# the --metrics-listen HTTP listener), and the log rate limit under a flood.
#
# Two nodes on loopback form a ring (a: -s, metrics_listen 127.0.0.1:9100 in its
# configuration file; b: --metrics-listen 9101, a bare port).  20 phones (sipp)
# REGISTER at a, a sipp UAC places 5 calls through a to a sipp UAS registered
# there, and p2psipctl does 3 puts and 2 gets at a.  Then:
#   - `p2psipctl metrics` at a and GET http://127.0.0.1:9100/metrics both parse as
#     Prometheus text (tools/prom_check.py: sample syntax, HELP and TYPE for every
#     family, families contiguous, histogram buckets increasing and cumulative,
#     +Inf == _count, _sum present);
#   - the REGISTER histogram counts 20, the call-setup one 5, DHT puts from REGISTERs
#     20, puts and gets from the control socket 3 and 2, DHT gets from lookups 5;
#   - every counter of `p2psipctl --json counters` (the DHT's per type and
#     direction, messages and bytes, and all others but the control socket's) has
#     the same value in the exposition (read until the counters hold still around
#     one reading of the metrics);
#   - HTTP: 200 with Content-Type text/plain; version=0.0.4 for GET /metrics, 404
#     for another path, 405 for POST; b answers on 127.0.0.1:9101.
# Then the log flood: node a logs at info with log.burst = 5 and log.rate = 1.  20
# rounds of 100 datagrams of random bytes to its P2P port and 100 to its SIP port,
# each round ended by a barrier (a SIP OPTIONS answered, and the overlay's
# dropped_malformed counter up by 100), so every datagram was handled.  Lines a
# peer causes are limited per category to burst + rate * T lines in T seconds (plus
# at most as many "N messages suppressed" lines), so the log of a may grow by at
# most 2 * (5 + 1 * (T + 1)) lines over the flood's T seconds (rounded up), where 2000
# unlimited lines would be 2000; at least the burst (5) of "not taken" lines must
# be there, and a garbage datagram once a token is back must bring a
# "SIP: N messages suppressed" line.
#
# Fails when any of those differs, a sipp run fails, or a daemon does not exit 0
# on SIGTERM.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need python3 sipp ss

bin=$(it_p2psipd_bin)
ctl=$IT_BUILD/p2psipd/p2psipctl
check=$IT_LIB_DIR/tools/prom_check.py
[ -x "$bin" ] || it_fail "p2psipd not built: $bin"
[ -x "$ctl" ] || it_fail "p2psipctl not built: $ctl"

USERS=20
CALLS=5
BURST=5
RATE=1
ROUNDS=20
PER_ROUND=100

# 1. Two nodes.  promote_after = 0: b becomes a ring member at once.
mkdir -p "$IT_TMP/a" "$IT_TMP/b"
cat >"$IT_TMP/a.conf" <<EOF
metrics_listen = 127.0.0.1:9100
[sip]
port = 5062
domain = $IT_DOMAIN
[log]
level = info
burst = $BURST
rate = $RATE
[p2p]
promote_after = 0
EOF
printf '[sip]\nport = 5064\ndomain = %s\n[p2p]\npromote_after = 0\n' "$IT_DOMAIN" >"$IT_TMP/b.conf"
it_start a "$bin" -s -P 7560 --config "$IT_TMP/a.conf" --data-dir "$IT_TMP/a"
it_wait_log a 'running: data directory' 15
it_wait_log a 'metrics on http://127.0.0.1:9100/metrics' 5
it_start b "$bin" -P 7570 -S 127.0.0.1:7560 --metrics-listen 9101 --config "$IT_TMP/b.conf" \
    --data-dir "$IT_TMP/b"
it_wait_log b 'running: data directory' 15
it_wait_log b 'metrics on http://127.0.0.1:9101/metrics' 5
is_member() {
    "$ctl" --data-dir "$IT_TMP/$1" --json status 2>/dev/null |
        python3 -c 'import json, sys
sys.exit(json.load(sys.stdin)["role"] not in ("member", "super-node"))'
}
it_wait_until 30 "b to join a's ring" is_member b
it_wait_until 10 "a to see b in its leaf set" sh -c \
    "'$ctl' --data-dir '$IT_TMP/a' --json status | grep -q '\"leaf_count\":[1-9]'"

# 2. Work for the histograms: REGISTERs, calls, puts and gets, all at a.
users=$IT_TMP/users.csv
it_users "$USERS" "$users" phone
it_sipp reg 60 register.xml -i 127.0.0.1 -p 5070 -t u1 -inf "$users" \
    -key domain "$IT_DOMAIN" -key contact_hp 127.0.0.1:5080 -key expires 3600 \
    -default_behaviors -bye -m "$USERS" -r "$USERS" 127.0.0.1:5062
it_sipp_expect reg $? "$USERS"
it_sipp_bg uas uas.xml -i 127.0.0.1 -p 5080 -t u1 -m "$CALLS" -trace_counts \
    -default_behaviors -bye
it_wait_udp 5080
it_sipp uac 60 uac.xml -i 127.0.0.1 -p 5071 -t u1 -inf "$users" -key domain "$IT_DOMAIN" \
    -trace_counts -m "$CALLS" -r "$CALLS" -l "$CALLS" -rsa 127.0.0.1:5062 127.0.0.1:5062
it_sipp_expect uac $? "$CALLS"
it_wait_until 30 "the UAS to finish its $CALLS calls" eval '! it_alive uas'
it_stop uas
it_sipp_expect uas "${IT_EXIT_OF[uas]}" "$CALLS"
for i in 1 2 3; do
    it_run 20 "$ctl" --data-dir "$IT_TMP/a" put "key$i" "value $i" >/dev/null ||
        it_fail "p2psipctl put key$i failed"
done
for i in 1 2; do
    it_run 20 "$ctl" --data-dir "$IT_TMP/a" get "key$i" | grep -qF "value $i" ||
        it_fail "p2psipctl get key$i does not give 'value $i'"
done

# 3. The exposition, from the control socket and over HTTP.
it_run 10 "$ctl" --data-dir "$IT_TMP/a" metrics >"$IT_TMP/metrics.ctl" ||
    it_fail "p2psipctl metrics exited with $?"
expect=(
    --expect "p2psip_sip_register_duration_seconds_count=$USERS"
    --expect "p2psip_sip_call_setup_duration_seconds_count=$CALLS"
    --expect "p2psip_dht_put_duration_seconds_count{origin=\"register\"}=$USERS"
    --expect 'p2psip_dht_put_duration_seconds_count{origin="control"}=3'
    --expect 'p2psip_dht_get_duration_seconds_count{origin="control"}=2'
    --expect "p2psip_dht_get_duration_seconds_count{origin=\"lookup\"}=$CALLS"
)
python3 "$check" "$IT_TMP/metrics.ctl" "${expect[@]}" >&2 || it_fail "p2psipctl metrics: see above"
python3 "$check" "$IT_TMP/metrics.ctl" --counters-from "$ctl" "$IT_TMP/a" >&2 ||
    it_fail "the metrics and p2psipctl counters disagree: see above"
python3 - "$IT_TMP/metrics.http" <<'PYEOF' || it_fail "HTTP listener: see above"
import sys, urllib.error, urllib.request

def get(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()

status, ctype, body = get("http://127.0.0.1:9100/metrics")
if status != 200 or not ctype.startswith("text/plain; version=0.0.4"):
    sys.exit("GET /metrics: %d %r" % (status, ctype))
open(sys.argv[1], "wb").write(body)
for url, data, want in (("http://127.0.0.1:9100/", None, 404),
                        ("http://127.0.0.1:9100/metrics/x", None, 404),
                        ("http://127.0.0.1:9100/metrics", b"x=1", 405)):
    got = get(url, data)[0]
    if got != want:
        sys.exit("%s %s: %d, want %d" % ("POST" if data else "GET", url, got, want))
status, _, body = get("http://127.0.0.1:9101/metrics")
if status != 200 or b"p2psip_dht_messages_total" not in body:
    sys.exit("b's listener on the bare port 9101: %d" % status)
PYEOF
python3 "$check" "$IT_TMP/metrics.http" "${expect[@]}" >&2 || it_fail "GET /metrics: see above"

# 4. The flood.  Each round ends when a has handled all of it (a barrier), so no
# datagram is lost in a socket buffer and none is still queued at the count.
cat >"$IT_TMP/flood.py" <<'PYEOF'
import json, math, os, socket, subprocess, sys, time
ctl, data, rounds, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def malformed():
    out = subprocess.run([ctl, "--data-dir", data, "--json", "counters"], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    return json.loads(out)["dropped_malformed"]

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(2)
port = s.getsockname()[1]
base = malformed()
start = time.monotonic()
for r in range(rounds):
    for i in range(per):
        s.sendto(os.urandom(80), ("127.0.0.1", 7560))
        s.sendto(b"\x00garbage " + os.urandom(70), ("127.0.0.1", 5062))
    branch = "z9hG4bK-barrier-%d" % r
    options = ("OPTIONS sip:nobody@p2p.test SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\nMax-Forwards: 0\r\n"
               "From: <sip:flood@p2p.test>;tag=f\r\nTo: <sip:nobody@p2p.test>\r\n"
               "Call-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
               % (port, branch, branch)).encode()
    for attempt in range(5):  # the barrier: a is done with this round's SIP datagrams
        s.sendto(options, ("127.0.0.1", 5062))
        try:
            while branch.encode() not in s.recv(4096):
                pass
            break
        except socket.timeout:
            pass
    else:
        sys.exit("round %d: no answer to the barrier OPTIONS" % r)
    want, deadline = base + (r + 1) * per, time.monotonic() + 10
    while malformed() < want:  # and with the P2P ones
        if time.monotonic() > deadline:
            sys.exit("round %d: dropped_malformed stays at %d < %d" % (r, malformed(), want))
        time.sleep(0.02)
elapsed = time.monotonic() - start
print("%d %.3f" % (math.ceil(elapsed), elapsed))  # whole seconds rounded up, and exact
PYEOF
before=$(wc -l <"$IT_TMP/a.log")
out=$(python3 "$IT_TMP/flood.py" "$ctl" "$IT_TMP/a" "$ROUNDS" "$PER_ROUND") ||
    it_fail "the flood: see above"
after=$(wc -l <"$IT_TMP/a.log")
read -r secs t <<<"$out"
grown=$((after - before))
# Per category: burst + rate * T lines, and at most as many "suppressed" lines; T is
# rounded up, and one second more covers a refill that lands between two readings.
allowed=$((2 * (BURST + RATE * (secs + 1))))
it_log "flood of $((2 * ROUNDS * PER_ROUND)) datagrams in $t s: the log grew by $grown lines" \
    "(allowed $allowed)"
[ "$grown" -le "$allowed" ] ||
    it_fail "the log grew by $grown lines during the flood, more than the limit's $allowed"
taken=$(tail -n "$grown" "$IT_TMP/a.log" | grep -c 'SIP message from UDP not taken')
[ "$taken" -ge "$BURST" ] ||
    it_fail "only $taken 'not taken' lines: the limiter did not let the burst through"
# Once a token is back, the next one tells how many were dropped.
poke() {
    python3 -c 'import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"\x00junk", ("127.0.0.1", 5062))'
    grep -qE 'info: SIP: [0-9]+ messages suppressed' "$IT_TMP/a.log"
}
it_wait_until 15 "a 'SIP: N messages suppressed' line" poke

it_alive a || it_fail "a exited during the flood"
it_server_stop b
it_server_stop a
it_pass "metrics parse (control socket, HTTP), histograms and counters match," \
    "log bounded under a flood ($grown <= $allowed lines)"

#!/usr/bin/env bash
#
# test_daemon_basics.sh: p2psipd's life cycle, run as a real process in a private
# network namespace (lib.sh) on a data directory under a mktemp directory.
#
# Checks: --help and --version print what they should and exit 0; a bad option exits
# 2; a bad configuration line stops the start with "file:line: reason" and status 1;
# the command line overrides the file (--print-config); a second daemon on the same
# data directory refuses to start; SIGHUP reloads (log line, a new log level takes
# effect, a bad file keeps the daemon running); SIGTERM exits 0 within 2 s.  SIP: a
# REGISTER (daemon/register.py) gets 200 listing its binding, which is in sqlite; -d
# traces messages with source and destination; a binding that expires is deleted from
# the database; a burst of 200 REGISTERs is answered 200 in fewer commits than
# publishes; after a restart live bindings are served and expired ones are not.
# Transports: IPv6 UDP and TCP REGISTERs get 200, a bad CSeq 400, garbage nothing; a
# daemon on a taken port exits 1.  After kill -9, every binding answered 200 is
# restored.  OPTIONS keep-alive: a dead contact loses its binding, a live one keeps it.
#
# Fails when any of those outputs, statuses, database rows or log lines is missing
# or different.
set -u
. "$(dirname "$0")/lib.sh"
it_begin "$@"
it_need python3 sqlite3

bin=$(it_p2psipd_bin)
[ -x "$bin" ] || it_fail "p2psipd not built: $bin"
data=$IT_TMP/data
conf=$IT_TMP/p2psipd.conf

# 1. --help, --version, a bad option.
out=$("$bin" --help) || it_fail "--help exited with $?"
for want in -- '--sip-port PORT' '--p2p-port PORT' '--servers LIST' '--listen ADDRS' \
    '--config FILE' '--data-dir DIR' '--accounts FILE' 'default 5062' 'default 7560' \
    'SIGHUP'; do
    grep -qF -- "$want" <<<"$out" || it_fail "--help does not mention '$want'"
done
out=$("$bin" --version) || it_fail "--version exited with $?"
[[ $out =~ ^p2psipd\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || it_fail "--version printed '$out'"
"$bin" --no-such-option >"$IT_TMP/badopt.out" 2>&1
st=$?
[ "$st" -eq 2 ] || it_fail "a bad option exited with $st, want 2"
grep -qF "unknown option '--no-such-option'" "$IT_TMP/badopt.out" ||
    it_fail "a bad option is not named: $(cat "$IT_TMP/badopt.out")"

# 2. A bad configuration line: file:line: reason, status 1, nothing created.
printf '[sip]\nport = 5062\nlisten = 127.0.0.1, not-an-address\n' >"$conf"
it_run 10 "$bin" --config "$conf" --data-dir "$data" >"$IT_TMP/badconf.out" 2>&1
st=$?
[ "$st" -eq 1 ] || it_fail "a bad configuration exited with $st, want 1"
grep -qF "$conf:3: sip.listen: 'not-an-address' is not an IPv4 or IPv6 address" \
    "$IT_TMP/badconf.out" || it_fail "bad configuration message: $(cat "$IT_TMP/badconf.out")"
[ ! -e "$data" ] || it_fail "a failed start created the data directory"
printf '[sip]\nport = 5062\n[nosuch]\n' >"$conf"
it_run 10 "$bin" --config "$conf" --data-dir "$data" >"$IT_TMP/badconf.out" 2>&1
grep -qF "$conf:3: unknown section [nosuch]" "$IT_TMP/badconf.out" ||
    it_fail "unknown section message: $(cat "$IT_TMP/badconf.out")"

# 3. The command line overrides the file.
printf '[sip]\nport = 5070\nlisten = 127.0.0.1\n[log]\nlevel = info\n' >"$conf"
out=$("$bin" --config "$conf" -p 5072 --listen ::1,127.0.0.1 -S '[::1]:4000,10.0.0.1:4001' \
    --data-dir "$data" --print-config) || it_fail "--print-config exited with $?"
for want in 'port = 5072' 'listen = ::1, 127.0.0.1' 'level = info' \
    'servers = [::1]:4000, 10.0.0.1:4001' "data_dir = $data"; do
    grep -qxF -- "$want" <<<"$out" || it_fail "--print-config lacks '$want': $out"
done

# 4. Start; a second daemon on the same data directory is refused.
printf '[sip]\nport = 5062\n[log]\nlevel = notice\n' >"$conf"
it_start node "$bin" -s --config "$conf" --data-dir "$data"
it_wait_log node 'running: data directory' 10
it_run 10 "$bin" --config "$conf" --data-dir "$data" -p 5064 >"$IT_TMP/second.out" 2>&1
st=$?
[ "$st" -eq 1 ] || it_fail "a second daemon on the same data directory exited with $st"
grep -qE "data directory .* is in use by another p2psipd \(pid $(it_pid node)\)" \
    "$IT_TMP/second.out" || it_fail "second daemon message: $(cat "$IT_TMP/second.out")"
[ -d "$data" ] && [ "$(stat -c %a "$data")" = 700 ] || it_fail "data directory not mode 0700"

# 5. SIGHUP reloads: a new log level takes effect; a broken file changes nothing.
printf '[sip]\nport = 5062\n[log]\nlevel = debug\n' >"$conf"
kill -HUP "$(it_pid node)"
it_wait_log node 'configuration reloaded from' 10
printf '[sip]\nport = 5066\n[log]\nlevel = warn\n' >"$conf"
kill -HUP "$(it_pid node)"
it_wait_log node 'sip.port, sip.listen and sip.transports need a restart' 10
[ "$(it_log_count node 'configuration reloaded from')" -eq 2 ] ||
    it_fail "the second reload was not logged"
printf '[log]\nlevel = loud\n' >"$conf"
kill -HUP "$(it_pid node)"
it_wait_log node "reload failed, configuration unchanged: $conf:2: log.level" 10
it_alive node || it_fail "p2psipd exited after a bad reload"
# The level "warn" of the second reload is in force: the third SIGHUP's notice is not
# logged, the first two are.
[ "$(it_log_count node 'notice: SIGHUP: reloading')" -eq 2 ] ||
    it_fail "log.level = warn did not take effect on reload"

# 6. SIGTERM: exit status 0 (which main() gives only when uv_loop_close() found no
# handle left open), within 2 seconds.
start=$(date +%s%N)
IT_STOP_WAIT=2 it_stop node TERM
ms=$((($(date +%s%N) - start) / 1000000))
[ "${IT_EXIT_OF[node]}" -eq 0 ] || it_fail "SIGTERM: exit status ${IT_EXIT_OF[node]}, want 0"
[ "$ms" -lt 2000 ] || it_fail "SIGTERM took $ms ms"

stop_ms=$ms

# 7. SIP: a REGISTER gets 200 listing its binding, which is in the database; -d traces
# every message with its source and destination; a binding expires while we run.
reg() { it_run 20 python3 "$IT_LIB_DIR/daemon/register.py" "$@"; }
rows() { sqlite3 "$data/p2psip.db" "SELECT count(*) FROM binding WHERE aor = 'sip:$1@p2p.test'"; }
printf '[sip]\nport = 5062\n[registrar]\nmin_expires = 1\n' >"$conf"
it_start node2 "$bin" -s -d --config "$conf" --data-dir "$data"
it_wait_log node2 'running: data directory' 10
out=$(reg 5062 alice sip:alice@127.0.0.1:5999 600) || it_fail "register.py failed: $out"
[ "$(head -n1 <<<"$out")" = 200 ] || it_fail "REGISTER alice: $out"
grep -qE '^sip:alice@127\.0\.0\.1:5999 expires=(59[0-9]|600)$' <<<"$out" ||
    it_fail "the 200 does not list alice's binding: $out"
[ "$(rows alice)" = 1 ] || it_fail "alice's binding is not in the database"
it_wait_log node2 'SIP recv UDP 127\.0\.0\.1:[0-9]+ -> 127\.0\.0\.1:5062, [0-9]+ bytes:' 5
it_wait_log node2 'SIP send UDP us -> 127\.0\.0\.1:[0-9]+, [0-9]+ bytes:' 5
out=$(reg 5062 carol sip:carol@127.0.0.1:5997 1)
[ "$(head -n1 <<<"$out")" = 200 ] || it_fail "REGISTER carol: $out"
it_wait_log node2 'binding expired: sip:carol@p2p.test -> sip:carol@127.0.0.1:5997' 10
carol_gone() { [ "$(rows carol)" = 0 ]; }
it_wait_until 5 "carol's expired binding to leave the database" carol_gone

# Group commit: 200 REGISTERs sent at once all get 200, in fewer commits than
# publishes (one transaction per loop turn).
n=$(reg --burst 200 5062) || it_fail "burst failed: $n"
[ "$n" = 200 ] || it_fail "burst: $n of 200 REGISTERs got 200"
# SIGHUP re-reads the accounts file: with accounts, a REGISTER is challenged (401)
# where it was accepted; a broken accounts file on the next SIGHUP changes nothing.
printf 'sip:erin@p2p.test secret\n' >"$IT_TMP/accounts"
printf '[sip]\nport = 5062\n[registrar]\nmin_expires = 1\n[auth]\naccounts = %s\n' \
    "$IT_TMP/accounts" >"$conf"
kill -HUP "$(it_pid node2)"
it_wait_log node2 '1 accounts from' 10
out=$(reg 5062 erin sip:erin@127.0.0.1:5995 600)
[ "$(head -n1 <<<"$out")" = 401 ] || it_fail "after SIGHUP with accounts, REGISTER erin: $out"
printf 'sip:erin@p2p.test\n' >"$IT_TMP/accounts"
kill -HUP "$(it_pid node2)"
it_wait_log node2 'reload failed, configuration unchanged' 10
out=$(reg 5062 erin sip:erin@127.0.0.1:5995 600)
[ "$(head -n1 <<<"$out")" = 401 ] || it_fail "a broken accounts file changed the registrar: $out"
printf '[sip]\nport = 5062\n[registrar]\nmin_expires = 1\n' >"$conf"
kill -HUP "$(it_pid node2)"
it_wait_until 10 "the reload without accounts" \
    eval '[ "$(it_log_count node2 "configuration reloaded from")" -ge 2 ]'
# dave's binding (3 s) must expire while the node is down, so stop right after.
out=$(reg 5062 dave sip:dave@127.0.0.1:5996 3)
[ "$(head -n1 <<<"$out")" = 200 ] || it_fail "REGISTER dave: $out"
it_stop node2 TERM
grep -q 'binding expired: sip:dave@' "$IT_TMP/node2.log" &&
    it_fail "dave expired before the stop (machine too slow for this check)"
[ "${IT_EXIT_OF[node2]}" -eq 0 ] || it_fail "SIGTERM after SIP: exit status ${IT_EXIT_OF[node2]}"
line=$(grep -oE 'bindings database: [0-9]+ commits for [0-9]+ publishes \(0 failed\)' \
    "$IT_TMP/node2.log") || it_fail "no database summary at stop"
read -r commits publishes < <(sed -E 's/.*: ([0-9]+) commits for ([0-9]+) publishes.*/\1 \2/' <<<"$line")
[ "$publishes" -eq 203 ] || it_fail "expected 203 publishes, the log says: $line"
[ "$commits" -lt "$publishes" ] || it_fail "no group commit: $line"
it_log "$line"

# 8. Restart: alice and the burst are restored, dave (expired while we were down) is
# dropped and not served; a REGISTER without Contact lists alice's binding (RFC 3261
# 10.3 step 8).
dave_expired() {
    [ "$(sqlite3 "$data/p2psip.db" "SELECT count(*) FROM binding WHERE aor = 'sip:dave@p2p.test'
        AND expires_ms < CAST(strftime('%s', 'now') AS INTEGER) * 1000")" = 1 ]
}
it_wait_until 10 "dave's binding to pass its expiry" dave_expired
it_start node3 "$bin" -s --config "$conf" --data-dir "$data"
it_wait_log node3 'restored 201 bindings from the database \(1 expired dropped\)' 10
out=$(reg 5062 alice)
[ "$(head -n1 <<<"$out")" = 200 ] || it_fail "query alice after restart: $out"
grep -qE '^sip:alice@127\.0\.0\.1:5999 expires=5[0-9][0-9]$' <<<"$out" ||
    it_fail "alice's binding not served after restart: $out"
out=$(reg 5062 dave)
[ "$(head -n1 <<<"$out")" = 200 ] && [ "$(wc -l <<<"$out")" -eq 1 ] ||
    it_fail "dave's expired binding is served after restart: $out"
[ "$(rows dave)" = 0 ] || it_fail "dave's expired binding is still in the database"
it_stop node3 TERM
[ "${IT_EXIT_OF[node3]}" -eq 0 ] || it_fail "SIGTERM after restart: exit status ${IT_EXIT_OF[node3]}"

# 9. Transports and bad input: --listen v4+v6 serves IPv6 UDP and TCP; a bad CSeq gets
# 400 naming it; garbage gets no answer; with sip.domain = p2p.test and
# proxy.foreign_reply = 403 a REGISTER for another domain gets 403; a second daemon on
# a taken port exits 1.
printf '[sip]\ndomain = p2p.test\n[proxy]\nforeign_reply = 403\n' >"$IT_TMP/node4.conf"
it_start node4 "$bin" -s --config "$IT_TMP/node4.conf" -p 5064 --listen 127.0.0.1,::1 \
    --data-dir "$IT_TMP/data4"
it_wait_log node4 'running: data directory' 10
grep -q 'SIP on \[::1\] UDP+TCP port 5064' "$IT_TMP/node4.log" || it_fail "no IPv6 listener logged"
out=$(it_run 30 python3 "$IT_LIB_DIR/daemon/transports.py" 5064) || it_fail "transports.py: $out"
for want in 'v6udp 200' 'tcp 200' 'badcseq 400 Bad Request - malformed CSeq' 'garbage none' \
    'foreign 403'; do
    grep -qxF "$want" <<<"$out" || it_fail "transports: want '$want', got: $out"
done
it_run 10 "$bin" -p 5064 --data-dir "$IT_TMP/data5" >"$IT_TMP/taken.out" 2>&1
st=$?
[ "$st" -eq 1 ] || it_fail "a daemon on a taken port exited with $st"
grep -q 'cannot listen for SIP on port 5064: address already in use' "$IT_TMP/taken.out" ||
    it_fail "taken port message: $(cat "$IT_TMP/taken.out")"

# 10. kill -9 right after the 200s: a 200 is sent only after the commit, so both
# bindings survive the crash, and the lock died with the process.
it_stop node4 KILL
[ "${IT_EXIT_OF[node4]}" -eq 137 ] || it_fail "SIGKILL: exit status ${IT_EXIT_OF[node4]}"
it_start node5 "$bin" -s -p 5064 --data-dir "$IT_TMP/data4"
it_wait_log node5 'restored 2 bindings from the database \(0 expired dropped\)' 10
it_stop node5 TERM
[ "${IT_EXIT_OF[node5]}" -eq 0 ] || it_fail "node5: exit status ${IT_EXIT_OF[node5]}"

# 11. OPTIONS keep-alive (registrar.options_keepalive, keepalive_remove): a contact
# that answers keeps its binding, one whose socket is gone loses it, in the database
# too.  T1 = 50 ms so that an unanswered OPTIONS gives up after 64*T1 = 3.2 s.
printf '[registrar]\noptions_keepalive = 5\nkeepalive_remove = yes\n[timers]\nt1 = 50\nt2 = 400\n' \
    >"$IT_TMP/ka.conf"
it_start node6 "$bin" -s --config "$IT_TMP/ka.conf" -p 5066 --data-dir "$IT_TMP/data6"
it_wait_log node6 'running: data directory' 10
out=$(it_run 40 python3 "$IT_LIB_DIR/daemon/keepalive.py" 5066 "$IT_TMP/data6/p2psip.db") ||
    it_fail "keepalive.py: $out"
grep -qE '^options [1-9]' <<<"$out" || it_fail "no OPTIONS keep-alive reached the live contact: $out"
grep -qx 'ghost_rows 0' <<<"$out" || it_fail "the dead contact kept its binding: $out"
grep -qx 'live_rows 1' <<<"$out" || it_fail "the live contact lost its binding: $out"
it_stop node6 TERM
[ "${IT_EXIT_OF[node6]}" -eq 0 ] || it_fail "node6: exit status ${IT_EXIT_OF[node6]}"

it_pass "help/version, bad config file:line, overrides, data dir lock, SIGHUP, SIGTERM in $stop_ms ms; REGISTER 200, trace, expiry, group commit ($commits commits for $publishes publishes), restart keeps bindings and drops expired ones; v6/TCP/400/taken port; bindings survive kill -9; keep-alive"

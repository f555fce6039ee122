#!/usr/bin/env bash
#
# test_control.sh: the control socket of a real p2psipd, through p2psipctl.
#
# Checks: the socket is <data_dir>/control.sock, a socket of mode 0600; status
# (readable and --json) names the daemon's pid, data directory and socket; ping says
# pong; --print-config shows the control path; an unknown command exits 1 with the
# daemon's "unknown command", a socket that is not there exits 3 naming the path, a
# bad option exits 2, a socket that never answers exits 3 after --timeout; --config
# finds the socket through the file's data_dir or control; a second daemon (other
# data directory) given the same --control path refuses to start (exit 1, "in use
# by another process") and leaves the first one's socket working; a watcher gets the
# "stopping" event and exits 0 when the daemon stops with SIGTERM (exit 0), and the
# socket file is gone; after kill -9 the stale socket is replaced by the next
# daemon, which answers.
#
# Fails when any of those exit statuses, outputs or file states differs.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need python3

bin=$(it_p2psipd_bin)
ctl=$IT_BUILD/p2psipd/p2psipctl
[ -x "$bin" ] || it_fail "p2psipd not built: $bin"
[ -x "$ctl" ] || it_fail "p2psipctl not built: $ctl"
data=$IT_TMP/data
sock=$data/control.sock

# json FIELD: prints FIELD of the JSON document on stdin.
json() {
    python3 -c 'import json, sys; v = json.load(sys.stdin); print(v[sys.argv[1]])' "$1"
}

# 1. The path, shown by --print-config; the daemon starts and makes the socket.
out=$("$bin" --data-dir "$data" --print-config) || it_fail "--print-config exited with $?"
grep -qxF "control = $sock" <<<"$out" || it_fail "--print-config lacks 'control = $sock'"
it_start node "$bin" -s --data-dir "$data"
it_wait_log node 'running: data directory' 15
[ -S "$sock" ] || it_fail "$sock is not a socket"
[ "$(stat -c %a "$sock")" = 600 ] || it_fail "$sock has mode $(stat -c %a "$sock"), want 600"

# 2. Answers.
out=$(it_run 10 "$ctl" --data-dir "$data" status) || it_fail "status exited with $?"
grep -qE "^pid: +$(it_pid node)\$" <<<"$out" || it_fail "status does not show the pid: $out"
grep -qE "^data_dir: +$data\$" <<<"$out" || it_fail "status does not show the data directory"
out=$(it_run 10 "$ctl" --control "$sock" --json status) || it_fail "status --json exited $?"
[ "$(json pid <<<"$out")" = "$(it_pid node)" ] || it_fail "status --json pid: $out"
[ "$(json control <<<"$out")" = "$sock" ] || it_fail "status --json control: $out"
[ "$(it_run 10 "$ctl" --data-dir "$data" ping)" = pong ] || it_fail "ping did not say pong"
it_run 10 "$ctl" --data-dir "$data" help | grep -qE '^watch +stream' ||
    it_fail "help does not list watch"

# 3. Exit statuses.
it_run 10 "$ctl" --data-dir "$data" no-such-command >"$IT_TMP/ctl.out" 2>&1
st=$?
[ "$st" -eq 1 ] || it_fail "an unknown command exited with $st, want 1"
grep -qF "unknown command 'no-such-command'" "$IT_TMP/ctl.out" ||
    it_fail "unknown command message: $(cat "$IT_TMP/ctl.out")"
it_run 10 "$ctl" --control "$IT_TMP/nothing.sock" status >"$IT_TMP/ctl.out" 2>&1
st=$?
[ "$st" -eq 3 ] || it_fail "a missing socket exited with $st, want 3"
grep -qF "cannot connect to $IT_TMP/nothing.sock" "$IT_TMP/ctl.out" ||
    it_fail "missing socket message: $(cat "$IT_TMP/ctl.out")"
it_run 10 "$ctl" --no-such-option status >"$IT_TMP/ctl.out" 2>&1
st=$?
[ "$st" -eq 2 ] || it_fail "a bad option exited with $st, want 2"
# The daemon's configuration file leads to the socket as it leads the daemon.
printf 'data_dir = %s\n' "$data" >"$IT_TMP/ctl.conf"
[ "$(it_run 10 "$ctl" --config "$IT_TMP/ctl.conf" ping)" = pong ] ||
    it_fail "--config with data_dir does not find the socket"
printf 'control = %s\n' "$sock" >"$IT_TMP/ctl.conf"
[ "$(it_run 10 "$ctl" --config "$IT_TMP/ctl.conf" --data-dir /nonexistent ping)" = pong ] ||
    it_fail "--config with control does not find the socket"
# A socket that never answers: no answer within --timeout is status 3.
it_start mute python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept()
time.sleep(60)' "$IT_TMP/mute.sock"
it_wait_until 10 "the mute socket" test -S "$IT_TMP/mute.sock"
it_run 10 "$ctl" --control "$IT_TMP/mute.sock" --timeout 0.5 status >"$IT_TMP/ctl.out" 2>&1
st=$?
[ "$st" -eq 3 ] || it_fail "no answer exited with $st, want 3"
grep -qF "$IT_TMP/mute.sock: no answer within 0.5 s" "$IT_TMP/ctl.out" ||
    it_fail "no answer message: $(cat "$IT_TMP/ctl.out")"
it_stop mute

# 4. Another daemon may not take a live socket.
it_run 20 "$bin" -s -p 5064 -P 7570 --data-dir "$IT_TMP/data2" --control "$sock" \
    >"$IT_TMP/second.out" 2>&1
st=$?
[ "$st" -eq 1 ] || it_fail "a second daemon on the same socket exited with $st, want 1"
grep -qF "control socket $sock is in use by another process" "$IT_TMP/second.out" ||
    it_fail "second daemon message: $(cat "$IT_TMP/second.out")"
[ "$(it_run 10 "$ctl" --data-dir "$data" ping)" = pong ] ||
    it_fail "the first daemon's socket stopped answering"

# 5. A watcher sees the daemon stop; the socket goes with it.
it_start watcher "$ctl" --data-dir "$data" --json watch
it_wait_until 10 "the watcher to subscribe" sh -c \
    "'$ctl' --data-dir '$data' --json counters | grep -q '\"subscribers\":1'"
it_server_stop node
it_wait_log watcher '"event":"stopping"' 10
it_wait_until 10 "the watcher to exit" sh -c "! kill -0 $(it_pid watcher) 2>/dev/null"
it_stop watcher
[ "${IT_EXIT_OF[watcher]}" -eq 0 ] || it_fail "watch exited with ${IT_EXIT_OF[watcher]}, want 0"
[ ! -e "$sock" ] || it_fail "$sock still exists after the daemon stopped"

# 6. A stale socket (kill -9 leaves it) is replaced.
it_start node2 "$bin" -s --data-dir "$data"
it_wait_log node2 'running: data directory' 15
it_stop node2 KILL
[ -S "$sock" ] || it_fail "kill -9 did not leave the socket behind (test assumption)"
it_start node3 "$bin" -s --data-dir "$data"
it_wait_log node3 'running: data directory' 15
[ "$(it_run 10 "$ctl" --data-dir "$data" ping)" = pong ] ||
    it_fail "the daemon after a stale socket does not answer"
it_server_stop node3
it_pass "socket 0600, status/ping/errors, live socket refused, watch until stop, stale socket replaced"

#!/usr/bin/env bash
#
# test_gui_hostile.sh: p2psip-gui against a control socket that answers garbage
# (tools/gui_hostile_daemon.py), on a virtual display (Xvfb).
#
# The daemon's answers have members of the wrong types, 5000 routing-table entries,
# junk lines after every answer (not JSON, arrays, answers to no request, events
# with bad members, an unknown event, 100,000 nested brackets, invalid UTF-8), and
# on its first connection a 17 MiB line without a newline.  The viewer must: keep
# running; show the daemon's node as connected; keep at most 4096 nodes and count
# the ones it refused; hang up on the over-long line and connect again by itself;
# log some complaints about bad lines, but at most 10 for the daemon; exit 0 on
# SIGTERM.
#
# Fails when any of those does not hold within its bound.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need python3 Xvfb xdotool

gui=$IT_BUILD/gui/p2psip-gui
[ -x "$gui" ] || it_fail "p2psip-gui not built: $gui (configure with -DP2P_GUI=ON)"
py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || py=python3
json_eval() {
    "$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

sock=$IT_TMP/hostile.sock
it_start hostile "$py" "$IT_LIB_DIR/tools/gui_hostile_daemon.py" "$sock" "$IT_TMP/conns"
it_wait_until 10 "the hostile socket" test -S "$sock"
it_start xvfb sh -c 'exec Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$1"' \
    sh "$IT_TMP/display"
it_wait_until 20 "Xvfb to name its display" test -s "$IT_TMP/display"
disp=:$(tr -dc 0-9 <"$IT_TMP/display")
model=$IT_TMP/model.json
it_start gui env DISPLAY="$disp" GDK_BACKEND=x11 NO_AT_BRIDGE=1 "$gui" --model-file "$model" \
    --control "$sock"
gui_pid=$(it_pid gui)
win_found() {
    it_alive gui || it_fail "the viewer exited"
    [ -n "$(DISPLAY=$disp it_run 5 xdotool search --onlyvisible --name '^p2psip ring$' 2>/dev/null)" ]
}
it_wait_until 20 "the viewer's window" win_found
model_has() {
    it_alive gui || it_fail "the viewer exited"
    rm -f "$model"
    kill -USR1 "$gui_pid" || return 1
    local i
    for ((i = 0; i < 40; i++)); do
        [ -s "$model" ] && break
        sleep 0.05
    done
    [ -s "$model" ] && [ "$(json_eval "$model" "$1")" = True ]
}

# The over-long line: the viewer hangs up and comes back.
it_wait_until 30 "the viewer to connect a second time after the 17 MiB line" \
    sh -c "[ \"\$(cat '$IT_TMP/conns' 2>/dev/null)\" -ge 2 ]"
it_wait_log gui "hostile.sock: a line longer than the viewer's limit" 10
# Its node is shown connected; 5000 routing entries fill the model to its cap.
it_wait_until 20 "the model to show the daemon's node, connected, and the node cap reached" model_has \
    "any(n['id'] == 'ab' * 20 and n['connected'] for n in r['nodes']) and len(r['nodes']) == 4096 and r['count'] <= 4096 and r['refused'] > 0"
it_log "model: $(json_eval "$model" "'%d nodes, %d refused, %d events' % (len(r['nodes']), r['refused'], r['events'])")"
it_alive gui || it_fail "the viewer exited"
bad=$(it_log_count gui 'not a JSON object|an answer to no request')
conns=$(cat "$IT_TMP/conns")
[ "$bad" -ge 1 ] && [ "$bad" -le 10 ] || it_fail "$bad complaints about bad lines logged (want 1 to 10)"
it_stop gui
[ "${IT_EXIT_OF[gui]}" -eq 0 ] || it_fail "the viewer exited with ${IT_EXIT_OF[gui]} on SIGTERM"
it_pass "garbage survived, node cap held, over-long line: hung up and reconnected ($conns connections), $bad complaints logged"

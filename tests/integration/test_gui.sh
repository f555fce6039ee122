#!/usr/bin/env bash
#
# test_gui.sh: the ring viewer p2psip-gui on a virtual display (Xvfb), against
# real daemons.
#
# Three p2psipd on 127.0.0.1 (a -s super-node and two joiners with -S; private
# data directories, fixed ports in this test's own network namespace) form a ring
# (each a ring member with two leaf-set entries).  Xvfb starts on a free display
# (-displayfd) and the viewer with --control for each daemon.  Then:
#  - its model, asked for with SIGUSR1 (written to --model-file), shows the three
#    nodes, connected;
#  - a click (xdotool) at the ring's centre starts a fourth node: the model has four
#    connected nodes, one a daemon the viewer started, whose control socket answers
#    `p2psipctl status` with a node_id that is in the model and the child's pid;
#  - a click on n1's dot selects it (its Stop button enabled: a daemon the viewer did
#    not start is stopped through its control socket), and a key typed into the lookup box is routed from n1: the model's
#    route has the root (and the path, where the daemon reports one) that
#    `p2psipctl route` gives; the daemons' message events are drawn as arrows;
#  - the viewer's --snapshot against the four sockets draws a PNG that is not blank,
#    with as many node dots (tools/png_dots.py) as the control API has daemons (4),
#    each at its model position;
#  - the started node, selected, has Stop enabled; a click on Stop stops it (the
#    viewer reaps it and removes its data directory); another click at the centre
#    starts another node;
#  - Stop on n3 (not started by the viewer) stops it through its control socket: it
#    exits 0 and is shown as gone (not connected); started again, it is connected
#    again;
#  - SIGTERM to the viewer alone (not its process group) stops it with status 0
#    after it stopped the node it started (that PID gone, its data directory
#    removed); the three daemons then stop with status 0.
#
# Fails when any of those does not happen within its bound.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
. "$here/lib.sh"
it_begin "$@"
it_need python3 Xvfb xdotool

bin=$(it_p2psipd_bin)
ctl=$IT_BUILD/p2psipd/p2psipctl
gui=$IT_BUILD/gui/p2psip-gui
[ -x "$bin" ] || it_fail "p2psipd not built: $bin"
[ -x "$ctl" ] || it_fail "p2psipctl not built: $ctl"
[ -x "$gui" ] || it_fail "p2psip-gui not built: $gui (configure with -DP2P_GUI=ON)"
dots_py=$IT_LIB_DIR/tools/png_dots.py

# The python interpreter itself (pyenv's shim costs 0.3 s per start).
py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || py=python3

# json_eval FILE EXPR: the python expression EXPR on the JSON document in FILE (r).
json_eval() {
    "$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# 1. Three daemons form a ring.
for i in 1 2 3; do
    d=$IT_TMP/n$i.d
    mkdir -p "$d" && chmod 700 "$d"
    printf '[p2p]\npromote_after = 2\n' >"$d/p2p.conf"
    args=(-p $((5100 + i)) -P $((7600 + i)) --config "$d/p2p.conf" --data-dir "$d"
          --control "$d/control.sock")
    if [ "$i" = 1 ]; then args+=(-s); else args+=(-S 127.0.0.1:7601); fi
    it_start "n$i" "$bin" "${args[@]}"
    it_wait_log "n$i" 'running: data directory' 15
done

ring_member() {
    "$ctl" --control "$IT_TMP/$1.d/control.sock" --timeout 2 --json status >"$IT_TMP/$1.status" 2>/dev/null &&
        [ "$(json_eval "$IT_TMP/$1.status" "r['role'] in ('member', 'super-node') and r['leaf_count'] >= 2")" = True ]
}
for i in 1 2 3; do
    it_wait_until 40 "n$i to be a ring member with 2 leaf-set entries" ring_member "n$i"
done
declare -A ids=()
for i in 1 2 3; do
    ids[n$i]=$(json_eval "$IT_TMP/n$i.status" "r['node_id']")
done
it_log "ring: ${ids[n1]:0:8} ${ids[n2]:0:8} ${ids[n3]:0:8}"

# 2. A virtual display and the viewer.
it_start xvfb sh -c 'exec Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$1"' \
    sh "$IT_TMP/display"
it_wait_until 20 "Xvfb to name its display" test -s "$IT_TMP/display"
disp=:$(tr -dc 0-9 <"$IT_TMP/display")
it_log "Xvfb on display $disp"
run=$IT_TMP/run
mkdir -p "$run" && chmod 700 "$run"
model=$IT_TMP/model.json
it_start gui env DISPLAY="$disp" GDK_BACKEND=x11 NO_AT_BRIDGE=1 XDG_RUNTIME_DIR="$run" \
    "$gui" --p2psipd "$bin" --model-file "$model" \
    --control "$IT_TMP/n1.d/control.sock" --control "$IT_TMP/n2.d/control.sock" \
    --control "$IT_TMP/n3.d/control.sock"
gui_pid=$(it_pid gui)

# The window first: by then the viewer handles SIGUSR1.
win_found() {
    it_alive gui || it_fail "the viewer exited"
    wid=$(DISPLAY=$disp it_run 5 xdotool search --onlyvisible --name '^p2psip ring$' 2>/dev/null | head -n 1)
    [ -n "$wid" ]
}
it_wait_until 20 "the viewer's window" win_found

# model_has EXPR: asks the viewer for its model (SIGUSR1) and evaluates EXPR on it.
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
it_wait_until 30 "the viewer's model to show the 3 connected daemons" model_has \
    "r['count'] == 3 and r['connected'] == 3 and sorted(n['id'] for n in r['nodes']) == sorted(['${ids[n1]}', '${ids[n2]}', '${ids[n3]}'])"

# 3. A click at the ring's centre starts a node.
cx=$(json_eval "$model" "r['center_window'][0]")
cy=$(json_eval "$model" "r['center_window'][1]")
it_log "window $wid, ring centre at ($cx, $cy)"

# start_by_click: clicks the centre; waits for a new connected daemon the viewer
# started; checks its socket answers status with its node_id and the viewer's
# child's pid; sets new_sock, child_pid, new_id.
start_by_click() {
    local before
    before=$(json_eval "$model" "sorted(s['path'] for s in r['sources'] if s['started'])")
    DISPLAY=$disp it_run 10 xdotool mousemove --window "$wid" "$cx" "$cy" click 1 ||
        it_fail "xdotool could not click"
    it_wait_until 30 "the model to have a new connected node that the viewer started" model_has \
        "r['connected'] == 4 and any(s['started'] and s['connected'] and s.get('node_id') and s['path'] not in $before for s in r['sources'])"
    new_sock=$(json_eval "$model" "[s['path'] for s in r['sources'] if s['started'] and s['path'] not in $before][0]")
    child_pid=$(json_eval "$model" "[s['pid'] for s in r['sources'] if s['path'] == '$new_sock'][0]")
    case $new_sock in "$run"/p2psip-gui.*/control.sock) ;; *) it_fail "the new node's socket $new_sock is not under $run" ;; esac
    out=$(it_run 10 "$ctl" --control "$new_sock" --json status) || it_fail "the new node's socket does not answer status"
    printf '%s\n' "$out" >"$IT_TMP/new.status"
    new_id=$(json_eval "$IT_TMP/new.status" "r['node_id']")
    [ "$(json_eval "$IT_TMP/new.status" "r['pid']")" = "$child_pid" ] ||
        it_fail "the new node's status pid is not the viewer's child $child_pid"
    model_has "'$new_id' in [n['id'] for n in r['nodes'] if n['connected']]" ||
        it_fail "the new node $new_id is not a connected node of the model"
    it_log "the viewer started ${new_id:0:8} (pid $child_pid, $new_sock)"
}

# click_node ID: clicks the node's dot and waits until the model has it selected.
click_node() {
    local x y
    model_has True || it_fail "no model"
    x=$(json_eval "$model" "int(round(r['center_window'][0] + [n['x'] for n in r['nodes'] if n['id'] == '$1'][0] - r['center'][0]))")
    y=$(json_eval "$model" "int(round(r['center_window'][1] + [n['y'] for n in r['nodes'] if n['id'] == '$1'][0] - r['center'][1]))")
    DISPLAY=$disp it_run 10 xdotool mousemove --window "$wid" "$x" "$y" click 1 ||
        it_fail "xdotool could not click"
    it_wait_until 10 "the model to select ${1:0:8} after a click on its dot at ($x, $y)" model_has \
        "r.get('selected') == '$1'"
}

start_by_click
first_pid=$child_pid first_sock=$new_sock first_id=$new_id

# 4. A click on n1's dot selects it; a key typed into the lookup box (it has the
# keyboard focus) is routed by n1, and the model shows the route n1 itself reports.
click_node "${ids[n1]}"
it_wait_until 10 "Stop to be enabled for n1 (stopped through its control socket)" model_has \
    "r['stop_button']['enabled']"
DISPLAY=$disp it_run 10 xdotool type --delay 20 alice || it_fail "xdotool could not type"
DISPLAY=$disp it_run 10 xdotool key Return || it_fail "xdotool could not press Return"
it_wait_until 15 "the model to show the route of 'alice' from n1" model_has \
    "r.get('route', {}).get('key') == 'alice' and r['route']['from'] == '${ids[n1]}'"
out=$(it_run 10 "$ctl" --control "$IT_TMP/n1.d/control.sock" --json route alice) ||
    it_fail "p2psipctl route alice failed"
printf '%s\n' "$out" >"$IT_TMP/route.json"
root=$(json_eval "$IT_TMP/route.json" "r['root']['id']")
[ "$(json_eval "$model" "r['route']['root']")" = "$root" ] ||
    it_fail "the viewer's route root $(json_eval "$model" "r['route']['root']") is not n1's answer $root"
if [ "$(json_eval "$IT_TMP/route.json" "'path' in r")" = True ]; then
    [ "$(json_eval "$model" "r['route']['path']")" = "$(json_eval "$IT_TMP/route.json" "[h['id'] for h in r['path']]")" ] ||
        it_fail "the viewer's route path $(json_eval "$model" "r['route']['path']") is not n1's"
fi
it_log "lookup of 'alice' from n1: root ${root:0:8}, path $(json_eval "$model" "[h[:8] for h in r['route']['path']]")"
# The daemons' msg events become arrows (maintenance alone sends messages).
it_wait_until 20 "the model to have drawn message arrows" model_has "r['messages'] > 0"

# 5. A snapshot of the four daemons: as many dots as daemons, each where the model
# puts it.
it_run 30 "$gui" --snapshot "$IT_TMP/snap.png" --model-file "$IT_TMP/snap.json" \
    --control "$IT_TMP/n1.d/control.sock" --control "$IT_TMP/n2.d/control.sock" \
    --control "$IT_TMP/n3.d/control.sock" --control "$new_sock" >"$IT_TMP/snapshot.log" 2>&1 ||
    it_fail "--snapshot exited with $?: $(cat "$IT_TMP/snapshot.log")"
api_count=0
for s in "$IT_TMP"/n{1,2,3}.d/control.sock "$new_sock"; do
    it_run 10 "$ctl" --control "$s" status >/dev/null && api_count=$((api_count + 1))
done
[ "$api_count" = 4 ] || it_fail "only $api_count of the 4 daemons answer status"
[ "$(json_eval "$IT_TMP/snap.json" "r['connected']")" = "$api_count" ] ||
    it_fail "the snapshot's model has $(json_eval "$IT_TMP/snap.json" "r['connected']") connected nodes, the control API $api_count"
dots=$("$py" "$dots_py" "$IT_TMP/snap.png" "$IT_TMP/snap.json") || it_fail "snapshot check: $dots"
it_log "snapshot: $dots, control API: $api_count daemons"
# Every node the snapshot knows is one of the daemons; each is a dot of its own
# unless dots touch (png_dots.py then checked the count against the clusters).
[[ $dots == *" nodes=$api_count" ]] || it_fail "snapshot: $dots, want $api_count nodes"
[[ $dots == "dots=$api_count "* ]] || it_log "(dots overlap on the ring: counted as clusters)"

# 6. The node the viewer started, selected: Stop is enabled, and a click on it stops
# that node (the viewer reaps it and removes its data directory); another click at
# the centre starts another.
click_node "$first_id"
it_wait_until 10 "Stop to be enabled for a node the viewer started" model_has "r['stop_button']['enabled']"
bx=$(json_eval "$model" "r['stop_button']['center'][0]")
by=$(json_eval "$model" "r['stop_button']['center'][1]")
DISPLAY=$disp it_run 10 xdotool mousemove --window "$wid" "$bx" "$by" click 1 ||
    it_fail "xdotool could not click"
it_wait_until 20 "the viewer to stop and reap its node (pid $first_pid)" sh -c "! kill -0 $first_pid 2>/dev/null"
it_wait_until 10 "the model to drop the stopped node's daemon" model_has \
    "not any(s['started'] for s in r['sources']) and '$first_id' not in [n['id'] for n in r['nodes'] if n['connected']]"
[ ! -e "$(dirname "$first_sock")" ] || it_fail "the stopped node's data directory $(dirname "$first_sock") is left"
it_log "Stop stopped ${first_id:0:8} (pid $first_pid)"
start_by_click

# 7. Stop on a daemon the viewer did not start: it is stopped through its control
# socket (`stop`) and exits 0, and is shown as gone; started again (same data
# directory, same ID) the viewer reconnects by itself.
click_node "${ids[n3]}"
it_wait_until 10 "Stop to be enabled for n3" model_has "r['stop_button']['enabled']"
bx=$(json_eval "$model" "r['stop_button']['center'][0]")
by=$(json_eval "$model" "r['stop_button']['center'][1]")
DISPLAY=$disp it_run 10 xdotool mousemove --window "$wid" "$bx" "$by" click 1 ||
    it_fail "xdotool could not click"
it_wait_until 20 "n3 to stop on the viewer's Stop" eval '! it_alive n3'
it_stop n3
[ "${IT_EXIT_OF[n3]}" -eq 0 ] || it_fail "n3 exit status ${IT_EXIT_OF[n3]} after the viewer's stop"
grep -q "control socket: stop requested" "$IT_TMP/n3.log" || it_fail "n3 was not stopped by its control socket"
it_wait_until 15 "the model to show n3 gone" model_has \
    "[(n['connected'], n['gone']) for n in r['nodes'] if n['id'] == '${ids[n3]}'] == [(False, True)]"
it_start n3b "$bin" -p 5103 -P 7603 --config "$IT_TMP/n3.d/p2p.conf" --data-dir "$IT_TMP/n3.d" \
    --control "$IT_TMP/n3.d/control.sock" -S 127.0.0.1:7601
it_wait_until 30 "the viewer to reconnect to n3" model_has \
    "[(n['connected'], n['gone']) for n in r['nodes'] if n['id'] == '${ids[n3]}'] == [(True, False)]"
it_log "n3 stopped: shown gone; restarted: connected again"

# 8. SIGTERM to the viewer alone: it stops its node, then exits 0.
kill -TERM "$gui_pid" || it_fail "cannot signal the viewer"
it_wait_until 20 "the viewer to exit" sh -c "! kill -0 $gui_pid 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/$gui_pid/stat)\" = Z ]"
it_stop gui
[ "${IT_EXIT_OF[gui]}" -eq 0 ] || it_fail "the viewer exited with ${IT_EXIT_OF[gui]} on SIGTERM"
! kill -0 "$child_pid" 2>/dev/null || it_fail "the node the viewer started (pid $child_pid) still runs"
[ -z "$(ls -A "$run" 2>/dev/null | grep '^p2psip-gui\.')" ] ||
    it_fail "the started node's data directory is left in $run: $(ls "$run")"
it_stop xvfb
it_server_stop n3b
for i in 2 1; do it_server_stop "n$i"; done
it_pass "3-node ring shown, click started node ${first_id:0:8} (in the model, answers status), select + lookup, Stop button, another node ${new_id:0:8}, snapshot $dots, gone + reconnect, viewer stopped it on SIGTERM"

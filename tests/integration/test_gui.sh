#!/usr/bin/env bash
#
# test_gui.sh: the ring viewer p2psip-gui on a virtual display (Xvfb), against
# real daemons.
#
# Three p2psipd on 127.0.0.1 (a -s super-node and two joiners with -S; private
# data directories, fixed ports in this test's own network namespace) form a ring
# (each a ring member with two leaf-set entries).  Xvfb starts on a free display
# (-displayfd) and the viewer with --control for each daemon.  Its model, asked for
# with SIGUSR1 (written to --model-file), must show the three nodes, connected.  A
# click (xdotool) at the ring's centre in the window starts a fourth node: the model
# must then have four connected nodes, one of them a daemon the viewer started,
# whose control socket answers `p2psipctl status` with a node_id that is in the
# model.  A click on a node's dot selects it, and a key typed into the lookup box
# is routed from that node: the model's route has the root (and the path, where the
# daemon reports one) `p2psipctl route` gives.  The daemons' message events are drawn
# as arrows.  The viewer's --snapshot against the four sockets must draw a PNG that is
# not blank, with as many node dots (counted by tools/png_dots.py) as the control
# API has daemons (4), each at its model position.  A daemon stopped is shown as
# gone (not connected); started again, it is connected again.  SIGTERM to the viewer alone
# (not its process group) must stop it with status 0 after it stopped the node it
# started (that PID gone, its data directory removed); the three daemons then stop
# with status 0.
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
DISPLAY=$disp it_run 10 xdotool mousemove --window "$wid" "$cx" "$cy" click 1 ||
    it_fail "xdotool could not click"
it_wait_until 30 "the model to have a 4th connected node that the viewer started" model_has \
    "r['connected'] == 4 and any(s['started'] and s['connected'] and s.get('node_id') for s in r['sources'])"
new_sock=$(json_eval "$model" "[s['path'] for s in r['sources'] if s['started']][0]")
child_pid=$(json_eval "$model" "[s['pid'] for s in r['sources'] if s['started']][0]")
case $new_sock in "$run"/p2psip-gui.*/control.sock) ;; *) it_fail "the new node's socket $new_sock is not under $run" ;; esac
out=$(it_run 10 "$ctl" --control "$new_sock" --json status) || it_fail "the new node's socket does not answer status"
printf '%s\n' "$out" >"$IT_TMP/new.status"
new_id=$(json_eval "$IT_TMP/new.status" "r['node_id']")
[ "$(json_eval "$IT_TMP/new.status" "r['pid']")" = "$child_pid" ] ||
    it_fail "the new node's status pid is not the viewer's child $child_pid"
model_has "'$new_id' in [n['id'] for n in r['nodes'] if n['connected']]" ||
    it_fail "the new node $new_id is not a connected node of the model"
it_log "the viewer started ${new_id:0:8} (pid $child_pid, $new_sock)"

# 4. A click on n1's dot selects it; a key typed into the lookup box (it has the
# keyboard focus) is routed by n1, and the model shows the route n1 itself reports.
model_has True || it_fail "no model"
sx=$(json_eval "$model" "int(round(r['center_window'][0] + [n['x'] for n in r['nodes'] if n['id'] == '${ids[n1]}'][0] - r['center'][0]))")
sy=$(json_eval "$model" "int(round(r['center_window'][1] + [n['y'] for n in r['nodes'] if n['id'] == '${ids[n1]}'][0] - r['center'][1]))")
DISPLAY=$disp it_run 10 xdotool mousemove --window "$wid" "$sx" "$sy" click 1 ||
    it_fail "xdotool could not click"
it_wait_until 10 "the model to select n1 after a click on its dot at ($sx, $sy)" model_has \
    "r.get('selected') == '${ids[n1]}'"
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
[[ $dots == "dots=$api_count "* ]] || case $dots in
    *" nodes=$api_count") it_log "(dots overlap on the ring: counted as clusters)" ;;
    *) it_fail "snapshot: $dots, want $api_count nodes" ;;
    esac

# 6. A daemon that goes away is shown as gone; started again (same data directory,
# same ID) the viewer reconnects by itself.
it_server_stop n3
it_wait_until 15 "the model to show n3 gone" model_has \
    "[(n['connected'], n['gone']) for n in r['nodes'] if n['id'] == '${ids[n3]}'] == [(False, True)]"
it_start n3b "$bin" -p 5103 -P 7603 --config "$IT_TMP/n3.d/p2p.conf" --data-dir "$IT_TMP/n3.d" \
    --control "$IT_TMP/n3.d/control.sock" -S 127.0.0.1:7601
it_wait_until 30 "the viewer to reconnect to n3" model_has \
    "[(n['connected'], n['gone']) for n in r['nodes'] if n['id'] == '${ids[n3]}'] == [(True, False)]"
it_log "n3 stopped: shown gone; restarted: connected again"

# 7. SIGTERM to the viewer alone: it stops its node, then exits 0.
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
it_pass "3-node ring shown, click started node ${new_id:0:8} (in the model, answers status), select + lookup, snapshot $dots, gone + reconnect, viewer stopped it on SIGTERM"

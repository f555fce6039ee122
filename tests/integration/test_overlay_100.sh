#!/usr/bin/env bash
#
# test_overlay_100.sh: 100 daemons on 10 hosts form one ring whose leaf sets are
# exactly right, store and serve 1000 records, and heal within 15 s after a quarter of
# them are killed at once.
#
# Hosts h1..h10 (no multicast: every node is given -S), 10 daemons per host with
# their own P2P port (-P 7560..7569) and SIP port (-p 5100..5109), all given -S h1's
# first node (n1_0, -s), promote_after 2 s.  Starts are paced one host at a time: the
# next host's daemons start once the previous ones are ring members.  Checks
# (tools/ovl_ring.py, one python process for each):
#   - all 100 are members, and every leaf set equals the truth computed from the 100
#     node IDs (8 predecessors, 8 successors, by ring distance, in order);
#   - 1000 puts, each from a random node, are all stored, and each key read back
#     from a random other node gives exactly its value; within 10 s each record is
#     held by the 5 nodes closest to its key (root and replicas = 4; "records");
#   - SIGKILL to 25 random daemons at once (by pid): within 15 s every survivor's leaf
#     set equals the truth over the survivors and every key reads back from a random
#     survivor; within 30 s each record is back on its 5 closest survivors; no
#     survivor died, and all 75 exit 0 on SIGTERM (sent to all at once).
# P2P_IT_SEED=N replays a run's choices (keys, nodes, victims); the seed is logged.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-420}
it_begin "$@"
it_need ip nft python3

HOSTS_N=10
PER_HOST=10
KILL=25
SEED=${P2P_IT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
it_log "seed $SEED (P2P_IT_SEED=$SEED replays this run's choices)"

t_start=$SECONDS
ovl_hosts_create "$HOSTS_N" --no-multicast
ovl_ring_grow "$HOSTS_N" "$PER_HOST"
it_log "all $((HOSTS_N * PER_HOST)) daemons are members after $((SECONDS - t_start)) s"

out=$(ovl_ring leafsets "$IT_TMP/all.nodes" 60 2>&1) || it_fail "leaf sets of the 100: $out"
it_log "$out"
out=$(ovl_ring puts "$IT_TMP/all.nodes" 1000 "$SEED" "$IT_TMP/keys.jsonl" 2>&1) || it_fail "$out"
it_log "$out"
out=$(ovl_ring gets "$IT_TMP/all.nodes" "$IT_TMP/keys.jsonl" "$SEED-gets" 2>&1) || it_fail "$out"
it_log "$out"
out=$(ovl_ring replicas "$IT_TMP/all.nodes" "$IT_TMP/keys.jsonl" 10 2>&1) || it_fail "$out"
it_log "$out"

# A quarter of the daemons, SIGKILLed at once: every signal first, then the reaping.
mapfile -t victims < <("$OVL_PY" -c '
import random, sys
names = [l.split()[0] for l in open(sys.argv[1]) if l.strip()]
print("\n".join(random.Random(sys.argv[2]).sample(names, int(sys.argv[3]))))' \
    "$IT_TMP/all.nodes" "$SEED-victims" "$KILL")
[ "${#victims[@]}" -eq "$KILL" ] || it_fail "could not choose $KILL victims"
it_log "killing ${victims[*]}"
for v in "${victims[@]}"; do kill -KILL -- "-$(it_pid "$v")" || it_fail "cannot signal $v"; done
t_kill=$SECONDS
for v in "${victims[@]}"; do it_stop "$v" KILL; done
grep -v -w -F -f <(printf '%s\n' "${victims[@]}") "$IT_TMP/all.nodes" >"$IT_TMP/survivors.nodes"
[ "$(wc -l <"$IT_TMP/survivors.nodes")" -eq $((HOSTS_N * PER_HOST - KILL)) ] ||
    it_fail "survivor list has $(wc -l <"$IT_TMP/survivors.nodes") lines"
left=$((15 - (SECONDS - t_kill)))
out=$(ovl_ring heal "$IT_TMP/survivors.nodes" "$IT_TMP/keys.jsonl" "$SEED-heal" "$left" 2>&1) ||
    it_fail "within 15 s of the kill: $out"
it_log "$out"
out=$(ovl_ring replicas "$IT_TMP/survivors.nodes" "$IT_TMP/keys.jsonl" $((30 - (SECONDS - t_kill))) 2>&1) ||
    it_fail "within 30 s of the kill, not every record is back on its 5 closest survivors: $out"
it_log "after the kill: $out"
mapfile -t survivors < <(awk '{print $1}' "$IT_TMP/survivors.nodes")
for name in "${survivors[@]}"; do
    it_alive "$name" || it_fail "survivor $name died: $(tail -n 3 "$IT_TMP/$name.log")"
done
# Every survivor stops cleanly on SIGTERM (p2psipd exits 1 when a handle leaked):
# all signalled at once, then reaped.
for name in "${survivors[@]}"; do kill -TERM -- "-$(it_pid "$name")" || it_fail "cannot signal $name"; done
unclean=()
for name in "${survivors[@]}"; do
    it_stop "$name" TERM 2>/dev/null
    [ "${IT_EXIT_OF[$name]}" = 0 ] || unclean+=("$name:${IT_EXIT_OF[$name]}")
done
[ ${#unclean[@]} -eq 0 ] || it_fail "survivors that did not exit 0 on SIGTERM: ${unclean[*]} ($(tail -n 3 "$IT_TMP/${unclean[0]%%:*}.log" | tr '\n' '|'))"
it_pass "100 daemons: exact leaf sets, 1000 records, healed after $KILL SIGKILLs; $((SECONDS - t_start)) s"

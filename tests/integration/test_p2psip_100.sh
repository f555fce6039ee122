#!/usr/bin/env bash
#
# test_p2psip_100.sh: 100 nodes on 10 hosts; 1000 AoRs, each registered by a phone
# with one node, are each called from a phone on another node: 0 failures.
#
# Hosts h1..h10 (no multicast), 10 daemons per host (nH_J, J = 0..9) with their own
# P2P port (7560+J) and SIP port (5100+J, on the host's 127.0.0.1), all given -S h1's
# first daemon (n1_0, -s), started one host at a time as in test_overlay_100.sh.
# A seeded plan (P2P_IT_SEED=N replays it) gives each of the 1000 AoRs p00001...
# a random registering daemon and a random calling daemon, never the same one.
# Phones are sipp: on each host one UAS on 127.0.0.1:5080 (sipp/uas_overlay.xml: it
# checks that each INVITE crossed two nodes) is the contact of every AoR registered
# on that host; registrations and calls go daemon by daemon, one sipp at a time per
# host (the hosts in parallel), through a worker started in each host (host_start):
# register.xml for the AoRs of daemon nH_J, sent to 127.0.0.1:(5100+J), then uac.xml
# for the AoRs daemon nH_J calls.  Every REGISTER must get 200, every call must
# succeed at the caller and every UAS must complete exactly the calls planned for
# its host.
#
# Fails when: the daemons do not all become ring members; any REGISTER or call
# fails; a UAS does not complete its calls; a daemon exits.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-420}
IT_LOG_TAIL=${IT_LOG_TAIL:-4} # a failure shows the tail of some 300 logs
it_begin "$@"
it_need sipp ip nft python3

HOSTS_N=10
PER_HOST=10
AORS=${IT_AORS:-1000}
SEED=${P2P_IT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
it_log "seed $SEED (P2P_IT_SEED=$SEED replays this run's choices)"
printf '[sip]\ndomain = %s\n' "$IT_DOMAIN" >"$IT_TMP/phones.conf"

t_start=$SECONDS
ovl_hosts_create "$HOSTS_N" --no-multicast
ovl_ring_grow "$HOSTS_N" "$PER_HOST" --conf "$IT_TMP/phones.conf"
it_log "all $((HOSTS_N * PER_HOST)) daemons are members after $((SECONDS - t_start)) s"

# The plan: plan/reg_H_J.csv (AoRs registered at nH_J), plan/call_H_J.csv (AoRs
# nH_J calls), plan/uas_H (calls that land on host H), as sipp injection files.
mkdir -p "$IT_TMP/plan"
"$OVL_PY" - "$IT_TMP/plan" "$SEED" "$AORS" "$HOSTS_N" "$PER_HOST" <<'EOF' || it_fail "cannot write the plan"
import os, random, sys
d, seed, n, hosts, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
nodes = [(h, j) for h in range(1, hosts + 1) for j in range(per)]
reg, call, uas = {}, {}, {}
for i in range(1, n + 1):
    user = "p%05d" % i
    r = rnd.choice(nodes)
    c = rnd.choice([x for x in nodes if x != r])
    reg.setdefault(r, []).append(user)
    call.setdefault(c, []).append(user)
    uas[r[0]] = uas.get(r[0], 0) + 1
for kind, m in (("reg", reg), ("call", call)):
    for (h, j), users in m.items():
        rnd.shuffle(users)
        with open(os.path.join(d, "%s_%d_%d.csv" % (kind, h, j)), "w") as f:
            f.write("SEQUENTIAL\n" + "".join(u + "\n" for u in users))
for h in range(1, hosts + 1):
    with open(os.path.join(d, "uas_%d" % h), "w") as f:
        f.write("%d\n" % uas.get(h, 0))
EOF

# The worker, run inside host H: for each daemon J of H with a plan file, one sipp
# in the foreground (bounded), its files KIND_H_J.* in $IT_TMP and its exit status
# in KIND_H_J.rc.
cat >"$IT_TMP/worker.sh" <<'EOF'
kind=$1 h=$2 per=$3 tmp=$4 domain=$5
cd "$tmp" || exit 1
for ((j = 0; j < per; j++)); do
    f=plan/${kind}_${h}_$j.csv
    [ -f "$f" ] || continue
    m=$(($(wc -l <"$f") - 1))
    name=${kind}_${h}_$j
    if [ "$kind" = reg ]; then
        args=(-sf reg.xml -p 5070 -key contact_hp 127.0.0.1:5080 -key expires 1800 -r 20 -l 20)
    else
        args=(-sf uac.xml -p 5071 -r 10 -l 10 -rsa "127.0.0.1:$((5100 + j))")
    fi
    timeout -k 5 120 sipp "${args[@]}" -i 127.0.0.1 -t u1 -inf "$f" -key domain "$domain" \
        -m "$m" -nostdin -trace_stat -stf "$name.stat.csv" -fd 1 -trace_err \
        -error_file "$name.err.log" "127.0.0.1:$((5100 + j))" >>"$name.log" 2>&1
    echo $? >"$name.rc"
done
EOF
cp "$IT_SIPP_DIR/register.xml" "$IT_TMP/reg.xml"
cp "$IT_SIPP_DIR/uac.xml" "$IT_TMP/uac.xml"

# sipp_quiet_expect NAME STATUS N: it_sipp_expect, which logs only a failure.
sipp_quiet_expect() {
    [ "$2" = 0 ] && [ "$(it_sipp_stat "$1" "SuccessfulCall(C)")" = "$3" ] &&
        [ "$(it_sipp_stat "$1" "FailedCall(C)")" = 0 ] && return 0
    it_sipp_expect "$@"
}

# phase KIND: the workers in every host at once, then every sipp's verdict.
phase() {
    local kind=$1 h t0=$SECONDS bad name rc want
    for ((h = 1; h <= HOSTS_N; h++)); do
        host_start "h$h" "${kind}w_$h" bash "$IT_TMP/worker.sh" "$kind" "$h" "$PER_HOST" "$IT_TMP" "$IT_DOMAIN"
    done
    for ((h = 1; h <= HOSTS_N; h++)); do
        it_wait_until 240 "h$h's $kind worker" eval "! it_alive ${kind}w_$h"
        it_stop "${kind}w_$h"
    done
    it_log "$kind: the workers ended after $((SECONDS - t0)) s"
    # Every sipp's verdict in one pass (a process per file costs seconds with 100
    # daemons running); the first bad one is then shown by it_sipp_expect.
    bad=$("$OVL_PY" - "$IT_TMP" "$kind" <<'PYEOF'
import csv, glob, os, sys
tmp, kind = sys.argv[1], sys.argv[2]
for f in sorted(glob.glob(os.path.join(tmp, "plan", kind + "_*.csv"))):
    name = os.path.basename(f)[:-4]
    want = sum(1 for _ in open(f)) - 1
    try:
        rc = open(os.path.join(tmp, name + ".rc")).read().strip()
        rows = list(csv.reader(open(os.path.join(tmp, name + ".stat.csv")), delimiter=";"))
        st = dict(zip(rows[0], rows[-1]))
        ok = rc == "0" and st["SuccessfulCall(C)"] == str(want) and st["FailedCall(C)"] == "0"
    except (OSError, KeyError, IndexError):
        ok, rc = False, "?"
    if not ok:
        print(name, rc, want)
        break
PYEOF
    ) || it_fail "cannot read the sipp statistics"
    if [ -n "$bad" ]; then
        read -r name rc want <<<"$bad"
        [ "$rc" != "?" ] || it_fail "sipp $name left no exit status or statistics"
        it_sipp_expect "$name" "$rc" "$want"
        it_fail "sipp $name: its statistics say it failed"
    fi
    it_log "$kind: $AORS, 0 failures, in $((SECONDS - t0)) s"
}

t_reg=$SECONDS
phase reg
for ((h = 1; h <= HOSTS_N; h++)); do
    m=$(cat "$IT_TMP/plan/uas_$h")
    [ "$m" -gt 0 ] || continue
    ovl_sipp_bg "h$h" "uas_$h" uas_overlay.xml -i 127.0.0.1 -p 5080 -t u1 -m "$m" \
        -default_behaviors -bye
done
for ((h = 1; h <= HOSTS_N; h++)); do
    [ "$(cat "$IT_TMP/plan/uas_$h")" -gt 0 ] || continue
    it_wait_until 10 "h$h's phone" ovl_udp_bound "h$h" 5080
done
phase call
for ((h = 1; h <= HOSTS_N; h++)); do
    m=$(cat "$IT_TMP/plan/uas_$h")
    [ "$m" -gt 0 ] || continue
    it_wait_until 60 "h$h's phone to finish its $m calls" eval "! it_alive uas_$h"
    it_stop "uas_$h"
    sipp_quiet_expect "uas_$h" "${IT_EXIT_OF[uas_$h]}" "$m"
done
# Every daemon still runs (builtins only: a process per daemon costs seconds here).
while read -r name _; do
    pid=$(it_pid "$name")
    st=""
    [ -z "$pid" ] || read -r _ _ st _ <"/proc/$pid/stat" 2>/dev/null || st=""
    if [ -z "$st" ] || [ "$st" = Z ]; then
        it_fail "$name exited: $(tail -n 3 "$IT_TMP/$name.log")"
    fi
done <"$IT_TMP/all.nodes"
it_pass "100 daemons: $AORS AoRs registered and each called from another daemon, 0 failures; $((SECONDS - t_reg)) s for both, $((SECONDS - t_start)) s in all"

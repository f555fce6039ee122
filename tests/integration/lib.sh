# shellcheck shell=bash
#
# lib.sh: shared helpers for the integration tests (tests/integration/test_*.sh) and
# the SIP server benchmark (bench/bench_sip_server.sh).  Sourced, never run.
#
# Design.  A script calls it_begin "$@" first.  That re-executes the script inside a
# private network namespace (unshare -n, loopback up), under a hard time limit
# (IT_TIMEOUT seconds, default 600), so fixed ports never collide with other tests run
# at the same time and nothing a test sends can leave the namespace.  Every process
# the script starts goes through it_start, which runs it in its own process group and
# records its pid; an EXIT trap stops every recorded process (SIGTERM to the group,
# bounded wait, then SIGKILL), whatever way the script ends, and removes the
# temporary directory (kept when P2P_IT_KEEP=1).  Waiting is always a bounded poll on
# a condition (a port bound, a line in a log, a process gone), never a fixed sleep.
# A failing check calls it_fail, which prints the reason and the tail of every log,
# and exits 1; it_pass prints the verdict and exits 0.  The server under test is
# always stopped with it_server_stop, which also fails the test unless it exits 0
# on SIGTERM.
#
# The SIP server under test is p2psipd by default; P2P_IT_SERVER=kamailio runs the
# same scenario against kamailio with bench/kamailio/registrar-proxy.cfg instead
# (the scenarios were validated on it first, and the benchmark measures both).
#
# Invariants: only processes started by it_start (or run in the foreground by
# it_run) are ever signalled, by their own pid/process group; every loop is bounded
# in count and time; all files live under $IT_TMP.

IT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IT_SRC=${P2P_SOURCE_DIR:-$(cd "$IT_LIB_DIR/../.." && pwd)}
IT_BUILD=${P2P_BUILD_DIR:-$IT_SRC/build}
IT_SIPP_DIR=$IT_LIB_DIR/sipp
IT_NAME=$(basename "$0" .sh)
IT_DOMAIN=${IT_DOMAIN:-p2p.test}
IT_REALM=${IT_REALM:-p2p.test}

declare -a IT_PIDS=()
declare -A IT_PID_OF=()
declare -A IT_EXIT_OF=()
# Functions the EXIT trap calls after stopping the processes (hosts.sh: hosts_destroy).
declare -a IT_CLEANUP_HOOKS=()
IT_TMP=""
IT_VERDICT=""

it_log() { printf '%s: %s\n' "$IT_NAME" "$*" >&2; }

# it_begin "$@": enters a private network namespace (re-executing the calling script
# there under `timeout`), then sets up $IT_TMP and the cleanup trap.  Must be the
# first thing a script does after sourcing this file.
it_begin() {
    if [ "${P2P_IT_IN_NETNS:-}" != 1 ]; then
        local unshare_opts=(-n)
        # As root (CI) a plain network namespace; otherwise a user namespace too, in
        # which we are root enough to bring loopback up.
        [ "$(id -u)" -eq 0 ] || unshare_opts=(-r -n)
        # IT_UNSHARE_MOUNT=1 (set by hosts.sh): a private mount namespace too.
        [ "${IT_UNSHARE_MOUNT:-0}" != 1 ] || unshare_opts+=(-m --propagation private)
        command -v unshare >/dev/null || { echo "$IT_NAME: FAIL: unshare missing" >&2; exit 1; }
        exec timeout -k 15 "${IT_TIMEOUT:-600}" \
            unshare "${unshare_opts[@]}" -- env P2P_IT_IN_NETNS=1 bash "$0" "$@"
    fi
    ip link set lo up || { echo "$IT_NAME: FAIL: cannot bring loopback up" >&2; exit 1; }
    IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/p2p-it.$IT_NAME.XXXXXX") || exit 1
    trap it__cleanup EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    trap 'exit 129' HUP
}

it__cleanup() {
    local rc=$?
    trap - EXIT TERM INT HUP
    local i
    for ((i = ${#IT_PIDS[@]} - 1; i >= 0; i--)); do
        it__stop_pid "${IT_PIDS[i]}"
    done
    local hook
    for hook in "${IT_CLEANUP_HOOKS[@]}"; do
        "$hook" || echo "$IT_NAME: cleanup: $hook failed" >&2
    done
    if [ "$rc" -ne 0 ] && [ "$IT_VERDICT" != "FAIL" ]; then
        echo "$IT_NAME: FAIL: ended with status $rc before a verdict" >&2
        it__dump_logs
    fi
    if [ -n "$IT_TMP" ] && [ -d "$IT_TMP" ]; then
        if [ "${P2P_IT_KEEP:-0}" = 1 ]; then
            echo "$IT_NAME: files kept in $IT_TMP" >&2
        else
            rm -rf "$IT_TMP"
        fi
    fi
    exit "$rc"
}

it__dump_logs() {
    local f
    for f in "$IT_TMP"/*.log; do
        [ -f "$f" ] || continue
        case $f in *.err.log) continue ;; esac
        echo "---- last lines of $(basename "$f") ----" >&2
        tail -n "${IT_LOG_TAIL:-25}" "$f" | cut -c 1-400 >&2
    done
}

# it_fail MESSAGE: the verdict FAIL, with the logs' tails; exits 1.
it_fail() {
    IT_VERDICT=FAIL
    echo "$IT_NAME: FAIL: $*" >&2
    it__dump_logs
    exit 1
}

# it_pass [MESSAGE]: the verdict PASS; exits 0 (the trap stops everything).
it_pass() {
    IT_VERDICT=PASS
    echo "$IT_NAME: PASS${1:+: $*}"
    exit 0
}

# it_need CMD...: fails the test when a required program is missing (deps.sh test
# installs them all; a missing one is a broken setup, not a skip).
it_need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || it_fail "required program '$c' not found (scripts/deps.sh test)"
    done
}

# it_start NAME CMD [ARGS...]: starts CMD in the background in its own process group,
# stdout+stderr to $IT_TMP/NAME.log, stdin from /dev/null unless IT_STDIN names a
# file or FIFO.  Records the pid (IT_PID_OF[NAME]).
it_start() {
    local name=$1
    shift
    [ -z "${IT_PID_OF[$name]:-}" ] || it_fail "it_start: '$name' already running"
    local in=${IT_STDIN:-/dev/null}
    setsid "$@" >>"$IT_TMP/$name.log" 2>&1 <"$in" &
    local pid=$!
    IT_PIDS+=("$pid")
    IT_PID_OF[$name]=$pid
    it_log "started $name (pid $pid): $*"
}

# it_pid NAME: prints the pid of a started process.
it_pid() { echo "${IT_PID_OF[$1]:-}"; }

# it_alive NAME: true while the process runs.
it_alive() {
    local pid=${IT_PID_OF[$1]:-}
    [ -n "$pid" ] && it__running "$pid"
}

it__state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }

# True while pid exists and is not a zombie waiting to be reaped.
it__running() { kill -0 "$1" 2>/dev/null && [ "$(it__state "$1")" != Z ]; }

# Stops one pid: the signal to its process group, up to IT_STOP_WAIT seconds (default
# 10) for it to exit, then SIGKILL to the group.  Sets IT__ST to its exit status.
# (Not run in a subshell: only this shell can reap its children.)
it__stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    if it__running "$pid"; then
        kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null
        for ((i = 0; i < ${IT_STOP_WAIT:-10} * 20; i++)); do
            it__running "$pid" || break
            sleep 0.05
        done
        it__running "$pid" && kill -s KILL -- "-$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    IT__ST=$?
    # Anything left in its process group (children that outlived it) goes too.
    kill -s KILL -- "-$pid" 2>/dev/null
    return 0
}

# it_stop NAME [SIGNAL]: stops a started process (default SIGTERM); its exit status
# is then in IT_EXIT_OF[NAME] (128+n when killed by signal n).
it_stop() {
    local name=$1 sig=${2:-TERM}
    local pid=${IT_PID_OF[$name]:-}
    [ -n "$pid" ] || it_fail "it_stop: '$name' was not started"
    it__stop_pid "$pid" "$sig"
    IT_EXIT_OF[$name]=$IT__ST
    unset "IT_PID_OF[$name]"
    local i
    for i in "${!IT_PIDS[@]}"; do
        [ "${IT_PIDS[i]}" != "$pid" ] || unset "IT_PIDS[i]"
    done
    IT_PIDS=("${IT_PIDS[@]}")
    it_log "stopped $name (pid $pid) with SIG$sig: exit status ${IT_EXIT_OF[$name]}"
}

# it_run TIMEOUT CMD [ARGS...]: runs CMD in the foreground, bounded by TIMEOUT seconds,
# in a way the TERM trap can still interrupt; returns its exit status (124 on timeout).
it_run() {
    local t=$1
    shift
    timeout -k 5 "$t" "$@" &
    local pid=$!
    wait "$pid"
}

# it_wait_until TIMEOUT DESCRIPTION CMD [ARGS...]: polls CMD every 50 ms until it
# succeeds; fails the test after TIMEOUT seconds.
it_wait_until() {
    local t=$1 what=$2
    shift 2
    local deadline=$((SECONDS + t))
    while ! "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || it_fail "timed out after ${t}s waiting for $what"
        sleep 0.05
    done
}

it__udp_bound() { [ -n "$(ss -Hnlu "sport = :$1")" ]; }
it__tcp_listening() { [ -n "$(ss -Hnlt "sport = :$1")" ]; }

# it_wait_udp PORT [TIMEOUT] / it_wait_tcp PORT [TIMEOUT]: until something is bound.
it_wait_udp() { it_wait_until "${2:-30}" "UDP port $1 to be bound" it__udp_bound "$1"; }
it_wait_tcp() { it_wait_until "${2:-30}" "TCP port $1 to listen" it__tcp_listening "$1"; }

it__log_has() {
    local name=$1 re=$2
    if [ -n "${IT_PID_OF[$name]:-}" ] && ! it_alive "$name"; then
        grep -Eq -- "$re" "$IT_TMP/$name.log" 2>/dev/null && return 0
        it_fail "$name exited while we waited for /$re/ in its log"
    fi
    grep -Eq -- "$re" "$IT_TMP/$name.log" 2>/dev/null
}

# it_wait_log NAME REGEX [TIMEOUT]: until NAME's log has a line matching REGEX (ERE);
# fails at once if NAME exits first.
it_wait_log() {
    it_wait_until "${3:-30}" "/$2/ in $1.log" it__log_has "$1" "$2"
}

# it_log_count NAME REGEX: prints how many lines of NAME's log match REGEX.
it_log_count() { grep -Ec -- "$2" "$IT_TMP/$1.log" 2>/dev/null || true; }

# it_elapsed T1 T0: T1 - T0 in seconds (date +%s.%N stamps), 3 decimals.
it_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# it_users N FILE [PREFIX]: writes a sipp injection file of N unique users
# (PREFIX00001...), one per line: "user;password;[authentication ...]".  Passwords
# are unique per user and per run.  Field 2 is the sipp keyword that signs a request
# with the user's credentials (sipp does not expand [fieldN] inside [authentication],
# but does expand a keyword held in a field).  The same file feeds the servers'
# account lists (it_accounts_*).
it_users() {
    local n=$1 file=$2 prefix=${3:-user}
    local salt
    salt=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
    {
        echo SEQUENTIAL
        awk -v n="$n" -v p="$prefix" -v s="$salt" 'BEGIN {
            for (i = 1; i <= n; i++) {
                u = sprintf("%s%05d", p, i); pw = sprintf("pw%s%05d", s, i)
                printf "%s;%s;[authentication username=%s password=%s]\n", u, pw, u, pw
            } }'
    } >"$file"
}

# it_wav FILE SECONDS: writes a WAV file (8 kHz, mono, signed 16-bit little-endian,
# a 440 Hz tone) for the phones' audio sources: no sound card is used anywhere.
it_wav() {
    python3 - "$1" "$2" <<'PYEOF' || it_fail "cannot write $1"
import math, struct, sys, wave
path, secs = sys.argv[1], int(sys.argv[2])
w = wave.open(path, "wb")
w.setnchannels(1)
w.setsampwidth(2)
w.setframerate(8000)
one = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
               for i in range(8000))
w.writeframes(one * secs)
w.close()
PYEOF
}

# it_sip_trace_summary LOGFILE: one line per SIP message found in a phone's trace
# (baresip -s), "SRC>DST|start line|CSeq value", ANSI colours removed.
it_sip_trace_summary() {
    sed 's/\x1b\[[0-9;]*m//g; s/\r$//' "$1" | awk '
        function flush() { if (start != "") print src ">" dst "|" start "|" cseq; start = "" }
        /^(UDP|TCP) [0-9.:]+ -> [0-9.:]+$/ { flush(); src = $2; dst = $4; want = 1; next }
        want == 1 { start = $0; cseq = ""; want = 2; next }
        want == 2 && tolower($0) ~ /^cseq *:/ { sub(/^[^:]*: */, ""); cseq = $0; next }
        want == 2 && $0 == "" { flush(); want = 0 }
        END { flush() }'
}

# it_sip_saw NAME PATTERN: NAME's log (a phone's SIP trace) has a message matching
# PATTERN (ERE, on the summary line "SRC>DST|start line|CSeq").
it_sip_saw() { it_sip_trace_summary "$IT_TMP/$1.log" | grep -Eq -- "$2"; }

# it_sip_wait_saw NAME PATTERN [TIMEOUT]: polls it_sip_saw until it holds.
it_sip_wait_saw() { it_wait_until "${3:-30}" "$1 to see /$2/" it_sip_saw "$1" "$2"; }

# it_baresip_config NAME SIP_PORT PEER PROXY WAV: a baresip config directory
# $IT_TMP/NAME for the account NAME@$IT_DOMAIN: SIP on 127.0.0.1:SIP_PORT (UDP and
# TCP; TLS takes SIP_PORT+1), registered through PROXY (host:port, UDP), auto-answer,
# audio from WAV and played to ALSA's null device (no sound card), the stdio UI
# (long commands "/dial ..." on stdin; $IT_TMP/NAME/in is a FIFO for them), PEER as
# the current contact (the target of /message).
it_baresip_config() {
    local name=$1 port=$2 peer=$3 proxy=$4 wav=$5 d=$IT_TMP/$1
    mkdir -p "$d"
    cat >"$d/config" <<EOC
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:$port
call_local_timeout	120
call_max_calls		4
audio_player		alsa,null
audio_alert		alsa,null
audio_source		aufile,$wav
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			aufile.so
module			alsa.so
module_app		account.so
module_app		contact.so
module_app		menu.so
EOC
    printf '<sip:%s@%s>;auth_pass=%s;outbound="sip:%s;transport=udp";regint=600;answermode=auto\n' \
        "$name" "$IT_DOMAIN" "pw-$name" "$proxy" >"$d/accounts"
    printf '"%s" <sip:%s@%s>\n' "$peer" "$peer" "$IT_DOMAIN" >"$d/contacts"
    printf 'sip:%s@%s' "$peer" "$IT_DOMAIN" >"$d/current_contact"
    mkfifo "$d/in" || it_fail "mkfifo $d/in"
}

# it_linphone_config NAME PROXY: a home directory $IT_TMP/NAME for a linphonec of
# the identity sip:NAME@$IT_DOMAIN that does not register (a caller need not be
# registered): linphonerc with SIP over UDP only (no TCP, no TLS), every call routed
# through PROXY (host:port, UDP, loose route), no video, network state monitoring
# off; $IT_TMP/NAME/in is a FIFO for its commands (its stdin, linphonec -S).  Start
# it with HOME, XDG_DATA_HOME and XDG_CONFIG_HOME set to $IT_TMP/NAME.
it_linphone_config() {
    local name=$1 proxy=$2 d=$IT_TMP/$1
    mkdir -p "$d"
    cat >"$d/linphonerc" <<EOC
[sip]
sip_tcp_port=-1
sip_tls_port=-1
default_proxy=0
auto_net_state_mon=0
register_only_when_network_is_up=0
[proxy_0]
reg_proxy=<sip:$proxy;transport=udp>
reg_route=<sip:$proxy;transport=udp;lr>
reg_identity=sip:$name@$IT_DOMAIN
reg_sendregister=0
publish=0
[video]
display=0
capture=0
EOC
    mkfifo "$d/in" || it_fail "mkfifo $d/in"
}

# ---------------------------------------------------------------------------------
# The SIP server under test.

# it_server_start NAME PORT [--auth USERS_FILE] [--md5] [--data-dir DIR] [--persist]
#   Starts the server chosen by P2P_IT_SERVER (p2psipd, the default, or kamailio) as a
#   registrar + stateful proxy for $IT_DOMAIN on udp:127.0.0.1:PORT and waits until it
#   listens.  --auth: digest authentication for REGISTER against the users file
#   (it_users format).  --md5: challenge with MD5 only (sipp reads only the first
#   challenge and knows no SHA-256; kamailio offers MD5 only anyway).
#   --data-dir: where bindings persist (p2psipd always persists;
#   kamailio only with --persist, in DIR/kamailio.db).
it_server_start() {
    local name=$1 port=$2
    shift 2
    local auth="" dir="$IT_TMP/$name.data" persist=0
    IT__ALGS=""
    while [ $# -gt 0 ]; do
        case $1 in
        --auth) auth=$2; shift 2 ;;
        --md5) IT__ALGS=md5; shift ;;
        --data-dir) dir=$2; shift 2 ;;
        --persist) persist=1; shift ;;
        *) it_fail "it_server_start: unknown option $1" ;;
        esac
    done
    mkdir -p "$dir"
    case ${P2P_IT_SERVER:-p2psipd} in
    p2psipd) it__p2psipd_start "$name" "$port" "$auth" "$dir" ;;
    kamailio) it__kamailio_start "$name" "$port" "$auth" "$dir" "$persist" ;;
    *) it_fail "P2P_IT_SERVER must be p2psipd or kamailio, not '$P2P_IT_SERVER'" ;;
    esac
    it_wait_udp "$port" 30
}

# it_server_stop NAME: stops the server with SIGTERM and fails the test unless it
# exits 0 (p2psipd exits 1 when a libuv handle leaked at shutdown).
it_server_stop() {
    it_stop "$1" TERM
    [ "${IT_EXIT_OF[$1]}" -eq 0 ] || it_fail "$1 exit status ${IT_EXIT_OF[$1]} on SIGTERM"
}

# Which binary: $P2P_P2PSIPD if set, else the build tree's.
it_p2psipd_bin() { echo "${P2P_P2PSIPD:-$IT_BUILD/p2psipd/p2psipd}"; }

it__p2psipd_start() {
    local name=$1 port=$2 auth=$3 dir=$4
    local bin
    bin=$(it_p2psipd_bin)
    [ -x "$bin" ] || it_fail "p2psipd not built: $bin"
    local conf=$dir/p2psipd.conf
    {
        echo "[sip]"
        echo "port = $port"
        echo "listen = 127.0.0.1"
        # IT_DOMAIN_ANY=1: serve every domain (p2psipd's default, "*").
        if [ "${IT_DOMAIN_ANY:-0}" = 1 ]; then echo "domain = *"; else echo "domain = $IT_DOMAIN"; fi
        if [ -n "$auth" ]; then
            echo "[auth]"
            echo "accounts = $dir/accounts"
            echo "realm = $IT_REALM"
            [ -z "$IT__ALGS" ] || echo "algorithms = $IT__ALGS"
        fi
    } >"$conf"
    [ -z "$auth" ] || it_accounts_p2psipd "$auth" "$dir/accounts"
    # shellcheck disable=SC2086 # IT_P2PSIPD_ARGS: extra words, e.g. "-d"
    it_start "$name" "$bin" -s --config "$conf" --data-dir "$dir" ${IT_P2PSIPD_ARGS:-}
}

# it_accounts_p2psipd USERS_FILE OUT: p2psipd's accounts file for the users.
it_accounts_p2psipd() {
    awk -F';' -v d="$IT_DOMAIN" 'NR > 1 { printf "sip:%s@%s %s\n", $1, d, $2 }' "$1" >"$2"
}

# it_accounts_kamailio USERS_FILE DB: a sqlite database with kamailio's version,
# subscriber (plain-text passwords) and location tables.
it_accounts_kamailio() {
    local users=$1 db=$2 schema=/usr/share/kamailio/db_sqlite
    it_need sqlite3
    {
        echo "BEGIN;"
        cat "$schema/standard-create.sql" "$schema/auth_db-create.sql" \
            "$schema/usrloc-create.sql"
        [ -z "$users" ] || awk -F';' -v d="$IT_DOMAIN" 'NR > 1 {
            printf "INSERT INTO subscriber (username, domain, password) VALUES (\x27%s\x27, \x27%s\x27, \x27%s\x27);\n", $1, d, $2 }' "$users"
        echo "COMMIT;"
    } | sqlite3 "$db" || it_fail "cannot create the kamailio database $db"
}

# Worker processes for kamailio's UDP socket (-n); 2 on the 2-core reference machine.
IT_KAMAILIO_CHILDREN=${IT_KAMAILIO_CHILDREN:-2}

it__kamailio_start() {
    local name=$1 port=$2 auth=$3 dir=$4 persist=$5
    it_need kamailio
    local cfg=$IT_SRC/bench/kamailio/registrar-proxy.cfg
    local defs=(-A "SIP_DOMAIN=\"$IT_DOMAIN\"")
    if [ -n "$auth" ] || [ "$persist" = 1 ]; then
        [ -f "$dir/kamailio.db" ] || it_accounts_kamailio "$auth" "$dir/kamailio.db"
        defs+=(-A "DBURL=\"sqlite://$dir/kamailio.db\"")
    fi
    [ -z "$auth" ] || defs+=(-A WITH_AUTH)
    [ "$persist" = 0 ] || defs+=(-A WITH_SQLITE)
    mkdir -p "$dir/run"
    it_start "$name" kamailio -f "$cfg" -DD -E -n "$IT_KAMAILIO_CHILDREN" -m 256 -M 16 \
        -l "udp:127.0.0.1:$port" -Y "$dir/run" -P "$dir/run/kamailio.pid" \
        -a no "${defs[@]}"
}

# ---------------------------------------------------------------------------------
# sipp

# Copies scenario SCENARIO (a file, or a name in tests/integration/sipp/) to
# $IT_TMP/NAME.xml: sipp names its trace files after the scenario file, and they must
# land in $IT_TMP, never in the source tree.
it__sipp_scenario() {
    local name=$1 scen=$2
    [ -f "$scen" ] || scen=$IT_SIPP_DIR/$scen
    [ -f "$scen" ] || it_fail "no sipp scenario $2"
    cp "$scen" "$IT_TMP/$name.xml" || it_fail "cannot copy $scen"
}

# it_sipp NAME TIMEOUT SCENARIO [SIPP ARGS...]: runs sipp in the foreground in $IT_TMP
# (bounded by TIMEOUT seconds) with statistics in $IT_TMP/NAME.stat.csv, unexpected
# messages in NAME.err.log, output in NAME.log, and (with -trace_counts) per-message
# counts in NAME_<pid>_counts.csv.  Returns sipp's exit status (0: every call
# succeeded; 1: at least one failed).
it_sipp() {
    local name=$1 t=$2
    it__sipp_scenario "$name" "$3"
    shift 3
    (cd "$IT_TMP" && it_run "$t" sipp -sf "$name.xml" -nostdin -trace_stat \
        -stf "$name.stat.csv" -fd 1 -trace_err -error_file "$name.err.log" "$@" \
        >>"$name.log" 2>&1)
}

# it_sipp_bg NAME SCENARIO [SIPP ARGS...]: the same, started in the background (a
# UAS); stop it with it_stop NAME, its exit status is then IT_EXIT_OF[NAME].
it_sipp_bg() {
    local name=$1
    it__sipp_scenario "$name" "$2"
    shift 2
    local here=$PWD
    cd "$IT_TMP" || it_fail "cd $IT_TMP"
    it_start "$name" sipp -sf "$name.xml" -nostdin -trace_stat -stf "$name.stat.csv" \
        -fd 1 -trace_err -error_file "$name.err.log" "$@"
    cd "$here" || it_fail "cd $here"
}

# it_sipp_count NAME WHAT: how many times the scenario step WHAT (a response code such
# as 180, or a method such as INVITE) was received, from NAME's -trace_counts file.
it_sipp_count() {
    local f
    f=$(ls "$IT_TMP/$1"_*_counts.csv 2>/dev/null | head -n 1)
    [ -n "$f" ] || { echo ""; return 1; }
    awk -F';' -v w="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ ("_" w "_Recv$")) c = i; next }
        { last = $c }
        END { if (c) print last }' "$f"
}

# it_sipp_stat NAME COLUMN: prints COLUMN (e.g. "SuccessfulCall(C)") from the last
# line of NAME's statistics file.
it_sipp_stat() {
    local f=$IT_TMP/$1.stat.csv
    [ -s "$f" ] || { echo ""; return 1; }
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        { last = $c }
        END { if (c) print last }' "$f"
}

# it_sipp_expect NAME STATUS SUCCESS: fails the test unless sipp exited with 0 and its
# statistics say SUCCESS successful calls and no failed one.
it_sipp_expect() {
    local name=$1 st=$2 want=$3
    local ok failed
    ok=$(it_sipp_stat "$name" "SuccessfulCall(C)")
    failed=$(it_sipp_stat "$name" "FailedCall(C)")
    if [ "$st" -ne 0 ] || [ "$ok" != "$want" ] || [ "$failed" != 0 ]; then
        [ ! -s "$IT_TMP/$name.err.log" ] || {
            echo "---- first lines of $name.err.log ----" >&2
            head -c 3000 "$IT_TMP/$name.err.log" >&2
            echo >&2
        }
        it_fail "sipp $name: exit status $st, successful calls ${ok:-?} (want $want), failed ${failed:-?} (want 0)"
    fi
    it_log "sipp $name: $ok successful, 0 failed"
}

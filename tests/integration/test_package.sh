#!/usr/bin/env bash
#
# test_package.sh: the Debian package (cmake/Packaging.cmake), built, installed into
# the machine's real root with dpkg, checked and removed again.
#
# Needs root (CI runs as root on a throwaway Debian 12 machine): dpkg -i cannot be
# pointed at a scratch root, since the package's Depends come from the system's own
# shared libraries.  A machine that already has a package named p2psip is refused
# (the test would replace and then remove it).  The EXIT trap purges the package
# whatever way the script ends.
#
# Steps: configure the sources in a scratch build directory under $IT_TMP with the
# prefix /usr, build what the package holds (p2psipd, p2psipctl, p2psip-gui when the
# build has it), cpack -G DEB; dpkg -i.
# Checks:
#   - dpkg -L lists the executables, their man pages, /etc/p2psip/p2psipd.conf and
#     the unit; the configuration is a conffile; Depends names the shared libraries
#     (dpkg-shlibdeps ran); the section is net.
#   - /usr/sbin/p2psipd --version prints "p2psipd VERSION" with the project's
#     version; p2psipctl --help and --version answer; the installed p2psipd accepts
#     the installed configuration (--print-config).
#   - systemd-analyze verify accepts the installed unit (no unit is started), and
#     systemd-analyze security --offline=true rates its exposure 3.0 or lower.
#   - The sandbox fits the daemon: two installed p2psipd run as an unprivileged user
#     with no capabilities (as DynamicUser= and CapabilityBoundingSet= make them) on
#     the installed configuration, one starting a ring, the other finding it by
#     multicast on loopback; a record put through the second is read through the
#     first; SIGHUP reloads.  Every system call they make (strace -f) is in the
#     unit's SystemCallFilter= (the allow list less the ~ deny lists, expanded by
#     systemd-analyze syscall-filter), and every socket family in its
#     RestrictAddressFamilies=, and every file they create, change or remove is in
#     their data directory (ProtectSystem=strict).  Both exit 0 on SIGTERM.
#   - dpkg -r removes everything but the conffile; dpkg -P removes that too, and
#     the package is gone.
# Fails when any of those breaks.
set -u
here=$(dirname "$0"); [ -f "$here/lib.sh" ] || here=$here/..
if [ "$(id -u)" -ne 0 ]; then
    echo "test_package: FAIL: needs root (it installs the .deb with dpkg -i)" >&2
    exit 1
fi
. "$here/lib.sh"
IT_TIMEOUT=${IT_TIMEOUT:-800}
it_begin "$@"
it_need cmake cpack dpkg dpkg-deb dpkg-query dpkg-shlibdeps file systemd-analyze strace \
    setpriv python3 man

PKG=p2psip
st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null)
[ -z "$st" ] || [ "${st:0:2}" = un ] ||
    it_fail "a package $PKG is already on this machine (status '$st'); remove it (dpkg -P $PKG) to run this test"

# pkg_dpkg ARGS...: dpkg ARGS, output appended to dpkg.log; while another dpkg or apt
# holds the lock (other work on the machine), retried for up to 120 s.
pkg_dpkg() {
    local deadline=$((SECONDS + 120)) out rc
    while :; do
        out=$(it_run 300 dpkg "$@" 2>&1)
        rc=$?
        printf '$ dpkg %s\n%s\n' "$*" "$out" >>"$IT_TMP/dpkg.log"
        [ "$rc" -ne 0 ] && grep -q 'locked by another process' <<<"$out" &&
            [ "$SECONDS" -lt "$deadline" ] || return "$rc"
        sleep 1
    done
}
INSTALLED=0
pkg_purge_on_exit() {
    [ "$INSTALLED" = 1 ] || return 0
    pkg_dpkg -P "$PKG" || echo "test_package: cleanup: dpkg -P $PKG failed" >&2
}
IT_CLEANUP_HOOKS+=(pkg_purge_on_exit)

# 1. Build the package from a scratch build directory with the prefix /usr.
version=$(sed -nE 's/^project\(p2psip VERSION ([0-9.]+) .*/\1/p' "$IT_SRC/CMakeLists.txt")
[ -n "$version" ] || it_fail "no project version in $IT_SRC/CMakeLists.txt"
gui=ON
[ ! -f "$IT_BUILD/CMakeCache.txt" ] ||
    gui=$(sed -n 's/^P2P_GUI:BOOL=//p' "$IT_BUILD/CMakeCache.txt")
build=$IT_TMP/build
it_run 120 cmake -S "$IT_SRC" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON -DP2P_GUI="${gui:-ON}" \
    >"$IT_TMP/cmake.log" 2>&1 || it_fail "cmake configure failed"
targets=(p2psipd p2psipctl)
has_gui=0
if it_run 60 cmake --build "$build" --target help | grep -qE '(^|[ .:])p2psip-gui($|[ :])'; then
    has_gui=1
    targets+=(p2psip-gui)
fi
it_run 500 cmake --build "$build" -j 2 --target "${targets[@]}" >>"$IT_TMP/cmake.log" 2>&1 ||
    it_fail "building ${targets[*]} failed"
(cd "$build" && it_run 120 cpack -G DEB) >"$IT_TMP/cpack.log" 2>&1 || it_fail "cpack -G DEB failed"
deb=$(ls "$build"/"${PKG}_${version}"_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || it_fail "cpack wrote no ${PKG}_${version}_*.deb"
it_log "built $(basename "$deb") ($(stat -c %s "$deb") bytes; gui: $has_gui)"

# 2. Install; what is in it.
INSTALLED=1
pkg_dpkg -i "$deb" || it_fail "dpkg -i $(basename "$deb") failed"
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")" = "ii " ] ||
    it_fail "$PKG is not installed after dpkg -i: $(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")"
unit=/usr/lib/systemd/system/p2psipd.service
conf=/etc/p2psip/p2psipd.conf
files=(/usr/sbin/p2psipd /usr/bin/p2psipctl /usr/share/man/man8/p2psipd.8
       /usr/share/man/man1/p2psipctl.1 "$conf" "$unit")
[ "$has_gui" = 0 ] || files+=(/usr/bin/p2psip-gui /usr/share/man/man1/p2psip-gui.1)
listed=$(dpkg -L "$PKG")
for f in "${files[@]}"; do
    grep -qxF "$f" <<<"$listed" || it_fail "dpkg -L $PKG does not list $f"
    [ -f "$f" ] || it_fail "$f is listed but not installed"
done
[ -x /usr/sbin/p2psipd ] && [ -x /usr/bin/p2psipctl ] || it_fail "the executables are not executable"
dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -qE "^ $conf [0-9a-f]{32}\$" ||
    it_fail "$conf is not a conffile: $(dpkg-query -W -f='${Conffiles}' "$PKG")"
depends=$(dpkg-query -W -f='${Depends}' "$PKG")
for lib in libc6 libuv1 libsodium23 libsqlite3-0 libjansson4 libnettle8; do
    grep -qE "(^|, )$lib( |,|\$)" <<<"$depends" || it_fail "Depends lacks $lib: '$depends'"
done
[ "$has_gui" = 0 ] || grep -q 'libgtk-3-0' <<<"$depends" || it_fail "Depends lacks GTK: '$depends'"
[ "$(dpkg-query -W -f='${Section}' "$PKG")" = net ] || it_fail "section is not net"
grep -qx 'ExecStart=/usr/sbin/p2psipd --config /etc/p2psip/p2psipd.conf --data-dir /var/lib/p2psip' \
    "$unit" || it_fail "the unit's ExecStart does not name the installed paths: $(grep ExecStart "$unit")"

# 3. The installed programs.
out=$(it_run 10 /usr/sbin/p2psipd --version) || it_fail "p2psipd --version exited with $?"
[ "$out" = "p2psipd $version" ] || it_fail "p2psipd --version printed '$out', want 'p2psipd $version'"
out=$(it_run 10 /usr/bin/p2psipctl --help 2>&1) || it_fail "p2psipctl --help exited with $?"
grep -q 'status' <<<"$out" || it_fail "p2psipctl --help does not mention status: $out"
out=$(it_run 10 /usr/bin/p2psipctl --version) || it_fail "p2psipctl --version exited with $?"
grep -qF "$version" <<<"$out" || it_fail "p2psipctl --version printed '$out'"
out=$(it_run 10 /usr/sbin/p2psipd --config "$conf" --data-dir /var/lib/p2psip --print-config) ||
    it_fail "the installed p2psipd refuses the installed configuration: $out"
grep -qxF 'data_dir = /var/lib/p2psip' <<<"$out" || it_fail "--print-config: $out"

# 4. The unit: verify loads it (and finds its executable and man pages); the exposure.
it_run 60 systemd-analyze verify "$unit" >"$IT_TMP/verify.log" 2>&1 ||
    it_fail "systemd-analyze verify $unit: $(cat "$IT_TMP/verify.log")"
[ ! -s "$IT_TMP/verify.log" ] || it_fail "systemd-analyze verify complains: $(cat "$IT_TMP/verify.log")"
it_run 60 systemd-analyze security --offline=true --no-pager "$unit" >"$IT_TMP/security.log" 2>&1 ||
    it_fail "systemd-analyze security failed"
exposure=$(sed -nE 's/.*Overall exposure level for p2psipd\.service: ([0-9]+\.[0-9]+) .*/\1/p' \
    "$IT_TMP/security.log")
[ -n "$exposure" ] || it_fail "no 'Overall exposure level' line: $(tail -n 3 "$IT_TMP/security.log")"
awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }' ||
    it_fail "exposure $exposure, want <= 3.0: $(grep '✗' "$IT_TMP/security.log")"
it_log "systemd-analyze security: exposure $exposure"

# 5. The daemon inside what the sandbox allows.  The nodes run as nobody with no
# capability at all and no_new_privs, traced from their first instruction.
ip link set lo multicast on || it_fail "cannot turn multicast on for lo"
ip route add 224.0.0.0/4 dev lo || it_fail "cannot route multicast to lo"
chmod 711 "$IT_TMP"
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all
           --bounding-set=-all --no-new-privs)
for d in private-a data-b trace; do
    install -d -m 0700 -o 65534 -g 65534 "$IT_TMP/$d" || it_fail "cannot make $IT_TMP/$d"
done
# Node a's data directory is a symbolic link, as DynamicUser= makes the StateDirectory
# (/var/lib/p2psip -> private/p2psip).
ln -s private-a "$IT_TMP/data-a" || it_fail "cannot link data-a"
ctl() { it_run 20 "${as_nobody[@]}" /usr/bin/p2psipctl --data-dir "$IT_TMP/data-$1" "${@:2}"; }
it_start node-a "${as_nobody[@]}" strace -f -qq -o "$IT_TMP/trace/a" \
    /usr/sbin/p2psipd -s --config "$conf" --data-dir "$IT_TMP/data-a"
it_wait_log node-a 'running: data directory' 20
it_start node-b "${as_nobody[@]}" strace -f -qq -o "$IT_TMP/trace/b" \
    /usr/sbin/p2psipd -p 5064 --config "$conf" --data-dir "$IT_TMP/data-b"
it_wait_log node-b 'running: data directory' 20
role_of() { ctl "$1" --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)["role"])'; }
b_attached() { case $(role_of b 2>/dev/null) in client | member) return 0 ;; esac; return 1; }
it_wait_until 60 "node b to find node a by multicast and attach" b_attached
out=$(ctl b put pkgkey pkgvalue --ttl 600) || it_fail "put through node b: $out"
a_has_it() { ctl a get pkgkey 2>/dev/null | grep -q 'pkgvalue'; }
it_wait_until 20 "node a to read the record put through node b" a_has_it
pid_of() { ctl "$1" --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])'; }
pid_a=$(pid_of a) && pid_b=$(pid_of b) || it_fail "status has no pid"
kill -HUP "$pid_a" || it_fail "cannot signal node a ($pid_a)"
it_wait_log node-a 'configuration reloaded from' 10
# SIGTERM to the daemons themselves; strace then exits with their status.
kill -TERM "$pid_a" "$pid_b" || it_fail "cannot signal the nodes"
a_gone() { ! it_alive node-a; }
b_gone() { ! it_alive node-b; }
it_wait_until 20 "node a to stop" a_gone
it_wait_until 20 "node b to stop" b_gone
it_stop node-a
it_stop node-b
[ "${IT_EXIT_OF[node-a]}" -eq 0 ] || it_fail "node a exited with ${IT_EXIT_OF[node-a]}"
[ "${IT_EXIT_OF[node-b]}" -eq 0 ] || it_fail "node b exited with ${IT_EXIT_OF[node-b]}"

# The unit's filter, expanded, against what the nodes did.
python3 - "$unit" "$IT_TMP/data-a:$IT_TMP/data-b" "$IT_TMP/trace/a" "$IT_TMP/trace/b" \
    >"$IT_TMP/sandbox.log" 2>&1 <<'PYEOF' ||
import os, re, subprocess, sys

def expand(name, seen):
    """A syscall-filter group (@name) as the set of its system calls, recursively."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                         capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if w and not w.startswith("#"):
            calls |= expand(w, seen)
    return calls

allow, deny, families = None, set(), None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("SystemCallFilter="):
        v = line.split("=", 1)[1]
        words = v.lstrip("~").split()
        calls = set().union(*(expand(w, set()) for w in words))
        if v.startswith("~"):
            deny |= calls
        else:
            allow = calls if allow is None else allow | calls
    elif line.startswith("RestrictAddressFamilies="):
        families = set(line.split("=", 1)[1].split())
if allow is None or families is None:
    sys.exit("the unit has no SystemCallFilter= allow list or no RestrictAddressFamilies=")
allowed = allow - deny
# ProtectSystem=strict: the only writable place is the StateDirectory (here the data
# directories).  A call that changed a file elsewhere would fail under the unit.
# (sqlite names its files by the resolved path of a linked directory.)
datadirs = [p.rstrip("/") + "/" for d in sys.argv[2].split(":")
            for p in (d, os.path.realpath(d))]
writes = re.compile(r'\d+\s+(?:openat\(AT_FDCWD, "([^"]+)", [A-Z_|]*O_(?:WRONLY|RDWR|CREAT)'
                    r'|(?:mkdir|unlink|rmdir|chmod|rename|truncate)\("([^"]+)"'
                    r'|bind\(\d+, \{sa_family=AF_UNIX, sun_path="([^"]+)")')
used, fams, outside = set(), set(), set()
for path in sys.argv[3:]:
    for line in open(path):
        m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
        if m:
            used.add(m.group(1))
        m = re.match(r"\d+\s+socket\((AF_[A-Z0-9]+)", line)
        if m:
            fams.add(m.group(1))
        m = writes.match(line)
        if m and not re.search(r"= -1 ", line):
            f = next(g for g in m.groups() if g)
            if not any(f.startswith(d) for d in datadirs):
                outside.add(f)
bad = sorted(used - allowed)
badf = sorted(fams - families)
print("system calls used: %d, all in the filter: %s; families %s; writes outside the "
      "data directory: %d" % (len(used), not bad, " ".join(sorted(fams)), len(outside)))
if len(used) < 20 or "socket" not in used:
    sys.exit("the traces hold too few system calls: %s" % sorted(used))
if bad:
    sys.exit("system calls outside the unit's SystemCallFilter: %s" % " ".join(bad))
if badf:
    sys.exit("socket families outside RestrictAddressFamilies: %s" % " ".join(badf))
if outside:
    sys.exit("files changed outside the data directory: %s" % " ".join(sorted(outside)))
PYEOF
    it_fail "the daemon does not fit the unit's sandbox: $(cat "$IT_TMP/sandbox.log")"
it_log "$(cat "$IT_TMP/sandbox.log")"

# 6. Remove: everything but the conffile goes; purge takes that too.
pkg_dpkg -r "$PKG" || it_fail "dpkg -r $PKG failed"
for f in "${files[@]}"; do
    [ "$f" = "$conf" ] && continue
    [ ! -e "$f" ] || it_fail "$f is still there after dpkg -r"
done
[ -f "$conf" ] || it_fail "dpkg -r removed the conffile $conf"
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")" = "rc " ] ||
    it_fail "after dpkg -r the status is '$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")', want 'rc '"
pkg_dpkg -P "$PKG" || it_fail "dpkg -P $PKG failed"
INSTALLED=0
[ ! -e "$conf" ] && [ ! -e /etc/p2psip ] || it_fail "dpkg -P left $conf or /etc/p2psip"
st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null)
[ -z "$st" ] || [ "${st:0:2}" = un ] || it_fail "after dpkg -P the status is '$st'"

it_pass "$(basename "$deb"): files, conffile, Depends, --version $version, unit verified, exposure $exposure, daemon within the sandbox's system calls, families and writable directory, removed and purged"

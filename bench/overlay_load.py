# overlay_load.py: the driver of bench/bench_overlay.sh: N p2psipd nodes beside N
# OpenDHT dhtnode nodes, the same workload through each one's own client, figures
# printed as a table and the latency samples written as CSV.
#
# Design.  bench_overlay.sh creates the private LAN (tests/integration/hosts.sh: a
# bridge and one network namespace per host, 198.18.0.0/24, nothing routed anywhere
# else) and runs this script in the bench's own namespace, where br0 carries
# 198.18.0.250.  Host hI (I = 1..N) runs p2psipd node pI; host h(N+I) runs dhtnode
# node dI.  Every process is started here (ip netns exec HOST CMD, which execs CMD,
# so the pid is the node's), tracked by pid, listed in PIDFILE, and stopped by pid.
#
# Clients.  p2psipd: its control socket (NDJSON, p2psipd/control.h), one persistent
# connection per issuing node, requests pipelined and matched by id; a latency is
# from the write of the request line to the read of its answer line, so it includes
# the control-socket hop and this process's event loop.  dhtnode: python3-opendht
# DhtRunners in this namespace, one per issuer, bootstrapped to d1 only, on the same
# network id; a get ends at the callback that delivers the expected value (the
# search is then stopped), a put at its done callback.  p2psipd's issuers are its
# first STABLE nodes (never churned; dhtnode's first STABLE nodes are not churned
# either); there are as many DhtRunners.  The same rule picks the issuer of every
# operation in both systems (pick_issuer): a put goes through the issuer its key
# hashes to, a get through another one.
#
# Workload (same for both, same seeded key sequence, open-loop pacing: operations
# start on a fixed schedule whether or not earlier ones have answered):
#   steady  PUTS puts of distinct keys at PUT_RATE/s, then GETS gets of random keys
#           among them at GET_RATE/s; p2psipd first, then dhtnode (the other system
#           sits idle meanwhile).
#   idle    IDLE_S seconds with no operation: bytes sent per node (every host's veth,
#           ip -s link: Ethernet frames, the same measure for both; for p2psipd also
#           its own counters bytes_out and dht.maint_bytes_sent) and CPU.
#   detect  p2psipd only: one non-stable node is killed (SIGKILL); the time until no
#           leaf set of the other nodes lists it any more.
#   churn   both systems at once, with the same schedule: each of the N - STABLE
#           non-stable nodes lives an exponentially distributed session (median
#           MEDIAN_S), is killed with SIGKILL and replaced at once by a fresh node
#           (new identity, same host); meanwhile gets of the steady keys at
#           CHURN_GET_RATE/s and puts of new keys at CHURN_PUT_RATE/s, CHURN_S seconds.
# An operation not answered within OP_TIMEOUT seconds has failed; latencies (and the
# CSV files) are of operations that succeeded.
#
# Output: progress on stderr, the table on stdout, then one JSON object on the last
# line; the latency samples as CSV files in RESULTS, and overlay_churn_bytes.csv: every
# 2 s of the churn, the bytes each system's hosts sent on the LAN per node and second
# (the idle phase's measure, over time).  Never asserts a speed.
import argparse, asyncio, heapq, json, math, os, random, re, resource, signal, subprocess, sys, time, zlib

try:
    import opendht
except ImportError:  # bench_overlay.sh checks first; say it plainly anyway
    opendht = None

CLK_TCK = os.sysconf("SC_CLK_TCK")
T0 = time.monotonic()


def log(*a):
    print("overlay_load %6.1fs:" % (time.monotonic() - T0), *a, file=sys.stderr, flush=True)


def pct(samples, p):
    """The p-th percentile (nearest rank) of a list of numbers, None when empty."""
    if not samples:
        return None
    s = sorted(samples)
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


def median(v):
    return pct(v, 50)


# ---- processes --------------------------------------------------------------------

def proc_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def proc_mem_kb(pid):
    """(VmRSS, Pss, USS = Private_Clean + Private_Dirty) in KiB, or None."""
    try:
        rss = pss = None
        uss = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                    uss += int(line.split()[1])
        return rss, pss, uss
    except (OSError, ValueError):
        return None


def machine_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])  # busy, total


class Node:
    def __init__(self, system, idx, gen, host, ip, proc, ddir=None):
        self.system, self.idx, self.gen, self.host, self.ip = system, idx, gen, host, ip
        self.proc, self.ddir = proc, ddir
        self.pid = proc.pid
        self.started = time.monotonic()
        self.ticks_at_end = None  # CPU ticks read just before it was killed

    @property
    def name(self):
        return "%s%d.%d" % (self.system[0], self.idx, self.gen)

    @property
    def sock(self):
        return os.path.join(self.ddir, "control.sock")

    def alive(self):
        return self.proc.poll() is None


class Cluster:
    """Starts, tracks and stops every node process, by pid."""

    def __init__(self, a):
        self.a = a
        self.nodes = {"p2psipd": {}, "dhtnode": {}}  # idx -> current Node
        self.dead = {"p2psipd": [], "dhtnode": []}  # killed or stopped Nodes
        self.gens = {}  # (system, idx) -> generation of the node last started there
        self.pidfile = open(a.pidfile, "a")
        self.logdir = os.path.join(a.tmp, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.conf = os.path.join(a.tmp, "p2p.conf")
        with open(self.conf, "w") as f:
            f.write("[p2p]\npromote_after = %d\n" % a.promote_after)

    def host_of(self, system, idx):
        i = idx if system == "p2psipd" else self.a.nodes + idx
        return "h%d" % i, "198.18.0.%d" % (10 + i)

    def _spawn(self, system, idx, gen, argv, ddir=None):
        host, ip = self.host_of(system, idx)
        name = "%s%d.%d" % (system[0], idx, gen)
        out = open(os.path.join(self.logdir, name + ".log"), "wb")
        p = subprocess.Popen(["ip", "netns", "exec", host] + argv, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.pidfile.write("%d\n" % p.pid)
        self.pidfile.flush()
        n = Node(system, idx, gen, host, ip, p, ddir)
        self.nodes[system][idx] = n
        return n

    def start_p2psipd(self, idx, gen):
        ddir = os.path.join(self.a.tmp, "p%d.%d" % (idx, gen))
        os.makedirs(ddir, mode=0o700)
        argv = [self.a.p2psipd, "-P", str(self.a.p2p_port), "-p", str(self.a.sip_port),
                "--data-dir", ddir, "--config", self.conf, "--control",
                os.path.join(ddir, "control.sock")]
        if idx == 1:
            argv.append("-s")
        else:
            argv += ["-S", "%s:%d" % (self.host_of("p2psipd", 1)[1], self.a.p2p_port)]
        return self._spawn("p2psipd", idx, gen, argv, ddir)

    def start_dhtnode(self, idx, gen):
        argv = [self.a.dhtnode, "-s", "-p", str(self.a.dht_port), "-n", str(self.a.netid)]
        if idx != 1:
            argv += ["-b", "%s:%d" % (self.host_of("dhtnode", 1)[1], self.a.dht_port)]
        return self._spawn("dhtnode", idx, gen, argv)

    def start(self, system, idx):
        """A fresh node (new data directory, new identity) on system's host idx."""
        gen = self.gens.get((system, idx), -1) + 1
        self.gens[(system, idx)] = gen
        return (self.start_p2psipd if system == "p2psipd" else self.start_dhtnode)(idx, gen)

    def kill(self, n, sig=signal.SIGKILL):
        n.ticks_at_end = proc_ticks(n.pid)
        try:
            os.kill(n.pid, sig)
        except ProcessLookupError:
            pass
        try:
            n.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(n.pid, signal.SIGKILL)
            n.proc.wait(timeout=10)
        self.dead[n.system].append(n)
        if self.nodes[n.system].get(n.idx) is n:
            del self.nodes[n.system][n.idx]

    def stop_all(self):
        """SIGTERM to every live node, 10 s for all to go, then SIGKILL."""
        live = [n for s in self.nodes.values() for n in s.values() if n.alive()]
        for n in live:
            n.ticks_at_end = proc_ticks(n.pid)
            try:
                os.kill(n.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for n in live:
            try:
                n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log("%s (pid %d) ignored SIGTERM for 10 s: SIGKILL" % (n.name, n.pid))
                os.kill(n.pid, signal.SIGKILL)
                n.proc.wait(timeout=10)
        return [(n, n.proc.returncode) for n in live]

    def live(self, system):
        return [n for n in self.nodes[system].values()]

    def ticks(self, system):
        """CPU ticks of the system: live nodes now + nodes already gone."""
        t = sum(n.ticks_at_end or 0 for n in self.dead[system])
        for n in self.nodes[system].values():
            t += proc_ticks(n.pid) or n.ticks_at_end or 0
        return t


# ---- p2psipd control-socket client -------------------------------------------------

class Op:
    __slots__ = ("kind", "key", "value", "t0", "t1", "ok", "err", "via")

    def __init__(self, kind, key, value, via=None):
        self.kind, self.key, self.value, self.via = kind, key, value, via
        self.t0 = self.t1 = None
        self.ok = False
        self.err = None

    def ms(self):
        return (self.t1 - self.t0) * 1000.0


class Ctl:
    """One persistent, pipelined connection to a node's control socket."""

    def __init__(self, path):
        self.path = path
        self.r = self.w = None
        self.waiting = {}
        self.next_id = 1
        self.task = None

    async def open(self, timeout=5.0):
        self.r, self.w = await asyncio.wait_for(
            asyncio.open_unix_connection(self.path, limit=1 << 24), timeout)
        self.task = asyncio.ensure_future(self._reader())

    async def _reader(self):
        try:
            while True:
                line = await self.r.readline()
                if not line:
                    break
                t1 = time.perf_counter()
                m = json.loads(line)
                if "id" not in m:
                    continue
                cb = self.waiting.pop(m["id"], None)
                if cb is not None:
                    cb(m, t1)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        for cb in list(self.waiting.values()):
            cb({"ok": False, "error": "connection closed"}, time.perf_counter())
        self.waiting.clear()

    def send(self, cmd, args, opts, cb):
        """Writes one request; cb(answer, t_answer) runs when its answer is read."""
        i = self.next_id
        self.next_id += 1
        self.waiting[i] = cb
        line = (json.dumps({"id": i, "cmd": cmd, "args": args, "opts": opts}) + "\n").encode()
        t0 = time.perf_counter()
        self.w.write(line)
        return t0

    async def call(self, cmd, args=(), opts=None, timeout=5.0):
        fut = asyncio.get_running_loop().create_future()

        def done(m, _t):
            if not fut.done():
                fut.set_result(m)

        self.send(cmd, list(args), opts or {}, done)
        m = await asyncio.wait_for(fut, timeout)
        if not m.get("ok"):
            raise RuntimeError(m.get("error"))
        return m.get("result")

    def close(self):
        if self.task:
            self.task.cancel()
        if self.w:
            self.w.close()


async def ctl_once(path, cmd, args=(), timeout=3.0):
    c = Ctl(path)
    try:
        await c.open(timeout)
        return await c.call(cmd, args, timeout=timeout)
    finally:
        c.close()


def pick_issuer(op, n, rr):
    """The issuer of op among n, the same rule for both systems: a put goes through
    the issuer its key hashes to; each get through one of the others, in turn, so no
    get is answered by the node that made the record.  Returns (index, new rr)."""
    home = zlib.crc32(op.key.encode()) % n
    if op.kind == "put" or n == 1:
        return home, rr
    return (home + 1 + rr % (n - 1)) % n, rr + 1


class P2PClient:
    """Issues ops over the stable nodes' control sockets (pick_issuer)."""

    def __init__(self, cluster, stable, ttl):
        self.cluster, self.stable, self.ttl = cluster, stable, ttl
        self.conns = []
        self.rr = 0

    async def open(self):
        for i in range(1, self.stable + 1):
            c = Ctl(self.cluster.nodes["p2psipd"][i].sock)
            await c.open()
            self.conns.append(c)

    def issue(self, op):
        op.via, self.rr = pick_issuer(op, len(self.conns), self.rr)
        c = self.conns[op.via]

        def done(m, t1):
            op.t1 = t1
            if not m.get("ok"):
                op.err = str(m.get("error"))
                return
            if op.kind in ("put", "ping"):
                op.ok = True
            else:
                res = m.get("result") or []
                op.ok = any(v.get("value") == op.value for v in res if isinstance(v, dict))
                if not op.ok:
                    op.err = "not found (%d values)" % len(res)

        if op.kind == "put":
            op.t0 = c.send("put", [op.key, op.value], {"ttl": self.ttl}, done)
        elif op.kind == "ping":  # the control-socket hop alone, no DHT
            op.t0 = c.send("ping", [], {}, done)
        else:
            op.t0 = c.send("get", [op.key], {}, done)

    def close(self):
        for c in self.conns:
            c.close()


class DhtClient:
    """python3-opendht DhtRunners in this namespace, one per issuer as for p2psipd
    (STABLE of them, consecutive ports), each bootstrapped to d1 only; ops go through
    them by pick_issuer, so a get never asks the runner that put the value (a
    DhtRunner answers a get of its own value from its own cache, which would
    measure no network at all) and each runner carries the share of the load that
    one p2psipd issuer carries."""

    def __init__(self, a, boot_ip):
        self.runners = []
        self.rr = 0
        for k in range(a.stable):
            r = opendht.DhtRunner()
            cfg = opendht.DhtConfig()
            cfg.setNetwork(a.netid)
            r.run(port=a.dht_port + k, ipv4=a.client_ip, config=cfg)
            r.bootstrap(boot_ip, str(a.dht_port))
            self.runners.append(r)

    def known_nodes(self):
        """Nodes in each runner's IPv4 routing table (its log's "count:" lines)."""
        out = []
        for r in self.runners:
            try:
                out.append(sum(int(x) for x in re.findall(r"count: (\d+)",
                                                          r.getRoutingTablesLog(2))))
            except Exception:
                out.append(None)
        return out

    def issue(self, op):
        op.via, self.rr = pick_issuer(op, len(self.runners), self.rr)
        r = self.runners[op.via]
        want = op.value.encode()
        h = opendht.InfoHash.get(op.key)
        if op.kind == "put":
            def done(ok, nodes):
                op.t1 = time.perf_counter()
                op.ok = bool(ok)
                if not ok:
                    op.err = "put not done"
            op.t0 = time.perf_counter()
            r.put(h, opendht.Value(want), done_cb=done)
        else:
            def got(v):
                d = v.data
                if isinstance(d, str):
                    d = d.encode("latin-1", "replace")
                if d == want and not op.ok:
                    op.t1 = time.perf_counter()
                    op.ok = True
                    return False  # found: stop the search
                return True

            def done(ok, nodes):
                if not op.ok and op.t1 is None:
                    op.t1 = time.perf_counter()
                    op.err = "not found" if ok else "get failed"
            op.t0 = time.perf_counter()
            r.get(h, got, done)

    def close(self):
        # No join(): it would wait for the runner's thread while holding the GIL that
        # the thread's pending python callbacks need.  Shut down, wait (bounded, with
        # the GIL released by sleep), and leave the rest to os._exit at the end.
        done = []
        for r in self.runners:
            r.shutdown(lambda: done.append(1))
        deadline = time.monotonic() + 5
        while len(done) < len(self.runners) and time.monotonic() < deadline:
            time.sleep(0.05)


# ---- workload ---------------------------------------------------------------------

def key_name(i):
    return "bench-key-%06d" % i


def value_of(key, size):
    v = "v:" + key + ":"
    return (v + "x" * size)[:size]


async def paced(client, ops, rate, extra_wait):
    """Issues ops at `rate`/s (open loop), then waits until every op has an answer or
    is older than extra_wait seconds."""
    start = time.perf_counter()
    for i, op in enumerate(ops):
        at = start + i / rate
        d = at - time.perf_counter()
        if d > 0:
            await asyncio.sleep(d)
        client.issue(op)
    deadline = time.perf_counter() + extra_wait
    while time.perf_counter() < deadline and any(op.t1 is None for op in ops):
        await asyncio.sleep(0.05)


def failed_keys(ops, timeout):
    """How many distinct keys the failed ops were for."""
    return len({op.key for op in ops
                if not (op.ok and op.t1 is not None and op.t1 - op.t0 <= timeout)})


def judge(ops, timeout):
    """(latencies ms of ops that succeeded within timeout, failures, error texts)."""
    lat, fails, errs = [], 0, {}
    for op in ops:
        if op.ok and op.t1 is not None and op.t1 - op.t0 <= timeout:
            lat.append(op.ms())
        else:
            fails += 1
            e = op.err or ("late" if op.ok else "no answer within %gs" % timeout)
            e = re.sub(r"\d+", "N", e)
            errs[e] = errs.get(e, 0) + 1
    return lat, fails, errs


def write_csv(path, samples):
    with open(path, "w") as f:
        for s in samples:
            f.write("%.3f\n" % s)


class CpuWindow:
    """CPU of each system, of this driver and of the whole machine over a phase."""

    def __init__(self, cluster):
        self.c = cluster
        self.t = time.monotonic()
        self.sys = {s: cluster.ticks(s) for s in ("p2psipd", "dhtnode")}
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.me = ru.ru_utime + ru.ru_stime
        self.mach = machine_jiffies()

    def end(self):
        dt = time.monotonic() - self.t
        out = {"seconds": round(dt, 1)}
        ours = 0.0
        for s in ("p2psipd", "dhtnode"):
            cpu = (self.c.ticks(s) - self.sys[s]) / CLK_TCK
            ours += cpu
            out[s] = round(100.0 * cpu / dt, 1)  # % of one core
        ru = resource.getrusage(resource.RUSAGE_SELF)
        me = ru.ru_utime + ru.ru_stime - self.me
        ours += me
        out["driver"] = round(100.0 * me / dt, 1)
        busy, total = machine_jiffies()
        db, dtot = busy - self.mach[0], total - self.mach[1]
        ncpu = os.cpu_count() or 1
        out["machine_busy"] = round(100.0 * ncpu * db / dtot, 1) if dtot else None
        # Whatever else ran on the machine meanwhile (other engineers' work, the
        # kernel's softirqs of our veths are in "ours" only when charged to us).
        out["others"] = round(max(0.0, out["machine_busy"] - 100.0 * ours / dt), 1) \
            if out["machine_busy"] is not None else None
        return out


def veth_tx_bytes():
    """Bytes each host sent on the LAN: rx of veth-hI, the bridge side of its link."""
    j = json.loads(subprocess.run(["ip", "-s", "-j", "link", "show", "type", "veth"],
                                  check=True, capture_output=True, text=True).stdout)
    out = {}
    for l in j:
        n = l.get("ifname", "")
        if n.startswith("veth-h"):
            out[n[5:]] = l["stats64"]["rx"]["bytes"]
    return out


async def veth_tx_bytes_async():
    """veth_tx_bytes() without blocking the loop (the clients' latencies run on it)."""
    pr = await asyncio.create_subprocess_exec(
        "ip", "-s", "-j", "link", "show", "type", "veth", stdout=asyncio.subprocess.PIPE)
    out, _ = await pr.communicate()
    if pr.returncode != 0:
        raise RuntimeError("ip -s -j link show type veth exited with %d" % pr.returncode)
    return {l["ifname"][5:]: l["stats64"]["rx"]["bytes"] for l in json.loads(out)
            if l.get("ifname", "").startswith("veth-h")}


async def churn_bytes(cluster, a, rows, period=2.0):
    """Until cancelled: every `period` seconds a row (seconds since start, then for
    p2psipd and dhtnode the bytes their hosts sent on the LAN per node and second).
    A replaced node keeps its host, so each host's counter runs on across churn."""
    hosts = {s: [cluster.host_of(s, i)[0] for i in range(1, a.nodes + 1)]
             for s in ("p2psipd", "dhtnode")}
    t0 = tp = time.monotonic()
    prev = await veth_tx_bytes_async()
    while True:
        await asyncio.sleep(period)
        cur = await veth_tx_bytes_async()
        t = time.monotonic()
        row = [round(t - t0, 1)]
        for s in ("p2psipd", "dhtnode"):
            d = [cur[h] - prev[h] for h in hosts[s] if h in cur and h in prev]
            row.append(round(sum(d) / len(d) / (t - tp), 1) if d else None)
        rows.append(row)
        prev, tp = cur, t


# ---- phases -----------------------------------------------------------------------

async def wait_p2p_members(cluster, idxs, timeout):
    """Polls status until every node in idxs is a member; returns {idx: role}."""
    roles = {}
    deadline = time.monotonic() + timeout
    while True:
        async def one(i):
            n = cluster.nodes["p2psipd"].get(i)
            if n is None or not n.alive():
                return i, "dead"
            try:
                r = await ctl_once(n.sock, "status", timeout=2.0)
                return i, r.get("role")
            except Exception:
                return i, "no answer"
        for i, r in await asyncio.gather(*(one(i) for i in idxs)):
            roles[i] = r
        waiting = [i for i in idxs if roles[i] not in ("member", "super-node")]
        if not waiting or time.monotonic() > deadline:
            return roles
        await asyncio.sleep(0.5)


async def start_system(cluster, system, a):
    """Starts node 1, then the others at a.start_rate/s."""
    t = time.monotonic()
    cluster.start(system, 1)
    if system == "p2psipd":
        r = await wait_p2p_members(cluster, [1], 20)
        if r[1] != "super-node":
            raise RuntimeError("p2psipd node 1 did not start its ring: %s" % r[1])
    else:
        await asyncio.sleep(1.0)
    for i in range(2, a.nodes + 1):
        cluster.start(system, i)
        await asyncio.sleep(1.0 / a.start_rate)
    return time.monotonic() - t


async def steady(system, client, a, rng_seed, timeout):
    rng = random.Random(rng_seed)
    keys = [key_name(i) for i in range(a.puts)]
    puts = [Op("put", k, value_of(k, a.value_size)) for k in keys]
    log("%s: %d puts at %g/s" % (system, a.puts, a.put_rate))
    await paced(client, puts, a.put_rate, timeout)
    await asyncio.sleep(1.0)
    gets = []
    for _ in range(a.gets):
        k = keys[rng.randrange(len(keys))]
        gets.append(Op("get", k, value_of(k, a.value_size)))
    log("%s: %d gets at %g/s" % (system, a.gets, a.get_rate))
    await paced(client, gets, a.get_rate, timeout)
    pings = []
    if system == "p2psipd":
        # What the client path alone costs: the daemon's `ping` over the same
        # connections at the same pace (answered on the loop, no DHT).
        pings = [Op("ping", key_name(i), "") for i in range(a.puts)]
        await paced(client, pings, a.get_rate, timeout)
    return puts, gets, pings


async def p2p_leafsets(cluster, idxs):
    async def one(i):
        n = cluster.nodes["p2psipd"].get(i)
        if n is None:
            return i, None
        try:
            r = await ctl_once(n.sock, "leafset", timeout=2.0)
            return i, {p["id"] for p in r.get("preds", []) + r.get("succs", [])}
        except Exception:
            return i, None
    return dict(await asyncio.gather(*(one(i) for i in idxs)))


async def detect_failure(cluster, a):
    """Kills one non-stable p2psipd node; seconds until no leaf set lists it."""
    victim = cluster.nodes["p2psipd"][a.stable + 1 + (a.nodes - a.stable) // 2]
    vid = (await ctl_once(victim.sock, "status")).get("node_id")
    idxs = [i for i in cluster.nodes["p2psipd"] if i != victim.idx]
    ls = await p2p_leafsets(cluster, idxs)
    holders = [i for i, s in ls.items() if s and vid in s]
    if not holders:
        return {"error": "no leaf set lists the victim", "victim": victim.name}
    t = time.monotonic()
    cluster.kill(victim)
    left = set(holders)
    last = {}
    while left and time.monotonic() - t < 60:
        await asyncio.sleep(0.2)
        ls = await p2p_leafsets(cluster, sorted(left))
        now = time.monotonic() - t
        for i, s in ls.items():
            if s is not None and vid not in s:
                left.discard(i)
                last[i] = now
    res = {"victim": victim.name, "holders": len(holders),
           "all_s": round(max(last.values()), 2) if not left else None,
           "first_s": round(min(last.values()), 2) if last else None,
           "still_listing_after_60s": len(left)}
    cluster.start("p2psipd", victim.idx)  # a fresh node takes its host
    return res


async def churn(cluster, clients, a, timeout):
    """Both systems at once: same session schedule, same operations."""
    mean = a.median_s / math.log(2.0)
    rng = random.Random(a.seed + 7)
    heap = []  # (time offset, system, idx)
    sched = {}
    for i in range(a.stable + 1, a.nodes + 1):
        s = rng.expovariate(1.0 / mean)
        for system in clients:
            heapq.heappush(heap, (s, system, i))
        sched[i] = s
    # new sessions drawn once per (idx, generation), shared by both systems
    sess = random.Random(a.seed + 11)
    next_session = {}
    keys = [key_name(i) for i in range(a.puts)]
    orng = random.Random(a.seed + 13)
    gets = {s: [] for s in clients}
    puts = {s: [] for s in clients}
    n_gets = int(a.churn_s * a.churn_get_rate)
    n_puts = int(a.churn_s * a.churn_put_rate)
    gsched = []
    for j in range(n_gets):
        k = keys[orng.randrange(len(keys))]
        gsched.append((j / a.churn_get_rate, "get", k))
    for j in range(n_puts):
        k = "bench-churn-%06d" % j
        gsched.append((j / a.churn_put_rate + 0.5 / a.churn_put_rate, "put", k))
    gsched.sort()
    kills = {s: 0 for s in clients}
    start = time.perf_counter()
    gi = 0
    gen = {}
    while True:
        now = time.perf_counter() - start
        if now >= a.churn_s:
            break
        while gi < len(gsched) and gsched[gi][0] <= now:
            _, kind, k = gsched[gi]
            gi += 1
            for system, cl in clients.items():
                op = Op(kind, k, value_of(k, a.value_size))
                (gets if kind == "get" else puts)[system].append(op)
                cl.issue(op)
        while heap and heap[0][0] <= now:
            _, system, i = heapq.heappop(heap)
            n = cluster.nodes[system].get(i)
            if n is not None:
                cluster.kill(n)
                kills[system] += 1
            g = gen.get((system, i), 0) + 1
            gen[(system, i)] = g
            cluster.start(system, i)
            if (i, g) not in next_session:
                next_session[(i, g)] = sess.expovariate(1.0 / mean)
            heapq.heappush(heap, (now + next_session[(i, g)], system, i))
        nxt = min(gsched[gi][0] if gi < len(gsched) else a.churn_s,
                  heap[0][0] if heap else a.churn_s, a.churn_s)
        await asyncio.sleep(max(0.0, min(0.05, nxt - (time.perf_counter() - start))))
    deadline = time.perf_counter() + timeout
    allops = [o for s in clients for o in gets[s] + puts[s]]
    while time.perf_counter() < deadline and any(o.t1 is None for o in allops):
        await asyncio.sleep(0.05)
    return gets, puts, kills


# ---- main -------------------------------------------------------------------------

def fmt(v, unit="", nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%." + str(nd) + "f%s") % (v, unit)
    return "%s%s" % (v, unit)


async def main(a):
    # SIGTERM (the bench script's EXIT trap) cancels this task: the finally below
    # still stops every node.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    os.makedirs(a.results, exist_ok=True)
    cluster = Cluster(a)
    R = {"nodes": a.nodes, "stable": a.stable, "seed": a.seed, "cpus": os.cpu_count()}
    p2pc = dhtc = None
    try:
        # ---- start both systems ----
        # dhtnode first, with its client runners: an OpenDHT network converges by
        # maintenance over tens of seconds (routing tables fill up as nodes talk),
        # while p2psipd nodes join explicitly; so dhtnode gets the p2psipd start-up
        # time on top of the settle time.
        log("starting %d dhtnode nodes" % a.nodes)
        R["dhtnode_start_s"] = round(await start_system(cluster, "dhtnode", a), 1)
        dhtc = DhtClient(a, cluster.host_of("dhtnode", 1)[1])
        t_dht = time.monotonic()
        log("starting %d p2psipd nodes" % a.nodes)
        t = time.monotonic()
        R["p2psipd_start_s"] = round(await start_system(cluster, "p2psipd", a), 1)
        roles = await wait_p2p_members(cluster, list(range(1, a.nodes + 1)), a.join_timeout)
        members = sum(1 for r in roles.values() if r in ("member", "super-node"))
        R["p2psipd_members"] = members
        R["p2psipd_all_members_s"] = round(time.monotonic() - t, 1)
        if members < a.nodes:
            bad = {i: r for i, r in roles.items() if r not in ("member", "super-node")}
            log("p2psipd: only %d of %d nodes are members after %ds: %s" %
                (members, a.nodes, a.join_timeout, json.dumps(bad)[:600]))
            for i in list(bad)[:3]:
                n = cluster.nodes["p2psipd"].get(i)
                if n:
                    with open(os.path.join(cluster.logdir, n.name + ".log"), errors="replace") as f:
                        log("  %s log tail: %s" % (n.name, " | ".join(f.read().splitlines()[-5:])))
        log("p2psipd: %d/%d members after %.1fs" % (members, a.nodes, R["p2psipd_all_members_s"]))
        p2pc = P2PClient(cluster, a.stable, a.ttl)
        await p2pc.open()
        log("settling %gs" % a.settle)
        await asyncio.sleep(a.settle)
        R["dhtnode_settled_s"] = round(time.monotonic() - t_dht, 1)
        R["dhtnode_client_known_nodes"] = dhtc.known_nodes()
        log("dhtnode: %gs since its client started; the client runners know %s nodes" %
            (R["dhtnode_settled_s"], R["dhtnode_client_known_nodes"]))
        gone = [n.name for s in cluster.nodes.values() for n in s.values() if not n.alive()]
        if gone:
            log("nodes that exited by themselves: %s" % gone)
        R["exited_at_start"] = gone

        # ---- steady: one system at a time ----
        lat = {}
        for system, cl in (("p2psipd", p2pc), ("dhtnode", dhtc)):
            w = CpuWindow(cluster)
            puts, gets, pings = await steady(system, cl, a, a.seed, a.op_timeout)
            R["cpu_steady_" + system] = w.end()
            pl, pf, pe = judge(puts, a.op_timeout)
            gl, gf, ge = judge(gets, a.op_timeout)
            lat[system] = (pl, gl)
            write_csv(os.path.join(a.results, "overlay_put_%s.csv" % system), pl)
            write_csv(os.path.join(a.results, "overlay_get_%s.csv" % system), gl)
            R[system] = {"put_n": len(puts), "put_failed": pf, "put_errors": pe,
                         "put_p50": pct(pl, 50), "put_p99": pct(pl, 99),
                         "get_n": len(gets), "get_failed": gf, "get_errors": ge,
                         "get_p50": pct(gl, 50), "get_p99": pct(gl, 99),
                         "get_failed_keys": failed_keys(gets, a.op_timeout)}
            if pings:
                cl_, cf, _ = judge(pings, a.op_timeout)
                R[system].update({"ctl_ping_p50": pct(cl_, 50), "ctl_ping_p99": pct(cl_, 99),
                                  "ctl_ping_failed": cf})
            log("%s steady: put p50 %s p99 %s ms (%d failed); get p50 %s p99 %s ms (%d failed)" %
                (system, fmt(pct(pl, 50)), fmt(pct(pl, 99)), pf, fmt(pct(gl, 50)),
                 fmt(pct(gl, 99)), gf))
            await asyncio.sleep(2.0)

        # ---- idle: both at once, no operation ----
        log("idle %gs" % a.idle_s)

        async def p2p_counters():
            out = {}
            for i, n in cluster.nodes["p2psipd"].items():
                try:
                    c = await ctl_once(n.sock, "counters", timeout=2.0)
                    types = {t: (v.get("sent", 0), v.get("sent_bytes", 0))
                             for t, v in (c.get("types") or {}).items()}
                    out[i] = (c.get("bytes_out", 0), (c.get("dht") or {}).get("maint_bytes_sent", 0),
                              c.get("frames_out", 0), types)
                except Exception:
                    pass
            return out

        c0 = await p2p_counters()
        v0 = veth_tx_bytes()
        w = CpuWindow(cluster)
        t = time.monotonic()
        await asyncio.sleep(a.idle_s)
        dt = time.monotonic() - t
        v1 = veth_tx_bytes()
        cpu_idle = w.end()
        c1 = await p2p_counters()
        R["cpu_idle"] = cpu_idle
        for system in ("p2psipd", "dhtnode"):
            hs = [cluster.host_of(system, i)[0] for i in range(1, a.nodes + 1)]
            per = [(v1.get(h, 0) - v0.get(h, 0)) / dt for h in hs if h in v0 and h in v1]
            R[system]["idle_wire_Bps_mean"] = round(sum(per) / len(per), 1) if per else None
            R[system]["idle_wire_Bps_max"] = round(max(per), 1) if per else None
        both = [i for i in c0 if i in c1]
        if both:
            R["p2psipd"]["idle_bytes_out_Bps"] = round(
                sum(c1[i][0] - c0[i][0] for i in both) / len(both) / dt, 1)
            R["p2psipd"]["idle_maint_Bps"] = round(
                sum(c1[i][1] - c0[i][1] for i in both) / len(both) / dt, 1)
            R["p2psipd"]["idle_frames_out_per_s"] = round(
                sum(c1[i][2] - c0[i][2] for i in both) / len(both) / dt, 2)
            # Which DHT messages the idle bytes are: per node and second, by type.
            by = {}
            for i in both:
                for t, (m1, b1) in c1[i][3].items():
                    m0, b0 = c0[i][3].get(t, (0, 0))
                    if b1 - b0 > 0:
                        x = by.setdefault(t, [0, 0])
                        x[0] += m1 - m0
                        x[1] += b1 - b0
            R["p2psipd"]["idle_dht_types"] = {
                t: {"msgs_per_s": round(v[0] / len(both) / dt, 3),
                    "bytes_per_s": round(v[1] / len(both) / dt, 1)}
                for t, v in sorted(by.items(), key=lambda kv: -kv[1][1])}

        # ---- memory ----
        for system in ("p2psipd", "dhtnode"):
            m = [proc_mem_kb(n.pid) for n in cluster.live(system)]
            m = [x for x in m if x]
            rss = [x[0] / 1024.0 for x in m]
            pss = [x[1] / 1024.0 for x in m if x[1] is not None]
            R[system]["rss_mib_median"] = round(median(rss), 2) if rss else None
            R[system]["rss_mib_max"] = round(max(rss), 2) if rss else None
            R[system]["pss_mib_median"] = round(median(pss), 2) if pss else None
            uss = [x[2] / 1024.0 for x in m]
            R[system]["uss_mib_median"] = round(median(uss), 2) if uss else None
        log("memory: p2psipd RSS %s MiB, dhtnode %s MiB (medians)" %
            (R["p2psipd"]["rss_mib_median"], R["dhtnode"]["rss_mib_median"]))

        # ---- failure detection (p2psipd) ----
        R["p2psipd"]["detect"] = await detect_failure(cluster, a)
        log("failure detection: %s" % R["p2psipd"]["detect"])
        await asyncio.sleep(3.0)

        # ---- churn: both systems at once ----
        log("churn %gs at a %gs median session, both systems" % (a.churn_s, a.median_s))
        w = CpuWindow(cluster)
        brows = []
        sampler = asyncio.create_task(churn_bytes(cluster, a, brows))
        try:
            cgets, cputs, kills = await churn(cluster, {"p2psipd": p2pc, "dhtnode": dhtc}, a,
                                              a.op_timeout)
        finally:
            sampler.cancel()
        R["cpu_churn"] = w.end()
        # Bytes per node over time (bench/plot.sh draws it): one row per 2 s.
        with open(os.path.join(a.results, "overlay_churn_bytes.csv"), "w") as f:
            f.write("# t_s,p2psipd_Bps_per_node,dhtnode_Bps_per_node\n")
            for r in brows:
                f.write(",".join("" if v is None else str(v) for v in r) + "\n")
        for system in ("p2psipd", "dhtnode"):
            gl, gf, ge = judge(cgets[system], a.op_timeout)
            pl, pf, pe = judge(cputs[system], a.op_timeout)
            write_csv(os.path.join(a.results, "overlay_churn_get_%s.csv" % system), gl)
            write_csv(os.path.join(a.results, "overlay_churn_put_%s.csv" % system), pl)
            n = len(cgets[system])
            R[system].update({
                "churn_kills": kills[system], "churn_get_n": n, "churn_get_failed": gf,
                "churn_get_ok_pct": round(100.0 * (n - gf) / n, 2) if n else None,
                "churn_get_p50": pct(gl, 50), "churn_get_p99": pct(gl, 99),
                "churn_get_errors": ge, "churn_put_n": len(cputs[system]),
                "churn_get_failed_keys": failed_keys(cgets[system], a.op_timeout),
                "churn_put_failed": pf, "churn_put_p99": pct(pl, 99), "churn_put_errors": pe})
            log("%s churn: %d kills; gets %s%% ok, p99 %s ms; puts %d failed, p99 %s ms; errors %s %s" %
                (system, kills[system], R[system]["churn_get_ok_pct"], fmt(pct(gl, 99)), pf,
                 fmt(pct(pl, 99)), ge, pe))
        roles = await wait_p2p_members(cluster, sorted(cluster.nodes["p2psipd"]), 0)
        R["p2psipd"]["after_churn_roles"] = {}
        for r in roles.values():
            R["p2psipd"]["after_churn_roles"][r] = R["p2psipd"]["after_churn_roles"].get(r, 0) + 1
        gone = [n.name for s in cluster.nodes.values() for n in s.values() if not n.alive()]
        R["exited_by_themselves"] = gone
    finally:
        if p2pc:
            p2pc.close()
        if dhtc:
            dhtc.close()
        st = cluster.stop_all()
        bad = [(n.name, rc) for n, rc in st if n.system == "p2psipd" and rc != 0]
        if bad:
            log("p2psipd nodes that did not exit 0 on SIGTERM: %s" % bad[:10])
        R["p2psipd_bad_exits"] = len(bad)
    report(R, a)


def report(R, a):
    P, D = R["p2psipd"], R["dhtnode"]

    def ratio(x, y):
        return (x / y) if (x is not None and y) else None

    def verdict(v, ok):
        return "-" if v is None else ("met" if ok(v) else "NOT met")

    def both(label, key, target="", ok=None, nd=2):
        """A row of one figure for both systems; the verdict on p2psipd's if ok."""
        v = P.get(key)
        return (label, fmt(v, nd=nd), fmt(D.get(key), nd=nd), target, verdict(v, ok) if ok else "")

    gr = ratio(P.get("get_p99"), D.get("get_p99"))
    rows = [
        both("get p50, no churn (ms)", "get_p50"),
        ("client path alone: control-socket ping p50 / p99 (ms)", "%s / %s" % (
            fmt(P.get("ctl_ping_p50")), fmt(P.get("ctl_ping_p99"))), "-", "", ""),
        ("get p99, no churn (ms)", fmt(P.get("get_p99")), fmt(D.get("get_p99")),
         "<= 0.5 x dhtnode", "%s (%.2fx)" % ("met" if gr is not None and gr <= 0.5 else "NOT met", gr)
         if gr is not None else "-"),
        ("gets failed, no churn (distinct keys)",
         "%d/%d (%d)" % (P["get_failed"], P["get_n"], P["get_failed_keys"]),
         "%d/%d (%d)" % (D["get_failed"], D["get_n"], D["get_failed_keys"]), "", ""),
        both("put p50, no churn (ms)", "put_p50"),
        both("put p99, no churn (ms)", "put_p99", "<= 3 ms", lambda v: v <= 3.0),
        ("puts failed, no churn", "%d/%d" % (P["put_failed"], P["put_n"]),
         "%d/%d" % (D["put_failed"], D["put_n"]), "", ""),
        both("RSS per node, median (MiB)", "rss_mib_median", "<= 4 MiB", lambda v: v <= 4.0),
        both("RSS per node, max (MiB)", "rss_mib_max"),
        both("PSS per node, median (MiB)", "pss_mib_median"),
        both("USS per node (private memory), median (MiB)", "uss_mib_median"),
        both("idle sent per node, on the wire (B/s)", "idle_wire_Bps_mean", nd=0),
        ("idle sent per node, UDP payload (B/s)", "%s (DHT maint. %s)" % (
            fmt(P.get("idle_bytes_out_Bps"), nd=0), fmt(P.get("idle_maint_Bps"), nd=0)), "-",
         "<= 300 B/s", verdict(P.get("idle_bytes_out_Bps"), lambda v: v <= 300)),
        ("failure detected by all leaf sets (s)", fmt((P.get("detect") or {}).get("all_s")), "n/a",
         "<= 10 s", verdict((P.get("detect") or {}).get("all_s"), lambda v: v <= 10)),
        ("churn: nodes killed and replaced", str(P.get("churn_kills")), str(D.get("churn_kills")),
         "", ""),
        both("churn: gets succeeded (%)", "churn_get_ok_pct", ">= 99.9 %", lambda v: v >= 99.9),
        ("churn: gets failed (distinct keys)",
         "%s/%s (%s)" % (P.get("churn_get_failed"), P.get("churn_get_n"), P.get("churn_get_failed_keys")),
         "%s/%s (%s)" % (D.get("churn_get_failed"), D.get("churn_get_n"), D.get("churn_get_failed_keys")),
         "", ""),
        both("churn: get p99 (ms)", "churn_get_p99", "<= 300 ms", lambda v: v <= 300),
        ("churn: puts failed", "%s/%s" % (P.get("churn_put_failed"), P.get("churn_put_n")),
         "%s/%s" % (D.get("churn_put_failed"), D.get("churn_put_n")), "", ""),
        both("churn: put p99 (ms)", "churn_put_p99"),
    ]
    for ph, key in (("steady p2psipd", "cpu_steady_p2psipd"), ("steady dhtnode", "cpu_steady_dhtnode"),
                    ("idle", "cpu_idle"), ("churn", "cpu_churn")):
        c = R.get(key) or {}
        rows.append(("CPU, %s phase (%% of one core)" % ph, fmt(c.get("p2psipd"), nd=1),
                     fmt(c.get("dhtnode"), nd=1), "",
                     "driver %s, others %s, machine %s" %
                     (c.get("driver"), c.get("others"), c.get("machine_busy"))))
    w = [max(len(r[i]) for r in rows + [("measure", "p2psipd", "dhtnode 2.4.12", "target", "p2psipd vs target")])
         for i in range(5)]
    hdr = ("measure", "p2psipd", "dhtnode 2.4.12", "target", "p2psipd vs target")
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
    print("# N = %d nodes each; %d puts at %g/s, %d gets at %g/s (no churn); churn %gs at a %gs "
          "median session, gets %g/s, puts %g/s; values %d bytes; timeout %gs; CSV in %s" %
          (a.nodes, a.puts, a.put_rate, a.gets, a.get_rate, a.churn_s, a.median_s,
           a.churn_get_rate, a.churn_put_rate, a.value_size, a.op_timeout, a.results))
    print(json.dumps(R, sort_keys=True))


def parse():
    p = argparse.ArgumentParser()
    e = os.environ.get
    p.add_argument("--tmp", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--p2psipd", required=True)
    p.add_argument("--dhtnode", default="dhtnode")
    p.add_argument("--results", required=True)
    p.add_argument("--nodes", type=int, default=int(e("BENCH_NODES", 100)))
    p.add_argument("--stable", type=int, default=int(e("BENCH_STABLE", 10)))
    p.add_argument("--seed", type=int, default=int(e("BENCH_SEED", 1)))
    p.add_argument("--puts", type=int, default=int(e("BENCH_PUTS", 500)))
    p.add_argument("--put-rate", type=float, default=float(e("BENCH_PUT_RATE", 50)))
    p.add_argument("--gets", type=int, default=int(e("BENCH_GETS", 3000)))
    p.add_argument("--get-rate", type=float, default=float(e("BENCH_GET_RATE", 100)))
    p.add_argument("--value-size", type=int, default=int(e("BENCH_VALUE_SIZE", 100)))
    p.add_argument("--ttl", type=int, default=600)
    p.add_argument("--op-timeout", type=float, default=float(e("BENCH_OP_TIMEOUT", 10)))
    p.add_argument("--idle-s", type=float, default=float(e("BENCH_IDLE_SECONDS", 30)))
    p.add_argument("--churn-s", type=float, default=float(e("BENCH_CHURN_SECONDS", 120)))
    p.add_argument("--median-s", type=float, default=float(e("BENCH_MEDIAN_SESSION", 60)))
    p.add_argument("--churn-get-rate", type=float, default=float(e("BENCH_CHURN_GET_RATE", 20)))
    p.add_argument("--churn-put-rate", type=float, default=float(e("BENCH_CHURN_PUT_RATE", 2)))
    p.add_argument("--start-rate", type=float, default=float(e("BENCH_START_RATE", 10)))
    p.add_argument("--settle", type=float, default=float(e("BENCH_SETTLE", 20)))
    p.add_argument("--join-timeout", type=int, default=int(e("BENCH_JOIN_TIMEOUT", 90)))
    p.add_argument("--promote-after", type=int, default=2)
    p.add_argument("--p2p-port", type=int, default=7600)
    p.add_argument("--sip-port", type=int, default=5600)
    p.add_argument("--dht-port", type=int, default=4222)
    p.add_argument("--netid", type=int, default=7560)
    p.add_argument("--client-ip", default="198.18.0.250")
    return p.parse_args()


if __name__ == "__main__":
    args = parse()
    if opendht is None:
        print("overlay_load.py: python3-opendht is missing (run with /usr/bin/python3)", file=sys.stderr)
        sys.exit(1)
    rc = 0
    try:
        asyncio.run(main(args))
    except (asyncio.CancelledError, KeyboardInterrupt):
        log("stopped by a signal")
        rc = 143
    except Exception:
        import traceback
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The DhtRunners' C++ threads may still exist: leave without running destructors.
    os._exit(rc)

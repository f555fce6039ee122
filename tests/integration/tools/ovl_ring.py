# ovl_ring.py: checks on a whole ring of p2psipd nodes through their control sockets
# (p2psipd/control.h NDJSON), for test_overlay_100.sh.  One connection per node,
# requests pipelined, everything in one asyncio loop: 1000 puts and gets cost one
# python process, not 2000.
#
#   ovl_ring.py members NODES TIMEOUT
#       until every node's status says role member or super-node (polled every 0.5 s);
#       exit 1 after TIMEOUT seconds, naming the nodes that are not.
#   ovl_ring.py leafsets NODES TIMEOUT [L]
#       until every node's leaf set is the truth computed from all the nodes' IDs:
#       its L (default 8) successors by clockwise distance, nearest first, and its L
#       predecessors by counter-clockwise distance (fewer when the ring is smaller;
#       IDs are 160-bit numbers); exit 1 after TIMEOUT with the differences.
#   ovl_ring.py puts NODES N SEED KEYS
#       N puts, each from a random node (random.Random(SEED)), of a unique key and
#       value; every one must be stored (answer "stored").  Writes KEYS: one JSON line
#       per put {"key", "value", "putter"}.  Exit 1 when a put failed.
#   ovl_ring.py gets NODES KEYS SEED
#       one get of every key from a random node other than its putter; each must
#       return exactly its value.  Exit 1 otherwise.
#   ovl_ring.py replicas NODES KEYS TIMEOUT [R]
#       until every key (BLAKE2b-160 of its text, as the daemon hashes it) is stored
#       ("records") by each of the R+1 (default 5: replicas = 4) nodes closest to it
#       by symmetric ring distance (equal distances: the smaller ID), i.e. its root
#       and replicas; other holders are allowed (counted).  Exit 1 after TIMEOUT.
#   ovl_ring.py heal NODES KEYS SEED TIMEOUT [L]
#       rounds of "leafsets" and "gets" (each key from a fresh random node) until one
#       round passes both, within TIMEOUT seconds from the start; exit 1 with the last
#       round's failures.
#
# NODES is a file of lines "NAME SOCKET".  Every wait is bounded; answers are matched
# by request id; a node that does not answer within 10 s counts as a failure.
import asyncio, hashlib, json, random, sys, time

REQ_TIMEOUT = 10.0
RING = 1 << 160


def load_nodes(path):
    out = []
    for line in open(path):
        p = line.split()
        if len(p) == 2:
            out.append((p[0], p[1]))
    return out


class Conn:
    """One control-socket connection, requests pipelined, answers matched by id."""

    def __init__(self, name, sock):
        self.name, self.sock = name, sock
        self.r = self.w = None
        self.waiting = {}
        self.next_id = 1
        self.reader = None
        self.sem = asyncio.Semaphore(48)  # under CONTROL_PENDING_MAX (64)
        self.lock = asyncio.Lock()

    async def open(self):
        async with self.lock:  # one connection, one reader, however many callers
            if self.w is not None:
                return
            r, w = await asyncio.wait_for(
                asyncio.open_unix_connection(self.sock, limit=1 << 24), REQ_TIMEOUT)
            self.r, self.w = r, w
            self.reader = asyncio.ensure_future(self.read_loop(r))

    async def read_loop(self, r):
        try:
            while True:
                line = await r.readline()
                if not line:
                    break
                m = json.loads(line)
                fut = self.waiting.pop(m.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(m)
        except (OSError, ValueError):
            pass
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_result({"ok": False, "error": "connection closed"})
        self.waiting.clear()
        self.w = None

    async def call(self, cmd, *args, **opts):
        """(ok, result-or-error); never raises."""
        async with self.sem:
            try:
                await self.open()
                i = self.next_id
                self.next_id += 1
                fut = asyncio.get_running_loop().create_future()
                self.waiting[i] = fut
                self.w.write((json.dumps({"id": i, "cmd": cmd, "args": list(args),
                                          "opts": opts}) + "\n").encode())
                m = await asyncio.wait_for(fut, REQ_TIMEOUT)
            except (OSError, asyncio.TimeoutError, AttributeError) as e:
                return False, "%s: %s" % (type(e).__name__, e)
            return bool(m.get("ok")), m.get("result") if m.get("ok") else m.get("error")


def truth(ids, me, L):
    others = [i for i in ids if i != me]
    x = int(me, 16)
    succ = sorted(others, key=lambda o: (int(o, 16) - x) % RING)[:L]
    pred = sorted(others, key=lambda o: (x - int(o, 16)) % RING)[:L]
    return pred, succ


async def node_ids(conns):
    res = await asyncio.gather(*(c.call("status") for c in conns))
    ids = {}
    for c, (ok, r) in zip(conns, res):
        if not ok:
            raise SystemExit("%s: status failed: %s" % (c.name, r))
        ids[c.name] = r["node_id"]
    return ids


async def check_members(conns):
    res = await asyncio.gather(*(c.call("status") for c in conns))
    return ["%s(%s)" % (c.name, r.get("role") if ok else r) for c, (ok, r) in zip(conns, res)
            if not ok or r.get("role") not in ("member", "super-node")]


async def check_leafsets(conns, ids, L):
    allids = list(ids.values())
    res = await asyncio.gather(*(c.call("leafset") for c in conns))
    bad = []
    for c, (ok, r) in zip(conns, res):
        if not ok:
            bad.append("%s: leafset failed: %s" % (c.name, r))
            continue
        pred, succ = truth(allids, ids[c.name], L)
        got_p = [p["id"] for p in r["preds"]]
        got_s = [p["id"] for p in r["succs"]]
        if got_p != pred or got_s != succ:
            miss = (set(pred) | set(succ)) - (set(got_p) | set(got_s))
            extra = (set(got_p) | set(got_s)) - (set(pred) | set(succ))
            bad.append("%s: preds %s/%s succs %s/%s right, missing %s, extra %s" % (
                c.name, sum(a == b for a, b in zip(got_p, pred)), len(pred),
                sum(a == b for a, b in zip(got_s, succ)), len(succ),
                [m[:8] for m in miss], [e[:8] for e in extra]))
    return bad


async def check_gets(conns, keys, rnd):
    jobs = []
    for k in keys:
        cands = [c for c in conns if c.name != k["putter"]]
        jobs.append((k, rnd.choice(cands)))
    res = await asyncio.gather(*(c.call("get", k["key"]) for k, c in jobs))
    bad = []
    for (k, c), (ok, r) in zip(jobs, res):
        if not ok:
            bad.append("%s from %s: %s" % (k["key"], c.name, r))
        elif [x.get("value") for x in r] != [k["value"]]:
            bad.append("%s from %s: %s" % (k["key"], c.name, json.dumps(r)[:200]))
    return bad


def ring_dist(a, b):
    d = (a - b) % RING
    return min(d, RING - d)


async def check_replicas(conns, ids, keys, R):
    res = await asyncio.gather(*(c.call("records") for c in conns))
    held = {}
    bad = []
    for c, (ok, r) in zip(conns, res):
        if not ok:
            bad.append("%s: records failed: %s" % (c.name, r))
            continue
        for rec in r:
            if not rec.get("tombstone"):
                held.setdefault(rec["key"], set()).add(c.name)
    by_id = [(int(i, 16), n) for n, i in ids.items()]
    extra = 0
    for k in keys:
        h = hashlib.blake2b(k["key"].encode(), digest_size=20).hexdigest()
        x = int(h, 16)
        want = {n for _, n in sorted(by_id, key=lambda t: (ring_dist(t[0], x), t[0]))[:R + 1]}
        got = held.get(h, set())
        if not want <= got:
            bad.append("%s (%s): missing on %s, held by %s" % (k["key"], h[:8], sorted(want - got),
                                                               sorted(got)))
        extra += len(got - want)
    return bad, extra


def report(what, bad, limit=10):
    print("%s: %d failures" % (what, len(bad)), file=sys.stderr)
    for b in bad[:limit]:
        print("  " + b, file=sys.stderr)


async def amain(argv):
    mode, nodes = argv[0], load_nodes(argv[1])
    conns = [Conn(n, s) for n, s in nodes]
    t0 = time.monotonic()
    if mode == "members":
        deadline = t0 + float(argv[2])
        while True:
            bad = await check_members(conns)
            if not bad:
                print("members: %d nodes after %.1f s" % (len(conns), time.monotonic() - t0))
                return 0
            if time.monotonic() >= deadline:
                report("members (not member)", bad, 20)
                return 1
            await asyncio.sleep(0.5)
    if mode == "leafsets":
        deadline, L = t0 + float(argv[2]), int(argv[3]) if len(argv) > 3 else 8
        ids = await node_ids(conns)
        while True:
            bad = await check_leafsets(conns, ids, L)
            if not bad:
                print("leafsets: %d correct after %.1f s" % (len(conns), time.monotonic() - t0))
                return 0
            if time.monotonic() >= deadline:
                report("leafsets", bad)
                return 1
            await asyncio.sleep(0.5)
    if mode == "puts":
        n, rnd, path = int(argv[2]), random.Random(argv[3]), argv[4]
        run = "%08x" % rnd.getrandbits(32)
        keys = [{"key": "k%s-%04d" % (run, i), "value": "v%04d-%016x" % (i, rnd.getrandbits(64)),
                 "putter": rnd.choice(conns).name} for i in range(n)]
        by = {c.name: c for c in conns}
        res = await asyncio.gather(*(by[k["putter"]].call("put", k["key"], k["value"]) for k in keys))
        bad = ["%s on %s: %s" % (k["key"], k["putter"], r) for k, (ok, r) in zip(keys, res)
               if not ok or not (isinstance(r, dict) and r.get("stored"))]
        with open(path, "w") as f:
            for k in keys:
                f.write(json.dumps(k) + "\n")
        if bad:
            report("puts", bad)
            return 1
        print("puts: %d stored in %.1f s" % (n, time.monotonic() - t0))
        return 0
    if mode == "gets":
        keys = [json.loads(l) for l in open(argv[2])]
        bad = await check_gets(conns, keys, random.Random(argv[3]))
        if bad:
            report("gets", bad)
            return 1
        print("gets: %d read back in %.1f s" % (len(keys), time.monotonic() - t0))
        return 0
    if mode == "replicas":
        keys = [json.loads(l) for l in open(argv[2])]
        deadline = t0 + float(argv[3])
        R = int(argv[4]) if len(argv) > 4 else 4
        ids = await node_ids(conns)
        while True:
            bad, extra = await check_replicas(conns, ids, keys, R)
            if not bad:
                print("replicas: each of %d keys on its %d closest nodes after %.1f s (%d copies "
                      "elsewhere)" % (len(keys), R + 1, time.monotonic() - t0, extra))
                return 0
            if time.monotonic() >= deadline:
                report("replicas", bad)
                return 1
            await asyncio.sleep(0.5)
    if mode == "heal":
        keys = [json.loads(l) for l in open(argv[2])]
        rnd = random.Random(argv[3])
        deadline = t0 + float(argv[4])
        L = int(argv[5]) if len(argv) > 5 else 8
        ids = await node_ids(conns)
        rounds = 0
        while True:
            rounds += 1
            bad_l = await check_leafsets(conns, ids, L)
            bad_g = await check_gets(conns, keys, rnd)
            if not bad_l and not bad_g:
                print("heal: leaf sets of %d survivors correct and %d keys readable after %.1f s "
                      "(%d rounds)" % (len(conns), len(keys), time.monotonic() - t0, rounds))
                return 0
            if time.monotonic() >= deadline:
                report("heal: leafsets", bad_l)
                report("heal: gets", bad_g)
                return 1
            await asyncio.sleep(0.3)
    print("ovl_ring.py: unknown mode %s" % mode, file=sys.stderr)
    return 64


sys.exit(asyncio.run(amain(sys.argv[1:])))

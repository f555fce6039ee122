# ovl_ctl.py: a small client of p2psipd's control socket for the overlay integration
# tests (tests/integration/overlay.sh).  The protocol is p2psipd/control.h's NDJSON:
# one request line {"id", "cmd", "args", "opts"} and one response line
# {"id", "ok", "result"|"error"} per request, answers possibly out of order.
#
#   ovl_ctl.py call SOCK CMD [ARG...] [--opt K=V]...
#       one request; prints the result as JSON (exit 0), or the error text on stderr
#       (exit 1); exit 2 when the socket does not answer within --timeout (5 s).
#   ovl_ctl.py field SOCK CMD KEY [ARG...]
#       the same, but prints only the value of KEY in the result, looked for breadth
#       first (so "role" is found at the top or under a sub-object, and a top-level
#       "dropped_malformed" wins over the DHT's nested one); booleans print as
#       true/false, objects and arrays as JSON; exit 3 when KEY is nowhere.
#   ovl_ctl.py wait SOCK TIMEOUT EXPR [CMD]
#       polls CMD (default status) every 0.2 s until the Python expression EXPR is
#       true, with r the result and f(KEY) the breadth-first lookup above (None when
#       absent); exit 0, or 1 after TIMEOUT seconds (the last result and the reason on
#       stderr).  Connection failures while waiting are retried.
#   ovl_ctl.py monitor SECONDS SOCK...
#       polls "status" on every SOCK every 0.5 s for SECONDS seconds and prints one
#       line per answer: "T SOCK isolated=true|false role=ROLE" (T: seconds since
#       start), or "T SOCK noanswer WHY"; for a witness running beside a test.
#   ovl_ctl.py batch [--conc N] [--timeout S]
#       reads JSON lines {"sock", "cmd", "args", "opts"} from stdin, runs them with at
#       most N (default 16) requests in flight per socket over one connection per
#       socket, and prints one JSON line per request, in input order:
#       {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
#
# Every wait is bounded; nothing here retries a request that was answered.
import asyncio, json, socket, sys, time


def bfs(obj, key):
    q = [obj]
    while q:
        nxt = []
        for o in q:
            if isinstance(o, dict):
                if key in o:
                    return True, o[key]
                nxt.extend(v for v in o.values() if isinstance(v, (dict, list)))
            elif isinstance(o, list):
                nxt.extend(v for v in o if isinstance(v, (dict, list)))
        q = nxt
    return False, None


def show(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def split_opts(words):
    args, opts = [], {}
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--opt" and i + 1 < len(words):
            k, _, v = words[i + 1].partition("=")
            opts[k] = v
            i += 2
            continue
        if w.startswith("--") and len(w) > 2 and i + 1 < len(words):
            opts[w[2:]] = words[i + 1]
            i += 2
            continue
        args.append(w)
        i += 1
    return args, opts


def call(sock, cmd, args, opts, timeout=5.0):
    """One request; returns (ok, result-or-error).  Raises OSError/TimeoutError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        req = {"id": 1, "cmd": cmd, "args": args, "opts": opts}
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = json.loads(line)
                if "event" in m and "id" not in m:
                    continue
                if m.get("id") == 1:
                    return bool(m.get("ok")), (m.get("result") if m.get("ok") else m.get("error"))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer")
            s.settimeout(left)
            chunk = s.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed without an answer")
            buf += chunk
    finally:
        s.close()


def main_call(argv, field=None):
    sock, cmd = argv[0], argv[1]
    words = argv[2:]
    timeout = 5.0
    if "--timeout" in words:
        i = words.index("--timeout")
        timeout = float(words[i + 1])
        del words[i:i + 2]
    args, opts = split_opts(words)
    try:
        ok, res = call(sock, cmd, args, opts, timeout)
    except (OSError, TimeoutError, ValueError) as e:
        print("ovl_ctl: %s: %s: %s" % (sock, cmd, e), file=sys.stderr)
        return 2
    if not ok:
        print("ovl_ctl: %s: %s: error: %s" % (sock, cmd, res), file=sys.stderr)
        return 1
    if field is None:
        print(json.dumps(res))
        return 0
    found, v = bfs(res, field)
    if not found:
        print("ovl_ctl: %s: %s: no field %s in %s" % (sock, cmd, field, json.dumps(res)[:2000]),
              file=sys.stderr)
        return 3
    print(show(v))
    return 0


def main_wait(argv):
    sock, timeout, expr = argv[0], float(argv[1]), argv[2]
    cmd = argv[3] if len(argv) > 3 else "status"
    code = compile(expr, "<expr>", "eval")
    deadline = time.monotonic() + timeout
    last, why = None, "no answer yet"
    while True:
        try:
            ok, res = call(sock, cmd, [], {}, 2.0)
            if ok:
                last = res
                env = {"r": res, "f": lambda k: bfs(res, k)[1]}
                if eval(code, env):
                    print(json.dumps(res))
                    return 0
                why = "condition false"
            else:
                why = "error: %s" % res
        except (OSError, TimeoutError, ValueError) as e:
            why = "socket: %s" % e
        if time.monotonic() >= deadline:
            print("ovl_ctl: wait %s: %s after %gs (%s); last %s: %s" %
                  (sock, expr, timeout, why, cmd, json.dumps(last)[:3000]), file=sys.stderr)
            return 1
        time.sleep(0.2)


def main_monitor(argv):
    secs, socks = float(argv[0]), argv[1:]
    start = time.monotonic()
    while time.monotonic() - start < secs:
        for sock in socks:
            t = time.monotonic() - start
            try:
                ok, res = call(sock, "status", [], {}, 2.0)
                if ok:
                    print("%.1f %s isolated=%s role=%s" % (t, sock, show(res.get("isolated")),
                                                           res.get("role")), flush=True)
                else:
                    print("%.1f %s noanswer %s" % (t, sock, res), flush=True)
            except (OSError, TimeoutError, ValueError) as e:
                print("%.1f %s noanswer %s" % (t, sock, e), flush=True)
        time.sleep(0.5)
    return 0


async def run_sock(sock, jobs, out, conc, timeout):
    try:
        r, w = await asyncio.wait_for(asyncio.open_unix_connection(sock, limit=1 << 24), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        for i, _ in jobs:
            out[i] = {"ok": False, "error": "connect: %s" % e}
        return
    waiting = {}
    sem = asyncio.Semaphore(conc)

    async def reader():
        while True:
            line = await r.readline()
            if not line:
                break
            m = json.loads(line)
            if "id" not in m:
                continue
            fut = waiting.pop(m["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(m)
        for fut in waiting.values():
            if not fut.done():
                fut.set_result({"ok": False, "error": "connection closed"})

    async def one(i, job):
        async with sem:
            fut = asyncio.get_running_loop().create_future()
            waiting[i] = fut
            w.write((json.dumps({"id": i, "cmd": job["cmd"], "args": job.get("args", []),
                                 "opts": job.get("opts", {})}) + "\n").encode())
            try:
                m = await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                waiting.pop(i, None)
                m = {"ok": False, "error": "timeout"}
            out[i] = {"ok": bool(m.get("ok")),
                      ("result" if m.get("ok") else "error"): m.get("result" if m.get("ok") else "error")}

    rd = asyncio.ensure_future(reader())
    tasks = [asyncio.ensure_future(one(i, job)) for i, job in jobs]
    await asyncio.gather(*tasks)
    rd.cancel()
    w.close()


async def batch_main(jobs, conc, timeout):
    by_sock = {}
    for i, job in enumerate(jobs):
        by_sock.setdefault(job["sock"], []).append((i, job))
    out = [None] * len(jobs)
    await asyncio.gather(*(run_sock(s, js, out, conc, timeout) for s, js in by_sock.items()))
    return out


def main_batch(argv):
    conc, timeout = 16, 20.0
    i = 0
    while i < len(argv):
        if argv[i] == "--conc":
            conc = int(argv[i + 1])
        elif argv[i] == "--timeout":
            timeout = float(argv[i + 1])
        i += 2
    jobs = [json.loads(l) for l in sys.stdin if l.strip()]
    out = asyncio.run(batch_main(jobs, conc, timeout))
    for o in out:
        print(json.dumps(o))
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__ or "usage: ovl_ctl.py call|field|wait|batch ...", file=sys.stderr)
        return 64
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "call":
        return main_call(argv)
    if mode == "field":
        # field SOCK CMD KEY [ARG...]
        return main_call([argv[0], argv[1]] + argv[3:], field=argv[2])
    if mode == "wait":
        return main_wait(argv)
    if mode == "monitor":
        return main_monitor(argv)
    if mode == "batch":
        return main_batch(argv)
    print("ovl_ctl.py: unknown mode %s" % mode, file=sys.stderr)
    return 64


sys.exit(main())

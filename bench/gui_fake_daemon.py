#!/usr/bin/env python3
"""gui_fake_daemon.py: a stand-in p2psipd control socket for bench/bench_gui.sh.

Usage: gui_fake_daemon.py SOCKET NODES RATE [SEED]

Listens on the Unix socket SOCKET and speaks docs/CONTROL.md's NDJSON: status,
leafset, routes, peers and records answer as a super-node of a ring of NODES random
IDs would (8 leaf-set entries, 32 routing-table entries, every other node a peer, 50
records); after "watch" the connection also gets RATE "msg" events per second
(sent or received, to or from a random node of the ring, of a random type), paced
by the clock, plus one "neighbour" event per second.  Counts what it sent on stderr
when a client leaves.  No real overlay: this measures the viewer alone.
"""
import json
import os
import random
import socket
import sys
import threading
import time

TYPES = ["LOOKUP", "PUT", "GET", "PING", "ACK", "JOIN", "LEAFSET", "REPLICA"]


def main():
    path, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    ids = ["%040x" % rnd.getrandbits(160) for _ in range(n)]
    me = ids[0]
    keys = ["%040x" % rnd.getrandbits(160) for _ in range(50)]

    def answer(cmd):
        if cmd == "status":
            return {"node_id": me, "role": "super-node", "advertised": "127.0.0.1:7560",
                    "p2p_port": 7560, "pid": os.getpid()}
        if cmd == "leafset":
            return {"self": me, "preds": [{"id": i, "addr": "127.0.0.1:1"} for i in ids[1:5]],
                    "succs": [{"id": i, "addr": "127.0.0.1:1"} for i in ids[5:9]]}
        if cmd == "routes":
            return [{"id": i, "addr": "127.0.0.1:1", "row": 0, "col": 0} for i in ids[9:41]]
        if cmd == "peers":
            return [{"id": i, "addr": "127.0.0.1:1", "up": True, "client": False, "super": False}
                    for i in ids[1:]]
        if cmd == "records":
            return [{"key": k, "tombstone": False} for k in keys]
        if cmd == "watch":
            return {"watching": True}
        return None

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)

    def serve(c):
        lock = threading.Lock()
        stop = threading.Event()

        def events():
            k, t0 = 0, time.time()
            try:
                while not stop.is_set():
                    k += 1
                    ev = {"event": "msg", "dir": rnd.choice(["sent", "recv"]), "type": rnd.choice(TYPES),
                          "peer": rnd.choice(ids[1:]), "size": 100}
                    lines = json.dumps(ev) + "\n"
                    if k % max(rate, 1) == 0:
                        lines += json.dumps({"event": "neighbour", "op": "add", "set": "route",
                                             "id": rnd.choice(ids[1:]), "addr": "127.0.0.1:1"}) + "\n"
                    with lock:
                        c.sendall(lines.encode())
                    dt = t0 + k / rate - time.time()
                    if dt > 0:
                        time.sleep(dt)
            except OSError:
                pass
            print("fake daemon: %d events sent" % k, file=sys.stderr)

        started = False
        try:
            for line in c.makefile("rb"):
                req = json.loads(line)
                r = {"id": req.get("id"), "ok": True, "result": answer(req.get("cmd"))}
                with lock:
                    c.sendall((json.dumps(r) + "\n").encode())
                if req.get("cmd") == "watch" and not started:
                    started = True
                    threading.Thread(target=events, daemon=True).start()
        except OSError:
            pass
        stop.set()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()

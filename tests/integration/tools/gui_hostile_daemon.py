#!/usr/bin/env python3
"""gui_hostile_daemon.py: a control socket that answers p2psip-gui with garbage
(test_gui_hostile.sh).

Usage: gui_hostile_daemon.py SOCKET COUNT_FILE

Speaks just enough of docs/CONTROL.md to be polled: every request gets an answer
with its id, but the answers are wrong or oversized: a status whose super-node ID
is a number and whose advertised address is 500 bytes, a leaf set with IDs of the
wrong type and succs not an array, 5000 routing-table entries (more nodes than the
viewer keeps), peers not an array, 3000 records without tombstone flags.  After
every answer it sends junk lines: not JSON, a JSON array, an answer to no request,
events with members of the wrong type, an unknown event, 100,000 nested brackets,
invalid UTF-8, blank lines.  On the first connection, a second after "watch", it
sends a line of 17 MiB with no newline (over the viewer's line cap: the viewer must
hang up and connect again).  Writes the number of connections accepted so far to
COUNT_FILE.
"""
import json
import os
import socket
import sys
import threading
import time

JUNK = [b"not json\n", b"[1,2,3]\n", b'{"id": 99999, "ok": true, "result": 1}\n',
        b'{"event": "msg", "dir": 5}\n',
        b'{"event": "msg", "dir": "sent", "type": "PING", "peer": "' + b"0" * 40 + b'", "size": 1}\n',
        b'{"event": "neighbour", "op": "add", "set": "leaf", "id": "zz"}\n',
        b'{"event": "record", "op": "stored", "key": null}\n',
        b'{"event": "brand-new", "x": {"y": []}}\n',
        b"[" * 100000 + b"\n", b'{"id": 1, "ok": true, "result": {"node_id": 5}}\n',
        b"\xff\xfe\n", b"\r\n", b"\n", b'{"id": null, "ok": false, "error": "request line too long"}\n']


def answer(cmd):
    if cmd == "status":
        return {"node_id": "ab" * 20, "role": "member", "advertised": "x" * 500, "super": {"id": 7}}
    if cmd == "leafset":
        return {"preds": [{"id": "cd" * 20}, 5, None, {"id": "CD" * 20}], "succs": "no"}
    if cmd == "routes":
        return [{"id": "%040x" % (i * 7919 + 1)} for i in range(5000)]
    if cmd == "peers":
        return {"not": "an array"}
    if cmd == "records":
        return [{"key": "%040x" % i} for i in range(3000)]
    return {"watching": True}


def main():
    path, count_file = sys.argv[1], sys.argv[2]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)
    conns = 0

    def serve(c, first):
        try:
            for line in c.makefile("rb"):
                req = json.loads(line)
                c.sendall(json.dumps({"id": req.get("id"), "ok": True,
                                      "result": answer(req.get("cmd"))}).encode() + b"\n")
                c.sendall(b"".join(JUNK))
                if req.get("cmd") == "watch" and first:
                    time.sleep(1)
                    c.sendall(b"x" * (17 << 20))
        except OSError:
            pass

    while True:
        c, _ = srv.accept()
        conns += 1
        with open(count_file + ".tmp", "w") as f:
            f.write("%d\n" % conns)
        os.replace(count_file + ".tmp", count_file)
        threading.Thread(target=serve, args=(c, conns == 1), daemon=True).start()


if __name__ == "__main__":
    main()

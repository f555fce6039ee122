#!/usr/bin/env python3
"""keepalive.py PORT DB: checks the registrar's OPTIONS keep-alive end to end.

Registers sip:live@p2p.test and sip:ghost@p2p.test over UDP, each from its own
socket (its Contact is that socket's address); then closes the ghost's socket and
answers every OPTIONS that reaches the live one with 200.  Polls the daemon's
sqlite database DB until the ghost's binding is gone (keepalive_remove) or 20 s
pass.  Prints "options N", "ghost_rows N", "live_rows N".
"""
import random
import re
import socket
import sqlite3
import sys
import time

port, db = int(sys.argv[1]), sys.argv[2]


def register(sock, user):
    lp = sock.getsockname()[1]
    branch = "z9hG4bK%016x" % random.getrandbits(64)
    msg = ("REGISTER sip:p2p.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@p2p.test>;tag=1\r\nTo: <sip:%s@p2p.test>\r\n"
           "Call-ID: %s@ka\r\nCSeq: 1 REGISTER\r\nContact: <sip:%s@127.0.0.1:%d>\r\n"
           "Expires: 600\r\nContent-Length: 0\r\n\r\n" % (lp, branch, user, user, branch, user, lp))
    sock.sendto(msg.encode(), ("127.0.0.1", port))
    while True:
        data = sock.recv(65535).decode(errors="replace")
        if data.startswith("SIP/2.0 2"):
            return
        if not data.startswith("SIP/2.0 1"):
            raise SystemExit("REGISTER %s: %s" % (user, data.split("\r\n")[0]))


def rows(user):
    con = sqlite3.connect(db, timeout=1)
    try:
        return con.execute("SELECT count(*) FROM binding WHERE aor = ?",
                           ("sip:%s@p2p.test" % user,)).fetchone()[0]
    finally:
        con.close()


live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
live.bind(("127.0.0.1", 0))
live.settimeout(2)
ghost = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ghost.bind(("127.0.0.1", 0))
ghost.settimeout(2)
register(live, "live")
register(ghost, "ghost")
ghost.close()

live.settimeout(0.2)
options = 0
deadline = time.time() + 20
while time.time() < deadline:
    try:
        data = live.recv(65535).decode(errors="replace")
    except socket.timeout:
        data = ""
    if data.startswith("OPTIONS "):
        options += 1
        head = data.split("\r\n\r\n")[0].split("\r\n")
        keep = [h for h in head[1:]
                if re.match(r"(?i)(via|from|to|call-id|cseq)\s*:", h)]
        resp = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
        m = re.search(r"(?im)^via:\s*SIP/2\.0/UDP\s+([^;:\s]+):(\d+)", data)
        dest = (m.group(1), int(m.group(2))) if m else ("127.0.0.1", port)
        live.sendto(resp.encode(), dest)
    if options > 0 and rows("ghost") == 0:
        break
print("options %d" % options)
print("ghost_rows %d" % rows("ghost"))
print("live_rows %d" % rows("live"))

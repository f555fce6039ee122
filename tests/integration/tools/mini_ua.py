#!/usr/bin/env python3
"""mini_ua.py: a minimal SIP phone for tests that need media checked end to end.

It binds 127.0.0.1 only (a loopback-only phone: its SDP offers 127.0.0.1, which no
other host can reach), registers an AoR with its node at 127.0.0.1:5062, and then
either waits for one call (callee) or places one (caller).  Once the call is up both
sides send RTP packets (a 12-byte RTP header and 160 bytes of payload, every 20 ms)
to the address the other side's SDP gave, and count what arrives.  The caller hangs
up with BYE after --seconds.  It prints one line "result sent=N received=M" and exits
0 when at least --min packets arrived, 1 otherwise, 2 on a SIP failure (with the
status line).  Every wait is bounded by --timeout.

Usage: mini_ua.py callee AOR [--port P] [--rtp R] [--timeout S]
       mini_ua.py caller AOR TARGET [--port P] [--rtp R] [--seconds S] [--min N]
"""
import argparse
import random
import re
import socket
import struct
import sys
import time

NODE = ("127.0.0.1", 5062)


def branch():
    return "z9hG4bK" + "%016x" % random.getrandbits(64)


class UA:
    def __init__(self, aor, port, rtp_port, timeout):
        self.aor, self.port, self.timeout = aor, port, timeout
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", port))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", rtp_port))
        self.rtp.setblocking(False)
        self.user = aor.split(":", 1)[1].split("@", 1)[0]
        self.tag = "%08x" % random.getrandbits(32)
        self.contact = "<sip:%s@127.0.0.1:%d>" % (self.user, port)
        self.cseq = 1

    def send(self, msg, to=NODE):
        self.sip.sendto(msg.encode(), to)

    def recv(self, deadline):
        while time.monotonic() < deadline:
            self.sip.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, src = self.sip.recvfrom(65535)
            except socket.timeout:
                break
            return data.decode(errors="replace"), src
        return None, None

    def sdp(self):
        return ("v=0\r\no=ua 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % self.rtp.getsockname()[1])

    def register(self):
        cid = "%x@mini" % random.getrandbits(48)
        for attempt in range(3):
            msg = ("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
                   "Max-Forwards: 70\r\nFrom: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
                   "CSeq: %d REGISTER\r\nContact: %s\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
                   % (self.aor.split("@", 1)[1], self.port, branch(), self.aor, self.tag,
                      self.aor, cid, self.cseq, self.contact))
            self.cseq += 1
            self.send(msg)
            deadline = time.monotonic() + 4
            while True:
                r, _ = self.recv(deadline)
                if r is None:
                    break
                if r.startswith("SIP/2.0 1"):
                    continue
                if r.startswith("SIP/2.0 200"):
                    return
                fail("REGISTER: " + r.split("\r\n", 1)[0])
        fail("REGISTER: no answer")


def fail(why):
    print("sip-failure " + why, flush=True)
    sys.exit(2)


def hdr(msg, name):
    m = re.search(r"^%s:\s*(.*)$" % re.escape(name), msg, re.M | re.I)
    return m.group(1).strip() if m else ""


def media_addr(msg):
    body = msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""
    c = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    m = re.search(r"^m=audio (\d+)", body, re.M)
    if not c or not m:
        fail("no SDP in " + msg.split("\r\n", 1)[0])
    return (c.group(1), int(m.group(1)))


def stream(ua, peer, seconds, sip_watch=None):
    """Sends RTP to peer every 20 ms for `seconds`, counting what arrives."""
    sent = received = 0
    seq = random.getrandbits(16)
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= nxt:
            pkt = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 0x1234) + b"\xff" * 160
            ua.rtp.sendto(pkt, peer)
            sent += 1
            seq += 1
            nxt += 0.02
        try:
            while True:
                ua.rtp.recvfrom(2048)
                received += 1
        except BlockingIOError:
            pass
        if sip_watch is not None and sip_watch():
            break
        time.sleep(0.005)
    return sent, received


def callee(args):
    ua = UA(args.aor, args.port, args.rtp, args.timeout)
    ua.register()
    print("registered", flush=True)
    deadline = time.monotonic() + args.timeout
    while True:
        r, src = ua.recv(deadline)
        if r is None:
            fail("no INVITE")
        if r.startswith("INVITE "):
            break
    peer = media_addr(r)
    vias = "".join("Via: %s\r\n" % v.strip() for v in re.findall(r"^Via:\s*(.*)$", r, re.M))
    rr = "".join("Record-Route: %s\r\n" % v.strip()
                 for v in re.findall(r"^Record-Route:\s*(.*)$", r, re.M))
    common = "%sFrom: %s\r\nTo: %s;tag=%s\r\nCall-ID: %s\r\nCSeq: %s\r\n%sContact: %s\r\n" % (
        vias, hdr(r, "From"), hdr(r, "To"), ua.tag, hdr(r, "Call-ID"), hdr(r, "CSeq"), rr,
        ua.contact)
    body = ua.sdp()
    ok = ("SIP/2.0 200 OK\r\n%sContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
          % (common, len(body), body))
    ua.send(ok, src)
    state = {"bye": False}

    def watch():
        ua.sip.setblocking(False)
        try:
            data, s = ua.sip.recvfrom(65535)
        except BlockingIOError:
            return False
        finally:
            ua.sip.setblocking(True)
        m = data.decode(errors="replace")
        if m.startswith("BYE "):
            vias2 = "".join("Via: %s\r\n" % v.strip() for v in re.findall(r"^Via:\s*(.*)$", m, re.M))
            ua.send("SIP/2.0 200 OK\r\n%sFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n"
                    "Content-Length: 0\r\n\r\n" % (vias2, hdr(m, "From"), hdr(m, "To"),
                                                  hdr(m, "Call-ID"), hdr(m, "CSeq")), s)
            state["bye"] = True
            return True
        if m.startswith("INVITE "):
            ua.send(ok, s)  # our 200 was lost: again
        return False

    sent, received = stream(ua, peer, args.timeout, watch)
    print("result sent=%d received=%d bye=%s" % (sent, received, state["bye"]), flush=True)
    sys.exit(0 if received >= args.min and state["bye"] else 1)


def caller(args):
    ua = UA(args.aor, args.port, args.rtp, args.timeout)
    ua.register()
    print("registered", flush=True)
    cid = "%x@mini" % random.getrandbits(48)
    body = ua.sdp()
    br = branch()
    invite = ("INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
              "Max-Forwards: 70\r\nFrom: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
              "CSeq: 1 INVITE\r\nContact: %s\r\nContent-Type: application/sdp\r\n"
              "Content-Length: %d\r\n\r\n%s" % (args.target, args.port, br, args.aor, ua.tag,
                                                 args.target, cid, ua.contact, len(body), body))
    ua.send(invite)
    deadline = time.monotonic() + args.timeout
    nxt = time.monotonic() + 0.5
    while True:
        r, _ = ua.recv(min(deadline, nxt))
        if r is None:
            if time.monotonic() >= deadline:
                fail("no answer to INVITE")
            ua.send(invite)  # Timer A, roughly
            nxt = time.monotonic() + 1.0
            continue
        if r.startswith("SIP/2.0 1"):
            nxt = deadline
            continue
        if r.startswith("SIP/2.0 200"):
            break
        fail("INVITE: " + r.split("\r\n", 1)[0])
    peer = media_addr(r)
    to = hdr(r, "To")
    routes = [v.strip() for v in re.findall(r"^Record-Route:\s*(.*)$", r, re.M)]
    route_vals = []
    for line in routes:
        route_vals += [v.strip() for v in line.split(",")]
    route_vals.reverse()
    route = "Route: %s\r\n" % ", ".join(route_vals) if route_vals else ""
    remote = re.search(r"<([^>]+)>", hdr(r, "Contact")).group(1)
    ua.send("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
            "Max-Forwards: 70\r\n%sFrom: <%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\n"
            "Content-Length: 0\r\n\r\n" % (remote, args.port, branch(), route, args.aor, ua.tag,
                                           to, cid))
    sent, received = stream(ua, peer, args.seconds)
    bye = ("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\nMax-Forwards: 70\r\n"
           "%sFrom: <%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
           % (remote, args.port, branch(), route, args.aor, ua.tag, to, cid))
    ok = False
    for attempt in range(4):
        ua.send(bye)
        r, _ = ua.recv(time.monotonic() + 1.0)
        while r is not None and not r.startswith("SIP/2.0 200"):
            r, _ = ua.recv(time.monotonic() + 1.0)
        if r is not None:
            ok = True
            break
    print("result sent=%d received=%d bye_ok=%s" % (sent, received, ok), flush=True)
    sys.exit(0 if received >= args.min and ok else 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["callee", "caller"])
    p.add_argument("aor")
    p.add_argument("target", nargs="?")
    p.add_argument("--port", type=int, default=5090)
    p.add_argument("--rtp", type=int, default=40000)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--min", type=int, default=50)
    args = p.parse_args()
    callee(args) if args.role == "callee" else caller(args)


if __name__ == "__main__":
    main()

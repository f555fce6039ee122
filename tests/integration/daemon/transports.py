#!/usr/bin/env python3
"""transports.py PORT: REGISTERs over IPv6 UDP ([::1]) and IPv4 TCP, and two bad
messages over UDP, against a registrar on PORT; prints one line per case:

  v6udp <status>      a REGISTER from [::1]
  tcp <status>        a REGISTER on a TCP connection (answered on it, RFC 3261 18.2.2)
  badcseq <status+reason>  a REGISTER with "CSeq: x REGISTER" (RFC 3261 8.2: 400)
  garbage none|<status>    bytes that are no SIP message: expect no answer
  foreign <status>    a REGISTER for sip:other.example (not in sip.domain)

Every receive has a 2 s timeout (a missing answer prints "none").
"""
import socket
import sys

port = int(sys.argv[1])


def register(via, user, contact, domain="p2p.test"):
    return ("REGISTER sip:%s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\n"
            "From: <sip:%s@%s>;tag=1\r\nTo: <sip:%s@%s>\r\nCall-ID: %s@t\r\n"
            "CSeq: 1 REGISTER\r\nContact: <%s>\r\nContent-Length: 0\r\n\r\n"
            % (domain, via, user, domain, user, domain, user, contact)).encode()


def first_line(sock):
    try:
        while True:
            line = sock.recv(65535).decode(errors="replace").split("\r\n")[0]
            if not line.startswith("SIP/2.0 1"):
                return line
    except socket.timeout:
        return "none"


s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.bind(("::1", 0))
s6.settimeout(2)
lp = s6.getsockname()[1]
s6.sendto(register("SIP/2.0/UDP [::1]:%d;branch=z9hG4bKv6udp;rport" % lp, "v6",
                   "sip:v6@[::1]:5999"), ("::1", port))
print("v6udp", first_line(s6)[8:11])

t = socket.create_connection(("127.0.0.1", port), timeout=2)
lp = t.getsockname()[1]
t.sendall(register("SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKtcp" % lp, "tcp",
                   "sip:tcp@127.0.0.1:5999;transport=tcp"))
print("tcp", first_line(t)[8:11])
t.close()

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.settimeout(2)
lp = u.getsockname()[1]
bad = register("SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKbad;rport" % lp, "bad",
               "sip:bad@127.0.0.1:5999").replace(b"CSeq: 1 REGISTER", b"CSeq: x REGISTER")
u.sendto(bad, ("127.0.0.1", port))
print("badcseq", first_line(u)[8:])
u.sendto(b"garbage\r\n\r\n", ("127.0.0.1", port))
line = first_line(u)
print("garbage", "none" if line == "none" else line[8:11])
u.sendto(register("SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKforeign;rport" % lp, "f",
                  "sip:f@127.0.0.1:5999", "other.example"), ("127.0.0.1", port))
print("foreign", first_line(u)[8:11])

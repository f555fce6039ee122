#!/usr/bin/env python3
"""foreign.py: a request for a foreign domain, forwarded by p2psipd (RFC 3263).

Usage: foreign.py PROXY_PORT SINK_PORT

A UA socket sends MESSAGE sip:bob@localhost:SINK_PORT to the proxy; a sink socket
on 127.0.0.1:SINK_PORT must receive it (the proxy resolved "localhost" through its
RFC 3263 resolver: a name with a port is an A/AAAA lookup, /etc/hosts here) with the
proxy's Via on top, and answers 200, which must reach the UA.  Then a sips URI must
be answered with a failure (no TLS: the resolver refuses it) and reach no sink,
and so must a numeric sips target (no DNS involved), which must not leave as TCP.
Prints one line per check; exits 1 on the first failure.
"""
import socket
import sys


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def request(uri, branch, ua_port):
    return (f"MESSAGE {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:alice@p2p.test>;tag=a1\r\n"
            f"To: <{uri}>\r\n"
            f"Call-ID: {branch}@foreign.test\r\n"
            "CSeq: 1 MESSAGE\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def answer_200(req):
    head = req.decode(errors="replace").split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":", 1)[0].strip().lower()
            in ("via", "from", "call-id", "cseq")]
    to = [h for h in head[1:] if h.lower().startswith("to:")][0] + ";tag=b1"
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep + [to]) +
            "\r\nContent-Length: 0\r\n\r\n").encode()


def final(sock):
    for _ in range(5):
        data, _ = sock.recvfrom(65535)
        line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        if not line.startswith("SIP/2.0 1"):
            return line
    fail("no final response")


def main():
    proxy = ("127.0.0.1", int(sys.argv[1]))
    sink_port = int(sys.argv[2])
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", sink_port))
    sink.settimeout(5)
    ua = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ua.bind(("127.0.0.1", 0))
    ua.settimeout(5)
    ua_port = ua.getsockname()[1]

    uri = f"sip:bob@localhost:{sink_port}"
    ua.sendto(request(uri, "f1", ua_port), proxy)
    try:
        data, src = sink.recvfrom(65535)
    except socket.timeout:
        fail("the foreign request was not forwarded to the sink")
    lines = data.decode(errors="replace").split("\r\n")
    if lines[0] != f"MESSAGE {uri} SIP/2.0":
        fail(f"forwarded request line: {lines[0]!r}")
    vias = [l for l in lines if l.lower().startswith("via:")]
    if len(vias) != 2 or f"127.0.0.1:{proxy[1]}" not in vias[0]:
        fail(f"forwarded Vias: {vias!r}")
    print(f"forwarded: {lines[0]} from {src[0]}:{src[1]}, top {vias[0]}")
    sink.sendto(answer_200(data), src)
    try:
        line = final(ua)
    except socket.timeout:
        fail("no answer to the forwarded request")
    if line != "SIP/2.0 200 OK":
        fail(f"the UA got {line!r}, want 200")
    print("answered:", line)

    ua.sendto(request("sips:bob@far.example", "f2", ua_port), proxy)
    try:
        line = final(ua)
    except socket.timeout:
        fail("no answer to the sips request")
    if not line.startswith("SIP/2.0 5"):
        fail(f"sips request answered {line!r}, want 5xx")
    sink.settimeout(0.2)
    try:
        sink.recvfrom(65535)
        fail("the sips request reached the sink")
    except socket.timeout:
        pass
    print("sips refused:", line)

    # A numeric sips target needs no DNS; it must not leave as plain TCP either.
    tcp_sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp_sink.bind(("127.0.0.1", sink_port))
    tcp_sink.listen(4)
    tcp_sink.settimeout(0.5)
    ua.sendto(request(f"sips:bob@127.0.0.1:{sink_port}", "f3", ua_port), proxy)
    try:
        line = final(ua)
    except socket.timeout:
        fail("no answer to the numeric sips request")
    if not line.startswith("SIP/2.0 5"):
        fail(f"numeric sips request answered {line!r}, want 5xx")
    try:
        conn, _ = tcp_sink.accept()
        conn.close()
        fail("the numeric sips request left as plain TCP")
    except socket.timeout:
        pass
    print("numeric sips refused:", line)


if __name__ == "__main__":
    main()

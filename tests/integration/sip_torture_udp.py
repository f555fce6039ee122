#!/usr/bin/env python3
"""sip_torture_udp.py: sends the RFC 4475 / RFC 5118 torture messages to a running
SIP server over UDP and checks what the server sends back, and that it sends nothing
else.  Used by test_torture_udp.sh inside a private network namespace (needs root
there: it sniffs the loopback interface with an AF_PACKET socket).

Expected verdicts are not kept here: they are read from the table of
tests/unit/test_sip_torture.c (one row per file: file, RFC section, verdict), the
same table the parser's unit test uses, and mapped to what a registrar + proxy must
put on the wire:

  V_400 400, V_505 505, V_416 416, V_420 420, V_401 401, V_483 483, V_400_AOR 400,
  V_HOP_500 500 (a Route naming a host that cannot resolve here)
  V_DROP, V_RESP_DROP   nothing at all (an invalid or unroutable response is dropped)
  V_VALID, V_TSX, V_415, V_406
                        a request gets a final response that is neither 400 nor 5xx
                        (the message is valid: whatever the server decides about the
                        target, it must not reject it as malformed or fail on it); an
                        ACK or a response gets nothing

and for every message: the server never sends a request (it forwards none of them:
every target is unregistered or foreign) except a valid request with a Route set
that does not start with the server (RFC 3261 16.4: mpart01), which must go to that
Route and nowhere else; the server answers only the first message of a
datagram (RFC 4475 3.1.1.8: trailing octets are ignored), and after each message
still answers an OPTIONS of ours (a barrier: the server handles datagrams in order,
so once the barrier is answered every earlier message has been handled).

Every packet the server sends (UDP from its port) is seen on the wire, wherever it
goes: responses go where the torture message's Via says (RFC 3261 18.2.2), mostly to
hosts that do not exist; the namespace routes everything to loopback so that they
are captured.  A packet is attributed to the message whose Call-ID, CSeq and top Via
branch it carries (the latest one sent before the packet was seen, when several
match: RFC 5118's messages share their Call-ID).

Two torture messages may belong to the same server transaction (same branch, sent-by
and method): the second is then a retransmission for the server (RFC 3261 17.2.3).
--groups splits the files so that no group holds two such messages; the test runs
each group against a freshly started server.

Exit status 0 when every message got its verdict, 1 otherwise; one line per message.
"""

import argparse
import os
import re
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

# V_400_AOR: a registrar answers 400 when To is not a SIP/SIPS AoR (RFC 4475 3.3.4).
# V_HOP_500: the next hop (first Route) is a name; the test's namespace resolves no
# name, so the branch fails (RFC 3261 16.9) and the lone 503 goes upstream as 500
# (16.7 step 6).
EXPECT_CODE = {"V_400": 400, "V_505": 505, "V_416": 416, "V_420": 420, "V_401": 401,
               "V_483": 483, "V_400_AOR": 400, "V_HOP_500": 500}
EXPECT_NOTHING = {"V_DROP", "V_RESP_DROP"}
EXPECT_VALID = {"V_VALID", "V_TSX", "V_415", "V_406"}

ROW_RE = re.compile(r'\{\s*"(rfc\d+/[^"]+\.dat)"\s*,\s*"([^"]*)"\s*,\s*(V_[A-Z0-9_]+)')


def read_table(path):
    """Rows (file, section, verdict) of the torture table in test_sip_torture.c."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rows = ROW_RE.findall(text)
    if not rows:
        sys.exit(f"no torture rows found in {path}")
    for _, _, verdict in rows:
        if verdict not in EXPECT_CODE and verdict not in EXPECT_NOTHING \
                and verdict not in EXPECT_VALID:
            sys.exit(f"verdict {verdict} in {path} has no wire meaning here: update "
                     "sip_torture_udp.py")
    return rows


def header(msg, names):
    """First value of a header (any of names, compact forms included), or None."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        m = re.match(rb"^([A-Za-z0-9!%*_+`'~.-]+)[ \t]*:(.*)$", line)
        if m and m.group(1).lower() in names:
            return m.group(2).strip()
    return None


def signature(msg):
    """(Call-ID, CSeq number, top Via branch) of a message, as bytes (None parts ok)."""
    callid = header(msg, (b"call-id", b"i"))
    cseq = header(msg, (b"cseq",))
    cseqn = cseq.split()[0] if cseq else None
    via = header(msg, (b"via", b"v"))
    branch = None
    if via:
        m = re.search(rb";[ \t]*branch[ \t]*=[ \t]*([^;, \t]+)", via, re.I)
        branch = m.group(1) if m else None
    return callid, cseqn, branch


def route_target(msg):
    """(host, port) of the first Route URI of a request, or None."""
    route = header(msg, (b"route",))
    if not route:
        return None
    m = re.search(rb"<sips?:(?:[^@>]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?", route)
    if not m:
        return None
    return m.group(1).decode("latin-1").strip("[]"), int(m.group(2) or 5060)


def transaction_key(msg):
    """The server transaction a request belongs to (RFC 3261 17.2.3): branch, sent-by
    and method (ACK as INVITE) when the branch has the magic cookie; otherwise the
    RFC 2543 fields (Call-ID, CSeq, From, top Via).  None for a response."""
    if msg.startswith(b"SIP/"):
        return None
    method = msg.split(b" ", 1)[0]
    if method == b"ACK":
        method = b"INVITE"
    via = header(msg, (b"via", b"v")) or b""
    callid, cseqn, branch = signature(msg)
    if branch and branch.startswith(b"z9hG4bK") and len(branch) > 7:
        sent_by = re.sub(rb"^\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+", b"", via).split(b";")[0]
        return (b"3261", branch, sent_by.strip().lower(), method)
    return (b"2543", callid, cseqn, header(msg, (b"from", b"f")), via.split(b",")[0])


def first_message(data):
    """The bytes of the first SIP message of a datagram (headers + Content-Length body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data
    cl = header(data, (b"content-length", b"l"))
    try:
        n = int(cl) if cl is not None else 0
    except ValueError:
        n = 0
    return data[:end + 4 + max(n, 0)]


def parse_frame(frame):
    """(src ip, src port, dst ip, dst port, proto, payload) of an IPv4/IPv6 frame on lo."""
    if len(frame) < 14:
        return None
    etype = struct.unpack("!H", frame[12:14])[0]
    p = frame[14:]
    if etype == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 0x0F) * 4
        proto = p[9]
        src, dst = socket.inet_ntop(socket.AF_INET, p[12:16]), \
            socket.inet_ntop(socket.AF_INET, p[16:20])
        l4 = p[ihl:]
    elif etype == 0x86DD and len(p) >= 40:
        proto = p[6]
        src, dst = socket.inet_ntop(socket.AF_INET6, p[8:24]), \
            socket.inet_ntop(socket.AF_INET6, p[24:40])
        l4 = p[40:]
    else:
        return None
    if proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack("!HH", l4[:4])
        return src, sport, dst, dport, "udp", l4[8:]
    if proto == 6 and len(l4) >= 20:
        sport, dport = struct.unpack("!HH", l4[:4])
        off = (l4[12] >> 4) * 4
        flags = l4[13]
        return src, sport, dst, dport, "tcp" + ("-syn" if flags & 0x02 else ""), l4[off:]
    return None


class Sniffer:
    """Outgoing packets on lo, kept in order of capture."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.packets = []

    def drain(self, timeout):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            r, _, _ = select.select([self.sock], [], [], max(left, 0))
            if not r:
                return
            frame, addr = self.sock.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                continue
            pkt = parse_frame(frame)
            if pkt:
                self.packets.append(pkt)


def barrier_options(n, sip_port, domain):
    callid = f"barrier-{n}-{os.getpid()}"
    return callid, (
        f"OPTIONS sip:{domain} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{sip_port};rport;branch=z9hG4bK-barrier-{n}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:torture@{domain}>;tag=barrier{n}\r\n"
        f"To: <sip:{domain}>\r\n"
        f"Call-ID: {callid}\r\n"
        f"CSeq: {n + 1} OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1:5062")
    ap.add_argument("--data", required=True, help="tests/data/sip-torture")
    ap.add_argument("--table", required=True, help="tests/unit/test_sip_torture.c")
    ap.add_argument("--domain", default="p2p.test")
    ap.add_argument("--barrier-timeout", type=float, default=10.0)
    ap.add_argument("--only", action="append", help="run only these files (repeat)")
    ap.add_argument("--groups", action="store_true",
                    help="print the files in groups, one group a line, such that no two "
                         "messages of a group belong to the same server transaction; "
                         "then exit")
    args = ap.parse_args()

    host, port = args.server.rsplit(":", 1)
    port = int(port)
    rows = read_table(args.table)
    if args.groups:
        # A request whose transaction key was seen before is, for the server, a
        # retransmission (RFC 3261 17.2.3), answered with the earlier response while
        # that transaction lives (Timer J: 32 s): such a message needs a fresh server.
        group, keys = [], set()
        for rel, _, _ in rows:
            with open(os.path.join(args.data, rel), "rb") as f:
                key = transaction_key(first_message(f.read()))
            if key is not None and key in keys:
                print(" ".join(group))
                group, keys = [], set()
            group.append(rel)
            if key is not None:
                keys.add(key)
        print(" ".join(group))
        return 0
    if args.only:
        rows = [r for r in rows if r[0] in args.only]

    sniff = Sniffer()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    bar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bar.bind(("127.0.0.1", 0))
    bar_port = bar.getsockname()[1]

    sent = []  # (index, signature, verdict, file, section, is_request, method)
    failures = 0
    for i, (rel, section, verdict) in enumerate(rows):
        with open(os.path.join(args.data, rel), "rb") as f:
            data = f.read()
        first = first_message(data)
        is_request = not first.startswith(b"SIP/")
        method = first.split(b" ", 1)[0] if is_request else None
        route = route_target(first) if is_request else None
        if route and route == (host, port):
            route = None
        sent.append((i, signature(first), verdict, rel, section, is_request, method,
                     len(sniff.packets), route))
        tx.sendto(data, (host, port))
        # Barrier: our OPTIONS, answered once everything before it was handled.
        callid, opt = barrier_options(i, bar_port, args.domain)
        bar.sendto(opt, (host, port))
        deadline = time.monotonic() + args.barrier_timeout
        answered = False
        while time.monotonic() < deadline and not answered:
            r, _, _ = select.select([bar], [], [], deadline - time.monotonic())
            if r:
                resp, _ = bar.recvfrom(65535)
                answered = resp.startswith(b"SIP/2.0 ") and callid.encode() in resp \
                    and int(resp[8:11]) >= 200
        sniff.drain(0.05)
        if not answered:
            print(f"FAIL {rel} ({section}): the server did not answer an OPTIONS after it "
                  f"(dead or stuck)")
            return 1

    # Late retransmissions of final responses are still attributed, not counted twice.
    sniff.drain(0.2)

    results = {i: {"codes": [], "requests": []} for i in range(len(rows))}
    stray = []
    for k, (src, sport, dst, dport, proto, payload) in enumerate(sniff.packets):
        if not (proto.startswith("udp") and sport == port and src == host):
            if proto == "tcp-syn" and dport not in (port,):
                stray.append(f"TCP connection attempt {src}:{sport} -> {dst}:{dport}")
            continue
        if b"barrier-" in payload and re.search(rb"branch=z9hG4bK-barrier-", payload):
            continue
        sig = signature(payload)
        match = None
        is_resp = payload.startswith(b"SIP/2.0 ")
        for s in reversed(sent):
            if s[7] > k:
                continue  # sent after this packet was captured
            # A forwarded request carries our Via on top: Call-ID and CSeq identify it.
            if s[1] == sig or (s[1][0] == sig[0] and s[1][1] == sig[1]
                               and (sig[2] is None or not is_resp)):
                match = s
                break
        line = payload.split(b"\r\n", 1)[0].decode("latin-1")
        if match is None:
            stray.append(f"unattributed packet {dst}:{dport}: {line[:80]}")
            continue
        if payload.startswith(b"SIP/2.0 "):
            try:
                results[match[0]]["codes"].append(int(payload[8:11]))
            except ValueError:
                stray.append(f"bad status line to {dst}:{dport}: {line[:80]}")
        else:
            results[match[0]]["requests"].append((f"{line[:60]} -> {dst}:{dport}",
                                                  (dst, dport)))

    for (i, _sig, verdict, rel, section, is_request, method, _n, route) in sent:
        codes = sorted(set(results[i]["codes"]))
        finals = [c for c in codes if c >= 200]
        reqs = results[i]["requests"]
        ok, why = True, ""
        if route and verdict in EXPECT_VALID:
            # RFC 3261 16.4, 16.6 steps 6-7: a valid request whose first Route is not
            # us goes to that Route, and nowhere else; its final answer may come
            # later than the barrier (Timer F).
            wrong = [r[0] for r in reqs if r[1] != route]
            if wrong or not reqs:
                ok, why = False, f"want forwarded to its Route {route[0]}:{route[1]} only, " \
                    f"got {'; '.join(r[0] for r in reqs[:3]) or 'nothing'}"
            elif [c for c in finals if c == 400 or c >= 500 and c != 503 and c != 504]:
                ok, why = False, f"forwarded, but answered {finals}"
        elif reqs:
            ok, why = False, "forwarded: " + "; ".join(r[0] for r in reqs[:3])
        elif verdict in EXPECT_CODE:
            want = EXPECT_CODE[verdict]
            if finals != [want]:
                ok, why = False, f"want {want}, got {finals or 'nothing'}"
        elif verdict in EXPECT_NOTHING or not is_request or method == b"ACK":
            if codes:
                ok, why = False, f"want no answer, got {codes}"
        elif verdict in EXPECT_VALID:
            if len(finals) != 1 or finals[0] == 400 or finals[0] >= 500:
                ok, why = False, f"valid request: want one final answer, not 400/5xx, got " \
                    f"{finals or 'nothing'}"
        print(f"{'ok  ' if ok else 'FAIL'} {rel:45} {section:18} {verdict:12} "
              f"{codes if codes else '-'} {why}")
        failures += not ok
    for s in stray:
        print(f"FAIL stray: {s}")
    failures += len(stray)
    print(f"{len(rows) - failures if failures <= len(rows) else 0}/{len(rows)} messages "
          f"handled as their RFC says; {len(stray)} stray packets")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""register.py: sends REGISTERs to a SIP registrar over UDP and prints the answers.

Usage:
  register.py PORT USER [CONTACT [EXPIRES]]   one REGISTER; prints the final
      response's status code, then one line per Contact of the answer (RFC 3261
      10.3 step 8: a 200 lists every current binding), as "CONTACT expires=N".
      Without CONTACT it is a query (no Contact header).
  register.py --burst N PORT   N REGISTERs for N users (burstNNNN), all sent before
      any answer is read; prints how many got 200.

Unanswered requests are sent again every 0.5 s, as a UA does over UDP, at most 10
times (then it fails).  The domain is p2p.test; the source port is ephemeral on
127.0.0.1.
"""
import random
import re
import socket
import sys

DOMAIN = "p2p.test"


def request(lport, user, contact, expires, cseq=1):
    branch = "z9hG4bK%016x" % random.getrandbits(64)
    lines = [
        "REGISTER sip:%s SIP/2.0" % DOMAIN,
        "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (lport, branch),
        "Max-Forwards: 70",
        "From: <sip:%s@%s>;tag=%x" % (user, DOMAIN, random.getrandbits(32)),
        "To: <sip:%s@%s>" % (user, DOMAIN),
        "Call-ID: %s@127.0.0.1" % branch,
        "CSeq: %d REGISTER" % cseq,
    ]
    if contact:
        lines += ["Contact: <%s>" % contact, "Expires: %s" % expires]
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode(), branch


def final_responses(sock, pending, port):
    """Reads until every request in `pending` ({branch: bytes}) has a final
    response; like a UA over UDP (RFC 3261 17.1.2.2, Timer E) it sends the
    unanswered ones again every 0.5 s, at most 10 times.  Returns {branch: text}."""
    out = {}
    sock.settimeout(0.5)
    tries = 0
    while len(out) < len(pending):
        try:
            data = sock.recv(65535).decode(errors="replace")
        except socket.timeout:
            tries += 1
            if tries > 10:
                raise
            for branch, msg in pending.items():
                if branch not in out:
                    sock.sendto(msg, ("127.0.0.1", port))
            continue
        m = re.match(r"SIP/2\.0 (\d{3})", data)
        if not m or m.group(1).startswith("1"):
            continue
        b = re.search(r"branch=([^;\r\n]+)", data)
        if b and b.group(1) in pending:
            out[b.group(1)] = data
    return out


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    lport = sock.getsockname()[1]
    if sys.argv[1] == "--burst":
        n, port = int(sys.argv[2]), int(sys.argv[3])
        pending = {}
        for i in range(n):
            msg, branch = request(lport, "burst%04d" % i, "sip:burst%04d@127.0.0.1:5998" % i, 600)
            pending[branch] = msg
            sock.sendto(msg, ("127.0.0.1", port))
        answers = final_responses(sock, pending, port)
        print(sum(1 for a in answers.values() if a.startswith("SIP/2.0 200")))
        return
    port, user = int(sys.argv[1]), sys.argv[2]
    contact = sys.argv[3] if len(sys.argv) > 3 else None
    expires = sys.argv[4] if len(sys.argv) > 4 else "600"
    msg, branch = request(lport, user, contact, expires)
    sock.sendto(msg, ("127.0.0.1", port))
    answer = final_responses(sock, {branch: msg}, port)[branch]
    print(answer[8:11])
    for line in answer.split("\r\n"):
        m = re.match(r"(?i)(?:contact|m)\s*:\s*<([^>]*)>.*;expires=(\d+)", line)
        if m:
            print("%s expires=%s" % (m.group(1), m.group(2)))


if __name__ == "__main__":
    main()

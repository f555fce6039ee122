# sip_register.py: one REGISTER over UDP and its final status code, for the overlay
# integration tests (a phone on a node's own host).
#
#   sip_register.py HOST PORT USER [DOMAIN] [EXPIRES]
#
# Sends a REGISTER for sip:USER@DOMAIN (default p2p.test) with a Contact on this
# socket, retransmits it with RFC 3261 timer E (500 ms doubling, 4 s cap) for at most
# 8 s, ignores provisional answers, and prints the final response's status line
# ("200 OK", "503 Cut off from the overlay"); exit 0 when a final response came,
# 1 when none did within 8 s.
import os, random, select, socket, sys, time


def main():
    host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    domain = sys.argv[4] if len(sys.argv) > 4 else "p2p.test"
    expires = int(sys.argv[5]) if len(sys.argv) > 5 else 300
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    branch = "z9hG4bK" + os.urandom(8).hex()
    tag = os.urandom(4).hex()
    callid = os.urandom(8).hex() + "@127.0.0.1"
    msg = ("REGISTER sip:%s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:%s@%s>;tag=%s\r\n"
           "To: <sip:%s@%s>\r\n"
           "Call-ID: %s\r\n"
           "CSeq: %d REGISTER\r\n"
           "Contact: <sip:%s@127.0.0.1:%d>\r\n"
           "Expires: %d\r\n"
           "Content-Length: 0\r\n\r\n") % (domain, lport, branch, user, domain, tag, user, domain,
                                           callid, random.randint(1, 100000), user, lport, expires)
    start = time.monotonic()
    deadline = start + 8.0
    interval = 0.5
    next_send = start
    while True:
        now = time.monotonic()
        if now >= deadline:
            print("no final response", flush=True)
            return 1
        if now >= next_send:
            s.sendto(msg.encode(), (host, port))
            next_send = now + interval
            interval = min(interval * 2, 4.0)
        r, _, _ = select.select([s], [], [], max(0.0, min(next_send, deadline) - now))
        if not r:
            continue
        data, _ = s.recvfrom(65535)
        line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0] != "SIP/2.0" or branch.encode() not in data:
            continue
        code = int(parts[1])
        if code >= 200:
            print(" ".join(parts[1:]), flush=True)
            return 0


sys.exit(main())

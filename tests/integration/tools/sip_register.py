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
import os, random, sys

from sip_udp import bound_socket, final_status


def main():
    host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    domain = sys.argv[4] if len(sys.argv) > 4 else "p2p.test"
    expires = int(sys.argv[5]) if len(sys.argv) > 5 else 300
    s, lport = bound_socket()
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
    got = final_status(s, host, port, msg.encode(), branch)
    if got is None:
        print("no final response", flush=True)
        return 1
    print(got, flush=True)
    return 0

sys.exit(main())

# sip_message.py: one MESSAGE over UDP and its final status code, for the overlay
# integration tests (a phone on a node's own host).
#
#   sip_message.py HOST PORT FROM_AOR TO_AOR BODY [METHOD]
#
# Sends MESSAGE (or METHOD, e.g. OPTIONS) TO_AOR (Request-URI and To) from FROM_AOR with a text/plain BODY,
# retransmits it with RFC 3261 timer E (500 ms doubling, 4 s cap) for at most 8 s,
# ignores provisional answers, and prints the final response's status line
# ("202 Accepted - kept for the user"); exit 0 when a final response came, 1 when
# none did within 8 s.
import os, sys

from sip_udp import bound_socket, final_status


def main():
    host, port, frm, to, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    method = sys.argv[6] if len(sys.argv) > 6 else "MESSAGE"
    s, lport = bound_socket()
    branch = "z9hG4bK" + os.urandom(8).hex()
    b = body.encode()
    msg = ("%s %s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
           "Max-Forwards: 70\r\n"
           "From: <%s>;tag=%s\r\n"
           "To: <%s>\r\n"
           "Call-ID: %s@127.0.0.1\r\n"
           "CSeq: 1 %s\r\n"
           "Content-Type: text/plain\r\n"
           "Content-Length: %d\r\n\r\n") % (method, to, lport, branch, frm, os.urandom(4).hex(), to,
                                           os.urandom(8).hex(), method, len(b))
    data_out = msg.encode() + b
    got = final_status(s, host, port, data_out, branch)
    if got is None:
        print("no final response", flush=True)
        return 1
    print(got, flush=True)
    return 0

sys.exit(main())

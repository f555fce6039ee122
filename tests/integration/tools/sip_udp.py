# sip_udp.py: one SIP request over UDP from 127.0.0.1 and its final response, for the
# test tools (sip_register.py, sip_message.py).  RFC 3261 timer E: sent again after
# 500 ms, doubling, at most every 4 s; provisional answers ignored; at most 8 s.
import select, socket, time


def bound_socket():
    """A UDP socket on 127.0.0.1 and its port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def final_status(s, host, port, data, branch):
    """Sends data until a final response with our branch comes; its status line
    without "SIP/2.0 ", or None after 8 s."""
    start = time.monotonic()
    deadline = start + 8.0
    interval = 0.5
    next_send = start
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None
        if now >= next_send:
            s.sendto(data, (host, port))
            next_send = now + interval
            interval = min(interval * 2, 4.0)
        r, _, _ = select.select([s], [], [], max(0.0, min(next_send, deadline) - now))
        if not r:
            continue
        got, _ = s.recvfrom(65535)
        line = got.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0] != "SIP/2.0" or branch.encode() not in got:
            continue
        if int(parts[1]) >= 200:
            return " ".join(parts[1:])

# udp_sniff.py: prints the IPv4 UDP datagrams that cross one interface, for the
# overlay integration tests (an independent witness next to the daemons' counters).
#
#   udp_sniff.py IFACE SECONDS [PORT]
#
# Binds a packet socket (AF_PACKET, every protocol) to IFACE, prints "ready", then one
# line per IPv4 UDP datagram (to or from PORT when given) for SECONDS seconds:
#   in|out SRC SPORT DST DPORT LEN B0 B1 B2 B3
# where LEN is the UDP payload's length and B0..B3 its first bytes in hex (an overlay
# frame: magic b5, version, type, flags), "-" when absent; then "done N".  Runs in
# the namespace it is started in (host_start); needs CAP_NET_RAW there.
import select, socket, struct, sys, time

PACKET_OUTGOING = 4


def main():
    iface, secs = sys.argv[1], float(sys.argv[2])
    port = int(sys.argv[3]) if len(sys.argv) > 3 else None
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    print("ready", flush=True)
    n = 0
    until = time.monotonic() + secs
    while True:
        left = until - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        data, addr = s.recvfrom(65535)
        if len(data) < 14 + 20 or data[12:14] != b"\x08\x00":
            continue
        ip = data[14:]
        ihl = (ip[0] & 0xF) * 4
        if ip[9] != 17 or len(ip) < ihl + 8:
            continue
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
        if port is not None and port not in (sport, dport):
            continue
        payload = ip[ihl + 8:ihl + ulen]
        head = [("%02x" % payload[i]) if i < len(payload) else "-" for i in range(4)]
        d = "out" if addr[2] == PACKET_OUTGOING else "in"
        print(d, src, sport, dst, dport, len(payload), *head, flush=True)
        n += 1
    print("done", n, flush=True)
    return 0


sys.exit(main())

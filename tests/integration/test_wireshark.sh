#!/usr/bin/env bash
#
# test_wireshark.sh: the Wireshark dissector (scripts/wireshark/p2psip.lua) decodes
# what p2psipd really sends, and `p2psipd --trace-pcap FILE` records the DHT messages
# a node sends and receives, in clear (docs/OVERLAY-WIRE.md "Wireshark").
#
# Three hosts, multicast on: nA (-s) in h1, nB in h2 with --trace-pcap, nC in h3; nB
# and nC find nA by LAN discovery.  No replicas (p2p.replicas = 0): only the root
# holds a record, so nB's GET goes to it instead of being answered from nB's copy.
# dumpcap captures h2's link (veth-h2 on the bridge: every frame nB sends or
# receives) from before the nodes start.  nB puts a record whose 3000-byte value
# makes the PUT larger than a datagram (so it takes the TCP path) under a key whose
# root is another node (so the PUT leaves nB), and gets it back.  All processes are
# stopped by pid; then tshark with the dissector reads both files.
#
# The wire capture: DISCOVER queries on 7561 and MEMBER answers on 7560 with a node
# ID of the ring and port 7560; HS1 (56 bytes, a 32-byte e), HS2 answering an HS1
# (its receiver index is that HS1's sender index), HS3 answering an HS2; DATA frames
# whose receiver index is one of the handshakes' indexes, with counters; DATA over
# TCP with its u16 length; no malformed frame and no Lua error.  Then one frame of
# each type cut at every length, and with version 2, type 9, flags 1: no Lua error,
# each cut under 32 bytes and each bad type or flags flagged malformed, version 2
# flagged unsupported.
# The trace: mode 0600, the startup warning in the log; every record's own ID is
# nB's; sent messages carry nB's ID as sender, received ones the ID of nA or nC,
# equal to the record's peer ID; route's LOOKUP sent with the key and the TRACE flag,
# its LOOKUP_REPLY with a PATH from nB to the root route named; PUT sent and GET sent
# with KEY = BLAKE2b-160 of the key text (as p2psipctl hashes it, and as `get`
# reports it); the PUT's RECORD and the received GET_REPLY's have that key, the value
# put, the seq and owner that `get` reports; an ACK and a PUT_REPLY received; no
# malformed message and no Lua error.
# Then traced messages cut at many lengths: no Lua error, each flagged malformed; the
# traced PUT's RECORD with the mailbox flag decoded as such, with a tombstone flag
# beside its value or an unknown flag bit flagged malformed.
set -u
here=$(dirname "$0"); [ -f "$here/overlay.sh" ] || here=$here/..
. "$here/overlay.sh"
IT_TIMEOUT=${IT_TIMEOUT:-300}
it_begin "$@"
it_need tshark dumpcap python3 ip

LUA=$IT_SRC/scripts/wireshark/p2psip.lua
[ -f "$LUA" ] || it_fail "no dissector at $LUA"
WIRE=$IT_TMP/wire.pcap
TRACE=$IT_TMP/trace.pcap

# ts OUT ARGS...: tshark with the dissector, output to OUT; fails the test on error.
ts() {
    local out=$1
    shift
    tshark -X "lua_script:$LUA" "$@" >"$out" 2>"$IT_TMP/tshark.err" ||
        it_fail "tshark $*: $(head -c 2000 "$IT_TMP/tshark.err")"
}

# ts_fields OUT FILE FILTER FIELD...: the fields of the packets FILTER selects, one
# tab-separated line per packet, every occurrence comma-joined.
ts_fields() {
    local out=$1 file=$2 filter=$3 a=()
    shift 3
    for f in "$@"; do a+=(-e "$f"); done
    ts "$out" -r "$file" -Y "$filter" -T fields -E separator=/t -E occurrence=a \
        -E aggregator=, "${a[@]}"
}

# decoded NAME FILE: no Lua error anywhere in FILE's full decode, and no packet with
# a malformed frame or DHT message.
decoded() {
    local name=$1 file=$2 errs
    ts "$IT_TMP/$name.V" -r "$file" -V
    errs=$(grep -c "Lua Error" "$IT_TMP/$name.V") || true
    [ "$errs" = 0 ] || it_fail "$errs Lua errors dissecting the $name capture"
    ts_fields "$IT_TMP/$name.bad" "$file" \
        "p2psip.malformed || p2psip.tcp_len.bad || p2psip.dht.malformed || p2psip.trace.malformed || _ws.malformed" \
        frame.number
    [ ! -s "$IT_TMP/$name.bad" ] ||
        it_fail "malformed packets in the $name capture: $(head -5 "$IT_TMP/$name.bad" | tr '\n' ' ')"
}

ovl_hosts_create 3

# ---- capture h2's link, then start the ring ----
it_start cap dumpcap -i veth-h2 -P -w "$WIRE" -f "udp or tcp"
it_wait_log cap "Capturing on" 20

printf 'replicas = 0\nquorum = 0\n' >"$IT_TMP/p2p-extra.conf"
ovl_node_start h1 nA --server --conf "$IT_TMP/p2p-extra.conf"
ovl_node_start h2 nB --conf "$IT_TMP/p2p-extra.conf" -- --trace-pcap "$TRACE"
ovl_node_start h3 nC --conf "$IT_TMP/p2p-extra.conf"
for n in nA nB nC; do
    ovl_wait "$n" 40 "$n to be a ring member" "f('role') in ('member', 'super-node')"
done
A=$(ovl_node_id nA)
B=$(ovl_node_id nB)
C=$(ovl_node_id nC)
grep -q "trace-pcap: writing every DHT message, decrypted, to $TRACE" "$IT_TMP/nB.log" ||
    it_fail "nB did not warn that the trace holds decrypted traffic"
[ "$(stat -c %a "$TRACE")" = 600 ] || it_fail "the trace file is mode $(stat -c %a "$TRACE"), not 600"

# ---- a key whose root is not nB, a put and a get from nB ----
key=""
for ((i = 1; i <= 40; i++)); do
    root=$(ovl_ctl nB route "ws-key-$i" | "$OVL_PY" -c 'import json,sys; print(json.load(sys.stdin)["root"]["id"])') ||
        it_fail "route ws-key-$i failed"
    if [ "$root" != "$B" ]; then
        key=ws-key-$i
        break
    fi
done
[ -n "$key" ] || it_fail "every one of 40 keys has nB as its root"
value=$("$OVL_PY" -c 'print("v" * 3000)')
ovl_ctl nB put "$key" "$value" --opt ttl=600 >"$IT_TMP/put.json" || it_fail "put $key failed"
ovl_ctl nB get "$key" >"$IT_TMP/get.json" || it_fail "get $key failed"
H=$("$OVL_PY" -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=20).hexdigest())' "$key")
read -r gkey gseq gowner gval < <("$OVL_PY" - "$IT_TMP/get.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r) == 1, r
print(r[0]["key"], r[0]["seq"], r[0]["owner"], len(r[0]["value"]))
EOF
) || it_fail "get returned no single record: $(head -c 500 "$IT_TMP/get.json")"
[ "$gkey" = "$H" ] || it_fail "get reports key $gkey, BLAKE2b-160('$key') is $H"
[ "$gval" = 3000 ] || it_fail "get returned a value of $gval bytes, not 3000"
it_log "put and got $key (root $root, key $H) through nB"

# ---- stop everything by pid: the trace is flushed, the capture closed ----
for n in nC nB nA; do
    it_stop "$n"
    [ "${IT_EXIT_OF[$n]}" = 0 ] || it_fail "$n exit status ${IT_EXIT_OF[$n]}"
done
it_stop cap
[ -s "$WIRE" ] || it_fail "dumpcap wrote nothing"

# ---- the wire capture ----
decoded wire "$WIRE"
ts_fields "$IT_TMP/disc.txt" "$WIRE" "p2psip.type == 5" udp.dstport p2psip.disc.id \
    p2psip.disc.port p2psip.disc.flags
ts_fields "$IT_TMP/hs.txt" "$WIRE" "p2psip.type <= 3" p2psip.type frame.len udp.length \
    p2psip.sender_index p2psip.receiver_index p2psip.ephemeral
ts_fields "$IT_TMP/data.txt" "$WIRE" "p2psip.type == 4" p2psip.receiver_index p2psip.counter \
    p2psip.ciphertext_len p2psip.tcp_len
"$OVL_PY" - "$IT_TMP" "$A" "$B" "$C" <<'EOF' || it_fail "the wire capture is not decoded as expected"
import sys
tmp, ids = sys.argv[1], set(sys.argv[2:])
def rows(name):
    return [l.rstrip("\n").split("\t") for l in open(f"{tmp}/{name}") if l.strip()]
def hexnorm(s):
    return s.replace(":", "").lower()
ok = True
def check(cond, what):
    global ok
    print(("ok: " if cond else "FAIL: ") + what, file=sys.stderr)
    ok = ok and cond

disc = rows("disc.txt")
queries = [r for r in disc if r[0] == "7561" and int(r[3], 16) & 1]
answers = [r for r in disc if r[0] == "7560" and int(r[3], 16) & 2]
check(len(queries) > 0, f"DISCOVER queries on 7561: {len(queries)}")
check(len(answers) > 0, f"DISCOVER member answers on 7560: {len(answers)}")
check(all(hexnorm(r[1]) in ids and r[2] == "7560" for r in queries + answers),
      "every DISCOVER names a ring node and port 7560")

hs = rows("hs.txt")
hs1 = [r for r in hs if r[0] == "1"]
hs2 = [r for r in hs if r[0] == "2"]
hs3 = [r for r in hs if r[0] == "3"]
check(len(hs1) > 0 and len(hs2) > 0 and len(hs3) > 0,
      f"handshake frames: {len(hs1)} HS1, {len(hs2)} HS2, {len(hs3)} HS3")
check(all(r[2] == str(56 + 8) and len(hexnorm(r[5])) == 64 for r in hs1),
      "every HS1 is 56 bytes with a 32-byte ephemeral key")
hs1_idx = {r[3] for r in hs1}
hs2_idx = {r[3] for r in hs2}
check(all(r[4] in hs1_idx and len(hexnorm(r[5])) == 64 for r in hs2),
      "every HS2 answers a captured HS1 (receiver index = its sender index)")
check(all(r[4] in hs2_idx for r in hs3),
      "every HS3 answers a captured HS2 (receiver index = its sender index)")

data = rows("data.txt")
idx = hs1_idx | hs2_idx
check(len(data) > 10, f"DATA frames: {len(data)}")
check(all(r[0] in idx for r in data), "every DATA frame's receiver index is a handshake's")
check(all(r[1].isdigit() and r[2].isdigit() for r in data), "counters and lengths decoded")
tcp = [r for r in data if len(r) > 3 and r[3]]
check(len(tcp) > 0 and all(int(r[3]) == int(r[2]) + 32 for r in tcp),
      f"DATA over TCP with its u16 length: {len(tcp)}")
sys.exit(0 if ok else 1)
EOF

# ---- short and malformed frames ----
# The first frame of each type in the wire capture, cut at every length from 0 to
# its own (IPv4 and UDP lengths rewritten), then with version 2, type 9 and flags 1:
# no Lua error; every cut below 32 bytes (the shortest frame type) and every bad
# type or flags is flagged malformed, the version as unsupported.
"$OVL_PY" - "$WIRE" "$IT_TMP/cutwire.pcap" <<'EOF' || it_fail "cannot write the malformed frames"
import struct, sys
src, dst = sys.argv[1:]
data = open(src, "rb").read()
assert struct.unpack("<I", data[:4])[0] == 0xa1b2c3d4 and struct.unpack("<I", data[20:24])[0] == 1
def frame(eth_ip, payload):
    ip = bytearray(eth_ip[14:34])
    ip[2:4] = struct.pack("!H", 20 + 8 + len(payload))
    ip[10:12] = b"\0\0"
    udp = bytearray(eth_ip[34:42])
    udp[4:6] = struct.pack("!H", 8 + len(payload))
    udp[6:8] = b"\0\0"
    return eth_ip[:14] + bytes(ip) + bytes(udp) + payload
seen, out, off = {}, [data[:24]], 24
while off + 16 <= len(data):
    sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
    pkt = data[off + 16:off + 16 + incl]
    off += 16 + incl
    # Ethernet, IPv4 without options, UDP, our magic
    if len(pkt) < 46 or pkt[12:14] != b"\x08\x00" or pkt[14] != 0x45 or pkt[23] != 17:
        continue
    pl = pkt[42:]
    if pl[0] != 0xB5 or pl[2] in seen:
        continue
    seen[pl[2]] = True
    for cut in range(0, len(pl)):
        out.append(struct.pack("<IIII", sec, usec, 42 + cut, 42 + cut) + frame(pkt, pl[:cut]))
    for i, v in ((1, 2), (2, 9), (3, 1)):
        bad = bytearray(pl)
        bad[i] = v
        out.append(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + frame(pkt, bytes(bad)))
assert sorted(seen) == [1, 2, 3, 4, 5], sorted(seen)
open(dst, "wb").write(b"".join(out))
EOF
ts "$IT_TMP/cutwire.V" -r "$IT_TMP/cutwire.pcap" -V
errs=$(grep -c "Lua Error" "$IT_TMP/cutwire.V") || true
[ "$errs" = 0 ] || it_fail "$errs Lua errors dissecting short or malformed frames"
ts_fields "$IT_TMP/cutwire.txt" "$IT_TMP/cutwire.pcap" "udp" udp.length p2psip.version \
    p2psip.type p2psip.flags p2psip.malformed p2psip.version.unsupported
"$OVL_PY" - "$IT_TMP/cutwire.txt" <<'EOF' || it_fail "short or malformed frames not flagged"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
short = [r for r in rows if 8 < int(r[0]) < 8 + 32]
bad = [r for r in rows if r[1] == "1" and (r[3] not in ("", "0x00") or not 1 <= int(r[2] or 0) <= 5)]
v2 = [r for r in rows if r[1] == "2"]
print(f"{len(rows)} frames: {len(short)} short, {len(bad)} bad type or flags, {len(v2)} version 2",
      file=sys.stderr)
ok = len(short) == 5 * 31 and len(bad) == 10 and len(v2) == 5
ok = ok and all(r[4] for r in short + bad) and all(r[5] for r in v2)
sys.exit(0 if ok else 1)
EOF

# ---- the trace ----
decoded trace "$TRACE"
ts_fields "$IT_TMP/trace.txt" "$TRACE" "p2psip_trace" p2psip.trace.event p2psip.trace.self p2psip.trace.peer \
    p2psip.dht.type p2psip.dht.sender p2psip.dht.key p2psip.dht.record.key \
    p2psip.dht.record.seq p2psip.dht.record.owner p2psip.dht.record.value_text \
    p2psip.trace.port p2psip.dht.flags.trace p2psip.dht.path.id
"$OVL_PY" - "$IT_TMP/trace.txt" "$A" "$B" "$C" "$H" "$gseq" "$gowner" "$root" <<'EOF' || it_fail "the trace is not decoded as expected"
import sys
path, A, B, C, H, seq, owner, root = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
def hexnorm(s):
    return s.replace(":", "").lower()
ok = True
def check(cond, what):
    global ok
    print(("ok: " if cond else "FAIL: ") + what, file=sys.stderr)
    ok = ok and cond
SENT, RECV = "0", "1"
ACK, LOOKUP, LOOKUP_REPLY, PUT, PUT_REPLY, GET, GET_REPLY = "2", "8", "9", "10", "11", "12", "13"
check(len(rows) > 5, f"trace records: {len(rows)}")
check(all(hexnorm(r[1]) == B for r in rows), "every record's own ID is nB's")
check(all(hexnorm(r[4]) == B for r in rows if r[0] == SENT), "sent messages carry nB's ID")
recv = [r for r in rows if r[0] == RECV]
check(len(recv) > 0 and all(hexnorm(r[4]) in (A, C) and hexnorm(r[4]) == hexnorm(r[2])
                            for r in recv),
      "received messages carry nA's or nC's ID, the record's peer")
check(all(r[10] == "7560" for r in rows if r[10]), "peer addresses decoded, port 7560")
def has(ev, ty, pred=lambda r: True):
    return [r for r in rows if r[0] == ev and r[3] == ty and pred(r)]
keyed = lambda r: hexnorm(r[5]) == H
check(len(has(SENT, LOOKUP, lambda r: keyed(r) and r[11] in ("1", "True"))) > 0,
      "route's LOOKUP sent with the key and the TRACE flag")
def path_ok(r):
    hops = [hexnorm(h) for h in r[12].split(",") if h]
    return len(hops) >= 2 and hops[0] == B and hops[-1] == root
check(any(keyed(r) and path_ok(r) for r in has(RECV, LOOKUP_REPLY)),
      "LOOKUP_REPLY received with PATH from nB to the root route named")
check(len(has(SENT, PUT, keyed)) > 0, "PUT sent with KEY = BLAKE2b-160 of the key text")
check(any(hexnorm(r[6]) == H and r[7] == seq and hexnorm(r[8]) == owner and r[9] == "v" * 3000
          for r in has(SENT, PUT)), "the PUT's RECORD: key, seq, owner, value")
check(len(has(RECV, ACK)) > 0, "ACK received")
check(len(has(RECV, PUT_REPLY)) > 0, "PUT_REPLY received")
check(len(has(SENT, GET, keyed)) > 0, "GET sent with the key")
check(any(keyed(r) and hexnorm(r[6]) == H and r[7] == seq and hexnorm(r[8]) == owner and
          r[9] == "v" * 3000 for r in has(RECV, GET_REPLY)),
      "GET_REPLY received with the record: key, seq, owner, value")
sys.exit(0 if ok else 1)
EOF

# ---- short input: truncations of the traced messages ----
# The first 40 records cut at many lengths from 0 to the whole DHT message (the pcap
# record shortened, the DHT length field left as it was): none may raise a Lua error,
# and every one must be flagged malformed.
"$OVL_PY" - "$TRACE" "$IT_TMP/cut.pcap" <<'EOF' || it_fail "cannot write the truncated trace"
import struct, sys
src, dst = sys.argv[1:]
data = open(src, "rb").read()
out = [data[:24]]
off, n = 24, 0
while off + 16 <= len(data) and n < 40:
    sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
    rec = data[off + 16:off + 16 + incl]
    off += 16 + incl
    n += 1
    for cut in range(70, len(rec), 7 if len(rec) < 400 else 97):
        out.append(struct.pack("<IIII", sec, usec, cut, cut) + rec[:cut])
open(dst, "wb").write(b"".join(out))
EOF
ts "$IT_TMP/cut.V" -r "$IT_TMP/cut.pcap" -V
errs=$(grep -c "Lua Error" "$IT_TMP/cut.V") || true
[ "$errs" = 0 ] || it_fail "$errs Lua errors dissecting truncated messages"
ts "$IT_TMP/cut.all" -r "$IT_TMP/cut.pcap"
ts_fields "$IT_TMP/cut.bad" "$IT_TMP/cut.pcap" "p2psip.dht.malformed || p2psip.trace.malformed" \
    frame.number
total=$(wc -l <"$IT_TMP/cut.all")
flagged=$(wc -l <"$IT_TMP/cut.bad")
if [ "$total" -le 100 ] || [ "$flagged" != "$total" ]; then
    it_fail "$flagged of $total truncated messages flagged malformed"
fi
it_log "$total truncated messages: no Lua error, each flagged malformed"

# ---- record flags: the traced PUT's RECORD with flags 0x02 (a mailbox value: decoded),
# 0x03 (a tombstone with a value) and 0x04 (an unknown bit): both flagged malformed ----
"$OVL_PY" - "$TRACE" "$IT_TMP/flags.pcap" <<'EOF' || it_fail "no PUT with a RECORD in the trace"
import struct, sys
src, dst = sys.argv[1:]
data = open(src, "rb").read()
off = 24
while off + 16 <= len(data):
    incl = struct.unpack("<IIII", data[off:off + 16])[2]
    hdr, rec = data[off:off + 16], data[off + 16:off + 16 + incl]
    off += 16 + incl
    if len(rec) > 72 and rec[70 + 1] == 10:  # a PUT
        a = 70 + 30
        while a + 4 <= len(rec):
            code, alen = struct.unpack("!HH", rec[a:a + 4])
            if code == 7:
                out = [data[:24]]
                for fl in (0x02, 0x03, 0x04):
                    r = bytearray(rec)
                    r[a + 4 + 1] = fl
                    out.append(hdr + bytes(r))
                open(dst, "wb").write(b"".join(out))
                sys.exit(0)
            a += 4 + alen
sys.exit(1)
EOF
ts_fields "$IT_TMP/flags.txt" "$IT_TMP/flags.pcap" "p2psip_trace" p2psip.dht.record.mailbox \
    p2psip.dht.record.tombstone p2psip.dht.malformed
flags=$(tr '\t\n' ' |' <"$IT_TMP/flags.txt")
# mailbox, not a tombstone, well-formed | a tombstone with a value: malformed | bit 2: malformed
[[ $flags =~ ^(1|True)\ (0|False)\ \|[^|]*\ [^\ |]+\|[^|]*\ [^\ |]+\|$ ]] ||
    it_fail "record flags 0x02, 0x03, 0x04 decoded as: $flags"

it_pass "dissector decodes discovery, handshakes, DATA (UDP, TCP) and the --trace-pcap DHT messages"

-- p2psip.lua: Wireshark dissectors for p2psip (docs/OVERLAY-WIRE.md, docs/DHT-WIRE.md).
--
-- Three protocols:
--   p2psip        the overlay frames on the wire: the clear header of every frame
--                 (HS1, HS2, HS3 of the Noise_XXpsk0 handshake, DATA, DISCOVER), on
--                 UDP 7560 (P2P port), UDP 7561 (LAN discovery) and TCP 7560 (the
--                 same DATA frames, each behind a u16 length).  What is encrypted is
--                 shown as bytes: without the session keys nothing more can be said.
--   p2psip_dht    one DHT message (header and every attribute), as it travels inside
--                 a DATA frame once decrypted.
--   p2psip_trace  a record of `p2psipd --trace-pcap FILE` (pcap link type USER0, 147):
--                 a 70-byte pseudo-header (event, own and peer node ID, peer address;
--                 p2psipd/trace_pcap.h) followed by one DHT message.
--
-- Use:  wireshark -X lua_script:scripts/wireshark/p2psip.lua capture.pcap
--       tshark -X lua_script:.../p2psip.lua -r trace.pcap -V
-- or copy the file into ~/.local/lib/wireshark/plugins/.  The ports are preferences
-- (Edit > Preferences > Protocols > P2PSIP).
--
-- Invariants: every read is preceded by a length check, so short or malformed input
-- never raises a Lua error; what is wrong is shown as expert info (malformed) on the
-- field where decoding stopped.  Counts are capped as the C decoders cap them.

local p2psip = Proto("p2psip", "P2PSIP overlay frame")
local p2psip_dht = Proto("p2psip_dht", "P2PSIP DHT message")
local p2psip_trace = Proto("p2psip_trace", "P2PSIP trace (p2psipd --trace-pcap)")

-- ---- overlay frames (docs/OVERLAY-WIRE.md) ---------------------------------------------

local OVL_MAGIC = 0xB5
local OVL_VERSION = 1
local OVL_FRAME_MAX = 65507
local OVL_HS_PAYLOAD_MAX = 128
local OVL_REKEY_BITS = 20 -- OVL_REKEY_EVERY = 2^20 counters per key epoch

local frame_types = {[1] = "HS1", [2] = "HS2", [3] = "HS3", [4] = "DATA", [5] = "DISCOVER"}

local f = p2psip.fields
f.magic = ProtoField.uint8("p2psip.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("p2psip.version", "Version", base.DEC)
f.type = ProtoField.uint8("p2psip.type", "Type", base.DEC, frame_types)
f.flags = ProtoField.uint8("p2psip.flags", "Flags", base.HEX)
f.tcp_len = ProtoField.uint16("p2psip.tcp_len", "TCP frame length", base.DEC)
f.sender_index = ProtoField.uint32("p2psip.sender_index", "Sender index", base.HEX)
f.receiver_index = ProtoField.uint32("p2psip.receiver_index", "Receiver index", base.HEX)
f.ephemeral = ProtoField.bytes("p2psip.ephemeral", "Ephemeral public key (e)")
f.hs1_tag = ProtoField.bytes("p2psip.hs1_tag", "Tag of the empty payload (PSK check)")
f.enc_static = ProtoField.bytes("p2psip.enc_static", "Encrypted static key + tag (s)")
f.enc_payload = ProtoField.bytes("p2psip.enc_payload", "Encrypted payload + tag")
f.payload_len = ProtoField.uint16("p2psip.payload_len",
    "Caller payload length (after the 32-byte Ed25519 key)", base.DEC)
f.counter = ProtoField.uint64("p2psip.counter", "Counter", base.DEC)
f.epoch = ProtoField.uint64("p2psip.epoch", "Key epoch", base.DEC)
f.ciphertext = ProtoField.bytes("p2psip.ciphertext", "Ciphertext")
f.ciphertext_len = ProtoField.uint32("p2psip.ciphertext_len", "Inner message length", base.DEC)
f.tag = ProtoField.bytes("p2psip.tag", "AEAD tag")
f.disc_id = ProtoField.bytes("p2psip.disc.id", "Node ID")
f.disc_port = ProtoField.uint16("p2psip.disc.port", "P2P port", base.DEC)
f.disc_flags = ProtoField.uint8("p2psip.disc.flags", "Discover flags", base.HEX)
f.disc_query = ProtoField.bool("p2psip.disc.flags.query", "QUERY", 8, nil, 0x01)
f.disc_member = ProtoField.bool("p2psip.disc.flags.member", "MEMBER", 8, nil, 0x02)
f.disc_probe = ProtoField.bool("p2psip.disc.flags.probe", "PROBE", 8, nil, 0x04)
f.disc_nonce = ProtoField.bytes("p2psip.disc.nonce", "Nonce")
f.disc_mac = ProtoField.bytes("p2psip.disc.mac", "MAC (HMAC-SHA-256/128)")

local ef_malformed = ProtoExpert.new("p2psip.malformed", "Malformed p2psip frame",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_version = ProtoExpert.new("p2psip.version.unsupported", "Unsupported overlay version",
    expert.group.PROTOCOL, expert.severity.WARN)
local ef_tcp_len = ProtoExpert.new("p2psip.tcp_len.bad",
    "TCP frame length 0 or over 65507: the node closes the connection",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_tcp_type = ProtoExpert.new("p2psip.tcp_type.bad",
    "Only DATA frames travel over TCP: the node closes the connection",
    expert.group.PROTOCOL, expert.severity.WARN)
p2psip.experts = {ef_malformed, ef_version, ef_tcp_len, ef_tcp_type}

p2psip.prefs.udp_port = Pref.uint("UDP port", 7560, "The P2P port (UDP): every frame kind")
p2psip.prefs.disc_port = Pref.uint("Discovery port", 7561,
    "The LAN discovery port (UDP, multicast 239.255.75.60): DISCOVER queries")
p2psip.prefs.tcp_port = Pref.uint("TCP port", 7560, "The P2P port (TCP): length-prefixed DATA")

local function hex(range)
    return range:bytes():tohex(true)
end

-- Adds the bytes [off, off + n) as field fld when they are all there; otherwise the
-- rest of the frame as a malformed item.  Returns the item, or nil when cut short.
local function add_fixed(tree, fld, tvb, off, n, what)
    local rest = tvb:len() - off
    if rest < n then
        local item = tree
        if rest > 0 then
            item = tree:add(fld, tvb(off, rest))
        end
        item:add_proto_expert_info(ef_malformed, string.format("%s: %d bytes, %d needed",
            what, rest > 0 and rest or 0, n))
        return nil
    end
    return tree:add(fld, tvb(off, n))
end

-- Adds everything from off to the end as field fld, when at least min bytes are there.
local function add_rest(tree, fld, tvb, off, min, what)
    local rest = tvb:len() - off
    if rest < min then
        return add_fixed(tree, fld, tvb, off, min, what)
    end
    return tree:add(fld, tvb(off, rest))
end

-- Frame lengths (OVL_HS1_LEN, OVL_HS2_LEN(n), OVL_HS3_LEN(n), OVL_DATA_OVERHEAD,
-- OVL_DISCOVER_LEN): nil when len is fine for type, else the reason.
local function length_problem(ftype, len)
    if len > OVL_FRAME_MAX then
        return "longer than 65507 bytes"
    elseif ftype == 1 and len ~= 56 then
        return "HS1 is exactly 56 bytes"
    elseif ftype == 2 and (len < 140 or len > 140 + OVL_HS_PAYLOAD_MAX) then
        return "HS2 is 140 to 268 bytes"
    elseif ftype == 3 and (len < 104 or len > 104 + OVL_HS_PAYLOAD_MAX) then
        return "HS3 is 104 to 232 bytes"
    elseif ftype == 4 and len < 32 then
        return "DATA is at least 32 bytes"
    elseif ftype == 5 and len ~= 51 then
        return "DISCOVER is exactly 51 bytes"
    end
    return nil
end

-- Dissects one frame occupying all of tvb; returns a short summary for the Info column.
local function dissect_frame(tvb, pinfo, tree, over_tcp)
    local len = tvb:len()
    local t = tree:add(p2psip, tvb(), "P2PSIP overlay frame")
    if len < 4 then
        t:add_proto_expert_info(ef_malformed, "shorter than the 4-byte header")
        return "short frame"
    end
    local mitem = t:add(f.magic, tvb(0, 1))
    if tvb(0, 1):uint() ~= OVL_MAGIC then
        mitem:add_proto_expert_info(ef_malformed, "magic is not 0xB5: not a p2psip frame")
        return "not a p2psip frame"
    end
    local vitem = t:add(f.version, tvb(1, 1))
    local titem = t:add(f.type, tvb(2, 1))
    local fitem = t:add(f.flags, tvb(3, 1))
    local version, ftype, flags = tvb(1, 1):uint(), tvb(2, 1):uint(), tvb(3, 1):uint()
    if version ~= OVL_VERSION then
        vitem:add_proto_expert_info(ef_version, string.format("version %d; this dissector knows 1",
            version))
        return string.format("version %d", version)
    end
    local name = frame_types[ftype]
    if name == nil then
        titem:add_proto_expert_info(ef_malformed, string.format("unknown frame type %d", ftype))
        return string.format("unknown type %d", ftype)
    end
    t:append_text(", " .. name)
    if flags ~= 0 then
        fitem:add_proto_expert_info(ef_malformed, "flags must be 0")
    end
    if over_tcp and ftype ~= 4 then
        titem:add_proto_expert_info(ef_tcp_type)
    end
    local problem = length_problem(ftype, len)
    if problem ~= nil then
        t:add_proto_expert_info(ef_malformed, string.format("%d bytes: %s", len, problem))
    end

    if ftype == 1 then
        local info = "HS1"
        if add_fixed(t, f.sender_index, tvb, 4, 4, "sender index") then
            info = string.format("HS1 sender=0x%08x", tvb(4, 4):uint())
        end
        if add_fixed(t, f.ephemeral, tvb, 8, 32, "e") then
            add_fixed(t, f.hs1_tag, tvb, 40, 16, "tag")
        end
        return info
    elseif ftype == 2 then
        local info = "HS2"
        if add_fixed(t, f.sender_index, tvb, 4, 4, "sender index") and
            add_fixed(t, f.receiver_index, tvb, 8, 4, "receiver index") then
            info = string.format("HS2 sender=0x%08x receiver=0x%08x", tvb(4, 4):uint(),
                tvb(8, 4):uint())
            if add_fixed(t, f.ephemeral, tvb, 12, 32, "e") and
                add_fixed(t, f.enc_static, tvb, 44, 48, "encrypted static key") then
                if add_rest(t, f.enc_payload, tvb, 92, 48, "encrypted payload") then
                    t:add(f.payload_len, len - 140):set_generated()
                end
            end
        end
        return info
    elseif ftype == 3 then
        local info = "HS3"
        if add_fixed(t, f.receiver_index, tvb, 4, 4, "receiver index") then
            info = string.format("HS3 receiver=0x%08x", tvb(4, 4):uint())
            if add_fixed(t, f.enc_static, tvb, 8, 48, "encrypted static key") and
                add_rest(t, f.enc_payload, tvb, 56, 48, "encrypted payload") then
                t:add(f.payload_len, len - 104):set_generated()
            end
        end
        return info
    elseif ftype == 4 then
        local info = "DATA"
        if add_fixed(t, f.receiver_index, tvb, 4, 4, "receiver index") and
            add_fixed(t, f.counter, tvb, 8, 8, "counter") then
            local counter = tvb(8, 8):uint64()
            t:add(f.epoch, tvb(8, 8), counter:rshift(OVL_REKEY_BITS)):set_generated()
            info = string.format("DATA receiver=0x%08x counter=%s", tvb(4, 4):uint(),
                tostring(counter))
            if len >= 32 then
                local n = len - 32
                if n > 0 then
                    t:add(f.ciphertext, tvb(16, n))
                end
                t:add(f.ciphertext_len, n):set_generated()
                t:add(f.tag, tvb(16 + n, 16))
                info = info .. string.format(" len=%d", n)
            end
        end
        return info
    else
        local info = "DISCOVER"
        local flags_item = add_fixed(t, f.disc_id, tvb, 4, 20, "node ID") and
            add_fixed(t, f.disc_port, tvb, 24, 2, "port") and
            add_fixed(t, f.disc_flags, tvb, 26, 1, "flags")
        if flags_item then
            local fl = tvb(26, 1):uint()
            flags_item:add(f.disc_query, tvb(26, 1))
            flags_item:add(f.disc_member, tvb(26, 1))
            flags_item:add(f.disc_probe, tvb(26, 1))
            local what = {}
            if bit.band(fl, 1) ~= 0 then what[#what + 1] = "QUERY" end
            if bit.band(fl, 2) ~= 0 then what[#what + 1] = "MEMBER" end
            if bit.band(fl, 4) ~= 0 then what[#what + 1] = "PROBE" end
            info = string.format("DISCOVER %s id=%s port=%d", table.concat(what, "|"),
                hex(tvb(4, 20)):sub(1, 8), tvb(24, 2):uint())
            if add_fixed(t, f.disc_nonce, tvb, 27, 8, "nonce") then
                add_fixed(t, f.disc_mac, tvb, 35, 16, "mac")
            end
        end
        return info
    end
end

-- UDP: one frame per datagram.  Not our magic: not ours (another dissector may try).
function p2psip.dissector(tvb, pinfo, tree)
    if tvb:len() < 1 or tvb(0, 1):uint() ~= OVL_MAGIC then
        return 0
    end
    pinfo.cols.protocol = "P2PSIP"
    pinfo.cols.info = dissect_frame(tvb, pinfo, tree, false)
    return tvb:len()
end

-- TCP: u16 length, then that many bytes of one frame (overlay/node_tcp.c).
local p2psip_tcp = Proto("p2psip_tcp", "P2PSIP overlay over TCP")

local function tcp_pdu_len(tvb, pinfo, offset)
    if tvb:len() - offset < 2 then
        return -DESEGMENT_ONE_MORE_SEGMENT
    end
    local n = tvb(offset, 2):uint()
    if n == 0 or n > OVL_FRAME_MAX then
        return 2 -- shown alone as a bad length; the node would close here
    end
    return 2 + n
end

local function tcp_pdu(tvb, pinfo, tree)
    pinfo.cols.protocol = "P2PSIP"
    local n = tvb(0, 2):uint()
    local item = tree:add(f.tcp_len, tvb(0, 2))
    if n == 0 or n > OVL_FRAME_MAX then
        item:add_proto_expert_info(ef_tcp_len)
        pinfo.cols.info = "TCP: bad frame length"
        return tvb:len()
    end
    local frame = tvb(2):tvb()
    local info = dissect_frame(frame, pinfo, tree, true)
    pinfo.cols.info = "TCP " .. info
    return tvb:len()
end

function p2psip_tcp.dissector(tvb, pinfo, tree)
    dissect_tcp_pdus(tvb, tree, 2, tcp_pdu_len, tcp_pdu, true)
    return tvb:len()
end

-- ---- DHT messages (docs/DHT-WIRE.md, dht/msg.c, dht/record.c) --------------------------
-- Flags 0x01..0x40 and attributes 1..16 (PATH); what a newer version adds shows as an
-- unknown attribute (skipped by its length, as the node does).

local DHT_HEADER_LEN = 30
local DHT_ATTRS_MAX = 64
local DHT_PEERS_MAX = 48
local DHT_RECORDS_MAX = 8
local DHT_IDENTS_MAX = 64
local DHT_AVOID_MAX = 6
local DHT_PATH_MAX = 12
local DHT_ADDR_MAX = 18
local DHT_ID_DIGITS = 40
local RECORD_HEADER_LEN = 156
local RECORD_VALUE_MAX = 4096

local dht_types = {
    [1] = "PING", [2] = "ACK", [3] = "JOIN", [4] = "JOIN_REPLY", [5] = "ROWS",
    [6] = "ROW_REQ", [7] = "LEAFSET", [8] = "LOOKUP", [9] = "LOOKUP_REPLY", [10] = "PUT",
    [11] = "PUT_REPLY", [12] = "GET", [13] = "GET_REPLY", [14] = "REPLICATE", [15] = "SYNC",
    [16] = "SYNC_REPLY", [17] = "FETCH",
}

local dht_attrs = {
    [1] = "KEY", [2] = "ORIGIN", [3] = "REQ_ID", [4] = "PEERS", [5] = "LEVEL", [6] = "ROOT",
    [7] = "RECORD", [8] = "STATUS", [9] = "LO", [10] = "HI", [11] = "SUMMARY", [12] = "IDENTS",
    [13] = "SENDER_KEY", [14] = "COUNT", [15] = "AVOID", [16] = "PATH",
}

-- STATUS: 0, a negative errno (Linux numbers), or 1 in SYNC_REPLY (list truncated).
local errnos = {
    [1] = "list truncated (SYNC_REPLY)", [0] = "ok", [-1] = "EPERM", [-2] = "ENOENT",
    [-5] = "EIO", [-11] = "EAGAIN", [-12] = "ENOMEM", [-13] = "EACCES", [-16] = "EBUSY",
    [-17] = "EEXIST", [-22] = "EINVAL", [-28] = "ENOSPC", [-71] = "EPROTO", [-74] = "EBADMSG",
    [-90] = "EMSGSIZE", [-107] = "ENOTCONN", [-110] = "ETIMEDOUT", [-113] = "EHOSTUNREACH",
    [-116] = "ESTALE", [-125] = "ECANCELED",
}

local d = p2psip_dht.fields
d.version = ProtoField.uint8("p2psip.dht.version", "Version", base.DEC)
d.type = ProtoField.uint8("p2psip.dht.type", "Type", base.DEC, dht_types)
d.flags = ProtoField.uint8("p2psip.dht.flags", "Flags", base.HEX)
d.flag_ack_req = ProtoField.bool("p2psip.dht.flags.ack_req", "ACK_REQ", 8, nil, 0x01)
d.flag_want_reply = ProtoField.bool("p2psip.dht.flags.want_reply", "WANT_REPLY", 8, nil, 0x02)
d.flag_announce = ProtoField.bool("p2psip.dht.flags.announce", "ANNOUNCE", 8, nil, 0x04)
d.flag_client = ProtoField.bool("p2psip.dht.flags.client", "CLIENT", 8, nil, 0x08)
d.flag_maint = ProtoField.bool("p2psip.dht.flags.maint", "MAINT", 8, nil, 0x10)
d.flag_passed = ProtoField.bool("p2psip.dht.flags.passed", "PASSED", 8, nil, 0x20)
d.flag_trace = ProtoField.bool("p2psip.dht.flags.trace", "TRACE", 8, nil, 0x40)
d.hops = ProtoField.uint8("p2psip.dht.hops", "Hops", base.DEC)
d.txid = ProtoField.uint32("p2psip.dht.txid", "Transaction ID", base.HEX)
d.sender = ProtoField.bytes("p2psip.dht.sender", "Sender node ID")
d.length = ProtoField.uint16("p2psip.dht.length", "Length", base.DEC)
d.attr_code = ProtoField.uint16("p2psip.dht.attr.code", "Attribute", base.DEC, dht_attrs)
d.attr_len = ProtoField.uint16("p2psip.dht.attr.len", "Attribute length", base.DEC)
d.attr_value = ProtoField.bytes("p2psip.dht.attr.value", "Value (unknown attribute)")
d.key = ProtoField.bytes("p2psip.dht.key", "Key")
d.origin = ProtoField.bytes("p2psip.dht.origin", "Origin node ID")
d.root = ProtoField.bytes("p2psip.dht.root", "Root node ID")
d.peer = ProtoField.bytes("p2psip.dht.peer", "Peer node ID")
d.addr_len = ProtoField.uint8("p2psip.dht.addr_len", "Address length", base.DEC)
d.ipv4 = ProtoField.ipv4("p2psip.dht.ipv4", "IPv4 address")
d.ipv6 = ProtoField.ipv6("p2psip.dht.ipv6", "IPv6 address")
d.port = ProtoField.uint16("p2psip.dht.port", "Port", base.DEC)
d.addr = ProtoField.bytes("p2psip.dht.addr", "Address (opaque)")
d.req_id = ProtoField.uint32("p2psip.dht.req_id", "Request ID", base.HEX)
d.peers_count = ProtoField.uint8("p2psip.dht.peers.count", "Peers", base.DEC)
d.level = ProtoField.uint8("p2psip.dht.level", "Level", base.DEC)
d.status = ProtoField.int16("p2psip.dht.status", "Status", base.DEC, errnos)
d.lo = ProtoField.bytes("p2psip.dht.lo", "Range start (LO, inclusive)")
d.hi = ProtoField.bytes("p2psip.dht.hi", "Range end (HI, inclusive)")
d.summary_count = ProtoField.uint32("p2psip.dht.summary.count", "Summary: records", base.DEC)
d.summary_digest = ProtoField.bytes("p2psip.dht.summary.digest", "Summary: digest")
d.summary = ProtoField.bytes("p2psip.dht.summary", "Summary (opaque)")
d.idents_count = ProtoField.uint8("p2psip.dht.idents.count", "Identities", base.DEC)
d.ident_key = ProtoField.bytes("p2psip.dht.ident.key", "Key")
d.ident_value_id = ProtoField.bytes("p2psip.dht.ident.value_id", "Value ID")
d.ident_seq = ProtoField.uint64("p2psip.dht.ident.seq", "Sequence", base.DEC)
d.ident_flags = ProtoField.uint8("p2psip.dht.ident.flags", "Flags", base.HEX)
d.ident_tombstone = ProtoField.bool("p2psip.dht.ident.tombstone", "Tombstone", 8, nil, 0x01)
d.sender_key = ProtoField.bytes("p2psip.dht.sender_key", "Sender key (Ed25519)")
d.count = ProtoField.uint32("p2psip.dht.count", "Count", base.DEC)
d.avoid_count = ProtoField.uint8("p2psip.dht.avoid.count", "Nodes to avoid", base.DEC)
d.avoid = ProtoField.bytes("p2psip.dht.avoid", "Avoid node ID")
d.path_count = ProtoField.uint8("p2psip.dht.path.count", "Hops recorded", base.DEC)
d.path_id = ProtoField.bytes("p2psip.dht.path.id", "Hop node ID")
d.path_rtt = ProtoField.uint16("p2psip.dht.path.rtt_ms",
    "Smoothed RTT to the next hop (ms; 65535: not measured yet)", base.DEC)
d.rec_version = ProtoField.uint8("p2psip.dht.record.version", "Record version", base.DEC)
d.rec_flags = ProtoField.uint8("p2psip.dht.record.flags", "Record flags", base.HEX)
d.rec_tombstone = ProtoField.bool("p2psip.dht.record.tombstone", "Tombstone", 8, nil, 0x01)
d.rec_mailbox = ProtoField.bool("p2psip.dht.record.mailbox", "Mailbox", 8, nil, 0x02)
d.rec_key = ProtoField.bytes("p2psip.dht.record.key", "Key")
d.rec_value_id = ProtoField.bytes("p2psip.dht.record.value_id", "Value ID")
d.rec_seq = ProtoField.uint64("p2psip.dht.record.seq", "Sequence", base.DEC)
d.rec_expiry_ms = ProtoField.uint64("p2psip.dht.record.expiry_ms", "Expiry (Unix ms)", base.DEC)
d.rec_expiry = ProtoField.absolute_time("p2psip.dht.record.expiry", "Expiry", base.UTC)
d.rec_owner = ProtoField.bytes("p2psip.dht.record.owner", "Owner (Ed25519 public key)")
d.rec_sig = ProtoField.bytes("p2psip.dht.record.sig", "Signature")
d.rec_value_len = ProtoField.uint16("p2psip.dht.record.value_len", "Value length", base.DEC)
d.rec_value = ProtoField.bytes("p2psip.dht.record.value", "Value")
d.rec_value_text = ProtoField.string("p2psip.dht.record.value_text", "Value (text)")

local ef_dht = ProtoExpert.new("p2psip.dht.malformed", "Malformed DHT message",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_dht_type = ProtoExpert.new("p2psip.dht.type.unknown",
    "Unknown DHT message type (the node drops it)", expert.group.PROTOCOL, expert.severity.WARN)
local ef_dht_attr = ProtoExpert.new("p2psip.dht.attr.unknown",
    "Unknown attribute (skipped by its length)", expert.group.UNDECODED, expert.severity.NOTE)
p2psip_dht.experts = {ef_dht, ef_dht_type, ef_dht_attr}

-- A peer (ORIGIN, ROOT, each of PEERS): node ID 20, address length 1, address.
-- Returns the offset after it and a one-line summary, or nil (with expert info) when it
-- does not fit before stop.
local function dht_peer(tvb, tree, off, stop, idfield, label)
    if stop - off < 21 then
        tree:add_proto_expert_info(ef_dht, label .. ": shorter than ID + address length")
        return nil
    end
    local alen = tvb(off + 20, 1):uint()
    if alen > DHT_ADDR_MAX or stop - off - 21 < alen then
        local it = tree:add(d.addr_len, tvb(off + 20, 1))
        it:add_proto_expert_info(ef_dht, alen > DHT_ADDR_MAX and "address over 18 bytes" or
            "address runs past the attribute")
        return nil
    end
    local pt = tree:add(p2psip_dht, tvb(off, 21 + alen), label)
    pt:add(idfield, tvb(off, 20))
    pt:add(d.addr_len, tvb(off + 20, 1))
    local a = off + 21
    local where = ""
    if alen == 6 then
        pt:add(d.ipv4, tvb(a, 4))
        pt:add(d.port, tvb(a + 4, 2))
        where = string.format("%s:%d", tostring(tvb(a, 4):ipv4()), tvb(a + 4, 2):uint())
    elseif alen == 18 then
        pt:add(d.ipv6, tvb(a, 16))
        pt:add(d.port, tvb(a + 16, 2))
        where = string.format("[%s]:%d", tostring(tvb(a, 16):ipv6()), tvb(a + 16, 2):uint())
    elseif alen > 0 then
        pt:add(d.addr, tvb(a, alen))
        where = hex(tvb(a, alen))
    end
    local summary = string.format("%s %s", hex(tvb(off, 20)), where)
    pt:append_text(": " .. summary)
    return a + alen, summary
end

-- UInt64 milliseconds since the epoch as an NSTime.
local function ms_to_nstime(ms)
    local secs = (ms / 1000):tonumber()
    local rem = (ms % 1000):tonumber()
    return NSTime.new(secs, rem * 1000000)
end

-- One record (dht_record.h encoding) in [off, off + n).  Returns true when well-formed.
local function dht_record(tvb, tree, off, n)
    if n < 2 then
        tree:add_proto_expert_info(ef_dht, "record shorter than version and flags")
        return false
    end
    local vi = tree:add(d.rec_version, tvb(off, 1))
    if tvb(off, 1):uint() ~= 1 then
        vi:add_proto_expert_info(ef_dht, "record version must be 1")
        return false
    end
    local fl = tree:add(d.rec_flags, tvb(off + 1, 1))
    fl:add(d.rec_tombstone, tvb(off + 1, 1))
    fl:add(d.rec_mailbox, tvb(off + 1, 1))
    local flags = tvb(off + 1, 1):uint()
    if bit.band(flags, 0xfc) ~= 0 then
        fl:add_proto_expert_info(ef_dht, "unknown record flag bits")
        return false
    end
    if n < RECORD_HEADER_LEN then
        tree:add_proto_expert_info(ef_dht, string.format("record of %d bytes, at least 156", n))
        return false
    end
    tree:add(d.rec_key, tvb(off + 2, 20))
    tree:add(d.rec_value_id, tvb(off + 22, 20))
    tree:add(d.rec_seq, tvb(off + 42, 8))
    local ms = tvb(off + 50, 8):uint64()
    tree:add(d.rec_expiry_ms, tvb(off + 50, 8))
    tree:add(d.rec_expiry, tvb(off + 50, 8), ms_to_nstime(ms)):set_generated()
    tree:add(d.rec_owner, tvb(off + 58, 32))
    tree:add(d.rec_sig, tvb(off + 90, 64))
    local vlen = tvb(off + 154, 2):uint()
    local li = tree:add(d.rec_value_len, tvb(off + 154, 2))
    if vlen > RECORD_VALUE_MAX then
        li:add_proto_expert_info(ef_dht, "value over 4096 bytes")
        return false
    end
    if bit.band(flags, 1) ~= 0 and vlen ~= 0 then
        li:add_proto_expert_info(ef_dht, "a tombstone carries no value")
        return false
    end
    if n ~= RECORD_HEADER_LEN + vlen then
        li:add_proto_expert_info(ef_dht, string.format(
            "record attribute is %d bytes, the record %d", n, RECORD_HEADER_LEN + vlen))
        return false
    end
    tree:append_text(string.format(": key %s seq %s%s%s", hex(tvb(off + 2, 20)):sub(1, 8),
        tostring(tvb(off + 42, 8):uint64()), bit.band(flags, 1) ~= 0 and " (tombstone)" or "",
        bit.band(flags, 2) ~= 0 and " (mailbox)" or ""))
    if vlen > 0 then
        local vr = tvb(off + RECORD_HEADER_LEN, vlen)
        tree:add(d.rec_value, vr)
        local s = vr:raw()
        if not s:find("[^\32-\126]") then
            tree:add(d.rec_value_text, vr)
        end
    end
    return true
end

-- One attribute's value in [off, off + n); at is the attribute's subtree, m the state
-- of the message (single-valued attributes seen, record count, type).
-- Returns true when it decoded, false when the message is invalid.
local function dht_attr(tvb, at, code, off, n, m)
    local stop = off + n
    local function bad(msg)
        at:add_proto_expert_info(ef_dht, msg)
        return false
    end
    if code ~= 7 and dht_attrs[code] ~= nil then
        if m.seen[code] then
            return bad("second copy of a single-valued attribute")
        end
        m.seen[code] = true
    end
    if code == 1 or code == 9 or code == 10 then -- KEY, LO, HI
        if n ~= 20 then return bad("length must be 20") end
        local fld = code == 1 and d.key or code == 9 and d.lo or d.hi
        at:add(fld, tvb(off, 20))
        at:append_text(": " .. hex(tvb(off, 20)))
        if code == 1 then m.key = hex(tvb(off, 20)) end
        return true
    elseif code == 2 or code == 6 then -- ORIGIN, ROOT
        local e, summary = dht_peer(tvb, at, off, stop, code == 2 and d.origin or d.root,
            code == 2 and "Origin" or "Root")
        if e == nil then return false end
        at:append_text(": " .. summary)
        if e ~= stop then return bad("trailing bytes after the peer") end
        return true
    elseif code == 3 or code == 14 then -- REQ_ID, COUNT
        if n ~= 4 then return bad("length must be 4") end
        at:add(code == 3 and d.req_id or d.count, tvb(off, 4))
        at:append_text(code == 3 and string.format(": 0x%08x", tvb(off, 4):uint()) or ": " .. tostring(tvb(off, 4):uint()))
        return true
    elseif code == 4 then -- PEERS
        if n < 1 then return bad("no count") end
        local cnt = tvb(off, 1):uint()
        local ci = at:add(d.peers_count, tvb(off, 1))
        if cnt > DHT_PEERS_MAX then
            ci:add_proto_expert_info(ef_dht, "more than 48 peers")
            return false
        end
        at:append_text(string.format(": %d", cnt))
        local o = off + 1
        for i = 1, cnt do
            o = dht_peer(tvb, at, o, stop, d.peer, string.format("Peer %d", i))
            if o == nil then return false end
        end
        if o ~= stop then return bad("trailing bytes after the peers") end
        return true
    elseif code == 5 then -- LEVEL
        if n ~= 1 then return bad("length must be 1") end
        local li = at:add(d.level, tvb(off, 1))
        if tvb(off, 1):uint() >= DHT_ID_DIGITS then
            li:add_proto_expert_info(ef_dht, "level must be below 40")
            return false
        end
        return true
    elseif code == 7 then -- RECORD
        m.records = m.records + 1
        if m.records > DHT_RECORDS_MAX then return bad("more than 8 records") end
        return dht_record(tvb, at, off, n)
    elseif code == 8 then -- STATUS
        if n ~= 2 then return bad("length must be 2") end
        at:add(d.status, tvb(off, 2))
        at:append_text(": " .. tostring(tvb(off, 2):int()))
        return true
    elseif code == 11 then -- SUMMARY
        if n > 64 then return bad("longer than 64 bytes") end
        if n == 20 then
            at:add(d.summary_count, tvb(off, 4))
            at:add(d.summary_digest, tvb(off + 4, 16))
            at:append_text(string.format(": %d records", tvb(off, 4):uint()))
        elseif n > 0 then
            at:add(d.summary, tvb(off, n))
        end
        return true
    elseif code == 12 then -- IDENTS
        if n < 1 then return bad("no count") end
        local cnt = tvb(off, 1):uint()
        local ci = at:add(d.idents_count, tvb(off, 1))
        if cnt > DHT_IDENTS_MAX then
            ci:add_proto_expert_info(ef_dht, "more than 64 identities")
            return false
        end
        if n ~= 1 + 49 * cnt then return bad(string.format("length must be 1 + 49 x %d", cnt)) end
        at:append_text(string.format(": %d", cnt))
        for i = 0, cnt - 1 do
            local o = off + 1 + 49 * i
            local it = at:add(p2psip_dht, tvb(o, 49), string.format("Identity %d", i + 1))
            it:add(d.ident_key, tvb(o, 20))
            it:add(d.ident_value_id, tvb(o + 20, 20))
            it:add(d.ident_seq, tvb(o + 40, 8))
            local fi = it:add(d.ident_flags, tvb(o + 48, 1))
            fi:add(d.ident_tombstone, tvb(o + 48, 1))
            if bit.band(tvb(o + 48, 1):uint(), 0xfe) ~= 0 then
                fi:add_proto_expert_info(ef_dht, "unknown identity flag bits")
                return false
            end
        end
        return true
    elseif code == 13 then -- SENDER_KEY
        if n ~= 32 then return bad("length must be 32") end
        at:add(d.sender_key, tvb(off, 32))
        return true
    elseif code == 15 then -- AVOID
        if n < 1 then return bad("no count") end
        local cnt = tvb(off, 1):uint()
        local ci = at:add(d.avoid_count, tvb(off, 1))
        if cnt == 0 or cnt > DHT_AVOID_MAX then
            ci:add_proto_expert_info(ef_dht, "count must be 1 to 6")
            return false
        end
        if n ~= 1 + 20 * cnt then return bad(string.format("length must be 1 + 20 x %d", cnt)) end
        for i = 0, cnt - 1 do
            at:add(d.avoid, tvb(off + 1 + 20 * i, 20))
        end
        return true
    elseif code == 16 then -- PATH
        if n < 1 then return bad("no count") end
        local cnt = tvb(off, 1):uint()
        local ci = at:add(d.path_count, tvb(off, 1))
        if cnt == 0 or cnt > DHT_PATH_MAX then
            ci:add_proto_expert_info(ef_dht, "count must be 1 to 12")
            return false
        end
        if n ~= 1 + 22 * cnt then return bad(string.format("length must be 1 + 22 x %d", cnt)) end
        at:append_text(string.format(": %d hops", cnt))
        for i = 0, cnt - 1 do
            local o = off + 1 + 22 * i
            local ht = at:add(p2psip_dht, tvb(o, 22), string.format("Hop %d: %s", i + 1,
                hex(tvb(o, 20))))
            ht:add(d.path_id, tvb(o, 20))
            ht:add(d.path_rtt, tvb(o + 20, 2))
        end
        return true
    end
    if n > 0 then
        at:add(d.attr_value, tvb(off, n))
    end
    at:add_proto_expert_info(ef_dht_attr)
    return true
end

-- Dissects one DHT message filling tvb; returns a summary for the Info column.
local function dissect_dht(tvb, pinfo, tree)
    local len = tvb:len()
    local t = tree:add(p2psip_dht, tvb(), "P2PSIP DHT message")
    if len < DHT_HEADER_LEN then
        t:add_proto_expert_info(ef_dht, string.format("%d bytes, shorter than the 30-byte header",
            len))
        return "DHT (short)"
    end
    local vi = t:add(d.version, tvb(0, 1))
    if tvb(0, 1):uint() ~= 1 then
        vi:add_proto_expert_info(ef_dht, "version must be 1")
        return "DHT (bad version)"
    end
    local ty = tvb(1, 1):uint()
    local ti = t:add(d.type, tvb(1, 1))
    local name = dht_types[ty]
    if name == nil then
        ti:add_proto_expert_info(ef_dht_type)
        name = string.format("type %d", ty)
    end
    local fi = t:add(d.flags, tvb(2, 1))
    fi:add(d.flag_ack_req, tvb(2, 1))
    fi:add(d.flag_want_reply, tvb(2, 1))
    fi:add(d.flag_announce, tvb(2, 1))
    fi:add(d.flag_client, tvb(2, 1))
    fi:add(d.flag_maint, tvb(2, 1))
    fi:add(d.flag_passed, tvb(2, 1))
    fi:add(d.flag_trace, tvb(2, 1))
    t:add(d.hops, tvb(3, 1))
    t:add(d.txid, tvb(4, 4))
    t:add(d.sender, tvb(8, 20))
    local li = t:add(d.length, tvb(28, 2))
    t:append_text(string.format(", %s from %s", name, hex(tvb(8, 20)):sub(1, 8)))
    local info = string.format("%s txid=0x%08x from %s", name, tvb(4, 4):uint(),
        hex(tvb(8, 20)):sub(1, 8))
    if tvb(28, 2):uint() ~= len then
        li:add_proto_expert_info(ef_dht, string.format("length field %d, message %d bytes",
            tvb(28, 2):uint(), len))
        return info .. " [malformed]"
    end

    local m = {seen = {}, records = 0}
    local off, nattr = DHT_HEADER_LEN, 0
    while off < len do
        nattr = nattr + 1
        if nattr > DHT_ATTRS_MAX then
            t:add_proto_expert_info(ef_dht, "more than 64 attributes")
            return info .. " [malformed]"
        end
        if len - off < 4 then
            local it = t:add(d.attr_value, tvb(off, len - off))
            it:add_proto_expert_info(ef_dht, "attribute header runs past the end")
            return info .. " [malformed]"
        end
        local code, alen = tvb(off, 2):uint(), tvb(off + 2, 2):uint()
        local at = t:add(p2psip_dht, tvb(off, len - off < 4 + alen and len - off or 4 + alen),
            dht_attrs[code] or string.format("Attribute %d", code))
        at:add(d.attr_code, tvb(off, 2))
        local ali = at:add(d.attr_len, tvb(off + 2, 2))
        if alen > len - off - 4 then
            ali:add_proto_expert_info(ef_dht, "attribute runs past the end of the message")
            return info .. " [malformed]"
        end
        if not dht_attr(tvb, at, code, off + 4, alen, m) then
            return info .. " [malformed]"
        end
        off = off + 4 + alen
    end
    if m.key ~= nil then
        info = info .. " key " .. m.key:sub(1, 8)
    end
    return info
end

function p2psip_dht.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "P2PSIP-DHT"
    pinfo.cols.info = dissect_dht(tvb, pinfo, tree)
    return tvb:len()
end

-- ---- --trace-pcap records (p2psipd/trace_pcap.h) ----------------------------------------

local TRACE_HDR_LEN = 70
local trace_events = {[0] = "sent", [1] = "received", [2] = "dropped"}

local tf = p2psip_trace.fields
tf.magic = ProtoField.string("p2psip.trace.magic", "Magic")
tf.version = ProtoField.uint8("p2psip.trace.version", "Version", base.DEC)
tf.hdr_len = ProtoField.uint8("p2psip.trace.hdr_len", "Header length", base.DEC)
tf.event = ProtoField.uint8("p2psip.trace.event", "Event", base.DEC, trace_events)
tf.addr_len = ProtoField.uint8("p2psip.trace.addr_len", "Peer address length", base.DEC)
tf.reason = ProtoField.int16("p2psip.trace.reason", "Drop reason", base.DEC, errnos)
tf.self = ProtoField.bytes("p2psip.trace.self", "Own node ID")
tf.peer = ProtoField.bytes("p2psip.trace.peer", "Peer node ID")
tf.ipv4 = ProtoField.ipv4("p2psip.trace.ipv4", "Peer IPv4 address")
tf.ipv6 = ProtoField.ipv6("p2psip.trace.ipv6", "Peer IPv6 address")
tf.port = ProtoField.uint16("p2psip.trace.port", "Peer port", base.DEC)
tf.addr = ProtoField.bytes("p2psip.trace.addr", "Peer address (opaque)")

local ef_trace = ProtoExpert.new("p2psip.trace.malformed", "Malformed trace record",
    expert.group.MALFORMED, expert.severity.ERROR)
p2psip_trace.experts = {ef_trace}

function p2psip_trace.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "P2PSIP-TRACE"
    local t = tree:add(p2psip_trace, tvb(0, len < TRACE_HDR_LEN and len or TRACE_HDR_LEN))
    if len < TRACE_HDR_LEN or tvb(0, 4):string() ~= "P2PT" then
        t:add_proto_expert_info(ef_trace, "not a p2psipd --trace-pcap record")
        pinfo.cols.info = "not a trace record"
        return len
    end
    t:add(tf.magic, tvb(0, 4))
    local vi = t:add(tf.version, tvb(4, 1))
    local hi = t:add(tf.hdr_len, tvb(5, 1))
    local hlen = tvb(5, 1):uint()
    if tvb(4, 1):uint() ~= 1 or hlen < TRACE_HDR_LEN or hlen > len then
        vi:add_proto_expert_info(ef_trace, "unknown version or header length")
        return len
    end
    local ev = tvb(6, 1):uint()
    t:add(tf.event, tvb(6, 1))
    local alen = tvb(7, 1):uint()
    local ai = t:add(tf.addr_len, tvb(7, 1))
    t:add(tf.reason, tvb(8, 2))
    t:add(tf.self, tvb(12, 20))
    t:add(tf.peer, tvb(32, 20))
    local where = ""
    if alen == 6 then
        t:add(tf.ipv4, tvb(52, 4))
        t:add(tf.port, tvb(56, 2))
        where = string.format(" %s:%d", tostring(tvb(52, 4):ipv4()), tvb(56, 2):uint())
    elseif alen == 18 then
        t:add(tf.ipv6, tvb(52, 16))
        t:add(tf.port, tvb(68, 2))
        where = string.format(" [%s]:%d", tostring(tvb(52, 16):ipv6()), tvb(68, 2):uint())
    elseif alen > 0 and alen <= DHT_ADDR_MAX then
        t:add(tf.addr, tvb(52, alen))
    elseif alen > DHT_ADDR_MAX then
        ai:add_proto_expert_info(ef_trace, "address over 18 bytes")
    end
    local me, peer = hex(tvb(12, 20)):sub(1, 8), hex(tvb(32, 20)):sub(1, 8)
    local evname = trace_events[ev] or string.format("event %d", ev)
    t:append_text(string.format(", %s, %s %s%s", evname, ev == 0 and "to" or "from", peer, where))
    if ev == 0 then
        pinfo.cols.src = me
        pinfo.cols.dst = peer .. where
    else
        pinfo.cols.src = peer .. where
        pinfo.cols.dst = me
    end
    if hlen >= len then
        t:add_proto_expert_info(ef_trace, "no DHT message after the header")
        pinfo.cols.info = "no DHT message"
        return len
    end
    local info = dissect_dht(tvb(hlen):tvb(), pinfo, tree)
    pinfo.cols.protocol = "P2PSIP-DHT"
    pinfo.cols.info = string.format("[%s] %s", evname, info)
    if ev == 2 then
        pinfo.cols.info:append(string.format(" (dropped: %s)",
            errnos[tvb(8, 2):int()] or tostring(tvb(8, 2):int())))
    end
    return len
end

-- ---- registration ----------------------------------------------------------------------

local registered = {}

local function register_ports()
    local udp = DissectorTable.get("udp.port")
    local tcp = DissectorTable.get("tcp.port")
    if registered.udp then udp:remove(registered.udp, p2psip) end
    if registered.disc then udp:remove(registered.disc, p2psip) end
    if registered.tcp then tcp:remove(registered.tcp, p2psip_tcp) end
    registered.udp = p2psip.prefs.udp_port
    registered.disc = p2psip.prefs.disc_port
    registered.tcp = p2psip.prefs.tcp_port
    udp:add(registered.udp, p2psip)
    udp:add(registered.disc, p2psip)
    tcp:add(registered.tcp, p2psip_tcp)
end

function p2psip.prefs_changed()
    register_ports()
end

register_ports()
DissectorTable.get("wtap_encap"):add(wtap_encaps.USER0, p2psip_trace)

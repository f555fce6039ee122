/*
 * trace_pcap.h: --trace-pcap, every DHT message the node sends and receives, after
 * decryption, in a pcap file for Wireshark (scripts/wireshark/p2psip.lua).
 *
 * File format: classic pcap (microsecond timestamps, written little-endian), link type
 * LINKTYPE_USER0 (147).  Each packet is a pseudo-header of TRACE_PCAP_HDR_LEN bytes,
 * big-endian, then the DHT message exactly as it travelled inside the channel
 * (docs/DHT-WIRE.md):
 *
 *   offset size field
 *        0    4 magic "P2PT"
 *        4    1 version 1
 *        5    1 header length (70)
 *        6    1 event: 0 sent, 1 received, 2 received and dropped by the DHT
 *        7    1 peer address length: 0, 6 (IPv4 + port) or 18 (IPv6 + port)
 *        8    2 reason: i16, 0 or the negative errno a dropped message was refused with
 *       10    2 reserved, 0
 *       12   20 own node ID
 *       32   20 peer node ID: the destination, or the sender (all zero when unknown)
 *       52   18 peer address in the DHT's encoding, zero-padded
 *
 * Design.  Records are collected in a buffer of TRACE_PCAP_BUF bytes and written when
 * it fills, on trace_pcap_flush() (the daemon calls it twice a second) and at close,
 * so the node does one write(2) per buffer, not per message.  The file never exceeds
 * its cap: the first record that would cross it stops the trace for good, logged
 * once; so does the first write error.  The file is created (or truncated) mode 0600:
 * it holds the overlay's traffic in clear.
 */
#ifndef P2PSIPD_TRACE_PCAP_H
#define P2PSIPD_TRACE_PCAP_H

#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/dht_node.h"
#include "p2p/log.h"

#define TRACE_PCAP_LINKTYPE 147 /* LINKTYPE_USER0 */
#define TRACE_PCAP_HDR_LEN 70
#define TRACE_PCAP_BUF (256 * 1024)

struct trace_pcap;

/*
 * Creates (or truncates) path with mode 0600 and writes the pcap file header.  self is
 * the node's ID, put in every record; max_bytes caps the file's size (at least the
 * 24-byte file header).  log is borrowed and must outlive the trace.  Returns 0 and
 * *out, or a negative errno (the file could not be opened or written).
 */
int trace_pcap_open(struct trace_pcap **out, const char *path, uint64_t max_bytes,
                    const struct dht_id *self, struct p2p_log *log);

/*
 * Appends one record: the DHT message buf[0..len) seen as ev, to or from peer (NULL:
 * unknown), with reason the drop's -errno or 0.  Never fails from the caller's point of
 * view: past the cap or after a write error the trace is off and records are ignored.
 */
void trace_pcap_record(struct trace_pcap *t, enum dht_obs_event ev, const struct dht_peer *peer,
                       const uint8_t *buf, size_t len, int reason);

/* Writes what is buffered.  Returns 0 or a negative errno (then the trace is off). */
int trace_pcap_flush(struct trace_pcap *t);

/* Flushes and closes; returns 0 or the first error the trace met.  NULL is a no-op. */
int trace_pcap_close(struct trace_pcap *t);

#endif

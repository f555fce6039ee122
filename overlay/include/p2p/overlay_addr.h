/*
 * overlay_addr.h: socket addresses as the overlay and its SIP transport use them.
 *
 * One set of helpers for struct sockaddr_storage holding an AF_INET or AF_INET6
 * address (anything else compares unequal and prints as "-"), and the dht_addr
 * encoding of such an address that node records and DHT messages carry.
 */
#ifndef P2P_OVERLAY_ADDR_H
#define P2P_OVERLAY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "p2p/dht_msg.h"

/* Family and address equal, whatever the ports (and scope ids). */
bool overlay_addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Family, port and address equal (and, for IPv6, the scope id). */
bool overlay_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* dst = src (AF_INET or AF_INET6), the rest of dst zeroed. */
void overlay_addr_copy(struct sockaddr_storage *dst, const struct sockaddr *src);

/* The wildcard address of family (AF_INET: 0.0.0.0, AF_INET6: ::) with port. */
void overlay_addr_any(struct sockaddr_storage *out, int family, uint16_t port);

/* "198.18.0.11:7560" or "[2001:2::11]:7560" into buf (at least 64 bytes). */
const char *overlay_addr_text(const struct sockaddr_storage *ss, char *buf, size_t size);

/*
 * The dht_addr encoding of a socket address: 6 bytes (IPv4 address, port) or 18
 * bytes (IPv6 address, port), big-endian.  Returns 0, -EAFNOSUPPORT; from_dht
 * returns -EINVAL for port 0.
 */
int overlay_addr_to_dht(const struct sockaddr_storage *ss, struct dht_addr *out);
int overlay_addr_from_dht(const struct dht_addr *a, struct sockaddr_storage *out);

#endif

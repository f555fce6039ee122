/*
 * addr.c: socket address helpers shared by the node and the SIP transport
 * (overlay_addr.h).
 */
#include "p2p/overlay_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

bool overlay_addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

bool overlay_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (!overlay_addr_same_host(a, b))
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_port ==
               ((const struct sockaddr_in *)b)->sin_port;
    return ((const struct sockaddr_in6 *)a)->sin6_port ==
               ((const struct sockaddr_in6 *)b)->sin6_port &&
           ((const struct sockaddr_in6 *)a)->sin6_scope_id ==
               ((const struct sockaddr_in6 *)b)->sin6_scope_id;
}

void overlay_addr_copy(struct sockaddr_storage *dst, const struct sockaddr *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->sa_family == AF_INET6)
        memcpy(dst, src, sizeof(struct sockaddr_in6));
    else if (src->sa_family == AF_INET)
        memcpy(dst, src, sizeof(struct sockaddr_in));
}

const char *overlay_addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        snprintf(buf, size, "-");
    }
    return buf;
}

int overlay_addr_to_dht(const struct sockaddr_storage *ss, struct dht_addr *out)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        out->len = 6;
        memcpy(out->b, &a->sin_addr, 4);
        memcpy(out->b + 4, &a->sin_port, 2);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        out->len = 18;
        memcpy(out->b, &a->sin6_addr, 16);
        memcpy(out->b + 16, &a->sin6_port, 2);
        return 0;
    }
    return -EAFNOSUPPORT;
}

int overlay_addr_from_dht(const struct dht_addr *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (a->len == 6) {
        struct sockaddr_in *s = (struct sockaddr_in *)out;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, a->b, 4);
        memcpy(&s->sin_port, a->b + 4, 2);
        return s->sin_port != 0 ? 0 : -EINVAL;
    }
    if (a->len == 18) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a->b, 16);
        memcpy(&s->sin6_port, a->b + 16, 2);
        return s->sin6_port != 0 ? 0 : -EINVAL;
    }
    return -EAFNOSUPPORT;
}

void overlay_addr_any(struct sockaddr_storage *out, int family, uint16_t port)
{
    memset(out, 0, sizeof(*out));
    if (family == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;
        s->sin6_family = AF_INET6;
        s->sin6_addr = in6addr_any;
        s->sin6_port = htons(port);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)out;
        s->sin_family = AF_INET;
        s->sin_addr.s_addr = htonl(INADDR_ANY);
        s->sin_port = htons(port);
    }
}

/*
 * fuzz_sip_dns.c: libFuzzer entry for the RFC 3263 DNS answer parsers.
 *
 * The input is taken as a DNS response packet and given to the NAPTR and SRV
 * parsers (the SRV weights drawn from the input's own bytes), then to the whole
 * plan with a query function that answers every question with the input.  Checks:
 * no read outside the packet (ASan), counts within their caps, names
 * NUL-terminated, NAPTR records of one order sorted by preference, SRV records in
 * non-decreasing priority, a plan never empty on success.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/overlay_sip_resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

struct input {
    const uint8_t *data;
    size_t size, pos;
    int queries;
};

static uint32_t draw(uint32_t upper_bound, void *arg)
{
    struct input *in = arg;
    uint32_t v = in->size ? in->data[in->pos++ % in->size] : 0;
    return v % upper_bound;
}

static int answer(const char *name, int type, uint8_t *buf, size_t bufsize, void *arg)
{
    struct input *in = arg;
    (void)type;
    check(strlen(name) < OVERLAY_SIP_RESOLVER_NAME_MAX);
    check(++in->queries <= OVERLAY_SIP_RESOLVER_MAX_RR + 3); /* NAPTR + one SRV each */
    if (in->size > bufsize)
        return -EMSGSIZE;
    memcpy(buf, in->data, in->size);
    return (int)in->size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct overlay_sip_naptr naptr[OVERLAY_SIP_RESOLVER_MAX_RR];
    struct overlay_sip_srv srv[OVERLAY_SIP_RESOLVER_MAX_RR];
    struct overlay_sip_target t[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    struct input in = {data, size, 0, 0};
    unsigned both = OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP;
    size_t n = 0;

    if (overlay_sip_naptr_parse(data, size, both, naptr, OVERLAY_SIP_RESOLVER_MAX_RR, &n) == 0) {
        check(n >= 1 && n <= OVERLAY_SIP_RESOLVER_MAX_RR);
        for (size_t i = 0; i < n; i++) {
            check(naptr[i].transport == SIP_TSX_UDP || naptr[i].transport == SIP_TSX_TCP);
            check(memchr(naptr[i].replacement, '\0', sizeof(naptr[i].replacement)) != NULL);
            check(naptr[i].order == naptr[0].order);
            check(i == 0 || naptr[i - 1].preference <= naptr[i].preference);
        }
    }
    if (overlay_sip_srv_parse(data, size, draw, &in, srv, OVERLAY_SIP_RESOLVER_MAX_RR, &n) == 0) {
        check(n >= 1 && n <= OVERLAY_SIP_RESOLVER_MAX_RR);
        for (size_t i = 0; i < n; i++) {
            check(memchr(srv[i].target, '\0', sizeof(srv[i].target)) != NULL);
            check(i == 0 || srv[i - 1].priority <= srv[i].priority);
        }
    }
    for (int tp = -1; tp <= SIP_TSX_TCP; tp++) {
        in.queries = 0;
        if (overlay_sip_resolver_plan("example.com", tp, both, tp != 0, answer, &in, draw, &in, t,
                                      OVERLAY_SIP_RESOLVER_MAX_TARGETS, &n) == 0) {
            check(n >= 1 && n <= OVERLAY_SIP_RESOLVER_MAX_TARGETS);
            for (size_t i = 0; i < n; i++)
                check(t[i].transport == SIP_TSX_UDP || t[i].transport == SIP_TSX_TCP);
        }
    }
    return 0;
}

/*
 * locator.c: "who am I" (struct sip_self) and the local-only locator.
 *
 * The local locator answers lookups from a registrar's own bindings and accepts
 * every publish (the registrar already holds the bindings in memory).  Because a
 * locator must never complete inside the call (sip_locator.h), operations wait in
 * a fixed ring of max_pending slots until sip_locator_local_run(); a full ring
 * refuses new operations with -EAGAIN.
 *
 * Invariant: ring[head .. head+count) are the waiting operations, in arrival order.
 */
#include "p2p/sip_locator.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/sip_registrar.h"

/* ---- struct sip_self ---- */

static struct p2p_slice unbracket(struct p2p_slice h)
{
    if (h.len >= 2 && h.p[0] == '[' && h.p[h.len - 1] == ']') {
        h.p++;
        h.len -= 2;
    }
    return h;
}

int sip_self_add_addr(struct sip_self *self, const char *host, uint16_t port)
{
    struct sip_self_addr *a;

    if (port == 0)
        return -EINVAL;
    if (self->naddrs == SIP_SELF_MAX)
        return -ENOSPC;
    a = &self->addrs[self->naddrs];
    if (p2p_slice_copy(p2p_slice_cstr(host), a->host, sizeof(a->host)) != 0)
        return -ENOSPC;
    a->port = port;
    self->naddrs++;
    return 0;
}

int sip_self_add_domain(struct sip_self *self, const char *domain)
{
    if (self->ndomains == SIP_SELF_DOMAINS_MAX)
        return -ENOSPC;
    if (p2p_slice_copy(p2p_slice_cstr(domain), self->domains[self->ndomains],
                       sizeof(self->domains[0])) != 0)
        return -ENOSPC;
    self->ndomains++;
    return 0;
}

bool sip_self_has_host(const struct sip_self *self, struct p2p_slice host)
{
    host = unbracket(host);
    for (size_t i = 0; i < self->naddrs; i++) {
        if (p2p_slice_caseeq(unbracket(p2p_slice_cstr(self->addrs[i].host)), host))
            return true;
    }
    return false;
}

/*
 * Our overlay name: "<node id>.node.invalid", or "<node id>.<super-node id>.node.invalid"
 * while we are a client; a name of either form whose first label is our node ID is us
 * (the super-node part may have changed since a dialog began).
 */
static bool is_node_host(const struct sip_self *self, struct p2p_slice host)
{
    static const char suffix[] = ".node.invalid";
    const size_t sl = sizeof(suffix) - 1;
    const char *dot = memchr(self->node_host, '.', sizeof(self->node_host));
    size_t label;

    if (self->node_host[0] == '\0' || dot == NULL || host.len <= sl ||
        !p2p_slice_caseeq((struct p2p_slice){host.p + host.len - sl, sl}, P2P_SLICE_LIT(suffix)))
        return false;
    label = (size_t)(dot - self->node_host);
    return host.len > label && host.p[label] == '.' &&
           p2p_slice_caseeq((struct p2p_slice){host.p, label},
                            (struct p2p_slice){self->node_host, label});
}

bool sip_self_is_me(const struct sip_self *self, struct p2p_slice host, uint16_t port)
{
    if (is_node_host(self, host) && (port == 0 || port == self->default_port))
        return true;
    /* RFC 3261 16.4: host AND port; an absent port is the default one. */
    if (port == 0)
        port = self->default_port;
    host = unbracket(host);
    for (size_t i = 0; i < self->naddrs; i++) {
        if (self->addrs[i].port == port &&
            p2p_slice_caseeq(unbracket(p2p_slice_cstr(self->addrs[i].host)), host))
            return true;
    }
    return false;
}

static bool is_ip_literal(struct p2p_slice h)
{
    if (h.len > 0 && h.p[0] == '[')
        return true;
    for (size_t i = 0; i < h.len; i++) {
        if (!((h.p[i] >= '0' && h.p[i] <= '9') || h.p[i] == '.'))
            return false;
    }
    return h.len > 0;
}

bool sip_self_is_domain(const struct sip_self *self, struct p2p_slice host, uint16_t port)
{
    if (sip_self_is_me(self, host, port))
        return true;
    if (self->ndomains == 0)
        return !is_ip_literal(host);
    for (size_t i = 0; i < self->ndomains; i++) {
        if (p2p_slice_caseeq(p2p_slice_cstr(self->domains[i]), host))
            return true;
    }
    return false;
}

/* ---- the local-only locator ---- */

struct local_op {
    bool is_lookup;
    char aor[SIP_AOR_MAX];
    sip_locator_lookup_cb lookup_cb;
    sip_locator_publish_cb publish_cb;
    void *arg;
};

struct sip_locator_local {
    struct sip_registrar *reg;
    struct local_op *ring;
    size_t max, head, count;
};

static struct local_op *op_push(struct sip_locator_local *loc)
{
    struct local_op *op;

    if (loc->count == loc->max)
        return NULL;
    op = &loc->ring[(loc->head + loc->count) % loc->max];
    loc->count++;
    return op;
}

static int local_lookup(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg)
{
    struct sip_locator_local *loc = ctx;
    struct local_op *op;

    if (strlen(aor) >= SIP_AOR_MAX)
        return -EINVAL;
    op = op_push(loc);
    if (!op)
        return -EAGAIN;
    op->is_lookup = true;
    memcpy(op->aor, aor, strlen(aor) + 1);
    op->lookup_cb = cb;
    op->arg = arg;
    return 0;
}

static int local_publish(void *ctx, const struct sip_binding_change *changes, size_t n,
                         sip_locator_publish_cb cb, void *arg)
{
    struct sip_locator_local *loc = ctx;
    struct local_op *op;

    (void)changes;
    if (n == 0 || n > SIP_PUBLISH_MAX)
        return -EINVAL;
    op = op_push(loc);
    if (!op)
        return -EAGAIN;
    op->is_lookup = false;
    op->publish_cb = cb;
    op->arg = arg;
    return 0;
}

static const struct sip_locator_ops local_ops = {
    .lookup = local_lookup,
    .publish = local_publish,
};

int sip_locator_local_new(struct sip_locator_local **out, size_t max_pending)
{
    struct sip_locator_local *loc;

    if (max_pending == 0)
        return -EINVAL;
    loc = calloc(1, sizeof(*loc));
    if (!loc)
        return -ENOMEM;
    loc->ring = calloc(max_pending, sizeof(*loc->ring));
    if (!loc->ring) {
        free(loc);
        return -ENOMEM;
    }
    loc->max = max_pending;
    *out = loc;
    return 0;
}

/* Takes the oldest op off the ring and completes it with status (0: for real). */
static void op_complete(struct sip_locator_local *loc, int status, uint64_t now_ms)
{
    struct local_op op = loc->ring[loc->head];

    loc->head = (loc->head + 1) % loc->max;
    loc->count--;
    if (op.is_lookup) {
        struct sip_binding b[SIP_LOOKUP_MAX];
        int n = status;
        if (status == 0)
            n = loc->reg ? sip_registrar_lookup(loc->reg, op.aor, now_ms, b, SIP_LOOKUP_MAX)
                         : -ENOENT;
        op.lookup_cb(n < 0 ? n : 0, b, n < 0 ? 0 : (size_t)n, op.arg);
    } else {
        op.publish_cb(status, op.arg);
    }
}

void sip_locator_local_free(struct sip_locator_local *loc)
{
    if (!loc)
        return;
    while (loc->count > 0)
        op_complete(loc, -ECANCELED, 0);
    free(loc->ring);
    free(loc);
}

void sip_locator_local_attach(struct sip_locator_local *loc, struct sip_registrar *reg)
{
    loc->reg = reg;
}

struct sip_locator sip_locator_local_get(struct sip_locator_local *loc)
{
    struct sip_locator l = {&local_ops, loc};
    return l;
}

size_t sip_locator_local_run(struct sip_locator_local *loc, uint64_t now_ms)
{
    size_t n = loc->count;

    /* Only what was queued before this call: callbacks may queue more. */
    for (size_t i = 0; i < n; i++)
        op_complete(loc, 0, now_ms);
    return n;
}

size_t sip_locator_local_pending(const struct sip_locator_local *loc)
{
    return loc->count;
}

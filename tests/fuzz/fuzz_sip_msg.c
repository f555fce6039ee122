/*
 * fuzz_sip_msg.c: libFuzzer entry for the SIP message layer.
 *
 * Parses the input as a datagram and as a stream (walking every message the
 * stream holds), runs validation and every typed parser over every header value,
 * the URI parser over every URI found, and the builders over what parses.  The
 * checks below are the parser's own contracts (slices inside the input, caps,
 * consumed length), so a violation aborts like a sanitizer report would.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static void in_input(struct p2p_slice s, const char *buf, size_t len)
{
    if (s.len == 0)
        return;
    check(s.p >= buf && s.p + s.len <= buf + len);
}

static void uri(struct p2p_slice s)
{
    struct sip_uri u, v;
    char aor[256];

    if (sip_uri_parse(s, &u) != 0)
        return;
    check(sip_uri_equal(&u, &u));
    int n = sip_uri_aor(&u, aor, sizeof(aor));
    check(n == -ENOSPC || n == -EBADMSG || (n >= 0 && (size_t)n == strlen(aor)));
    if (n > 0 && sip_uri_parse(p2p_slice_cstr(aor), &v) == 0) {
        /* the canonical form is a fixed point */
        char again[256];
        check(sip_uri_aor(&v, again, sizeof(again)) == n && memcmp(aor, again, (size_t)n) == 0);
    }
}

static void typed(const struct sip_msg *m)
{
    for (size_t i = 0; i < m->nhdrs; i++) {
        const struct sip_hdr *h = &m->hdrs[i];
        struct p2p_slice rest = h->value, v;
        while (sip_list_next(&rest, &v)) {
            struct sip_via via;
            struct sip_addr a;
            struct sip_contact c;
            struct sip_cseq cs;
            struct sip_media_type mt;
            struct sip_auth au;
            struct sip_param prm;
            uint32_t u;
            char tmp[128];
            if (sip_via_parse(v, &via) == 0)
                check(via.host.len > 0);
            if (sip_addr_parse(v, &a) == 0)
                uri(a.uri);
            if (sip_contact_parse(v, &c) == 0 && !c.star)
                uri(c.addr.uri);
            (void)sip_cseq_parse(v, &cs);
            (void)sip_media_type_parse(v, &mt);
            (void)sip_uint_parse(v, UINT32_MAX, &u);
            if (sip_auth_parse(h->value, &au) == 0) {
                struct p2p_slice r = au.params;
                while (sip_auth_param_next(&r, &prm) == 1)
                    (void)sip_unquote(prm.value, tmp, sizeof(tmp));
            }
            struct p2p_slice pr = v;
            for (int k = 0; k < 64 && sip_param_next(&pr, &prm) == 1; k++)
                ;
        }
        struct sip_hdr_iter it;
        sip_hdr_iter_init(&it, m, h->id);
        size_t cnt = 0;
        while (sip_hdr_iter_next(&it, &v) && cnt < 1000)
            cnt++;
    }
}

static void build(const struct sip_msg *m, bool parsed)
{
    struct p2p_buf out;
    static struct sip_msg back;

    if (!m->is_request)
        return;
    p2p_buf_init(&out, 2 * SIP_MSG_MAX_SIZE);
    if (!parsed)
        goto answer;
    struct sip_fwd f = {
        .ruri = P2P_SLICE_LIT("sip:x@192.0.2.1"),
        .via = P2P_SLICE_LIT("SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKf"),
        .record_route = P2P_SLICE_LIT("<sip:192.0.2.2;lr>"),
        .pop_routes = 1,
        .src = {P2P_SLICE_LIT("192.0.2.3"), 5060},
    };
    if (sip_build_forward(m, &f, &out) == 0) {
        /* what we forward must parse again */
        int rc = sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL);
        check(rc == (int)out.len || rc == -EMSGSIZE);
    }
    p2p_buf_reset(&out);
    f.pop_routes = 0;
    if (sip_build_forward(m, &f, &out) == 0) {
        int rc = sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL);
        check(rc == (int)out.len || rc == -EMSGSIZE);
    }
    p2p_buf_reset(&out);
    (void)sip_build_cancel(m, &out);
    p2p_buf_reset(&out);
    (void)sip_build_ack(m, m, &out);
answer:
    if (sip_msg_answerable(m)) {
        struct sip_resp r = {
            .status = 400, .to_tag = P2P_SLICE_LIT("t"), .src = {P2P_SLICE_LIT("192.0.2.3"), 5060}};
        p2p_buf_reset(&out);
        if (sip_build_response(m, &r, &out) == 0)
            check(sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL) > 0);
    }
    p2p_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sip_msg m;
    const char *buf = (const char *)data;
    struct sip_parse_err err;

    int rc = sip_msg_parse(&m, buf, size, SIP_MSG_DGRAM, &err);
    check(rc != -EAGAIN);
    if (rc > 0) {
        check((size_t)rc <= size && m.nhdrs <= SIP_MSG_MAX_HDRS);
        in_input(m.body, buf, size);
        for (size_t i = 0; i < m.nhdrs; i++) {
            in_input(m.hdrs[i].line, buf, size);
            in_input(m.hdrs[i].value, buf, size);
        }
        if (sip_msg_validate(&m, &err) != 0)
            check(err.phrase != NULL);
        if (m.is_request)
            uri(m.ruri);
        typed(&m);
        build(&m, true);
    } else {
        check(rc == -EBADMSG || rc == -EMSGSIZE);
        if (rc == -EBADMSG && sip_msg_answerable(&m))
            build(&m, false);
    }

    /* stream: every message in turn */
    size_t off = 0;
    for (int k = 0; k < 64 && off < size; k++) {
        rc = sip_msg_parse(&m, buf + off, size - off, SIP_MSG_STREAM, NULL);
        if (rc <= 0)
            break;
        check((size_t)rc <= size - off);
        typed(&m);
        off += (size_t)rc;
    }
    return 0;
}

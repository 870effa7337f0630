/* frames.c: one inbound text message: parse, validate, dispatch.
 *
 * Every request is checked in the same order before any state changes:
 * JSON object -> requestId -> type -> permission -> every field against the
 * frame's static field table (common/protocol.c: JSON type, required,
 * length, character set, and the error a bad value gets) -> reserved names
 * -> the token's channel patterns. Error codes come from the one error table.
 * Client `data` is never re-encoded: its raw JSON text is located in the
 * message and copied as is into the outbound frame.
 *
 * send and publish in their plain form (a flat object of exactly their
 * members, strings without escapes, data within a strict subset of JSON)
 * are read in one pass without jansson (common/frames_fast.c): that read
 * only takes a frame the jansson path would accept with every field valid,
 * to the same values, and declines anything else, so both paths decide and
 * write the same (tests/fuzz/fuzz_frames.c checks it on every input).
 *
 * Any other frame that is valid JSON is parsed whole (JSON_ALLOW_NUL: "\u0000" in a
 * string is valid JSON; such a channel or peerId is refused by its field's
 * rule, with the requestId). A frame that is not, or is dropped unread
 * (over the rate), still gets its requestId back when one can be found at
 * the top level before the text goes wrong (request_id_peek). */
#include "internal.h"

#include "log.h"
#include "metrics.h"
#include "pattern.h"
#include "protocol.h"
#include "json_dump.h"
#include "json_scan.h"
#include "frames_fast.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* ---- requests ---- */

struct req {
    struct brk_session *s;
    json_t *root; /* NULL when read by frames_fast.c: then target and data are set */
    const char *rid;
    const char *text;
    size_t len;
    int64_t rx_ns; /* rtm_mono_ns() when the frame was taken up: a direct's latency starts there */
    const char *target; /* send's to or publish's channel, from the one-pass read */
    const char *data;   /* data's raw text, from the one-pass read */
    size_t dlen;
};

static void fail(struct req *r, enum rtm_wire_err e, const char *message)
{
    sess_error(r->s, e, message, r->rid);
}

static int need_perm(struct req *r, unsigned perm)
{
    if (r->s->perms & perm) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "the token does not allow %s", rtm_perm_name(perm));
    fail(r, RTM_WIRE_ACTION_NOT_PERMITTED, msg);
    return -1;
}

static unsigned jtype_bit(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return RTM_J_STRING;
    case JSON_INTEGER: return RTM_J_INTEGER;
    case JSON_TRUE:
    case JSON_FALSE: return RTM_J_BOOLEAN;
    case JSON_OBJECT: return RTM_J_OBJECT;
    case JSON_ARRAY: return RTM_J_ARRAY;
    case JSON_NULL: return RTM_J_NULL;
    default: return 1u << 30; /* a real: no field takes one */
    }
}

static int field_ok(const struct rtm_field *f, const json_t *v)
{
    if (f->types && !(jtype_bit(v) & f->types)) return 0;
    if (!json_is_string(v)) return 1;
    const char *str = json_string_value(v);
    if (strlen(str) != json_string_length(v)) return 0; /* an embedded NUL */
    switch (f->charset) {
    case RTM_CS_PEER_ID: return rtm_peer_id_valid(str);
    case RTM_CS_CHANNEL: return rtm_channel_valid(str);
    case RTM_CS_ANY: break;
    }
    size_t n = utf8_chars(str);
    return n >= f->min_len && (!f->max_len || n <= f->max_len);
}

/* Every field of the frame's table; the first bad one gets its error. */
static int check_fields(struct req *r, const struct rtm_frame_def *def)
{
    for (unsigned i = 0; i < def->n_fields; i++) {
        const struct rtm_field *f = &def->fields[i];
        json_t *v = json_object_get(r->root, f->name);
        if (v ? field_ok(f, v) : !f->required) continue;
        fail(r, f->err, f->message);
        return -1;
    }
    return 0;
}

static const char *str_field(struct req *r, const char *name)
{
    return json_string_value(json_object_get(r->root, name));
}

/* send's to or publish's channel, however the frame was read. */
static const char *target_field(struct req *r, const char *name)
{
    return r->root ? str_field(r, name) : r->target;
}

/* Reserved names and the token's patterns (the shape is already checked). */
static int channel_in_scope(struct req *r, const char *ch)
{
    if (rtm_channel_reserved(ch)) {
        fail(r, RTM_WIRE_CHANNEL_RESERVED, NULL);
        return 0;
    }
    if (!rtm_pattern_match_any(r->s->claims.channels, r->s->claims.n_channels, ch)) {
        fail(r, RTM_WIRE_CHANNEL_NOT_AUTHORIZED, NULL);
        return 0;
    }
    return 1;
}

/* The data field's raw JSON text. -1 after an error frame; *owned set when re-encoded. */
static int data_arg(struct req *r, const char **dp, size_t *dn, char **owned)
{
    *owned = NULL;
    if (!r->root) {
        *dp = r->data;
        *dn = r->dlen;
        return 0;
    }
    if (rtm_json_raw_member(r->text, r->len, "data", dp, dn) == 0) return 0;
    *owned = rtm_json_dumps(json_object_get(r->root, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!*owned) {
        fail(r, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    *dp = *owned;
    *dn = strlen(*owned);
    return 0;
}

static void do_subscribe(struct req *r)
{
    const char *ch = str_field(r, "channel");
    if (!channel_in_scope(r, ch)) return;
    enum rtm_wire_err err;
    if (chan_subscribe(r->s, ch, json_is_true(json_object_get(r->root, "includeSenderMetadata")), &err)) {
        fail(r, err, err == RTM_WIRE_INTERNAL_ERROR ? "could not subscribe" : NULL);
        return;
    }
    /* In cluster mode the ack waits until other nodes' publishes can arrive. */
    if (r->s->b->xn) xnode_ack_subscribe(r->s, ch, r->rid);
    else sess_ack(r->s, r->rid);
}

static void do_unsubscribe(struct req *r)
{
    chan_unsubscribe(r->s, str_field(r, "channel"));
    sess_ack(r->s, r->rid);
}

static void do_publish(struct req *r)
{
    const char *ch = target_field(r, "channel");
    if (!channel_in_scope(r, ch)) return;
    const char *d;
    size_t dn;
    char *owned;
    if (data_arg(r, &d, &dn, &owned)) return;
    if (r->s->b->xn) {
        /* through Redis; the ack or the error frame follows from there */
        xnode_publish(r->s->b, r->s->app, ch, r->s, d, dn, r->rid);
        free(owned);
        return;
    }
    int n = chan_publish(r->s->b, r->s->app, ch, r->s, d, dn);
    free(owned);
    if (n < 0) {
        fail(r, RTM_WIRE_INTERNAL_ERROR, "could not publish");
        return;
    }
    sess_ack(r->s, r->rid);
}

int share_channel(struct brk_session *s, struct brk_peer *to)
{
    for (uint32_t i = 0; i < s->subs.cap; i++) {
        struct brk_sub *sub = s->subs.slots[i].key ? s->subs.slots[i].val : NULL;
        if (sub && htab_get(&sub->ch->members, to)) return 1;
    }
    return 0;
}

static void do_send(struct req *r)
{
    struct brk_session *s = r->s;
    const char *to = target_field(r, "to");
    if (rtm_peer_id_reserved(to)) {
        fail(r, RTM_WIRE_INVALID_PEER_ID, "peerIds beginning with _ are reserved for the system");
        return;
    }
    const char *d;
    size_t dn;
    char *owned;
    if (data_arg(r, &d, &dn, &owned)) return;
    if (s->b->xn) {
        /* the recipient may be on any node; the ack or the error follows from Redis */
        xnode_send(s, to, d, dn, r->rid, r->rx_ns);
        free(owned);
        return;
    }
    struct brk_peer *p = peer_find(s->b, s->app, to);
    /* One answer for offline, unknown and unrelated peers: nothing to probe. */
    if (!p || !share_channel(s, p)) {
        free(owned);
        fail(r, RTM_WIRE_PEER_NOT_FOUND, NULL);
        return;
    }
    const struct brk_peer *me = s->peer;
    struct brk_msg *msg = wire_direct(s->claims.sub, d, dn, NULL, me && me->meta_text ? me->meta_text : NULL,
                                      me && me->meta_text ? me->meta_len : 0);
    free(owned);
    if (!msg) {
        fail(r, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        return;
    }
    msg_time(msg, RTM_H_DIRECT_SEND, r->rx_ns);
    direct_deliver(p, s, s->claims.sub, msg);
    msg_unref(msg);
    sess_ack(s, r->rid);
}


void direct_deliver(struct brk_peer *p, const struct brk_session *skip, const char *from, struct brk_msg *msg)
{
    for (struct brk_session *x = p->sessions; x; x = x->peer_next) {
        if (x == skip) continue;
        /* Extension sessions get their own copy numbered per (sender, receiver). */
        if (x->ext) ext_deliver_direct(x, from, msg);
        else sess_enqueue(x, msg);
    }
}

static void do_ping(struct req *r)
{
    struct brk_msg *msg = wire_pong();
    if (msg) {
        sess_enqueue(r->s, msg);
        msg_unref(msg);
    }
    sess_ack(r->s, r->rid);
}

static void do_refresh(struct req *r) { ext_refresh(r->s, str_field(r, "token"), r->rid); }

struct handler {
    const char *type;
    void (*fn)(struct req *r);
    unsigned perm; /* needed before the fields are looked at; 0 = none */
};
static const struct handler handlers[] = {
    {"subscribe", do_subscribe, RTM_PERM_SUBSCRIBE}, {"unsubscribe", do_unsubscribe, 0},
    {"publish", do_publish, RTM_PERM_PUBLISH},       {"send", do_send, RTM_PERM_SEND},
    {"ping", do_ping, 0},                            {"refresh", do_refresh, 0},
};
#define N_HANDLERS (sizeof handlers / sizeof handlers[0])

/* The handler of a client frame type and its field table (*def), in one
 * pass over the handlers: a type is compared once per frame, not once here
 * and again in the protocol's table. NULL for a type without a handler
 * (unknown, or "auth", which is only a first frame). Each handler's table is
 * looked up on its first frame (loop thread only). */
static const struct handler *handler_find(const char *type, const struct rtm_frame_def **def)
{
    static const struct rtm_frame_def *defs[N_HANDLERS];
    for (size_t i = 0; i < N_HANDLERS; i++) {
        if (strcmp(type, handlers[i].type) != 0) continue;
        if (!defs[i]) defs[i] = rtm_frame_find(0, handlers[i].type);
        *def = defs[i];
        return defs[i] ? &handlers[i] : NULL;
    }
    return NULL;
}

size_t request_id_peek(const char *text, size_t len, char *out, size_t outlen)
{
    /* A top-level "requestId" with a plain string value (no escapes), found
     * before the first thing that is not JSON; 0 when there is none. */
    const char *p = text, *e = text + len;
    p = rtm_json_skip_ws(p, e);
    if (p >= e || *p != '{') return 0;
    p++;
    for (;;) {
        p = rtm_json_skip_ws(p, e);
        if (p >= e || *p != '"') return 0;
        const char *ks = p + 1, *kend = rtm_json_skip_string(p, e);
        if (kend >= e && kend[-1] != '"') return 0;
        int match = (size_t)(kend - 1 - ks) == 9 && memcmp(ks, "requestId", 9) == 0;
        p = rtm_json_skip_ws(kend, e);
        if (p >= e || *p != ':') return 0;
        p = rtm_json_skip_ws(p + 1, e);
        if (match) {
            if (p >= e || *p != '"') return 0;
            const char *vs = p + 1, *vend = rtm_json_skip_string(p, e);
            if (vend > e || vend[-1] != '"' || vend - 1 < vs) return 0;
            size_t n = (size_t)(vend - 1 - vs);
            if (memchr(vs, '\\', n) || n >= outlen || !utf8_valid((const unsigned char *)vs, n)) return 0;
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)vs[i] < 0x20) return 0;
            memcpy(out, vs, n);
            out[n] = '\0';
            return utf8_chars(out) <= RTM_MAX_REQUEST_ID ? n : 0;
        }
        p = rtm_json_skip_value(p, e);
        p = rtm_json_skip_ws(p, e);
        if (p >= e || *p != ',') return 0;
        p++;
    }
}

/* The checks after the frame is read, in the order of the header comment;
 * fields_checked when the one-pass read already held every field to its rule. */
static void dispatch(struct req *r, const char *type, int fields_checked)
{
    const struct rtm_frame_def *def = NULL;
    const struct handler *h = handler_find(type, &def);
    /* An extension frame is unknown_type for sessions that did not ask. */
    if (!h || (def->ext && !r->s->ext)) {
        fail(r, RTM_WIRE_UNKNOWN_TYPE, NULL);
        return;
    }
    if (h->perm && need_perm(r, h->perm)) return;
    if (!fields_checked && check_fields(r, def)) return;
    h->fn(r);
}

void frame_handle(struct brk_session *s, const char *text, size_t len)
{
    struct req r = {s, NULL, NULL, text, len, rtm_mono_ns(), NULL, NULL, 0};
    /* send and publish in their plain form: one pass, no tree (common/frames_fast.c) */
    struct frame_fast ff;
    if (frame_fast_scan(text, len, &ff)) {
        r.rid = ff.has_rid ? ff.rid : NULL;
        r.target = ff.target;
        r.data = ff.data;
        r.dlen = ff.dlen;
        dispatch(&r, ff.type, 1);
        return;
    }
    char peeked[RTM_MAX_REQUEST_ID * 4 + 1];
    json_error_t jerr;
    r.root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!r.root || !json_is_object(r.root)) {
        if (request_id_peek(text, len, peeked, sizeof peeked)) r.rid = peeked;
        fail(&r, RTM_WIRE_MALFORMED_MESSAGE, NULL);
        goto done;
    }
    json_t *rid = json_object_get(r.root, "requestId");
    if (rid) {
        if (!json_is_string(rid) || utf8_chars(json_string_value(rid)) > RTM_MAX_REQUEST_ID ||
            strlen(json_string_value(rid)) != json_string_length(rid)) {
            fail(&r, RTM_WIRE_MALFORMED_MESSAGE, "requestId must be a string of at most 128 characters");
            goto done;
        }
        r.rid = json_string_value(rid);
    }
    json_t *type = json_object_get(r.root, "type");
    if (!json_is_string(type)) {
        fail(&r, RTM_WIRE_MALFORMED_MESSAGE, "type must be a string");
        goto done;
    }
    dispatch(&r, json_string_value(type), 0);
done:
    json_decref(r.root);
}

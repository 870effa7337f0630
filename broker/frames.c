/* frames.c: one inbound text message: parse, validate, dispatch.
 *
 * Every request is checked in the same order before any state changes:
 * JSON object -> requestId -> type -> permission -> field shapes -> reserved
 * names -> the token's channel patterns. The wire error codes live here and
 * nowhere else. Client `data` is never re-encoded: its raw JSON text is
 * located in the message and copied as is into the outbound frame. */
#include "internal.h"
#include "msgbuild.h"

#include "log.h"
#include "metrics.h"
#include "pattern.h"
#include "protocol.h"
#include "json_dump.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF) ---- */

int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c == 0xe0) need = 2, lo = 0xa0;
        else if (c >= 0xe1 && c <= 0xec) need = 2;
        else if (c == 0xed) need = 2, hi = 0x9f;
        else if (c >= 0xee && c <= 0xef) need = 2;
        else if (c == 0xf0) need = 3, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3) need = 3;
        else if (c == 0xf4) need = 3, hi = 0x8f;
        else return 0;
        if (i + need >= n) return 0;
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) return 0;
        i += need + 1;
    }
    return 1;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n;
}

/* ---- raw member lookup (the text is already known to be valid JSON) ---- */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\') p++;
        else if (*p == '"') return p + 1;
    }
    return e;
}

static const char *skip_value(const char *p, const char *e)
{
    if (p >= e) return e;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = skip_string(p, e);
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return e;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p;
}

/* Finds the raw text of a top-level member. 0 when found; -1 when absent or
 * when a key is written with escapes (the caller then re-encodes). */
static int raw_member(const char *json, size_t len, const char *key, const char **vp, size_t *vn)
{
    const char *p = json, *e = json + len;
    size_t klen = strlen(key);
    p = skip_ws(p, e);
    if (p >= e || *p != '{') return -1;
    p++;
    for (;;) {
        p = skip_ws(p, e);
        if (p >= e || *p != '"') return -1;
        const char *ks = p + 1, *kend = skip_string(p, e);
        size_t kl = (size_t)(kend - 1 - ks);
        if (memchr(ks, '\\', kl)) return -1;
        int match = kl == klen && memcmp(ks, key, klen) == 0;
        p = skip_ws(kend, e);
        if (p >= e || *p != ':') return -1;
        p = skip_ws(p + 1, e);
        const char *vs = p;
        p = skip_value(p, e);
        if (match) {
            *vp = vs;
            *vn = (size_t)(p - vs);
            return 0;
        }
        p = skip_ws(p, e);
        if (p >= e || *p != ',') return -1;
        p++;
    }
}

/* ---- requests ---- */

struct req {
    struct brk_session *s;
    json_t *root;
    const char *rid;
    const char *text;
    size_t len;
    int64_t rx_ns; /* rtm_mono_ns() when the frame was taken up: a direct's latency starts there */
};

static void fail(struct req *r, const char *code, const char *message)
{
    sess_error(r->s, code, message, r->rid);
}

static int need_perm(struct req *r, unsigned perm, const char *what)
{
    if (r->s->perms & perm) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "the token does not allow %s", what);
    fail(r, "action_not_permitted", msg);
    return -1;
}

/* The channel field: shape, reserved prefix, token scope. NULL after an error frame. */
static const char *channel_arg(struct req *r, int check_scope)
{
    json_t *v = json_object_get(r->root, "channel");
    const char *ch = json_is_string(v) ? json_string_value(v) : NULL;
    if (!ch || strlen(ch) != json_string_length(v) || !rtm_channel_valid(ch)) {
        fail(r, "invalid_channel", "channel must be a string of 1 to 256 bytes without control characters");
        return NULL;
    }
    if (!check_scope) return ch;
    if (rtm_channel_reserved(ch)) {
        fail(r, "channel_reserved", "channel names starting with _rtm/, _internal/ or _system/ are reserved");
        return NULL;
    }
    if (!rtm_pattern_match_any(r->s->claims.channels, r->s->claims.n_channels, ch)) {
        fail(r, "channel_not_authorized", "the token's channel patterns do not include this channel");
        return NULL;
    }
    return ch;
}

/* The data field's raw JSON text. -1 after an error frame; *owned set when re-encoded. */
static int data_arg(struct req *r, const char **dp, size_t *dn, char **owned)
{
    *owned = NULL;
    json_t *d = json_object_get(r->root, "data");
    if (!d) {
        fail(r, "missing_data", "data is required");
        return -1;
    }
    if (raw_member(r->text, r->len, "data", dp, dn) == 0) return 0;
    *owned = rtm_json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!*owned) {
        fail(r, "internal_error", "out of memory");
        return -1;
    }
    *dp = *owned;
    *dn = strlen(*owned);
    return 0;
}

static void do_subscribe(struct req *r)
{
    if (need_perm(r, RTM_PERM_SUBSCRIBE, "subscribe")) return;
    const char *ch = channel_arg(r, 1);
    if (!ch) return;
    json_t *ism = json_object_get(r->root, "includeSenderMetadata");
    if (ism && !json_is_boolean(ism)) {
        fail(r, "malformed_message", "includeSenderMetadata must be a boolean");
        return;
    }
    const char *err = chan_subscribe(r->s, ch, json_is_true(ism));
    if (err) {
        fail(r, err, strcmp(err, "channel_limit_exceeded") == 0 ? "too many channels on this connection"
                                                                : "could not subscribe");
        return;
    }
    /* In cluster mode the ack waits until other nodes' publishes can arrive. */
    if (r->s->b->xn) xnode_ack_subscribe(r->s, ch, r->rid);
    else sess_ack(r->s, r->rid);
}

static void do_unsubscribe(struct req *r)
{
    const char *ch = channel_arg(r, 0);
    if (!ch) return;
    chan_unsubscribe(r->s, ch);
    sess_ack(r->s, r->rid);
}

static void do_publish(struct req *r)
{
    if (need_perm(r, RTM_PERM_PUBLISH, "publish")) return;
    const char *ch = channel_arg(r, 1);
    if (!ch) return;
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
        fail(r, "internal_error", "could not publish");
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
    if (need_perm(r, RTM_PERM_SEND, "send")) return;
    json_t *tv = json_object_get(r->root, "to");
    const char *to = json_is_string(tv) ? json_string_value(tv) : NULL;
    if (!to || strlen(to) != json_string_length(tv) || !rtm_peer_id_valid(to)) {
        fail(r, "invalid_peer_id", "to must be a peerId: 1 to 128 printable ASCII characters");
        return;
    }
    if (rtm_peer_id_reserved(to)) {
        fail(r, "invalid_peer_id", "peerIds beginning with _ are reserved for the system");
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
        fail(r, "peer_not_found", "no such peer in a channel you share");
        return;
    }
    const struct brk_peer *me = s->peer;
    struct brk_msg *msg = direct_frame(s->claims.sub, d, dn, NULL, me && me->meta_text ? me->meta_text : NULL,
                                       me && me->meta_text ? me->meta_len : 0);
    free(owned);
    if (!msg) {
        fail(r, "internal_error", "out of memory");
        return;
    }
    msg_time(msg, RTM_H_DIRECT_SEND, r->rx_ns);
    direct_deliver(p, s, s->claims.sub, msg);
    msg_unref(msg);
    sess_ack(s, r->rid);
}

struct brk_msg *direct_frame(const char *from, const char *data, size_t dlen, const json_t *meta,
                             const char *meta_text, size_t mlen)
{
    struct mb m;
    mb_init(&m, 64 + strlen(from) + dlen + mlen);
    mb_lit(&m, "{\"type\":\"direct\",\"from\":");
    mb_str(&m, from);
    mb_lit(&m, ",\"data\":");
    mb_raw(&m, data, dlen);
    if (meta_text ? mlen > 0 : meta != NULL) {
        mb_lit(&m, ",\"fromMetadata\":");
        if (meta_text) mb_raw(&m, meta_text, mlen);
        else mb_json(&m, meta);
    }
    mb_lit(&m, "}");
    return mb_finish(&m);
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
    struct mb m;
    mb_init(&m, 16);
    mb_lit(&m, "{\"type\":\"pong\"}");
    struct brk_msg *msg = mb_finish(&m);
    if (msg) {
        sess_enqueue(r->s, msg);
        msg_unref(msg);
    }
    sess_ack(r->s, r->rid);
}

static void do_refresh(struct req *r)
{
    json_t *tv = json_object_get(r->root, "token");
    const char *t = json_is_string(tv) ? json_string_value(tv) : NULL;
    if (!t || !*t || strlen(t) != json_string_length(tv)) {
        fail(r, "malformed_message", "token must be a non-empty string");
        return;
    }
    ext_refresh(r->s, t, r->rid);
}

static const struct {
    const char *type;
    void (*fn)(struct req *r);
    int ext; /* only for sessions that asked for the extensions; unknown_type for the others */
} handlers[] = {
    {"subscribe", do_subscribe, 0}, {"unsubscribe", do_unsubscribe, 0}, {"publish", do_publish, 0},
    {"send", do_send, 0},           {"ping", do_ping, 0},               {"refresh", do_refresh, 1},
};

void frame_handle(struct brk_session *s, const char *text, size_t len)
{
    struct req r = {s, NULL, NULL, text, len, rtm_mono_ns()};
    json_error_t jerr;
    r.root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r.root || !json_is_object(r.root)) {
        fail(&r, "malformed_message", "a frame must be one JSON object");
        goto done;
    }
    json_t *rid = json_object_get(r.root, "requestId");
    if (rid) {
        if (!json_is_string(rid) || utf8_chars(json_string_value(rid)) > RTM_MAX_REQUEST_ID ||
            strlen(json_string_value(rid)) != json_string_length(rid)) {
            fail(&r, "malformed_message", "requestId must be a string of at most 128 characters");
            goto done;
        }
        r.rid = json_string_value(rid);
    }
    json_t *type = json_object_get(r.root, "type");
    if (!json_is_string(type)) {
        fail(&r, "malformed_message", "type must be a string");
        goto done;
    }
    const char *t = json_string_value(type);
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if (strcmp(t, handlers[i].type) == 0 && (!handlers[i].ext || s->ext)) {
            handlers[i].fn(&r);
            goto done;
        }
    }
    fail(&r, "unknown_type", "unknown frame type");
done:
    json_decref(r.root);
}

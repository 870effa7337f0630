/* wire.c: every frame the broker sends is written here, and only here.
 *
 * Each function returns one sealed, reference-counted frame (refs = 1) or
 * NULL when out of memory; the caller queues it to as many sessions as it
 * likes and drops its reference. The shapes follow schema/frames/server.*.json
 * and the field table in common/protocol.c (tests/unit/test_protocol.c keeps
 * those two equal; the integration tests validate every frame they receive
 * against the schemas). Error codes and default messages come from the one
 * error table (rtm_wire). */
#include "internal.h"
#include "msgbuild.h"

#include "protocol.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

struct brk_msg *wire_welcome(const struct brk_session *s, int resumed, int presence_reset)
{
    const struct rtm_config *cfg = s->b->cfg;
    struct mb m;
    mb_init(&m, 256 + (s->claims.metadata_text ? strlen(s->claims.metadata_text) : 768));
    mb_lit(&m, "{\"type\":\"welcome\",\"peerId\":");
    mb_str(&m, s->claims.sub);
    mb_lit(&m, ",\"expiresAt\":");
    if (s->publishable) mb_lit(&m, "null");
    else mb_int(&m, s->claims.exp);
    mb_lit(&m, ",\"serverTime\":");
    mb_int(&m, rtm_now_ms());
    mb_lit(&m, ",\"maxMessageSize\":");
    mb_int(&m, cfg->max_message_size > 0 ? cfg->max_message_size : RTM_MAX_MESSAGE_SIZE);
    mb_lit(&m, ",\"metadata\":");
    /* The text the token's verification already serialized (and measured),
     * copied as is: the welcome dumps nothing a second time. */
    if (s->claims.metadata_text) mb_raw(&m, s->claims.metadata_text, strlen(s->claims.metadata_text));
    else if (s->claims.metadata) mb_json(&m, s->claims.metadata);
    else mb_lit(&m, "{}");
    if (s->ext) {
        /* docs/EXTENSIONS.md: only for clients that asked (&ext=1). */
        mb_lit(&m, ",\"sessionId\":");
        mb_str(&m, s->rsid);
        mb_lit(&m, ",\"resumeWindowMs\":");
        mb_int(&m, s->resume_window_ms);
        mb_lit(&m, resumed ? ",\"resumed\":true" : ",\"resumed\":false");
        if (presence_reset) mb_lit(&m, ",\"presenceReset\":true");
    }
    mb_lit(&m, "}");
    return mb_finish(&m);
}

struct brk_msg *wire_error(enum rtm_wire_err e, const char *message, const char *request_id)
{
    const struct rtm_wire_def *w = rtm_wire(e);
    struct mb m;
    mb_init(&m, 128);
    mb_lit(&m, "{\"type\":\"error\",\"code\":");
    mb_str(&m, w->code);
    mb_lit(&m, ",\"message\":");
    mb_str(&m, message ? message : w->message);
    if (request_id) {
        mb_lit(&m, ",\"requestId\":");
        mb_str(&m, request_id);
    }
    mb_lit(&m, "}");
    return mb_finish(&m);
}

struct brk_msg *wire_ack(const char *request_id)
{
    struct mb m;
    mb_init(&m, 48 + strlen(request_id));
    mb_lit(&m, "{\"type\":\"ack\",\"requestId\":");
    mb_str(&m, request_id);
    mb_lit(&m, "}");
    return mb_finish(&m);
}

struct brk_msg *wire_refresh_ack(const char *request_id, int64_t expires_at, const json_t *metadata)
{
    struct mb m;
    mb_init(&m, 256 + strlen(request_id));
    mb_lit(&m, "{\"type\":\"ack\",\"requestId\":");
    mb_str(&m, request_id);
    mb_lit(&m, ",\"expiresAt\":");
    mb_int(&m, expires_at);
    mb_lit(&m, ",\"metadata\":");
    if (metadata) mb_json(&m, metadata);
    else mb_lit(&m, "{}");
    mb_lit(&m, "}");
    return mb_finish(&m);
}

/* A frame of a type and one integer field: head is its text up to the value. */
static struct brk_msg *one_int(const char *head, long long v)
{
    struct mb m;
    mb_init(&m, 64);
    mb_lit(&m, head);
    mb_int(&m, v);
    mb_lit(&m, "}");
    return mb_finish(&m);
}

struct brk_msg *wire_going_away(int retry_after_ms)
{
    return one_int("{\"type\":\"going_away\",\"retryAfterMs\":", retry_after_ms);
}

struct brk_msg *wire_pong(void)
{
    struct mb m;
    mb_init(&m, 16);
    mb_lit(&m, "{\"type\":\"pong\"}");
    return mb_finish(&m);
}

struct brk_msg *wire_token_expiring(int64_t expires_at)
{
    return one_int("{\"type\":\"token_expiring\",\"expiresAt\":", expires_at);
}

struct brk_msg *wire_unsubscribed(struct brk_channel *const *chs, uint32_t n)
{
    struct mb m;
    mb_init(&m, 48 + n * 32);
    mb_lit(&m, "{\"type\":\"unsubscribed\",\"channels\":[");
    for (uint32_t i = 0; i < n; i++) {
        if (i) mb_lit(&m, ",");
        mb_str(&m, chs[i]->name);
    }
    mb_lit(&m, "]}");
    return mb_finish(&m);
}

/* A member: its peerMetadata is the text the peer keeps serialized (peers.c),
 * or, in cluster mode, the text another node wrote to Redis. */
void mb_member(struct mb *m, const char *peer_id, const char *meta, size_t mlen)
{
    mb_lit(m, "{\"peerId\":");
    mb_str(m, peer_id);
    if (meta && mlen) {
        mb_lit(m, ",\"metadata\":");
        mb_raw(m, meta, mlen);
    }
    mb_lit(m, "}");
}

struct brk_msg *wire_presence_delta(const struct brk_channel *ch, const char *except)
{
    struct mb m;
    mb_init(&m, 128 + ch->pending.n * 64);
    mb_lit(&m, "{\"type\":\"presence\",\"channel\":");
    mb_str(&m, ch->name);
    for (int join = 1; join >= 0; join--) {
        mb_lit(&m, join ? ",\"joined\":[" : "],\"left\":[");
        int first = 1;
        for (uint32_t i = 0; i < ch->pending.cap; i++) {
            const struct brk_pending *p = ch->pending.slots[i].key ? ch->pending.slots[i].val : NULL;
            if (!p || p->join != (unsigned)join || (except && strcmp(p->peer_id, except) == 0)) continue;
            if (!first) mb_lit(&m, ",");
            first = 0;
            if (!join) mb_member(&m, p->peer_id, NULL, 0);
            else if (p->peer) mb_member(&m, p->peer_id, p->peer->meta_text, p->peer->meta_len);
            else mb_member(&m, p->peer_id, p->meta, p->mlen);
        }
    }
    mb_lit(&m, "]}");
    return mb_finish(&m);
}

struct brk_msg *wire_presence_snapshot(const struct brk_channel *ch, const struct brk_peer *self)
{
    struct mb m;
    mb_init(&m, 128 + ch->members.n * 64);
    mb_lit(&m, "{\"type\":\"presence\",\"channel\":");
    mb_str(&m, ch->name);
    mb_lit(&m, ",\"joined\":[");
    int first = 1;
    for (uint32_t i = 0; i < ch->members.cap; i++) {
        const struct brk_peer *p = ch->members.slots[i].key;
        if (!p || p == self) continue;
        if (!first) mb_lit(&m, ",");
        first = 0;
        mb_member(&m, p->peer_id, p->meta_text, p->meta_len);
    }
    mb_lit(&m, "],\"left\":[]}");
    return mb_finish(&m);
}

/* The tail shared by message and direct: from, the raw data, fromMetadata. */
static struct brk_msg *from_data_tail(struct mb *m, const char *from, const char *data, size_t dlen,
                                      const json_t *meta, const char *meta_text, size_t mlen)
{
    mb_lit(m, ",\"from\":");
    mb_str(m, from);
    mb_lit(m, ",\"data\":");
    mb_raw(m, data, dlen);
    if (meta_text ? mlen > 0 : meta != NULL) {
        mb_lit(m, ",\"fromMetadata\":");
        if (meta_text) mb_raw(m, meta_text, mlen);
        else mb_json(m, meta);
    }
    mb_lit(m, "}");
    return mb_finish(m);
}

struct brk_msg *wire_message(const char *channel, const char *from, const char *data, size_t dlen,
                             const json_t *meta, const char *meta_text, size_t mlen)
{
    struct mb m;
    mb_init(&m, 64 + strlen(channel) + strlen(from) + dlen + (meta ? 256 : 0) + mlen);
    mb_lit(&m, "{\"type\":\"message\",\"channel\":");
    mb_str(&m, channel);
    return from_data_tail(&m, from, data, dlen, meta, meta_text, mlen);
}

struct brk_msg *wire_direct(const char *from, const char *data, size_t dlen, const json_t *meta,
                            const char *meta_text, size_t mlen)
{
    struct mb m;
    mb_init(&m, 64 + strlen(from) + dlen + (meta ? 256 : 0) + mlen);
    mb_lit(&m, "{\"type\":\"direct\"");
    return from_data_tail(&m, from, data, dlen, meta, meta_text, mlen);
}

struct brk_msg *wire_with_seq(const struct brk_msg *direct, uint32_t seq)
{
    char tail[32];
    int tn = snprintf(tail, sizeof tail, ",\"seq\":%u}", seq);
    struct brk_msg *o = msg_alloc(direct->len - 1 + (size_t)tn);
    if (!o) return NULL;
    memcpy(o->buf + LWS_PRE, direct->buf + LWS_PRE, direct->len - 1);
    memcpy(o->buf + LWS_PRE + direct->len - 1, tail, (size_t)tn);
    msg_seal(o);
    return o;
}

/* Frames are told apart by their fixed envelope start ("type" first, as
 * written above): no parsing. */
static int frame_is(const struct brk_msg *m, const char *prefix, size_t n)
{
    return m->len >= n && memcmp(m->buf + LWS_PRE, prefix, n) == 0;
}
#define FRAME_IS(m, lit) frame_is((m), (lit), sizeof(lit) - 1)
int wire_is_direct(const struct brk_msg *m) { return FRAME_IS(m, "{\"type\":\"direct\""); }
int wire_is_presence(const struct brk_msg *m) { return FRAME_IS(m, "{\"type\":\"presence\""); }

/* fuzz_frames.c: the broker's inbound frame handling, through validation and
 * dispatch (broker/frames.c frame_handle) into channels, presence, peers and
 * the outbound queues, with no socket.
 *
 * The harness builds a real broker on broker_env.c's environment (real
 * store and timer heap, nothing running them) and three open sessions whose
 * wsi is NULL, as conn.c's welcome leaves them: alice (patterns room-* and
 * team/ + globstar, every permission, peerMetadata), bob (a globstar, an
 * extension session) and a second connection of alice (room-1, subscribe
 * only). Outbound frames stay in each session's queue, where the oracle
 * reads them (the seam: conn.c's want_writeable()); sessions close through
 * conn.c's own CLOSED handler.
 *
 * Input: records separated by 0x1e. A record's first byte picks the session
 * (low two bits) and whether the presence flush (a loop turn's end) runs
 * after it (bit 7); the rest is one text message.
 * Oracle, after every record: every queued frame is a sealed WebSocket text
 * frame whose payload is exactly one JSON object with a string type; the queue
 * byte count matches its frames; a message or direct frame caused by this
 * record carries exactly the data the client sent (the raw copy parses to
 * the same value) and the sender's peerId; the sender's ack or error carries
 * its requestId; error frames have a code and a message; presence frames list
 * peerIds.
 * Equivalence oracle, on every record (valid UTF-8 or not): when the
 * one-pass read of send/publish (common/frames_fast.c) takes a frame,
 * jansson with frames.c's flags accepts it too, as an object of exactly
 * those members, every field valid by its rule (so the jansson path reaches
 * the same handler), with the same type, to/channel and requestId, and data
 * at the same raw span rtm_json_raw_member gives the jansson path (the
 * bytes wire.c copies into the outbound frame), parsing to the same value.
 * Otherwise frames.c takes the jansson path itself. */
#include "broker_env.h"
#include "support.h"

#include "frames_fast.h"
#include "json_scan.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_SESS 3
#define MAX_RECORDS 64

static const struct benv_session specs[N_SESS] = {
    {"alice", {"room-*", "team/**"}, 2, RTM_PERM_ALL, 0, "{\"name\":\"A\"}"},
    {"bob", {"**"}, 1, RTM_PERM_ALL, 1, NULL},
    {"alice", {"room-1"}, 1, RTM_PERM_SUBSCRIBE, 0, NULL},
};

struct step {
    struct brk_broker *b;
    struct brk_session *sess[N_SESS];
    struct brk_session *from; /* this record's sender */
    json_t *in;               /* the record parsed, or NULL */
};

/* The protocol's requestId: a string of at most 128 characters (counted
 * here as UTF-8 lead bytes), without NUL. */
static int rid_valid(json_t *v)
{
    const char *p = json_string_value(v);
    size_t chars = 0;
    if (!p || strlen(p) != json_string_length(v)) return 0;
    for (; *p; p++) chars += ((unsigned char)*p & 0xc0) != 0x80;
    return chars <= RTM_MAX_REQUEST_ID;
}

static void check_frame(struct step *st, struct brk_session *s, struct brk_msg *m)
{
    const unsigned char *f = msg_frame(m);
    size_t hl = m->hdrlen;
    FUZZ_CHECK(f[0] == 0x81, "frame header byte 0x%02x, not a final text frame", f[0]);
    size_t n = f[1] < 126 ? f[1] : f[1] == 126 ? ((size_t)f[2] << 8 | f[3]) : 0;
    if (f[1] == 127)
        for (int i = 0; i < 8; i++) n = n << 8 | f[2 + i];
    FUZZ_CHECK(hl == (f[1] < 126 ? 2u : f[1] == 126 ? 4u : 10u) && n == m->len, "frame length header wrong");

    const char *text = (const char *)m->buf + LWS_PRE;
    json_t *o = one_object(text, m->len);
    FUZZ_CHECK(o, "an outbound frame is not exactly one JSON object: %.*s", (int)(m->len > 300 ? 300 : m->len), text);
    const char *type = json_string_value(json_object_get(o, "type"));
    FUZZ_CHECK(type, "an outbound frame without a string type");
    const char *in_type = st->in ? json_string_value(json_object_get(st->in, "type")) : NULL;
    json_t *in_data = st->in ? json_object_get(st->in, "data") : NULL;
    const char *in_rid = st->in ? json_string_value(json_object_get(st->in, "requestId")) : NULL;
    if (in_rid && !rid_valid(json_object_get(st->in, "requestId"))) in_rid = NULL; /* refused, not echoed */

    if (!strcmp(type, "message") || !strcmp(type, "direct")) {
        const char *from = json_string_value(json_object_get(o, "from"));
        FUZZ_CHECK(from && !strcmp(from, st->from->claims.sub), "%s frame from \"%s\", sender is %s", type,
                   from ? from : "(none)", st->from->claims.sub);
        FUZZ_CHECK(in_type && !strcmp(in_type, !strcmp(type, "message") ? "publish" : "send"),
                   "a %s frame out of a %s request", type, in_type ? in_type : "non");
        FUZZ_CHECK(in_data && json_equal(json_object_get(o, "data"), in_data),
                   "the data delivered differs from the data sent: %.*s", (int)(m->len > 300 ? 300 : m->len), text);
        if (!strcmp(type, "message")) {
            const char *ch = json_string_value(json_object_get(o, "channel"));
            FUZZ_CHECK(ch && !strcmp(ch, json_string_value(json_object_get(st->in, "channel"))), "wrong channel");
        }
        FUZZ_CHECK(s != st->from || !strcmp(type, "message"), "a direct to its own sender's connection");
    } else if (!strcmp(type, "ack") || !strcmp(type, "error")) {
        if (s == st->from && in_rid) {
            const char *rid = json_string_value(json_object_get(o, "requestId"));
            FUZZ_CHECK(rid && !strcmp(rid, in_rid), "an answer without the request's requestId");
        }
        if (!strcmp(type, "error"))
            FUZZ_CHECK(json_is_string(json_object_get(o, "code")) && json_is_string(json_object_get(o, "message")),
                       "an error frame without code and message");
        else
            FUZZ_CHECK(s == st->from && in_rid, "an ack nobody asked for");
    } else if (!strcmp(type, "presence")) {
        FUZZ_CHECK(json_is_string(json_object_get(o, "channel")), "presence without a channel");
        const char *lists[] = {"joined", "left"};
        for (int k = 0; k < 2; k++) {
            json_t *l = json_object_get(o, lists[k]), *e;
            size_t i;
            if (!l) continue;
            FUZZ_CHECK(json_is_array(l), "presence %s is not an array", lists[k]);
            json_array_foreach(l, i, e) {
                const char *p = json_is_object(e) ? json_string_value(json_object_get(e, "peerId"))
                                                  : json_string_value(e);
                FUZZ_CHECK(p && rtm_peer_id_valid(p), "presence entry without a valid peerId");
            }
        }
    }
    json_decref(o);
}

static void drain(struct step *st)
{
    for (int i = 0; i < N_SESS; i++) {
        struct brk_session *s = st->sess[i];
        size_t bytes = 0;
        struct brk_msg *m;
        for (uint32_t k = 0; (m = outq_peek(&s->q, k)); k++) {
            check_frame(st, s, m);
            if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "  -> %s: %.*s\n", s->sid, (int)m->len, (char *)m->buf + LWS_PRE);
            bytes += msg_frame_len(m);
        }
        FUZZ_CHECK(bytes == s->q.bytes, "queue counts %zu bytes, holds %zu", s->q.bytes, bytes);
        outq_pop(&s->q, s->q.count);
    }
}

/* The one-pass read decides as the jansson path would (see the header). */
static void check_fast_read(const char *text, size_t len)
{
    struct frame_fast ff;
    if (!frame_fast_scan(text, len, &ff)) return;
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    FUZZ_CHECK(root && json_is_object(root), "the fast read took what jansson refuses: %s", e.text);
    int send = !strcmp(ff.type, "send");
    FUZZ_CHECK(send || !strcmp(ff.type, "publish"), "fast read of type %s", ff.type);
    FUZZ_CHECK(json_object_size(root) == 3u + (ff.has_rid ? 1u : 0u), "fast read: %zu members",
               json_object_size(root));
    const char *type = json_string_value(json_object_get(root, "type"));
    FUZZ_CHECK(type && !strcmp(type, ff.type), "fast read type %s, jansson %s", ff.type, type ? type : "(none)");
    json_t *t = json_object_get(root, send ? "to" : "channel");
    const char *tv = json_string_value(t);
    FUZZ_CHECK(tv && strlen(tv) == json_string_length(t) && !strcmp(tv, ff.target) &&
                   (send ? rtm_peer_id_valid(tv) : rtm_channel_valid(tv)),
               "fast read target differs or is invalid");
    json_t *rid = json_object_get(root, "requestId");
    FUZZ_CHECK(!rid == !ff.has_rid, "fast read requestId presence differs");
    if (rid) FUZZ_CHECK(rid_valid(rid) && !strcmp(json_string_value(rid), ff.rid), "fast read requestId differs");
    json_t *data = json_object_get(root, "data");
    const char *dp;
    size_t dn;
    FUZZ_CHECK(data && rtm_json_raw_member(text, len, "data", &dp, &dn) == 0 && dp == ff.data && dn == ff.dlen,
               "fast read data span differs from the jansson path's");
    json_t *raw = json_loadb(ff.data, ff.dlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    FUZZ_CHECK(raw && json_equal(raw, data), "fast read data parses differently");
    json_decref(raw);
    json_decref(root);
}

static void one_record(const uint8_t *rec, size_t n, void *ud)
{
    struct step *st = ud;
    if (n == 0) return;
    st->from = st->sess[(rec[0] & 3) % N_SESS];
    int flush = rec[0] & 0x80;
    const char *text = (const char *)rec + 1;
    size_t len = n - 1;
    check_fast_read(text, len);
    /* conn.c's order: a closing session reads nothing; invalid UTF-8 closes (1007) */
    if (st->from->state != SESS_OPEN || !utf8_valid((const unsigned char *)text, len)) return;
    json_error_t e;
    st->in = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    frame_handle(st->from, text, len);
    if (flush) presence_flush(st->b);
    drain(st);
    json_decref(st->in);
    st->in = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 200000) return 0;
    benv_init("frames.db");
    struct step st = {0};
    st.b = benv_broker();
    for (int i = 0; i < N_SESS; i++) st.sess[i] = benv_session_open(st.b, &specs[i], i);
    fuzz_records(data, size, MAX_RECORDS, one_record, &st);
    presence_flush(st.b);
    drain(&st);
    for (int i = 0; i < N_SESS; i++) benv_session_close(st.b, st.sess[i]);
    benv_broker_free(st.b);
    return 0;
}

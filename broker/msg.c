/* msg.c: outbound frames and per-session queues.
 *
 * A frame is built once, straight into its final buffer: LWS_PRE headroom,
 * then the JSON text; msg_seal() writes the WebSocket header into the end of
 * the headroom, so every recipient's write sends the same bytes and no
 * recipient costs an allocation or any JSON work. The builder (mb_*) writes
 * JSON by hand (envelopes are fixed strings; client data is copied raw, never
 * re-encoded) and uses jansson only for nested values that came from tokens. */
#include "internal.h"
#include "msgbuild.h"

#include "errors.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct brk_msg *msg_alloc(size_t len)
{
    struct brk_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->hdrlen = 0;
    m->t0_ns = 0;
    m->timer = 0;
    return m;
}

void msg_time(struct brk_msg *m, int h, int64_t t0_ns)
{
    m->t0_ns = t0_ns;
    m->timer = (uint8_t)(h + 1);
}

void msg_written(const struct brk_msg *m, int64_t now_ns)
{
    if (m->timer) rtm_histogram_observe((enum rtm_histogram_id)(m->timer - 1), (double)(now_ns - m->t0_ns) / 1e9);
}

void msg_seal(struct brk_msg *m)
{
    unsigned char *p = m->buf + LWS_PRE;
    size_t n = m->len;
    if (n < 126) {
        p -= 2;
        p[1] = (unsigned char)n;
        m->hdrlen = 2;
    } else if (n < 65536) {
        p -= 4;
        p[1] = 126;
        p[2] = (unsigned char)(n >> 8);
        p[3] = (unsigned char)n;
        m->hdrlen = 4;
    } else {
        p -= 10;
        p[1] = 127;
        for (int i = 0; i < 8; i++) p[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        m->hdrlen = 10;
    }
    p[0] = 0x81; /* FIN + text; server frames are never masked */
}

void msg_unref(struct brk_msg *m)
{
    if (m && --m->refs == 0) free(m);
}

/* ---- builder ---- */

void mb_init(struct mb *b, size_t hint)
{
    b->len = 0;
    b->oom = 0;
    b->cap = hint < 64 ? 64 : hint;
    b->m = msg_alloc(b->cap);
    if (!b->m) b->oom = 1;
}

static int mb_reserve(struct mb *b, size_t more)
{
    if (b->oom) return -1;
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap * 2;
    while (cap < b->len + more) cap *= 2;
    if (cap > UINT32_MAX) goto fail;
    struct brk_msg *n = realloc(b->m, sizeof *n + LWS_PRE + cap);
    if (!n) goto fail;
    b->m = n;
    b->cap = cap;
    return 0;
fail:
    b->oom = 1;
    return -1;
}

void mb_raw(struct mb *b, const void *p, size_t n)
{
    if (mb_reserve(b, n)) return;
    memcpy(b->m->buf + LWS_PRE + b->len, p, n);
    b->len += n;
}

void mb_lit(struct mb *b, const char *s) { mb_raw(b, s, strlen(s)); }

void mb_str(struct mb *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    if (mb_reserve(b, n * 6 + 2)) return; /* worst case: every byte \u00XX */
    unsigned char *o = b->m->buf + LWS_PRE + b->len, *start = o;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = c;
        } else if (c < 0x20) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = (unsigned char)hex[c >> 4];
            *o++ = (unsigned char)hex[c & 15];
        } else {
            *o++ = c;
        }
    }
    *o++ = '"';
    b->len += (size_t)(o - start);
}

void mb_int(struct mb *b, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    mb_raw(b, tmp, (size_t)n);
}

void mb_json(struct mb *b, const json_t *v)
{
    if (!v) {
        mb_lit(b, "null");
        return;
    }
    if (b->oom) return;
    /* Straight into the room left: one serialization when it fits (the
     * builder's hint is sized for it), a second only after growing. */
    size_t room = b->cap - b->len;
    size_t need = json_dumpb(v, (char *)b->m->buf + LWS_PRE + b->len, room, JSON_COMPACT | JSON_ENCODE_ANY);
    if (need == 0) {
        b->oom = 1;
        return;
    }
    if (need > room) {
        if (mb_reserve(b, need)) return;
        /* The second dump allocates too (jansson's cycle check) and can fail
         * after the first succeeded: counting its bytes anyway sent the
         * buffer's stale heap bytes to clients (found by tests/fault). */
        if (json_dumpb(v, (char *)b->m->buf + LWS_PRE + b->len, need, JSON_COMPACT | JSON_ENCODE_ANY) != need) {
            b->oom = 1;
            return;
        }
    }
    b->len += need;
}

struct brk_msg *mb_finish(struct mb *b)
{
    if (b->oom) {
        free(b->m);
        b->m = NULL;
        return NULL;
    }
    struct brk_msg *m = b->m;
    m->len = (uint32_t)b->len;
    msg_seal(m);
    b->m = NULL;
    return m;
}

struct brk_msg *msg_from_json(json_t *obj)
{
    struct mb b;
    mb_init(&b, 256);
    mb_json(&b, obj);
    return mb_finish(&b);
}

/* ---- queue ---- */

void outq_init(struct outq *q)
{
    memset(q, 0, sizeof *q);
    q->ring = q->inl;
    q->cap = OUTQ_INLINE;
}

int outq_push(struct outq *q, struct brk_msg *m)
{
    if (q->count == q->cap) {
        if (q->cap >= OUTQ_MAX_FRAMES) return RTM_ELIMIT;
        uint32_t cap = q->cap * 2;
        struct brk_msg **r = malloc(cap * sizeof *r);
        if (!r) return RTM_ENOMEM;
        for (uint32_t i = 0; i < q->count; i++) r[i] = q->ring[(q->head + i) % q->cap];
        if (q->ring != q->inl) free(q->ring);
        q->ring = r;
        q->cap = cap;
        q->head = 0;
    }
    q->ring[(q->head + q->count) % q->cap] = m;
    q->count++;
    q->bytes += msg_frame_len(m);
    msg_ref(m);
    return 0;
}

struct brk_msg *outq_peek(const struct outq *q, uint32_t i)
{
    return i < q->count ? q->ring[(q->head + i) % q->cap] : NULL;
}

void outq_pop(struct outq *q, uint32_t n)
{
    for (uint32_t i = 0; i < n && q->count; i++) {
        struct brk_msg *m = q->ring[q->head];
        q->bytes -= msg_frame_len(m);
        msg_unref(m);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    if (q->count == 0 && q->ring != q->inl) {
        /* Drained: give the heap ring back, an idle session holds no buffers. */
        free(q->ring);
        q->ring = q->inl;
        q->cap = OUTQ_INLINE;
    }
    if (q->count == 0) q->head = 0;
}

void outq_clear(struct outq *q) { outq_pop(q, q->count); }

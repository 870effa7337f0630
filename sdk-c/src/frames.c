/* frames.c: the request side (outbound queue, in-flight requests, their
 * completions) and the inbound frame dispatcher.
 *
 * Design: a request lives in exactly one list at a time: outq until written,
 * inflight until answered. Every path that completes requests first detaches
 * them from their list, then calls the user back, so a callback may enqueue
 * new requests (or free the client, deferred) without invalidating the walk.
 * That is what makes "exactly once" hold. */
#include "rtm_internal.h"
#include "json_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void req_free(struct req *r)
{
    if (!r) return;
    free(r->buf);
    free(r->channel);
    free(r);
}

static void list_push(struct reqlist *l, struct req *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
    l->bytes += r->len;
}

static struct req *list_pop(struct reqlist *l)
{
    struct req *r = l->head;
    if (!r) return NULL;
    l->head = r->next;
    if (!l->head) l->tail = NULL;
    l->n--;
    l->bytes -= r->len;
    r->next = NULL;
    return r;
}

/* Unlinks the requests matching pred into out (order kept). */
static void list_extract(struct reqlist *l, struct reqlist *out, int (*pred)(struct req *, void *), void *arg)
{
    struct req **pp = &l->head, *prev = NULL;
    while (*pp) {
        struct req *r = *pp;
        if (pred(r, arg)) {
            *pp = r->next;
            if (l->tail == r) l->tail = prev;
            l->n--;
            l->bytes -= r->len;
            list_push(out, r);
        } else {
            prev = r;
            pp = &r->next;
        }
    }
}

static void complete(struct rtm_client *c, struct req *r, rtm_status st, const char *code, const char *msg)
{
    if (r->kind == REQ_SUBSCRIBE && st != RTM_STATUS_OK && r->channel) {
        /* a subscription the broker never confirmed is forgotten, so it is
         * not replayed; a confirmed one stays (replayed on reconnect) unless
         * the broker refused it outright */
        struct chan *ch = chan_find(c, r->channel);
        if (ch && (!ch->acked || st == RTM_ERR_SERVER)) chan_remove(c, r->channel);
    }
    if (r->cb) {
        CB_ENTER(c);
        r->cb(c, st, code, msg, r->ud);
        CB_LEAVE(c);
    } else if (r->internal && st == RTM_ERR_SERVER && c->o.cb.error) {
        CB_ENTER(c);
        c->o.cb.error(c, code, msg, c->o.cb_ud);
        CB_LEAVE(c);
    }
    req_free(r);
}

static void fire_list(struct rtm_client *c, struct reqlist *l, rtm_status st)
{
    struct req *r;
    while ((r = list_pop(l))) complete(c, r, st, NULL, NULL);
}

void reqs_fail_all(struct rtm_client *c, struct reqlist *l, rtm_status st)
{
    struct reqlist tmp = *l;
    memset(l, 0, sizeof *l);
    fire_list(c, &tmp, st);
}

static int is_internal(struct req *r, void *arg)
{
    (void)arg;
    return r->internal;
}

void reqs_disconnected(struct rtm_client *c)
{
    struct reqlist gone = {0};
    /* replays not yet written are rebuilt at the next welcome */
    list_extract(&c->outq, &gone, is_internal, NULL);
    fire_list(c, &gone, RTM_ERR_DISCONNECTED);
    reqs_fail_all(c, &c->inflight, RTM_ERR_DISCONNECTED);
}

static int is_expired(struct req *r, void *arg)
{
    return r->deadline && r->deadline <= *(int64_t *)arg;
}

void reqs_expire(struct rtm_client *c)
{
    int64_t now = client_mono_ms();
    struct reqlist gone = {0};
    list_extract(&c->outq, &gone, is_expired, &now);
    list_extract(&c->inflight, &gone, is_expired, &now);
    fire_list(c, &gone, RTM_ERR_TIMEOUT);
}

static void timeout_due(struct rtm_client *c)
{
    c->timeout_armed = 0;
    reqs_expire(c);
    reqs_arm_timeout(c);
}

int reqs_arm_timeout(struct rtm_client *c)
{
    if (c->timeout_armed || c->state == ST_STOPPED) return 0;
    int64_t min = 0;
    struct reqlist *ls[2] = {&c->outq, &c->inflight};
    for (int i = 0; i < 2; i++)
        for (struct req *r = ls[i]->head; r; r = r->next)
            if (r->deadline && (!min || r->deadline < min)) min = r->deadline;
    if (!min) return 0;
    int64_t in = min - client_mono_ms();
    if (in < 0) in = 0;
    ctimer_set(c, &c->t_timeout, timeout_due, in + 1);
    c->timeout_armed = 1;
    return 0;
}

/* ---- building requests ---- */

static char *json_quote(const char *s)
{
    json_t *j = json_string(s);
    char *out = j ? rtm_json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return out;
}

static rtm_status enqueue(struct rtm_client *c, enum req_kind kind, const char *channel, const char *body_fmt,
                          const char *a, const char *b, rtm_done_fn cb, void *ud, int internal, int front)
{
    if (c->state == ST_STOPPED || c->freeing || c->free_pending) return RTM_ERR_CLOSED;
    if (!internal && c->outq.n + c->inflight.n >= c->o.q_frames) return RTM_ERR_QUEUE_FULL;

    struct req *r = calloc(1, sizeof *r);
    if (!r) return RTM_ERR_NOMEM;
    r->kind = kind;
    r->cb = cb;
    r->ud = ud;
    r->internal = internal;
    if (cb || internal) snprintf(r->rid, sizeof r->rid, "r%llu", (unsigned long long)++c->seq);
    if (channel && !(r->channel = strdup(channel))) goto nomem;

    char ridpart[48] = "";
    if (r->rid[0]) snprintf(ridpart, sizeof ridpart, ",\"requestId\":\"%s\"", r->rid);
    int n = snprintf(NULL, 0, body_fmt, a, b ? b : "", ridpart);
    if (n < 0) goto nomem;
    r->len = (size_t)n;
    if ((size_t)n > c->max_msg) {
        req_free(r);
        return RTM_ERR_TOO_BIG;
    }
    if (!internal && c->outq.bytes + r->len > c->o.q_bytes) {
        req_free(r);
        return RTM_ERR_QUEUE_FULL;
    }
    if (!(r->buf = malloc(LWS_PRE + r->len + 1))) goto nomem;
    snprintf((char *)r->buf + LWS_PRE, r->len + 1, body_fmt, a, b ? b : "", ridpart);

    if (cb) r->deadline = client_mono_ms() + c->o.timeout_ms;
    if (front) {
        r->next = c->outq.head;
        c->outq.head = r;
        if (!c->outq.tail) c->outq.tail = r;
        c->outq.n++;
        c->outq.bytes += r->len;
    } else {
        list_push(&c->outq, r);
    }
    if (r->deadline) reqs_arm_timeout(c);
    client_request_write(c);
    return RTM_STATUS_OK;
nomem:
    req_free(r);
    return RTM_ERR_NOMEM;
}

static int json_text_ok(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    json_decref(j);
    return j != NULL;
}

static rtm_status sub_frame(struct rtm_client *c, const char *channel, rtm_done_fn cb, void *ud, int internal,
                            int front)
{
    char *q = json_quote(channel);
    if (!q) return RTM_ERR_NOMEM;
    rtm_status st = enqueue(c, REQ_SUBSCRIBE, channel,
                            c->o.sender_metadata ? "{\"type\":\"subscribe\",\"channel\":%s%s,\"includeSenderMetadata\":true%s}"
                                                 : "{\"type\":\"subscribe\",\"channel\":%s%s%s}",
                            q, NULL, cb, ud, internal, front);
    free(q);
    return st;
}

rtm_status rtm_subscribe(rtm_client *c, const char *channel, rtm_done_fn cb, void *ud)
{
    if (!c || !channel || !*channel) return RTM_ERR_INVALID_ARG;
    int existed = chan_find(c, channel) != NULL;
    if (!existed && !chan_add(c, channel)) return RTM_ERR_NOMEM;
    rtm_status st = sub_frame(c, channel, cb, ud, 0, 0);
    if (st && !existed) chan_remove(c, channel);
    return st;
}

rtm_status rtm_unsubscribe(rtm_client *c, const char *channel, rtm_done_fn cb, void *ud)
{
    if (!c || !channel || !*channel) return RTM_ERR_INVALID_ARG;
    char *q = json_quote(channel);
    if (!q) return RTM_ERR_NOMEM;
    rtm_status st = enqueue(c, REQ_UNSUBSCRIBE, channel, "{\"type\":\"unsubscribe\",\"channel\":%s%s%s}", q, NULL,
                            cb, ud, 0, 0);
    free(q);
    /* forgotten at once: no replay, presence for it is ignored from now on */
    if (!st) chan_remove(c, channel);
    return st;
}

rtm_status rtm_publish(rtm_client *c, const char *channel, const char *data, rtm_done_fn cb, void *ud)
{
    if (!c || !channel || !*channel || !data || !json_text_ok(data)) return RTM_ERR_INVALID_ARG;
    char *q = json_quote(channel);
    if (!q) return RTM_ERR_NOMEM;
    rtm_status st = enqueue(c, REQ_PUBLISH, NULL, "{\"type\":\"publish\",\"channel\":%s,\"data\":%s%s}", q, data,
                            cb, ud, 0, 0);
    free(q);
    return st;
}

rtm_status rtm_send(rtm_client *c, const char *peer_id, const char *data, rtm_done_fn cb, void *ud)
{
    if (!c || !peer_id || !*peer_id || !data || !json_text_ok(data)) return RTM_ERR_INVALID_ARG;
    char *q = json_quote(peer_id);
    if (!q) return RTM_ERR_NOMEM;
    rtm_status st =
        enqueue(c, REQ_SEND, NULL, "{\"type\":\"send\",\"to\":%s,\"data\":%s%s}", q, data, cb, ud, 0, 0);
    free(q);
    return st;
}

void frames_replay_subscriptions(struct rtm_client *c)
{
    /* walk to collect names first: prepend in reverse to keep their order */
    size_t n = 0;
    for (struct chan *ch = c->chans; ch; ch = ch->next)
        if (ch->acked) n++;
    if (!n) return;
    struct chan **v = calloc(n, sizeof *v);
    if (!v) return;
    size_t i = 0;
    for (struct chan *ch = c->chans; ch; ch = ch->next)
        if (ch->acked) v[i++] = ch;
    while (i--) {
        v[i]->resync = 1;
        sub_frame(c, v[i]->name, NULL, NULL, 1, 1);
    }
    free(v);
}

int frames_write(struct rtm_client *c, struct lws *wsi)
{
    for (int budget = RTM_WRITE_BUDGET; budget > 0 && c->outq.head; budget--) {
        if (lws_send_pipe_choked(wsi)) break;
        struct req *r = list_pop(&c->outq);
        int w = lws_write(wsi, r->buf + LWS_PRE, r->len, LWS_WRITE_TEXT);
        /* lws masks the payload in place, so a frame handed to lws_write is
         * never written again: after a failed write it counts as sent (its
         * completion, if any, reports the disconnect) */
        int failed = w < (int)r->len;
        if (r->rid[0]) {
            free(r->buf); /* written: only the bookkeeping is kept */
            r->buf = NULL;
            r->len = 0;
            list_push(&c->inflight, r);
        } else {
            req_free(r);
        }
        if (failed) return -1;
    }
    if (c->outq.head) lws_callback_on_writable(wsi);
    return 0;
}

/* ---- inbound ---- */

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static char *dump(json_t *v)
{
    return v ? rtm_json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
}

static struct req *take_inflight(struct rtm_client *c, const char *rid)
{
    struct req **pp = &c->inflight.head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->next) {
        struct req *r = *pp;
        if (strcmp(r->rid, rid)) continue;
        *pp = r->next;
        if (c->inflight.tail == r) c->inflight.tail = prev;
        c->inflight.n--;
        r->next = NULL;
        return r;
    }
    return NULL;
}

/* metadata.iceServers as borrowed pointers into meta; *srv and *urls are
 * malloc'd (caller frees both). Entries that are not objects are skipped. */
static size_t parse_ice(json_t *meta, struct rtm_ice_server **srv_out, const char ***urls_out)
{
    json_t *ice = json_is_object(meta) ? json_object_get(meta, "iceServers") : NULL;
    *srv_out = NULL;
    *urls_out = NULL;
    if (!json_is_array(ice) || json_array_size(ice) == 0 || json_array_size(ice) > 64) return 0;
    size_t n = json_array_size(ice), total = 0, m = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *u = json_object_get(json_array_get(ice, i), "urls");
        total += json_is_array(u) ? json_array_size(u) : 1;
    }
    struct rtm_ice_server *srv = calloc(n, sizeof *srv);
    const char **urls = calloc(total ? total : 1, sizeof *urls);
    if (!srv || !urls) {
        free(srv);
        free(urls);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(ice, i), *u = json_object_get(e, "urls");
        if (!json_is_object(e)) continue;
        srv[m].urls = urls + k;
        if (json_is_string(u)) {
            urls[k++] = json_string_value(u);
        } else if (json_is_array(u)) {
            for (size_t j = 0; j < json_array_size(u); j++)
                if (json_is_string(json_array_get(u, j))) urls[k++] = json_string_value(json_array_get(u, j));
        }
        srv[m].n_urls = (size_t)(urls + k - srv[m].urls);
        srv[m].username = jstr(e, "username");
        srv[m].credential = jstr(e, "credential");
        m++;
    }
    *srv_out = srv;
    *urls_out = urls;
    return m;
}

static void on_welcome(struct rtm_client *c, json_t *f)
{
    const char *peer = jstr(f, "peerId");
    json_t *meta = json_object_get(f, "metadata");
    struct rtm_welcome w = {0};
    struct rtm_ice_server *srv = NULL;
    const char **urls = NULL;
    char *meta_text = NULL;

    free(c->peer_id);
    c->peer_id = peer ? strdup(peer) : NULL;
    json_int_t mm = json_integer_value(json_object_get(f, "maxMessageSize"));
    if (mm > 0) c->max_msg = (size_t)mm;
    int reconnect = c->welcomed_once;
    int resumed = c->o.ext && json_is_true(json_object_get(f, "resumed"));
    if (c->o.ext) {
        const char *sid = jstr(f, "sessionId");
        free(c->session_id);
        c->session_id = sid && strlen(sid) <= 128 ? strdup(sid) : NULL;
        c->resume_window_ms = json_integer_value(json_object_get(f, "resumeWindowMs"));
    }
    c->resume_until = 0;
    /* a new session numbers direct messages from 1 again; a resumed one continues */
    if (!resumed) seqs_clear(c);
    client_welcomed(c);
    /* resumed: the broker kept the subscriptions (and presence did not change) */
    if (reconnect && !resumed) frames_replay_subscriptions(c);
    /* resumed, but the held queue lost presence frames: the next presence
     * frame of each channel is a whole member list, to replace ours (a peer
     * who left during the gap must not stay listed) */
    if (resumed && json_is_true(json_object_get(f, "presenceReset")))
        for (struct chan *ch = c->chans; ch; ch = ch->next)
            if (ch->acked) ch->resync = ch->awaiting_snapshot = 1;
    client_request_write(c);
    if (!c->o.cb.connected) return;

    w.peer_id = c->peer_id;
    w.expires_at = json_integer_value(json_object_get(f, "expiresAt"));
    w.server_time_ms = json_integer_value(json_object_get(f, "serverTime"));
    w.max_message_size = c->max_msg;
    w.reconnect = reconnect;
    w.resumed = resumed;
    meta_text = json_is_object(meta) ? dump(meta) : NULL;
    w.metadata = meta_text ? meta_text : "{}";
    w.n_ice_servers = parse_ice(meta, &srv, &urls);
    w.ice_servers = srv;
    CB_ENTER(c);
    c->o.cb.connected(c, &w, c->o.cb_ud);
    CB_LEAVE(c);
    free(srv);
    free(urls);
    free(meta_text);
}

static void on_refreshed(struct rtm_client *c, json_t *f)
{
    if (!c->o.cb.refreshed) return;
    json_t *meta = json_object_get(f, "metadata");
    struct rtm_ice_server *srv = NULL;
    const char **urls = NULL;
    char *meta_text = json_is_object(meta) ? dump(meta) : NULL;
    size_t n = parse_ice(meta, &srv, &urls);
    CB_ENTER(c);
    c->o.cb.refreshed(c, json_integer_value(json_object_get(f, "expiresAt")), meta_text ? meta_text : "{}", srv, n,
                      c->o.cb_ud);
    CB_LEAVE(c);
    free(srv);
    free(urls);
    free(meta_text);
}

static void on_answer(struct rtm_client *c, json_t *f, int ok)
{
    const char *rid = jstr(f, "requestId");
    struct req *r = rid ? take_inflight(c, rid) : NULL;
    if (!r) {
        if (!ok && c->o.cb.error) {
            CB_ENTER(c);
            c->o.cb.error(c, jstr(f, "code"), jstr(f, "message"), c->o.cb_ud);
            CB_LEAVE(c);
        }
        return;
    }
    if (ok && r->kind == REQ_SUBSCRIBE && r->channel) {
        struct chan *ch = chan_find(c, r->channel);
        if (ch) {
            ch->acked = 1;
            /* the first presence frame for this channel from now on is the
             * broker's member snapshot (it sends it at the end of the loop
             * turn that acknowledged the subscribe, to presence subscribers) */
            ch->awaiting_snapshot = 1;
        }
    }
    if (ok && r->kind == REQ_REFRESH) on_refreshed(c, f);
    complete(c, r, ok ? RTM_STATUS_OK : RTM_ERR_SERVER, ok ? NULL : jstr(f, "code"), ok ? NULL : jstr(f, "message"));
}

void seqs_clear(struct rtm_client *c)
{
    for (size_t i = 0; i < c->n_seqs; i++) free(c->seqs[i].peer);
    free(c->seqs);
    c->seqs = NULL;
    c->n_seqs = 0;
}

/* Records seq from `from`; reports a jump through the gap callback. */
static void seq_check(struct rtm_client *c, const char *from, json_t *jseq)
{
    if (!c->o.ext || !from || !json_is_integer(jseq) || json_integer_value(jseq) <= 0) return;
    uint64_t seq = (uint64_t)json_integer_value(jseq), expected = 0;
    size_t i;
    for (i = 0; i < c->n_seqs && strcmp(c->seqs[i].peer, from); i++) {
    }
    if (i < c->n_seqs) {
        expected = c->seqs[i].last + 1;
        c->seqs[i].last = seq;
    } else {
        char *p = strdup(from);
        if (!p) return;
        if (c->n_seqs == RTM_SEQ_PEERS) { /* forget the oldest sender */
            free(c->seqs[0].peer);
            memmove(c->seqs, c->seqs + 1, (RTM_SEQ_PEERS - 1) * sizeof *c->seqs);
            c->n_seqs--;
        } else {
            struct seqent *n = realloc(c->seqs, (c->n_seqs + 1) * sizeof *n);
            if (!n) {
                free(p);
                return;
            }
            c->seqs = n;
        }
        c->seqs[c->n_seqs++] = (struct seqent){p, seq};
        expected = 1;
    }
    if (seq > expected && c->o.cb.gap) {
        CB_ENTER(c);
        c->o.cb.gap(c, from, expected, seq, c->o.cb_ud);
        CB_LEAVE(c);
    }
}

/* token_expiring: refresh in-band with a token from the provider; without a
 * provider (or a token) the broker's 4002 close follows and reconnects. */
static void on_token_expiring(struct rtm_client *c)
{
    if (!c->o.provider) return;
    CB_ENTER(c);
    char *t = c->o.provider(c->o.provider_ud);
    CB_LEAVE(c);
    if (!t) return;
    json_t *tok = json_string(t);
    char *q = tok ? rtm_json_dumps(tok, JSON_ENCODE_ANY) : NULL;
    json_decref(tok);
    memset(t, 0, strlen(t));
    free(t);
    if (!q) return;
    enqueue(c, REQ_REFRESH, NULL, "{\"type\":\"refresh\",\"token\":%s%s%s}", q, NULL, NULL, NULL, 1, 1);
    memset(q, 0, strlen(q));
    free(q);
}

static void on_message(struct rtm_client *c, json_t *f, int direct)
{
    void (*fn)(rtm_client *, const struct rtm_message *, void *) = direct ? c->o.cb.direct : c->o.cb.message;
    if (!fn) return;
    struct rtm_message m = {0};
    char *data = dump(json_object_get(f, "data"));
    char *fm = dump(json_object_get(f, "fromMetadata"));
    m.channel = direct ? NULL : jstr(f, "channel");
    m.from = jstr(f, "from");
    m.data = data ? data : "null";
    m.from_metadata = fm;
    /* A frame without a sender is not a message: the callback's contract
     * promises a peerId (a hostile or broken broker must not hand it NULL). */
    if (m.from && (direct || m.channel)) {
        CB_ENTER(c);
        fn(c, &m, c->o.cb_ud);
        CB_LEAVE(c);
    }
    free(data);
    free(fm);
}

/* The broker writes "type" first; a frame that does not start so is parsed. */
static int is_raw_message(const char *text, size_t len)
{
    static const char pre[] = "{\"type\":\"message\"";
    return len > sizeof pre && !memcmp(text, pre, sizeof pre - 1);
}

int frames_dispatch(struct rtm_client *c, const char *text, size_t len)
{
    if (c->free_pending) return 0; /* freed from a callback earlier in this frame batch */
    if (c->o.raw_messages && is_raw_message(text, len)) {
        if (c->o.cb.frame) {
            CB_ENTER(c);
            c->o.cb.frame(c, text, len, c->o.cb_ud);
            CB_LEAVE(c);
        }
        return 0;
    }
    json_error_t e;
    json_t *f = json_loadb(text, len, 0, &e);
    if (c->o.cb.frame) {
        CB_ENTER(c);
        c->o.cb.frame(c, text, len, c->o.cb_ud);
        CB_LEAVE(c);
    }
    if (!json_is_object(f)) {
        json_decref(f);
        return -1;
    }
    const char *type = jstr(f, "type");
    if (!type) type = "";

    if (!strcmp(type, "welcome")) {
        on_welcome(c, f);
    } else if (!strcmp(type, "ack")) {
        on_answer(c, f, 1);
    } else if (!strcmp(type, "error")) {
        on_answer(c, f, 0);
    } else if (!strcmp(type, "message")) {
        on_message(c, f, 0);
    } else if (!strcmp(type, "direct")) {
        seq_check(c, jstr(f, "from"), json_object_get(f, "seq"));
        on_message(c, f, 1);
    } else if (!strcmp(type, "token_expiring")) {
        if (c->o.ext) on_token_expiring(c);
    } else if (!strcmp(type, "presence")) {
        const char *chn = jstr(f, "channel");
        struct chan *ch = chn ? chan_find(c, chn) : NULL;
        if (ch) {
            int snapshot = ch->awaiting_snapshot;
            ch->awaiting_snapshot = 0;
            members_apply(c, ch, json_object_get(f, "joined"), json_object_get(f, "left"), snapshot);
        }
    } else if (!strcmp(type, "unsubscribed")) {
        /* extensions: a refresh or resume with a narrower token ended these;
         * they leave our lists and are not subscribed again on reconnect */
        json_t *chs = json_object_get(f, "channels");
        for (size_t i = 0; c->o.ext && i < json_array_size(chs); i++) {
            const char *name = json_string_value(json_array_get(chs, i));
            if (name) chan_remove(c, name);
        }
    } else if (!strcmp(type, "going_away")) {
        json_int_t ms = json_integer_value(json_object_get(f, "retryAfterMs"));
        if (ms > 0) c->next_delay_floor = ms > 60000 ? 60000 : ms;
    }
    /* pong and unknown types: nothing beyond the liveness stamp */
    json_decref(f);
    return 0;
}

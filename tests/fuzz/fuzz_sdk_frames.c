/* fuzz_sdk_frames.c: librtm's handling of server frames: a hostile broker.
 *
 * The harness makes a real client (rtm_client_new on a shared lws context
 * that never runs: nothing connects), subscribes to room-1 and room-2, and
 * marks those requests as written, as frames_write would, so acks and errors
 * can answer them. Every record of the input (separated by 0x1e) is then one
 * text frame from the broker, given to frames_dispatch as client.c does.
 * Odd records of the first byte turn on the protocol extensions.
 * Oracle: after every frame each channel's member list is strictly sorted by
 * peerId (so sorted and unique); every callback gets JSON text that parses
 * (message/direct data, metadata, presence metadata), non-NULL peerIds, and
 * a presence callback reports only real changes (a joined peer was not a
 * member, a left one was); every request callback fires exactly once, by
 * the time the client is freed. */
#include "support.h"

#include "rtm_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RECORDS 64
#define MAX_REQS 8

struct state {
    rtm_client *c;
    int fired[MAX_REQS];
    int in_presence; /* members snapshot before the callback */
};

static void check_json(const char *text, const char *what)
{
    if (!text) return;
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    FUZZ_CHECK(v, "%s is not JSON: %s", what, text);
    json_decref(v);
}

static void check_members(struct rtm_client *c)
{
    for (struct chan *ch = c->chans; ch; ch = ch->next) {
        for (size_t i = 0; i < ch->n; i++) {
            FUZZ_CHECK(ch->m[i].peer_id, "a member without a peerId in %s", ch->name);
            check_json(ch->m[i].metadata, "member metadata");
            if (i) FUZZ_CHECK(strcmp(ch->m[i - 1].peer_id, ch->m[i].peer_id) < 0, "members of %s not sorted/unique: %s, %s",
                              ch->name, ch->m[i - 1].peer_id, ch->m[i].peer_id);
        }
    }
}

static int is_member(rtm_client *c, const char *channel, const char *peer)
{
    struct chan *ch = chan_find(c, channel);
    for (size_t i = 0; ch && i < ch->n; i++)
        if (!strcmp(ch->m[i].peer_id, peer)) return 1;
    return 0;
}

static void on_connected(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    check_json(w->metadata, "welcome metadata");
    for (size_t i = 0; i < w->n_ice_servers; i++)
        for (size_t k = 0; k < w->ice_servers[i].n_urls; k++) FUZZ_CHECK(w->ice_servers[i].urls[k], "a NULL ICE url");
}

static void on_message(rtm_client *c, const struct rtm_message *m, void *ud)
{
    FUZZ_CHECK(m->data && m->from, "a message without data or sender");
    check_json(m->data, "message data");
    check_json(m->from_metadata, "fromMetadata");
}

static void on_presence(rtm_client *c, const struct rtm_presence *p, void *ud)
{
    FUZZ_CHECK(p->channel, "presence without a channel");
    check_members(c);
    /* The list is already updated: the joined are members now, the left are not. */
    for (size_t i = 0; i < p->n_joined; i++) {
        FUZZ_CHECK(p->joined[i].peer_id, "a joined member without a peerId");
        check_json(p->joined[i].metadata, "joined metadata");
        FUZZ_CHECK(is_member(c, p->channel, p->joined[i].peer_id), "reported joined but not a member: %s",
                   p->joined[i].peer_id);
    }
    for (size_t i = 0; i < p->n_left; i++) {
        FUZZ_CHECK(p->left[i].peer_id, "a left member without a peerId");
        /* A frame listing a peer in both arrays is applied left first: the
         * peer is reported in both and ends a member (the broker never sends
         * that: one pending change per peer per flush). */
        int rejoined = 0;
        for (size_t k = 0; k < p->n_joined; k++) rejoined |= !strcmp(p->joined[k].peer_id, p->left[i].peer_id);
        FUZZ_CHECK(rejoined || !is_member(c, p->channel, p->left[i].peer_id), "reported left but still a member: %s",
                   p->left[i].peer_id);
    }
}

static void on_refreshed(rtm_client *c, int64_t exp, const char *metadata, const struct rtm_ice_server *ice,
                         size_t n, void *ud)
{
    check_json(metadata, "refreshed metadata");
}

static void on_frame(rtm_client *c, const char *json, size_t len, void *ud) { FUZZ_CHECK(json, "a NULL frame"); }

static void on_done(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    int *fired = ud;
    FUZZ_CHECK(++*fired == 1, "a request callback fired %d times", *fired);
}

static void one_frame(const uint8_t *rec, size_t n, void *ud)
{
    struct state *s = ud;
    frames_dispatch(s->c, (const char *)rec, n);
    check_members(s->c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 200000) return 0;
    struct state s;
    memset(&s, 0, sizeof s);
    rtm_options *o = rtm_options_new();
    struct rtm_callbacks cb = {.connected = on_connected, .message = on_message, .direct = on_message,
                               .presence = on_presence, .refreshed = on_refreshed, .frame = on_frame};
    rtm_options_set_url(o, "ws://127.0.0.1:1/");
    rtm_options_set_token(o, "h.p.s");
    rtm_options_set_callbacks(o, &cb, &s);
    rtm_options_set_lws_context(o, fuzz_lws_context());
    rtm_options_set_extensions(o, data[0] & 1);
    rtm_options_set_sender_metadata(o, (data[0] >> 1) & 1);
    if (rtm_client_new(o, &s.c) != RTM_STATUS_OK) abort();
    rtm_options_free(o);

    /* r1, r2: subscribes; r3: a publish; r4: a send. All then "written". */
    rtm_subscribe(s.c, "room-1", on_done, &s.fired[0]);
    rtm_subscribe(s.c, "room-2", on_done, &s.fired[1]);
    rtm_publish(s.c, "room-1", "{\"x\":1}", on_done, &s.fired[2]);
    rtm_send(s.c, "bob", "[1]", on_done, &s.fired[3]);
    s.c->inflight = s.c->outq;
    memset(&s.c->outq, 0, sizeof s.c->outq);

    fuzz_records(data + 1, size - 1, MAX_RECORDS, one_frame, &s);
    rtm_client_free(s.c);
    for (int i = 0; i < 4; i++) FUZZ_CHECK(s.fired[i] == 1, "request %d: callback fired %d times", i + 1, s.fired[i]);
    return 0;
}

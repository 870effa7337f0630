/* test_client.c: librtm against a real rtmd (tests/sdk/harness.h): every
 * call and callback, the exactly-once completion rule, the bounded queue,
 * terminal close codes, 4002 with a token provider, a daemon restart with
 * resubscription and member-list reconciliation, and long tokens. */
#define _GNU_SOURCE
#include "../unit/testlib.h"
#include "harness.h"
#include "rtm.h"

#include <ev.h>
#include <libwebsockets.h>
#include <pthread.h>

static struct rtmd D;

/* ---- a recording application ---- */

#define MAX_EV 256
struct app {
    const char *name;
    int connected, reconnects;
    struct rtm_welcome w; /* scalar fields of the last welcome */
    char peer[130];
    int n_ice, ice_has_cred;
    char ice_url0[128];
    char metadata[8192];
    int messages, directs;
    char last_data[512], last_from[130], last_channel[260], last_from_meta[512];
    int closed, closed_final;
    int last_code;
    char last_reason[128];
    int64_t retry[16];
    int n_retry;
    int errors;
    char last_err[64];
    /* presence bookkeeping: member state per (channel, peer) as the app sees it */
    char members[32][400];
    int in_room[32];
    int n_members;
    int dup_join, bogus_leave, joins, leaves;
    int free_in_close, free_in_message;
    int refreshed, resumed, gaps;
    int64_t refreshed_exp;
    int refreshed_has_cred;
    char directs_seen[1024];
    rtm_client *self;
};

static int chan_member_slot(struct app *a, const char *channel, const char *peer)
{
    char key[400];
    snprintf(key, sizeof key, "%s|%s", channel, peer);
    for (int i = 0; i < a->n_members; i++)
        if (!strcmp(a->members[i], key)) return i;
    if (a->n_members == 32) return 0;
    snprintf(a->members[a->n_members], sizeof a->members[0], "%s", key);
    return a->n_members++;
}

/* the channel most tests use */
static int member_slot(struct app *a, const char *peer) { return chan_member_slot(a, "room", peer); }

static void on_connected(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    struct app *a = ud;
    (void)c;
    a->connected++;
    if (w->reconnect) a->reconnects++;
    if (w->resumed) a->resumed++;
    a->w = *w;
    snprintf(a->peer, sizeof a->peer, "%s", w->peer_id ? w->peer_id : "");
    snprintf(a->metadata, sizeof a->metadata, "%s", w->metadata);
    a->n_ice = (int)w->n_ice_servers;
    a->ice_has_cred = 0;
    a->ice_url0[0] = 0;
    for (size_t i = 0; i < w->n_ice_servers; i++) {
        if (w->ice_servers[i].username && w->ice_servers[i].credential) a->ice_has_cred = 1;
        if (!a->ice_url0[0] && w->ice_servers[i].n_urls)
            snprintf(a->ice_url0, sizeof a->ice_url0, "%s", w->ice_servers[i].urls[0]);
    }
    a->w.peer_id = NULL;
    a->w.metadata = NULL;
    a->w.ice_servers = NULL;
}

static void on_message(rtm_client *c, const struct rtm_message *m, void *ud)
{
    struct app *a = ud;
    (void)c;
    if (m->channel) {
        a->messages++;
    } else {
        a->directs++;
        size_t l = strlen(a->directs_seen);
        snprintf(a->directs_seen + l, sizeof a->directs_seen - l, "%s,", m->data);
    }
    snprintf(a->last_data, sizeof a->last_data, "%s", m->data);
    snprintf(a->last_from, sizeof a->last_from, "%s", m->from ? m->from : "");
    snprintf(a->last_channel, sizeof a->last_channel, "%s", m->channel ? m->channel : "");
    snprintf(a->last_from_meta, sizeof a->last_from_meta, "%s", m->from_metadata ? m->from_metadata : "");
    if (a->free_in_message && a->self) {
        rtm_client_free(c); /* deferred; nothing but completions may fire after this */
        a->self = NULL;
    }
}

static void on_presence(rtm_client *c, const struct rtm_presence *p, void *ud)
{
    struct app *a = ud;
    (void)c;
    for (size_t i = 0; i < p->n_joined; i++) {
        int s = chan_member_slot(a, p->channel, p->joined[i].peer_id);
        if (a->in_room[s]) a->dup_join++;
        a->in_room[s] = 1;
        a->joins++;
    }
    for (size_t i = 0; i < p->n_left; i++) {
        int s = chan_member_slot(a, p->channel, p->left[i].peer_id);
        if (!a->in_room[s]) a->bogus_leave++;
        a->in_room[s] = 0;
        a->leaves++;
    }
}

static void on_error(rtm_client *c, const char *code, const char *msg, void *ud)
{
    struct app *a = ud;
    (void)c;
    (void)msg;
    a->errors++;
    snprintf(a->last_err, sizeof a->last_err, "%s", code ? code : "");
}

static void on_closed(rtm_client *c, int code, const char *reason, int again, int64_t in_ms, void *ud)
{
    struct app *a = ud;
    a->closed++;
    if (!again) a->closed_final++;
    a->last_code = code;
    snprintf(a->last_reason, sizeof a->last_reason, "%s", reason ? reason : "");
    if (again && a->n_retry < 16) a->retry[a->n_retry++] = in_ms;
    if (a->free_in_close) {
        rtm_client_free(c); /* deferred by the library */
        a->self = NULL;
    }
}

static void on_refreshed(rtm_client *c, int64_t exp, const char *meta, const struct rtm_ice_server *ice, size_t n,
                         void *ud)
{
    struct app *a = ud;
    (void)c;
    (void)meta;
    a->refreshed++;
    a->refreshed_exp = exp;
    for (size_t i = 0; i < n; i++)
        if (ice[i].username && ice[i].credential) a->refreshed_has_cred = 1;
}

static void on_gap(rtm_client *c, const char *from, uint64_t expected, uint64_t got, void *ud)
{
    struct app *a = ud;
    (void)c;
    (void)from;
    (void)expected;
    (void)got;
    a->gaps++;
}

static const struct rtm_callbacks CBS = {.refreshed = on_refreshed,
                                         .gap = on_gap,
                                         .connected = on_connected,
                                         .message = on_message,
                                         .direct = on_message,
                                         .presence = on_presence,
                                         .error = on_error,
                                         .closed = on_closed};

/* ---- completions, counted per request ---- */

#define MAX_DONE 512
struct done {
    int count;        /* must end at exactly 1 */
    rtm_status status;
    char code[64];
};

static void on_done(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    struct done *d = ud;
    (void)c;
    (void)msg;
    d->count++;
    d->status = st;
    snprintf(d->code, sizeof d->code, "%s", code ? code : "");
}

/* ---- helpers ---- */

static char *mint(const char *peer, const char *const *channels, size_t nch, const char *const *perms, size_t np,
                  int64_t ttl, const char *meta, const char *pmeta)
{
    struct rtm_token_params p = {.peer_id = peer,
                                 .channels = channels,
                                 .n_channels = nch,
                                 .permissions = perms,
                                 .n_permissions = np,
                                 .expires_in_sec = ttl,
                                 .metadata_json = meta,
                                 .peer_metadata_json = pmeta};
    char *t = NULL;
    int http = 0;
    rtm_status st = rtm_fetch_token(D.backend_url, D.key_secret, &p, 5000, &t, NULL, &http);
    if (st) fprintf(stderr, "  mint %s: %s (HTTP %d)\n", peer, rtm_status_str(st), http);
    return t;
}

static rtm_client *client_with(const char *token, struct app *a, rtm_options *o)
{
    rtm_client *c = NULL;
    if (!o) o = rtm_options_new();
    rtm_options_set_url(o, D.ws_url);
    if (token) rtm_options_set_token(o, token);
    rtm_options_set_callbacks(o, &CBS, a);
    rtm_status st = rtm_client_new(o, &c);
    rtm_options_free(o);
    if (st) fprintf(stderr, "  rtm_client_new: %s\n", rtm_status_str(st));
    if (a) a->self = c;
    return c;
}

static rtm_client *client_for(const char *peer, struct app *a)
{
    char *t = mint(peer, NULL, 0, NULL, 0, 0, NULL, "{\"name\":\"x\"}");
    if (!t) return NULL;
    rtm_client *c = client_with(t, a, NULL);
    free(t);
    return c;
}

/* Services every client in turn until cond holds or ms pass. */
#define PUMP_UNTIL(cond, ms, ...)                                                                                  \
    ({                                                                                                             \
        rtm_client *cs_[] = {__VA_ARGS__};                                                                         \
        long end_ = h_now_ms() + (ms);                                                                             \
        while (!(cond) && h_now_ms() < end_)                                                                       \
            for (size_t i_ = 0; i_ < sizeof cs_ / sizeof cs_[0]; i_++)                                             \
                if (cs_[i_]) rtm_client_service(cs_[i_], 5);                                                       \
        (cond);                                                                                                    \
    })

/* ---- tests ---- */

TEST(welcome_fields_and_ice_servers)
{
    struct app a = {0};
    rtm_client *c = client_for("alice", &a);
    CHECK(c);
    CHECK(PUMP_UNTIL(a.connected == 1, 5000, c));
    CHECK_STR(a.peer, "alice");
    CHECK_STR(rtm_client_peer_id(c), "alice");
    CHECK(rtm_client_is_connected(c));
    CHECK(a.w.reconnect == 0);
    CHECK(a.w.max_message_size == 65536);
    CHECK(a.w.expires_at > time(NULL) + 3000);
    CHECK(a.w.server_time_ms / 1000 >= time(NULL) - 5 && a.w.server_time_ms / 1000 <= time(NULL) + 5);
    CHECK(a.n_ice == 2);
    CHECK(a.ice_has_cred);
    CHECK_STR(a.ice_url0, "stun:127.0.0.1:3478");
    CHECK(strstr(a.metadata, "iceServers") != NULL);
    rtm_client_free(c);
}

TEST(publish_subscribe_presence_and_exactly_once_acks)
{
    struct app a = {0}, b = {0};
    rtm_client *ca = client_for("alice", &a), *cb = client_for("bob", &b);
    struct done sa = {0}, sb = {0}, pub = {0};
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    CHECK(rtm_subscribe(cb, "room", on_done, &sb) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(sb.count == 1, 3000, ca, cb));
    CHECK(sb.status == RTM_STATUS_OK);
    CHECK(rtm_subscribe(ca, "room", on_done, &sa) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(sa.count == 1 && b.joins == 1, 3000, ca, cb));
    CHECK(b.joins == 1 && b.in_room[member_slot(&b, "alice")]);
    CHECK(a.joins == 1 && a.in_room[member_slot(&a, "bob")]); /* the snapshot */
    CHECK(rtm_members(cb, "room", NULL, NULL) == 1);
    CHECK(rtm_members(cb, "nowhere", NULL, NULL) == RTM_ERR_STATE);

    CHECK(rtm_publish(ca, "room", "{\"hello\":1}", on_done, &pub) == RTM_STATUS_OK);
    CHECK(pub.count == 0); /* never inside the call */
    CHECK(PUMP_UNTIL(pub.count == 1 && b.messages == 1, 3000, ca, cb));
    CHECK(pub.status == RTM_STATUS_OK);
    CHECK_STR(b.last_data, "{\"hello\":1}");
    CHECK_STR(b.last_from, "alice");
    CHECK_STR(b.last_channel, "room");
    PUMP_UNTIL(0, 200, ca, cb);
    CHECK(a.messages == 0); /* no echo */
    CHECK(pub.count == 1 && sa.count == 1 && sb.count == 1);

    /* leave: bob sees alice go */
    struct done un = {0};
    CHECK(rtm_unsubscribe(ca, "room", on_done, &un) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(un.count == 1 && b.leaves == 1, 3000, ca, cb));
    CHECK(rtm_members(ca, "room", NULL, NULL) == RTM_ERR_STATE);
    CHECK(rtm_members(cb, "room", NULL, NULL) == 0);
    CHECK(b.dup_join == 0 && b.bogus_leave == 0);
    rtm_client_free(ca);
    rtm_client_free(cb);
}

TEST(direct_send_with_from_metadata)
{
    struct app a = {0}, b = {0};
    rtm_client *ca = client_for("alice", &a), *cb = client_for("bob", &b);
    struct done s1 = {0}, s2 = {0}, d1 = {0}, d2 = {0};
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    rtm_subscribe(ca, "pair", on_done, &s1);
    rtm_subscribe(cb, "pair", on_done, &s2);
    CHECK(PUMP_UNTIL(s1.count && s2.count, 3000, ca, cb));
    CHECK(rtm_send(ca, "bob", "\"offer\"", on_done, &d1) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(d1.count == 1 && b.directs == 1, 3000, ca, cb));
    CHECK(d1.status == RTM_STATUS_OK);
    CHECK_STR(b.last_data, "\"offer\"");
    CHECK_STR(b.last_from, "alice");
    CHECK_STR(b.last_from_meta, "{\"name\":\"x\"}");
    /* no shared channel: the wire code reaches the completion */
    CHECK(rtm_send(ca, "nobody", "1", on_done, &d2) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(d2.count == 1, 3000, ca, cb));
    CHECK(d2.status == RTM_ERR_SERVER);
    CHECK_STR(d2.code, "peer_not_found");
    rtm_client_free(ca);
    rtm_client_free(cb);
}

TEST(error_codes_reach_completions)
{
    struct app a = {0};
    const char *chans[] = {"team/*"};
    char *t = mint("carol", chans, 1, NULL, 0, 0, NULL, NULL);
    rtm_client *c = client_with(t, &a, NULL);
    free(t);
    struct done r1 = {0}, r2 = {0}, r3 = {0};
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    CHECK(rtm_subscribe(c, "other", on_done, &r1) == RTM_STATUS_OK);
    CHECK(rtm_subscribe(c, "_rtm/x", on_done, &r2) == RTM_STATUS_OK);
    CHECK(rtm_publish(c, "elsewhere", "1", on_done, &r3) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(r1.count && r2.count && r3.count, 3000, c));
    CHECK_STR(r1.code, "channel_not_authorized");
    CHECK(r2.status == RTM_ERR_SERVER && r2.code[0]);
    CHECK_STR(r3.code, "channel_not_authorized");
    CHECK(rtm_members(c, "other", NULL, NULL) == RTM_ERR_STATE); /* a refused subscription is forgotten */
    /* invalid arguments fail at the call and never call back */
    struct done bad = {0};
    CHECK(rtm_publish(c, "team/a", "{not json", on_done, &bad) == RTM_ERR_INVALID_ARG);
    CHECK(rtm_publish(c, NULL, "1", on_done, &bad) == RTM_ERR_INVALID_ARG);
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    big[0] = '"';
    big[69998] = '"';
    big[69999] = 0;
    CHECK(rtm_publish(c, "team/a", big, on_done, &bad) == RTM_ERR_TOO_BIG);
    free(big);
    PUMP_UNTIL(0, 100, c);
    CHECK(bad.count == 0);
    CHECK(r1.count == 1 && r2.count == 1 && r3.count == 1);
    rtm_client_free(c);
}

TEST(bounded_queue_while_disconnected_and_close_fires_once)
{
    /* nothing listens on this port: the client keeps retrying */
    struct app a = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_queue_limits(o, 3, 1 << 20);
    rtm_options_set_url(o, "ws://127.0.0.1:1");
    rtm_options_set_token(o, "x.y.z");
    rtm_options_set_callbacks(o, &CBS, &a);
    rtm_client *c = NULL;
    CHECK(rtm_client_new(o, &c) == RTM_STATUS_OK);
    rtm_options_free(o);
    struct done d[4] = {{0}};
    for (int i = 0; i < 3; i++) CHECK(rtm_publish(c, "q", "1", on_done, &d[i]) == RTM_STATUS_OK);
    CHECK(rtm_publish(c, "q", "1", on_done, &d[3]) == RTM_ERR_QUEUE_FULL);
    CHECK(rtm_client_queued(c) == 3);
    CHECK(PUMP_UNTIL(a.closed >= 2, 5000, c)); /* connect failures, backoff between */
    CHECK(a.closed_final == 0);
    CHECK(a.n_retry >= 2 && a.retry[0] >= 400 && a.retry[0] <= 600 && a.retry[1] >= 800 && a.retry[1] <= 1200);
    for (int i = 0; i < 3; i++) CHECK(d[i].count == 0);
    rtm_client_free(c);
    for (int i = 0; i < 3; i++) CHECK(d[i].count == 1 && d[i].status == RTM_ERR_CLOSED);
    CHECK(d[3].count == 0);
}

TEST(request_timeout_fires_once)
{
    struct app a = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_request_timeout(o, 300);
    rtm_options_set_url(o, "ws://127.0.0.1:1");
    rtm_options_set_token(o, "x.y.z");
    rtm_options_set_callbacks(o, &CBS, &a);
    rtm_client *c = NULL;
    CHECK(rtm_client_new(o, &c) == RTM_STATUS_OK);
    rtm_options_free(o);
    struct done d = {0};
    CHECK(rtm_subscribe(c, "q", on_done, &d) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(d.count == 1, 3000, c));
    CHECK(d.status == RTM_ERR_TIMEOUT);
    CHECK(rtm_client_queued(c) == 0);
    PUMP_UNTIL(0, 300, c);
    CHECK(d.count == 1);
    rtm_client_free(c);
    CHECK(d.count == 1);
}

TEST(daemon_restart_reconnects_resubscribes_and_reconciles)
{
    struct app a = {0}, b = {0};
    rtm_client *ca = client_for("alice", &a), *cb = client_for("bob", &b);
    struct done s1 = {0}, s2 = {0};
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    struct done s3 = {0}, s4 = {0};
    rtm_subscribe(ca, "room", on_done, &s1);
    rtm_subscribe(cb, "room", on_done, &s2);
    rtm_subscribe(ca, "room2", on_done, &s3);
    rtm_subscribe(cb, "room2", on_done, &s4);
    CHECK(PUMP_UNTIL(s1.count && s2.count && s3.count && s4.count && (a.joins + b.joins) == 4, 3000, ca, cb));
    /* carol is in room before the restart and does not come back */
    struct app cc_app = {0};
    struct done s5 = {0};
    rtm_client *cc = client_for("carol", &cc_app);
    CHECK(PUMP_UNTIL(cc_app.connected, 5000, ca, cb, cc));
    rtm_subscribe(cc, "room", on_done, &s5);
    CHECK(PUMP_UNTIL(s5.count && a.in_room[member_slot(&a, "carol")] && b.in_room[member_slot(&b, "carol")], 3000,
                     ca, cb, cc));
    /* in-flight publishes at the moment the daemon goes away each complete exactly once */
    static struct done inflight[100];
    memset(inflight, 0, sizeof inflight);
    for (int i = 0; i < 100; i++) rtm_publish(ca, "room", "\"burst\"", on_done, &inflight[i]);
    PUMP_UNTIL(inflight[10].count, 2000, ca, cb, cc); /* some answered, the rest on the wire or queued */
    rtmd_stop(&D);
    rtm_client_free(cc);

    long t0 = h_now_ms();
    CHECK(rtmd_launch(&D) == 0);
    CHECK(PUMP_UNTIL(a.reconnects == 1 && b.reconnects == 1, 10000, ca, cb));
    if (a.reconnects != 1 || b.reconnects != 1)
        fprintf(stderr, "  reconnects a=%d b=%d closed a=%d(%d %s) b=%d(%d %s)\n", a.reconnects, b.reconnects, a.closed,
                a.last_code, a.last_reason, b.closed, b.last_code, b.last_reason);
    for (int i = 0; i < 100; i++) CHECK(inflight[i].count == 1 || inflight[i].count == 0);
    CHECK(PUMP_UNTIL(({
                         int all = 1;
                         for (int i = 0; i < 100; i++) all &= inflight[i].count == 1;
                         all;
                     }),
                     12000, ca, cb));
    int acked = 0, disc = 0;
    for (int i = 0; i < 100; i++) {
        CHECK(inflight[i].count == 1);
        acked += inflight[i].status == RTM_STATUS_OK;
        disc += inflight[i].status == RTM_ERR_DISCONNECTED;
    }
    CHECK(acked + disc == 100 && acked >= 11);
    /* the first retry honours the backoff (500 ms +- 20 %), or the going_away
     * frame's retryAfterMs (3 s from a draining rtmd) plus up to 20 % jitter */
    CHECK(a.n_retry >= 1 && a.retry[0] >= 400 && a.retry[0] <= 3600);
    CHECK(h_now_ms() - t0 >= 400);
    CHECK(a.closed_final == 0 && b.closed_final == 0);
    /* subscriptions came back without the application asking */
    PUMP_UNTIL(0, 500, ca, cb);
    int before = b.messages;
    struct done p = {0};
    CHECK(rtm_publish(ca, "room", "\"after\"", on_done, &p) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(p.count == 1 && b.messages > before, 3000, ca, cb));
    CHECK_STR(b.last_data, "\"after\"");
    /* the app's view of presence stayed consistent: no duplicate joins, no leave without a join */
    CHECK(a.dup_join == 0 && b.dup_join == 0 && a.bogus_leave == 0 && b.bogus_leave == 0);
    CHECK(b.in_room[member_slot(&b, "alice")] && a.in_room[member_slot(&a, "bob")]);
    CHECK(rtm_members(ca, "room", NULL, NULL) == 1 && rtm_members(cb, "room", NULL, NULL) == 1);
    CHECK(rtm_members(ca, "room2", NULL, NULL) == 1 && rtm_members(cb, "room2", NULL, NULL) == 1);
    /* carol's leave is real and reported once to each */
    CHECK(!a.in_room[member_slot(&a, "carol")] && !b.in_room[member_slot(&b, "carol")]);
    rtm_client_free(ca);
    rtm_client_free(cb);
}

TEST(bad_token_is_terminal_4001)
{
    struct app a = {0};
    rtm_client *c = client_with("eyJhbGciOiJIUzI1NiJ9.e30.AAAA", &a, NULL);
    struct done d = {0};
    CHECK(rtm_subscribe(c, "x", on_done, &d) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(a.closed_final == 1, 5000, c));
    CHECK(a.last_code == 4001);
    CHECK(a.connected == 0);
    CHECK(d.count == 1 && d.status == RTM_ERR_CLOSED);
    CHECK(rtm_client_service(c, 0) == RTM_ERR_CLOSED);
    PUMP_UNTIL(0, 1200, c);
    CHECK(a.closed == 1); /* no further attempts */
    CHECK(rtm_publish(c, "x", "1", on_done, &d) == RTM_ERR_CLOSED);
    rtm_client_free(c);
}

static int http(const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", D.backend_url, path);
    int status = 0;
    char *resp = NULL;
    rtm_status st = rtm_http_request(method, url, D.key_secret, body, 5000, &status, &resp);
    free(resp);
    return st ? -1 : status;
}

/* The session row's closeCode for peer, once the broker has written it
 * (rows go out in batches): 0 when none came within 5 s. */
static int row_close_code(const char *peer)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/sessions?peerId=%s", D.backend_url, peer);
    long end = h_now_ms() + 5000;
    while (h_now_ms() < end) {
        int status = 0;
        char *resp = NULL;
        if (rtm_http_request("GET", url, D.key_secret, NULL, 5000, &status, &resp) == RTM_STATUS_OK && status == 200 && resp) {
            const char *k = strstr(resp, "\"closeCode\":");
            int code = k ? atoi(k + 12) : 0;
            free(resp);
            if (code) return code;
        } else {
            free(resp);
        }
        h_sleep_ms(100);
    }
    return 0;
}

TEST(free_closes_with_1000)
{
    struct app a = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_extensions(o, 1); /* a dropped extension session would be held for its resume */
    char *t = mint("goodbye", NULL, 0, NULL, 0, 0, NULL, NULL);
    rtm_client *c = client_with(t, &a, o);
    free(t);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    struct done d = {0};
    CHECK(rtm_publish(c, "bye-room", "1", on_done, &d) == RTM_STATUS_OK);
    long t0 = h_now_ms();
    rtm_client_free(c);
    CHECK(h_now_ms() - t0 < 1000);
    CHECK(d.count == 1); /* its completion fired (ack or RTM_ERR_CLOSED), once */
    CHECK(a.closed == 0); /* no closed callback after free */
    CHECK(row_close_code("goodbye") == 1000);
}

TEST(revocation_closes_4001_and_stops)
{
    struct app a = {0};
    rtm_client *c = client_for("mallory", &a);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    int st = http("POST", "/v1/revocations", "{\"peerId\":\"mallory\"}");
    CHECK(st == 201 || st == 200);
    CHECK(PUMP_UNTIL(a.closed_final == 1, 5000, c));
    CHECK(a.last_code == 4001);
    PUMP_UNTIL(0, 1000, c);
    CHECK(a.closed == 1 && a.connected == 1);
    rtm_client_free(c);
}

TEST(kick_closes_4020_and_stops)
{
    struct app a = {0};
    rtm_client *c = client_for("kicked", &a);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    int st = http("DELETE", "/v1/peers/kicked", NULL);
    CHECK(st >= 200 && st < 300);
    CHECK(PUMP_UNTIL(a.closed_final == 1, 5000, c));
    CHECK(a.last_code == 4020);
    PUMP_UNTIL(0, 1000, c);
    CHECK(a.closed == 1);
    rtm_client_free(c);
}

TEST(key_revoked_closes_4012_and_stops)
{
    /* A key of its own, revoked by `rtm key revoke` (another process): the
     * broker's view sees it within a poll and closes with 4012, which the
     * SDK treats as terminal (issue 10). */
    char tool[300], out[2048], kid[128] = "", secret[128] = "";
    snprintf(tool, sizeof tool, "%s/rtm", D.build);
    char *create[] = {tool, "key", "create", "--db", D.db, "--app", "test", NULL};
    CHECK(h_run(create, out, sizeof out) == 0);
    CHECK(h_json_str(out, "id", kid, sizeof kid) == 0 && h_json_str(out, "secret", secret, sizeof secret) == 0);
    struct rtm_token_params p = {.peer_id = "on-revoked-key", .expires_in_sec = 600};
    char *t = NULL;
    CHECK(rtm_sign_token(kid, secret, &p, NULL, NULL, 0, &t, NULL) == RTM_STATUS_OK);
    struct app a = {0};
    rtm_client *c = client_with(t, &a, NULL);
    free(t);
    CHECK(PUMP_UNTIL(a.connected == 1 || a.closed_final, 5000, c));
    CHECK(a.connected == 1);
    char *revoke[] = {tool, "key", "revoke", "--db", D.db, kid, NULL};
    CHECK(h_run(revoke, out, sizeof out) == 0);
    CHECK(PUMP_UNTIL(a.closed_final == 1, 3000, c));
    CHECK(a.last_code == 4012);
    PUMP_UNTIL(0, 1200, c);
    CHECK(a.closed == 1 && a.connected == 1); /* terminal: no reconnect */
    rtm_client_free(c);
}

struct prov {
    int calls;
    char last[4096];
    int changed;
};

static char *provider(void *ud)
{
    struct prov *p = ud;
    p->calls++;
    char *t = mint("shortlived", NULL, 0, NULL, 0, 2, NULL, NULL);
    if (t && p->last[0] && strcmp(p->last, t)) p->changed++;
    if (t) snprintf(p->last, sizeof p->last, "%s", t);
    return t;
}

TEST(expiry_4002_reconnects_with_a_fresh_token)
{
    struct app a = {0};
    struct prov pv = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_token_provider(o, provider, &pv);
    rtm_options_set_extensions(o, 0); /* the core protocol: 4002, then a new connection */
    rtm_client *c = client_with(NULL, &a, o);
    CHECK(PUMP_UNTIL(a.connected == 1, 5000, c));
    CHECK(pv.calls == 1);
    long t0 = h_now_ms();
    CHECK(PUMP_UNTIL(a.reconnects == 1, 6000, c));
    CHECK(a.last_code == 4002);
    CHECK(a.n_retry >= 1 && a.retry[0] == 0); /* at once, no backoff */
    CHECK(pv.calls == 2 && pv.changed == 1);
    CHECK(h_now_ms() - t0 < 4000);
    CHECK(a.closed_final == 0);
    rtm_client_free(c);
}

TEST(token_over_4k_connects)
{
    struct app a = {0};
    char meta[6200];
    int n = snprintf(meta, sizeof meta, "{\"blob\":\"");
    memset(meta + n, 'm', 5000);
    snprintf(meta + n + 5000, sizeof meta - (size_t)n - 5000, "\"}");
    char *t = mint("bigmeta", NULL, 0, NULL, 0, 0, meta, NULL);
    CHECK(t && strlen(t) > 4096);
    rtm_client *c = client_with(t, &a, NULL);
    free(t);
    CHECK(PUMP_UNTIL(a.connected == 1 || a.closed, 5000, c));
    CHECK(a.connected == 1);
    if (!a.connected) fprintf(stderr, "  long token refused: %d %s\n", a.last_code, a.last_reason);
    CHECK(strstr(a.metadata, "mmmmmmmm") != NULL);
    rtm_client_free(c);

    /* the largest claims the mint API allows (8 KB metadata, 4 KB peerMetadata): ~16 KB */
    char big[8200], pbig[4200];
    n = snprintf(big, sizeof big, "{\"blob\":\"");
    memset(big + n, 'q', 8000);
    snprintf(big + n + 8000, sizeof big - (size_t)n - 8000, "\"}");
    int pn = snprintf(pbig, sizeof pbig, "{\"p\":\"");
    memset(pbig + pn, 'r', 3900);
    snprintf(pbig + pn + 3900, sizeof pbig - (size_t)pn - 3900, "\"}");
    struct app b = {0};
    t = mint("hugemeta", NULL, 0, NULL, 0, 0, big, pbig);
    CHECK(t && strlen(t) > 15000);
    if (t) fprintf(stderr, "  # token of %zu bytes\n", strlen(t));
    c = client_with(t, &b, NULL);
    free(t);
    CHECK(PUMP_UNTIL(b.connected == 1 || b.closed, 5000, c));
    CHECK(b.connected == 1);
    CHECK(strstr(b.metadata, "qqqqqqqq") != NULL);
    rtm_client_free(c);
}

TEST(locally_signed_token_with_turn_credentials_connects)
{
    struct app a = {0};
    struct rtm_token_params p = {.peer_id = "local", .expires_in_sec = 600};
    const char *urls[] = {"turn:127.0.0.1:3478?transport=udp"};
    char *t = NULL;
    int64_t exp = 0;
    CHECK(rtm_sign_token(D.key_id, D.key_secret, &p, D.turn_secret, urls, 1, &t, &exp) == RTM_STATUS_OK);
    CHECK(exp > time(NULL) + 500 && exp <= time(NULL) + 601);
    rtm_client *c = client_with(t, &a, NULL);
    free(t);
    CHECK(PUMP_UNTIL(a.connected == 1 || a.closed_final, 5000, c));
    CHECK(a.connected == 1);
    CHECK(a.ice_has_cred);
    CHECK_STR(a.ice_url0, "turn:127.0.0.1:3478?transport=udp");
    /* a wrong secret is refused by the broker */
    struct app b = {0};
    CHECK(rtm_sign_token(D.key_id, "sk_secret_wrong", &p, NULL, NULL, 0, &t, NULL) == RTM_STATUS_OK);
    rtm_client *cb = client_with(t, &b, NULL);
    free(t);
    CHECK(PUMP_UNTIL(b.closed_final, 5000, cb));
    CHECK(b.last_code == 4001);
    rtm_client_free(c);
    rtm_client_free(cb);
}

TEST(stop_settles_everything_and_free_inside_callback_is_deferred)
{
    struct app a = {0};
    rtm_client *c = client_for("stopper", &a);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    struct done d = {0};
    CHECK(rtm_subscribe(c, "s", on_done, &d) == RTM_STATUS_OK);
    rtm_client_stop(c);
    a.free_in_close = 1;
    CHECK(PUMP_UNTIL(a.self == NULL, 3000, c));
    CHECK(a.closed_final == 1);
    CHECK(d.count == 1);
    CHECK(d.status == RTM_ERR_CLOSED || d.status == RTM_STATUS_OK || d.status == RTM_ERR_DISCONNECTED);
    /* c was freed by the service call that ran the callback: no further use */
}

static void *waker(void *arg)
{
    h_sleep_ms(300);
    rtm_client_wake(arg);
    return NULL;
}

TEST(wake_from_another_thread)
{
    struct app a = {0};
    rtm_client *c = client_for("sleeper", &a);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    PUMP_UNTIL(0, 100, c);
    pthread_t th;
    pthread_create(&th, NULL, waker, c);
    long t0 = h_now_ms();
    rtm_client_service(c, 20000);
    long took = h_now_ms() - t0;
    pthread_join(th, NULL);
    CHECK(took < 5000);
    rtm_client_free(c);
}

TEST(liveness_pings_keep_an_idle_session_open)
{
    struct app a = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_liveness(o, 100, 400);
    char *t = mint("idle", NULL, 0, NULL, 0, 0, NULL, NULL);
    rtm_client *c = client_with(t, &a, o);
    free(t);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    PUMP_UNTIL(0, 1500, c); /* silence but for pongs */
    CHECK(a.closed == 0);
    rtm_client_free(c);
}

TEST(publishable_key_connects_with_a_broker_assigned_peer)
{
    char tool[300], out[1024], pk[128] = "";
    snprintf(tool, sizeof tool, "%s/rtm", D.build);
    char *argv[] = {tool, "key", "create", "--db", D.db, "--app", "test", "--publishable", NULL};
    CHECK(h_run(argv, out, sizeof out) == 0);
    CHECK(h_json_str(out, "id", pk, sizeof pk) == 0);
    struct app a = {0};
    rtm_options *o = rtm_options_new();
    CHECK(rtm_options_set_publishable_key(o, "not-a-key") == RTM_ERR_INVALID_ARG);
    CHECK(rtm_options_set_publishable_key(o, pk) == RTM_STATUS_OK);
    rtm_client *c = client_with(NULL, &a, o);
    CHECK(c != NULL);
    CHECK(PUMP_UNTIL(a.connected || a.closed_final, 5000, c));
    CHECK(a.connected == 1);
    CHECK(strlen(a.peer) == 36); /* a UUID */
    CHECK(a.w.expires_at == 0);  /* null for publishable keys */
    CHECK(a.ice_has_cred);
    rtm_client_free(c);
}

TEST(uncorrelated_error_frames_reach_the_error_callback)
{
    struct app a = {0};
    const char *chans[] = {"mine/*"};
    char *t = mint("errs", chans, 1, NULL, 0, 0, NULL, NULL);
    rtm_client *c = client_with(t, &a, NULL);
    free(t);
    CHECK(PUMP_UNTIL(a.connected, 5000, c));
    /* fire and forget: no requestId, so the broker's error answers nothing */
    CHECK(rtm_publish(c, "theirs", "1", NULL, NULL) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(a.errors == 1, 3000, c));
    CHECK_STR(a.last_err, "channel_not_authorized");
    rtm_client_free(c);
}

TEST(runs_on_an_application_owned_lws_context)
{
    struct lws_protocols protos[2];
    struct lws_context_creation_info info;
    protos[0] = *rtm_lws_protocol();
    memset(&protos[1], 0, sizeof protos[1]);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.gid = -1;
    info.uid = -1;
    struct lws_context *ctx = lws_create_context(&info);
    CHECK(ctx != NULL);
    struct app a = {0}, b = {0};
    rtm_client *cs[2];
    const char *peers[] = {"ctx-a", "ctx-b"};
    struct app *apps[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        char *t = mint(peers[i], NULL, 0, NULL, 0, 0, NULL, NULL);
        rtm_options *o = rtm_options_new();
        rtm_options_set_lws_context(o, ctx);
        cs[i] = client_with(t, apps[i], o);
        free(t);
    }
    CHECK(rtm_client_service(cs[0], 0) == RTM_ERR_INVALID_ARG); /* the application services its context */
    struct done s1 = {0}, s2 = {0}, p = {0};
    long end = h_now_ms() + 5000;
    while (!(a.connected && b.connected) && h_now_ms() < end) lws_service(ctx, 0);
    CHECK(a.connected && b.connected);
    rtm_subscribe(cs[1], "shared", on_done, &s2);
    rtm_subscribe(cs[0], "shared", on_done, &s1);
    end = h_now_ms() + 3000;
    while (!(s1.count && s2.count) && h_now_ms() < end) lws_service(ctx, 0);
    CHECK(rtm_publish(cs[0], "shared", "\"same loop\"", on_done, &p) == RTM_STATUS_OK);
    end = h_now_ms() + 3000;
    while (!(p.count && b.messages) && h_now_ms() < end) lws_service(ctx, 0);
    CHECK(p.count == 1 && b.messages == 1);
    CHECK_STR(b.last_data, "\"same loop\"");
    rtm_client_free(cs[0]);
    rtm_client_free(cs[1]);
    lws_context_destroy(ctx);
}

/* An application's lws context on its own libev loop (lws's libev plugin,
 * a foreign loop), set up as rtm.h advises (a 10 ms ev_timer calling
 * lws_cancel_service, lws's forced service after every poll): librtm's
 * timers are lws_sul timers there, and they run: the first connect (a timer
 * due at once) happens, a message crosses, and liveness pings every 100 ms
 * keep a session whose idle limit is 400 ms open. (A loop this busy keeps
 * lws's own timer armed even without the wake-up; the wake-up is for a quiet
 * loop, ../shared/PLATFORM-NOTES.md.) */
struct app_ev {
    struct ev_loop *ev;
    struct lws_context *ctx;
    ev_timer tick;
    ev_check forced;
};
int _lws_plat_service_forced_tsi(struct lws_context *context, int tsi);
static void app_tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    lws_cancel_service(((struct app_ev *)w->data)->ctx);
}
static void app_forced(struct ev_loop *ev, ev_check *w, int revents)
{
    struct lws_context *ctx = ((struct app_ev *)w->data)->ctx;
    (void)ev;
    (void)revents;
    if (ctx && lws_service_adjust_timeout(ctx, 1, 0) == 0) _lws_plat_service_forced_tsi(ctx, 0);
}

TEST(runs_on_an_application_owned_libev_context)
{
    struct app_ev L = {0};
    struct lws_protocols protos[2];
    struct lws_context_creation_info info;
    void *foreign[1];
    protos[0] = *rtm_lws_protocol();
    memset(&protos[1], 0, sizeof protos[1]);
    memset(&info, 0, sizeof info);
    CHECK((L.ev = ev_loop_new(EVBACKEND_EPOLL)) != NULL);
    foreign[0] = L.ev;
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = foreign;
    info.pcontext = &L.ctx;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.gid = -1;
    info.uid = -1;
    CHECK((L.ctx = lws_create_context(&info)) != NULL);
    ev_timer_init(&L.tick, app_tick, 0.01, 0.01);
    L.tick.data = &L;
    ev_timer_start(L.ev, &L.tick);
    ev_check_init(&L.forced, app_forced);
    L.forced.data = &L;
    ev_check_start(L.ev, &L.forced);
    struct app a = {0}, b = {0};
    rtm_client *cs[2];
    const char *peers[] = {"evctx-a", "evctx-b"};
    struct app *apps[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        char *t = mint(peers[i], NULL, 0, NULL, 0, 0, NULL, NULL);
        rtm_options *o = rtm_options_new();
        rtm_options_set_lws_context(o, L.ctx);
        rtm_options_set_liveness(o, 100, 400);
        cs[i] = client_with(t, apps[i], o);
        free(t);
    }
    long end = h_now_ms() + 5000;
    while (!(a.connected && b.connected) && h_now_ms() < end) ev_run(L.ev, EVRUN_ONCE);
    CHECK(a.connected && b.connected);
    struct done s1 = {0}, p = {0};
    rtm_subscribe(cs[1], "evshared", on_done, &s1);
    end = h_now_ms() + 3000;
    while (!s1.count && h_now_ms() < end) ev_run(L.ev, EVRUN_ONCE);
    CHECK(rtm_publish(cs[0], "evshared", "\"one loop\"", on_done, &p) == RTM_STATUS_OK);
    end = h_now_ms() + 3000;
    while (!(p.count && b.messages) && h_now_ms() < end) ev_run(L.ev, EVRUN_ONCE);
    CHECK(p.count == 1 && b.messages == 1);
    CHECK_STR(b.last_data, "\"one loop\"");
    end = h_now_ms() + 1500; /* silence but for pings and pongs */
    while (h_now_ms() < end) ev_run(L.ev, EVRUN_ONCE);
    CHECK(a.closed == 0 && b.closed == 0);
    rtm_client_free(cs[0]);
    rtm_client_free(cs[1]);
    ev_check_stop(L.ev, &L.forced);
    lws_context_destroy(L.ctx);
    for (int i = 0; L.ctx && i < 100; i++) ev_run(L.ev, EVRUN_NOWAIT);
    if (L.ctx) lws_context_destroy(L.ctx);
    ev_timer_stop(L.ev, &L.tick);
    ev_loop_destroy(L.ev);
}

TEST(free_inside_a_message_callback_stops_all_other_callbacks)
{
    struct app a = {0}, b = {0};
    rtm_client *ca = client_for("burst-a", &a), *cb = client_for("burst-b", &b);
    struct done s1 = {0}, s2 = {0}, late = {0};
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    rtm_subscribe(ca, "burst", on_done, &s1);
    rtm_subscribe(cb, "burst", on_done, &s2);
    CHECK(PUMP_UNTIL(s1.count && s2.count, 3000, ca, cb));
    /* a completion bob still owes when he frees himself */
    CHECK(rtm_publish(cb, "elsewhere-not-subscribed", "1", on_done, &late) == RTM_STATUS_OK);
    b.free_in_message = 1;
    int closed_before = b.closed;
    for (int i = 0; i < 20; i++) CHECK(rtm_publish(ca, "burst", "\"x\"", NULL, NULL) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(b.self == NULL, 3000, ca, cb));
    /* cb is gone: keep servicing alice only */
    PUMP_UNTIL(0, 300, ca);
    CHECK(b.messages == 1);
    CHECK(b.closed == closed_before);
    CHECK(late.count == 1);
    rtm_client_free(ca);
}

/* The extension tests need a broker that implements docs/EXTENSIONS.md; one
 * that does not ignores &ext=1 and sends a welcome without sessionId. */
static void sniff_welcome(rtm_client *c, const char *json, size_t len, void *ud)
{
    (void)c;
    if (memmem(json, len, "\"type\":\"welcome\"", 16) && memmem(json, len, "\"sessionId\"", 11)) *(int *)ud = 1;
}

static int broker_has_extensions(void)
{
    int has = 0, connected = 0;
    struct rtm_callbacks cb = {.frame = sniff_welcome};
    char *t = mint("ext-probe", NULL, 0, NULL, 0, 0, NULL, NULL);
    rtm_options *o = rtm_options_new();
    rtm_options_set_url(o, D.ws_url);
    rtm_options_set_token(o, t);
    rtm_options_set_callbacks(o, &cb, &has);
    rtm_client *c = NULL;
    rtm_client_new(o, &c);
    rtm_options_free(o);
    free(t);
    long end = h_now_ms() + 3000;
    while (c && !has && !(connected = rtm_client_is_connected(c)) && h_now_ms() < end) rtm_client_service(c, 5);
    if (c) rtm_client_service(c, 5);
    rtm_client_free(c);
    if (!has) printf("# SKIP: this rtmd has no protocol extensions (issue 7)\n");
    return has;
}

static char *provider_3s(void *ud)
{
    struct prov *p = ud;
    p->calls++;
    return mint("refresher", NULL, 0, NULL, 0, 3, NULL, NULL);
}

TEST(extensions_refresh_in_band_past_the_first_expiry)
{
    if (!broker_has_extensions()) return;
    struct app a = {0};
    struct prov pv = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_token_provider(o, provider_3s, &pv);
    rtm_client *c = client_with(NULL, &a, o);
    CHECK(PUMP_UNTIL(a.connected == 1, 5000, c));
    int64_t first_exp = a.w.expires_at;
    /* the notice comes at once (less than 60 s left): refreshed before the 3 s run out */
    CHECK(PUMP_UNTIL(a.refreshed >= 1, 3000, c));
    CHECK(pv.calls >= 2);
    CHECK(a.refreshed_exp >= first_exp);
    CHECK(a.refreshed_has_cred); /* fresh iceServers */
    /* well past the first token's expiry: still the same connection */
    PUMP_UNTIL(0, 4500, c);
    CHECK(a.closed == 0);
    CHECK(a.connected == 1);
    CHECK(a.refreshed >= 2);
    rtm_client_free(c);
}

/* The first token allows zone-* and expires in 63 s (the broker's notice
 * comes 60 s before: after the subscribes); the refreshed one only zone-a. */
static char *provider_narrowing(void *ud)
{
    static const char *const wide[] = {"zone-*"}, *const narrow[] = {"zone-a"};
    struct prov *p = ud;
    p->calls++;
    return p->calls == 1 ? mint("narrower", wide, 1, NULL, 0, 63, NULL, NULL) : mint("narrower", narrow, 1, NULL, 0, 0, NULL, NULL);
}

static void ignore_member(const struct rtm_member *m, void *ud)
{
    (void)m;
    (void)ud;
}

TEST(extensions_narrowing_refresh_drops_the_ended_channels)
{
    if (!broker_has_extensions()) return;
    struct app a = {0};
    struct prov pv = {0};
    rtm_options *o = rtm_options_new();
    rtm_options_set_token_provider(o, provider_narrowing, &pv);
    rtm_client *c = client_with(NULL, &a, o);
    struct done s1 = {0}, s2 = {0};
    CHECK(PUMP_UNTIL(a.connected == 1, 5000, c));
    rtm_subscribe(c, "zone-a", on_done, &s1);
    rtm_subscribe(c, "zone-b", on_done, &s2);
    CHECK(PUMP_UNTIL(s1.count && s2.count, 3000, c));
    CHECK(s1.status == RTM_STATUS_OK && s2.status == RTM_STATUS_OK);
    CHECK(a.refreshed == 0); /* both subscribed before the refresh */
    CHECK(rtm_members(c, "zone-b", ignore_member, NULL) >= 0);
    CHECK(PUMP_UNTIL(a.refreshed >= 1, 8000, c));
    /* the broker said zone-b ended: gone from the lists, zone-a stays */
    CHECK(PUMP_UNTIL(rtm_members(c, "zone-b", ignore_member, NULL) == RTM_ERR_STATE, 2000, c));
    CHECK(rtm_members(c, "zone-a", ignore_member, NULL) >= 0);
    CHECK(a.closed == 0);
    rtm_client_free(c);
}

TEST(token_in_the_first_frame)
{
    struct app a = {0}, b = {0};
    int before = h_log_count(D.log, "peer=in-message app=test remote=127.0.0.1 auth=frame");
    rtm_options *o = rtm_options_new();
    CHECK(rtm_options_set_token_transport(o, (rtm_token_transport)7) == RTM_ERR_INVALID_ARG);
    CHECK(rtm_options_set_token_transport(o, RTM_TOKEN_IN_MESSAGE) == RTM_STATUS_OK);
    char *t = mint("in-message", NULL, 0, NULL, 0, 0, NULL, NULL);
    rtm_client *ca = client_with(t, &a, o), *cb = client_for("to-message", &b);
    free(t);
    struct done sa = {0}, sd = {0};
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    CHECK(rtm_subscribe(ca, "room", on_done, &sa) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(sa.count == 1, 3000, ca, cb));
    CHECK(rtm_publish(cb, "room", "\"via frame\"", on_done, &sd) == RTM_STATUS_OK);
    CHECK(PUMP_UNTIL(a.messages == 1, 3000, ca, cb));
    CHECK_STR(a.last_data, "\"via frame\"");
    /* the broker says where the token came from */
    CHECK(h_log_count(D.log, "peer=in-message app=test remote=127.0.0.1 auth=frame") == before + 1);
    rtm_client_free(ca);
    rtm_client_free(cb);
}

TEST(extensions_resume_hides_a_drop_and_keeps_direct_messages)
{
    if (!broker_has_extensions()) return;
    struct app a = {0}, b = {0};
    /* alice's liveness is made hair-trigger so her socket drops (4000, an
     * unclean close for the broker, which then holds her session) */
    rtm_options *o = rtm_options_new();
    rtm_options_set_liveness(o, 60000, 1500);
    char *t = mint("resumer", NULL, 0, NULL, 0, 0, NULL, NULL);
    rtm_client *ca = client_with(t, &a, o);
    free(t);
    rtm_client *cb = client_for("watcher", &b);
    struct done s1 = {0}, s2 = {0};
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    rtm_subscribe(ca, "held", on_done, &s1);
    rtm_subscribe(cb, "held", on_done, &s2);
    CHECK(PUMP_UNTIL(s1.count && s2.count && b.joins == 1, 3000, ca, cb));
    int joins = b.joins, leaves = b.leaves;
    /* bob sends while alice is cut off (her socket closes with 4000 first) */
    CHECK(PUMP_UNTIL(a.closed >= 1, 5000, ca, cb));
    CHECK(a.last_code == 4000);
    for (int i = 1; i <= 3; i++) {
        char d[16];
        snprintf(d, sizeof d, "%d", i);
        struct done sd = {0};
        rtm_send(cb, "resumer", d, on_done, &sd);
        PUMP_UNTIL(sd.count, 2000, cb);
    }
    CHECK(PUMP_UNTIL(a.resumed >= 1, 5000, ca, cb));
    CHECK(PUMP_UNTIL(a.directs >= 3, 3000, ca, cb));
    CHECK(strncmp(a.directs_seen, "1,2,3,", 6) == 0);
    CHECK(a.gaps == 0);
    /* bob saw no leave and no join of alice */
    CHECK(b.joins == joins && b.leaves == leaves);
    if (b.joins != joins || b.leaves != leaves)
        fprintf(stderr, "  bob joins %d->%d leaves %d->%d; alice closed %d resumed %d reconnects %d last %d %s\n", joins,
                b.joins, leaves, b.leaves, a.closed, a.resumed, a.reconnects, a.last_code, a.last_reason);
    /* and alice's subscription came back without a subscribe: bob's publishes
     * reach her (channel messages are not queued while she is held, and her
     * hair-trigger liveness keeps dropping her, so bob repeats) */
    int before = a.messages;
    for (int i = 0; i < 20 && a.messages == before; i++) {
        rtm_publish(cb, "held", "\"still here\"", NULL, NULL);
        PUMP_UNTIL(a.messages > before, 300, ca, cb);
    }
    CHECK(a.messages > before);
    rtm_client_free(ca);
    rtm_client_free(cb);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    if (rtmd_start(&D, "\"rate-frames-per-second\": 0, \"rate-connects-per-ip-per-minute\": 0") != 0) {
        fprintf(stderr, "cannot start rtmd\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int rc = RUN_TESTS();
    rtmd_cleanup(&D);
    return rc;
}

/* test_liveness.c: librtm's reactions to the broker's close codes that need
 * a daemon of their own (4010 at capacity, 4003 Origin refused), and the
 * client-side liveness rule (60 s of silence -> close 4000, reconnect),
 * shortened through rtm_options_set_liveness and driven by a tiny silent
 * WebSocket server in a thread: it completes the upgrade, sends a welcome,
 * then never answers anything (not even pings), like a dead peer behind a
 * live TCP connection. */
#define _GNU_SOURCE
#include "../unit/testlib.h"
#include "harness.h"
#include "rtm.h"

#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>

struct app {
    int connected, reconnects, closed, closed_final, last_code;
    int resumed, directs, gaps, sessioned;
    uint64_t gap_expected, gap_got;
    char seen[256];
    int64_t retry[8];
    int n_retry;
    char reason[128];
};

static void on_connected(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    struct app *a = ud;
    (void)c;
    a->connected++;
    if (w->reconnect) a->reconnects++;
    if (w->resumed) a->resumed++;
}

static void on_direct(rtm_client *c, const struct rtm_message *m, void *ud)
{
    struct app *a = ud;
    (void)c;
    a->directs++;
    size_t l = strlen(a->seen);
    snprintf(a->seen + l, sizeof a->seen - l, "%s,", m->data);
}

static void on_gap(rtm_client *c, const char *from, uint64_t expected, uint64_t got, void *ud)
{
    struct app *a = ud;
    (void)c;
    (void)from;
    a->gaps++;
    a->gap_expected = expected;
    a->gap_got = got;
}

static void on_frame(rtm_client *c, const char *json, size_t len, void *ud)
{
    struct app *a = ud;
    (void)c;
    if (memmem(json, len, "\"sessionId\"", 11)) a->sessioned = 1;
}

static void on_closed(rtm_client *c, int code, const char *reason, int again, int64_t in_ms, void *ud)
{
    struct app *a = ud;
    (void)c;
    a->closed++;
    if (!again) a->closed_final++;
    a->last_code = code;
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
    if (again && a->n_retry < 8) a->retry[a->n_retry++] = in_ms;
}

static const struct rtm_callbacks CBS = {
    .connected = on_connected, .closed = on_closed, .direct = on_direct, .gap = on_gap, .frame = on_frame};

static rtm_client *client(const char *url, const char *token, const char *origin, struct app *a, int ping, int idle)
{
    rtm_options *o = rtm_options_new();
    rtm_options_set_url(o, url);
    rtm_options_set_token(o, token);
    if (origin) rtm_options_set_origin(o, origin);
    if (ping) rtm_options_set_liveness(o, ping, idle);
    rtm_options_set_callbacks(o, &CBS, a);
    rtm_client *c = NULL;
    if (rtm_client_new(o, &c)) c = NULL;
    rtm_options_free(o);
    return c;
}

#define PUMP_UNTIL(cond, ms, ...)                                                                                  \
    ({                                                                                                             \
        rtm_client *cs_[] = {__VA_ARGS__};                                                                         \
        long end_ = h_now_ms() + (ms);                                                                             \
        while (!(cond) && h_now_ms() < end_)                                                                       \
            for (size_t i_ = 0; i_ < sizeof cs_ / sizeof cs_[0]; i_++)                                             \
                if (cs_[i_]) rtm_client_service(cs_[i_], 5);                                                       \
        (cond);                                                                                                    \
    })

static char *sign(const struct rtmd *d, const char *kid, const char *secret, const char *peer)
{
    struct rtm_token_params p = {.peer_id = peer};
    char *t = NULL;
    if (rtm_sign_token(kid, secret, &p, NULL, NULL, 0, &t, NULL)) return NULL;
    (void)d;
    return t;
}

TEST(over_capacity_4010_waits_at_least_30_s)
{
    struct rtmd d;
    CHECK(rtmd_start(&d, "\"max-connections\": 1, \"rate-connects-per-ip-per-minute\": 0") == 0);
    struct app a = {0}, b = {0};
    char *ta = sign(&d, d.key_id, d.key_secret, "first"), *tb = sign(&d, d.key_id, d.key_secret, "second");
    rtm_client *ca = client(d.ws_url, ta, NULL, &a, 0, 0);
    CHECK(PUMP_UNTIL(a.connected, 5000, ca));
    rtm_client *cb = client(d.ws_url, tb, NULL, &b, 0, 0);
    CHECK(PUMP_UNTIL(b.closed, 5000, ca, cb));
    CHECK(b.last_code == 4010);
    CHECK(b.closed_final == 0);
    CHECK(b.n_retry == 1 && b.retry[0] >= 30000);
    PUMP_UNTIL(0, 500, ca, cb);
    CHECK(b.closed == 1); /* still waiting, no hammering */
    rtm_client_free(ca);
    rtm_client_free(cb);
    free(ta);
    free(tb);
    rtmd_cleanup(&d);
}

TEST(origin_refused_4003_is_terminal)
{
    struct rtmd d;
    CHECK(rtmd_start(&d, "\"rate-connects-per-ip-per-minute\": 0") == 0);
    /* a second key that only allows one Origin */
    char tool[300], out[1024], kid[128] = "", secret[160] = "";
    snprintf(tool, sizeof tool, "%s/rtm", d.build);
    char *argv[] = {tool, "key", "create", "--db", d.db, "--app", "test", "--origins", "http://good.example", NULL};
    CHECK(h_run(argv, out, sizeof out) == 0);
    CHECK(h_json_str(out, "id", kid, sizeof kid) == 0 && h_json_str(out, "secret", secret, sizeof secret) == 0);
    char *t = sign(&d, kid, secret, "origin-peer");
    struct app good = {0}, bad = {0};
    rtm_client *cg = client(d.ws_url, t, "good.example", &good, 0, 0); /* lws sends http://<origin> */
    rtm_client *cbad = client(d.ws_url, t, "evil.example", &bad, 0, 0);
    CHECK(PUMP_UNTIL(good.connected && bad.closed_final, 5000, cg, cbad));
    CHECK(good.connected == 1);
    CHECK(bad.last_code == 4003 && bad.connected == 0);
    PUMP_UNTIL(0, 800, cg, cbad);
    CHECK(bad.closed == 1);
    rtm_client_free(cg);
    rtm_client_free(cbad);
    free(t);
    rtmd_cleanup(&d);
}

/* ---- a silent WebSocket server ---- */

struct silent {
    int fd, port, stop, accepted;
    pthread_t th;
};

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void serve_one(int cfd)
{
    char req[8192];
    size_t n = 0;
    req[0] = 0;
    while (n < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t r = recv(cfd, req + n, sizeof req - 1 - n, 0);
        if (r <= 0) return;
        n += (size_t)r;
        req[n] = 0;
    }
    char *k = strcasestr(req, "Sec-WebSocket-Key:");
    if (!k) return;
    k += 18;
    while (*k == ' ') k++;
    char key[128], hash[20], acc[64];
    size_t kl = strcspn(k, "\r\n");
    if (kl > 60) return;
    int m = snprintf(key, sizeof key, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)kl, k);
    lws_SHA1((unsigned char *)key, (size_t)m, (unsigned char *)hash);
    lws_b64_encode_string(hash, 20, acc, sizeof acc);
    char resp[512];
    m = snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: rtm.v1\r\n\r\n",
                 acc);
    if (send_all(cfd, resp, (size_t)m)) return;
    static const char welcome[] = "{\"type\":\"welcome\",\"peerId\":\"p\",\"expiresAt\":null,\"serverTime\":1,"
                                  "\"maxMessageSize\":65536,\"metadata\":{}}";
    unsigned char hdr[2] = {0x81, (unsigned char)(sizeof welcome - 1)};
    if (send_all(cfd, hdr, 2) || send_all(cfd, welcome, sizeof welcome - 1)) return;
    /* then silence: read and drop everything until the client goes */
    for (;;) {
        ssize_t r = recv(cfd, req, sizeof req, 0);
        if (r <= 0) return;
    }
}

static void *silent_main(void *arg)
{
    struct silent *s = arg;
    while (!s->stop) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd < 0) continue;
        s->accepted++;
        struct timeval tv = {3, 0}; /* a client that never closes cannot hang the test */
        setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        serve_one(cfd);
        close(cfd);
    }
    return NULL;
}

/* Listens on a free loopback port, served by fn in a thread. */
static int server_start(struct silent *s, void *(*fn)(void *))
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    memset(s, 0, sizeof *s);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 8) ||
        getsockname(s->fd, (struct sockaddr *)&a, &l))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, fn, s);
}

static int silent_start(struct silent *s) { return server_start(s, silent_main); }

static void silent_stop(struct silent *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->fd);
}

TEST(silence_closes_4000_and_reconnects)
{
    struct silent s;
    CHECK(silent_start(&s) == 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", s.port);
    struct app a = {0};
    rtm_client *c = client(url, "a.b.c", NULL, &a, 100, 400);
    CHECK(PUMP_UNTIL(a.connected == 1, 3000, c));
    long t0 = h_now_ms();
    CHECK(PUMP_UNTIL(a.closed == 1, 5000, c));
    long quiet = h_now_ms() - t0;
    CHECK(a.last_code == 4000);
    CHECK(quiet >= 300 && quiet < 3000);
    CHECK(a.closed_final == 0 && a.n_retry == 1);
    /* and it comes back */
    CHECK(PUMP_UNTIL(a.reconnects == 1, 5000, c));
    CHECK(s.accepted == 2);
    if (a.reconnects != 1)
        fprintf(stderr, "  connected=%d closed=%d last=%d (%s) retries=%d accepted=%d\n", a.connected, a.closed,
                a.last_code, a.reason, a.n_retry, s.accepted);
    rtm_client_free(c);
    silent_stop(&s);
}

/* A server that accepts the TCP connection and never answers the upgrade:
 * the client is mid-handshake, where only lws's own timers can end the
 * socket. rtm_client_stop() then kills it through lws (LWS_TO_KILL_ASYNC, a
 * timer of lws due at once): on the libev loop lws runs its timers late or
 * never unless woken (sdk-c/src/loop.c), so this settles in seconds, not at
 * once, when the client's loop does not wake lws. */
static void *mute_main(void *arg)
{
    struct silent *s = arg;
    int held[4], n = 0;
    while (!s->stop) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd < 0) continue;
        s->accepted++;
        if (n < 4) held[n++] = cfd; /* held open, never read */
        else close(cfd);
    }
    while (n) close(held[--n]);
    return NULL;
}

TEST(stop_during_a_hung_handshake_settles_at_once)
{
    struct silent s;
    CHECK(server_start(&s, mute_main) == 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", s.port);
    struct app ap = {0};
    rtm_client *c = client(url, "a.b.c", NULL, &ap, 0, 0);
    CHECK(PUMP_UNTIL(s.accepted == 1, 3000, c));
    PUMP_UNTIL(0, 200, c); /* the upgrade request is out; no answer comes */
    CHECK(ap.connected == 0 && ap.closed == 0);
    long t0 = h_now_ms();
    rtm_client_stop(c);
    CHECK(PUMP_UNTIL(ap.closed_final == 1, 5000, c));
    long took = h_now_ms() - t0;
    CHECK(took < 1000);
    CHECK(ap.closed == 1 && s.accepted == 1);
    rtm_client_free(c);
    silent_stop(&s);
}

static void on_done(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    (void)c;
    (void)st;
    (void)code;
    (void)msg;
    (*(int *)ud)++;
}

TEST(extensions_seq_gap_when_the_held_queue_overflows)
{
    struct rtmd d;
    CHECK(rtmd_start(&d, "\"resume-queue-messages\": 2, \"rate-connects-per-ip-per-minute\": 0") == 0);
    struct app a = {0}, b = {0};
    char *ta = sign(&d, d.key_id, d.key_secret, "held-peer"), *tb = sign(&d, d.key_id, d.key_secret, "sender");
    /* alice's hair-trigger liveness drops her socket (4000): the broker holds her place */
    rtm_client *ca = client(d.ws_url, ta, NULL, &a, 60000, 1500);
    rtm_client *cb = client(d.ws_url, tb, NULL, &b, 0, 0);
    int s1 = 0, s2 = 0;
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    if (!a.sessioned) {
        printf("# SKIP: this rtmd has no protocol extensions (issue 7)\n");
    } else {
        rtm_subscribe(ca, "gapch", on_done, &s1);
        rtm_subscribe(cb, "gapch", on_done, &s2);
        CHECK(PUMP_UNTIL(s1 && s2, 3000, ca, cb));
        CHECK(PUMP_UNTIL(a.closed >= 1, 5000, ca, cb));
        CHECK(a.last_code == 4000);
        for (int i = 1; i <= 5; i++) {
            char dta[16];
            int sent = 0;
            snprintf(dta, sizeof dta, "%d", i);
            rtm_send(cb, "held-peer", dta, on_done, &sent);
            PUMP_UNTIL(sent, 2000, cb);
        }
        CHECK(PUMP_UNTIL(a.resumed >= 1 && a.directs >= 2, 6000, ca, cb));
        CHECK(strncmp(a.seen, "4,5,", 4) == 0); /* the two newest were kept */
        CHECK(a.gaps == 1 && a.gap_expected == 1 && a.gap_got == 4);
    }
    rtm_client_free(ca);
    rtm_client_free(cb);
    free(ta);
    free(tb);
    rtmd_cleanup(&d);
}

static void list_member(const struct rtm_member *m, void *ud)
{
    char *out = ud;
    size_t l = strlen(out);
    snprintf(out + l, 256 - l, "%s,", m->peer_id);
}

static const char *members_of(rtm_client *c, const char *channel, char out[256])
{
    out[0] = '\0';
    if (rtm_members(c, channel, list_member, out) < 0) snprintf(out, 256, "(not subscribed)");
    return out;
}

TEST(extensions_presence_reset_after_a_lossy_resume_replaces_the_member_list)
{
    struct rtmd d;
    CHECK(rtmd_start(&d, "\"resume-queue-messages\": 2, \"rate-connects-per-ip-per-minute\": 0") == 0);
    struct app a = {0}, b = {0}, w = {0};
    char *ta = sign(&d, d.key_id, d.key_secret, "reset-peer"), *tb = sign(&d, d.key_id, d.key_secret, "leaver"),
         *tw = sign(&d, d.key_id, d.key_secret, "joiner");
    /* alice drops (4000 after 1.5 s of silence: the broker holds her place)
     * and comes back only after 3 s, once the gap below is made */
    rtm_options *o = rtm_options_new();
    rtm_options_set_url(o, d.ws_url);
    rtm_options_set_token(o, ta);
    rtm_options_set_liveness(o, 60000, 1500);
    rtm_options_set_backoff(o, 3000, 3000);
    rtm_options_set_callbacks(o, &CBS, &a);
    rtm_client *ca = NULL;
    CHECK(rtm_client_new(o, &ca) == RTM_STATUS_OK);
    rtm_options_free(o);
    rtm_client *cb = client(d.ws_url, tb, NULL, &b, 0, 0), *cw = NULL;
    char m[256];
    int s1 = 0, s2 = 0, s3 = 0;
    CHECK(PUMP_UNTIL(a.connected && b.connected, 5000, ca, cb));
    if (!a.sessioned) {
        printf("# SKIP: this rtmd has no protocol extensions (issue 7)\n");
    } else {
        rtm_subscribe(ca, "resetch", on_done, &s1);
        rtm_subscribe(cb, "resetch", on_done, &s2);
        CHECK(PUMP_UNTIL(s1 && s2 && !strcmp(members_of(ca, "resetch", m), "leaver,"), 3000, ca, cb));
        CHECK(PUMP_UNTIL(a.closed >= 1, 5000, ca, cb));
        CHECK(a.last_code == 4000);
        /* the gap: joiner comes (a presence frame queued), three directs push
         * it out of the 2-frame queue, leaver goes */
        cw = client(d.ws_url, tw, NULL, &w, 0, 0);
        CHECK(PUMP_UNTIL(w.connected, 3000, cw, cb));
        rtm_subscribe(cw, "resetch", on_done, &s3);
        CHECK(PUMP_UNTIL(s3, 3000, cw, cb));
        for (int i = 1; i <= 3; i++) {
            int sent = 0;
            rtm_send(cb, "reset-peer", "1", on_done, &sent);
            CHECK(PUMP_UNTIL(sent, 2000, cb, cw));
        }
        /* a clean close (1000): leaver leaves at once (a drop would be held) */
        rtm_client_stop(cb);
        CHECK(PUMP_UNTIL(b.closed_final, 3000, cb, cw));
        PUMP_UNTIL(0, 300, cw);
        CHECK(a.resumed == 0); /* still away: the gap is complete before the resume */
        CHECK(PUMP_UNTIL(a.resumed >= 1, 6000, ca, cw));
        /* the snapshot after presenceReset replaces the list: leaver is gone */
        CHECK(PUMP_UNTIL(!strcmp(members_of(ca, "resetch", m), "joiner,"), 3000, ca, cw));
        if (strcmp(m, "joiner,")) fprintf(stderr, "  members after the resume: %s\n", m);
    }
    rtm_client_free(ca);
    rtm_client_free(cb);
    rtm_client_free(cw);
    free(ta);
    free(tb);
    free(tw);
    rtmd_cleanup(&d);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    return RUN_TESTS();
}

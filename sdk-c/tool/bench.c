/* bench.c: `rtm bench fanout|pairs|connect`: a load generator built on
 * librtm, every client on one shared lws context in one thread (the
 * library's "existing lws context" mode), so thousands of connections cost
 * one loop, not thousands of contexts. The contexts run on epoll (lws's
 * libev plugin on a loop of ours, as rtmd does), so a turn of the generator
 * costs what happened, not the number of connections it holds: with 10,000
 * idle sessions beside the measured ones, the generator must not be what
 * limits a benchmark (its own CPU is printed with the broker's).
 *
 * Design: receivers live in the same process as senders, so latency is
 * measured with one monotonic clock (the sender stamps "t" in microseconds
 * into the payload). Channel messages use the library's raw-message mode,
 * so the generator does not spend a JSON parse per delivery. Fanout without
 * a rate is closed-loop (at most --window messages per publisher not yet
 * delivered to every subscriber), which measures the broker's delivered
 * throughput instead of filling its queues until it drops subscribers. */
#define _GNU_SOURCE
#include "tool.h"
#include "toolconn.h"

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (20u << 20)
#define SETUP_TIMEOUT_MS 60000
#define DRAIN_MS 3000

struct bench;
struct cshard;

/* One lws context on one libev (epoll) loop of ours, serviced by one thread.
 * The tick bounds each wait to 1 ms (pacing) and wakes lws, whose own timers
 * (librtm's timeouts) fire late on its libev plugin otherwise
 * (../shared/PLATFORM-NOTES.md, "Event loops"). */
struct gen_loop {
    struct ev_loop *ev;
    struct lws_context *ctx;
    ev_timer tick;
    ev_check forced; /* lws's forced service after every poll, as rtmd/loop.c does */
    void *foreign[1];
};

struct bclient {
    struct bench *b;
    rtm_client *c;
    int idx;
    int welcomed, failed, subscribed;
    struct cshard *sh; /* connect mode */
    /* pairs */
    int64_t sent_at;
    long done;
};

struct bench {
    const char *mode;
    struct tool_conn tc;
    long subs, pubs, msgs, size, rate, pairs, conns, window;
    long idle, seconds;
    int pid;
    struct gen_loop loop; /* fanout, pairs (connect and idle sessions: one per shard) */
    int nctx;
    /* idle sessions held open beside the measured ones (--idle) */
    struct cshard *idle_sh;
    int idle_nsh;
    char **idle_tokens;
    struct bclient *idle_cl;
    struct bclient *cl;
    long ncl;
    long welcomed, failed, subscribed; /* atomics in connect mode */
    /* samples in microseconds */
    uint32_t *lat;
    size_t nlat;
    long delivered, sent, errors;
    long exchanges;
    char *payload_pad;
    /* CPU seconds at the start of the measured phase */
    double cpu_broker0, cpu_self0;
    int64_t cpu_t0;
};

#define CLIENTS_PER_CTX 500

/* Exported by lws 4.1.6 for its event-lib plugins, not in its headers. */
int _lws_plat_service_forced_tsi(struct lws_context *context, int tsi);

/* Frames lws read but has not delivered yet wait for its forced service,
 * which its libev plugin runs only from an ev_idle (starved while events
 * are pending): run it after every poll instead. */
static void gen_forced(struct ev_loop *ev, ev_check *w, int revents)
{
    struct gen_loop *g = w->data;
    (void)ev;
    (void)revents;
    if (g->ctx && lws_service_adjust_timeout(g->ctx, 1, 0) == 0) _lws_plat_service_forced_tsi(g->ctx, 0);
}

static void gen_tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct gen_loop *g = w->data;
    (void)ev;
    (void)revents;
    if (g->ctx) lws_cancel_service(g->ctx);
}

static int gen_open(struct gen_loop *g, long nconns, int tick_ms)
{
    static struct lws_protocols protos[2];
    struct lws_context_creation_info info;
    protos[0] = *rtm_lws_protocol();
    memset(&protos[1], 0, sizeof protos[1]);
    memset(g, 0, sizeof *g);
    if (!(g->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV))) return -1;
    g->foreign[0] = g->ev;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = g->foreign;
    info.pcontext = &g->ctx;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = (unsigned)(nconns + 64);
    info.max_http_header_data = 8192;
    info.pt_serv_buf_size = 8192;
    info.timeout_secs = 30;
    if (!(g->ctx = lws_create_context(&info))) {
        ev_loop_destroy(g->ev);
        g->ev = NULL;
        return -1;
    }
    ev_timer_init(&g->tick, gen_tick, tick_ms / 1000.0, tick_ms / 1000.0);
    g->tick.data = g;
    ev_timer_start(g->ev, &g->tick);
    ev_check_init(&g->forced, gen_forced);
    g->forced.data = g;
    ev_check_start(g->ev, &g->forced);
    return 0;
}

/* One loop turn: waits in epoll, bounded by the tick. */
static void gen_service(struct gen_loop *g) { ev_run(g->ev, EVRUN_ONCE); }

static void gen_close(struct gen_loop *g)
{
    if (!g->ev) return;
    ev_check_stop(g->ev, &g->forced);
    if (g->ctx) lws_context_destroy(g->ctx);
    for (int i = 0; g->ctx && i < 100; i++) ev_run(g->ev, EVRUN_NOWAIT); /* lws finishes on the loop */
    ev_timer_stop(g->ev, &g->tick);
    ev_loop_destroy(g->ev);
    g->ev = NULL;
}

static struct lws_context *ctx_for(struct bench *b, long idx)
{
    (void)idx;
    return b->loop.ctx;
}

static void service(struct bench *b) { gen_service(&b->loop); }

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void record(struct bench *b, int64_t us)
{
    if (b->nlat < MAX_SAMPLES) b->lat[b->nlat++] = us < 0 ? 0 : us > 0xffffffff ? 0xffffffff : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(struct bench *b, double p)
{
    if (!b->nlat) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(b->nlat - 1) + 0.5);
    return b->lat[i] / 1000.0;
}

/* "t":<us> from a frame or a data text */
static int64_t stamp_of(const char *s, size_t len)
{
    const char *p = memmem(s, len, "\"t\":", 4);
    return p ? strtoll(p + 4, NULL, 10) : -1;
}

/* CPU seconds (user + system) a process has used, from /proc; -1 if unknown. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru); /* every thread of the generator */
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void cpu_start(struct bench *b)
{
    b->cpu_broker0 = b->pid ? proc_cpu_s(b->pid) : -1;
    b->cpu_self0 = self_cpu_s();
    b->cpu_t0 = 0;
}

/* CPU % of the broker and of the generator since cpu_start (100 = one core). */
static void cpu_report(struct bench *b, json_t *j, int64_t t0_us, int64_t t1_us)
{
    double wall = (double)(t1_us - t0_us) / 1e6;
    if (wall <= 0) return;
    if (b->pid && b->cpu_broker0 >= 0) {
        double c = proc_cpu_s(b->pid);
        if (c >= 0) json_object_set_new(j, "broker_cpu_pct", json_real(100.0 * (c - b->cpu_broker0) / wall));
    }
    json_object_set_new(j, "generator_cpu_pct", json_real(100.0 * (self_cpu_s() - b->cpu_self0) / wall));
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* ---- tokens: signed locally when the key id is known (fast), else minted ---- */

static char *bench_token(struct bench *b, const char *peer, int presence)
{
    static const char *perms_np[] = {"publish", "subscribe", "send"};
    static const char *perms_all[] = {"publish", "subscribe", "send", "presence"};
    /* Shaped like what the mint API issues for a call: TURN credentials in
     * metadata.iceServers and a display name in peerMetadata, so the
     * broker's connect and message costs are the real ones. */
    static const char *const turn_urls[] = {"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp",
                                            "turn:127.0.0.1:3478?transport=tcp"};
    char pmeta[96];
    snprintf(pmeta, sizeof pmeta, "{\"name\":\"%s\"}", peer);
    struct rtm_token_params p = {.peer_id = peer,
                                 .permissions = presence ? perms_all : perms_np,
                                 .n_permissions = presence ? 4 : 3,
                                 .expires_in_sec = 3600,
                                 .peer_metadata_json = pmeta};
    char *t = NULL;
    rtm_status st;
    if (b->tc.token) return strdup(b->tc.token);
    if (b->tc.key_id && b->tc.key)
        st = rtm_sign_token(b->tc.key_id, b->tc.key, &p, "bench-turn-secret-not-checked", turn_urls, 3, &t, NULL);
    else if (b->tc.mint && b->tc.key)
        st = rtm_fetch_token(b->tc.mint, b->tc.key, &p, 10000, &t, NULL, NULL);
    else
        st = RTM_ERR_NO_TOKEN;
    if (st) fprintf(stderr, "rtm bench: token for %s: %s\n", peer, rtm_status_str(st));
    return t;
}

/* ---- callbacks ---- */

static void on_connected(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    struct bclient *k = ud;
    (void)c;
    (void)w;
    if (!k->welcomed) k->b->welcomed++;
    k->welcomed = 1;
}

static void on_closed(rtm_client *c, int code, const char *reason, int again, int64_t in_ms, void *ud)
{
    struct bclient *k = ud;
    (void)c;
    (void)in_ms;
    if (!k->failed && (!k->welcomed || !again)) {
        k->failed = 1;
        k->b->failed++;
        if (k->b->failed <= 3) fprintf(stderr, "\nrtm bench: client %d closed: %d %s\n", k->idx, code, reason);
    }
}

static void on_sub(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    struct bclient *k = ud;
    (void)c;
    (void)msg;
    if (st) {
        k->b->errors++;
        if (k->b->errors <= 3) fprintf(stderr, "\nrtm bench: subscribe: %s\n", code ? code : rtm_status_str(st));
        return;
    }
    k->subscribed = 1;
    k->b->subscribed++;
}

static void on_frame_fanout(rtm_client *c, const char *json, size_t len, void *ud)
{
    struct bclient *k = ud;
    (void)c;
    if (len < 20 || memcmp(json, "{\"type\":\"message\"", 17)) return;
    int64_t t = stamp_of(json, len);
    if (t < 0) return;
    k->b->delivered++;
    record(k->b, mono_us() - t);
}

static void send_ping(struct bclient *k);

static void on_direct_pairs(rtm_client *c, const struct rtm_message *m, void *ud)
{
    struct bclient *k = ud;
    struct bench *b = k->b;
    int64_t t = stamp_of(m->data, strlen(m->data));
    if (k->idx % 2 == 1) {
        char peer[32];
        snprintf(peer, sizeof peer, "pa-%d", k->idx / 2);
        if (b->rate > 0) {
            /* paced: each leg is a one-way sample; the reply carries a fresh stamp */
            char data[64];
            if (t >= 0) record(b, mono_us() - t);
            snprintf(data, sizeof data, "{\"t\":%lld}", (long long)mono_us());
            if (rtm_send(c, peer, data, NULL, NULL)) b->errors++;
            return;
        }
        /* closed loop: echo the stamp back (the sample is the round trip) */
        if (rtm_send(c, peer, m->data, NULL, NULL)) b->errors++;
        return;
    }
    if (t < 0) return;
    record(b, mono_us() - t);
    b->exchanges++;
    k->done++;
    if (b->rate == 0 && k->done < b->msgs) send_ping(k);
}

static void send_ping(struct bclient *k)
{
    struct bench *b = k->b;
    char data[128], peer[32];
    snprintf(peer, sizeof peer, "pb-%d", k->idx / 2);
    snprintf(data, sizeof data, "{\"t\":%lld}", (long long)mono_us());
    if (rtm_send(k->c, peer, data, NULL, NULL)) b->errors++;
    b->sent++;
}

/* ---- setup ---- */

static int idle_open(struct bench *b);

static int make_ctx(struct bench *b, long nconns)
{
    /* fanout and pairs: one context, so a delivery is never delayed by a
     * round over other contexts (connect mode shards instead, see below) */
    if (gen_open(&b->loop, nconns, 1)) return -1;
    b->nctx = 1;
    return 0;
}

static rtm_client *new_client(struct bench *b, struct bclient *k, const char *peer, const struct rtm_callbacks *cb,
                              int presence)
{
    char *t = bench_token(b, peer, presence);
    if (!t) return NULL;
    rtm_options *o = rtm_options_new();
    rtm_options_set_url(o, b->tc.url);
    rtm_options_set_token(o, t);
    rtm_options_set_callbacks(o, cb, k);
    rtm_options_set_lws_context(o, ctx_for(b, k->idx));
    rtm_options_set_raw_messages(o, 1);
    rtm_options_set_queue_limits(o, 4096, 16u << 20);
    rtm_options_set_request_timeout(o, 30000);
    memset(t, 0, strlen(t));
    free(t);
    rtm_client *c = NULL;
    if (rtm_client_new(o, &c)) c = NULL;
    rtm_options_free(o);
    k->c = c;
    return c;
}

static void service_for(struct bench *b, int64_t until_us, int (*done)(struct bench *))
{
    while (!tool_interrupted && mono_us() < until_us && !(done && done(b))) service(b);
}

static int all_welcomed(struct bench *b) { return b->welcomed + b->failed >= b->ncl; }

/* At most RAMP_INFLIGHT handshakes in flight while the clients are created:
 * a broker refuses connections at accept beyond its handshake budget
 * (max-handshakes), and a refused client only comes back after a backoff. */
#define RAMP_INFLIGHT 256
static void ramp(struct bench *b, long created)
{
    int64_t end = mono_us() + SETUP_TIMEOUT_MS * 1000LL;
    while (!tool_interrupted && created + 1 - (b->welcomed + b->failed) >= RAMP_INFLIGHT && mono_us() < end) service(b);
    if (created % 100 == 99) service_for(b, mono_us() + 1000, NULL);
}

/* At most twice a second. */
static void progress(struct bench *b, const char *what, long a, long total)
{
    static int64_t last;
    (void)b;
    int64_t now = mono_us();
    if (now - last < 500000 && a < total) return;
    last = now;
    fprintf(stderr, "\r%s: %ld/%ld   ", what, a, total);
}

static void teardown(struct bench *b)
{
    for (long i = 0; i < b->ncl; i++)
        if (b->cl[i].c) rtm_client_free(b->cl[i].c);
    gen_close(&b->loop);
    free(b->cl);
}

static void print_results(struct bench *b, const char *headline, json_t *j)
{
    qsort(b->lat, b->nlat, sizeof *b->lat, cmp_u32);
    printf("\n%s\n", headline);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (json_is_real(v))
            printf("  %-24s %.2f\n", k, json_real_value(v));
        else if (json_is_integer(v))
            printf("  %-24s %lld\n", k, (long long)json_integer_value(v));
        else if (json_is_string(v))
            printf("  %-24s %s\n", k, json_string_value(v));
    }
    char *s = json_dumps(j, JSON_COMPACT);
    if (s) printf("%s\n", s);
    free(s);
    fflush(stdout);
}

static void add_latency(struct bench *b, json_t *j)
{
    qsort(b->lat, b->nlat, sizeof *b->lat, cmp_u32);
    json_object_set_new(j, "p50_ms", json_real(pct(b, 50)));
    json_object_set_new(j, "p90_ms", json_real(pct(b, 90)));
    json_object_set_new(j, "p99_ms", json_real(pct(b, 99)));
    json_object_set_new(j, "max_ms", json_real(b->nlat ? b->lat[b->nlat - 1] / 1000.0 : 0));
}

/* ---- fanout ---- */

static int run_fanout(struct bench *b)
{
    struct rtm_callbacks cbs = {.connected = on_connected, .closed = on_closed, .frame = on_frame_fanout};
    if (idle_open(b)) return RTM_EXIT_CONNECT;
    b->ncl = b->subs + b->pubs;
    if (!(b->cl = calloc((size_t)b->ncl, sizeof *b->cl)) || make_ctx(b, b->ncl)) return RTM_EXIT_FAIL;
    char peer[32];
    for (long i = 0; i < b->ncl; i++) {
        struct bclient *k = &b->cl[i];
        k->b = b;
        k->idx = (int)i;
        snprintf(peer, sizeof peer, i < b->subs ? "sub-%ld" : "pub-%ld", i < b->subs ? i : i - b->subs);
        if (!new_client(b, k, peer, &cbs, 0)) return RTM_EXIT_FAIL;
        if (i < b->subs && rtm_subscribe(k->c, "bench/fanout", on_sub, k)) return RTM_EXIT_FAIL;
        ramp(b, i);
    }
    int64_t end = mono_us() + SETUP_TIMEOUT_MS * 1000LL;
    while (!tool_interrupted && mono_us() < end && b->subscribed + b->failed < b->subs) {
        service(b);
        progress(b, "subscribing", b->subscribed, b->subs);
    }
    service_for(b, mono_us() + 200000, all_welcomed);
    if (b->subscribed < b->subs || b->welcomed < b->ncl) {
        fprintf(stderr, "\nrtm bench: only %ld/%ld subscribed, %ld/%ld connected\n", b->subscribed, b->subs,
                b->welcomed, b->ncl);
        return RTM_EXIT_CONNECT;
    }
    fprintf(stderr, "\n");

    /* payload: {"t":<us>,"p":"xxx..."} padded to --size bytes */
    char *data = malloc((size_t)b->size + 64);
    if (!data) return RTM_EXIT_FAIL;
    cpu_start(b);
    int64_t t0 = mono_us(), last_prog = t0;
    long per_pub_window = b->window;
    long want_total = b->msgs;
    while (!tool_interrupted && b->sent < want_total) {
        long due = want_total;
        if (b->rate > 0) {
            due = (long)((mono_us() - t0) * b->rate / 1000000) + 1;
            if (due > want_total) due = want_total;
        }
        for (long p = 0; p < b->pubs && b->sent < due; p++) {
            /* closed loop when unpaced: bound what is not yet delivered everywhere */
            if (b->rate == 0 && (b->sent - per_pub_window * b->pubs) * b->subs > b->delivered) break;
            struct bclient *k = &b->cl[b->subs + p];
            if (rtm_client_queued(k->c) > 1024) continue;
            int n = snprintf(data, 64, "{\"t\":%lld,\"p\":\"", (long long)mono_us());
            long xs = b->size > n + 2 ? b->size - n - 2 : 1;
            memset(data + n, 'x', (size_t)xs);
            memcpy(data + n + xs, "\"}", 3);
            rtm_status st = rtm_publish(k->c, "bench/fanout", data, NULL, NULL);
            if (st == RTM_STATUS_OK)
                b->sent++;
            else if (st != RTM_ERR_QUEUE_FULL)
                b->errors++;
        }
        service(b);
        int64_t now = mono_us();
        if (now - last_prog > 1000000) {
            last_prog = now;
            fprintf(stderr, "\rfanout: sent %ld, delivered %ld (%.0f/s)   ", b->sent, b->delivered,
                    b->delivered / ((now - t0) / 1e6));
        }
    }
    /* drain: wait for the last deliveries */
    int64_t last_change = mono_us();
    long last_delivered = -1;
    while (!tool_interrupted && b->delivered < b->sent * b->subs && mono_us() - last_change < DRAIN_MS * 1000LL) {
        service(b);
        if (b->delivered != last_delivered) {
            last_delivered = b->delivered;
            last_change = mono_us();
        }
    }
    double secs = (double)(last_change - t0) / 1e6;
    free(data);
    fprintf(stderr, "\n");

    json_t *j = json_object();
    json_object_set_new(j, "bench", json_string("fanout"));
    json_object_set_new(j, "subs", json_integer(b->subs));
    json_object_set_new(j, "pubs", json_integer(b->pubs));
    json_object_set_new(j, "size", json_integer(b->size));
    json_object_set_new(j, "rate", json_integer(b->rate));
    json_object_set_new(j, "published", json_integer(b->sent));
    json_object_set_new(j, "delivered", json_integer(b->delivered));
    json_object_set_new(j, "lost", json_integer(b->sent * b->subs - b->delivered));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "deliveries_per_sec", json_real(secs > 0 ? b->delivered / secs : 0));
    add_latency(b, j);
    cpu_report(b, j, t0, last_change);
    json_object_set_new(j, "disconnects", json_integer(b->failed));
    if (b->pid) json_object_set_new(j, "broker_rss_kb", json_integer(rss_kb(b->pid)));
    print_results(b, "fanout results", j);
    json_decref(j);
    return RTM_EXIT_OK;
}

/* ---- sessions held open in shards (connect, and --idle beside a run) ----
 * Shards of CLIENTS_PER_CTX clients, each on its own context and loop in its
 * own thread (lws keeps a context's timers in one sorted list, so one
 * context with 10,000 clients spends its time inserting timers). Counters
 * shared with the main thread are atomics; everything else stays in the shard. */

struct cshard {
    struct bench *b;
    struct gen_loop g;
    struct bclient *cl; /* the shard's clients: cl[0..count) */
    long first, count, done;
    char **tokens;      /* tokens[first..first+count) */
    long *welcomed, *failed; /* shared counters */
    int64_t limit_us;
    int finished;
    int *stop;
    pthread_t th;
};

static void on_connected_c(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    struct bclient *k = ud;
    (void)c;
    (void)w;
    if (k->welcomed || k->failed) return;
    k->welcomed = 1;
    k->sh->done++;
    __atomic_fetch_add(k->sh->welcomed, 1, __ATOMIC_RELAXED);
}

static void on_closed_c(rtm_client *c, int code, const char *reason, int again, int64_t in_ms, void *ud)
{
    struct bclient *k = ud;
    (void)c;
    (void)again;
    (void)in_ms;
    if (k->welcomed || k->failed) return;
    k->failed = 1;
    k->sh->done++;
    if (__atomic_fetch_add(k->sh->failed, 1, __ATOMIC_RELAXED) < 3)
        fprintf(stderr, "\nrtm bench: client %d closed: %d %s\n", k->idx, code, reason);
}

static void *shard_main(void *arg)
{
    struct cshard *sh = arg;
    struct bench *b = sh->b;
    static const struct rtm_callbacks cbs = {.connected = on_connected_c, .closed = on_closed_c};
    const long inflight_max = 50; /* connects in progress at once, per shard */
    long started = 0;
    int64_t t0 = mono_us();
    while (!tool_interrupted && sh->done < sh->count && mono_us() - t0 < sh->limit_us) {
        while (started < sh->count && started - sh->done < inflight_max) {
            struct bclient *k = &sh->cl[started];
            k->b = b;
            k->sh = sh;
            k->idx = (int)(sh->first + started);
            rtm_options *o = rtm_options_new();
            rtm_options_set_url(o, b->tc.url);
            rtm_options_set_token(o, sh->tokens[sh->first + started]);
            rtm_options_set_callbacks(o, &cbs, k);
            rtm_options_set_lws_context(o, sh->g.ctx);
            if (!o || rtm_client_new(o, &k->c)) {
                k->c = NULL;
                k->failed = 1;
                sh->done++;
                __atomic_fetch_add(sh->failed, 1, __ATOMIC_RELAXED);
            }
            rtm_options_free(o);
            started++;
        }
        gen_service(&sh->g);
    }
    __atomic_store_n(&sh->finished, 1, __ATOMIC_RELEASE);
    /* keep the connections open until the main thread is done with them */
    while (!__atomic_load_n(sh->stop, __ATOMIC_ACQUIRE)) gen_service(&sh->g);
    for (long i = 0; i < sh->count; i++)
        if (sh->cl[i].c) rtm_client_free(sh->cl[i].c);
    gen_close(&sh->g);
    return NULL;
}

/* Starts ceil(n / CLIENTS_PER_CTX) shard threads connecting cl[0..n) with
 * tokens[0..n), and waits until every one is welcomed or failed (or the
 * bound). Returns the number of threads started (stop them with shards_stop),
 * or -1 before any started. */
static int shards_start(struct bench *b, struct cshard *sh, int nsh, struct bclient *cl, long n, char **tokens,
                        long *welcomed, long *failed, int *stop, const char *what)
{
    /* a bound on the whole ramp: 2 minutes, or 20 ms per connection */
    int64_t limit = n * 20000LL > 120000000LL ? n * 20000LL : 120000000LL;
    int started = 0;
    for (int i = 0; i < nsh; i++) {
        sh[i].b = b;
        sh[i].first = (long)i * CLIENTS_PER_CTX;
        sh[i].count = n - sh[i].first < CLIENTS_PER_CTX ? n - sh[i].first : CLIENTS_PER_CTX;
        sh[i].cl = cl + sh[i].first;
        sh[i].tokens = tokens;
        sh[i].limit_us = limit;
        sh[i].welcomed = welcomed;
        sh[i].failed = failed;
        sh[i].stop = stop;
        /* 20 ms: socket events wake the loop anyway; this only bounds lws's timers */
        if (gen_open(&sh[i].g, CLIENTS_PER_CTX, 20)) return -1;
    }
    int64_t last_prog = mono_us();
    for (; started < nsh; started++)
        if (pthread_create(&sh[started].th, NULL, shard_main, &sh[started])) break;
    for (;;) {
        int all = 1;
        for (int i = 0; i < started; i++) all &= __atomic_load_n(&sh[i].finished, __ATOMIC_ACQUIRE);
        if (all) break;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        int64_t now = mono_us();
        if (now - last_prog > 1000000) {
            last_prog = now;
            fprintf(stderr, "\r%s: %ld connected, %ld failed   ", what, __atomic_load_n(welcomed, __ATOMIC_RELAXED),
                    __atomic_load_n(failed, __ATOMIC_RELAXED));
        }
    }
    return started;
}

static void shards_stop(struct cshard *sh, int nsh, int started, int *stop)
{
    __atomic_store_n(stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < started; i++) pthread_join(sh[i].th, NULL);
    for (int i = started; sh && i < nsh; i++) gen_close(&sh[i].g);
}

static char **tokens_for(struct bench *b, const char *prefix, long n)
{
    char **tokens = calloc((size_t)n, sizeof *tokens);
    char peer[32];
    for (long i = 0; tokens && i < n; i++) {
        snprintf(peer, sizeof peer, "%s-%ld", prefix, i);
        if (!(tokens[i] = bench_token(b, peer, 0))) return tokens; /* the caller sees the NULL */
    }
    return tokens;
}

static void tokens_free(char **tokens, long n)
{
    for (long i = 0; tokens && i < n; i++) {
        if (tokens[i]) memset(tokens[i], 0, strlen(tokens[i]));
        free(tokens[i]);
    }
    free(tokens);
}

/* --idle N: N authenticated sessions (no subscriptions) held open in shard
 * threads while the measured clients run; they cost the generator nothing
 * while idle (epoll), and the broker whatever an idle session costs it. */
static long idle_welcomed, idle_failed;
static int idle_stop, idle_started;

static int idle_open(struct bench *b)
{
    if (b->idle <= 0) return 0;
    b->idle_nsh = (int)((b->idle + CLIENTS_PER_CTX - 1) / CLIENTS_PER_CTX);
    b->idle_sh = calloc((size_t)b->idle_nsh, sizeof *b->idle_sh);
    b->idle_cl = calloc((size_t)b->idle, sizeof *b->idle_cl);
    b->idle_tokens = b->idle_sh && b->idle_cl ? tokens_for(b, "idle", b->idle) : NULL;
    if (!b->idle_tokens || !b->idle_tokens[b->idle - 1]) return -1;
    idle_started = shards_start(b, b->idle_sh, b->idle_nsh, b->idle_cl, b->idle, b->idle_tokens, &idle_welcomed,
                                &idle_failed, &idle_stop, "idle sessions");
    fprintf(stderr, "\n");
    if (idle_started < b->idle_nsh || idle_welcomed < b->idle) {
        fprintf(stderr, "rtm bench: only %ld/%ld idle sessions connected\n", idle_welcomed, b->idle);
        return -1;
    }
    return 0;
}

static void idle_close(struct bench *b)
{
    if (!b->idle_sh) return;
    shards_stop(b->idle_sh, b->idle_nsh, idle_started > 0 ? idle_started : 0, &idle_stop);
    tokens_free(b->idle_tokens, b->idle);
    free(b->idle_sh);
    free(b->idle_cl);
    b->idle_sh = NULL;
}

/* ---- pairs ---- */

static int run_pairs(struct bench *b)
{
    struct rtm_callbacks cbs = {.connected = on_connected, .closed = on_closed, .direct = on_direct_pairs};
    if (idle_open(b)) return RTM_EXIT_CONNECT;
    b->ncl = 2 * b->pairs;
    if (!(b->cl = calloc((size_t)b->ncl, sizeof *b->cl)) || make_ctx(b, b->ncl)) return RTM_EXIT_FAIL;
    char peer[32], chan[48];
    for (long i = 0; i < b->ncl; i++) {
        struct bclient *k = &b->cl[i];
        k->b = b;
        k->idx = (int)i;
        snprintf(peer, sizeof peer, i % 2 ? "pb-%ld" : "pa-%ld", i / 2);
        snprintf(chan, sizeof chan, "bench/pair/%ld", i / 2);
        if (!new_client(b, k, peer, &cbs, 0)) return RTM_EXIT_FAIL;
        if (rtm_subscribe(k->c, chan, on_sub, k)) return RTM_EXIT_FAIL;
        ramp(b, i);
    }
    int64_t end = mono_us() + SETUP_TIMEOUT_MS * 1000LL;
    while (!tool_interrupted && mono_us() < end && b->subscribed + b->failed < b->ncl) {
        service(b);
        progress(b, "subscribing", b->subscribed, b->ncl);
    }
    if (b->subscribed < b->ncl) {
        fprintf(stderr, "\nrtm bench: only %ld/%ld subscribed\n", b->subscribed, b->ncl);
        return RTM_EXIT_CONNECT;
    }
    fprintf(stderr, "\n");
    /* paced: --rate round trips/s in all, for --seconds (open loop: a pair
     * may have several in flight); else closed loop, --msgs per pair */
    long want = b->rate > 0 ? b->rate * b->seconds : b->pairs * b->msgs, last_ex = 0;
    service_for(b, mono_us() + 300000, NULL); /* the subscribe acks' last frames */
    b->nlat = 0;
    cpu_start(b);
    int64_t t0 = mono_us(), last_prog = t0, last_change = t0;
    if (b->rate == 0)
        for (long i = 0; i < b->ncl; i += 2) send_ping(&b->cl[i]);
    while (!tool_interrupted && b->exchanges < want && mono_us() - last_change < DRAIN_MS * 1000LL) {
        if (b->rate > 0 && b->sent < want) {
            long due = (long)((mono_us() - t0) * b->rate / 1000000) + 1;
            if (due > want) due = want;
            while (b->sent < due) {
                send_ping(&b->cl[2 * (b->sent % b->pairs)]);
                last_change = mono_us();
            }
        }
        service(b);
        int64_t now = mono_us();
        if (b->exchanges != last_ex) {
            last_ex = b->exchanges;
            last_change = now;
        }
        if (now - last_prog > 1000000) {
            last_prog = now;
            fprintf(stderr, "\rpairs: %ld/%ld exchanges (%.0f/s)   ", b->exchanges, want,
                    b->exchanges / ((now - t0) / 1e6));
        }
    }
    double secs = (double)(last_change - t0) / 1e6;
    fprintf(stderr, "\n");
    json_t *j = json_object();
    json_object_set_new(j, "bench", json_string(b->rate > 0 ? "pairs-paced" : "pairs"));
    json_object_set_new(j, "pairs", json_integer(b->pairs));
    json_object_set_new(j, "rate", json_integer(b->rate));
    json_object_set_new(j, "idle_sessions", json_integer(b->idle > 0 ? idle_welcomed : 0));
    json_object_set_new(j, "exchanges", json_integer(b->exchanges));
    json_object_set_new(j, "lost", json_integer(want - b->exchanges));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "exchanges_per_sec", json_real(secs > 0 ? b->exchanges / secs : 0));
    /* paced: one-way latency (each leg); closed loop: the round trip */
    json_object_set_new(j, "latency", json_string(b->rate > 0 ? "one-way" : "round-trip"));
    add_latency(b, j);
    cpu_report(b, j, t0, last_change);
    json_object_set_new(j, "disconnects", json_integer(b->failed));
    if (b->pid) json_object_set_new(j, "broker_rss_kb", json_integer(rss_kb(b->pid)));
    print_results(b, b->rate > 0 ? "pairs results (paced, one-way latency)" : "pairs results (round trips)", j);
    json_decref(j);
    return RTM_EXIT_OK;
}

/* ---- connect ---- */

static int run_connect(struct bench *b)
{
    b->ncl = b->conns;
    int nsh = (int)((b->ncl + CLIENTS_PER_CTX - 1) / CLIENTS_PER_CTX);
    struct cshard *sh = calloc((size_t)nsh, sizeof *sh);
    char **tokens = NULL;
    int rc = RTM_EXIT_FAIL, started = 0, stop = 0;
    if (!sh || !(b->cl = calloc((size_t)b->ncl, sizeof *b->cl))) goto out;
    long rss0 = b->pid ? rss_kb(b->pid) : -1;
    /* tokens first, so signing does not count as connect time */
    tokens = tokens_for(b, "conn", b->ncl);
    if (!tokens || !tokens[b->ncl - 1]) goto out;
    cpu_start(b);
    int64_t t0 = mono_us();
    started = shards_start(b, sh, nsh, b->cl, b->ncl, tokens, &b->welcomed, &b->failed, &stop, "connect");
    int64_t t1 = mono_us();
    double secs = (double)(t1 - t0) / 1e6;
    fprintf(stderr, "\n");
    if (started < 0) goto out;
    json_t *j = json_object();
    cpu_report(b, j, t0, t1);
    struct timespec settle = {1, 0}; /* let the broker settle */
    nanosleep(&settle, NULL);
    long rss1 = b->pid ? rss_kb(b->pid) : -1;
    long welcomed = __atomic_load_n(&b->welcomed, __ATOMIC_RELAXED), failed = __atomic_load_n(&b->failed, __ATOMIC_RELAXED);
    json_object_set_new(j, "bench", json_string("connect"));
    json_object_set_new(j, "conns", json_integer(b->conns));
    json_object_set_new(j, "connected", json_integer(welcomed));
    json_object_set_new(j, "failures", json_integer(failed));
    json_object_set_new(j, "unfinished", json_integer(b->ncl - welcomed - failed));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "connects_per_sec", json_real(secs > 0 ? welcomed / secs : 0));
    if (b->pid && rss0 > 0 && rss1 > 0) {
        json_object_set_new(j, "broker_rss_kb_before", json_integer(rss0));
        json_object_set_new(j, "broker_rss_kb_after", json_integer(rss1));
        json_object_set_new(j, "broker_bytes_per_conn",
                            json_real(welcomed ? (double)(rss1 - rss0) * 1024.0 / welcomed : 0));
    }
    print_results(b, "connect results", j);
    json_decref(j);
    rc = welcomed == b->ncl ? RTM_EXIT_OK : RTM_EXIT_FAIL;
out:
    shards_stop(sh, nsh, started > 0 ? started : 0, &stop);
    tokens_free(tokens, b->ncl);
    free(sh);
    free(b->cl);
    b->cl = NULL;
    b->ncl = 0;
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rtm bench fanout|pairs|connect [flags] [connection settings]\n"
            "  fanout   P publishers and N subscribers in one channel: deliveries/s, latency, losses\n"
            "  pairs    K pairs exchanging direct sends as request/reply: round trips/s, RTT percentiles\n"
            "  connect  ramp C connections: connects/s, failures, broker memory per connection\n"
            "flags:\n"
            "  --subs N (1000)  --pubs P (1)  --msgs M (fanout: total, 2000; pairs: per pair, 100)\n"
            "  --size S (256)   --rate R (0 = as fast as possible; fanout is then closed-loop)\n"
            "  --window W (16: unpaced fanout, messages per publisher not yet delivered everywhere)\n"
            "  --pairs K (500)  --conns C (1000)  --pid BROKER_PID (reads its VmRSS and CPU time)\n"
            "  pairs --rate R: R round trips/s in all for --seconds T (10), one-way latency per leg\n"
            "  --idle N (0)     hold N more authenticated sessions open, idle, beside the run\n"
            "Tokens are signed locally when --key-id (RTM_KEY_ID) is given, else minted via --mint.\n"
            "Prints a progress line on stderr, then a results table and one JSON line on stdout.\n");
    tool_conn_help(out);
}

static int num(const char *prog, const char *name, const char *v, long *out, long min)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < min) {
        fprintf(stderr, "%s: %s wants a number >= %ld\n", prog, name, min);
        return -1;
    }
    *out = n;
    return 0;
}

int tool_bench_main(int argc, char **argv)
{
    const char *prog = "rtm bench";
    struct bench b;
    memset(&b, 0, sizeof b);
    tool_conn_init(&b.tc);
    b.subs = 1000;
    b.pubs = 1;
    b.msgs = -1;
    b.size = 256;
    b.pairs = 500;
    b.conns = 1000;
    b.window = 16;
    b.seconds = 10;
    for (int i = 1; i < argc; i++) {
        int r = tool_conn_arg(&b.tc, &i, argc, argv, prog);
        if (r < 0) return RTM_EXIT_USAGE;
        if (r) continue;
        static const struct {
            const char *name;
            size_t off;
            long min;
        } flags[] = {
            {"--subs", offsetof(struct bench, subs), 1},   {"--pubs", offsetof(struct bench, pubs), 1},
            {"--msgs", offsetof(struct bench, msgs), 1},   {"--size", offsetof(struct bench, size), 16},
            {"--rate", offsetof(struct bench, rate), 0},   {"--pairs", offsetof(struct bench, pairs), 1},
            {"--conns", offsetof(struct bench, conns), 1}, {"--window", offsetof(struct bench, window), 1},
            {"--idle", offsetof(struct bench, idle), 0},   {"--seconds", offsetof(struct bench, seconds), 1},
        };
        int hit = 0;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            if (strcmp(argv[i], flags[f].name)) continue;
            if (i + 1 >= argc || num(prog, argv[i], argv[i + 1], (long *)((char *)&b + flags[f].off), flags[f].min))
                return RTM_EXIT_USAGE;
            i++;
            hit = 1;
        }
        if (hit) continue;
        if (!strcmp(argv[i], "--pid") && i + 1 < argc) {
            b.pid = atoi(argv[++i]);
        } else if (argv[i][0] != '-' && !b.mode) {
            b.mode = argv[i];
        } else {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[i]);
            return RTM_EXIT_USAGE;
        }
    }
    if (b.tc.help) {
        usage(stdout);
        return RTM_EXIT_OK;
    }
    if (!b.mode || (strcmp(b.mode, "fanout") && strcmp(b.mode, "pairs") && strcmp(b.mode, "connect"))) {
        usage(stderr);
        return RTM_EXIT_USAGE;
    }
    if (b.size > 60000) {
        fprintf(stderr, "%s: --size must fit in a frame (at most 60000)\n", prog);
        return RTM_EXIT_USAGE;
    }
    if (b.msgs < 0) b.msgs = !strcmp(b.mode, "fanout") ? 2000 : 100;
    tool_install_signals();
    if (!(b.lat = malloc(MAX_SAMPLES * sizeof *b.lat))) return RTM_EXIT_FAIL;
    int rc = !strcmp(b.mode, "fanout") ? run_fanout(&b) : !strcmp(b.mode, "pairs") ? run_pairs(&b) : run_connect(&b);
    if (b.nctx) teardown(&b);
    idle_close(&b);
    free(b.lat);
    return rc;
}

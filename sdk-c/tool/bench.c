/* bench.c: `rtm bench fanout|pairs|connect`: a load generator built on
 * librtm, every client on one shared lws context in one thread (the
 * library's "existing lws context" mode), so thousands of connections cost
 * one poll loop, not thousands of contexts.
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

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (20u << 20)
#define SETUP_TIMEOUT_MS 60000
#define DRAIN_MS 3000

struct bench;
struct cshard;

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
    int pid;
    struct lws_context *ctxs[1]; /* fanout, pairs (connect: one per shard) */
    int nctx;
    struct bclient *cl;
    long ncl;
    long welcomed, failed, subscribed; /* atomics in connect mode */
    int stop_shards;
    /* samples in microseconds */
    uint32_t *lat;
    size_t nlat;
    long delivered, sent, errors;
    long exchanges;
    char *payload_pad;
    lws_sorted_usec_list_t tick;
};

#define CLIENTS_PER_CTX 500

static struct lws_context *ctx_for(struct bench *b, long idx)
{
    (void)idx;
    return b->ctxs[0];
}

/* One loop turn: waits in poll, bounded by the 1 ms tick. */
static void service(struct bench *b) { lws_service(b->ctxs[0], 0); }

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
    struct rtm_token_params p = {.peer_id = peer,
                                 .permissions = presence ? perms_all : perms_np,
                                 .n_permissions = presence ? 4 : 3,
                                 .expires_in_sec = 3600};
    char *t = NULL;
    rtm_status st;
    if (b->tc.token) return strdup(b->tc.token);
    if (b->tc.key_id && b->tc.key)
        st = rtm_sign_token(b->tc.key_id, b->tc.key, &p, NULL, NULL, 0, &t, NULL);
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
        /* responder: echo the stamp back */
        char peer[32];
        snprintf(peer, sizeof peer, "pa-%d", k->idx / 2);
        if (rtm_send(c, peer, m->data, NULL, NULL)) b->errors++;
        return;
    }
    if (t < 0) return;
    record(b, mono_us() - t);
    b->exchanges++;
    k->done++;
    if (k->done < b->msgs) send_ping(k);
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

static void tick_cb(lws_sorted_usec_list_t *s)
{
    struct bench *b = lws_container_of(s, struct bench, tick);
    lws_sul_schedule(b->ctxs[0], 0, &b->tick, tick_cb, 1000); /* bounds each lws_service wait to ~1 ms */
}

static int make_ctx(struct bench *b, long nconns)
{
    static struct lws_protocols protos[2];
    struct lws_context_creation_info info;
    protos[0] = *rtm_lws_protocol();
    memset(&protos[1], 0, sizeof protos[1]);
    /* fanout and pairs: one context, so a delivery is never delayed by a
     * round over other contexts (connect mode shards instead, see below) */
    b->nctx = 1;
    for (int i = 0; i < b->nctx; i++) {
        memset(&info, 0, sizeof info);
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protos;
        info.gid = -1;
        info.uid = -1;
        info.fd_limit_per_thread = (unsigned)(nconns + 64);
        info.max_http_header_data = 8192;
        info.pt_serv_buf_size = 8192;
        info.timeout_secs = 30;
        if (!(b->ctxs[i] = lws_create_context(&info))) return -1;
    }
    lws_sul_schedule(b->ctxs[0], 0, &b->tick, tick_cb, 1000);
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
    lws_sul_schedule(b->ctxs[0], 0, &b->tick, NULL, LWS_SET_TIMER_USEC_CANCEL);
    for (int i = 0; i < b->nctx; i++) lws_context_destroy(b->ctxs[i]);
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
        if (i % 100 == 99) service_for(b, mono_us() + 1000, NULL);
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
    json_object_set_new(j, "disconnects", json_integer(b->failed));
    if (b->pid) json_object_set_new(j, "broker_rss_kb", json_integer(rss_kb(b->pid)));
    print_results(b, "fanout results", j);
    json_decref(j);
    return RTM_EXIT_OK;
}

/* ---- pairs ---- */

static int run_pairs(struct bench *b)
{
    struct rtm_callbacks cbs = {.connected = on_connected, .closed = on_closed, .direct = on_direct_pairs};
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
        if (i % 100 == 99) service_for(b, mono_us() + 1000, NULL);
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
    int64_t t0 = mono_us(), last_prog = t0, last_change = t0;
    long want = b->pairs * b->msgs, last_ex = 0;
    for (long i = 0; i < b->ncl; i += 2) send_ping(&b->cl[i]);
    while (!tool_interrupted && b->exchanges < want && mono_us() - last_change < DRAIN_MS * 1000LL) {
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
    json_object_set_new(j, "bench", json_string("pairs"));
    json_object_set_new(j, "pairs", json_integer(b->pairs));
    json_object_set_new(j, "exchanges", json_integer(b->exchanges));
    json_object_set_new(j, "lost", json_integer(want - b->exchanges));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "exchanges_per_sec", json_real(secs > 0 ? b->exchanges / secs : 0));
    add_latency(b, j);
    json_object_set_new(j, "disconnects", json_integer(b->failed));
    if (b->pid) json_object_set_new(j, "broker_rss_kb", json_integer(rss_kb(b->pid)));
    print_results(b, "pairs results (round trips)", j);
    json_decref(j);
    return RTM_EXIT_OK;
}

/* ---- connect ----
 * Shards of CLIENTS_PER_CTX clients, each on its own lws context in its own
 * thread (lws keeps a context's timers in one sorted list, so one context
 * with 10,000 clients spends its time inserting timers). Counters shared
 * with the main thread are atomics; everything else stays in the shard. */

struct cshard {
    struct bench *b;
    struct lws_context *ctx;
    long first, count, done;
    char **tokens;
    int64_t limit_us;
    int finished;
    lws_sorted_usec_list_t tick;
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
    __atomic_fetch_add(&k->b->welcomed, 1, __ATOMIC_RELAXED);
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
    if (__atomic_fetch_add(&k->b->failed, 1, __ATOMIC_RELAXED) < 3)
        fprintf(stderr, "\nrtm bench: client %d closed: %d %s\n", k->idx, code, reason);
}

static void shard_tick(lws_sorted_usec_list_t *s)
{
    struct cshard *sh = lws_container_of(s, struct cshard, tick);
    lws_sul_schedule(sh->ctx, 0, &sh->tick, shard_tick, 20000); /* socket events wake poll anyway */
}

static void *shard_main(void *arg)
{
    struct cshard *sh = arg;
    struct bench *b = sh->b;
    static const struct rtm_callbacks cbs = {.connected = on_connected_c, .closed = on_closed_c};
    const long inflight_max = 50; /* connects in progress at once, per shard */
    long started = 0;
    int64_t t0 = mono_us();
    lws_sul_schedule(sh->ctx, 0, &sh->tick, shard_tick, 20000); /* socket events wake poll anyway */
    while (!tool_interrupted && sh->done < sh->count && mono_us() - t0 < sh->limit_us) {
        while (started < sh->count && started - sh->done < inflight_max) {
            struct bclient *k = &b->cl[sh->first + started];
            k->b = b;
            k->sh = sh;
            k->idx = (int)(sh->first + started);
            rtm_options *o = rtm_options_new();
            rtm_options_set_url(o, b->tc.url);
            rtm_options_set_token(o, sh->tokens[sh->first + started]);
            rtm_options_set_callbacks(o, &cbs, k);
            rtm_options_set_lws_context(o, sh->ctx);
            if (!o || rtm_client_new(o, &k->c)) {
                k->c = NULL;
                k->failed = 1;
                sh->done++;
                __atomic_fetch_add(&b->failed, 1, __ATOMIC_RELAXED);
            }
            rtm_options_free(o);
            started++;
        }
        lws_service(sh->ctx, 0);
    }
    __atomic_store_n(&sh->finished, 1, __ATOMIC_RELEASE);
    /* keep the connections open until the main thread has read the broker's memory */
    while (!__atomic_load_n(&b->stop_shards, __ATOMIC_ACQUIRE)) lws_service(sh->ctx, 0);
    for (long i = 0; i < sh->count; i++)
        if (b->cl[sh->first + i].c) rtm_client_free(b->cl[sh->first + i].c);
    lws_sul_schedule(sh->ctx, 0, &sh->tick, NULL, LWS_SET_TIMER_USEC_CANCEL);
    lws_context_destroy(sh->ctx);
    return NULL;
}

static int run_connect(struct bench *b)
{
    static struct lws_protocols protos[2];
    b->ncl = b->conns;
    int nsh = (int)((b->ncl + CLIENTS_PER_CTX - 1) / CLIENTS_PER_CTX);
    struct cshard *sh = calloc((size_t)nsh, sizeof *sh);
    char **tokens = calloc((size_t)b->ncl, sizeof *tokens);
    int rc = RTM_EXIT_FAIL, started_threads = 0;
    if (!sh || !tokens || !(b->cl = calloc((size_t)b->ncl, sizeof *b->cl))) goto out;
    long rss0 = b->pid ? rss_kb(b->pid) : -1;
    /* tokens first, so signing does not count as connect time */
    char peer[32];
    for (long i = 0; i < b->ncl; i++) {
        snprintf(peer, sizeof peer, "conn-%ld", i);
        if (!(tokens[i] = bench_token(b, peer, 0))) goto out;
    }
    protos[0] = *rtm_lws_protocol();
    memset(&protos[1], 0, sizeof protos[1]);
    /* a bound on the whole ramp: 2 minutes, or 20 ms per connection */
    int64_t limit = b->ncl * 20000LL > 120000000LL ? b->ncl * 20000LL : 120000000LL;
    for (int i = 0; i < nsh; i++) {
        struct lws_context_creation_info info;
        memset(&info, 0, sizeof info);
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protos;
        info.gid = -1;
        info.uid = -1;
        info.fd_limit_per_thread = CLIENTS_PER_CTX + 64;
        info.timeout_secs = 30;
        sh[i].b = b;
        sh[i].first = (long)i * CLIENTS_PER_CTX;
        sh[i].count = b->ncl - sh[i].first < CLIENTS_PER_CTX ? b->ncl - sh[i].first : CLIENTS_PER_CTX;
        sh[i].tokens = tokens;
        sh[i].limit_us = limit;
        if (!(sh[i].ctx = lws_create_context(&info))) goto out;
    }
    int64_t t0 = mono_us(), last_prog = t0;
    for (; started_threads < nsh; started_threads++)
        if (pthread_create(&sh[started_threads].th, NULL, shard_main, &sh[started_threads])) goto out;
    for (;;) {
        int all = 1;
        for (int i = 0; i < nsh; i++) all &= __atomic_load_n(&sh[i].finished, __ATOMIC_ACQUIRE);
        if (all) break;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        int64_t now = mono_us();
        if (now - last_prog > 1000000) {
            last_prog = now;
            fprintf(stderr, "\rconnect: %ld connected, %ld failed   ", __atomic_load_n(&b->welcomed, __ATOMIC_RELAXED),
                    __atomic_load_n(&b->failed, __ATOMIC_RELAXED));
        }
    }
    double secs = (double)(mono_us() - t0) / 1e6;
    fprintf(stderr, "\n");
    struct timespec settle = {1, 0}; /* let the broker settle */
    nanosleep(&settle, NULL);
    long rss1 = b->pid ? rss_kb(b->pid) : -1;
    long welcomed = __atomic_load_n(&b->welcomed, __ATOMIC_RELAXED), failed = __atomic_load_n(&b->failed, __ATOMIC_RELAXED);
    json_t *j = json_object();
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
    __atomic_store_n(&b->stop_shards, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < started_threads; i++) pthread_join(sh[i].th, NULL);
    for (int i = started_threads; sh && i < nsh; i++)
        if (sh[i].ctx) lws_context_destroy(sh[i].ctx);
    for (long i = 0; tokens && i < b->ncl; i++) {
        if (tokens[i]) memset(tokens[i], 0, strlen(tokens[i]));
        free(tokens[i]);
    }
    free(tokens);
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
            "  --pairs K (500)  --conns C (1000)  --pid BROKER_PID (reads its VmRSS)\n"
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
    free(b.lat);
    return rc;
}

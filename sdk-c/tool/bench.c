/* bench.c: `rtm bench fanout|pairs|connect`, the load generator of `make
 * bench` (bench/README.md). It speaks two wires with the same client engine
 * (wsgen.c: epoll, frames parsed in place), so one run can measure rtmd and
 * the raw relay (bench/rawws.c, --server raw) side by side, with the same
 * cost on the generator's side: a share of a read() and a header parse per
 * delivery (well under rtmd's cost per event; about the relay's, which is
 * mostly the kernel's too: bench/README.md says how to read that).
 *
 * Design: --threads N generator threads, each its own epoll loop and share
 * of the connections (a pair's two ends, and the publishers, stay on one
 * thread: a pair's round trip never crosses threads); counters are per
 * thread, written by their thread only and read by the main thread with
 * atomic loads; latency samples are per thread and merged at the end.
 * Receivers live in this process, so latency is measured with one monotonic
 * clock: every payload carries "t":<microseconds>. Fanout without a rate is
 * closed-loop (at most --window messages per publisher not yet delivered to
 * every subscriber), which measures delivered throughput instead of filling
 * the server's queues until it drops subscribers. Bounded: setup (connects
 * and subscriptions) at most 2 minutes or 20 ms a connection (setup_wait),
 * a run ends DRAIN_MS after its last delivery. */
#define _GNU_SOURCE
#include "tool.h"
#include "toolconn.h"
#include "wsgen.h"

#include <jansson.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (20u << 20)
#define DRAIN_MS 3000
#define MAX_THREADS 64

enum wire { WIRE_RTM, WIRE_RAW };
enum role { ROLE_IDLE, ROLE_SUB, ROLE_PUB, ROLE_A, ROLE_B };
enum phase { PHASE_SETUP, PHASE_RUN, PHASE_STOP };

struct worker;

/* One per connection, in one array owned by the run; the wsg_conn first. */
struct bconn {
    struct wsg_conn w;
    struct worker *wk;
    char *path; /* the upgrade path (a token for rtmd): wiped once answered */
    long idx;   /* subscriber, publisher or pair number */
    unsigned char role, url, welcomed, ready, failed;
    long done; /* closed-loop pairs: round trips completed */
};

/* One per generator thread. Counters are written by the thread only. */
struct worker {
    struct wsg_thread t;
    struct bench *b;
    struct bconn **todo; /* connections to open, in order */
    long ntodo, next, inflight, inflight_max;
    long ready, failed, disconnects, errors;
    long delivered, exchanges, sent;
    int64_t last_us; /* the last delivery or exchange */
    uint32_t *lat;
    size_t nlat, cap;
    long seq; /* paced pairs: the next sequence number to look at */
    int started; /* closed-loop pairs: first pings sent */
    struct bconn **pubs; /* fanout: this thread's publishers */
    long npubs;
    char *pad; /* fanout payload scratch */
};

struct target {
    struct sockaddr_in addr;
    char host[256];
    char path[256]; /* rtmd's WebSocket path, "/v1" when the URL has none */
};

struct bench {
    const char *mode;
    struct tool_conn tc;
    const char *url2, *server;
    enum wire wire;
    long subs, pubs, msgs, size, rate, pairs, conns, window, idle, seconds, threads, inflight;
    int pid, pid2; /* the server's (and the second node's) process, for CPU and RSS */
    struct target tgt[2];
    int ntgt;
    struct bconn *cl;
    long ncl, nidle;
    struct bconn **pair_a; /* pairs: pair p's first end */
    struct worker *wk;
    long launched; /* threads started */
    int phase;
    int64_t t0;
    long sent; /* fanout: published, written by the publishers' thread */
    /* CPU seconds at the start of a measured phase */
    double cpu_broker0, cpu_broker2_0, cpu_self0;
    uint32_t *lat;
    size_t nlat;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long ld(const long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static void bump(long *p) { __atomic_store_n(p, *p + 1, __ATOMIC_RELAXED); } /* single writer */

/* A latency sample: from the payload's stamp to now (one clock read). */
static void record(struct worker *w, int64_t stamp)
{
    int64_t now = mono_us(), us = now - stamp;
    if (w->nlat < w->cap) w->lat[w->nlat++] = us < 0 ? 0 : us > 0xffffffff ? 0xffffffff : (uint32_t)us;
    __atomic_store_n(&w->last_us, now, __ATOMIC_RELAXED);
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

/* "t":<us> from a payload */
static int64_t stamp_of(const char *s, size_t len)
{
    const char *p = memmem(s, len, "\"t\":", 4);
    return p ? strtoll(p + 4, NULL, 10) : -1;
}

static int starts(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && !memcmp(p, lit, l);
}

/* ---- CPU and memory of the server and of the generator ---- */

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
    b->cpu_broker2_0 = b->pid2 ? proc_cpu_s(b->pid2) : -1;
    b->cpu_self0 = self_cpu_s();
}

/* CPU % of the server and of the generator since cpu_start (100 = one
 * core), and the CPU microseconds each spent per event (a delivery, a round
 * trip, a connect): on a shared machine the percentages fall with the core's
 * other work, the cost per event much less. */
static void cpu_report(struct bench *b, json_t *j, int64_t t0_us, int64_t t1_us, long events)
{
    double wall = (double)(t1_us - t0_us) / 1e6;
    if (wall <= 0) return;
    double self = self_cpu_s() - b->cpu_self0;
    static const char *const keys[2][2] = {{"broker_cpu_pct", "broker_cpu_us_per_event"},
                                           {"broker2_cpu_pct", "broker2_cpu_us_per_event"}};
    int pids[2] = {b->pid, b->pid2};
    double c0[2] = {b->cpu_broker0, b->cpu_broker2_0};
    for (int i = 0; i < 2; i++) {
        double c = pids[i] && c0[i] >= 0 ? proc_cpu_s(pids[i]) : -1;
        if (c < 0) continue;
        json_object_set_new(j, keys[i][0], json_real(100.0 * (c - c0[i]) / wall));
        if (events > 0) json_object_set_new(j, keys[i][1], json_real(1e6 * (c - c0[i]) / (double)events));
    }
    json_object_set_new(j, "generator_cpu_pct", json_real(100.0 * self / wall));
    if (events > 0) json_object_set_new(j, "generator_cpu_us_per_event", json_real(1e6 * self / (double)events));
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

static char *bench_token(struct bench *b, const char *peer)
{
    static const char *perms[] = {"publish", "subscribe", "send"};
    /* Shaped like what the mint API issues for a call: TURN credentials in
     * metadata.iceServers and a display name in peerMetadata, so the
     * broker's connect and message costs are the real ones. */
    static const char *const turn_urls[] = {"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp",
                                            "turn:127.0.0.1:3478?transport=tcp"};
    char pmeta[96];
    snprintf(pmeta, sizeof pmeta, "{\"name\":\"%s\"}", peer);
    struct rtm_token_params p = {
        .peer_id = peer, .permissions = perms, .n_permissions = 3, .expires_in_sec = 3600, .peer_metadata_json = pmeta};
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

static void wipe(char **s)
{
    if (*s) memset(*s, 0, strlen(*s));
    free(*s);
    *s = NULL;
}

/* ws://host:port[/path] -> a target; 0 or -1 (reported). */
static int target_parse(struct target *t, const char *url)
{
    const char *p = url;
    if (!strncmp(p, "ws://", 5)) p += 5;
    else if (strstr(p, "://")) {
        fprintf(stderr, "rtm bench: %s: only ws:// URLs (loopback benchmarks)\n", url);
        return -1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof t->host) return -1;
    memcpy(t->host, p, hl);
    t->host[hl] = '\0';
    p += hl;
    const char *port = "80";
    char pbuf[8];
    if (*p == ':') {
        size_t pl = strcspn(p + 1, "/");
        if (pl == 0 || pl >= sizeof pbuf) return -1;
        memcpy(pbuf, p + 1, pl);
        pbuf[pl] = '\0';
        port = pbuf;
        p += 1 + pl;
    }
    snprintf(t->path, sizeof t->path, "%s", *p && strcmp(p, "/") ? p : "/v1");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(t->host, port, &hints, &ai) || !ai) {
        fprintf(stderr, "rtm bench: cannot resolve %s\n", url);
        return -1;
    }
    memcpy(&t->addr, ai->ai_addr, sizeof t->addr);
    freeaddrinfo(ai);
    return 0;
}

/* ---- what the frames say, per wire ----
 * rtmd: the rtm protocol (docs/PROTOCOL.md): a welcome, a subscribe acked,
 * publish -> message, send -> direct. raw: bench/rawws.c's wire: "f..."
 * fanned out, "d<N> ..." to recipient N; the connection is ready at 101. */

static int wants_channel(const struct bconn *k) { return k->role == ROLE_SUB || k->role == ROLE_A || k->role == ROLE_B; }

static void became_ready(struct bconn *k)
{
    k->ready = 1;
    __atomic_store_n(&k->wk->last_us, mono_us(), __ATOMIC_RELAXED);
    k->wk->inflight--;
    wipe(&k->path);
    bump(&k->wk->ready);
}

static void failed_setup(struct bconn *k, const char *why)
{
    struct worker *w = k->wk;
    if (k->ready || k->failed) return;
    k->failed = 1;
    w->inflight--;
    wipe(&k->path);
    if (ld(&w->failed) < 3) fprintf(stderr, "\nrtm bench: connection %ld (role %d): %s (close %d)\n", k->idx, k->role, why, k->w.close_code);
    bump(&w->failed);
    if (k->w.state != WSG_CLOSED) wsg_close(&k->w);
}

static void on_open(struct wsg_conn *c)
{
    struct bconn *k = (struct bconn *)c;
    if (k->wk->b->wire == WIRE_RAW) became_ready(k);
}

static void on_closed(struct wsg_conn *c)
{
    struct bconn *k = (struct bconn *)c;
    if (!k->ready) failed_setup(k, "closed during setup");
    else bump(&k->wk->disconnects);
}

static void send_ping(struct bconn *a, int64_t stamp);

/* A frame on a ready connection while the run is on. */
static void on_payload(struct bconn *k, char *p, size_t n)
{
    struct worker *w = k->wk;
    struct bench *b = w->b;
    int raw = b->wire == WIRE_RAW;
    if (k->role == ROLE_SUB) {
        if (raw ? !starts(p, n, "f") : !starts(p, n, "{\"type\":\"message\"")) return;
        int64_t t = stamp_of(p, n);
        if (t < 0) return;
        record(w, t);
        bump(&w->delivered);
        return;
    }
    if (k->role != ROLE_A && k->role != ROLE_B) return;
    if (raw ? !starts(p, n, "d") : !starts(p, n, "{\"type\":\"direct\"")) return;
    int64_t t = stamp_of(p, n);
    if (t < 0) return;
    if (k->role == ROLE_B) {
        char out[96];
        int len;
        int64_t reply = t;
        if (b->rate > 0) { /* paced: each leg is a one-way sample; the reply carries a fresh stamp */
            record(w, t);
            reply = mono_us();
        }
        /* closed loop: the stamp goes back (the sample is the round trip) */
        if (raw) len = snprintf(out, sizeof out, "d%ld {\"t\":%lld}", 2 * k->idx, (long long)reply);
        else len = snprintf(out, sizeof out, "{\"type\":\"send\",\"to\":\"pa-%ld\",\"data\":{\"t\":%lld}}", k->idx, (long long)reply);
        if (wsg_send_text(&k->w, out, (size_t)len)) bump(&w->errors);
        return;
    }
    record(w, t);
    bump(&w->exchanges);
    k->done++;
    if (b->rate == 0 && k->done < b->msgs) send_ping(k, mono_us());
}

static void on_frame(struct wsg_conn *c, char *p, size_t n)
{
    struct bconn *k = (struct bconn *)c;
    struct bench *b = k->wk->b;
    if (k->ready) {
        if (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) == PHASE_RUN) on_payload(k, p, n);
        return;
    }
    if (b->wire == WIRE_RAW) return;
    if (!k->welcomed) {
        if (!starts(p, n, "{\"type\":\"welcome\"")) {
            failed_setup(k, "no welcome");
            return;
        }
        k->welcomed = 1;
        if (!wants_channel(k)) {
            became_ready(k);
            return;
        }
        char sub[96];
        int len = k->role == ROLE_SUB
                      ? snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"channel\":\"bench/fanout\",\"requestId\":\"s\"}")
                      : snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"channel\":\"bench/pair/%ld\",\"requestId\":\"s\"}",
                                 k->idx);
        if (wsg_send_text(&k->w, sub, (size_t)len)) failed_setup(k, "subscribe not sent");
        return;
    }
    if (starts(p, n, "{\"type\":\"ack\"")) became_ready(k);
    else if (starts(p, n, "{\"type\":\"error\"")) failed_setup(k, "subscribe refused");
}

static void send_ping(struct bconn *a, int64_t stamp)
{
    struct worker *w = a->wk;
    char out[96];
    int len = w->b->wire == WIRE_RAW
                  ? snprintf(out, sizeof out, "d%ld {\"t\":%lld}", 2 * a->idx + 1, (long long)stamp)
                  : snprintf(out, sizeof out, "{\"type\":\"send\",\"to\":\"pb-%ld\",\"data\":{\"t\":%lld}}", a->idx,
                             (long long)stamp);
    if (wsg_send_text(&a->w, out, (size_t)len)) bump(&w->errors);
    bump(&w->sent);
}

static long delivered_total(struct bench *b)
{
    long n = 0;
    for (long i = 0; i < b->threads; i++) n += ld(&b->wk[i].delivered);
    return n;
}

/* Fanout: the publishers' thread publishes what is due (paced) or what the
 * window allows (closed loop). */
static void publish_due(struct worker *w)
{
    struct bench *b = w->b;
    long sent = b->sent, delivered = delivered_total(b);
    int64_t now = mono_us();
    long due = b->msgs;
    if (b->rate > 0) {
        due = (long)((now - b->t0) * b->rate / 1000000) + 1;
        if (due > b->msgs) due = b->msgs;
    }
    while (sent < due) {
        if (b->rate == 0 && (sent - b->window * b->pubs) * b->subs > delivered) break;
        struct bconn *k = w->pubs[sent % w->npubs];
        if (k->w.state != WSG_OPEN || wsg_backlog(&k->w) > 65536) break;
        int hl = b->wire == WIRE_RAW ? snprintf(w->pad, 80, "f{\"t\":%lld,\"p\":\"", (long long)mono_us())
                                     : snprintf(w->pad, 120,
                                                "{\"type\":\"publish\",\"channel\":\"bench/fanout\",\"data\":{\"t\":%lld,\"p\":\"",
                                                (long long)mono_us());
        /* data (from {"t" on) is --size bytes */
        int head = b->wire == WIRE_RAW ? 1 : (int)(strstr(w->pad, "{\"t\"") - w->pad);
        long xs = b->size - (hl - head) - 2;
        if (xs < 1) xs = 1;
        memset(w->pad + hl, 'x', (size_t)xs);
        memcpy(w->pad + hl + xs, b->wire == WIRE_RAW ? "\"}" : "\"}}", b->wire == WIRE_RAW ? 2 : 3);
        size_t len = (size_t)hl + (size_t)xs + (b->wire == WIRE_RAW ? 2 : 3);
        if (wsg_send_text(&k->w, w->pad, len)) {
            bump(&w->errors);
            break;
        }
        sent++;
        __atomic_store_n(&b->sent, sent, __ATOMIC_RELAXED);
    }
}

/* Paced pairs: sequence number s goes to pair s % pairs at t0 + s / rate;
 * this thread sends those of its own pairs. */
static void pings_due(struct worker *w)
{
    struct bench *b = w->b;
    long want = b->rate * b->seconds;
    long due = (long)((mono_us() - b->t0) * b->rate / 1000000) + 1;
    if (due > want) due = want;
    for (; w->seq < due; w->seq++) {
        long p = w->seq % b->pairs;
        if (p % b->threads == w->t.idx) send_ping(b->pair_a[p], mono_us());
    }
}

static void on_tick(struct wsg_thread *t)
{
    struct worker *w = t->ud;
    struct bench *b = w->b;
    while (w->next < w->ntodo && w->inflight < w->inflight_max) {
        struct bconn *k = w->todo[w->next++];
        struct target *tg = &b->tgt[k->url];
        w->inflight++;
        if (wsg_connect(t, &k->w, &tg->addr, tg->host, k->path)) failed_setup(k, "connect failed");
    }
    if (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) != PHASE_RUN) return;
    if (!strcmp(b->mode, "fanout") && w->npubs) publish_due(w);
    if (!strcmp(b->mode, "pairs")) {
        if (b->rate > 0) pings_due(w);
        else if (!w->started) {
            w->started = 1;
            for (long p = w->t.idx; p < b->pairs; p += b->threads) send_ping(b->pair_a[p], mono_us());
        }
    }
}

static const struct wsg_ops bench_ops = {.open = on_open, .frame = on_frame, .closed = on_closed, .tick = on_tick};

/* ---- the run: connections, threads, phases ---- */

/* Connection i: its role, number, server and upgrade path. */
static int conn_setup(struct bench *b, struct bconn *k, int role, long idx, int url)
{
    char peer[48];
    k->role = (unsigned char)role;
    k->idx = idx;
    k->url = (unsigned char)(url < b->ntgt ? url : 0);
    if (b->wire == WIRE_RAW) {
        char q[64] = "/";
        if (role == ROLE_SUB) snprintf(q, sizeof q, "/?sub=1");
        else if (role == ROLE_A || role == ROLE_B) snprintf(q, sizeof q, "/?id=%ld", 2 * idx + (role == ROLE_B));
        return (k->path = strdup(q)) ? 0 : -1;
    }
    static const char *const fmt[] = {"idle-%ld", "sub-%ld", "pub-%ld", "pa-%ld", "pb-%ld"};
    snprintf(peer, sizeof peer, fmt[role], idx);
    char *tok = bench_token(b, peer);
    if (!tok) return -1;
    const char *base = b->tgt[k->url].path;
    size_t n = strlen(base) + strlen(tok) + 16;
    if ((k->path = malloc(n))) snprintf(k->path, n, "%s%ctoken=%s", base, strchr(base, '?') ? '&' : '?', tok);
    wipe(&tok);
    return k->path ? 0 : -1;
}

static long sum(struct bench *b, size_t off)
{
    long n = 0;
    for (long i = 0; i < b->threads; i++) n += ld((long *)((char *)&b->wk[i] + off));
    return n;
}
#define SUM(b, field) sum(b, offsetof(struct worker, field))

static int64_t last_event(struct bench *b)
{
    int64_t t = 0;
    for (long i = 0; i < b->threads; i++) {
        int64_t x = __atomic_load_n(&b->wk[i].last_us, __ATOMIC_RELAXED);
        if (x > t) t = x;
    }
    return t;
}

/* Builds the connections (idle ones first, tokens signed here) and hands
 * them to the threads. */
static int run_build(struct bench *b, long measured)
{
    b->nidle = !strcmp(b->mode, "connect") ? 0 : b->idle;
    b->ncl = b->nidle + measured;
    if (!(b->cl = calloc((size_t)b->ncl, sizeof *b->cl)) || !(b->wk = calloc((size_t)b->threads, sizeof *b->wk)) ||
        !(b->pair_a = calloc((size_t)b->pairs, sizeof *b->pair_a)))
        return -1;
    /* roles: idle, then the workload's (pairs: a, b alternating; fanout: subscribers, publishers) */
    for (long i = 0; i < b->ncl; i++) {
        struct bconn *k = &b->cl[i];
        long m = i - b->nidle;
        int r;
        if (m < 0) r = conn_setup(b, k, ROLE_IDLE, i, (int)(i % 2));
        else if (!strcmp(b->mode, "pairs")) r = conn_setup(b, k, m % 2 ? ROLE_B : ROLE_A, m / 2, (int)(m % 2));
        else if (!strcmp(b->mode, "fanout"))
            r = m < b->subs ? conn_setup(b, k, ROLE_SUB, m, (int)(m % 2)) : conn_setup(b, k, ROLE_PUB, m - b->subs, 0);
        else r = conn_setup(b, k, ROLE_IDLE, m, (int)(m % 2));
        if (r) return -1;
        if (k->role == ROLE_A) b->pair_a[k->idx] = k;
    }
    for (long t = 0; t < b->threads; t++) {
        struct worker *w = &b->wk[t];
        w->b = b;
        w->cap = MAX_SAMPLES / (size_t)b->threads;
        w->inflight_max = b->inflight / b->threads > 0 ? b->inflight / b->threads : 1;
        if (!(w->lat = malloc(w->cap * sizeof *w->lat)) || !(w->todo = calloc((size_t)b->ncl, sizeof *w->todo)) ||
            !(w->pubs = calloc((size_t)b->pubs, sizeof *w->pubs)) || !(w->pad = malloc((size_t)b->size + 256)) ||
            wsg_thread_init(&w->t, (int)t, &bench_ops, w, 1))
            return -1;
    }
    /* a pair's two ends on one thread (pair p on thread p % threads), every publisher on thread 0 */
    for (long i = 0; i < b->ncl; i++) {
        struct bconn *k = &b->cl[i];
        long t = k->role == ROLE_PUB ? 0 : k->idx % b->threads;
        k->wk = &b->wk[t];
        k->wk->todo[k->wk->ntodo++] = k;
        if (k->role == ROLE_PUB) k->wk->pubs[k->wk->npubs++] = k;
    }
    return 0;
}

/* Starts the threads, which connect at once (at most --inflight upgrades in
 * flight in all). */
static int run_launch(struct bench *b)
{
    for (; b->launched < b->threads; b->launched++)
        if (wsg_thread_start(&b->wk[b->launched].t)) return -1; /* run_end stops the ones started */
    return 0;
}

/* Waits until every connection is ready or failed (or the bound). */
static int setup_wait(struct bench *b)
{
    /* 2 minutes, or 20 ms a connection */
    int64_t start = mono_us(), limit = b->ncl * 20000LL > 120000000LL ? b->ncl * 20000LL : 120000000LL, last = start;
    while (!tool_interrupted && SUM(b, ready) + SUM(b, failed) < b->ncl && mono_us() - start < limit) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        if (mono_us() - last > 1000000) {
            last = mono_us();
            fprintf(stderr, "\rsetup: %ld ready, %ld failed of %ld   ", SUM(b, ready), SUM(b, failed), b->ncl);
        }
    }
    fprintf(stderr, "\n");
    if (SUM(b, ready) < b->ncl) {
        fprintf(stderr, "rtm bench: only %ld/%ld connections ready (%ld failed)\n", SUM(b, ready), b->ncl, SUM(b, failed));
        return -1;
    }
    return 0;
}

static void run_end(struct bench *b)
{
    __atomic_store_n(&b->phase, PHASE_STOP, __ATOMIC_RELEASE);
    for (long t = 0; t < b->launched; t++) wsg_thread_join(&b->wk[t].t);
    size_t total = 0;
    for (long t = 0; t < b->threads; t++) total += b->wk[t].nlat;
    b->lat = malloc((total ? total : 1) * sizeof *b->lat);
    b->nlat = 0;
    for (long t = 0; b->lat && t < b->threads; t++) {
        memcpy(b->lat + b->nlat, b->wk[t].lat, b->wk[t].nlat * sizeof *b->lat);
        b->nlat += b->wk[t].nlat;
    }
    if (b->lat) qsort(b->lat, b->nlat, sizeof *b->lat, cmp_u32);
}

static void run_free(struct bench *b)
{
    for (long i = 0; b->cl && i < b->ncl; i++) {
        if (b->cl[i].w.state != WSG_IDLE) wsg_close(&b->cl[i].w);
        wipe(&b->cl[i].path);
    }
    for (long t = 0; b->wk && t < b->threads; t++) {
        struct worker *w = &b->wk[t];
        if (w->t.buf) wsg_thread_free(&w->t);
        free(w->lat);
        free(w->todo);
        free(w->pubs);
        free(w->pad);
    }
    free(b->wk);
    free(b->cl);
    free(b->pair_a);
    free(b->lat);
}

static void common_fields(struct bench *b, json_t *j)
{
    json_object_set_new(j, "bench", json_string(b->mode));
    json_object_set_new(j, "server", json_string(b->wire == WIRE_RAW ? "raw" : "rtmd"));
    json_object_set_new(j, "threads", json_integer(b->threads));
    if (b->ntgt > 1) json_object_set_new(j, "nodes", json_integer(b->ntgt));
}

static void add_latency(struct bench *b, json_t *j)
{
    json_object_set_new(j, "p50_ms", json_real(pct(b, 50)));
    json_object_set_new(j, "p90_ms", json_real(pct(b, 90)));
    json_object_set_new(j, "p99_ms", json_real(pct(b, 99)));
    json_object_set_new(j, "max_ms", json_real(b->nlat ? b->lat[b->nlat - 1] / 1000.0 : 0));
}

static void print_results(const char *headline, json_t *j)
{
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

/* The measured phase: runs until done() or DRAIN_MS without progress.
 * Returns the end of the work (the last delivery) in *end, and the moment
 * it was seen in *seen. */
static void measure(struct bench *b, int (*done)(struct bench *), long (*progress)(struct bench *), int64_t *end,
                    int64_t *seen)
{
    struct timespec settle = {0, 300000000}; /* the subscribe acks' last frames */
    nanosleep(&settle, NULL);
    cpu_start(b);
    b->t0 = mono_us();
    for (long t = 0; t < b->threads; t++) __atomic_store_n(&b->wk[t].last_us, b->t0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->phase, PHASE_RUN, __ATOMIC_RELEASE);
    int64_t last_change = b->t0;
    int64_t last_prog = last_change;
    long last = 0;
    while (!tool_interrupted && !done(b) && mono_us() - last_change < DRAIN_MS * 1000LL) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        int64_t now = mono_us();
        long p = progress(b);
        if (p != last) {
            last = p;
            last_change = now;
        }
        if (now - last_prog > 1000000) {
            last_prog = now;
            fprintf(stderr, "\r%s: %ld (%.0f/s)   ", b->mode, p, p / ((now - b->t0) / 1e6));
        }
    }
    fprintf(stderr, "\n");
    *seen = mono_us();
    *end = last_event(b);
    if (*end <= b->t0) *end = *seen;
}

/* ---- fanout ---- */

static int fanout_done(struct bench *b) { return ld(&b->sent) >= b->msgs && delivered_total(b) >= b->msgs * b->subs; }
static long fanout_progress(struct bench *b) { return delivered_total(b); }

static int run_fanout(struct bench *b)
{
    if (run_build(b, b->subs + b->pubs) || run_launch(b) || setup_wait(b)) return RTM_EXIT_CONNECT;
    int64_t end, seen;
    measure(b, fanout_done, fanout_progress, &end, &seen);
    json_t *j = json_object();
    long delivered = delivered_total(b), sent = ld(&b->sent);
    cpu_report(b, j, b->t0, seen, delivered);
    double secs = (double)(end - b->t0) / 1e6;
    run_end(b);
    common_fields(b, j);
    json_object_set_new(j, "subs", json_integer(b->subs));
    json_object_set_new(j, "pubs", json_integer(b->pubs));
    json_object_set_new(j, "size", json_integer(b->size));
    json_object_set_new(j, "rate", json_integer(b->rate));
    json_object_set_new(j, "idle_sessions", json_integer(b->nidle));
    json_object_set_new(j, "published", json_integer(sent));
    json_object_set_new(j, "delivered", json_integer(delivered));
    json_object_set_new(j, "lost", json_integer(sent * b->subs - delivered));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "deliveries_per_sec", json_real(secs > 0 ? delivered / secs : 0));
    add_latency(b, j);
    json_object_set_new(j, "disconnects", json_integer(SUM(b, disconnects)));
    json_object_set_new(j, "errors", json_integer(SUM(b, errors)));
    if (b->pid) json_object_set_new(j, "broker_rss_kb", json_integer(rss_kb(b->pid)));
    print_results("fanout results", j);
    json_decref(j);
    return RTM_EXIT_OK;
}

/* ---- pairs ---- */

static long pairs_want(struct bench *b) { return b->rate > 0 ? b->rate * b->seconds : b->pairs * b->msgs; }
static int pairs_done(struct bench *b) { return SUM(b, exchanges) >= pairs_want(b); }
static long pairs_progress(struct bench *b) { return SUM(b, exchanges); }

static int run_pairs(struct bench *b)
{
    if (run_build(b, 2 * b->pairs) || run_launch(b) || setup_wait(b)) return RTM_EXIT_CONNECT;
    int64_t end, seen;
    measure(b, pairs_done, pairs_progress, &end, &seen);
    json_t *j = json_object();
    long ex = SUM(b, exchanges), want = pairs_want(b);
    cpu_report(b, j, b->t0, seen, ex);
    double secs = (double)(end - b->t0) / 1e6;
    run_end(b);
    common_fields(b, j);
    if (b->rate > 0) json_object_set_new(j, "bench", json_string("pairs-paced"));
    json_object_set_new(j, "pairs", json_integer(b->pairs));
    json_object_set_new(j, "rate", json_integer(b->rate));
    json_object_set_new(j, "idle_sessions", json_integer(b->nidle));
    json_object_set_new(j, "exchanges", json_integer(ex));
    json_object_set_new(j, "lost", json_integer(want - ex));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "exchanges_per_sec", json_real(secs > 0 ? ex / secs : 0));
    /* paced: one-way latency (each leg); closed loop: the round trip */
    json_object_set_new(j, "latency", json_string(b->rate > 0 ? "one-way" : "round-trip"));
    add_latency(b, j);
    json_object_set_new(j, "disconnects", json_integer(SUM(b, disconnects)));
    json_object_set_new(j, "errors", json_integer(SUM(b, errors)));
    if (b->pid) json_object_set_new(j, "broker_rss_kb", json_integer(rss_kb(b->pid)));
    print_results(b->rate > 0 ? "pairs results (paced, one-way latency)" : "pairs results (round trips)", j);
    json_decref(j);
    return RTM_EXIT_OK;
}

/* ---- connect ---- */

static int run_connect(struct bench *b)
{
    long rss0 = b->pid ? rss_kb(b->pid) : -1;
    if (run_build(b, b->conns)) return RTM_EXIT_FAIL; /* tokens first: signing is not connect time */
    cpu_start(b);
    int64_t t0 = mono_us();
    for (long t = 0; t < b->threads; t++) __atomic_store_n(&b->wk[t].last_us, t0, __ATOMIC_RELAXED);
    if (run_launch(b)) return RTM_EXIT_FAIL;
    setup_wait(b);
    int64_t seen = mono_us(), t1 = last_event(b);
    json_t *j = json_object();
    cpu_report(b, j, t0, seen, SUM(b, ready));
    struct timespec settle = {1, 0}; /* let the server settle */
    nanosleep(&settle, NULL);
    long rss1 = b->pid ? rss_kb(b->pid) : -1;
    long ready = SUM(b, ready), failed = SUM(b, failed);
    double secs = (double)(t1 - t0) / 1e6;
    run_end(b);
    common_fields(b, j);
    json_object_set_new(j, "conns", json_integer(b->conns));
    json_object_set_new(j, "inflight", json_integer(b->inflight));
    json_object_set_new(j, "connected", json_integer(ready));
    json_object_set_new(j, "failures", json_integer(failed));
    json_object_set_new(j, "unfinished", json_integer(b->ncl - ready - failed));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "connects_per_sec", json_real(secs > 0 ? ready / secs : 0));
    if (b->pid && rss0 > 0 && rss1 > 0) {
        json_object_set_new(j, "broker_rss_kb_before", json_integer(rss0));
        json_object_set_new(j, "broker_rss_kb_after", json_integer(rss1));
        json_object_set_new(j, "broker_bytes_per_conn", json_real(ready ? (double)(rss1 - rss0) * 1024.0 / ready : 0));
    }
    print_results("connect results", j);
    json_decref(j);
    return ready == b->ncl ? RTM_EXIT_OK : RTM_EXIT_FAIL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rtm bench fanout|pairs|connect [flags] [connection settings]\n"
            "  fanout   P publishers and N subscribers in one channel: deliveries/s, latency, losses\n"
            "  pairs    K pairs exchanging direct sends: round trips/s and their latency\n"
            "  connect  C connections: connects/s, failures, server memory per connection\n"
            "flags:\n"
            "  --subs N (1000)  --pubs P (1)  --msgs M (fanout: total, 2000; pairs: per pair, 100)\n"
            "  --size S (256: fanout data bytes)  --rate R (0 = as fast as possible; fanout is then closed-loop)\n"
            "  --window W (16: unpaced fanout, messages per publisher not yet delivered everywhere)\n"
            "  --pairs K (500)  --conns C (1000)  --pid SERVER_PID (reads its VmRSS and CPU time)\n"
            "  pairs --rate R: R round trips/s in all for --seconds T (10), one-way latency per leg\n"
            "  --idle N (0)     hold N more sessions open, idle, beside the run (authenticated on rtmd)\n"
            "  --threads T (1)  generator threads, each its own epoll loop and share of the connections\n"
            "  --inflight F (256) upgrades in flight at once, in all\n"
            "  --server rtmd|raw (rtmd)  raw: bench/rawws.c's wire (rtm-bench-raw), no tokens\n"
            "  --url2 URL       a second node: half the subscribers, every pair's second end, half the idle\n"
            "  --pid2 PID       the second node's process (its CPU is reported beside the first's)\n"
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
    b.threads = 1;
    b.inflight = 256;
    for (int i = 1; i < argc; i++) {
        int r = tool_conn_arg(&b.tc, &i, argc, argv, prog);
        if (r < 0) return RTM_EXIT_USAGE;
        if (r) continue;
        static const struct {
            const char *name;
            size_t off;
            long min;
        } flags[] = {
            {"--subs", offsetof(struct bench, subs), 1},       {"--pubs", offsetof(struct bench, pubs), 1},
            {"--msgs", offsetof(struct bench, msgs), 1},       {"--size", offsetof(struct bench, size), 16},
            {"--rate", offsetof(struct bench, rate), 0},       {"--pairs", offsetof(struct bench, pairs), 1},
            {"--conns", offsetof(struct bench, conns), 1},     {"--window", offsetof(struct bench, window), 1},
            {"--idle", offsetof(struct bench, idle), 0},       {"--seconds", offsetof(struct bench, seconds), 1},
            {"--threads", offsetof(struct bench, threads), 1}, {"--inflight", offsetof(struct bench, inflight), 1},
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
        } else if (!strcmp(argv[i], "--pid2") && i + 1 < argc) {
            b.pid2 = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--server") && i + 1 < argc) {
            b.server = argv[++i];
        } else if (!strcmp(argv[i], "--url2") && i + 1 < argc) {
            b.url2 = argv[++i];
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
    if (b.server && strcmp(b.server, "rtmd") && strcmp(b.server, "raw")) {
        fprintf(stderr, "%s: --server is rtmd or raw\n", prog);
        return RTM_EXIT_USAGE;
    }
    b.wire = b.server && !strcmp(b.server, "raw") ? WIRE_RAW : WIRE_RTM;
    if (b.size > 60000) {
        fprintf(stderr, "%s: --size must fit in a frame (at most 60000)\n", prog);
        return RTM_EXIT_USAGE;
    }
    if (b.threads > MAX_THREADS) b.threads = MAX_THREADS;
    if (b.threads > b.pairs && !strcmp(b.mode, "pairs")) b.threads = b.pairs;
    if (b.msgs < 0) b.msgs = !strcmp(b.mode, "fanout") ? 2000 : 100;
    if (!b.tc.url) {
        fprintf(stderr, "%s: no server URL (--url or RTM_URL)\n", prog);
        return RTM_EXIT_USAGE;
    }
    if (target_parse(&b.tgt[0], b.tc.url) || (b.url2 && target_parse(&b.tgt[1], b.url2))) return RTM_EXIT_USAGE;
    b.ntgt = b.url2 ? 2 : 1;
    tool_install_signals();
    int rc = !strcmp(b.mode, "fanout") ? run_fanout(&b) : !strcmp(b.mode, "pairs") ? run_pairs(&b) : run_connect(&b);
    if (b.wk && __atomic_load_n(&b.phase, __ATOMIC_ACQUIRE) != PHASE_STOP) run_end(&b);
    run_free(&b);
    return rc;
}

/* rawws.c: rtm-bench-raw, a raw epoll WebSocket relay, the baseline `make
 * bench` measures rtmd against in the same run (issue 14). It is what a
 * broker costs with nothing of a broker's: no JSON, no auth, no limits
 * beyond memory bounds; never part of rtmd.
 *
 * Design: one thread, one level-triggered epoll, every socket non-blocking.
 * A frame is read, unmasked in place and relayed at once: its outgoing copy
 * (header + payload, unmasked) is built once and appended to each
 * recipient's output buffer; the buffers written to during one epoll batch
 * are written out at its end, one write() per connection however many
 * frames it got (what a socket does not take waits for EPOLLOUT). That is
 * the write coalescing every serious server does (redis before it sleeps),
 * so the baseline is a fair one, not a syscall per delivery.
 *
 * The raw wire (bench/README.md; `rtm bench --server raw` speaks it):
 *   upgrade  GET /?id=N registers the connection as recipient N (0 <= N <
 *            MAX_ID; a later one with the same N replaces it), GET /?sub=1
 *            joins the one fan-out group, both may be given, neither makes
 *            an idle connection.
 *   frames   text or binary, payload first byte:
 *            'd' "d<N> ..." : the whole payload goes to recipient N
 *                           (dropped, counted, when there is none);
 *            'f' "f..."     : the whole payload goes to every member of the
 *                           fan-out group but the sender;
 *            anything else is ignored. Pings are answered, a close is echoed.
 * Bounds: MAX_CONNS connections (more are closed at accept), frames up to
 * MAX_FRAME bytes (a bigger one closes the connection), a request head up to
 * MAX_HEAD, a backlog of MAX_BACKLOG bytes per connection (past it the
 * connection is closed: a slow consumer). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../sdk-c/tool/wsframe.h"

#define MAX_CONNS 65536
#define MAX_ID (1 << 20)
#define MAX_FRAME (128 * 1024)
#define MAX_HEAD 8192
#define MAX_BACKLOG (8u << 20)
#define READ_BUF (256 * 1024)

/* One per accepted socket, owned by the loop; freed at close. */
struct rconn {
    int fd;
    int open;       /* upgraded */
    int id;         /* recipient id, -1 for none */
    int sub_slot;   /* index in subs[], -1 when not a member */
    char *rx;       /* unparsed bytes kept between reads (head or partial frame) */
    size_t rx_len;
    char *tx;       /* backlog: bytes write() did not take */
    size_t tx_len, tx_cap;
    int want_out;
    int dead;             /* closed: freed after the current epoll batch */
    int dirty;            /* on the flush list */
    struct rconn *next_dirty;
    struct rconn *next_dead;
};

static int ep;
static struct rconn **by_id;   /* MAX_ID slots */
static struct rconn **subs;    /* the fan-out group */
static int nsubs;
static long nconns, dropped_direct, slow_closed;
static struct rconn *dead_list; /* closed during this epoll batch */
static struct rconn *dirty_list; /* written to during this epoll batch */
static volatile sig_atomic_t stopping;
/* A read lands behind the bytes kept from the last one: a request head (at
 * most MAX_HEAD) or a partial frame (at most its 14-byte header and mask
 * plus MAX_FRAME - 1 bytes), and the head is NUL-terminated in place. */
static char rbuf[READ_BUF + MAX_FRAME + 16];
static unsigned char obuf[MAX_FRAME + 16];

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void set_events(struct rconn *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    c->want_out = out;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Closes at once; the memory waits for the end of the epoll batch, which
 * may still name c (a relay can close a recipient whose event is pending). */
static void conn_close(struct rconn *c)
{
    if (c->dead) return;
    c->dead = 1;
    if (c->id >= 0 && by_id[c->id] == c) by_id[c->id] = NULL;
    if (c->sub_slot >= 0) { /* swap-remove from the group */
        struct rconn *last = subs[--nsubs];
        subs[c->sub_slot] = last;
        last->sub_slot = c->sub_slot;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->next_dead = dead_list;
    dead_list = c;
    nconns--;
}

static void free_dead(void)
{
    while (dead_list) {
        struct rconn *c = dead_list;
        dead_list = c->next_dead;
        free(c->rx);
        free(c->tx);
        free(c);
    }
}

/* Appends n bytes to c's output, written at the end of the epoll batch;
 * -1 when c is over its backlog bound (the caller closes it). */
static int conn_write(struct rconn *c, const void *p, size_t n)
{
    if (ws_out_append(&c->tx, &c->tx_len, &c->tx_cap, p, n, MAX_BACKLOG)) return -1;
    if (!c->dirty && !c->want_out) {
        c->dirty = 1;
        c->next_dirty = dirty_list;
        dirty_list = c;
    }
    return 0;
}

/* One write of what c holds; what the socket does not take waits for EPOLLOUT. */
static void conn_flush(struct rconn *c)
{
    ssize_t w = write(c->fd, c->tx, c->tx_len);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(c);
        return;
    }
    if (w > 0) {
        memmove(c->tx, c->tx + w, c->tx_len - (size_t)w);
        c->tx_len -= (size_t)w;
    }
    if (c->tx_len && !c->want_out) set_events(c, 1);
    else if (!c->tx_len && c->want_out) set_events(c, 0);
}

static void flush_dirty(void)
{
    while (dirty_list) {
        struct rconn *c = dirty_list;
        dirty_list = c->next_dirty;
        c->dirty = 0;
        if (!c->dead && c->tx_len && !c->want_out) conn_flush(c);
    }
}

/* A server frame (never masked) in obuf; returns its length. */
static size_t frame_out(int opcode, const void *p, size_t n)
{
    size_t h = ws_frame_head(obuf, opcode, n, NULL);
    memmove(obuf + h, p, n);
    return h + n;
}

/* Relays one data frame's payload; a recipient over its backlog is closed
 * (never the sender, which the caller still uses). */
static void relay(struct rconn *from, const char *p, size_t n)
{
    if (n > 1 && p[0] == 'd') {
        long id = strtol(p + 1, NULL, 10);
        struct rconn *to = id >= 0 && id < MAX_ID ? by_id[id] : NULL;
        if (!to || !to->open) {
            dropped_direct++;
            return;
        }
        size_t len = frame_out(1, p, n);
        if (conn_write(to, obuf, len) && to != from) {
            slow_closed++;
            conn_close(to);
        }
    } else if (n > 0 && p[0] == 'f') {
        size_t len = frame_out(1, p, n);
        for (int i = 0; i < nsubs; i++) {
            struct rconn *to = subs[i];
            if (to == from) continue;
            if (conn_write(to, obuf, len)) {
                slow_closed++;
                conn_close(to); /* subs[i] is now another member: look at it again */
                i--;
            }
        }
    }
}

static int query_int(const char *line, const char *name, int *out)
{
    const char *q = strchr(line, '?');
    size_t nl = strlen(name);
    for (const char *p = q; p && *p && *p != ' '; p++)
        if ((*p == '?' || *p == '&') && !strncmp(p + 1, name, nl) && p[1 + nl] == '=') {
            *out = atoi(p + 2 + nl);
            return 1;
        }
    return 0;
}

/* The request head is whole in h (NUL-terminated): answer 101 or close. */
static int upgrade(struct rconn *c, char *h)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char *k = NULL;
    for (char *line = strstr(h, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        if (!strncasecmp(line + 2, "Sec-WebSocket-Key:", 18)) {
            k = line + 20;
            break;
        }
    if (strncmp(h, "GET ", 4) || !k) return -1;
    while (*k == ' ') k++;
    size_t kl = strcspn(k, "\r\n ");
    if (kl == 0 || kl > 64) return -1;
    char cat[128];
    unsigned char sha[SHA_DIGEST_LENGTH];
    unsigned char acc[64];
    memcpy(cat, k, kl);
    memcpy(cat + kl, guid, sizeof guid - 1);
    SHA1((unsigned char *)cat, kl + sizeof guid - 1, sha);
    EVP_EncodeBlock(acc, sha, SHA_DIGEST_LENGTH);
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     (char *)acc);
    int id = -1, sub = 0;
    char *eol = strstr(h, "\r\n");
    *eol = '\0'; /* the request line only */
    if (query_int(h, "id", &id) && (id < 0 || id >= MAX_ID)) return -1;
    query_int(h, "sub", &sub);
    if (conn_write(c, resp, (size_t)n)) return -1;
    c->open = 1;
    if (id >= 0) {
        if (by_id[id]) by_id[id]->id = -1;
        by_id[id] = c;
        c->id = id;
    }
    if (sub) {
        c->sub_slot = nsubs;
        subs[nsubs++] = c;
    }
    return 0;
}

/* Parses whole frames from p[0..n); returns the bytes used, -1 to close. */
static long frames_in(struct rconn *c, char *p, size_t n)
{
    size_t at = 0;
    struct ws_frame f;
    int r;
    while ((r = ws_frame_take((unsigned char *)p + at, n - at, MAX_FRAME, &f)) == 1) {
        char *pl = p + at + f.payload_at;
        at += f.total;
        if (f.opcode == 0x1 || f.opcode == 0x2) {
            relay(c, pl, (size_t)f.len);
        } else if (f.opcode == 0x8) {
            /* echoed before the caller closes c: written now, not at the
             * batch's end (a closed connection's output is never flushed) */
            size_t o = frame_out(0x8, pl, f.len > 2 ? 2 : (size_t)f.len);
            if (conn_write(c, obuf, o) == 0) conn_flush(c);
            return -1;
        } else if (f.opcode == 0x9) {
            size_t o = frame_out(0xA, pl, (size_t)f.len);
            if (conn_write(c, obuf, o)) return -1;
        }
    }
    return r < 0 ? -1 : (long)at;
}

static void conn_read(struct rconn *c)
{
    size_t have = c->rx_len;
    if (have) memcpy(rbuf, c->rx, have);
    ssize_t r = read(c->fd, rbuf + have, sizeof rbuf - 1 - have);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (r < 0) return;
    size_t n = have + (size_t)r;
    long used = 0;
    if (!c->open) {
        rbuf[n] = '\0';
        char *end = strstr(rbuf, "\r\n\r\n");
        if (!end) {
            if (n > MAX_HEAD) {
                conn_close(c);
                return;
            }
        } else {
            end[2] = '\0';
            if (upgrade(c, rbuf)) {
                conn_close(c);
                return;
            }
            used = end + 4 - rbuf;
        }
    }
    if (c->open) {
        long f = frames_in(c, rbuf + used, n - (size_t)used);
        if (f < 0) {
            conn_close(c);
            return;
        }
        used += f;
    }
    size_t rest = n - (size_t)used;
    if (rest) {
        char *t = realloc(c->rx, rest);
        if (!t) {
            conn_close(c);
            return;
        }
        memcpy(t, rbuf + used, rest);
        c->rx = t;
    }
    c->rx_len = rest;
}

static void do_accept(int lfd)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        struct rconn *c = calloc(1, sizeof *c);
        if (!c || nconns >= MAX_CONNS) {
            free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->id = -1;
        c->sub_slot = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
            close(fd);
            free(c);
            continue;
        }
        nconns++;
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else {
            fprintf(stderr,
                    "usage: rtm-bench-raw [--host 127.0.0.1] [--port P]\n"
                    "A raw epoll WebSocket relay for `make bench` (bench/README.md): no JSON, no auth.\n"
                    "Prints the port it listens on; runs until SIGTERM or SIGINT.\n");
            return 2;
        }
    }
    by_id = calloc(MAX_ID, sizeof *by_id);
    subs = calloc(MAX_CONNS, sizeof *subs);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!by_id || !subs || lfd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "rtm-bench-raw: setup failed\n");
        return 1;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        perror("rtm-bench-raw: listen");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    printf("rtm-bench-raw: listening on %s:%d\n", host, ntohs(a.sin_port));
    fflush(stdout);
    struct epoll_event evs[256];
    while (!stopping) {
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            struct rconn *c = evs[i].data.ptr;
            if (!c) {
                do_accept(lfd);
                continue;
            }
            if (!c->dead && (evs[i].events & EPOLLOUT)) conn_flush(c);
            if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) conn_read(c);
        }
        flush_dirty();
        free_dead();
    }
    fprintf(stderr, "rtm-bench-raw: stopping: %ld connections, %ld directs without a recipient, %ld slow consumers closed\n",
            nconns, dropped_direct, slow_closed);
    return 0;
}

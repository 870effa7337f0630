/* wsgen.c: the load generator's WebSocket client engine (wsgen.h): epoll,
 * level-triggered, non-blocking sockets; a read takes whatever the socket
 * holds (often many frames) and every whole frame in it is handed over in
 * place; a send is one write() unless the socket is backed up. */
#define _GNU_SOURCE
#include "wsgen.h"
#include "wsframe.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SZ (256 * 1024)

static void set_out(struct wsg_conn *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    c->want_out = out;
    epoll_ctl(c->t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_end(struct wsg_conn *c, int notify)
{
    if (c->state == WSG_CLOSED || c->state == WSG_IDLE) return;
    epoll_ctl(c->t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    free(c->rx);
    free(c->tx);
    c->rx = c->tx = NULL;
    c->rx_len = c->tx_len = c->tx_cap = 0;
    c->state = WSG_CLOSED;
    if (notify && c->t->ops->closed) c->t->ops->closed(c);
}

/* Queues bytes behind the backlog; -1 past its bound. */
static int queue(struct wsg_conn *c, const void *p, size_t n)
{
    if (ws_out_append(&c->tx, &c->tx_len, &c->tx_cap, p, n, WSG_MAX_BACKLOG)) return -1;
    if (!c->want_out) set_out(c, 1);
    return 0;
}

static void flush(struct wsg_conn *c)
{
    if (c->state == WSG_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) || err) {
            conn_end(c, 1);
            return;
        }
        c->state = WSG_UPGRADING;
    }
    ssize_t w = c->tx_len ? write(c->fd, c->tx, c->tx_len) : 0;
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        conn_end(c, 1);
        return;
    }
    if (w > 0) {
        memmove(c->tx, c->tx + w, c->tx_len - (size_t)w);
        c->tx_len -= (size_t)w;
    }
    if (!c->tx_len) set_out(c, 0);
}

int wsg_send_text(struct wsg_conn *c, const char *p, size_t n)
{
    if (c->state != WSG_OPEN || n > WSG_MAX_FRAME) return -1;
    unsigned char *f = c->t->out, m[4];
    memcpy(m, &c->mask, 4);
    size_t h = ws_frame_head(f, 0x1, n, m);
    for (size_t i = 0; i < n; i++) f[h + i] = (unsigned char)p[i] ^ m[i & 3];
    size_t len = h + n, done = 0;
    if (!c->tx_len) {
        ssize_t w = write(c->fd, f, len);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_end(c, 1);
            return -1;
        }
        done = w > 0 ? (size_t)w : 0;
        if (done == len) return 0;
    }
    return queue(c, f + done, len - done);
}

static void send_control(struct wsg_conn *c, int opcode, const unsigned char *p, size_t n)
{
    unsigned char f[14 + 125], m[4];
    if (n > 125) n = 125;
    memcpy(m, &c->mask, 4);
    size_t h = ws_frame_head(f, opcode, n, m);
    for (size_t i = 0; i < n; i++) f[h + i] = p[i] ^ m[i & 3];
    if (c->tx_len) {
        queue(c, f, h + n);
        return;
    }
    /* A socket full to the brim takes none of it (EAGAIN): all of it
     * waits; another error shows in the next read, which ends c. */
    ssize_t w = write(c->fd, f, h + n);
    if (w < 0 && errno != EAGAIN && errno != EINTR) return;
    size_t done = w > 0 ? (size_t)w : 0;
    if (done < h + n) queue(c, f + done, h + n - done);
}

/* Whole frames from p[0..n): returns the bytes used, -1 when c ended. */
static long frames(struct wsg_conn *c, char *p, size_t n)
{
    size_t at = 0;
    struct ws_frame f;
    int r;
    while ((r = ws_frame_take((unsigned char *)p + at, n - at, WSG_MAX_FRAME, &f)) == 1) {
        char *pl = p + at + f.payload_at;
        at += f.total;
        if (f.opcode == 0x1 || f.opcode == 0x2) {
            if (c->t->ops->frame) c->t->ops->frame(c, pl, (size_t)f.len);
            if (c->state != WSG_OPEN) return -1;
        } else if (f.opcode == 0x8) {
            c->close_code = f.len >= 2 ? (unsigned char)pl[0] << 8 | (unsigned char)pl[1] : 1005;
            send_control(c, 0x8, (unsigned char *)pl, f.len >= 2 ? 2 : 0);
            conn_end(c, 1);
            return -1;
        } else if (f.opcode == 0x9) {
            send_control(c, 0xA, (unsigned char *)pl, (size_t)f.len);
        }
    }
    if (r < 0) {
        conn_end(c, 1);
        return -1;
    }
    return (long)at;
}

static void on_read(struct wsg_conn *c)
{
    struct wsg_thread *t = c->t;
    size_t have = c->rx_len;
    if (have) memcpy(t->buf, c->rx, have);
    ssize_t r = read(c->fd, t->buf + have, READ_SZ);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_end(c, 1);
        return;
    }
    if (r < 0) return;
    size_t n = have + (size_t)r, used = 0;
    if (c->state == WSG_UPGRADING) {
        t->buf[n] = '\0';
        char *end = strstr(t->buf, "\r\n\r\n");
        if (!end) {
            if (n > 16384) conn_end(c, 1);
            goto keep;
        }
        if (strncmp(t->buf, "HTTP/1.1 101", 12)) {
            c->close_code = atoi(t->buf + 9); /* the HTTP status */
            conn_end(c, 1);
            return;
        }
        used = (size_t)(end + 4 - t->buf);
        c->state = WSG_OPEN;
        if (t->ops->open) t->ops->open(c);
        if (c->state != WSG_OPEN) return;
    }
    if (c->state == WSG_OPEN) {
        long f = frames(c, t->buf + used, n - used);
        if (f < 0) return;
        used += (size_t)f;
    }
keep:
    if (c->state == WSG_CLOSED) return;
    if (n - used) {
        char *k = realloc(c->rx, n - used);
        if (!k) {
            conn_end(c, 1);
            return;
        }
        memcpy(k, t->buf + used, n - used);
        c->rx = k;
    }
    c->rx_len = n - used;
}

int wsg_connect(struct wsg_thread *t, struct wsg_conn *c, const struct sockaddr_in *addr, const char *host,
                const char *path)
{
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, host);
    if (n < 0 || (size_t)n >= sizeof req) return -1;
    memset(c, 0, sizeof *c);
    c->t = t;
    c->close_code = 1006;
    /* a mask per connection (RFC 6455 wants one per frame from a strong
     * source: against proxies, not needed on loopback) */
    c->mask = (uint32_t)((uintptr_t)c * 2654435761u) | 0x01010101u;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) && errno != EINPROGRESS) goto fail;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev)) goto fail;
    c->want_out = 1;
    c->state = WSG_CONNECTING;
    if (queue(c, req, (size_t)n)) {
        conn_end(c, 0);
        return -1;
    }
    return 0;
fail:
    close(c->fd);
    c->fd = -1;
    return -1;
}

int wsg_thread_init(struct wsg_thread *t, int idx, const struct wsg_ops *ops, void *ud, int wait_ms)
{
    memset(t, 0, sizeof *t);
    t->idx = idx;
    t->ops = ops;
    t->ud = ud;
    t->wait_ms = wait_ms;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->buf = malloc(READ_SZ + WSG_MAX_FRAME + 16);
    t->out = malloc(WSG_MAX_FRAME + 16);
    if (t->ep < 0 || !t->buf || !t->out) return -1;
    return 0;
}

static void *thread_main(void *arg)
{
    struct wsg_thread *t = arg;
    struct epoll_event evs[512];
    while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
        int n = epoll_wait(t->ep, evs, 512, t->wait_ms);
        for (int i = 0; i < n; i++) {
            struct wsg_conn *c = evs[i].data.ptr;
            /* a callback earlier in this batch may have ended c */
            if (c->state != WSG_CLOSED && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
                (c->want_out || c->state == WSG_CONNECTING))
                flush(c);
            if ((c->state == WSG_UPGRADING || c->state == WSG_OPEN) && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_read(c);
        }
        if (t->ops->tick) t->ops->tick(t);
    }
    return NULL;
}

int wsg_thread_start(struct wsg_thread *t) { return pthread_create(&t->th, NULL, thread_main, t) ? -1 : 0; }

void wsg_thread_join(struct wsg_thread *t)
{
    __atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
    pthread_join(t->th, NULL);
}

void wsg_close(struct wsg_conn *c) { conn_end(c, 0); }

void wsg_thread_free(struct wsg_thread *t)
{
    if (t->ep >= 0) close(t->ep);
    free(t->buf);
    free(t->out);
    t->buf = NULL;
    t->out = NULL;
    t->ep = -1;
}

/* wsgen.h: the load generator's WebSocket client engine (`rtm bench`): each
 * generator thread owns one epoll and its share of the connections; a
 * connection is a socket, an upgrade, and frames parsed where they were read.
 *
 * Why not librtm: a benchmark's generator must cost far less per event than
 * the servers it measures, and the same for each of them (rtmd and the raw
 * relay, bench/rawws.c, in one run). librtm on lws parses every frame byte by
 * byte and every frame it does not pass raw as JSON: in fan-out it saturated
 * its core before rtmd did. Here a delivery costs a share of one read() and a
 * header parse; what the frames mean is the caller's (bench.c). */
#ifndef RTM_WSGEN_H
#define RTM_WSGEN_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define WSG_MAX_FRAME (128 * 1024) /* a bigger server frame closes the connection */
#define WSG_MAX_BACKLOG (4u << 20) /* unsent bytes per connection; past it a send fails */

enum { WSG_IDLE, WSG_CONNECTING, WSG_UPGRADING, WSG_OPEN, WSG_CLOSED };

struct wsg_thread;

/* One per client connection, embedded in the caller's struct; lives as long
 * as its thread. Touched only by its thread once that thread runs. */
struct wsg_conn {
    int fd;
    int state;
    int want_out;
    int close_code; /* from the server's close frame; 1006 when none */
    uint32_t mask;
    struct wsg_thread *t;
    char *rx; /* a partial frame (or response head) kept between reads */
    size_t rx_len;
    char *tx; /* bytes the socket did not take */
    size_t tx_len, tx_cap;
};

/* What happens on a thread's connections; each called on that thread. */
struct wsg_ops {
    void (*open)(struct wsg_conn *c);                            /* 101 received */
    void (*frame)(struct wsg_conn *c, char *payload, size_t len); /* a text or binary frame */
    void (*closed)(struct wsg_conn *c);                          /* once; state is WSG_CLOSED */
    void (*tick)(struct wsg_thread *t);                          /* after every loop turn */
};

/* One per generator thread, owned by the caller. */
struct wsg_thread {
    int ep;
    int idx;
    const struct wsg_ops *ops;
    void *ud;
    int stop; /* set (atomically) by another thread to end wsg_thread_start's loop */
    int wait_ms; /* epoll_wait bound: the pacing granularity */
    pthread_t th;
    char *buf;      /* read buffer */
    unsigned char *out; /* frame scratch */
};

/* 0 or -1. */
int wsg_thread_init(struct wsg_thread *t, int idx, const struct wsg_ops *ops, void *ud, int wait_ms);
/* Runs the loop on a new thread until t->stop; 0 or -1. */
int wsg_thread_start(struct wsg_thread *t);
void wsg_thread_join(struct wsg_thread *t);
/* Frees the thread's epoll and buffers (its connections closed first). */
void wsg_thread_free(struct wsg_thread *t);
/* Closes c now, without the closed callback; on its thread or after it ended. */
void wsg_close(struct wsg_conn *c);

/* Starts a non-blocking connect to addr and queues the upgrade request
 * (GET `path`, copied). On t's thread, or before it starts. 0 or -1 (then
 * nothing is left open and no callback fires). */
int wsg_connect(struct wsg_thread *t, struct wsg_conn *c, const struct sockaddr_in *addr, const char *host,
                const char *path);
/* One text frame, masked; written at once, or queued behind what is
 * waiting. 0, or -1 when the connection is not open or its backlog full. */
int wsg_send_text(struct wsg_conn *c, const char *p, size_t n);
/* Bytes queued but not yet taken by the socket. */
static inline size_t wsg_backlog(const struct wsg_conn *c) { return c->tx_len; }

#endif

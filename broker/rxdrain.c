/* rxdrain.c: reads more of a busy connection's input before the loop turn's
 * writes, so a burst (a publisher's messages in flight) goes out to each
 * recipient in one write instead of one write per read.
 *
 * Why: lws 4.1.6 reads at most the protocol's rx_buffer_size (+ LWS_PRE:
 * 528 bytes for rtm.v1) per connection per poll event
 * (roles/ws/ops-ws.c rops_handle_POLLIN_ws), and rtm.v1 keeps that small
 * for the RSS of idle sessions (conn.c RX_CHUNK). A publisher with 16
 * frames of 256 bytes in flight was read 1.7 frames per loop turn, and every
 * subscriber then got 1.7 frames per write (one sendto per 1.7 deliveries).
 *
 * How: a session whose input this turn filled most of a read (two frames or
 * more, or RX_CHUNK bytes) is noted; when the turn ends (the loop's
 * ev_prepare, before it waits for events again) each noted session is
 * serviced again with lws_service_fd(POLLIN), as the loop would on its next
 * turn, until a read brings nothing (at most one empty recv() per noted
 * session) or its budget is spent. The frames it brings are written right
 * after, one write per recipient (conn.c conn_flush_turn). A session that sends a
 * frame at a time (a direct, a pair's round trip) is never noted and costs
 * nothing more.
 *
 * Bounds: BRK_RXD_MAX sessions per turn (more are read on later turns, as
 * before), RXD_BYTES wire bytes per session per turn. */
#include "internal.h"

#include <poll.h>

#define RXD_BYTES (64 * 1024) /* wire bytes read again per session per turn, about */

/* Frame bytes on the wire for a piece of len payload bytes (masked client
 * frame); an estimate is enough: it only decides whether to read again. */
static size_t wire_len(size_t len) { return len + (len < 126 ? 6 : len < 65536 ? 8 : 14); }

void rxdrain_seen(struct brk_session *s, size_t len, size_t full)
{
    struct brk_rxdrain *d = &s->b->rxd;
    if (d->cur != s) {
        d->cur = s;
        d->cur_bytes = d->cur_frames = 0;
    }
    d->cur_bytes += wire_len(len);
    d->cur_frames++;
    if (s->rx_hot || d->draining || d->n >= BRK_RXD_MAX) return;
    if (d->cur_frames < 2 && d->cur_bytes < full) return;
    s->rx_hot = 1;
    d->hot[d->n++] = s;
}

void rxdrain_forget(struct brk_session *s)
{
    if (!s->rx_hot) return;
    struct brk_rxdrain *d = &s->b->rxd;
    s->rx_hot = 0;
    for (int i = 0; i < d->n; i++)
        if (d->hot[i] == s) d->hot[i] = NULL;
    if (d->cur == s) d->cur = NULL;
}

/* One more read of s's socket, as the loop's own POLLIN would do it;
 * returns the wire bytes it delivered (0: nothing came, or s is gone). */
static size_t read_again(struct brk_broker *b, struct brk_session *s)
{
    struct brk_rxdrain *d = &b->rxd;
    struct lws_pollfd pfd = {0};
    pfd.fd = lws_get_socket_fd(s->wsi);
    if (pfd.fd < 0) return 0;
    pfd.events = pfd.revents = LWS_POLLIN;
    d->cur = s;
    d->cur_bytes = d->cur_frames = 0;
    lws_service_fd(b->ctx, &pfd);
    /* s may have closed in there (CLOSED called rxdrain_forget) */
    return d->cur == s ? d->cur_bytes : 0;
}

void rxdrain_run(struct brk_broker *b)
{
    struct brk_rxdrain *d = &b->rxd;
    d->draining = 1;
    for (int i = 0; i < d->n; i++) {
        struct brk_session *s;
        size_t got = 0;
        while ((s = d->hot[i]) && s->state == SESS_OPEN && !s->rx_paused && s->wsi && got < RXD_BYTES) {
            size_t n = read_again(b, s);
            if (!n) break;
            got += n;
        }
        if ((s = d->hot[i])) s->rx_hot = 0;
        d->hot[i] = NULL;
    }
    d->n = 0;
    d->cur = NULL;
    d->draining = 0;
}

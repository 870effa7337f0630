/* rtm_internal.h: librtm's private structures, shared by its modules.
 *
 *   options.c   rtm_options and rtm_status_str
 *   client.c    the session lifecycle: connect, lws callbacks, reconnect, free
 *   loop.c      the client's own event loop (libev under lws) and its timers
 *   frames.c    outbound queue and requests, inbound frame dispatch
 *   members.c   per-channel member lists and their reconciliation
 *   http.c      a blocking HTTP client on a private lws context
 *   mint.c      local token signing and the mint API call
 *
 * Ownership: an rtm_client owns everything reachable from it; every
 * struct here exists only inside one client, on its loop thread. */
#ifndef RTM_INTERNAL_H
#define RTM_INTERNAL_H

#include "rtm.h"

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>

/* Everything declared below stays inside librtm.so (rtm.h, included above,
 * is the only exported interface). */
#pragma GCC visibility push(hidden)

#define RTM_DEFAULT_QUEUE_FRAMES 1024
#define RTM_DEFAULT_QUEUE_BYTES (4u << 20)
#define RTM_DEFAULT_TIMEOUT_MS 10000
#define RTM_DEFAULT_PING_MS 20000
#define RTM_DEFAULT_IDLE_MS 60000
#define RTM_DEFAULT_BACKOFF_MS 500
#define RTM_DEFAULT_BACKOFF_CAP_MS 30000
#define RTM_OVER_CAPACITY_WAIT_MS 30000
#define RTM_RX_MAX (4u << 20)      /* a frame from the broker larger than this closes with 1009 */
#define RTM_WRITE_BUDGET 64        /* frames per WRITEABLE callback before yielding */
#define RTM_HDR_SPACE (RTM_MAX_TOKEN_LEN + 4096)
#define RTM_QUERY_TOKEN_MAX 1900 /* lws client request line: 2048 bytes in all */

struct rtm_options {
    char *url;
    char *token;
    char *pk;
    char *origin;
    rtm_token_provider_fn provider;
    void *provider_ud;
    struct rtm_callbacks cb;
    void *cb_ud;
    size_t q_frames, q_bytes;
    int timeout_ms, ping_ms, idle_ms, backoff_ms, backoff_cap_ms;
    int sender_metadata;
    int raw_messages;
    int ext;
    int auth_message;     /* RTM_TOKEN_IN_MESSAGE */
    struct lws_context *ctx;
};

enum req_kind { REQ_SUBSCRIBE, REQ_UNSUBSCRIBE, REQ_PUBLISH, REQ_SEND, REQ_REFRESH };

/* One request: queued (outq) until written, then in flight (inflight) until
 * its ack/error/timeout/disconnect. Fire-and-forget requests are freed once written. */
struct req {
    struct req *next;
    enum req_kind kind;
    unsigned char *buf; /* LWS_PRE headroom + JSON */
    size_t len;
    char rid[24];       /* "" = no requestId */
    rtm_done_fn cb;
    void *ud;
    int internal;       /* a subscription replay: no user callback */
    int64_t deadline;   /* monotonic ms; 0 = none */
    char *channel;      /* subscribe/unsubscribe */
};

struct reqlist {
    struct req *head, *tail;
    size_t n, bytes;
};

/* Last seq seen from one sender (extensions). */
struct seqent {
    char *peer;
    uint64_t last;
};
#define RTM_SEQ_PEERS 1024 /* senders tracked; beyond, the oldest is forgotten */

struct member {
    char *peer_id;
    char *metadata; /* JSON text or NULL */
};

/* One per subscribed channel (at most the broker's 100 per connection). */
struct chan {
    struct chan *next;
    char *name;
    int acked;           /* the broker has acknowledged a subscribe at least once */
    int resync;          /* reconnected: the next snapshot replaces the list */
    int awaiting_snapshot; /* subscribe acked: the next presence frame is the snapshot */
    struct member *m;    /* sorted by peer_id */
    size_t n, cap;
};

enum cstate { ST_IDLE, ST_CONNECTING, ST_OPEN, ST_WAITING, ST_STOPPED };

struct rtm_client;
typedef void (*ctimer_fn)(struct rtm_client *c);

/* One of a client's timers (five per client, inside it). On the client's own
 * loop it is a native ev_timer; on an application's lws context, an lws_sul
 * (librtm cannot reach the loop under someone else's context). */
struct ctimer {
    lws_sorted_usec_list_t sul;
    ev_timer w;
    struct rtm_client *c;
    ctimer_fn fn;
};

/* The client's own loop (own_ctx): libev (epoll) with lws's libev plugin on
 * it as a foreign loop. One per client, inside it; see loop.c. */
struct cloop {
    struct ev_loop *ev;
    ev_timer wait_w;    /* bounds one rtm_client_service() wait */
    ev_timer tick_w;    /* wakes lws while its own timeouts matter */
    ev_check forced_w;  /* lws's forced service after every poll */
    ev_prepare prep_w;  /* starts or stops tick_w before every poll */
    void *foreign[1];
    struct lws_protocols protos[2]; /* rtm_lws_protocol() and the end mark */
};

struct rtm_client {
    struct rtm_options o; /* deep copy */
    char *host, *path;    /* from the URL */
    int port, tls;
    struct lws_context *ctx;
    int own_ctx;          /* ctx and loop are ours (no rtm_options_set_lws_context) */
    struct cloop loop;
    struct lws *wsi;
    enum cstate state;
    int connecting;       /* a connect call is in progress (dedups its error callback) */
    int welcomed_once;
    char *peer_id;
    size_t max_msg;
    int attempt;          /* consecutive failed attempts, for the backoff */
    int64_t next_delay_floor; /* ms: at least this long before the next attempt (4010, going_away) */
    int64_t last_rx;      /* monotonic ms of the last frame received */
    int local_close;      /* close code we are sending (4000 idle, 1000 stop) */
    int close_pending;
    int ping_due;
    int stop_requested;
    char *auth_hdr;       /* "Bearer <jwt>" for a long token, until the handshake is sent */
    char *auth_frame;     /* RTM_TOKEN_IN_MESSAGE: {"type":"auth",...}, until written as the first frame */
    /* extensions */
    char *session_id;     /* from the last welcome; offered as &resume= after a drop */
    int64_t resume_until; /* monotonic ms: the broker holds the session until then */
    int64_t resume_window_ms;
    struct seqent *seqs;  /* last direct seq per sender (bounded, RTM_SEQ_PEERS) */
    size_t n_seqs;
    uint64_t seq;
    uint64_t rng;

    struct reqlist outq, inflight;
    struct chan *chans;

    unsigned char *rx;    /* fragment reassembly */
    size_t rx_len, rx_cap;

    /* the peer's close frame, copied in WS_PEER_INITIATED_CLOSE */
    int peer_code;
    char peer_reason[124];

    struct ctimer t_connect, t_ping, t_idle, t_timeout, t_free;
    int timeout_armed;
    int cb_depth;         /* >0 while a user callback runs: free is deferred */
    int free_pending;
    int freeing;
};

/* client.c */
void client_request_write(struct rtm_client *c);
void client_close_local(struct rtm_client *c, int code);
int64_t client_mono_ms(void);
/* The welcome has been handled: open state, backoff reset, pings start. */
void client_welcomed(struct rtm_client *c);
/* Runs a user callback with the depth guard (deferred free). */
#define CB_ENTER(c) ((c)->cb_depth++)
#define CB_LEAVE(c) ((c)->cb_depth--)

/* loop.c: the client's loop and timers; every function on the loop thread
 * but cloop_wake. */
/* Creates the client's own libev loop and lws context (c->ctx). 0 or -1. */
int cloop_open(struct rtm_client *c);
/* Destroys what cloop_open made; never from inside the loop. */
void cloop_close(struct rtm_client *c);
/* One turn of the own loop: waits at most timeout_ms (<= 0: no wait). */
void cloop_run_once(struct rtm_client *c, int timeout_ms);
/* Any thread: makes a waiting cloop_run_once return. */
void cloop_wake(struct rtm_client *c);
/* Arms t to call fn(c) in ms (re-arming moves it); cancel is idempotent. */
void ctimer_set(struct rtm_client *c, struct ctimer *t, ctimer_fn fn, int64_t ms);
void ctimer_cancel(struct rtm_client *c, struct ctimer *t);

/* frames.c */
void req_free(struct req *r);
void reqs_fail_all(struct rtm_client *c, struct reqlist *l, rtm_status st);
void reqs_disconnected(struct rtm_client *c);
void reqs_expire(struct rtm_client *c);
int frames_write(struct rtm_client *c, struct lws *wsi);
void frames_replay_subscriptions(struct rtm_client *c);
int frames_dispatch(struct rtm_client *c, const char *text, size_t len);
int reqs_arm_timeout(struct rtm_client *c);
void seqs_clear(struct rtm_client *c);

/* members.c */
struct chan *chan_find(struct rtm_client *c, const char *name);
struct chan *chan_add(struct rtm_client *c, const char *name);
void chan_remove(struct rtm_client *c, const char *name);
void chans_free(struct rtm_client *c);
/* Applies a presence frame (joined/left arrays) to ch; snapshot = replace.
 * Reports only the real changes through the presence callback. */
void members_apply(struct rtm_client *c, struct chan *ch, json_t *joined, json_t *left, int snapshot);

/* options.c */
int options_copy(struct rtm_options *dst, const struct rtm_options *src);
void options_clear(struct rtm_options *o);

#pragma GCC visibility pop

#endif

/* internal.h: the broker's private state, shared by its files.
 *
 *   brk_broker   one per process (owned by main through brk_create)
 *   brk_session  one per WebSocket connection: lws's per-session data, so lws
 *                allocates and frees it with the connection; everything it
 *                points to is released in session_release()
 *   brk_peer     one per (app, peerId) online; owned by the broker's peers
 *                table, freed when its last session goes
 *   brk_channel  one per (app, channel) with subscribers or pending presence;
 *                owned by the channels table, freed when empty and flushed
 *   brk_msg      one per outbound frame, reference-counted, shared by every
 *                queue that holds it (the last release frees it)
 *
 * Ownership rule: tables borrow their keys from the struct they map to. */
#ifndef BRK_INTERNAL_H
#define BRK_INTERNAL_H

#include "broker.h"
#include "bus.h"
#include "config.h"
#include "htab.h"
#include "protocol.h"
#include "store.h"
#include "timers.h"
#include "token.h"
#include "utf8.h"
#include "wire.h"

#include <libwebsockets.h>
#include <stdint.h>

struct rtm_server;
struct mb;

/* ---- outbound frames ---- */

/* A complete, pre-framed WebSocket text frame: the header sits right before
 * the payload, inside the LWS_PRE headroom, so it is written with the payload
 * in one piece and never rebuilt per recipient. */
struct brk_msg {
    uint32_t refs;
    uint32_t len;   /* payload bytes */
    int64_t t0_ns;  /* with timer: when the work this frame answers began (rtm_mono_ns) */
    uint8_t hdrlen; /* WebSocket header bytes before buf[LWS_PRE] */
    uint8_t timer;  /* 0, or 1 + the histogram (common/metrics.h) that each write of it observes */
    unsigned char buf[];
};

/* Allocates a frame with room for len payload bytes at m->buf + LWS_PRE
 * (refs = 1, header not yet written). NULL on ENOMEM. */
struct brk_msg *msg_alloc(size_t len);
/* Builds a frame from a JSON object (serialized once). refs = 1. */
struct brk_msg *msg_from_json(json_t *obj);
/* Writes the WebSocket header in front of the payload; call once, after the payload. */
void msg_seal(struct brk_msg *m);
static inline const unsigned char *msg_frame(const struct brk_msg *m) { return m->buf + LWS_PRE - m->hdrlen; }
static inline size_t msg_frame_len(const struct brk_msg *m) { return (size_t)m->hdrlen + m->len; }
static inline void msg_ref(struct brk_msg *m) { m->refs++; }
void msg_unref(struct brk_msg *m);
/* Times the frame: every write of it to a socket observes now - t0_ns in the
 * histogram h (once per recipient). Copies of a frame take the timing with
 * msg_time_copy. */
void msg_time(struct brk_msg *m, int h, int64_t t0_ns);
static inline void msg_time_copy(struct brk_msg *to, const struct brk_msg *from)
{
    to->t0_ns = from->t0_ns;
    to->timer = from->timer;
}
/* Observes the timing of a frame just written (no-op for untimed frames). */
void msg_written(const struct brk_msg *m, int64_t now_ns);

#define OUTQ_INLINE 4
/* A bounded FIFO of frame pointers: a few inline slots (no allocation for
 * the common case of a frame or two in flight), spilling to a heap ring that
 * is released as soon as the queue drains. Bounded by bytes (queue-bytes) and
 * by count (OUTQ_MAX_FRAMES). */
#define OUTQ_MAX_FRAMES 65536u
struct outq {
    struct brk_msg **ring; /* inline or heap */
    struct brk_msg *inl[OUTQ_INLINE];
    uint32_t head, count, cap;
    size_t bytes; /* payload + header bytes queued */
};
void outq_init(struct outq *q);
/* 0, or RTM_ELIMIT (count cap) / RTM_ENOMEM; the caller decides to close. Takes a reference. */
int outq_push(struct outq *q, struct brk_msg *m);
struct brk_msg *outq_peek(const struct outq *q, uint32_t i);
/* Drops n frames from the front (releasing them); frees the heap ring when empty. */
void outq_pop(struct outq *q, uint32_t n);
void outq_clear(struct outq *q);

/* ---- sessions ---- */

enum sess_state {
    SESS_NEW = 0,  /* upgraded, not yet verified */
    SESS_AUTH,     /* auth_message.c: upgraded with ?auth=message, waiting for the auth frame */
    SESS_OPEN,     /* welcomed, in the tables */
    SESS_CLOSING,  /* close decided: detached, waiting for WRITEABLE to send the code */
    SESS_HELD,     /* resume.c: a held place, no socket; heap-allocated, in b->places only */
};

struct brk_channel;
struct brk_peer;
struct xwait;
struct brk_xnode;

/* One subscription of a session: value of sess->subs (key: the channel)
 * and of chan->subs (key: the session). One allocation serves both. */
struct brk_sub {
    struct brk_session *s;
    struct brk_channel *ch;
    unsigned include_sender_meta : 1;
    unsigned needs_snapshot : 1; /* subscribed this loop turn: snapshot at the presence flush */
};

struct brk_session {
    struct lws *wsi;
    struct brk_broker *b;
    enum sess_state state;
    int close_code;          /* when SESS_CLOSING (or a reject) */
    /* Static text (the error table's, token.c's, a literal: what sess_close
     * and reject are given), or peer_close_reason after the client's close;
     * NULL = none. A pointer, not a 124-byte copy in every idle session. */
    const char *close_reason;
    unsigned close_now : 1;  /* close without draining the queue (reject, 1003, 1007, 1009, 1013) */
    unsigned attached : 1;   /* in the broker's tables (welcomed, not yet CLOSED) */
    unsigned sent_close : 1; /* the close code is ours */
    unsigned drop : 1;       /* close without a close frame (peer unresponsive) */
    unsigned linger : 1;     /* close frame, then shut the write side and discard input (1003, 1007, 1009) */
    unsigned lingering : 1;  /* the close frame is sent; reading and discarding until the peer closes or LINGER_SEC */
    int peer_close_code;     /* from the client's close frame */
    char *peer_close_reason; /* its reason (at most 123 bytes), malloc'd; NULL when it gave none */

    /* plain HTTP requests on this protocol (the demo token route) */
    char *http_body;
    size_t http_len;

    char sid[40];
    char app[65];
    char remote[64];
    char *origin, *user_agent; /* malloc'd, may be NULL */
    int64_t connected_ms;
    int64_t upgraded_ns;       /* rtm_mono_ns() at ESTABLISHED: the welcome's latency starts there */
    struct rtm_claims claims;  /* owned; claims.sub is the peerId */
    int publishable;           /* connected with ?key=pk_ (expiresAt null) */
    uint64_t kid_hash;         /* auth_kid_hash of the key it authenticated with (4012 on its revocation) */
    struct brk_waiting *waiting; /* conn.c: waiting for the view to know its key; NULL otherwise */
    unsigned perms;

    struct brk_peer *peer;
    struct brk_session *peer_next, *peer_prev; /* the peer's sessions */
    struct brk_session *next, *prev;           /* the broker's sessions */

    struct htab subs; /* brk_channel* -> brk_sub*; empty (no memory) until the first subscribe */
    struct outq q;

    unsigned char *rx;  /* reassembly of a fragmented message; NULL when idle */
    size_t rx_len;

    /* Timers (the loop's one heap, b->timers): a zeroed struct is a disarmed timer. */
    struct rtm_timer expiry_t; /* 4002 at exp; for a held place, the end of the resume window */
    uint64_t frames_in, frames_out, bytes_in, bytes_out;

    /* limits.c: rate bucket, abuse window, read pause, liveness */
    double rate_tokens;
    int64_t rate_last_ms;
    int64_t win_start_ms;  /* current one-second window */
    int win_frames;        /* frames received in it, dropped ones included */
    int hot_windows;       /* consecutive windows over twice the rate */
    struct rtm_timer rx_resume_t; /* reading paused while over the rate */
    unsigned rx_paused : 1;
    unsigned want_ping : 1;
    unsigned rx_hot : 1;   /* rxdrain.c: noted to be read again at the turn's end */
    unsigned tx_dirty : 1; /* conn.c: in b->flush, written at the turn's end */
    int64_t last_rx_ms;    /* monotonic: any frame or pong */
    double snap_tokens;    /* presence snapshot budget, in member entries (limit_snapshot) */
    int64_t snap_last_ms;  /* 0 = budget untouched (full) */
    int64_t ping_sent_ms;  /* 0 = no ping outstanding */
    struct rtm_timer live_t;

    /* protocol extensions (&ext=1; resume.c, refresh.c). A held place is a
     * heap copy of this struct with wsi NULL and state SESS_HELD: its
     * expiry_t is the resume window and q holds the queued directs and
     * presence frames. */
    unsigned ext : 1;
    char rsid[48];            /* the place's id (wire sessionId); "" for core sessions */
    int resume_window_ms;     /* 0 = not resumable */
    struct htab seqs;         /* sender peerId -> struct seq_entry*: direct seq numbers; empty until used */
    struct rtm_timer notice_t; /* token_expiring */
    int64_t held_since_ms;    /* monotonic, when held */
    unsigned presence_lost : 1; /* held: the queue bound dropped a presence frame (snapshots on resume) */
    unsigned moving : 1;        /* held: being handed to another node (xresume.c has its move) */
    unsigned moved : 1;         /* held: handed over; a member until the new node has joined, nothing more */
    unsigned refresh_waiting : 1; /* refresh.c: a refresh waits for the view to know its key */
    struct brk_msg *resume_unsubscribed; /* a resume's "unsubscribed" frame, queued after the welcome */

    struct xwait *xwaits;     /* xnode.c: requests waiting on Redis (cluster mode) */

    /* auth_message.c (?auth=message): what the request head said, kept for
     * the admission when the auth frame comes (lws frees the head) */
    struct rtm_timer auth_t;   /* auth-timeout-ms */
    unsigned unauth_counted : 1;
    char resume_req[48];       /* &resume= of the request, "" when none */
};

struct brk_peer {
    char *key;         /* "app\x1fpeerId", owned; key of b->peers */
    const char *peer_id; /* points into key */
    char app[65];
    char *meta_text;       /* the newest connection's peerMetadata, serialized (compact), owned;
                            * NULL when none. Only the text is kept (no jansson tree: ~300 B
                            * per peer): every direct, presence and publish frame copies it */
    size_t meta_len;
    struct brk_session *sessions;
    int n_sessions;
};

/* One pending presence change of a channel, keyed by peerId. */
struct brk_pending {
    char *peer_id;          /* owned */
    struct brk_peer *peer;  /* joined on this node (single-node mode): the member (alive while it is one) */
    char *meta;             /* joined in cluster mode: its metadata JSON text (owned; NULL: none) */
    size_t mlen;
    unsigned join : 1;      /* 1 joined, 0 left */
};

struct brk_channel {
    char *key;          /* "app\x1fchannel", owned; key of b->channels */
    const char *name;   /* points into key */
    struct htab subs;    /* brk_session* -> brk_sub* */
    struct htab members; /* brk_peer* -> (intptr_t) count of its subscribed sessions */
    struct htab pending; /* peerId -> brk_pending*, changes since the last flush */
    int n_snapshot;      /* subscriptions waiting for a snapshot */
    struct brk_channel *dirty_next;
    int dirty;
    struct xpr_chan *xp; /* cluster mode (xpresence.c): the cluster-wide member table; NULL otherwise */
};

#define BRK_SCRATCH 65536

/* rxdrain.c: sessions whose input this loop turn filled a read */
#define BRK_RXD_MAX 64 /* sessions noted per turn; more wait for the next turns, as without it */
struct brk_rxdrain {
    struct brk_session *hot[BRK_RXD_MAX];
    int n;
    int draining;                /* inside brk_turn_end: nothing more is noted */
    struct brk_session *cur;     /* the session the last input came from ... */
    size_t cur_bytes, cur_frames; /* ... and its wire bytes and frames since */
};

struct brk_broker {
    struct rtm_server *srv;
    const struct rtm_config *cfg;
    struct lws_context *ctx; /* set at PROTOCOL_INIT */
    struct rtm_timers *timers; /* the loop's heap (srv->timers): every broker and session timer */

    struct htab peers;    /* "app\x1fpeerId" -> brk_peer */
    struct htab channels; /* "app\x1fchannel" -> brk_channel */
    struct brk_session *sessions;
    int n_sessions;       /* welcomed and not yet closed */

    struct brk_channel *dirty; /* channels with presence to flush this turn */
    struct rtm_timer presence_t;
    struct rtm_timer snapshot_t; /* re-flushes channels whose snapshots waited for a budget */
    int64_t snapshot_wait_ms;    /* during a presence flush: the shortest wait of a deferred snapshot, or -1 */

    /* sessions waiting for the view to know their key (conn.c), linked by next/prev */
    struct brk_session *waiting;
    int n_waiting;
    /* refreshes waiting for the view to know their key (refresh.c) */
    struct brk_refresh_wait *refresh_waits;
    int n_refresh_waits;

    /* GET /v1/peers for other processes (broker.c): this node's peers written
     * to the store at most every PEERS_SNAPSHOT_MS while something changed */
    struct rtm_timer peers_snapshot_t;
    struct htab peers_snapshot_apps; /* app -> strdup(app): apps whose last snapshot was not empty */

    struct htab conn_ips;     /* remote IP -> struct ip_window (limits.c) */
    struct htab app_conns;    /* app -> struct app_count: live sessions per app, for max-connections-per-app */
    struct rtm_timer ip_prune_t;
    int n_unauth;              /* auth_message.c: sockets waiting for their auth frame */
    struct htab unauth_ips;    /* remote IP -> struct rtm_ipcount (those sockets per address) */
    int unauth_full_logged;
    int ip_table_full_logged;
    int shutting_down;

    struct htab places;       /* rsid -> brk_session (live or held) of resumable extension sessions */
    int n_held;               /* held places: they count toward max-connections */

    struct brk_xnode *xn;     /* xnode.c: cluster mode, NULL without --cluster */

    struct brk_rxdrain rxd;   /* rxdrain.c */
    int turn_end;             /* the loop calls brk_turn_end at each turn's end (rtmd/loop.c) */
    struct brk_session **flush; /* conn.c: sessions with frames to write at the turn's end */
    uint32_t n_flush, cap_flush;

    /* loop-thread scratch: token extraction and write coalescing */
    char *scratch;          /* BRK_SCRATCH bytes */
    unsigned char *wbuf;    /* LWS_PRE + BRK_SCRATCH bytes */
};

/* wire.c: every server frame (refs = 1, or NULL on ENOMEM) */
struct brk_msg *wire_welcome(const struct brk_session *s, int resumed, int presence_reset);
/* message NULL: the error table's default message. */
struct brk_msg *wire_error(enum rtm_wire_err e, const char *message, const char *request_id);
struct brk_msg *wire_ack(const char *request_id);
struct brk_msg *wire_refresh_ack(const char *request_id, int64_t expires_at, const json_t *metadata);
struct brk_msg *wire_going_away(int retry_after_ms);
struct brk_msg *wire_pong(void);
struct brk_msg *wire_token_expiring(int64_t expires_at);
/* Extensions: the subscriptions a refresh or resume ended (the new token no longer allows them). */
struct brk_msg *wire_unsubscribed(struct brk_channel *const *chs, uint32_t n);
/* The channel's pending changes; except: a peerId left out (NULL: none). */
struct brk_msg *wire_presence_delta(const struct brk_channel *ch, const char *except);
/* Every member but self, "left" empty. */
struct brk_msg *wire_presence_snapshot(const struct brk_channel *ch, const struct brk_peer *self);
/* data is raw JSON text, copied as is. The sender's metadata (fromMetadata):
 * a jansson value (a sender on this node; NULL: none), or JSON text when
 * meta_text is given (another node's, through Redis; mlen 0: none). */
struct brk_msg *wire_message(const char *channel, const char *from, const char *data, size_t dlen,
                             const json_t *meta, const char *meta_text, size_t mlen);
struct brk_msg *wire_direct(const char *from, const char *data, size_t dlen, const json_t *meta,
                            const char *meta_text, size_t mlen);
/* A copy of a direct frame with ,"seq":N added (extension receivers). */
struct brk_msg *wire_with_seq(const struct brk_msg *direct, uint32_t seq);
int wire_is_direct(const struct brk_msg *m);
int wire_is_presence(const struct brk_msg *m);

/* The broker's session lists (b->sessions, b->waiting) are linked through
 * next/prev; a session is on one of them at most. */
static inline void sess_list_push(struct brk_session **head, struct brk_session *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}
static inline void sess_list_unlink(struct brk_session **head, struct brk_session *s)
{
    if (s->prev) s->prev->next = s->next;
    else *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* conn.c */
struct brk_broker *broker_of(struct lws *wsi);
/* The view answered a refresh: sessions waiting for their key are admitted or refused. */
void conn_view_refreshed(struct brk_broker *b);
/* Queues a frame to a session (takes its own reference). At the queue's byte
 * bound the session is closed with 1013 instead. Returns 0 or RTM_ELIMIT. */
int sess_enqueue(struct brk_session *s, struct brk_msg *m);
/* Decides to close with the error's close code: detaches the session from
 * every table at once (so it gets no more frames and leaves presence now)
 * and sends the code when the socket is next writable. reason NULL: the
 * table's message; else static text (kept by pointer, at most 123 bytes
 * sent). Idempotent. */
void sess_close(struct brk_session *s, enum rtm_wire_err e, const char *reason);
/* Sends an error frame (message NULL: the table's message). */
void sess_error(struct brk_session *s, enum rtm_wire_err e, const char *message, const char *request_id);
void sess_ack(struct brk_session *s, const char *request_id);
void sess_send_going_away(struct brk_session *s, int retry_after_ms);
/* Once the welcome (or a refresh's ack) is built and the peer holds its
 * peerMetadata text: drops what the token carried only for them (the
 * private metadata, the peerMetadata tree, their texts) and the kid (kept
 * as kid_hash), so an idle session keeps none of it. */
void sess_shed_claims(struct brk_session *s);
/* Arms the 4002 close (and, for extension sessions, token_expiring) for s->claims.exp. */
void sess_arm_expiry(struct brk_session *s);

/* auth.c: the connect path's authentication (loop thread) */
/* The credential: ?token=, ?key= (publishable: *publishable = 1),
 * Authorization: Bearer, else "token.<jwt>" in the subprotocol list.
 * Returns a pointer into b->scratch (valid until its next use), or NULL. */
const char *auth_find_credential(struct brk_broker *b, struct lws *wsi, int *publishable);
/* Verifies a credential against the store's in-memory view: key lookup, key
 * state, and a token's signature, claims and revocation, or a publishable
 * key's claims. 0 with *key (borrowed until the view's next drain) and c
 * filled (the caller frees c); else negative with the error *code (its close
 * code) and *reason (never NULL; c empty). RTM_ENOTFOUND: no such key in the
 * view (yet). */
int auth_connect(struct brk_broker *b, const char *cred, int publishable, const struct rtm_key **key,
                 struct rtm_claims *c, enum rtm_wire_err *code, const char **reason);
/* auth_connect for a secret-key token (in-band refresh). 0 or negative with *reason. */
int auth_verify_token(struct brk_broker *b, const char *token, const struct rtm_key **key, struct rtm_claims *c,
                      const char **reason);
/* A key id's 64-bit hash: what a session keeps to be found when its key is revoked. */
uint64_t auth_kid_hash(const char *kid);
/* 1 when the key has no Origin list, origin is on it, or (secret keys
 * only) no Origin was sent: the list is a browser control. */
int auth_origin_allowed(const struct rtm_key *key, const char *origin);

/* auth_message.c: the ?auth=message connect form */
/* From ESTABLISHED: counts s (bounded overall and per address) and arms its
 * timer; s is then SESS_AUTH. 0, or -1 when s was refused (4010, 1011). */
int authmsg_begin(struct brk_session *s);
/* Uncounts s and cancels its timer (idempotent): from the auth frame or CLOSED. */
void authmsg_end(struct brk_session *s);
/* The first frame of a SESS_AUTH session: the token (malloc'd, the caller
 * frees), or NULL after refusing s (4001 with a reason). Ends the wait. */
char *authmsg_token(struct brk_session *s, const char *text, size_t len);
void authmsg_destroy(struct brk_broker *b);

/* frames.c: one complete inbound text message */
void frame_handle(struct brk_session *s, const char *data, size_t len);
/* Queues msg to every session of p but skip (extension sessions numbered per sender). */
void direct_deliver(struct brk_peer *p, const struct brk_session *skip, const char *from, struct brk_msg *msg);
/* The send scope rule: s and peer `to` share a subscribed channel (on this node). */
int share_channel(struct brk_session *s, struct brk_peer *to);
/* The requestId of a frame read only partly (dropped unparsed, or not
 * valid JSON): a plain top-level string found before anything that is not
 * JSON, copied into out. Its length, or 0 when there is none. */
size_t request_id_peek(const char *text, size_t len, char *out, size_t outlen);

/* channels.c */
/* 0, or -1 with *err set (channel_limit_exceeded, internal_error). */
int chan_subscribe(struct brk_session *s, const char *name, int include_meta, enum rtm_wire_err *err);
void chan_unsubscribe(struct brk_session *s, const char *name);
void chan_unsubscribe_all(struct brk_session *s);
/* Fans a publish out; data is the raw JSON text of the value (copied, never
 * re-encoded); sender NULL means the server ("_server"). Returns recipients or negative. */
int chan_publish(struct brk_broker *b, const char *app, const char *name, struct brk_session *sender,
                 const char *data, size_t dlen);
/* Delivers a message that came through Redis (cluster mode) to this node's
 * subscribers: meta is the sender's peerMetadata as JSON text (mlen 0: none),
 * data raw JSON; the session whose id is skip_sid (NULL: none) is skipped.
 * Returns recipients. */
int chan_deliver(struct brk_broker *b, const char *app, const char *name, const char *skip_sid, const char *from,
                 const char *meta, size_t mlen, const char *data, size_t dlen);
struct brk_channel *chan_find(struct brk_broker *b, const char *app, const char *name);
void presence_flush(struct brk_broker *b);
/* A fresh snapshot of every subscribed channel for s at the next presence
 * flush, as after a subscribe (presence subscribers only). */
void chan_resnapshot(struct brk_session *s);
void channels_destroy(struct brk_broker *b);

/* peers.c */
int peer_attach(struct brk_session *s);
/* The peer's public metadata becomes pm (NULL clears it), kept serialized
 * once for every frame that carries it: text, when not NULL, is pm already
 * serialized (compact; copied), else pm is dumped. */
void peer_set_metadata(struct brk_peer *p, const json_t *pm, const char *text);
/* The peer's metadata as a new jansson value (the caller owns it), or NULL
 * when it has none (or out of memory). For the rare readers (GET /v1/peers). */
json_t *peer_metadata_json(const struct brk_peer *p);
/* wire.c: appends a presence member {"peerId":...,"metadata":<meta>} (no
 * metadata when mlen is 0). */
void mb_member(struct mb *m, const char *peer_id, const char *meta, size_t mlen);
void peer_detach(struct brk_session *s);
struct brk_peer *peer_find(struct brk_broker *b, const char *app, const char *peer_id);
/* "app\x1fname" into out; RTM_EINVAL when it does not fit. */
int join_key(char *out, size_t outlen, const char *app, const char *name);

/* limits.c */
/* 0 to handle the frame; 1 when it is over the rate (dropped: the caller sends
 * over_message_quota); the session may have been marked for 4011. */
int limit_frame(struct brk_session *s);
/* 0 when s may get a presence snapshot of a channel with members entries now
 * (its budget is charged); else 1 and *wait_ms until it may. A snapshot
 * larger than the whole per-second budget is allowed when the budget is full
 * (the debt is repaid over time), so any channel's snapshot comes eventually. */
int limit_snapshot(struct brk_session *s, uint32_t members, int64_t *wait_ms);
/* LWS_CALLBACK_FILTER_NETWORK_CONNECTION: non-zero refuses the TCP connection. */
int limit_accept(struct brk_broker *b, const struct lws_filter_network_conn_args *a);
/* Counts one connect from ip against rate-connects-per-ip-per-minute; 1 when
 * over (logged once per window, saying where: "at accept", ...), else 0. */
int limit_connect_ip(struct brk_broker *b, const char *ip, const char *where);
void limits_destroy(struct brk_broker *b);

/* rxdrain.c: a piece of len payload bytes received by s (an open session);
 * full: the bytes of one lws read. Notes s to be read again when its input
 * this turn looks like a burst. */
void rxdrain_seen(struct brk_session *s, size_t len, size_t full);
/* s closes: forgotten. */
void rxdrain_forget(struct brk_session *s);
/* Reads the noted sessions on (the turn's end). */
void rxdrain_run(struct brk_broker *b);
/* conn.c: the turn's end: sessions with new frames write them. */
void conn_flush_turn(struct brk_broker *b);
void conn_flush_free(struct brk_broker *b);
void live_start(struct brk_session *s);
void live_seen(struct brk_session *s);
void limits_session_end(struct brk_session *s);

/* resume.c: the resume window and per-pair seq (docs/EXTENSIONS.md) */
/* A held or live resumable place of this app and peer with that id, or NULL. */
struct brk_session *resume_find(struct brk_broker *b, const char *rsid, const char *app, const char *peer_id);
/* Moves the place (peer, subscriptions, seq numbers, id) from take into the
 * new session s; s keeps its own (new) claims. 0 or RTM_ENOMEM (nothing moved). */
int resume_take(struct brk_session *s, struct brk_session *take);
/* After the welcome: queued frames to s, then take is freed (held) or closed with 4009 (live). */
void resume_finish(struct brk_session *s, struct brk_session *take);
/* A new resumable session: gives it its id and registers it. 0 or RTM_ENOMEM. */
int resume_register(struct brk_session *s);
/* From CLOSED, while s is still attached: 1 when the place is now held
 * (subscriptions, peer and app count moved to the held copy), else 0 (s
 * unregistered; the caller detaches as usual). */
int resume_on_close(struct brk_session *s);
/* A live place taken by a resume on another node: moved into a held copy
 * (returned, ready to move) and the old socket closed with 4009; NULL when
 * it cannot be held (nothing changed). */
struct brk_session *resume_hold_live(struct brk_session *s);
/* A held place asked to close (kick, replace): discarded on the next loop turn. */
void resume_discard_soon(struct brk_session *s);
/* Ends (as a kick does: discarded on the next loop turn, so presence says
 * the peer left now) every held place for which match(place, arg) is true.
 * For revocations, and anything else that voids a held token (a revoked
 * key). Returns how many. Safe while nothing else walks b->places. */
int resume_end_held(struct brk_broker *b, int (*match)(const struct brk_session *h, void *arg), void *arg);
/* Discards every held place (loop going away). */
void resume_destroy(struct brk_broker *b);
/* Moving a held place to another node (xresume.c). resume_export: the place
 * as JSON text (malloc'd; its subscriptions, seq counters and queued directs,
 * not its presence frames, which the new node replaces with snapshots), or
 * NULL when it is larger than max bytes or memory ran out; *directs its
 * directs. resume_mark_moved: the place leaves b->places and its queue and
 * stays a member only (moved: it takes no frames) until resume_end_moved. */
char *resume_export(struct brk_session *h, size_t max, uint32_t *directs);
void resume_mark_moved(struct brk_session *h);
void resume_end_moved(struct brk_session *h);
/* A new session s (attached, no place yet) takes a place exported by another
 * node: its id, subscriptions (then narrowed to s's token), seq counters.
 * 0, or RTM_EINVAL / RTM_ENOMEM (s keeps what was taken so far; the caller
 * closes it). After the welcome, resume_import_finish queues the narrowing
 * notice and the place's directs. */
int resume_import(struct brk_session *s, const char *rsid, const json_t *place);
void resume_import_finish(struct brk_session *s, const json_t *place);
/* Appends a frame (a direct or a presence frame) to a held place's bounded
 * queue; over the bound the oldest go (counted; a lost presence frame sets
 * presence_lost). Takes its own reference. */
void resume_hold(struct brk_session *h, struct brk_msg *m);
/* A direct to an extension session: numbered for (from, s), queued when held. */
void ext_deliver_direct(struct brk_session *s, const char *from, struct brk_msg *m);
void seq_free(struct brk_session *s);

/* refresh.c */
/* The in-band refresh request (extension sessions only). A token whose key
 * the view does not know yet waits for one fresh poll (answered by
 * ext_refresh_view_answered). */
void ext_refresh(struct brk_session *s, const char *token, const char *request_id);
/* The view answered a refresh: waiting refreshes are decided. */
void ext_refresh_view_answered(struct brk_broker *b);
/* A closing session's waiting refresh is dropped (no answer). */
void ext_refresh_forget(struct brk_session *s);
/* Drops subscriptions the session's claims no longer allow (others see it
 * leave). Returns the "unsubscribed" frame naming them for the client (the
 * caller queues it and drops its reference), or NULL when none ended. */
struct brk_msg *ext_narrow_subs(struct brk_session *s);
/* A session now speaks with s->claims (after a refresh or a resume): takes the
 * claims' permissions and peerMetadata, then drops what they no longer allow. */
struct brk_msg *ext_adopt_claims(struct brk_session *s);
/* Schedules token_expiring for s->claims.exp (extension, token sessions). */
void ext_arm_notice(struct brk_session *s);

/* xnode.c: cluster mode (docs/CLUSTER.md); every call needs b->xn != NULL
 * unless said otherwise. */
/* From brk_create when --cluster is set: parses the setting. 0, or negative with err. */
int xnode_create(struct brk_broker *b, char *err, size_t errlen);
void xnode_start(struct brk_broker *b, struct lws_context *ctx); /* any b */
void xnode_destroy(struct brk_broker *b);                        /* any b; idempotent */
/* The channel got its first subscriber here / lost its last one. */
void xnode_channel_used(struct brk_broker *b, struct brk_channel *ch);
void xnode_channel_unused(struct brk_broker *b, struct brk_channel *ch);
/* The subscribe ack: now, or once Redis confirmed the channel's subscription. */
void xnode_ack_subscribe(struct brk_session *s, const char *channel, const char *rid);
/* Publishes through Redis. With a sender, its ack (or cluster_unavailable)
 * follows when Redis answers, or an error frame now. 0, RTM_EUNAVAILABLE, RTM_ENOMEM. */
int xnode_publish(struct brk_broker *b, const char *app, const char *channel, struct brk_session *sender,
                  const char *data, size_t dlen, const char *rid);
/* Tells every other node (rtm:ctl) to kick app's peer (CLU_CTL_KICK) or to
 * read new revocations from the shared store (CLU_CTL_REVOKED). Best effort:
 * with Redis down it is logged and lost (revocations still arrive with the
 * store). */
void xnode_control(struct brk_broker *b, char kind, const char *app, const char *peer_id);
/* xrest.c: the bus's `ask` (common/bus.h) in cluster mode: op on every node,
 * the result gathered. 0 when done will fire exactly once, or negative. */
int xrest_ask(struct brk_broker *b, enum rtm_bus_op op, const char *app, const char *target, const char *data,
              rtm_bus_done_fn *done, void *done_arg);
void xrest_revoked_here(struct brk_xnode *xn, const struct rtm_revocation *r, int n);
/* The same for a revocation stored and applied here (closed: its sessions here). */
int xrest_ask_revoked(struct brk_broker *b, const struct rtm_revocation *r, int closed, rtm_bus_done_fn *done,
                      void *done_arg);
/* The app's sessions on the other nodes as of the last heartbeat (a soft
 * count for max-connections-per-app; 0 without --cluster; any b). */
int xnode_app_remote(struct brk_broker *b, const char *app);
/* Sets the cluster gauges (left 0 without --cluster; any b). */
void xnode_metrics_gauges(struct brk_broker *b);
/* A send in cluster mode: scope, location and delivery in one Redis script on
 * the recipient's shard; the ack, peer_not_found or cluster_unavailable follows. */
void xnode_send(struct brk_session *s, const char *to, const char *data, size_t dlen, const char *rid,
                int64_t rx_ns);
/* p's location or channels on this node changed (it came, went, joined or
 * left a channel): written to Redis at the next loop turn (any b). */
void xnode_peer_dirty(struct brk_broker *b, const struct brk_peer *p);
/* From CLOSED: the session's waits forget it (any b). */
void xnode_session_closed(struct brk_session *s);
/* xresume.c: resume through another node (docs/CLUSTER.md). From admit:
 * the place s asks for is not here; 0 when other nodes are asked (the
 * admission goes on later in conn_admit_place, with the place or without),
 * -1 when there is nobody to ask (admit at once, resumed: false; any b). */
int xresume_ask(struct brk_session *s, int via_message);
/* A direct for held place h: 0 when h takes it, 1 when h is being moved and
 * the direct is past the cut (the new node gets it instead). */
int xresume_refuses(const struct brk_session *h);
/* Held place h goes (expiry, kick, shutdown) while a move of it may run. */
void xresume_place_gone(struct brk_session *h);

/* conn.c: the rest of an admission after a cross-node resume was asked:
 * place NULL admits a fresh session (resumed: false). Returns 1 when s is
 * open with the place, else 0 (fresh, or refused). */
int conn_admit_place(struct brk_session *s, const char *rsid, const json_t *place, int via_message);

/* xpresence.c: presence across nodes (cluster mode). Local membership
 * changes go to Redis and come back to every node as versioned deltas; each
 * node keeps, per channel with subscribers here, the cluster's member table
 * that its clients' snapshots and deltas come from. */
/* p became, or stopped being, a member of ch on this node: written to Redis
 * at the next loop turn (the join or leave reaches clients from there; while
 * the channel's shard is down a join is shown to this node's clients at once). */
void xpresence_member(struct brk_broker *b, struct brk_channel *ch, const struct brk_peer *p);
/* The channel's cluster table: created when it gets its first subscriber
 * here (fetched once Redis confirmed the subscription: now when confirmed
 * is set), freed when the last one goes. Free takes any ch. */
void xpresence_chan_open(struct brk_broker *b, struct brk_channel *ch, int confirmed);
void xpresence_chan_free(struct brk_channel *ch);
/* 1 once the table has been fetched (snapshots wait until then). */
int xpresence_ready(const struct brk_channel *ch);
uint32_t xpresence_count(const struct brk_channel *ch);
/* A snapshot frame from the table: every member but self. */
struct brk_msg *xpresence_snapshot(const struct brk_channel *ch, const char *self);

/* channels.c, for xpresence.c: a cluster-wide change for the channel's
 * clients at the next presence flush (meta: a join's metadata text, NULL
 * for none), and a flush for snapshots that waited for the table. */
void chan_presence_record(struct brk_broker *b, struct brk_channel *ch, const char *peer_id, const char *meta,
                          size_t mlen, int join);
void chan_presence_ready(struct brk_broker *b, struct brk_channel *ch);

/* broker.c */
/* brk_kick on this node's sessions only (the public one also tells the
 * other nodes in cluster mode). */
int kick_local(struct brk_broker *b, const char *app, const char *peer_id);
/* Another node stored a revocation (cluster mode): the store's view polls now. */
void revocations_local(struct brk_broker *b);
struct app_count {
    char app[65];
    int n;
};
/* Live sessions of an app (0 when none). */
int app_conns_get(struct brk_broker *b, const char *app);
/* +1 / -1; 0 or RTM_ENOMEM. */
int app_conns_add(struct brk_broker *b, const char *app, int delta);
/* Called at PROTOCOL_INIT: the loop exists, timers can be armed. */
void broker_loop_ready(struct brk_broker *b, struct lws_context *ctx);
/* Called at PROTOCOL_DESTROY: cancels the broker's timers; none is armed after. */
void broker_loop_gone(struct brk_broker *b);
/* A session row (open, or closing) for the view's writer thread. */
void rows_add(struct brk_broker *b, const struct brk_session *s, int closing);
/* Peers or subscriptions changed: a presence snapshot for other processes is written soon. */
void presence_changed(struct brk_broker *b);


#endif

/* rtm.h: the C client library for the rtm realtime-messaging broker.
 *
 * One rtm_client is one WebSocket session to a broker that reconnects by
 * itself. The contract follows hiredis and libuv:
 *
 *  - Handles are opaque. An rtm_options is copied by rtm_client_new(), so the
 *    caller may free or reuse it at once.
 *  - Every call returns an rtm_status: RTM_STATUS_OK (0) or a negative
 *    RTM_ERR_*. A call that returns an error never fires its completion
 *    callback; a call that returns RTM_STATUS_OK fires it exactly once, with
 *    RTM_STATUS_OK (ack), RTM_ERR_SERVER (error frame, wire code given),
 *    RTM_ERR_TIMEOUT, RTM_ERR_DISCONNECTED (the socket closed while the
 *    request was in flight) or RTM_ERR_CLOSED (the client was freed or
 *    stopped for good).
 *  - Callbacks never run inside the call that registered them: only from
 *    rtm_client_service() (or the lws_service() of a context you own). Data
 *    handed to a callback is borrowed for the callback's duration.
 *  - rtm_client_free() inside a callback is allowed; the free is deferred
 *    until the callback returns.
 *
 * Threads: every function runs on the thread that services the client
 * (the one calling rtm_client_service(), or lws_service() on your own
 * context), except rtm_client_wake(), which any thread may call, and the
 * minting helpers (rtm_sign_token, rtm_fetch_token, rtm_http_request), which
 * are self-contained and may run on any thread.
 *
 * Tokens: libwebsockets 4.1.6 limits where a token can travel. Its client
 * builds the request line in 2048 bytes (a longer path is cut), and its
 * server refuses a Sec-WebSocket-Protocol list over 127 bytes, so the
 * "token.<jwt>, rtm.v1" subprotocol form cannot carry a real JWT between
 * two lws peers. The library therefore sends a token of at most
 * 1900 bytes as ?token= (the broker redacts it from every log line) and a
 * longer one (large metadata) in an "Authorization: Bearer <jwt>" header of
 * the upgrade request, which has room for RTM_MAX_TOKEN_LEN bytes; the
 * broker must accept that header for such tokens. A publishable key goes
 * in the query (?key=pk_...).
 *
 * Reconnect: exponential backoff from 500 ms, doubling, capped at 30 s, with
 * +-20 % jitter, reset after a welcome. Close codes 4001, 4003, 4012 and 4020
 * are terminal (the close callback gets will_reconnect = 0); 4010 waits at
 * least 30 s; 4002 (token expired) asks the token provider for a new token
 * and reconnects at once. After a reconnect the subscriptions are replayed
 * and each channel's member list is reconciled with the broker's snapshot,
 * so the presence callback sees only real joins and leaves.
 *
 * Liveness: a ping every 20 s; 60 s without any frame closes the socket with
 * 4000 and reconnects.
 *
 * Link with `pkg-config --libs rtm`.
 *
 *   static void on_msg(rtm_client *c, const struct rtm_message *m, void *ud)
 *   { printf("%s from %s: %s\n", m->channel, m->from, m->data); }
 *
 *   rtm_options *o = rtm_options_new();
 *   rtm_options_set_url(o, "ws://127.0.0.1:8080");
 *   rtm_options_set_token_provider(o, fetch_token_from_my_backend, NULL);
 *   struct rtm_callbacks cb = {.message = on_msg};
 *   rtm_options_set_callbacks(o, &cb, NULL);
 *   rtm_client *c;
 *   if (rtm_client_new(o, &c) != RTM_STATUS_OK) ...;
 *   rtm_options_free(o);                        // copied: free at once
 *   rtm_subscribe(c, "room/1", NULL, NULL);     // queued until connected
 *   while (running) rtm_client_service(c, 1000);
 *   rtm_client_free(c);
 */
#ifndef RTM_H
#define RTM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version. The major number is the soname's (librtm.so.1)
 * and changes only with an incompatible ABI; rtm.pc carries the same
 * MAJOR.MINOR.PATCH (the Makefile reads them from here). */
#define RTM_VERSION_MAJOR 1
#define RTM_VERSION_MINOR 1
#define RTM_VERSION_PATCH 0
#define RTM_VERSION_STRING "1.1.0"
/* A number to compare: (major << 16) | (minor << 8) | patch. */
#define RTM_VERSION_NUMBER ((RTM_VERSION_MAJOR << 16) | (RTM_VERSION_MINOR << 8) | RTM_VERSION_PATCH)

/* Every function below is exported from librtm.so; everything else in the
 * library is built with hidden visibility (-fvisibility=hidden). */
#if defined(__GNUC__)
#define RTM_EXPORT __attribute__((visibility("default")))
#else
#define RTM_EXPORT
#endif

#define RTM_MAX_TOKEN_LEN 24576

typedef enum rtm_status {
    RTM_STATUS_OK = 0,
    RTM_ERR_INVALID_ARG = -1,   /* bad argument (NULL, bad JSON, bad URL) */
    RTM_ERR_NOMEM = -2,
    RTM_ERR_QUEUE_FULL = -3,    /* the bounded outbound queue is full */
    RTM_ERR_TOO_BIG = -4,       /* the frame exceeds the broker's maxMessageSize */
    RTM_ERR_SERVER = -5,        /* the broker answered with an error frame */
    RTM_ERR_TIMEOUT = -6,       /* no answer within the request timeout */
    RTM_ERR_DISCONNECTED = -7,  /* the socket closed while the request was in flight */
    RTM_ERR_CLOSED = -8,        /* the client was freed or stopped for good */
    RTM_ERR_STATE = -9,         /* call not valid now (already connected, not subscribed) */
    RTM_ERR_CONNECT = -10,      /* could not connect (refused, DNS, TLS) */
    RTM_ERR_AUTH = -11,         /* the token or key was refused */
    RTM_ERR_HTTP = -12,         /* an HTTP call returned a non-2xx status */
    RTM_ERR_PROTOCOL = -13,     /* the peer sent something unparsable */
    RTM_ERR_CRYPTO = -14,       /* signing failed */
    RTM_ERR_NO_TOKEN = -15,     /* the token provider gave no token */
} rtm_status;

/* A static English description of s ("ok", "queue full", ...). Never NULL. */
RTM_EXPORT const char *rtm_status_str(rtm_status s);

typedef struct rtm_client rtm_client;
typedef struct rtm_options rtm_options;

/* ---- data handed to callbacks (borrowed for the callback's duration) ---- */

struct rtm_ice_server {
    const char *const *urls;
    size_t n_urls;
    const char *username;   /* NULL for STUN entries */
    const char *credential; /* NULL for STUN entries */
};

struct rtm_welcome {
    const char *peer_id;
    int64_t expires_at;      /* unix s; 0 when the broker sent null (publishable keys) */
    int64_t server_time_ms;  /* unix ms */
    size_t max_message_size;
    int reconnect;           /* 0 on the first welcome of this client, 1 after */
    const char *metadata;    /* the raw metadata object as JSON text ("{}" when absent) */
    const struct rtm_ice_server *ice_servers; /* parsed metadata.iceServers */
    size_t n_ice_servers;
    /* extensions (docs/EXTENSIONS.md): 1 when this connection took back the
     * held session (subscriptions and presence continued; nothing replayed) */
    int resumed;
};

struct rtm_message {
    const char *channel;       /* NULL for a direct message */
    const char *from;          /* peerId, or "_server" for a backend publish */
    const char *data;          /* the data value as JSON text */
    const char *from_metadata; /* JSON text or NULL */
};

struct rtm_member {
    const char *peer_id;
    const char *metadata; /* JSON text or NULL */
};

struct rtm_presence {
    const char *channel;
    const struct rtm_member *joined;
    size_t n_joined;
    const struct rtm_member *left;
    size_t n_left;
};

/* ---- callbacks ---- */

/* Completion of subscribe/unsubscribe/publish/send: status as described at
 * the top; wire_code is the broker's error code ("channel_not_authorized")
 * for RTM_ERR_SERVER and NULL otherwise; message likewise. */
typedef void (*rtm_done_fn)(rtm_client *c, rtm_status status, const char *wire_code, const char *message,
                            void *ud);

/* Returns a malloc'd NUL-terminated token (the library free()s it) or NULL
 * when none can be had now (the library retries with backoff). Called on
 * the loop thread before every connect and reconnect; it may block (for
 * example rtm_fetch_token() against your backend) and then delays the loop. */
typedef char *(*rtm_token_provider_fn)(void *ud);

struct rtm_callbacks {
    void (*connected)(rtm_client *c, const struct rtm_welcome *w, void *ud);
    void (*message)(rtm_client *c, const struct rtm_message *m, void *ud);
    void (*direct)(rtm_client *c, const struct rtm_message *m, void *ud);
    void (*presence)(rtm_client *c, const struct rtm_presence *p, void *ud);
    /* An error frame that answers no pending request. */
    void (*error)(rtm_client *c, const char *wire_code, const char *message, void *ud);
    /* Every time the socket closes (or a connect attempt fails, or the token
     * provider returns NULL: code 0). will_reconnect = 0 means the client
     * stopped for good (a terminal close code or rtm_client_stop()); else
     * retry_in_ms is the delay chosen (backoff, 0 after 4002, >= 30 s after 4010). */
    void (*closed)(rtm_client *c, int code, const char *reason, int will_reconnect, int64_t retry_in_ms,
                   void *ud);
    /* Every text frame as received (rtm listen). Called before the typed callback. */
    void (*frame)(rtm_client *c, const char *json, size_t len, void *ud);
    /* Extensions: the token was refreshed in-band (on the broker's
     * token_expiring notice, with a token from the provider): the new expiry
     * and metadata, with fresh iceServers for the next ICE restart. */
    void (*refreshed)(rtm_client *c, int64_t expires_at, const char *metadata, const struct rtm_ice_server *ice,
                      size_t n_ice, void *ud);
    /* Extensions: direct messages from `from` were missed (seq jumped). */
    void (*gap)(rtm_client *c, const char *from, uint64_t expected, uint64_t got, void *ud);
};

/* ---- options (copied by rtm_client_new) ---- */

RTM_EXPORT rtm_options *rtm_options_new(void);
RTM_EXPORT void rtm_options_free(rtm_options *o);
/* ws://host:port or wss://host:port, optionally with a path (default /v1). */
RTM_EXPORT rtm_status rtm_options_set_url(rtm_options *o, const char *url);
RTM_EXPORT rtm_status rtm_options_set_token(rtm_options *o, const char *token);
RTM_EXPORT rtm_status rtm_options_set_token_provider(rtm_options *o, rtm_token_provider_fn fn, void *ud);
RTM_EXPORT rtm_status rtm_options_set_publishable_key(rtm_options *o, const char *pk);
/* Sent as the Origin header (host:port form as lws wants it; NULL = none). */
RTM_EXPORT rtm_status rtm_options_set_origin(rtm_options *o, const char *origin);
RTM_EXPORT rtm_status rtm_options_set_callbacks(rtm_options *o, const struct rtm_callbacks *cb, void *ud);
/* Bounds of the outbound queue. max_frames counts requests not yet written
 * (waiting while disconnected, or behind a slow socket) plus those awaiting
 * their answer; max_bytes counts the unwritten frames' bytes. Defaults 1024
 * frames, 4 MiB. A call over either returns RTM_ERR_QUEUE_FULL (and never
 * calls back); nothing already queued is dropped. */
RTM_EXPORT rtm_status rtm_options_set_queue_limits(rtm_options *o, size_t max_frames, size_t max_bytes);
/* Request timeout for completions, default 10000 ms. */
RTM_EXPORT rtm_status rtm_options_set_request_timeout(rtm_options *o, int ms);
/* Liveness: ping interval (default 20000) and silence before closing with
 * 4000 (default 60000). Backoff base and cap (default 500, 30000). Tests
 * shorten these; production code should leave them alone. */
RTM_EXPORT rtm_status rtm_options_set_liveness(rtm_options *o, int ping_ms, int idle_ms);
RTM_EXPORT rtm_status rtm_options_set_backoff(rtm_options *o, int base_ms, int cap_ms);
/* Protocol extensions (docs/EXTENSIONS.md; &ext=1 on the connect URL), on by
 * default: in-band token refresh through the token provider (no 4002
 * disconnect), resuming the held session after a drop (others see no
 * leave/join, direct messages sent meanwhile are delivered), and per-sender
 * sequence numbers on direct messages (the gap callback). A broker without
 * them ignores the request. */
RTM_EXPORT rtm_status rtm_options_set_extensions(rtm_options *o, int on);
/* Where the token travels. RTM_TOKEN_IN_URL (default): ?token= (a long
 * token: an Authorization header), as every rtm broker takes it.
 * RTM_TOKEN_IN_MESSAGE: the connection opens with ?auth=message and its first
 * frame is {"type":"auth","token":...} (docs/EXTENSIONS.md), so the token
 * is in no URL or header a proxy might log; the broker must support it
 * (GET /.well-known/rtm lists "message"). Publishable keys always go in the URL. */
typedef enum rtm_token_transport { RTM_TOKEN_IN_URL = 0, RTM_TOKEN_IN_MESSAGE = 1 } rtm_token_transport;
RTM_EXPORT rtm_status rtm_options_set_token_transport(rtm_options *o, rtm_token_transport t);
/* Ask the broker for fromMetadata on channel messages (includeSenderMetadata). */
RTM_EXPORT rtm_status rtm_options_set_sender_metadata(rtm_options *o, int on);

/* Load generators: channel "message" frames go only to the frame callback,
 * unparsed (the message callback is not called for them). Every other frame
 * is handled as usual. Off by default. */
RTM_EXPORT rtm_status rtm_options_set_raw_messages(rtm_options *o, int on);

/* Run on a libwebsockets context you own and service yourself. Put a copy
 * of *rtm_lws_protocol() in the protocols you give lws_create_context() (any
 * position), create the context with max_http_header_data and
 * pt_serv_buf_size of at least RTM_MAX_TOKEN_LEN + 4096 when tokens may be
 * long, and call lws_service() on it. rtm_client_service() must then not be
 * used. The context must outlive the client. The library's timers are
 * lws_sul timers of that context; on lws 4.1.6's libev plugin (a foreign
 * ev loop) they fire late unless the application wakes lws, for example
 * with lws_cancel_service() from an ev_timer every few milliseconds
 * (rtmd/loop.c and sdk-c/src/loop.c show the wake-ups that plugin needs). */
struct lws_context;
struct lws_protocols;
RTM_EXPORT rtm_status rtm_options_set_lws_context(rtm_options *o, struct lws_context *ctx);
RTM_EXPORT const struct lws_protocols *rtm_lws_protocol(void);

/* ---- the client ---- */

/* Creates a client and starts connecting (the first attempt is made from
 * the next service call). Needs a URL and one of token, token provider or
 * publishable key. *out is owned by the caller: free with rtm_client_free. */
RTM_EXPORT rtm_status rtm_client_new(const rtm_options *o, rtm_client **out);
/* Closes (1000) and frees. Pending completions fire with RTM_ERR_CLOSED.
 * On the client's own loop an open session's close is completed first (the
 * call turns the loop for at most 500 ms; only completions fire meanwhile);
 * on an application's lws context, or inside a callback, the socket is
 * dropped, which the broker records as 1006. */
RTM_EXPORT void rtm_client_free(rtm_client *c);
/* Closes with 1000 and stops reconnecting; pending completions fire with
 * RTM_ERR_CLOSED, then the closed callback with will_reconnect = 0. */
RTM_EXPORT void rtm_client_stop(rtm_client *c);

/* Services the client's own loop: waits at most timeout_ms for network
 * activity or timers (0 = do not wait), runs the callbacks due. The loop is
 * libev on epoll under lws's libev plugin (libwebsockets-evlib-ev), one per
 * client: a turn costs what happened; an idle session wakes only for its
 * pings. That plugin logs a NOTICE line per socket event, so a client left
 * at lws's default log level (ERR, WARN, NOTICE) lowers it to ERR and WARN;
 * a level set with lws_set_log_level() is kept.
 * Returns RTM_STATUS_OK, or RTM_ERR_CLOSED once the client has stopped for good. */
RTM_EXPORT rtm_status rtm_client_service(rtm_client *c, int timeout_ms);
/* Any thread: makes a blocked rtm_client_service() return soon. */
RTM_EXPORT void rtm_client_wake(rtm_client *c);

/* 1 while a welcomed session is open. */
RTM_EXPORT int rtm_client_is_connected(const rtm_client *c);
/* The peerId of the current session (NULL before the first welcome). */
RTM_EXPORT const char *rtm_client_peer_id(const rtm_client *c);

/* Requests. cb may be NULL (fire and forget: no requestId is sent). data is
 * JSON text (any JSON value: "\"hi\"", "{\"a\":1}", "42"). A frame larger
 * than the broker's maxMessageSize is refused with RTM_ERR_TOO_BIG. While
 * disconnected, frames wait in the bounded queue (RTM_ERR_QUEUE_FULL). */
RTM_EXPORT rtm_status rtm_subscribe(rtm_client *c, const char *channel, rtm_done_fn cb, void *ud);
RTM_EXPORT rtm_status rtm_unsubscribe(rtm_client *c, const char *channel, rtm_done_fn cb, void *ud);
RTM_EXPORT rtm_status rtm_publish(rtm_client *c, const char *channel, const char *data, rtm_done_fn cb, void *ud);
RTM_EXPORT rtm_status rtm_send(rtm_client *c, const char *peer_id, const char *data, rtm_done_fn cb, void *ud);

/* Calls fn once per current member of a subscribed channel (the library's
 * reconciled view; the local peer is not listed). Returns the member count,
 * or RTM_ERR_STATE when the channel is not subscribed. */
RTM_EXPORT int rtm_members(rtm_client *c, const char *channel, void (*fn)(const struct rtm_member *m, void *ud), void *ud);

/* Number of frames currently waiting in the outbound queue. */
RTM_EXPORT size_t rtm_client_queued(const rtm_client *c);

/* ---- minting helpers (any thread; blocking) ---- */

struct rtm_token_params {
    const char *peer_id;           /* required */
    const char *const *channels;   /* NULL = all the key allows */
    size_t n_channels;
    const char *const *permissions; /* names: publish, subscribe, presence, send; NULL = all */
    size_t n_permissions;
    int64_t expires_in_sec;        /* 0 = 3600 */
    const char *metadata_json;     /* object or NULL */
    const char *peer_metadata_json; /* object or NULL */
};

/* Signs a token locally with a secret key (HS256, header kid = key_id),
 * with the same claims as the mint API. When turn_secret is given, a TURN
 * credential for turn_urls is put into metadata.iceServers (unless the
 * caller's metadata already has iceServers). *token is malloc'd (caller
 * frees); *expires_at may be NULL. */
RTM_EXPORT rtm_status rtm_sign_token(const char *key_id, const char *key_secret, const struct rtm_token_params *p,
                          const char *turn_secret, const char *const *turn_urls, size_t n_turn_urls,
                          char **token, int64_t *expires_at);

/* Mints through the mint API (POST mint_url/v1/tokens with Bearer key_secret).
 * mint_url is http://host:port. On an HTTP error returns RTM_ERR_HTTP with
 * *http_status set (when non-NULL). */
RTM_EXPORT rtm_status rtm_fetch_token(const char *mint_url, const char *key_secret, const struct rtm_token_params *p,
                           int timeout_ms, char **token, int64_t *expires_at, int *http_status);

/* One blocking HTTP request (the backend REST API: /v1/peers, /v1/sessions,
 * /v1/revocations ...). url is http://host:port/path; bearer and body may be
 * NULL. *resp (malloc'd, NUL-terminated, caller frees; at most 16 MiB) and
 * *status are set whenever a response arrived. Returns RTM_STATUS_OK for
 * any HTTP status; RTM_ERR_CONNECT / RTM_ERR_TIMEOUT when none arrived. */
RTM_EXPORT rtm_status rtm_http_request(const char *method, const char *url, const char *bearer, const char *body,
                            int timeout_ms, int *status, char **resp);

#ifdef __cplusplus
}
#endif

#endif

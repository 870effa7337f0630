/* client.c: one rtm_client's session lifecycle on libwebsockets: connect
 * (token in the query, a header or the first frame), the lws client
 * callbacks, reconnect with backoff, liveness and the deferred free.
 *
 * Design: every timeout is a timer of the client's loop (loop.c: native on
 * its own libev loop, lws_sul on an application's context), so nothing here
 * relies on being called regularly. A closed socket, whatever the reason,
 * goes through one function, socket_gone(), which settles the in-flight
 * requests and decides between reconnecting and stopping. */
#include "rtm_internal.h"
#include "json_dump.h"
#include "protocol.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FREE_CLOSE_MS 500 /* rtm_client_free waits this long at most for its close to complete */

static int cb_rtm(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* 4096 is the rx fragment size: larger frames are reassembled in c->rx, so a
 * client costs no 64 KiB buffer per connection (matters for rtm bench). */
static const struct lws_protocols rtm_protocol = {"rtm-client", cb_rtm, 0, 4096, 0, NULL, 0};

const struct lws_protocols *rtm_lws_protocol(void) { return &rtm_protocol; }

int64_t client_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng_next(struct rtm_client *c)
{
    uint64_t x = c->rng; /* xorshift64: jitter only, not security */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return c->rng = x;
}

/* 500 ms doubling to 30 s, +-20 % jitter. */
static int64_t backoff_ms(struct rtm_client *c)
{
    int64_t d = c->o.backoff_ms;
    for (int i = 0; i < c->attempt && d < c->o.backoff_cap_ms; i++) d *= 2;
    if (d > c->o.backoff_cap_ms) d = c->o.backoff_cap_ms;
    int64_t span = d * 2 / 5; /* 40 % wide window centred on d */
    if (span > 0) d = d - span / 2 + (int64_t)(rng_next(c) % (uint64_t)(span + 1));
    return d;
}

static int parse_url(struct rtm_client *c)
{
    char *copy = strdup(c->o.url), *path_part = NULL;
    const char *proto, *addr, *path;
    int port, rc = -1;
    if (!copy) return -1;
    if (lws_parse_uri(copy, &proto, &addr, &port, &path)) goto out;
    c->tls = !strcmp(proto, "wss");
    if (!*path || !strcmp(path, "/")) path = "v1"; /* lws_parse_uri drops the leading '/' */
    size_t n = strlen(path) + 2;
    if (!(path_part = malloc(n))) goto out;
    snprintf(path_part, n, "/%s", path);
    if (!(c->host = strdup(addr))) goto out;
    c->port = port;
    c->path = path_part;
    path_part = NULL;
    rc = 0;
out:
    free(path_part);
    free(copy);
    return rc;
}

static void call_closed(struct rtm_client *c, int code, const char *reason, int again, int64_t in_ms)
{
    /* after rtm_client_free only completions fire (with RTM_ERR_CLOSED) */
    if (!c->o.cb.closed || c->free_pending) return;
    CB_ENTER(c);
    c->o.cb.closed(c, code, reason, again, in_ms, c->o.cb_ud);
    CB_LEAVE(c);
}

static int terminal_code(int code)
{
    return code == RTM_CLOSE_UNAUTHORIZED || code == RTM_CLOSE_ORIGIN ||
           code == RTM_CLOSE_KEY_REVOKED || code == RTM_CLOSE_KICKED;
}

static void stop_for_good(struct rtm_client *c, int code, const char *reason)
{
    c->state = ST_STOPPED;
    ctimer_cancel(c, &c->t_connect);
    ctimer_cancel(c, &c->t_ping);
    ctimer_cancel(c, &c->t_idle);
    ctimer_cancel(c, &c->t_timeout);
    c->timeout_armed = 0;
    reqs_fail_all(c, &c->inflight, RTM_ERR_CLOSED);
    reqs_fail_all(c, &c->outq, RTM_ERR_CLOSED);
    call_closed(c, code, reason, 0, -1);
}

static void connect_due(struct rtm_client *c);

/* Both hold a token: wiped, not only freed. */
static void wipe(char **p)
{
    if (!*p) return;
    memset(*p, 0, strlen(*p));
    free(*p);
    *p = NULL;
}

static void auth_clear(struct rtm_client *c)
{
    wipe(&c->auth_hdr);
    wipe(&c->auth_frame);
}

/* The socket is gone (or never came up): settle requests, pick what next. */
static void socket_gone(struct rtm_client *c, int code, const char *reason)
{
    auth_clear(c);
    c->wsi = NULL;
    c->connecting = 0;
    c->close_pending = 0;
    c->ping_due = 0;
    c->rx_len = 0;
    ctimer_cancel(c, &c->t_ping);
    ctimer_cancel(c, &c->t_idle);
    if (c->state == ST_STOPPED) return;
    reqs_disconnected(c);
    if (c->stop_requested || c->free_pending) {
        stop_for_good(c, code, reason);
        return;
    }
    if (terminal_code(code)) {
        stop_for_good(c, code, reason);
        return;
    }
    /* an extension session that dropped is held by the broker for a while:
     * the next attempt within that window asks for it back */
    if (c->o.ext && c->session_id && c->resume_window_ms > 0 && c->state == ST_OPEN)
        c->resume_until = client_mono_ms() + c->resume_window_ms;
    int64_t delay;
    if (code == RTM_CLOSE_TOKEN_EXPIRED) {
        delay = 0; /* the provider is asked for a fresh token on every attempt */
    } else {
        delay = backoff_ms(c);
        c->attempt++;
        if (code == RTM_CLOSE_OVER_CAPACITY && delay < RTM_OVER_CAPACITY_WAIT_MS)
            delay = RTM_OVER_CAPACITY_WAIT_MS;
    }
    if (delay < c->next_delay_floor) /* the server's retryAfterMs, spread so a drained broker is not stampeded */
        delay = c->next_delay_floor + (int64_t)(rng_next(c) % (uint64_t)(c->next_delay_floor / 5 + 1));
    c->next_delay_floor = 0;
    c->state = ST_WAITING;
    ctimer_set(c, &c->t_connect, connect_due, delay);
    call_closed(c, code, reason, 1, delay);
}

static char *get_token(struct rtm_client *c)
{
    if (c->o.provider) {
        CB_ENTER(c);
        char *t = c->o.provider(c->o.provider_ud);
        CB_LEAVE(c);
        if (t && strlen(t) > RTM_MAX_TOKEN_LEN) {
            free(t);
            t = NULL;
        }
        return t;
    }
    return c->o.token ? strdup(c->o.token) : NULL;
}

/* path?[name value][&ext=1][&resume=<sessionId>], malloc'd */
static char *build_path(struct rtm_client *c, const char *name, const char *value)
{
    int resume = c->o.ext && c->session_id && !c->o.pk && client_mono_ms() < c->resume_until;
    size_t n = strlen(c->path) + (value ? strlen(value) + strlen(name) : 0) + (resume ? strlen(c->session_id) : 0) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    int k = snprintf(p, n, "%s", c->path);
    char sep = strchr(c->path, '?') ? '&' : '?';
    if (value) {
        k += snprintf(p + k, n - (size_t)k, "%c%s%s", sep, name, value);
        sep = '&';
    }
    if (c->o.ext) {
        k += snprintf(p + k, n - (size_t)k, "%cext=1", sep);
        sep = '&';
    }
    if (resume) snprintf(p + k, n - (size_t)k, "%cresume=%s", sep, c->session_id);
    return p;
}

static void connect_due(struct rtm_client *c)
{
    struct lws_client_connect_info i;
    char *token = NULL, *protos = NULL, *path = NULL, hosthdr[300];

    if (c->state == ST_STOPPED || c->free_pending || c->wsi) return;
    if (!c->o.pk) {
        token = get_token(c);
        if (c->free_pending || c->state == ST_STOPPED) goto out;
        if (!token) {
            c->state = ST_CONNECTING;
            socket_gone(c, 0, "no token from the provider");
            goto out;
        }
        protos = strdup("rtm.v1");
        if (c->o.auth_message) {
            /* ?auth=message: the token goes in the first frame, in no URL or header */
            path = build_path(c, "auth=", "message");
            json_t *f = json_pack("{s:s, s:s}", "type", "auth", "token", token);
            c->auth_frame = f ? rtm_json_dumps(f, JSON_COMPACT) : NULL;
            json_decref(f);
            if (!c->auth_frame) goto fail_local;
        } else if (strlen(token) <= RTM_QUERY_TOKEN_MAX) {
            /* lws 4.1.6 caps the client request line at 2048 bytes and its
             * server refuses subprotocol lists over 127 bytes, so the query
             * is the one place a short token fits everywhere */
            path = build_path(c, "token=", token);
        } else {
            /* longer tokens go in an Authorization header (appended in
             * CLIENT_APPEND_HANDSHAKE_HEADER), which has no such cap */
            path = build_path(c, NULL, NULL);
            size_t an = strlen(token) + 8;
            if ((c->auth_hdr = malloc(an))) snprintf(c->auth_hdr, an, "Bearer %s", token);
            if (!c->auth_hdr) goto fail_local;
        }
    } else {
        path = build_path(c, "key=", c->o.pk);
        protos = strdup("rtm.v1");
    }
    if (!path || !protos) goto fail_local;

    memset(&i, 0, sizeof i);
    i.context = c->ctx;
    i.address = c->host;
    i.port = c->port;
    i.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
    i.path = path;
    snprintf(hosthdr, sizeof hosthdr, "%s:%d", c->host, c->port);
    i.host = hosthdr;
    i.origin = c->o.origin;
    i.protocol = protos;
    i.local_protocol_name = rtm_protocol.name;
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    /* No lws validity timer: liveness is ours (t_ping, t_idle). lws's
     * default policy re-inserts a timer into its one sorted list on every
     * frame, a walk over every connection of the context. */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
    i.retry_and_idle_policy = &no_validity;
    c->state = ST_CONNECTING;
    c->connecting = 1;
    c->peer_code = 0;
    c->peer_reason[0] = 0;
    c->local_close = 0;
    if (!lws_client_connect_via_info(&i) && c->connecting) {
        /* failed synchronously without an error callback */
        c->wsi = NULL;
        socket_gone(c, 0, "connect failed");
    }
    goto out;
fail_local:
    c->state = ST_CONNECTING;
    socket_gone(c, 0, "out of memory");
out:
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    free(protos);
    if (path) { /* it may carry ?token= */
        memset(path, 0, strlen(path));
        free(path);
    }
}

static void ping_due(struct rtm_client *c)
{
    if (c->state != ST_OPEN || !c->wsi) return;
    c->ping_due = 1;
    lws_callback_on_writable(c->wsi);
    ctimer_set(c, &c->t_ping, ping_due, c->o.ping_ms);
}

static void idle_due(struct rtm_client *c)
{
    if (!c->wsi) return;
    int64_t quiet = client_mono_ms() - c->last_rx;
    if (quiet < c->o.idle_ms) {
        ctimer_set(c, &c->t_idle, idle_due, c->o.idle_ms - quiet);
        return;
    }
    client_close_local(c, RTM_CLOSE_CLIENT_TIMEOUT);
}

void client_request_write(struct rtm_client *c)
{
    if (c->wsi && c->state == ST_OPEN) lws_callback_on_writable(c->wsi);
}

/* Closes the socket with our own code from the next WRITEABLE (lws sends a
 * close frame only from there); socket_gone follows from CLIENT_CLOSED. */
void client_close_local(struct rtm_client *c, int code)
{
    if (!c->wsi) return;
    c->local_close = code;
    c->close_pending = 1;
    lws_callback_on_writable(c->wsi);
    /* a socket that never becomes writable still goes within 5 s */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
}

void client_welcomed(struct rtm_client *c)
{
    c->state = ST_OPEN;
    c->attempt = 0;
    c->welcomed_once = 1;
    ctimer_set(c, &c->t_ping, ping_due, c->o.ping_ms);
}

static void on_receive(struct rtm_client *c, struct lws *wsi, void *in, size_t len)
{
    c->last_rx = client_mono_ms();
    if (lws_frame_is_binary(wsi)) {
        client_close_local(c, RTM_CLOSE_UNSUPPORTED);
        return;
    }
    int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    if (first && final) {
        /* the common case: no copy; text frames are not NUL-terminated, so copy
         * only when the dispatcher needs it (it parses with a length) */
        frames_dispatch(c, in, len);
        return;
    }
    if (first) c->rx_len = 0;
    if (c->rx_len + len + 1 > RTM_RX_MAX) {
        client_close_local(c, RTM_CLOSE_TOO_BIG);
        return;
    }
    if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 8192;
        while (cap < c->rx_len + len + 1) cap *= 2;
        unsigned char *n = realloc(c->rx, cap);
        if (!n) {
            client_close_local(c, RTM_CLOSE_TOO_BIG);
            return;
        }
        c->rx = n;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (final) {
        size_t n = c->rx_len;
        c->rx_len = 0;
        frames_dispatch(c, (const char *)c->rx, n);
    }
}

static int on_writeable(struct rtm_client *c, struct lws *wsi)
{
    if (c->close_pending) {
        static const char why_idle[] = "no frame from the broker";
        const char *why = c->local_close == RTM_CLOSE_CLIENT_TIMEOUT ? why_idle : "client closing";
        lws_close_reason(wsi, (enum lws_close_status)c->local_close, (unsigned char *)why, strlen(why));
        return -1;
    }
    if (c->auth_frame) { /* ?auth=message: before anything else */
        size_t n = strlen(c->auth_frame);
        unsigned char *buf = malloc(LWS_PRE + n);
        if (!buf) return -1;
        memcpy(buf + LWS_PRE, c->auth_frame, n);
        int w = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
        memset(buf, 0, LWS_PRE + n);
        free(buf);
        wipe(&c->auth_frame);
        if (w < (int)n) return -1;
        if (lws_send_pipe_choked(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    if (c->ping_due) {
        unsigned char buf[LWS_PRE + 16];
        memcpy(buf + LWS_PRE, "{\"type\":\"ping\"}", 15);
        if (lws_write(wsi, buf + LWS_PRE, 15, LWS_WRITE_TEXT) < 15) return -1;
        c->ping_due = 0;
        if (lws_send_pipe_choked(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    if (c->state == ST_OPEN) return frames_write(c, wsi);
    return 0;
}

static int cb_rtm(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct rtm_client *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    (void)user;
    if (!c || c->freeing) return 0;
    /* a wsi we have already let go of (a stale attempt) */
    if (c->wsi && c->wsi != wsi) return 0;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[128];
        snprintf(why, sizeof why, "connect failed: %s", in && len ? (const char *)in : "unknown");
        if (!c->connecting && c->state != ST_CONNECTING) return 0;
        lws_set_opaque_user_data(wsi, NULL);
        socket_gone(c, 0, in ? why : "connect failed");
        return 0;
    }
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        /* closed before the upgrade without a CONNECTION_ERROR: lws does
         * that when it kills a socket mid-handshake (rtm_client_stop) */
        if (!c->connecting && c->state != ST_CONNECTING) return 0;
        lws_set_opaque_user_data(wsi, NULL);
        socket_gone(c, 0, "closed before the upgrade");
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        if (c->auth_hdr && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                                        (unsigned char *)c->auth_hdr, (int)strlen(c->auth_hdr), p,
                                                        end))
            return -1;
        wipe(&c->auth_hdr); /* the auth frame, if any, waits for ESTABLISHED */
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->connecting = 0;
        c->wsi = wsi;
        c->last_rx = client_mono_ms();
        ctimer_set(c, &c->t_idle, idle_due, c->o.idle_ms);
        if (c->auth_frame) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c->close_pending) return 0; /* closing (also before a free): frames are dropped */
        if (c->free_pending) return -1;
        on_receive(c, wsi, in, len);
        return c->free_pending ? -1 : 0;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        c->last_rx = client_mono_ms();
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (in && len >= 2) {
            const unsigned char *p = in;
            c->peer_code = (p[0] << 8) | p[1];
            size_t rl = len - 2 < sizeof c->peer_reason - 1 ? len - 2 : sizeof c->peer_reason - 1;
            memcpy(c->peer_reason, p + 2, rl);
            c->peer_reason[rl] = 0;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED: {
        lws_set_opaque_user_data(wsi, NULL);
        int code = c->peer_code ? c->peer_code : c->local_close ? c->local_close : RTM_CLOSE_ABNORMAL;
        const char *why = c->peer_code ? c->peer_reason : c->local_close == RTM_CLOSE_CLIENT_TIMEOUT
                                                              ? "no frame from the broker"
                                                              : c->local_close ? "closed by client"
                                                                               : "connection lost";
        char reason_copy[sizeof c->peer_reason];
        snprintf(reason_copy, sizeof reason_copy, "%s", why);
        socket_gone(c, code, reason_copy);
        return 0;
    }
    default:
        return 0;
    }
}

rtm_status rtm_client_new(const rtm_options *o, rtm_client **out)
{
    if (!o || !out || !o->url || (!o->token && !o->provider && !o->pk)) return RTM_ERR_INVALID_ARG;
    struct rtm_client *c = calloc(1, sizeof *c);
    if (!c) return RTM_ERR_NOMEM;
    if (options_copy(&c->o, o)) {
        free(c);
        return RTM_ERR_NOMEM;
    }
    if (parse_url(c)) {
        options_clear(&c->o);
        free(c->host);
        free(c);
        return RTM_ERR_INVALID_ARG;
    }
    c->max_msg = 65536;
    if (rtm_random_bytes(&c->rng, sizeof c->rng) || !c->rng) c->rng = (uint64_t)client_mono_ms() | 1;
    if (o->ctx) {
        c->ctx = o->ctx;
    } else {
        c->own_ctx = 1;
        if (cloop_open(c)) {
            options_clear(&c->o);
            free(c->host);
            free(c->path);
            free(c);
            return RTM_ERR_NOMEM;
        }
    }
    c->state = ST_IDLE;
    ctimer_set(c, &c->t_connect, connect_due, 0);
    *out = c;
    return RTM_STATUS_OK;
}

/* On its own loop a client says goodbye before it frees: close 1000 and
 * wait for the socket to go, at most FREE_CLOSE_MS. Without it the broker
 * saw the connection drop (1006), and held an extension session for its
 * resume window. Only completions (RTM_ERR_CLOSED) fire meanwhile; frames
 * that arrive are dropped. An application's loop cannot be turned from
 * here: there the socket is killed as before. */
static void close_before_free(struct rtm_client *c)
{
    if (!c->own_ctx || !c->wsi || c->state != ST_OPEN) return;
    c->free_pending = 1; /* no user callback but completions from here */
    client_close_local(c, RTM_CLOSE_NORMAL);
    int64_t end = client_mono_ms() + FREE_CLOSE_MS;
    c->cb_depth++; /* rtm_client_free from a completion: already under way */
    for (int64_t now = client_mono_ms(); c->wsi && now < end; now = client_mono_ms())
        cloop_run_once(c, (int)(end - now));
    c->cb_depth--;
}

static void do_free(struct rtm_client *c)
{
    close_before_free(c);
    c->freeing = 1;
    if (c->state != ST_STOPPED) {
        c->state = ST_STOPPED;
        CB_ENTER(c); /* a callback calling rtm_client_free again is a no-op */
        reqs_fail_all(c, &c->inflight, RTM_ERR_CLOSED);
        reqs_fail_all(c, &c->outq, RTM_ERR_CLOSED);
        CB_LEAVE(c);
    }
    ctimer_cancel(c, &c->t_connect);
    ctimer_cancel(c, &c->t_ping);
    ctimer_cancel(c, &c->t_idle);
    ctimer_cancel(c, &c->t_timeout);
    ctimer_cancel(c, &c->t_free);
    if (c->wsi) {
        lws_set_opaque_user_data(c->wsi, NULL);
        if (!c->own_ctx) lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        c->wsi = NULL;
    }
    if (c->own_ctx) cloop_close(c);
    auth_clear(c);
    free(c->session_id);
    seqs_clear(c);
    chans_free(c);
    free(c->rx);
    free(c->peer_id);
    free(c->host);
    free(c->path);
    options_clear(&c->o);
    free(c);
}

static void free_due(struct rtm_client *c) { do_free(c); }

void rtm_client_free(rtm_client *c)
{
    if (!c || c->freeing) return;
    if (c->cb_depth > 0) {
        /* inside one of our callbacks: finish after it returns */
        if (!c->free_pending) {
            c->free_pending = 1;
            if (!c->own_ctx) ctimer_set(c, &c->t_free, free_due, 0);
        }
        return;
    }
    do_free(c);
}

static void stop_due(struct rtm_client *c)
{
    if (c->state != ST_STOPPED) stop_for_good(c, RTM_CLOSE_NORMAL, "stopped by the application");
}

void rtm_client_stop(rtm_client *c)
{
    if (!c || c->state == ST_STOPPED) return;
    c->stop_requested = 1;
    if (c->wsi && c->state == ST_OPEN) {
        client_close_local(c, RTM_CLOSE_NORMAL);
    } else if (c->wsi) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    } else {
        /* settle from the loop, not inside this call */
        ctimer_set(c, &c->t_connect, stop_due, 0);
    }
}

rtm_status rtm_client_service(rtm_client *c, int timeout_ms)
{
    if (!c || !c->own_ctx) return RTM_ERR_INVALID_ARG;
    if (c->state == ST_STOPPED && !c->free_pending) return RTM_ERR_CLOSED;
    c->cb_depth++;
    cloop_run_once(c, timeout_ms);
    c->cb_depth--;
    if (c->free_pending) {
        do_free(c);
        return RTM_ERR_CLOSED;
    }
    return c->state == ST_STOPPED ? RTM_ERR_CLOSED : RTM_STATUS_OK;
}

void rtm_client_wake(rtm_client *c)
{
    if (c) cloop_wake(c);
}

int rtm_client_is_connected(const rtm_client *c) { return c && c->state == ST_OPEN; }

const char *rtm_client_peer_id(const rtm_client *c) { return c ? c->peer_id : NULL; }

size_t rtm_client_queued(const rtm_client *c) { return c ? c->outq.n : 0; }

/* http.c: the backend listener's HTTP side: one lws protocol that routes each
 * request to a resource handler, accumulates a bounded body, authenticates
 * the Bearer key, and writes one JSON reply from WRITEABLE.
 *
 * Design: the per-connection state is the lws per-session struct; it lives
 * across keep-alive transactions and is reset at the start of each one. The
 * body buffer grows on demand up to MINT_BODY_MAX and is kept for the next
 * transaction (keep-alive clients reuse it, so the hot path allocates no
 * body memory). Errors decided on the headers (404, 405, 401, 400 on
 * arguments) still wait for a small declared body so keep-alive stays in
 * sync. A declared body over the cap (413) or a chunked one (411: lws 4.1.6
 * cannot deliver it) is answered at once, unread, and the connection closed
 * after a short linger (refuse_now says why). */
#include "api.h"
#include "keycache.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "store.h"
#include "view.h"
#include "config.h"
#include "protocol.h"
#include "util.h"
#include "json_dump.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define LINGER_SEC 2

enum { M_GET = 1, M_POST = 2, M_DELETE = 4, M_OTHER = 8 };

struct route {
    const char *path;
    int prefix;   /* path is a prefix; the rest is path_arg */
    unsigned method;
    int auth;     /* Bearer secret key required */
    void (*fn)(struct mint_req *rq);
};

static const struct route routes[] = {
    {"/v1/tokens", 0, M_POST, 1, mint_tokens_post},
    {"/v1/turn-credentials", 0, M_POST, 1, mint_turn_post},
    {"/v1/revocations", 0, M_POST, 1, mint_revocations_post},
    {"/v1/sessions", 0, M_GET, 1, mint_sessions_get},
    {"/v1/peers", 0, M_GET, 1, mint_peers_get},
    {"/v1/peers", 0, M_DELETE, 1, mint_peer_delete}, /* ?peerId=: exact for any id (see route_find) */
    {"/v1/peers/", 1, M_DELETE, 1, mint_peer_delete},
    {"/v1/publish", 0, M_POST, 1, mint_publish_post},
    {"/.well-known/jwks.json", 0, M_GET, 0, mint_jwks_get},
    {"/healthz", 0, M_GET, 0, mint_healthz_get},
    {"/metrics", 0, M_GET, 0, mint_metrics_get},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Per connection, allocated and zeroed by lws; owns body, out and key. */
struct conn {
    const struct route *route; /* NULL once a reply is decided before dispatch */
    int64_t t0_ns;
    int waiting_body;          /* a body is declared and not complete yet */
    int closing;               /* reply, then close (413, 411, pipelining after a body) */
    int draining;              /* refused and answered: not reading, waiting for the client to close */
    int reply_ready;
    int had_body;              /* this request had a body (see on_body_done) */
    int dispatching;           /* inside the handler: a later reply sent now is written by dispatch's caller */
    struct mint_later *later;  /* a reply the handler promised (mint_reply_later), not sent yet */
    struct lws *wsi;

    struct mint_key *key;      /* a reference, released at the end of the transaction */

    char *body;
    size_t body_len, body_cap;

    char path_arg[RTM_MAX_PEER_ID + 1];
    char q_peer_id[MINT_ARG_MAX], q_channel[MINT_ARG_MAX], q_limit[32];
    int has_path_arg, has_peer_id, has_channel, has_limit;

    /* the reply */
    int status;
    char *out;
    size_t out_len;
    const char *content_type;
    const char *allow;         /* for 405 */
};

/* ---- replies ---- */

/* A reply promised for later; owned by the handler's side until sent. */
struct mint_later {
    struct conn *c; /* NULL once the connection's transaction ended (closed) */
    struct mint_req rq;
};

static void ready(struct lws *wsi, struct conn *c);

struct mint_later *mint_reply_later(struct mint_req *rq)
{
    struct conn *c = rq->conn;
    if (!c || c->later || rq->later) return NULL;
    struct mint_later *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->c = c;
    c->later = l;
    rq->later = l;
    return l;
}

struct mint_req *mint_later_req(struct mint_later *l) { return &l->rq; }

void mint_later_send(struct mint_later *l)
{
    struct conn *c = l->c;
    if (c) {
        c->later = NULL;
        if (!l->rq.out) mint_reply_error(&l->rq, RTM_WIRE_INTERNAL_ERROR, "no reply");
        free(c->out);
        c->status = l->rq.status;
        c->out = l->rq.out;
        c->out_len = l->rq.out_len;
        c->content_type = l->rq.content_type;
        l->rq.out = NULL;
        if (!c->dispatching) ready(c->wsi, c);
    }
    free(l->rq.out);
    free(l);
}

void mint_reply_raw(struct mint_req *rq, int status, char *body, size_t len, const char *ctype)
{
    free(rq->out);
    rq->status = status;
    rq->out = body;
    rq->out_len = len;
    rq->content_type = ctype;
}

void mint_reply_json(struct mint_req *rq, int status, json_t *v)
{
    char *s = v ? rtm_json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "could not build the reply");
        return;
    }
    mint_reply_raw(rq, status, s, strlen(s), "application/json");
}

void mint_reply_error(struct mint_req *rq, enum rtm_wire_err e, const char *msg)
{
    const struct rtm_wire_def *w = rtm_wire(e);
    int status = w->http_status ? w->http_status : 500;
    if (!msg) msg = w->message;
    rtm_log(w->log_level, "api: %d %s: %s", status, w->code, msg);
    json_t *v = json_pack("{s:s, s:s}", "error", w->code, "message", msg);
    char *s = v ? rtm_json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s) { /* out of memory: a small fixed reply still tells the client */
        char oom[96];
        int n = snprintf(oom, sizeof oom, "{\"error\":\"%s\",\"message\":\"out of memory\"}",
                         rtm_wire(RTM_WIRE_INTERNAL_ERROR)->code);
        s = malloc((size_t)n + 1);
        if (s) memcpy(s, oom, (size_t)n + 1);
        status = 500;
    }
    mint_reply_raw(rq, status, s, s ? strlen(s) : 0, "application/json");
}

void mint_reply_store_error(struct mint_req *rq, int rc, const char *what)
{
    char msg[160];
    if (rc == RTM_EFULL) {
        snprintf(msg, sizeof msg, "%s was not recorded: the store's disk is full; retry later", what);
        mint_reply_error(rq, RTM_WIRE_STORE_FULL, msg);
        return;
    }
    if (rc == RTM_EBUSY) {
        snprintf(msg, sizeof msg, "%s was not recorded: the store is locked by another writer; retry later", what);
        mint_reply_error(rq, RTM_WIRE_STORE_LOCKED, msg);
        return;
    }
    snprintf(msg, sizeof msg, "%s could not be stored", what);
    mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, msg);
}

json_t *mint_body_object(struct mint_req *rq)
{
    json_error_t e;
    if (rq->body_len == 0) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "a JSON object body is required");
        return NULL;
    }
    json_t *v = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "the body is not valid JSON");
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

int mint_check_fields(struct mint_req *rq, json_t *obj, const struct mint_field *f, size_t n)
{
    static const char *const type_names[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "a boolean",
        [JSON_FALSE] = "a boolean", [JSON_NULL] = "null"};
    char msg[160];
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, f[i].name);
        if (v && json_is_null(v) && !f[i].required) {
            json_object_del(obj, f[i].name);
            v = NULL;
        }
        if (!v && f[i].required) {
            snprintf(msg, sizeof msg, "%s is required", f[i].name);
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, msg);
            return -1;
        }
        if (v && f[i].type >= 0 && (int)json_typeof(v) != f[i].type) {
            snprintf(msg, sizeof msg, "%s must be %s", f[i].name, type_names[f[i].type]);
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, msg);
            return -1;
        }
    }
    return 0;
}

/* A reply decided by http.c itself, before any handler runs. */
static void conn_error(struct conn *c, enum rtm_wire_err e, const char *msg)
{
    struct mint_req rq = {0};
    mint_reply_error(&rq, e, msg);
    free(c->out);
    c->status = rq.status;
    c->out = rq.out;
    c->out_len = rq.out_len;
    c->content_type = rq.content_type;
    c->route = NULL;
}

/* ---- per-transaction state ---- */

static void conn_reset(struct conn *c)
{
    if (c->later) { /* its reply, when it comes, has nowhere to go */
        c->later->c = NULL;
        c->later = NULL;
    }
    mint_key_put(c->key);
    c->key = NULL;
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    c->status = 0;
    c->allow = NULL;
    c->content_type = NULL;
    c->route = NULL;
    c->waiting_body = c->closing = c->draining = c->reply_ready = c->had_body = 0;
    c->body_len = 0;
    c->has_path_arg = c->has_peer_id = c->has_channel = c->has_limit = 0;
}

static void conn_free(struct conn *c)
{
    conn_reset(c);
    free(c->body);
    c->body = NULL;
    c->body_cap = 0;
}

static int method_of(struct lws *wsi)
{
    char *uri;
    int len;
    switch (lws_http_get_uri_and_method(wsi, &uri, &len)) {
    case LWSHUMETH_GET: return M_GET;
    case LWSHUMETH_POST: return M_POST;
    case LWSHUMETH_DELETE: return M_DELETE;
    default: return M_OTHER;
    }
}

/* Finds the route; on a known path with the wrong method returns NULL and
 * sets *allow to the methods the path takes.
 *
 * A prefix route's argument is the whole rest of the path, '/' included: lws
 * has already percent-decoded it, so "evil%2Fpeer" arrives as "evil/peer"
 * and a '/' there is part of the id. lws also normalizes the decoded path
 * ("//" to "/", "." and ".." segments, '+' to ' '), and what it rewrote cannot
 * be told apart afterwards: ids with such sequences go in the query instead
 * (DELETE /v1/peers?peerId=), which lws decodes exactly. */
static const struct route *route_find(const char *path, int method, const char **allow)
{
    unsigned takes = 0;
    *allow = NULL;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const struct route *r = &routes[i];
        size_t n = strlen(r->path);
        int match = r->prefix ? strncmp(path, r->path, n) == 0 && path[n] : strcmp(path, r->path) == 0;
        if (!match) continue;
        if (r->method & (unsigned)method) return r;
        takes |= r->method;
    }
    /* The Allow header for any set of methods a path takes (bits of M_GET, M_POST, M_DELETE). */
    static const char *const allow_text[8] = {NULL,     "GET",         "POST",         "GET, POST",
                                              "DELETE", "GET, DELETE", "POST, DELETE", "GET, POST, DELETE"};
    *allow = allow_text[takes & (M_GET | M_POST | M_DELETE)];
    return NULL;
}

/* Copies the query arguments we know; returns -1 when one is too long. */
static int parse_args(struct lws *wsi, struct conn *c)
{
    char frag[MINT_ARG_MAX + 16];
    for (int i = 0; i < 32; i++) { /* bounded: more arguments than this are ignored */
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0) break;
        if (flen >= (int)sizeof frag) return -1;
        if (lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) return -1;
        struct { const char *name; char *dst; size_t cap; int *has; } known[] = {
            {"peerId=", c->q_peer_id, sizeof c->q_peer_id, &c->has_peer_id},
            {"channel=", c->q_channel, sizeof c->q_channel, &c->has_channel},
            {"limit=", c->q_limit, sizeof c->q_limit, &c->has_limit},
        };
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            size_t nl = strlen(known[k].name);
            if (strncmp(frag, known[k].name, nl) != 0) continue;
            size_t vl = strlen(frag + nl);
            if (vl >= known[k].cap) return -1;
            memcpy(known[k].dst, frag + nl, vl + 1);
            *known[k].has = 1;
        }
    }
    return 0;
}

/* Bearer auth: 0 with c->key filled, or -1 (missing, unknown, revoked: one answer). */
static int authenticate(struct lws *wsi, struct rtm_server *srv, struct conn *c)
{
    char h[256];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0 || n >= (int)sizeof h) return -1;
    if (lws_hdr_copy(wsi, h, sizeof h, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) return -1;
    if (strncasecmp(h, "Bearer ", 7) != 0) return -1;
    char *s = h + 7;
    while (*s == ' ') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    if (!*s) return -1;
    c->key = mint_key_get(srv->mint->keys, srv->store, s);
    return c->key ? 0 : -1;
}

/* Runs the handler: 0 when the reply is decided, 1 when it comes later
 * (mint_later_send makes it ready). */
static int dispatch(struct lws *wsi, struct rtm_server *srv, struct conn *c)
{
    if (!c->route) return 0; /* the reply was decided already */
    struct mint_req rq = {
        .srv = srv,
        .api = srv->mint,
        .key = c->key ? &c->key->key : NULL,
        .body = c->body ? c->body : "",
        .body_len = c->body_len,
        .path_arg = c->has_path_arg ? c->path_arg : NULL,
        .q_peer_id = c->has_peer_id ? c->q_peer_id : NULL,
        .q_channel = c->has_channel ? c->q_channel : NULL,
        .q_limit = c->has_limit ? c->q_limit : NULL,
        .now = rtm_now_s(),
        .conn = c,
    };
    c->wsi = wsi;
    c->dispatching = 1;
    c->route->fn(&rq);
    c->dispatching = 0;
    if (rq.later) { /* promised: sent already (the conn has it), or to come */
        free(rq.out);
        c->route = NULL;
        return c->later ? 1 : 0;
    }
    if (!rq.out) mint_reply_error(&rq, RTM_WIRE_INTERNAL_ERROR, "no reply");
    free(c->out);
    c->status = rq.status;
    c->out = rq.out;
    c->out_len = rq.out_len;
    c->content_type = rq.content_type;
    c->route = NULL;
    return 0;
}

static void ready(struct lws *wsi, struct conn *c)
{
    c->reply_ready = 1;
    lws_callback_on_writable(wsi);
}

static void count_status(int status, int64_t t0_ns)
{
    if (status < 300) rtm_metric_inc(RTM_M_HTTP_2XX, 1);
    else if (status < 500) rtm_metric_inc(RTM_M_HTTP_4XX, 1);
    else rtm_metric_inc(RTM_M_HTTP_5XX, 1);
    rtm_histogram_observe(RTM_H_MINT_LATENCY, (double)(rtm_mono_ns() - t0_ns) / 1e9);
}

#define HDR_ROOM 512

/* Writes the decided reply (headers and body in one write); 0 or -1. */
static int write_reply(struct lws *wsi, struct conn *c)
{
    unsigned char *buf = malloc(LWS_PRE + HDR_ROOM + c->out_len);
    if (!buf) return -1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = start + HDR_ROOM;
    int rc = -1;
    if (lws_add_http_common_headers(wsi, (unsigned)c->status, c->content_type, c->out_len, &p, end))
        goto done;
    /* Every reply, errors included: a reply with a credential, or about
     * one, is never kept by a proxy or a browser cache. */
    if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store", 8,
                                     &p, end))
        goto done;
    if (c->allow &&
        lws_add_http_header_by_name(wsi, (unsigned char *)"allow:", (unsigned char *)c->allow,
                                    (int)strlen(c->allow), &p, end))
        goto done;
    if (c->closing &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (unsigned char *)"close", 5, &p, end))
        goto done;
    if (lws_finalize_http_header(wsi, &p, end)) goto done;
    /* Headers and body leave in one write (one send(2) per reply): on HTTP/1.1
     * lws passes header writes through as is, and the transaction's content
     * accounting is reset by lws_http_transaction_completed. */
    memcpy(p, c->out, c->out_len);
    if (lws_write(wsi, start, (size_t)(p - start) + c->out_len, LWS_WRITE_HTTP_HEADERS) < 0) goto done;
    rc = 0;
done:
    free(buf);
    count_status(c->status, c->t0_ns);
    return rc;
}

/* Answers a request refused on its headers alone (413, 411) at once, from
 * the HTTP callback as lws_return_http_status does: while a client is still
 * sending, lws 4.1.6 services its reads and holds WRITEABLE back for
 * megabytes. Then it stops reading and sends FIN, and closes when the client
 * does or after LINGER_SEC. It does not close at once: closing a socket with
 * unread bytes makes the kernel send RST, and a client still sending would
 * lose the answer in flight. Nothing of the body is read or stored. */
static int refuse_now(struct lws *wsi, struct conn *c)
{
    if (write_reply(wsi, c) != 0) return -1;
    conn_reset(c);
    c->draining = 1;
    shutdown(lws_get_socket_fd(wsi), SHUT_WR);
    lws_rx_flow_control(wsi, 0);
    /* A wsi timer, not lws_set_timeout: lws re-arms its own body timeout
     * after this callback returns, overriding any set here. */
    lws_set_timer_usecs(wsi, LINGER_SEC * LWS_USEC_PER_SEC);
    return 0;
}

/* ---- lws events ---- */

static int on_http(struct lws *wsi, struct rtm_server *srv, struct conn *c, const char *path)
{
    if (c->draining) return -1; /* bytes after a refused request: nothing more to say */
    conn_reset(c);
    c->t0_ns = rtm_mono_ns();

    int method = method_of(wsi);
    const char *allow;
    const struct route *r = route_find(path, method, &allow);
    c->route = r;
    if (!r && allow) {
        c->allow = allow;
        conn_error(c, RTM_WIRE_METHOD_NOT_ALLOWED, "this path does not take that method");
    } else if (!r) {
        conn_error(c, RTM_WIRE_NOT_FOUND, "no such path");
    } else if (parse_args(wsi, c) != 0) {
        conn_error(c, RTM_WIRE_INVALID_REQUEST, "a query argument is too long");
    } else if (r->prefix) {
        const char *arg = path + strlen(r->path);
        size_t n = strlen(arg);
        if (n >= sizeof c->path_arg) {
            conn_error(c, RTM_WIRE_INVALID_REQUEST, "the path argument is too long");
        } else {
            memcpy(c->path_arg, arg, n + 1);
            c->has_path_arg = 1;
        }
    }
    if (c->route && r->auth && authenticate(wsi, srv, c) != 0)
        conn_error(c, RTM_WIRE_UNAUTHORIZED, "a valid secret key is required: Authorization: Bearer sk_secret_...");

    /* The body: refuse an oversize one before reading a byte of it. */
    char cl[24];
    int64_t declared = 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0) declared = INT64_MAX;
        else declared = strtoll(cl, NULL, 10);
    }
    int chunked = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    if (declared > MINT_BODY_MAX) {
        conn_error(c, RTM_WIRE_PAYLOAD_TOO_LARGE, "the body is over 32 KB");
        c->closing = 1;
        return refuse_now(wsi, c);
    }
    /* lws 4.1.6 does not decode chunked request bodies: it neither delivers
     * them nor completes the request, so they are refused outright. */
    if (chunked) {
        conn_error(c, RTM_WIRE_LENGTH_REQUIRED, "send the body with a Content-Length");
        c->closing = 1;
        return refuse_now(wsi, c);
    }
    if (declared > 0) { /* lws times a stalled body out (the vhost's timeout_secs) */
        c->waiting_body = 1;
        return 0;
    }
    if (dispatch(wsi, srv, c) == 0) ready(wsi, c);
    return 0;
}

static int on_body(struct lws *wsi, struct conn *c, const void *in, size_t len)
{
    if (!len) return 0; /* lws may deliver an empty chunk with in == NULL */
    if (c->draining) return 0; /* refused: reading is paused, anything already read is dropped */
    if (c->closing) return 0; /* answering already: drop the rest */
    if (c->body_len + len > MINT_BODY_MAX) {
        conn_error(c, RTM_WIRE_PAYLOAD_TOO_LARGE, "the body is over 32 KB");
        c->closing = 1;
        ready(wsi, c);
        return 0;
    }
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + len + 1) cap *= 2;
        if (cap > MINT_BODY_MAX + 1) cap = MINT_BODY_MAX + 1;
        char *b = realloc(c->body, cap);
        if (!b) {
            conn_error(c, RTM_WIRE_INTERNAL_ERROR, "out of memory");
            c->closing = 1;
            ready(wsi, c);
            return 0;
        }
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, in, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int on_body_done(struct lws *wsi, struct rtm_server *srv, struct conn *c)
{
    /* lws 4.1.6 leaves an HTTP/1 connection in its body state after
     * BODY_COMPLETION and feeds any pipelined bytes already buffered back as
     * repeated BODY_COMPLETIONs (without consuming them) until the
     * transaction completes. Completing it with those bytes pending wedged
     * the loop, so a pipelined request after a body ends the connection
     * after this reply instead: HTTP/1.1 lets the server close, and clients
     * resend what was not answered. */
    if (c->draining) return -1; /* the refused body ended after all: close now */
    if (c->later) { /* a repeat while the reply is on its way (see below): close after it */
        c->closing = 1;
        return 0;
    }
    if (!c->waiting_body) {
        if (!c->reply_ready) return -1; /* after the transaction completed: the wedge above, end it */
        c->closing = 1;
        return 0;
    }
    if (c->closing) return 0;
    c->waiting_body = 0;
    /* On the epoll loop (lws's libev plugin) that repeated BODY_COMPLETION
     * comes from lws's idle-time forced service, after this reply's
     * WRITEABLE: completing the transaction first spun the loop at 100 %
     * (every client starved). So WRITEABLE asks lws directly: when any
     * connection holds buffered input (lws_service_adjust_timeout says 0),
     * this one may be it, and the reply closes. A spurious close of a POST
     * connection costs its client a reconnect; a wedge costs everyone. */
    c->had_body = 1;
    if (dispatch(wsi, srv, c) == 0) ready(wsi, c);
    return 0;
}


static int on_writeable(struct lws *wsi, struct conn *c)
{
    if (!c->reply_ready || !c->out) return 0;
    c->reply_ready = 0;
    /* See on_body_done: a reply to a body closes when input is buffered. */
    if (c->had_body && lws_service_adjust_timeout(lws_get_context(wsi), 1, 0) == 0) c->closing = 1;
    int closing = c->closing;
    int rc = write_reply(wsi, c);
    conn_reset(c);
    if (rc != 0 || closing) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct conn *c = user;
    struct rtm_server *srv = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, srv, c, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(wsi, c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_done(wsi, srv, c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(wsi, c);
    case LWS_CALLBACK_TIMER: /* the linger after a refusal is over */
        return c && c->draining ? -1 : 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: /* woken by the view's threads (or a signal) */
        if (srv && srv->view) rtm_view_drain(srv->view);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c) conn_free(c);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"rtm-mint-http", callback, sizeof(struct conn), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

const struct lws_protocols *mint_protocols(void) { return protocols; }

int mint_create(struct rtm_server *srv, struct mint_api **out)
{
    const struct rtm_config *cfg = srv->cfg;
    struct mint_api *m = calloc(1, sizeof *m);
    if (!m) return RTM_ENOMEM;
    m->srv = srv;
    m->pol.default_ttl = rtm_config_mint_default_ttl(cfg);
    m->pol.max_ttl = rtm_config_mint_max_ttl(cfg);
    m->pol.turn_secret = cfg->n_turn_secrets ? cfg->turn_secrets[0] : NULL;
    m->pol.turn_urls = (const char *const *)cfg->turn_urls;
    m->pol.n_turn_urls = cfg->n_turn_urls;
    m->pol.turn_ttl = cfg->turn_ttl;
    if (!m->pol.turn_secret) log_warn("mint: no TURN secret configured: tokens carry no iceServers");
    if (mint_keycache_open(srv->view, &m->keys)) {
        free(m);
        return RTM_ENOMEM;
    }
    *out = m;
    return 0;
}

void mint_destroy(struct mint_api *m)
{
    if (!m) return;
    mint_keycache_close(m->keys);
    free(m);
}

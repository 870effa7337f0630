/* http.c: one blocking HTTP/1.1 request on a private lws context: the mint
 * API call and the backend REST calls of the `rtm` tool.
 *
 * Design: a fresh context per request keeps this thread-safe and free of
 * shared state (it is a control-path call, not a hot path). The wait is
 * bounded by an lws_sul timer, because lws_service can otherwise sleep
 * about 30 s when nothing happens. */
#include "rtm_internal.h"

#include <stdlib.h>
#include <string.h>

#define HTTP_RESP_MAX (16u << 20)

struct http_tx {
    const char *method, *bearer, *body;
    size_t body_len;
    int status;
    char *resp;
    size_t resp_len, resp_cap;
    int done, failed, too_big;
    lws_sorted_usec_list_t sul;
};

static int append(struct http_tx *t, const void *in, size_t len)
{
    if (t->resp_len + len + 1 > HTTP_RESP_MAX) {
        t->too_big = 1;
        return -1;
    }
    if (t->resp_len + len + 1 > t->resp_cap) {
        size_t cap = t->resp_cap ? t->resp_cap : 4096;
        while (cap < t->resp_len + len + 1) cap *= 2;
        char *n = realloc(t->resp, cap);
        if (!n) return -1;
        t->resp = n;
        t->resp_cap = cap;
    }
    memcpy(t->resp + t->resp_len, in, len);
    t->resp_len += len;
    t->resp[t->resp_len] = 0;
    return 0;
}

static int add_headers(struct lws *wsi, struct http_tx *t, unsigned char **p, unsigned char *end)
{
    if (t->bearer) {
        size_t n = strlen(t->bearer) + 8;
        char *v = malloc(n);
        if (!v) return -1;
        snprintf(v, n, "Bearer %s", t->bearer);
        int rc = lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)v, (int)strlen(v),
                                              p, end);
        memset(v, 0, n);
        free(v);
        if (rc) return -1;
    }
    if (t->body) {
        char cl[32];
        int n = snprintf(cl, sizeof cl, "%zu", t->body_len);
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (unsigned char *)"application/json", 16,
                                         p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (unsigned char *)cl, n, p, end))
            return -1;
        lws_client_http_body_pending(wsi, 1);
        lws_callback_on_writable(wsi);
    }
    return 0;
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct http_tx *t = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    (void)user;
    if (!t) return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        t->failed = 1;
        t->done = 1;
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        return add_headers(wsi, t, p, end);
    }
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE: {
        unsigned char *buf = malloc(LWS_PRE + t->body_len + 1);
        if (!buf) return -1;
        memcpy(buf + LWS_PRE, t->body, t->body_len);
        int w = lws_write(wsi, buf + LWS_PRE, t->body_len, LWS_WRITE_HTTP_FINAL);
        free(buf);
        lws_client_http_body_pending(wsi, 0);
        return w < (int)t->body_len ? -1 : 0;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        t->status = (int)lws_http_client_http_response(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 4096], *px = buf + LWS_PRE;
        int lenx = 4096;
        return lws_http_client_read(wsi, &px, &lenx) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        return append(t, in, len) ? -1 : 0;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        t->done = 1;
        lws_cancel_service(lws_get_context(wsi));
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (!t->done && !t->status) t->failed = 1;
        t->done = 1;
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        return 0;
    }
}

static void sul_noop(lws_sorted_usec_list_t *s) { (void)s; }

rtm_status rtm_http_request(const char *method, const char *url, const char *bearer, const char *body,
                            int timeout_ms, int *status, char **resp)
{
    static const struct lws_protocols protos[] = {
        {"rtm-http", cb_http, 0, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    struct lws_context_creation_info info;
    struct lws_client_connect_info i;
    struct lws_context *ctx = NULL;
    struct http_tx t;
    char *copy = NULL, *path = NULL, host[300];
    const char *proto, *addr, *p;
    int port;
    rtm_status st = RTM_ERR_CONNECT;

    if (status) *status = 0;
    if (resp) *resp = NULL;
    if (!method || !url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) return RTM_ERR_INVALID_ARG;
    if (timeout_ms <= 0) timeout_ms = 10000;
    memset(&t, 0, sizeof t);
    t.method = method;
    t.bearer = bearer;
    t.body = body;
    t.body_len = body ? strlen(body) : 0;
    if (!(copy = strdup(url))) return RTM_ERR_NOMEM;
    if (lws_parse_uri(copy, &proto, &addr, &port, &p)) {
        free(copy);
        return RTM_ERR_INVALID_ARG;
    }
    size_t pl = strlen(p) + 2;
    if (!(path = malloc(pl))) {
        free(copy);
        return RTM_ERR_NOMEM;
    }
    snprintf(path, pl, "/%s", p);

    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = 8;
    if (!strcmp(proto, "https")) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (!(ctx = lws_create_context(&info))) {
        st = RTM_ERR_NOMEM;
        goto out;
    }
    memset(&i, 0, sizeof i);
    i.context = ctx;
    i.address = addr;
    i.port = port;
    i.ssl_connection = !strcmp(proto, "https") ? LCCSCF_USE_SSL : 0;
    i.path = path;
    snprintf(host, sizeof host, "%s:%d", addr, port);
    i.host = host;
    i.origin = host;
    i.method = method;
    i.protocol = protos[0].name;
    i.alpn = "http/1.1";
    i.opaque_user_data = &t;
    if (!lws_client_connect_via_info(&i)) t.done = t.failed = 1;

    int64_t deadline = client_mono_ms() + timeout_ms;
    while (!t.done) {
        int64_t left = deadline - client_mono_ms();
        if (left <= 0) break;
        lws_sul_schedule(ctx, 0, &t.sul, sul_noop, (lws_usec_t)left * 1000);
        lws_service(ctx, 0);
    }
    lws_sul_schedule(ctx, 0, &t.sul, NULL, LWS_SET_TIMER_USEC_CANCEL);
    if (!t.done)
        st = RTM_ERR_TIMEOUT;
    else if (t.status && !t.too_big)
        st = RTM_STATUS_OK;
    else
        st = t.too_big ? RTM_ERR_PROTOCOL : RTM_ERR_CONNECT;
out:
    if (ctx) lws_context_destroy(ctx);
    if (st == RTM_STATUS_OK) {
        if (status) *status = t.status;
        if (resp) {
            *resp = t.resp ? t.resp : strdup("");
            t.resp = NULL;
        }
    }
    free(t.resp);
    free(path);
    free(copy);
    return st;
}

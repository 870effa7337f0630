/* http.c: the public listener's plain HTTP: static files from web_root at
 * "/" (index.html, /sdk/rtm.js, ...), the broker's capabilities at
 * GET /.well-known/rtm (how a token may travel: clients that can keep it out
 * of URLs learn here that this broker takes it in the first frame), and,
 * when demo-token is on, the development route GET /demo/token?room=&name=[&peer=]
 * (broker/demo.c). Everything else falls through to lws's default HTTP handling. */
#include "internal.h"

#include "demo.h"
#include "log.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

static struct lws_http_mount m_files, m_demo, m_known;

/* What a client may rely on; public, so any page may read it (CORS *). */
static const char capabilities[] =
    "{\"protocol\":\"rtm.v1\",\"tokenTransports\":[\"query\",\"header\",\"message\"],"
    "\"extensions\":[\"refresh\",\"resume\",\"seq\"]}";

const struct lws_http_mount *brk_mounts(const struct rtm_server *srv)
{
    memset(&m_files, 0, sizeof m_files);
    m_files.mountpoint = "/";
    m_files.mountpoint_len = 1;
    m_files.origin = srv->cfg->web_root;
    m_files.def = "index.html";
    m_files.origin_protocol = LWSMPRO_FILE;
    memset(&m_known, 0, sizeof m_known);
    m_known.mount_next = &m_files;
    m_known.mountpoint = "/.well-known";
    m_known.mountpoint_len = 12;
    m_known.origin = "rtm.v1"; /* the protocol whose callback serves it */
    m_known.origin_protocol = LWSMPRO_CALLBACK;
    if (!srv->cfg->demo_token) return &m_known;
    memset(&m_demo, 0, sizeof m_demo);
    m_demo.mount_next = &m_known;
    m_demo.mountpoint = "/demo";
    m_demo.mountpoint_len = 5;
    m_demo.origin = "rtm.v1";
    m_demo.origin_protocol = LWSMPRO_CALLBACK;
    return &m_demo;
}

static int respond(struct lws *wsi, struct brk_session *s, int status, char *body, int cors)
{
    unsigned char hdr[LWS_PRE + 512], *p = hdr + LWS_PRE, *end = hdr + sizeof hdr - 1;
    s->http_body = body;
    s->http_len = body ? strlen(body) : 0;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, "application/json", (lws_filepos_t)s->http_len,
                                    &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8,
                                     &p, end) ||
        (cors && lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                             (const unsigned char *)"*", 1, &p, end)) ||
        lws_finalize_write_http_header(wsi, hdr + LWS_PRE, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_http(struct lws *wsi, struct brk_session *s, const char *path)
{
    struct rtm_server *srv = lws_context_user(lws_get_context(wsi));
    /* lws 4.1.6 hands a LWSMPRO_CALLBACK mount the full path ("/demo/token"),
     * not the part after the mountpoint. */
    if (strcmp(path, "/.well-known/rtm") == 0) return respond(wsi, s, 200, strdup(capabilities), 1);
    if (!srv->cfg->demo_token || (strcmp(path, "/demo/token") != 0 && strcmp(path, "/token") != 0)) {
        return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ||
               lws_http_transaction_completed(wsi);
    }
    char room[300], name[300], peer[64];
    const char *r = lws_get_urlarg_by_name(wsi, "room=", room, sizeof room);
    const char *n = lws_get_urlarg_by_name(wsi, "name=", name, sizeof name);
    const char *pe = lws_get_urlarg_by_name(wsi, "peer=", peer, sizeof peer);
    char *json = NULL;
    int status = 500;
    if (brk_demo_token(srv, r ? r : "", n ? n : "", pe, &json, &status) || !json) {
        free(json);
        char fallback[64];
        snprintf(fallback, sizeof fallback, "{\"error\":\"%s\"}", rtm_wire(RTM_WIRE_INTERNAL_ERROR)->code);
        json = strdup(fallback);
        if (status < 400) status = 500;
    }
    return respond(wsi, s, status, json, 0);
}

static int on_http_writeable(struct lws *wsi, struct brk_session *s)
{
    if (!s->http_body) return 0;
    unsigned char *buf = malloc(LWS_PRE + s->http_len);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, s->http_body, s->http_len);
    int n = lws_write(wsi, buf + LWS_PRE, s->http_len, LWS_WRITE_HTTP_FINAL);
    free(buf);
    free(s->http_body);
    s->http_body = NULL;
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int brk_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct brk_session *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!s) return -1;
        return on_http(wsi, s, in ? (const char *)in : "");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s && s->http_body) return on_http_writeable(wsi, s);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s) {
            free(s->http_body);
            s->http_body = NULL;
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

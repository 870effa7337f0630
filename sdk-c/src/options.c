/* options.c: rtm_options (a plain settings bag, deep-copied into each client
 * so the caller's copy can be freed at once) and rtm_status_str. */
#include "rtm_internal.h"

#include <stdlib.h>
#include <string.h>

const char *rtm_status_str(rtm_status s)
{
    switch (s) {
    case RTM_STATUS_OK: return "ok";
    case RTM_ERR_INVALID_ARG: return "invalid argument";
    case RTM_ERR_NOMEM: return "out of memory";
    case RTM_ERR_QUEUE_FULL: return "outbound queue full";
    case RTM_ERR_TOO_BIG: return "frame larger than the broker's maxMessageSize";
    case RTM_ERR_SERVER: return "the broker answered with an error";
    case RTM_ERR_TIMEOUT: return "timed out";
    case RTM_ERR_DISCONNECTED: return "disconnected before an answer";
    case RTM_ERR_CLOSED: return "client closed";
    case RTM_ERR_STATE: return "not valid in the current state";
    case RTM_ERR_CONNECT: return "could not connect";
    case RTM_ERR_AUTH: return "token or key refused";
    case RTM_ERR_HTTP: return "HTTP error status";
    case RTM_ERR_PROTOCOL: return "protocol error";
    case RTM_ERR_CRYPTO: return "signing failed";
    case RTM_ERR_NO_TOKEN: return "no token";
    }
    return "unknown status";
}

rtm_options *rtm_options_new(void)
{
    rtm_options *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->q_frames = RTM_DEFAULT_QUEUE_FRAMES;
    o->q_bytes = RTM_DEFAULT_QUEUE_BYTES;
    o->timeout_ms = RTM_DEFAULT_TIMEOUT_MS;
    o->ping_ms = RTM_DEFAULT_PING_MS;
    o->idle_ms = RTM_DEFAULT_IDLE_MS;
    o->backoff_ms = RTM_DEFAULT_BACKOFF_MS;
    o->backoff_cap_ms = RTM_DEFAULT_BACKOFF_CAP_MS;
    o->ext = 1;
    return o;
}

void options_clear(struct rtm_options *o)
{
    free(o->url);
    free(o->pk);
    free(o->origin);
    if (o->token) {
        /* tokens are credentials: do not leave them in freed heap */
        memset(o->token, 0, strlen(o->token));
        free(o->token);
    }
    o->url = o->token = o->pk = o->origin = NULL;
}

void rtm_options_free(rtm_options *o)
{
    if (!o) return;
    options_clear(o);
    free(o);
}

static rtm_status set_str(char **dst, const char *v, size_t max)
{
    char *n = NULL;
    if (v) {
        if (strlen(v) > max) return RTM_ERR_INVALID_ARG;
        if (!(n = strdup(v))) return RTM_ERR_NOMEM;
    }
    free(*dst);
    *dst = n;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_url(rtm_options *o, const char *url)
{
    if (!o || !url || (strncmp(url, "ws://", 5) && strncmp(url, "wss://", 6))) return RTM_ERR_INVALID_ARG;
    return set_str(&o->url, url, 2048);
}

rtm_status rtm_options_set_token(rtm_options *o, const char *token)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    if (o->token) memset(o->token, 0, strlen(o->token));
    return set_str(&o->token, token, RTM_MAX_TOKEN_LEN);
}

rtm_status rtm_options_set_token_provider(rtm_options *o, rtm_token_provider_fn fn, void *ud)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    o->provider = fn;
    o->provider_ud = ud;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_publishable_key(rtm_options *o, const char *pk)
{
    if (!o || (pk && strncmp(pk, "pk_", 3))) return RTM_ERR_INVALID_ARG;
    for (const char *p = pk; p && *p; p++) /* it goes into the query string as is */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return RTM_ERR_INVALID_ARG;
    return set_str(&o->pk, pk, 200);
}

rtm_status rtm_options_set_origin(rtm_options *o, const char *origin)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    return set_str(&o->origin, origin, 512);
}

rtm_status rtm_options_set_callbacks(rtm_options *o, const struct rtm_callbacks *cb, void *ud)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    if (cb)
        o->cb = *cb;
    else
        memset(&o->cb, 0, sizeof o->cb);
    o->cb_ud = ud;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_queue_limits(rtm_options *o, size_t max_frames, size_t max_bytes)
{
    if (!o || !max_frames || !max_bytes) return RTM_ERR_INVALID_ARG;
    o->q_frames = max_frames;
    o->q_bytes = max_bytes;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_request_timeout(rtm_options *o, int ms)
{
    if (!o || ms <= 0) return RTM_ERR_INVALID_ARG;
    o->timeout_ms = ms;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_liveness(rtm_options *o, int ping_ms, int idle_ms)
{
    /* idle_ms below ping_ms closes every quiet session: allowed (tests use it
     * to cut a socket), but not what production code wants */
    if (!o || ping_ms <= 0 || idle_ms <= 0) return RTM_ERR_INVALID_ARG;
    o->ping_ms = ping_ms;
    o->idle_ms = idle_ms;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_backoff(rtm_options *o, int base_ms, int cap_ms)
{
    if (!o || base_ms <= 0 || cap_ms < base_ms) return RTM_ERR_INVALID_ARG;
    o->backoff_ms = base_ms;
    o->backoff_cap_ms = cap_ms;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_sender_metadata(rtm_options *o, int on)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    o->sender_metadata = !!on;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_extensions(rtm_options *o, int on)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    o->ext = !!on;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_token_transport(rtm_options *o, rtm_token_transport t)
{
    if (!o || (t != RTM_TOKEN_IN_URL && t != RTM_TOKEN_IN_MESSAGE)) return RTM_ERR_INVALID_ARG;
    o->auth_message = t == RTM_TOKEN_IN_MESSAGE;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_raw_messages(rtm_options *o, int on)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    o->raw_messages = !!on;
    return RTM_STATUS_OK;
}

rtm_status rtm_options_set_lws_context(rtm_options *o, struct lws_context *ctx)
{
    if (!o) return RTM_ERR_INVALID_ARG;
    o->ctx = ctx;
    return RTM_STATUS_OK;
}

int options_copy(struct rtm_options *dst, const struct rtm_options *src)
{
    *dst = *src;
    dst->url = dst->token = dst->pk = dst->origin = NULL;
    if ((src->url && !(dst->url = strdup(src->url))) || (src->token && !(dst->token = strdup(src->token))) ||
        (src->pk && !(dst->pk = strdup(src->pk))) || (src->origin && !(dst->origin = strdup(src->origin)))) {
        options_clear(dst);
        return -1;
    }
    return 0;
}

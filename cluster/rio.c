/* rio.c: hiredis on libwebsockets' loop through raw descriptor adoption (see rio.h).
 *
 * One struct rio per hiredis context, freed by hiredis's cleanup hook. lws
 * owns a dup() of the socket so that each side closes only its own
 * descriptor. lws always watches the descriptor for reading, so hiredis's
 * add/del read hooks have nothing to do; a spurious read event costs hiredis
 * one EAGAIN. */
#include "rio.h"

#include "log.h"

#include <hiredis.h>
#include <async.h>
#include <adapters/libev.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RIO_PROTOCOL "rtm-redis"

struct rio {
    redisAsyncContext *ac; /* NULL once hiredis let go */
    struct lws *wsi;       /* NULL once lws closed its side */
    void (*on_lost)(void *arg);
    void *arg;
};

static void add_write(void *priv)
{
    struct rio *r = priv;
    if (r->wsi) lws_callback_on_writable(r->wsi);
}

static void nothing(void *priv) { (void)priv; }

static void cleanup(void *priv)
{
    struct rio *r = priv;
    if (r->wsi) {
        lws_set_opaque_user_data(r->wsi, NULL);
        lws_set_timeout(r->wsi, PENDING_TIMEOUT_AWAITING_PROXY_RESPONSE, LWS_TO_KILL_ASYNC);
    }
    free(r);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct rio *r = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (r && r->ac) redisAsyncHandleRead(r->ac); /* may free ac (and r): nothing after */
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (r && r->ac) redisAsyncHandleWrite(r->ac);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (r) {
            r->wsi = NULL;
            lws_set_opaque_user_data(wsi, NULL);
            if (r->ac && r->on_lost) r->on_lost(r->arg);
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {RIO_PROTOCOL, callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct lws_vhost *rio_vhost(struct lws_context *ctx)
{
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "cluster");
    if (vh) return vh;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = "cluster";
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    vh = lws_create_vhost(ctx, &info);
    if (!vh) log_error("cluster: cannot create the vhost for Redis connections");
    return vh;
}

int rio_attach(struct lws_vhost *vh, redisAsyncContext *ac, void (*on_lost)(void *arg), void *arg)
{
    struct rio *r = calloc(1, sizeof *r);
    if (!r) return -1;
    int fd = dup(ac->c.fd);
    if (fd < 0) {
        free(r);
        return -1;
    }
    r->ac = ac;
    r->on_lost = on_lost;
    r->arg = arg;
    lws_adopt_desc_t d;
    memset(&d, 0, sizeof d);
    d.vh = vh;
    d.type = LWS_ADOPT_RAW_FILE_DESC;
    d.fd.filefd = fd;
    d.vh_prot_name = RIO_PROTOCOL;
    d.opaque = r;
    r->wsi = lws_adopt_descriptor_vhost_via_info(&d);
    if (!r->wsi) {
        close(fd); /* 4.1.6 leaves a file descriptor it failed to adopt open (only sockets are closed) */
        free(r);
        return -1;
    }
    ac->ev.data = r;
    ac->ev.addRead = nothing;
    ac->ev.delRead = nothing;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = nothing;
    ac->ev.cleanup = cleanup;
    /* The connect completes on the first writable event. */
    lws_callback_on_writable(r->wsi);
    return 0;
}

int rio_attach_ev(struct ev_loop *ev, redisAsyncContext *ac)
{
    return redisLibevAttach(ev, ac) == REDIS_OK ? 0 : -1;
}

/* bus_reply.c: a reply that waits for the bus's result (common/bus.h). The
 * bus answers at once with the broker in this process or with the store, and
 * later in cluster mode (every node asked, within cluster-timeout-ms). The
 * handler does not need to know which: while the bus call runs the reply goes
 * on the handler's own request; once it returned, on a later reply
 * (mint_reply_later), which a closed connection just drops. */
#include "api.h"

#include <stdlib.h>
#include <string.h>

struct mint_bus_call {
    struct mint_req *now;     /* the handler's request while the bus call runs */
    int answered_now;
    int started;
    struct mint_later *later; /* afterwards; NULL if it could not be allocated (then answered 500) */
    mint_bus_reply_fn *fn;
    char ctx[];
};

struct mint_bus_call *mint_bus_call_new(struct mint_req *rq, mint_bus_reply_fn *fn, const void *ctx, size_t len)
{
    struct mint_bus_call *c = calloc(1, sizeof *c + len);
    if (!c) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    c->now = rq;
    c->fn = fn;
    if (len) memcpy(c->ctx, ctx, len);
    return c;
}

void mint_bus_call_done(void *arg, const struct rtm_bus_result *r)
{
    struct mint_bus_call *c = arg;
    struct mint_req *rq = c->now ? c->now : c->later ? mint_later_req(c->later) : NULL;
    if (rq) c->fn(rq, r, c->ctx);
    if (c->now) {
        c->answered_now = 1; /* mint_bus_call_started frees it */
        return;
    }
    if (c->later) mint_later_send(c->later);
    free(c);
}

void mint_bus_call_started(struct mint_bus_call *c)
{
    if (c->answered_now) {
        free(c);
        return;
    }
    struct mint_req *rq = c->now;
    c->now = NULL;
    if (!(c->later = mint_reply_later(rq))) mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
}

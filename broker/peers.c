/* peers.c: peers online, by (app, peerId). A peer is the set of its
 * connections: presence is per peer, a direct send reaches every connection,
 * and the peer record lives exactly as long as its first to last connection. */
#include "internal.h"

#include "errors.h"
#include "log.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int join_key(char *out, size_t outlen, const char *app, const char *name)
{
    int n = snprintf(out, outlen, "%s\x1f%s", app, name);
    return n < 0 || (size_t)n >= outlen ? RTM_EINVAL : 0;
}

struct brk_peer *peer_find(struct brk_broker *b, const char *app, const char *peer_id)
{
    char key[65 + 1 + RTM_MAX_PEER_ID + 1];
    if (join_key(key, sizeof key, app, peer_id)) return NULL;
    return htab_get(&b->peers, key);
}

void peer_set_metadata(struct brk_peer *p, const json_t *pm, const char *text)
{
    free(p->meta_text);
    p->meta_text = !pm ? NULL : text ? strdup(text) : json_dumps(pm, JSON_COMPACT);
    p->meta_len = p->meta_text ? strlen(p->meta_text) : 0;
    /* Out of memory: the peer goes without metadata rather than with stale text. */
    if (pm && !p->meta_text) log_error("broker: out of memory serializing peerMetadata of peer=%s", p->peer_id);
}

json_t *peer_metadata_json(const struct brk_peer *p)
{
    return p->meta_text ? json_loadb(p->meta_text, p->meta_len, 0, NULL) : NULL;
}

int peer_attach(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    struct brk_peer *p = peer_find(b, s->app, s->claims.sub);
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return RTM_ENOMEM;
        size_t klen = strlen(s->app) + 1 + strlen(s->claims.sub) + 1;
        p->key = malloc(klen);
        if (!p->key || join_key(p->key, klen, s->app, s->claims.sub) || htab_put(&b->peers, p->key, p)) {
            free(p->key);
            free(p);
            return RTM_ENOMEM;
        }
        p->peer_id = p->key + strlen(s->app) + 1;
        snprintf(p->app, sizeof p->app, "%s", s->app);
        xnode_peer_dirty(b, p); /* now on this node */
    }
    /* The newest connection's token speaks for the peer's public metadata. */
    peer_set_metadata(p, s->claims.peer_metadata, s->claims.peer_metadata_text);

    s->peer = p;
    s->peer_prev = NULL;
    s->peer_next = p->sessions;
    if (p->sessions) p->sessions->peer_prev = s;
    p->sessions = s;
    p->n_sessions++;
    presence_changed(b);
    return 0;
}

void peer_detach(struct brk_session *s)
{
    struct brk_peer *p = s->peer;
    if (!p) return;
    if (s->peer_prev) s->peer_prev->peer_next = s->peer_next;
    else p->sessions = s->peer_next;
    if (s->peer_next) s->peer_next->peer_prev = s->peer_prev;
    s->peer = NULL;
    s->peer_next = s->peer_prev = NULL;
    presence_changed(s->b);
    if (--p->n_sessions > 0) return;
    xnode_peer_dirty(s->b, p); /* no longer on this node */
    htab_del(&s->b->peers, p->key);
    peer_set_metadata(p, NULL, NULL);
    free(p->key);
    free(p);
}

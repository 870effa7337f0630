/* members.c: each subscribed channel's member list, kept from the broker's
 * presence snapshot and deltas.
 *
 * Design: a sorted array per channel (binary search), so a snapshot of a
 * thousand members costs n log n, not n squared. Deltas are filtered
 * against the list (a join of a present member or a leave of an absent one
 * is not reported), and after a reconnect the first snapshot replaces the
 * list and only the difference is reported: the application never sees a
 * peer leave and rejoin because we reconnected. */
#include "rtm_internal.h"
#include "json_dump.h"

#include <stdlib.h>
#include <string.h>

struct chan *chan_find(struct rtm_client *c, const char *name)
{
    for (struct chan *ch = c->chans; ch; ch = ch->next)
        if (!strcmp(ch->name, name)) return ch;
    return NULL;
}

struct chan *chan_add(struct rtm_client *c, const char *name)
{
    struct chan *ch = calloc(1, sizeof *ch);
    if (!ch || !(ch->name = strdup(name))) {
        free(ch);
        return NULL;
    }
    /* appended, so replays go out in subscription order */
    struct chan **pp = &c->chans;
    while (*pp) pp = &(*pp)->next;
    *pp = ch;
    return ch;
}

static void members_clear(struct chan *ch)
{
    for (size_t i = 0; i < ch->n; i++) {
        free(ch->m[i].peer_id);
        free(ch->m[i].metadata);
    }
    free(ch->m);
    ch->m = NULL;
    ch->n = ch->cap = 0;
}

static void chan_free(struct chan *ch)
{
    members_clear(ch);
    free(ch->name);
    free(ch);
}

void chan_remove(struct rtm_client *c, const char *name)
{
    for (struct chan **pp = &c->chans; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name)) continue;
        struct chan *ch = *pp;
        *pp = ch->next;
        chan_free(ch);
        return;
    }
}

void chans_free(struct rtm_client *c)
{
    while (c->chans) {
        struct chan *ch = c->chans;
        c->chans = ch->next;
        chan_free(ch);
    }
}

/* Index of peer in ch, or -(insertion point) - 1. */
static long find(const struct chan *ch, const char *peer)
{
    size_t lo = 0, hi = ch->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strcmp(ch->m[mid].peer_id, peer);
        if (!d) return (long)mid;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static int insert(struct chan *ch, long at, const char *peer, const char *meta)
{
    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 8;
        struct member *m = realloc(ch->m, cap * sizeof *m);
        if (!m) return -1;
        ch->m = m;
        ch->cap = cap;
    }
    struct member nm = {strdup(peer), meta ? strdup(meta) : NULL};
    if (!nm.peer_id || (meta && !nm.metadata)) {
        free(nm.peer_id);
        free(nm.metadata);
        return -1;
    }
    memmove(ch->m + at + 1, ch->m + at, (ch->n - (size_t)at) * sizeof *ch->m);
    ch->m[at] = nm;
    ch->n++;
    return 0;
}

static void erase(struct chan *ch, long at)
{
    free(ch->m[at].peer_id);
    free(ch->m[at].metadata);
    memmove(ch->m + at, ch->m + at + 1, (ch->n - (size_t)at - 1) * sizeof *ch->m);
    ch->n--;
}

/* The (peerId, metadata-as-text) pairs of a joined/left array; invalid entries skipped. */
static size_t collect(json_t *arr, struct member *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr) && k < max; i++) {
        json_t *e = json_array_get(arr, i);
        const char *p = json_string_value(json_object_get(e, "peerId"));
        if (!p) continue;
        json_t *md = json_object_get(e, "metadata");
        out[k].peer_id = (char *)p;
        out[k].metadata = md ? rtm_json_dumps(md, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        k++;
    }
    return k;
}

static void report(struct rtm_client *c, struct chan *ch, struct member *j, size_t nj, struct member *l, size_t nl)
{
    if (!c->o.cb.presence || (!nj && !nl) || c->free_pending) return;
    struct rtm_member *rj = calloc(nj + 1, sizeof *rj), *rl = calloc(nl + 1, sizeof *rl);
    if (rj && rl) {
        for (size_t i = 0; i < nj; i++) rj[i] = (struct rtm_member){j[i].peer_id, j[i].metadata};
        for (size_t i = 0; i < nl; i++) rl[i] = (struct rtm_member){l[i].peer_id, l[i].metadata};
        struct rtm_presence p = {ch->name, rj, nj, rl, nl};
        char *name = strdup(ch->name); /* the callback may unsubscribe (frees ch) */
        p.channel = name ? name : "";
        CB_ENTER(c);
        c->o.cb.presence(c, &p, c->o.cb_ud);
        CB_LEAVE(c);
        free(name);
    }
    free(rj);
    free(rl);
}

void members_apply(struct rtm_client *c, struct chan *ch, json_t *joined, json_t *left, int snapshot)
{
    size_t nj_in = json_is_array(joined) ? json_array_size(joined) : 0;
    size_t nl_in = json_is_array(left) ? json_array_size(left) : 0;
    struct member *jin = calloc(nj_in + 1, sizeof *jin), *lin = calloc(nl_in + 1, sizeof *lin);
    /* what is reported: borrowed peer ids, owned metadata text */
    struct member *rj = NULL, *rl = NULL;
    size_t nrj = 0, nrl = 0, nj = 0, nl = 0;
    char **old_ids = NULL;
    if (!jin || !lin) goto out;
    nj = collect(joined, jin, nj_in);
    nl = collect(left, lin, nl_in);

    if (snapshot && ch->resync) {
        /* replace: report members gone and members new since before the reconnect */
        ch->resync = 0;
        rj = calloc(nj + 1, sizeof *rj);
        rl = calloc(ch->n + 1, sizeof *rl);
        old_ids = calloc(ch->n + 1, sizeof *old_ids);
        if (!rj || !rl || !old_ids) goto out;
        struct chan fresh = {0};
        for (size_t i = 0; i < nj; i++) {
            long at = find(&fresh, jin[i].peer_id);
            if (at >= 0) continue;
            if (insert(&fresh, -at - 1, jin[i].peer_id, jin[i].metadata)) break;
            if (find(ch, jin[i].peer_id) < 0) rj[nrj++] = jin[i];
        }
        for (size_t i = 0; i < ch->n; i++)
            if (find(&fresh, ch->m[i].peer_id) < 0) {
                old_ids[nrl] = ch->m[i].peer_id; /* kept alive until after the report */
                ch->m[i].peer_id = NULL;
                rl[nrl] = (struct member){old_ids[nrl], NULL};
                nrl++;
            }
        for (size_t i = 0; i < ch->n; i++) {
            free(ch->m[i].peer_id);
            free(ch->m[i].metadata);
        }
        free(ch->m);
        ch->m = fresh.m;
        ch->n = fresh.n;
        ch->cap = fresh.cap;
        report(c, ch, rj, nrj, rl, nrl);
        goto out;
    }

    rj = calloc(nj + 1, sizeof *rj);
    rl = calloc(nl + 1, sizeof *rl);
    if (!rj || !rl) goto out;
    for (size_t i = 0; i < nl; i++) {
        long at = find(ch, lin[i].peer_id);
        if (at < 0) continue;
        erase(ch, at);
        rl[nrl++] = lin[i];
    }
    for (size_t i = 0; i < nj; i++) {
        long at = find(ch, jin[i].peer_id);
        if (at >= 0) continue;
        if (insert(ch, -at - 1, jin[i].peer_id, jin[i].metadata)) break;
        rj[nrj++] = jin[i];
    }
    if (snapshot) ch->resync = 0;
    report(c, ch, rj, nrj, rl, nrl);
out:
    for (size_t i = 0; i < nj; i++) free(jin[i].metadata);
    for (size_t i = 0; i < nl; i++) free(lin[i].metadata);
    for (size_t i = 0; old_ids && i < nrl; i++) free(old_ids[i]);
    free(old_ids);
    free(jin);
    free(lin);
    free(rj);
    free(rl);
}

int rtm_members(rtm_client *c, const char *channel, void (*fn)(const struct rtm_member *m, void *ud), void *ud)
{
    if (!c || !channel) return RTM_ERR_INVALID_ARG;
    struct chan *ch = chan_find(c, channel);
    if (!ch) return RTM_ERR_STATE;
    int n = (int)ch->n;
    for (size_t i = 0; fn && i < ch->n; i++) {
        struct rtm_member m = {ch->m[i].peer_id, ch->m[i].metadata};
        fn(&m, ud);
    }
    return n;
}

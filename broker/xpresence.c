/* xpresence.c: presence across nodes, per peerId (docs/CLUSTER.md "Presence").
 *
 * Redis holds, per channel, the hash rtm:pr:<app>:<channel> of entries
 * "<peer>\x1f<node>" -> the peer's metadata plus a version field "#v", and
 * rtm:pc:<app>:<channel> with each peer's number of nodes. A node writes only
 * its own entries (coalesced per loop turn, like the peer records). The
 * script publishes a join on the channel's Redis channel only when a peer's
 * count goes 0 -> 1 and a leave only at 1 -> 0, with the version before and
 * after: a peer on two nodes joins once and leaves once, after its last
 * connection anywhere. The reaping of a dead node (xbeat.c) runs the same
 * leave, so its peers leave everywhere, except those that reconnected
 * elsewhere (their count stays above 0: no flicker).
 *
 * Each node keeps, per channel with subscribers here, the cluster's member
 * table; its clients' snapshots and deltas come from it (channels.c). The
 * table is fetched once the node's subscription is confirmed; deltas that
 * arrive meanwhile are buffered and those the snapshot already holds (version
 * not above it) dropped, so none is lost or doubled. A delta applies when its
 * previous version is the table's; anything else is a gap, and the table is
 * fetched again and compared, clients getting only the difference.
 *
 * When a shard comes back (Redis may have restarted empty, or stalled), the
 * node writes its entries again and, after a grace for the other nodes to do
 * the same, fetches and compares every table of that shard. Deltas of the
 * grace are not applied (the comparison covers them), so clients see only
 * real changes, late by at most the grace. While a shard is down, local joins
 * are shown at once (true whatever the others hold), a channel first used
 * then starts from this node's members, and leaves wait for the comparison
 * (the peer may be on another node). */
#include "xnode.h"
#include "msgbuild.h"

#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_MAX 4096       /* deltas buffered per channel while its table is fetched; beyond, fetched again */
#define REBUILD_GRACE_MS 3000 /* after a shard is back; the other nodes' reconnect backoff is at most 2 s */

/* A member of the cluster table: owned by the table (the key lives in it). */
struct xpr_member {
    char *meta; /* metadata JSON text, NULL when none */
    size_t mlen;
    char peer_id[];
};

/* A delta buffered while the table is fetched (at most BUFFER_MAX per channel). */
struct xpr_delta {
    struct xpr_delta *next;
    long long prev, ver;
    int join;
    char *meta;
    size_t mlen;
    char peer_id[];
};

enum xpr_state { XPR_NEW, XPR_FETCHING, XPR_SYNCED };

/* One per channel with subscribers on this node (ch->xp); freed with the last. */
struct xpr_chan {
    struct htab members; /* peerId -> struct xpr_member */
    long long ver;       /* the version the table is at */
    enum xpr_state state;
    unsigned fetched : 1;    /* fetched at least once: snapshots can be given */
    unsigned rebuilding : 1; /* waits for a fetch after a shard came back (or a failed fetch) */
    unsigned overflow : 1;   /* the buffer overflowed during this fetch: fetch again */
    uint64_t gen;            /* the latest fetch (xn->pfetch_seq); older answers are ignored */
    struct xpr_delta *buf, *buf_tail;
    int n_buf;
};

/* A fetch in flight: which channel and which fetch, by key (the channel may
 * go meanwhile, and a new table may take its key: the fetch number is the
 * node's, not the table's, so the old table's answer never matches the new). */
struct fetch_arg {
    uint64_t gen;
    char key[];
};

/* KEYS[1] the presence hash, KEYS[2] this node's index; ARGV[1] this node,
 * ARGV[2] the peer, ARGV[3] 'j' or 'l', ARGV[4] the metadata (join) or '1'
 * when this node has no member left in the channel (leave). */
static const char PRESENCE_SCRIPT[] = XPR_LUA
    "local k, node, peer = KEYS[1], ARGV[1], ARGV[2]\n"
    "if ARGV[3] == 'j' then\n"
    "  redis.call('SADD', KEYS[2], k)\n"
    "  if redis.call('HSET', k, peer .. '\\31' .. node, ARGV[4]) == 0 then return 0 end\n"
    "  if redis.call('HINCRBY', 'rtm:pc:' .. string.sub(k, 8), peer, 1) > 1 then return 0 end\n"
    "  pr_bump(k, peer, ARGV[4], 'j', node)\n"
    "  return 1\n"
    "end\n"
    "local n = pr_leave(k, peer, node)\n"
    "if ARGV[4] == '1' then redis.call('SREM', KEYS[2], k) end\n"
    "return n\n";

/* KEYS[1] the presence hash: "<version>\n" then "<peer>\x1f<metadata>" lines,
 * each peer once. A channel without members answers Redis's clock (in us,
 * the base of a new hash's versions), so every delta before it is older. */
static const char SNAP_SCRIPT[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local v, out, seen = nil, {}, {}\n"
    "for i = 1, #h, 2 do\n"
    "  if h[i] == '#v' then v = h[i + 1]\n"
    "  else\n"
    "    local p = string.match(h[i], '^([^\\31]+)\\31')\n"
    "    if p and not seen[p] then seen[p] = true; out[#out + 1] = p .. '\\31' .. h[i + 1] end\n"
    "  end\n"
    "end\n"
    "if not v then\n"
    "  local t = redis.call('TIME')\n"
    "  v = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))\n"
    "end\n"
    "return v .. '\\n' .. table.concat(out, '\\n')\n";

/* ---- the table ---- */

static void member_free(struct xpr_member *e)
{
    free(e->meta);
    free(e);
}

static void table_clear(struct htab *t)
{
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].key) member_free(t->slots[i].val);
    htab_free(t);
}

static void buf_clear(struct xpr_chan *x)
{
    while (x->buf) {
        struct xpr_delta *d = x->buf;
        x->buf = d->next;
        free(d->meta);
        free(d);
    }
    x->buf_tail = NULL;
    x->n_buf = 0;
}

/* Adds or replaces (metadata only) a member. 0 or -1 on ENOMEM. */
static int table_put(struct htab *t, const char *peer, const char *meta, size_t mlen)
{
    struct xpr_member *e = calloc(1, sizeof *e + strlen(peer) + 1);
    if (!e || (mlen && !(e->meta = strndup(meta, mlen)))) goto fail;
    e->mlen = mlen;
    strcpy(e->peer_id, peer);
    struct xpr_member *old = htab_get(t, peer);
    if (old) {
        htab_del(t, peer);
        member_free(old);
    }
    if (htab_put(t, e->peer_id, e)) goto fail;
    return 0;
fail:
    if (e) member_free(e);
    return -1;
}

/* A change of the table; tell: the channel's clients hear it at the next flush. */
static void table_apply(struct brk_broker *b, struct brk_channel *ch, const char *peer, int join, const char *meta,
                        size_t mlen, int tell)
{
    struct htab *t = &ch->xp->members;
    struct xpr_member *e = htab_get(t, peer);
    if (join) {
        if (table_put(t, peer, meta, mlen)) {
            log_error("cluster: out of memory recording presence of peer=%s in %s", peer, ch->name);
            return;
        }
        if (!e && tell) chan_presence_record(b, ch, peer, meta, mlen, 1);
    } else if (e) {
        htab_del(t, peer);
        member_free(e);
        if (tell) chan_presence_record(b, ch, peer, NULL, 0, 0);
    }
}

void xpresence_chan_free(struct brk_channel *ch)
{
    struct xpr_chan *x = ch->xp;
    if (!x) return;
    table_clear(&x->members);
    buf_clear(x);
    free(x);
    ch->xp = NULL;
}

int xpresence_ready(const struct brk_channel *ch) { return ch->xp->fetched; }

uint32_t xpresence_count(const struct brk_channel *ch) { return ch->xp->members.n; }

struct brk_msg *xpresence_snapshot(const struct brk_channel *ch, const char *self)
{
    const struct htab *t = &ch->xp->members;
    struct mb m;
    mb_init(&m, 128 + t->n * 64);
    mb_lit(&m, "{\"type\":\"presence\",\"channel\":");
    mb_str(&m, ch->name);
    mb_lit(&m, ",\"joined\":[");
    int first = 1;
    for (uint32_t i = 0; i < t->cap; i++) {
        const struct xpr_member *e = t->slots[i].key ? t->slots[i].val : NULL;
        if (!e || strcmp(e->peer_id, self) == 0) continue;
        if (!first) mb_lit(&m, ",");
        first = 0;
        mb_member(&m, e->peer_id, e->meta, e->mlen);
    }
    mb_lit(&m, "],\"left\":[]}");
    return mb_finish(&m);
}

/* ---- names ---- */

/* The channel's Redis channel (the shard key) and presence hash. 0 or -1. */
static int names_of(const struct brk_channel *ch, char *cname, char *pname)
{
    char app[80];
    snprintf(app, sizeof app, "%.*s", (int)(ch->name - ch->key - 1), ch->key);
    return clu_channel_name(cname, CLU_NAME_MAX, app, ch->name) < 0 ||
                   clu_presence_name(pname, CLU_NAME_MAX, app, ch->name) < 0
               ? -1
               : 0;
}

/* The channel of a Redis channel name "rtm:c:<len>:<app>:<channel>", or NULL. */
static struct brk_channel *chan_of_redis(struct brk_broker *b, const char *name)
{
    char *end;
    if (strncmp(name, "rtm:c:", 6) != 0) return NULL;
    unsigned long len = strtoul(name + 6, &end, 10);
    if (*end != ':' || len > 64 || strlen(end + 1) < len + 1 || end[1 + len] != ':') return NULL;
    char app[80];
    snprintf(app, sizeof app, "%.*s", (int)len, end + 1);
    return chan_find(b, app, end + 2 + len);
}

/* ---- fetching a table ---- */

static void fetch(struct brk_xnode *xn, struct brk_channel *ch);

static void rebuild_cb(struct rtm_timer *t)
{
    struct brk_xnode *xn = lws_container_of(t, struct brk_xnode, rebuild_t);
    struct htab *chans = &xn->b->channels;
    for (uint32_t i = 0; i < chans->cap; i++) {
        struct brk_channel *ch = chans->slots[i].key ? chans->slots[i].val : NULL;
        if (ch && ch->xp && ch->xp->rebuilding && ch->xp->state != XPR_FETCHING) {
            rtm_metric_inc(RTM_M_CLUSTER_PRESENCE_REFETCHED, 1);
            fetch(xn, ch);
        }
    }
}

/* The table waits for a fetch after the grace (a shard came back, or a fetch failed). */
static void need_rebuild(struct brk_xnode *xn, struct xpr_chan *x)
{
    x->rebuilding = 1;
    if (!rtm_timer_armed(&xn->rebuild_t)) rtm_timer_in(xn->b->timers, &xn->rebuild_t, rebuild_cb, REBUILD_GRACE_MS);
}

/* Applies a delta to a fetched table: 0 (applied, or already in it), -1 on a gap. */
static int apply_delta(struct brk_broker *b, struct brk_channel *ch, long long prev, long long ver, const char *peer,
                       int join, const char *meta, size_t mlen)
{
    struct xpr_chan *x = ch->xp;
    /* prev 0: the hash was new, the members before it none. */
    if (prev == x->ver || (prev == 0 && x->members.n == 0 && ver > x->ver)) {
        table_apply(b, ch, peer, join, meta, mlen, 1);
        x->ver = ver;
        return 0;
    }
    return ver <= x->ver ? 0 : -1;
}

/* Parses a snapshot into t; its version in *ver. 0 or -1. */
static int parse_snapshot(const char *text, size_t len, struct htab *t, long long *ver)
{
    const char *p = text, *end = text + len;
    const char *nl = memchr(p, '\n', len);
    if (!nl) return -1;
    char num[32];
    if ((size_t)(nl - p) >= sizeof num) return -1;
    memcpy(num, p, (size_t)(nl - p));
    num[nl - p] = '\0';
    *ver = strtoll(num, NULL, 10);
    for (p = nl + 1; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        const char *sep = memchr(p, '\x1f', (size_t)(nl - p));
        char peer[RTM_MAX_PEER_ID + 1];
        if (!sep || sep == p || (size_t)(sep - p) > RTM_MAX_PEER_ID) return -1;
        memcpy(peer, p, (size_t)(sep - p));
        peer[sep - p] = '\0';
        if (table_put(t, peer, sep + 1, (size_t)(nl - sep - 1))) return -1;
    }
    return 0;
}

/* The table becomes the fetched one; after the first fetch, the difference
 * goes to the clients as changes (the repair). Returns how many. */
static int adopt(struct brk_broker *b, struct brk_channel *ch, struct htab *fresh)
{
    struct xpr_chan *x = ch->xp;
    int changes = 0;
    if (x->fetched) {
        for (uint32_t i = 0; i < x->members.cap; i++) {
            const struct xpr_member *e = x->members.slots[i].key ? x->members.slots[i].val : NULL;
            if (e && !htab_get(fresh, e->peer_id)) {
                chan_presence_record(b, ch, e->peer_id, NULL, 0, 0);
                changes++;
            }
        }
        for (uint32_t i = 0; i < fresh->cap; i++) {
            const struct xpr_member *e = fresh->slots[i].key ? fresh->slots[i].val : NULL;
            if (e && !htab_get(&x->members, e->peer_id)) {
                chan_presence_record(b, ch, e->peer_id, e->meta, e->mlen, 1);
                changes++;
            }
        }
    }
    table_clear(&x->members);
    x->members = *fresh;
    return changes;
}

static void fetched(void *arg, int ok, const char *text, size_t len)
{
    struct fetch_arg *a = arg;
    struct brk_xnode *xn = xn_the;
    struct brk_channel *ch = xn && !xn->stopping ? htab_get(&xn->b->channels, a->key) : NULL;
    struct xpr_chan *x = ch ? ch->xp : NULL;
    if (!x || x->gen != a->gen || x->state != XPR_FETCHING) goto out;
    struct htab fresh;
    long long ver = 0;
    htab_init(&fresh, HTAB_STR);
    if (!ok || parse_snapshot(text, len, &fresh, &ver)) {
        /* A lost connection restarts the shard (its coming back fetches again); anything else retries. */
        if (ok) log_error("cluster: unreadable presence snapshot of %s (%zu bytes)", ch->name, len);
        table_clear(&fresh);
        x->state = x->fetched ? XPR_SYNCED : XPR_NEW;
        buf_clear(x);
        need_rebuild(xn, x);
        goto out;
    }
    int changes = adopt(xn->b, ch, &fresh);
    if (changes) rtm_metric_inc(RTM_M_CLUSTER_PRESENCE_REPAIRED, (uint64_t)changes);
    x->ver = ver;
    x->state = XPR_SYNCED;
    x->fetched = 1;
    x->rebuilding = 0;
    int gap = x->overflow;
    for (const struct xpr_delta *d = x->buf; d && !gap; d = d->next)
        gap = apply_delta(xn->b, ch, d->prev, d->ver, d->peer_id, d->join, d->meta, d->mlen) < 0;
    buf_clear(x);
    x->overflow = 0;
    chan_presence_ready(xn->b, ch); /* snapshots that waited for the table */
    if (gap) {
        rtm_metric_inc(RTM_M_CLUSTER_PRESENCE_REFETCHED, 1);
        fetch(xn, ch);
    }
out:
    free(a);
}

static void fetch(struct brk_xnode *xn, struct brk_channel *ch)
{
    struct xpr_chan *x = ch->xp;
    char cname[CLU_NAME_MAX], pname[CLU_NAME_MAX];
    struct fetch_arg *a = malloc(sizeof *a + strlen(ch->key) + 1);
    if (!a || names_of(ch, cname, pname)) goto fail;
    a->gen = x->gen = ++xn->pfetch_seq;
    strcpy(a->key, ch->key);
    const char *argv[4] = {"EVAL", SNAP_SCRIPT, "1", pname};
    size_t lens[4] = {4, sizeof SNAP_SCRIPT - 1, 1, strlen(pname)};
    if (clu_command_text(xn->cl, cname, 4, argv, lens, fetched, a)) goto fail;
    buf_clear(x);
    x->overflow = 0;
    x->state = XPR_FETCHING;
    return;
fail:
    free(a);
    need_rebuild(xn, x); /* the shard is down (its coming back fetches) or memory ran out */
}

/* 1 when the channel's shard is down (its presence waits for it to come back). */
static int shard_down(struct brk_xnode *xn, const struct brk_channel *ch)
{
    char cname[CLU_NAME_MAX], pname[CLU_NAME_MAX];
    return names_of(ch, cname, pname) == 0 && !clu_shard_up(xn->cl, clu_shard_of_chan(xn->cl, cname));
}

void xpresence_chan_open(struct brk_broker *b, struct brk_channel *ch, int confirmed)
{
    if (ch->xp) return;
    struct xpr_chan *x = calloc(1, sizeof *x);
    if (!x) {
        log_error("cluster: out of memory: channel %s shows this node's members only", ch->name);
        return;
    }
    htab_init(&x->members, HTAB_STR);
    ch->xp = x;
    if (shard_down(b->xn, ch)) {
        /* Nothing to fetch from: this node's own members stand in (snapshots go
         * out now), and the shard's return fetches and compares as after any outage. */
        for (uint32_t i = 0; i < ch->members.cap; i++) {
            const struct brk_peer *p = ch->members.slots[i].key;
            if (p) table_apply(b, ch, p->peer_id, 1, p->meta_text, p->meta_len, 0);
        }
        x->fetched = 1;
        x->state = XPR_SYNCED;
        need_rebuild(b->xn, x);
    } else if (confirmed) {
        fetch(b->xn, ch);
    }
}

void xpresence_subscribed(struct brk_xnode *xn, const char *chan)
{
    struct brk_channel *ch = chan_of_redis(xn->b, chan);
    if (ch && ch->xp && ch->xp->state == XPR_NEW && !ch->xp->rebuilding) fetch(xn, ch);
}

/* ---- deltas ---- */

void xpresence_delta(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *channel,
                     const char *peer)
{
    struct brk_channel *ch = chan_find(xn->b, app, channel);
    struct xpr_chan *x = ch ? ch->xp : NULL;
    /* Not fetched yet, or waiting for the rebuild: the coming fetch holds it. */
    if (!x || x->state == XPR_NEW || x->rebuilding) return;
    char vers[64];
    if (m->n[CLU_F_SID] >= sizeof vers) return;
    memcpy(vers, m->f[CLU_F_SID], m->n[CLU_F_SID]);
    vers[m->n[CLU_F_SID]] = '\0';
    char *sp;
    long long prev = strtoll(vers, &sp, 10), ver = strtoll(sp, NULL, 10);
    int join = m->n[CLU_F_DATA] == 1 && m->f[CLU_F_DATA][0] == 'j';
    size_t mlen = join ? m->n[CLU_F_META] : 0;
    if (x->state == XPR_FETCHING) {
        if (x->n_buf >= BUFFER_MAX) {
            x->overflow = 1;
            return;
        }
        struct xpr_delta *d = calloc(1, sizeof *d + strlen(peer) + 1);
        if (!d || (mlen && !(d->meta = strndup(m->f[CLU_F_META], mlen)))) {
            if (d) free(d);
            x->overflow = 1; /* losing it would be a gap: fetch again */
            return;
        }
        d->prev = prev;
        d->ver = ver;
        d->join = join;
        d->mlen = mlen;
        strcpy(d->peer_id, peer);
        if (x->buf_tail) x->buf_tail->next = d;
        else x->buf = d;
        x->buf_tail = d;
        x->n_buf++;
        return;
    }
    if (apply_delta(xn->b, ch, prev, ver, peer, join, m->f[CLU_F_META], mlen) < 0) {
        rtm_metric_inc(RTM_M_CLUSTER_PRESENCE_REFETCHED, 1);
        fetch(xn, ch);
    }
}

/* ---- this node's entries ---- */

static void entry_written(void *arg, int ok, long long value)
{
    char *key = arg; /* owned */
    (void)value;
    /* A failed write is written again at the shard's next "up", with every entry. */
    if (!ok && xn_the && !xn_the->stopping) xn_mark_key(&xn_the->pdirty, key, &xn_the->pdirty_full_logged, "presence entries");
    free(key);
}

/* Writes one (channel, peer) entry as it is now: a join while the peer is a
 * member here, else a leave. 0, or -1 when it could not be sent (kept). */
static int write_entry(struct brk_xnode *xn, const char *key)
{
    const char *asep = strchr(key, '\x1f'), *psep = strrchr(key, '\x1f');
    char chkey[65 + 1 + RTM_MAX_CHANNEL + 1], app[80], cname[CLU_NAME_MAX], pname[CLU_NAME_MAX];
    if (!asep || psep == asep || (size_t)(psep - key) >= sizeof chkey || (size_t)(asep - key) >= sizeof app) return 0;
    snprintf(chkey, sizeof chkey, "%.*s", (int)(psep - key), key);
    snprintf(app, sizeof app, "%.*s", (int)(asep - key), key);
    const char *channel = chkey + (asep - key) + 1, *peer = psep + 1;
    if (clu_channel_name(cname, sizeof cname, app, channel) < 0 ||
        clu_presence_name(pname, sizeof pname, app, channel) < 0)
        return 0;
    struct brk_channel *ch = htab_get(&xn->b->channels, chkey);
    struct brk_peer *p = peer_find(xn->b, app, peer);
    int member = ch && p && htab_get(&ch->members, p);
    const char *arg = member ? (p->meta_text ? p->meta_text : "") : (ch && ch->members.n ? "0" : "1");
    size_t alen = member && p->meta_text ? p->meta_len : strlen(arg);
    const char *argv[9] = {"EVAL", PRESENCE_SCRIPT, "2", pname, xn->index, xn->node, peer, member ? "j" : "l", arg};
    size_t lens[9] = {4, sizeof PRESENCE_SCRIPT - 1, 1, strlen(pname), strlen(xn->index), strlen(xn->node),
                      strlen(peer), 1, alen};
    char *a = strdup(key);
    int rc = a ? clu_command(xn->cl, cname, 9, argv, lens, entry_written, a) : -1;
    if (rc) free(a);
    return rc;
}

void xpresence_flush(struct brk_xnode *xn)
{
    xn_flush_keys(xn, &xn->pdirty, write_entry);
    rtm_timer_cancel(xn->b->timers, &xn->pflush_t);
}

static void pflush_cb(struct rtm_timer *t)
{
    struct brk_xnode *xn = lws_container_of(t, struct brk_xnode, pflush_t);
    xpresence_flush(xn);
}

static void mark_entry(struct brk_xnode *xn, const struct brk_channel *ch, const struct brk_peer *p)
{
    char key[65 + 1 + RTM_MAX_CHANNEL + 1 + RTM_MAX_PEER_ID + 1];
    if (snprintf(key, sizeof key, "%s\x1f%s", ch->key, p->peer_id) >= (int)sizeof key) return;
    xn_mark_key(&xn->pdirty, key, &xn->pdirty_full_logged, "presence entries");
}

void xpresence_member(struct brk_broker *b, struct brk_channel *ch, const struct brk_peer *p)
{
    struct brk_xnode *xn = b->xn;
    if (xn->stopping) return;
    mark_entry(xn, ch, p);
    if (!rtm_timer_armed(&xn->pflush_t)) rtm_timer_in(b->timers, &xn->pflush_t, pflush_cb, 0);
    /* While the shard is down a local join is shown here at once (it is true
     * whatever the other nodes hold); a leave waits for the comparison after the
     * shard's return, since the peer may still be on another node. */
    if (ch->xp && ch->xp->fetched && htab_get(&ch->members, p) && shard_down(xn, ch))
        table_apply(b, ch, p->peer_id, 1, p->meta_text, p->meta_len, 1);
}

void xpresence_shard_up(struct brk_xnode *xn, int shard)
{
    struct htab *chans = &xn->b->channels;
    uint64_t rewritten = 0;
    for (uint32_t i = 0; i < chans->cap; i++) {
        struct brk_channel *ch = chans->slots[i].key ? chans->slots[i].val : NULL;
        char cname[CLU_NAME_MAX], pname[CLU_NAME_MAX];
        if (!ch || !ch->xp || names_of(ch, cname, pname) || clu_shard_of_chan(xn->cl, cname) != shard) continue;
        for (uint32_t j = 0; j < ch->members.cap; j++) {
            const struct brk_peer *p = ch->members.slots[j].key;
            if (!p) continue;
            mark_entry(xn, ch, p);
            rewritten++;
        }
        /* a fetch in flight was answered (with an error) when the shard went down */
        need_rebuild(xn, ch->xp);
    }
    if (rewritten) rtm_metric_inc(RTM_M_CLUSTER_PRESENCE_REWRITTEN, rewritten);
    xpresence_flush(xn);
    /* The grace counts from the last shard that came back. */
    if (rtm_timer_armed(&xn->rebuild_t)) {
        rtm_timer_cancel(xn->b->timers, &xn->rebuild_t);
        rtm_timer_in(xn->b->timers, &xn->rebuild_t, rebuild_cb, REBUILD_GRACE_MS);
    }
}

void xpresence_free(struct brk_xnode *xn) { xn_free_keys(&xn->pdirty); }

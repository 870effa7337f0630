/* xresume.c: resume through another node (cluster mode, docs/CLUSTER.md
 * "Resume through another node"). A client whose place is held on node A
 * reconnects with &resume= through node B: B asks the other nodes, A hands
 * the place over (subscriptions, seq counters, the gap's directs), B resumes
 * the client with it; or, when no node can (A dead, too slow, the place
 * gone), B admits a fresh session with resumed: false. A direct is never
 * lost without the client or the metrics being told.
 *
 * The holder is found with an xask question to every live node (op
 * XASK_RESUME, xask.c): "m" from the node that holds the place and starts
 * moving it, "-" from the others; a node killed with -9 cannot answer, so
 * its places give resumed: false within the question's deadline.
 *
 * The main design choice is the cut. Every direct to a peer runs one script
 * on the peer's shard (xpeers.c), so that shard orders all of them. A's
 * switch script, on the same shard, moves the peer's record from A to B (a
 * direct after it goes to B, not A) and publishes a cut message to both
 * nodes' channels. Each node's subscriber receives the shard's messages in
 * order, and a node's own commands are answered in order, so:
 *   - A ends the place once it has the cut message (every direct from other
 *     nodes before the cut has reached it) and its script's reply (the
 *     replies to its own earlier sends, which deliver locally, have come);
 *     a direct past either cut is refused by the moving place;
 *   - B keeps the directs for the peer that arrive after its cut message,
 *     or whose send script says the peer is moving here (a sender on B),
 *     and resumes only after a command of its own on that shard has been
 *     answered (every earlier send's reply is in): the place's directs,
 *     then the kept ones, each sender's in order and each once.
 * The moved place stays a member on A (it takes no frames) until B says it
 * has resumed the client, so the peer joins on B before it leaves on A
 * (for cluster-wide presence: no flicker).
 *
 * Bounds: HANDOVERS_MAX resumes waiting on a node (beyond, a fresh session at once);
 * every step has the deadline 2 x cluster-timeout-ms; a place on the wire is
 * at most STATE_MAX bytes (else not moved: resumed: false); the directs kept
 * for one hand-over are bounded by resume-queue-messages (the oldest dropped,
 * counted). One move per held place. */
#include "xnode.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDOVERS_MAX 1024
#define STATE_MAX (8u << 20)
#define ID_LEN 40

/* The cut. KEYS[1] the peer's record, KEYS[2] its move key; ARGV[1] the
 * holder, ARGV[2] the new node, ARGV[3] the holder's channels for the peer
 * without the place ("" when nothing of the peer stays there), ARGV[4] the
 * place's channels, ARGV[5] the cut message, ARGV[6] and ARGV[7] the two
 * nodes' indexes, ARGV[8] the move key's life in ms. */
static const char SWITCH_SCRIPT[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[2]) or '\\n'\n"
    "for ch in string.gmatch(ARGV[4], '[^\\n]+') do\n"
    "  if not string.find(cur, '\\n' .. ch .. '\\n', 1, true) then cur = cur .. ch .. '\\n' end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[2], cur); redis.call('SADD', ARGV[7], KEYS[1])\n"
    "if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('SREM', ARGV[6], KEYS[1])\n"
    "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end\n"
    "redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[8])\n"
    "redis.call('PUBLISH', '" CLU_NODE_PREFIX "' .. ARGV[1], ARGV[5])\n"
    "redis.call('PUBLISH', '" CLU_NODE_PREFIX "' .. ARGV[2], ARGV[5])\n"
    "return 1\n";

struct kept {
    char *from;
    struct brk_msg *m;
};

/* One per session waiting on B for a place held elsewhere; on xn->handovers. */
struct xhandover {
    struct xhandover *next, *prev;
    struct brk_xnode *xn;
    struct xwait *w; /* its session (w->s NULL once the socket closed) */
    char id[ID_LEN];
    char app[65], peer[RTM_MAX_PEER_ID + 1], rsid[48];
    char pname[CLU_NAME_MAX];
    char holder[128]; /* the node that cut (or answered "m") */
    int via_message;
    unsigned held_there : 1; /* a node answered "m": its place is coming */
    unsigned asking : 1;     /* inside xask_all: an at-once "not sent" only marks not_sent */
    unsigned not_sent : 1;
    unsigned cut : 1;
    json_t *place;    /* arrived: waiting for the barrier */
    struct kept *kept;
    uint32_t n_kept, cap_kept, dropped;
    struct rtm_timer deadline_t;
};

/* One per held place of this node being moved (A); value of xn->moves. */
struct xmove {
    struct brk_xnode *xn;
    struct brk_session *h;
    char rsid[48]; /* key of xn->moves */
    char to[128], id[ID_LEN], app[65], peer[RTM_MAX_PEER_ID + 1];
    char pname[CLU_NAME_MAX];
    unsigned remote_cut : 1, local_cut : 1, sent : 1;
    struct rtm_timer t; /* the move's deadline; once sent, the wait for "done" */
};

static int64_t deadline_ms(const struct brk_xnode *xn) { return 2 * (int64_t)xn->b->cfg->cluster_timeout_ms; }


/* Publishes a resume message to node's channel through the shard of key. */
static int tell(struct brk_xnode *xn, const char *key, const char *node, char kind, const char *id, const char *app,
                const char *peer, const char *rsid, const char *data, size_t dlen, clu_int_fn *done, void *arg)
{
    char chan[CLU_NAME_MAX];
    const char *f[CLU_FIELDS] = {xn->node, id, app, peer, rsid, NULL, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(id), strlen(app), strlen(peer), strlen(rsid), 0, dlen};
    size_t plen;
    if (clu_node_name(chan, sizeof chan, node) < 0) return -1;
    char *payload = clu_encode(kind, f, n, &plen);
    if (!payload) return -1;
    const char *argv[3] = {"PUBLISH", chan, payload};
    size_t lens[3] = {7, strlen(chan), plen};
    int rc = clu_command(xn->cl, key, 3, argv, lens, done, arg);
    free(payload);
    if (!rc) rtm_metric_inc(RTM_M_CLUSTER_OUT, 1);
    return rc;
}

/* ---- the new node (B): asking, keeping the directs past the cut, resuming ---- */

static struct xhandover *ho_find(struct brk_xnode *xn, const char *id)
{
    for (struct xhandover *a = xn->handovers; a; a = a->next)
        if (strcmp(a->id, id) == 0) return a;
    return NULL;
}

static void kept_drop(struct xhandover *a)
{
    for (uint32_t i = 0; i < a->n_kept; i++) {
        free(a->kept[i].from);
        msg_unref(a->kept[i].m);
    }
    free(a->kept);
    a->kept = NULL;
    a->n_kept = a->cap_kept = 0;
}

static uint32_t place_directs(const json_t *place)
{
    return place ? (uint32_t)json_array_size(json_object_get(place, "directs")) : 0;
}

static void ho_unlink(struct xhandover *a)
{
    struct brk_xnode *xn = a->xn;
    if (a->prev) a->prev->next = a->next;
    else xn->handovers = a->next;
    if (a->next) a->next->prev = a->prev;
    xn->n_handovers--;
}

/* The end of a hand-over: the session is admitted with the place (and the kept
 * directs after it), or fresh without it; what cannot be delivered is counted. */
static void ho_end(struct xhandover *a, json_t *place)
{
    struct brk_xnode *xn = a->xn;
    ho_unlink(a);
    rtm_timer_cancel(xn->b->timers, &a->deadline_t);
    struct brk_session *s = a->w->s;
    uint32_t lost = a->dropped;
    int resumed = 0;
    if (s && s->state == SESS_NEW && !xn->stopping) resumed = conn_admit_place(s, a->rsid, place, a->via_message);
    if (resumed) {
        for (uint32_t i = 0; i < a->n_kept; i++) ext_deliver_direct(s, a->kept[i].from, a->kept[i].m);
        rtm_metric_inc(RTM_M_DIRECT_DELIVERED, a->n_kept);
        log_info("cluster: peer=%s resumed here with its place from node %s and %u direct%s sent during the move",
                 a->peer, a->holder, a->n_kept, a->n_kept == 1 ? "" : "s");
        /* The peer's presence here goes to Redis before the holder hears "done"
         * and lets its copy leave: joined here first, so no one sees it flicker
         * (strictly so when its channels share the peer's shard: one connection). */
        xpresence_flush(xn);
        if (tell(xn, a->pname, a->holder, CLU_RESUME_DONE, a->id, a->app, a->peer, a->rsid, NULL, 0, NULL, NULL))
            log_warn("cluster: could not tell node %s that peer=%s resumed here (its old place leaves on its deadline)",
                     a->holder, a->peer);
    } else {
        lost += a->n_kept + place_directs(place);
    }
    if (lost) {
        rtm_metric_inc(RTM_M_DIRECT_DROPPED, lost);
        log_warn("cluster: %u direct%s to peer=%s app=%s dropped with a resume that did not happen here", lost,
                 lost == 1 ? "" : "s", a->peer, a->app);
    }
    /* The move may have written this node into the peer's record: the truth again. */
    char key[65 + 1 + RTM_MAX_PEER_ID + 1];
    if (!join_key(key, sizeof key, a->app, a->peer)) xpeers_dirty_key(xn, key);
    kept_drop(a);
    wait_free(a->w);
    json_decref(place);
    free(a);
}

static void ho_deadline_cb(struct rtm_timer *t)
{
    struct xhandover *a = lws_container_of(t, struct xhandover, deadline_t);
    log_info("cluster: no node handed over the place of peer=%s app=%s in time: a fresh session", a->peer, a->app);
    json_t *place = a->place; /* arrived, but the barrier did not answer: not delivered */
    a->place = NULL;
    a->dropped += place_directs(place);
    json_decref(place);
    ho_end(a, NULL);
}

/* The question's answers: "m" from the node that holds the place. */
static void ho_answer(void *arg, const char *node, size_t nlen, const char *data, size_t dlen)
{
    struct xhandover *a = xn_the ? ho_find(xn_the, arg) : NULL;
    if (!a || dlen != 1 || data[0] != 'm' || nlen >= sizeof a->holder) return;
    a->held_there = 1;
    if (!a->cut) {
        memcpy(a->holder, node, nlen);
        a->holder[nlen] = '\0';
    }
}

/* Every live node answered (or the question's deadline passed, or it could
 * not be asked): without a holder, a fresh session now. */
static void ho_asked(void *arg, int status, int answered)
{
    (void)status;
    (void)answered;
    struct xhandover *a = xn_the ? ho_find(xn_the, arg) : NULL;
    free(arg);
    if (a && a->asking) a->not_sent = 1;
    else if (a && !a->held_there && !a->cut && !a->place) ho_end(a, NULL);
}

int xresume_ask(struct brk_session *s, int via_message)
{
    struct brk_xnode *xn = s->b->xn;
    if (!xn || xn->stopping || strchr(s->resume_req, '\n')) return -1;
    if (xn->n_handovers >= HANDOVERS_MAX) {
        if (!xn->handovers_full_logged)
            log_warn("cluster: %d resumes wait for other nodes; more get fresh sessions", HANDOVERS_MAX);
        xn->handovers_full_logged = 1;
        return -1;
    }
    xn->handovers_full_logged = 0;
    struct xhandover *a = calloc(1, sizeof *a);
    char *arg = NULL, *data = NULL;
    if (!a || clu_peer_name(a->pname, sizeof a->pname, s->app, s->claims.sub) < 0 ||
        rtm_random_id("rx_", 12, a->id, sizeof a->id) || !(arg = strdup(a->id)) || !(a->w = wait_new(xn, s, NULL)))
        goto fail;
    a->xn = xn;
    a->via_message = via_message;
    snprintf(a->app, sizeof a->app, "%s", s->app);
    snprintf(a->peer, sizeof a->peer, "%s", s->claims.sub);
    snprintf(a->rsid, sizeof a->rsid, "%s", s->resume_req);
    size_t dlen = strlen(a->id) + strlen(a->rsid) + strlen(xn->node) + 3;
    if (!(data = malloc(dlen))) goto fail;
    dlen = (size_t)snprintf(data, dlen, "%s\n%s\n%s", a->id, a->rsid, xn->node);
    /* Listed first: ho_asked finds it by its id, even from inside xask_all. */
    a->next = xn->handovers;
    if (xn->handovers) xn->handovers->prev = a;
    xn->handovers = a;
    xn->n_handovers++;
    a->asking = 1;
    if (xask_all(xn, XASK_RESUME, a->app, a->peer, data, dlen, ho_answer, ho_asked, arg)) {
        ho_unlink(a); /* done never fires: arg is ours */
        goto fail;
    }
    arg = NULL; /* ho_asked frees it */
    a->asking = 0;
    if (a->not_sent) { /* Redis did not take the question: admit now, fresh */
        ho_unlink(a);
        goto fail;
    }
    free(data);
    rtm_timer_in(xn->b->timers, &a->deadline_t, ho_deadline_cb, deadline_ms(xn));
    s->state = SESS_NEW; /* nothing is read until the welcome (an auth frame came already) */
    log_info("cluster: resume of peer=%s app=%s: asking the other nodes for the place", a->peer, a->app);
    return 0;
fail:
    if (a && a->w) wait_free(a->w);
    free(a);
    free(arg);
    free(data);
    return -1;
}

static void barrier_done(void *arg, int ok, long long value)
{
    (void)ok;
    (void)value;
    struct xhandover *a = xn_the ? ho_find(xn_the, arg) : NULL;
    free(arg);
    if (!a || !a->place) return;
    json_t *place = a->place;
    a->place = NULL;
    ho_end(a, place);
}

static void on_place(struct brk_xnode *xn, const struct clu_msg *m, const char *node, const char *id, const char *app,
                     const char *peer)
{
    struct xhandover *a = ho_find(xn, id);
    json_error_t e;
    if (!m->n[CLU_F_DATA]) { /* the holder could not move it: it stays there */
        if (a && !a->place) ho_end(a, NULL);
        return;
    }
    json_t *place = m->n[CLU_F_DATA] <= STATE_MAX ? json_loadb(m->f[CLU_F_DATA], m->n[CLU_F_DATA], 0, &e) : NULL;
    if (!a || a->place || !json_is_object(place)) {
        uint32_t n = place_directs(place);
        rtm_metric_inc(RTM_M_DIRECT_DROPPED, n);
        log_warn("cluster: a place of peer=%s from node %s came too late or malformed (%u directs dropped)", peer,
                 node, n);
        json_decref(place);
        if (a && !a->place) ho_end(a, NULL);
        /* Its switch wrote this node into the peer's record: the truth again. */
        char key[65 + 1 + RTM_MAX_PEER_ID + 1];
        if (!a && !join_key(key, sizeof key, app, peer)) xpeers_dirty_key(xn, key);
        return;
    }
    /* Resume once every earlier reply on the peer's shard is in: a command of
     * our own there (the move key's end) is answered after them. */
    char mv[CLU_NAME_MAX];
    char *arg = strdup(a->id);
    a->place = place;
    if (clu_move_name(mv, sizeof mv, a->app, a->peer) >= 0 && arg) {
        const char *argv[2] = {"DEL", mv};
        size_t lens[2] = {3, strlen(mv)};
        if (!clu_command(xn->cl, a->pname, 2, argv, lens, barrier_done, arg)) return;
    }
    free(arg);
    a->place = NULL;
    a->dropped += place_directs(place);
    json_decref(place);
    ho_end(a, NULL);
}

void xresume_direct(struct brk_xnode *xn, const char *app, const char *peer, const char *from, struct brk_msg *msg,
                    int past_cut)
{
    if (!xn->n_handovers) return;
    for (struct xhandover *a = xn->handovers; a; a = a->next) {
        if (!(past_cut || a->cut) || strcmp(a->peer, peer) != 0 || strcmp(a->app, app) != 0) continue;
        uint32_t max = xn->b->cfg->resume_queue_messages > 0 ? (uint32_t)xn->b->cfg->resume_queue_messages : 1;
        if (a->n_kept >= max) { /* the oldest goes, as in a held queue */
            free(a->kept[0].from);
            msg_unref(a->kept[0].m);
            memmove(a->kept, a->kept + 1, (a->n_kept - 1) * sizeof *a->kept);
            a->n_kept--;
            a->dropped++;
        }
        if (a->n_kept == a->cap_kept) {
            uint32_t cap = a->cap_kept ? a->cap_kept * 2 : 8;
            struct kept *k = realloc(a->kept, cap * sizeof *k);
            if (!k) {
                a->dropped++;
                continue;
            }
            a->kept = k;
            a->cap_kept = cap;
        }
        char *f = strdup(from);
        if (!f) {
            a->dropped++;
            continue;
        }
        msg_ref(msg);
        a->kept[a->n_kept++] = (struct kept){f, msg};
    }
}

/* ---- the holder (A): the cut, then the place on the wire ---- */

static void move_free(struct xmove *mv)
{
    htab_del(&mv->xn->moves, mv->rsid);
    rtm_timer_cancel(mv->xn->b->timers, &mv->t);
    free(mv);
}

/* The place stays held here; the new node is told when tell_b. */
static void move_abort(struct xmove *mv, int tell_b)
{
    struct brk_session *h = mv->h;
    h->moving = 0;
    if (h->peer) xnode_peer_dirty(mv->xn->b, h->peer); /* the switch may have taken this node out of the record */
    if (tell_b && tell(mv->xn, mv->pname, mv->to, CLU_RESUME_PLACE, mv->id, mv->app, mv->peer, mv->rsid, NULL, 0,
                       NULL, NULL))
        log_warn("cluster: could not tell node %s that the place of peer=%s stays here", mv->to, mv->peer);
    move_free(mv);
}

static void move_end_moved(struct xmove *mv)
{
    struct brk_session *h = mv->h;
    move_free(mv);
    resume_end_moved(h);
}

static void move_timer_cb(struct rtm_timer *t)
{
    struct xmove *mv = lws_container_of(t, struct xmove, t);
    if (mv->sent) {
        move_end_moved(mv); /* the new node never said "done": the old membership ends now */
        return;
    }
    log_warn("cluster: moving the place of peer=%s to node %s missed its deadline: it stays here", mv->peer, mv->to);
    move_abort(mv, 1);
}

struct sent_arg {
    uint32_t directs;
    char peer[RTM_MAX_PEER_ID + 1];
};

static void place_sent(void *arg, int ok, long long value)
{
    struct sent_arg *sa = arg;
    if (!ok || value < 1) { /* the new node went away: the place is gone with it */
        rtm_metric_inc(RTM_M_DIRECT_DROPPED, sa->directs);
        log_warn("cluster: a moved place of peer=%s reached no node (%u directs dropped)", sa->peer, sa->directs);
    }
    free(sa);
}

static void maybe_send(struct xmove *mv)
{
    if (!mv->remote_cut || !mv->local_cut || mv->sent) return;
    struct brk_session *h = mv->h;
    uint32_t directs = 0;
    char *state = resume_export(h, STATE_MAX, &directs);
    struct sent_arg *sa = state ? calloc(1, sizeof *sa) : NULL;
    if (!sa || tell(mv->xn, mv->pname, mv->to, CLU_RESUME_PLACE, mv->id, mv->app, mv->peer, mv->rsid, state,
                    strlen(state), place_sent, sa)) {
        free(sa);
        free(state);
        move_abort(mv, 1);
        return;
    }
    sa->directs = directs;
    snprintf(sa->peer, sizeof sa->peer, "%s", mv->peer);
    free(state);
    log_info("ws: held sid=%s peer=%s handed to node %s directs=%u", h->sid, h->peer ? h->peer->peer_id : "", mv->to,
             directs);
    resume_mark_moved(h);
    mv->sent = 1;
    rtm_timer_cancel(mv->xn->b->timers, &mv->t);
    rtm_timer_in(mv->xn->b->timers, &mv->t, move_timer_cb, deadline_ms(mv->xn));
}

static void switch_done(void *arg, int ok, long long value)
{
    (void)value;
    struct xmove *mv = xn_the ? htab_get(&xn_the->moves, arg) : NULL;
    free(arg);
    if (!mv || mv->sent) return;
    if (!ok) {
        move_abort(mv, 1);
        return;
    }
    mv->local_cut = 1;
    maybe_send(mv);
}

/* The channels of held place h, "\n"-separated with "\n" at both ends. */
static char *place_channels(const struct brk_session *h, size_t *len)
{
    size_t n = 1;
    for (uint32_t i = 0; i < h->subs.cap; i++) {
        const struct brk_sub *sub = h->subs.slots[i].key ? h->subs.slots[i].val : NULL;
        if (sub) n += strlen(sub->ch->name) + 1;
    }
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t at = 0;
    out[at++] = '\n';
    for (uint32_t i = 0; i < h->subs.cap; i++) {
        const struct brk_sub *sub = h->subs.slots[i].key ? h->subs.slots[i].val : NULL;
        if (!sub) continue;
        size_t l = strlen(sub->ch->name);
        memcpy(out + at, sub->ch->name, l);
        at += l;
        out[at++] = '\n';
    }
    out[at] = '\0';
    *len = at;
    return out;
}

static int start_move(struct brk_xnode *xn, const char *node, const char *id, const char *app, const char *peer,
                   const char *rsid)
{
    struct brk_session *h = resume_find(xn->b, rsid, app, peer);
    char pname[CLU_NAME_MAX];
    if (clu_peer_name(pname, sizeof pname, app, peer) < 0) return 0;
    /* A live place (its drop not noticed yet) is held first, its old socket
     * closed with 4009, as a resume on one node does. */
    if (h && h->state == SESS_OPEN && !htab_get(&xn->moves, rsid)) h = resume_hold_live(h);
    if (!h || h->state != SESS_HELD || !h->peer || htab_get(&xn->moves, rsid)) return 0;
    struct xmove *mv = calloc(1, sizeof *mv);
    char *remaining = NULL, *moved = NULL, *cut = NULL, *arg = NULL;
    char mvkey[CLU_NAME_MAX], theirs[CLU_NAME_MAX], ttl[24];
    size_t rlen = 0, mlen = 0, clen = 0;
    if (!mv) goto fail;
    mv->xn = xn;
    mv->h = h;
    /* lengths checked by the caller (serve_resume) */
    snprintf(mv->rsid, sizeof mv->rsid, "%.*s", (int)sizeof mv->rsid - 1, rsid);
    snprintf(mv->to, sizeof mv->to, "%.*s", (int)sizeof mv->to - 1, node);
    snprintf(mv->id, sizeof mv->id, "%.*s", (int)sizeof mv->id - 1, id);
    snprintf(mv->app, sizeof mv->app, "%s", app);
    snprintf(mv->peer, sizeof mv->peer, "%s", peer);
    snprintf(mv->pname, sizeof mv->pname, "%s", pname);
    if (clu_move_name(mvkey, sizeof mvkey, app, peer) < 0 ||
        snprintf(theirs, sizeof theirs, "rtm:ni:%s", node) >= (int)sizeof theirs)
        goto fail;
    int others = 0;
    for (const struct brk_session *x = h->peer->sessions; x; x = x->peer_next) others += x != h && !x->moved;
    if (others && !(remaining = peer_channels(h->peer, h, &rlen))) goto fail;
    const char *f[CLU_FIELDS] = {xn->node, id, app, peer, rsid, NULL, NULL};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(id), strlen(app), strlen(peer), strlen(rsid), 0, 0};
    if (!(moved = place_channels(h, &mlen)) || !(cut = clu_encode(CLU_RESUME_CUT, f, n, &clen)) ||
        !(arg = strdup(rsid)) || htab_put(&xn->moves, mv->rsid, mv))
        goto fail;
    snprintf(ttl, sizeof ttl, "%lld", (long long)(2 * deadline_ms(xn)));
    const char *argv[13] = {"EVAL", SWITCH_SCRIPT, "2", mv->pname, mvkey, xn->node, node, remaining ? remaining : "",
                            moved, cut, xn->index, theirs, ttl};
    size_t lens[13] = {4, sizeof SWITCH_SCRIPT - 1, 1, strlen(mv->pname), strlen(mvkey), strlen(xn->node),
                       strlen(node), rlen, mlen, clen, strlen(xn->index), strlen(theirs), strlen(ttl)};
    if (clu_command(xn->cl, mv->pname, 13, argv, lens, switch_done, arg)) {
        htab_del(&xn->moves, mv->rsid);
        goto fail;
    }
    h->moving = 1;
    rtm_timer_in(xn->b->timers, &mv->t, move_timer_cb, deadline_ms(xn));
    log_info("ws: held sid=%s peer=%s: node %s resumes it, moving", h->sid, peer, node);
    free(remaining);
    free(moved);
    free(cut);
    return 1;
fail:
    log_warn("cluster: cannot move the place of peer=%s to node %s (Redis down or out of memory)", peer, node);
    free(mv);
    free(remaining);
    free(moved);
    free(cut);
    free(arg);
    return 0;
}

/* XASK_RESUME's handler: another node asks whether its resume's place is held here. */
static char *serve_resume(void *ctx, struct brk_xnode *xn, const char *app, const char *target, const char *data,
                          size_t dlen, size_t *len)
{
    (void)ctx;
    /* data: hand-over id, rsid, asking node */
    char buf[ID_LEN + 48 + sizeof xn->node + 3], *id = buf, *rsid, *node;
    if (dlen >= sizeof buf) return NULL;
    memcpy(buf, data, dlen);
    buf[dlen] = '\0';
    if (!(rsid = strchr(id, '\n')) || !(node = strchr(rsid + 1, '\n'))) return NULL;
    *rsid++ = '\0';
    *node++ = '\0';
    if (strlen(id) >= ID_LEN || strlen(rsid) >= 48 || strlen(node) >= sizeof xn->node || strcmp(node, xn->node) == 0)
        return NULL;
    char *answer = strdup(start_move(xn, node, id, app, target, rsid) ? "m" : "-");
    if (answer) *len = 1;
    return answer;
}

void xresume_init(struct brk_xnode *xn)
{
    htab_init(&xn->moves, HTAB_STR);
    xask_handle(xn, XASK_RESUME, serve_resume, NULL);
}

int xresume_refuses(const struct brk_session *h)
{
    struct brk_xnode *xn = h->b->xn;
    const struct xmove *mv = xn ? htab_get(&xn->moves, h->rsid) : NULL;
    if (!mv) return 0;
    return xn->remote_delivery ? mv->remote_cut : mv->local_cut;
}

void xresume_place_gone(struct brk_session *h)
{
    struct brk_xnode *xn = h->b->xn;
    struct xmove *mv = xn ? htab_get(&xn->moves, h->rsid) : NULL;
    if (!mv || mv->h != h) return;
    /* expired, kicked or revoked while moving: the new node starts fresh */
    if (!mv->sent && !xn->stopping)
        tell(xn, mv->pname, mv->to, CLU_RESUME_PLACE, mv->id, mv->app, mv->peer, mv->rsid, NULL, 0, NULL, NULL);
    move_free(mv);
}

/* ---- messages ---- */

void xresume_message(struct brk_xnode *xn, const struct clu_msg *m, const char *node, const char *id,
                     const char *app, const char *peer, const char *rsid)
{
    if (xn->stopping) return;
    struct xhandover *a;
    struct xmove *mv;
    switch (m->kind) {
    case CLU_RESUME_CUT:
        if (strcmp(node, xn->node) == 0) { /* our own switch: every direct before it is here */
            mv = htab_get(&xn->moves, rsid);
            if (!mv || strcmp(mv->id, id) != 0) break;
            mv->remote_cut = 1;
            maybe_send(mv);
        } else if ((a = ho_find(xn, id))) {
            a->cut = 1;
            snprintf(a->holder, sizeof a->holder, "%s", node);
        }
        break;
    case CLU_RESUME_PLACE:
        on_place(xn, m, node, id, app, peer);
        break;
    case CLU_RESUME_DONE:
        mv = htab_get(&xn->moves, rsid);
        if (mv && mv->sent && strcmp(mv->id, id) == 0) move_end_moved(mv);
        break;
    }
}

void xresume_free(struct brk_xnode *xn)
{
    while (xn->handovers) { /* stopping: nobody is admitted */
        struct xhandover *a = xn->handovers;
        json_t *place = a->place; /* arrived, its barrier still out: freed, its directs counted lost */
        a->place = NULL;
        ho_end(a, place);
    }
    for (;;) {
        struct xmove *mv = NULL;
        for (uint32_t i = 0; i < xn->moves.cap && !mv; i++) mv = xn->moves.slots[i].key ? xn->moves.slots[i].val : NULL;
        if (!mv) break;
        if (mv->sent) move_end_moved(mv);
        else move_abort(mv, 0);
    }
    htab_free(&xn->moves);
}

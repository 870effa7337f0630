/* view.c: the store in memory (see view.h).
 *
 * Main design choice: the loop never waits for the store, and the threads
 * never touch the loop's data. The sync thread builds a complete, immutable
 * snapshot of keys and apps (hash tables included) and hands it over through
 * the mailbox; the loop swaps one pointer. Revocations arrive as rows and
 * are added to loop-owned tables, so a lookup is a hash probe. Writes are
 * queued under a lock and written by the writer thread in one transaction
 * per flush; a failed write stays queued (retried next flush) up to the
 * bound, so a store that comes back gets the rows that waited.
 *
 * One view per rtmd process (owned by main), two threads, three store
 * handles: the owner's (rtmd's own, not used here), the sync thread's and
 * the writer's. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "view.h"

#include "errors.h"
#include "hs256.h"
#include "htab.h"
#include "log.h"
#include "store_rows.h" /* store_secret_hash: the same hash the keys table indexes */
#include "util.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Messages waiting for the loop. At the bound the sync thread stops reading
 * (its cursors stay put) until the loop drains: nothing is lost, it is late. */
#define MAILBOX_MAX 64
/* Revocations held in memory. Beyond, rtm_view_is_revoked answers
 * RTM_ELIMIT and tokens are refused (fail closed), /healthz says why. */
#define REVOCATIONS_MAX 1000000
/* Pending app rows and outbox posts; beyond, they are refused (logged). */
#define APPS_PENDING_MAX 1024
#define OUTBOX_PENDING_MAX 4096
/* Pending presence snapshots (one per app, newest wins). */
#define PRESENCE_PENDING_MAX 4096
/* The outbox keeps a minute of rows and at most this many. */
#define OUTBOX_KEEP_MS 60000
#define OUTBOX_KEEP_MAX 10000
#define HEARTBEAT_MS 1000
/* Session-row retention, on the writer thread: a batch of PRUNE_BATCH rows
 * (an index search, a few ms) every PRUNE_EVERY_MS, or after PRUNE_BUSY_MS
 * while a backlog lasts (up to 2,500 rows a second); the first PRUNE_FIRST_MS
 * after start. One log line per backlog. */
#define PRUNE_FIRST_MS 1000
#define PRUNE_EVERY_MS 60000
#define PRUNE_BUSY_MS 100
#define PRUNE_BATCH 250
#define TRIM_ROWS 1024 /* a batch this large is followed by malloc_trim */
#define JOIN_MAX 400
/* Revocation pages (of 1000) read per poll, so one poll stays short. */
#define POLL_PAGES 8
#define OUTBOX_PAGE 1000 /* rows one rtm_store_outbox_since returns at most */ /* "app\x1f" + a jti (<= 256) or a peerId (<= 128) */

/* Keys and apps as of one read: built by the sync thread, then owned and
 * read by the loop until the next one replaces it. */
struct snapshot {
    struct rtm_key *keys;
    size_t n_keys;
    struct rtm_app *apps;
    size_t n_apps;
    int64_t version;    /* the store's config_version when read */
    char (*hashes)[65]; /* SHA-256 hex of each HS256 key's secret ("" otherwise) */
    struct htab by_id;   /* id -> rtm_key* */
    struct htab by_hash; /* secret hash -> rtm_key* (live HS256 keys) */
    struct htab by_app;  /* name -> rtm_app* */
};

enum vmsg_kind { M_SNAPSHOT, M_REVOCATIONS, M_OUTBOX, M_POLLED };
struct vmsg {
    struct vmsg *next;
    enum vmsg_kind kind;
    struct snapshot *snap; /* M_SNAPSHOT */
    json_t *rows;          /* M_REVOCATIONS, M_OUTBOX */
    uint64_t served;       /* M_POLLED: refresh tickets this poll answers */
};

struct peer_rev {
    char *key; /* "app\x1fpeerId", owned; key of peer_revs */
    int64_t before;
};

struct outbox_post {
    char kind[8];
    char app[65];
    char *target, *data;
};

struct presence_put {
    char app[65];
    char *peers;
};

struct rtm_view {
    struct rtm_view_opts o;
    struct rtm_view_hooks h;
    char node_id[65];
    char *db;

    /* ---- owner thread only ---- */
    struct snapshot *snap;
    uint64_t keys_generation; /* bumped with every snapshot applied */
    int64_t snap_version;     /* the store's config_version the snapshot was read at */
    struct htab jti_revs;  /* "app\x1fjti" -> the same owned string */
    struct htab peer_revs; /* "app\x1fpeerId" -> peer_rev */
    size_t n_revs;
    int revs_lost;         /* a row could not be stored (no memory): fail closed */
    int loading;           /* the first load, in rtm_view_open: no hooks */
    uint64_t served;       /* highest refresh ticket answered */
    uint64_t tickets;      /* refresh tickets handed out */

    /* ---- shared, under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t sync_cv, write_cv;
    int stopping;
    struct vmsg *mb_head, *mb_tail;
    int mb_count;
    uint64_t want;           /* the newest refresh ticket asked for */
    struct rtm_session_row *rows; /* pending session rows: a ring, oldest at rows_head */
    size_t n_rows, cap_rows, rows_head;
    uint64_t rows_dropped;
    int dropping;
    int64_t rows_since_ms;   /* monotonic: when the oldest pending row was queued (0: none) */
    char (*apps_pending)[65];
    size_t n_apps_pending;
    struct outbox_post *posts;
    size_t n_posts;
    struct presence_put *presence;
    size_t n_presence;
    char sync_err[160], write_err[160];

    /* ---- sync thread only ---- */
    struct rtm_store *sync_st;
    int64_t config_version, rev_last, outbox_last;
    int sync_behind; /* a poll stopped before reading everything (error, bound): read again */
    /* ---- writer thread only ---- */
    struct rtm_store *write_st;

    pthread_t sync_thr, write_thr;
    int threads;
};

static int poll_once(struct rtm_view *v, int force, int max_pages);

/* ---- snapshots ---- */

static void snapshot_free(struct snapshot *s)
{
    if (!s) return;
    htab_free(&s->by_id);
    htab_free(&s->by_hash);
    htab_free(&s->by_app);
    rtm_keys_free(s->keys, s->n_keys);
    free(s->apps);
    free(s->hashes);
    free(s);
}

/* Sync thread: keys and apps as the store holds them now. */
static int snapshot_load(struct rtm_store *st, struct snapshot **out)
{
    struct snapshot *s = calloc(1, sizeof *s);
    if (!s) return RTM_ENOMEM;
    htab_init(&s->by_id, HTAB_STR);
    htab_init(&s->by_hash, HTAB_STR);
    htab_init(&s->by_app, HTAB_STR);
    int ret = rtm_store_keys_load(st, &s->keys, &s->n_keys);
    if (!ret) ret = rtm_store_apps_load(st, &s->apps, &s->n_apps);
    if (ret) goto fail;
    ret = RTM_ENOMEM;
    if (!(s->hashes = calloc(s->n_keys ? s->n_keys : 1, sizeof *s->hashes))) goto fail;
    for (size_t i = 0; i < s->n_keys; i++) {
        struct rtm_key *k = &s->keys[i];
        if (htab_put(&s->by_id, k->id, k)) goto fail;
        if (k->revoked || k->publishable || !k->secret || strcmp(k->alg, "HS256") != 0) continue;
        if (store_secret_hash(k->secret, s->hashes[i]) || htab_put(&s->by_hash, s->hashes[i], k)) goto fail;
    }
    for (size_t i = 0; i < s->n_apps; i++)
        if (htab_put(&s->by_app, s->apps[i].name, &s->apps[i])) goto fail;
    *out = s;
    return 0;
fail:
    snapshot_free(s);
    return ret;
}

/* ---- the mailbox ---- */

/* Any of the threads. Returns 0, or RTM_ELIMIT when full (m not taken). */
static int post(struct rtm_view *v, struct vmsg *m)
{
    pthread_mutex_lock(&v->mu);
    if (v->mb_count >= MAILBOX_MAX && m->kind != M_POLLED) {
        pthread_mutex_unlock(&v->mu);
        return RTM_ELIMIT;
    }
    m->next = NULL;
    if (v->mb_tail) v->mb_tail->next = m;
    else v->mb_head = m;
    v->mb_tail = m;
    v->mb_count++;
    pthread_mutex_unlock(&v->mu);
    if (v->h.wake) v->h.wake(v->h.arg);
    return 0;
}

static int post_rows(struct rtm_view *v, enum vmsg_kind kind, json_t *rows)
{
    struct vmsg *m = calloc(1, sizeof *m);
    if (!m) return RTM_ENOMEM;
    m->kind = kind;
    m->rows = rows;
    if (post(v, m)) {
        free(m);
        return RTM_ELIMIT;
    }
    return 0;
}

static void set_err(struct rtm_view *v, char *slot, const char *what)
{
    pthread_mutex_lock(&v->mu);
    int was = slot[0] != '\0';
    if (what) snprintf(slot, sizeof v->sync_err, "%s", what);
    else slot[0] = '\0';
    pthread_mutex_unlock(&v->mu);
    /* One line when the condition starts and one when it ends. */
    if (what && !was) log_warn("store: degraded: %s (serving from memory)", what);
    else if (!what && was) log_info("store: answers again");
}

/* ---- owner thread: revocations ---- */

static int join(char *out, const char *app, const char *s)
{
    int n = snprintf(out, JOIN_MAX, "%s\x1f%s", app, s);
    return n > 0 && n < JOIN_MAX ? 0 : RTM_EINVAL;
}

/* Adds one revocation to the tables; 1 when it was new, 0 when known. */
static int revocation_insert(struct rtm_view *v, const struct rtm_revocation *r)
{
    char k[JOIN_MAX];
    if (!r->app || (!r->jti && !r->peer_id) || join(k, r->app, r->jti ? r->jti : r->peer_id)) return 0;
    if (r->jti) {
        if (htab_get(&v->jti_revs, k)) return 0;
        char *key = strdup(k);
        if (!key || htab_put(&v->jti_revs, key, key)) {
            free(key);
            v->revs_lost = 1;
            return 0;
        }
        v->n_revs++;
        return 1;
    }
    struct peer_rev *p = htab_get(&v->peer_revs, k);
    if (p) {
        if (r->before <= p->before) return 0;
        p->before = r->before;
        return 1;
    }
    if ((p = calloc(1, sizeof *p)) && (p->key = strdup(k)) && !htab_put(&v->peer_revs, p->key, p)) {
        p->before = r->before;
        v->n_revs++;
        return 1;
    }
    if (p) free(p->key);
    free(p);
    v->revs_lost = 1;
    return 0;
}

void rtm_view_revocation_add(struct rtm_view *v, const struct rtm_revocation *r)
{
    /* At open no session exists yet; a row known already was enforced when it was new. */
    if (revocation_insert(v, r) && !v->loading && v->h.revoked) v->h.revoked(v->h.arg, r);
}

static void revocation_row(struct rtm_view *v, json_t *row)
{
    struct rtm_revocation r = {
        .app = json_string_value(json_object_get(row, "app")),
        .jti = json_string_value(json_object_get(row, "jti")),
        .peer_id = json_string_value(json_object_get(row, "peerId")),
        .before = json_integer_value(json_object_get(row, "before")),
    };
    rtm_view_revocation_add(v, &r);
}

int rtm_view_is_revoked(const struct rtm_view *v, const char *app, const char *jti, const char *peer_id,
                        int64_t iat)
{
    if (v->n_revs > REVOCATIONS_MAX || v->revs_lost) return RTM_ELIMIT;
    char k[JOIN_MAX];
    if (jti && *jti && !join(k, app, jti) && htab_get(&v->jti_revs, k)) return 1;
    if (peer_id && !join(k, app, peer_id)) {
        const struct peer_rev *p = htab_get(&v->peer_revs, k);
        if (p && iat < p->before) return 1;
    }
    return 0;
}

/* ---- owner thread: applying what was posted ---- */

static void apply_snapshot(struct rtm_view *v, struct snapshot *s)
{
    struct snapshot *old = v->snap;
    v->snap = s;
    v->snap_version = s->version;
    v->keys_generation++;
    if (!old) return;
    /* Defence in depth: no thread keeps a keyed copy of a secret the new
     * snapshot may have revoked or rotated away (common/hs256.c). */
    rtm_hs256_forget();
    /* Keys that were live and are not any more: their live sessions end. */
    for (size_t i = 0; i < old->n_keys; i++) {
        const struct rtm_key *was = &old->keys[i];
        if (was->revoked) continue;
        const struct rtm_key *now = htab_get(&s->by_id, was->id);
        if ((!now || now->revoked) && v->h.key_revoked) v->h.key_revoked(v->h.arg, was->id, was->app);
    }
    snapshot_free(old);
}

void rtm_view_drain(struct rtm_view *v)
{
    pthread_mutex_lock(&v->mu);
    struct vmsg *m = v->mb_head;
    v->mb_head = v->mb_tail = NULL;
    v->mb_count = 0;
    pthread_mutex_unlock(&v->mu);
    int refreshed = 0;
    while (m) {
        struct vmsg *next = m->next;
        size_t i;
        json_t *row;
        switch (m->kind) {
        case M_SNAPSHOT:
            apply_snapshot(v, m->snap);
            break;
        case M_REVOCATIONS:
            json_array_foreach(m->rows, i, row) {
                revocation_row(v, row);
            }
            break;
        case M_OUTBOX:
            json_array_foreach(m->rows, i, row)
            {
                if (!v->h.outbox) break;
                v->h.outbox(v->h.arg, json_string_value(json_object_get(row, "kind")),
                            json_string_value(json_object_get(row, "app")),
                            json_string_value(json_object_get(row, "target")),
                            json_string_value(json_object_get(row, "data")));
            }
            break;
        case M_POLLED:
            if (m->served > v->served) {
                v->served = m->served;
                refreshed = 1;
            }
            break;
        }
        json_decref(m->rows);
        free(m);
        m = next;
    }
    if (refreshed && v->h.refreshed) v->h.refreshed(v->h.arg);
}

uint64_t rtm_view_refresh(struct rtm_view *v)
{
    if (v->o.no_threads) return 0; /* nothing would answer */
    uint64_t t = ++v->tickets;
    pthread_mutex_lock(&v->mu);
    v->want = t;
    pthread_cond_signal(&v->sync_cv);
    pthread_mutex_unlock(&v->mu);
    return t;
}

uint64_t rtm_view_served(const struct rtm_view *v) { return v->served; }

int rtm_view_poll_now(struct rtm_view *v)
{
    if (!v->o.no_threads) return RTM_EINVAL; /* the sync thread owns the store handle */
    int rc;
    do {
        rc = poll_once(v, 1, MAILBOX_MAX / 2);
        rtm_view_drain(v);
    } while (rc == 1);
    return rc;
}

const struct rtm_key *rtm_view_key(const struct rtm_view *v, const char *id)
{
    return v->snap && id ? htab_get(&v->snap->by_id, id) : NULL;
}

const struct rtm_key *rtm_view_key_by_secret(const struct rtm_view *v, const char *secret)
{
    char h[65];
    if (!v->snap || !secret || store_secret_hash(secret, h)) return NULL;
    const struct rtm_key *k = htab_get(&v->snap->by_hash, h);
    return k && rtm_streq_ct(k->secret, secret) ? k : NULL;
}

uint64_t rtm_view_keys_generation(const struct rtm_view *v) { return v->keys_generation; }

int64_t rtm_view_config_version(const struct rtm_view *v) { return v->snap_version; }

int rtm_view_app(const struct rtm_view *v, const char *name, struct rtm_app *out)
{
    const struct rtm_app *a = v->snap && name ? htab_get(&v->snap->by_app, name) : NULL;
    if (!a) return RTM_ENOTFOUND;
    *out = *a;
    return 0;
}

/* ---- the sync thread ---- */

/* Reads what changed since the last poll and posts it, at most max_pages
 * pages of revocations. 0, 1 when more revocations wait (the page bound),
 * or negative when the store failed or the mailbox is full (the cursors
 * stay, the next poll tries again). */
static int poll_once(struct rtm_view *v, int force, int max_pages)
{
    struct rtm_store *st = v->sync_st;
    int changed = rtm_store_changed(st);
    if (changed < 0) return changed;
    if (!changed && !force && !v->sync_behind) return 0;
    /* data_version is consumed now: until this poll has read everything, the
     * next one must read even if nothing else commits meanwhile. */
    v->sync_behind = 1;
    int64_t cv = 0;
    int ret = rtm_store_config_version(st, &cv);
    if (ret) return ret;
    if (cv != v->config_version) {
        struct snapshot *s = NULL;
        if ((ret = snapshot_load(st, &s))) return ret;
        s->version = cv;
        struct vmsg *m = calloc(1, sizeof *m);
        if (!m) {
            snapshot_free(s);
            return RTM_ENOMEM;
        }
        m->kind = M_SNAPSHOT;
        m->snap = s;
        if (post(v, m)) {
            snapshot_free(s);
            free(m);
            return RTM_ELIMIT;
        }
        v->config_version = cv;
    }
    int more = 0;
    for (int pages = 0;; pages++) {
        if (pages == max_pages) {
            more = 1;
            break;
        }
        json_t *rows = NULL;
        int64_t last = v->rev_last;
        if ((ret = rtm_store_revocations_since(st, v->rev_last, &rows, &last))) return ret;
        if (json_array_size(rows) == 0) {
            json_decref(rows);
            break;
        }
        if ((ret = post_rows(v, M_REVOCATIONS, rows))) {
            json_decref(rows);
            return ret;
        }
        v->rev_last = last;
    }
    if (v->o.broker) {
        json_t *rows = NULL;
        int64_t last = v->outbox_last;
        if ((ret = rtm_store_outbox_since(st, v->outbox_last, &rows, &last))) return ret;
        size_t n = json_array_size(rows);
        if (n == 0) {
            json_decref(rows);
        } else if ((ret = post_rows(v, M_OUTBOX, rows))) {
            json_decref(rows);
            return ret;
        } else {
            v->outbox_last = last;
            if (n >= OUTBOX_PAGE) more = 1; /* a full page: more may wait */
        }
    }
    v->sync_behind = more;
    return more;
}

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *sync_main(void *arg)
{
    struct rtm_view *v = arg;
    pthread_setname_np(pthread_self(), "rtm-store-sync"); /* top -H, perf --sort comm */
    uint64_t answered = 0;
    for (;;) {
        pthread_mutex_lock(&v->mu);
        if (!v->stopping && v->want == answered) {
            struct timespec ts = deadline_in(v->o.poll_ms);
            pthread_cond_timedwait(&v->sync_cv, &v->mu, &ts);
        }
        int stop = v->stopping;
        uint64_t want = v->want;
        pthread_mutex_unlock(&v->mu);
        if (stop) break;
        int forced = want != answered;
        int rc = poll_once(v, forced, POLL_PAGES);
        if (rc == 1) {
            rc = 0; /* more next time, or sooner if asked */
        } else if (rc == RTM_ELIMIT) {
            /* The loop is behind: try again next poll; not a store fault. */
        } else {
            char why[160];
            snprintf(why, sizeof why, "cannot read the store (%s)", rtm_err_str(rc));
            set_err(v, v->sync_err, rc ? why : NULL);
        }
        if (forced) {
            /* Answered even when the store failed: a waiting lookup must not wait forever. */
            struct vmsg *m = calloc(1, sizeof *m);
            if (m) {
                m->kind = M_POLLED;
                m->served = want;
                post(v, m);
                answered = want;
            }
        }
    }
    return NULL;
}

/* ---- the writer thread ---- */

struct batch {
    struct rtm_session_row *rows;
    size_t n_rows;
    char (*apps)[65];
    size_t n_apps;
    struct outbox_post *posts;
    size_t n_posts;
    struct presence_put *presence;
    size_t n_presence;
};

static void rows_release(struct rtm_session_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].origin);
        free(rows[i].user_agent);
    }
}

static void batch_free(struct batch *b)
{
    rows_release(b->rows, b->n_rows);
    free(b->rows);
    free(b->apps);
    for (size_t i = 0; i < b->n_posts; i++) {
        free(b->posts[i].target);
        free(b->posts[i].data);
    }
    free(b->posts);
    for (size_t i = 0; i < b->n_presence; i++) free(b->presence[i].peers);
    free(b->presence);
    memset(b, 0, sizeof *b);
}

/* Under mu: takes everything pending (the rows, in order, only when with_rows). */
static void batch_take(struct rtm_view *v, struct batch *b, int with_rows)
{
    memset(b, 0, sizeof *b);
    if (with_rows && v->n_rows && (b->rows = malloc(v->n_rows * sizeof *b->rows))) {
        for (size_t i = 0; i < v->n_rows; i++) b->rows[i] = v->rows[(v->rows_head + i) % v->cap_rows];
        b->n_rows = v->n_rows;
        v->n_rows = v->rows_head = 0;
        /* The ring goes too: a connect storm's peak is not kept for the idle hours after. */
        free(v->rows);
        v->rows = NULL;
        v->cap_rows = 0;
    } /* no memory for the copy: the rows stay queued for the next flush */
    b->apps = v->apps_pending;
    b->n_apps = v->n_apps_pending;
    v->apps_pending = NULL;
    v->n_apps_pending = 0;
    b->posts = v->posts;
    b->n_posts = v->n_posts;
    v->posts = NULL;
    v->n_posts = 0;
    b->presence = v->presence;
    b->n_presence = v->n_presence;
    v->presence = NULL;
    v->n_presence = 0;
}

/* Appends a row under mu, dropping the oldest at the bound. Takes the
 * row's heap strings (released if it cannot be kept). */
static void row_push_locked(struct rtm_view *v, struct rtm_session_row *r)
{
    size_t max = v->o.rows_max > 0 ? (size_t)v->o.rows_max : 1;
    if (v->n_rows >= max) {
        rows_release(&v->rows[v->rows_head], 1);
        v->rows_head = (v->rows_head + 1) % v->cap_rows;
        v->n_rows--;
        v->rows_dropped++;
        if (!v->dropping) {
            v->dropping = 1;
            log_warn("store: %zu session rows pending: dropping the oldest (the store is not keeping up)", max);
        }
    }
    if (v->n_rows == 0 && !v->rows_since_ms) v->rows_since_ms = rtm_mono_ms();
    if (v->n_rows == v->cap_rows) {
        /* Grow (doubling, up to the bound), unwrapping the ring. */
        size_t cap = v->cap_rows ? v->cap_rows * 2 : 64;
        if (cap > max) cap = max;
        struct rtm_session_row *n = malloc(cap * sizeof *n);
        if (!n) {
            rows_release(r, 1);
            v->rows_dropped++;
            return;
        }
        for (size_t i = 0; i < v->n_rows; i++) n[i] = v->rows[(v->rows_head + i) % v->cap_rows];
        free(v->rows);
        v->rows = n;
        v->cap_rows = cap;
        v->rows_head = 0;
    }
    v->rows[(v->rows_head + v->n_rows) % v->cap_rows] = *r;
    v->n_rows++;
}

/* A failed batch goes back in front of what was queued meanwhile (order
 * matters: a session's close row must follow its open row). */
static void batch_requeue(struct rtm_view *v, struct batch *b)
{
    pthread_mutex_lock(&v->mu);
    struct batch newer;
    memset(&newer, 0, sizeof newer);
    if (v->n_rows && (newer.rows = malloc(v->n_rows * sizeof *newer.rows))) {
        for (size_t i = 0; i < v->n_rows; i++) newer.rows[i] = v->rows[(v->rows_head + i) % v->cap_rows];
        newer.n_rows = v->n_rows;
        v->n_rows = v->rows_head = 0;
    }
    for (size_t i = 0; i < b->n_rows; i++) row_push_locked(v, &b->rows[i]);
    for (size_t i = 0; i < newer.n_rows; i++) row_push_locked(v, &newer.rows[i]);
    free(newer.rows);
    b->n_rows = 0;
    /* Presence snapshots wait unless a newer one of the same app is queued. */
    for (size_t i = 0; i < b->n_presence; i++) {
        size_t j = 0;
        while (j < v->n_presence && strcmp(v->presence[j].app, b->presence[i].app) != 0) j++;
        if (j < v->n_presence || v->n_presence >= PRESENCE_PENDING_MAX) continue;
        struct presence_put *p = realloc(v->presence, (v->n_presence + 1) * sizeof *p);
        if (!p) break;
        v->presence = p;
        v->presence[v->n_presence++] = b->presence[i];
        b->presence[i].peers = NULL;
    }
    /* Outbox posts wait too (bounded by their cap at enqueue). */
    for (size_t i = 0; i < b->n_posts && v->n_posts < OUTBOX_PENDING_MAX; i++) {
        struct outbox_post *p = realloc(v->posts, (v->n_posts + 1) * sizeof *p);
        if (!p) break;
        v->posts = p;
        v->posts[v->n_posts++] = b->posts[i];
        b->posts[i].target = b->posts[i].data = NULL;
    }
    pthread_mutex_unlock(&v->mu);
}

/* Writes the batch (and a heartbeat when due). *tried says whether anything
 * was sent to the store: only then does the result say how the store is. */
static int batch_write(struct rtm_view *v, struct batch *b, int64_t *last_beat, int *tried)
{
    *tried = b->n_apps || b->n_rows || b->n_posts || b->n_presence ||
             (v->o.broker && rtm_mono_ms() - *last_beat >= HEARTBEAT_MS);
    struct rtm_store *st = v->write_st;
    int ret = 0;
    for (size_t i = 0; !ret && i < b->n_apps; i++) {
        struct rtm_app a;
        ret = rtm_store_app_ensure(st, b->apps[i], &a);
        if (ret == RTM_EINVAL) ret = 0; /* not a name the store takes: nothing to retry */
    }
    if (!ret && b->n_rows) ret = rtm_store_sessions_write(st, b->rows, b->n_rows);
    if (!ret && b->n_posts) {
        for (size_t i = 0; !ret && i < b->n_posts; i++)
            ret = rtm_store_outbox_post(st, b->posts[i].kind, b->posts[i].app, b->posts[i].target,
                                        b->posts[i].data);
        if (!ret) ret = rtm_store_outbox_prune(st, rtm_now_ms() - OUTBOX_KEEP_MS, OUTBOX_KEEP_MAX);
    }
    for (size_t i = 0; !ret && i < b->n_presence; i++)
        ret = rtm_store_presence_put(st, v->node_id, b->presence[i].app, b->presence[i].peers, rtm_now_ms());
    if (!ret && v->o.broker && rtm_mono_ms() - *last_beat >= HEARTBEAT_MS) {
        ret = rtm_store_node_seen(st, v->node_id, rtm_now_ms());
        if (!ret) *last_beat = rtm_mono_ms();
    }
    return ret;
}

/* Writer thread: one retention batch when due; returns when the next is due. */
static int64_t prune_step(struct rtm_view *v, int64_t *pruned)
{
    int n = rtm_store_sessions_prune(v->write_st, rtm_now_ms() - v->o.retention_ms, PRUNE_BATCH);
    if (n < 0) return rtm_mono_ms() + PRUNE_EVERY_MS; /* the store is down: set_err says so via the rows */
    *pruned += n;
    if (n < PRUNE_BATCH && *pruned) {
        log_info("store: pruned %lld session rows older than %lld days", (long long)*pruned,
                 (long long)(v->o.retention_ms / 86400000));
        *pruned = 0;
    }
    return rtm_mono_ms() + (n == PRUNE_BATCH ? PRUNE_BUSY_MS : PRUNE_EVERY_MS);
}

static void *write_main(void *arg)
{
    struct rtm_view *v = arg;
    pthread_setname_np(pthread_self(), "rtm-store-write");
    int64_t last_beat = 0, last_flush = rtm_mono_ms(), pruned = 0;
    int64_t next_prune = rtm_mono_ms() + PRUNE_FIRST_MS;
    int prunes = v->o.broker && v->o.retention_ms > 0;
    /* A broker's heartbeat (and its presence) must not wait for a long session-flush-ms. */
    int wait_ms = v->o.broker && v->o.flush_ms > HEARTBEAT_MS / 2 ? HEARTBEAT_MS / 2 : v->o.flush_ms;
    if (prunes && wait_ms > PRUNE_BUSY_MS) wait_ms = PRUNE_BUSY_MS; /* a backlog drains at its pace */
    for (;;) {
        pthread_mutex_lock(&v->mu);
        if (!v->stopping) {
            struct timespec ts = deadline_in(wait_ms);
            pthread_cond_timedwait(&v->write_cv, &v->mu, &ts);
        }
        int stop = v->stopping;
        int64_t now = rtm_mono_ms();
        int with_rows = stop || now - last_flush >= v->o.flush_ms;
        struct batch b;
        batch_take(v, &b, with_rows);
        if (with_rows) last_flush = now;
        pthread_mutex_unlock(&v->mu);
        int tried = 0;
        int rc = batch_write(v, &b, &last_beat, &tried);
        char why[160];
        snprintf(why, sizeof why, "cannot write to the store (%s): rows wait in memory", rtm_err_str(rc));
        if (tried) set_err(v, v->write_err, rc ? why : NULL);
        if (rc && !stop) batch_requeue(v, &b);
        pthread_mutex_lock(&v->mu);
        if (!rc && b.n_rows) v->rows_since_ms = v->n_rows ? now : 0; /* rows queued meanwhile are newer than now */
        if (v->dropping && v->n_rows < (size_t)v->o.rows_max) {
            log_info("store: session rows no longer dropped (%llu dropped in all)",
                     (unsigned long long)v->rows_dropped);
            v->dropping = 0;
        }
        pthread_mutex_unlock(&v->mu);
        size_t big = b.n_rows >= TRIM_ROWS;
        batch_free(&b);
        /* This thread's malloc arena kept a storm's batch (650 bytes a row)
         * for good: give it back (glibc; measured +650 B per session in rtm
         * bench connect without it). */
        if (big) malloc_trim(0);
        if (stop) break;
        if (prunes && !rc && rtm_mono_ms() >= next_prune) next_prune = prune_step(v, &pruned);
    }
    return NULL;
}

/* ---- owner thread: enqueueing writes ---- */

void rtm_view_session_row(struct rtm_view *v, struct rtm_session_row *r)
{
    snprintf(r->node_id, sizeof r->node_id, "%s", v->node_id);
    pthread_mutex_lock(&v->mu);
    row_push_locked(v, r);
    pthread_mutex_unlock(&v->mu);
    r->origin = r->user_agent = NULL;
}

void rtm_view_app_ensure(struct rtm_view *v, const char *name)
{
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n_apps_pending; i++)
        if (strcmp(v->apps_pending[i], name) == 0) goto out;
    if (v->n_apps_pending >= APPS_PENDING_MAX) goto out; /* asked again at the next connect */
    char(*a)[65] = realloc(v->apps_pending, (v->n_apps_pending + 1) * sizeof *a);
    if (!a) goto out;
    v->apps_pending = a;
    snprintf(a[v->n_apps_pending++], 65, "%s", name);
out:
    pthread_mutex_unlock(&v->mu);
}

int rtm_view_outbox_post(struct rtm_view *v, const char *kind, const char *app, const char *target,
                         const char *data)
{
    char *t = strdup(target), *d = data ? strdup(data) : NULL;
    if (!t || (data && !d)) goto nomem;
    pthread_mutex_lock(&v->mu);
    if (v->n_posts >= OUTBOX_PENDING_MAX) {
        pthread_mutex_unlock(&v->mu);
        free(t);
        free(d);
        log_warn("store: %d outbox posts pending: refusing more", OUTBOX_PENDING_MAX);
        return RTM_ELIMIT;
    }
    struct outbox_post *p = realloc(v->posts, (v->n_posts + 1) * sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&v->mu);
        goto nomem;
    }
    v->posts = p;
    p = &v->posts[v->n_posts++];
    memset(p, 0, sizeof *p);
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    snprintf(p->app, sizeof p->app, "%s", app);
    p->target = t;
    p->data = d;
    /* A kick or a publish should not wait for the next flush. */
    pthread_cond_signal(&v->write_cv);
    pthread_mutex_unlock(&v->mu);
    return 0;
nomem:
    free(t);
    free(d);
    return RTM_ENOMEM;
}

void rtm_view_presence(struct rtm_view *v, const char *app, const char *peers)
{
    char *copy = strdup(peers);
    if (!copy) return;
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n_presence; i++) {
        if (strcmp(v->presence[i].app, app) == 0) {
            free(v->presence[i].peers);
            v->presence[i].peers = copy;
            goto out;
        }
    }
    struct presence_put *p = v->n_presence < PRESENCE_PENDING_MAX
                                 ? realloc(v->presence, (v->n_presence + 1) * sizeof *p)
                                 : NULL;
    if (!p) {
        free(copy); /* the next change of this app writes it again */
        goto out;
    }
    v->presence = p;
    snprintf(p[v->n_presence].app, sizeof p->app, "%s", app);
    p[v->n_presence++].peers = copy;
out:
    pthread_mutex_unlock(&v->mu);
}

int rtm_view_status(struct rtm_view *v, char *reason, size_t len)
{
    pthread_mutex_lock(&v->mu);
    const char *why = v->sync_err[0] ? v->sync_err : v->write_err[0] ? v->write_err : NULL;
    if (why && reason && len) snprintf(reason, len, "%s", why);
    else if (!why && v->n_revs > REVOCATIONS_MAX && reason && len)
        snprintf(reason, len, "over %d revocations in memory: tokens are refused until some are pruned",
                 REVOCATIONS_MAX), why = reason;
    pthread_mutex_unlock(&v->mu);
    return why != NULL;
}

int64_t rtm_view_write_lag_ms(struct rtm_view *v)
{
    pthread_mutex_lock(&v->mu);
    int64_t since = v->n_rows ? v->rows_since_ms : 0;
    pthread_mutex_unlock(&v->mu);
    return since ? rtm_mono_ms() - since : 0;
}

uint64_t rtm_view_rows_dropped(struct rtm_view *v)
{
    pthread_mutex_lock(&v->mu);
    uint64_t n = v->rows_dropped;
    pthread_mutex_unlock(&v->mu);
    return n;
}

/* ---- open, close ---- */

int rtm_view_open(const struct rtm_view_opts *o, const struct rtm_view_hooks *h, struct rtm_view **out,
                  char *err, size_t errlen)
{
    struct rtm_view *v = calloc(1, sizeof *v);
    *out = NULL;
    if (!v || !(v->db = strdup(o->db))) {
        free(v);
        snprintf(err, errlen, "view: out of memory");
        return RTM_ENOMEM;
    }
    v->o = *o;
    v->o.db = v->db;
    v->o.store_opts = NULL; /* used in this call only: the caller's may not outlive it */
    if (v->o.poll_ms <= 0) v->o.poll_ms = 100;
    if (v->o.flush_ms <= 0) v->o.flush_ms = 200;
    if (h) v->h = *h;
    snprintf(v->node_id, sizeof v->node_id, "%s", o->node_id ? o->node_id : "");
    v->o.node_id = v->node_id;
    htab_init(&v->jti_revs, HTAB_STR);
    htab_init(&v->peer_revs, HTAB_STR);
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->sync_cv, NULL);
    pthread_cond_init(&v->write_cv, NULL);

    int ret = rtm_store_open_opts(v->db, o->store_opts, &v->sync_st, err, errlen);
    if (!ret) ret = rtm_store_open_opts(v->db, o->store_opts, &v->write_st, err, errlen);
    if (ret) goto fail;
    /* The first load, here, so the loop starts with every key and revocation. */
    v->config_version = -1;
    if (v->o.broker && (ret = rtm_store_outbox_last(v->sync_st, &v->outbox_last))) goto loadfail;
    v->loading = 1;
    do {
        ret = poll_once(v, 1, MAILBOX_MAX / 2);
        rtm_view_drain(v);
    } while (ret == 1);
    v->loading = 0;
    if (ret) goto loadfail;
    if (v->o.no_threads) {
        *out = v;
        return 0;
    }
    if (v->o.broker) rtm_store_node_clear(v->write_st, v->node_id);
    if (pthread_create(&v->sync_thr, NULL, sync_main, v)) goto nothread;
    if (pthread_create(&v->write_thr, NULL, write_main, v)) {
        pthread_mutex_lock(&v->mu);
        v->stopping = 1;
        pthread_cond_signal(&v->sync_cv);
        pthread_mutex_unlock(&v->mu);
        pthread_join(v->sync_thr, NULL);
        goto nothread;
    }
    v->threads = 1;
    *out = v;
    return 0;
loadfail:
    snprintf(err, errlen, "store: cannot load keys, apps and revocations (%s)", rtm_err_str(ret));
    goto fail;
nothread:
    snprintf(err, errlen, "view: cannot start the store threads");
    ret = RTM_ENOMEM;
fail:
    rtm_view_close(v);
    return ret;
}

void rtm_view_close(struct rtm_view *v)
{
    if (!v) return;
    if (v->threads) {
        pthread_mutex_lock(&v->mu);
        v->stopping = 1;
        pthread_cond_signal(&v->sync_cv);
        pthread_cond_signal(&v->write_cv);
        pthread_mutex_unlock(&v->mu);
        pthread_join(v->sync_thr, NULL);
        pthread_join(v->write_thr, NULL); /* its last turn writes what was pending */
    }
    if (v->o.broker && v->write_st && !v->o.no_threads) rtm_store_node_clear(v->write_st, v->node_id);
    struct batch b;
    batch_take(v, &b, 1);
    batch_free(&b);
    for (size_t i = 0; i < v->n_rows; i++) rows_release(&v->rows[(v->rows_head + i) % v->cap_rows], 1);
    free(v->rows);
    for (struct vmsg *m = v->mb_head, *n; m; m = n) {
        n = m->next;
        snapshot_free(m->snap);
        json_decref(m->rows);
        free(m);
    }
    snapshot_free(v->snap);
    for (uint32_t i = 0; i < v->jti_revs.cap; i++)
        if (v->jti_revs.slots[i].key) free(v->jti_revs.slots[i].val);
    for (uint32_t i = 0; i < v->peer_revs.cap; i++) {
        struct peer_rev *p = v->peer_revs.slots[i].key ? v->peer_revs.slots[i].val : NULL;
        if (p) free(p->key), free(p);
    }
    htab_free(&v->jti_revs);
    htab_free(&v->peer_revs);
    rtm_store_close(v->sync_st);
    rtm_store_close(v->write_st);
    pthread_cond_destroy(&v->sync_cv);
    pthread_cond_destroy(&v->write_cv);
    pthread_mutex_destroy(&v->mu);
    free(v->db);
    free(v);
}

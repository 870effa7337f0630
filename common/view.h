/* view.h: the store held in memory for the event loop, and the writes the
 * loop must not wait for.
 *
 * Keys, apps and revocations are read at open and kept current by a sync
 * thread with its own store handle: every poll-ms it asks the store whether
 * anything changed (sqlite: PRAGMA data_version, no table read when idle),
 * re-reads keys and apps when their change counter moved, and reads new
 * revocation (and, for a broker, outbox) rows by id. Session rows, the app
 * row on first use, presence snapshots and outbox posts go to a writer
 * thread, also with its own handle, which writes them in batches and
 * prunes session rows past their retention.
 *
 * Threads: everything here except the wake hook runs on the one thread that
 * owns the view (rtmd's event loop). The two threads never touch the loop's
 * data: they post to a locked mailbox and call hooks.wake (rtmd:
 * lws_cancel_service); the loop then calls rtm_view_drain, which applies
 * what was posted and calls the other hooks. A store that is down or slow
 * costs only fresh rows: lookups answer from memory, rtm_view_status says
 * the store is degraded and why.
 *
 * Bounds (what happens when hit is documented at each constant in view.c):
 * the mailbox (the sync thread waits), pending session rows (the oldest are
 * dropped, counted, logged at start and stop of dropping), pending outbox
 * posts and app rows (refused), revocations in memory (tokens refused). */
#ifndef RTM_VIEW_H
#define RTM_VIEW_H

#include "store.h"

#include <stdint.h>

struct rtm_view;

/* One revocation row as the store holds it (jti or peer_id, never both). */
struct rtm_revocation {
    const char *app;
    const char *jti;     /* NULL for a peer revocation */
    const char *peer_id; /* NULL for a jti revocation */
    int64_t before;      /* peer: tokens with iat < before are void */
};

struct rtm_view_hooks {
    /* Any thread: make the owner call rtm_view_drain soon. Must not block. */
    void (*wake)(void *arg);
    /* Owner thread, from rtm_view_drain (each may be NULL): */
    void (*key_revoked)(void *arg, const char *kid, const char *app); /* a live key is revoked or gone */
    void (*revoked)(void *arg, const struct rtm_revocation *r);      /* a new revocation row */
    void (*outbox)(void *arg, const char *kind, const char *app, const char *target, const char *data);
    void (*refreshed)(void *arg); /* a poll asked for with rtm_view_refresh has finished */
    void *arg;
};

struct rtm_view_opts {
    const char *db;      /* the store (--db) */
    const struct rtm_store_opts *store_opts; /* how to open it (a password file), may be NULL */
    const char *node_id; /* written on session rows and presence */
    int poll_ms;         /* how often the sync thread asks the store for changes */
    int flush_ms;        /* how often the writer writes what is pending */
    int rows_max;        /* pending session rows; beyond, the oldest are dropped */
    int broker;          /* 1: read the outbox, write node heartbeats and presence, prune old session rows */
    int64_t retention_ms; /* closed session rows older than this are pruned by the writer (0: never) */
    int no_threads;      /* harnesses that fork (tests/fuzz): loaded once at open, never
                          * polled again, writes kept (bounded) and dropped at close */
};

/* Opens the view's store handles, loads keys, apps and revocations (so the
 * first connection already finds them), starts both threads. 0, or negative
 * with a one-line reason in err. Owner thread. */
int rtm_view_open(const struct rtm_view_opts *o, const struct rtm_view_hooks *h, struct rtm_view **out,
                  char *err, size_t errlen);
/* Stops both threads after one last write of what is pending (bounded by
 * the store's busy timeout), clears this node's presence, frees everything. */
void rtm_view_close(struct rtm_view *v);
/* Applies what the threads posted; calls the hooks. Owner thread. */
void rtm_view_drain(struct rtm_view *v);
/* Asks for a poll now (a lookup missed; a revocation was just stored); the
 * refreshed hook fires once a poll that started after this call is drained.
 * Returns a ticket: rtm_view_served(v) >= ticket once that poll is done;
 * 0 with no_threads (no poll will come). */
uint64_t rtm_view_refresh(struct rtm_view *v);
uint64_t rtm_view_served(const struct rtm_view *v);

/* With no_threads only (harnesses): reads what changed in the store and
 * applies it now, on the caller's thread. 0 or negative. */
int rtm_view_poll_now(struct rtm_view *v);

/* Lookups, all from memory (owner thread). A key pointer is borrowed until
 * the next rtm_view_drain. */
const struct rtm_key *rtm_view_key(const struct rtm_view *v, const char *id);
/* The live HS256 secret key whose secret this is (compared in constant
 * time after a lookup by the secret's SHA-256), or NULL. */
const struct rtm_key *rtm_view_key_by_secret(const struct rtm_view *v, const char *secret);
/* Changes whenever the keys in the view change (a cache of copies compares it). */
uint64_t rtm_view_keys_generation(const struct rtm_view *v);
/* The store's config version (rtm_store_config_version) the keys and apps
 * in the view were read at: equal to the store's now means exact. */
int64_t rtm_view_config_version(const struct rtm_view *v);
/* 0 with *out filled, or RTM_ENOTFOUND. */
int rtm_view_app(const struct rtm_view *v, const char *name, struct rtm_app *out);
/* 1 revoked, 0 not, RTM_ELIMIT when the revocation table is over its bound
 * (the caller refuses: a revocation may be missing). */
int rtm_view_is_revoked(const struct rtm_view *v, const char *app, const char *jti, const char *peer_id,
                        int64_t iat);

/* A revocation this process has just stored (the mint API): enforced now,
 * before the poll brings the same row (which then changes nothing). */
void rtm_view_revocation_add(struct rtm_view *v, const struct rtm_revocation *r);

/* Writes for the writer thread (owner thread; never block). */
/* Copies the row; the view takes ownership of r->origin and r->user_agent. */
void rtm_view_session_row(struct rtm_view *v, struct rtm_session_row *r);
/* Creates the app row if missing (an app seen before its row was read). */
void rtm_view_app_ensure(struct rtm_view *v, const char *name);
/* The outbox (a kick or a publish for brokers in other processes). 0, or
 * RTM_ELIMIT when too many posts are pending (the store is not keeping up). */
int rtm_view_outbox_post(struct rtm_view *v, const char *kind, const char *app, const char *target,
                         const char *data);
/* This node's peers of app, as the JSON array text of GET /v1/peers (copied). */
void rtm_view_presence(struct rtm_view *v, const char *app, const char *peers);

/* 0 when the store answers; 1 when degraded, with the reason in reason. */
int rtm_view_status(struct rtm_view *v, char *reason, size_t len);
/* For /metrics: session rows dropped at the bound; how long the oldest
 * pending session row has waited (0 when none waits). Any thread. */
uint64_t rtm_view_rows_dropped(struct rtm_view *v);
int64_t rtm_view_write_lag_ms(struct rtm_view *v);

#endif

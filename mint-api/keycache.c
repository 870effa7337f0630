/* keycache.c: the Bearer key lookup without a store query per request.
 *
 * rtm_store_key_by_secret (hash, query, three JSON parses) was a fifth of a
 * token's cost in bench/mint.sh. Keys change only by a commit to the
 * database, usually from another process (`rtm key revoke`), so the cache is
 * exact rather than timed: a private read-only connection asks sqlite's
 * PRAGMA data_version, which changes whenever any other connection has
 * committed, and the whole cache is dropped on any change. Between commits
 * a cached live key is exactly what the store would answer.
 *
 * Entries are reference-counted: a request holds its key from the headers to
 * the reply even if the cache is flushed meanwhile. Only live secret keys are
 * cached; unknown or revoked secrets always go to the store. If the private
 * connection cannot be opened the cache is off and every lookup is a query.
 * One cache per mint_api; loop thread only. */
#include "keycache.h"

#include "log.h"
#include "util.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64 /* direct-mapped; a collision just costs a store query */

struct mint_keycache {
    sqlite3 *db;
    sqlite3_stmt *dv;
    int64_t version;
    uint64_t seed; /* random, so slot choice says nothing about a secret */
    struct mint_key *slot[SLOTS];
};

void mint_key_put(struct mint_key *k)
{
    if (!k || --k->refs > 0) return;
    rtm_key_free(&k->key);
    free(k->secret);
    free(k);
}

static void flush(struct mint_keycache *kc)
{
    for (size_t i = 0; i < SLOTS; i++) {
        mint_key_put(kc->slot[i]);
        kc->slot[i] = NULL;
    }
}

/* -1 when the version cannot be read (the cache then stays out of the way). */
static int64_t data_version(struct mint_keycache *kc)
{
    int64_t v = -1;
    if (sqlite3_step(kc->dv) == SQLITE_ROW) v = sqlite3_column_int64(kc->dv, 0);
    sqlite3_reset(kc->dv);
    return v;
}

int mint_keycache_open(const char *db_path, struct mint_keycache **out)
{
    struct mint_keycache *kc = calloc(1, sizeof *kc);
    *out = NULL;
    if (!kc) return -1;
    if (sqlite3_open_v2(db_path, &kc->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(kc->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT, &kc->dv, NULL) !=
            SQLITE_OK ||
        rtm_random_bytes(&kc->seed, sizeof kc->seed) != 0 || (kc->version = data_version(kc)) < 0) {
        log_warn("mint: key cache off (%s): every request queries the store",
                 kc->db ? sqlite3_errmsg(kc->db) : "out of memory");
        mint_keycache_close(kc);
        return -1;
    }
    *out = kc;
    return 0;
}

void mint_keycache_close(struct mint_keycache *kc)
{
    if (!kc) return;
    flush(kc);
    sqlite3_finalize(kc->dv);
    sqlite3_close(kc->db);
    free(kc);
}

static size_t slot_of(const struct mint_keycache *kc, const char *secret)
{
    uint64_t h = 1469598103934665603ull ^ kc->seed; /* FNV-1a, seeded */
    for (const unsigned char *p = (const unsigned char *)secret; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h % SLOTS);
}

static int usable(const struct rtm_key *k)
{
    return !k->revoked && !k->publishable && k->secret && strcmp(k->alg, "HS256") == 0;
}

struct mint_key *mint_key_get(struct mint_keycache *kc, struct rtm_store *st, const char *secret)
{
    size_t i = 0;
    if (kc) {
        int64_t v = data_version(kc);
        if (v < 0 || v != kc->version) {
            flush(kc);
            kc->version = v;
        }
        i = slot_of(kc, secret);
        struct mint_key *k = kc->slot[i];
        if (v >= 0 && k && rtm_streq_ct(k->secret, secret)) {
            k->refs++;
            return k;
        }
    }
    struct mint_key *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    if (rtm_store_key_by_secret(st, secret, &k->key) != 0) {
        free(k);
        return NULL;
    }
    k->refs = 1;
    if (!usable(&k->key) || !(k->secret = strdup(secret))) {
        mint_key_put(k);
        return NULL;
    }
    if (kc && kc->version >= 0) {
        mint_key_put(kc->slot[i]);
        kc->slot[i] = k;
        k->refs++;
    }
    return k;
}

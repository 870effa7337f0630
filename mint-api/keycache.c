/* keycache.c: the Bearer key lookup without a store query per request.
 *
 * Keys live in the store's in-memory view (common/view.h), kept current by
 * its sync thread: a key revoked by `rtm key revoke` in another process is
 * gone from the view within a poll. A request, though, holds its key from
 * the headers to the reply, across loop turns in which the view may swap
 * its snapshot, so it holds a reference-counted copy. Copies are cached in
 * a few slots and dropped whenever the view's keys change (its generation),
 * so between changes a lookup is a hash, a probe and a constant-time
 * compare, with no allocation.
 *
 * The view is polled, so it may be up to a poll behind the store; the mint
 * API must not accept a key revoked a moment ago by `rtm key revoke` in
 * another process. Each lookup first asks the store for its keys' change
 * counter (one indexed read of a one-row table; on the loop, on the private
 * backend listener only): equal to the view's, the view is exact; different,
 * the key is read from the store and the view asked to poll now. If the
 * store does not answer, the view is used as it is (degraded, still serving).
 * One cache per mint_api; loop thread only. */
#include "keycache.h"

#include "errors.h"
#include "util.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS 64 /* direct-mapped; a collision just costs a copy */

struct mint_keycache {
    struct rtm_view *view;
    uint64_t generation; /* the view's keys when the slots were filled */
    uint64_t seed;       /* random, so slot choice says nothing about a secret */
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

int mint_keycache_open(struct rtm_view *view, struct mint_keycache **out)
{
    struct mint_keycache *kc = calloc(1, sizeof *kc);
    *out = NULL;
    if (!kc) return RTM_ENOMEM;
    kc->view = view;
    if (rtm_random_bytes(&kc->seed, sizeof kc->seed)) {
        free(kc);
        return RTM_ECRYPTO;
    }
    kc->generation = rtm_view_keys_generation(view);
    *out = kc;
    return 0;
}

void mint_keycache_close(struct mint_keycache *kc)
{
    if (!kc) return;
    flush(kc);
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

static char **strv_dup(char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        if (!(out[i] = strdup(v[i]))) {
            while (i) free(out[--i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

/* A deep copy of a view's key (the view may drop it at its next drain). */
static int key_copy(struct rtm_key *dst, const struct rtm_key *src)
{
    *dst = *src;
    dst->secret = NULL;
    dst->channels = dst->origins = NULL;
    dst->n_channels = dst->n_origins = 0;
    if (src->secret && !(dst->secret = strdup(src->secret))) goto fail;
    if (!(dst->channels = strv_dup(src->channels, src->n_channels))) goto fail;
    dst->n_channels = src->n_channels;
    if (!(dst->origins = strv_dup(src->origins, src->n_origins))) goto fail;
    dst->n_origins = src->n_origins;
    return 0;
fail:
    rtm_key_free(dst);
    return RTM_ENOMEM;
}

/* k->key filled: the reference for the caller if it is a usable key, else NULL (k freed). */
static struct mint_key *adopt(struct mint_key *k, const char *secret)
{
    k->refs = 1;
    if (!usable(&k->key) || !(k->secret = strdup(secret))) {
        mint_key_put(k);
        return NULL;
    }
    return k;
}

struct mint_key *mint_key_get(struct mint_keycache *kc, struct rtm_store *st, const char *secret)
{
    int64_t cv = 0;
    if (rtm_store_config_version(st, &cv) == 0 && cv != rtm_view_config_version(kc->view)) {
        /* The view is behind the store: this lookup goes to the store. */
        rtm_view_refresh(kc->view);
        flush(kc);
        struct mint_key *k = calloc(1, sizeof *k);
        if (!k || rtm_store_key_by_secret(st, secret, &k->key) != 0) {
            free(k);
            return NULL;
        }
        return adopt(k, secret);
    }
    uint64_t gen = rtm_view_keys_generation(kc->view);
    if (gen != kc->generation) {
        flush(kc);
        kc->generation = gen;
    }
    size_t i = slot_of(kc, secret);
    struct mint_key *k = kc->slot[i];
    if (k && rtm_streq_ct(k->secret, secret)) {
        k->refs++;
        return k;
    }
    if (!(k = calloc(1, sizeof *k))) return NULL;
    const struct rtm_key *vk = rtm_view_key_by_secret(kc->view, secret);
    if (!vk || key_copy(&k->key, vk)) {
        free(k);
        return NULL;
    }
    if (!(k = adopt(k, secret))) return NULL;
    mint_key_put(kc->slot[i]);
    kc->slot[i] = k;
    k->refs++;
    return k;
}

/* hs256.c: HMAC-SHA256 keyed once per secret and thread.
 *
 * Design: OpenSSL's one-shot HMAC() cost a connect about 44k instructions
 * (callgrind), most of them not hashing: fetching the MAC and its digest by
 * name, a fresh context, and the key's inner and outer pads. Each thread
 * keeps keyed contexts for the few secrets it used last (HS256_SLOTS,
 * replaced round robin: a broker verifies with a handful of keys); a MAC
 * restarts such a context from the pads it kept (EVP_MAC_init without a
 * key) and hashes only the data. Per thread, so no lock; the one shared
 * word is a generation that rtm_hs256_forget bumps when the key view changes
 * (a key revoked or rotated): each thread compares it (a relaxed atomic
 * load) at its next MAC and, when it moved, wipes every context and secret
 * copy it kept, so a retired secret's copy does not wait for eviction. A
 * thread's contexts and secret copies are also wiped at its exit. */
#include "hs256.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HS256_SLOTS 4

struct slot {
    char *secret; /* a copy, to match the next caller's; wiped when replaced */
    size_t len;
    EVP_MAC_CTX *ctx; /* keyed with secret */
};
/* One per thread that made a MAC (thread-specific data). */
struct cache {
    struct slot s[HS256_SLOTS];
    unsigned next; /* the slot replaced next */
    unsigned long generation; /* forget_generation when the slots were last valid */
};

static pthread_key_t cache_key;
/* Bumped by rtm_hs256_forget: a thread's slots of an older generation are wiped. */
static atomic_ulong forget_generation;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_ready;

static void slot_clear(struct slot *s)
{
    if (s->secret) OPENSSL_clear_free(s->secret, s->len);
    EVP_MAC_CTX_free(s->ctx);
    memset(s, 0, sizeof *s);
}

static void cache_clear(struct cache *c)
{
    for (unsigned i = 0; i < HS256_SLOTS; i++) slot_clear(&c->s[i]);
    c->next = 0;
}

static void cache_free(void *p)
{
    cache_clear(p);
    free(p);
}

static void cache_init(void) { cache_ready = pthread_key_create(&cache_key, cache_free) == 0; }

/* This thread's cache, made on first use and emptied when the key view
 * changed since its last use; NULL when making it fails (the MAC is then
 * made without one). */
static struct cache *thread_cache(void)
{
    pthread_once(&cache_once, cache_init);
    if (!cache_ready) return NULL;
    unsigned long gen = atomic_load_explicit(&forget_generation, memory_order_relaxed);
    struct cache *c = pthread_getspecific(cache_key);
    if (c) {
        if (c->generation != gen) {
            cache_clear(c);
            c->generation = gen;
        }
        return c;
    }
    if (!(c = calloc(1, sizeof *c))) return NULL;
    c->generation = gen;
    if (pthread_setspecific(cache_key, c)) {
        free(c);
        return NULL;
    }
    return c;
}

static EVP_MAC_CTX *keyed_ctx(const char *secret, size_t len)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx && !EVP_MAC_init(ctx, (const unsigned char *)secret, len, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* The keyed context for secret, ready for data: a kept one restarted, or a
 * new one (kept when the cache has room for it: *owned = 0). */
static EVP_MAC_CTX *ctx_for(struct cache *c, const char *secret, size_t len, int *owned)
{
    *owned = 0;
    for (unsigned i = 0; c && i < HS256_SLOTS; i++) {
        struct slot *s = &c->s[i];
        if (s->ctx && s->len == len && CRYPTO_memcmp(s->secret, secret, len) == 0)
            return EVP_MAC_init(s->ctx, NULL, 0, NULL) ? s->ctx : NULL;
    }
    EVP_MAC_CTX *ctx = keyed_ctx(secret, len);
    char *copy = ctx && c ? malloc(len + 1) : NULL;
    if (!copy) {
        *owned = ctx != NULL;
        return ctx;
    }
    memcpy(copy, secret, len + 1);
    struct slot *s = &c->s[c->next];
    c->next = (c->next + 1) % HS256_SLOTS;
    slot_clear(s);
    s->secret = copy;
    s->len = len;
    s->ctx = ctx;
    return ctx;
}

int rtm_hs256(const char *secret, const unsigned char *data, size_t len, unsigned char out[RTM_HS256_LEN])
{
    int owned;
    size_t outl = 0;
    EVP_MAC_CTX *ctx = ctx_for(thread_cache(), secret, strlen(secret), &owned);
    int ok = ctx && EVP_MAC_update(ctx, data, len) && EVP_MAC_final(ctx, out, &outl, RTM_HS256_LEN) &&
             outl == RTM_HS256_LEN;
    if (owned) EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

void rtm_hs256_forget(void) { atomic_fetch_add_explicit(&forget_generation, 1, memory_order_relaxed); }

int rtm_hs256_kept(void)
{
    pthread_once(&cache_once, cache_init);
    const struct cache *c = cache_ready ? pthread_getspecific(cache_key) : NULL;
    int n = 0;
    for (unsigned i = 0; c && i < HS256_SLOTS; i++) n += c->s[i].ctx != NULL;
    return n;
}

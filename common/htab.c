/* htab.c: open-addressing hash table (see htab.h). Linear probing keeps a
 * lookup to one or two cache lines; backward-shift deletion keeps probe
 * chains short without tombstones, so a table that churns (channels joined
 * and left all day) never degrades.
 *
 * String keys are names clients choose (channels, peerIds, IPs), and linear
 * probing turns colliding names into one long run that every lookup walks:
 * they are hashed with SipHash-2-4 under a key drawn from getrandom(2) once
 * per process, so no client can compute a set of colliding names. */
#include "htab.h"

#include "errors.h"
#include "siphash.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MIN_CAP 8u

static uint8_t hash_key[16];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    size_t got = 0;
    while (got < sizeof hash_key) {
        ssize_t n = getrandom(hash_key + got, sizeof hash_key - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) abort(); /* no system randomness: refusing to run beats predictable tables */
        got += (size_t)n;
    }
}

static uint32_t hash_str(const char *s)
{
    pthread_once(&hash_key_once, hash_key_init);
    return (uint32_t)rtm_siphash24(hash_key, s, strlen(s));
}

static uint32_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static uint32_t hash_of(const struct htab *t, const void *key)
{
    return t->kind == HTAB_STR ? hash_str(key) : hash_ptr(key);
}

static int key_eq(const struct htab *t, const struct htab_slot *s, const void *key, uint32_t h)
{
    if (s->hash != h) return 0;
    return t->kind == HTAB_STR ? strcmp(s->key, key) == 0 : s->key == key;
}

void htab_init(struct htab *t, enum htab_kind kind)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
}

void htab_free(struct htab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->n = 0;
}

static struct htab_slot *find(const struct htab *t, const void *key, uint32_t h)
{
    if (!t->slots) return NULL;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        struct htab_slot *s = &t->slots[i];
        if (!s->key) return NULL;
        if (key_eq(t, s, key, h)) return s;
    }
}

void *htab_get(const struct htab *t, const void *key)
{
    struct htab_slot *s = find(t, key, hash_of(t, key));
    return s ? s->val : NULL;
}

static void place(struct htab_slot *slots, uint32_t cap, const struct htab_slot *e)
{
    uint32_t mask = cap - 1;
    uint32_t i = e->hash & mask;
    while (slots[i].key) i = (i + 1) & mask;
    slots[i] = *e;
}

static int resize(struct htab *t, uint32_t cap)
{
    struct htab_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return RTM_ENOMEM;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].key) place(ns, cap, &t->slots[i]);
    free(t->slots);
    t->slots = ns;
    t->cap = cap;
    return 0;
}

int htab_put(struct htab *t, const void *key, void *val)
{
    uint32_t h = hash_of(t, key);
    struct htab_slot *s = find(t, key, h);
    if (s) {
        s->val = val;
        return 0;
    }
    if (!t->slots || (t->n + 1) * 4 > t->cap * 3) {
        uint32_t cap = t->cap ? t->cap * 2 : MIN_CAP;
        if (resize(t, cap)) return RTM_ENOMEM;
    }
    struct htab_slot e = {key, val, h};
    place(t->slots, t->cap, &e);
    t->n++;
    return 0;
}

void *htab_del(struct htab *t, const void *key)
{
    uint32_t h = hash_of(t, key);
    struct htab_slot *s = find(t, key, h);
    if (!s) return NULL;
    void *val = s->val;
    uint32_t mask = t->cap - 1;
    uint32_t hole = (uint32_t)(s - t->slots);
    /* Backward shift: pull later members of the probe run into the hole when
     * their home slot is not between the hole and their current slot. */
    for (uint32_t j = (hole + 1) & mask; t->slots[j].key; j = (j + 1) & mask) {
        uint32_t home = t->slots[j].hash & mask;
        int between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (between) continue;
        t->slots[hole] = t->slots[j];
        hole = j;
    }
    t->slots[hole].key = NULL;
    t->slots[hole].val = NULL;
    t->n--;
    if (t->n == 0) {
        htab_free(t);
    } else if (t->cap > MIN_CAP && t->n * 8 < t->cap) {
        (void)resize(t, t->cap / 2); /* failing to shrink is harmless */
    }
    return val;
}

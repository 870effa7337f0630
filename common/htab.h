/* htab.h: rtm's one hash table (the broker's tables, the store view's): string keys
 * hashed with SipHash-2-4 under a per-process random key (client-chosen names
 * cannot be made to collide), open addressing, linear probing,
 * backward-shift deletion (no tombstones), power-of-two capacity that grows
 * at 3/4 load and shrinks at 1/8. Keys are borrowed: a string key must live
 * as long as its entry (it is normally a field of the value), a pointer key
 * is the pointer itself. Not thread-safe: one thread uses a table at a time.
 *
 * Iteration: for (i = 0; i < t->cap; i++) if (t->slots[i].key) ...; do not
 * insert or delete while iterating (collect first). */
#ifndef RTM_HTAB_H
#define RTM_HTAB_H

#include <stddef.h>
#include <stdint.h>

enum htab_kind { HTAB_STR, HTAB_PTR };

struct htab_slot {
    const void *key; /* NULL = empty */
    void *val;
    uint32_t hash;
};

struct htab {
    struct htab_slot *slots; /* NULL until the first insert: empty tables cost nothing */
    uint32_t cap, n;
    enum htab_kind kind;
};

void htab_init(struct htab *t, enum htab_kind kind);
void htab_free(struct htab *t);                 /* frees the slots, not keys or values */
void *htab_get(const struct htab *t, const void *key);
/* Inserts or replaces. 0, or RTM_ENOMEM (table unchanged). */
int htab_put(struct htab *t, const void *key, void *val);
/* Removes; returns the old value or NULL. */
void *htab_del(struct htab *t, const void *key);

#endif

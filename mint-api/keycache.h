/* keycache.h: private to mint-api/: Bearer secret -> live secret key, cached
 * exactly (dropped whenever the database changed). See keycache.c. */
#ifndef RTM_MINT_KEYCACHE_H
#define RTM_MINT_KEYCACHE_H

#include "store.h"

struct mint_keycache;

/* A live HS256 secret key, shared by the cache and the requests using it. */
struct mint_key {
    int refs;
    char *secret;
    struct rtm_key key;
};

/* Opens the cache's private read-only view of db_path; on failure returns -1
 * and *out = NULL, and mint_key_get still works (through the store only). */
int mint_keycache_open(const char *db_path, struct mint_keycache **out);
void mint_keycache_close(struct mint_keycache *kc);

/* The key whose secret this is, if it is a live secret key, with a reference
 * the caller releases with mint_key_put; NULL for unknown, revoked,
 * publishable, or on error (one answer for all). kc may be NULL. */
struct mint_key *mint_key_get(struct mint_keycache *kc, struct rtm_store *st, const char *secret);
void mint_key_put(struct mint_key *k);

#endif

/* keycache.h: private to mint-api/: Bearer secret -> live secret key, from
 * the store's in-memory view (common/view.h). See keycache.c. */
#ifndef RTM_MINT_KEYCACHE_H
#define RTM_MINT_KEYCACHE_H

#include "store.h"

struct mint_keycache;
struct rtm_view;

/* A live HS256 secret key, shared by the cache and the requests using it. */
struct mint_key {
    int refs;
    char *secret;
    struct rtm_key key;
};

/* 0, or RTM_ENOMEM. The view must outlive the cache. */
int mint_keycache_open(struct rtm_view *view, struct mint_keycache **out);
void mint_keycache_close(struct mint_keycache *kc);

/* The key whose secret this is, if it is a live secret key, with a reference
 * the caller releases with mint_key_put; NULL for unknown, revoked,
 * publishable, or on error (one answer for all). */
struct mint_key *mint_key_get(struct mint_keycache *kc, struct rtm_store *st, const char *secret);
void mint_key_put(struct mint_key *k);

#endif

/* hs256.h: HMAC-SHA256 for token verification, with each key's schedule
 * computed once per thread instead of once per MAC. */
#ifndef RTM_HS256_H
#define RTM_HS256_H

#include <stddef.h>

#define RTM_HS256_LEN 32

/* The HMAC-SHA256 of data under secret (the key is the secret's bytes)
 * into out. Returns 0, or -1 when OpenSSL fails (out of memory).
 * Thread-safe: each thread keeps its own few keyed contexts, each with a
 * copy of its secret (in memory only), until newer secrets replace it, the
 * key view changes (rtm_hs256_forget) or the thread exits (then wiped). */
int rtm_hs256(const char *secret, const unsigned char *data, size_t len, unsigned char out[RTM_HS256_LEN]);

/* The keys changed (one revoked, rotated or removed): every thread wipes the
 * contexts and secret copies it kept at its next rtm_hs256, before using
 * any (a thread that makes no more MACs keeps them until it exits). Cheap:
 * one atomic increment here, one relaxed load per MAC. Any thread. */
void rtm_hs256_forget(void);

/* How many keyed contexts the calling thread keeps now (tests). */
int rtm_hs256_kept(void);

#endif

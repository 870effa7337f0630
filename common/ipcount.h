/* ipcount.h: how many of something each remote address holds right now (the
 * public listener's unfinished handshakes, the sockets waiting for their auth
 * frame), for per-address bounds.
 *
 * Design: a string-keyed htab of small heap entries that exist only while
 * their count is at least 1, so the table is never larger than the number of
 * things counted, which the caller bounds overall. Loop thread only. */
#ifndef RTM_IPCOUNT_H
#define RTM_IPCOUNT_H

#include "htab.h"

/* One per address with n >= 1; owned by its table (the key is ip). */
struct rtm_ipcount {
    int n;
    char ip[64];
};

/* The address's count; 0 when it holds nothing. */
int rtm_ipcount_get(const struct htab *t, const char *ip);
/* Counts one more for ip (its entry made on the first); the entry, or NULL
 * when out of memory (nothing counted). */
struct rtm_ipcount *rtm_ipcount_add(struct htab *t, const char *ip);
/* Counts one less; the entry is freed when it reaches 0. */
void rtm_ipcount_drop(struct htab *t, struct rtm_ipcount *c);
/* Frees every entry and the table. */
void rtm_ipcount_free(struct htab *t);

#endif

/* ipcount.c: per-address counts (ipcount.h). */
#include "ipcount.h"

#include <stdio.h>
#include <stdlib.h>

int rtm_ipcount_get(const struct htab *t, const char *ip)
{
    const struct rtm_ipcount *c = htab_get(t, ip);
    return c ? c->n : 0;
}

struct rtm_ipcount *rtm_ipcount_add(struct htab *t, const char *ip)
{
    struct rtm_ipcount *c = htab_get(t, ip);
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return NULL;
        snprintf(c->ip, sizeof c->ip, "%s", ip);
        if (htab_put(t, c->ip, c)) {
            free(c);
            return NULL;
        }
    }
    c->n++;
    return c;
}

void rtm_ipcount_drop(struct htab *t, struct rtm_ipcount *c)
{
    if (--c->n > 0) return;
    htab_del(t, c->ip);
    free(c);
}

void rtm_ipcount_free(struct htab *t)
{
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots && t->slots[i].key) free(t->slots[i].val);
    htab_free(t);
}

/* failalloc.h: an allocation-failure hook for tests: fail the Nth allocation.
 *
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 * --wrap=strndup (the Makefile does it for the fault tests only), so every
 * allocation made by rtm's own objects goes through it; jansson's go through
 * it too (json_set_alloc_funcs at fa_init). libjwt, sqlite, OpenSSL and lws
 * allocate on their own and are not failed. One-shot: the Nth allocation
 * after fa_arm fails, the ones after it succeed again (a transient failure,
 * the hardest case for cleanup paths). Single-threaded. */
#ifndef RTM_FAILALLOC_H
#define RTM_FAILALLOC_H

/* Installs the jansson hook; call once before any JSON exists. */
void fa_init(void);
/* Starts counting allocations; nth > 0 makes the nth one fail. */
void fa_arm(long nth);
/* Stops; returns the allocations counted since fa_arm. */
long fa_disarm(void);
/* 1 when the armed failure happened. */
int fa_fired(void);

#endif

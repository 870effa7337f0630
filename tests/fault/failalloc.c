/* failalloc.c: see failalloc.h. */
#include "failalloc.h"

#include <jansson.h>
#include <stddef.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void free(void *p);

static int armed, fired;
static long count, fail_at;

static int fail_now(void)
{
    if (!armed) return 0;
    if (++count != fail_at) return 0;
    fired = 1;
    return 1;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fail_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fail_now() ? NULL : __real_strndup(s, n); }

static void *json_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }

void fa_init(void) { json_set_alloc_funcs(json_malloc, free); }

void fa_arm(long nth)
{
    count = 0;
    fired = 0;
    fail_at = nth;
    armed = 1;
}

long fa_disarm(void)
{
    armed = 0;
    return count;
}

int fa_fired(void) { return fired; }

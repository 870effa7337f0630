/* json_dump.c: see json_dump.h. Two passes (measure, then write into a
 * buffer of exactly that size), as json_dumps does internally, without its
 * growing buffer. */
#include "json_dump.h"

#include <stdlib.h>

char *rtm_json_dumps(const json_t *v, size_t flags)
{
    if (!v) return NULL;
    size_t need = json_dumpb(v, NULL, 0, flags);
    if (need == 0) return NULL; /* out of memory (the cycle check allocates) */
    char *s = malloc(need + 1);
    if (!s) return NULL;
    if (json_dumpb(v, s, need, flags) != need) {
        free(s);
        return NULL;
    }
    s[need] = '\0';
    return s;
}

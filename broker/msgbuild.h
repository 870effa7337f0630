/* msgbuild.h: writing one outbound frame's JSON directly into its buffer.
 * On allocation failure the builder goes sticky-bad and mb_finish returns
 * NULL, so callers check once at the end. */
#ifndef BRK_MSGBUILD_H
#define BRK_MSGBUILD_H

#include <jansson.h>
#include <stddef.h>

struct brk_msg;
struct mb {
    struct brk_msg *m;
    size_t len, cap;
    int oom;
};
void mb_init(struct mb *b, size_t hint);
void mb_raw(struct mb *b, const void *p, size_t n);
void mb_lit(struct mb *b, const char *s);
void mb_str(struct mb *b, const char *s); /* a JSON string literal, escaped */
void mb_int(struct mb *b, long long v);
void mb_json(struct mb *b, const json_t *v); /* any JSON value (NULL -> null) */
/* The sealed frame (refs = 1), or NULL if anything failed. */
struct brk_msg *mb_finish(struct mb *b);

#endif

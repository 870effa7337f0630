/* json_strict.c: the strict subset scan (see json_strict.h). Design: a
 * recursive descent bounded by RTM_JSTRICT_DEPTH, nothing allocated; keys
 * of one object are compared pairwise (at most RTM_JSTRICT_MEMBERS). */
#include "json_strict.h"
#include "json_scan.h"
#include "utf8.h"

#include <string.h>

const char *rtm_jstrict_string(const char *p, const char *e)
{
    if (p >= e || *p != '"') return NULL;
    const char *s = p + 1, *q = memchr(s, '"', (size_t)(e - s));
    if (!q) return NULL;
    int high = 0;
    for (const char *c = s; c < q; c++) {
        unsigned char u = (unsigned char)*c;
        if (u < 0x20 || u == '\\') return NULL;
        high |= u >= 0x80;
    }
    if (high && !utf8_valid((const unsigned char *)s, (size_t)(q - s))) return NULL;
    return q + 1;
}

static const char *integer(const char *p, const char *e)
{
    if (p < e && *p == '-') p++;
    const char *d = p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    size_t n = (size_t)(p - d);
    if (n == 0 || n > 18 || (n > 1 && *d == '0')) return NULL;
    return p;
}

static const char *literal(const char *p, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *value(const char *p, const char *e, int depth);

static const char *object(const char *p, const char *e, int depth)
{
    const char *keys[RTM_JSTRICT_MEMBERS];
    size_t klen[RTM_JSTRICT_MEMBERS], n = 0;
    p = rtm_json_skip_ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
        const char *kend = rtm_jstrict_string(p, e);
        if (!kend || n == RTM_JSTRICT_MEMBERS) return NULL;
        size_t kl = (size_t)(kend - p - 2);
        for (size_t i = 0; i < n; i++)
            if (klen[i] == kl && memcmp(keys[i], p + 1, kl) == 0) return NULL; /* jansson refuses it */
        keys[n] = p + 1;
        klen[n++] = kl;
        p = rtm_json_skip_ws(kend, e);
        if (p >= e || *p != ':') return NULL;
        p = value(rtm_json_skip_ws(p + 1, e), e, depth);
        if (!p) return NULL;
        p = rtm_json_skip_ws(p, e);
        if (p < e && *p == '}') return p + 1;
        if (p >= e || *p != ',') return NULL;
        p = rtm_json_skip_ws(p + 1, e);
    }
}

static const char *array(const char *p, const char *e, int depth)
{
    p = rtm_json_skip_ws(p + 1, e);
    if (p < e && *p == ']') return p + 1;
    for (;;) {
        p = value(p, e, depth);
        if (!p) return NULL;
        p = rtm_json_skip_ws(p, e);
        if (p < e && *p == ']') return p + 1;
        if (p >= e || *p != ',') return NULL;
        p = rtm_json_skip_ws(p + 1, e);
    }
}

static const char *value(const char *p, const char *e, int depth)
{
    if (p >= e) return NULL;
    switch (*p) {
    case '"': return rtm_jstrict_string(p, e);
    case '{': return depth < RTM_JSTRICT_DEPTH ? object(p, e, depth + 1) : NULL;
    case '[': return depth < RTM_JSTRICT_DEPTH ? array(p, e, depth + 1) : NULL;
    case 't': return literal(p, e, "true");
    case 'f': return literal(p, e, "false");
    case 'n': return literal(p, e, "null");
    default: return integer(p, e);
    }
}

const char *rtm_jstrict_value(const char *p, const char *e) { return value(p, e, 0); }

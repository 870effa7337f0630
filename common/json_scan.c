/* json_scan.c: raw member lookup in JSON text already known to be valid
 * (see json_scan.h). Design: a scan by structure alone (strings, nesting),
 * no values decoded, so finding a member costs one pass over the bytes
 * before it and nothing is allocated. */
#include "json_scan.h"

#include <string.h>

const char *rtm_json_skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

const char *rtm_json_skip_string(const char *p, const char *e)
{
    /* The next quote (memchr: a token's long base64 credentials, a frame's
     * data) that is not escaped: escaped when an odd run of backslashes
     * inside the string stands right before it. */
    for (const char *q = p + 1; q < e;) {
        const char *c = memchr(q, '"', (size_t)(e - q));
        if (!c) return e;
        size_t run = 0;
        for (const char *b = c - 1; b > p && *b == '\\'; b--) run++;
        if (!(run & 1)) return c + 1;
        q = c + 1;
    }
    return e;
}

const char *rtm_json_skip_value(const char *p, const char *e)
{
    if (p >= e) return e;
    if (*p == '"') return rtm_json_skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = rtm_json_skip_string(p, e);
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return e;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p;
}

/* One pass over the top-level members: for each of keys, the first (stop)
 * or the last member spelled so; the count of members. 0, or -1 when not an
 * object or a key is written with escapes. */
static int walk(const char *json, size_t len, const char *const *keys, size_t nkeys, struct rtm_json_span *out,
                size_t *members, int stop)
{
    const char *p = json, *e = json + len;
    size_t n = 0;
    for (size_t k = 0; k < nkeys; k++) out[k].p = NULL, out[k].n = 0;
    p = rtm_json_skip_ws(p, e);
    if (p >= e || *p != '{') return -1;
    p = rtm_json_skip_ws(p + 1, e);
    if (p < e && *p == '}') goto end; /* {} */
    for (;;) {
        if (p >= e || *p != '"') return -1;
        const char *ks = p + 1, *kend = rtm_json_skip_string(p, e);
        if (kend - 1 < ks) return -1;
        size_t kl = (size_t)(kend - 1 - ks);
        if (memchr(ks, '\\', kl)) return -1;
        p = rtm_json_skip_ws(kend, e);
        if (p >= e || *p != ':') return -1;
        p = rtm_json_skip_ws(p + 1, e);
        const char *vs = p;
        p = rtm_json_skip_value(p, e);
        n++;
        for (size_t k = 0; k < nkeys; k++) {
            if (strlen(keys[k]) != kl || memcmp(ks, keys[k], kl) != 0) continue;
            out[k].p = vs;
            out[k].n = (size_t)(p - vs);
            if (stop) return 0;
        }
        p = rtm_json_skip_ws(p, e);
        if (p < e && *p == '}') break;
        if (p >= e || *p != ',') return -1;
        p = rtm_json_skip_ws(p + 1, e);
    }
end:
    if (members) *members = n;
    return 0;
}

int rtm_json_raw_member(const char *json, size_t len, const char *key, const char **vp, size_t *vn)
{
    struct rtm_json_span sp;
    if (walk(json, len, &key, 1, &sp, NULL, 1) || !sp.p) return -1;
    *vp = sp.p;
    *vn = sp.n;
    return 0;
}

int rtm_json_raw_members(const char *json, size_t len, const char *const *keys, size_t nkeys,
                         struct rtm_json_span *out, size_t *members)
{
    return walk(json, len, keys, nkeys, out, members, 0);
}

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
    for (p++; p < e; p++) {
        if (*p == '\\') p++;
        else if (*p == '"') return p + 1;
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

int rtm_json_raw_member(const char *json, size_t len, const char *key, const char **vp, size_t *vn,
                        size_t *members)
{
    const char *p = json, *e = json + len;
    size_t klen = strlen(key), n = 0;
    int found = 0;
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
        int match = kl == klen && memcmp(ks, key, klen) == 0;
        p = rtm_json_skip_ws(kend, e);
        if (p >= e || *p != ':') return -1;
        p = rtm_json_skip_ws(p + 1, e);
        const char *vs = p;
        p = rtm_json_skip_value(p, e);
        n++;
        if (match) {
            *vp = vs;
            *vn = (size_t)(p - vs);
            found = 1;
            if (!members) return 0;
        }
        p = rtm_json_skip_ws(p, e);
        if (p < e && *p == '}') break;
        if (p >= e || *p != ',') return -1;
        p = rtm_json_skip_ws(p + 1, e);
    }
end:
    if (members) *members = n;
    return found ? 0 : -1;
}

/* frames_fast.c: send and publish read in one pass (see frames_fast.h).
 * Design: a flat walk over the top-level members with the strict subset
 * scan (common/json_strict.c) for every value, so no tree is built; keys
 * are compared as written (an escaped key makes the strict string decline),
 * and each of the few allowed members may appear once. */
#include "frames_fast.h"
#include "json_scan.h"
#include "json_strict.h"
#include "utf8.h"

#include <string.h>

enum { M_TYPE = 1, M_TO = 2, M_CHANNEL = 4, M_DATA = 8, M_RID = 16 };

static const struct {
    const char *name;
    unsigned bit;
} members[] = {{"type", M_TYPE}, {"to", M_TO}, {"channel", M_CHANNEL}, {"data", M_DATA}, {"requestId", M_RID}};

/* A member's string value without its quotes, copied into out (cap bytes with
 * the NUL); 0 when it does not fit. */
static int copy_str(const char *vs, const char *vend, char *out, size_t cap)
{
    size_t n = (size_t)(vend - vs - 2);
    if (n >= cap) return 0;
    memcpy(out, vs + 1, n);
    out[n] = '\0';
    return 1;
}

int frame_fast_scan(const char *text, size_t len, struct frame_fast *f)
{
    const char *p = text, *e = text + len, *type = NULL, *type_end = NULL;
    unsigned seen = 0;
    p = rtm_json_skip_ws(p, e);
    if (p >= e || *p != '{') return 0;
    p = rtm_json_skip_ws(p + 1, e);
    for (;;) {
        const char *kend = rtm_jstrict_string(p, e);
        if (!kend) return 0;
        size_t kl = (size_t)(kend - p - 2);
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
            if (strlen(members[i].name) == kl && memcmp(members[i].name, p + 1, kl) == 0) bit = members[i].bit;
        if (!bit || (seen & bit)) return 0; /* unknown or repeated: jansson decides */
        seen |= bit;
        p = rtm_json_skip_ws(kend, e);
        if (p >= e || *p != ':') return 0;
        const char *vs = rtm_json_skip_ws(p + 1, e), *vend;
        if (bit == M_DATA) {
            vend = rtm_jstrict_value(vs, e);
            if (!vend) return 0;
            f->data = vs;
            f->dlen = (size_t)(vend - vs);
        } else {
            vend = rtm_jstrict_string(vs, e);
            if (!vend) return 0;
            if (bit == M_TYPE) type = vs + 1, type_end = vend - 1;
            else if (bit == M_RID && !copy_str(vs, vend, f->rid, sizeof f->rid)) return 0;
            else if ((bit == M_TO || bit == M_CHANNEL) && !copy_str(vs, vend, f->target, sizeof f->target)) return 0;
        }
        p = rtm_json_skip_ws(vend, e);
        if (p < e && *p == '}') break;
        if (p >= e || *p != ',') return 0;
        p = rtm_json_skip_ws(p + 1, e);
    }
    if (rtm_json_skip_ws(p + 1, e) != e) return 0; /* trailing text */

    size_t tl = type ? (size_t)(type_end - type) : 0;
    if (seen == (M_TYPE | M_TO | M_DATA | (seen & M_RID)) && tl == 4 && memcmp(type, "send", 4) == 0) {
        if (!rtm_peer_id_valid(f->target)) return 0;
        f->type = "send";
    } else if (seen == (M_TYPE | M_CHANNEL | M_DATA | (seen & M_RID)) && tl == 7 && memcmp(type, "publish", 7) == 0) {
        if (!rtm_channel_valid(f->target)) return 0;
        f->type = "publish";
    } else {
        return 0;
    }
    f->has_rid = (seen & M_RID) != 0;
    if (!f->has_rid) f->rid[0] = '\0';
    else if (utf8_chars(f->rid) > RTM_MAX_REQUEST_ID) return 0;
    return 1;
}

/* json_scan.h: reading raw members out of JSON text that a parser already
 * accepted, without building anything: where a member's value starts and
 * ends, so it can be copied as is (a frame's data, a token's metadata).
 * Every function is bounded by e and never reads past it. */
#ifndef RTM_JSON_SCAN_H
#define RTM_JSON_SCAN_H

#include <stddef.h>

const char *rtm_json_skip_ws(const char *p, const char *e);
/* p at the opening quote: just past the closing one (or e). */
const char *rtm_json_skip_string(const char *p, const char *e);
/* p at a value: just past it (or e). */
const char *rtm_json_skip_value(const char *p, const char *e);
/* The raw text of the first top-level member key of the object in
 * json[0..len) (for text whose parser refused repeated members). 0 when
 * found; -1 when absent, or when any key is written with escapes (an
 * escaped key may spell key: the caller then goes by the parsed value). */
int rtm_json_raw_member(const char *json, size_t len, const char *key, const char **vp, size_t *vn);

struct rtm_json_span {
    const char *p; /* NULL: absent */
    size_t n;
};
/* In one pass, the raw text of each of keys' top-level members, the last of
 * each (as a parser that lets a repeated member keep its last value reads
 * it), and the number of top-level members. 0, or -1 as above. */
int rtm_json_raw_members(const char *json, size_t len, const char *const *keys, size_t nkeys,
                         struct rtm_json_span *out, size_t *members);

#endif

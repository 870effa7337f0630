/* json_strict.h: a validating scan of a small subset of JSON, for the
 * broker's hot frames (common/frames_fast.c). Design: it answers "jansson
 * (JSON_REJECT_DUPLICATES) accepts this, and reads it as written" or "not
 * sure" (NULL), never "invalid": a caller falls back to jansson on NULL, so
 * anything outside the subset keeps jansson's decision and error.
 *
 * The subset: strings without escapes or control characters, in valid
 * UTF-8; integers of at most 18 digits (always within int64, so
 * jansson never finds them too big) (no fraction, no exponent); true,
 * false, null; arrays and objects of these, at most RTM_JSTRICT_DEPTH deep,
 * objects with at most RTM_JSTRICT_MEMBERS members, all keys distinct. */
#ifndef RTM_JSON_STRICT_H
#define RTM_JSON_STRICT_H

#include <stddef.h>

#define RTM_JSTRICT_DEPTH 16
#define RTM_JSTRICT_MEMBERS 16

/* p at '"': just past the closing quote, or NULL. */
const char *rtm_jstrict_string(const char *p, const char *e);
/* p at a value: just past it, or NULL. A scalar must be followed (after
 * whitespace) by ',', '}' or ']' for the caller to trust its end. */
const char *rtm_jstrict_value(const char *p, const char *e);

#endif

/* pattern.h: channel patterns. Segments are separated by '/'; '*' matches any
 * run of characters inside one segment (so "room-*" matches "room-42" but not
 * "room-4/x"), "**" matches any run including '/'. */
#ifndef RTM_PATTERN_H
#define RTM_PATTERN_H

#include <stddef.h>

/* 1 when channel (a concrete name) matches pattern. */
int rtm_pattern_match(const char *pattern, const char *channel);

/* 1 when every channel matched by inner is also matched by outer (used to
 * check that a token's patterns lie inside its key's). Conservative: may say
 * 0 for exotic equal sets, never 1 for a wider inner. */
int rtm_pattern_within(const char *inner, const char *outer);

/* 1 when channel matches any of the patterns. */
int rtm_pattern_match_any(char *const *patterns, size_t n, const char *channel);

#endif

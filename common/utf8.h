/* utf8.h: UTF-8 validity (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), shared by the broker's frame reader and the strict JSON scan. */
#ifndef RTM_UTF8_H
#define RTM_UTF8_H

#include <stddef.h>

/* 1 when p[0..n) is valid UTF-8. */
int utf8_valid(const unsigned char *p, size_t n);
/* The characters of valid UTF-8 text s (its lead bytes). */
size_t utf8_chars(const char *s);

#endif

/* util.h: small helpers every module needs: clocks, random ids, base64. */
#ifndef RTM_UTIL_H
#define RTM_UTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t rtm_now_ms(void);   /* wall clock, unix milliseconds */
int64_t rtm_now_s(void);    /* wall clock, unix seconds */
int64_t rtm_mono_ms(void);  /* monotonic milliseconds, for timers and rates */
int64_t rtm_mono_ns(void);  /* monotonic nanoseconds, for latency histograms */
/* Milliseconds from now until early_ms before the unix time at_s (a token's
 * exp), for arming a timer: never negative, and saturated instead of
 * overflowing whatever at_s is (at most RTM_MS_UNTIL_MAX, which still fits
 * int64_t when a timer converts it to microseconds). */
#define RTM_MS_UNTIL_MAX (INT64_MAX / 2000)
int64_t rtm_ms_until_s(int64_t at_s, int64_t early_ms);

/* Fills out with n cryptographically random bytes (OpenSSL RAND_bytes). 0 or RTM_ECRYPTO. */
int rtm_random_bytes(void *out, size_t n);
/* Writes prefix + 2*nbytes lowercase hex chars + NUL into out (outlen must fit). */
int rtm_random_id(const char *prefix, size_t nbytes, char *out, size_t outlen);
/* Writes a random RFC 4122 version-4 UUID (36 chars + NUL). */
int rtm_uuid4(char out[37]);

/* Standard base64 with padding; returns bytes written (excluding NUL) or -1 if outlen is short. */
int rtm_base64(const unsigned char *in, size_t n, char *out, size_t outlen);
/* base64url without padding (JWK, JWS). */
int rtm_base64url(const unsigned char *in, size_t n, char *out, size_t outlen);

/* Constant-time comparison of two NUL-terminated strings. */
int rtm_streq_ct(const char *a, const char *b);

#endif

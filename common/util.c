/* util.c: clocks, randomness and encodings shared by every module. */
#include "util.h"

#include "errors.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t rtm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rtm_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rtm_now_s(void) { return (int64_t)time(NULL); }

int64_t rtm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rtm_ms_until_s(int64_t at_s, int64_t early_ms)
{
    if (at_s <= 0) return 0;
    if (at_s > RTM_MS_UNTIL_MAX / 1000) return RTM_MS_UNTIL_MAX;
    int64_t at_ms = at_s * 1000; /* at most RTM_MS_UNTIL_MAX: no overflow below */
    if (early_ms < 0) early_ms = 0;
    if (early_ms >= at_ms) return 0;
    int64_t d = at_ms - early_ms - rtm_now_ms();
    return d < 0 ? 0 : d > RTM_MS_UNTIL_MAX ? RTM_MS_UNTIL_MAX : d;
}

int rtm_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : RTM_ECRYPTO;
}

int rtm_random_id(const char *prefix, size_t nbytes, char *out, size_t outlen)
{
    unsigned char buf[64];
    size_t plen = strlen(prefix);
    if (nbytes > sizeof buf || plen + 2 * nbytes + 1 > outlen) return RTM_EINVAL;
    if (rtm_random_bytes(buf, nbytes)) return RTM_ECRYPTO;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, prefix, plen);
    /* by hand: a snprintf per byte was 4 % of a connect's instructions (session ids) */
    for (size_t i = 0; i < nbytes; i++) {
        out[plen + 2 * i] = hex[buf[i] >> 4];
        out[plen + 2 * i + 1] = hex[buf[i] & 15];
    }
    out[plen + 2 * nbytes] = '\0';
    return 0;
}

int rtm_uuid4(char out[37])
{
    unsigned char b[16];
    if (rtm_random_bytes(b, sizeof b)) return RTM_ECRYPTO;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

int rtm_base64(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    if (outlen < 4 * ((n + 2) / 3) + 1) return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int rtm_base64url(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    int len = rtm_base64(in, n, out, outlen);
    if (len < 0) return -1;
    while (len > 0 && out[len - 1] == '=') out[--len] = '\0';
    for (int i = 0; i < len; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
    }
    return len;
}

int rtm_streq_ct(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

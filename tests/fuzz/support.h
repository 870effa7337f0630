/* support.h: what every fuzz harness shares: the oracle's abort, an
 * independent channel-pattern matcher, base64url, JSON checks, a scratch
 * directory. Nothing here calls rtm code: an oracle that reused the code
 * under test would agree with every bug. */
#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct lws_context;

/* The libFuzzer entry point every harness defines (replay.c calls it too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An oracle violation: prints what and aborts (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                             \
    } while (0)
__attribute__((noreturn, format(printf, 4, 5))) void fuzz_fail(const char *file, int line, const char *cond,
                                                               const char *fmt, ...);

/* The pattern rules of common/pattern.h, written again from the spec as a
 * plain memoized recursion: '*' is any run without '/', a run of two or more
 * stars is any run at all, everything else is literal. */
int ref_match(const char *pattern, const char *channel);
/* A concrete channel the pattern matches: each '*' becomes fill (its '/'
 * dropped), each '**' becomes fill as is. Caller frees. */
char *ref_instantiate(const char *pattern, const char *fill);

/* base64url without padding. enc: out needs 4*n/3+4 bytes, returns length.
 * dec: returns decoded length or -1 on a bad character; out needs n bytes. */
size_t b64url_enc(const unsigned char *in, size_t n, char *out);
long b64url_dec(const char *in, size_t n, unsigned char *out);

/* Parses exactly one JSON object filling the whole buffer (nothing after it);
 * NULL otherwise. New reference. */
json_t *one_object(const char *text, size_t len);

/* A private directory for the process (removed at exit). */
const char *fuzz_tmpdir(void);

/* A real lws context without a listener, made once per process: timers need
 * a loop to be armed on; nothing ever runs it, so nothing connects. */
struct lws_context *fuzz_lws_context(void);

/* Splits data into records at the separator byte 0x1e (ASCII RS, never valid
 * unescaped in JSON). Calls fn(rec, len, ud) for each, at most max records. */
void fuzz_records(const uint8_t *data, size_t size, size_t max, void (*fn)(const uint8_t *, size_t, void *),
                  void *ud);

#endif

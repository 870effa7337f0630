/* fuzz_pattern.c: common/pattern.c against the independent matcher in
 * support.c.
 *
 * Input: "<pattern>\0<channel>\0<fill>" (missing parts are empty).
 * Oracle: rtm_pattern_match agrees with ref_match on (pattern, channel) and
 * on (pattern, pattern's own instantiation); whenever rtm_pattern_within says
 * a pattern lies inside another, every instantiation of the inner (its stars
 * filled with fill, "", "x", "a/b") matches the outer by the reference; a
 * pattern is within itself; rtm_pattern_match_any is the OR of the matches. */
#include "support.h"

#include "pattern.h"

#include <stdlib.h>
#include <string.h>

/* The DP caps inputs at 1024 tokens (longer never match); stay below it so
 * both matchers are asked the same question. */
#define MAX_PART 600

static char *part(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
    size_t n = z ? (size_t)(z - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = z ? z + 1 : end;
    return s;
}

static void within_sound(const char *inner, const char *outer, const char *fill)
{
    if (!rtm_pattern_within(inner, outer)) return;
    const char *fills[] = {fill, "", "x", "a/b", "/"};
    for (size_t i = 0; i < sizeof fills / sizeof fills[0]; i++) {
        char *inst = ref_instantiate(inner, fills[i]);
        FUZZ_CHECK(ref_match(outer, inst), "within(\"%s\", \"%s\") but \"%s\" escapes the outer", inner, outer, inst);
        free(inst);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *pat = part(&p, end), *chan = part(&p, end), *fill = part(&p, end);
    if (strlen(pat) > MAX_PART || strlen(chan) > MAX_PART || strlen(fill) > 64) goto done;

    int got = rtm_pattern_match(pat, chan), want = ref_match(pat, chan);
    FUZZ_CHECK(got == want, "match(\"%s\", \"%s\") = %d, reference says %d", pat, chan, got, want);

    char *inst = ref_instantiate(pat, fill);
    if (strlen(inst) <= MAX_PART) {
        FUZZ_CHECK(ref_match(pat, inst), "reference does not match its own instance (harness bug)");
        FUZZ_CHECK(rtm_pattern_match(pat, inst), "match(\"%s\", \"%s\") = 0 for an instance of it", pat, inst);
    }
    free(inst);

    FUZZ_CHECK(rtm_pattern_within(pat, pat), "\"%s\" is not within itself", pat);
    within_sound(chan, pat, fill); /* the channel part read as a pattern */
    within_sound(pat, chan, fill);

    char *const pats[2] = {pat, chan};
    int any = rtm_pattern_match_any(pats, 2, fill);
    FUZZ_CHECK(any == (ref_match(pat, fill) || ref_match(chan, fill)), "match_any disagrees for \"%s\"", fill);
done:
    free(pat);
    free(chan);
    free(fill);
    return 0;
}

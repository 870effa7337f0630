/* pattern.c: channel patterns ('*' inside one segment, '**' across segments).
 *
 * Design: one dynamic-programming matcher over token sequences serves both
 * questions. Matching a concrete channel is inclusion of a pattern made only
 * of literals, so rtm_pattern_match and rtm_pattern_within share the code.
 * The DP is O(len(outer) * len(inner)) with no backtracking, so a hostile
 * pattern full of stars costs the same as any other of its length. */
#include "pattern.h"

#include <string.h>

/* Longest pattern or channel considered; longer inputs never match. Channel
 * names are capped at 256 bytes by protocol.h, so this leaves headroom. */
#define PATTERN_MAX 1024

enum tok_kind { TOK_LIT, TOK_STAR, TOK_GLOBSTAR };

struct tok {
    unsigned char kind;
    char c;
};

/* Splits s into tokens. With wild = 0 every byte is a literal (a concrete
 * channel name may contain '*' and it means nothing there). A run of two or
 * more stars is one '**'. Returns the token count, or -1 when too long. */
static int tokenize(const char *s, int wild, struct tok *out)
{
    int n = 0;
    for (size_t i = 0; s[i]; n++) {
        if (n >= PATTERN_MAX) return -1;
        if (wild && s[i] == '*') {
            size_t run = 0;
            while (s[i + run] == '*') run++;
            out[n].kind = run >= 2 ? TOK_GLOBSTAR : TOK_STAR;
            out[n].c = '*';
            i += run;
        } else {
            out[n].kind = TOK_LIT;
            out[n].c = s[i++];
        }
    }
    return n;
}

/* Can the outer token absorb inner token t as part of a wildcard's run?
 * '*' covers anything that never produces '/': literals other than '/' and
 * inner '*'. '**' covers everything. */
static int absorbs(unsigned char outer_kind, const struct tok *t)
{
    if (outer_kind == TOK_GLOBSTAR) return 1;
    if (t->kind == TOK_LIT) return t->c != '/';
    return t->kind == TOK_STAR;
}

/* 1 when every string inner's tokens can produce is produced by outer's.
 * row[j] = outer[0..i) covers inner[0..j); one row is enough because each
 * outer token only reads the previous row at j and j-1 and the current row
 * at j-1. */
static int covers(const struct tok *outer, int no, const struct tok *inner, int ni)
{
    unsigned char row[PATTERN_MAX + 1];
    memset(row, 0, (size_t)ni + 1);
    row[0] = 1;
    for (int i = 0; i < no; i++) {
        const struct tok *o = &outer[i];
        if (o->kind == TOK_LIT) {
            /* Walk backwards so row[j] still holds the previous row's value. */
            for (int j = ni; j >= 1; j--)
                row[j] = row[j - 1] && inner[j - 1].kind == TOK_LIT && inner[j - 1].c == o->c;
            row[0] = 0;
        } else {
            /* A wildcard may absorb nothing (row[j] stays) or extend a run. */
            for (int j = 1; j <= ni; j++)
                if (!row[j] && row[j - 1] && absorbs(o->kind, &inner[j - 1])) row[j] = 1;
        }
    }
    return row[ni];
}

static int check(const char *inner, int inner_wild, const char *outer)
{
    /* About 5 KB of stack: small enough for any thread, and no allocation on
     * the broker's per-message path. */
    struct tok ti[PATTERN_MAX], to[PATTERN_MAX];
    if (!inner || !outer) return 0;
    int ni = tokenize(inner, inner_wild, ti), no = tokenize(outer, 1, to);
    if (ni < 0 || no < 0) return 0;
    return covers(to, no, ti, ni);
}

int rtm_pattern_match(const char *pattern, const char *channel) { return check(channel, 0, pattern); }

int rtm_pattern_within(const char *inner, const char *outer) { return check(inner, 1, outer); }

int rtm_pattern_match_any(char *const *patterns, size_t n, const char *channel)
{
    for (size_t i = 0; i < n; i++)
        if (rtm_pattern_match(patterns[i], channel)) return 1;
    return 0;
}

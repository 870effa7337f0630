/* support.c: see support.h. */
#include "support.h"

#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\nFUZZ ORACLE FAILED at %s:%d: %s\n  ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- the reference matcher ---- */

struct rm {
    const char *p, *c;
    size_t pl, cl;
    signed char *memo; /* -1 unknown, 0/1 */
};

static int rm_at(struct rm *m, size_t pi, size_t ci)
{
    signed char *slot = &m->memo[pi * (m->cl + 1) + ci];
    if (*slot >= 0) return *slot;
    int r;
    if (pi == m->pl) {
        r = ci == m->cl;
    } else if (m->p[pi] == '*') {
        size_t run = 0;
        while (pi + run < m->pl && m->p[pi + run] == '*') run++;
        r = 0;
        for (size_t k = ci; k <= m->cl && !r; k++) {
            if (run == 1 && k > ci && m->c[k - 1] == '/') break; /* one star stays in its segment */
            r = rm_at(m, pi + run, k);
        }
    } else {
        r = ci < m->cl && m->p[pi] == m->c[ci] && rm_at(m, pi + 1, ci + 1);
    }
    *slot = (signed char)r;
    return r;
}

int ref_match(const char *pattern, const char *channel)
{
    struct rm m = {pattern, channel, strlen(pattern), strlen(channel), NULL};
    m.memo = malloc((m.pl + 1) * (m.cl + 1));
    if (!m.memo) abort();
    memset(m.memo, -1, (m.pl + 1) * (m.cl + 1));
    int r = rm_at(&m, 0, 0);
    free(m.memo);
    return r;
}

char *ref_instantiate(const char *pattern, const char *fill)
{
    size_t fl = strlen(fill), n = 0;
    char *out = malloc(strlen(pattern) * (fl + 1) + 1);
    if (!out) abort();
    for (size_t i = 0; pattern[i];) {
        if (pattern[i] != '*') {
            out[n++] = pattern[i++];
            continue;
        }
        size_t run = 0;
        while (pattern[i + run] == '*') run++;
        for (size_t k = 0; k < fl; k++)
            if (run >= 2 || fill[k] != '/') out[n++] = fill[k];
        i += run;
    }
    out[n] = '\0';
    return out;
}

/* ---- base64url ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_enc(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

long b64url_dec(const char *in, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(B64, in[i], 64);
        if (!p || !in[i]) return -1;
        acc = acc << 6 | (uint32_t)(p - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

json_t *one_object(const char *text, size_t len)
{
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e); /* rejects anything after the value */
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* ---- scratch directory ---- */

static char tmpdir[64];
static pid_t tmpdir_owner; /* replay.c forks: only the creating process removes it */

static void rm_tmpdir(void)
{
    char cmd[96];
    if (!tmpdir[0] || getpid() != tmpdir_owner) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", tmpdir);
}

const char *fuzz_tmpdir(void)
{
    if (tmpdir[0]) return tmpdir;
    /* tmpfs when there is one: the store fsyncs acknowledged writes */
    snprintf(tmpdir, sizeof tmpdir, "%s/rtm-fuzz.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(tmpdir)) abort();
    tmpdir_owner = getpid();
    atexit(rm_tmpdir);
    return tmpdir;
}

void fuzz_records(const uint8_t *data, size_t size, size_t max, void (*fn)(const uint8_t *, size_t, void *),
                  void *ud)
{
    size_t start = 0, n = 0;
    for (size_t i = 0; i <= size && n < max; i++) {
        if (i == size || data[i] == 0x1e) {
            fn(data + start, i - start, ud);
            n++;
            start = i + 1;
        }
    }
}

static int noop_cb(struct lws *wsi, enum lws_callback_reasons r, void *user, void *in, size_t len) { return 0; }

struct lws_context *fuzz_lws_context(void)
{
    static struct lws_context *ctx;
    static const struct lws_protocols protos[] = {{"fuzz", noop_cb, 0, 0, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};
    if (ctx) return ctx;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.gid = info.uid = -1;
    lws_set_log_level(LLL_ERR, NULL);
    if (!(ctx = lws_create_context(&info))) abort();
    return ctx;
}

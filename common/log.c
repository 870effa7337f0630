/* log.c: timestamped, level-tagged lines on stderr (journald and `make run`
 * both read stderr). One write per line so lines from threads never mix.
 *
 * log-format json writes the same line as one JSON object: ts, level, msg
 * (the text line's message) and every key=value the message carries (sid=,
 * peer=, app=, code=, remote=, reason="..."), the first of each key, numbers
 * as numbers. The fields come from the message itself, so a call site writes
 * one format string and both outputs agree. Whatever looks like a JWT is
 * replaced by REDACTED in both, a last line of defence: tokens are never
 * passed here on purpose. */
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int rtm_log_level = RTM_LOG_INFO;
int rtm_log_format = RTM_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

#define LINE_MAX_BYTES 2048
#define MAX_FIELDS 16

static int b64url(char c) { return isalnum((unsigned char)c) || c == '-' || c == '_'; }

/* Replaces "eyJ<b64url>.<b64url>[.<b64url>]" (a JWT's header starts with eyJ,
 * base64 of '{"') by REDACTED, in place. */
static void scrub_jwts(char *s)
{
    char *p = s;
    while ((p = strstr(p, "eyJ"))) {
        char *e = p;
        while (b64url(*e)) e++;
        if (*e != '.' || !b64url(e[1])) {
            p += 3;
            continue;
        }
        e++;
        while (b64url(*e) || (*e == '.' && b64url(e[1]))) e++;
        static const char red[] = "REDACTED";
        memmove(p + sizeof red - 1, e, strlen(e) + 1);
        memcpy(p, red, sizeof red - 1);
        p += sizeof red - 1;
    }
}

struct jbuf {
    char *s;
    size_t n, cap;
};

static void jput(struct jbuf *b, const char *s, size_t len)
{
    if (b->n + len >= b->cap) len = b->cap - b->n - 1; /* truncated, still valid after jclose */
    memcpy(b->s + b->n, s, len);
    b->n += len;
}

/* Appends a JSON string (quotes included), escaping what JSON requires. */
static void jstr(struct jbuf *b, const char *s, size_t len)
{
    jput(b, "\"", 1);
    for (size_t i = 0; i < len && b->n + 8 < b->cap; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jput(b, esc, 2);
        } else if (c < 0x20) {
            int k = snprintf(esc, sizeof esc, "\\u%04x", c);
            jput(b, esc, (size_t)k);
        } else {
            jput(b, (const char *)&c, 1);
        }
    }
    jput(b, "\"", 1);
}

/* The key=value fields of a message: keys [a-z_]+ after a space or at the
 * start, values a "quoted string" or up to the next space. */
struct field {
    const char *k, *v;
    size_t kn, vn;
    int quoted;
};

static int fields_of(const char *msg, struct field *f, int max)
{
    int n = 0;
    for (const char *p = msg; *p && n < max; p++) {
        if (p != msg && p[-1] != ' ') continue;
        const char *k = p;
        while (*p >= 'a' && *p <= 'z') p++;
        while ((*p >= 'a' && *p <= 'z') || *p == '_') p++;
        if (p == k || *p != '=') {
            if (!*p) break;
            continue;
        }
        struct field x = {k, NULL, (size_t)(p - k), 0, 0};
        p++;
        if (*p == '"') {
            x.v = ++p;
            while (*p && *p != '"') p++;
            x.vn = (size_t)(p - x.v);
            x.quoted = 1;
        } else {
            x.v = p;
            while (*p && *p != ' ') p++;
            x.vn = (size_t)(p - x.v);
        }
        int dup = 0;
        for (int i = 0; i < n; i++)
            if (f[i].kn == x.kn && memcmp(f[i].k, x.k, x.kn) == 0) dup = 1;
        if (!dup) f[n++] = x;
        if (!*p) break;
    }
    return n;
}

static int is_number(const char *s, size_t n)
{
    if (!n || n > 18) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]) && !(i == 0 && s[i] == '-' && n > 1)) return 0;
    return !(n > 1 && s[0] == '0');
}

static size_t format_json(char *out, size_t cap, const char *ts, const char *level, const char *msg)
{
    struct jbuf b = {out, 0, cap - 2}; /* room for "}" and the newline */
    jput(&b, "{\"ts\":", 6);
    jstr(&b, ts, strlen(ts));
    jput(&b, ",\"level\":", 9);
    jstr(&b, level, strlen(level));
    struct field f[MAX_FIELDS];
    int n = fields_of(msg, f, MAX_FIELDS);
    for (int i = 0; i < n; i++) {
        if ((f[i].kn == 2 && !memcmp(f[i].k, "ts", 2)) || (f[i].kn == 5 && !memcmp(f[i].k, "level", 5)) ||
            (f[i].kn == 3 && !memcmp(f[i].k, "msg", 3)))
            continue; /* the envelope's own keys win */
        jput(&b, ",", 1);
        jstr(&b, f[i].k, f[i].kn);
        jput(&b, ":", 1);
        if (!f[i].quoted && is_number(f[i].v, f[i].vn)) jput(&b, f[i].v, f[i].vn);
        else jstr(&b, f[i].v, f[i].vn);
    }
    jput(&b, ",\"msg\":", 7);
    jstr(&b, msg, strlen(msg));
    b.s[b.n++] = '}';
    return b.n;
}

void rtm_log_write(int level, const char *fmt, ...)
{
    char msg[LINE_MAX_BYTES], line[2 * LINE_MAX_BYTES], ts[40];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t t = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + t, sizeof ts - t, ".%03ldZ", (long)(tv.tv_usec / 1000));
    const char *lname = level_names[level < 0 ? 0 : level > 3 ? 3 : level];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) msg[0] = '\0';
    for (char *c = msg; *c; c++) /* one line, whatever a value held */
        if (*c == '\n' || *c == '\r') *c = ' ';
    scrub_jwts(msg);
    size_t n;
    if (rtm_log_format == RTM_LOG_JSON) {
        n = format_json(line, sizeof line, ts, lname, msg);
    } else {
        int k = snprintf(line, sizeof line - 1, "%s %-5s %s", ts, lname, msg);
        n = k < 0 ? 0 : (size_t)k > sizeof line - 2 ? sizeof line - 2 : (size_t)k;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

int rtm_log_format_parse(const char *name)
{
    if (name && strcmp(name, "text") == 0) return RTM_LOG_TEXT;
    if (name && strcmp(name, "json") == 0) return RTM_LOG_JSON;
    return -1;
}

int rtm_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

void rtm_redact_url(const char *url, char *out, size_t outlen)
{
    if (!outlen) return;
    size_t o = 0;
    const char *q = strchr(url, '?');
    size_t head = q ? (size_t)(q - url) : strlen(url);
    for (size_t i = 0; i < head && o + 1 < outlen; i++) out[o++] = url[i];
    if (q) {
        /* Keep argument names (useful at 3 a.m.), drop every value. */
        const char *p = q;
        while (*p && o + 1 < outlen) {
            out[o++] = *p++; /* '?' or '&' */
            while (*p && *p != '=' && *p != '&' && o + 1 < outlen) out[o++] = *p++;
            if (*p == '=') {
                const char *r = "=REDACTED";
                while (*r && o + 1 < outlen) out[o++] = *r++;
                while (*p && *p != '&') p++;
            }
        }
    }
    out[o] = '\0';
}

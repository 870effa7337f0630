/* log.c: timestamped, level-tagged lines on stderr (journald and `make run`
 * both read stderr). One write per line so lines from threads never mix. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int rtm_log_level = RTM_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rtm_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ", (long)(tv.tv_usec / 1000),
                  level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    n += m;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2; /* truncated: still one line */
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
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

/* log.h: one line per event on stderr, level-gated, as text or as one JSON
 * object per line (log-format json) with the same fields.
 *
 * The macros do not evaluate their arguments when the level is off, so a
 * debug line on a hot path costs one integer compare. Lines about a
 * connection carry "sid=" and "peer="; tokens and secrets are never passed
 * here (use rtm_redact_url() for anything that came from a request line). */
#ifndef RTM_LOG_H
#define RTM_LOG_H

#include <stddef.h>

enum rtm_log_level { RTM_LOG_ERROR = 0, RTM_LOG_WARN, RTM_LOG_INFO, RTM_LOG_DEBUG };

extern int rtm_log_level; /* default RTM_LOG_INFO */

enum rtm_log_format { RTM_LOG_TEXT = 0, RTM_LOG_JSON };
extern int rtm_log_format; /* default RTM_LOG_TEXT */
/* Parses "text" or "json"; -1 when unknown. */
int rtm_log_format_parse(const char *name);

void rtm_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses "error", "warn", "info", "debug"; returns -1 when unknown. */
int rtm_log_level_parse(const char *name);

#define rtm_log(lvl, ...)                                                                          \
    do {                                                                                           \
        if ((lvl) <= rtm_log_level) rtm_log_write((lvl), __VA_ARGS__);                             \
    } while (0)
#define log_error(...) rtm_log(RTM_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  rtm_log(RTM_LOG_WARN, __VA_ARGS__)
#define log_info(...)  rtm_log(RTM_LOG_INFO, __VA_ARGS__)
#define log_debug(...) rtm_log(RTM_LOG_DEBUG, __VA_ARGS__)

/* Copies a URL path into out with the values of token=, key=, resume= and
 * any other query argument replaced by "REDACTED". Always NUL-terminates. */
void rtm_redact_url(const char *url, char *out, size_t outlen);

#endif

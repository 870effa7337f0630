/* dburl.c: see dburl.h. The URL is scanned, not parsed: only the user info
 * (between "//" and the last "@" before the host's "/") and the query's
 * password= value can hold a password, so only those spans are looked at. */
#include "dburl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int rtm_dburl_is_postgres(const char *where)
{
    return where && (!strncmp(where, "postgres://", 11) || !strncmp(where, "postgresql://", 13));
}

/* The user info's password: [*pw, *pw_end) or pw NULL when none. */
static void userinfo_password(const char *url, const char **pw, const char **pw_end)
{
    const char *auth = strstr(url, "://") + 3;
    size_t auth_len = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < auth + auth_len; p++)
        if (*p == '@') at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    *pw = colon ? colon + 1 : NULL;
    *pw_end = at;
}

/* The first query value at or after from (the "?" or a "&") whose key ends
 * in "password" (password=, sslpassword=): returns its start, *v_end its end. */
static const char *query_password(const char *from, const char **v_end)
{
    if (!from) return NULL;
    for (const char *p = from + 1; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        if (eq && eq - p >= 8 && !strncasecmp(eq - 8, "password", 8)) {
            *v_end = p + len;
            return eq + 1;
        }
        p += len;
        if (*p == '&') p++;
    }
    return NULL;
}

int rtm_dburl_has_password(const char *where)
{
    if (!rtm_dburl_is_postgres(where)) return 0;
    const char *pw, *pw_end, *v_end;
    userinfo_password(where, &pw, &pw_end);
    return (pw && pw_end > pw) || query_password(strchr(where, '?'), &v_end) != NULL;
}

void rtm_dburl_redact(const char *where, char *out, size_t outlen)
{
    if (!outlen) return;
    out[0] = '\0';
    if (!where) return;
    if (!rtm_dburl_is_postgres(where)) {
        snprintf(out, outlen, "%s", where);
        return;
    }
    size_t n = 0;
    const char *pw, *pw_end, *v_end = NULL;
    userinfo_password(where, &pw, &pw_end);
    const char *qv = query_password(strchr(where, '?'), &v_end);
    for (const char *p = where; *p && n + 1 < outlen;) {
        const char *skip_end = NULL;
        if (pw && p == pw) skip_end = pw_end;
        else if (qv && p == qv) skip_end = v_end;
        if (skip_end) {
            for (const char *r = "***"; *r && n + 1 < outlen; r++) out[n++] = *r;
            p = skip_end;
            if (qv && p == v_end) qv = *p == '&' ? query_password(p, &v_end) : NULL;
            continue;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
}

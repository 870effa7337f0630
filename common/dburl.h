/* dburl.h: telling a --db value's kind and showing it without its secret.
 *
 * --db takes a sqlite path or a postgres:// (postgresql://) URL. A URL may
 * carry a password (user:PASSWORD@host, or ?password=); it is never logged
 * (every log line and error shows rtm_dburl_redact's form) and never accepted
 * on argv (config.c refuses it there). Pure functions, any thread. */
#ifndef RTM_DBURL_H
#define RTM_DBURL_H

#include <stddef.h>

/* 1 when where is a postgres:// or postgresql:// URL. */
int rtm_dburl_is_postgres(const char *where);
/* 1 when a Postgres URL carries a password (in its user info or its query). */
int rtm_dburl_has_password(const char *where);
/* Copies where into out with any password replaced by "***" (a sqlite path
 * is copied as is). Always NUL-terminates; truncates to outlen. */
void rtm_dburl_redact(const char *where, char *out, size_t outlen);

#endif

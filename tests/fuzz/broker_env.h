/* broker_env.h: a real broker without sockets, for the harnesses that drive
 * the broker (fuzz_frames) or the mint API on top of it (fuzz_mint_api).
 *
 * One environment per process: the default config, a real sqlite store in a
 * scratch directory, a real timer heap (armed, never run) and support.c's
 * lws context (nothing runs it). Sessions are built as conn.c's
 * welcome leaves them, with wsi NULL: their outbound frames stay queued
 * (conn.c's want_writeable() seam), where the harness reads them. */
#ifndef FUZZ_BROKER_ENV_H
#define FUZZ_BROKER_ENV_H

#include "internal.h"
#include "server.h"

struct benv_session {
    const char *peer;
    const char *chans[2];
    size_t n;
    unsigned perms;
    int ext;
    const char *peer_meta; /* JSON text or NULL */
};

extern struct rtm_config benv_cfg;
extern struct rtm_server benv_srv;

/* Sets the environment up (idempotent); db_name is the file in the scratch dir. */
void benv_init(const char *db_name);
/* A fresh broker on the environment (srv.broker set), the store's view
 * brought up to date first (what the harness stored is known); free with
 * benv_broker_free. */
struct brk_broker *benv_broker(void);
void benv_broker_free(struct brk_broker *b);
/* An open session of app "fuzz" (sid "ses_fuzz<i>"), attached to the tables. */
struct brk_session *benv_session_open(struct brk_broker *b, const struct benv_session *spec, int i);
/* Closes it through conn.c's CLOSED handler, then frees it as lws would. */
void benv_session_close(struct brk_broker *b, struct brk_session *s);

#endif

/* test_store_durability.c: issue 11 defect 4. An acknowledged revocation, key
 * revocation or key creation must be on disk before the store returns: the
 * sqlite store's commit for those writes fsyncs the WAL (synchronous = FULL),
 * while session rows stay relaxed (NORMAL: no fsync per batch).
 *
 * Observed, not assumed: the test registers a sqlite VFS as the process
 * default that wraps the real one and counts xSync calls per file kind, then
 * drives the real store (common/store_sqlite.c) through store.h. Under
 * NORMAL in WAL mode a commit calls no xSync until a checkpoint, so a count of
 * zero for a revocation is exactly the power-cut loss the issue describes. */
#include "testlib.h"

#include "errors.h"
#include "protocol.h"
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a counting VFS shim ---- */

static sqlite3_vfs *real_vfs;
static int wal_syncs, db_syncs;

struct cfile {
    sqlite3_file base;
    int is_wal;
    sqlite3_file *real; /* follows this struct in the same allocation */
};

#define REAL(f) (((struct cfile *)(f))->real)
static int c_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int c_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) { return REAL(f)->pMethods->xRead(REAL(f), b, n, o); }
static int c_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 n) { return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int c_sync(sqlite3_file *f, int flags)
{
    if (((struct cfile *)f)->is_wal) wal_syncs++;
    else db_syncs++;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int c_size(sqlite3_file *f, sqlite3_int64 *n) { return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int c_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int c_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int c_check(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int c_fcntl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int c_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int c_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int c_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int c_shmlock(sqlite3_file *f, int o, int n, int fl) { return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl); }
static void c_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int c_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int c_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p) { return REAL(f)->pMethods->xFetch(REAL(f), o, n, p); }
static int c_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) { return REAL(f)->pMethods->xUnfetch(REAL(f), o, p); }

static const sqlite3_io_methods c_methods = {
    3,        c_close, c_read,     c_write,  c_truncate,   c_sync,      c_size,    c_lock,   c_unlock, c_check,
    c_fcntl,  c_sector, c_dev,     c_shmmap, c_shmlock,    c_shmbarrier, c_shmunmap, c_fetch, c_unfetch,
};

static int c_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct cfile *c = (struct cfile *)f;
    c->real = (sqlite3_file *)(c + 1);
    c->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, c->real, flags, out_flags);
    c->base.pMethods = rc == SQLITE_OK && c->real->pMethods ? &c_methods : NULL;
    return rc;
}

static sqlite3_vfs counting_vfs;

static void install_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    counting_vfs = *real_vfs;
    counting_vfs.zName = "rtm-counting";
    counting_vfs.szOsFile = (int)sizeof(struct cfile) + real_vfs->szOsFile;
    counting_vfs.xOpen = c_open;
    CHECK(sqlite3_vfs_register(&counting_vfs, 1) == SQLITE_OK);
}

/* ---- the store through it ---- */

static struct rtm_store *open_store(char *dir)
{
    char path[300], err[256] = "";
    struct rtm_store *st = NULL;
    install_vfs();
    snprintf(path, sizeof path, "%s/rtm.db", dir);
    CHECK(rtm_store_open(path, &st, err, sizeof err) == 0);
    if (!st) fprintf(stderr, "  open: %s\n", err);
    return st;
}

#define SYNCS_OF(expr) (wal_syncs = db_syncs = 0, (expr), wal_syncs)

TEST(acknowledged_security_writes_fsync_the_wal_session_rows_do_not)
{
    char dir[] = "/tmp/rtm-durability.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct rtm_store *st = open_store(dir);
    if (!st) return;

    struct rtm_key k;
    memset(&k, 0, sizeof k);
    struct rtm_key_spec spec = {.app = "dur"};
    int rc = 0;
    int n = SYNCS_OF(rc = rtm_store_key_create(st, &spec, &k));
    CHECK(rc == 0);
    CHECK(n >= 1); /* key creation */

    n = SYNCS_OF(rc = rtm_store_revoke_jti(st, "dur", "jti-1", 2000000000));
    CHECK(rc == 0);
    CHECK(n >= 1); /* revocation by jti */

    n = SYNCS_OF(rc = rtm_store_revoke_peer(st, "dur", "peer-1", 2000000000));
    CHECK(rc == 0);
    CHECK(n >= 1); /* revocation by peer */

    n = SYNCS_OF(rc = rtm_store_key_revoke(st, k.id));
    CHECK(rc == 0);
    CHECK(n >= 1); /* key revocation */

    /* Session rows stay relaxed: a batch commits with no fsync. */
    struct rtm_session_row row;
    memset(&row, 0, sizeof row);
    strcpy(row.id, "ses_1");
    strcpy(row.app, "dur");
    strcpy(row.peer_id, "p");
    strcpy(row.jti, "j");
    strcpy(row.remote_addr, "127.0.0.1");
    row.connected_ms = 1;
    n = SYNCS_OF(rc = rtm_store_sessions_write(st, &row, 1));
    CHECK(rc == 0);
    CHECK(n == 0);
    /* ...and the relaxed setting is back after a durable write (not left at FULL). */
    CHECK(rtm_store_revoke_jti(st, "dur", "jti-2", 2000000000) == 0);
    row.closed_ms = 2;
    n = SYNCS_OF(rc = rtm_store_sessions_write(st, &row, 1));
    CHECK(rc == 0 && n == 0);

    /* Everything acknowledged is there after a reopen. */
    rtm_store_close(st);
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/rtm.db", dir);
    CHECK(rtm_store_open(path, &st, err, sizeof err) == 0);
    if (st) {
        CHECK(rtm_store_is_revoked(st, "dur", "jti-1", "x", 0) == 1);
        CHECK(rtm_store_is_revoked(st, "dur", "none", "peer-1", 100) == 1);
        struct rtm_key k2;
        CHECK(rtm_store_key_get(st, k.id, &k2) == 0);
        CHECK(k2.revoked > 0);
        rtm_key_free(&k2);
        rtm_store_close(st);
    }
    rtm_key_free(&k);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) { return RUN_TESTS(); }

/* key.c: `rtm key create|list|revoke` and `rtm app get|set`: the local
 * store's API keys and app settings from the command line, in JSON.
 *
 * Each action declares its flags in a small table and shares one parser
 * (`--name value` or `--name=value`). Values are checked here first so the
 * operator reads a precise message; the store checks again, being the
 * authority. Output is one JSON document on stdout, errors one line on
 * stderr, exit codes as tool.h says: 2 for usage, 1 for a refused operation.
 * Secrets never come from argv: an RS256/ES256 public key is read from a file,
 * and a Postgres store's password from PGPASSWORD or the file named by
 * $RTM_DB_PASSWORD_FILE (a --db URL with a password in it is refused). */
#include "tool.h"

#include "dburl.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST_ITEMS 100
#define MAX_PEM_FILE 16384
#define MAX_POSITIONAL 3

struct opt {
    const char *name;
    const char **value; /* options taking a value */
    int *flag;          /* options without one */
};

struct args {
    const char *pos[MAX_POSITIONAL];
    int npos;
    int help;
};

static const char *db_default(void)
{
    const char *env = getenv("RTM_DB");
    return env && *env ? env : "var/rtm.db";
}

/* Parses argv[first..] against opts; returns 0 or RTM_EXIT_USAGE (reported). */
static int parse_args(const char *prog, int argc, char **argv, int first, const struct opt *opts,
                      size_t nopts, int maxpos, struct args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            a->help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
            if (a->npos >= maxpos) {
                fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, arg);
                return RTM_EXIT_USAGE;
            }
            a->pos[a->npos++] = arg;
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        for (size_t k = 0; k < nopts && !o; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, name, nlen)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", prog, (int)nlen + 2, arg);
            return RTM_EXIT_USAGE;
        }
        if (o->flag) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value\n", prog, o->name);
                return RTM_EXIT_USAGE;
            }
            *o->flag = 1;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value\n", prog, o->name);
            return RTM_EXIT_USAGE;
        }
    }
    return 0;
}

static int open_store(const char *prog, const char *db, struct rtm_store **st)
{
    char err[512];
    if (db != db_default() && rtm_dburl_has_password(db)) { /* from argv, visible in ps */
        fprintf(stderr,
                "%s: --db: a password in the URL is not accepted on the command line; use PGPASSWORD "
                "or RTM_DB_PASSWORD_FILE\n",
                prog);
        return RTM_EXIT_USAGE;
    }
    const char *pwfile = getenv("RTM_DB_PASSWORD_FILE");
    struct rtm_store_opts o = {.password_file = pwfile && *pwfile ? pwfile : NULL};
    if (rtm_store_open_opts(db, &o, st, err, sizeof err) == 0) return 0;
    fprintf(stderr, "%s: %s\n", prog, err);
    return RTM_EXIT_FAIL;
}

static int print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (!s) {
        fprintf(stderr, "rtm: out of memory\n");
        return RTM_EXIT_FAIL;
    }
    int ok = printf("%s\n", s) >= 0 && fflush(stdout) == 0;
    free(s);
    if (!ok) fprintf(stderr, "rtm: cannot write output: %s\n", strerror(errno));
    return ok ? RTM_EXIT_OK : RTM_EXIT_FAIL;
}

/* A comma-separated list as an array of pointers into a copy of the text.
 * Empty items are refused: "a,,b" is a typo, never a pattern. */
struct list {
    char *buf;
    const char *item[MAX_LIST_ITEMS];
    size_t n;
};

static int split_list(const char *what, const char *text, struct list *l)
{
    memset(l, 0, sizeof *l);
    if (!text) return 0;
    if (!(l->buf = strdup(text))) return RTM_EXIT_FAIL;
    for (char *p = l->buf;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p) {
            fprintf(stderr, "rtm key: empty item in --%s '%s'\n", what, text);
            return RTM_EXIT_FAIL;
        }
        if (l->n == MAX_LIST_ITEMS) {
            fprintf(stderr, "rtm key: too many items in --%s (at most %d)\n", what, MAX_LIST_ITEMS);
            return RTM_EXIT_FAIL;
        }
        l->item[l->n++] = p;
        if (!comma) return 0;
        p = comma + 1;
    }
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rtm key: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_PEM_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_PEM_FILE + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_PEM_FILE;
    fclose(f);
    if (bad) {
        fprintf(stderr, "rtm key: cannot read %s: %s\n", path,
                n > MAX_PEM_FILE ? "larger than 16 KiB" : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* The store's rule for app names, checked here for a precise message. */
static int app_name_ok(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return n >= 1 && n <= 64;
}

static const char usage_create[] =
    "usage: rtm key create [--db DB] --app NAME [--channels P,...] [--actions A,...]\n"
    "                      [--origins O,...] [--publishable]\n"
    "                      [--alg RS256|ES256 --kid KID --public-key FILE]\n"
    "\n"
    "Creates an API key (and its app when new) in the local store and prints it once:\n"
    "  {\"id\": \"sk_id_...\", \"secret\": \"sk_secret_...\"}   a secret key (HS256, the default)\n"
    "  {\"id\": \"pk_...\"}                               with --publishable\n"
    "  {\"id\": KID}                                     with --alg RS256|ES256 (public key only)\n"
    "\n"
    "  --db DB          the store: a sqlite file (created if missing) or a postgres:// URL\n"
    "                   (default: $RTM_DB, else var/rtm.db); a URL's password comes from\n"
    "                   PGPASSWORD or the file $RTM_DB_PASSWORD_FILE names, never from --db\n"
    "  --app NAME       the app the key belongs to (1 to 64 printable ASCII characters)\n"
    "  --channels P,... channel patterns the key may grant ('*' one segment, '**' any); default **\n"
    "  --actions A,...  of publish, subscribe, presence, send; default all four, except\n"
    "                   publishable keys: publish, subscribe, presence (send only when asked)\n"
    "  --origins O,...  allowed browser Origins; default any (a publishable key without a list\n"
    "                   gets a warning: anyone's page could use it)\n"
    "  --publishable    a publishable key (pk_...) instead of a secret key: it is public, so it\n"
    "                   belongs in browser code with an Origin list\n"
    "  --alg ALG        RS256 or ES256: register a public key whose private half you keep\n"
    "  --kid KID        the key id tokens carry in their header (required with --alg)\n"
    "  --public-key F   PEM file with the public key (required with --alg)\n";

static int key_create(int argc, char **argv)
{
    const char *db = db_default(), *app = NULL, *channels = NULL, *actions = NULL, *origins = NULL;
    const char *alg = NULL, *kid = NULL, *pubfile = NULL;
    int publishable = 0;
    const struct opt opts[] = {
        {"db", &db, NULL},           {"app", &app, NULL},         {"channels", &channels, NULL},
        {"actions", &actions, NULL}, {"origins", &origins, NULL}, {"publishable", NULL, &publishable},
        {"alg", &alg, NULL},         {"kid", &kid, NULL},         {"public-key", &pubfile, NULL},
    };
    struct args a;
    int rc = parse_args("rtm key create", argc, argv, 2, opts, sizeof opts / sizeof opts[0], 0, &a);
    if (rc) return rc;
    if (a.help) return fputs(usage_create, stdout), RTM_EXIT_OK;
    if (!app) {
        fprintf(stderr, "rtm key create: --app is required (see --help)\n");
        return RTM_EXIT_USAGE;
    }

    struct list lc, la, lo;
    struct rtm_store *st = NULL;
    char *pem = NULL;
    struct rtm_key key = {0};
    unsigned bits = 0;
    int asym = alg && (!strcmp(alg, "RS256") || !strcmp(alg, "ES256"));
    rc = RTM_EXIT_FAIL;
    memset(&lc, 0, sizeof lc), memset(&la, 0, sizeof la), memset(&lo, 0, sizeof lo);

    if (!*app) {
        fprintf(stderr, "rtm key create: --app must not be empty\n");
        goto out;
    }
    if (!app_name_ok(app)) {
        fprintf(stderr, "rtm key create: --app must be 1 to 64 printable ASCII characters (no spaces)\n");
        goto out;
    }
    if (alg && !asym && strcmp(alg, "HS256") != 0) {
        fprintf(stderr, "rtm key create: unknown --alg '%s' (HS256, RS256 or ES256)\n", alg);
        goto out;
    }
    if (publishable && alg) {
        fprintf(stderr, "rtm key create: --publishable keys take no --alg\n");
        goto out;
    }
    if (asym && (!kid || !pubfile)) {
        fprintf(stderr, "rtm key create: --alg %s needs --kid and --public-key\n", alg);
        goto out;
    }
    if (!asym && (kid || pubfile)) {
        fprintf(stderr, "rtm key create: --kid and --public-key go with --alg RS256|ES256 only\n");
        goto out;
    }
    if (split_list("channels", channels, &lc) || split_list("actions", actions, &la) ||
        split_list("origins", origins, &lo))
        goto out;
    for (size_t i = 0; i < lc.n; i++)
        if (!rtm_channel_valid(lc.item[i])) {
            fprintf(stderr, "rtm key create: invalid channel pattern '%s' (1 to 256 bytes, no control characters)\n",
                    lc.item[i]);
            goto out;
        }
    for (size_t i = 0; i < la.n; i++) {
        unsigned bit = rtm_perm_parse(la.item[i]);
        if (!bit) {
            fprintf(stderr, "rtm key create: unknown action '%s' (publish, subscribe, presence, send)\n",
                    la.item[i]);
            goto out;
        }
        bits |= bit;
    }
    if (pubfile && !(pem = read_file(pubfile))) goto out;
    /* A publishable key is public (it ships in page source): direct sends to
     * any peer are opt-in, and a key any site can use deserves a warning. */
    if (publishable && !la.n) bits = RTM_PERM_PUBLISH | RTM_PERM_SUBSCRIBE | RTM_PERM_PRESENCE;

    if ((rc = open_store("rtm key create", db, &st))) goto out;
    rc = RTM_EXIT_FAIL;
    struct rtm_key_spec spec = {
        .app = app,
        .publishable = publishable,
        .alg = alg,
        .kid = kid,
        .public_pem = pem,
        .channels = lc.item,
        .n_channels = lc.n,
        .actions = bits,
        .origins = lo.item,
        .n_origins = lo.n,
    };
    int err = rtm_store_key_create(st, &spec, &key);
    if (err) {
        fprintf(stderr, "rtm key create: key not created: %s\n",
                err == RTM_EEXISTS ? "a key with that id already exists" : rtm_err_str(err));
        goto out;
    }
    json_t *j = json_pack("{s:s}", "id", key.id);
    if (j && !strcmp(key.alg, "HS256") && json_object_set_new(j, "secret", json_string(key.secret)))
        json_decref(j), j = NULL;
    rc = print_json(j);
    json_decref(j);
    if (rc == RTM_EXIT_OK && publishable && !lo.n)
        fprintf(stderr, "rtm key create: warning: publishable key %s has no --origins list: any web page "
                        "can connect with it (add --origins https://your.site)\n", key.id);
out:
    rtm_key_free(&key);
    rtm_store_close(st);
    free(pem);
    free(lc.buf), free(la.buf), free(lo.buf);
    return rc;
}

static const char usage_list[] =
    "usage: rtm key list [--db DB]\n"
    "\n"
    "Prints the keys as a JSON array, without secrets:\n"
    "  [{\"id\", \"app\", \"kind\": \"secret\"|\"publishable\", \"alg\", \"channels\", \"actions\",\n"
    "    \"origins\" ([] = any), \"created\" (unix s), \"revoked\" (unix s, 0 = live)}]\n"
    "\n"
    "  --db DB     the store: a sqlite file or a postgres:// URL (default: $RTM_DB, else var/rtm.db)\n";

static int key_list(int argc, char **argv)
{
    const char *db = db_default();
    const struct opt opts[] = {{"db", &db, NULL}};
    struct args a;
    int rc = parse_args("rtm key list", argc, argv, 2, opts, 1, 0, &a);
    if (rc) return rc;
    if (a.help) return fputs(usage_list, stdout), RTM_EXIT_OK;
    struct rtm_store *st;
    if ((rc = open_store("rtm key list", db, &st))) return rc;
    json_t *list = NULL;
    int err = rtm_store_key_list(st, &list);
    if (err) {
        fprintf(stderr, "rtm key list: %s\n", rtm_err_str(err));
        rc = RTM_EXIT_FAIL;
    } else {
        rc = print_json(list);
    }
    json_decref(list);
    rtm_store_close(st);
    return rc;
}

static const char usage_revoke[] =
    "usage: rtm key revoke [--db DB] ID\n"
    "\n"
    "Revokes a key: it mints no more tokens, and the broker closes sessions whose tokens it\n"
    "signed. Prints {\"id\": ID, \"revoked\": <unix s>} (revoking twice keeps the first time).\n"
    "\n"
    "  --db DB     the store: a sqlite file or a postgres:// URL (default: $RTM_DB, else var/rtm.db)\n";

static int key_revoke(int argc, char **argv)
{
    const char *db = db_default();
    const struct opt opts[] = {{"db", &db, NULL}};
    struct args a;
    int rc = parse_args("rtm key revoke", argc, argv, 2, opts, 1, 1, &a);
    if (rc) return rc;
    if (a.help) return fputs(usage_revoke, stdout), RTM_EXIT_OK;
    if (a.npos != 1) {
        fprintf(stderr, "rtm key revoke: which key? (usage: rtm key revoke [--db DB] ID)\n");
        return RTM_EXIT_USAGE;
    }
    const char *id = a.pos[0];
    struct rtm_store *st;
    if ((rc = open_store("rtm key revoke", db, &st))) return rc;
    struct rtm_key key = {0};
    int err = rtm_store_key_revoke(st, id);
    if (!err) err = rtm_store_key_get(st, id, &key);
    if (err == RTM_ENOTFOUND) {
        fprintf(stderr, "rtm key revoke: no key with id '%s'\n", id);
        rc = RTM_EXIT_FAIL;
    } else if (err) {
        fprintf(stderr, "rtm key revoke: %s\n", rtm_err_str(err));
        rc = RTM_EXIT_FAIL;
    } else {
        json_t *j = json_pack("{s:s, s:I}", "id", key.id, "revoked", (json_int_t)key.revoked);
        rc = print_json(j);
        json_decref(j);
    }
    rtm_key_free(&key);
    rtm_store_close(st);
    return rc;
}

static const char usage_key[] =
    "usage: rtm key create|list|revoke [options]   (rtm key <action> --help for details)\n"
    "\n"
    "  create   create a secret, publishable or RS256/ES256 key and print it once\n"
    "  list     print every key as JSON, without secrets\n"
    "  revoke   revoke a key by id\n";

int tool_key_main(int argc, char **argv)
{
    /* The tool's stdout is JSON for scripts; keep stderr to what went wrong. */
    rtm_log_level = RTM_LOG_WARN;
    if (argc < 2) return fputs(usage_key, stderr), RTM_EXIT_USAGE;
    const char *action = argv[1];
    if (!strcmp(action, "--help") || !strcmp(action, "-h")) return fputs(usage_key, stdout), RTM_EXIT_OK;
    if (!strcmp(action, "create")) return key_create(argc, argv);
    if (!strcmp(action, "list")) return key_list(argc, argv);
    if (!strcmp(action, "revoke")) return key_revoke(argc, argv);
    fprintf(stderr, "rtm key: unknown action '%s'\n", action);
    fputs(usage_key, stderr);
    return RTM_EXIT_USAGE;
}

/* ---- rtm app ---- */

static json_t *app_json(const struct rtm_app *app)
{
    return json_pack("{s:s, s:s, s:i, s:i}", "name", app->name, "duplicatePeer",
                     app->duplicate_replace ? "replace" : "allow", "resumeWindowMs",
                     app->resume_window_ms, "maxConnections", app->max_connections);
}

static const char usage_app[] =
    "usage: rtm app get [--db DB] NAME\n"
    "       rtm app set [--db DB] NAME SETTING VALUE\n"
    "\n"
    "Shows or changes an app's settings (set creates the app when new) and prints them:\n"
    "  {\"name\", \"duplicatePeer\", \"resumeWindowMs\", \"maxConnections\"}\n"
    "\n"
    "settings:\n"
    "  duplicatePeer   allow (default): a peerId may hold several connections;\n"
    "                  replace: a new connection closes the older one with 4009\n"
    "  resumeWindowMs  -1 (the daemon's default) to 86400000\n"
    "  maxConnections  0 (no per-app cap) to 100000000\n"
    "\n"
    "  --db DB     the store: a sqlite file or a postgres:// URL (default: $RTM_DB, else var/rtm.db)\n";

int tool_app_main(int argc, char **argv)
{
    rtm_log_level = RTM_LOG_WARN;
    if (argc < 2) return fputs(usage_app, stderr), RTM_EXIT_USAGE;
    const char *action = argv[1];
    if (!strcmp(action, "--help") || !strcmp(action, "-h")) return fputs(usage_app, stdout), RTM_EXIT_OK;
    int set = !strcmp(action, "set");
    if (!set && strcmp(action, "get") != 0) {
        fprintf(stderr, "rtm app: unknown action '%s'\n", action);
        fputs(usage_app, stderr);
        return RTM_EXIT_USAGE;
    }
    const char *db = db_default();
    const struct opt opts[] = {{"db", &db, NULL}};
    struct args a;
    int rc = parse_args(set ? "rtm app set" : "rtm app get", argc, argv, 2, opts, 1, 3, &a);
    if (rc) return rc;
    if (a.help) return fputs(usage_app, stdout), RTM_EXIT_OK;
    if (a.npos != (set ? 3 : 1)) {
        fputs(usage_app, stderr);
        return RTM_EXIT_USAGE;
    }
    const char *name = a.pos[0];
    if (!*name) {
        fprintf(stderr, "rtm app: the app name must not be empty\n");
        return RTM_EXIT_FAIL;
    }
    struct rtm_store *st;
    if ((rc = open_store("rtm app", db, &st))) return rc;
    struct rtm_app app;
    int err = 0;
    if (set && (err = rtm_store_app_set(st, name, a.pos[1], a.pos[2]))) {
        if (err == RTM_EINVAL)
            fprintf(stderr, "rtm app set: invalid setting '%s' = '%s' (see rtm app --help)\n", a.pos[1],
                    a.pos[2]);
        else
            fprintf(stderr, "rtm app set: %s\n", rtm_err_str(err));
        rc = RTM_EXIT_FAIL;
    } else if ((err = rtm_store_app_get(st, name, &app))) {
        if (err == RTM_ENOTFOUND) fprintf(stderr, "rtm app get: no app named '%s'\n", name);
        else fprintf(stderr, "rtm app: %s\n", rtm_err_str(err));
        rc = RTM_EXIT_FAIL;
    } else {
        json_t *j = app_json(&app);
        rc = print_json(j);
        json_decref(j);
    }
    rtm_store_close(st);
    return rc;
}

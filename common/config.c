/* config.c: rtmd's declarative settings table.
 *
 * One row per setting {key, type, bounds, default, help}; the same key is the
 * JSON config-file field and the --long-option, so operators never translate
 * between the two (coturn's habit). Values are parsed into a scratch copy and
 * only swapped in when all of them are valid. */
#include "config.h"

#include "dburl.h"
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_type { T_INT, T_STR, T_BOOL, T_LIST, T_LOGLEVEL };

#define F_SECRET 1 /* never from argv: it would show in ps and shell history */
#define F_URL_PASSWORD 2 /* a database URL: from argv only without a password in it */

struct opt {
    const char *key;
    enum opt_type type;
    size_t off;       /* into struct rtm_config; for T_LIST the array, count follows via off2 */
    size_t off2;      /* T_LIST: offset of the size_t count */
    size_t cap;       /* T_LIST: array capacity */
    long min, max;
    const char *def;  /* as text, parsed like any other value */
    int flags;
    const char *env;  /* environment variable, or NULL */
    const char *help;
};

#define O(f) offsetof(struct rtm_config, f)
static const struct opt opts[] = {
    {"role", T_STR, O(role), 0, 0, 0, 0, "all", 0, NULL,
     "which listeners to run: all | broker (public WebSocket) | mint (backend REST)"},
    {"public", T_STR, O(public_addr), 0, 0, 0, 0, "127.0.0.1:8080", 0, NULL,
     "public listener HOST:PORT (WebSocket /v1, browser files)"},
    {"backend", T_STR, O(backend_addr), 0, 0, 0, 0, "127.0.0.1:8081", 0, NULL,
     "backend listener HOST:PORT (REST API for your servers; keep it private)"},
    {"db", T_STR, O(db_path), 0, 0, 0, 0, "var/rtm.db", F_URL_PASSWORD, "RTM_DB",
     "the store: a sqlite database file (created if missing), or a postgres:// URL whose password "
     "comes from PGPASSWORD or db-password-file (never the command line)"},
    {"db-password-file", T_STR, O(db_password_file), 0, 0, 0, 0, NULL, 0, "RTM_DB_PASSWORD_FILE",
     "Postgres store: file whose first line is the database password"},
    {"trusted-proxies", T_LIST, O(trusted_proxies), O(n_trusted_proxies), RTM_MAX_TRUSTED_PROXIES, 0, 0, NULL, 0,
     NULL, "addresses or CIDR blocks of reverse proxies whose X-Forwarded-For names the client (per-IP limits, "
           "logs, session rows, token binding), comma-separated; from anyone else the header is ignored"},
    {"tls-cert", T_STR, O(tls_cert), 0, 0, 0, 0, NULL, 0, NULL,
     "PEM certificate chain file: the public listener serves https:// and wss:// (reloaded on SIGHUP)"},
    {"tls-key", T_STR, O(tls_key), 0, 0, 0, 0, NULL, 0, NULL,
     "PEM private key file of tls-cert (a path: the key itself is never a setting)"},
    {"backend-tls", T_BOOL, O(backend_tls), 0, 0, 0, 1, "false", 0, NULL,
     "the backend listener serves https:// with the same certificate"},
    {"web-root", T_STR, O(web_root), 0, 0, 0, 0, "web", 0, NULL,
     "directory served at / on the public listener (demo, /sdk/rtm.js)"},
    {"log-level", T_LOGLEVEL, O(log_level), 0, 0, 0, 0, "info", 0, "RTM_LOG_LEVEL", "error | warn | info | debug"},
    {"log-format", T_STR, O(log_format), 0, 0, 0, 0, "text", 0, "RTM_LOG_FORMAT",
     "text | json (one object per line: ts, level, msg and the line's fields such as sid, peer, app, code)"},
    {"turn-secrets", T_LIST, O(turn_secrets), O(n_turn_secrets), RTM_MAX_TURN_SECRETS, 0, 0, NULL, F_SECRET,
     "RTM_TURN_SECRETS", "TURN shared secrets, comma-separated; the first signs, all are valid (rotation). "
                         "Config file or environment only"},
    {"turn-urls", T_LIST, O(turn_urls), O(n_turn_urls), RTM_MAX_TURN_URLS, 0, 0,
     "stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp", 0,
     "RTM_TURN_URLS", "stun:/turn:/turns: urls put in iceServers, comma-separated"},
    {"turn-ttl", T_INT, O(turn_ttl), 0, 0, 0, 7 * 86400, "0", 0, NULL,
     "TURN credential lifetime in seconds; 0 = the token's lifetime + 3600"},
    {"token-default-ttl", T_INT, O(token_default_ttl), 0, 0, 1, 86400, "3600", 0, NULL,
     "token lifetime when the mint request names none (s)"},
    {"token-max-ttl", T_INT, O(token_max_ttl), 0, 0, 1, 30 * 86400, "86400", 0, NULL, "longest token lifetime (s)"},
    {"clock-leeway-seconds", T_INT, O(clock_leeway_seconds), 0, 0, 0, 300, "5", 0, NULL,
     "a token whose nbf or iat is further ahead of this server's clock is refused: 4001 token not yet valid"},
    {"max-token-lifetime", T_INT, O(max_token_lifetime), 0, 0, 0, 365 * 86400, "0", 0, NULL,
     "refuse tokens whose exp - iat exceeds this, whoever signed them: 4001 token lifetime too long (s, 0 = off); "
     "the mint API's token-max-ttl and token-default-ttl are capped by it"},
    {"max-message-size", T_INT, O(max_message_size), 0, 0, 0, 16 << 20, "65536", 0, NULL,
     "largest inbound frame in bytes; larger closes with 1009 (0 = off)"},
    {"max-channels-per-connection", T_INT, O(max_channels_per_connection), 0, 0, 1, 10000, "100", 0, NULL,
     "subscriptions per connection (channel_limit_exceeded beyond)"},
    {"rate-frames-per-second", T_INT, O(rate_frames_per_second), 0, 0, 0, 1000000, "100", 0, NULL,
     "inbound frames per second per connection; over it: over_message_quota (0 = off)"},
    {"presence-snapshot-members-per-second", T_INT, O(presence_snapshot_members_per_second), 0, 0, 0, 100000000,
     "50000", 0, NULL,
     "member entries of presence snapshots one connection may make the broker build per second; beyond, "
     "its snapshots wait and coalesce (0 = off)"},
    {"rate-frames-burst", T_INT, O(rate_frames_burst), 0, 0, 0, 1000000, "200", 0, NULL,
     "burst allowance of the per-connection frame rate"},
    {"rate-connects-per-ip-per-minute", T_INT, O(rate_connects_per_ip_per_minute), 0, 0, 0, 1000000, "60", 0,
     NULL, "new connections per client IP per minute, refused at TCP accept beyond (0 = off)"},
    {"max-handshakes", T_INT, O(max_handshakes), 0, 0, 1, 1000, "1000", 0, NULL,
     "public connections not yet WebSocket sessions (request heads, plain HTTP) at once; more are refused at "
     "accept. Below the header pool (1024), so the backend listener always has header space"},
    {"max-handshakes-per-ip", T_INT, O(max_handshakes_per_ip), 0, 0, 1, 1000, "32", 0, NULL,
     "the same, per client address (refused at accept beyond)"},
    {"auth-timeout-ms", T_INT, O(auth_timeout_ms), 0, 0, 100, 60000, "5000", 0, NULL,
     "with ?auth=message the first frame must be {\"type\":\"auth\",\"token\":...} within this; else close 4001 "
     "\"auth timeout\""},
    {"max-unauthenticated", T_INT, O(max_unauthenticated), 0, 0, 1, 100000, "256", 0, NULL,
     "sockets upgraded with ?auth=message still waiting for their auth frame, at once; beyond: close 4010 at once"},
    {"max-unauthenticated-per-ip", T_INT, O(max_unauthenticated_per_ip), 0, 0, 1, 100000, "8", 0, NULL,
     "the same, per client address"},
    {"handshake-timeout-sec", T_INT, O(handshake_timeout_sec), 0, 0, 1, 60, "5", 0, NULL,
     "seconds a public connection has to send a complete request head"},
    {"max-connections", T_INT, O(max_connections), 0, 0, 0, 10000000, "0", 0, NULL,
     "WebSocket sessions overall; beyond: close 4010 (0 = off)"},
    {"max-connections-per-app", T_INT, O(max_connections_per_app), 0, 0, 0, 10000000, "0", 0, NULL,
     "WebSocket sessions per app; beyond: close 4010 (0 = off)"},
    {"queue-bytes", T_INT, O(queue_bytes), 0, 0, 0, 1 << 30, "1048576", 0, NULL,
     "outbound queue per connection; a consumer whose queue fills is closed with 1013 (0 = off)"},
    {"ping-interval-ms", T_INT, O(ping_interval_ms), 0, 0, 0, 3600000, "30000", 0, NULL,
     "broker pings each session this often (0 = off)"},
    {"ping-timeout-ms", T_INT, O(ping_timeout_ms), 0, 0, 100, 3600000, "10000", 0, NULL,
     "a session silent this long after a ping is dropped"},
    {"expiry-margin-ms", T_INT, O(expiry_margin_ms), 0, 0, 0, 60000, "250", 0, NULL,
     "close with 4002 this long before the token's exp"},
    {"token-expiring-notice-sec", T_INT, O(token_expiring_notice_sec), 0, 0, 0, 3600, "60", 0, NULL,
     "extension clients get token_expiring this long before exp"},
    {"resume-window-ms", T_INT, O(resume_window_ms), 0, 0, 0, 600000, "10000", 0, NULL,
     "how long a dropped extension session's place is held (0 = off; apps may override)"},
    {"resume-queue-messages", T_INT, O(resume_queue_messages), 0, 0, 1, 100000, "256", 0, NULL,
     "direct messages held per resuming peer (oldest dropped beyond)"},
    {"resume-queue-bytes", T_INT, O(resume_queue_bytes), 0, 0, 1024, 1 << 28, "262144", 0, NULL,
     "bytes held per resuming peer (oldest dropped beyond)"},
    {"session-flush-ms", T_INT, O(session_flush_ms), 0, 0, 10, 60000, "200", 0, NULL,
     "how often session rows are written to the store, in one transaction"},
    {"session-retention-days", T_INT, O(session_retention_days), 0, 0, 1, 3650, "7", 0, NULL,
     "closed session rows (GET /v1/sessions) are deleted this many days after they connected, in the background"},
    {"session-rows-max", T_INT, O(session_rows_max), 0, 0, 64, 10000000, "50000", 0, NULL,
     "session rows waiting for the store (it is slow or down; about 650 bytes each); beyond, the oldest are dropped and counted"},
    {"store-poll-ms", T_INT, O(store_poll_ms), 0, 0, 10, 5000, "100", 0, NULL,
     "how often the store is asked for changes (keys, apps, revocations, kicks, publishes from other processes)"},
    {"node-id", T_STR, O(node_id), 0, 0, 0, 0, "", 0, NULL,
     "this rtmd's name on session rows, presence and in cluster mode (default: hostname:public-port); a restart closes only its own rows"},
    {"shutdown-grace-ms", T_INT, O(shutdown_grace_ms), 0, 0, 0, 60000, "2000", 0, NULL,
     "on SIGTERM, how long sessions get to close after going_away"},
    {"cluster", T_STR, O(cluster), 0, 0, 0, 0, "", 0, NULL,
     "cluster mode through Redis: redis://HOST:PORT[,redis://HOST:PORT...] (several = shards by a "
     "stable hash of the channel); no user or password (Redis AUTH is not supported: keep Redis on "
     "loopback or a private network); empty = a single node, no Redis"},
    {"cluster-timeout-ms", T_INT, O(cluster_timeout_ms), 0, 0, 50, 60000, "1000", 0, NULL,
     "deadline of every Redis command and of the subscriber probe; past it the link is restarted"},
    {"cluster-node-dead-ms", T_INT, O(cluster_node_dead_ms), 0, 0, 1000, 3600000, "15000", 0, NULL,
     "a node whose heartbeat is this old is dead: the others remove its peers' records (keep it above "
     "resume-window-ms)"},
    {"demo-token", T_BOOL, O(demo_token), 0, 0, 0, 1, "false", 0, NULL,
     "DEVELOPMENT ONLY: serve GET /demo/token on the public listener, minting with demo-key-file"},
    {"demo-key-file", T_STR, O(demo_key_file), 0, 0, 0, 0, "var/dev-key.json", 0, NULL,
     "JSON file {id, secret} of the key the demo endpoint mints with"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct opt *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0) return &opts[i];
    return NULL;
}

static void free_list(struct rtm_config *c, const struct opt *o)
{
    char **arr = (char **)((char *)c + o->off);
    size_t *n = (size_t *)((char *)c + o->off2);
    for (size_t i = 0; i < *n; i++) {
        /* wipe secrets before freeing so they do not linger in freed heap */
        if (o->flags & F_SECRET) memset(arr[i], 0, strlen(arr[i]));
        free(arr[i]);
        arr[i] = NULL;
    }
    *n = 0;
}

/* Sets one option from text. Returns 0 or -1 with err filled. */
static int set_value(struct rtm_config *c, const struct opt *o, const char *val, const char *from, char *err,
                     size_t errlen)
{
    void *p = (char *)c + o->off;
    switch (o->type) {
    case T_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < o->min || v > o->max) {
            snprintf(err, errlen, "%s: %s must be an integer from %ld to %ld (got \"%.40s\")", from, o->key,
                     o->min, o->max, val);
            return -1;
        }
        *(int *)p = (int)v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes")) *(int *)p = 1;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no")) *(int *)p = 0;
        else {
            snprintf(err, errlen, "%s: %s must be true or false", from, o->key);
            return -1;
        }
        return 0;
    case T_LOGLEVEL: {
        int l = rtm_log_level_parse(val);
        if (l < 0) {
            snprintf(err, errlen, "%s: %s must be error, warn, info or debug", from, o->key);
            return -1;
        }
        *(int *)p = l;
        return 0;
    }
    case T_STR: {
        char *s = strdup(val);
        if (!s) return -1;
        free(*(char **)p);
        *(char **)p = s;
        return 0;
    }
    case T_LIST: {
        free_list(c, o);
        char **arr = (char **)p;
        size_t *n = (size_t *)((char *)c + o->off2);
        const char *s = val;
        while (*s) {
            const char *e = strchr(s, ',');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            while (len && (*s == ' ')) s++, len--;
            while (len && s[len - 1] == ' ') len--;
            if (len) {
                if (*n >= o->cap) {
                    snprintf(err, errlen, "%s: %s takes at most %zu entries", from, o->key, o->cap);
                    return -1;
                }
                arr[*n] = strndup(s, len);
                if (!arr[*n]) return -1;
                (*n)++;
            }
            if (!e) break;
            s = e + 1;
        }
        return 0;
    }
    }
    return -1;
}

static int load_file(struct rtm_config *c, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "config %s: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "config %s: the top level must be a JSON object", path);
        json_decref(root);
        return -1;
    }
    const char *key;
    json_t *v;
    int rc = 0;
    char from[300];
    snprintf(from, sizeof from, "config %s", path);
    json_object_foreach(root, key, v)
    {
        const struct opt *o = find_opt(key);
        if (!o) {
            snprintf(err, errlen, "config %s: unknown key \"%.60s\" (see rtmd --help)", path, key);
            rc = -1;
            break;
        }
        char buf[64];
        const char *text = NULL;
        char *joined = NULL;
        if (json_is_string(v)) text = json_string_value(v);
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v)), text = buf;
        else if (json_is_boolean(v)) text = json_is_true(v) ? "true" : "false";
        else if (json_is_array(v) && o->type == T_LIST) {
            size_t i, total = 1;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e)) break;
                total += strlen(json_string_value(e)) + 1;
            }
            if (i == json_array_size(v) && (joined = calloc(1, total))) {
                json_array_foreach(v, i, e)
                {
                    if (i) strcat(joined, ",");
                    strcat(joined, json_string_value(e));
                }
                text = joined;
            }
        }
        if (!text) {
            snprintf(err, errlen, "config %s: \"%s\" has the wrong type", path, key);
            rc = -1;
            break;
        }
        rc = set_value(c, o, text, from, err, errlen);
        free(joined);
        if (rc) break;
    }
    json_decref(root);
    return rc;
}

void rtm_config_print_help(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--config FILE] [--OPTION VALUE ...]\n\n"
            "rtmd: the rtm realtime-messaging broker and mint API in one daemon.\n"
            "Every option is also a key of the JSON config file (--config), with the same name.\n"
            "Precedence: defaults < config file < environment < command line.\n\n"
            "  --config FILE          JSON config file\n"
            "  --help                 this text\n"
            "  --version              print the version\n",
            prog);
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char name[64];
        snprintf(name, sizeof name, "--%s%s", o->key, o->type == T_BOOL ? "" : " V");
        fprintf(out, "  %-36s %s", name, o->help);
        if (o->def && !(o->flags & F_SECRET)) fprintf(out, " [default: %s]", o->def);
        if (o->env) fprintf(out, " (env %s)", o->env);
        fputc('\n', out);
    }
}

int rtm_config_mint_max_ttl(const struct rtm_config *cfg)
{
    int max = cfg->token_max_ttl > 0 ? cfg->token_max_ttl : 86400;
    return cfg->max_token_lifetime > 0 && cfg->max_token_lifetime < max ? cfg->max_token_lifetime : max;
}

int rtm_config_mint_default_ttl(const struct rtm_config *cfg)
{
    int def = cfg->token_default_ttl > 0 ? cfg->token_default_ttl : 3600, max = rtm_config_mint_max_ttl(cfg);
    return def < max ? def : max;
}

void rtm_config_free(struct rtm_config *c)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].type == T_STR) {
            free(*(char **)((char *)c + opts[i].off));
            *(char **)((char *)c + opts[i].off) = NULL;
        } else if (opts[i].type == T_LIST) {
            free_list(c, &opts[i]);
        }
    }
}

int rtm_config_load(struct rtm_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    struct rtm_config c;
    memset(&c, 0, sizeof c);
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].def && set_value(&c, &opts[i], opts[i].def, "default", err, errlen)) goto fail;

    /* The config file comes first whatever its place on the command line. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            rtm_config_print_help(stdout, argv[0]);
            rtm_config_free(&c);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("rtmd 0.1.0\n");
            rtm_config_free(&c);
            return 1;
        }
        const char *file = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file name");
                goto fail;
            }
            file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        }
        if (file && load_file(&c, file, err, errlen)) goto fail;
    }

    for (size_t i = 0; i < N_OPTS; i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (v && *v && set_value(&c, &opts[i], v, opts[i].env, err, errlen)) goto fail;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9)) continue;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.60s\" (see --help)", a);
            goto fail;
        }
        char key[64];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen >= sizeof key) klen = sizeof key - 1;
        memcpy(key, a + 2, klen);
        key[klen] = '\0';
        const struct opt *o = find_opt(key);
        if (!o) {
            snprintf(err, errlen, "unknown option --%s (see --help)", key);
            goto fail;
        }
        if (o->flags & F_SECRET) {
            snprintf(err, errlen,
                     "--%s is not accepted on the command line (it would be visible in ps); "
                     "use %s or the config file",
                     key, o->env ? o->env : "the config file");
            goto fail;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val && o->type == T_BOOL) val = "true";
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s needs a value", key);
                goto fail;
            }
            val = argv[++i];
        }
        if ((o->flags & F_URL_PASSWORD) && rtm_dburl_has_password(val)) {
            snprintf(err, errlen,
                     "--%s: a password in the URL is not accepted on the command line (it would be "
                     "visible in ps); use PGPASSWORD, db-password-file or the config file",
                     key);
            goto fail;
        }
        if (set_value(&c, o, val, "command line", err, errlen)) goto fail;
    }

    if (strcmp(c.role, "all") && strcmp(c.role, "broker") && strcmp(c.role, "mint")) {
        snprintf(err, errlen, "role must be all, broker or mint (got \"%.20s\")", c.role);
        goto fail;
    }
    for (size_t i = 0; i < c.n_trusted_proxies; i++) {
        if (rtm_cidr_parse(c.trusted_proxies[i], &c.trusted_cidrs[i])) {
            snprintf(err, errlen, "trusted-proxies: \"%.60s\" is not an IP address or CIDR block", c.trusted_proxies[i]);
            goto fail;
        }
    }
    /* "" (the sample file's value) means unset */
    if (c.tls_cert && !*c.tls_cert) free(c.tls_cert), c.tls_cert = NULL;
    if (c.tls_key && !*c.tls_key) free(c.tls_key), c.tls_key = NULL;
    if (!c.tls_cert != !c.tls_key) {
        snprintf(err, errlen, "tls-cert and tls-key go together (both file paths, or neither)");
        goto fail;
    }
    if (c.backend_tls && !c.tls_cert) {
        snprintf(err, errlen, "backend-tls needs tls-cert and tls-key");
        goto fail;
    }
    if (rtm_log_format_parse(c.log_format) < 0) {
        snprintf(err, errlen, "log-format must be text or json");
        goto fail;
    }
    char host[256];
    int port;
    if (rtm_config_split_addr(c.backend_addr, host, sizeof host, &port) ||
        rtm_config_split_addr(c.public_addr, host, sizeof host, &port)) {
        snprintf(err, errlen, "public and backend must be HOST:PORT");
        goto fail;
    }
    if (strlen(c.node_id) > 64) {
        snprintf(err, errlen, "node-id must be at most 64 characters");
        goto fail;
    }
    if (!c.node_id[0]) {
        /* Two rtmd on one machine differ by their public port. */
        char hn[128] = "localhost", id[80];
        gethostname(hn, sizeof hn - 1);
        hn[sizeof hn - 1] = '\0';
        snprintf(id, sizeof id, "%.50s:%d", hn, port);
        char *dup = strdup(id);
        if (!dup) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        free(c.node_id);
        c.node_id = dup;
    }
    for (size_t i = 0; i < c.n_turn_urls; i++) {
        const char *u = c.turn_urls[i];
        if (strncmp(u, "stun:", 5) && strncmp(u, "turn:", 5) && strncmp(u, "turns:", 6)) {
            snprintf(err, errlen, "turn-urls: \"%.60s\" is not a stun:, turn: or turns: url", u);
            goto fail;
        }
    }
    for (size_t i = 0; i < c.n_turn_secrets; i++) {
        if (strlen(c.turn_secrets[i]) < 8) {
            snprintf(err, errlen, "turn-secrets: every secret must be at least 8 characters");
            goto fail;
        }
    }
    if (c.token_default_ttl > c.token_max_ttl) {
        snprintf(err, errlen, "token-default-ttl must not exceed token-max-ttl");
        goto fail;
    }
    *cfg = c;
    return 0;
fail:
    /* The reason may quote an argument or a key: keep it one printable line
     * (a newline in argv or in a JSON key would split the log line; found by
     * tests/fuzz). */
    for (char *p = err; errlen && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    rtm_config_free(&c);
    return -1;
}

int rtm_config_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':') return -1;
        h = addr + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 1 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

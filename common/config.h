/* config.h: rtmd's settings, from one declarative table.
 *
 * Order of precedence: built-in default < config file (--config FILE, JSON)
 * < environment (RTM_TURN_SECRETS, RTM_TURN_URLS, RTM_DB, RTM_LOG_LEVEL)
 * < command-line flags. Config-file keys are identical to the long options
 * (`"max-message-size": 65536` <-> `--max-message-size 65536`).
 * Secrets (TURN secrets) are accepted only from the file or the environment,
 * never from argv. Everything is validated before anything is applied. */
#ifndef RTM_CONFIG_H
#define RTM_CONFIG_H

#include "netaddr.h"

#include <stddef.h>
#include <stdio.h>

#define RTM_MAX_TURN_SECRETS 8
#define RTM_MAX_TURN_URLS 16
#define RTM_MAX_TRUSTED_PROXIES 16

struct rtm_config {
    /* listeners and store */
    char *role;         /* "all" | "broker" | "mint" */
    char *public_addr;  /* HOST:PORT, default 127.0.0.1:8080 */
    char *backend_addr; /* HOST:PORT, default 127.0.0.1:8081 */
    char *db_path;      /* sqlite file or postgres:// URL; default var/rtm.db */
    char *db_password_file; /* Postgres password, first line; NULL = libpq's PGPASSWORD/.pgpass */
    /* reverse proxies whose X-Forwarded-For is believed (common/netaddr.h) */
    char *trusted_proxies[RTM_MAX_TRUSTED_PROXIES];
    size_t n_trusted_proxies;
    struct rtm_cidr trusted_cidrs[RTM_MAX_TRUSTED_PROXIES]; /* parsed from trusted_proxies at load */
    char *tls_cert;     /* PEM chain file; NULL = plain http/ws (rtmd/listen.c) */
    char *tls_key;      /* PEM key file of tls_cert */
    int backend_tls;    /* the backend listener uses the certificate too */
    char *web_root;     /* directory served at / and /sdk/ on the public listener, default "web" */
    int log_level;      /* RTM_LOG_* */
    char *log_format;   /* "text" | "json" (one JSON object per line, for log shippers) */

    /* TURN (coturn REST scheme); secrets[0] signs, every one is listed for coturn */
    char *turn_secrets[RTM_MAX_TURN_SECRETS];
    size_t n_turn_secrets;
    char *turn_urls[RTM_MAX_TURN_URLS];
    size_t n_turn_urls;
    int turn_ttl; /* seconds; 0 = token lifetime + 3600 */

    /* tokens */
    int token_default_ttl; /* 3600 */
    int token_max_ttl;     /* 86400 */
    int clock_leeway_seconds; /* 5: nbf/iat may be this far ahead of the broker's clock */
    int max_token_lifetime;   /* 0 = off: tokens whose exp - iat exceeds it are refused (s) */

    /* broker limits (0 = off, where noted in the table) */
    int max_message_size;              /* 65536 */
    int max_channels_per_connection;   /* 100 */
    int rate_frames_per_second;        /* 100 */
    int presence_snapshot_members_per_second; /* 50000: snapshot entries one session may cause per second */
    int rate_frames_burst;             /* 200 */
    int rate_connects_per_ip_per_minute; /* 60 */
    int max_handshakes;                  /* 1000: public connections not yet WebSocket sessions (rtmd/listen.c) */
    int max_handshakes_per_ip;           /* 32 */
    int handshake_timeout_sec;           /* 5: for a complete request head on the public listener */
    int auth_timeout_ms;                 /* 5000: ?auth=message, the auth frame must come within this */
    int max_unauthenticated;             /* 256: ?auth=message sockets waiting for their auth frame */
    int max_unauthenticated_per_ip;      /* 8 */
    int max_connections;               /* 0 = off */
    int max_connections_per_app;       /* 0 = off */
    int queue_bytes;                   /* 1 MiB */
    int ping_interval_ms;              /* 30000 */
    int ping_timeout_ms;               /* 10000 */
    int expiry_margin_ms;              /* 250: close with 4002 this long before exp */
    int token_expiring_notice_sec;     /* 60 (extension clients) */
    int resume_window_ms;              /* 10000 (extension clients), 0 = off */
    int resume_queue_messages;         /* 256 */
    int resume_queue_bytes;            /* 262144 */
    int session_flush_ms;              /* 200: batching of session rows */
    int session_retention_days;        /* 7: closed session rows older than this are pruned */
    int session_rows_max;              /* 50000: rows waiting for a slow or absent store */
    int store_poll_ms;                 /* 100: the view asks the store for changes this often */
    char *node_id;                     /* session rows and presence; default hostname:public-port */
    int shutdown_grace_ms;             /* 2000 */

    /* cluster mode (docs/CLUSTER.md) */
    char *cluster;           /* "" = off; redis://host:port[,...] */
    int cluster_timeout_ms;  /* 1000 */
    int cluster_node_dead_ms; /* 15000: a node silent this long is reaped by the others */

    /* development conveniences (off unless turned on) */
    int demo_token;     /* 1 enables GET /demo/token on the public listener */
    char *demo_key_file; /* file holding the development key's id and secret (JSON) */
};

/* Fills cfg from defaults, file, environment and argv. On a bad value,
 * unknown flag or unreadable file returns -1 with a one-line reason in err.
 * Returns 1 when --help or --version was handled (printed to stdout). */
int rtm_config_load(struct rtm_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Frees every string the config owns. */
void rtm_config_free(struct rtm_config *cfg);
/* The lifetimes rtm's own mints use: token-max-ttl and token-default-ttl,
 * each capped by max-token-lifetime when that is set, so a token rtm mints is
 * never one its broker refuses as too long-lived. */
int rtm_config_mint_max_ttl(const struct rtm_config *cfg);
int rtm_config_mint_default_ttl(const struct rtm_config *cfg);

/* Prints the option reference (used by --help and to generate the README's table). */
void rtm_config_print_help(FILE *out, const char *prog);

/* Splits "host:port" (or "[v6]:port"); host is written into host (NUL-terminated). */
int rtm_config_split_addr(const char *addr, char *host, size_t hostlen, int *port);

#endif

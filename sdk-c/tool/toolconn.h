/* toolconn.h: what the `rtm` subcommands built on librtm share: the
 * connection settings (flags or environment), getting a token, and a
 * client driven until a condition or a signal. */
#ifndef RTM_TOOLCONN_H
#define RTM_TOOLCONN_H

#include "rtm.h"

#include <stdint.h>
#include <stdio.h>

struct tool_conn {
    const char *url;      /* --url, RTM_URL */
    const char *token;    /* --token, RTM_TOKEN */
    const char *mint;     /* --mint, RTM_MINT */
    const char *key;      /* --key, RTM_KEY (secret key) */
    const char *key_id;   /* --key-id, RTM_KEY_ID (local signing) */
    const char *backend;  /* --backend, RTM_BACKEND (REST); defaults to mint */
    const char *peer;     /* --peer */
    const char *channels; /* --channels a,b */
    const char *perms;    /* --permissions publish,subscribe */
    const char *metadata, *peer_metadata;
    const char *pk;       /* --publishable-key, RTM_PUBLISHABLE_KEY */
    long ttl;             /* --ttl seconds */
    int timeout_ms;       /* --timeout seconds */
    int help;
};

/* The usage paragraph on connection settings every subcommand prints. */
void tool_conn_help(FILE *out);
/* Fills defaults from the environment. */
void tool_conn_init(struct tool_conn *tc);
/* Consumes argv[*i] (and its value) when it is a connection setting:
 * returns 1 consumed, 0 not one, -1 usage error (reported). */
int tool_conn_arg(struct tool_conn *tc, int *i, int argc, char **argv, const char *prog);

/* Mints (API or local signing) or returns the configured token; malloc'd.
 * On failure reports on stderr and returns NULL with *exit_code set. */
char *tool_get_token(const struct tool_conn *tc, const char *prog, int *exit_code);
/* Options for a client from tc (token provider when minting, so a 4002
 * reconnects with a fresh token). NULL + report on failure. */
rtm_options *tool_client_options(struct tool_conn *tc, const char *prog, int *exit_code);

/* Data from the command line: JSON if it parses, else a JSON string. "-" reads stdin. malloc'd. */
char *tool_data_arg(const char *arg);

/* Set by SIGINT/SIGTERM. */
extern volatile int tool_interrupted;
void tool_install_signals(void);

int tool_sub_main(int argc, char **argv);
int tool_listen_main(int argc, char **argv);
int tool_pub_main(int argc, char **argv);
int tool_send_main(int argc, char **argv);
int tool_token_main(int argc, char **argv);
int tool_peers_main(int argc, char **argv);
int tool_kick_main(int argc, char **argv);
int tool_revoke_main(int argc, char **argv);
int tool_sessions_main(int argc, char **argv);
int tool_bench_main(int argc, char **argv);

#endif

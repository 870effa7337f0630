/* rtm.c: the `rtm` command-line tool: dispatches to one subcommand per file. */
#include "tool.h"
#include "toolconn.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"key", tool_key_main, "create, list and revoke API keys in the local store"},
    {"app", tool_app_main, "show and change app settings in the local store"},
    {"token", tool_token_main, "mint a token through the mint API, or sign one locally"},
    {"sub", tool_sub_main, "subscribe to channels; print messages and presence as JSON lines"},
    {"pub", tool_pub_main, "publish one message to a channel"},
    {"send", tool_send_main, "send one direct message to a peer"},
    {"listen", tool_listen_main, "print every frame from the broker as a JSON line"},
    {"peers", tool_peers_main, "list the peers online (backend API)"},
    {"kick", tool_kick_main, "disconnect a peer with 4020 (backend API)"},
    {"revoke", tool_revoke_main, "revoke a token by jti or every token of a peer (backend API)"},
    {"sessions", tool_sessions_main, "list recorded sessions (backend API)"},
    {"bench", tool_bench_main, "load generator: fanout, pairs, connect"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: rtm <command> [options]   (rtm <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RTM_EXIT_USAGE : RTM_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "rtm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return RTM_EXIT_USAGE;
}

/* rtm.c: the `rtm` command-line tool: dispatches to one subcommand per file. */
#include "tool.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"key", tool_key_main, "create, list and revoke API keys in the local store"},
    {"app", tool_app_main, "show and change app settings in the local store"},
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

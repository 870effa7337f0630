/* tool.h: the `rtm` command-line tool's subcommands, one file each.
 * Each returns the process exit code: 0 ok, 1 operation failed,
 * 2 usage error, 3 could not connect/authenticate. */
#ifndef RTM_TOOL_H
#define RTM_TOOL_H

#define RTM_EXIT_OK 0
#define RTM_EXIT_FAIL 1
#define RTM_EXIT_USAGE 2
#define RTM_EXIT_CONNECT 3

int tool_key_main(int argc, char **argv); /* key.c: rtm key create|list|revoke (local store) */
int tool_app_main(int argc, char **argv); /* key.c: rtm app get|set (app settings, local store) */

#endif

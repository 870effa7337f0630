/* token.c: `rtm token`: mints a token through the mint API (--mint) or
 * signs one locally (--key-id with --key), and prints {"token","expiresAt"}. */
#include "tool.h"
#include "toolconn.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

int tool_token_main(int argc, char **argv)
{
    const char *prog = "rtm token";
    struct tool_conn tc;
    tool_conn_init(&tc);
    tc.token = NULL; /* RTM_TOKEN is an input for other commands, not an answer here */
    for (int i = 1; i < argc; i++) {
        int r = tool_conn_arg(&tc, &i, argc, argv, prog);
        if (r < 0) return RTM_EXIT_USAGE;
        if (!r) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[i]);
            return RTM_EXIT_USAGE;
        }
    }
    if (tc.help) {
        printf("usage: rtm token [--mint URL | --key-id SK_ID] [--peer ID] [--channels A,B]\n"
               "                 [--permissions P,Q] [--ttl SEC] [--metadata JSON] [--peer-metadata JSON]\n"
               "Prints {\"token\": ..., \"expiresAt\": ...}. With --mint it asks the mint API; with\n"
               "--key-id it signs locally (HS256) with the secret key, adding TURN credentials\n"
               "when RTM_TURN_SECRETS and RTM_TURN_URLS are set, as the mint API does.\n");
        tool_conn_help(stdout);
        return RTM_EXIT_OK;
    }
    int rc;
    tc.token = NULL;
    char *t = tool_get_token(&tc, prog, &rc);
    if (!t) return rc;
    /* expiresAt: read back from the token's own claims (no verification needed) */
    json_t *o = json_object();
    json_object_set_new(o, "token", json_string(t));
    const char *dot1 = strchr(t, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 && dot2) {
        size_t n = (size_t)(dot2 - dot1 - 1);
        char *b = malloc(n + 4);
        if (b) {
            memcpy(b, dot1 + 1, n);
            for (size_t i = 0; i < n; i++) b[i] = b[i] == '-' ? '+' : b[i] == '_' ? '/' : b[i];
            while (n % 4) b[n++] = '=';
            b[n] = 0;
            unsigned char *dec = malloc(n);
            int dl = dec ? lws_b64_decode_string_len(b, (int)n, (char *)dec, (int)n) : -1;
            if (dl > 0) {
                json_error_t e;
                json_t *cl = json_loadb((char *)dec, (size_t)dl, 0, &e);
                json_t *exp = json_object_get(cl, "exp");
                if (json_is_integer(exp)) json_object_set(o, "expiresAt", exp);
                json_decref(cl);
            }
            free(dec);
            free(b);
        }
    }
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
    memset(t, 0, strlen(t));
    free(t);
    return RTM_EXIT_OK;
}

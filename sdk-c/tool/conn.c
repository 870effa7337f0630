/* conn.c: connection settings shared by every `rtm` subcommand that talks
 * to a broker or the backend: flags first, environment as the fallback
 * (the environment is the recommended place for secrets: argv is visible
 * to every user of the machine through ps and /proc). */
#include "tool.h"
#include "toolconn.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LIST 100
#define MAX_STDIN_DATA (1u << 20)

volatile int tool_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    tool_interrupted = 1;
}

void tool_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
}

void tool_conn_help(FILE *out)
{
    fprintf(out,
            "connection settings (flag, or environment variable):\n"
            "  --url ws://HOST:PORT        RTM_URL      broker URL (default ws://127.0.0.1:8080)\n"
            "  --token JWT                 RTM_TOKEN    a token to connect with\n"
            "  --mint http://HOST:PORT     RTM_MINT     mint a token through the mint API ...\n"
            "  --key SK_SECRET             RTM_KEY      ... with this secret key\n"
            "  --key-id SK_ID              RTM_KEY_ID   sign locally (with --key) instead of calling the API\n"
            "  --backend http://HOST:PORT  RTM_BACKEND  backend REST API (default: the --mint URL)\n"
            "  --publishable-key PK        RTM_PUBLISHABLE_KEY  connect with a publishable key\n"
            "  --peer ID  --channels A,B  --permissions P,Q  --ttl SEC  --metadata JSON  --peer-metadata JSON\n"
            "                              claims of a minted token (default peer: cli-<random>)\n"
            "  --timeout SEC               give up after SEC seconds (default 10 for one-shot commands)\n"
            "Secrets (RTM_TOKEN, RTM_KEY) are best passed in the environment: command-line\n"
            "arguments are visible to other users of the machine.\n"
            "exit codes: 0 ok, 1 operation failed, 2 usage error, 3 could not connect or authenticate\n");
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void tool_conn_init(struct tool_conn *tc)
{
    memset(tc, 0, sizeof *tc);
    lws_set_log_level(LLL_ERR, NULL);
    tc->url = env("RTM_URL") ? env("RTM_URL") : "ws://127.0.0.1:8080";
    tc->token = env("RTM_TOKEN");
    tc->mint = env("RTM_MINT");
    tc->key = env("RTM_KEY");
    tc->key_id = env("RTM_KEY_ID");
    tc->backend = env("RTM_BACKEND");
    tc->pk = env("RTM_PUBLISHABLE_KEY");
}

int tool_conn_arg(struct tool_conn *tc, int *i, int argc, char **argv, const char *prog)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"--url", offsetof(struct tool_conn, url)},
        {"--token", offsetof(struct tool_conn, token)},
        {"--mint", offsetof(struct tool_conn, mint)},
        {"--key", offsetof(struct tool_conn, key)},
        {"--key-id", offsetof(struct tool_conn, key_id)},
        {"--backend", offsetof(struct tool_conn, backend)},
        {"--peer", offsetof(struct tool_conn, peer)},
        {"--channels", offsetof(struct tool_conn, channels)},
        {"--permissions", offsetof(struct tool_conn, perms)},
        {"--metadata", offsetof(struct tool_conn, metadata)},
        {"--peer-metadata", offsetof(struct tool_conn, peer_metadata)},
        {"--publishable-key", offsetof(struct tool_conn, pk)},
    };
    const char *a = argv[*i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        tc->help = 1;
        return 1;
    }
    int is_ttl = !strcmp(a, "--ttl"), is_to = !strcmp(a, "--timeout");
    for (size_t k = 0; k < sizeof strs / sizeof strs[0] || is_ttl || is_to; k++) {
        if (!is_ttl && !is_to && strcmp(a, strs[k].name)) continue;
        if (*i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return -1;
        }
        const char *v = argv[++*i];
        if (is_ttl || is_to) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n <= 0 || n > 86400 * 365) {
                fprintf(stderr, "%s: %s wants a positive number of seconds\n", prog, a);
                return -1;
            }
            if (is_ttl)
                tc->ttl = n;
            else
                tc->timeout_ms = (int)(n * 1000 > 0x7fffffff ? 0x7fffffff : n * 1000);
            return 1;
        }
        *(const char **)((char *)tc + strs[k].off) = v;
        return 1;
    }
    return 0;
}

/* Splits "a,b,c" into v (pointers into a copy the caller frees). */
static size_t split(const char *s, char **copy, const char **v, size_t max)
{
    size_t n = 0;
    *copy = NULL;
    if (!s) return 0;
    if (!(*copy = strdup(s))) return 0;
    for (char *save = NULL, *t = strtok_r(*copy, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
        v[n++] = t;
    return n;
}

char *tool_get_token(const struct tool_conn *tc, const char *prog, int *exit_code)
{
    *exit_code = RTM_EXIT_OK;
    if (tc->token) {
        char *t = strdup(tc->token);
        if (!t) *exit_code = RTM_EXIT_FAIL;
        return t;
    }
    if (!tc->key || (!tc->mint && !tc->key_id)) {
        fprintf(stderr, "%s: no token: give --token (RTM_TOKEN), or --mint URL with --key (RTM_MINT, RTM_KEY), "
                        "or --key-id with --key to sign locally\n", prog);
        *exit_code = RTM_EXIT_USAGE;
        return NULL;
    }
    char peer[32];
    const char *chv[MAX_LIST], *pv[8];
    char *chcopy = NULL, *pcopy = NULL, *token = NULL;
    struct rtm_token_params p;
    memset(&p, 0, sizeof p);
    if (tc->peer) {
        p.peer_id = tc->peer;
    } else {
        unsigned char r[4];
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(r, 1, sizeof r, f) != sizeof r) memset(r, 7, sizeof r);
        if (f) fclose(f);
        snprintf(peer, sizeof peer, "cli-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
        p.peer_id = peer;
    }
    if (tc->channels) {
        p.n_channels = split(tc->channels, &chcopy, chv, MAX_LIST);
        p.channels = chv;
    }
    if (tc->perms) {
        p.n_permissions = split(tc->perms, &pcopy, pv, 8);
        p.permissions = pv;
    }
    p.expires_in_sec = tc->ttl;
    p.metadata_json = tc->metadata;
    p.peer_metadata_json = tc->peer_metadata;

    rtm_status st;
    int http = 0;
    if (tc->mint) {
        st = rtm_fetch_token(tc->mint, tc->key, &p, tc->timeout_ms ? tc->timeout_ms : 10000, &token, NULL, &http);
    } else {
        /* local signing: TURN credentials when the TURN secret is in the environment */
        const char *ts = env("RTM_TURN_SECRETS");
        char *tscopy = ts ? strdup(ts) : NULL, *comma = tscopy ? strchr(tscopy, ',') : NULL, *ucopy = NULL;
        if (comma) *comma = 0;
        const char *uv[16];
        size_t nu = split(env("RTM_TURN_URLS"), &ucopy, uv, 16);
        st = rtm_sign_token(tc->key_id, tc->key, &p, tscopy, uv, nu, &token, NULL);
        free(tscopy);
        free(ucopy);
    }
    free(chcopy);
    free(pcopy);
    if (st) {
        if (st == RTM_ERR_HTTP)
            fprintf(stderr, "%s: the mint API refused: HTTP %d\n", prog, http);
        else
            fprintf(stderr, "%s: could not get a token: %s\n", prog, rtm_status_str(st));
        *exit_code = st == RTM_ERR_INVALID_ARG ? RTM_EXIT_USAGE : RTM_EXIT_CONNECT;
        return NULL;
    }
    return token;
}

static char *provider(void *ud)
{
    int rc;
    return tool_get_token(ud, "rtm", &rc);
}

rtm_options *tool_client_options(struct tool_conn *tc, const char *prog, int *exit_code)
{
    rtm_options *o = rtm_options_new();
    *exit_code = RTM_EXIT_FAIL;
    if (!o) return NULL;
    if (rtm_options_set_url(o, tc->url)) {
        fprintf(stderr, "%s: bad --url (want ws://HOST:PORT)\n", prog);
        *exit_code = RTM_EXIT_USAGE;
        goto fail;
    }
    if (tc->pk && !tc->token && !tc->key) {
        if (rtm_options_set_publishable_key(o, tc->pk)) {
            fprintf(stderr, "%s: bad publishable key\n", prog);
            *exit_code = RTM_EXIT_USAGE;
            goto fail;
        }
    } else if (tc->token) {
        if (rtm_options_set_token(o, tc->token)) {
            fprintf(stderr, "%s: bad token\n", prog);
            *exit_code = RTM_EXIT_USAGE;
            goto fail;
        }
    } else {
        /* mint up front so a bad key is a clear error, then on every reconnect */
        char *t = tool_get_token(tc, prog, exit_code);
        if (!t) goto fail;
        free(t);
        rtm_options_set_token_provider(o, provider, tc);
    }
    *exit_code = RTM_EXIT_OK;
    return o;
fail:
    rtm_options_free(o);
    return NULL;
}

char *tool_data_arg(const char *arg)
{
    char *text = NULL;
    if (!strcmp(arg, "-")) {
        size_t cap = 4096, n = 0;
        if (!(text = malloc(cap))) return NULL;
        size_t r;
        while ((r = fread(text + n, 1, cap - n - 1, stdin)) > 0) {
            n += r;
            if (n + 1 == cap) {
                if (cap >= MAX_STDIN_DATA) break;
                char *t = realloc(text, cap *= 2);
                if (!t) {
                    free(text);
                    return NULL;
                }
                text = t;
            }
        }
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
        text[n] = 0;
        arg = text;
    }
    json_error_t e;
    json_t *j = json_loads(arg, JSON_DECODE_ANY, &e);
    if (!j) j = json_string(arg); /* not JSON: send it as a string */
    char *out = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(j);
    free(text);
    return out;
}

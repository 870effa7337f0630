/* rest.c: `rtm peers`, `rtm kick PEER`, `rtm revoke`, `rtm sessions`: the
 * backend REST API (Bearer secret key) from the command line. The response
 * body is printed as is (JSON) on stdout.
 *
 * Exit codes: 0 for a 2xx answer; 3 for 401/403 or no connection; 1 for
 * any other status (404 for an unknown peer, ...); 2 for usage errors. */
#include "tool.h"
#include "toolconn.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Percent-encodes s for a path segment or query value. */
static char *enc(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n * 3 + 1), *p = o;
    if (!o) return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-_.~", ch))
            *p++ = (char)ch;
        else
            p += sprintf(p, "%%%02X", ch);
    }
    *p = 0;
    return o;
}

/* kick: a 2xx that closed nothing means the peer was not online: exit 1
 * (2 when some cluster node did not answer: it may be online there). */
static int closed_none(const char *resp)
{
    json_error_t e;
    json_t *j = resp ? json_loads(resp, 0, &e) : NULL;
    json_t *n = json_object_get(j, "closed");
    int none = json_is_integer(n) && json_integer_value(n) == 0;
    if (none && json_is_true(json_object_get(j, "partial"))) none = 2;
    json_decref(j);
    return none;
}

static int call(const struct tool_conn *tc, const char *prog, const char *method, const char *path, const char *body)
{
    const char *base = tc->backend ? tc->backend : tc->mint;
    if (!base || !tc->key) {
        fprintf(stderr, "%s: needs --backend http://HOST:PORT (RTM_BACKEND, or RTM_MINT) and --key (RTM_KEY)\n",
                prog);
        return RTM_EXIT_USAGE;
    }
    size_t n = strlen(base) + strlen(path) + 2;
    char *url = malloc(n), *resp = NULL;
    if (!url) return RTM_EXIT_FAIL;
    size_t bl = strlen(base);
    snprintf(url, n, "%.*s%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base, path);
    int status = 0;
    rtm_status st = rtm_http_request(method, url, tc->key, body, tc->timeout_ms ? tc->timeout_ms : 10000, &status,
                                     &resp);
    free(url);
    if (st) {
        fprintf(stderr, "%s: %s\n", prog, rtm_status_str(st));
        return st == RTM_ERR_INVALID_ARG ? RTM_EXIT_USAGE : RTM_EXIT_CONNECT;
    }
    if (resp && *resp) {
        fputs(resp, stdout);
        if (resp[strlen(resp) - 1] != '\n') fputc('\n', stdout);
    }
    int none = strcmp(prog, "rtm kick") == 0 ? closed_none(resp) : 0;
    free(resp);
    if (none) {
        fprintf(stderr, "%s: the peer is not online%s\n", prog,
                none == 2 ? " on the nodes that answered (some cluster node did not answer in time: retry)" : "");
        return RTM_EXIT_FAIL;
    }
    if (status >= 200 && status < 300) return RTM_EXIT_OK;
    fprintf(stderr, "%s: HTTP %d\n", prog, status);
    return status == 401 || status == 403 ? RTM_EXIT_CONNECT : RTM_EXIT_FAIL;
}

/* Parses connection settings plus the command's own flags (NULL-terminated
 * name/slot pairs) and up to one positional argument. */
static int parse(int argc, char **argv, const char *prog, struct tool_conn *tc, const char **names,
                 const char ***slots, const char **pos)
{
    tool_conn_init(tc);
    for (int i = 1; i < argc; i++) {
        int r = tool_conn_arg(tc, &i, argc, argv, prog);
        if (r < 0) return RTM_EXIT_USAGE;
        if (r) continue;
        int hit = 0;
        for (int k = 0; names && names[k]; k++)
            if (!strcmp(argv[i], names[k])) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "%s: %s needs a value\n", prog, argv[i]);
                    return RTM_EXIT_USAGE;
                }
                *slots[k] = argv[++i];
                hit = 1;
            }
        if (hit) continue;
        if (argv[i][0] != '-' && pos && !*pos) {
            *pos = argv[i];
            continue;
        }
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[i]);
        return RTM_EXIT_USAGE;
    }
    return -1;
}

static void rest_help(const char *usage_line, const char *what)
{
    printf("usage: %s\n%s\n", usage_line, what);
    tool_conn_help(stdout);
}

int tool_peers_main(int argc, char **argv)
{
    struct tool_conn tc;
    const char *channel = NULL;
    const char *names[] = {"--channel", NULL};
    const char **slots[] = {&channel};
    int rc = parse(argc, argv, "rtm peers", &tc, names, slots, NULL);
    if (rc >= 0) return rc;
    if (tc.help) {
        rest_help("rtm peers [--channel CH] [--backend URL] [--key SK_SECRET]",
                  "Lists the peers online (GET /v1/peers), optionally in one channel.");
        return RTM_EXIT_OK;
    }
    char path[1024] = "/v1/peers";
    if (channel) {
        char *e = enc(channel);
        if (!e) return RTM_EXIT_FAIL;
        snprintf(path, sizeof path, "/v1/peers?channel=%s", e);
        free(e);
    }
    return call(&tc, "rtm peers", "GET", path, NULL);
}

int tool_kick_main(int argc, char **argv)
{
    struct tool_conn tc;
    const char *peer = NULL;
    int rc = parse(argc, argv, "rtm kick", &tc, NULL, NULL, &peer);
    if (rc >= 0) return rc;
    if (tc.help) {
        rest_help("rtm kick PEER [--backend URL] [--key SK_SECRET]",
                  "Closes every session of PEER with 4020 (DELETE /v1/peers?peerId=PEER); exit 1 if PEER was not online.");
        return RTM_EXIT_OK;
    }
    if (!peer) {
        fprintf(stderr, "usage: rtm kick PEER\n");
        return RTM_EXIT_USAGE;
    }
    char *e = enc(peer), path[1024];
    if (!e) return RTM_EXIT_FAIL;
    /* The query form: exact for any peerId (lws normalizes "//" and dot
     * segments of a decoded path; see docs/api.md). */
    snprintf(path, sizeof path, "/v1/peers?peerId=%s", e);
    free(e);
    return call(&tc, "rtm kick", "DELETE", path, NULL);
}

int tool_revoke_main(int argc, char **argv)
{
    struct tool_conn tc;
    const char *jti = NULL, *peer = NULL;
    const char *names[] = {"--jti", "--revoke-peer", NULL};
    const char **slots[] = {&jti, &peer};
    int rc = parse(argc, argv, "rtm revoke", &tc, names, slots, NULL);
    if (rc >= 0) return rc;
    if (tc.help) {
        rest_help("rtm revoke (--jti JTI | --peer PEER) [--backend URL] [--key SK_SECRET]",
                  "Revokes one token by jti, or every token of a peer issued before now\n"
                  "(POST /v1/revocations); live sessions using them are closed with 4001.");
        return RTM_EXIT_OK;
    }
    if (!peer) peer = tc.peer;
    if (!!jti == !!peer) {
        fprintf(stderr, "rtm revoke: give exactly one of --jti JTI or --peer PEER\n");
        return RTM_EXIT_USAGE;
    }
    json_t *b = json_object();
    json_object_set_new(b, jti ? "jti" : "peerId", json_string(jti ? jti : peer));
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (!body) return RTM_EXIT_FAIL;
    rc = call(&tc, "rtm revoke", "POST", "/v1/revocations", body);
    free(body);
    return rc;
}

int tool_sessions_main(int argc, char **argv)
{
    struct tool_conn tc;
    const char *peer = NULL;
    int rc = parse(argc, argv, "rtm sessions", &tc, NULL, NULL, NULL);
    if (rc >= 0) return rc;
    if (tc.help) {
        rest_help("rtm sessions [--peer PEER] [--backend URL] [--key SK_SECRET]",
                  "Lists recorded sessions, newest first (GET /v1/sessions[?peerId=]).");
        return RTM_EXIT_OK;
    }
    peer = tc.peer;
    char path[1024] = "/v1/sessions";
    if (peer) {
        char *e = enc(peer);
        if (!e) return RTM_EXIT_FAIL;
        snprintf(path, sizeof path, "/v1/sessions?peerId=%s", e);
        free(e);
    }
    return call(&tc, "rtm sessions", "GET", path, NULL);
}

/* sub.c: `rtm sub CHANNEL...` (messages, direct messages and presence as
 * JSON lines) and `rtm listen [CHANNEL...]` (every frame as received).
 *
 * Both run until interrupted (exit 0), until --count lines were printed
 * (exit 0), until --timeout passes (exit 0 without --count, 1 with it), or
 * until the broker ends the session for good (exit 3 before any welcome,
 * 1 after). Status lines go to stderr, data lines to stdout. */
#include "tool.h"
#include "toolconn.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SUB_CHANNELS 100

struct sub_state {
    const char *prog;
    int listen;
    const char **channels;
    int n_channels;
    long count, printed;
    int welcomed, stopped, stop_code;
};

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    return text ? json_loads(text, JSON_DECODE_ANY, &e) : NULL;
}

static void on_sub_done(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    const char *ch = ud;
    (void)c;
    if (st == RTM_STATUS_OK)
        fprintf(stderr, "subscribed %s\n", ch);
    else
        fprintf(stderr, "subscribe %s failed: %s%s%s\n", ch, code ? code : rtm_status_str(st), msg ? ": " : "",
                msg ? msg : "");
}

static void on_connected(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    struct sub_state *s = ud;
    fprintf(stderr, "%s as %s\n", w->reconnect ? "reconnected" : "connected", w->peer_id ? w->peer_id : "?");
    if (!s->welcomed) /* later welcomes: the library replays the subscriptions */
        for (int i = 0; i < s->n_channels; i++) {
            rtm_status st = rtm_subscribe(c, s->channels[i], on_sub_done, (void *)s->channels[i]);
            if (st) fprintf(stderr, "subscribe %s: %s\n", s->channels[i], rtm_status_str(st));
        }
    s->welcomed = 1;
}

static void counted(struct sub_state *s)
{
    s->printed++;
    fflush(stdout);
}

static void on_msg(rtm_client *c, const struct rtm_message *m, void *ud)
{
    struct sub_state *s = ud;
    (void)c;
    if (s->listen) return;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(m->channel ? "message" : "direct"));
    if (m->channel) json_object_set_new(o, "channel", json_string(m->channel));
    json_object_set_new(o, "from", json_string(m->from ? m->from : ""));
    json_t *d = parse(m->data);
    json_object_set_new(o, "data", d ? d : json_null());
    if (m->from_metadata) json_object_set_new(o, "fromMetadata", parse(m->from_metadata));
    print_json(o);
    counted(s);
}

static json_t *members_json(const struct rtm_member *m, size_t n, int with_meta)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "peerId", json_string(m[i].peer_id));
        if (with_meta && m[i].metadata) json_object_set_new(e, "metadata", parse(m[i].metadata));
        json_array_append_new(a, e);
    }
    return a;
}

static void on_presence(rtm_client *c, const struct rtm_presence *p, void *ud)
{
    struct sub_state *s = ud;
    (void)c;
    if (s->listen) return;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("presence"));
    json_object_set_new(o, "channel", json_string(p->channel));
    json_object_set_new(o, "joined", members_json(p->joined, p->n_joined, 1));
    json_object_set_new(o, "left", members_json(p->left, p->n_left, 0));
    print_json(o);
    counted(s);
}

static void on_frame(rtm_client *c, const char *json, size_t len, void *ud)
{
    struct sub_state *s = ud;
    (void)c;
    if (!s->listen) return;
    fwrite(json, 1, len, stdout);
    fputc('\n', stdout);
    counted(s);
}

static void on_error(rtm_client *c, const char *code, const char *msg, void *ud)
{
    (void)c;
    (void)ud;
    fprintf(stderr, "error from broker: %s%s%s\n", code ? code : "?", msg ? ": " : "", msg ? msg : "");
}

static void on_closed(rtm_client *c, int code, const char *reason, int again, int64_t in_ms, void *ud)
{
    struct sub_state *s = ud;
    (void)c;
    if (again)
        fprintf(stderr, "disconnected (%d %s), reconnecting in %lld ms\n", code, reason ? reason : "",
                (long long)in_ms);
    else {
        fprintf(stderr, "closed for good (%d %s)\n", code, reason ? reason : "");
        s->stopped = 1;
        s->stop_code = code;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out, int listen)
{
    if (listen)
        fprintf(out, "usage: rtm listen [CHANNEL...] [--count N] [connection settings]\n"
                     "Prints every frame the broker sends as one JSON line (subscribing to CHANNELs first).\n");
    else
        fprintf(out, "usage: rtm sub CHANNEL... [--count N] [--sender-metadata] [connection settings]\n"
                     "Prints channel messages, direct messages and presence changes as JSON lines.\n"
                     "Status goes to stderr (\"subscribed CHANNEL\" once the broker acknowledged).\n");
    fprintf(out, "  --count N          exit 0 after N lines\n");
    tool_conn_help(out);
}

static int run(int argc, char **argv, int listen)
{
    const char *prog = listen ? "rtm listen" : "rtm sub";
    struct tool_conn tc;
    const char *chans[MAX_SUB_CHANNELS];
    struct sub_state s;
    int sender_meta = 0, rc;
    memset(&s, 0, sizeof s);
    s.prog = prog;
    s.listen = listen;
    s.channels = chans;
    tool_conn_init(&tc);
    for (int i = 1; i < argc; i++) {
        int r = tool_conn_arg(&tc, &i, argc, argv, prog);
        if (r < 0) return RTM_EXIT_USAGE;
        if (r) continue;
        if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            s.count = strtol(argv[++i], NULL, 10);
            if (s.count <= 0) {
                fprintf(stderr, "%s: --count wants a positive number\n", prog);
                return RTM_EXIT_USAGE;
            }
        } else if (!strcmp(argv[i], "--sender-metadata")) {
            sender_meta = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, argv[i]);
            return RTM_EXIT_USAGE;
        } else if (s.n_channels < MAX_SUB_CHANNELS) {
            chans[s.n_channels++] = argv[i];
        } else {
            fprintf(stderr, "%s: at most %d channels\n", prog, MAX_SUB_CHANNELS);
            return RTM_EXIT_USAGE;
        }
    }
    if (tc.help) {
        usage(stdout, listen);
        return RTM_EXIT_OK;
    }
    if (!listen && !s.n_channels) {
        usage(stderr, listen);
        return RTM_EXIT_USAGE;
    }
    tool_install_signals();
    setvbuf(stdout, NULL, _IOLBF, 0);
    rtm_options *o = tool_client_options(&tc, prog, &rc);
    if (!o) return rc;
    struct rtm_callbacks cb = {.connected = on_connected,
                               .message = on_msg,
                               .direct = on_msg,
                               .presence = on_presence,
                               .error = on_error,
                               .closed = on_closed,
                               .frame = on_frame};
    rtm_options_set_callbacks(o, &cb, &s);
    rtm_options_set_sender_metadata(o, sender_meta);
    rtm_client *c = NULL;
    rtm_status st = rtm_client_new(o, &c);
    rtm_options_free(o);
    if (st) {
        fprintf(stderr, "%s: %s\n", prog, rtm_status_str(st));
        return RTM_EXIT_USAGE;
    }
    int64_t deadline = tc.timeout_ms ? now_ms() + tc.timeout_ms : 0;
    rc = RTM_EXIT_OK;
    while (!tool_interrupted) {
        if (rtm_client_service(c, 200) == RTM_ERR_CLOSED || s.stopped) {
            rc = s.welcomed ? RTM_EXIT_FAIL : RTM_EXIT_CONNECT;
            break;
        }
        if (s.count && s.printed >= s.count) break;
        if (deadline && now_ms() >= deadline) {
            rc = s.count ? RTM_EXIT_FAIL : RTM_EXIT_OK;
            break;
        }
    }
    rtm_client_free(c);
    return rc;
}

int tool_sub_main(int argc, char **argv) { return run(argc, argv, 0); }
int tool_listen_main(int argc, char **argv) { return run(argc, argv, 1); }

/* pub.c: `rtm pub CHANNEL DATA` and `rtm send PEER DATA`: connect, make
 * one request, wait for its acknowledgement, exit.
 *
 * Exit codes: 0 acknowledged; 1 refused by the broker (its error code on
 * stderr) or no answer in time; 2 usage; 3 could not connect or the token
 * was refused. DATA is sent as JSON when it parses as JSON, else as a JSON
 * string; "-" reads it from stdin. */
#include "tool.h"
#include "toolconn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pub_state {
    int send;
    const char *target, *via;
    char *data;
    int sent, done, rc, welcomed, stopped;
};

static void on_done(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    struct pub_state *s = ud;
    (void)c;
    s->done = 1;
    if (st == RTM_STATUS_OK) {
        s->rc = RTM_EXIT_OK;
        return;
    }
    fprintf(stderr, "%s failed: %s%s%s\n", s->send ? "send" : "publish", code ? code : rtm_status_str(st),
            msg ? ": " : "", msg ? msg : "");
    s->rc = RTM_EXIT_FAIL;
}

static void fire(rtm_client *c, struct pub_state *s)
{
    rtm_status st = s->send ? rtm_send(c, s->target, s->data, on_done, s)
                            : rtm_publish(c, s->target, s->data, on_done, s);
    s->sent = 1;
    if (st) {
        fprintf(stderr, "%s: %s\n", s->send ? "send" : "publish", rtm_status_str(st));
        s->done = 1;
        s->rc = st == RTM_ERR_TOO_BIG || st == RTM_ERR_INVALID_ARG ? RTM_EXIT_USAGE : RTM_EXIT_FAIL;
    }
}

static void on_via(rtm_client *c, rtm_status st, const char *code, const char *msg, void *ud)
{
    struct pub_state *s = ud;
    if (st) {
        fprintf(stderr, "subscribe %s failed: %s%s%s\n", s->via, code ? code : rtm_status_str(st), msg ? ": " : "",
                msg ? msg : "");
        s->done = 1;
        s->rc = RTM_EXIT_FAIL;
        return;
    }
    fire(c, s);
}

static void on_connected(rtm_client *c, const struct rtm_welcome *w, void *ud)
{
    struct pub_state *s = ud;
    (void)w;
    s->welcomed = 1;
    if (s->sent) return;
    if (s->via) {
        s->sent = 1;
        rtm_status st = rtm_subscribe(c, s->via, on_via, s);
        if (st) {
            fprintf(stderr, "subscribe %s: %s\n", s->via, rtm_status_str(st));
            s->done = 1;
            s->rc = RTM_EXIT_FAIL;
        }
        return;
    }
    fire(c, s);
}

static void on_closed(rtm_client *c, int code, const char *reason, int again, int64_t in_ms, void *ud)
{
    struct pub_state *s = ud;
    (void)c;
    (void)in_ms;
    if (!again) {
        fprintf(stderr, "closed (%d %s)\n", code, reason ? reason : "");
        s->stopped = 1;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out, int send)
{
    if (send)
        fprintf(out, "usage: rtm send PEER DATA [--channel CH] [connection settings]\n"
                     "Sends DATA directly to PEER (who must share a subscribed channel with you:\n"
                     "--channel subscribes to CH first).\n");
    else
        fprintf(out, "usage: rtm pub CHANNEL DATA [connection settings]\n"
                     "Publishes DATA to CHANNEL and waits for the broker's acknowledgement.\n");
    fprintf(out, "DATA is sent as JSON when it parses as JSON, else as a string; \"-\" reads stdin.\n");
    tool_conn_help(out);
}

static int run(int argc, char **argv, int send)
{
    const char *prog = send ? "rtm send" : "rtm pub";
    const char *pos[2] = {NULL, NULL};
    int npos = 0, rc;
    struct tool_conn tc;
    struct pub_state s;
    memset(&s, 0, sizeof s);
    s.send = send;
    s.rc = RTM_EXIT_FAIL;
    tool_conn_init(&tc);
    for (int i = 1; i < argc; i++) {
        int r = tool_conn_arg(&tc, &i, argc, argv, prog);
        if (r < 0) return RTM_EXIT_USAGE;
        if (r) continue;
        if (send && !strcmp(argv[i], "--channel") && i + 1 < argc) {
            s.via = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, argv[i]);
            return RTM_EXIT_USAGE;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[i]);
            return RTM_EXIT_USAGE;
        }
    }
    if (tc.help) {
        usage(stdout, send);
        return RTM_EXIT_OK;
    }
    if (npos != 2) {
        usage(stderr, send);
        return RTM_EXIT_USAGE;
    }
    s.target = pos[0];
    if (!(s.data = tool_data_arg(pos[1]))) {
        fprintf(stderr, "%s: DATA is neither JSON nor a valid UTF-8 string\n", prog);
        return RTM_EXIT_USAGE;
    }
    tool_install_signals();
    rtm_options *o = tool_client_options(&tc, prog, &rc);
    if (!o) {
        free(s.data);
        return rc;
    }
    struct rtm_callbacks cb = {.connected = on_connected, .closed = on_closed};
    rtm_options_set_callbacks(o, &cb, &s);
    rtm_client *c = NULL;
    rtm_status st = rtm_client_new(o, &c);
    rtm_options_free(o);
    if (st) {
        fprintf(stderr, "%s: %s\n", prog, rtm_status_str(st));
        free(s.data);
        return RTM_EXIT_USAGE;
    }
    int64_t deadline = now_ms() + (tc.timeout_ms ? tc.timeout_ms : 10000);
    while (!s.done && !tool_interrupted) {
        if (rtm_client_service(c, 100) == RTM_ERR_CLOSED || s.stopped) break;
        if (now_ms() >= deadline) {
            fprintf(stderr, "%s: no answer in time\n", prog);
            break;
        }
    }
    rc = s.done ? s.rc : s.welcomed ? RTM_EXIT_FAIL : RTM_EXIT_CONNECT;
    rtm_client_free(c);
    free(s.data);
    return rc;
}

int tool_pub_main(int argc, char **argv) { return run(argc, argv, 0); }
int tool_send_main(int argc, char **argv) { return run(argc, argv, 1); }

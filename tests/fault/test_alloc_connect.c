/* test_alloc_connect.c: the connect path over a real socket, with every
 * allocation along it failing once, in turn.
 *
 * In one process: rtmd's public listener (rtmd/listen.c with the broker's
 * protocols) on a loopback port of a real lws context, and a raw WebSocket
 * client (no allocation of its own) that sends the upgrade with ?token=,
 * reads the welcome, closes with 1000, and waits for the session's CLOSED.
 * The test runs that once to count rtm's allocations along it (K), then K
 * more times failing the 1st, 2nd, ... Kth (failalloc.c). Each connect must
 * end cleanly: a welcome, or a close frame with a code, or a refusal before
 * the upgrade (an HTTP status, or the socket closed at accept); never a hang;
 * and the broker must be back to zero sessions with nothing left allocated
 * (valgrind / LeakSanitizer in make valgrind / make asan). */
#define _GNU_SOURCE /* memmem */
#include "../fuzz/broker_env.h"
#include "../fuzz/support.h"
#include "../unit/testlib.h"
#include "failalloc.h"

#include "../../rtmd/listen.h"
#include "protocol.h"
#include "store.h"
#include "token.h"
#include "util.h"
#include "view.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct lws_context *ctx;
static int port;
static char token[4096];
static int n_welcome, n_close, n_refused; /* how the connects ended */
#define MAX_TEXTS 8
static char texts[MAX_TEXTS][4096]; /* the text frames of the last connect */
static int n_texts;

/* Every text frame of the last connect is one JSON object (call disarmed). */
static void check_texts(void)
{
    for (int i = 0; i < n_texts; i++) {
        json_t *o = one_object(texts[i], strlen(texts[i]));
        if (!o) fprintf(stderr, "  not one JSON object: %s\n", texts[i]);
        CHECK(o != NULL);
        json_decref(o);
    }
    n_texts = 0;
}

static void service(int ms)
{
    for (int64_t end = rtm_mono_ms() + ms; rtm_mono_ms() < end;) lws_service(ctx, -1);
}

/* One connect; returns 0 when it ended cleanly (see the file comment). */
static int connect_once(void)
{
    char req[4608], buf[8192];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS)) return -1;
    int n = snprintf(req, sizeof req,
                     "GET /v1?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     token);
    size_t sent = 0;
    int result = -1, upgraded = 0, closed_sent = 0;
    int64_t deadline = rtm_mono_ms() + 5000;
    while (rtm_mono_ms() < deadline) {
        lws_service(ctx, -1);
        if (sent < (size_t)n) {
            ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
            if (w > 0) sent += (size_t)w;
            continue;
        }
        ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
        if (r == 0) { /* closed by the server */
            if (!upgraded) n_refused++, result = 0;
            else if (closed_sent) result = 0;
            break;
        }
        if (r < 0) {
            if (errno == EAGAIN) continue;
            if (!upgraded) n_refused++, result = 0; /* reset at accept */
            break;
        }
        got += (size_t)r;
        if (!upgraded) {
            char *end = memmem(buf, got, "\r\n\r\n", 4);
            if (!end) continue;
            if (strncmp(buf, "HTTP/1.1 101", 12) != 0) { /* refused with a status */
                n_refused++;
                result = 0;
                break;
            }
            upgraded = 1;
            size_t hl = (size_t)(end + 4 - buf);
            memmove(buf, buf + hl, got - hl);
            got -= hl;
        }
        /* server frames: unmasked, this test's are short (< 64 KB) */
        while (got >= 2) {
            size_t len = buf[1] & 0x7f, hl = 2;
            if (len == 126) {
                if (got < 4) break;
                len = (size_t)((unsigned char)buf[2] << 8 | (unsigned char)buf[3]);
                hl = 4;
            }
            if (got < hl + len) break;
            int op = buf[0] & 0x0f;
            if (op == 1) {
                /* kept for the check after fa_disarm: parsing here would allocate */
                if (n_texts < MAX_TEXTS && len < sizeof texts[0]) {
                    memcpy(texts[n_texts], buf + hl, len);
                    texts[n_texts++][len] = '\0';
                }
                if (memmem(buf + hl, len, "\"type\":\"welcome\"", 16) && !closed_sent) {
                    n_welcome++;
                    /* a masked close 1000 (mask 0: the payload is sent as is) */
                    static const unsigned char bye[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
                    if (send(fd, bye, sizeof bye, MSG_NOSIGNAL) == (ssize_t)sizeof bye) closed_sent = 1;
                }
            } else if (op == 8) {
                int code = len >= 2 ? ((unsigned char)buf[hl] << 8 | (unsigned char)buf[hl + 1]) : 1005;
                if (!closed_sent) n_close++;
                CHECK(code >= 1000);
                result = 0;
            }
            memmove(buf, buf + hl + len, got - hl - len);
            got -= hl + len;
        }
        if (result == 0) break;
    }
    close(fd);
    /* until the session is gone from the broker (CLOSED ran) */
    for (int64_t end = rtm_mono_ms() + 3000; rtm_mono_ms() < end && brk_session_count(benv_srv.broker) > 0;)
        lws_service(ctx, -1);
    service(20);
    CHECK(brk_session_count(benv_srv.broker) == 0);
    if (result) fprintf(stderr, "  connect did not end cleanly (upgraded %d, %zu bytes pending)\n", upgraded, got);
    return result;
}

TEST(connect_over_a_socket)
{
    fa_arm(0);
    CHECK(connect_once() == 0);
    long k = fa_disarm();
    check_texts();
    CHECK(n_welcome == 1);
    const char *only = getenv("FAULT_ONLY");
    for (long nth = only ? atol(only) : 1; nth <= (only ? atol(only) : k); nth++) {
        fa_arm(nth);
        int rc = connect_once();
        fa_disarm();
        check_texts();
        if (rc) fprintf(stderr, "  with allocation %ld of %ld failing\n", nth, k);
        CHECK(rc == 0);
    }
    printf("# connect path (WebSocket): %ld allocations, each failed once in turn: %d welcomed, %d closed with a "
           "code, %d refused before the upgrade\n",
           k, n_welcome, n_close, n_refused);
    CHECK(k > 20);
}

/* A free loopback port (the config refuses port 0). */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        p = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return p;
}

int main(void)
{
    char addr[32];
    fa_init();
    benv_init("fault-connect.db");
    free(benv_cfg.public_addr);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    benv_cfg.public_addr = strdup(addr);
    benv_cfg.rate_connects_per_ip_per_minute = 0;

    struct rtm_key key;
    const char *const chans[] = {"room-*"};
    struct rtm_key_spec spec = {.app = "fault", .channels = chans, .n_channels = 1};
    if (rtm_store_key_create(benv_srv.store, &spec, &key) || rtm_view_poll_now(benv_srv.view)) return 2;
    struct rtm_claims c = {0};
    char *tc[] = {"room-1"}, *tok = NULL;
    c.sub = "frank";
    c.jti = "jti-socket";
    c.kid = key.id;
    c.iat = rtm_now_s();
    c.exp = c.iat + 600;
    c.channels = tc;
    c.n_channels = 1;
    c.perms = RTM_PERM_SUBSCRIBE;
    if (rtm_token_sign(&c, "HS256", (const unsigned char *)key.secret, strlen(key.secret), &tok)) return 2;
    snprintf(token, sizeof token, "%s", tok);
    free(tok);

    if (brk_create(&benv_srv, &benv_srv.broker)) return 2;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.user = &benv_srv;
    info.gid = info.uid = -1;
    info.max_http_header_data = 49152;
    info.max_http_header_pool = RTM_HEADER_POOL;
    lws_set_log_level(LLL_ERR, NULL);
    if (!(ctx = benv_srv.lws = lws_create_context(&info)) || rtm_listen_public(&benv_srv)) return 2;
    port = lws_get_vhost_listen_port(benv_srv.public_vh);

    int rc = RUN_TESTS();

    lws_context_destroy(ctx);
    brk_destroy(benv_srv.broker);
    rtm_listen_free();
    rtm_key_free(&key);
    return rc;
}

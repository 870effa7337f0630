/* test_wsgen.c: sdk-c/tool/wsgen.c, rtm bench's WebSocket engine, on one
 * end of a socket pair whose other end plays the server: control frames the
 * engine answers are never lost to a full socket. */
#include "../../sdk-c/tool/wsgen.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const struct wsg_ops no_ops = {0};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A ping that comes while the engine's socket takes nothing more: the pong
 * waits behind it and goes out once the server reads (it was written with
 * EAGAIN and dropped, so a server's liveness check would end the session). */
TEST(pong_waits_for_a_full_socket)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct wsg_thread t;
    CHECK(wsg_thread_init(&t, 0, &no_ops, NULL, 5) == 0);
    struct wsg_conn c;
    memset(&c, 0, sizeof c);
    c.fd = sv[0];
    c.t = &t;
    c.state = WSG_OPEN;
    c.close_code = 1006;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c};
    CHECK(epoll_ctl(t.ep, EPOLL_CTL_ADD, c.fd, &ev) == 0);
    /* the engine's side full: not one more byte goes in */
    size_t junk = 0;
    for (int i = 0; i < 1000000 && write(sv[0], "x", 1) == 1; i++) junk++;
    CHECK(errno == EAGAIN);
    static const unsigned char ping[] = {0x89, 0x04, 'p', 'i', 'n', 'g'};
    CHECK(write(sv[1], ping, sizeof ping) == (ssize_t)sizeof ping);
    CHECK(wsg_thread_start(&t) == 0);
    usleep(300 * 1000); /* the engine answers the ping while its socket is still full */
    /* the server reads everything; a pong (0x8A, masked, 4 bytes) must follow the junk */
    unsigned char buf[65536], tail[10];
    size_t got = 0, tail_n = 0;
    int64_t end = now_ms() + 2000;
    while (now_ms() < end && !(got > junk && tail_n == sizeof tail)) {
        ssize_t r = read(sv[1], buf, sizeof buf);
        if (r <= 0) {
            usleep(2000);
            continue;
        }
        for (ssize_t i = 0; i < r; i++, got++)
            if (got >= junk && tail_n < sizeof tail) tail[tail_n++] = buf[i];
    }
    wsg_thread_join(&t);
    CHECK(got == junk + sizeof tail);
    CHECK(tail_n == sizeof tail && tail[0] == 0x8A && tail[1] == (0x80 | 4));
    if (tail_n == sizeof tail)
        for (int i = 0; i < 4; i++) CHECK((tail[6 + i] ^ tail[2 + i]) == ping[2 + i]);
    CHECK(wsg_backlog(&c) == 0);
    wsg_close(&c);
    close(sv[1]);
    wsg_thread_free(&t);
}

int main(void) { return RUN_TESTS(); }

/* harness.h: the sdk-c tests' real daemon. Starts $RTM_BUILD/rtmd on free
 * loopback ports with a temporary database and a secret key made by
 * `$RTM_BUILD/rtm key create` (as tests/lib/rtmd.mjs does), restarts it on
 * the same ports, and stops it by PID. Header-only; one daemon per struct.
 *
 *   struct rtmd d;
 *   if (rtmd_start(&d, "\"rate-frames-per-second\": 0")) ...;
 *   ... d.ws_url, d.backend_url, d.key_id, d.key_secret ...
 *   rtmd_stop(&d); rtmd_cleanup(&d);
 *
 * Every wait is bounded (10 s to become ready, 10 s to exit before SIGKILL). */
#ifndef RTM_SDK_HARNESS_H
#define RTM_SDK_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct rtmd {
    char build[256];
    char dir[128], db[192], cfg[192], log[192];
    char key_id[128], key_secret[160];
    char turn_secret[64];
    char extra[1024];
    int public_port, backend_port;
    char ws_url[64], backend_url[64];
    pid_t pid;
};

static inline long h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static inline void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline int h_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &l)) {
        if (s >= 0) close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

/* Runs argv, captures stdout (at most outlen-1 bytes). Returns the exit status or -1. */
static inline int h_run(char *const argv[], char *out, size_t outlen)
{
    int p[2];
    if (pipe(p)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (out && n + 1 < outlen && (r = read(p[0], out + n, outlen - 1 - n)) > 0) n += (size_t)r;
    if (out) out[n] = 0;
    char sink[256];
    while (read(p[0], sink, sizeof sink) > 0) {
    }
    close(p[0]);
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Copies the string value of "name" from a flat JSON object into out. */
static inline int h_json_str(const char *json, const char *name, char *out, size_t outlen)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", name);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    p = strchr(p + strlen(pat), '"');
    if (!p) return -1;
    const char *e = strchr(++p, '"');
    if (!e || (size_t)(e - p) >= outlen) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

static inline int h_log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static inline int rtmd_launch(struct rtmd *d)
{
    char daemon_path[300];
    snprintf(daemon_path, sizeof daemon_path, "%s/rtmd", d->build);
    int before = h_log_count(d->log, "listener ready");
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("RTM_TURN_SECRETS", d->turn_secret, 1);
        setenv("RTM_TURN_URLS", "stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp", 1);
        execl(daemon_path, daemon_path, "--config", d->cfg, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    long deadline = h_now_ms() + 10000;
    while (h_log_count(d->log, "listener ready") < before + 2) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "harness: rtmd exited at start (see %s)\n", d->log);
            d->pid = 0;
            return -1;
        }
        if (h_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            d->pid = 0;
            fprintf(stderr, "harness: rtmd not ready in 10 s (see %s)\n", d->log);
            return -1;
        }
        h_sleep_ms(20);
    }
    return 0;
}

/* extra: more config members as JSON text ("" for none). Returns 0 or -1. */
static inline int rtmd_start(struct rtmd *d, const char *extra)
{
    memset(d, 0, sizeof *d);
    const char *b = getenv("RTM_BUILD");
    snprintf(d->build, sizeof d->build, "%s", b && *b ? b : "build");
    snprintf(d->dir, sizeof d->dir, "/tmp/rtm-sdk-test.XXXXXX");
    if (!mkdtemp(d->dir)) return -1;
    snprintf(d->db, sizeof d->db, "%s/rtm.db", d->dir);
    snprintf(d->cfg, sizeof d->cfg, "%s/rtm.json", d->dir);
    snprintf(d->log, sizeof d->log, "%s/rtmd.log", d->dir);
    snprintf(d->extra, sizeof d->extra, "%s", extra ? extra : "");
    snprintf(d->turn_secret, sizeof d->turn_secret, "turn-secret-%ld-%d", (long)time(NULL), getpid());

    char tool[300], out[1024];
    snprintf(tool, sizeof tool, "%s/rtm", d->build);
    char *argv[] = {tool, "key", "create", "--db", d->db, "--app", "test", NULL};
    if (h_run(argv, out, sizeof out) != 0 || h_json_str(out, "id", d->key_id, sizeof d->key_id) ||
        h_json_str(out, "secret", d->key_secret, sizeof d->key_secret)) {
        fprintf(stderr, "harness: rtm key create failed: %s\n", out);
        return -1;
    }
    d->public_port = h_free_port();
    d->backend_port = h_free_port();
    if (d->public_port <= 0 || d->backend_port <= 0 || d->public_port == d->backend_port) return -1;
    snprintf(d->ws_url, sizeof d->ws_url, "ws://127.0.0.1:%d", d->public_port);
    snprintf(d->backend_url, sizeof d->backend_url, "http://127.0.0.1:%d", d->backend_port);
    FILE *f = fopen(d->cfg, "w");
    if (!f) return -1;
    fprintf(f, "{\"public\": \"127.0.0.1:%d\", \"backend\": \"127.0.0.1:%d\", \"db\": \"%s\"%s%s}\n", d->public_port,
            d->backend_port, d->db, d->extra[0] ? ", " : "", d->extra);
    fclose(f);
    return rtmd_launch(d);
}

/* Sends sig and waits (10 s, then SIGKILL). Returns the exit status, or -1. */
static inline int rtmd_stop_sig(struct rtmd *d, int sig)
{
    if (d->pid <= 0) return -1;
    kill(d->pid, sig);
    long deadline = h_now_ms() + 10000;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) break;
        if (r < 0 || h_now_ms() > deadline) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            break;
        }
        h_sleep_ms(10);
    }
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int rtmd_stop(struct rtmd *d) { return rtmd_stop_sig(d, SIGTERM); }

/* Same ports, same database. */
static inline int rtmd_restart(struct rtmd *d)
{
    rtmd_stop(d);
    return rtmd_launch(d);
}

static inline void rtmd_cleanup(struct rtmd *d)
{
    rtmd_stop(d);
    if (getenv("RTM_TEST_KEEP")) return;
    char p[300];
    const char *files[] = {"rtm.db", "rtm.db-wal", "rtm.db-shm", "rtm.json", "rtmd.log"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", d->dir, files[i]);
        unlink(p);
    }
    rmdir(d->dir);
}

#endif

/* fuzz_config.c: rtmd's settings: the JSON config file and the command line.
 *
 * Input: the config file's bytes, then argv entries, each after a 0x1e byte.
 * The file is handed over as /proc/self/fd/N of a memfd (the parser opens a
 * path). The environment's RTM_* variables are cleared first.
 * Oracle: a refusal has a one-line reason; an acceptance has every integer
 * setting inside the bounds the README documents, a role of all|broker|mint,
 * listen addresses that split into host and port, no TURN secret taken from
 * argv, and the same input loads the same way twice. */
#define _GNU_SOURCE
#include "support.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_ARGS 16

static const struct {
    const char *key;
    size_t off;
    int min, max;
} ints[] = {
#define I(k, f, lo, hi) {k, offsetof(struct rtm_config, f), lo, hi}
    I("turn-ttl", turn_ttl, 0, 7 * 86400),
    I("token-default-ttl", token_default_ttl, 1, 86400),
    I("token-max-ttl", token_max_ttl, 1, 30 * 86400),
    I("max-message-size", max_message_size, 0, 16 << 20),
    I("max-channels-per-connection", max_channels_per_connection, 1, 10000),
    I("queue-bytes", queue_bytes, 0, 1 << 30),
    I("ping-timeout-ms", ping_timeout_ms, 100, 3600000),
    I("resume-queue-bytes", resume_queue_bytes, 1024, 1 << 28),
    I("session-flush-ms", session_flush_ms, 10, 60000),
#undef I
};

struct args {
    char *argv[MAX_ARGS + 3];
    int argc;
    int secret_on_argv;
};

static void add_arg(const uint8_t *rec, size_t n, void *ud)
{
    struct args *a = ud;
    if (a->argc >= MAX_ARGS + 2) return;
    char *s = malloc(n + 1);
    memcpy(s, rec, n);
    s[n] = '\0';
    /* --help/--version print and return 1: nothing to check, and noisy */
    if (!strcmp(s, "--help") || !strcmp(s, "-h") || !strcmp(s, "--version")) {
        free(s);
        return;
    }
    if (!strncmp(s, "--turn-secrets", 14)) a->secret_on_argv = 1;
    a->argv[a->argc++] = s;
}

static void check_loaded(const struct rtm_config *c)
{
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int v = *(const int *)((const char *)c + ints[i].off);
        FUZZ_CHECK(v >= ints[i].min && v <= ints[i].max, "%s = %d outside [%d, %d]", ints[i].key, v, ints[i].min,
                   ints[i].max);
    }
    FUZZ_CHECK(c->role && (!strcmp(c->role, "all") || !strcmp(c->role, "broker") || !strcmp(c->role, "mint")),
               "role \"%s\"", c->role ? c->role : "(null)");
    char host[256];
    int port = -1;
    FUZZ_CHECK(c->public_addr && rtm_config_split_addr(c->public_addr, host, sizeof host, &port) == 0 && port >= 0 &&
                   port <= 65535,
               "public address \"%s\" accepted but does not split", c->public_addr ? c->public_addr : "(null)");
    FUZZ_CHECK(c->n_turn_secrets <= RTM_MAX_TURN_SECRETS && c->n_turn_urls <= RTM_MAX_TURN_URLS, "list bound");
    for (size_t i = 0; i < c->n_turn_secrets; i++) FUZZ_CHECK(c->turn_secrets[i], "a NULL secret in the list");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *env[] = {"RTM_TURN_SECRETS", "RTM_TURN_URLS", "RTM_DB", "RTM_LOG_LEVEL"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) unsetenv(env[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    const uint8_t *rs = memchr(data, 0x1e, size);
    size_t fn = rs ? (size_t)(rs - data) : size;
    int fd = memfd_create("rtm-fuzz-config", 0);
    if (fd < 0 || write(fd, data, fn) != (ssize_t)fn) abort();

    struct args a = {.argc = 0};
    char cfgarg[64];
    snprintf(cfgarg, sizeof cfgarg, "--config=/proc/self/fd/%d", fd);
    a.argv[a.argc++] = strdup("rtmd");
    a.argv[a.argc++] = strdup(cfgarg);
    if (rs) fuzz_records(rs + 1, size - fn - 1, MAX_ARGS, add_arg, &a);
    a.argv[a.argc] = NULL;

    struct rtm_config c1, c2;
    char err1[512] = "", err2[512] = "";
    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    int r1 = rtm_config_load(&c1, a.argc, a.argv, err1, sizeof err1);
    int r2 = rtm_config_load(&c2, a.argc, a.argv, err2, sizeof err2);
    FUZZ_CHECK(r1 == r2, "the same input loaded %d then %d", r1, r2);
    if (r1 < 0) {
        FUZZ_CHECK(err1[0] && !strchr(err1, '\n'), "a refusal without a one-line reason: \"%s\"", err1);
        FUZZ_CHECK(strcmp(err1, err2) == 0, "two different reasons for one input");
    } else if (r1 == 0) {
        FUZZ_CHECK(!a.secret_on_argv, "a TURN secret was accepted from argv");
        check_loaded(&c1);
        FUZZ_CHECK(c1.max_message_size == c2.max_message_size && c1.n_turn_urls == c2.n_turn_urls &&
                       !strcmp(c1.db_path, c2.db_path),
                   "the same input loaded two configs");
        rtm_config_free(&c1);
        rtm_config_free(&c2);
    }
    for (int i = 0; i < a.argc; i++) free(a.argv[i]);
    close(fd);
    return 0;
}

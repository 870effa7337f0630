/* pg_sh.h: the unit tests' way to run tests/lib/pg.sh (start/stop a Postgres on
 * loopback for the store and view tests). Header-only: each test is one file. */
#ifndef RTM_TEST_PG_SH_H
#define RTM_TEST_PG_SH_H

#include <stdio.h>
#include <string.h>

/* Runs tests/lib/pg.sh with args; copies its first output line (or the value
 * of the line starting with `want`) into out. Returns the exit status. */
static int pg_sh(const char *args, const char *want, char *out, size_t outlen)
{
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "tests/lib/pg.sh %s", args);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    if (out && outlen) out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!out) continue;
        const char *v = want ? (!strncmp(line, want, strlen(want)) ? line + strlen(want) : NULL)
                             : (out[0] ? NULL : line);
        if (v && strlen(v) < outlen) memcpy(out, v, strlen(v) + 1);
    }
    return pclose(f);
}

#endif

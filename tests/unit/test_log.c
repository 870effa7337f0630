/* test_log.c: common/log.c's two formats, read back from stderr through a
 * pipe: a JSON line per call with the message's key=value fields, escaping
 * that keeps it valid, JWT-looking text redacted in both formats. */
#include "log.h"
#include "testlib.h"

#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

/* Runs one log call with stderr redirected; returns the line written (static). */
static const char *capture(int format, const char *fmt, const char *arg)
{
    static char buf[8192];
    int p[2], saved = dup(STDERR_FILENO);
    if (pipe(p) != 0) return "";
    dup2(p[1], STDERR_FILENO);
    rtm_log_format = format;
    rtm_log_level = RTM_LOG_DEBUG;
    rtm_log_write(RTM_LOG_INFO, fmt, arg);
    rtm_log_format = RTM_LOG_TEXT;
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

TEST(json_line_carries_the_fields)
{
    const char *l = capture(RTM_LOG_JSON, "ws: closed sid=ses_1 peer=%s app=demo code=4001 reason=\"bad token\" in=3",
                            "alice");
    CHECK(l[strlen(l) - 1] == '\n');
    json_error_t e;
    json_t *o = json_loads(l, 0, &e);
    CHECK(o != NULL);
    if (!o) return;
    CHECK_STR(json_string_value(json_object_get(o, "level")), "info");
    CHECK_STR(json_string_value(json_object_get(o, "sid")), "ses_1");
    CHECK_STR(json_string_value(json_object_get(o, "peer")), "alice");
    CHECK_STR(json_string_value(json_object_get(o, "app")), "demo");
    CHECK(json_integer_value(json_object_get(o, "code")) == 4001);
    CHECK_STR(json_string_value(json_object_get(o, "reason")), "bad token");
    CHECK(json_integer_value(json_object_get(o, "in")) == 3);
    CHECK(strncmp(json_string_value(json_object_get(o, "msg")), "ws: closed sid=ses_1", 20) == 0);
    CHECK(json_string_value(json_object_get(o, "ts")) != NULL);
    json_decref(o);
}

TEST(json_escapes_and_stays_one_line)
{
    const char *l = capture(RTM_LOG_JSON, "odd peer=%s", "a\"b\\c\nd\x01");
    CHECK(strchr(l, '\n') == l + strlen(l) - 1);
    json_t *o = json_loads(l, 0, NULL);
    CHECK(o != NULL);
    json_decref(o);
    /* a value that tries to be the envelope does not replace it */
    l = capture(RTM_LOG_JSON, "x level=%s msg=y ts=z", "error");
    o = json_loads(l, 0, NULL);
    CHECK(o && strcmp(json_string_value(json_object_get(o, "level")), "info") == 0);
    json_decref(o);
}

TEST(jwts_are_redacted_in_both_formats)
{
    const char *jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    for (int f = RTM_LOG_TEXT; f <= RTM_LOG_JSON; f++) {
        const char *l = capture(f, "request /v1?token=%s seen", jwt);
        CHECK(strstr(l, "eyJzdWIiOiJ4In0") == NULL);
        CHECK(strstr(l, "REDACTED") != NULL);
        CHECK(strstr(l, " seen") != NULL);
    }
    /* not a JWT: left alone */
    CHECK(strstr(capture(RTM_LOG_TEXT, "key %s", "eyJustAWord"), "eyJustAWord") != NULL);
}

TEST(format_names)
{
    CHECK(rtm_log_format_parse("text") == RTM_LOG_TEXT);
    CHECK(rtm_log_format_parse("json") == RTM_LOG_JSON);
    CHECK(rtm_log_format_parse("JSON") == -1);
    CHECK(rtm_log_format_parse(NULL) == -1);
}

int main(void) { return RUN_TESTS(); }

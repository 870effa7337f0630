/* test_frames_fast.c: the one-pass read of send and publish
 * (common/frames_fast.c): the plain frames clients send are taken, with
 * their values and data's raw span; anything the jansson path might read
 * or judge differently is declined (tests/fuzz/fuzz_frames.c holds every
 * taken input against jansson). */
#include "frames_fast.h"
#include "testlib.h"

#include <string.h>

static struct frame_fast f;

static int take(const char *text) { return frame_fast_scan(text, strlen(text), &f); }

TEST(takes_the_plain_send)
{
    const char *t = "{\"type\":\"send\",\"to\":\"pb-7\",\"data\":{\"t\":1733126400123456}}";
    CHECK(take(t));
    CHECK(!strcmp(f.type, "send"));
    CHECK(!strcmp(f.target, "pb-7"));
    CHECK(!f.has_rid);
    CHECK(f.data == strstr(t, "{\"t\""));
    CHECK(f.dlen == strlen("{\"t\":1733126400123456}"));
}

TEST(takes_publish_with_request_id_and_whitespace)
{
    const char *t = " {\n\"requestId\" : \"r-1\", \"data\" : [1, \"\xc3\xa9\", true, null, {}] ,"
                    "\"channel\":\"room/1\", \"type\":\"publish\"}\r\n";
    CHECK(take(t));
    CHECK(!strcmp(f.type, "publish"));
    CHECK(!strcmp(f.target, "room/1"));
    CHECK(f.has_rid && !strcmp(f.rid, "r-1"));
    CHECK(f.dlen == strlen("[1, \"\xc3\xa9\", true, null, {}]"));
}

TEST(declines_what_jansson_must_judge)
{
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"to\":\"bob\",\"data\":1}"));       /* repeated member */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":{\"a\":1,\"a\":2}}"));      /* repeated inside data */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":1,\"x\":0}"));             /* unknown member */
    CHECK(!take("{\"type\":\"send\",\"t\\u006f\":\"bob\",\"data\":1}"));               /* escaped key */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":\"a\\nb\"}"));             /* escape in data */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":1.5}"));                   /* a real */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":12345678901234567890}")); /* over 18 digits */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":01}"));                    /* leading zero */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":1} x"));                   /* trailing text */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\"}"));                                /* data missing */
    CHECK(!take("{\"type\":\"send\",\"to\":\"b b\",\"data\":1}"));                     /* invalid peerId */
    CHECK(!take("{\"type\":\"send\",\"channel\":\"c\",\"data\":1}"));                  /* publish's member */
    CHECK(!take("{\"type\":\"publish\",\"channel\":\"\",\"data\":1}"));                /* empty channel */
    CHECK(!take("{\"type\":\"subscribe\",\"channel\":\"c\"}"));                        /* not a hot frame */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":\"\xc3\"}"));              /* bad UTF-8 */
    CHECK(!take("{\"type\":\"send\",\"to\":\"bob\",\"data\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}")); /* deep */
}

TEST(request_id_over_128_characters_is_declined)
{
    char t[512];
    char rid[131];
    memset(rid, 'r', 129);
    rid[129] = '\0';
    snprintf(t, sizeof t, "{\"type\":\"send\",\"to\":\"bob\",\"data\":1,\"requestId\":\"%s\"}", rid);
    CHECK(!take(t));
    rid[128] = '\0';
    snprintf(t, sizeof t, "{\"type\":\"send\",\"to\":\"bob\",\"data\":1,\"requestId\":\"%s\"}", rid);
    CHECK(take(t) && strlen(f.rid) == 128);
}

int main(void) { return RUN_TESTS(); }

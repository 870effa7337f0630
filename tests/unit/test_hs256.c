/* test_hs256.c: common/hs256.c against RFC 4231's HMAC-SHA256 vectors and
 * OpenSSL's one-shot HMAC(), across more secrets than a thread keeps keyed
 * (every answer must be the secret's own, never a kept context's), and on
 * threads that exit (their contexts are freed: valgrind and ASan check), and
 * emptied by rtm_hs256_forget (the key view changed). */
#include "hs256.h"
#include "testlib.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static int matches_openssl(const char *secret, const char *data)
{
    unsigned char a[RTM_HS256_LEN], b[EVP_MAX_MD_SIZE];
    unsigned int bl = 0;
    if (rtm_hs256(secret, (const unsigned char *)data, strlen(data), a)) return 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, strlen(data), b, &bl)) return 0;
    return bl == RTM_HS256_LEN && memcmp(a, b, bl) == 0;
}

TEST(rfc4231_vectors)
{
    unsigned char mac[RTM_HS256_LEN];
    char h[2 * RTM_HS256_LEN + 1];
    char k1[21], k6[132];
    memset(k1, 0x0b, 20);
    k1[20] = '\0';
    memset(k6, 0xaa, 131);
    k6[131] = '\0';
    CHECK(rtm_hs256(k1, (const unsigned char *)"Hi There", 8, mac) == 0);
    hex(mac, sizeof mac, h);
    CHECK_STR(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    const char *d2 = "what do ya want for nothing?";
    CHECK(rtm_hs256("Jefe", (const unsigned char *)d2, strlen(d2), mac) == 0);
    hex(mac, sizeof mac, h);
    CHECK_STR(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* a key longer than SHA-256's block is hashed first */
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    CHECK(rtm_hs256(k6, (const unsigned char *)d6, strlen(d6), mac) == 0);
    hex(mac, sizeof mac, h);
    CHECK_STR(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(kept_contexts_answer_for_their_own_secret)
{
    /* Ten secrets, more than the slots a thread keeps, some a prefix of
     * another, in an order that makes every slot be replaced and reused. */
    char secrets[10][32];
    for (int i = 0; i < 10; i++) snprintf(secrets[i], sizeof secrets[i], "sk_secret_%d%s", i % 5, i >= 5 ? "x" : "");
    int ok = 1;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 10; i++) {
            int k = (i * 7 + round) % 10;
            ok &= matches_openssl(secrets[k], "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0");
            ok &= matches_openssl(secrets[k], ""); /* the same context, other data */
            ok &= matches_openssl(secrets[0], "header.payload");
        }
    CHECK(ok);
}

static void *thread_main(void *arg)
{
    int *ok = arg;
    *ok = 1;
    for (int i = 0; i < 6; i++) {
        char s[24];
        snprintf(s, sizeof s, "thread-%d", i);
        *ok &= matches_openssl(s, "data");
    }
    return NULL;
}

TEST(threads_keep_their_own_contexts)
{
    pthread_t t[3];
    int ok[3] = {0};
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, thread_main, &ok[i]) == 0);
    CHECK(matches_openssl("main-thread", "data"));
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CHECK(ok[i]);
    }
}

static void *forget_thread_main(void *arg)
{
    int *ok = arg;
    *ok = matches_openssl("before-forget", "data") && rtm_hs256_kept() == 1;
    rtm_hs256_forget(); /* from another thread than the one whose cache it empties */
    return NULL;
}

TEST(forget_wipes_every_threads_kept_contexts_at_its_next_mac)
{
    CHECK(matches_openssl("kept-a", "data"));
    CHECK(matches_openssl("kept-b", "data"));
    int kept = rtm_hs256_kept();
    CHECK(kept >= 2);
    CHECK(matches_openssl("kept-a", "again")); /* a kept context: nothing new kept */
    CHECK(rtm_hs256_kept() == kept);
    rtm_hs256_forget();
    /* the next MAC finds the generation moved: only its own secret is kept */
    CHECK(matches_openssl("after-forget", "data"));
    CHECK(rtm_hs256_kept() == 1);
    CHECK(matches_openssl("kept-a", "data")); /* keyed again, still right */
    CHECK(rtm_hs256_kept() == 2);
    pthread_t t;
    int ok = 0;
    CHECK(pthread_create(&t, NULL, forget_thread_main, &ok) == 0);
    pthread_join(t, NULL);
    CHECK(ok);
    CHECK(matches_openssl("kept-b", "data"));
    CHECK(rtm_hs256_kept() == 1);
}

int main(void) { return RUN_TESTS(); }

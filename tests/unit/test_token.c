/* test_token.c: token sign/verify round trips (HS256, RS256, ES256) and every
 * rejection rtm_token_verify documents. Keys are generated per run with
 * OpenSSL; hostile tokens are assembled by hand (header.payload.signature)
 * so the tests do not depend on libjwt producing them. */
#include "errors.h"
#include "protocol.h"
#include "store.h"
#include "testlib.h"
#include "token.h"
#include "util.h"

#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1800000000LL
#define KID "sk_id_0123abcd"
#define SECRET "sk_secret_the-test-secret-0123456789"

static char *chan_all[] = {"**"};
static char *chan_rooms[] = {"room/*", "dm/**"};

static struct rtm_key hs_key(void)
{
    struct rtm_key k = {.id = KID, .app = "test", .alg = "HS256", .secret = SECRET,
                        .channels = chan_all, .n_channels = 1, .actions = RTM_PERM_ALL};
    return k;
}

/* A private/public PEM pair made with OpenSSL 3's one-shot keygen. */
struct pem_pair {
    char *priv, *pub;
    EVP_PKEY *pk;
};

static char *bio_string(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

static struct pem_pair gen_pair(const char *type)
{
    struct pem_pair p = {0};
    if (strcmp(type, "RSA") == 0) p.pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else p.pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!p.pk) return p;
    BIO *a = BIO_new(BIO_s_mem()), *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(a, p.pk, NULL, NULL, 0, NULL, NULL);
    PEM_write_bio_PUBKEY(b, p.pk);
    p.priv = bio_string(a);
    p.pub = bio_string(b);
    BIO_free(a);
    BIO_free(b);
    return p;
}

static void free_pair(struct pem_pair *p)
{
    free(p->priv);
    free(p->pub);
    EVP_PKEY_free(p->pk);
}

static struct rtm_claims base_claims(void)
{
    static char *chans[] = {"room/1", "dm/a/b"};
    struct rtm_claims c = {.sub = "alice", .iat = NOW - 10, .exp = NOW + 3600, .jti = "jti-1",
                           .kid = KID, .channels = chans, .n_channels = 2,
                           .perms = RTM_PERM_PUBLISH | RTM_PERM_SUBSCRIBE};
    return c;
}

/* base64url(header).base64url(payload).base64url(HMAC-SHA256(secret)):
 * any header and payload, including ones libjwt would refuse to write.
 * secret NULL gives an empty signature. Caller frees. */
static char *forge(const char *header, const char *payload, const char *secret)
{
    size_t hl = strlen(header), pl = strlen(payload);
    size_t cap = 4 * (hl + pl) / 3 + 200;
    char *out = malloc(cap);
    int n = rtm_base64url((const unsigned char *)header, hl, out, cap);
    out[n++] = '.';
    n += rtm_base64url((const unsigned char *)payload, pl, out + n, cap - (size_t)n);
    if (secret) {
        unsigned char mac[32];
        unsigned int ml = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out, (size_t)n, mac, &ml);
        out[n++] = '.';
        rtm_base64url(mac, ml, out + n, cap - (size_t)n);
    } else {
        out[n++] = '.';
        out[n] = '\0';
    }
    return out;
}

#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"" KID "\"}"
/* A valid payload with one field replaced: "%s" takes the member list. */
static char *payload_with(const char *sub, const char *iat, const char *exp, const char *jti,
                          const char *extra)
{
    char *p = malloc(64 * 1024);
    snprintf(p, 64 * 1024, "{\"sub\":%s,\"iat\":%s,\"exp\":%s,\"jti\":%s%s%s}", sub, iat, exp, jti,
             extra && *extra ? "," : "", extra ? extra : "");
    return p;
}

/* Forges an HS256 token with the given claim fragments and verifies it:
 * verify's answer, with *out filled on success (the caller frees it). */
static int verify_forged_claims(const char *sub, const char *iat, const char *exp, const char *jti,
                                const char *extra, struct rtm_claims *out, const char **reason)
{
    struct rtm_key k = hs_key();
    char *p = payload_with(sub, iat, exp, jti, extra);
    char *t = forge(HS_HEADER, p, SECRET);
    *reason = NULL;
    int rc = rtm_token_verify(t, &k, NOW, out, reason);
    free(p);
    free(t);
    return rc;
}

/* The same, returning the reason verify gives (NULL on success). */
static const char *verify_forged(const char *sub, const char *iat, const char *exp, const char *jti,
                                 const char *extra)
{
    struct rtm_claims out;
    const char *reason;
    int rc = verify_forged_claims(sub, iat, exp, jti, extra, &out, &reason);
    if (rc == 0) rtm_claims_free(&out);
    else if (!reason) reason = "(no reason)";
    return rc == 0 ? NULL : reason;
}

#define OK_SUB "\"alice\""
#define OK_IAT "1799999990"
#define OK_EXP "1800003600"
#define OK_JTI "\"j1\""

static void check_round_trip(const char *alg, const struct rtm_key *k, const unsigned char *signkey,
                             size_t signlen)
{
    struct rtm_claims c = base_claims(), out;
    c.metadata = json_pack("{s:s}", "secretNote", "x");
    c.peer_metadata = json_pack("{s:s}", "name", "Alice");
    char *tok = NULL, kid[80];
    const char *reason = "unset";
    CHECK(rtm_token_sign(&c, alg, signkey, signlen, &tok) == 0);
    CHECK(tok != NULL);
    if (!tok) goto done;
    CHECK(rtm_token_peek_kid(tok, kid, sizeof kid, &reason) == 0);
    CHECK_STR(kid, c.kid);
    CHECK(rtm_token_verify(tok, k, NOW, &out, &reason) == 0);
    CHECK_STR(out.sub, "alice");
    CHECK_STR(out.jti, "jti-1");
    CHECK_STR(out.kid, c.kid);
    CHECK(out.iat == NOW - 10 && out.exp == NOW + 3600);
    CHECK(out.n_channels == 2);
    if (out.n_channels == 2) {
        CHECK_STR(out.channels[0], "room/1");
        CHECK_STR(out.channels[1], "dm/a/b");
    }
    CHECK(out.perms == (RTM_PERM_PUBLISH | RTM_PERM_SUBSCRIBE));
    CHECK(json_equal(out.metadata, c.metadata));
    CHECK(json_equal(out.peer_metadata, c.peer_metadata));
    rtm_claims_free(&out);
    /* The same token a second later than exp is refused. */
    CHECK(rtm_token_verify(tok, k, NOW + 3600, &out, &reason) != 0);
    CHECK_STR(reason, "token expired");
done:
    free(tok);
    json_decref(c.metadata);
    json_decref(c.peer_metadata);
}

TEST(round_trip_hs256)
{
    struct rtm_key k = hs_key();
    check_round_trip("HS256", &k, (const unsigned char *)SECRET, strlen(SECRET));
}

TEST(round_trip_rs256)
{
    struct pem_pair p = gen_pair("RSA");
    CHECK(p.priv && p.pub);
    struct rtm_key k = {.id = "rsa-key-1", .app = "test", .alg = "RS256", .secret = p.pub,
                        .channels = chan_all, .n_channels = 1, .actions = RTM_PERM_ALL};
    /* Signed under the RSA key's own kid. */
    struct rtm_claims cc = base_claims(), out;
    cc.kid = "rsa-key-1";
    char *tok = NULL;
    const char *reason = NULL;
    CHECK(rtm_token_sign(&cc, "RS256", (unsigned char *)p.priv, strlen(p.priv), &tok) == 0);
    CHECK(tok != NULL);
    if (!tok) return;
    int rc = rtm_token_verify(tok, &k, NOW, &out, &reason);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK_STR(out.kid, "rsa-key-1");
        CHECK_STR(out.sub, "alice");
        rtm_claims_free(&out);
    }
    /* The same token against an HS256 key whose "secret" is that PEM: refused. */
    struct rtm_key hk = k;
    strcpy(hk.alg, "HS256");
    CHECK(rtm_token_verify(tok, &hk, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "algorithm not allowed");
    /* Another RSA key does not verify it. */
    struct pem_pair other = gen_pair("RSA");
    struct rtm_key ok = k;
    ok.secret = other.pub;
    CHECK(rtm_token_verify(tok, &ok, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "bad signature");
    free(tok);
    free_pair(&other);
    free_pair(&p);
}

TEST(round_trip_es256)
{
    struct pem_pair p = gen_pair("EC");
    CHECK(p.priv && p.pub);
    struct rtm_key k = {.id = KID, .app = "test", .alg = "ES256", .secret = p.pub,
                        .channels = chan_all, .n_channels = 1, .actions = RTM_PERM_ALL};
    check_round_trip("ES256", &k, (unsigned char *)p.priv, strlen(p.priv));
    /* An ES256 signature is raw R||S: 64 bytes, 86 base64url characters. */
    struct rtm_claims c = base_claims();
    char *tok = NULL;
    CHECK(rtm_token_sign(&c, "ES256", (unsigned char *)p.priv, strlen(p.priv), &tok) == 0);
    CHECK(tok && strlen(strrchr(tok, '.') + 1) == 86);
    free(tok);
    free_pair(&p);
}

TEST(sign_refuses_bad_arguments)
{
    struct rtm_claims c = base_claims();
    char *tok = (char *)1;
    CHECK(rtm_token_sign(&c, "none", (unsigned char *)"k", 1, &tok) == RTM_EINVAL && tok == NULL);
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)"", 0, &tok) == RTM_EINVAL);
    c.kid = NULL;
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)"k", 1, &tok) == RTM_EINVAL);
}

TEST(peek_kid)
{
    char kid[80];
    const char *reason = NULL;
    char *t = forge(HS_HEADER, "{\"sub\":\"a\"}", SECRET);
    CHECK(rtm_token_peek_kid(t, kid, sizeof kid, &reason) == 0);
    CHECK_STR(kid, KID);
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", SECRET);
    CHECK(rtm_token_peek_kid(t, kid, sizeof kid, &reason) == RTM_EINVAL);
    CHECK_STR(reason, "missing kid");
    free(t);
    t = forge("{\"alg\":\"HS256\",\"kid\":42}", "{\"sub\":\"a\"}", SECRET);
    CHECK(rtm_token_peek_kid(t, kid, sizeof kid, &reason) == RTM_EINVAL);
    CHECK_STR(reason, "missing kid");
    free(t);
    CHECK(rtm_token_peek_kid("not a token", kid, sizeof kid, &reason) == RTM_EINVAL);
    CHECK_STR(reason, "malformed token");
    CHECK(rtm_token_peek_kid("", kid, sizeof kid, &reason) == RTM_EINVAL);
    CHECK_STR(reason, "malformed token");
    /* A kid that does not fit the caller's buffer is refused, not truncated. */
    t = forge(HS_HEADER, "{}", SECRET);
    memset(kid, 'Z', sizeof kid);
    CHECK(rtm_token_peek_kid(t, kid, 4, &reason) == RTM_EINVAL);
    CHECK(kid[0] == 'Z');
    free(t);
}

TEST(reject_alg_none)
{
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    char *p = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t = forge("{\"alg\":\"none\",\"kid\":\"" KID "\"}", p, NULL);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "algorithm not allowed");
    free(t);
    /* Lower-case or otherwise mangled names are not the key's alg either. */
    t = forge("{\"alg\":\"hs256\",\"kid\":\"" KID "\"}", p, SECRET);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "algorithm not allowed");
    free(t);
    free(p);
}

TEST(reject_alg_confusion_hs256_with_rsa_public_pem)
{
    struct pem_pair rsa = gen_pair("RSA");
    struct rtm_key k = {.id = "rsa-1", .app = "test", .alg = "RS256", .secret = rsa.pub,
                        .channels = chan_all, .n_channels = 1, .actions = RTM_PERM_ALL};
    char *p = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    /* The classic attack: HMAC the token with the public PEM as the secret. */
    char *t = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"rsa-1\"}", p, rsa.pub);
    /* libjwt alone would accept it, which is why the pin exists. */
    jwt_t *j = NULL;
    CHECK(jwt_decode(&j, t, (unsigned char *)rsa.pub, (int)strlen(rsa.pub)) == 0);
    jwt_free(j);
    struct rtm_claims out;
    const char *reason = NULL;
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "algorithm not allowed");
    free(t);
    free(p);
    free_pair(&rsa);
}

TEST(reject_bad_signature)
{
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    char *p = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t = forge(HS_HEADER, p, "sk_secret_some-other-secret");
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "bad signature");
    free(t);
    /* A correctly signed token whose payload is then swapped. */
    t = forge(HS_HEADER, p, SECRET);
    char *p2 = payload_with("\"mallory\"", OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t2 = forge(HS_HEADER, p2, NULL);
    char *sig = strrchr(t, '.');
    char *spliced = malloc(strlen(t2) + strlen(sig) + 1);
    strcpy(spliced, t2);
    strcpy(spliced + strlen(spliced) - 1, sig);
    CHECK(rtm_token_verify(spliced, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "bad signature");
    /* The untouched one is fine, so the splice is what failed. */
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) == 0);
    rtm_claims_free(&out);
    free(spliced);
    free(t2);
    free(p2);
    free(t);
    free(p);
}

/* The reason verify gives a token forged with this header and payload and
 * signed with the key's secret (NULL when accepted). */
static const char *verify_header_payload(const char *header, const char *payload)
{
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    char *t = forge(header, payload, SECRET);
    int rc = rtm_token_verify(t, &k, NOW, &out, &reason);
    if (rc == 0) rtm_claims_free(&out);
    free(t);
    return rc == 0 ? NULL : reason;
}

/* The header and payload are parsed by token.c and HS256 checked with
 * OpenSSL's HMAC: the answers libjwt's decode gave stay the same. */
TEST(hs256_checks_as_libjwt_did)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    char *p = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t = forge(HS_HEADER, p, SECRET);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) == 0);
    rtm_claims_free(&out);
    /* 32 MAC bytes in 43 characters leave 2 bits unused in the last one:
     * flipping one decodes to the same MAC, and is still refused (the
     * signature text is compared, as libjwt does). */
    char *last = t + strlen(t) - 1;
    *last = b64[(strchr(b64, *last) - b64) ^ 1];
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "bad signature");
    free(t);
    /* typ, when present beside a real alg, is JWT in any case. */
    CHECK(verify_header_payload("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"" KID "\"}", p) == NULL);
    CHECK_STR(verify_header_payload("{\"alg\":\"HS256\",\"typ\":\"JOSE\",\"kid\":\"" KID "\"}", p),
              "malformed token");
    /* An alg libjwt does not know is malformed; one it knows but the key
     * is not, is not allowed. */
    CHECK_STR(verify_header_payload("{\"alg\":\"XS256\",\"kid\":\"" KID "\"}", p), "malformed token");
    CHECK_STR(verify_header_payload("{\"alg\":\"HS384\",\"kid\":\"" KID "\"}", p), "algorithm not allowed");
    /* A payload that is not JSON is malformed; JSON but not an object is a
     * bad payload, once the signature holds. */
    CHECK_STR(verify_header_payload(HS_HEADER, "{\"sub\":"), "malformed token");
    CHECK_STR(verify_header_payload(HS_HEADER, "[1,2]"), "invalid claims: payload");
    free(p);
}

TEST(reject_expired)
{
    CHECK(verify_forged(OK_SUB, OK_IAT, "1800000000", OK_JTI, NULL) != NULL);
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, "1800000000", OK_JTI, NULL), "token expired"); /* exp == now */
    CHECK_STR(verify_forged(OK_SUB, "1", "1799999999", OK_JTI, NULL), "token expired");
    CHECK(verify_forged(OK_SUB, OK_IAT, "1800000001", OK_JTI, NULL) == NULL);
}

TEST(reject_wrong_claim_types)
{
    CHECK(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL) == NULL); /* the baseline verifies */
    CHECK_STR(verify_forged("42", OK_IAT, OK_EXP, OK_JTI, NULL), "invalid claims: sub");
    CHECK_STR(verify_forged("\"\"", OK_IAT, OK_EXP, OK_JTI, NULL), "invalid claims: sub");
    CHECK_STR(verify_forged("\"a b\"", OK_IAT, OK_EXP, OK_JTI, NULL), "invalid claims: sub");
    CHECK_STR(verify_forged("\"caf\\u00e9\"", OK_IAT, OK_EXP, OK_JTI, NULL), "invalid claims: sub");
    /* jansson refuses \u0000 when libjwt parses, before any claim check. */
    CHECK_STR(verify_forged("\"a\\u0000b\"", OK_IAT, OK_EXP, OK_JTI, NULL), "malformed token");
    char long_sub[140];
    memset(long_sub, 'x', sizeof long_sub);
    long_sub[0] = '"';
    strcpy(long_sub + 130, "\"");
    CHECK_STR(verify_forged(long_sub, OK_IAT, OK_EXP, OK_JTI, NULL), "invalid claims: sub"); /* 129 */
    long_sub[129] = '"';
    long_sub[130] = '\0';
    CHECK(verify_forged(long_sub, OK_IAT, OK_EXP, OK_JTI, NULL) == NULL); /* 128 is fine */
    CHECK_STR(verify_forged(OK_SUB, "\"1799999990\"", OK_EXP, OK_JTI, NULL), "invalid claims: iat");
    CHECK_STR(verify_forged(OK_SUB, "null", OK_EXP, OK_JTI, NULL), "invalid claims: iat");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, "\"1800003600\"", OK_JTI, NULL), "invalid claims: exp");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, "1800003600.5", OK_JTI, NULL), "invalid claims: exp");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, "true", OK_JTI, NULL), "invalid claims: exp");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, "7", NULL), "invalid claims: jti");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, "\"\"", NULL), "invalid claims: jti");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"channels\":\"room/1\""),
              "invalid claims: channels");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"channels\":[\"a\",1]"),
              "invalid claims: channels");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"channels\":[\"\"]"),
              "invalid claims: channels");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"permissions\":\"publish\""),
              "invalid claims: permissions");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"permissions\":[\"publish\",\"admin\"]"),
              "invalid claims: permissions");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"permissions\":[1]"),
              "invalid claims: permissions");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"metadata\":[1]"), "invalid claims: metadata");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"metadata\":\"x\""), "invalid claims: metadata");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"peerMetadata\":3"),
              "invalid claims: peerMetadata");
    /* A missing required claim is as bad as a wrong one. */
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    char *t = forge(HS_HEADER, "{\"sub\":\"alice\",\"iat\":1,\"exp\":1800003600}", SECRET);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "invalid claims: jti");
    free(t);
    t = forge(HS_HEADER, "[1,2]", SECRET);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK(reason && (strcmp(reason, "malformed token") == 0 || strncmp(reason, "invalid claims", 14) == 0));
    free(t);
}

TEST(reject_channel_bounds)
{
    /* 256 bytes is the limit, 257 is over. */
    char chans[400];
    strcpy(chans, "\"channels\":[\"");
    size_t off = strlen(chans);
    memset(chans + off, 'c', 256);
    strcpy(chans + off + 256, "\"]");
    CHECK(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, chans) == NULL);
    memset(chans + off, 'c', 257);
    strcpy(chans + off + 257, "\"]");
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, chans), "invalid claims: channels");
    /* 100 channels fine, 101 over. */
    char many[2000];
    for (int count = 100; count <= 101; count++) {
        int n = snprintf(many, sizeof many, "\"channels\":[");
        for (int i = 0; i < count; i++) n += snprintf(many + n, sizeof many - (size_t)n, "%s\"c%d\"", i ? "," : "", i);
        snprintf(many + n, sizeof many - (size_t)n, "]");
        const char *r = verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, many);
        if (count == 100) CHECK(r == NULL);
        else CHECK_STR(r, "invalid claims: channels");
    }
}

static char *object_of_size(const char *name, size_t serialized)
{
    /* {"v":"xxx..."} is 8 bytes plus the x's. */
    char *s = malloc(serialized + 64);
    int n = sprintf(s, "\"%s\":{\"v\":\"", name);
    memset(s + n, 'x', serialized - 8);
    strcpy(s + n + serialized - 8, "\"}");
    return s;
}

TEST(reject_oversize_metadata)
{
    char *m = object_of_size("metadata", RTM_MAX_METADATA);
    CHECK(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, m) == NULL);
    free(m);
    m = object_of_size("metadata", RTM_MAX_METADATA + 1);
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, m), "invalid claims: metadata");
    free(m);
    m = object_of_size("peerMetadata", RTM_MAX_PEER_METADATA);
    CHECK(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, m) == NULL);
    free(m);
    m = object_of_size("peerMetadata", RTM_MAX_PEER_METADATA + 1);
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, m), "invalid claims: peerMetadata");
    free(m);
}

/* The metadata texts verify hands out are jansson's compact dump of the
 * claims, byte for byte, whether taken straight from the payload (already
 * canonical) or dumped (whitespace, escapes, reals, -0, repeats, escaped
 * keys). The size bound holds in both forms: with spaces the raw text is
 * longer than the dump that is measured. */
static void check_texts(const char *extra, const char *want_md, const char *want_pmd)
{
    struct rtm_claims out;
    const char *reason;
    int rc = verify_forged_claims(OK_SUB, OK_IAT, OK_EXP, OK_JTI, extra, &out, &reason);
    CHECK(rc == 0);
    if (rc == 0) {
        char *md = json_dumps(out.metadata, JSON_COMPACT);
        CHECK(md && out.metadata_text && strcmp(md, out.metadata_text) == 0);
        CHECK_STR(out.metadata_text, want_md);
        if (want_pmd) CHECK(out.peer_metadata_text && strcmp(out.peer_metadata_text, want_pmd) == 0);
        else CHECK(out.peer_metadata_text == NULL);
        free(md);
        rtm_claims_free(&out);
    }
}

TEST(metadata_texts_are_the_compact_dump)
{
    check_texts("", "{}", NULL);
    check_texts("\"metadata\":{\"a\":[1,-2,true,null,\"x/y\u00e9\"],\"b\":{}},\"peerMetadata\":{\"name\":\"Al\"}",
                "{\"a\":[1,-2,true,null,\"x/y\u00e9\"],\"b\":{}}", "{\"name\":\"Al\"}");
    check_texts("\"metadata\": { \"a\" : 1 }", "{\"a\":1}", NULL);
    check_texts("\"metadata\":{\"a\":\"q\\\"\\u0041\\/\"}", "{\"a\":\"q\\\"A/\"}", NULL);
    check_texts("\"metadata\":{\"r\":1.5,\"z\":-0,\"e\":1e2}", "{\"r\":1.5,\"z\":0,\"e\":100.0}", NULL);
    check_texts("\"metadata\":{\"a\":1,\"a\":2}", "{\"a\":2}", NULL);
    check_texts("\"metadata\":{\"a\":{\"b\":1,\"b\":2}}", "{\"a\":{\"b\":2}}", NULL);
    /* a repeated top-level claim: the last one counts, as the parser reads it */
    check_texts("\"metadata\":{\"a\":1},\"metadata\":{\"b\":2}", "{\"b\":2}", NULL);
    check_texts("\"metadata\":{\"a\":1},\"meta\\u0064ata\":{\"b\":2}", "{\"b\":2}", NULL);
    check_texts("\"metadata\":{\"t\":true,\"f\":false,\"n\":[]}", "{\"t\":true,\"f\":false,\"n\":[]}", NULL);
    /* spaces make the raw text longer than the measured dump: still accepted */
    char *m = object_of_size("metadata", RTM_MAX_METADATA), *spaced = malloc(strlen(m) + 2);
    size_t k = strlen("\"metadata\":");
    memcpy(spaced, m, k);
    spaced[k] = ' ';
    strcpy(spaced + k + 1, m + k);
    free(m);
    m = spaced;
    CHECK(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, m) == NULL);
    free(m);
}

TEST(reject_oversize_token)
{
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    char *m = object_of_size("other", 80 * 1024);
    char *p = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, m);
    char *t = forge(HS_HEADER, p, SECRET);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "malformed token");
    free(t);
    free(p);
    free(m);
}

TEST(scope_channels_and_permissions)
{
    struct rtm_key k = hs_key();
    k.channels = chan_rooms;
    k.n_channels = 2;
    k.actions = RTM_PERM_SUBSCRIBE | RTM_PERM_PUBLISH;
    struct rtm_claims c = base_claims(), out;
    const char *reason = NULL;
    char *t = NULL;

    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &t) == 0);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) == 0); /* room/1 and dm/a/b are inside */
    rtm_claims_free(&out);
    free(t);

    static char *wide[] = {"room/**"};
    c.channels = wide;
    c.n_channels = 1;
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &t) == 0);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "channels outside key scope");
    free(t);

    static char *other[] = {"room/1", "lobby"};
    c.channels = other;
    c.n_channels = 2;
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &t) == 0);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "channels outside key scope");
    free(t);

    c = base_claims();
    c.perms = RTM_PERM_PUBLISH | RTM_PERM_PRESENCE;
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &t) == 0);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "permissions outside key scope");
    free(t);
}

TEST(absent_optional_claims_take_key_scope)
{
    struct rtm_key k = hs_key();
    k.channels = chan_rooms;
    k.n_channels = 2;
    k.actions = RTM_PERM_SUBSCRIBE;
    struct rtm_claims out;
    const char *reason = NULL;
    char *p = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t = forge(HS_HEADER, p, SECRET);
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) == 0);
    CHECK(out.n_channels == 2 && out.channels && strcmp(out.channels[0], "room/*") == 0);
    CHECK(out.perms == RTM_PERM_SUBSCRIBE);
    CHECK(json_is_object(out.metadata) && json_object_size(out.metadata) == 0);
    CHECK(out.peer_metadata == NULL);
    rtm_claims_free(&out);
    free(t);
    free(p);
}

TEST(reject_key_state)
{
    struct rtm_claims c = base_claims(), out;
    const char *reason = NULL;
    char *t = NULL;
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &t) == 0);

    struct rtm_key k = hs_key();
    k.revoked = NOW - 5;
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "key revoked");

    k = hs_key();
    k.publishable = 1;
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "unknown key");

    k = hs_key();
    k.secret = "";
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "unknown key");
    k.secret = NULL;
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "unknown key");

    CHECK(rtm_token_verify(t, NULL, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "unknown key");

    /* The caller looked up the wrong key: its id is not the header's kid. */
    k = hs_key();
    strcpy(k.id, "sk_id_other");
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "unknown key");
    free(t);
}

TEST(reject_malformed)
{
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    /* Empty segments ("..", "h..") made libjwt 1.10.2 write past a heap
     * buffer; valgrind and ASan runs of this test are what catch a regression. */
    const char *bad[] = {"", "a", "a.b", "a.b.c", "..", "eyJhbGciOiJIUzI1NiJ9..", ".eyJzdWIiOiJhIn0.x",
                         "\xff\xfe.x.y", "a+b.c.d", "YQ==.YQ.x", "a b.c.d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reason = NULL;
        CHECK(rtm_token_verify(bad[i], &k, NOW, &out, &reason) != 0);
        CHECK_STR(reason, "malformed token");
    }
    /* A valid token with a fourth segment glued on: libjwt ignores the tail,
     * rtm does not. */
    struct rtm_claims c = base_claims();
    char *t = NULL;
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &t) == 0);
    CHECK(t && rtm_token_verify(t, &k, NOW, &out, &reason) == 0);
    rtm_claims_free(&out);
    char *t4 = malloc(strlen(t) + 8);
    sprintf(t4, "%s.extra", t);
    CHECK(rtm_token_verify(t4, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "malformed token");
    free(t4);
    free(t);
    CHECK(rtm_token_verify(NULL, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "malformed token");
}

/* ---- JWK ---- */

static void expect_b64url(json_t *jwk, const char *name, const unsigned char *raw, size_t n)
{
    char want[1024];
    CHECK(rtm_base64url(raw, n, want, sizeof want) > 0);
    CHECK_STR(json_string_value(json_object_get(jwk, name)), want);
}

TEST(jwk_rsa)
{
    struct pem_pair p = gen_pair("RSA");
    json_t *jwk = NULL;
    CHECK(rtm_jwk_from_pem(p.pub, "rsa-1", "RS256", &jwk) == 0);
    CHECK_STR(json_string_value(json_object_get(jwk, "kty")), "RSA");
    CHECK_STR(json_string_value(json_object_get(jwk, "kid")), "rsa-1");
    CHECK_STR(json_string_value(json_object_get(jwk, "alg")), "RS256");
    CHECK_STR(json_string_value(json_object_get(jwk, "use")), "sig");
    CHECK_STR(json_string_value(json_object_get(jwk, "e")), "AQAB"); /* 65537 */
    /* n: the 256-byte modulus, read back through the legacy-free param API. */
    BIGNUM *n = NULL;
    unsigned char buf[256];
    CHECK(EVP_PKEY_get_bn_param(p.pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1);
    CHECK(BN_bn2binpad(n, buf, 256) == 256);
    expect_b64url(jwk, "n", buf, 256);
    BN_free(n);
    json_t *dummy = NULL;
    CHECK(rtm_jwk_from_pem(p.pub, "rsa-1", "ES256", &dummy) != 0 && dummy == NULL);
    CHECK(rtm_jwk_from_pem("not a pem", "rsa-1", "RS256", &dummy) != 0);
    CHECK(rtm_jwk_from_pem(p.pub, "rsa-1", "HS256", &dummy) != 0);
    json_decref(jwk);
    free_pair(&p);
}

TEST(jwk_ec)
{
    struct pem_pair p = gen_pair("EC");
    json_t *jwk = NULL;
    CHECK(rtm_jwk_from_pem(p.pub, "ec-1", "ES256", &jwk) == 0);
    CHECK_STR(json_string_value(json_object_get(jwk, "kty")), "EC");
    CHECK_STR(json_string_value(json_object_get(jwk, "crv")), "P-256");
    CHECK_STR(json_string_value(json_object_get(jwk, "alg")), "ES256");
    /* The uncompressed point is 04 || X(32) || Y(32). */
    unsigned char pt[65];
    size_t len = 0;
    CHECK(EVP_PKEY_get_octet_string_param(p.pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) == 1);
    CHECK(len == 65 && pt[0] == 4);
    expect_b64url(jwk, "x", pt + 1, 32);
    expect_b64url(jwk, "y", pt + 33, 32);
    json_t *dummy = NULL;
    CHECK(rtm_jwk_from_pem(p.pub, "ec-1", "RS256", &dummy) != 0);
    json_decref(jwk);
    free_pair(&p);

    /* Another curve is not ES256. */
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pk);
    char *pem = bio_string(b);
    CHECK(rtm_jwk_from_pem(pem, "ec-2", "ES256", &dummy) != 0);
    free(pem);
    BIO_free(b);
    EVP_PKEY_free(pk);
}

int main(void) { return RUN_TESTS(); }

/* ---- issue 11: empty signatures, time claims ---- */

/* header.payload. with the kid of an RS256 or ES256 key: libjwt 1.10.2
 * decoded the empty signature into malloc(0) and wrote one byte past it
 * (valgrind: "Invalid write of size 1" in base64_decode_block). Refused
 * before libjwt; run under valgrind or ASan to see the write if it returns. */
static void check_empty_signature(const char *type, const char *alg)
{
    struct pem_pair p = gen_pair(type);
    CHECK(p.priv && p.pub);
    struct rtm_key k = {.id = "asym-key-1", .app = "test", .secret = p.pub, .channels = chan_all,
                        .n_channels = 1, .actions = RTM_PERM_ALL};
    snprintf(k.alg, sizeof k.alg, "%s", alg);
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"asym-key-1\"}", alg);
    char *pl = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t = forge(header, pl, NULL);
    struct rtm_claims out;
    const char *reason = NULL;
    CHECK(t[strlen(t) - 1] == '.');
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) == RTM_EDENIED);
    CHECK_STR(reason, "bad signature");
    free(t);
    free(pl);
    free_pair(&p);
}

TEST(reject_empty_signature_rs256) { check_empty_signature("RSA", "RS256"); }
TEST(reject_empty_signature_es256) { check_empty_signature("EC", "ES256"); }

TEST(reject_empty_signature_hs256)
{
    char *pl = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    char *t = forge(HS_HEADER, pl, NULL);
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    CHECK(rtm_token_verify(t, &k, NOW, &out, &reason) != 0);
    CHECK_STR(reason, "bad signature");
    free(t);
    free(pl);
}

/* A key's secret rotated under the same kid: this thread's HMAC cache
 * (common/hs256.c) holds a keyed context of the old secret, which must never
 * verify again, in either order, nor after more secrets than it keeps. */
TEST(rotated_secret_never_verifies)
{
    struct rtm_claims c = base_claims(), out;
    const char *reason = NULL;
    char *old_t = NULL, *new_t = NULL;
    static const char NEW_SECRET[] = "sk_secret_the-test-secret-0123456788"; /* its last byte differs */
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)SECRET, strlen(SECRET), &old_t) == 0);
    CHECK(rtm_token_sign(&c, "HS256", (unsigned char *)NEW_SECRET, strlen(NEW_SECRET), &new_t) == 0);
    struct rtm_key old_k = hs_key(), new_k = hs_key();
    new_k.secret = (char *)NEW_SECRET;
    for (int round = 0; round < 2; round++) {
        CHECK(rtm_token_verify(old_t, &old_k, NOW, &out, &reason) == 0); /* the old secret's context cached */
        rtm_claims_free(&out);
        CHECK(rtm_token_verify(old_t, &new_k, NOW, &out, &reason) != 0);
        CHECK_STR(reason, "bad signature");
        CHECK(rtm_token_verify(new_t, &new_k, NOW, &out, &reason) == 0);
        rtm_claims_free(&out);
        CHECK(rtm_token_verify(new_t, &old_k, NOW, &out, &reason) != 0);
        CHECK_STR(reason, "bad signature");
        /* a secret that is a prefix of the kept one shares nothing with it */
        struct rtm_key prefix = hs_key();
        char cut[sizeof SECRET];
        snprintf(cut, sizeof cut, "%.*s", (int)strlen(SECRET) - 1, SECRET);
        prefix.secret = cut;
        CHECK(rtm_token_verify(old_t, &prefix, NOW, &out, &reason) != 0);
        CHECK_STR(reason, "bad signature");
        /* more secrets than a thread keeps, then the old token and the new key again */
        for (int i = 0; i < 8; i++) {
            char other[40];
            snprintf(other, sizeof other, "sk_secret_other-%d", i);
            struct rtm_key k = hs_key();
            k.secret = other;
            CHECK(rtm_token_verify(old_t, &k, NOW, &out, &reason) != 0);
        }
    }
    free(old_t);
    free(new_t);
}

/* base64url of n raw bytes (NULs included) into out. */
static int b64n(const char *raw, size_t n, char *out, size_t cap)
{
    return rtm_base64url((const unsigned char *)raw, n, out, cap);
}

/* A header or payload that decodes to a NUL byte is malformed, signed or
 * not: libjwt and any C-string reader would stop there, so the signed bytes
 * and the parsed JSON would differ. */
TEST(reject_nul_in_header_or_payload)
{
    static const char head[] = HS_HEADER;
    char *pl = payload_with(OK_SUB, OK_IAT, OK_EXP, OK_JTI, NULL);
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    for (int which = 0; which < 2; which++) {
        /* the JSON followed by a NUL and more: valid JSON up to the NUL */
        char h[256], p[1024], tok[4096];
        size_t hn = strlen(head), pn = strlen(pl);
        memcpy(h, head, hn);
        memcpy(p, pl, pn);
        if (which == 0) memcpy(h + hn, "\0 ", 3), hn += 3;
        else memcpy(p + pn, "\0 ", 3), pn += 3;
        int n = b64n(h, hn, tok, sizeof tok);
        tok[n++] = '.';
        n += b64n(p, pn, tok + n, sizeof tok - (size_t)n);
        unsigned char mac[32];
        unsigned int ml = 0;
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)tok, (size_t)n, mac, &ml);
        tok[n++] = '.';
        rtm_base64url(mac, ml, tok + n, sizeof tok - (size_t)n);
        const char *reason = NULL;
        CHECK(rtm_token_verify(tok, &k, NOW, &out, &reason) != 0);
        CHECK_STR(reason, "malformed token");
        struct rtm_jws w;
        CHECK(rtm_token_open(tok, &w) == RTM_EINVAL);
    }
    free(pl);
}

/* Verifies a forged HS256 token with the given time claims under a policy. */
static const char *verify_times(const char *iat, const char *exp, const char *extra, int leeway, int max_life)
{
    struct rtm_key k = hs_key();
    struct rtm_claims out;
    const char *reason = NULL;
    struct rtm_token_policy pol = {.now = NOW, .clock_leeway_s = leeway, .max_lifetime_s = max_life};
    char *p = payload_with(OK_SUB, iat, exp, OK_JTI, extra);
    char *t = forge(HS_HEADER, p, SECRET);
    int rc = rtm_token_verify_policy(t, &k, &pol, &out, &reason);
    if (rc == 0) rtm_claims_free(&out);
    else if (!reason) reason = "(no reason)";
    free(p);
    free(t);
    return rc == 0 ? NULL : reason;
}

TEST(nbf_in_the_future_is_not_yet_valid)
{
    CHECK(verify_times(OK_IAT, OK_EXP, "\"nbf\":1800000000", 5, 0) == NULL);  /* nbf == now */
    CHECK(verify_times(OK_IAT, OK_EXP, "\"nbf\":1800000005", 5, 0) == NULL);  /* inside the leeway */
    CHECK_STR(verify_times(OK_IAT, OK_EXP, "\"nbf\":1800000006", 5, 0), "token not yet valid");
    CHECK_STR(verify_times(OK_IAT, OK_EXP, "\"nbf\":1800000001", 0, 0), "token not yet valid");
    CHECK(verify_times(OK_IAT, OK_EXP, "\"nbf\":1800000060", 60, 0) == NULL);
    CHECK_STR(verify_times(OK_IAT, OK_EXP, "\"nbf\":\"1800000000\"", 5, 0), "invalid claims: nbf");
    CHECK_STR(verify_times(OK_IAT, OK_EXP, "\"nbf\":1.5", 5, 0), "invalid claims: nbf");
    CHECK_STR(verify_times(OK_IAT, OK_EXP, "\"nbf\":-1", 5, 0), "invalid claims: nbf");
    CHECK_STR(verify_times(OK_IAT, OK_EXP, "\"nbf\":9223372036854775807", 5, 0), "invalid claims: nbf");
    /* the default policy (rtm_token_verify) has a 5 s leeway */
    CHECK_STR(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"nbf\":1800000006"), "token not yet valid");
    CHECK(verify_forged(OK_SUB, OK_IAT, OK_EXP, OK_JTI, "\"nbf\":1800000005") == NULL);
}

TEST(iat_in_the_future_is_not_yet_valid)
{
    CHECK(verify_times("1800000005", OK_EXP, NULL, 5, 0) == NULL);
    CHECK_STR(verify_times("1800000006", OK_EXP, NULL, 5, 0), "token not yet valid");
    CHECK_STR(verify_times("1900000000", "1900003600", NULL, 5, 0), "token not yet valid");
    CHECK_STR(verify_forged(OK_SUB, "1800000600", "1800003600", OK_JTI, NULL), "token not yet valid");
}

TEST(max_token_lifetime)
{
    /* iat 1799999990, exp 1800003600: a lifetime of 3610 s */
    CHECK(verify_times(OK_IAT, OK_EXP, NULL, 5, 0) == NULL);    /* off */
    CHECK(verify_times(OK_IAT, OK_EXP, NULL, 5, 3610) == NULL); /* exactly the limit */
    CHECK_STR(verify_times(OK_IAT, OK_EXP, NULL, 5, 3609), "token lifetime too long");
    CHECK_STR(verify_times("0", OK_EXP, NULL, 5, 86400), "token lifetime too long"); /* iat 0: ancient */
}

TEST(time_claims_bounded)
{
    /* exp around 9.2e15 (issue 11 defect 3) and at the int64 edge: refused as
     * claims, so no caller multiplies them into an overflow. */
    CHECK_STR(verify_times(OK_IAT, "9200000000000000", NULL, 5, 0), "invalid claims: exp");
    CHECK_STR(verify_times(OK_IAT, "9223372036854775807", NULL, 5, 0), "invalid claims: exp");
    CHECK_STR(verify_times(OK_IAT, "253402300800", NULL, 5, 0), "invalid claims: exp");
    CHECK(verify_times(OK_IAT, "253402300799", NULL, 5, 0) == NULL); /* 9999-12-31T23:59:59Z */
    CHECK_STR(verify_times("-5", OK_EXP, NULL, 5, 0), "invalid claims: iat");
    CHECK_STR(verify_times("9223372036854775807", OK_EXP, NULL, 5, 0), "invalid claims: iat");
}

TEST(ms_until_saturates)
{
    int64_t now = rtm_now_ms();
    CHECK(rtm_ms_until_s(0, 250) == 0);
    CHECK(rtm_ms_until_s(-7, 250) == 0);
    CHECK(rtm_ms_until_s(1, 250) == 0); /* long past */
    int64_t d = rtm_ms_until_s(now / 1000 + 100, 250);
    CHECK(d > 98000 && d <= 100000);
    CHECK(rtm_ms_until_s(9200000000000000LL, 250) == RTM_MS_UNTIL_MAX);
    CHECK(rtm_ms_until_s(INT64_MAX, 250) == RTM_MS_UNTIL_MAX);
    CHECK(rtm_ms_until_s(INT64_MAX, INT64_MAX) == RTM_MS_UNTIL_MAX);
    CHECK(rtm_ms_until_s(now / 1000 + 100, INT64_MAX) == 0);
    CHECK(rtm_ms_until_s(now / 1000 + 100, INT64_MIN) > 98000);
    /* a timer in microseconds still fits */
    CHECK(RTM_MS_UNTIL_MAX <= INT64_MAX / 1000);
}

TEST(reject_reserved_peer_id)
{
    CHECK_STR(verify_forged("\"_server\"", OK_IAT, OK_EXP, OK_JTI, NULL), "reserved peerId");
    CHECK_STR(verify_forged("\"_\"", OK_IAT, OK_EXP, OK_JTI, NULL), "reserved peerId");
    CHECK(verify_forged("\"a_server\"", OK_IAT, OK_EXP, OK_JTI, NULL) == NULL);
}

/* fuzz_token.c: rtm_token_verify() with an HS256, an RS256 and an ES256 key.
 *
 * Input: byte 0 picks the key (bits 0-1) and the mode (bits 2-3):
 *   0 sign:   the rest is "<header JSON>\0<payload JSON>" (an empty header
 *             means the usual {alg, kid, typ}); the harness encodes and signs
 *             it with OpenSSL directly, so the fuzzer reaches the claim checks;
 *   1 tamper: as 0, then byte 1 flips a bit of the signature (byte 2 = where);
 *   2 empty:  as 0 with an empty signature segment;
 *   3 raw:    the rest is the token text as it would arrive.
 * Oracle, for every accepted token: the header's alg and kid are the key's,
 * the signature verifies again under OpenSSL (HMAC / EVP_DigestVerify, not
 * libjwt), exp lies after now, every claimed channel pattern stays inside the
 * key's patterns (by the independent matcher) and the permissions inside the
 * key's actions, and the returned claims are the payload's. */
#include "keys.h"
#include "support.h"

#include "protocol.h"
#include "store.h"
#include "token.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

static char *key_chans[] = {"room-*", "team/**", "lobby"};
static struct rtm_key keys[3];
static EVP_PKEY *priv[3], *pub[3]; /* [0] unused (HS256) */

static EVP_PKEY *load(const char *pem, int is_private)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = is_private ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k) abort();
    return k;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *ids[3] = {"sk_id_fuzzhs", "fuzz-rs", "fuzz-es"};
    static const char *algs[3] = {"HS256", "RS256", "ES256"};
    const char *secrets[3] = {FUZZ_HS_SECRET, FUZZ_RS_PUB, FUZZ_ES_PUB};
    for (int i = 0; i < 3; i++) {
        snprintf(keys[i].id, sizeof keys[i].id, "%s", ids[i]);
        snprintf(keys[i].app, sizeof keys[i].app, "fuzz");
        snprintf(keys[i].alg, sizeof keys[i].alg, "%s", algs[i]);
        keys[i].secret = (char *)secrets[i];
        keys[i].channels = key_chans;
        keys[i].n_channels = 3;
        keys[i].actions = RTM_PERM_SUBSCRIBE | RTM_PERM_PUBLISH | RTM_PERM_PRESENCE;
    }
    priv[1] = load(FUZZ_RS_PRIV, 1);
    pub[1] = load(FUZZ_RS_PUB, 0);
    priv[2] = load(FUZZ_ES_PRIV, 1);
    pub[2] = load(FUZZ_ES_PUB, 0);
    return 0;
}

/* The JWS signature of msg: HMAC-SHA256, RSASSA-PKCS1-v1_5 SHA-256, or
 * ECDSA P-256 as raw R||S. Returns its length. */
static size_t sign(int k, const char *msg, size_t n, unsigned char *sig)
{
    if (k == 0) {
        unsigned int len = 0;
        HMAC(EVP_sha256(), FUZZ_HS_SECRET, (int)strlen(FUZZ_HS_SECRET), (const unsigned char *)msg, n, sig, &len);
        return len;
    }
    unsigned char der[600];
    size_t dl = sizeof der;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, priv[k]) != 1 ||
        EVP_DigestSign(c, der, &dl, (const unsigned char *)msg, n) != 1)
        abort();
    EVP_MD_CTX_free(c);
    if (k == 1) {
        memcpy(sig, der, dl);
        return dl;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    if (!es) abort();
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* 1 when sig is a valid signature of msg under key k, checked with OpenSSL alone. */
static int sig_ok(int k, const char *msg, size_t n, const unsigned char *sig, size_t sl)
{
    if (k == 0) {
        unsigned char mac[32];
        unsigned int len = 0;
        HMAC(EVP_sha256(), FUZZ_HS_SECRET, (int)strlen(FUZZ_HS_SECRET), (const unsigned char *)msg, n, mac, &len);
        return sl == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
    }
    unsigned char der[600];
    const unsigned char *vs = sig;
    size_t vl = sl;
    if (k == 2) {
        if (sl != 64) return 0;
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *o = der;
        int dl = i2d_ECDSA_SIG(es, &o);
        ECDSA_SIG_free(es);
        if (dl <= 0) return 0;
        vs = der;
        vl = (size_t)dl;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pub[k]) == 1 &&
             EVP_DigestVerify(c, vs, vl, (const unsigned char *)msg, n) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

static json_t *decode_json(const char *seg, size_t n)
{
    unsigned char *buf = malloc(n + 1);
    long len = b64url_dec(seg, n, buf);
    json_t *v = len >= 0 ? one_object((const char *)buf, (size_t)len) : NULL;
    free(buf);
    return v;
}

static int channel_in_scope(const char *pattern)
{
    static const char *fills[] = {"", "x", "a/b", "*"};
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        char *inst = ref_instantiate(pattern, fills[f]);
        int ok = 0;
        for (size_t i = 0; i < 3 && !ok; i++) ok = ref_match(key_chans[i], inst);
        free(inst);
        if (!ok) return 0;
    }
    return 1;
}

static void check_accepted(int k, const char *token, const struct rtm_claims *c)
{
    const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    FUZZ_CHECK(d1 && d2 && !strchr(d2 + 1, '.'), "accepted a token that is not three segments: %s", token);
    json_t *h = decode_json(token, (size_t)(d1 - token));
    json_t *p = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
    FUZZ_CHECK(h && p, "accepted a token whose header or payload is not one JSON object");
    const char *alg = json_string_value(json_object_get(h, "alg"));
    const char *kid = json_string_value(json_object_get(h, "kid"));
    FUZZ_CHECK(alg && strcmp(alg, keys[k].alg) == 0, "accepted alg %s with a %s key", alg ? alg : "(none)",
               keys[k].alg);
    FUZZ_CHECK(kid && strcmp(kid, keys[k].id) == 0, "accepted kid %s for key %s", kid ? kid : "(none)", keys[k].id);

    size_t sl = strlen(d2 + 1);
    unsigned char *sig = malloc(sl + 1);
    long sn = b64url_dec(d2 + 1, sl, sig);
    FUZZ_CHECK(sn >= 0 && sig_ok(k, token, (size_t)(d2 - token), sig, (size_t)sn),
               "accepted a %s token whose signature OpenSSL refuses", keys[k].alg);
    free(sig);

    json_t *exp = json_object_get(p, "exp");
    FUZZ_CHECK(json_is_integer(exp) && json_integer_value(exp) > NOW, "accepted an expired or exp-less token");
    FUZZ_CHECK(c->exp == json_integer_value(exp), "claims exp %lld differs from the payload's",
               (long long)c->exp);
    const char *sub = json_string_value(json_object_get(p, "sub"));
    FUZZ_CHECK(sub && c->sub && strcmp(sub, c->sub) == 0, "claims sub differs from the payload's");
    FUZZ_CHECK(c->jti && *c->jti, "accepted a token without jti");
    for (size_t i = 0; i < c->n_channels; i++)
        FUZZ_CHECK(channel_in_scope(c->channels[i]), "channel pattern %s is outside the key's", c->channels[i]);
    FUZZ_CHECK((c->perms & ~keys[k].actions) == 0, "permissions 0x%x outside the key's", c->perms);
    FUZZ_CHECK(c->kid && strcmp(c->kid, keys[k].id) == 0, "claims kid is not the key's");
    json_decref(h);
    json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 70000) return 0;
    if (!priv[1]) LLVMFuzzerInitialize(NULL, NULL);
    int k = (data[0] & 3) % 3, mode = (data[0] >> 2) & 3;
    const uint8_t *rest = data + 1;
    size_t rn = size - 1;
    char *token;

    if (mode == 3) {
        token = malloc(rn + 1);
        memcpy(token, rest, rn);
        token[rn] = '\0';
    } else {
        uint8_t flip = 0, where = 0;
        if (mode == 1) {
            if (rn < 2) return 0;
            flip = rest[0] ? rest[0] : 1;
            where = rest[1];
            rest += 2;
            rn -= 2;
        }
        const uint8_t *z = memchr(rest, 0, rn);
        char defhdr[128];
        const char *hdr = (const char *)rest;
        size_t hn = z ? (size_t)(z - rest) : 0;
        const char *pay = z ? (const char *)z + 1 : (const char *)rest;
        size_t pn = z ? rn - hn - 1 : rn;
        if (hn == 0) {
            hn = (size_t)snprintf(defhdr, sizeof defhdr, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
                                  keys[k].alg, keys[k].id);
            hdr = defhdr;
        }
        token = malloc(4 * (hn + pn) / 3 + 8 + 4 * 600 / 3 + 8);
        size_t t = b64url_enc((const unsigned char *)hdr, hn, token);
        token[t++] = '.';
        t += b64url_enc((const unsigned char *)pay, pn, token + t);
        unsigned char sig[600];
        size_t sl = sign(k, token, t, sig);
        if (mode == 1) sig[where % sl] ^= flip;
        token[t++] = '.';
        if (mode == 2) token[t] = '\0';
        else b64url_enc(sig, sl, token + t);
    }

    struct rtm_claims c;
    const char *reason = NULL;
    int rc = rtm_token_verify(token, &keys[k], NOW, &c, &reason);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s: %s\n", keys[k].alg, rc ? reason : "accepted");
    if (rc == 0) {
        check_accepted(k, token, &c);
        /* The text frames copy is the metadata as jansson writes it, compact. */
        char *md = json_dumps(c.metadata, JSON_COMPACT);
        FUZZ_CHECK(md && c.metadata_text && strcmp(md, c.metadata_text) == 0, "metadata_text is not the metadata");
        free(md);
        if (c.peer_metadata) {
            char *pm = json_dumps(c.peer_metadata, JSON_COMPACT);
            FUZZ_CHECK(pm && c.peer_metadata_text && strcmp(pm, c.peer_metadata_text) == 0,
                       "peer_metadata_text is not the peerMetadata");
            free(pm);
        } else {
            FUZZ_CHECK(!c.peer_metadata_text, "peer_metadata_text without peerMetadata");
        }
        rtm_claims_free(&c);
    } else {
        FUZZ_CHECK(reason && *reason, "a refusal without a reason");
        FUZZ_CHECK(c.sub == NULL && c.channels == NULL && c.metadata == NULL, "a refusal left claims allocated");
    }
    /* The connect path's form (open once, verify the opened token) decides
     * exactly as rtm_token_verify once the token opens. */
    struct rtm_jws w;
    if (rtm_token_open(token, &w) == 0) {
        struct rtm_claims c2;
        const char *reason2 = NULL;
        struct rtm_token_policy pol = {.now = NOW, .clock_leeway_s = RTM_CLOCK_LEEWAY_DEFAULT};
        int rc2 = rtm_token_verify_opened(&w, &keys[k], &pol, &c2, &reason2);
        FUZZ_CHECK(rc2 == rc && (rc ? reason2 && strcmp(reason, reason2) == 0 : !reason2),
                   "verify_opened decided otherwise than verify");
        rtm_claims_free(&c2);
        rtm_token_close(&w);
    } else {
        FUZZ_CHECK(rc != 0, "a token that does not open was accepted");
    }
    char kid[80];
    if (rtm_token_peek_kid(token, kid, sizeof kid, &reason) == 0)
        FUZZ_CHECK(strlen(kid) > 0 && strlen(kid) < sizeof kid, "peek_kid returned an empty or unterminated kid");
    free(token);
    return 0;
}

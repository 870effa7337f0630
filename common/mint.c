/* mint.c: issuing one token for one peer with a secret key.
 *
 * Everything a caller asks for is checked against the key's scope before any
 * crypto runs: channels must lie inside the key's patterns, permissions inside
 * its actions, sizes inside the protocol's bounds. The caller's metadata is
 * never modified: when iceServers are added, a shallow copy gets them. The
 * one size that matters to the broker is the claim as signed, so the 8 KB
 * metadata bound is checked after iceServers were added.
 *
 * HS256 tokens are written here directly (one JSON dump of the claims, base64url,
 * one HMAC) rather than through rtm_token_sign: libjwt's path re-parses and
 * re-serializes the claims and spent 36 us of a 50 us budget per token
 * (bench/mint.sh). The output is an ordinary compact JWS that
 * rtm_token_verify accepts; tests/unit/test_mint.c checks exactly that. */
#include "mint.h"

#include "bind.h"
#include "errors.h"
#include "pattern.h"
#include "protocol.h"
#include "store.h"
#include "token.h"
#include "turn.h"
#include "util.h"
#include "json_dump.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(err, msg)                                                                             \
    do {                                                                                           \
        *err_code = rtm_wire(err)->code;                                                           \
        *err_msg = message_or_default((err), (msg));                                               \
        if (rc == 0) rc = RTM_EINVAL;                                                              \
        goto fail;                                                                                 \
    } while (0)

/* msg NULL: the error table's message. */
static const char *message_or_default(enum rtm_wire_err e, const char *msg)
{
    return msg ? msg : rtm_wire(e)->message;
}

/* Serialized size (compact) of a JSON value; json_dumpb with no buffer only counts. */
static size_t json_size(const json_t *v) { return json_dumpb(v, NULL, 0, JSON_COMPACT); }

static int channels_inside_key(const struct rtm_key *key, const char *ch)
{
    for (size_t i = 0; i < key->n_channels; i++)
        if (rtm_pattern_within(ch, key->channels[i])) return 1;
    return 0;
}

static json_t *claims_json(const struct rtm_claims *c)
{
    json_t *o = json_object(), *chans = json_array(), *perms = json_array();
    int bad = !o || !chans || !perms;
    for (size_t i = 0; !bad && i < c->n_channels; i++)
        bad = json_array_append_new(chans, json_string(c->channels[i])) != 0;
    for (unsigned bit = 1; !bad && bit <= RTM_PERM_SEND; bit <<= 1)
        if (c->perms & bit) bad = json_array_append_new(perms, json_string(rtm_perm_name(bit))) != 0;
    if (bad) {
        json_decref(chans);
        json_decref(perms);
        json_decref(o);
        return NULL;
    }
    /* set_new steals even on failure, so the chain leaks nothing. */
    bad = json_object_set_new(o, "sub", json_string(c->sub)) |
          json_object_set_new(o, "iat", json_integer(c->iat)) |
          json_object_set_new(o, "exp", json_integer(c->exp)) |
          json_object_set_new(o, "jti", json_string(c->jti)) |
          json_object_set_new(o, "channels", chans) | json_object_set_new(o, "permissions", perms) |
          json_object_set(o, "metadata", c->metadata);
    if (c->peer_metadata) bad |= json_object_set(o, "peerMetadata", c->peer_metadata);
    bad |= rtm_bind_claim_add(o, c) != 0;
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* HMAC-SHA256 with a MAC context kept per thread: OpenSSL 3's one-shot HMAC()
 * fetches the algorithm from the provider on every call, which cost more
 * than the hashing itself. The context is re-keyed on each use, and freed
 * when its thread exits (a pthread key destructor), so threads that mint
 * (sdk-c's helper) leak nothing. */
static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static void mac_ctx_free(void *ctx) { EVP_MAC_CTX_free(ctx); }
static void mac_key_init(void) { pthread_key_create(&mac_key, mac_ctx_free); }

static EVP_MAC_CTX *mac_ctx(void)
{
    pthread_once(&mac_once, mac_key_init);
    EVP_MAC_CTX *ctx = pthread_getspecific(mac_key);
    if (ctx) return ctx;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context keeps its own reference */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || !EVP_MAC_CTX_set_params(ctx, params) || pthread_setspecific(mac_key, ctx) != 0) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int hmac_sha256(const char *key, const unsigned char *msg, size_t len, unsigned char *out,
                       size_t *outlen)
{
    EVP_MAC_CTX *ctx = mac_ctx();
    if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), NULL) ||
        !EVP_MAC_update(ctx, msg, len) || !EVP_MAC_final(ctx, out, outlen, EVP_MAX_MD_SIZE))
        return RTM_ECRYPTO;
    return 0;
}

/* 32 lowercase hex chars of fresh randomness. */
static int random_jti(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    if (rtm_random_bytes(b, sizeof b) != 0) return RTM_ECRYPTO;
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

/* The encoded header depends on the kid only, and the API signs with one
 * key over and over: the last one is kept, per thread. A kid is at most 79
 * printable characters (struct rtm_key), so the encoding always fits. */
static int header_b64(const char *kid, const char **out, size_t *outlen)
{
    static __thread char last_kid[80], enc[256];
    static __thread size_t enc_len;
    size_t kl = strlen(kid);
    if (kl >= sizeof last_kid) return RTM_EINVAL;
    if (enc_len && strcmp(kid, last_kid) == 0) {
        *out = enc;
        *outlen = enc_len;
        return 0;
    }
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "typ", "JWT", "kid", kid);
    char *h = hdr ? rtm_json_dumps(hdr, JSON_COMPACT) : NULL;
    json_decref(hdr);
    if (!h) return RTM_ENOMEM;
    int n = rtm_base64url((const unsigned char *)h, strlen(h), enc, sizeof enc);
    free(h);
    if (n < 0) return RTM_EINVAL;
    memcpy(last_kid, kid, kl + 1);
    enc_len = (size_t)n;
    *out = enc;
    *outlen = enc_len;
    return 0;
}

/* Compact JWS: b64url(header) "." b64url(claims) "." b64url(HMAC-SHA256). */
static int sign_hs256(const struct rtm_claims *c, const char *secret, char **out)
{
    const char *h;
    size_t hl;
    int rc = header_b64(c->kid, &h, &hl);
    if (rc) return rc;
    rc = RTM_ENOMEM;
    json_t *cl = claims_json(c);
    char *p = cl ? rtm_json_dumps(cl, JSON_COMPACT) : NULL;
    char *t = NULL;
    if (!p) goto fail;
    size_t pl = strlen(p);
    size_t cap = hl + 4 * ((pl + 2) / 3) + 48 + 3;
    if (!(t = malloc(cap))) goto fail;
    memcpy(t, h, hl);
    t[hl] = '.';
    int n2 = rtm_base64url((const unsigned char *)p, pl, t + hl + 1, cap - hl - 1);
    size_t len = hl + 1 + (size_t)n2;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    if ((rc = hmac_sha256(secret, (const unsigned char *)t, len, mac, &maclen)) != 0) goto fail;
    rc = RTM_ECRYPTO;
    t[len] = '.';
    if (rtm_base64url(mac, maclen, t + len + 1, cap - len - 1) < 0) goto fail;
    *out = t;
    t = NULL;
    rc = 0;
fail:
    free(t);
    free(p);
    json_decref(cl);
    return rc;
}

int rtm_mint(const struct rtm_mint_policy *pol, const struct rtm_key *key,
             const struct rtm_mint_request *rq, int64_t now, char **token, int64_t *expires_at,
             const char **err_code, const char **err_msg)
{
    int rc = 0;
    json_t *meta = NULL;
    struct rtm_claims c;
    char jti[40];

    memset(&c, 0, sizeof c);
    *token = NULL;
    if (!key || key->publishable || !key->secret || strcmp(key->alg, "HS256") != 0) {
        *err_code = rtm_wire(RTM_WIRE_INTERNAL_ERROR)->code;
        *err_msg = "this key cannot sign tokens";
        return RTM_EINVAL;
    }
    if (!rq->peer_id || !rtm_peer_id_valid(rq->peer_id))
        FAIL(RTM_WIRE_INVALID_REQUEST, "peerId must be 1 to 128 printable ASCII characters");
    if (rtm_peer_id_reserved(rq->peer_id))
        FAIL(RTM_WIRE_PEER_ID_RESERVED, NULL);

    if (rq->channels) {
        if (rq->n_channels > RTM_MAX_CHANNELS_PER_TOKEN)
            FAIL(RTM_WIRE_INVALID_REQUEST, "at most 100 channels");
        for (size_t i = 0; i < rq->n_channels; i++) {
            const char *ch = rq->channels[i];
            if (!ch || !rtm_channel_valid(ch))
                FAIL(RTM_WIRE_INVALID_REQUEST, "each channel must be 1 to 256 bytes without control characters");
            /* The broker refuses these names on every frame: a token for them
             * would only fail later, so the mint says it now. */
            if (rtm_channel_reserved(ch)) FAIL(RTM_WIRE_CHANNEL_RESERVED, NULL);
        }
        for (size_t i = 0; i < rq->n_channels; i++)
            if (!channels_inside_key(key, rq->channels[i]))
                FAIL(RTM_WIRE_CHANNEL_NOT_AUTHORIZED, "a requested channel lies outside the key's channels");
        c.channels = (char **)rq->channels;
        c.n_channels = rq->n_channels;
    } else {
        c.channels = key->channels;
        c.n_channels = key->n_channels;
    }

    if (rq->perms_set) {
        if (rq->perms & ~(unsigned)RTM_PERM_ALL) FAIL(RTM_WIRE_INVALID_REQUEST, "unknown permission");
        if (rq->perms & ~key->actions)
            FAIL(RTM_WIRE_ACTION_NOT_PERMITTED, "a requested permission lies outside the key's actions");
        c.perms = rq->perms;
    } else {
        c.perms = key->actions;
    }

    int64_t ttl = rq->expires_in ? rq->expires_in : pol->default_ttl;
    if (ttl < 1 || ttl > pol->max_ttl)
        FAIL(RTM_WIRE_INVALID_REQUEST, "expiresInSec must be between 1 and the maximum token lifetime");

    if (rq->metadata && !json_is_object(rq->metadata))
        FAIL(RTM_WIRE_INVALID_REQUEST, "metadata must be an object");
    if (rq->peer_metadata) {
        if (!json_is_object(rq->peer_metadata))
            FAIL(RTM_WIRE_INVALID_REQUEST, "peerMetadata must be an object");
        if (json_size(rq->peer_metadata) > RTM_MAX_PEER_METADATA)
            FAIL(RTM_WIRE_INVALID_REQUEST, "peerMetadata is over 4 KB");
    }

    if (pol->turn_secret && !(rq->metadata && json_object_get(rq->metadata, "iceServers"))) {
        int64_t turn_ttl = pol->turn_ttl > 0 ? pol->turn_ttl : ttl + 3600;
        json_t *ice = rtm_turn_ice_servers(pol->turn_secret, pol->turn_urls, pol->n_turn_urls,
                                           rq->peer_id, now + turn_ttl);
        meta = rq->metadata ? json_copy(rq->metadata) : json_object();
        if (!ice || !meta || json_object_set_new(meta, "iceServers", ice) != 0) {
            if (!meta) json_decref(ice);
            FAIL(RTM_WIRE_INTERNAL_ERROR, "could not mint a TURN credential");
        }
    } else {
        meta = rq->metadata ? json_incref(rq->metadata) : json_object();
        if (!meta) FAIL(RTM_WIRE_INTERNAL_ERROR, "out of memory");
    }
    /* Only caller-supplied metadata can be large; skip the count otherwise. */
    if (rq->metadata && json_size(meta) > RTM_MAX_METADATA)
        FAIL(RTM_WIRE_INVALID_REQUEST, "metadata is over 8 KB");

    if (random_jti(jti) != 0)
        FAIL(RTM_WIRE_INTERNAL_ERROR, "no randomness for the token id");

    c.sub = (char *)rq->peer_id;
    c.iat = now;
    c.exp = now + ttl;
    c.jti = jti;
    c.kid = (char *)key->id;
    c.metadata = meta;
    c.peer_metadata = rq->peer_metadata;
    /* bind: hashes under this token's jti, never the values (common/bind.h) */
    char ip[64], bip[RTM_BIND_HASH_LEN + 1], bua[RTM_BIND_HASH_LEN + 1];
    if (rq->bind_ip) {
        if (rtm_bind_ip_canonical(rq->bind_ip, ip, sizeof ip))
            FAIL(RTM_WIRE_INVALID_REQUEST, "bind.ip must be an IPv4 or IPv6 address");
        if (rtm_bind_hash("ip", jti, ip, bip, sizeof bip)) FAIL(RTM_WIRE_INTERNAL_ERROR, "could not hash bind.ip");
        c.bind_ip = bip;
    }
    if (rq->bind_ua) {
        size_t n = strlen(rq->bind_ua);
        if (n == 0 || n > RTM_BIND_UA_MAX) FAIL(RTM_WIRE_INVALID_REQUEST, "bind.userAgent must be 1 to 512 bytes");
        if (rtm_bind_hash("ua", jti, rq->bind_ua, bua, sizeof bua))
            FAIL(RTM_WIRE_INTERNAL_ERROR, "could not hash bind.userAgent");
        c.bind_ua = bua;
    }
    rc = sign_hs256(&c, key->secret, token);
    if (rc != 0) FAIL(RTM_WIRE_INTERNAL_ERROR, "could not sign the token");
    *expires_at = c.exp;
    json_decref(meta);
    return 0;

fail:
    json_decref(meta);
    return rc;
}

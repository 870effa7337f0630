/* token.c: rtm's JWTs on top of libjwt 1.10.2, with the checks it lacks.
 *
 * Design: a token is split and its header and payload parsed once, here
 * (libjwt's decode parsed the payload on each call, and its grants could
 * only be read back as text to parse again: three parses per connect). The
 * connect path opens a token once (rtm_token_open: split, header, kid),
 * looks its key up and verifies that same opened token; the metadata
 * claims are serialized once, and that one dump is both their size check
 * and the text the welcome and presence frames copy.
 * libjwt signs, and checks RS256/ES256 signatures; HS256, the common case
 * on the connect path, is checked with OpenSSL's HMAC (common/hs256.c, the
 * key's pads kept per thread) against the same signature text libjwt
 * compares. Everything that makes
 * a token trustworthy is decided here, in a fixed order: the key must be a
 * live key with a verifier (not publishable, not empty), the header's alg must
 * be exactly the key's (so "none" and HS256-keyed-with-an-RSA-PEM never reach
 * libjwt's keyed decode), then the signature, then every claim's JSON type and
 * bound (read through jansson, since jwt_get_grant_int cannot tell a string
 * from a number), then the time claims against the caller's clock and
 * policy (all of them here, nowhere else: exp, nbf, iat, lifetime, each
 * bounded to RTM_TIME_CLAIM_MAX so no caller's arithmetic can overflow),
 * then scope.
 * Absent channels/permissions mean the key's whole scope, as in the mint API;
 * absent metadata becomes {}. */
#include "token.h"

#include "bind.h"
#include "errors.h"
#include "hs256.h"
#include "pattern.h"
#include "protocol.h"
#include "store.h"
#include "util.h"
#include "json_dump.h"
#include "json_scan.h"

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A token longer than this is refused before any parsing: 8 KB metadata plus
 * 4 KB peerMetadata plus 100 channels of 256 bytes, base64-expanded, fits. */
#define TOKEN_MAX (64 * 1024)
#define JTI_MAX 79 /* fits rtm_session_row.jti */
#define KID_MAX 79 /* fits rtm_key.id */

void rtm_claims_free(struct rtm_claims *c)
{
    if (!c) return;
    free(c->sub);
    free(c->jti);
    free(c->kid);
    for (size_t i = 0; i < c->n_channels; i++) free(c->channels[i]);
    free(c->channels);
    json_decref(c->metadata);
    json_decref(c->peer_metadata);
    free(c->metadata_text);
    free(c->peer_metadata_text);
    free(c->bind_ip);
    free(c->bind_ua);
    memset(c, 0, sizeof *c);
}

static jwt_alg_t alg_from_name(const char *alg)
{
    if (!alg) return JWT_ALG_INVAL;
    if (strcmp(alg, "HS256") == 0) return JWT_ALG_HS256;
    if (strcmp(alg, "RS256") == 0) return JWT_ALG_RS256;
    if (strcmp(alg, "ES256") == 0) return JWT_ALG_ES256;
    return JWT_ALG_INVAL;
}

/* ---- signing ---- */

static json_t *claims_to_json(const struct rtm_claims *c)
{
    json_t *o = json_object(), *chans = json_array(), *perms = json_array();
    if (!o || !chans || !perms) goto fail;
    if (!c->sub || !c->jti) goto fail;
    for (size_t i = 0; i < c->n_channels; i++)
        if (!c->channels[i] || json_array_append_new(chans, json_string(c->channels[i]))) goto fail;
    for (unsigned bit = 1; bit <= RTM_PERM_SEND; bit <<= 1)
        if ((c->perms & bit) && json_array_append_new(perms, json_string(rtm_perm_name(bit)))) goto fail;
    if (json_object_set_new(o, "sub", json_string(c->sub)) ||
        json_object_set_new(o, "iat", json_integer(c->iat)) ||
        json_object_set_new(o, "exp", json_integer(c->exp)) ||
        json_object_set_new(o, "jti", json_string(c->jti)) || json_object_set_new(o, "channels", chans))
        goto fail_owned;
    chans = NULL;
    if (json_object_set_new(o, "permissions", perms)) goto fail_owned;
    perms = NULL;
    if (c->metadata && json_object_set(o, "metadata", c->metadata)) goto fail_owned;
    if (c->peer_metadata && json_object_set(o, "peerMetadata", c->peer_metadata)) goto fail_owned;
    if (rtm_bind_claim_add(o, c)) goto fail_owned;
    return o;
fail:
    json_decref(chans);
    json_decref(perms);
fail_owned:
    json_decref(o);
    return NULL;
}

int rtm_token_sign(const struct rtm_claims *c, const char *alg, const unsigned char *key, size_t keylen,
                   char **out)
{
    jwt_t *j = NULL;
    json_t *claims = NULL;
    char *body = NULL;
    int rc = RTM_EINVAL;
    jwt_alg_t a = alg_from_name(alg);

    *out = NULL;
    if (!c || a == JWT_ALG_INVAL || !key || keylen == 0 || keylen > INT32_MAX) return RTM_EINVAL;
    if (!c->kid || !*c->kid) return RTM_EINVAL;
    if (!(claims = claims_to_json(c))) return RTM_EINVAL;
    rc = RTM_ENOMEM;
    if (!(body = rtm_json_dumps(claims, JSON_COMPACT))) goto fail;
    if (jwt_new(&j)) goto fail;
    rc = RTM_EINVAL;
    if (jwt_add_header(j, "kid", c->kid) || jwt_add_grants_json(j, body)) goto fail;
    rc = RTM_ECRYPTO;
    if (jwt_set_alg(j, a, key, (int)keylen)) goto fail;
    /* libjwt allocates with malloc (no custom allocator is installed). */
    if (!(*out = jwt_encode_str(j))) goto fail;
    rc = 0;
fail:
    jwt_free(j);
    free(body);
    json_decref(claims);
    return rc;
}

/* ---- verification ---- */

/* base64url digit values plus one; 0: not a digit. A table, since every
 * byte of a token goes through it three times on a connect (the kid peek's
 * shape check, verify's, the payload's decode). */
static const unsigned char B64URL[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

static int b64url_value(char ch) { return B64URL[(unsigned char)ch] - 1; }

/* Decodes base64url without padding, s[0..len), into out (room for
 * len * 3 / 4 bytes), four characters at a time; unused trailing bits are
 * ignored (a lone last character decodes to nothing). Its length, or -1
 * when a character is outside the alphabet. */
static long b64url_decode(const char *s, size_t len, unsigned char *out)
{
    size_t i = 0, n = 0;
    for (; i + 4 <= len; i += 4) {
        int a = b64url_value(s[i]), b = b64url_value(s[i + 1]), c = b64url_value(s[i + 2]),
            d = b64url_value(s[i + 3]);
        if ((a | b | c | d) < 0) return -1;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        out[n++] = (unsigned char)(v >> 16);
        out[n++] = (unsigned char)(v >> 8);
        out[n++] = (unsigned char)v;
    }
    unsigned acc = 0, bits = 0;
    for (; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0) return -1;
        acc = (acc << 6 | (unsigned)v) & 0xfffu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)n;
}

/* 1 when every character of s[0..len) is base64url. */
static int b64url_only(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b64url_value(s[i]) < 0) return 0;
    return 1;
}

/* The last header this thread parsed, kept parsed: a key's tokens carry
 * the same header byte for byte, and jansson took ~13k instructions for its
 * 60 bytes. Per thread (thread-specific data, freed at the thread's exit),
 * so no lock; the tree is only read. */
#define HEAD_CACHE_MAX 256
struct head_cache {
    size_t len;
    unsigned char text[HEAD_CACHE_MAX];
    json_t *head;
};
static pthread_key_t head_key;
static pthread_once_t head_once = PTHREAD_ONCE_INIT;
static int head_key_ready;

static void head_cache_free(void *p)
{
    struct head_cache *c = p;
    json_decref(c->head);
    free(c);
}

static void head_key_init(void) { head_key_ready = pthread_key_create(&head_key, head_cache_free) == 0; }

/* The decoded header text parsed (a new reference), or NULL when not JSON.
 * Flags 0 as libjwt's own decode: an object or an array at the top, a
 * repeated member keeps its last value. */
static json_t *head_parse(const unsigned char *text, size_t len)
{
    pthread_once(&head_once, head_key_init);
    struct head_cache *c = head_key_ready ? pthread_getspecific(head_key) : NULL;
    if (c && c->head && c->len == len && memcmp(c->text, text, len) == 0) return json_incref(c->head);
    json_t *head = json_loadb((const char *)text, len, 0, NULL);
    if (!head || len > HEAD_CACHE_MAX || !head_key_ready) return head;
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return head;
        if (pthread_setspecific(head_key, c)) {
            free(c);
            return head;
        }
    }
    json_decref(c->head);
    memcpy(c->text, text, len);
    c->len = len;
    c->head = json_incref(head);
    return head;
}

/* Splits the token and decodes its header and payload once (both kept
 * decoded), and parses the header, refusing what libjwt 1.10.2's decode
 * refuses there (not JSON, an alg it does not know, a typ other than JWT
 * beside a real alg), so moving the header off libjwt changes no answer.
 * The shape is checked before anything reaches libjwt: three base64url
 * segments, header and payload not empty (libjwt 1.10.2 writes one byte
 * past a zero-size buffer when it decodes an empty segment: seen under
 * valgrind with ".." and "h.."), at most TOKEN_MAX bytes. The signature may
 * be empty here (the keyed decode is guarded in rtm_token_verify_opened).
 * The header and payload must not decode to a NUL byte: libjwt reads them
 * as C strings, so it would verify the signature over every byte and then
 * parse only the JSON before the NUL, accepting a signed payload that is
 * not valid JSON, which other verifiers refuse (found by tests/fuzz). */
int rtm_token_open(const char *token, struct rtm_jws *w)
{
    memset(w, 0, sizeof *w);
    if (!token) return RTM_EINVAL;
    size_t len = strnlen(token, TOKEN_MAX + 1);
    const char *d1 = memchr(token, '.', len), *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (len > TOKEN_MAX || !d2 || d1 == token || d2 == d1 + 1) return RTM_EINVAL;
    size_t hlen = (size_t)(d1 - token);
    w->token = token;
    w->payload = d1 + 1;
    w->payload_len = (size_t)(d2 - w->payload);
    w->signed_len = (size_t)(d2 - token);
    w->sig = d2 + 1;
    /* A third dot is outside the alphabet: refused with the signature's check. */
    if (!b64url_only(w->sig, len - (size_t)(w->sig - token))) return RTM_EINVAL;
    unsigned char *hbuf = malloc(hlen * 3 / 4 + 1), *pbuf = malloc(w->payload_len * 3 / 4 + 1);
    long hn = hbuf ? b64url_decode(token, hlen, hbuf) : -1;
    long pn = pbuf ? b64url_decode(w->payload, w->payload_len, pbuf) : -1;
    if (hn < 0 || pn < 0 || memchr(hbuf, 0, (size_t)hn) || memchr(pbuf, 0, (size_t)pn)) goto fail;
    if (!(w->head = head_parse(hbuf, (size_t)hn))) goto fail;
    free(hbuf);
    hbuf = NULL;
    w->payload_text = (char *)pbuf;
    w->payload_text_len = (size_t)pn;
    pbuf = NULL;
    const char *alg = json_string_value(json_object_get(w->head, "alg"));
    const char *typ = json_string_value(json_object_get(w->head, "typ"));
    if (!alg || jwt_str_alg(alg) == JWT_ALG_INVAL ||
        (jwt_str_alg(alg) != JWT_ALG_NONE && typ && strcasecmp(typ, "JWT") != 0))
        goto fail;
    w->kid = json_string_value(json_object_get(w->head, "kid"));
    return 0;
fail:
    free(hbuf);
    free(pbuf);
    rtm_token_close(w);
    return RTM_EINVAL;
}

void rtm_token_close(struct rtm_jws *w)
{
    json_decref(w->head);
    free(w->payload_text);
    memset(w, 0, sizeof *w);
}

int rtm_token_kid_ok(const struct rtm_jws *w)
{
    size_t n = w->kid ? strlen(w->kid) : 0;
    return n > 0 && n <= KID_MAX;
}

int rtm_token_peek_kid(const char *token, char *kid, size_t kidlen, const char **reason)
{
    struct rtm_jws w;
    if (rtm_token_open(token, &w)) {
        *reason = "malformed token";
        return RTM_EINVAL;
    }
    if (!rtm_token_kid_ok(&w) || strlen(w.kid) >= kidlen) {
        rtm_token_close(&w);
        *reason = "missing kid";
        return RTM_EINVAL;
    }
    memcpy(kid, w.kid, strlen(w.kid) + 1);
    rtm_token_close(&w);
    return 0;
}

/* HS256 without libjwt's second parse of the payload: the HMAC of
 * "header.payload", base64url without padding, compared in constant time
 * with the token's signature text (libjwt compares the same text, so a
 * signature that differs only in unused trailing bits is refused as there). */
static int hs256_ok(const struct rtm_jws *w, const char *secret)
{
    unsigned char mac[RTM_HS256_LEN];
    char enc[64];
    int n;
    if (rtm_hs256(secret, (const unsigned char *)w->token, w->signed_len, mac)) return 0;
    if ((n = rtm_base64url(mac, sizeof mac, enc, sizeof enc)) < 0) return 0;
    return strlen(w->sig) == (size_t)n && CRYPTO_memcmp(enc, w->sig, (size_t)n) == 0;
}

/* Each check_* returns NULL when fine, or the "invalid claims: <what>" reason. */

static const char *check_string(json_t *v, size_t max, int required, const char *what)
{
    if (!v) return required ? what : NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) return what;
    /* An embedded NUL would make the C string differ from the signed one. */
    if (strlen(json_string_value(v)) != json_string_length(v)) return what;
    return NULL;
}

/* The members of every object in v, nested ones included. */
static size_t members_in(json_t *v)
{
    size_t n = 0, i;
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) n += 1 + members_in(x);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) n += members_in(x);
    }
    return n;
}

/* 1 when raw, the text jansson parsed as v, is already exactly what its
 * compact dump of v writes: no whitespace, no escapes (a string without
 * one is written back byte for byte), integers only (a real is rewritten
 * with %.17g; -0 as 0), and no repeated member anywhere (one ':' per member
 * of the parsed tree: a repeat keeps one value). */
static int canonical(const char *raw, size_t n, json_t *v)
{
    size_t colons = 0;
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (c == '"') {
            for (i++; i < n && raw[i] != '"'; i++)
                if (raw[i] == '\\') return 0;
        } else if (c == ':') {
            colons++;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '.' || c == '+' || c == 'E' ||
                   (c == 'e' && i > 0 && raw[i - 1] >= '0' && raw[i - 1] <= '9') ||
                   (c == '-' && i + 1 < n && raw[i + 1] == '0')) {
            return 0;
        }
    }
    return colons == members_in(v);
}

/* The payload's own texts of the metadata claims (md, pmd as parsed), in
 * one scan: each kept (raw[i].p set) only when canonical and when the
 * payload repeats no top-level claim (then a repeat of an escaped spelling
 * cannot hide either). raw[0] is metadata, raw[1] peerMetadata. */
static void canonical_claims(const struct rtm_jws *w, json_t *g, json_t *md, json_t *pmd,
                             struct rtm_json_span raw[2])
{
    static const char *const names[2] = {"metadata", "peerMetadata"};
    size_t members;
    if ((!md && !pmd) || !w->payload_text ||
        rtm_json_raw_members(w->payload_text, w->payload_text_len, names, 2, raw, &members) ||
        members != json_object_size(g)) {
        raw[0].p = raw[1].p = NULL;
        return;
    }
    if (raw[0].p && (!md || !canonical(raw[0].p, raw[0].n, md))) raw[0].p = NULL;
    if (raw[1].p && (!pmd || !canonical(raw[1].p, raw[1].n, pmd))) raw[1].p = NULL;
}

/* An object claim's compact text, at most bufsize - 1 bytes: the payload's
 * own bytes when canonical_claim found them (nothing dumped: the welcome
 * then copies the token's text), else one dump into buf, which is both the
 * size check and the text (a separate measuring dump cost as much).
 * NULL when fine (*text, *n: 0 when absent), or the reason. */
static const char *object_text(json_t *v, const char *raw, size_t rawn, char *buf, size_t bufsize, const char **text,
                               size_t *n, const char *what)
{
    *n = 0;
    *text = NULL;
    if (!v) return NULL;
    if (!json_is_object(v)) return what;
    if (raw) {
        *text = raw;
        *n = rawn;
        return rawn >= bufsize ? what : NULL;
    }
    /* Over bufsize - 1 the dump is cut short but still measured; 0 only
     * when out of memory, a refusal as before. */
    *n = json_dumpb(v, buf, bufsize, JSON_COMPACT);
    *text = buf;
    return *n == 0 || *n >= bufsize ? what : NULL;
}

static char *text_dup(const char *buf, size_t n)
{
    char *t = malloc(n + 1);
    if (!t) return NULL;
    memcpy(t, buf, n);
    t[n] = '\0';
    return t;
}

static int dup_channels(struct rtm_claims *out, char *const *src, size_t n)
{
    out->channels = calloc(n ? n : 1, sizeof *out->channels);
    if (!out->channels) return RTM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(out->channels[i] = strdup(src[i]))) return RTM_ENOMEM;
        out->n_channels = i + 1;
    }
    return 0;
}

static int time_claim_ok(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= RTM_TIME_CLAIM_MAX;
}

/* The registered time claims (RFC 7519 4.1.4-4.1.6) against now: 0, or a
 * negative rtm_err with the close reason. Types and bounds were checked. */
static int check_times(json_t *iat, json_t *exp, json_t *nbf, const struct rtm_token_policy *pol,
                       const char **reason)
{
    int64_t now = pol->now, leeway = pol->clock_leeway_s > 0 ? pol->clock_leeway_s : 0;
    int64_t i = json_integer_value(iat), e = json_integer_value(exp);
    if (e <= now) {
        *reason = "token expired";
        return RTM_EDENIED;
    }
    /* A token from the future: the signer's clock is off, or it was made to
     * be used later. Either way not yet. */
    if ((nbf && json_integer_value(nbf) > now + leeway) || i > now + leeway) {
        *reason = "token not yet valid";
        return RTM_EDENIED;
    }
    if (pol->max_lifetime_s > 0 && e - i > pol->max_lifetime_s) {
        *reason = "token lifetime too long";
        return RTM_EDENIED;
    }
    return 0;
}

/* Type-checks the claims and fills out. Scope is checked by the caller. */
static int read_claims(const struct rtm_jws *w, json_t *g, const struct rtm_key *key,
                       const struct rtm_token_policy *pol, struct rtm_claims *out, const char **reason)
{
    json_t *sub = json_object_get(g, "sub"), *iat = json_object_get(g, "iat"),
           *exp = json_object_get(g, "exp"), *nbf = json_object_get(g, "nbf"), *jti = json_object_get(g, "jti"),
           *chans = json_object_get(g, "channels"), *perms = json_object_get(g, "permissions"),
           *md = json_object_get(g, "metadata"), *pmd = json_object_get(g, "peerMetadata"),
           *bind = json_object_get(g, "bind");
    const char *bad = NULL;
    char md_buf[RTM_MAX_METADATA + 1], pmd_buf[RTM_MAX_PEER_METADATA + 1];
    size_t md_n = 0, pmd_n = 0;
    struct rtm_json_span raw[2] = {{NULL, 0}, {NULL, 0}};
    const char *md_text = NULL, *pmd_text = NULL;

    if (!json_is_string(sub) || strlen(json_string_value(sub)) != json_string_length(sub) ||
        !rtm_peer_id_valid(json_string_value(sub)))
        bad = "invalid claims: sub";
    else if (rtm_peer_id_reserved(json_string_value(sub)))
        bad = "reserved peerId";
    else if (!time_claim_ok(iat))
        bad = "invalid claims: iat";
    else if (!time_claim_ok(exp) || json_integer_value(exp) < json_integer_value(iat))
        bad = "invalid claims: exp";
    else if (nbf && !time_claim_ok(nbf))
        bad = "invalid claims: nbf";
    else if (chans && (!json_is_array(chans) || json_array_size(chans) > RTM_MAX_CHANNELS_PER_TOKEN))
        bad = "invalid claims: channels";
    else if (perms && !json_is_array(perms))
        bad = "invalid claims: permissions";
    if (!bad) bad = check_string(jti, JTI_MAX, 1, "invalid claims: jti");
    if (!bad) canonical_claims(w, g, md, pmd, raw);
    if (!bad)
        bad = object_text(md, raw[0].p, raw[0].n, md_buf, sizeof md_buf, &md_text, &md_n, "invalid claims: metadata");
    if (!bad)
        bad = object_text(pmd, raw[1].p, raw[1].n, pmd_buf, sizeof pmd_buf, &pmd_text, &pmd_n,
                          "invalid claims: peerMetadata");
    if (!bad && bind && rtm_bind_claim_valid(bind)) bad = "invalid claims: bind";
    if (!bad && chans) {
        size_t i;
        json_t *v;
        json_array_foreach(chans, i, v) {
            if (check_string(v, RTM_MAX_CHANNEL, 1, "x") || !rtm_channel_valid(json_string_value(v))) {
                bad = "invalid claims: channels";
                break;
            }
        }
    }
    out->perms = 0;
    if (!bad && perms) {
        size_t i;
        json_t *v;
        json_array_foreach(perms, i, v) {
            unsigned bit = json_is_string(v) ? rtm_perm_parse(json_string_value(v)) : 0;
            if (!bit) {
                bad = "invalid claims: permissions";
                break;
            }
            out->perms |= bit;
        }
    }
    if (bad) {
        *reason = bad;
        return RTM_EINVAL;
    }
    int rc = check_times(iat, exp, nbf, pol, reason);
    if (rc) return rc;

    *reason = "internal error";
    out->iat = json_integer_value(iat);
    out->exp = json_integer_value(exp);
    if (!(out->sub = strdup(json_string_value(sub))) || !(out->jti = strdup(json_string_value(jti))))
        return RTM_ENOMEM;
    if (chans) {
        size_t n = json_array_size(chans);
        out->channels = calloc(n ? n : 1, sizeof *out->channels);
        if (!out->channels) return RTM_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            if (!(out->channels[i] = strdup(json_string_value(json_array_get(chans, i)))))
                return RTM_ENOMEM;
            out->n_channels = i + 1;
        }
    } else if (dup_channels(out, key->channels, key->n_channels)) {
        return RTM_ENOMEM;
    }
    if (!perms) out->perms = key->actions;
    out->metadata = md ? json_incref(md) : json_object();
    out->peer_metadata = pmd ? json_incref(pmd) : NULL;
    out->metadata_text = md ? text_dup(md_text, md_n) : text_dup("{}", 2);
    out->peer_metadata_text = pmd ? text_dup(pmd_text, pmd_n) : NULL;
    if (!out->metadata || !out->metadata_text || (pmd && !out->peer_metadata_text)) return RTM_ENOMEM;
    if (bind && rtm_bind_claim_read(bind, out)) return RTM_ENOMEM;
    return 0;
}

static int within_key(const struct rtm_claims *c, const struct rtm_key *key, const char **reason)
{
    for (size_t i = 0; i < c->n_channels; i++) {
        int ok = 0;
        for (size_t k = 0; k < key->n_channels && !ok; k++) ok = rtm_pattern_within(c->channels[i], key->channels[k]);
        if (!ok) {
            *reason = "channels outside key scope";
            return RTM_EDENIED;
        }
    }
    if (c->perms & ~key->actions) {
        *reason = "permissions outside key scope";
        return RTM_EDENIED;
    }
    return 0;
}

int rtm_token_verify(const char *token, const struct rtm_key *key, int64_t now, struct rtm_claims *out,
                     const char **reason)
{
    struct rtm_token_policy pol = {.now = now, .clock_leeway_s = RTM_CLOCK_LEEWAY_DEFAULT, .max_lifetime_s = 0};
    return rtm_token_verify_policy(token, key, &pol, out, reason);
}

/* What every verification checks of the key first: 0 with the algorithm it
 * pins, or the refusal. */
static int key_usable(const struct rtm_key *key, jwt_alg_t *want, const char **reason)
{
    if (!key || key->publishable || !key->secret || !*key->secret) {
        *reason = "unknown key";
        return RTM_ENOTFOUND;
    }
    if (key->revoked) {
        *reason = "key revoked";
        return RTM_EDENIED;
    }
    *want = alg_from_name(key->alg);
    if (*want == JWT_ALG_INVAL) {
        *reason = "unknown key";
        return RTM_ENOTFOUND;
    }
    return 0;
}

int rtm_token_verify_opened(const struct rtm_jws *w, const struct rtm_key *key, const struct rtm_token_policy *pol,
                            struct rtm_claims *out, const char **reason)
{
    jwt_t *j = NULL;
    json_t *g = NULL;
    int rc;
    jwt_alg_t want;

    memset(out, 0, sizeof *out);
    if ((rc = key_usable(key, &want, reason))) return rc;

    rc = RTM_EINVAL;
    *reason = "malformed token";
    if (!w->head) goto fail;
    /* The payload is parsed once, here, before any key is used (a payload
     * that is not JSON is malformed, as libjwt's unkeyed decode said). */
    if (!(g = json_loadb(w->payload_text, w->payload_text_len, 0, NULL))) goto fail;
    /* The header's own alg string, pinned to the key before any keyed check. */
    const char *alg = json_string_value(json_object_get(w->head, "alg"));
    if (!alg || strcmp(alg, key->alg) != 0) {
        *reason = "algorithm not allowed";
        goto fail;
    }
    if (!rtm_token_kid_ok(w)) {
        *reason = "missing kid";
        goto fail;
    }
    if (strcmp(w->kid, key->id) != 0) {
        *reason = "unknown key";
        goto fail;
    }

    /* libjwt 1.10.2 base64-decodes an RS/ES signature into malloc(0) and
     * writes its terminating NUL there (a heap overflow before any check):
     * an empty signature never reaches the keyed decode. It could not
     * verify anyway. */
    rc = RTM_EDENIED;
    *reason = "bad signature";
    if (!w->sig[0]) goto fail;
    if (want == JWT_ALG_HS256) {
        if (!hs256_ok(w, key->secret)) goto fail;
    } else {
        /* RS256/ES256: libjwt checks the signature (and parses the payload
         * again on the way; these keys are the rare case). */
        if (jwt_decode(&j, w->token, (const unsigned char *)key->secret, (int)strlen(key->secret)) || !j) goto fail;
        if (jwt_get_alg(j) != want) {
            rc = RTM_EINVAL;
            *reason = "algorithm not allowed";
            goto fail;
        }
    }
    rc = RTM_EINVAL;
    if (!json_is_object(g)) {
        *reason = "invalid claims: payload";
        goto fail;
    }
    if ((rc = read_claims(w, g, key, pol, out, reason))) goto fail;
    if ((rc = within_key(out, key, reason))) goto fail;
    if (!(out->kid = strdup(w->kid))) {
        *reason = "internal error";
        rc = RTM_ENOMEM;
        goto fail;
    }
    rc = 0;
    *reason = NULL;
    goto done;
fail:
    rtm_claims_free(out);
done:
    json_decref(g);
    jwt_free(j);
    return rc;
}

int rtm_token_verify_policy(const char *token, const struct rtm_key *key, const struct rtm_token_policy *pol,
                            struct rtm_claims *out, const char **reason)
{
    struct rtm_jws w;
    jwt_alg_t want;
    int rc;
    memset(out, 0, sizeof *out);
    /* The key first, as before the token is looked at (an unknown key is
     * "unknown key" whatever the token holds). */
    if ((rc = key_usable(key, &want, reason))) return rc;
    if (rtm_token_open(token, &w)) {
        *reason = "malformed token";
        return RTM_EINVAL;
    }
    rc = rtm_token_verify_opened(&w, key, pol, out, reason);
    rtm_token_close(&w);
    return rc;
}

/* ---- JWK ---- */

static int set_b64url(json_t *o, const char *name, const unsigned char *buf, size_t n)
{
    char enc[1400]; /* 1024-byte (8192-bit) modulus at most */
    if (rtm_base64url(buf, n, enc, sizeof enc) < 0) return RTM_ELIMIT;
    return json_object_set_new(o, name, json_string(enc)) ? RTM_ENOMEM : 0;
}

static int set_bn(json_t *o, const EVP_PKEY *pk, const char *param, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int rc = RTM_ECRYPTO, n;
    if (!EVP_PKEY_get_bn_param(pk, param, &bn)) goto fail;
    if (pad) n = BN_bn2binpad(bn, buf, pad);
    else n = BN_num_bytes(bn) <= (int)sizeof buf ? BN_bn2bin(bn, buf) : -1;
    if (n <= 0) goto fail;
    rc = set_b64url(o, name, buf, (size_t)n);
fail:
    BN_free(bn);
    return rc;
}

int rtm_jwk_from_pem(const char *pem, const char *kid, const char *alg, json_t **out)
{
    BIO *bio = NULL;
    EVP_PKEY *pk = NULL;
    json_t *o = NULL;
    int rc = RTM_EINVAL;
    jwt_alg_t a = alg_from_name(alg);

    *out = NULL;
    if (!pem || !kid || !*kid || (a != JWT_ALG_RS256 && a != JWT_ALG_ES256)) return RTM_EINVAL;
    if (!(bio = BIO_new_mem_buf(pem, -1))) return RTM_ENOMEM;
    if (!(pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL))) goto fail;
    rc = RTM_ENOMEM;
    if (!(o = json_pack("{s:s,s:s,s:s}", "kid", kid, "alg", alg, "use", "sig"))) goto fail;
    rc = RTM_EINVAL;
    if (a == JWT_ALG_RS256) {
        if (!EVP_PKEY_is_a(pk, "RSA")) goto fail;
        if (json_object_set_new(o, "kty", json_string("RSA"))) goto fail;
        if ((rc = set_bn(o, pk, OSSL_PKEY_PARAM_RSA_N, "n", 0)) || (rc = set_bn(o, pk, OSSL_PKEY_PARAM_RSA_E, "e", 0)))
            goto fail;
    } else {
        char group[64];
        size_t glen = 0;
        if (!EVP_PKEY_is_a(pk, "EC")) goto fail;
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) ||
            strcmp(group, "prime256v1") != 0)
            goto fail;
        if (json_object_set_new(o, "kty", json_string("EC")) || json_object_set_new(o, "crv", json_string("P-256")))
            goto fail;
        if ((rc = set_bn(o, pk, OSSL_PKEY_PARAM_EC_PUB_X, "x", 32)) ||
            (rc = set_bn(o, pk, OSSL_PKEY_PARAM_EC_PUB_Y, "y", 32)))
            goto fail;
    }
    *out = o;
    o = NULL;
    rc = 0;
fail:
    json_decref(o);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rc;
}

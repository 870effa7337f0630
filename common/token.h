/* token.h: rtm's JWTs: sign and verify with the algorithm pinned to the key.
 *
 * Claims: sub (peerId), iat, exp, jti, channels, permissions, metadata,
 * peerMetadata; header kid = the key's id. HS256 for secret keys; RS256 and
 * ES256 when a public key is registered under a kid (the private key stays
 * with whoever mints). libjwt 1.10 checks neither exp nor the algorithm nor
 * claim types, so this module does all three itself (see PLATFORM-NOTES). */
#ifndef RTM_TOKEN_H
#define RTM_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct rtm_key;

/* The largest time claim (exp, iat, nbf) accepted: 9999-12-31T23:59:59Z.
 * A claim above it is "invalid claims: <name>", so exp * 1000 * 1000 (the
 * broker's timers work in microseconds) stays far inside int64_t. */
#define RTM_TIME_CLAIM_MAX 253402300799LL
/* Clock skew tolerated for nbf and iat (setting clock-leeway-seconds). */
#define RTM_CLOCK_LEEWAY_DEFAULT 5

/* What a verifier decides beyond the signature: its clock and its limits. */
struct rtm_token_policy {
    int64_t now;        /* unix s */
    int clock_leeway_s; /* nbf and iat may be this far ahead of now */
    int max_lifetime_s; /* exp - iat above this is refused; 0 = no limit */
};

struct rtm_claims {
    char *sub;            /* peerId */
    int64_t iat, exp;     /* unix s */
    char *jti;
    char *kid;            /* from the header */
    char **channels;      /* patterns */
    size_t n_channels;
    unsigned perms;       /* RTM_PERM_* */
    json_t *metadata;      /* object, owned reference; never NULL after verify (may be {}) */
    json_t *peer_metadata; /* object, owned reference; may be NULL */
    /* The two serialized (compact), as verify measured them: owned, NUL-ended,
     * for frames to copy without another dump. Set by verify (metadata_text
     * "{}" when absent); NULL otherwise (the broker drops them once used). */
    char *metadata_text, *peer_metadata_text;
    char *bind_ip, *bind_ua; /* claim "bind" (common/bind.h): hashes, owned; NULL = not bound */
};
void rtm_claims_free(struct rtm_claims *c);

/* Signs claims into a compact JWT. alg: "HS256" (key = secret bytes),
 * "RS256"/"ES256" (key = private key PEM). c->kid goes into the header.
 * *out is malloc'd; caller frees. Returns 0 or a negative rtm_err. */
int rtm_token_sign(const struct rtm_claims *c, const char *alg, const unsigned char *key, size_t keylen,
                   char **out);

/* A token split at its dots with its header parsed: nothing verified. The
 * connect path opens a token once, looks its key up by kid, and verifies
 * the same opened token (a second scan and header parse cost ~30k
 * instructions per connect). Pointers borrow the token's text. */
struct rtm_jws {
    const char *token;
    json_t *head;                   /* owned */
    const char *kid;                /* inside head; NULL when absent or not a string */
    const char *payload, *sig;      /* segments inside the token */
    size_t signed_len, payload_len; /* "header.payload", and the payload alone */
    char *payload_text;             /* the payload decoded (owned), parsed by verify */
    size_t payload_text_len;
};
/* 0, or RTM_EINVAL ("malformed token": not three base64url segments within
 * 64 KB, or a header libjwt would refuse). Release with rtm_token_close. */
int rtm_token_open(const char *token, struct rtm_jws *w);
void rtm_token_close(struct rtm_jws *w);
/* 1 when the opened token's kid is 1..79 bytes (else "missing kid"). */
int rtm_token_kid_ok(const struct rtm_jws *w);

/* Reads the header's kid without verifying anything (only to look the key up).
 * Returns 0, or RTM_EINVAL with *reason set ("malformed token", "missing kid"). */
int rtm_token_peek_kid(const char *token, char *kid, size_t kidlen, const char **reason);

/* Verifies token against key (looked up by kid): key must be a live secret key
 * whose alg matches the header's, signature valid (never empty), exp > now,
 * nbf and iat no later than now + leeway, exp - iat within the policy's
 * max lifetime, time claims in 0..RTM_TIME_CLAIM_MAX, claims well-typed
 * and within bounds, channels inside the key's patterns, permissions inside the
 * key's actions. On success fills *out (caller frees with rtm_claims_free).
 * On failure returns a negative rtm_err and a static reason suitable for a close
 * frame: "token expired", "token not yet valid", "token lifetime too long",
 * "bad signature", "unknown key", "key revoked",
 * "algorithm not allowed", "malformed token", "invalid claims: <what>",
 * "reserved peerId" (a sub beginning with '_'),
 * "channels outside key scope", "permissions outside key scope".
 * Absent "channels"/"permissions" claims mean the key's whole scope (as the
 * mint API's defaults); "jti" is required (1..79 bytes). Tokens over 64 KB or
 * not shaped as three base64url segments are "malformed token" before libjwt
 * sees them. Thread-safe: no shared state. */
int rtm_token_verify_policy(const char *token, const struct rtm_key *key, const struct rtm_token_policy *pol,
                            struct rtm_claims *out, const char **reason);
/* rtm_token_verify_policy for a token already opened (w->head set): the
 * same checks and reasons after the key's, in the same order. */
int rtm_token_verify_opened(const struct rtm_jws *w, const struct rtm_key *key, const struct rtm_token_policy *pol,
                            struct rtm_claims *out, const char **reason);
/* The same with the default policy: RTM_CLOCK_LEEWAY_DEFAULT, no lifetime limit. */
int rtm_token_verify(const char *token, const struct rtm_key *key, int64_t now, struct rtm_claims *out,
                     const char **reason);

/* Builds a JWK (RFC 7517) from a public key PEM: {kty, kid, alg, use:"sig", n/e or crv/x/y}. */
int rtm_jwk_from_pem(const char *pem, const char *kid, const char *alg, json_t **out);

#endif

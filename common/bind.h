/* bind.h: binding a token to its client (issue 10): the mint API's optional
 * bind {ip, userAgent} goes into the token as hashes, never in clear, and the
 * broker refuses a bound token presented from another address or user agent.
 *
 * The claim is "bind": {"ip": H, "ua": H} with H = base64url(SHA-256(kind
 * 0x1f jti 0x1f value)): the token's own random jti salts it, so equal
 * addresses give different hashes in different tokens. It hides the value
 * from whoever reads a token (logs, proxies, token inspectors); an IPv4
 * address is still a small space for someone set on guessing it. */
#ifndef RTM_BIND_H
#define RTM_BIND_H

#include <jansson.h>
#include <stddef.h>

#define RTM_BIND_HASH_LEN 43 /* base64url of 32 bytes, no padding */
#define RTM_BIND_UA_MAX 512

struct rtm_claims;

/* The hash of value for kind ("ip" or "ua") under jti into out (at least
 * RTM_BIND_HASH_LEN + 1 bytes). 0 or RTM_EINVAL. */
int rtm_bind_hash(const char *kind, const char *jti, const char *value, char *out, size_t outlen);
/* An IP address in its canonical text form (an IPv4-mapped IPv6 address as
 * IPv4), so the mint's and the broker's spellings agree. 0 or RTM_EINVAL. */
int rtm_bind_ip_canonical(const char *in, char *out, size_t outlen);
/* The "bind" claim: adds it to a token's claims object when c binds
 * anything (0 or -1 on ENOMEM); checks its shape (0 when valid: an object
 * with "ip" and/or "ua", each a hash); copies it into c (0 or RTM_ENOMEM). */
int rtm_bind_claim_add(json_t *claims, const struct rtm_claims *c);
int rtm_bind_claim_valid(const json_t *bind);
int rtm_bind_claim_read(const json_t *bind, struct rtm_claims *c);
/* 1 when the claims bind nothing, or every bound value matches the client
 * (remote address, User-Agent header; either may be NULL: no match). */
int rtm_bind_matches(const struct rtm_claims *c, const char *remote_ip, const char *user_agent);

#endif

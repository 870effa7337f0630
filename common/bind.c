/* bind.c: token binding hashes (see bind.h). */
#include "bind.h"

#include "errors.h"
#include "token.h"

#include <jansson.h>
#include "util.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <string.h>

int rtm_bind_hash(const char *kind, const char *jti, const char *value, char *out, size_t outlen)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, kind, strlen(kind)) &&
             EVP_DigestUpdate(ctx, "\x1f", 1) && EVP_DigestUpdate(ctx, jti, strlen(jti)) &&
             EVP_DigestUpdate(ctx, "\x1f", 1) && EVP_DigestUpdate(ctx, value, strlen(value)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == sizeof md;
    EVP_MD_CTX_free(ctx);
    char enc[48]; /* room for the padded form rtm_base64url starts from */
    if (!ok || outlen < RTM_BIND_HASH_LEN + 1 || rtm_base64url(md, sizeof md, enc, sizeof enc) != RTM_BIND_HASH_LEN)
        return RTM_EINVAL;
    memcpy(out, enc, RTM_BIND_HASH_LEN + 1);
    return 0;
}

int rtm_bind_ip_canonical(const char *in, char *out, size_t outlen)
{
    unsigned char a[16];
    if (!in) return RTM_EINVAL;
    if (inet_pton(AF_INET, in, a) == 1) return inet_ntop(AF_INET, a, out, (socklen_t)outlen) ? 0 : RTM_EINVAL;
    if (inet_pton(AF_INET6, in, a) != 1) return RTM_EINVAL;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, mapped, sizeof mapped)) return inet_ntop(AF_INET, a + 12, out, (socklen_t)outlen) ? 0 : RTM_EINVAL;
    return inet_ntop(AF_INET6, a, out, (socklen_t)outlen) ? 0 : RTM_EINVAL;
}

static int one_matches(const char *want, const char *kind, const char *jti, const char *value)
{
    char h[RTM_BIND_HASH_LEN + 1];
    if (!want) return 1;
    if (!value || rtm_bind_hash(kind, jti, value, h, sizeof h)) return 0;
    return rtm_streq_ct(h, want);
}

int rtm_bind_matches(const struct rtm_claims *c, const char *remote_ip, const char *user_agent)
{
    char ip[64];
    const char *canon = remote_ip && !rtm_bind_ip_canonical(remote_ip, ip, sizeof ip) ? ip : NULL;
    return one_matches(c->bind_ip, "ip", c->jti, canon) && one_matches(c->bind_ua, "ua", c->jti, user_agent);
}

int rtm_bind_claim_add(json_t *claims, const struct rtm_claims *c)
{
    if (!c->bind_ip && !c->bind_ua) return 0;
    json_t *b = json_object();
    if (!b || (c->bind_ip && json_object_set_new(b, "ip", json_string(c->bind_ip))) ||
        (c->bind_ua && json_object_set_new(b, "ua", json_string(c->bind_ua)))) {
        json_decref(b);
        return -1;
    }
    return json_object_set_new(claims, "bind", b) ? -1 : 0;
}

static int hash_ok(const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != RTM_BIND_HASH_LEN || json_string_length(v) != RTM_BIND_HASH_LEN) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return 0;
    return 1;
}

int rtm_bind_claim_valid(const json_t *bind)
{
    if (!json_is_object(bind) || json_object_size(bind) == 0) return RTM_EINVAL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)bind, k, v) {
        if ((strcmp(k, "ip") && strcmp(k, "ua")) || !hash_ok(v)) return RTM_EINVAL;
    }
    return 0;
}

int rtm_bind_claim_read(const json_t *bind, struct rtm_claims *c)
{
    const char *ip = json_string_value(json_object_get(bind, "ip"));
    const char *ua = json_string_value(json_object_get(bind, "ua"));
    if ((ip && !(c->bind_ip = strdup(ip))) || (ua && !(c->bind_ua = strdup(ua)))) return RTM_ENOMEM;
    return 0;
}

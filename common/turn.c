/* turn.c: TURN credentials in the coturn REST scheme, and the iceServers
 * array that carries them to the browser.
 *
 * Design: pure functions of (secret, expiry, user); nothing is stored. The
 * secret never leaves this file except as an HMAC, and nothing here logs. */
#include "turn.h"

#include "errors.h"
#include "util.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

int rtm_turn_credential(const char *secret, int64_t expiry, const char *user, char *username,
                        size_t username_len, char *credential, size_t credential_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n;

    if (!secret || !*secret || expiry <= 0 || !username || !credential) return RTM_EINVAL;
    if (user) {
        /* Control characters would end up in a STUN USERNAME attribute and in
         * coturn's log line. */
        for (const char *p = user; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) return RTM_EINVAL;
    }
    /* An empty user gives a bare "<expiry>", which coturn also accepts. */
    if (user && *user) n = snprintf(username, username_len, "%" PRId64 ":%s", expiry, user);
    else n = snprintf(username, username_len, "%" PRId64, expiry);
    if (n < 0 || (size_t)n >= username_len || (size_t)n >= RTM_TURN_USERNAME_MAX) return RTM_ELIMIT;

    if (!HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)username, (size_t)n, mac,
              &maclen))
        return RTM_ECRYPTO;
    int len = rtm_base64(mac, maclen, credential, credential_len);
    OPENSSL_cleanse(mac, sizeof mac);
    return len < 0 ? RTM_ELIMIT : 0;
}

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

json_t *rtm_turn_ice_servers(const char *secret, const char *const *urls, size_t n_urls,
                             const char *user, int64_t expiry)
{
    char username[RTM_TURN_USERNAME_MAX], credential[RTM_TURN_CREDENTIAL_MAX];
    json_t *out = json_array(), *stun = json_array(), *turn = json_array(), *entry = NULL;
    if (!out || !stun || !turn) goto fail;

    for (size_t i = 0; i < n_urls; i++) {
        const char *u = urls[i];
        json_t *dst;
        if (!u) goto fail;
        if (has_prefix(u, "stun:") || has_prefix(u, "stuns:")) dst = stun;
        else if (has_prefix(u, "turn:") || has_prefix(u, "turns:")) dst = turn;
        else goto fail; /* a misconfiguration: say so rather than drop it */
        if (json_array_append_new(dst, json_string(u))) goto fail;
    }

    if (json_array_size(stun)) {
        entry = json_pack("{s:O}", "urls", stun);
        if (!entry || json_array_append_new(out, entry)) goto fail;
    }
    if (json_array_size(turn)) {
        if (rtm_turn_credential(secret, expiry, user, username, sizeof username, credential,
                                sizeof credential))
            goto fail;
        entry = json_pack("{s:O,s:s,s:s}", "urls", turn, "username", username, "credential", credential);
        OPENSSL_cleanse(credential, sizeof credential);
        if (!entry || json_array_append_new(out, entry)) goto fail;
    }
    json_decref(stun);
    json_decref(turn);
    return out;

fail:
    OPENSSL_cleanse(credential, sizeof credential);
    json_decref(out);
    json_decref(stun);
    json_decref(turn);
    return NULL;
}

/* jwks.c: GET /.well-known/jwks.json: the public halves of the RS256/ES256
 * keys, by kid, so other services can verify rtm tokens. No auth: it holds
 * nothing secret. Read from the store on each request rather than cached,
 * because `rtm key create` adds keys from another process. */
#include "api.h"

#include "log.h"
#include "server.h"
#include "store.h"
#include "token.h"

void mint_jwks_get(struct mint_req *rq)
{
    json_t *list = NULL, *keys = json_array();
    if (!keys || rtm_store_key_public_list(rq->srv->store, &list) != 0) {
        json_decref(keys);
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the key store did not answer");
        return;
    }
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k) {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        const char *pem = json_string_value(json_object_get(k, "pem"));
        json_t *jwk = NULL;
        if (!kid || !alg || !pem || rtm_jwk_from_pem(pem, kid, alg, &jwk) != 0) {
            /* One unreadable key must not hide the others. */
            log_warn("jwks: key %s skipped: its public key could not be converted", kid ? kid : "?");
            continue;
        }
        json_array_append_new(keys, jwk);
    }
    json_decref(list);
    mint_reply_json(rq, 200, json_pack("{s:o}", "keys", keys));
}

/* turn_credentials.c: POST /v1/turn-credentials {userId?, ttl?}: one TURN
 * credential in the coturn REST scheme, for backends that hand ICE servers
 * out themselves. Signed with the first configured TURN secret; without one
 * the resource is unavailable (503), never a credential coturn would refuse. */
#include "api.h"

#include "metrics.h"
#include "protocol.h"
#include "turn.h"
#include "util.h"

#include <stdio.h>

static const struct mint_field fields[] = {
    {"userId", JSON_STRING, 0},
    {"ttl", JSON_INTEGER, 0},
};

void mint_turn_post(struct mint_req *rq)
{
    const struct rtm_mint_policy *pol = &rq->api->pol;
    json_t *b = NULL;
    if (rq->body_len) { /* the body is optional: no body means all defaults */
        b = mint_body_object(rq);
        if (!b) return;
        if (mint_check_fields(rq, b, fields, sizeof fields / sizeof fields[0]) != 0) goto done;
    }
    if (!pol->turn_secret) {
        mint_reply_error(rq, RTM_WIRE_TURN_UNAVAILABLE, "no TURN secret is configured");
        goto done;
    }

    char user[40];
    const char *user_id = json_string_value(json_object_get(b, "userId"));
    if (user_id) {
        if (!rtm_peer_id_valid(user_id)) {
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST,
                             "userId must be 1 to 128 printable ASCII characters");
            goto done;
        }
    } else {
        if (rtm_uuid4(user) != 0) {
            mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "no randomness");
            goto done;
        }
        user_id = user;
    }

    int64_t max_ttl = (int64_t)pol->max_ttl + 3600;
    int64_t ttl = pol->turn_ttl > 0 ? pol->turn_ttl : (int64_t)pol->default_ttl + 3600;
    json_t *t = json_object_get(b, "ttl");
    if (t) {
        ttl = json_integer_value(t);
        if (ttl < 1 || ttl > max_ttl) {
            char msg[96];
            snprintf(msg, sizeof msg, "ttl must be between 1 and %lld", (long long)max_ttl);
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, msg);
            goto done;
        }
    }

    char username[RTM_TURN_USERNAME_MAX], credential[RTM_TURN_CREDENTIAL_MAX];
    if (rtm_turn_credential(pol->turn_secret, rq->now + ttl, user_id, username, sizeof username,
                            credential, sizeof credential) != 0) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "could not sign the TURN credential");
        goto done;
    }
    json_t *urls = json_array();
    for (size_t i = 0; urls && i < pol->n_turn_urls; i++)
        json_array_append_new(urls, json_string(pol->turn_urls[i]));
    rtm_metric_inc(RTM_M_TURN_CREDENTIALS, 1);
    mint_reply_json(rq, 200,
                    json_pack("{s:s, s:s, s:I, s:o}", "username", username, "credential", credential,
                              "ttl", (json_int_t)ttl, "urls", urls));
done:
    json_decref(b);
}

/* demo.c: GET /demo/token, the development-only token endpoint of the demo.
 *
 * Design: no state of its own. Each request reads the development key file,
 * looks the key up in the store (so a revoked development key stops working
 * at once) and mints through rtm_mint(), the same path as POST /v1/tokens, so
 * the demo's tokens carry exactly what real ones do, TURN iceServers
 * included. The scope is deliberately narrow: one channel, "room-<room>",
 * and a fresh random peerId per page (the page passes it back on later calls). */
#include "demo.h"

#include "config.h"
#include "errors.h"
#include "log.h"
#include "mint.h"
#include "protocol.h"
#include "server.h"
#include "store.h"
#include "util.h"
#include "json_dump.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define ROOM_MAX 64
#define NAME_MAX_BYTES 64
#define KEY_FILE_MAX 4096

static int room_valid(const char *room)
{
    size_t n = room ? strlen(room) : 0;
    if (n < 1 || n > ROOM_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = room[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* UTF-8 validity is checked by jansson when the string is added; here only
 * length and control characters, which would make the grid's labels lie. */
static int name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > NAME_MAX_BYTES) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f) return 0;
    }
    return 1;
}

static int reply_error(enum rtm_wire_err e, const char *msg, char **json_out, int *http_status)
{
    const struct rtm_wire_def *w = rtm_wire(e);
    json_t *o = json_pack("{s:s, s:s}", "error", w->code, "message", msg ? msg : w->message);
    *http_status = w->http_status ? w->http_status : 500;
    *json_out = o ? rtm_json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *json_out ? 0 : RTM_ENOMEM;
}

/* Reads {"id","secret"} from the key file and returns the live key whose
 * secret matches. The secret itself is never logged. */
static int load_dev_key(struct rtm_server *srv, struct rtm_key *key)
{
    const char *path = srv->cfg->demo_key_file;
    json_error_t jerr;
    json_t *f = path ? json_load_file(path, 0, &jerr) : NULL;
    const char *id, *secret;
    int rc;

    if (!f) {
        log_error("demo: cannot read the development key file %s: %s", path ? path : "(none)",
                  path ? jerr.text : "demo-key-file not set");
        return RTM_ENOTFOUND;
    }
    id = json_string_value(json_object_get(f, "id"));
    secret = json_string_value(json_object_get(f, "secret"));
    if (!id || !secret) {
        log_error("demo: %s has no \"id\" and \"secret\" strings", path);
        json_decref(f);
        return RTM_EINVAL;
    }
    rc = rtm_store_key_get(srv->store, id, key);
    if (rc != 0) {
        log_error("demo: development key %s is not in the store (%s)", id, rtm_err_str(rc));
        json_decref(f);
        return rc;
    }
    if (key->revoked || key->publishable || !key->secret || !rtm_streq_ct(key->secret, secret)) {
        log_error("demo: development key %s is revoked or does not match %s", id, path);
        rtm_key_free(key);
        json_decref(f);
        return RTM_EDENIED;
    }
    json_decref(f);
    return 0;
}

/* Only ids of the shape this endpoint hands out may be asked for again. */
static int demo_peer_valid(const char *p)
{
    if (strncmp(p, "demo-", 5) != 0 || strlen(p) != 5 + 16) return 0;
    for (p += 5; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

int brk_demo_token(struct rtm_server *srv, const char *room, const char *name, const char *peer,
                   char **json_out, int *http_status)
{
    const struct rtm_config *cfg = srv->cfg;
    struct rtm_key key;
    struct rtm_mint_policy pol;
    struct rtm_mint_request rq;
    char peer_id[40], channel[8 + ROOM_MAX];
    const char *channels[1] = {channel};
    const char *err_code = NULL, *err_msg = NULL;
    char *token = NULL;
    int64_t expires_at = 0;
    json_t *peer_meta = NULL, *out = NULL;
    int rc;

    *json_out = NULL;
    if (!cfg->demo_token) return reply_error(RTM_WIRE_NOT_FOUND, "the demo endpoint is off", json_out, http_status);
    if (!room_valid(room))
        return reply_error(RTM_WIRE_INVALID_REQUEST, "room must be 1 to 64 letters, digits, '-' or '_'", json_out,
                           http_status);
    if (!name_valid(name) || !(peer_meta = json_pack("{s:s}", "name", name)))
        return reply_error(RTM_WIRE_INVALID_REQUEST, "name must be 1 to 64 bytes of UTF-8 text", json_out,
                           http_status);

    if (peer && *peer && !demo_peer_valid(peer)) {
        json_decref(peer_meta);
        return reply_error(RTM_WIRE_INVALID_REQUEST, "peer must be a peerId this endpoint issued", json_out,
                           http_status);
    }

    memset(&key, 0, sizeof key);
    if (load_dev_key(srv, &key) != 0) {
        json_decref(peer_meta);
        return reply_error(RTM_WIRE_INTERNAL_ERROR, "the development key is not available", json_out, http_status);
    }
    snprintf(channel, sizeof channel, "room-%s", room);
    if (peer && *peer) {
        snprintf(peer_id, sizeof peer_id, "%s", peer);
    } else if (rtm_random_id("demo-", 8, peer_id, sizeof peer_id) != 0) {
        rc = reply_error(RTM_WIRE_INTERNAL_ERROR, "no randomness for a peerId", json_out, http_status);
        goto done;
    }

    memset(&pol, 0, sizeof pol);
    pol.default_ttl = rtm_config_mint_default_ttl(cfg);
    pol.max_ttl = rtm_config_mint_max_ttl(cfg);
    pol.turn_secret = cfg->n_turn_secrets ? cfg->turn_secrets[0] : NULL;
    pol.turn_urls = (const char *const *)cfg->turn_urls;
    pol.n_turn_urls = cfg->n_turn_urls;
    pol.turn_ttl = cfg->turn_ttl;

    memset(&rq, 0, sizeof rq);
    rq.peer_id = peer_id;
    rq.channels = channels;
    rq.n_channels = 1;
    rq.peer_metadata = peer_meta;

    rc = rtm_mint(&pol, &key, &rq, rtm_now_s(), &token, &expires_at, &err_code, &err_msg);
    if (rc != 0) {
        /* The development key's scope may not include room-*: say so plainly. */
        log_warn("demo: mint failed for channel %s: %s (%s)", channel, err_code, err_msg);
        int e = rtm_wire_by_code(err_code);
        rc = reply_error(e >= 0 ? (enum rtm_wire_err)e : RTM_WIRE_INTERNAL_ERROR, err_msg, json_out, http_status);
        goto done;
    }
    out = json_pack("{s:s, s:I, s:s, s:s, s:s}", "token", token, "expiresAt", (json_int_t)expires_at, "peerId",
                    peer_id, "room", room, "channel", channel);
    *json_out = out ? rtm_json_dumps(out, JSON_COMPACT) : NULL;
    *http_status = 200;
    rc = *json_out ? 0 : RTM_ENOMEM;
    if (rc == 0) log_info("demo: token for peer=%s channel=%s", peer_id, channel);

done:
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    json_decref(out);
    json_decref(peer_meta);
    rtm_key_free(&key);
    return rc;
}

/* store_rows.c: argument rules and row encodings shared by every store backend.
 *
 * Main design choice: a key's channel, action and origin lists are stored as
 * JSON text in both backends (one column each, read whole with the key), so
 * the encoding is written once here and a row reads back identically from
 * sqlite and Postgres. See store_rows.h. */
#include "store_rows.h"

#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "util.h"
#include "json_dump.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY_CHANNELS RTM_MAX_CHANNELS_PER_TOKEN
#define MAX_KEY_ORIGINS 64
#define MAX_ORIGIN_LEN 256
#define MAX_PEM_LEN 16384

static const char *const action_names[] = {"publish", "subscribe", "presence", "send"};

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) return RTM_EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

int store_printable_ascii(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e) return 0;
    return n >= min && n <= max;
}

int store_app_name_valid(const char *name)
{
    return name && store_printable_ascii(name, 1, sizeof ((struct rtm_app *)0)->name - 1);
}

/* ---- apps ---- */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return RTM_EINVAL;
    *out = v;
    return 0;
}

int store_app_setting(const char *key, const char *value, enum store_app_field *field, long *num)
{
    if (!key || !value) return RTM_EINVAL;
    if (strcmp(key, "duplicatePeer") == 0) {
        if (strcmp(value, "allow") != 0 && strcmp(value, "replace") != 0) return RTM_EINVAL;
        *field = APP_DUPLICATE_PEER;
        return 0;
    }
    if (strcmp(key, "resumeWindowMs") == 0) {
        *field = APP_RESUME_WINDOW_MS;
        return parse_int(value, -1, 86400000L, num);
    }
    if (strcmp(key, "maxConnections") == 0) {
        *field = APP_MAX_CONNECTIONS;
        return parse_int(value, 0, 100000000L, num);
    }
    return RTM_EINVAL;
}

/* ---- keys: encodings ---- */

/* Parses a JSON array of strings into a heap array of heap strings. */
static int parse_str_array(const char *text, char ***out, size_t *n)
{
    json_t *a = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    int ret = RTM_ESTORE;
    *out = NULL;
    *n = 0;
    if (!json_is_array(a)) goto done;
    size_t len = json_array_size(a);
    if (len == 0) {
        ret = 0;
        goto done;
    }
    char **v = calloc(len, sizeof *v);
    if (!v) {
        ret = RTM_ENOMEM;
        goto done;
    }
    *out = v;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s) goto done;
        if (!(v[i] = strdup(s))) {
            ret = RTM_ENOMEM;
            goto done;
        }
        (*n)++;
    }
    ret = 0;
done:
    json_decref(a);
    return ret;
}

static unsigned parse_actions(const char *text)
{
    json_t *a = json_loads(text, 0, NULL);
    unsigned bits = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *s = json_string_value(v);
        if (s) bits |= rtm_perm_parse(s);
    }
    json_decref(a);
    return bits;
}

static json_t *actions_json(unsigned bits)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < sizeof action_names / sizeof action_names[0]; i++)
        if (bits & (1u << i)) json_array_append_new(a, json_string(action_names[i]));
    return a;
}

static json_t *str_array_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

int store_key_from_cols(const struct store_key_cols *c, struct rtm_key *k)
{
    memset(k, 0, sizeof *k);
    if (copy_str(k->id, sizeof k->id, c->id) || copy_str(k->app, sizeof k->app, c->app) ||
        copy_str(k->alg, sizeof k->alg, c->alg))
        return RTM_ESTORE;
    k->publishable = strcmp(c->kind, "publishable") == 0;
    if (c->secret && !(k->secret = strdup(c->secret))) return RTM_ENOMEM;
    int ret = parse_str_array(c->channels, &k->channels, &k->n_channels);
    if (!ret) ret = parse_str_array(c->origins, &k->origins, &k->n_origins);
    if (ret) goto fail;
    if (k->n_channels == 0) { /* the schema's promise: never empty */
        ret = RTM_ESTORE;
        goto fail;
    }
    k->actions = parse_actions(c->actions);
    k->created = c->created;
    k->revoked = c->revoked;
    return 0;
fail:
    rtm_key_free(k);
    return ret;
}

json_t *store_key_json(const struct rtm_key *k)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = json_object_set_new(o, "id", json_string(k->id)) ||
              json_object_set_new(o, "app", json_string(k->app)) ||
              json_object_set_new(o, "kind", json_string(k->publishable ? "publishable" : "secret")) ||
              json_object_set_new(o, "alg", k->alg[0] ? json_string(k->alg) : json_null()) ||
              json_object_set_new(o, "channels", str_array_json((const char *const *)k->channels, k->n_channels)) ||
              json_object_set_new(o, "actions", actions_json(k->actions)) ||
              json_object_set_new(o, "origins", str_array_json((const char *const *)k->origins, k->n_origins)) ||
              json_object_set_new(o, "created", json_integer(k->created)) ||
              json_object_set_new(o, "revoked", json_integer(k->revoked));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int store_secret_hash(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return RTM_ECRYPTO;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* ---- keys: a new key ---- */

/* Checks that pem is a public key of alg's type (RSA; EC on P-256). */
static int public_pem_valid(const char *alg, const char *pem)
{
    if (!pem || strlen(pem) > MAX_PEM_LEN) return 0;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    int ok = 0;
    if (pk && strcmp(alg, "RS256") == 0) {
        ok = EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) >= 2048;
    } else if (pk && strcmp(alg, "ES256") == 0) {
        char group[64];
        size_t glen = 0;
        ok = EVP_PKEY_is_a(pk, "EC") &&
             EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) == 1 &&
             (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0);
    }
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return ok;
}

/* Validates a spec; on failure logs why at warn (the caller only sees EINVAL). */
static int spec_valid(const struct rtm_key_spec *sp, const char **alg)
{
    const char *why = NULL;
    *alg = sp->publishable ? "" : sp->alg ? sp->alg : "HS256";
    int asym = strcmp(*alg, "RS256") == 0 || strcmp(*alg, "ES256") == 0;
    if (!store_app_name_valid(sp->app)) why = "app name must be 1 to 64 printable ASCII characters";
    else if (sp->publishable && sp->alg && *sp->alg) why = "publishable keys have no algorithm";
    else if (!sp->publishable && !asym && strcmp(*alg, "HS256") != 0) why = "alg must be HS256, RS256 or ES256";
    else if (asym && (!sp->kid || !store_printable_ascii(sp->kid, 1, sizeof ((struct rtm_key *)0)->id - 1)))
        why = "RS256/ES256 keys need a kid of 1 to 79 printable ASCII characters";
    else if (asym && (!strncmp(sp->kid, "sk_", 3) || !strncmp(sp->kid, "pk_", 3)))
        why = "a kid may not start with sk_ or pk_ (reserved for generated ids)";
    else if (!asym && sp->kid) why = "only RS256/ES256 keys take a kid";
    else if (asym && !public_pem_valid(*alg, sp->public_pem))
        why = "the public key is not a PEM public key of that algorithm (RSA >= 2048 bits; EC P-256)";
    else if (!asym && sp->public_pem) why = "only RS256/ES256 keys take a public key";
    else if (sp->n_channels > MAX_KEY_CHANNELS) why = "too many channel patterns (at most 100)";
    else if (sp->n_origins > MAX_KEY_ORIGINS) why = "too many origins (at most 64)";
    else if (sp->actions & ~(unsigned)RTM_PERM_ALL) why = "unknown action bits";
    for (size_t i = 0; !why && i < sp->n_channels; i++)
        if (!sp->channels[i] || !rtm_channel_valid(sp->channels[i]))
            why = "a channel pattern is empty, over 256 bytes or has control characters";
    for (size_t i = 0; !why && i < sp->n_origins; i++)
        if (!sp->origins[i] || !store_printable_ascii(sp->origins[i], 1, MAX_ORIGIN_LEN))
            why = "an origin is empty, over 256 bytes or not printable ASCII";
    if (why) {
        log_warn("store: key not created: %s", why);
        return 0;
    }
    return 1;
}

/* Dumps a list as compact JSON text (heap), taking the reference. */
static char *dump_list(json_t *a)
{
    char *text = a ? rtm_json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

int store_key_new_init(struct store_key_new *nk, const struct rtm_key_spec *spec)
{
    static const char *const all_channels[] = {"**"};
    const char *alg;
    memset(nk, 0, sizeof *nk);
    if (!spec || !spec_valid(spec, &alg)) return RTM_EINVAL;
    int hs256 = !strcmp(alg, "HS256"), ret;
    nk->app = spec->app;
    nk->kind = spec->publishable ? "publishable" : "secret";
    nk->alg = alg;
    if (spec->publishable) ret = rtm_random_id("pk_", 16, nk->id, sizeof nk->id);
    else if (hs256) ret = rtm_random_id("sk_id_", 16, nk->id, sizeof nk->id);
    else ret = copy_str(nk->id, sizeof nk->id, spec->kid);
    if (!ret && hs256) {
        ret = rtm_random_id("sk_secret_", 32, nk->secret_buf, sizeof nk->secret_buf);
        if (!ret) ret = store_secret_hash(nk->secret_buf, nk->hash_buf);
        nk->secret = nk->secret_buf;
        nk->secret_hash = nk->hash_buf;
    } else if (!spec->publishable) {
        nk->secret = spec->public_pem;
    }
    if (ret) goto fail;
    nk->channels = dump_list(spec->n_channels ? str_array_json(spec->channels, spec->n_channels)
                                              : str_array_json(all_channels, 1));
    nk->actions = dump_list(actions_json(spec->actions ? spec->actions : RTM_PERM_ALL));
    nk->origins = dump_list(str_array_json(spec->origins, spec->n_origins));
    if (nk->channels && nk->actions && nk->origins) return 0;
    ret = RTM_ENOMEM;
fail:
    store_key_new_clear(nk);
    return ret;
}

void store_key_new_clear(struct store_key_new *nk)
{
    OPENSSL_cleanse(nk->secret_buf, sizeof nk->secret_buf);
    free(nk->channels);
    free(nk->actions);
    free(nk->origins);
    nk->channels = nk->actions = nk->origins = NULL;
    nk->secret = nk->secret_hash = NULL;
}

/* ---- revocations and sessions ---- */

json_t *store_revocation_json(int64_t id, const char *app, const char *jti, const char *peer_id,
                              int64_t before)
{
    if (jti) return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "app", app, "jti", jti);
    return json_pack("{s:I, s:s, s:s, s:I}", "id", (json_int_t)id, "app", app, "peerId",
                     peer_id ? peer_id : "", "before", (json_int_t)before);
}

json_t *store_session_json(const struct store_session_cols *c)
{
    int open = c->closed_ms == 0;
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = json_object_set_new(o, "id", json_string(c->id)) ||
              json_object_set_new(o, "app", json_string(c->app)) ||
              json_object_set_new(o, "peerId", json_string(c->peer_id)) ||
              json_object_set_new(o, "jti", json_string(c->jti)) ||
              json_object_set_new(o, "remoteAddr", json_string(c->remote_addr)) ||
              json_object_set_new(o, "origin", c->origin ? json_string(c->origin) : json_null()) ||
              json_object_set_new(o, "userAgent", c->user_agent ? json_string(c->user_agent) : json_null()) ||
              json_object_set_new(o, "connectedAt", json_integer(c->connected_ms)) ||
              json_object_set_new(o, "closedAt", open ? json_null() : json_integer(c->closed_ms)) ||
              json_object_set_new(o, "closeCode", open ? json_null() : json_integer(c->close_code)) ||
              json_object_set_new(o, "closeReason", open ? json_null() : json_string(c->close_reason)) ||
              json_object_set_new(o, "framesIn", json_integer(c->frames_in)) ||
              json_object_set_new(o, "framesOut", json_integer(c->frames_out)) ||
              json_object_set_new(o, "bytesIn", json_integer(c->bytes_in)) ||
              json_object_set_new(o, "bytesOut", json_integer(c->bytes_out));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* protocol.c: the wire protocol's tables (errors, frame fields) and the few
 * rules that are code, not constants. The tables are data on purpose: the
 * broker, the mint API and sdk-c read them, and tests/unit/test_protocol.c
 * holds them against schema/frames/, so adding a code or a field is one edit
 * here (and one in the schema, or the test fails). */
#include "protocol.h"
#include "log.h"

#include <string.h>

static const char *const perm_names[] = {"publish", "subscribe", "presence", "send"};

unsigned rtm_perm_parse(const char *name)
{
    for (unsigned i = 0; i < 4; i++)
        if (strcmp(name, perm_names[i]) == 0) return 1u << i;
    return 0;
}

const char *rtm_perm_name(unsigned bit)
{
    for (unsigned i = 0; i < 4; i++)
        if (bit == 1u << i) return perm_names[i];
    return NULL;
}

int rtm_peer_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e) return 0;
    return n >= 1 && n <= RTM_MAX_PEER_ID;
}

int rtm_peer_id_reserved(const char *s) { return s && s[0] == '_'; }

int rtm_channel_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) return 0;
    return n >= 1 && n <= RTM_MAX_CHANNEL;
}

int rtm_channel_reserved(const char *s)
{
    return strncmp(s, "_rtm/", 5) == 0 || strncmp(s, "_internal/", 10) == 0 ||
           strncmp(s, "_system/", 8) == 0;
}

/* ---- errors ---- */

static const struct rtm_wire_def wire[RTM_WIRE__COUNT] = {
    [RTM_WIRE_MALFORMED_MESSAGE] = {"malformed_message", 0, 0, RTM_LOG_DEBUG, 1, "a frame must be one JSON object"},
    [RTM_WIRE_UNKNOWN_TYPE] = {"unknown_type", 0, 0, RTM_LOG_DEBUG, 1, "unknown frame type"},
    [RTM_WIRE_INVALID_CHANNEL] = {"invalid_channel", 400, 0, RTM_LOG_DEBUG, 1,
                                  "channel must be a string of 1 to 256 bytes without control characters"},
    [RTM_WIRE_INVALID_PEER_ID] = {"invalid_peer_id", 400, 0, RTM_LOG_DEBUG, 1,
                                  "a peerId is 1 to 128 printable ASCII characters"},
    [RTM_WIRE_CHANNEL_NOT_AUTHORIZED] = {"channel_not_authorized", 403, 0, RTM_LOG_DEBUG, 1,
                                         "the token's channel patterns do not include this channel"},
    [RTM_WIRE_CHANNEL_RESERVED] = {"channel_reserved", 400, 0, RTM_LOG_DEBUG, 1,
                                   "channel names starting with _rtm/, _internal/ or _system/ are reserved"},
    [RTM_WIRE_CHANNEL_LIMIT_EXCEEDED] = {"channel_limit_exceeded", 0, 0, RTM_LOG_DEBUG, 1,
                                         "too many channels on this connection"},
    [RTM_WIRE_PEER_NOT_FOUND] = {"peer_not_found", 0, 0, RTM_LOG_DEBUG, 1, "no such peer in a channel you share"},
    [RTM_WIRE_MISSING_DATA] = {"missing_data", 0, 0, RTM_LOG_DEBUG, 1, "data is required"},
    [RTM_WIRE_ACTION_NOT_PERMITTED] = {"action_not_permitted", 403, 0, RTM_LOG_DEBUG, 1,
                                       "the token does not allow this action"},
    [RTM_WIRE_OVER_MESSAGE_QUOTA] = {"over_message_quota", 0, 0, RTM_LOG_DEBUG, 1, "too many frames: slow down"},
    [RTM_WIRE_INTERNAL_ERROR] = {"internal_error", 500, RTM_CLOSE_INTERNAL, RTM_LOG_ERROR, 1, "internal error"},
    /* debug: the link logs the outage (cluster/link.c) and a counter counts each refusal; a
     * warning per refused publish would flood the log at the clients' publish rate */
    [RTM_WIRE_CLUSTER_UNAVAILABLE] = {"cluster_unavailable", 503, 0, RTM_LOG_DEBUG, 1,
                                      "the message could not reach the other nodes; try again"},
    [RTM_WIRE_INVALID_TOKEN] = {"invalid_token", 0, RTM_CLOSE_UNAUTHORIZED, RTM_LOG_INFO, 1, "invalid token"},

    [RTM_WIRE_INVALID_REQUEST] = {"invalid_request", 400, 0, RTM_LOG_DEBUG, 0, "invalid request"},
    [RTM_WIRE_PEER_ID_RESERVED] = {"peer_id_reserved", 400, 0, RTM_LOG_DEBUG, 0,
                                   "peerIds beginning with _ are reserved for the system"},
    [RTM_WIRE_UNAUTHORIZED] = {"unauthorized", 401, 0, RTM_LOG_INFO, 0,
                               "a valid secret key is required: Authorization: Bearer sk_secret_..."},
    [RTM_WIRE_NOT_FOUND] = {"not_found", 404, 0, RTM_LOG_DEBUG, 0, "no such path"},
    [RTM_WIRE_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405, 0, RTM_LOG_DEBUG, 0,
                                     "this path does not take that method"},
    [RTM_WIRE_LENGTH_REQUIRED] = {"length_required", 411, 0, RTM_LOG_DEBUG, 0, "send the body with a Content-Length"},
    [RTM_WIRE_PAYLOAD_TOO_LARGE] = {"payload_too_large", 413, 0, RTM_LOG_INFO, 0, "the body is over 32 KB"},
    [RTM_WIRE_STORE_BUSY] = {"store_busy", 503, 0, RTM_LOG_WARN, 0,
                             "too many kicks and publishes wait for the store; retry later"},
    [RTM_WIRE_STORE_FULL] = {"store_full", 503, 0, RTM_LOG_ERROR, 0, "the store's disk is full; retry later"},
    [RTM_WIRE_STORE_LOCKED] = {"store_locked", 503, 0, RTM_LOG_WARN, 0,
                               "the store is locked by another writer; retry later"},
    [RTM_WIRE_TURN_UNAVAILABLE] = {"turn_unavailable", 503, 0, RTM_LOG_WARN, 0, "no TURN secret is configured"},

    [RTM_WIRE_CLOSE_NORMAL] = {"normal", 0, RTM_CLOSE_NORMAL, RTM_LOG_DEBUG, 0, "bye"},
    [RTM_WIRE_SHUTTING_DOWN] = {"shutting_down", 0, RTM_CLOSE_GOING_AWAY, RTM_LOG_INFO, 0, "server shutting down"},
    [RTM_WIRE_PROTOCOL_ERROR] = {"protocol_error", 0, RTM_CLOSE_PROTOCOL_ERROR, RTM_LOG_INFO, 0, "protocol error"},
    [RTM_WIRE_BINARY_FRAME] = {"binary_frame", 0, RTM_CLOSE_UNSUPPORTED, RTM_LOG_INFO, 0,
                               "binary frames are not supported"},
    [RTM_WIRE_INVALID_UTF8] = {"invalid_utf8", 0, RTM_CLOSE_BAD_DATA, RTM_LOG_INFO, 0, "invalid UTF-8"},
    [RTM_WIRE_MESSAGE_TOO_BIG] = {"message_too_big", 0, RTM_CLOSE_TOO_BIG, RTM_LOG_INFO, 0, "message too big"},
    [RTM_WIRE_SLOW_CONSUMER] = {"slow_consumer", 0, RTM_CLOSE_TRY_AGAIN, RTM_LOG_WARN, 0,
                                "slow consumer: queue full"},
    [RTM_WIRE_PING_TIMEOUT] = {"ping_timeout", 0, RTM_CLOSE_ABNORMAL, RTM_LOG_INFO, 0, "ping timeout"},
    [RTM_WIRE_TOKEN_EXPIRED] = {"token_expired", 0, RTM_CLOSE_TOKEN_EXPIRED, RTM_LOG_INFO, 0, "token expired"},
    [RTM_WIRE_ORIGIN_NOT_ALLOWED] = {"origin_not_allowed", 0, RTM_CLOSE_ORIGIN, RTM_LOG_INFO, 0,
                                     "origin not allowed"},
    [RTM_WIRE_REPLACED] = {"replaced", 0, RTM_CLOSE_REPLACED, RTM_LOG_INFO, 0, "replaced by a newer connection"},
    [RTM_WIRE_RESUMED_ELSEWHERE] = {"resumed_elsewhere", 0, RTM_CLOSE_REPLACED, RTM_LOG_INFO, 0,
                                    "session resumed elsewhere"},
    [RTM_WIRE_OVER_CAPACITY] = {"over_capacity", 0, RTM_CLOSE_OVER_CAPACITY, RTM_LOG_INFO, 0, "server at capacity"},
    [RTM_WIRE_SENDING_TOO_FAST] = {"sending_too_fast", 0, RTM_CLOSE_RATE, RTM_LOG_WARN, 0, "sending too fast"},
    [RTM_WIRE_KEY_REVOKED] = {"key_revoked", 0, RTM_CLOSE_KEY_REVOKED, RTM_LOG_INFO, 0, "key revoked"},
    [RTM_WIRE_KICKED] = {"kicked", 0, RTM_CLOSE_KICKED, RTM_LOG_INFO, 0, "kicked"},
    [RTM_WIRE_AUTH_TIMEOUT] = {"auth_timeout", 0, RTM_CLOSE_UNAUTHORIZED, RTM_LOG_INFO, 0, "auth timeout"},
    [RTM_WIRE_AUTH_EXPECTED] = {"auth_expected", 0, RTM_CLOSE_UNAUTHORIZED, RTM_LOG_INFO, 0,
                                "the first frame must be {\"type\":\"auth\",\"token\":...}"},
    [RTM_WIRE_UNAUTHENTICATED_LIMIT] = {"unauthenticated_limit", 0, RTM_CLOSE_OVER_CAPACITY, RTM_LOG_WARN, 0,
                                        "too many connections waiting to authenticate"},
};

const struct rtm_wire_def *rtm_wire(enum rtm_wire_err e)
{
    return (unsigned)e < RTM_WIRE__COUNT ? &wire[e] : &wire[RTM_WIRE_INTERNAL_ERROR];
}

int rtm_wire_by_code(const char *code)
{
    for (int i = 0; i < RTM_WIRE__COUNT; i++)
        if (wire[i].code && strcmp(wire[i].code, code) == 0) return i;
    return -1;
}

/* ---- frames ---- */

#define F_TYPE {"type", RTM_J_STRING, 1, 0, 0, 0, RTM_CS_ANY, RTM_WIRE_MALFORMED_MESSAGE, "type must be a string"}
#define F_REQUEST_ID(req)                                                                                    \
    {"requestId", RTM_J_STRING, req, 0, 0, RTM_MAX_REQUEST_ID, RTM_CS_ANY, RTM_WIRE_MALFORMED_MESSAGE,      \
     "requestId must be a string of at most 128 characters"}
#define F_CHANNEL                                                                                            \
    {"channel", RTM_J_STRING, 1, 0, 1, RTM_MAX_CHANNEL, RTM_CS_CHANNEL, RTM_WIRE_INVALID_CHANNEL,            \
     "channel must be a string of 1 to 256 bytes without control characters"}
#define F_DATA {"data", 0, 1, 0, 0, 0, RTM_CS_ANY, RTM_WIRE_MISSING_DATA, "data is required"}
#define F_PEER(name, req, ext)                                                                               \
    {name, RTM_J_STRING, req, ext, 1, RTM_MAX_PEER_ID, RTM_CS_PEER_ID, RTM_WIRE_INVALID_PEER_ID,             \
     name " must be a peerId: 1 to 128 printable ASCII characters"}
#define F_OUT(name, types, req, ext) {name, types, req, ext, 0, 0, RTM_CS_ANY, RTM_WIRE_MALFORMED_MESSAGE, NULL}
#define DEF(server, type, ext, f) {server, type, ext, f, sizeof f / sizeof f[0]}

static const struct rtm_field c_auth[] = {
    F_TYPE,
    {"token", RTM_J_STRING, 1, 0, 1, RTM_MAX_TOKEN_BYTES, RTM_CS_ANY, RTM_WIRE_AUTH_EXPECTED, "token must be a non-empty string"}};
static const struct rtm_field c_ping[] = {F_TYPE, F_REQUEST_ID(0)};
static const struct rtm_field c_publish[] = {F_TYPE, F_CHANNEL, F_DATA, F_REQUEST_ID(0)};
static const struct rtm_field c_refresh[] = {
    F_TYPE,
    {"token", RTM_J_STRING, 1, 0, 1, 0, RTM_CS_ANY, RTM_WIRE_MALFORMED_MESSAGE, "token must be a non-empty string"},
    F_REQUEST_ID(0)};
static const struct rtm_field c_send[] = {F_TYPE, F_PEER("to", 1, 0), F_DATA, F_REQUEST_ID(0)};
static const struct rtm_field c_subscribe[] = {
    F_TYPE, F_CHANNEL,
    {"includeSenderMetadata", RTM_J_BOOLEAN, 0, 0, 0, 0, RTM_CS_ANY, RTM_WIRE_MALFORMED_MESSAGE,
     "includeSenderMetadata must be a boolean"},
    F_REQUEST_ID(0)};
static const struct rtm_field c_unsubscribe[] = {F_TYPE, F_CHANNEL, F_REQUEST_ID(0)};

static const struct rtm_field s_ack[] = {F_TYPE, F_REQUEST_ID(1), F_OUT("expiresAt", RTM_J_INTEGER, 0, 1),
                                         F_OUT("metadata", RTM_J_OBJECT, 0, 1)};
static const struct rtm_field s_direct[] = {F_TYPE, F_PEER("from", 1, 0), F_OUT("data", 0, 1, 0),
                                            F_OUT("fromMetadata", RTM_J_OBJECT, 0, 0),
                                            F_OUT("seq", RTM_J_INTEGER, 0, 1)};
static const struct rtm_field s_error[] = {F_TYPE, F_OUT("code", RTM_J_STRING, 1, 0),
                                           F_OUT("message", RTM_J_STRING, 1, 0), F_REQUEST_ID(0)};
static const struct rtm_field s_going_away[] = {F_TYPE, F_OUT("retryAfterMs", RTM_J_INTEGER, 1, 0)};
static const struct rtm_field s_message[] = {F_TYPE, F_CHANNEL, F_PEER("from", 1, 0), F_OUT("data", 0, 1, 0),
                                             F_OUT("fromMetadata", RTM_J_OBJECT, 0, 0)};
static const struct rtm_field s_pong[] = {F_TYPE};
static const struct rtm_field s_presence[] = {F_TYPE, F_CHANNEL, F_OUT("joined", RTM_J_ARRAY, 1, 0),
                                              F_OUT("left", RTM_J_ARRAY, 1, 0)};
static const struct rtm_field s_token_expiring[] = {F_TYPE, F_OUT("expiresAt", RTM_J_INTEGER, 1, 0)};
static const struct rtm_field s_unsubscribed[] = {F_TYPE, F_OUT("channels", RTM_J_ARRAY, 1, 0)};
static const struct rtm_field s_welcome[] = {
    F_TYPE,
    F_PEER("peerId", 1, 0),
    F_OUT("expiresAt", RTM_J_INTEGER | RTM_J_NULL, 1, 0),
    F_OUT("serverTime", RTM_J_INTEGER, 1, 0),
    F_OUT("maxMessageSize", RTM_J_INTEGER, 1, 0),
    F_OUT("metadata", RTM_J_OBJECT, 1, 0),
    F_PEER("sessionId", 0, 1),
    F_OUT("resumeWindowMs", RTM_J_INTEGER, 0, 1),
    F_OUT("resumed", RTM_J_BOOLEAN, 0, 1),
    F_OUT("presenceReset", RTM_J_BOOLEAN, 0, 1),
};

const struct rtm_frame_def rtm_frames[] = {
    DEF(0, "auth", 1, c_auth),
    DEF(0, "ping", 0, c_ping),
    DEF(0, "publish", 0, c_publish),
    DEF(0, "refresh", 1, c_refresh),
    DEF(0, "send", 0, c_send),
    DEF(0, "subscribe", 0, c_subscribe),
    DEF(0, "unsubscribe", 0, c_unsubscribe),
    DEF(1, "ack", 0, s_ack),
    DEF(1, "direct", 0, s_direct),
    DEF(1, "error", 0, s_error),
    DEF(1, "going_away", 0, s_going_away),
    DEF(1, "message", 0, s_message),
    DEF(1, "pong", 0, s_pong),
    DEF(1, "presence", 0, s_presence),
    DEF(1, "token_expiring", 1, s_token_expiring),
    DEF(1, "unsubscribed", 1, s_unsubscribed),
    DEF(1, "welcome", 0, s_welcome),
};
const unsigned rtm_n_frames = sizeof rtm_frames / sizeof rtm_frames[0];

const struct rtm_frame_def *rtm_frame_find(int server, const char *type)
{
    for (unsigned i = 0; i < rtm_n_frames; i++)
        if (rtm_frames[i].server == server && strcmp(rtm_frames[i].type, type) == 0) return &rtm_frames[i];
    return NULL;
}

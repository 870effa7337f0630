/* protocol.h: the wire protocol's constants, defined once for the broker,
 * the mint API and sdk-c. Frame shapes are specified in schema/frames/. */
#ifndef RTM_PROTOCOL_H
#define RTM_PROTOCOL_H

/* Token permissions (claim "permissions"), also key "actions". */
enum rtm_perm {
    RTM_PERM_PUBLISH = 1u << 0,
    RTM_PERM_SUBSCRIBE = 1u << 1,
    RTM_PERM_PRESENCE = 1u << 2,
    RTM_PERM_SEND = 1u << 3,
    RTM_PERM_ALL = 0xfu,
};

/* Parses one permission name; returns its bit or 0 when unknown. */
unsigned rtm_perm_parse(const char *name);
/* Name of a single permission bit, NULL if not exactly one known bit. */
const char *rtm_perm_name(unsigned bit);

#define RTM_MAX_PEER_ID 128
#define RTM_MAX_CHANNEL 256
#define RTM_MAX_CHANNELS_PER_TOKEN 100
#define RTM_MAX_REQUEST_ID 128
#define RTM_MAX_METADATA 8192
#define RTM_MAX_PEER_METADATA 4096
#define RTM_MAX_MESSAGE_SIZE 65536

/* WebSocket close codes. */
enum rtm_close {
    RTM_CLOSE_NORMAL = 1000,
    RTM_CLOSE_GOING_AWAY = 1001,
    RTM_CLOSE_UNSUPPORTED = 1003,   /* binary frame */
    RTM_CLOSE_BAD_DATA = 1007,      /* text that is not UTF-8 */
    RTM_CLOSE_TOO_BIG = 1009,
    RTM_CLOSE_TRY_AGAIN = 1013,     /* slow consumer: queue full */
    RTM_CLOSE_CLIENT_TIMEOUT = 4000, /* sdk: no frame for too long */
    RTM_CLOSE_UNAUTHORIZED = 4001,
    RTM_CLOSE_TOKEN_EXPIRED = 4002,
    RTM_CLOSE_ORIGIN = 4003,
    RTM_CLOSE_REPLACED = 4009,
    RTM_CLOSE_OVER_CAPACITY = 4010,
    RTM_CLOSE_RATE = 4011,
    RTM_CLOSE_KEY_REVOKED = 4012,
    RTM_CLOSE_KICKED = 4020,
};

/* True for peerId rules: 1..128 printable ASCII (0x21..0x7e). */
int rtm_peer_id_valid(const char *s);
/* True when a peerId begins with '_': such ids belong to the system (the
 * broker publishes as "_server"); no token, mint request, publishable-key
 * session or REST call may name one. */
int rtm_peer_id_reserved(const char *s);
/* True for channel-name rules: 1..256 bytes, no control characters. */
int rtm_channel_valid(const char *s);
/* True when the channel starts with a reserved prefix (_rtm/, _internal/, _system/). */
int rtm_channel_reserved(const char *s);

#endif

/* protocol.h: the wire protocol, defined once for the broker, the mint API
 * and sdk-c: its constants, the one table of errors (wire code, HTTP status,
 * close code, log level, default message) and the one table of frame fields
 * per frame type. schema/frames/ specifies the same frames for client
 * authors; tests/unit/test_protocol.c checks that both say the same. */
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
/* A token's largest size, bytes (16 KB and a margin; sdk-c's
 * RTM_MAX_TOKEN_LEN is the same). Larger: 4001 "token too large". */
#define RTM_MAX_TOKEN_BYTES 24576

/* WebSocket close codes. */
enum rtm_close {
    RTM_CLOSE_NORMAL = 1000,
    RTM_CLOSE_GOING_AWAY = 1001,
    RTM_CLOSE_PROTOCOL_ERROR = 1002,
    RTM_CLOSE_UNSUPPORTED = 1003,   /* binary frame */
    RTM_CLOSE_NO_STATUS = 1005,     /* recorded: the peer's close frame had no code */
    RTM_CLOSE_ABNORMAL = 1006,      /* recorded: no close frame at all (never sent) */
    RTM_CLOSE_BAD_DATA = 1007,      /* text that is not UTF-8 */
    RTM_CLOSE_TOO_BIG = 1009,
    RTM_CLOSE_INTERNAL = 1011,
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

/* Every error the protocol can report, in one list. An entry says how the
 * error travels: as an error frame / HTTP error body (code, http status), as
 * a close (close code, with message as the default reason), or both. */
enum rtm_wire_err {
    /* error frames (schema/frames/server.error.json) */
    RTM_WIRE_MALFORMED_MESSAGE,
    RTM_WIRE_UNKNOWN_TYPE,
    RTM_WIRE_INVALID_CHANNEL,
    RTM_WIRE_INVALID_PEER_ID,
    RTM_WIRE_CHANNEL_NOT_AUTHORIZED,
    RTM_WIRE_CHANNEL_RESERVED,
    RTM_WIRE_CHANNEL_LIMIT_EXCEEDED,
    RTM_WIRE_PEER_NOT_FOUND,
    RTM_WIRE_MISSING_DATA,
    RTM_WIRE_ACTION_NOT_PERMITTED,
    RTM_WIRE_OVER_MESSAGE_QUOTA,
    RTM_WIRE_INTERNAL_ERROR,
    RTM_WIRE_INVALID_TOKEN,
    RTM_WIRE_CLUSTER_UNAVAILABLE,
    /* HTTP only (the mint API, the demo token route) */
    RTM_WIRE_INVALID_REQUEST,
    RTM_WIRE_PEER_ID_RESERVED,
    RTM_WIRE_UNAUTHORIZED,
    RTM_WIRE_NOT_FOUND,
    RTM_WIRE_METHOD_NOT_ALLOWED,
    RTM_WIRE_LENGTH_REQUIRED,
    RTM_WIRE_PAYLOAD_TOO_LARGE,
    RTM_WIRE_STORE_BUSY, /* --role mint: the outbox to the brokers is full */
    RTM_WIRE_TURN_UNAVAILABLE,
    RTM_WIRE_STORE_FULL,
    RTM_WIRE_STORE_LOCKED,
    /* closes */
    RTM_WIRE_CLOSE_NORMAL,
    RTM_WIRE_SHUTTING_DOWN,
    RTM_WIRE_PROTOCOL_ERROR,
    RTM_WIRE_BINARY_FRAME,
    RTM_WIRE_INVALID_UTF8,
    RTM_WIRE_MESSAGE_TOO_BIG,
    RTM_WIRE_SLOW_CONSUMER,
    RTM_WIRE_PING_TIMEOUT,
    RTM_WIRE_TOKEN_EXPIRED,
    RTM_WIRE_ORIGIN_NOT_ALLOWED,
    RTM_WIRE_REPLACED,
    RTM_WIRE_RESUMED_ELSEWHERE,
    RTM_WIRE_OVER_CAPACITY,
    RTM_WIRE_SENDING_TOO_FAST,
    RTM_WIRE_KEY_REVOKED,
    RTM_WIRE_KICKED,
    RTM_WIRE_AUTH_TIMEOUT,
    RTM_WIRE_AUTH_EXPECTED,
    RTM_WIRE_UNAUTHENTICATED_LIMIT,
    RTM_WIRE__COUNT
};

struct rtm_wire_def {
    const char *code;     /* the wire string: error frames' and HTTP bodies' "code"/"error"; a name for logs */
    int http_status;      /* 0: never an HTTP reply */
    int close_code;       /* 0: never a close */
    int log_level;        /* RTM_LOG_*: how loud the side that decides this error logs it */
    unsigned frame : 1;   /* may travel in an error frame (listed in server.error.json) */
    const char *message;  /* default message / close reason (a close reason fits 123 bytes) */
};
/* The entry of an error (never NULL for a valid id). */
const struct rtm_wire_def *rtm_wire(enum rtm_wire_err e);
/* The error whose wire code is code, or -1. */
int rtm_wire_by_code(const char *code);

/* ---- frame fields: one static table per frame type ---- */

enum rtm_jtype { /* bit set of accepted JSON types; 0 = any value */
    RTM_J_STRING = 1u << 0,
    RTM_J_INTEGER = 1u << 1,
    RTM_J_BOOLEAN = 1u << 2,
    RTM_J_OBJECT = 1u << 3,
    RTM_J_ARRAY = 1u << 4,
    RTM_J_NULL = 1u << 5,
};
enum rtm_charset {
    RTM_CS_ANY = 0,
    RTM_CS_PEER_ID,   /* printable ASCII, rtm_peer_id_valid (schema pattern ^[!-~]+$) */
    RTM_CS_CHANNEL,   /* rtm_channel_valid: no control characters, max_len in bytes */
};
struct rtm_field {
    const char *name;
    unsigned types;           /* enum rtm_jtype bits */
    unsigned required : 1;
    unsigned ext : 1;         /* only in extension sessions (&ext=1) */
    unsigned min_len, max_len; /* strings: characters (bytes for RTM_CS_CHANNEL); 0 = no bound */
    enum rtm_charset charset;
    enum rtm_wire_err err;    /* inbound: the error a bad value gets */
    const char *message;      /* inbound: what that error says */
};
struct rtm_frame_def {
    int server;               /* 1: server -> client, 0: client -> server */
    const char *type;
    unsigned ext : 1;         /* an extension frame (docs/EXTENSIONS.md) */
    const struct rtm_field *fields; /* "type" first */
    unsigned n_fields;
};
extern const struct rtm_frame_def rtm_frames[];
extern const unsigned rtm_n_frames;
/* The definition of a frame type, or NULL. */
const struct rtm_frame_def *rtm_frame_find(int server, const char *type);

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

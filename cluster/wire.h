/* wire.h: what rtmd nodes say to each other through Redis, and where.
 *
 * Pure functions, no I/O: Redis key and channel names, the shard a name
 * lives on (a stable hash, so every node agrees without talking), and the
 * node-to-node message codec. A message is one header line of field lengths
 * followed by the fields' bytes, so client JSON travels as is (never parsed
 * or re-encoded by a node that only forwards it) and any byte is allowed in
 * any field. The full format is in docs/CLUSTER.md. */
#ifndef CLU_WIRE_H
#define CLU_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define CLU_MAX_SHARDS 16
#define CLU_NAME_MAX 400 /* "rtm:c:" + app (64) + channel (256) + separators */

/* Shard of a name among n (1..CLU_MAX_SHARDS): a 64-bit FNV-1a of the bytes
 * fed to a jump consistent hash, so adding a shard moves about 1/n of the
 * names and nothing else. */
int clu_shard_of(const char *name, size_t len, int n);

/* "rtm:c:<applen>:<app>:<channel>": the Redis channel of an app's channel.
 * The length prefix keeps the name unambiguous whatever the app contains.
 * Returns the length, or -1 when it does not fit in outlen. */
int clu_channel_name(char *out, size_t outlen, const char *app, const char *channel);
/* "rtm:n:<node>": the node's own channel (liveness probes, directs). */
#define CLU_NODE_PREFIX "rtm:n:"
#define CLU_CONTROL "rtm:ctl" /* every node's control channel (kick, revocations) */
int clu_node_name(char *out, size_t outlen, const char *node);
/* "rtm:p:<applen>:<app>:<peer>": the hash of where a peer is connected
 * (field: node) and which channels it is in there (value: "\n"-separated,
 * with a leading and a trailing "\n"). */
int clu_peer_name(char *out, size_t outlen, const char *app, const char *peer);
/* "rtm:mv:<applen>:<app>:<peer>": while a resume moves a place of the peer
 * to another node, that node's id (a string with an expiry). Always used on
 * the shard of the peer's hash (every script that reads it runs there). */
int clu_move_name(char *out, size_t outlen, const char *app, const char *peer);

/* "rtm:pr:<applen>:<app>:<channel>": a channel's cluster presence hash (field
 * "<peer>\x1f<node>" -> the peer's metadata JSON, field "#v" -> version); its
 * peer counts live in "rtm:pc:" + the same suffix. Both on the shard of the
 * channel's Redis channel. */
int clu_presence_name(char *out, size_t outlen, const char *app, const char *channel);

enum clu_kind {
    CLU_PUBLISH = 'p', /* a channel message: app, channel, from, meta, data */
    CLU_DIRECT = 'd',  /* a direct message to a peer on the receiving node: the channel field holds the peerId */
    CLU_CTL_KICK = 'k',    /* rtm:ctl: kick app's peer (the channel field holds the peerId) */
    CLU_CTL_REVOKED = 'r', /* rtm:ctl: new revocations in the shared store */
    CLU_QUESTION = 'q',    /* rtm:n:<node>: a question (broker/xask.c): node = asker, sid = question id,
                              app, channel = target, from = op (one byte), data */
    CLU_ANSWER = 'a',      /* rtm:n:<asker>: node = answering node, sid = question id, data = answer */
    CLU_PUBLISH_COUNTED = 'P', /* a server publish whose origin gathers the recipients: as 'p', with
                                  sid = the origin's question id (a server publish has no sender session) */
    /* Resume through another node (broker/xresume.c; found through an xask
     * question, op XASK_RESUME), on rtm:n:<node>: the channel field holds the
     * peerId, the from field the place's id (rsid), the sid field the new
     * node's id for the hand-over. */
    CLU_RESUME_CUT = 'c',   /* the switch script -> both nodes: directs after this go to the new node */
    CLU_RESUME_PLACE = 'h', /* holder -> new node: the place (data: JSON, resume.c resume_export) */
    CLU_RESUME_DONE = 'f',  /* new node -> holder: resumed there, the old place may leave */
    CLU_PRESENCE = 'e', /* on the channel's Redis channel, written by a Lua script: a cluster-wide
                         * join or leave; the sid field holds "<prev version> <version>", from
                         * the peerId, meta its metadata (joins), data "j" or "l" */
};

/* A decoded message: every field points into the encoded buffer (borrowed). */
#define CLU_FIELDS 7
struct clu_msg {
    char kind;
    const char *f[CLU_FIELDS];
    size_t n[CLU_FIELDS];
};
/* Field order of a CLU_PUBLISH. */
enum { CLU_F_NODE, CLU_F_SID, CLU_F_APP, CLU_F_CHANNEL, CLU_F_FROM, CLU_F_META, CLU_F_DATA };
#define CLU_F_TO CLU_F_CHANNEL /* CLU_DIRECT */

/* Encodes kind and CLU_FIELDS fields (f[i] may be NULL when n[i] is 0) into
 * a malloc'd buffer; *outlen its length. NULL on ENOMEM. */
char *clu_encode(char kind, const char *const f[CLU_FIELDS], const size_t n[CLU_FIELDS], size_t *outlen);
/* 0 and m filled, or -1 when buf is not a well-formed message of this version. */
int clu_decode(const char *buf, size_t len, struct clu_msg *m);

#endif

/* wire.c: names, shards and the node-to-node message codec (see wire.h). */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Jump consistent hash (Lamping and Veach, 2014): buckets stay stable as n
 * grows, with no table to agree on. */
static int jump(uint64_t key, int n)
{
    int64_t b = -1, j = 0;
    while (j < n) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int)b;
}

int clu_shard_of(const char *name, size_t len, int n)
{
    if (n <= 1) return 0;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ULL;
    }
    return jump(h, n);
}

int clu_channel_name(char *out, size_t outlen, const char *app, const char *channel)
{
    int n = snprintf(out, outlen, "rtm:c:%zu:%s:%s", strlen(app), app, channel);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int clu_presence_name(char *out, size_t outlen, const char *app, const char *channel)
{
    int n = snprintf(out, outlen, "rtm:pr:%zu:%s:%s", strlen(app), app, channel);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int clu_node_name(char *out, size_t outlen, const char *node)
{
    int n = snprintf(out, outlen, CLU_NODE_PREFIX "%s", node);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int clu_peer_name(char *out, size_t outlen, const char *app, const char *peer)
{
    int n = snprintf(out, outlen, "rtm:p:%zu:%s:%s", strlen(app), app, peer);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int clu_move_name(char *out, size_t outlen, const char *app, const char *peer)
{
    int n = snprintf(out, outlen, "rtm:mv:%zu:%s:%s", strlen(app), app, peer);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

#define MAGIC "rtm1 "
#define HDR_MAX (5 + 2 + CLU_FIELDS * 21 + 1)

char *clu_encode(char kind, const char *const f[CLU_FIELDS], const size_t n[CLU_FIELDS], size_t *outlen)
{
    char hdr[HDR_MAX + 1];
    int h = snprintf(hdr, sizeof hdr, MAGIC "%c", kind);
    size_t body = 0;
    for (int i = 0; i < CLU_FIELDS; i++) {
        h += snprintf(hdr + h, sizeof hdr - (size_t)h, " %zu", n[i]);
        body += n[i];
    }
    hdr[h++] = '\n';
    char *out = malloc((size_t)h + body);
    if (!out) return NULL;
    memcpy(out, hdr, (size_t)h);
    size_t off = (size_t)h;
    for (int i = 0; i < CLU_FIELDS; i++) {
        if (n[i]) memcpy(out + off, f[i], n[i]);
        off += n[i];
    }
    *outlen = off;
    return out;
}

int clu_decode(const char *buf, size_t len, struct clu_msg *m)
{
    size_t ml = sizeof MAGIC - 1;
    if (len < ml + 2 || memcmp(buf, MAGIC, ml) != 0) return -1;
    const char *nl = memchr(buf, '\n', len < HDR_MAX ? len : HDR_MAX);
    if (!nl) return -1;
    m->kind = buf[ml];
    const char *p = buf + ml + 1, *end = nl;
    size_t total = 0;
    for (int i = 0; i < CLU_FIELDS; i++) {
        if (p >= end || *p != ' ') return -1;
        p++;
        size_t v = 0;
        const char *start = p;
        while (p < end && *p >= '0' && *p <= '9') {
            if (v > (SIZE_MAX - 9) / 10) return -1;
            v = v * 10 + (size_t)(*p - '0');
            p++;
        }
        if (p == start) return -1;
        m->n[i] = v;
        if (v > len - total) return -1;
        total += v;
    }
    if (p != end) return -1;
    size_t off = (size_t)(nl + 1 - buf);
    if (len - off != total) return -1;
    for (int i = 0; i < CLU_FIELDS; i++) {
        m->f[i] = buf + off;
        off += m->n[i];
    }
    return 0;
}

/* wsframe.h: RFC 6455 frame headers, read and written, for both ends of
 * `make bench` (the generator, sdk-c/tool/wsgen.c, and the raw relay,
 * bench/rawws.c): header-only so the relay stays one plain C file with no
 * library of rtm's. Payloads are the caller's; only ws_out_append allocates. */
#ifndef RTM_WSFRAME_H
#define RTM_WSFRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One frame at the start of p[0..n). */
struct ws_frame {
    int opcode;
    size_t payload_at; /* offset of the payload (after the header and the mask) */
    uint64_t len;      /* payload length */
    size_t total;      /* header + mask + payload */
};

/* 1 with *f filled and the payload unmasked in place when a whole frame is
 * in p[0..n); 0 when more bytes are needed; -1 when its payload is over max. */
static inline int ws_frame_take(unsigned char *p, size_t n, uint64_t max, struct ws_frame *f)
{
    if (n < 2) return 0;
    int masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (n < 4) return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
        h = 10;
    }
    if (len > max) return -1;
    size_t mk = masked ? 4 : 0;
    if (n < h + mk || n - h - mk < len) return 0;
    unsigned char *pl = p + h + mk;
    if (masked)
        for (uint64_t i = 0; i < len; i++) pl[i] ^= p[h + (i & 3)];
    f->opcode = p[0] & 0x0f;
    f->payload_at = h + mk;
    f->len = len;
    f->total = h + mk + (size_t)len;
    return 1;
}

/* Writes a final frame's header for an n-byte payload into out (at least 14
 * bytes), with mask when it is not NULL (a client's frame); returns its
 * length. The caller masks the payload with the same 4 bytes. */
static inline size_t ws_frame_head(unsigned char *out, int opcode, uint64_t n, const unsigned char *mask)
{
    size_t h = 2;
    unsigned char m = mask ? 0x80 : 0;
    out[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        out[1] = (unsigned char)(m | n);
    } else if (n < 65536) {
        out[1] = m | 126;
        out[2] = (unsigned char)(n >> 8);
        out[3] = (unsigned char)n;
        h = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        h = 10;
    }
    if (mask) {
        memcpy(out + h, mask, 4);
        h += 4;
    }
    return h;
}

/* Appends n bytes to a growing output buffer (doubling from 4 KB); -1 when
 * that would hold more than max bytes or memory is out (nothing appended). */
static inline int ws_out_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n, size_t max)
{
    if (*len + n > max) return -1;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n) c *= 2;
        char *t = realloc(*buf, c);
        if (!t) return -1;
        *buf = t;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

#endif

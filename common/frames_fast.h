/* frames_fast.h: the hot frames (send, publish) read in one pass without
 * jansson, for frames.c. Design: the scan accepts only a frame the jansson
 * path would accept with every field valid, read to the same values; on
 * anything else it declines and frames.c parses with jansson as before, so
 * decisions and error codes cannot differ (tests/fuzz/fuzz_frames.c checks
 * every accepted input against jansson). */
#ifndef RTM_FRAMES_FAST_H
#define RTM_FRAMES_FAST_H

#include "protocol.h"

#include <stddef.h>

struct frame_fast {
    const char *type; /* "send" or "publish" */
    /* send's "to" or publish's "channel", NUL-terminated, valid by its field's rule */
    char target[RTM_MAX_CHANNEL > RTM_MAX_PEER_ID ? RTM_MAX_CHANNEL + 1 : RTM_MAX_PEER_ID + 1];
    char rid[RTM_MAX_REQUEST_ID * 4 + 1]; /* "" when has_rid is 0 */
    int has_rid;
    const char *data; /* the raw JSON text of data, inside the frame */
    size_t dlen;
};

/* 1 when text[0..len) is a plain flat object of exactly the members of a
 * send or publish frame (requestId optional), f filled; 0: use jansson. */
int frame_fast_scan(const char *text, size_t len, struct frame_fast *f);

#endif

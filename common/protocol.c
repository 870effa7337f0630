/* protocol.c: the few rules of the wire protocol that are code, not constants. */
#include "protocol.h"

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

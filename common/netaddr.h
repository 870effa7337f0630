/* netaddr.h: client addresses behind reverse proxies: IP/CIDR lists and the
 * X-Forwarded-For rule. Pure functions, no I/O, any thread.
 *
 * X-Forwarded-For is believed only from a trusted proxy (the TCP peer is in
 * trusted-proxies); the client is then the rightmost address in the header
 * that is not itself a trusted proxy, because each proxy appends what it saw
 * and everything to the left of the first untrusted hop was written by the
 * client. Anything unparsable makes the answer the TCP peer. */
#ifndef RTM_NETADDR_H
#define RTM_NETADDR_H

#include <stddef.h>

/* An address or CIDR block ("10.0.0.0/8", "::1", "fd00::/8"). */
struct rtm_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
};

/* Parses one entry; 0 or -1. */
int rtm_cidr_parse(const char *s, struct rtm_cidr *out);
/* 1 when ip (text) lies in one of the n blocks, else 0 (also for a bad ip). */
int rtm_cidr_match(const struct rtm_cidr *list, size_t n, const char *ip);
/* Writes the client's address into out (NUL-terminated): peer unless peer is
 * trusted and xff (may be NULL) names an untrusted hop. */
void rtm_client_addr(const struct rtm_cidr *trusted, size_t n, const char *peer, const char *xff, char *out,
                     size_t outlen);

#endif

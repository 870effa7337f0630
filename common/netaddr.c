/* netaddr.c: IP/CIDR matching and the X-Forwarded-For rule (netaddr.h). */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rtm_cidr_parse(const char *s, struct rtm_cidr *out)
{
    char buf[64];
    if (!s || strlen(s) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    memset(out, 0, sizeof *out);
    int max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > max) return -1;
        out->bits = (int)b;
    }
    return 0;
}

static int in_block(const struct rtm_cidr *c, int family, const unsigned char *a)
{
    if (c->family != family) return 0;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0) return 0;
    if (!rest) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (a[full] & mask);
}

int rtm_cidr_match(const struct rtm_cidr *list, size_t n, const char *ip)
{
    unsigned char a[16] = {0};
    int family;
    if (!ip) return 0;
    if (inet_pton(AF_INET, ip, a) == 1) family = AF_INET;
    else if (inet_pton(AF_INET6, ip, a) == 1) family = AF_INET6;
    else return 0;
    /* A dual-stack socket names an IPv4 client ::ffff:a.b.c.d: it is the same host as
     * a.b.c.d, so it matches IPv4 blocks (as common/bind.c compares it) and stays
     * matchable by an explicit ::ffff:0:0/96 block too. */
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int mapped = family == AF_INET6 && !memcmp(a, v4mapped, sizeof v4mapped);
    for (size_t i = 0; i < n; i++) {
        if (in_block(&list[i], family, a)) return 1;
        if (mapped && in_block(&list[i], AF_INET, a + 12)) return 1;
    }
    return 0;
}

static int valid_ip(const char *ip)
{
    unsigned char a[16];
    return inet_pton(AF_INET, ip, a) == 1 || inet_pton(AF_INET6, ip, a) == 1;
}

void rtm_client_addr(const struct rtm_cidr *trusted, size_t n, const char *peer, const char *xff, char *out,
                     size_t outlen)
{
    snprintf(out, outlen, "%s", peer ? peer : "");
    if (!xff || !n || !rtm_cidr_match(trusted, n, peer)) return;
    /* right to left over the comma-separated hops */
    size_t len = strlen(xff);
    while (len) {
        size_t end = len;
        while (len && xff[len - 1] != ',') len--;
        size_t start = len;
        if (len) len--; /* past the comma */
        while (start < end && (xff[start] == ' ' || xff[start] == '\t')) start++;
        while (end > start && (xff[end - 1] == ' ' || xff[end - 1] == '\t')) end--;
        char hop[64];
        if (end - start == 0 || end - start >= sizeof hop) return; /* malformed: the peer it is */
        memcpy(hop, xff + start, end - start);
        hop[end - start] = '\0';
        if (!valid_ip(hop)) return;
        if (!rtm_cidr_match(trusted, n, hop)) {
            snprintf(out, outlen, "%s", hop);
            return;
        }
        snprintf(out, outlen, "%s", hop); /* a trusted hop: keep walking left */
    }
}

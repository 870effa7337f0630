/* metrics.c: fixed-bucket histograms and the Prometheus text renderer. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t rtm_counters[RTM_M_COUNT];
double rtm_gauges[RTM_G_COUNT];

/* Buckets in seconds: 100 µs to 60 s covers both HTTP latency and resume gaps. */
static const double bucket_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
                                   30,     60};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

static struct {
    uint64_t buckets[N_BUCKETS];
    uint64_t count;
    double sum;
} histograms[RTM_H_COUNT];

void rtm_histogram_observe(enum rtm_histogram_id id, double seconds)
{
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (seconds <= bucket_le[i]) histograms[id].buckets[i]++;
    histograms[id].count++;
    histograms[id].sum += seconds;
}

struct out {
    char *s;
    size_t len, cap;
    int oom; /* a line could not be added: the whole rendering fails (no partial scrape) */
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->s ? o->s + o->len : NULL, o->s ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (o->s && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(o->s, cap);
        if (!s) {
            o->oom = 1;
            return;
        }
        o->s = s;
        o->cap = cap;
    }
}

char *rtm_metrics_render(void)
{
    struct out o = {0};
    const char *last = "";
#define RTM_X(id, name, labels, help)                                                              \
    if (strcmp(last, name) != 0) {                                                                 \
        put(&o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);                           \
        last = name;                                                                               \
    }                                                                                              \
    if (*(labels)) put(&o, "%s{%s} %llu\n", name, labels, (unsigned long long)rtm_counters[RTM_M_##id]); \
    else put(&o, "%s %llu\n", name, (unsigned long long)rtm_counters[RTM_M_##id]);
    RTM_COUNTERS(RTM_X)
#undef RTM_X
#define RTM_X(id, name, help)                                                                      \
    put(&o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);                             \
    for (size_t i = 0; i < N_BUCKETS; i++)                                                         \
        put(&o, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i],                                 \
            (unsigned long long)histograms[RTM_H_##id].buckets[i]);                               \
    put(&o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,                     \
        (unsigned long long)histograms[RTM_H_##id].count, name, histograms[RTM_H_##id].sum, name, \
        (unsigned long long)histograms[RTM_H_##id].count);
    RTM_HISTOGRAMS(RTM_X)
#undef RTM_X
#define RTM_X(id, name, help)                                                                      \
    put(&o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, rtm_gauges[RTM_G_##id]);
    RTM_GAUGES(RTM_X)
#undef RTM_X
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    return o.s;
}

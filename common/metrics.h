/* metrics.h: process-wide counters and histograms, rendered as Prometheus text
 * at GET /metrics on the backend listener.
 *
 * The set is fixed at compile time (the X-macro lists below): adding a metric
 * is one line here, no registration at run time. Loop thread only: counters
 * are plain integers, not atomics. */
#ifndef RTM_METRICS_H
#define RTM_METRICS_H

#include <stdint.h>

/* X(id, prometheus name, label string or "", help) */
#define RTM_COUNTERS(X)                                                                            \
    X(TOKENS_MINTED, "rtm_tokens_minted_total", "", "Tokens issued by POST /v1/tokens")            \
    X(TURN_CREDENTIALS, "rtm_turn_credentials_total", "", "TURN credentials issued")               \
    X(HTTP_2XX, "rtm_http_requests_total", "status=\"2xx\"", "Backend API requests by status class") \
    X(HTTP_4XX, "rtm_http_requests_total", "status=\"4xx\"", "")                                   \
    X(HTTP_5XX, "rtm_http_requests_total", "status=\"5xx\"", "")                                   \
    X(WS_CONNECTS, "rtm_ws_connections_total", "", "WebSocket sessions welcomed")                  \
    X(WS_REJECTED, "rtm_ws_rejected_total", "", "WebSocket upgrades closed before welcome")        \
    X(FRAMES_IN, "rtm_frames_in_total", "", "Frames received from clients")                        \
    X(FRAMES_OUT, "rtm_frames_out_total", "", "Frames queued to clients")                          \
    X(SLOW_CONSUMERS, "rtm_slow_consumer_closes_total", "", "Sessions closed with 1013")            \
    X(REFRESH_OK, "rtm_refresh_total", "result=\"ok\"", "In-band token refreshes")                 \
    X(REFRESH_REFUSED, "rtm_refresh_total", "result=\"refused\"", "")                              \
    X(RESUME_HIT, "rtm_resume_total", "result=\"hit\"", "Session resumes")                         \
    X(RESUME_EXPIRED, "rtm_resume_total", "result=\"expired\"", "")                                \
    X(DIRECT_QUEUED, "rtm_resume_direct_total", "event=\"queued\"", "Direct messages held for a resuming peer") \
    X(DIRECT_DELIVERED, "rtm_resume_direct_total", "event=\"delivered\"", "")                      \
    X(DIRECT_DROPPED, "rtm_resume_direct_total", "event=\"dropped\"", "")

#define RTM_HISTOGRAMS(X)                                                                          \
    X(MINT_LATENCY, "rtm_http_request_duration_seconds", "Backend API request latency")            \
    X(RESUME_GAP, "rtm_resume_gap_seconds", "Disconnection gaps covered by resumes")

enum rtm_counter_id {
#define RTM_X(id, name, labels, help) RTM_M_##id,
    RTM_COUNTERS(RTM_X)
#undef RTM_X
    RTM_M_COUNT
};

enum rtm_histogram_id {
#define RTM_X(id, name, help) RTM_H_##id,
    RTM_HISTOGRAMS(RTM_X)
#undef RTM_X
    RTM_H_COUNT
};

extern uint64_t rtm_counters[RTM_M_COUNT];

static inline void rtm_metric_inc(enum rtm_counter_id id, uint64_t by) { rtm_counters[id] += by; }
/* Records one observation in seconds. */
void rtm_histogram_observe(enum rtm_histogram_id id, double seconds);

/* Gauges a module wants exported are passed in at render time. */
struct rtm_gauge {
    const char *name, *help;
    double value;
};

/* Renders every metric (and the given gauges) as Prometheus text 0.0.4.
 * Returns a malloc'd NUL-terminated string; the caller frees it. */
char *rtm_metrics_render(const struct rtm_gauge *gauges, int n_gauges);

#endif

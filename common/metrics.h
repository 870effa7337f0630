/* metrics.h: process-wide counters, gauges and histograms, rendered as
 * Prometheus text at GET /metrics on the backend listener.
 *
 * The set is fixed at compile time (the X-macro lists below): adding a metric
 * is one line here, no registration at run time, and one row in
 * docs/metrics.md (tests/integration/metrics_reference.test.mjs compares the
 * two). Loop thread only: values are plain numbers, not atomics. Gauges are
 * set by their owner just before rendering (brk_metrics_gauges), so nothing
 * on a hot path keeps them current. */
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
    X(DIRECT_DROPPED, "rtm_resume_direct_total", "event=\"dropped\"", "")                         \
    X(HANDSHAKES_REFUSED_PER_IP, "rtm_handshakes_refused_total", "reason=\"per_ip\"",              \
      "Public connections refused at accept by the handshake budget")                              \
    X(HANDSHAKES_REFUSED_TOTAL, "rtm_handshakes_refused_total", "reason=\"total\"", "")          \
    X(CLUSTER_OUT, "rtm_cluster_messages_total", "direction=\"out\"", "Messages sent to / received from other nodes through Redis") \
    X(CLUSTER_IN, "rtm_cluster_messages_total", "direction=\"in\"", "")                          \
    X(CLUSTER_UNAVAILABLE, "rtm_cluster_unavailable_total", "", "Requests answered cluster_unavailable (Redis could not take them)") \
    X(CLUSTER_RECONNECTS, "rtm_cluster_redis_reconnects_total", "", "Redis shard reconnects (after a loss, a missed deadline or probe)") \
    X(CLUSTER_PROBES_MISSED, "rtm_cluster_redis_faults_total", "fault=\"probe\"", "Redis shard restarts by cause") \
    X(CLUSTER_DEADLINES_MISSED, "rtm_cluster_redis_faults_total", "fault=\"deadline\"", "")   \
    X(CLUSTER_CONN_LOST, "rtm_cluster_redis_faults_total", "fault=\"closed\"", "")                             \
    X(CLUSTER_ASK_COMPLETE, "rtm_cluster_questions_total", "result=\"complete\"", "Questions to the other nodes (REST results across nodes) by outcome") \
    X(CLUSTER_ASK_INCOMPLETE, "rtm_cluster_questions_total", "result=\"incomplete\"", "")          \
    X(CLUSTER_ASK_NOT_SENT, "rtm_cluster_questions_total", "result=\"not_sent\"", "")              \
    X(CLUSTER_PRESENCE_REWRITTEN, "rtm_cluster_presence_repair_total", "work=\"rewritten\"",         \
      "Presence repair: entries written again after a shard came back, tables fetched again, member changes found by comparing") \
    X(CLUSTER_PRESENCE_REFETCHED, "rtm_cluster_presence_repair_total", "work=\"refetched\"", "")     \
    X(CLUSTER_PRESENCE_REPAIRED, "rtm_cluster_presence_repair_total", "work=\"changes\"", "")        \
    X(SESSION_ROWS_DROPPED, "rtm_session_rows_dropped_total", "", "Session rows dropped while the store lagged (session-rows-max)")

#define RTM_HISTOGRAMS(X)                                                                          \
    X(MINT_LATENCY, "rtm_http_request_duration_seconds", "Backend API request latency")            \
    X(RESUME_GAP, "rtm_resume_gap_seconds", "Disconnection gaps covered by resumes")               \
    X(WELCOME, "rtm_ws_welcome_seconds", "From the WebSocket upgrade to the welcome frame written") \
    X(DIRECT_SEND, "rtm_direct_send_seconds", "From a send frame read to the direct frame written to a recipient") \
    X(REDIS_RTT, "rtm_cluster_redis_round_trip_seconds", "Redis command round trips (cluster mode)")

/* X(id, prometheus name, help) */
#define RTM_GAUGES(X)                                                                              \
    X(SESSIONS, "rtm_ws_sessions", "WebSocket sessions open")                                      \
    X(HELD_PLACES, "rtm_held_places", "Resume places held for dropped extension sessions")         \
    X(CHANNELS, "rtm_channels", "Channels with at least one subscriber or pending presence")       \
    X(SUBSCRIPTIONS, "rtm_subscriptions", "Channel subscriptions of open sessions")                \
    X(QUEUE_BYTES, "rtm_queue_bytes", "Bytes queued to clients and not yet written")               \
    X(STORE_WRITE_LAG, "rtm_store_write_lag_seconds", "Age of the oldest session row not yet written to the store") \
    X(HANDSHAKES, "rtm_public_handshakes", "Public connections not yet WebSocket sessions (counted against max-handshakes)") \
    X(CLUSTER_SHARDS_UP, "rtm_cluster_shards_up", "Redis shards up: connected, probed, resubscribed (cluster mode)") \
    X(CLUSTER_SUBSCRIPTIONS, "rtm_cluster_subscriptions", "Redis channels this node holds a subscription to (cluster mode)")

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

enum rtm_gauge_id {
#define RTM_X(id, name, help) RTM_G_##id,
    RTM_GAUGES(RTM_X)
#undef RTM_X
    RTM_G_COUNT
};

extern uint64_t rtm_counters[RTM_M_COUNT];
extern double rtm_gauges[RTM_G_COUNT]; /* set by their owners before rendering; 0 when absent */

static inline void rtm_metric_inc(enum rtm_counter_id id, uint64_t by) { rtm_counters[id] += by; }
/* Records one observation in seconds. */
void rtm_histogram_observe(enum rtm_histogram_id id, double seconds);

/* Renders every metric as Prometheus text 0.0.4. Returns a malloc'd
 * NUL-terminated string (NULL when out of memory); the caller frees it. */
char *rtm_metrics_render(void);

#endif

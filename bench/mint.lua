-- mint.lua: wrk script for bench/mint.sh: POST /v1/tokens over keep-alive.
-- The key's secret comes from the environment (never argv).
wrk.method = "POST"
wrk.path = "/v1/tokens"
wrk.body = '{"peerId":"bench-peer","channels":["room-1/**"],"peerMetadata":{"name":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("RTM_BENCH_SECRET") or "")

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("mint: %.0f tokens/s  p50 %.2f ms  p99 %.2f ms  (%d requests in %.1f s, %d errors)\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, secs, bad))
end

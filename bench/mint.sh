#!/bin/bash
# mint.sh: token minting throughput of the backend API (issue 2's benchmark).
# Starts rtmd on a temporary database with one secret key, pinned to core 0,
# and drives POST /v1/tokens with wrk over keep-alive from core 1. Prints
# tokens/s and p50/p99 latency. Knobs: RTM_BENCH_SECONDS (10),
# RTM_BENCH_CONNECTIONS (64), RTM_BENCH_PERF=1 records a perf profile of
# rtmd into the temporary directory and prints its top symbols.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RTM_BUILD:-build}
secs=${RTM_BENCH_SECONDS:-10}
conns=${RTM_BENCH_CONNECTIONS:-64}
for t in wrk taskset; do
    command -v $t >/dev/null || { echo "mint.sh: $t is missing (apt-get install wrk util-linux)"; exit 1; }
done
[ -x "$B/rtmd" ] && [ -x "$B/rtm" ] || { echo "mint.sh: build first: make B=$B"; exit 1; }

dir=$(mktemp -d /tmp/rtm-bench-mint.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
pub=$(port); back=$(port)
"$B/rtm" key create --db "$dir/rtm.db" --app bench > "$dir/key.json" 2>/dev/null
secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret"])' "$dir/key.json")

cores=$(nproc)
pin_d=""; pin_w=""
if [ "$cores" -ge 2 ]; then pin_d="taskset -c 0"; pin_w="taskset -c 1"; fi

RTM_TURN_SECRETS=$(openssl rand -hex 16) \
RTM_TURN_URLS="stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp,turns:127.0.0.1:5349?transport=tcp" \
RTM_LOG_LEVEL=warn \
    $pin_d "$B/rtmd" --db "$dir/rtm.db" --public "127.0.0.1:$pub" --backend "127.0.0.1:$back" \
    > "$dir/rtmd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$back/healthz" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -sf "http://127.0.0.1:$back/healthz" >/dev/null || { echo "mint.sh: rtmd did not start:"; cat "$dir/rtmd.log"; exit 1; }

# One request first: a failing setup must not be reported as a throughput.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H @- "http://127.0.0.1:$back/v1/tokens" \
       -d '{"peerId":"bench-peer"}' <<< "Authorization: Bearer $secret")
[ "$code" = 200 ] || { echo "mint.sh: POST /v1/tokens answered $code"; cat "$dir/rtmd.log"; exit 1; }

perf_pid=""
if [ -n "${RTM_BENCH_PERF:-}" ] && command -v perf >/dev/null; then
    perf record -g -o "$dir/perf.data" -p "$pid" >/dev/null 2>&1 &
    perf_pid=$!
fi
# rtmd's own CPU time per token: the throughput one core would give if
# nothing else ran on it (other processes on a shared machine skew wall time).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu_ticks)
echo "mint: rtmd on core 0, wrk (1 thread, $conns connections, keep-alive) on core 1, ${secs}s"
RTM_BENCH_SECRET=$secret $pin_w wrk -t1 -c"$conns" -d"${secs}s" -s bench/mint.lua \
    "http://127.0.0.1:$back" > "$dir/wrk.out" 2>&1 || { cat "$dir/wrk.out"; exit 1; }
c1=$(cpu_ticks)
grep -E '^mint:|Non-2xx|Socket errors' "$dir/wrk.out" || { cat "$dir/wrk.out"; exit 1; }
reqs=$(sed -n 's/.*(\([0-9]*\) requests in.*/\1/p' "$dir/wrk.out")
hz=$(getconf CLK_TCK)
awk -v r="$reqs" -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { if (t > 0 && r > 0)
    printf "mint: rtmd used %.2f CPU-s: %.1f us of CPU per token = %.0f tokens/s per fully used core\n",
        t / hz, t / hz * 1e6 / r, r / (t / hz) }'
if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    perf report -i "$dir/perf.data" --no-children --sort dso,sym --percent-limit 1 --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -40
    [ -n "${RTM_BENCH_PERF_KEEP:-}" ] && cp "$dir/perf.data" "$RTM_BENCH_PERF_KEEP"
fi
if grep -q 'Non-2xx' "$dir/wrk.out"; then echo "mint.sh: some requests failed"; exit 1; fi

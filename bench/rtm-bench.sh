#!/bin/bash
# rtm-bench.sh: the broker under load from `rtm bench` (issues 5 and 14).
# Every workload gets a fresh rtmd pinned to core 0 (rate limits off) and the
# load generator on core 1, both with 10,000+ open files; tokens are signed
# locally by the generator (--key-id), so minting does not count. Each run
# prints the broker's CPU % and the generator's (so a generator at 100 % of
# its core says the figure is the generator's limit, not the broker's):
#   pairs-paced       500 pairs (1,000 connections) at 5,000 round trips/s
#                     for 10 s: one-way latency p50/p99, plus a perf profile
#                     of rtmd (top 10 symbols; skipped without perf)
#   pairs-paced-idle  the same with 10,000 idle authenticated sessions beside
#   connect           10,000 connections: connects/s, broker RSS per session
#   fanout            1 publisher x 1,000 and x 5,000 subscribers, 256 B,
#                     closed loop: deliveries/s
#   pairs             500 pairs closed loop (round trips; issue 5's row)
# Knobs: RTM_BENCH_RTMD (the rtmd binary to measure, default $B/rtmd: point it
# at an older build for a "before"), RTM_BENCH_ONLY (space-separated workload
# names), RTM_BENCH_RATE (5000), RTM_BENCH_SECONDS (10), RTM_BENCH_PAIRS (500),
# RTM_BENCH_IDLE (10000), RTM_BENCH_CONNS (10000), RTM_BENCH_FANOUT_MSGS
# (1000; x 1,000 subscribers), RTM_BENCH_FANOUT5K_MSGS (300; x 5,000),
# RTM_BENCH_PAIRS_MSGS (100), RTM_BENCH_PERF (1; 0 skips the profile).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RTM_BUILD:-build}
RTMD=${RTM_BENCH_RTMD:-$B/rtmd}
[ -x "$RTMD" ] && [ -x "$B/rtm" ] || { echo "rtm-bench.sh: build first: make B=$B"; exit 1; }
command -v taskset >/dev/null || { echo "rtm-bench.sh: taskset is missing (apt-get install util-linux)"; exit 1; }

rate=${RTM_BENCH_RATE:-5000}
secs=${RTM_BENCH_SECONDS:-10}
pairs=${RTM_BENCH_PAIRS:-500}
idle=${RTM_BENCH_IDLE:-10000}
conns=${RTM_BENCH_CONNS:-10000}
only=${RTM_BENCH_ONLY:-pairs-paced pairs-paced-idle connect fanout-1000 fanout-5000 pairs}
# every connection is one fd in the broker and one in the generator
need=$((idle + 2 * pairs + 1024))
[ "$conns" -gt "$need" ] && need=$((conns + 1024))
[ $((5000 + 1024)) -gt "$need" ] && need=$((5000 + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "rtm-bench.sh: open-file hard limit $hard < $need: idle and connect are cut to fit"
    idle=$((hard - 2 * pairs - 1024)); conns=$((hard - 1024))
fi
ulimit -n "$([ "$hard" = unlimited ] && echo 65536 || echo "$hard")"

dir=$(mktemp -d /tmp/rtm-bench-sdk.XXXXXX)
pid=""
stop_rtmd() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
    pid=""
}
cleanup() { stop_rtmd; rm -rf "$dir"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
"$B/rtm" key create --db "$dir/rtm.db" --app bench > "$dir/key.json"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$dir/key.json" "$1"; }
# secrets reach the generator through the environment, never argv
export RTM_KEY_ID RTM_KEY RTM_URL
RTM_KEY_ID=$(field id)
RTM_KEY=$(field secret)

pin_d=""; pin_g=""
if [ "$(nproc)" -ge 2 ]; then pin_d="taskset -c 0"; pin_g="taskset -c 1"; fi
turn_secret=$(openssl rand -hex 16)

# The generator is one address with up to 1,000 handshakes in flight: lift
# the per-address handshake budget where this rtmd has one (older builds
# refuse unknown keys).
extra=""
if "$RTMD" --help 2>&1 | grep -q -- --max-handshakes-per-ip; then
    extra=', "max-handshakes": 1000, "max-handshakes-per-ip": 1000'
fi
start_rtmd() {
    local pub back
    pub=$(port); back=$(port)
    RTM_URL="ws://127.0.0.1:$pub"
    cat > "$dir/rtm.json" <<JSON
{"public": "127.0.0.1:$pub", "backend": "127.0.0.1:$back", "db": "$dir/rtm.db",
 "rate-frames-per-second": 0, "rate-connects-per-ip-per-minute": 0, "log-level": "warn"$extra}
JSON
    RTM_TURN_SECRETS=$turn_secret RTM_TURN_URLS="stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp" \
        $pin_d "$RTMD" --config "$dir/rtm.json" > "$dir/rtmd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$back/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "rtm-bench.sh: rtmd did not start:"; cat "$dir/rtmd.log"; exit 1
}

perf_on=0
if [ "${RTM_BENCH_PERF:-1}" != 0 ]; then
    if command -v perf >/dev/null && perf record -q -o /dev/null -- true >/dev/null 2>&1; then perf_on=1
    else echo "rtm-bench.sh: perf unavailable: no profile (apt-get install linux-perf; perf_event_paranoid)"; fi
fi
# Records rtmd's measured phase: setup (1,000 connects, plus the idle ones)
# is skipped by starting late, and the recording stops before the run ends.
profile_start() { # delay_s record_s
    [ "$perf_on" = 1 ] || return 0
    ( sleep "$1"; perf record -g -q -o "$dir/perf.data" -p "$pid" -- sleep "$2" >/dev/null 2>&1 ) &
    perf_job=$!
}
profile_report() {
    [ "$perf_on" = 1 ] || return 0
    wait "$perf_job" 2>/dev/null || true
    [ -s "$dir/perf.data" ] || { echo "(no profile recorded)"; return 0; }
    echo "rtmd profile, top 10 symbols (self, % of rtmd's samples):"
    # awk reads to the end: head would make perf die of SIGPIPE under pipefail
    perf report -i "$dir/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | awk 'NR <= 10 { sub(/( +-)* *$/, ""); print }' || true
    [ -n "${RTM_BENCH_PERF_KEEP:-}" ] && cp "$dir/perf.data" "$RTM_BENCH_PERF_KEEP"
    rm -f "$dir/perf.data"
}

# the figures mean little on a busy machine: say how busy it was, every run
rc=0
run() { # name, rtm bench args...
    local name=$1; shift
    case " $only " in *" $name "*) ;; *) return 0 ;; esac
    start_rtmd
    echo "--- $name: rtm bench $* (load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"
    $pin_g "$B/rtm" bench "$@" --pid "$pid" || rc=1
    if ! kill -0 "$pid" 2>/dev/null; then echo "rtm-bench.sh: rtmd died:"; tail -20 "$dir/rtmd.log"; rc=1; fi
    stop_rtmd
}
echo "rtmd: $RTMD"
if case " $only " in *" pairs-paced "*) true ;; *) false ;; esac; then
    start_rtmd
    echo "--- pairs-paced: rtm bench pairs --pairs $pairs --rate $rate --seconds $secs (load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"
    profile_start 3 $((secs > 5 ? secs - 4 : 1))
    $pin_g "$B/rtm" bench pairs --pairs "$pairs" --rate "$rate" --seconds "$secs" --pid "$pid" || rc=1
    profile_report
    stop_rtmd
fi
run pairs-paced-idle pairs --pairs "$pairs" --rate "$rate" --seconds "$secs" --idle "$idle"
run connect connect --conns "$conns"
run fanout-1000 fanout --pubs 1 --subs 1000 --size 256 --msgs "${RTM_BENCH_FANOUT_MSGS:-1000}"
run fanout-5000 fanout --pubs 1 --subs 5000 --size 256 --msgs "${RTM_BENCH_FANOUT5K_MSGS:-300}"
run pairs pairs --pairs "$pairs" --msgs "${RTM_BENCH_PAIRS_MSGS:-100}"
exit $rc

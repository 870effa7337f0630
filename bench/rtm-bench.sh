#!/bin/bash
# rtm-bench.sh: rtmd and a raw epoll WebSocket relay under the same load, in
# one run (issues 5 and 14; bench/README.md says how to read it).
# Every run gets a fresh server pinned to core 0 (rtmd: rate limits off; the
# raw relay: build/rtm-bench-raw, bench/rawws.c) and `rtm bench` on core 1,
# both with 16,000+ open files; tokens are signed locally by the generator
# (--key-id), so minting does not count. Workloads, each against rtmd and
# then the raw relay, RTM_BENCH_REPEAT times (3) in turn:
#   pairs-paced       500 pairs (1,000 connections) at 5,000 round trips/s
#                     for 10 s: one-way latency p50/p99; the first rtmd run
#                     also records a perf profile (top 10 symbols), as does
#                     fanout-1000's (3 s of the fan-out)
#   pairs-paced-idle  the same with 10,000 idle sessions beside
#                     (authenticated on rtmd)
#   connect           10,000 connections, 256 upgrades in flight: connects/s,
#                     server RSS per session
#   fanout-1000       1 publisher x 1,000 subscribers, 256 B, closed loop: deliveries/s
#   fanout-5000       1 x 5,000
#   pairs             500 pairs closed loop (round trips; issue 5's row)
# Each run prints rtm bench's own table; the end is a summary: the median of
# each figure for rtmd and for raw, the ratio rtmd/raw, and the CPU of the
# server and of the generator (% of a core, and CPU microseconds per event:
# the per-event cost barely moves with other load on the machine, the % does).
# Total: about 6 minutes on a quiet 2-core machine with the defaults.
# Knobs: RTM_BENCH_RTMD (the rtmd binary, default $B/rtmd: an older build for
# a "before"), RTM_BENCH_ONLY (space-separated workload names),
# RTM_BENCH_SERVERS ("rtmd raw"), RTM_BENCH_REPEAT (3), RTM_BENCH_THREADS
# (generator threads, 1: on 2 cores the generator has one core however many
# threads it runs), RTM_BENCH_RATE (5000), RTM_BENCH_SECONDS (10),
# RTM_BENCH_PAIRS (500), RTM_BENCH_IDLE (10000), RTM_BENCH_CONNS (10000),
# RTM_BENCH_FANOUT_MSGS (3000; x 1,000 subscribers), RTM_BENCH_FANOUT5K_MSGS
# (600; x 5,000), RTM_BENCH_PAIRS_MSGS (100), RTM_BENCH_PERF (1; 0 skips the
# profiles), RTM_BENCH_PERF_KEEP (a path prefix: keeps PREFIX.<workload>, perf.data).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RTM_BUILD:-build}
RTMD=${RTM_BENCH_RTMD:-$B/rtmd}
RAW=$B/rtm-bench-raw
[ -x "$RTMD" ] && [ -x "$B/rtm" ] || { echo "rtm-bench.sh: build first: make B=$B"; exit 1; }
command -v taskset >/dev/null || { echo "rtm-bench.sh: taskset is missing (apt-get install util-linux)"; exit 1; }

rate=${RTM_BENCH_RATE:-5000}
secs=${RTM_BENCH_SECONDS:-10}
pairs=${RTM_BENCH_PAIRS:-500}
idle=${RTM_BENCH_IDLE:-10000}
conns=${RTM_BENCH_CONNS:-10000}
reps=${RTM_BENCH_REPEAT:-3}
threads=${RTM_BENCH_THREADS:-1}
servers=${RTM_BENCH_SERVERS:-rtmd raw}
only=${RTM_BENCH_ONLY:-pairs-paced pairs-paced-idle connect fanout-1000 fanout-5000 pairs}
[ -x "$RAW" ] || { echo "rtm-bench.sh: no $RAW (make B=$B all builds it): rtmd only"; servers=rtmd; }
# every connection is one fd in the server and one in the generator
need=$((idle + 2 * pairs + 1024))
[ "$conns" -gt "$need" ] && need=$((conns + 1024))
[ $((5000 + 1024)) -gt "$need" ] && need=$((5000 + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "rtm-bench.sh: open-file hard limit $hard < $need: idle and connect are cut to fit"
    idle=$((hard - 2 * pairs - 1024)); conns=$((hard - 1024))
fi
ulimit -n "$([ "$hard" = unlimited ] && echo 65536 || echo "$hard")"

. bench/common.bash
dir=$bench_dir
pid=""
stop_server() {
    [ -n "$pid" ] && stop_pid "$pid"
    pid=""
}

# The generator is one address with up to 256 upgrades in flight: lift the
# per-address handshake budget where this rtmd has one (older builds refuse
# unknown keys).
extra=""
if "$RTMD" --help 2>&1 | grep -q -- --max-handshakes-per-ip; then
    extra=', "max-handshakes": 1000, "max-handshakes-per-ip": 1000'
fi
export RTM_URL
start_rtmd() {
    start_rtmd_node "$RTMD" "$extra"
    pid=$started_pid; RTM_URL=$started_url; server_log=$started_log
}
start_rawrelay() {
    start_raw
    pid=$started_pid; RTM_URL=$started_url; server_log=$started_log
}

perf_on=0
if [ "${RTM_BENCH_PERF:-1}" != 0 ]; then
    if command -v perf >/dev/null && perf record -q -o /dev/null -- true >/dev/null 2>&1; then perf_on=1
    else echo "rtm-bench.sh: perf unavailable: no profile (apt-get install linux-perf; perf_event_paranoid)"; fi
fi
# Records rtmd's measured phase: setup (1,000 connects, plus the idle ones)
# is skipped by starting late, and the recording stops before the run ends.
perf_job=""
profile_start() { # delay_s record_s
    ( sleep "$1"; perf record -g -q -o "$dir/perf.data" -p "$pid" -- sleep "$2" >/dev/null 2>&1 ) &
    perf_job=$!
}
profile_report() {
    wait "$perf_job" 2>/dev/null || true
    perf_job=""
    [ -s "$dir/perf.data" ] || { echo "(no profile recorded)"; return 0; }
    echo "rtmd profile ($1), top 10 symbols (self, % of rtmd's samples):"
    # awk reads to the end: head would make perf die of SIGPIPE under pipefail
    perf report -i "$dir/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | awk 'NR <= 10 { sub(/( +-)* *$/, ""); print }' || true
    [ -n "${RTM_BENCH_PERF_KEEP:-}" ] && cp "$dir/perf.data" "$RTM_BENCH_PERF_KEEP.$1"
    rm -f "$dir/perf.data"
}

# the figures mean little on a busy machine: say how busy it was, every run
rc=0
profiled=" "
run() { # workload, rtm bench args...
    local name=$1 server; shift
    case " $only " in *" $name "*) ;; *) return 0 ;; esac
    for server in $servers; do
        if [ "$server" = raw ]; then start_rawrelay; else start_rtmd; fi
        echo "--- $name on $server ($rep_now/$reps): rtm bench $* --server $server --threads $threads ($(loadavg))"
        local prof=0
        # one profile of rtmd per profiled workload, from its first round
        if [ "$perf_on" = 1 ] && [ "$server" = rtmd ] && [[ "$profiled" != *" $name "* ]]; then
            case $name in
            pairs-paced) prof=1; profile_start 3 $((secs > 5 ? secs - 4 : 1)) ;;
            fanout-1000) prof=1; profile_start 2 3 ;;
            esac
            profiled="$profiled$name "
        fi
        if $pin_g "$B/rtm" bench "$@" --server "$server" --threads "$threads" --pid "$pid" > "$dir/out" 2> "$dir/err"; then
            cat "$dir/out"
            record "$name" "$dir/results.jsonl" < "$dir/out"
        else
            cat "$dir/out"; tail -5 "$dir/err"; rc=1
        fi
        [ "$prof" = 1 ] && profile_report "$name"
        if ! kill -0 "$pid" 2>/dev/null; then echo "rtm-bench.sh: $server died:"; tail -20 "$server_log"; rc=1; fi
        stop_server
    done
}
echo "rtmd: $RTMD; servers: $servers; $reps rounds; generator threads: $threads"
t_start=$(date +%s)
for rep_now in $(seq "$reps"); do
    run pairs-paced pairs --pairs "$pairs" --rate "$rate" --seconds "$secs"
    run pairs-paced-idle pairs --pairs "$pairs" --rate "$rate" --seconds "$secs" --idle "$idle"
    run connect connect --conns "$conns"
    run fanout-1000 fanout --pubs 1 --subs 1000 --size 256 --msgs "${RTM_BENCH_FANOUT_MSGS:-3000}"
    run fanout-5000 fanout --pubs 1 --subs 5000 --size 256 --msgs "${RTM_BENCH_FANOUT5K_MSGS:-600}"
    run pairs pairs --pairs "$pairs" --msgs "${RTM_BENCH_PAIRS_MSGS:-100}"
done
echo
echo "=== summary: medians of $reps rounds, rtmd against the raw relay ($(loadavg) now; $(( $(date +%s) - t_start )) s)"
[ -s "$dir/results.jsonl" ] && python3 bench/summary.py "$dir/results.jsonl"
exit $rc

#!/bin/bash
# cluster.sh: what cluster mode (issue 15, docs/CLUSTER.md) costs, figures only.
# Part 1, bench/cluster.mjs: a publish's one-way latency and deliveries/s at a
# modest rate, and a direct ping-pong, through Node's ws client.
# Part 2, `rtm bench` (the epoll generator on core 1; every rtmd and the
# redis-server on core 0, so two nodes share one core: compare CPU per event,
# and read "per node" as the load each node carried):
#   fanout-1000  1 publisher x 1,000 subscribers, 256 B, closed loop
#   pairs-paced  500 pairs at 5,000 round trips/s for 5 s, one-way latency
# each on: single (one rtmd, no Redis), 1node (one rtmd through Redis),
# 2nodes (publisher and half the subscribers on node a, half on node b;
# every pair's first end on a, its second on b: every direct crosses nodes).
# Ends with a summary: each figure against single's. About 60 s (part 2 about
# 45 s). Knobs: CLUSTER_BENCH_PARTS ("mjs rtm"), RTM_BENCH_FANOUT_MSGS
# (2000), RTM_BENCH_RATE (5000), RTM_BENCH_SECONDS (5), RTM_BENCH_PAIRS (500).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RTM_BUILD:-build}
parts=${CLUSTER_BENCH_PARTS:-mjs rtm}
command -v redis-server >/dev/null || { echo "cluster bench: redis-server missing (scripts/deps.sh bench)"; exit 1; }
[ -x "$B/rtmd" ] && [ -x "$B/rtm" ] || { echo "cluster bench: build first: make B=$B"; exit 1; }
case " $parts " in *" mjs "*) node bench/cluster.mjs ;; esac
case " $parts " in *" rtm "*) ;; *) exit 0 ;; esac

ulimit -n "$(ulimit -Hn | sed 's/unlimited/65536/')"
. bench/common.bash
msgs=${RTM_BENCH_FANOUT_MSGS:-2000}
rate=${RTM_BENCH_RATE:-5000}
secs=${RTM_BENCH_SECONDS:-5}
pairs=${RTM_BENCH_PAIRS:-500}
res=$bench_dir/cluster.jsonl
extra=', "max-handshakes": 1000, "max-handshakes-per-ip": 1000'
rc=0

# setup NAME: starts the servers of a setup; sets urls/pids for the generator
setup() {
    case $1 in
    single) start_rtmd_node "$B/rtmd" "$extra"; a_pid=$started_pid; a_url=$started_url; b_pid=""; b_url="" ;;
    1node | 2nodes)
        start_redis
        start_rtmd_node "$B/rtmd" "$extra, \"cluster\": \"$redis_url\""; a_pid=$started_pid; a_url=$started_url
        b_pid=""; b_url=""
        if [ "$1" = 2nodes ]; then
            start_rtmd_node "$B/rtmd" "$extra, \"cluster\": \"$redis_url\""; b_pid=$started_pid; b_url=$started_url
        fi ;;
    esac
}

bench_one() { # setup workload rtm-bench-args...
    local s=$1 w=$2; shift 2
    setup "$s"
    local two=()
    [ -n "$b_url" ] && two=(--url2 "$b_url" --pid2 "$b_pid")
    echo "--- $w on $s: rtm bench $* ($(loadavg))"
    if RTM_URL=$a_url $pin_g "$B/rtm" bench "$@" --pid "$a_pid" "${two[@]}" > "$bench_dir/out" 2> "$bench_dir/err"; then
        cat "$bench_dir/out"
        record "$w/$s" "$res" < "$bench_dir/out"
    else
        cat "$bench_dir/out"; tail -5 "$bench_dir/err"; rc=1
    fi
    stop_all
}

t0=$(date +%s)
for s in single 1node 2nodes; do
    bench_one "$s" fanout-1000 fanout --pubs 1 --subs 1000 --size 256 --msgs "$msgs"
    bench_one "$s" pairs-paced pairs --pairs "$pairs" --rate "$rate" --seconds "$secs"
done
echo
echo "=== cluster summary ($(loadavg) now; $(( $(date +%s) - t0 )) s): each against single"
python3 - "$res" <<'PY'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    runs[j['workload']] = j
rows = [('fanout-1000', 'deliveries_per_sec', 'deliveries/s'), ('fanout-1000', 'p50_ms', 'one-way p50 ms'),
        ('pairs-paced', 'p50_ms', 'one-way p50 ms'), ('pairs-paced', 'p99_ms', 'one-way p99 ms')]
def f(x):
    return '-' if x is None else (f'{x:,.0f}' if abs(x) >= 1000 else f'{x:.3f}')
print(f"{'workload':<12} {'figure':<26} {'single':>10} {'1node':>10} {'2nodes':>10} {'2nodes/single':>14}")
for w, k, label in rows + [(w, 'cpu', 'node CPU us/event (a+b)') for w in ('fanout-1000', 'pairs-paced')]:
    v = {}
    for s in ('single', '1node', '2nodes'):
        j = runs.get(f'{w}/{s}')
        if not j:
            v[s] = None
        elif k == 'cpu':
            v[s] = (j.get('broker_cpu_us_per_event') or 0) + (j.get('broker2_cpu_us_per_event') or 0)
        else:
            v[s] = j.get(k)
    r = f"{v['2nodes'] / v['single']:.2f}" if v['2nodes'] is not None and v['single'] else '-'
    print(f"{w:<12} {label:<26} {f(v['single']):>10} {f(v['1node']):>10} {f(v['2nodes']):>10} {r:>14}")
two = runs.get('fanout-1000/2nodes')
if two:
    print(f"2 nodes, fan-out: {f(two['deliveries_per_sec'] / 2)} deliveries/s per node; node CPU a {f(two.get('broker_cpu_pct'))} %, "
          f"b {f(two.get('broker2_cpu_pct'))} % (both on core 0)")
lost = sum(j.get('lost', 0) or 0 for j in runs.values())
print(f"lost in all runs: {lost}")
PY
exit $rc

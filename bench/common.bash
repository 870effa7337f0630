# common.bash: what the bench scripts share (sourced, never run: bench/run.sh
# runs *.sh only). A temporary directory with one store and one key, servers
# started on free loopback ports and stopped by PID, the pinning convention.
# The caller sets B (the build directory) and sources this after `cd` to the
# repository; everything it starts is stopped on exit.

bench_dir=$(mktemp -d /tmp/rtm-bench.XXXXXX)
bench_pids=()
# stop_all: stops every server this script started (by PID)
stop_all() {
    local p
    for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    bench_pids=()
}
bench_cleanup() {
    stop_all
    rm -rf "$bench_dir"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# one key in the shared store; its secret reaches the generator through the
# environment, never argv
"$B/rtm" key create --db "$bench_dir/rtm.db" --app bench > "$bench_dir/key.json"
export RTM_KEY_ID RTM_KEY
RTM_KEY_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$bench_dir/key.json")
RTM_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret"])' "$bench_dir/key.json")
bench_turn_secret=$(openssl rand -hex 16)

# servers on core 0, the generator on core 1 (when there are 2 cores)
pin_d=""; pin_g=""
if [ "$(nproc)" -ge 2 ]; then pin_d="taskset -c 0"; pin_g="taskset -c 1"; fi

# up WHAT LOG COMMAND...: waits (5 s at most) for COMMAND to succeed; else shows LOG and exits
up() {
    local what=$1 log=$2; shift 2
    for _ in $(seq 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench: $what did not start:"; cat "$log"; exit 1
}

loadavg() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"; }

# stop_pid PID: stops one server this script started
stop_pid() {
    local p=$1 keep=() q
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    for q in "${bench_pids[@]}"; do [ "$q" = "$p" ] && continue; keep+=("$q"); done
    bench_pids=("${keep[@]}")
}

# start_rtmd_node BINARY EXTRA_JSON: an rtmd on the shared store, rate limits
# off, pinned; sets started_pid and started_url (ws://...), logs to
# $bench_dir/rtmd-<pid>.log. EXTRA_JSON is appended to the config object
# (", \"key\": value, ...").
start_rtmd_node() {
    local bin=$1 extra=$2 pub back cfg log
    pub=$(port); back=$(port)
    cfg=$(mktemp "$bench_dir/rtm-XXXXXX.json"); log=$cfg.log
    cat > "$cfg" <<JSON
{"public": "127.0.0.1:$pub", "backend": "127.0.0.1:$back", "db": "$bench_dir/rtm.db",
 "rate-frames-per-second": 0, "rate-connects-per-ip-per-minute": 0, "log-level": "warn"$extra}
JSON
    RTM_TURN_SECRETS=$bench_turn_secret RTM_TURN_URLS="stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp" \
        $pin_d "$bin" --config "$cfg" > "$log" 2>&1 &
    started_pid=$!
    bench_pids+=("$started_pid")
    started_url="ws://127.0.0.1:$pub"
    started_log=$log
    up rtmd "$log" curl -sf "http://127.0.0.1:$back/healthz"
}

# start_raw: the raw relay (bench/rawws.c), pinned; sets started_pid, started_url.
start_raw() {
    local p log
    p=$(port); log=$(mktemp "$bench_dir/raw-XXXXXX.log")
    $pin_d "$B/rtm-bench-raw" --port "$p" > "$log" 2>&1 &
    started_pid=$!
    bench_pids+=("$started_pid")
    started_url="ws://127.0.0.1:$p"
    started_log=$log
    up rtm-bench-raw "$log" grep -q listening "$log"
}

# start_redis: a redis-server for cluster mode on a free port, no persistence, pinned
# with the servers; sets redis_url.
start_redis() {
    local p
    p=$(port)
    $pin_d redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no \
        --loglevel warning > "$bench_dir/redis-$p.log" 2>&1 &
    bench_pids+=("$!")
    redis_url="redis://127.0.0.1:$p"
    up redis-server "$bench_dir/redis-$p.log" redis-cli -p "$p" ping
}

# record NAME FILE: rtm bench's last output line (its JSON) + "workload": NAME, appended to FILE
record() {
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read().strip().split("\n")[-1]); j["workload"]=sys.argv[1]; print(json.dumps(j))' \
        "$1" >> "$2" || true
}

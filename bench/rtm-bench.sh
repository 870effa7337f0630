#!/bin/bash
# rtm-bench.sh: the broker under load from `rtm bench` (issue 5's standard
# set): fanout 1 publisher x 1000 subscribers at 256 B, pairs 500, connect
# 10,000. rtmd runs on core 0 with the rate limits off, the load generator
# on core 1, both with `ulimit -n` raised; tokens are signed locally by the
# generator (rtm bench --key-id), so minting does not count. Prints each
# results table and its JSON line. Knobs: RTM_BENCH_FANOUT_MSGS (1000),
# RTM_BENCH_PAIRS_MSGS (100), RTM_BENCH_CONNS (10000).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RTM_BUILD:-build}
[ -x "$B/rtmd" ] && [ -x "$B/rtm" ] || { echo "rtm-bench.sh: build first: make B=$B"; exit 1; }
command -v taskset >/dev/null || { echo "rtm-bench.sh: taskset is missing (apt-get install util-linux)"; exit 1; }

conns=${RTM_BENCH_CONNS:-10000}
# every connection is one fd in the broker and one in the generator
hard=$(ulimit -Hn)
want=$((conns + 1024))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    echo "rtm-bench.sh: open-file hard limit $hard < $want: connect runs with $((hard - 1024)) connections"
    conns=$((hard - 1024))
fi
ulimit -n "$([ "$hard" = unlimited ] && echo 65536 || echo "$hard")"

dir=$(mktemp -d /tmp/rtm-bench-sdk.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
pub=$(port); back=$(port)
"$B/rtm" key create --db "$dir/rtm.db" --app bench > "$dir/key.json"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$dir/key.json" "$1"; }
# secrets reach the generator through the environment, never argv
export RTM_KEY_ID RTM_KEY RTM_URL="ws://127.0.0.1:$pub"
RTM_KEY_ID=$(field id)
RTM_KEY=$(field secret)

pin_d=""; pin_g=""
if [ "$(nproc)" -ge 2 ]; then pin_d="taskset -c 0"; pin_g="taskset -c 1"; fi
cat > "$dir/rtm.json" <<JSON
{"public": "127.0.0.1:$pub", "backend": "127.0.0.1:$back", "db": "$dir/rtm.db",
 "rate-frames-per-second": 0, "rate-connects-per-ip-per-minute": 0, "max-handshakes-per-ip": 1000, "log-level": "warn"}
JSON
RTM_TURN_SECRETS=$(openssl rand -hex 16) RTM_TURN_URLS="stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp" \
    $pin_d "$B/rtmd" --config "$dir/rtm.json" > "$dir/rtmd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$back/healthz" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -sf "http://127.0.0.1:$back/healthz" >/dev/null || { echo "rtm-bench.sh: rtmd did not start:"; cat "$dir/rtmd.log"; exit 1; }

# the figures mean little on a busy machine: say how busy it was
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
rc=0
run() { echo "--- rtm bench $*"; $pin_g "$B/rtm" bench "$@" --pid "$pid" || rc=1; }
run fanout --pubs 1 --subs 1000 --size 256 --msgs "${RTM_BENCH_FANOUT_MSGS:-1000}"
run pairs --pairs 500 --msgs "${RTM_BENCH_PAIRS_MSGS:-100}"
run connect --conns "$conns"
if ! kill -0 "$pid" 2>/dev/null; then echo "rtm-bench.sh: rtmd died:"; tail -20 "$dir/rtmd.log"; rc=1; fi
exit $rc

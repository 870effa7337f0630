#!/bin/bash
# make run: start the whole system on the embedded default (sqlite in var/).
#
# First start creates var/rtm.db, a development app "dev" with one secret key
# (printed once, kept in var/dev-key.json, mode 0600), a random TURN secret
# (in var/rtm.json, mode 0600) and a coturn config; later starts reuse them.
# coturn runs beside rtmd on 127.0.0.1:3478 when it is installed.
set -euo pipefail
B=${1:-build}
cd "$(dirname "$0")/.."
umask 077
mkdir -p var
first=0
if [ ! -f var/dev-key.json ]; then
    first=1
    "$B/rtm" key create --db var/rtm.db --app dev > var/dev-key.json.tmp
    mv var/dev-key.json.tmp var/dev-key.json
fi
if [ ! -f var/rtm.json ]; then
    turn_secret=$(openssl rand -hex 24)
    cat > var/rtm.json <<JSON
{
  "db": "var/rtm.db",
  "public": "127.0.0.1:8080",
  "backend": "127.0.0.1:8081",
  "web-root": "web",
  "turn-secrets": ["$turn_secret"],
  "turn-urls": ["stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"],
  "demo-token": true,
  "demo-key-file": "var/dev-key.json"
}
JSON
fi
secret=$(sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' var/dev-key.json)
printf 'Authorization: Bearer %s\n' "$secret" > var/dev-auth.header

coturn_pid=""
if command -v turnserver >/dev/null 2>&1; then
    turn_secret=$(sed -n 's/.*"turn-secrets": *\["\([^"]*\)".*/\1/p' var/rtm.json)
    cat > var/turnserver.conf <<CONF
listening-ip=127.0.0.1
listening-port=3478
relay-ip=127.0.0.1
min-port=49160
max-port=49200
realm=rtm.dev
use-auth-secret
static-auth-secret=$turn_secret
fingerprint
no-tls
no-dtls
no-cli
allow-loopback-peers
log-file=var/turnserver.log
simple-log
userdb=var/turnserver.db
pidfile=var/turnserver.pid
CONF
    turnserver -c var/turnserver.conf >/dev/null 2>&1 &
    coturn_pid=$!
fi
rtmd_pid=""
# Whoever stops us (Ctrl-C, SIGTERM from a supervisor) stops rtmd (it drains
# its sessions) and the coturn we started, never anything else.
cleanup() {
    if [ -n "$rtmd_pid" ]; then kill -TERM "$rtmd_pid" 2>/dev/null; wait "$rtmd_pid" 2>/dev/null; rtmd_pid=""; fi
    if [ -n "$coturn_pid" ]; then kill "$coturn_pid" 2>/dev/null; coturn_pid=""; fi
    true
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

echo
if [ "$first" = 1 ]; then
    echo "Development key (shown once; also in var/dev-key.json, mode 0600):"
    cat var/dev-key.json
    echo
fi
turn_line="not installed (apt-get install coturn); calls still work between tabs on this machine"
[ -n "$coturn_pid" ] && turn_line="127.0.0.1:3478 (coturn pid $coturn_pid, log var/turnserver.log)"
cat <<TXT
rtm is starting:
  demo (open it in two tabs):  http://127.0.0.1:8080/
  browser SDK:                 http://127.0.0.1:8080/sdk/rtm.js
  WebSocket:                   ws://127.0.0.1:8080/v1?token=...
  backend API (keep private):  http://127.0.0.1:8081/
  TURN:                        $turn_line

Mint a token (the key is read from a 0600 file, not from the command line):
  curl -s -H @var/dev-auth.header -H 'content-type: application/json' \\
       -d '{"peerId":"alice","channels":["room-*"]}' http://127.0.0.1:8081/v1/tokens

Stop with Ctrl-C.
TXT
"$B/rtmd" --config var/rtm.json &
rtmd_pid=$!
wait "$rtmd_pid"

#!/bin/sh
# Installs what the build and the tests need and is missing, so that
# `make run` and `make test` work on a fresh Debian 12 machine.
# Usage: scripts/deps.sh build|run|test|bench|deb
set -eu
want="$1"
pkgs="build-essential pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libjwt-dev libjansson-dev libssl-dev libsqlite3-dev sqlite3 libpq-dev libhiredis-dev"
if [ "$want" = run ]; then
    pkgs="$pkgs coturn openssl"
fi
if [ "$want" = deb ]; then
    pkgs="$pkgs help2man dpkg-dev"
fi
if [ "$want" = test ] || [ "$want" = bench ]; then
    # postgresql: the store tests start their own server (tests/lib/pg.sh, /usr/lib/postgresql/15/bin)
    # redis-server: the cluster tests start their own (tests/lib/redis.mjs)
    # strace: durability.test.mjs watches rtmd's fsyncs
    pkgs="$pkgs coturn chromium valgrind wrk openssl iproute2 procps util-linux curl python3 sqlite3 postgresql redis-server strace help2man dpkg-dev lintian"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ "$want" != build ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "rtm: missing Debian packages:$missing" >&2
        echo "rtm: run: sudo apt-get install -y$missing" >&2
        exit 1
    fi
    echo "rtm: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps coturn from starting as a system service: tests start their own.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Every dependency in tests/package.json must be installed (a new one added
# since the last install triggers npm ci again).
npm_missing() {
    for m in $(node -e 'console.log(Object.keys(require("./tests/package.json").dependencies).join(" "))'); do
        [ -d "tests/node_modules/$m" ] || return 0
    done
    return 1
}
if { [ "$want" = test ] || [ "$want" = bench ]; } && npm_missing; then
    echo "rtm: installing test tools from npm (ws, ajv, yaml, a Prometheus text parser, playwright-core; no browser download)"
    (cd tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

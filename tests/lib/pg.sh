#!/bin/bash
# pg.sh: a throwaway Postgres server for tests, on loopback, stopped by PID.
#
#   tests/lib/pg.sh start DIR      # DIR must not exist; prints shell assignments:
#       RTM_PG_URL=postgresql://rtm@127.0.0.1:PORT/postgres   (no password in it)
#       RTM_PG_PASSWORD_FILE=DIR/password                      (first line: the password)
#       RTM_PG_PID=PID                                         (the postmaster)
#   tests/lib/pg.sh createdb DIR NAME   # a fresh database; prints its URL
#   tests/lib/pg.sh halt DIR       # stops the server (by PID), keeps its data and port
#   tests/lib/pg.sh resume DIR     # starts a halted server again on the same port
#   tests/lib/pg.sh stop DIR       # stops the server by the PID it recorded, removes DIR
#
# The server: initdb into DIR/data (user rtm, a random password, scram-sha-256
# over TCP), listening on 127.0.0.1 on a free port and on a unix socket in
# DIR/sock only; fsync off (a test server: speed over crash safety).
# initdb and postgres refuse to run as root: as root, they run as the
# `postgres` user (Debian's package creates it; else `nobody`) through
# runuser, and DIR/data and DIR/sock belong to that user.
# Used by tests/unit/test_store.c (popen) and tests/lib/postgres.mjs.
set -euo pipefail

bindir=${RTM_PG_BINDIR:-}
if [ -z "$bindir" ]; then
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "pg.sh: no Postgres server binaries (install the postgresql package: scripts/deps.sh test)" >&2
    exit 2
fi

as_pg() { # runs a command as the unprivileged server user when we are root
    if [ "$(id -u)" -eq 0 ]; then
        local u=postgres
        id -u "$u" >/dev/null 2>&1 || u=nobody
        runuser -u "$u" -- "$@"
    else
        "$@"
    fi
}
owner() { if [ "$(id -u)" -eq 0 ]; then id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody; fi; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|createdb|halt|resume|stop DIR [NAME]" >&2; exit 2; }

server_start() { # port: starts the server in $dir on that port; records its PID
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o \
        "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories=$dir/sock -c fsync=off" \
        start > /dev/null 2>&1 || return 1
    head -1 "$dir/data/postmaster.pid" > "$dir/pid"
    echo "$1" > "$dir/port"
}

server_stop() { # stops the recorded PID: fast shutdown, then immediate after 10 s
    [ -f "$dir/pid" ] || return 0
    local pid
    pid=$(cat "$dir/pid")
    # SIGINT is Postgres's "fast" shutdown: sessions are cut, the server exits
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -QUIT "$pid" 2>/dev/null || true # immediate shutdown
        sleep 1
    fi
    rm -f "$dir/pid"
}

case "$cmd" in
start)
    mkdir -m 755 "$dir"
    mkdir "$dir/sock" "$dir/data"
    chmod 700 "$dir/data"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/password"
    chmod 600 "$dir/password"
    u=$(owner)
    [ -z "$u" ] || chown -R "$u" "$dir" # the server user writes its log, socket and data here
    if ! as_pg "$bindir/initdb" -D "$dir/data" -U rtm --pwfile="$dir/password" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync --no-instructions > "$dir/initdb.log" 2>&1; then
        echo "pg.sh: initdb failed:" >&2
        cat "$dir/initdb.log" >&2
        exit 1
    fi
    for attempt in 1 2 3; do
        port=$(free_port)
        if server_start "$port"; then
            echo "RTM_PG_URL=postgresql://rtm@127.0.0.1:$port/postgres"
            echo "RTM_PG_PASSWORD_FILE=$dir/password"
            echo "RTM_PG_PID=$(cat "$dir/pid")"
            exit 0
        fi
    done
    echo "pg.sh: the server did not start:" >&2
    tail -20 "$dir/server.log" >&2 || true
    exit 1
    ;;
createdb)
    name=${3:?createdb needs a name}
    port=$(cat "$dir/port")
    # over the unix socket (trust): no password needed for administration
    as_pg "$bindir/psql" -q -h "$dir/sock" -p "$port" -U rtm -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE \"$name\"" > /dev/null
    echo "postgresql://rtm@127.0.0.1:$port/$name"
    ;;
halt)
    server_stop
    ;;
resume)
    server_start "$(cat "$dir/port")" || { echo "pg.sh: the server did not start again:" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    server_stop
    rm -rf "$dir"
    ;;
*)
    echo "pg.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the server's PostgreSQL tests. Source it (it exports
# FLASHSALE_TEST_DATABASE_URL and stops the cluster when the sourcing shell exits):
#
#     source .ci/postgres.sh
#
# Installs the Debian package when no `initdb` is found, `initdb`s into a temporary folder as
# the `postgres` user (initdb refuses root), starts on a free loopback port with trust
# authentication and a unix socket inside that folder, and waits until it accepts connections.

pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && pg_bin=$dir
done
if [ -z "$pg_bin" ]; then
    echo "postgres.sh: no initdb found, installing postgresql (Debian package)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && pg_bin=$dir
    done
fi
if [ -z "$pg_bin" ]; then
    echo "postgres.sh: PostgreSQL could not be installed" >&2
    return 1 2>/dev/null || exit 1
fi

pg_dir=$(mktemp -d /tmp/flashsale-pg.XXXXXX)
pg_as() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$pg_dir"
    pg_as() { runuser -u postgres -- "$@"; }
fi
if command -v python3 >/dev/null 2>&1; then
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
else
    # A random high port nothing answers on.
    pg_port=$((20000 + RANDOM % 40000))
    while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do
        pg_port=$((20000 + RANDOM % 40000))
    done
fi

pg_as "$pg_bin/initdb" --pgdata="$pg_dir/data" --username=postgres --auth=trust \
    --encoding=UTF8 --no-sync >"$pg_dir/initdb.log" 2>&1 \
    || { cat "$pg_dir/initdb.log" >&2; return 1 2>/dev/null || exit 1; }
# Many tests run in parallel, each with its own database and pools.
pg_as "$pg_bin/pg_ctl" --pgdata="$pg_dir/data" --log="$pg_dir/server.log" --wait --timeout=60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null \
    || { cat "$pg_dir/server.log" >&2; return 1 2>/dev/null || exit 1; }

postgres_stop() {
    pg_as "$pg_bin/pg_ctl" --pgdata="$pg_dir/data" --mode=immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
# Keep whatever EXIT trap the caller had, and stop the cluster after it.
pg_prev_trap=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
# shellcheck disable=SC2064
trap "${pg_prev_trap:+$pg_prev_trap; }postgres_stop" EXIT

export FLASHSALE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
echo "postgres.sh: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port ($pg_dir)"

#!/bin/sh
# The official postgres image's contract, for an image built from Debian's packages:
# POSTGRES_PASSWORD (required; or POSTGRES_PASSWORD_FILE, a file holding it, as a swarm secret is
# given), POSTGRES_USER (default postgres), POSTGRES_DB (default the user),
# data in $PGDATA (default /var/lib/postgresql/data), initialised on first start, port 5432.
set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
# `docker-entrypoint.sh postgres [ARGS]`, as the official image is called, works too.
if [ "${1:-}" = postgres ]; then
    shift
fi
# The one major version the image holds.
BIN="$(ls -d /usr/lib/postgresql/*/bin | head -n 1)"

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        [ -z "${POSTGRES_PASSWORD:-}" ] || { echo "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both" >&2; exit 1; }
        POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
    fi
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE must be set}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
    "$BIN/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | "$BIN/postgres" --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "database initialised"
fi

exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"

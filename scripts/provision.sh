#!/usr/bin/env bash
# Provision the outside services the integration tests need.
# PostgreSQL 15 and Redis run on the CI machine already; PostGIS does not:
# install it with apt-get when we are root and the extension is missing.
# Outside CI a missing service is reported here and the tests that need it skip.
set -uo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
psql_q() { psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -tAc "$1" 2>/dev/null; }

if command -v psql >/dev/null && psql_q "select 1" | grep -q 1; then
  if ! psql_q "select 1 from pg_available_extensions where name = 'postgis'" | grep -q 1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      ver=$(psql_q "show server_version_num" | cut -c1-2)
      echo "provision: installing postgresql-${ver}-postgis-3"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-${ver}-postgis-3" >/dev/null \
        || echo "provision: PostGIS install failed"
    else
      echo "provision: PostGIS missing and not root: PostGIS tests will skip (fail under CI=true)"
    fi
  fi
  psql_q "select 1 from pg_database where datname = 'daojia_test'" | grep -q 1 \
    || psql_q "create database daojia_test" >/dev/null
  psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d daojia_test -qtAc \
    "create extension if not exists postgis; create extension if not exists btree_gist" >/dev/null 2>&1 \
    || echo "provision: could not enable postgis/btree_gist in daojia_test"
else
  echo "provision: PostgreSQL not reachable on $PGHOST:$PGPORT: PostgreSQL tests will skip (fail under CI=true)"
fi

if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  :
else
  echo "provision: Redis not reachable on 127.0.0.1:6379: Redis tests will skip (fail under CI=true)"
fi
exit 0

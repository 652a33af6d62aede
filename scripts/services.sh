#!/usr/bin/env bash
# Starts the servers the test suite talks to, when they are not running already, and makes
# sure PostgreSQL has the database and role of the tests' default URL
# (postgresql+psycopg://postgres@127.0.0.1:5432/test, tests/utils/db.py), reachable over
# 127.0.0.1 without a password, and Mosquitto answers on 127.0.0.1:1883 (the notifier's MQTT
# tests). `make test` installs the Debian packages first (postgresql, redis-server,
# mosquitto: APT_PACKAGES in the Makefile). Idempotent: when all is there it only checks.
# With SENTINEL_TEST_POSTGRES_URL pointing at another role or database, name them in
# SENTINEL_TEST_PG_USER and SENTINEL_TEST_PG_DB.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=${SENTINEL_TEST_PG_USER:-postgres}
PG_DB=${SENTINEL_TEST_PG_DB:-test}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "$1 not found: install the Debian package $2 (\`make system-deps\` does it)" >&2
    exit 1
  }
}

# As the postgres OS user over the local socket (peer authentication, Debian's default).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

pg_sql() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres -tAc "$1"; }

test_db_reachable() {
  psql -X -q -w "host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=$PG_DB connect_timeout=5" \
    -tAc 'SELECT 1' >/dev/null 2>&1
}

# -- PostgreSQL ----------------------------------------------------------------------------
need pg_isready postgresql
need psql postgresql-client
if ! pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; then
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    # The package's postinst normally makes this cluster; a container may have skipped it.
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    echo "creating the PostgreSQL $version cluster main"
    pg_createcluster --port "$PG_PORT" "$version" main >/dev/null
  fi
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  for _ in $(seq 30); do pg_isready -h "$PG_HOST" -p "$PG_PORT" -q && break; sleep 1; done
fi
pg_isready -h "$PG_HOST" -p "$PG_PORT" || { echo "PostgreSQL did not start" >&2; exit 1; }

if ! test_db_reachable; then
  echo "preparing PostgreSQL for the tests: role $PG_USER, database $PG_DB, trust on 127.0.0.1"
  if [ "$(pg_sql "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
    as_postgres createuser -p "$PG_PORT" "$PG_USER"
  fi
  if [ "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    as_postgres createdb -p "$PG_PORT" --owner "$PG_USER" "$PG_DB"
  fi
  # The tests connect over TCP without a password; Debian asks for one on 127.0.0.1
  # (scram-sha-256). Trust this role on this database from this machine only, first in
  # pg_hba.conf (the first matching line wins).
  hba=$(pg_sql 'SHOW hba_file')
  rule_v4="host $PG_DB $PG_USER 127.0.0.1/32 trust  # sentinel tests (scripts/services.sh)"
  rule_v6="host $PG_DB $PG_USER ::1/128 trust  # sentinel tests (scripts/services.sh)"
  if ! grep -qxF "$rule_v4" "$hba"; then
    { echo "$rule_v4"; echo "$rule_v6"; cat "$hba"; } >"$hba.new"
    chown --reference="$hba" "$hba.new"
    chmod --reference="$hba" "$hba.new"
    mv "$hba.new" "$hba"
  fi
  pg_sql 'SELECT pg_reload_conf()' >/dev/null
  test_db_reachable || {
    echo "cannot connect to postgresql://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB" >&2
    exit 1
  }
fi

# -- Redis ---------------------------------------------------------------------------------
need redis-cli redis-tools
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  need redis-server redis-server
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis did not start" >&2; exit 1; }

# -- Mosquitto (MQTT broker of the notifier's tests) ------------------------------------------
mqtt_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! mqtt_up; then
  need mosquitto mosquitto
  echo "starting Mosquitto"
  conf=$(mktemp /tmp/sentinel-mosquitto.XXXXXX.conf)
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' >"$conf"
  mosquitto -d -c "$conf"
  for _ in $(seq 30); do mqtt_up && break; sleep 0.5; done
fi
mqtt_up || { echo "Mosquitto did not start" >&2; exit 1; }

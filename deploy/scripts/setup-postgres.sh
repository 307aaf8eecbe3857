#!/bin/sh
# Creates Temporal's two PostgreSQL databases and brings their schemas to the version that
# ships in this admin-tools image. Safe to run on every start: `create` accepts a database
# that exists, `setup-schema -v 0.0` leaves a versioned schema alone, and `update-schema`
# applies only the versions that are missing (which is also how a Temporal upgrade migrates).
#
# Environment (set in docker-compose.yml): SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER,
# SQL_PASSWORD, TEMPORAL_DB, TEMPORAL_VISIBILITY_DB.
set -eu

: "${TEMPORAL_DB:=temporal}"
: "${TEMPORAL_VISIBILITY_DB:=temporal_visibility}"
schema_root=/etc/temporal/schema/postgresql/v12

attempt=0
until nc -z "$SQL_HOST" "$SQL_PORT"; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "PostgreSQL at $SQL_HOST:$SQL_PORT did not accept connections in 120s" >&2
    exit 1
  fi
  sleep 2
done

setup() {
  db=$1
  dir=$2
  echo "schema of database $db from $dir"
  temporal-sql-tool --db "$db" create
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$dir"
}

setup "$TEMPORAL_DB" "$schema_root/temporal/versioned"
setup "$TEMPORAL_VISIBILITY_DB" "$schema_root/visibility/versioned"
echo "PostgreSQL schemas are up to date"

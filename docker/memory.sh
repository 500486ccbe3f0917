#!/usr/bin/env bash
# The proxy's memory under the loads that grow it: eight clients sending a 60 MB query at
# once, one client preparing 10,000 distinct statements, 10,000 idle clients, GROUP BY
# over 1M groups spread over two shards. For each, the proxy's RSS before, at its peak
# and after.
#
#   bash docker/memory.sh [PHASES] [-- EXTRA_PROXY_SETTINGS...]
#
# PHASES is a comma-separated subset of big,statements,idle,groups,copyrow (default: all). Extra lines
# after -- go to [proxy] (for example 'max_message_memory = "1GB"').
#
# Needs Docker with the local image pgshard/postgres:15 (bash docker/build-images.sh),
# psql, cargo and Python's psycopg 3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tool=memory
# shellcheck source=docker/local-bed.sh
. "$here/local-bed.sh"

phases=${1:-big,statements,idle,groups,copyrow}
shift || true
[ "${1:-}" = "--" ] && shift
extra=$(printf '%s\n' "$@")

need docker "Docker Engine"
need psql "apt-get install postgresql-client-15"
need cargo "a Rust toolchain"
python3 -c 'import psycopg' 2>/dev/null || { echo "$tool: pip install 'psycopg[binary]'" >&2; exit 1; }
need_image

work=$(mktemp -d /tmp/pgshard-memory.XXXXXX)
prefix="pgshard-memory-$$"
proxy_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  docker rm -f "$prefix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

build_proxy
pg_port=$(start_postgres "$prefix")
wait_port "$pg_port"
# The sharded database's two shards are two databases of the same server.
for shard in shard_a shard_b; do
  docker exec "$prefix" psql -U postgres -d postgres -qc "CREATE DATABASE $shard OWNER app"
done
proxy_port=$(free_port)
cat >"$work/pgshard.toml" <<TOML
[proxy]
listen = "127.0.0.1:$proxy_port"
pool_size = 10
max_client_connections = 20000
max_logins_in_progress = 2000
log_level = "warn"
$extra
[[users]]
name = "app"
password = "app"
[[databases]]
name = "app"
[[databases.shards]]
primary = "127.0.0.1:$pg_port"
[[databases]]
name = "sharded"
sharded_tables = [{ table = "facts", column = "id" }, { table = "wide_sharded", column = "id" }]
[[databases.shards]]
primary = "127.0.0.1:$pg_port"
server_database = "shard_a"
[[databases.shards]]
primary = "127.0.0.1:$pg_port"
server_database = "shard_b"
TOML
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$root/target/release/pgshard" --config "$work/pgshard.toml" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
wait_port "$proxy_port"
python3 "$here/memory_load.py" 127.0.0.1 "$proxy_port" "$proxy_pid" "$phases"

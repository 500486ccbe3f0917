#!/usr/bin/env bash
# Sharding benchmark: 1M rows spread over two shards through pgshard, against the same rows
# in one PostgreSQL, in one interleaved run on one machine.
#
#   bash docker/bench-sharding.sh [--rows N] [--rounds N] [--duration SECONDS] [--clients N]
#
# Measures (pgbench, transaction pooling, pool = clients):
#   point    single-shard lookups by key           SELECT … WHERE id = :id
#   fan-out  ORDER BY … LIMIT over every shard     SELECT … ORDER BY score DESC, id LIMIT 10
# and the proxy's peak memory (VmHWM) while it streams every row of the table, sorted, from
# both shards (a k-way merge that holds one row per shard, not the result).
#
# Needs Docker with the local image pgshard/postgres:15 (bash docker/build-images.sh),
# pgbench and psql on the host, and cargo (the proxy is built in release mode). The servers
# run in containers published on 127.0.0.1; the proxy runs on the host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

rows=1000000 rounds=3 duration=10 clients=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    *) echo "usage: $0 [--rows N] [--rounds N] [--duration SECONDS] [--clients N]" >&2; exit 2 ;;
  esac
done

tool=bench
# shellcheck source=docker/local-bed.sh
. "$here/local-bed.sh"
need docker "Docker Engine"
need pgbench "apt-get install postgresql-client-15"
need cargo "a Rust toolchain"
need_image

work=$(mktemp -d /tmp/pgshard-bench.XXXXXX)
chmod 755 "$work"
prefix="pgshard-shardbench-$$"
proxy_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  docker rm -f "$prefix-s0" "$prefix-s1" "$prefix-single" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

sql() { PGPASSWORD=app psql -h 127.0.0.1 -p "$1" -U app -d app -v ON_ERROR_STOP=1 -Atq "${@:2}"; }

build_proxy

declare -A port
for node in s0 s1 single; do
  port[$node]=$(start_postgres "$prefix-$node")
done
for node in s0 s1 single; do wait_port "${port[$node]}"; done

proxy_port=$(free_port)
cat >"$work/pgshard.toml" <<EOF
[proxy]
listen = "127.0.0.1:$proxy_port"
pool_mode = "transaction"
pool_size = $clients
log_level = "warn"
[[users]]
name = "app"
password = "app"
[[databases]]
name = "app"
[[databases.sharded_tables]]
table = "users"
column = "id"
[[databases.shards]]
primary = "127.0.0.1:${port[s0]}"
[[databases.shards]]
primary = "127.0.0.1:${port[s1]}"
EOF
"$root/target/release/pgshard" --config "$work/pgshard.toml" >"$work/pgshard.log" 2>&1 &
proxy_pid=$!
wait_port "$proxy_port"

schema="CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, score int NOT NULL);
CREATE INDEX users_score ON users (score DESC, id);"
# Deterministic rows: the score spreads ids over 0..99999.
seq 1 "$rows" | awk '{ printf "%d,user %d,%d\n", $1, $1, ($1 * 7919) % 100000 }' >"$work/users.csv"
echo "bench: loading $rows rows into one PostgreSQL, and through pgshard into two shards"
for target in single:"${port[single]}" pgshard:"$proxy_port"; do
  name=${target%%:*} p=${target#*:}
  sql "$p" -c "$schema" >/dev/null
  start=$(date +%s.%N)
  sql "$p" -c "\\copy users (id, name, score) FROM '$work/users.csv' WITH (FORMAT csv)" >/dev/null
  printf 'bench: COPY %-8s %6.1f s\n' "$name" "$(python3 -c "print($(date +%s.%N) - $start)")"
done
for node in s0 s1; do sql "${port[$node]}" -c "ANALYZE users" >/dev/null; done
sql "${port[single]}" -c "ANALYZE users" >/dev/null
echo "bench: rows per shard: $(sql "${port[s0]}" -c 'SELECT count(*) FROM users') / $(sql "${port[s1]}" -c 'SELECT count(*) FROM users')"

cat >"$work/point.sql" <<EOF
\\set id random(1, $rows)
SELECT id, name, score FROM users WHERE id = :id;
EOF
cat >"$work/fanout.sql" <<EOF
SELECT id, name, score FROM users ORDER BY score DESC, id LIMIT 10;
EOF

# One pgbench run; prints its tps.
run() {
  local p=$1 script=$2 mode=$3 out
  out=$(PGPASSWORD=app pgbench -h 127.0.0.1 -p "$p" -U app -n -M "$mode" -f "$work/$script.sql" \
    -c "$clients" -j 2 -T "$duration" app 2>&1) || { echo "$out" >&2; return 1; }
  if echo "$out" | grep -q 'number of failed transactions: [1-9]'; then echo "$out" >&2; return 1; fi
  echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

declare -A total
cases=(point:simple point:extended fanout:simple fanout:extended)
echo "bench: $clients clients, ${duration}s per run, $rounds rounds"
for round in $(seq 1 "$rounds"); do
  for c in "${cases[@]}"; do
    script=${c%%:*} mode=${c#*:}
    for target in single:"${port[single]}" pgshard:"$proxy_port"; do
      name=${target%%:*} p=${target#*:}
      tps=$(run "$p" "$script" "$mode")
      printf 'round %d  %-7s %-9s %-8s %10.0f tps\n' "$round" "$script" "$mode" "$name" "$tps"
      total[$name.$c]=$(python3 -c "print(${total[$name.$c]:-0} + $tps)")
    done
  done
done

hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$proxy_pid/status"; }
before=$(hwm)
start=$(date +%s.%N)
streamed=$(PGPASSWORD=app psql -h 127.0.0.1 -p "$proxy_port" -U app -d app -Atq \
  -c "SELECT id, name, score FROM users ORDER BY id" | wc -l)
elapsed=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
after=$(hwm)

echo
echo "bench: mean tps over $rounds rounds; pgshard (2 shards) vs one PostgreSQL"
for c in "${cases[@]}"; do
  python3 - "$c" "$rounds" "${total[single.$c]}" "${total[pgshard.$c]}" <<'EOF'
import sys
case, rounds, single, proxy = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"  {case:<16} single {single / rounds:9.0f}  pgshard {proxy / rounds:9.0f}  ratio {proxy / single:.2f}")
EOF
done
echo "bench: ORDER BY over all $streamed rows through pgshard: ${elapsed}s; proxy peak RSS ${before} kB before, ${after} kB after"

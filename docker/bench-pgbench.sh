#!/usr/bin/env bash
# pgbench through pgshard, directly against PostgreSQL, and through PgBouncer, interleaved in
# one run on one machine, so the ratios compare like with like. Workloads: read-only (-S)
# in the simple, extended and prepared protocols, writes (-N, simple), the read-only simple
# one with --many clients on the same pool, and a connection storm (-C: a new connection for
# every transaction), all on pools of 20 server connections. For each (docker/bench_summary.py): the median TPS over the rounds,
# its ratio to direct and to PgBouncer, and each proxy's own CPU time per transaction
# (user + system time of the process from /proc/PID/stat, over pgbench's transactions).
#
#   bash docker/bench-pgbench.sh [--rounds N] [--duration SECONDS] [--clients N]
#                                [--many N] [--scale N]
#
# Needs Docker with the local image pgshard/postgres:15 (bash docker/build-images.sh), pgbench
# and pgbouncer on the host, and cargo (the proxy is built in release mode). The server runs in
# a container published on 127.0.0.1; the proxy and PgBouncer run on the host, each with a
# transaction-mode pool of the same size.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

rounds=3 duration=10 clients=16 many=256 scale=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --many) many=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration SECONDS] [--clients N] [--many N] [--scale N]" >&2; exit 2 ;;
  esac
done

tool=bench
# shellcheck source=docker/local-bed.sh
. "$here/local-bed.sh"
need docker "Docker Engine"
need pgbench "apt-get install postgresql-client-15"
need pgbouncer "apt-get install pgbouncer"
need cargo "a Rust toolchain"
need_image

work=$(mktemp -d /tmp/pgshard-bench.XXXXXX)
chmod 755 "$work"
container="pgshard-bench-$$"
proxy_pid="" bouncer_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  [ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null || true
  docker rm -f "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT


build_proxy

echo "bench: starting PostgreSQL"
pg_port=$(start_postgres "$container")
wait_port "$pg_port"
PGPASSWORD=app pgbench -h 127.0.0.1 -p "$pg_port" -U app -i -q -s "$scale" app >/dev/null 2>&1

pool=20
proxy_port=$(free_port)
cat >"$work/pgshard.toml" <<EOF
[proxy]
listen = "127.0.0.1:$proxy_port"
pool_mode = "transaction"
pool_size = $pool
log_level = "warn"
[[users]]
name = "app"
password = "app"
[[databases]]
name = "app"
[[databases.shards]]
primary = "127.0.0.1:$pg_port"
EOF
"$root/target/release/pgshard" --config "$work/pgshard.toml" >"$work/pgshard.log" 2>&1 &
proxy_pid=$!
wait_port "$proxy_port"

bouncer_port=$(free_port)
cat >"$work/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$pg_port dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
auth_type = scram-sha-256
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 1000
unix_socket_dir =
EOF
echo '"app" "app"' >"$work/userlist.txt"
chmod 644 "$work"/*
runas=()
[ "$(id -u)" = 0 ] && runas=(-u nobody)
pgbouncer "${runas[@]}" "$work/pgbouncer.ini" >"$work/pgbouncer.log" 2>&1 &
bouncer_pid=$!
wait_port "$bouncer_port"

# One pgbench run: prints its tps and the transactions it processed.
run() {
  local port=$1 c=$2
  shift 2
  local out
  out=$(PGPASSWORD=app pgbench -h 127.0.0.1 -p "$port" -U app -n "$@" \
    -c "$c" -j 2 -T "$duration" app 2>&1) || { echo "$out" >&2; return 1; }
  if echo "$out" | grep -q 'number of failed transactions: [1-9]'; then echo "$out" >&2; return 1; fi
  echo "$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')" \
    "$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')"
}
# CPU time of process $1 so far, in clock ticks (user + system); 0 without a process.
cpu_ticks() { if [ -n "$1" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }

# name:clients:pgbench options
workloads=(
  "select-simple:$clients:-S -M simple"
  "select-extended:$clients:-S -M extended"
  "select-prepared:$clients:-S -M prepared"
  "write-simple:$clients:-N -M simple"
  "select-many:$many:-S -M simple"
  "storm:$clients:-S -M simple -C"
)
targets=("direct:$pg_port:" "pgshard:$proxy_port:$proxy_pid" "pgbouncer:$bouncer_port:$bouncer_pid")
results="$work/results"
: >"$results"
echo "bench: ${duration}s per run, $rounds rounds, scale $scale, pool $pool," \
  "$clients clients ($many for select-many)"
for round in $(seq 1 "$rounds"); do
  for workload in "${workloads[@]}"; do
    IFS=: read -r wname c options <<<"$workload"
    for target in "${targets[@]}"; do
      IFS=: read -r name port pid <<<"$target"
      # PgBouncer 1.18 cannot pool named prepared statements in transaction mode.
      [ "$name" = pgbouncer ] && [ "$wname" = select-prepared ] && continue
      before=$(cpu_ticks "$pid")
      # shellcheck disable=SC2086
      read -r tps txns < <(run "$port" "$c" $options)
      after=$(cpu_ticks "$pid")
      printf 'round %d  %-16s %-9s %10.0f tps\n' "$round" "$wname" "$name" "$tps"
      echo "$wname $name $tps $txns $((after - before))" >>"$results"
    done
  done
done

echo
echo "bench: medians over $rounds rounds; µs/txn is the proxy's own CPU time per transaction"
python3 "$here/bench_summary.py" "$results" "$(getconf CLK_TCK)"

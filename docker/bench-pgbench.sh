#!/usr/bin/env bash
# pgbench -S through pgshard, directly against PostgreSQL, and through PgBouncer, interleaved
# in one run on one machine, so the ratios compare like with like.
#
#   bash docker/bench-pgbench.sh [--rounds N] [--duration SECONDS] [--clients N] [--scale N]
#
# Needs Docker with the local image pgshard/postgres:15 (bash docker/build-images.sh), pgbench
# and pgbouncer on the host, and cargo (the proxy is built in release mode). The server runs in
# a container published on 127.0.0.1; the proxy and PgBouncer run on the host, each with a
# transaction-mode pool of the same size.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

rounds=3 duration=10 clients=8 scale=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration SECONDS] [--clients N] [--scale N]" >&2; exit 2 ;;
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

pool=$clients
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

# One pgbench run; prints its tps.
run() {
  local port=$1 mode=$2 out
  out=$(PGPASSWORD=app pgbench -h 127.0.0.1 -p "$port" -U app -S -M "$mode" -n \
    -c "$clients" -j 2 -T "$duration" app 2>&1) || { echo "$out" >&2; return 1; }
  if echo "$out" | grep -q 'number of failed transactions: [1-9]'; then echo "$out" >&2; return 1; fi
  echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

declare -A total
targets=(direct:"$pg_port" pgshard:"$proxy_port" pgbouncer:"$bouncer_port")
modes=(simple extended prepared)
echo "bench: pgbench -S, $clients clients, ${duration}s per run, $rounds rounds, scale $scale, pool $pool"
for round in $(seq 1 "$rounds"); do
  for mode in "${modes[@]}"; do
    for target in "${targets[@]}"; do
      name=${target%%:*} port=${target#*:}
      # PgBouncer 1.18 cannot pool named prepared statements in transaction mode.
      [ "$name" = pgbouncer ] && [ "$mode" = prepared ] && continue
      tps=$(run "$port" "$mode")
      printf 'round %d  %-9s %-9s %10.0f tps\n' "$round" "$mode" "$name" "$tps"
      total[$name.$mode]=$(python3 -c "print(${total[$name.$mode]:-0} + $tps)")
    done
  done
done

echo
echo "bench: mean tps over $rounds rounds, and ratios"
for mode in "${modes[@]}"; do
  d=${total[direct.$mode]} p=${total[pgshard.$mode]} b=${total[pgbouncer.$mode]:-}
  python3 - "$mode" "$rounds" "$d" "$p" "$b" <<'EOF'
import sys
mode, rounds, d, p, b = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
line = f"{mode:<9} direct {d/rounds:8.0f}  pgshard {p/rounds:8.0f}  pgshard/direct {p/d:5.2f}"
if b:
    b = float(b)
    line += f"  pgbouncer {b/rounds:8.0f}  pgbouncer/direct {b/d:5.2f}  pgshard/pgbouncer {p/b:5.2f}"
print(line)
EOF
done

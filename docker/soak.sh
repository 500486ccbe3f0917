#!/usr/bin/env bash
# A long mixed load through pgshard, watching the proxy's memory, file descriptors and the
# clients' errors over time: does anything grow or fail when nothing should?
#
#   bash docker/soak.sh [--duration SECONDS] [--sample SECONDS]
#
# The load, all at once for the whole run, on a one-shard database and a two-shard one:
#   - pgbench (TPC-B-like, extended protocol) through the proxy;
#   - connection churn: a new connection for each short query;
#   - cancels: queries sleeping in the server, cancelled by psql a moment later (57014 is
#     expected, or nothing when psql was interrupted before it sent the query; anything
#     else is not);
#   - COPY in and out of 10,000 rows, and a COPY split across two shards;
#   - a slow reader: psql with FETCH_COUNT reading a large result 100 rows at a time
#     through a throttled pipe;
#   - cursors and portals in parts across two shards.
# Every --sample seconds it prints the proxy's RSS, open file descriptors, clients and the
# errors so far. At the end: RSS at the first sample after warm-up and at the last, and the
# count of unexpected errors. Exit status 1 when an unexpected error happened or RSS grew by
# more than 20% after warm-up.
#
# Needs Docker with the local image pgshard/postgres:15 (bash docker/build-images.sh), the
# PostgreSQL 15 client tools (psql, pgbench) and cargo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tool=soak
# shellcheck source=docker/local-bed.sh
. "$here/local-bed.sh"

duration=600 sample=10
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SECONDS] [--sample SECONDS]" >&2; exit 2 ;;
  esac
done

need docker "Docker Engine"
need pgbench "apt-get install postgresql-client-15"
need psql "apt-get install postgresql-client-15"
need cargo "a Rust toolchain"
need_image

work=$(mktemp -d /tmp/pgshard-soak.XXXXXX)
chmod 755 "$work"
prefix="pgshard-soak-$$"
proxy_pid=""
load_pids=()
cleanup() {
  for pid in "${load_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  docker rm -f "$prefix-one" "$prefix-s0" "$prefix-s1" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

build_proxy
declare -A port
for node in one s0 s1; do port[$node]=$(start_postgres "$prefix-$node"); done
for node in one s0 s1; do wait_port "${port[$node]}"; done

proxy_port=$(free_port)
cat >"$work/pgshard.toml" <<EOF
[proxy]
listen = "127.0.0.1:$proxy_port"
pool_mode = "transaction"
pool_size = 10
log_level = "warn"
[[users]]
name = "app"
password = "app"
[[databases]]
name = "app"
[[databases.shards]]
primary = "127.0.0.1:${port[one]}"
[[databases]]
name = "sharded"
server_database = "app"
[[databases.sharded_tables]]
table = "items"
column = "id"
[[databases.shards]]
primary = "127.0.0.1:${port[s0]}"
[[databases.shards]]
primary = "127.0.0.1:${port[s1]}"
EOF
"$root/target/release/pgshard" --config "$work/pgshard.toml" >"$work/pgshard.log" 2>&1 &
proxy_pid=$!
wait_port "$proxy_port"

through() { PGPASSWORD=app psql -h 127.0.0.1 -p "$proxy_port" -U app -d "$1" -v ON_ERROR_STOP=1 -Atq "${@:2}"; }
PGPASSWORD=app pgbench -h 127.0.0.1 -p "$proxy_port" -U app -i -q -s 5 app >/dev/null 2>&1
through app -c "CREATE TABLE soak_copy (id int, note text)"
through sharded -c "CREATE TABLE items (id bigint PRIMARY KEY, name text)"
through sharded -c "\\copy items FROM PROGRAM 'seq 1 20000 | sed \"s/\$/\titem/\"'"

end=$((SECONDS + duration))
# Runs "$@" again and again until the end, appending its errors to $work/$name.err; lines
# matching $expected are expected errors and counted apart.
loop() {
  local name=$1 expected=$2
  shift 2
  : >"$work/$name.err"
  : >"$work/$name.ok"
  while [ $SECONDS -lt $end ]; do
    if out=$("$@" 2>&1 >/dev/null); then
      echo >>"$work/$name.ok"
    elif [ -n "$expected" ] && echo "$out" | grep -Eq "$expected"; then
      echo >>"$work/$name.expected"
    else
      echo "$out" | head -n 3 >>"$work/$name.err"
    fi
  done
}

churn() { through app -c "SELECT 1"; }
cancel() { timeout -s INT 0.3 bash -c "PGPASSWORD=app psql -h 127.0.0.1 -p $proxy_port -U app -d app -Atqc 'SELECT pg_sleep(3)'"; }
copy_round() {
  through app -c "TRUNCATE soak_copy" \
    -c "\\copy soak_copy FROM PROGRAM 'seq 1 10000 | sed \"s/\$/\tnote/\"'" \
    -c "\\copy soak_copy TO '/dev/null'" &&
    through sharded -c "\\copy items TO '$work/items.copy'" &&
    through sharded -c "BEGIN" -c "DELETE FROM items WHERE id > 20000" \
      -c "\\copy items FROM PROGRAM 'seq 20001 25000 | sed \"s/\$/\tnew/\"'" -c "ROLLBACK"
}
slow_reader() {
  PGPASSWORD=app psql -h 127.0.0.1 -p "$proxy_port" -U app -d app -v ON_ERROR_STOP=1 -Atq \
    -v FETCH_COUNT=100 -c "SELECT aid, abalance, filler FROM pgbench_accounts" |
    python3 -c 'import sys, time
for i, _ in enumerate(sys.stdin):
    if i % 1000 == 0: time.sleep(0.05)'
}
cursors() {
  through sharded -c "BEGIN" -c "DECLARE c CURSOR FOR SELECT id FROM items ORDER BY id" \
    -c "FETCH 500 FROM c" -c "MOVE 5000 IN c" -c "FETCH 500 FROM c" -c "COMMIT"
}

PGPASSWORD=app pgbench -h 127.0.0.1 -p "$proxy_port" -U app -M extended -n -c 4 -j 2 \
  -T "$duration" app >"$work/pgbench.out" 2>&1 &
load_pids+=($!)
loop churn "" churn & load_pids+=($!)
loop cancel "canceling statement due to user request|^$" cancel & load_pids+=($!)
loop copy "" copy_round & load_pids+=($!)
loop slow_reader "" slow_reader & load_pids+=($!)
loop cursors "" cursors & load_pids+=($!)

count() { cat "$work"/$1 2>/dev/null | wc -l; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status"; }
printf '%6s %8s %5s %8s %8s %10s\n' seconds rss_MB fds clients ok_runs unexpected
first_rss="" last_rss=""
started=$SECONDS
while [ $SECONDS -lt $end ]; do
  sleep "$sample"
  kill -0 "$proxy_pid" 2>/dev/null || { echo "soak: the proxy exited" >&2; tail -20 "$work/pgshard.log" >&2; exit 1; }
  rss=$(rss_kb)
  fds=$(ls "/proc/$proxy_pid/fd" | wc -l)
  clients=$(ss -Htn state established "( sport = :$proxy_port )" | wc -l)
  # Warm-up: the first minute (or tenth of the run) fills pools and caches.
  if [ -z "$first_rss" ] && [ $((SECONDS - started)) -ge $((duration / 10 < 60 ? duration / 10 : 60)) ]; then
    first_rss=$rss
  fi
  last_rss=$rss
  printf '%6d %8.1f %5d %8d %8d %10d\n' $((SECONDS - started)) "$(awk -v kb="$rss" 'BEGIN {print kb / 1024}')" \
    "$fds" "$clients" "$(count '*.ok')" "$(count '*.err')"
done
wait "${load_pids[0]}" || true
for pid in "${load_pids[@]:1}"; do wait "$pid" || true; done

echo
pgbench_failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/pgbench.out")
pgbench_tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench.out")
echo "soak: pgbench ${pgbench_tps:-?} tps, ${pgbench_failed:-?} failed transactions"
for name in churn cancel copy slow_reader cursors; do
  printf 'soak: %-12s %6d runs ok, %6d expected errors, %4d unexpected\n' "$name" \
    "$(count "$name.ok")" "$(count "$name.expected")" "$(count "$name.err")"
  [ -s "$work/$name.err" ] && sed 's/^/    /' "$work/$name.err" | sort | uniq -c | head -5
done
unexpected=$(( $(count '*.err') + ${pgbench_failed:-1} ))
[ -n "$pgbench_tps" ] || { echo "soak: pgbench did not finish:"; tail -5 "$work/pgbench.out"; unexpected=$((unexpected + 1)); }
growth=$(python3 -c "print(round(100 * ($last_rss - ${first_rss:-$last_rss}) / ${first_rss:-$last_rss}, 1))")
echo "soak: RSS ${first_rss:-?} kB after warm-up, $last_rss kB at the end (${growth}%); $unexpected unexpected errors"
if [ "$unexpected" -gt 0 ] || python3 -c "import sys; sys.exit(0 if $growth > 20 else 1)"; then
  exit 1
fi

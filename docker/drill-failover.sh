#!/usr/bin/env bash
# Failover drill against the compose demo: writes through pgshard (127.0.0.1:6432) while the
# primary container is killed, and prints how long writes were refused before the promoted
# replica served them, and whether any acknowledged write is missing on the new primary.
#
#   bash docker/drill-failover.sh [kill|stop] [--setup a|b|c|d|e|f]
#
# Setups, as users run replication (none needs anything of pgshard's):
#   a  each standby streams with its own application_name, no cluster_name; ANY 1 (*)
#   b  no application_name, no cluster_name: every standby is "walreceiver"; ANY 1 (*)
#   c  every node's cluster_name is 15/main (Debian); ANY 1 (*)
#   d  distinct application_names; FIRST 1 ("s0-replica1", "s0-replica2")
#   e  every node's cluster_name is main; ANY 1 (main)
#   f  no names at all; asynchronous replication
# Without --setup the running demo is used as it is, or started as it comes (setup f).
# With --setup the demo is restarted in that setup. The drill leaves the demo with a new
# primary and a fenced old one; `docker/demo.sh down` resets it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
how=kill
setup=
while [ $# -gt 0 ]; do
  case "$1" in
    kill | stop) how=$1 ;;
    --setup) setup=${2:-}; shift ;;
    *) echo "usage: $0 [kill|stop] [--setup a|b|c|d|e|f]" >&2; exit 2 ;;
  esac
  shift
done

names() { # the standbys' own application_names
  export DEMO_S0_PRIMARY_APPLICATION_NAME=s0-primary DEMO_S0_REPLICA1_APPLICATION_NAME=s0-replica1 \
    DEMO_S0_REPLICA2_APPLICATION_NAME=s0-replica2
}
case "$setup" in
  "") ;;
  a) names; export DEMO_SYNCHRONOUS_STANDBY_NAMES='ANY 1 (*)' ;;
  b) export DEMO_SYNCHRONOUS_STANDBY_NAMES='ANY 1 (*)' ;;
  c) export DEMO_CLUSTER_NAME=15/main DEMO_SYNCHRONOUS_STANDBY_NAMES='ANY 1 (*)' ;;
  d) names; export DEMO_SYNCHRONOUS_STANDBY_NAMES='FIRST 1 ("s0-replica1", "s0-replica2")' ;;
  e) export DEMO_CLUSTER_NAME=main DEMO_SYNCHRONOUS_STANDBY_NAMES='ANY 1 (main)' ;;
  f) ;;
  *) echo "$0: unknown setup '$setup' (a to f)" >&2; exit 2 ;;
esac
if [ -n "$setup" ]; then
  echo "drill: restarting the demo in setup $setup"
  bash "$here/demo.sh" down
fi
export PGPASSWORD=app
proxy=(psql -h 127.0.0.1 -p 6432 -U app -d app -X -q -At -v ON_ERROR_STOP=1)

if ! docker ps -q --filter name=pgshard-demo_s0-primary | grep -q .; then
  bash "$here/demo.sh" up
fi
primary=$(docker ps -q --filter name=pgshard-demo_s0-primary)
for _ in $(seq 1 50); do "${proxy[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
"${proxy[@]}" -c 'DROP TABLE IF EXISTS drill; CREATE TABLE drill (id bigint PRIMARY KEY)'

work=$(mktemp -d /tmp/pgshard-drill.XXXXXX)
trap 'kill "$writer" 2>/dev/null || true; cp "$work/writes" /tmp/drill-writes.log 2>/dev/null; rm -rf "$work"' EXIT
# One write at a time over one connection per write; every acknowledged id and every
# failure is recorded with its end and start times.
(
  id=0
  while :; do
    id=$((id + 1))
    start=$(date +%s.%N)
    if "${proxy[@]}" -c "INSERT INTO drill VALUES ($id)" >/dev/null 2>&1; then
      echo "$(date +%s.%N) ok $id $start"
    else
      echo "$(date +%s.%N) failed $id $start"
    fi
  done
) >"$work/writes" &
writer=$!
sleep 3
echo "drill: $how the primary ($(docker inspect -f '{{.Name}}' "$primary"))"
t0=$(date +%s.%N)
docker "$how" "$primary" >/dev/null
# Wait for ten writes acknowledged after the fault.
for _ in $(seq 1 600); do
  after=$(awk -v t0="$t0" '$4 > t0 && $2 == "ok"' "$work/writes" | wc -l)
  [ "$after" -ge 10 ] && break
  sleep 0.1
done
kill "$writer" 2>/dev/null || true
wait "$writer" 2>/dev/null || true
# The first write begun after the fault and acknowledged: it waited for the new primary.
first_ok=$(awk -v t0="$t0" '$4 > t0 && $2 == "ok" { print $1; exit }' "$work/writes")
if [ -z "$first_ok" ]; then
  echo "drill: FAILED: no write was served within 60 s of the fault" >&2
  exit 1
fi
failed=$(awk '$2 == "failed"' "$work/writes" | wc -l)
acked=$(awk '$2 == "ok" { print $3 }' "$work/writes" | sort -n)
new_ip=$("${proxy[@]}" -c '/* pgshard: role=primary */ SELECT host(inet_server_addr())')
new_primary=$(docker inspect -f '{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' \
  $(docker ps -q --filter name=pgshard-demo_) | awk -v ip="$new_ip" '$2 == ip { sub("^/", "", $1); print $1 }')
present=$("${proxy[@]}" -c '/* pgshard: role=primary */ SELECT id FROM drill ORDER BY id')
lost=$(comm -23 <(echo "$acked" | sort) <(echo "$present" | sort) | grep -c . || true)
awk -v a="$first_ok" -v b="$t0" -v n="$new_primary" -v how="$how" \
  'BEGIN { printf "drill: writes served again by %s %.2f s after docker %s of the primary\n", n, a - b, how }'
echo "drill: $(echo "$acked" | grep -c .) writes acknowledged, $failed refused during the failover, $lost acknowledged writes missing on the new primary"

#!/usr/bin/env bash
# Starts or stops pgshard's demo cluster, building the local images first when needed.
#
#   docker/demo.sh up [1|2]   start 1 shard (docker/compose.yaml, the default) or 2 shards
#                             (docker/compose-2shard.yaml) and wait until every replica streams
#   docker/demo.sh status     show the demo's containers
#   docker/demo.sh down       stop and remove the demo, whichever variant runs
#
# Everything is published on 127.0.0.1 only; see the compose files for ports and logins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=pgshard-demo

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$project" "$@"
  elif command -v docker-compose >/dev/null; then
    docker-compose -p "$project" "$@"
  else
    echo "demo: Docker Compose is needed (the docker-compose package, or the docker compose plugin)" >&2
    exit 1
  fi
}

# Checks every prerequisite before anything long starts. Missing Debian packages are
# installed when run as root; otherwise the one apt-get line that installs them is printed.
prerequisites() {
  command -v docker >/dev/null ||
    { echo "demo: Docker Engine is needed (Debian: apt-get install docker.io)" >&2; exit 1; }
  docker info >/dev/null 2>&1 ||
    { echo "demo: the Docker daemon is not reachable (is it running, may this user use it?)" >&2; exit 1; }
  local packages=()
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null ||
    packages+=(docker-compose)
  local images_missing=""
  docker image inspect pgshard/postgres:15 >/dev/null 2>&1 || images_missing=yes
  if [ -n "$images_missing" ]; then
    command -v debootstrap >/dev/null || packages+=(debootstrap)
  fi
  # For connecting to the demo afterwards, as the last lines say.
  command -v psql >/dev/null || packages+=(postgresql-client)
  if [ -z "${PGSHARD_BIN:-}" ] && ! command -v cargo >/dev/null; then
    echo "demo: cargo is needed to build the proxy (a Rust toolchain: https://rustup.rs), or set PGSHARD_BIN to a built pgshard" >&2
    exit 1
  fi
  if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "demo: installing ${packages[*]} (apt-get)"
      DEBIAN_FRONTEND=noninteractive apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
    else
      echo "demo: missing ${packages[*]}; install with: sudo apt-get install -y ${packages[*]}" >&2
      exit 1
    fi
  fi
  if [ -n "$images_missing" ] && [ "$(id -u)" != 0 ]; then
    echo "demo: the first build of the images runs debootstrap, which needs root: run this as root (sudo)" >&2
    exit 1
  fi
}

# Waits until every container of the demo passes its health check (accepts connections).
wait_healthy() {
  local ids unhealthy=""
  ids=$(compose -f "$file" ps -q)
  for _ in $(seq 1 120); do
    unhealthy=$(docker inspect -f '{{.Name}} {{.State.Health.Status}}' $ids | grep -v ' healthy$' || true)
    [ -z "$unhealthy" ] && return 0
    sleep 1
  done
  echo "demo: not healthy in time: $unhealthy" >&2
  compose -f "$file" logs --tail 30 >&2 || true
  exit 1
}

# Waits until `primary` reports `count` replicas streaming.
wait_streaming() {
  local container=$1 count=$2 streaming=""
  for _ in $(seq 1 120); do
    streaming=$(docker exec "$container" psql -U postgres -d postgres -Atc \
      "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || true)
    [ "$streaming" = "$count" ] && return 0
    sleep 1
  done
  echo "demo: $container has ${streaming:-no} streaming replicas, expected $count" >&2
  compose -f "$file" logs --tail 30 >&2 || true
  exit 1
}

case "${1:-}" in
  up)
    shards=${2:-1}
    case "$shards" in
      1) file=$here/compose.yaml ;;
      2) file=$here/compose-2shard.yaml ;;
      *) echo "demo: up takes 1 or 2 shards, not '$shards'" >&2; exit 2 ;;
    esac
    prerequisites
    # The proxy image gets a binary built on the host (no toolchain is fetched inside images).
    bin=${PGSHARD_BIN:-$here/../target/release/pgshard}
    if [ -z "${PGSHARD_BIN:-}" ]; then
      echo "demo: building the proxy (cargo build --release -p pgshard-proxy; minutes the first time)"
      (cd "$here/.." && cargo build --release -p pgshard-proxy)
    fi
    echo "demo: building the images (quick when they are up to date)"
    bash "$here/build-images.sh" --proxy "$bin"
    echo "demo: starting $shards shard(s) from ${file#"$here"/}"
    compose -f "$file" up -d --remove-orphans
    wait_healthy
    for ((s = 0; s < shards; s++)); do
      wait_streaming "$(compose -f "$file" ps -q "s$s-primary")" 2
    done
    compose -f "$file" ps
    echo
    echo "demo: ready. Through pgshard: psql postgres://app:app@127.0.0.1:6432/app"
    echo "demo: shard 0's primary directly: psql postgres://app:app@127.0.0.1:15432/app"
    if [ "$shards" = 2 ]; then
      echo "demo: shard 1's primary directly: psql postgres://app:app@127.0.0.1:15442/app"
      echo "demo: example tables are in docker/demo/pgshard-2shard.toml"
    fi
    echo "demo: stop it with: docker/demo.sh down"
    ;;
  status)
    compose -f "$here/compose-2shard.yaml" ps
    ;;
  down)
    # The two-shard file names every service either variant has.
    compose -f "$here/compose-2shard.yaml" down --remove-orphans --timeout 20
    ;;
  *)
    echo "usage: $0 up [1|2] | status | down" >&2
    exit 2
    ;;
esac

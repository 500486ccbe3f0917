# Helpers for the scripts that run PostgreSQL in local containers and the proxy on the host
# (benchmarks, soak): sourced, not run. The caller sets `tool` (its name in messages).

# Exits unless command $1 exists; $2 says where it comes from.
need() { command -v "$1" >/dev/null || { echo "$tool: '$1' is needed ($2)" >&2; exit 1; }; }

# Exits unless the local PostgreSQL image is built.
need_image() {
  docker image inspect pgshard/postgres:15 >/dev/null 2>&1 ||
    { echo "$tool: image pgshard/postgres:15 missing; run bash docker/build-images.sh" >&2; exit 1; }
}

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until PostgreSQL (or the proxy) answers as app/app on port $1.
wait_port() {
  for _ in $(seq 1 300); do
    PGPASSWORD=app psql -h 127.0.0.1 -p "$1" -U app -d app -Atqc 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$tool: nothing answers on port $1" >&2
  return 1
}

# Starts a primary container named $1 published on 127.0.0.1; prints its port.
start_postgres() {
  docker run -d --name "$1" -e PG_ROLE=primary -e NODE_NAME="$1" \
    -e PG_EXTRA_CONF="max_connections = 300" -p 127.0.0.1::5432 pgshard/postgres:15 >/dev/null
  docker port "$1" 5432/tcp | head -n1 | sed 's/.*://'
}

# Builds the proxy in release mode.
build_proxy() {
  echo "$tool: building the proxy (cargo build --release -p pgshard-proxy)"
  (cd "$root" && cargo build --release -q -p pgshard-proxy)
}

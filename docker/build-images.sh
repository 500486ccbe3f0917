#!/usr/bin/env bash
# Builds the local images pgshard's tests and demo run on, with no container registry:
#   pgshard/debian:bookworm-pg15-<hash>  a Debian bookworm rootfs (debootstrap) with PostgreSQL 15
#   pgshard/postgres:15                  that rootfs plus the node entrypoint and pgshard-rejoin
#                                        (docker/postgres/)
#   pgshard/proxy:latest                 the postgres image plus a host-built pgshard binary
#                                        (only with --proxy BINARY)
# The Debian mirror is read from this machine's apt sources. An image whose inputs have not
# changed is kept, so a second run is quick.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proxy_bin=""
if [ "${1:-}" = "--proxy" ]; then proxy_bin=${2:?--proxy needs the path of the pgshard binary}; fi

need() { command -v "$1" >/dev/null || { echo "build-images: '$1' is needed ($2)" >&2; exit 1; }; }
need docker "Docker Engine"
docker info >/dev/null 2>&1 || { echo "build-images: the Docker daemon is not reachable" >&2; exit 1; }

packages="postgresql-15,postgresql-client-15,iproute2,procps,ca-certificates"
base_key=$(printf '%s\n' "v1" "$packages" | sha256sum | cut -c1-12)
base_tag="pgshard/debian:bookworm-pg15-$base_key"

if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  need debootstrap "apt-get install debootstrap"
  mirror=$("$here/debian-mirror.sh")
  rootfs=$(mktemp -d /tmp/pgshard-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-images: debootstrap bookworm from the apt mirror into $rootfs"
  # A line per phase (a few minutes in all); the whole output is in the log.
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" 2>&1 |
    tee /tmp/pgshard-debootstrap.log |
    awk '/^I: / && $2 != "Validating" && $2 != last { print "build-images: debootstrap: " substr($0, 4); fflush(); last = $2 }' ||
    { tail -n 30 /tmp/pgshard-debootstrap.log >&2; exit 1; }
  # The package's own cluster and caches are not needed in the image.
  rm -rf "$rootfs"/var/lib/postgresql/15/main "$rootfs"/etc/postgresql/15/main \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  echo "build-images: importing $base_tag"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' - "$base_tag" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

# Adds files to an image without a builder: create a container, copy, commit with a content label.
layer() { # layer FROM TAG KEY ENTRYPOINT SRC:DST...
  local from=$1 tag=$2 key=$3 entry=$4; shift 4
  if [ "$(docker image inspect -f '{{index .Config.Labels "pgshard.key"}}' "$tag" 2>/dev/null)" = "$key" ]; then
    echo "build-images: $tag is up to date"
    return
  fi
  local cid
  cid=$(docker create "$from" /bin/true)
  for pair in "$@"; do docker cp "${pair%%:*}" "$cid:${pair#*:}"; done
  docker commit --change "ENTRYPOINT [\"$entry\"]" --change 'EXPOSE 5432' --change 'CMD []' \
    --change "LABEL pgshard.key=$key" "$cid" "$tag" >/dev/null
  docker rm "$cid" >/dev/null
  echo "build-images: built $tag"
}

node_key=$(cat "$here/postgres/pgshard-node" "$here/postgres/pgshard-rejoin" <(echo "$base_tag") |
  sha256sum | cut -c1-16)
layer "$base_tag" pgshard/postgres:15 "$node_key" /usr/local/bin/pgshard-node \
  "$here/postgres/pgshard-node:/usr/local/bin/pgshard-node" \
  "$here/postgres/pgshard-rejoin:/usr/local/bin/pgshard-rejoin"

if [ -n "$proxy_bin" ]; then
  proxy_key=$(cat "$proxy_bin" <(echo "$node_key") | sha256sum | cut -c1-16)
  layer pgshard/postgres:15 pgshard/proxy:latest "$proxy_key" /usr/local/bin/pgshard \
    "$proxy_bin:/usr/local/bin/pgshard"
fi

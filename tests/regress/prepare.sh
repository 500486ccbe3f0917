#!/usr/bin/env bash
# Prepares PostgreSQL 15's own regression suite (pg_regress) for tests/tests/regression_suite.rs:
#   - installs, by Debian package name, what is missing: postgresql-15 (for the libraries
#     the server links), dpkg-dev (apt-get source), gcc, libc6-dev and make;
#   - fetches the source package postgresql-15 with `apt-get source` (a deb-src entry is
#     derived from this machine's apt sources when none is configured): the installed
#     version's, or the newest older one the mirror has when it lacks that source;
#   - unpacks postgresql-15, postgresql-client-15 and postgresql-server-dev-15 at that same
#     version (server, psql, pg_regress and headers must match the suite's expected output)
#     into the cache, without installing them;
#   - builds the suite's C libraries regress.so (src/test/regress) and refint.so, autoinc.so
#     (contrib/spi) into one directory, for pg_regress --dlpath.
#
# Usage: tests/regress/prepare.sh [CACHE_DIR]   (default: target/pg-regress of the repository)
# Everything goes under CACHE_DIR/<version>; a second run with nothing changed only checks.
# Prints KEY=VALUE lines on stdout (progress goes to stderr):
#   PG_VERSION, PG_BINDIR, PG_REGRESS, REGRESS_DIR (sql/, expected/, data/, parallel_schedule),
#   DLPATH (regress.so, refint.so, autoinc.so).
# Installing needs root; an up-to-date cache does not.
set -euo pipefail
shopt -s nullglob

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:-$repo/target/pg-regress}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { printf 'prepare.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

installed_version() { # installed_version PACKAGE: its version, or nothing
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
    awk '$1=="install" && $2=="ok" && $3=="installed" { print $4 }' || true
}

apt_updated=false
apt_update() {
  if [ "$apt_updated" = false ]; then
    log "apt-get update"
    apt-get update >&2
    apt_updated=true
  fi
}

apt_install() { # apt_install PACKAGE[=VERSION]...
  [ "$(id -u)" = 0 ] || die "installing $* needs root"
  apt_update
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}


# --- packages ---------------------------------------------------------------------------
# postgresql-15 at any version brings the shared libraries the server needs; the server that
# runs the suite is unpacked below at the version of the source it can fetch.
missing=()
for package in dpkg-dev gcc libc6-dev make postgresql-15; do
  [ -n "$(installed_version "$package")" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
installed=$(installed_version postgresql-15)

source_versions() { # every version of the source package apt knows, newest first
  apt-cache showsrc postgresql-15 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -urV
}

add_deb_src() {
  # Derive deb-src entries from the machine's own apt sources (same mirrors, same keys),
  # for the entries of this release only.
  [ "$(id -u)" = 0 ] || die "adding a deb-src entry needs root"
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
  deb822=/etc/apt/sources.list.d/pgshard-deb-src.sources
  oneline=/etc/apt/sources.list.d/pgshard-deb-src.list
  rm -f "$deb822" "$oneline"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ "$f" = "$deb822" ] && continue
    awk -v codename="$codename" '
      BEGIN { RS = ""; ORS = "\n\n" }
      {
        n = split($0, lines, "\n"); types = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= n; i++) {
          if (lines[i] ~ /^Types:/) types = lines[i]
          if (lines[i] ~ /^Suites:/) suites = lines[i]
          if (tolower(lines[i]) ~ /^enabled:[ \t]*no/) enabled = "no"
        }
        if (enabled == "no" || types !~ /[ \t]deb([ \t]|$)/ || types ~ /deb-src/) next
        m = split(suites, words, /[ \t]+/); ours = 0
        for (i = 2; i <= m; i++) if (words[i] == codename || index(words[i], codename "-") == 1) ours = 1
        if (!ours) next
        out = ""
        for (i = 1; i <= n; i++) {
          if (lines[i] ~ /^#/) continue
          out = out (lines[i] ~ /^Types:/ ? "Types: deb-src" : lines[i]) "\n"
        }
        printf "%s\n", out
      }' "$f" >>"$deb822"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && [ "$f" != "$oneline" ] || continue
    awk -v codename="$codename" '
      /^[ \t]*deb[ \t]/ {
        line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
        options = ""
        if (line ~ /^\[/) { options = substr(line, 1, index(line, "]")); line = substr(line, index(line, "]") + 1); sub(/^[ \t]+/, "", line) }
        split(line, words, /[ \t]+/)
        if (words[2] == codename || index(words[2], codename "-") == 1 || index(words[2], codename "/") == 1)
          print "deb-src " (options == "" ? "" : options " ") line
      }' "$f" >>"$oneline"
  done
  [ -s "$deb822" ] || rm -f "$deb822"
  [ -s "$oneline" ] || rm -f "$oneline"
  [ -e "$deb822" ] || [ -e "$oneline" ] || die "no apt source for $codename to derive a deb-src entry from"
  log "added deb-src entries: $(ls "$deb822" "$oneline" 2>/dev/null | tr '\n' ' ')"
  apt_updated=false
  apt_update
}

# A version prepared before (by this recipe) needs nothing from the network.
recipe=$(sha256sum "$here/prepare.sh" | cut -c1-16)
version=
for dir in "$cache"/*/; do
  candidate=$(basename "$dir")
  if [ -f "$cache/$candidate/ready-$recipe" ]; then version=$candidate; fi
done

if [ -z "$version" ]; then
  [ -n "$(source_versions)" ] || apt_update
  [ -n "$(source_versions)" ] || add_deb_src
  [ -n "$(source_versions)" ] || die "apt has no source package postgresql-15"
  # The installed version first; a mirror may lack the source of a security update (its
  # source 404s), and then an older version serves: the suite, pg_regress and the server
  # are all taken at the version whose source came.
  candidates=$( { [ -z "$installed" ] || echo "$installed"; source_versions; } | awk '!seen[$0]++')
  for candidate in $candidates; do
    dir=$cache/$candidate
    rm -rf "$dir"
    mkdir -p "$dir/fetch"
    log "apt-get source postgresql-15=$candidate into $dir/fetch"
    if ! (cd "$dir/fetch" && apt-get source "postgresql-15=$candidate" >&2); then
      log "the source of postgresql-15 $candidate cannot be fetched here; trying an older one"
      rm -rf "$dir"
      continue
    fi
    log "apt-get download postgresql-15 postgresql-client-15 postgresql-server-dev-15 =$candidate"
    if ! (cd "$dir/fetch" && apt-get download "postgresql-15=$candidate" \
      "postgresql-client-15=$candidate" "postgresql-server-dev-15=$candidate" >&2); then
      log "the binaries of postgresql-15 $candidate cannot be fetched here; trying an older one"
      rm -rf "$dir"
      continue
    fi
    version=$candidate
    break
  done
  [ -n "$version" ] || die "no version of postgresql-15 has both its source and binaries here"

  dir=$cache/$version
  # Unpacked, not installed: the host's own PostgreSQL stays as it is. PostgreSQL finds
  # its share/ and lib/ relative to its binaries, so the tree runs where it is.
  for deb in "$dir"/fetch/*.deb; do
    dpkg-deb -x "$deb" "$dir/root"
  done
  src=$(find "$dir/fetch" -mindepth 1 -maxdepth 1 -type d -name 'postgresql-15-*' | head -n1)
  [ -n "$src" ] && [ -f "$src/src/test/regress/parallel_schedule" ] ||
    die "the source package has no src/test/regress/parallel_schedule"
  # Only the suite and contrib/spi are needed; the rest is 200 MB.
  mv "$src/src/test/regress" "$dir/regress"
  mv "$src/contrib/spi" "$dir/spi"
  rm -rf "$dir/fetch"

  # --- libraries ----------------------------------------------------------------------
  includes=$dir/root/usr/include/postgresql/15/server
  [ -f "$includes/postgres.h" ] || die "$includes/postgres.h is missing (postgresql-server-dev-15)"
  mkdir -p "$dir/lib"
  build() { # build NAME SOURCE [FLAGS...]
    local name=$1 source=$2; shift 2
    log "building $name.so"
    gcc -O2 -fPIC -shared -Wall -Wno-unused "$@" -I"$includes" -o "$dir/lib/$name.so" "$source" >&2
  }
  build regress "$dir/regress/regress.c"
  # As contrib/spi/Makefile builds it: the triggers test expects refint's notices.
  build refint "$dir/spi/refint.c" -DREFINT_VERBOSE
  build autoinc "$dir/spi/autoinc.c"

  # The server (OS user postgres) loads the libraries and reads data/ by absolute path.
  chmod -R a+rX "$dir"
  touch "$dir/ready-$recipe"
fi

dir=$cache/$version
bindir=$dir/root/usr/lib/postgresql/15/bin
pg_regress=$dir/root/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
for program in "$bindir/postgres" "$bindir/initdb" "$bindir/psql" "$pg_regress"; do
  [ -x "$program" ] || die "$program is missing"
done
id postgres >/dev/null 2>&1 || die "the OS user postgres (made by postgresql-15) is missing"

echo "PG_VERSION=$version"
echo "PG_BINDIR=$bindir"
echo "PG_REGRESS=$pg_regress"
echo "REGRESS_DIR=$dir/regress"
echo "DLPATH=$dir/lib"

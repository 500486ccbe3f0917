#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt is configured with (the bookworm main archive),
# so no package host is ever written into the repository.
set -euo pipefail
shopt -s nullglob
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  # deb822 stanzas: pick the first URIs line whose stanza names a plain bookworm suite.
  mirror=$(awk '
    /^URIs:/ { uri=$2 }
    /^Suites:/ { for (i=2; i<=NF; i++) if ($i=="bookworm") ok=1 }
    /^$/ { if (ok && uri!="" && uri !~ /security/) { print uri; exit } ok=0; uri="" }
    END { if (ok && uri!="" && uri !~ /security/) print uri }' "$f" | head -n1)
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    mirror=$(awk '$1=="deb" && $0 ~ / bookworm / && $0 !~ /security/ {
        for (i=2; i<=NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f" | head -n1)
    [ -n "$mirror" ] && break
  done
fi
if [ -z "$mirror" ]; then
  echo "no Debian bookworm mirror found in /etc/apt/sources.list*; configure apt first" >&2
  exit 1
fi
echo "$mirror"

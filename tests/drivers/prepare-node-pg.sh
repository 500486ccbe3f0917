#!/usr/bin/env bash
# Unpacks Debian's node-pg and the modules it needs into DIR (default: target/node-pg of
# the repository), for NODE_PATH=DIR/usr/share/nodejs: the machine's Node.js may not be
# the one Debian's node-pg package depends on, so it is unpacked, not installed.
# Prints the NODE_PATH to use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../target/node-pg}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ ! -f "$dir/ready" ]; then
  cd "$dir"
  rm -f ./*.deb
  apt-get download node-pg node-split2 node-readable-stream node-xtend node-inherits \
    node-string-decoder node-util-deprecate >&2
  for deb in ./*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  touch "$dir/ready"
fi
echo "$dir/root/usr/share/nodejs"

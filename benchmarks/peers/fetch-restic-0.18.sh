#!/usr/bin/env bash
# restic 0.18 for the LXD direct-read benchmark (benchmarks/lxd_direct.py), without
# installing it: Debian 13's (trixie) package fetched with `apt-get download` through a
# private sources list and unpacked with `dpkg-deb -x` into /opt/restic-0.18
# (binary: /opt/restic-0.18/usr/bin/restic). Idempotent. Needs root and the Debian mirror.
set -euo pipefail
DEST=${DEST:-/opt/restic-0.18}
WORK=${WORK:-/var/tmp/dedupe-restic-0.18-apt}
if [ -x "$DEST/usr/bin/restic" ]; then
  echo "fetch-restic: $("$DEST/usr/bin/restic" version)"
  exit 0
fi
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial" "$WORK/debs"
echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main' \
  > "$WORK/sources.list"
opts=(-o Dir::Etc::SourceList="$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$WORK/lists" -o Dir::Cache::Archives="$WORK/archives"
      -o Debug::NoLocking=1)
apt-get "${opts[@]}" update -q >/dev/null
( cd "$WORK/debs" && apt-get "${opts[@]}" download restic )
mkdir -p "$DEST"
dpkg-deb -x "$WORK"/debs/restic_*.deb "$DEST"
echo "fetch-restic: $("$DEST/usr/bin/restic" version)"

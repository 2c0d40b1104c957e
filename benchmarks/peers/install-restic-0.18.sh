#!/usr/bin/env bash
# restic 0.18 (Debian 13 "trixie"'s package) unpacked into /opt/restic-0.18 without
# installing it: Debian 12 ships restic 0.14, and the peer to beat is the current one.
#
# The package comes from this machine's own Debian mirror (the first URIs line of its apt
# sources), read through a private apt configuration under $WORK, so the system's package
# lists and installed packages are untouched. `apt-get download` fetches the .deb and
# `dpkg-deb -x` unpacks it. Idempotent; needs no root beyond writing /opt (PREFIX).
#
#   bash benchmarks/peers/install-restic-0.18.sh   ->  /opt/restic-0.18/usr/bin/restic
set -euo pipefail

PREFIX=${PREFIX:-/opt/restic-0.18}
WORK=${WORK:-/var/tmp/dedupe-trixie-apt}
SUITE=${SUITE:-trixie}
WANT=${WANT:-0.18.}

if "$PREFIX/usr/bin/restic" version 2>/dev/null | grep -q "restic $WANT"; then
  "$PREFIX/usr/bin/restic" version
  exit 0
fi

mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | awk '$1 == "URIs:" || $1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/ && $i !~ /security/) { print $i; exit } }' \
  || true)
[ -n "$mirror" ] || { echo "install-restic: no Debian mirror in this machine's apt sources" >&2; exit 1; }

mkdir -p "$WORK/lists/partial" "$WORK/archives/partial" "$WORK/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $SUITE main" >"$WORK/sources.list"
apt_private=(
  -o "Dir::Etc::SourceList=$WORK/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache::Archives=$WORK/archives"
  -o "Dir::State::status=/dev/null" -o "APT::Architecture=$(dpkg --print-architecture)"
)
apt-get "${apt_private[@]}" update -q >/dev/null
( cd "$WORK/debs" && apt-get "${apt_private[@]}" download -q restic >/dev/null )
deb=$(ls -t "$WORK"/debs/restic_*.deb | head -n1)
rm -rf "$PREFIX" && mkdir -p "$PREFIX"
dpkg-deb -x "$deb" "$PREFIX"
"$PREFIX/usr/bin/restic" version | grep -q "restic $WANT" \
  || { echo "install-restic: $deb is not restic $WANT" >&2; exit 1; }
"$PREFIX/usr/bin/restic" version

#!/usr/bin/env bash
# Install the peer tools for the side-by-side benchmarks, outside the project's venv:
#   - borg 1.4.x, built from source into its own venv at /opt/borg (PyPI: borgbackup)
#   - restic from Debian's package (bookworm ships 0.14.0)
#   - the tools the corpus and the comparison need: debootstrap, GNU tar, zstd, acl/attr,
#     GNU time (/usr/bin/time for wall time and peak RSS), rsync (the directory scenario).
# Idempotent: re-running it only installs what is missing. Needs root (apt-get).
set -euo pipefail

BORG_VENV=${BORG_VENV:-/opt/borg}
BORG_SPEC=${BORG_SPEC:-'borgbackup>=1.4,<1.5'}

apt_pkgs=(
    # borg's build dependencies
    build-essential pkg-config libacl1-dev libssl-dev liblz4-dev libzstd-dev libxxhash-dev
    python3-venv python3-dev
    # restic
    restic
    # corpus and measurement
    debootstrap tar zstd acl attr time rsync
)

missing=()
for p in "${apt_pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    echo "install-peers: apt-get install ${missing[*]}"
    # other sessions may be installing packages too: wait for the dpkg lock instead of failing
    apt-get -o DPkg::Lock::Timeout=900 update -q
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q "${missing[@]}"
fi

if ! "$BORG_VENV/bin/borg" --version 2>/dev/null | grep -q '^borg 1\.4\.'; then
    echo "install-peers: building $BORG_SPEC into $BORG_VENV"
    [ -x "$BORG_VENV/bin/python" ] || python3 -m venv "$BORG_VENV"
    "$BORG_VENV/bin/pip" install -q --upgrade pip
    "$BORG_VENV/bin/pip" install -q "$BORG_SPEC"
fi

echo "borg:   $("$BORG_VENV/bin/borg" --version) ($BORG_VENV/bin/borg)"
echo "restic: $(restic version) ($(command -v restic))"
echo "tar:    $(tar --version | head -1)"
echo "zstd:   $(zstd --version)"

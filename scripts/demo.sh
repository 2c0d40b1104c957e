#!/usr/bin/env bash
# The main job, end to end, on this machine: a throwaway LXD daemon, a demo container in
# its own LXD project, two nightly backups with a change in between, the stored sizes,
# a full check, and a restore under a new name whose files are compared with the original.
#
#   scripts/demo.sh                 as root; as another user: sudo scripts/demo.sh
#                                   (REPO=/var/tmp/dedupe-demo-repo by default)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=${REPO:-/var/tmp/dedupe-demo-repo}
PROJECT=dedupe-demo
export LXD_DIR=${LXD_DIR:-/var/lib/lxd}
say() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root, or with sudo (it installs and starts LXD)" >&2; exit 1; }
say "setting up dedupe and a throwaway LXD daemon"
scripts/setup.sh
scripts/lxd-test-server.sh setup
D=.venv/bin/dedupe
lxc() { command lxc --project "$PROJECT" "$@"; }

say "a demo container in LXD project $PROJECT"
command lxc project create "$PROJECT" -c features.images=false -c features.profiles=false 2>/dev/null || true
lxc delete -f demo demo-restored 2>/dev/null || true
lxc init tiny demo -q
lxc start demo
lxc exec demo -- sh -c 'mkdir -p /srv/data && for i in $(seq 1 200); do head -c 20000 /dev/urandom > /srv/data/f$i; done; echo night one > /srv/notes'
lxc snapshot demo snap0

rm -rf "$REPO"
# an encrypted repository (the default) takes its passphrase from the environment here
export DEDUPE_PASSPHRASE=${DEDUPE_PASSPHRASE:-dedupe demo passphrase}
$D init --repo "$REPO"
backup() {
  # everything in the project, one backup per object; the instance's export (compression
  # "none") is streamed into the file-aligned tar path and deleted on the server afterwards
  $D backup lxd --project "$PROJECT" --repo "$REPO"
}
say "night 1: first backup"
backup
say "a day of work: 2% of the files change"
lxc exec demo -- sh -c 'for i in 1 2 3 4; do head -c 20000 /dev/urandom > /srv/data/f$i; done; echo night two >> /srv/notes'
say "night 2: second backup (only the changes are new)"
backup
$D list --repo "$REPO" --group "lxd/$PROJECT"

say "check: every blob read, decompressed and verified"
$D check --read-data --repo "$REPO"

say "restore the latest backup of the container under a new name, straight into LXD"
ID=$($D list --json --repo "$REPO" --group "lxd/$PROJECT/instance/demo" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
$D restore "$ID" --to-lxd --as demo-restored --project "$PROJECT" --repo "$REPO"
lxc start demo-restored
a=$(lxc exec demo -- sh -c 'cd /srv && find . -type f | sort | xargs md5sum' | md5sum)
b=$(lxc exec demo-restored -- sh -c 'cd /srv && find . -type f | sort | xargs md5sum' | md5sum)
[ "$a" = "$b" ] || { echo "demo: restored files differ" >&2; exit 1; }
echo "restored container's files match the original ($(lxc exec demo -- sh -c 'find /srv -type f | wc -l') files)"
lxc list -c ns -f compact

say "clean up"
lxc delete -f demo demo-restored
command lxc project delete "$PROJECT"
echo "demo: OK (repository kept at $REPO)"

#!/bin/bash
# A throwaway LXD daemon (Debian 12's `lxd` package, not the snap) for the tests, CI and the demo.
#
# Usage (as root):
#   scripts/lxd-test-server.sh setup      install lxd + lxd-client + busybox-static when missing, start the daemon
#                                         (or reuse a running one), preseed a `dir` pool named default and no
#                                         network when not initialised, import the busybox image `tiny` when missing,
#                                         and create a loop-file `btrfs` pool (direct reads of btrfs) when missing
#   scripts/lxd-test-server.sh teardown   `lxd shutdown` (stops every instance, then the daemon exits)
#   scripts/lxd-test-server.sh status     exit 0 when a daemon answers on the socket, 1 otherwise
#
# Idempotent: `setup` twice is fine. It creates no instances: tests make their own, in their own LXD project.
#
# Environment:
#   LXD_DIR      the daemon's directory                    (default /var/lib/lxd, Debian's)
#   LXD_WORK     scratch dir: pid file, log, image build   (default ${TMPDIR:-/tmp}/dedupe-lxd)
#   LXD_LOG      daemon log                                (default $LXD_WORK/lxd.log)
#   LXD_DEBUG=1  start the daemon with --debug
#   BTRFS_POOL   name of the loop-file btrfs pool          (default btrfs; empty: none)
#   BTRFS_SIZE   its sparse loop file's size                (default 6GiB)
#
# Facts behind each step: docs/lxd.md (section 11 for timings).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LXD_DIR=${LXD_DIR:-/var/lib/lxd}
LXD_WORK=${LXD_WORK:-${TMPDIR:-/tmp}/dedupe-lxd}
LXD_LOG=${LXD_LOG:-$LXD_WORK/lxd.log}
PID_FILE=$LXD_WORK/lxd.pid
SOCKET=$LXD_DIR/unix.socket
PACKAGES=(lxd lxd-client busybox-static btrfs-progs)
IMAGE_ALIAS=tiny

T0=$EPOCHREALTIME
T_LAST=$T0

# step MESSAGE: "[total  +since-last] message"
step() {
  local now=$EPOCHREALTIME
  awk -v a="$T0" -v b="$T_LAST" -v n="$now" -v m="$*" \
    'BEGIN { printf "lxd-test-server [%6.2fs %+6.2fs] %s\n", n - a, n - b, m }'
  T_LAST=$now
}

die() { echo "lxd-test-server: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (installs packages and starts lxd)"; }

daemon_answers() {
  [ -S "$SOCKET" ] && command -v lxd >/dev/null 2>&1 && timeout 10 lxd waitready --timeout 2 >/dev/null 2>&1
}

# shellcheck source=lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

install_packages() {
  local missing
  missing=$(packages_missing "${PACKAGES[@]}")
  if [ -z "$missing" ]; then step "packages present: ${PACKAGES[*]}"; return; fi
  step "apt-get update"
  apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
  step "apt-get install $missing"
  # shellcheck disable=SC2086 # word splitting wanted
  apt-get -o DPkg::Lock::Timeout=300 install -y -q $missing >/dev/null
  step "packages installed"
}

start_daemon() {
  mkdir -p "$LXD_WORK"
  if daemon_answers; then
    step "daemon already running on $SOCKET"
    return
  fi
  step "starting lxd (log $LXD_LOG)"
  local dbg=()
  [ "${LXD_DEBUG:-0}" = 1 ] && dbg=(--debug)
  # setsid + nohup: the daemon outlives the calling shell (a CI step, a pytest fixture).
  # --group root: the socket's group (Debian's unit uses `lxd`; no systemd here).
  # From /: the daemon keeps its working directory, and the rsync it runs for dir-pool
  # snapshots fails (getcwd) once a clone or worktree it was started from is deleted.
  (cd / && exec setsid nohup lxd --group root "${dbg[@]}" >>"$LXD_LOG" 2>&1 </dev/null) &
  local pid=$! i
  echo "$pid" >"$PID_FILE"
  for i in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LXD_LOG" >&2 || true
      rm -f "$PID_FILE"
      die "lxd exited during startup (log $LXD_LOG)"
    fi
    lxd waitready --timeout 1 >/dev/null 2>&1 && break
    [ "$i" = 120 ] && die "lxd not ready after 120 s (log $LXD_LOG)"
  done
  step "daemon ready (pid $pid)"
}

preseed() {
  if lxc storage show default >/dev/null 2>&1; then
    step "already initialised (storage pool default exists)"
    return
  fi
  lxd init --preseed <<'EOF'
config: {}
networks: []
storage_pools:
- name: default
  driver: dir
  config: {}
profiles:
- name: default
  description: Default LXD profile
  config: {}
  devices:
    root:
      path: /
      pool: default
      type: disk
EOF
  step "preseeded: dir pool default, no network"
}

# A loop-file btrfs pool for the direct-read tests (btrfs is built into the kernel here;
# btrfs-progs is what LXD needs, and no daemon restart is: lxd-facts.md section 9). LXD
# keeps the loop file under $LXD_DIR/disks and mounts it itself.
btrfs_pool() {
  local name=${BTRFS_POOL-btrfs}
  [ -n "$name" ] || return 0
  if lxc storage show "$name" >/dev/null 2>&1; then
    step "btrfs pool $name exists"
    return
  fi
  if ! grep -qw btrfs /proc/filesystems; then
    step "no btrfs in this kernel: no btrfs pool"
    return
  fi
  lxc storage create "$name" btrfs size="${BTRFS_SIZE:-6GiB}" -q
  step "btrfs pool $name created (loop file $LXD_DIR/disks/$name.img)"
}

build_image() {
  if lxc image info "$IMAGE_ALIAS" >/dev/null 2>&1; then
    step "image $IMAGE_ALIAS present"
    return
  fi
  local d=$LXD_WORK/img a
  rm -rf "$d"
  mkdir -p "$d/rootfs"
  (
    cd "$d/rootfs"
    mkdir -p bin sbin etc dev proc sys tmp root usr/bin usr/sbin var/log
    chmod 1777 tmp
    chmod 0700 root
    cp /bin/busybox bin/busybox
    # every applet as a symlink, so `lxc exec ... -- sh -c 'mkfifo ...; mknod ...'` works
    for a in $(bin/busybox --list); do
      [ "$a" = busybox ] || [ -e "bin/$a" ] || ln -s busybox "bin/$a"
    done
    ln -sf ../bin/busybox sbin/init
    echo 'root:x:0:0:root:/root:/bin/sh' >etc/passwd
    echo 'root:x:0:' >etc/group
  )
  cat >"$d/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: tiny busybox
  os: busybox
  release: "1"
EOF
  tar -C "$d" -czf "$d/meta.tar.gz" metadata.yaml
  tar -C "$d/rootfs" --numeric-owner --owner=0 --group=0 -czf "$d/rootfs.tar.gz" .
  lxc image import "$d/meta.tar.gz" "$d/rootfs.tar.gz" --alias "$IMAGE_ALIAS" -q
  rm -rf "$d"
  step "image $IMAGE_ALIAS imported: $(lxc image list "$IMAGE_ALIAS" -c f -f csv)"
}

# A test run that was killed can leave an instance's or volume's directory in a pool after
# its project is gone (the tests' projects are named dedupe-test-<hex>). LXD does not know
# such a directory, so the disaster-recovery tests' `lxd recover` would find and offer it.
# Remove those whose project no longer exists (never anything of a project that exists).
sweep_test_leftovers() {
  local d base project n=0
  for d in "$LXD_DIR"/storage-pools/*/{containers,containers-snapshots,custom,custom-snapshots}/dedupe-test-*_*; do
    [ -e "$d" ] || continue
    base=${d##*/}
    project=${base%%_*}
    lxc project show "$project" >/dev/null 2>&1 && continue
    # btrfs subvolumes (and read-only snapshots below them) go with btrfs subvolume delete
    if [ "$(stat -f -c %T "$d")" = btrfs ] && command -v btrfs >/dev/null; then
      find "$d" -depth -inum 256 -exec btrfs property set -ts {} ro false \; \
        -exec btrfs subvolume delete -q {} \; >/dev/null 2>&1 || true
    fi
    rm -rf "$d"
    n=$((n + 1))
  done
  [ "$n" = 0 ] || step "removed $n leftover(s) of killed test runs from the pools"
}

setup() {
  need_root
  install_packages
  start_daemon
  preseed
  btrfs_pool
  build_image
  sweep_test_leftovers
  step "ready: LXD $(lxc query /1.0 | sed -n 's/.*"server_version": *"\([^"]*\)".*/\1/p') on $SOCKET"
}

teardown() {
  need_root
  if daemon_answers; then
    step "lxd shutdown (stops all instances)"
    timeout 120 lxd shutdown || true
  else
    step "no daemon answers on $SOCKET"
  fi
  if [ -f "$PID_FILE" ]; then
    local pid i
    pid=$(cat "$PID_FILE")
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      step "pid $pid still alive: SIGTERM"
      kill "$pid" || true
      sleep 2
    fi
    rm -f "$PID_FILE"
  fi
  step "daemon stopped"
}

status() {
  if daemon_answers; then
    local info
    info=$(lxc query /1.0 2>/dev/null | sed -n 's/.*"server_version": *"\([^"]*\)".*/\1/p')
    echo "lxd-test-server: running: LXD ${info:-?} on $SOCKET"
    return 0
  fi
  echo "lxd-test-server: not running (no daemon answers on $SOCKET)"
  return 1
}

case "${1:-}" in
  setup) setup ;;
  teardown) teardown ;;
  status) status ;;
  *) echo "usage: $0 setup|teardown|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway S3 server for the tests, CI and the benchmarks: a single-node Ceph cluster
# (1 mon, 1 OSD on memstore, no mgr) with a RADOS Gateway on loopback, from Debian 12's
# packages, without systemd. Each step's reason is in the comments below.
#
# Usage (as root):
#   scripts/s3-test-server.sh setup      install ceph-mon ceph-osd radosgw when missing; start the cluster
#                                        (or reuse a running one); create the S3 user; write $S3_DIR/env.sh
#   scripts/s3-test-server.sh teardown   stop the daemons (by pid file, never by name) and remove $S3_DIR
#   scripts/s3-test-server.sh status     exit 0 when our gateway answers, 1 otherwise (prints the endpoint)
#   scripts/s3-test-server.sh env        print the export lines (after setup)
#   scripts/s3-test-server.sh kill-rgw   SIGKILL the gateway only (fault tests)
#   scripts/s3-test-server.sh start-rgw  start the gateway again after kill-rgw
#
# Idempotent: `setup` twice is fine. Typical cost: ~15 s of apt on a fresh machine,
# ~4-5 s to start, <1 s to stop, ~120 MiB RSS idle (memstore keeps objects in the
# OSD's RAM; set OSD_STORE=bluestore to keep them in a sparse file instead).
#
# Environment (optional):
#   S3_DIR        state dir (conf, keys, pid files, logs, env.sh)   default /var/tmp/dedupe-s3
#   S3_PORT       the S3 endpoint's port on 127.0.0.1               default 7480
#   MON_PORT      mon msgr v2 port (v1 = MON_PORT+1)                default 3300
#   OSD_PORT_MIN  start of the daemons' port range (~40 ports)      default 6800
#   OSD_STORE     memstore | bluestore                              default memstore
#   STORE_GB      memstore capacity / bluestore file size, GiB      default 8
#   S3_ACCESS_KEY / S3_SECRET_KEY                                   default test / testsecret
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

S3_DIR=${S3_DIR:-/var/tmp/dedupe-s3}
S3_PORT=${S3_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
MON_PORT_V1=$((MON_PORT + 1))
OSD_PORT_MIN=${OSD_PORT_MIN:-6800}
OSD_PORT_MAX=$((OSD_PORT_MIN + 40))
OSD_STORE=${OSD_STORE:-memstore}
STORE_GB=${STORE_GB:-8}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-test}
S3_SECRET_KEY=${S3_SECRET_KEY:-testsecret}
IP=127.0.0.1
CONF=$S3_DIR/ceph.conf
ENDPOINT=http://$IP:$S3_PORT
DAEMONS=(client.rgw.x osd.0 mon.a)  # stop order: rgw, osd, mon (an OSD without a mon waits 5 s)
PACKAGES=(ceph-mon ceph-osd radosgw curl uuid-runtime python3)

T0=$EPOCHREALTIME
log() { awk -v a="$T0" -v b="$EPOCHREALTIME" -v m="$*" 'BEGIN { printf "s3-test-server [%6.2fs] %s\n", b - a, m }' >&2; }
die() { echo "s3-test-server: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root (installs packages and starts ceph daemons)"; }

# alive = exists and is not a zombie (PID 1 may reap reparented daemons only after a while)
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$st" != Z ]; }
# the pid of one of our daemons, only if it runs with our ceph.conf
our_pid() {
  local f=$S3_DIR/run/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && alive "$pid" && [ -r "/proc/$pid/cmdline" ] \
    && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$CONF" && echo "$pid"
}
stop_daemon() {  # stop_daemon NAME SIGNAL
  local pid
  pid=$(our_pid "$1") || { rm -f "$S3_DIR/run/$1.pid"; return 0; }
  kill "-$2" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  rm -f "$S3_DIR/run/$1.pid"
}
stop_all() { local d; for d in "${DAEMONS[@]}"; do stop_daemon "$d" "${1:-TERM}"; done; }
answers() { command -v curl >/dev/null && curl -fs -m 2 -o /dev/null "$ENDPOINT/"; }
running() { our_pid client.rgw.x >/dev/null && answers; }

fail_setup() {
  log "ERROR: $*"
  local f
  for f in "$S3_DIR"/log/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  stop_all KILL
  die "setup failed; logs kept in $S3_DIR/log"
}

# shellcheck source=lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

install_packages() {
  local missing
  missing=$(packages_missing "${PACKAGES[@]}")
  [ -z "$missing" ] && return 0
  log "apt-get install $missing"
  # shellcheck disable=SC2086
  if ! apt-get install -y -q --no-install-recommends $missing >"${TMPDIR:-/tmp}/s3-test-server-apt.log" 2>&1; then
    log "apt-get update (package lists missing or stale)"
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >"${TMPDIR:-/tmp}/s3-test-server-apt.log" 2>&1 \
      || { tail -n 20 "${TMPDIR:-/tmp}/s3-test-server-apt.log" >&2; die "apt-get install $missing failed"; }
  fi
  log "packages installed"
}

port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

write_conf() {
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = [v2:$IP:$MON_PORT,v1:$IP:$MON_PORT_V1]
public addr = $IP
cluster addr = $IP
ms bind ipv4 = true
ms bind ipv6 = false
ms bind port min = $OSD_PORT_MIN
ms bind port max = $OSD_PORT_MAX
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $S3_DIR/\$name/keyring
run dir = $S3_DIR/run
admin socket = $S3_DIR/run/\$name.asok
pid file = $S3_DIR/run/\$name.pid
log file = $S3_DIR/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $S3_DIR/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool delete = true
mon data avail warn = 2
mon data avail crit = 1
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
ms async op threads = 2
debug ms = 0
debug mon = 1
debug osd = 1
debug rgw = 1
# a killed gateway's watches on its control objects hold up the next gateway's metadata
# changes (create bucket) until they time out: 30 s by default; the fault tests kill it
osd client watch timeout = 6
objecter tick interval = 1

[mon]
# each pool operation waits one paxos proposal: 1 s by default, 50 ms here
paxos propose interval = 0.05
paxos min wait = 0.01
mon data = $S3_DIR/mon.\$id
mon initial members = a
mon cluster log file = $S3_DIR/log/cluster.log

[osd]
osd data = $S3_DIR/osd.\$id
osd objectstore = $OSD_STORE
memstore device bytes = $((STORE_GB * 1024 * 1024 * 1024))
bluestore block path = $S3_DIR/osd.\$id/block.file
bluestore block create = true
bluestore block size = $((STORE_GB * 1024 * 1024 * 1024))
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd crush update on start = true
osd op num shards = 1
osd op num threads per shard = 2
osd mon shutdown timeout = 1

[client.rgw.x]
# tcp_nodelay: without it every small request costs ~40 ms (Nagle + delayed ACK)
rgw frontends = beast endpoint=$IP:$S3_PORT tcp_nodelay=1
rgw data = $S3_DIR/client.rgw.x
rgw thread pool size = 64
rgw dns name = localhost
rgw enable usage log = false
# deleted object tails are collected after 2 h by default; with memstore that is RAM
rgw gc obj min wait = 5
rgw gc processor period = 5
EOF
}

start_rgw() {
  radosgw -n client.rgw.x -c "$CONF" 2>>"$S3_DIR/log/client.rgw.x.stderr" || return 1
  local i
  for i in $(seq 1 400); do
    grep -q 'failed initializing frontend' "$S3_DIR/log/client.rgw.x.log" 2>/dev/null && return 1
    answers && break
    sleep 0.05
  done
  our_pid client.rgw.x >/dev/null && answers
}

write_env() {
  cat >"$S3_DIR/env.sh" <<EOF
export S3_ENDPOINT=$ENDPOINT
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_DEFAULT_REGION=us-east-1
EOF
}

setup() {
  need_root
  if running; then
    log "already running at $ENDPOINT ($S3_DIR)"
    write_env
    return 0
  fi
  install_packages
  stop_all KILL  # leftovers of an earlier, half-dead run of ours
  local p
  for p in "$S3_PORT" "$MON_PORT" "$MON_PORT_V1"; do
    port_free "$p" || die "127.0.0.1:$p is in use by something else (set S3_PORT / MON_PORT / OSD_PORT_MIN)"
  done
  case "$OSD_STORE" in memstore|bluestore) ;; *) die "OSD_STORE must be memstore or bluestore";; esac
  rm -rf "$S3_DIR"
  mkdir -p "$S3_DIR"/{run,log,osd.0,crash,client.admin,client.rgw.x}
  export CEPH_CONF=$CONF
  local fsid osd_uuid osd_key osd_id i
  fsid=$(uuidgen)
  write_conf "$fsid"

  ceph-authtool --create-keyring "$S3_DIR/client.admin/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool --create-keyring "$S3_DIR/bootstrap.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$S3_DIR/bootstrap.keyring" --import-keyring "$S3_DIR/client.admin/keyring" >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:$IP:$MON_PORT,v1:$IP:$MON_PORT_V1]" "$S3_DIR/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$S3_DIR/monmap" --keyring "$S3_DIR/bootstrap.keyring" -c "$CONF" \
    || fail_setup "mon mkfs"
  ceph-mon -i a -c "$CONF" 2>>"$S3_DIR/log/mon.a.stderr" || fail_setup "mon start"
  for i in $(seq 1 100); do ceph -s --connect-timeout 5 >/dev/null 2>&1 && break; sleep 0.1; done
  ceph -s --connect-timeout 5 >/dev/null 2>&1 || fail_setup "mon not answering"
  log "mon up"

  osd_uuid=$(uuidgen)
  osd_key=$(ceph-authtool --gen-print-key)
  printf '{"cephx_secret": "%s"}\n' "$osd_key" >"$S3_DIR/osd.0/new.json"
  osd_id=$(ceph osd new "$osd_uuid" -i "$S3_DIR/osd.0/new.json")
  [ "$osd_id" = 0 ] || fail_setup "unexpected osd id $osd_id"
  ceph-osd -i 0 -c "$CONF" --mkfs --key "$osd_key" --osd-uuid "$osd_uuid" >"$S3_DIR/log/osd.0.mkfs.log" 2>&1 \
    || fail_setup "osd mkfs"
  printf '[osd.0]\n\tkey = %s\n' "$osd_key" >"$S3_DIR/osd.0/keyring"  # --mkfs --key does not write it
  ceph-osd -i 0 -c "$CONF" 2>>"$S3_DIR/log/osd.0.stderr" || fail_setup "osd start"
  for i in $(seq 1 200); do
    ceph osd dump 2>/dev/null | grep -q '^osd.0 up' && break
    sleep 0.1
  done
  ceph osd dump 2>/dev/null | grep -q '^osd.0 up' || fail_setup "osd.0 never came up"
  log "osd up ($OSD_STORE)"

  # RGW's pools up front: otherwise radosgw creates them one by one (seconds each)
  for p in .rgw.root default.rgw.log default.rgw.control default.rgw.meta \
           default.rgw.buckets.index default.rgw.buckets.non-ec default.rgw.buckets.data; do
    ceph osd pool create "$p" 8 8 >/dev/null 2>&1 || fail_setup "pool create $p"
    ceph osd pool application enable "$p" rgw >/dev/null 2>&1 || fail_setup "pool application enable $p"
  done
  ceph auth get-or-create client.rgw.x mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    -o "$S3_DIR/client.rgw.x/keyring" >/dev/null
  start_rgw || fail_setup "radosgw not answering on $ENDPOINT"
  log "gateway answering on $ENDPOINT"
  radosgw-admin -c "$CONF" user create --uid=test --display-name="test user" \
    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >"$S3_DIR/user.json" \
    2>>"$S3_DIR/log/radosgw-admin.log" || fail_setup "radosgw-admin user create"
  write_env
  log "ready: . $S3_DIR/env.sh"
}

case "${1:-}" in
  setup) setup ;;
  teardown)
    [ -d "$S3_DIR" ] || { log "nothing at $S3_DIR"; exit 0; }
    stop_all "${S3_SIGNAL:-KILL}"  # a throwaway cluster: SIGKILL is fine and fast
    rm -rf "$S3_DIR"
    log "stopped; removed $S3_DIR" ;;
  status)
    if running; then echo "running $ENDPOINT ($S3_DIR)"; else echo "not running ($S3_DIR)"; exit 1; fi ;;
  env) [ -f "$S3_DIR/env.sh" ] || die "not set up ($S3_DIR/env.sh missing)"; cat "$S3_DIR/env.sh" ;;
  kill-rgw) need_root; stop_daemon client.rgw.x KILL; log "gateway killed" ;;
  start-rgw)
    need_root
    if running; then log "gateway already answering"; exit 0; fi
    stop_daemon client.rgw.x KILL
    start_rgw || die "radosgw did not come back on $ENDPOINT (see $S3_DIR/log)"
    log "gateway answering on $ENDPOINT" ;;
  *) echo "usage: $0 setup|teardown|status|env|kill-rgw|start-rgw" >&2; exit 2 ;;
esac

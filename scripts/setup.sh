#!/usr/bin/env bash
# Install dedupe and its test tools into ./.venv (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: dedupe needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -q && apt-get install -y -q python3-venv
      rm -rf .venv && "$PY" -m venv .venv
    else
      echo "setup: '$PY -m venv' failed; install python3-venv" >&2; exit 1
    fi
  fi
fi
# `dedupe mount` needs FUSE: the kernel module, fusermount3 and libfuse 3 (mfusepy loads it)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v fusermount3 >/dev/null; then
  (apt-get install -y -q fuse3 libfuse3-dev || { apt-get update -q && apt-get install -y -q fuse3 libfuse3-dev; }) \
    || echo "setup: could not install fuse3 (dedupe mount needs it)" >&2
fi
if [ "$(id -u)" = 0 ] && [ ! -e /dev/fuse ]; then modprobe fuse 2>/dev/null || true; fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,ui]'
# an editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set (as on some
# CI machines) every command would compile dedupe from source (~0.1 s): compile it once
.venv/bin/python -m compileall -q -j 0 dedupe repo_format >/dev/null
echo "setup: $(.venv/bin/dedupe --version)"

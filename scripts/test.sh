#!/usr/bin/env bash
# The test command: set up, start a throwaway LXD daemon and S3 gateway (as root), run every test.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  scripts/lxd-test-server.sh setup
  scripts/s3-test-server.sh setup
else
  echo "test: not root: LXD and S3 tests will be skipped (CI runs them as root)"
fi
exec .venv/bin/pytest "$@"

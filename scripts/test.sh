#!/usr/bin/env bash
# The test command: set up, install the tools the tests run, start a throwaway LXD daemon
# and S3 gateway (as root), run every test.
# Run it as root (a fresh Debian has no sudo: `scripts/test.sh`), or `sudo scripts/test.sh`.
# As another user it runs what it can: tests that need root, LXD or S3 skip and say why
# (under CI=true they fail instead).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages of the programs the tests run (tests/dedupe_testing.py TOOL_PACKAGES):
# acl for setfacl/getfacl; fuse3 for the mount tests (fusermount3); tar, mount and
# util-linux (unshare) are in every Debian; chromium for the web UI's browser tests
# (tests/browser: Playwright drives the system browser; Playwright's own browser download
# is never used).
TEST_PACKAGES=(acl tar mount util-linux fuse3 chromium)
scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  # shellcheck source=lib/apt.sh
  . scripts/lib/apt.sh
  install_missing "${TEST_PACKAGES[@]}"
  scripts/lxd-test-server.sh setup
  scripts/s3-test-server.sh setup
else
  echo "test: not root: LXD and S3 tests and those needing root will be skipped (CI runs them as root)"
fi
exec .venv/bin/pytest "$@"

"""Helpers shared by the test suites (imported as ``dedupe_testing``: a unique module
name, since several ``conftest`` modules live in this tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Callable, NoReturn

import pytest

CLI = [sys.executable, "-m", "dedupe"]

# Every repository the tests make is encrypted (the default) under this passphrase,
# with a deliberately cheap key derivation so that each command starts fast.
TEST_PASSPHRASE = "correct horse battery staple"
os.environ.setdefault("DEDUPE_PASSPHRASE", TEST_PASSPHRASE)
os.environ.setdefault("DEDUPE_INSECURE_TEST_KDF", "1")

RunCli = Callable[..., subprocess.CompletedProcess[bytes]]

# A child's peak RSS as the kernel counts it (ru_maxrss) starts at its parent's: exec
# keeps the high-water mark of the memory it replaces. A command started straight from
# a test process that has grown large would seem as large, so measured commands run
# under this small launcher, which writes its child's peak RSS (KiB) to argv[1].
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[2:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def measured(argv: list[str], report: str) -> list[str]:
    """``argv`` run under the launcher that writes its peak RSS to ``report``."""
    return [sys.executable, "-c", _MEASURE, report, *argv]


def assert_clean_error(p: subprocess.CompletedProcess[bytes], code: int, *words: str) -> None:
    """A one-line error naming what went wrong, the right exit code, no traceback."""
    err = p.stderr.decode()
    assert p.returncode == code, f"exit {p.returncode}, wanted {code}: {err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("dedupe: "), lines[0]
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"


# -- what a test needs from the machine ---------------------------------------------------
# scripts/test.sh installs every tool the tests use and CI runs it as root, so under CI
# (CI=true) a need that is not met is a failure, never a silent skip; elsewhere (a
# developer's machine without root, say) the test skips and says why.

IN_CI = os.environ.get("CI") == "true"
ROOT = os.geteuid() == 0
# the Debian package of each tool the tests run (scripts/test.sh installs them)
TOOL_PACKAGES = {"setfacl": "acl", "getfacl": "acl", "tar": "tar", "unshare": "util-linux", "mount": "mount"}


def unmet(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason}: CI must provide it (scripts/test.sh installs every tool and runs as root)",
                    pytrace=False)
    pytest.skip(reason)


def require(ok: bool, reason: str) -> None:
    if not ok:
        unmet(reason)


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


def require_tools(*names: str) -> None:
    missing = missing_tools(*names)
    packages = sorted({TOOL_PACKAGES.get(n, n) for n in missing})
    require(not missing, f"needs {', '.join(missing)} (apt-get install {' '.join(packages)})")


def require_root(why: str) -> None:
    require(ROOT, f"needs root ({why})")

"""A real FUSE mount of a repository: ``dedupe mount`` in its own process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from dedupe_testing import CLI, ROOT, unmet


def require_fuse() -> None:
    """/dev/fuse and fusermount3 (apt-get install fuse3): a failure under CI=true."""
    if not os.path.exists("/dev/fuse"):
        unmet("needs /dev/fuse (modprobe fuse)")
    if shutil.which("fusermount3") is None:
        unmet("needs fusermount3 (apt-get install fuse3)")
    if not ROOT and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        unmet("needs access to /dev/fuse")


@contextlib.contextmanager
def mounted(repo: Path | str, mountpoint: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``dedupe mount MOUNTPOINT`` until the block ends, then Ctrl-C (SIGINT): the
    process must end by itself with exit 0 and leave no mount behind."""
    require_fuse()
    mountpoint.mkdir(exist_ok=True)
    env = {**os.environ, "DEDUPE_REPO": str(repo)}
    p = subprocess.Popen([*CLI, "mount", str(mountpoint), *extra], env=env, stderr=subprocess.PIPE)
    try:
        wait_mounted(mountpoint, p)
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)
            raise AssertionError(f"{mountpoint} still mounted after the mount process ended")


def wait_mounted(mountpoint: Path, p: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p is not None and p.poll() is not None:
            raise AssertionError(f"dedupe mount exited {p.returncode}: {p.stderr.read().decode() if p.stderr else ''}")
        if os.path.ismount(mountpoint):
            with contextlib.suppress(OSError):
                os.listdir(mountpoint)  # served: the FUSE loop (and its signal handlers) is up
                return
        time.sleep(0.05)
    raise AssertionError(f"{mountpoint} not mounted within {timeout} s")

"""Temporary read-only btrfs snapshots of a live subvolume, and the leftovers of
runs that were killed before they could delete theirs.

A running container on a btrfs pool is read from a read-only snapshot of its
subvolume: taken in milliseconds, atomic (the file system as at one instant, as after
a power cut), deleted after the walk, also on errors. Taken with ``btrfs subvolume
snapshot -r`` rather than LXD's snapshot API, because an LXD snapshot is a record in
LXD's database: users and their tools would see it, a killed run would leave it in the
instance's snapshot list (and in its next export), and on the dir driver LXD's
snapshot is a full copy. Ours live in ``<pool mount>/.dedupe-snapshots/``, a directory
LXD neither lists nor recovers, named ``<pid>-<process start time>-<label>`` so a later
run recognises the ones whose process is gone and deletes them.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from dedupe.errors import DedupeError

SNAPSHOT_DIR: Final = ".dedupe-snapshots"
_NAME: Final = re.compile(r"^(\d+)-(\d+)-")
_BTRFS_SUBVOLUME_INO: Final = 256  # the root directory of every btrfs subvolume


class SnapshotFailed(DedupeError):
    """A temporary btrfs snapshot could not be taken (nothing is committed for that object)."""

    exit_code = 64


def is_subvolume(path: Path) -> bool:
    try:
        return os.stat(path).st_ino == _BTRFS_SUBVOLUME_INO
    except OSError:
        return False


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _btrfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["btrfs", *args], capture_output=True, text=True, timeout=300, check=False)


def _delete(path: Path) -> str:
    """Delete a subvolume; "" when done, else why not."""
    try:
        done = _btrfs("subvolume", "delete", str(path))
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"btrfs exited with {done.returncode}")


@contextmanager
def readonly_snapshot(mount: Path, subvolume: Path, label: str) -> Iterator[Path]:
    """A read-only snapshot of ``subvolume`` for the block, deleted when it is left."""
    where = mount / SNAPSHOT_DIR
    pid = os.getpid()
    target = where / f"{pid}-{_start_time(pid) or 0}-{label}-{secrets.token_hex(4)}"
    try:
        where.mkdir(mode=0o700, exist_ok=True)
        done = _btrfs("subvolume", "snapshot", "-r", str(subvolume), str(target))
    except (OSError, subprocess.SubprocessError) as e:
        raise SnapshotFailed(f"cannot take a btrfs snapshot of {subvolume}: {e}") from None
    if done.returncode != 0:
        raise SnapshotFailed(f"cannot take a btrfs snapshot of {subvolume}: "
                             f"{done.stderr.strip() or f'btrfs exited with {done.returncode}'}")
    try:
        yield target
    finally:
        _delete(target)


def remove_leftovers(mount: Path) -> list[str]:
    """Delete the snapshots of runs whose process is gone; returns their paths."""
    where = mount / SNAPSHOT_DIR
    try:
        names = sorted(os.listdir(where))
    except OSError:
        return []
    removed: list[str] = []
    for name in names:
        m = _NAME.match(name)
        if m is None:
            continue  # not ours
        pid, started = int(m.group(1)), m.group(2)
        if _start_time(pid) == started:
            continue  # its run is still going
        if not _delete(where / name):
            removed.append(str(where / name))
    return removed


def subvolume_identity(path: Path) -> str:
    """``<uuid> <generation>`` of a subvolume (``btrfs subvolume show``), "" when unknown.
    A read-only snapshot's generation moves with any change made to it (after ``btrfs
    property set ro false``, say), and its uuid with any replacement."""
    try:
        done = _btrfs("subvolume", "show", str(path))
    except (OSError, subprocess.SubprocessError):
        return ""
    if done.returncode != 0:
        return ""
    fields = dict(line.strip().split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    uuid, generation = fields.get("UUID", "").strip(), fields.get("Generation", "").strip()
    return f"{uuid} {generation}" if uuid and generation else ""

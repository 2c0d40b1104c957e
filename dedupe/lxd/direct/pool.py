"""Where an instance or custom volume lives in a storage pool, and whether this
process can read it there.

LXD mounts every local pool at ``$LXD_DIR/storage-pools/<pool>`` (a dir pool with
another ``source`` is bind-mounted there; a btrfs pool's loop file or device is
mounted there), with the same names on both drivers (lxd-facts.md 8 and 9)::

    containers/<dir>/                      backup.yaml, metadata.yaml, templates/, rootfs/
    containers-snapshots/<dir>/<snap>/     the same, as of the snapshot
    custom/<project>_<volume>/             a custom volume (the default project is prefixed too)
    custom-snapshots/<project>_<volume>/<snap>/

where ``<dir>`` is ``<name>`` in the default project and ``<project>_<name>`` in
others. On btrfs each of these is a subvolume, snapshots read-only ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from dedupe.errors import DedupeError

DIRECT_DRIVERS: Final = frozenset({"dir", "btrfs"})


class NotDirect(DedupeError):
    """This object cannot be read from its pool here (the run falls back to the export)."""

    exit_code = 64


@dataclass(frozen=True)
class PoolPlace:
    """A local pool this process can read: its name, driver and mount point."""

    name: str
    driver: str
    mount: Path

    def instance_dir(self, project: str, name: str) -> Path:
        return self.mount / "containers" / _instance_dirname(project, name)

    def instance_snapshot_dir(self, project: str, name: str, snapshot: str) -> Path:
        return self.mount / "containers-snapshots" / _instance_dirname(project, name) / snapshot

    def volume_dir(self, project: str, name: str) -> Path:
        return self.mount / "custom" / f"{project}_{name}"

    def volume_snapshot_dir(self, project: str, name: str, snapshot: str) -> Path:
        return self.mount / "custom-snapshots" / f"{project}_{name}" / snapshot


def _instance_dirname(project: str, name: str) -> str:
    return name if project == "default" else f"{project}_{name}"


def locate(lxd_dir: Path | None, pool: str, driver: str) -> PoolPlace:
    """The place of ``pool`` (driver as LXD reports it), or ``NotDirect`` saying why not."""
    if lxd_dir is None:
        raise NotDirect("a remote server: its pools are not on this machine")
    if driver not in DIRECT_DRIVERS:
        raise NotDirect(f"pool {pool!r} uses the {driver} driver (direct reads: {', '.join(sorted(DIRECT_DRIVERS))})")
    mount = lxd_dir / "storage-pools" / pool
    if not os.path.isdir(mount) or not os.access(mount, os.R_OK | os.X_OK):
        raise NotDirect(f"pool {pool!r} is not readable at {mount}")
    return PoolPlace(pool, driver, mount)


def readable_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory this process can list, else ``NotDirect``."""
    if not os.path.isdir(path) or not os.access(path, os.R_OK | os.X_OK):
        raise NotDirect(f"{what} is not readable at {path}")
    return path

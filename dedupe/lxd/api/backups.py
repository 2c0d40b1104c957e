"""Backup tarballs out of LXD: staged by LXD, exported as a stream, always deleted
afterwards (docs/lxd.md section 2); and the leftovers of crashed runs."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from dedupe.lxd.errors import LXDError, LXDNotFound
from dedupe.lxd.api.listings import Listings
from dedupe.lxd.api.records import Project, Record
from dedupe.lxd.api.streams import ExportStream

BACKUP_PREFIX: Final = "dedupe-"


@dataclass(frozen=True)
class StaleBackup:
    """A server-side backup with our prefix, probably left by a crash."""

    kind: Literal["instance", "volume"]
    project: str
    owner: str  # instance or volume name
    name: str
    created_at: str
    pool: str = ""  # volumes only


class Backups(Listings):
    @staticmethod
    def _backup_name(prefix: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{prefix}{stamp}-{secrets.token_hex(4)}"

    def create_instance_backup(
        self,
        name: str,
        instance_only: bool,
        name_prefix: str = BACKUP_PREFIX,
        project: Project = None,
        backup: str | None = None,
    ) -> str:
        """Make LXD stage an uncompressed, non-optimized backup tarball; returns its name.
        Delete it afterwards: LXD keeps it forever (section 2.1)."""
        backup = backup or self._backup_name(name_prefix)
        body = {
            "name": backup,
            "instance_only": instance_only,
            "optimized_storage": False,
            "compression_algorithm": "none",
        }
        self._sync("POST", ["1.0", "instances", name, "backups"], project=project, json=body)
        return backup

    def export_instance_backup(
        self, name: str, backup: str, project: Project = None
    ) -> ExportStream:
        """The staged tarball as a stream (also a context manager that closes it)."""
        segs = ["1.0", "instances", name, "backups", backup, "export"]
        response = self.request("GET", segs, project=project, stream=True)
        return ExportStream(response, f"GET /{'/'.join(segs)}")

    def delete_instance_backup(self, name: str, backup: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "instances", name, "backups", backup], project=project)

    def instance_backups(self, name: str, project: Project = None) -> list[Record]:
        return self._list("instances", name, "backups", project=project)

    @contextmanager
    def instance_backup(
        self,
        name: str,
        instance_only: bool = False,
        project: Project = None,
        name_prefix: str = BACKUP_PREFIX,
    ) -> Iterator[ExportStream]:
        """Create a backup, yield its export stream, and always delete the server-side
        backup afterwards (also on errors and KeyboardInterrupt)."""
        backup = self._backup_name(name_prefix)
        with self._deleting(lambda: self.delete_instance_backup(name, backup, project)):
            self.create_instance_backup(name, instance_only, project=project, backup=backup)
            with self.export_instance_backup(name, backup, project) as stream:
                yield stream

    @contextmanager
    def _deleting(self, delete: Callable[[], None]) -> Iterator[None]:
        """Run ``delete`` on the way out, whatever happened; a failure to delete is
        raised only when nothing else is (else added as a note to the first error)."""
        try:
            yield
        except BaseException as e:
            try:
                delete()
            except LXDNotFound:
                pass
            except LXDError as cleanup:
                e.add_note(f"also: could not delete the server-side backup: {cleanup}")
            raise
        with suppress(LXDNotFound):
            delete()

    # ---------------------------------------------------------------- volume backups

    def create_volume_backup(
        self,
        pool: str,
        volume: str,
        volume_only: bool,
        name_prefix: str = BACKUP_PREFIX,
        project: Project = None,
        backup: str | None = None,
    ) -> str:
        backup = backup or self._backup_name(name_prefix)
        body = {
            "name": backup,
            "volume_only": volume_only,
            "optimized_storage": False,
            "compression_algorithm": "none",
        }
        segs = ["1.0", "storage-pools", pool, "volumes", "custom", volume, "backups"]
        self._sync("POST", segs, project=project, json=body)
        return backup

    def export_volume_backup(
        self, pool: str, volume: str, backup: str, project: Project = None
    ) -> ExportStream:
        segs = [
            "1.0",
            "storage-pools",
            pool,
            "volumes",
            "custom",
            volume,
            "backups",
            backup,
            "export",
        ]
        response = self.request("GET", segs, project=project, stream=True)
        return ExportStream(response, f"GET /{'/'.join(segs)}")

    def delete_volume_backup(
        self, pool: str, volume: str, backup: str, project: Project = None
    ) -> None:
        segs = ["1.0", "storage-pools", pool, "volumes", "custom", volume, "backups", backup]
        self._sync("DELETE", segs, project=project)

    def volume_backups(self, pool: str, volume: str, project: Project = None) -> list[Record]:
        return self._list(
            "storage-pools", pool, "volumes", "custom", volume, "backups", project=project
        )

    @contextmanager
    def volume_backup(
        self,
        pool: str,
        volume: str,
        volume_only: bool = False,
        project: Project = None,
        name_prefix: str = BACKUP_PREFIX,
    ) -> Iterator[ExportStream]:
        backup = self._backup_name(name_prefix)
        with self._deleting(lambda: self.delete_volume_backup(pool, volume, backup, project)):
            self.create_volume_backup(pool, volume, volume_only, project=project, backup=backup)
            with self.export_volume_backup(pool, volume, backup, project) as stream:
                yield stream

    # ---------------------------------------------------------------- stale backups

    def stale_backups(
        self,
        prefix: str = BACKUP_PREFIX,
        project: Project = None,
        older_than: timedelta | None = None,
    ) -> list[StaleBackup]:
        """Server-side backups of the project's instances and custom volumes whose
        names start with ``prefix`` (left by a crash). ``older_than`` spares recent ones
        that a concurrent run may still be exporting."""
        proj = self._project(project)
        cutoff = datetime.now(UTC) - older_than if older_than is not None else None
        found: list[StaleBackup] = []

        def wanted(record: Record) -> bool:
            if not str(record.get("name", "")).startswith(prefix):
                return False
            return cutoff is None or _parse_time(record.get("created_at", "")) <= cutoff

        for inst in self.instances(proj):
            for b in self.instance_backups(inst["name"], proj):
                if wanted(b):
                    found.append(
                        StaleBackup(
                            "instance", proj, inst["name"], b["name"], b.get("created_at", "")
                        )
                    )
        for pool in self.storage_pools():
            for vol in self.custom_volumes(pool["name"], proj):
                for b in self.volume_backups(pool["name"], vol["name"], proj):
                    if wanted(b):
                        found.append(
                            StaleBackup(
                                "volume",
                                proj,
                                vol["name"],
                                b["name"],
                                b.get("created_at", ""),
                                pool["name"],
                            )
                        )
        return found

    def delete_stale_backups(
        self,
        prefix: str = BACKUP_PREFIX,
        project: Project = None,
        older_than: timedelta | None = None,
    ) -> list[StaleBackup]:
        stale = self.stale_backups(prefix, project, older_than)
        for b in stale:
            try:
                if b.kind == "instance":
                    self.delete_instance_backup(b.owner, b.name, b.project)
                else:
                    self.delete_volume_backup(b.pool, b.owner, b.name, b.project)
            except LXDNotFound:
                pass
        return stale


def _parse_time(value: str) -> datetime:
    """LXD's RFC 3339 times (nanoseconds included); unparsable ones count as old."""
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)

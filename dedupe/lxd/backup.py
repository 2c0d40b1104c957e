"""One ``dedupe backup lxd`` run: the selected objects of an LXD server, one backup each.

Every backup of a run shares its run id and records in ``meta["lxd"]`` the server's
identity (name, certificate fingerprint, LXD and API version, endpoint), the object's
kind, project and name, and the full record as the API gave it (instances: also the
snapshot list and how consistency was obtained; images: aliases, properties and the
exported parts). What a run reads, and the groups, are in ``dedupe.lxd.source.plan``
and ``dedupe.lxd.source.objects``; instances and volumes are streamed straight from
LXD into the file-aligned tar backup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from dedupe.backup.session import BackupResult, BackupSession, new_run_id
from dedupe.locking import locked
from dedupe.lxd.direct import run as direct
from dedupe.lxd.errors import IncompleteRun, LXDError
from dedupe.progress import ProgressCallback
from dedupe.repository import Repository
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.source.objects import LXDObject
from dedupe.lxd.source.plan import LXDSelection, delete_stale, plan, server_identity
from dedupe.backup.stream import backup_stream
from dedupe.backup.tar import backup_tar
from dedupe.sources.tarstream import TarStreamError
from repo_format import manifest
from repo_format.codecs import DEFAULT_ZSTD_LEVEL

# how each kind of object's stream goes into its backup
_READERS: Final[dict[str, Callable[[BackupSession, BinaryIO], BackupResult]]] = {
    manifest.KIND_TAR: backup_tar,
    manifest.KIND_STREAM: backup_stream,
}


@dataclass
class LXDObjectResult:
    group: str
    kind: str
    project: str | None
    name: str
    backup_id: str | None = None
    size: int = 0
    new_bytes: int = 0
    new_stored: int = 0
    error: str | None = None
    via: str | None = None  # instances and volumes: "direct" or "export"
    note: str | None = None  # why an object took the export path (``--via auto``)
    reason: str = ""  # why a named run holds it: "attached to c1"

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "kind": self.kind,
            "project": self.project,
            "name": self.name,
            "id": self.backup_id,
            "short_id": self.backup_id[:12] if self.backup_id else None,
            "size": self.size,
            "new_bytes": self.new_bytes,
            "new_stored": self.new_stored,
            "error": self.error,
            "via": self.via,
            "note": self.note,
            "reason": self.reason,
        }


@dataclass
class LXDRunResult:
    run: str
    server: dict[str, Any]
    objects: list[LXDObjectResult] = field(default_factory=list)
    stale_deleted: list[str] = field(default_factory=list)  # leftover server-side backups removed

    @property
    def failures(self) -> list[LXDObjectResult]:
        return [o for o in self.objects if o.error is not None]

    def raise_for_failures(self) -> None:
        IncompleteRun.check("backup", self.run, [(o.group, o.error) for o in self.objects])

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "server": self.server,
            "objects": [o.to_json() for o in self.objects],
            "failed": len(self.failures),
            "stale_server_backups_deleted": self.stale_deleted,
        }


def backup_lxd(
    repo: Repository, client: LXDClient, selection: LXDSelection, progress: ProgressCallback | None = None,
    host: str | None = None, level: int = DEFAULT_ZSTD_LEVEL,
) -> LXDRunResult:
    """Back up the selected objects, each into its own backup; one failing object
    (LXD error, export cut off, instance gone) commits nothing for itself and does
    not stop the others. Errors of the repository itself stop the run. The backups
    are recorded as of ``host``, by default the LXD server's name (so that one machine
    backing up several servers with ``--remote`` keeps their series apart)."""
    server = server_identity(client)
    host = host or server["server_name"] or None
    result = LXDRunResult(new_run_id(), server)
    objects = plan(client, selection, selection.kinds(client.socket_path is not None))
    result.stale_deleted = delete_stale(client, objects)
    with locked(repo, "backup"):
        for obj in objects:
            result.objects.append(_back_up(repo, obj, result.run, server, progress, host, level, client, selection))
    return result


def _back_up(
    repo: Repository, obj: LXDObject, run: str, server: dict[str, Any], progress: ProgressCallback | None,
    host: str | None, level: int, client: LXDClient, selection: LXDSelection,
) -> LXDObjectResult:
    out = LXDObjectResult(obj.group, obj.kind, obj.project, obj.name, reason=obj.reason)
    meta: dict[str, Any] = {
        "server": server,
        "kind": obj.kind,
        "project": obj.project,
        "name": obj.name,
        **({"pool": obj.pool} if obj.pool else {}),
        **obj.meta,
        **({"attached_to": obj.reason} if obj.reason else {}),
    }
    try:
        # direct reads of the storage pool where possible (dedupe.lxd.direct), else the export
        plan_, out.note = direct.plan_for(client, obj.kind, obj.project or "default", obj.name, obj.pool,
                                          selection.via, selection.instance_only, selection.consistent)
        if plan_ is not None:
            out.via = "direct"
            done = direct.back_up(repo, plan_, obj.group, run, meta, progress, host, level,
                                 selection.rescan_snapshots)
            return _finished(out, done)
        if obj.kind in ("instance", "volume"):
            out.via = meta["via"] = "export"
        with BackupSession(
            repo, kind=obj.manifest_kind, group=obj.group, run=run, meta={"lxd": meta}, progress=progress, host=host,
            level=level
        ) as session:
            with obj.open(meta) as stream:
                done = _READERS[obj.manifest_kind](session, stream)  # type: ignore[arg-type]
    except (LXDError, TarStreamError, *direct.OBJECT_ERRORS) as e:
        out.error = str(e)
        return out
    return _finished(out, done)


def _finished(out: LXDObjectResult, done: BackupResult) -> LXDObjectResult:
    stats = done.manifest.stats
    out.backup_id, out.size = done.id, done.manifest.size
    out.new_bytes, out.new_stored = stats.get("new_bytes", 0), stats.get("new_stored", 0)
    return out

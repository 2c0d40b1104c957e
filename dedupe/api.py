"""The operations behind the command line, usable without click.

Each function opens what it needs, takes the right lock, calls the engine and
returns plain data; nothing here prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from dedupe import locking
from dedupe.backup import BackupResult, BackupSession
from dedupe.check import CheckReport, check
from dedupe.progress import ProgressCallback
from dedupe.repository import Repository, open_storage
from dedupe.restore import restore_to_file, write_stream
from dedupe.sources.stream import backup_stream
from repo_format import config, manifest

LOCK_WAIT_S = 60.0


def init(location: str, chunker: config.ChunkerParams | None = None) -> Repository:
    return Repository.create(open_storage(location), chunker)


def open_repo(location: str) -> Repository:
    return Repository.open(open_storage(location))


@contextlib.contextmanager
def locked(repo: Repository, purpose: str, exclusive: bool = False, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    with locking.acquire(repo.storage, exclusive=exclusive, purpose=purpose, wait_s=wait_s):
        yield


@dataclass
class BackupInfo:
    id: str
    manifest: manifest.Manifest

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": self.id, "short_id": self.id[:12], "kind": m.kind, "group": m.group,
            "time": dt.datetime.fromtimestamp(m.time_ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds"),
            "time_ns": m.time_ns, "host": m.host, "run": m.run, "size": m.size,
            "new_bytes": m.stats.get("new_bytes", 0), "new_stored": m.stats.get("new_stored", 0),
            "stored_bytes": m.stats.get("stored_bytes", 0), "unique_bytes": m.stats.get("unique_bytes", 0),
            "chunks": m.stats.get("chunks", 0), "items": m.item_count,
            "blake3": m.stream_b3.hex() if m.stream_b3 is not None else None,
            "meta": m.meta, "tags": m.tags,
        }


def list_backups(repo: Repository, group: str | None = None) -> list[BackupInfo]:
    out = []
    for name in repo.manifest_names():
        m = repo.load_manifest(name)
        if group is None or m.group == group or m.group.startswith(group.rstrip("/") + "/"):
            out.append(BackupInfo(name, m))
    out.sort(key=lambda b: (b.manifest.time_ns, b.id))
    return out


def get_backup(repo: Repository, id_prefix: str) -> BackupInfo:
    name = repo.resolve_backup_id(id_prefix)
    return BackupInfo(name, repo.load_manifest(name))


def session(repo: Repository, kind: str, group: str, progress: ProgressCallback | None = None,
            **kw: Any) -> BackupSession:
    return BackupSession(repo, kind=kind, group=group, progress=progress, **kw)


def do_backup_stream(repo: Repository, group: str, f: BinaryIO, progress: ProgressCallback | None = None,
                     **kw: Any) -> BackupResult:
    with locked(repo, "backup"):
        with session(repo, manifest.KIND_STREAM, group, progress, **kw) as s:
            return backup_stream(s, f)


def do_backup_tar(repo: Repository, group: str, f: BinaryIO, progress: ProgressCallback | None = None,
                  **kw: Any) -> BackupResult:
    from dedupe.sources.tar import backup_tar
    with locked(repo, "backup"):
        with session(repo, manifest.KIND_TAR, group, progress, **kw) as s:
            return backup_tar(s, f)


def restore_file(repo: Repository, id_prefix: str, path: Path, progress: ProgressCallback | None = None) -> int:
    b = get_backup(repo, id_prefix)
    with locked(repo, "restore"):
        return restore_to_file(repo, b.manifest, path, b.id, progress)


def restore_stdout(repo: Repository, id_prefix: str, out: BinaryIO, progress: ProgressCallback | None = None) -> int:
    b = get_backup(repo, id_prefix)
    with locked(repo, "restore"):
        return write_stream(repo, b.manifest, out, b.id, progress)


def run_check(repo: Repository, read_data: bool, progress: ProgressCallback | None = None) -> CheckReport:
    with locked(repo, "check"):
        return check(repo, read_data, progress)

"""LXD backups as the repository holds them: their ``meta["lxd"]``, their bytes
(verified before the last piece goes out), their records, and the backups of one run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from dedupe import api
from dedupe.lxd.errors import NotAnLXDBackup
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Repository
from dedupe.read import RestoreMismatch, iter_stream_pieces
from repo_format.ids import stream_hash


def lxd_meta(info: api.BackupInfo) -> dict[str, Any]:
    """``meta["lxd"]`` of a backup made by ``dedupe backup lxd``, else ``NotAnLXDBackup``."""
    meta = info.manifest.meta.get("lxd")
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str) or "name" not in meta:
        raise NotAnLXDBackup(
            f"backup {info.id[:12]} ({info.manifest.group}) is not an LXD object; "
            "restore it with --to-file, --stdout or --to-dir"
        )
    return meta


def verified_pieces(
    repo: Repository, info: api.BackupInfo, progress: ProgressCallback | None = None
) -> Iterator[bytes | memoryview]:
    """The backup's original bytes, each chunk verified; the last piece is held back
    until the size and whole-stream BLAKE3 match the manifest (``RestoreMismatch``
    otherwise), so an upload fed from this never completes with wrong data."""
    m = info.manifest
    hasher = stream_hash()
    done = 0
    held: bytes | memoryview | None = None
    for piece in iter_stream_pieces(repo, m):
        if not len(piece):
            continue
        if held is not None:
            yield held
        held = piece
        hasher.update(piece)
        done += len(piece)
        if progress is not None:
            progress(Progress("restore", info.id[:12], done, m.size))
    if done != m.size:
        raise RestoreMismatch(f"backup {info.id[:12]}: rebuilt {done} bytes, manifest says {m.size}")
    if m.stream_b3 is not None and hasher.digest() != m.stream_b3:
        raise RestoreMismatch(f"backup {info.id[:12]}: rebuilt stream's BLAKE3 does not match the manifest")
    if held is not None:
        yield held


def split_at(
    pieces: Iterable[bytes | memoryview], size: int
) -> tuple[Iterator[bytes | memoryview], Iterator[bytes | memoryview]]:
    """The first ``size`` bytes and the rest, as two iterators to be read in order."""
    it = iter(pieces)
    carry: list[bytes | memoryview] = []

    def head() -> Iterator[bytes | memoryview]:
        left = size
        while left > 0:
            piece = next(it, None)
            if piece is None:
                raise RestoreMismatch(f"image stream ends before its first part's {size} bytes")
            if len(piece) > left:
                carry.append(memoryview(piece)[left:])
                piece = memoryview(piece)[:left]
            left -= len(piece)
            yield piece

    def tail() -> Iterator[bytes | memoryview]:
        yield from carry
        yield from it

    return head(), tail()


def read_record(repo: Repository, info: api.BackupInfo) -> Any:
    data = b"".join(bytes(p) for p in verified_pieces(repo, info))
    try:
        return json.loads(data)
    except ValueError as e:
        raise NotAnLXDBackup(f"backup {info.id[:12]} ({info.manifest.group}): not a JSON record ({e})") from None


def run_records(repo: Repository, run: str) -> dict[tuple[str, str | None, str], api.BackupInfo]:
    """The LXD backups of one run by (kind, project, name)."""
    out: dict[tuple[str, str | None, str], api.BackupInfo] = {}
    for b in api.list_backups(repo, "lxd"):
        meta = b.manifest.meta.get("lxd")
        if b.manifest.run == run and isinstance(meta, dict) and "kind" in meta:
            out[(meta["kind"], meta.get("project"), str(meta.get("name", "")))] = b
    return out


def find_run(repo: Repository, prefix: str) -> tuple[str, list[api.BackupInfo]]:
    """The run whose id starts with ``prefix``, and its LXD backups: ``api.get_run``
    among LXD backups alone (a prefix that other runs share too is not ambiguous here)."""
    run = api.get_run(repo, prefix, "lxd", lambda b: isinstance(b.manifest.meta.get("lxd"), dict), what="LXD ")
    return run.run, run.backups

"""What this client saw happen to a repository that the repository itself does not
hold: the outcome of each ``check``, the last ``prune`` policy, and each ``backup lxd``
run's objects (a failed object commits nothing, so the repository cannot tell).

Kept in the local cache directory (``$XDG_CACHE_HOME/dedupe/records/<repo id>.jsonl``,
one JSON record a line), not in the repository:

- ``check`` reads the repository and never writes it; it must keep working with
  read-only credentials (an S3 key that may only GET) and on a repository whose
  storage is damaged or full, which is exactly when its outcome matters;
- nothing in the repository format changes, so older dedupe versions read it as before;
- the machine that runs the nightly ``backup``/``prune``/``check`` is the one that
  serves ``dedupe ui`` and the metrics file, which is where the records are read.

The cost: another machine does not see them (its UI shows "no check recorded").
Keyed by the repository id, so the same repository reached by two paths shares its
records. Appends are single ``write`` calls on an ``O_APPEND`` file (whole lines, never
interleaved); the file is cut back to its last ``KEEP`` records when it grows past
twice that. Any error reading or writing a record is ignored: they only inform.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dedupe.storage.cache import cache_base

KEEP = 500


def records_path(repo_id: bytes) -> Path:
    return cache_base() / "records" / f"{repo_id.hex()}.jsonl"


def append(repo_id: bytes, kind: str, record: dict[str, Any]) -> None:
    """Add one record of ``kind`` ("check", "prune", "run"), stamped with the time."""
    path = records_path(repo_id)
    line = json.dumps({"type": kind, "time": time.time(), **record}, sort_keys=True, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > 2 * KEEP * 512:
            _trim(path)
    except OSError:
        pass


def _trim(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    if len(lines) > 2 * KEEP:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(b"".join(lines[-KEEP:]))
        os.replace(tmp, path)


def read(repo_id: bytes, kind: str | None = None) -> list[dict[str, Any]]:
    """The records (of one kind), oldest first; damaged lines are skipped."""
    try:
        data = records_path(repo_id).read_bytes()
    except OSError:
        return []
    out = []
    for line in data.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and (kind is None or r.get("type") == kind):
            out.append(r)
    return out


def last(repo_id: bytes, kind: str) -> dict[str, Any] | None:
    found = read(repo_id, kind)
    return found[-1] if found else None

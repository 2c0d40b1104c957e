"""What this machine keeps about a repository outside it, under the local cache
directory: the one place that computes that directory (``cache_base``), and the one
record API over it.

The cache directory is ``$XDG_CACHE_HOME/dedupe`` (``~/.cache/dedupe`` without it); the
storage cache (dedupe.storage.cache, ``loc-<hash>/``) and the files cache
(dedupe.backup.files_cache, ``<repo id>/files-<hash>``) live there too. Two kinds of
records, both keyed by the repository id (so the same repository reached by two paths
shares them); the names on disk are those earlier versions wrote, so their records are
read as before:

- named records, one JSON value replaced whole (``read_record``/``write_record``):
  ``<repo id>/record-<name>.json``, 0600 in 0700 directories (the files cache's
  directory): ``seen-backups`` (check: the backups this machine last saw), the config
  this machine first saw (dedupe.repository), and whatever else a feature wants to
  remember between runs (another name);
- the event log (``append``/``read``/``last``): ``records/<repo id>.jsonl``, one JSON
  record a line: the outcome of each ``check``, the last ``prune`` policy, and each
  ``backup lxd`` run's objects (a failed object commits nothing, so the repository
  cannot tell).

Why not in the repository:

- ``check`` reads the repository and never writes it; it must keep working with
  read-only credentials (an S3 key that may only GET) and on a repository whose
  storage is damaged or full, which is exactly when its outcome matters;
- nothing in the repository format changes, so older dedupe versions read it as before;
- the machine that runs the nightly ``backup``/``prune``/``check`` is the one that
  serves ``dedupe ui`` and the metrics file, which is where the records are read.

The cost: another machine does not see them (its UI shows "no check recorded").
Appends are single ``write`` calls on an ``O_APPEND`` file (whole lines, never
interleaved); the log is cut back to its last ``KEEP`` records when it grows past
twice that. Any error reading a record is ignored (they only inform); writing a named
record that fails is a warning, appending to the log that fails is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

KEEP = 500


def cache_base() -> Path:
    """``$XDG_CACHE_HOME/dedupe`` (``~/.cache/dedupe`` without it): every local cache and record."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dedupe"


# -- named records: one JSON value each, replaced whole -------------------------------------

def record_path(repo_id: bytes, name: str) -> Path:
    return cache_base() / repo_id.hex() / f"record-{name}.json"


def read_record(repo_id: bytes, name: str) -> Any:
    """The record, or None when there is none or it does not decode."""
    try:
        return json.loads(record_path(repo_id, name).read_bytes())
    except (OSError, ValueError):
        return None


def write_record(repo_id: bytes, name: str, value: Any) -> str | None:
    """Replace the record; a warning (not an error) if it cannot be written."""
    path = record_path(repo_id, name)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        for d in (path.parent.parent, path.parent):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(value, f, sort_keys=True)
        os.replace(tmp, path)
        return None
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return f"local record {path} not written ({e.strerror or e})"


SEEN_BACKUPS = "seen-backups"  # backup id -> [group, time_ns]: what check compares the repository with


def seen_backups(repo_id: bytes) -> dict[str, list[Any]]:
    record = read_record(repo_id, SEEN_BACKUPS)
    if not isinstance(record, dict):
        return {}
    return {k: v for k, v in record.items() if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int)}


def update_seen(repo_id: bytes, added: dict[str, list[Any]] | None = None, removed: Any = ()) -> None:
    """Backups this machine made (``added``) or removed itself (forget, prune: they did
    not vanish). Only once check has made the record: a machine that never checks keeps none."""
    record = seen_backups(repo_id)
    if record:
        record.update(added or {})
        for bid in removed:
            record.pop(bid, None)
        write_record(repo_id, SEEN_BACKUPS, record)


# -- the event log: one JSON record a line, appended ----------------------------------------

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

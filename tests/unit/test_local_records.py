"""One home for what this machine keeps outside a repository (dedupe.records): one
place computes the cache directory, for the storage cache, the files cache and the
records; the records earlier versions wrote (at the same paths) are read as before."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dedupe import records
from dedupe.backup import files_cache
from dedupe.storage import cache

REPO_ID = bytes(range(16))


def test_one_cache_directory_for_every_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert records.cache_base() == tmp_path / "xdg" / "dedupe"
    assert files_cache.cache_root() == records.cache_base()
    assert cache.cache_dir_for("/srv/repo").parent == records.cache_base()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert records.cache_base() == tmp_path / "home" / ".cache" / "dedupe"
    assert files_cache.cache_root() == records.cache_base()


def test_records_written_by_earlier_versions_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    named = tmp_path / "dedupe" / REPO_ID.hex() / "record-seen-backups.json"
    named.parent.mkdir(parents=True)
    named.write_text(json.dumps({"ab" * 32: ["g", 5]}))
    log = tmp_path / "dedupe" / "records" / f"{REPO_ID.hex()}.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"type": "check", "time": 1.0, "ok": True}) + "\n")
    assert records.seen_backups(REPO_ID) == {"ab" * 32: ["g", 5]}
    assert records.read(REPO_ID, "check") == [{"type": "check", "time": 1.0, "ok": True}]


def test_named_records_and_the_log_round_trip_privately(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert records.write_record(REPO_ID, "x", {"a": [1, 2]}) is None
    assert records.read_record(REPO_ID, "x") == {"a": [1, 2]}
    path = records.record_path(REPO_ID, "x")
    assert path == tmp_path / "dedupe" / REPO_ID.hex() / "record-x.json"
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(path.parent).st_mode & 0o777 == 0o700
    records.append(REPO_ID, "run", {"n": 1})
    assert records.last(REPO_ID, "run")["n"] == 1  # type: ignore[index]
    assert records.records_path(REPO_ID) == tmp_path / "dedupe" / "records" / f"{REPO_ID.hex()}.jsonl"

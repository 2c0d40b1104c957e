"""The local cache in front of an S3 repository, proven by counting requests: a
nightly backup against a repository with many backups downloads only the index
segments it has not seen; a damaged cache entry is dropped and fetched again."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from dedupe import api
from dedupe.repository import Repository
from dedupe.storage.cache import CachedStorage
from dedupe.storage.open import open_storage
from dedupe.storage.s3 import S3Storage

NIGHTS = 12


def _client(url: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    """One host: its own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return api.open_repo(url)


def _s3(repo: Repository) -> S3Storage:
    storage: Any = repo.storage
    assert isinstance(storage, CachedStorage)
    inner: S3Storage = storage.inner
    return inner


def _backup(repo: Repository, group: str, data: bytes) -> str:
    return api.do_backup_stream(repo, group, io.BytesIO(data)).id


@pytest.fixture
def busy_repo(s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A repository with NIGHTS backups written by another host (another cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "writer-cache"))
    repo = api.init(s3_url)
    for night in range(NIGHTS):
        _backup(repo, f"host/{night % 3}", os.urandom(200_000))
    return s3_url


def test_nightly_backup_downloads_only_new_segments(busy_repo: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # First contact: every segment is downloaded once.
    first = _client(busy_repo, tmp_path / "host-a", monkeypatch)
    assert len(first.segments) == NIGHTS
    key_file = 1 if first.config.encrypted else 0  # an encrypted repository's key file is read at open
    assert _s3(first).requests["GetObject"] == 1 + key_file + NIGHTS  # config, key file, every segment

    # The next night: nothing is downloaded but the config; the backup uploads its pack,
    # its segment and its manifest, and takes and drops a lock.
    second = _client(busy_repo, tmp_path / "host-a", monkeypatch)
    s3 = _s3(second)
    gets_at_open = s3.requests["GetObject"]
    assert gets_at_open == 1 + key_file
    assert s3.requests["ListObjectsV2"] == 1  # the index listing: never cached
    _backup(second, "host/a", os.urandom(100_000))
    assert s3.requests["GetObject"] == gets_at_open
    assert s3.requests["PutObject"] == 4  # lock, pack, segment, manifest
    assert sum(s3.requests.values()) <= 10

    # Another host adds a backup: this host then downloads exactly that one segment.
    other = _client(busy_repo, tmp_path / "host-b", monkeypatch)
    _backup(other, "host/b", os.urandom(100_000))
    third = _client(busy_repo, tmp_path / "host-a", monkeypatch)
    assert len(third.segments) == NIGHTS + 2
    assert _s3(third).requests["GetObject"] == gets_at_open + 1

    # Without the cache every start downloads the whole index again.
    monkeypatch.setenv("DEDUPE_NO_CACHE", "1")
    bare = api.open_repo(busy_repo)
    assert isinstance(bare.storage, S3Storage)
    assert bare.storage.requests["GetObject"] == gets_at_open + NIGHTS + 2


def test_manifests_and_pack_tables_are_cached(busy_repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def gets_for_list_and_check(repo: Repository) -> int:
        s3 = _s3(repo)
        before = s3.requests["GetObject"]
        assert len(api.list_backups(repo)) == NIGHTS  # reads every manifest
        report = api.run_check(repo, read_data=False)  # reads every pack's table and item stream
        assert report.ok and report.packs == NIGHTS
        return s3.requests["GetObject"] - before

    cold = gets_for_list_and_check(_client(busy_repo, tmp_path / "c", monkeypatch))
    warm_repo = _client(busy_repo, tmp_path / "c", monkeypatch)
    warm = gets_for_list_and_check(warm_repo)
    # Warm: only the item streams' chunks (data, one small chunk per backup here) are read.
    assert cold - warm == 2 * NIGHTS and warm == NIGHTS
    cache: Any = warm_repo.storage
    # segments at open and again in check, manifests in list and in check, tables
    assert cache.hits == 5 * NIGHTS


def test_damaged_cache_is_detected_and_refetched(busy_repo: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _client(busy_repo, tmp_path / "c", monkeypatch)
    api.list_backups(repo)
    api.run_check(repo, read_data=False)
    storage: Any = repo.storage
    cached = sorted(p for p in storage.root.rglob("*") if p.is_file())
    assert {p.parent.name for p in cached} == {"index", "manifests", "tables"}
    for p in cached:  # flip a byte in every entry
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))

    again = _client(busy_repo, tmp_path / "c", monkeypatch)
    rows = api.list_backups(again)
    report = api.run_check(again, read_data=False)
    assert len(rows) == NIGHTS and report.ok, report.errors
    cache: Any = again.storage
    assert cache.dropped == len(cached)  # each damaged entry found once, then replaced
    assert _s3(again).requests["GetObject"] >= len(cached)  # everything fetched again
    # ... and the cache is whole again.
    third = _client(busy_repo, tmp_path / "c", monkeypatch)
    api.list_backups(third)
    t: Any = third.storage
    assert t.dropped == 0 and t.hits == 2 * NIGHTS


def test_cache_forgets_what_gc_deleted(busy_repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _client(busy_repo, tmp_path / "c", monkeypatch)
    victim = repo.manifest_names()[0]
    api.list_backups(repo)
    storage: Any = repo.storage
    assert (storage.root / "manifests" / victim).exists()
    open_storage(busy_repo).delete(f"manifests/{victim}")  # as gc would, from another host
    again = _client(busy_repo, tmp_path / "c", monkeypatch)
    assert victim not in [b.id for b in api.list_backups(again)]
    assert not (storage.root / "manifests" / victim).exists()

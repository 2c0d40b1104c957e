"""Backup and restore through the engine, on the in-memory storage."""

from __future__ import annotations

import io
import os

import pytest

from dedupe import api
from dedupe.backup.session import BackupSession
from dedupe.maintenance.check import check
from dedupe.repository import CorruptObject, MissingObject, Repository
from dedupe.read import RestoreMismatch, write_stream
from dedupe.backup.stream import backup_stream
from dedupe.storage.faulty import FaultyStorage, InjectedFault
from dedupe.storage.memory import MemoryStorage
from repo_format import layout
from repo_format.config import ChunkerParams

SMALL = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)


def small_repo(storage: MemoryStorage | FaultyStorage | None = None) -> Repository:
    return Repository.create(storage or MemoryStorage(), SMALL)


def store(repo: Repository, data: bytes, group: str = "g", pack_size: int = 64 << 10) -> str:
    with BackupSession(repo, kind="stream", group=group, pack_size=pack_size) as s:
        return backup_stream(s, io.BytesIO(data)).id


def restore(repo: Repository, backup_id: str) -> bytes:
    out = io.BytesIO()
    write_stream(repo, repo.load_manifest(backup_id), out, backup_id)
    return out.getvalue()


@pytest.mark.parametrize("data", [b"", b"x", os.urandom(300_000), b"abc" * 200_000, bytes(1 << 20)])
def test_round_trip(data: bytes) -> None:
    repo = small_repo()
    bid = store(repo, data)
    assert restore(repo, bid) == data
    m = repo.load_manifest(bid)
    assert m.size == len(data)
    assert check(repo, read_data=True).ok


def test_second_backup_of_same_data_stores_nothing_new() -> None:
    repo = small_repo()
    data = os.urandom(500_000)
    store(repo, data)
    b2 = store(repo, data)
    assert repo.load_manifest(b2).stats["new_chunks"] == 0
    reopened = Repository.open(repo.storage)
    assert restore(reopened, b2) == data


def test_small_edit_stores_little() -> None:
    repo = small_repo()
    import blake3
    data = blake3.blake3(b"small edit").digest(length=1_000_000)  # seeded: stable cut points
    store(repo, data)
    edited = data[:400_000] + b"EDIT" + data[400_000:]
    m = repo.load_manifest(store(repo, edited))
    # a few content chunks (at most 16 KiB each) around the edit, plus the one item chunk
    assert m.stats["new_bytes"] < 4 * SMALL.max_size + 16_000


def test_repository_reopens_with_index_from_segments() -> None:
    repo = small_repo()
    bid = store(repo, os.urandom(200_000))
    again = Repository.open(repo.storage)
    assert again.chunk_count() == repo.chunk_count() > 0
    assert restore(again, bid)


def count_writes(data: bytes) -> int:
    faulty = FaultyStorage(MemoryStorage())
    repo = small_repo(faulty)
    faulty.writes = 0
    store(repo, data)
    return faulty.writes


def test_crash_at_every_write_leaves_a_clean_repository() -> None:
    data = os.urandom(200_000)
    first = b"first backup " * 1000
    n_writes = count_writes(data)
    assert n_writes >= 4  # several packs, an index segment, a manifest
    for n in range(1, n_writes + 1):
        inner = MemoryStorage()
        faulty = FaultyStorage(inner)
        repo = small_repo(faulty)
        kept = store(repo, first)
        faulty.writes = 0
        faulty.fail_at = n
        with pytest.raises(InjectedFault):
            store(repo, data)
        faulty.fail_at = None
        after = Repository.open(inner)
        report = check(after, read_data=True)
        assert report.ok, (n, report.errors)
        assert restore(after, kept) == first  # committed backups are untouched
        names = after.manifest_names()
        assert names == [kept]  # the failed backup was not committed
        bid = store(after, data)  # and the next backup works
        assert restore(after, bid) == data


def corrupt_one_pack(repo: Repository) -> str:
    name = sorted(repo.packs)[0]
    path = layout.pack_path(name)
    data = bytearray(repo.storage.get(path))
    data[100] ^= 0xFF
    repo.storage.put(path, bytes(data))
    return name


def test_flipped_byte_is_found_and_named() -> None:
    repo = small_repo()
    a = store(repo, os.urandom(300_000), "a")
    b = store(repo, os.urandom(300_000), "b")
    damaged_pack = corrupt_one_pack(repo)
    assert check(repo, read_data=False).ok  # structure alone does not read blobs
    report = check(repo, read_data=True)
    assert not report.ok
    assert damaged_pack in report.damaged_packs
    assert any(damaged_pack[:12] in e for e in report.errors)
    hit = {x for x in (a, b) if x in report.damaged_backups}
    assert hit, report.damaged_backups
    for bid in hit:
        with pytest.raises(CorruptObject):
            restore(repo, bid)
    for bid in {a, b} - hit:
        assert restore(repo, bid)  # unaffected backups still restore


def test_missing_pack() -> None:
    repo = small_repo()
    bid = store(repo, os.urandom(100_000))
    name = sorted(repo.packs)[0]
    repo.storage.delete(layout.pack_path(name))
    report = check(repo)
    assert not report.ok and "missing" in report.damaged_packs[name]
    with pytest.raises(MissingObject):
        restore(repo, bid)


def test_restore_notices_a_wrong_stream_checksum() -> None:
    repo = small_repo()
    bid = store(repo, b"some data" * 1000)
    m = repo.load_manifest(bid)
    m.stream_b3 = bytes(32)
    with pytest.raises(RestoreMismatch):
        write_stream(repo, m, io.BytesIO(), bid)


def test_api_lists_by_group_prefix() -> None:
    repo = small_repo()
    store(repo, b"1", "lxd/default/instance/c1")
    store(repo, b"2", "lxd/default/instance/c2")
    store(repo, b"3", "stream/db")
    assert len(api.list_backups(repo, "lxd/default")) == 2
    assert len(api.list_backups(repo, "lxd/default/instance/c1")) == 1
    assert len(api.list_backups(repo)) == 3


class CountingWriter(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, b: object) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(b)  # type: ignore[arg-type]


def test_tar_restore_gathers_small_members_into_few_writes() -> None:
    """A tar of 2,000 small files comes back byte for byte in a few writes of about
    1 MiB (headers, padding and small files gathered), not one write per piece."""
    import tarfile

    from dedupe.read import GATHER
    from dedupe.backup.tar import backup_tar

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(2000):
            data = os.urandom(i % 700)
            info = tarfile.TarInfo(f"d/f{i}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    tar = buf.getvalue()
    repo = small_repo()
    with BackupSession(repo, kind="tar", group="t") as s:
        bid = backup_tar(s, io.BytesIO(tar)).id
    out = CountingWriter()
    write_stream(repo, repo.load_manifest(bid), out, bid)
    assert out.getvalue() == tar
    assert out.writes <= len(tar) // GATHER + 2, out.writes

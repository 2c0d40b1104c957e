"""``check --read-data``'s pipeline (dedupe.maintenance.packcheck.pack_tables): each pack is
read once, whole, at most PACKS_AHEAD packs ahead of the one being verified; its blobs are
opened on several threads; the results come in job order and say the same as the
one-pack-at-a-time ``pack_table``, including which blob is the first damaged one."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from dedupe.backup.session import BackupSession
from dedupe.backup.stream import backup_stream
from dedupe.errors import DedupeError
from dedupe.maintenance import check as check_mod
from dedupe.maintenance import packcheck
from dedupe.repository import Repository
from dedupe.storage.local import LocalStorage
from dedupe.storage.memory import MemoryStorage
from repo_format import layout, pack
from repo_format.config import ChunkerParams

SMALL = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)


class WatchedStorage(MemoryStorage):
    """Counts whole-pack reads, and how many were read but not yet verified."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.whole_reads: list[str] = []

    def get(self, name: str) -> bytes:
        if name.startswith(layout.DATA_DIR + "/"):
            with self.lock:
                self.whole_reads.append(name.rsplit("/", 1)[-1])
        return super().get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return super().get(name)[offset:offset + length]  # a table read, not a whole pack

    def size(self, name: str) -> int:
        return len(super().get(name))


def _repo(packs: int = 6) -> tuple[WatchedStorage, Repository]:
    storage = WatchedStorage()
    repo = Repository.create(storage, SMALL)
    with BackupSession(repo, kind="stream", group="g", pack_size=48 << 10) as s:
        backup_stream(s, io.BytesIO(os.urandom(packs * 48 << 10)))
    storage.whole_reads.clear()
    return storage, repo


def _jobs(repo: Repository, whole: bool = True) -> list[packcheck.PackJob]:
    stored = {p.rsplit("/", 1)[-1]: n for p, n in repo.storage.list(layout.DATA_DIR)}
    return [(name, stored.get(name), info.size, info.table_len, whole) for name, info in sorted(repo.packs.items())]


def _damage_blob(storage: MemoryStorage, repo: Repository, name: str, index: int) -> bytes:
    """Flip a byte inside the ``index``-th blob's payload; returns that blob's chunk id."""
    path = layout.pack_path(name)
    data = bytearray(storage.files[path])
    entries = repo.parse_pack(name, bytes(data))
    e = entries[index]
    data[e.offset + e.length - 1] ^= 0xFF
    storage.files[path] = bytes(data)
    return e.chunk_id


def test_results_in_job_order_equal_the_one_pack_check() -> None:
    storage, repo = _repo()
    jobs = _jobs(repo)
    assert len(jobs) >= 4
    got = list(packcheck.pack_tables(repo, jobs, workers=3))
    assert storage.whole_reads == [j[0] for j in jobs]  # each pack read once, in order
    assert [name for name, _t, _n in got] == [j[0] for j in jobs]
    for (name, table, nread), (_, stored, size, table_len, _w) in zip(got, jobs):
        assert table == packcheck.pack_table(repo, name, stored, size, table_len, whole=True)
        assert nread == size


def test_reads_stay_within_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    storage, repo = _repo(8)
    jobs = _jobs(repo)
    seen = []
    for name, _table, _n in packcheck.pack_tables(repo, jobs, workers=2):
        with storage.lock:
            ahead = len(storage.whole_reads) - (len(seen) + 1)
        seen.append(name)
        assert 0 <= ahead <= packcheck.PACKS_AHEAD
    monkeypatch.setattr(packcheck, "PACKS_AHEAD", 3)
    storage.whole_reads.clear()
    gen = packcheck.pack_tables(repo, jobs, workers=2)
    next(gen)
    assert len(storage.whole_reads) <= 1 + 3
    gen.close()


def test_table_only_jobs_read_no_whole_pack() -> None:
    storage, repo = _repo()
    got = list(packcheck.pack_tables(repo, _jobs(repo, whole=False)))
    assert storage.whole_reads == [] and all(isinstance(t, list) and n == 0 for _p, t, n in got)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_the_first_damaged_blob_in_pack_order_is_reported(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Damage in the middle of a pack (and a later blob too, in another worker's slice):
    the error names the first, the same as the sequential check, and the other packs pass."""
    storage, repo = _repo()
    jobs = _jobs(repo)
    victim = jobs[len(jobs) // 2][0]
    monkeypatch.setattr(pack, "check_pack_name", lambda data, name, what, actual=None: None)  # reach the blobs
    n_blobs = len(repo.parse_pack(victim, storage.files[layout.pack_path(victim)]))
    assert n_blobs >= 4
    first = _damage_blob(storage, repo, victim, n_blobs // 2)
    _damage_blob(storage, repo, victim, n_blobs - 1)
    got = {name: table for name, table, _n in packcheck.pack_tables(repo, jobs, workers=workers)}
    err = got.pop(victim)
    assert isinstance(err, DedupeError) and first.hex()[:16] in str(err) and "\n" not in str(err)
    info = repo.packs[victim]
    with pytest.raises(DedupeError) as seq:
        packcheck.pack_table(repo, victim, info.size, info.size, info.table_len, whole=True)
    assert str(seq.value) == str(err)
    assert all(isinstance(t, list) for t in got.values())


def test_check_reports_a_missing_and_a_damaged_pack_and_reads_the_rest() -> None:
    storage, repo = _repo()
    jobs = _jobs(repo)
    gone, bad = jobs[1][0], jobs[3][0]
    del storage.files[layout.pack_path(gone)]
    path = layout.pack_path(bad)
    storage.files[path] = storage.files[path][:100] + bytes([storage.files[path][100] ^ 1]) + storage.files[path][101:]
    r = check_mod.check(repo, read_data=True)
    assert set(r.damaged_packs) == {gone, bad}
    assert r.damaged_packs[gone] == "missing"
    assert r.packs == len(jobs) and r.packs_read == len(jobs) - 1
    assert r.bytes_read == sum(j[2] for j in jobs if j[0] != gone)


def test_local_packs_read_into_reused_buffers_check_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a local storage whole packs are read into a few buffers used again and again
    (``get_into``): packs of different sizes (so a smaller pack lands in a buffer that
    held a larger one), and a damaged pack read into
    a buffer that held a good one before, all give what the one-pack-at-a-time check
    gives, and no more buffers are made than packs are in flight."""
    storage = LocalStorage(tmp_path / "repo")
    repo = Repository.create(storage, SMALL)
    for n in (5, 2, 7):  # packs of 48 KiB, and a shorter last one per backup
        with BackupSession(repo, kind="stream", group="g", pack_size=48 << 10) as s:
            backup_stream(s, io.BytesIO(os.urandom(n * 40 << 10)))
    jobs = _jobs(repo)
    assert len(jobs) >= 6 and len({info.size for info in repo.packs.values()}) > 1
    monkeypatch.setattr(packcheck, "PACK_BUFFER", max(info.size for info in repo.packs.values()) + 1)
    victim = jobs[len(jobs) - 2][0]
    path = tmp_path / "repo" / layout.pack_path(victim)
    data = bytearray(path.read_bytes())
    e = repo.parse_pack(victim, bytes(data))[0]
    data[e.offset + e.length - 1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    buffers: list[int] = []
    monkeypatch.setattr(storage, "get_into",
                        lambda name, buf: buffers.append(id(buf)) or LocalStorage.get_into(storage, name, buf))
    got = list(packcheck.pack_tables(repo, jobs, workers=2))
    assert len(buffers) == len(jobs) and len(set(buffers)) <= packcheck.PACKS_AHEAD + 2
    for (name, table, nread), (_, stored, size, table_len, _w) in zip(got, jobs):
        try:
            expected: object = packcheck.pack_table(repo, name, stored, size, table_len, whole=True)
        except DedupeError as err:
            expected = str(err)
        assert (str(table) if isinstance(table, DedupeError) else table) == expected
        assert nread == size
    assert isinstance(dict((n, t) for n, t, _ in got)[victim], DedupeError)

"""The restore read path (dedupe.read.read_chunks): a storage that asks for a wide
read span (a remote one) gets one ranged read per pack, however many batches that
read is opened in; a local one keeps its reads to one batch; both rebuild the bytes."""

from __future__ import annotations

import io
import os
import time

import pytest

from dedupe import read as restore
from dedupe.backup.session import BackupSession
from dedupe.repository import Repository
from dedupe.read import write_stream
from dedupe.backup.stream import backup_stream
from dedupe.storage.memory import MemoryStorage
from repo_format import layout
from repo_format.config import ChunkerParams

SMALL = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)
PACK = 64 << 10


class CountingStorage(MemoryStorage):
    def __init__(self, read_span: int = 0) -> None:
        super().__init__()
        if read_span:
            self.read_span = read_span
        self.reads: list[tuple[str, int, int]] = []

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        self.reads.append((name, offset, length))
        return super().get_range(name, offset, length)


def _backup(storage: CountingStorage, data: bytes) -> tuple[Repository, str]:
    repo = Repository.create(storage, SMALL)
    with BackupSession(repo, kind="stream", group="g", pack_size=PACK) as s:
        bid = backup_stream(s, io.BytesIO(data)).id
    storage.reads.clear()
    return repo, bid


def _restore(repo: Repository, bid: str) -> bytes:
    out = io.BytesIO()
    write_stream(repo, repo.load_manifest(bid), out, bid)
    return out.getvalue()


def _packs(storage: MemoryStorage) -> set[str]:
    return {n for n in storage.files if n.startswith(layout.DATA_DIR + "/")}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore, "MAX_BATCH_RAW", 20_000)  # several batches in every read


def test_wide_span_reads_each_pack_once(small_batches: None) -> None:
    storage = CountingStorage(read_span=1 << 20)
    data = os.urandom(600_000)  # about ten packs of 64 KiB
    repo, bid = _backup(storage, data)
    assert _restore(repo, bid) == data
    content_reads = [r for r in storage.reads if r[0] in _packs(storage)]
    packs = _packs(storage)
    assert len(packs) >= 8
    # one ranged read per pack for the content, plus the item stream's read(s)
    assert len(content_reads) <= len(packs) + 2, (len(content_reads), len(packs))
    assert max(length for _n, _o, length in content_reads) > 20_000 * 2


def test_local_reads_stay_one_batch(small_batches: None) -> None:
    storage = CountingStorage()
    data = os.urandom(600_000)
    repo, bid = _backup(storage, data)
    assert _restore(repo, bid) == data
    assert len(storage.reads) > 25  # 600 KB of plaintext in batches of 20 KB


@pytest.mark.parametrize("read_span", [0, 1 << 20])
def test_repeated_and_backward_refs_restore(small_batches: None, read_span: int) -> None:
    """Chunks met again (backward in their pack) and runs of one chunk repeated."""
    a, b, c = os.urandom(200_000), os.urandom(150_000), bytes(300_000)
    data = a + b + a + c + b + a[:50_000] + c
    repo, bid = _backup(CountingStorage(read_span), data)
    assert _restore(repo, bid) == data


def test_runs_coming_back_to_a_pack_share_its_read(small_batches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """New data interleaved with pieces repeated from older packs: each return to the
    new data's pack is served by the read already made, not by a request of its own."""
    old = os.urandom(300_000)
    new = [os.urandom(6_000) for _ in range(8)]
    data = old + b"".join(n + old[i * 30_000:i * 30_000 + 20_000] for i, n in enumerate(new))

    def reads(lookahead: int) -> int:
        monkeypatch.setattr(restore, "LOOKAHEAD_BYTES", lookahead)
        storage = CountingStorage(read_span=1 << 20)
        repo, bid = _backup(storage, data)
        assert _restore(repo, bid) == data
        return len(storage.reads)

    alone, shared = reads(0), reads(1 << 20)
    assert shared <= alone - 5, (alone, shared)


class _SlowOut(io.BytesIO):
    """An output that is slow to take each block, and fails with ENOSPC at block ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def write(self, b) -> int:  # type: ignore[no-untyped-def, override]
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            if self.calls > self.fail_at:
                raise AssertionError("written to after a failed write")
            raise OSError(28, "No space left on device")
        time.sleep(0.001)
        return super().write(b)


def test_writes_on_their_own_thread_keep_the_order(small_batches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore, "GATHER", 16 << 10)  # many blocks, each written while the next is gathered
    data = os.urandom(200_000) + bytes(100_000) + os.urandom(300_000)
    repo, bid = _backup(CountingStorage(), data)
    out = _SlowOut()
    assert write_stream(repo, repo.load_manifest(bid), out, bid) == len(data)
    assert out.getvalue() == data
    assert out.calls >= 20


def test_a_failed_write_stops_the_restore_with_its_error(small_batches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore, "GATHER", 16 << 10)  # several blocks
    data = os.urandom(600_000)
    repo, bid = _backup(CountingStorage(), data)
    out = _SlowOut(fail_at=3)
    with pytest.raises(OSError) as e:
        write_stream(repo, repo.load_manifest(bid), out, bid)
    assert e.value.errno == 28 and out.calls == 3

"""What bounds a backup's memory: the bytes in flight in the chunk pipeline, the read
buffers every reader shares, packs written to a local repository while they are built
(and bounded when the storage is slow), and the whole-stream hash that may not fall
behind without holding the reader up."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from dedupe.backup import chunking, writer
from dedupe.backup.chunking import ChunkPipeline, cut_file, make_chunker
from dedupe.backup.session import BackupSession
from dedupe.backup.stream import backup_stream
from dedupe.backup.stream_hash import StreamHasher
from dedupe.backup.tasks import TaskQueue
from dedupe.buffers import ReadArena, shared_pool
from dedupe.maintenance.check import check
from dedupe.read import write_stream
from dedupe.repository import Repository
from dedupe.storage.faulty import FaultyStorage, InjectedFault
from dedupe.storage.local import LocalStorage
from dedupe.storage.memory import MemoryStorage
from repo_format import layout, pack
from repo_format.config import ChunkerParams
from repo_format.ids import object_name, stream_hash

SMALL = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)
DATA = os.urandom(600_000)


class _Txn:
    """The little of a Transaction the pipeline uses: every chunk is new."""

    def __init__(self) -> None:
        self.repo = self
        self.added = 0

    def known(self, cid: bytes) -> bool:
        return False

    def seal_chunks(self, cids: list[bytes], datas: list[memoryview], level: int) -> list[bytes]:
        time.sleep(0.002)  # workers slower than the calling thread: the bound is what stops it
        return [bytes(d) for d in datas]

    def add(self, cid: bytes, sealed: bytes, raw_len: int) -> None:
        self.added += raw_len


def test_the_pipeline_holds_at_most_its_bound_of_content_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks (batched) and large ones (alone): the content handed to the workers
    and not yet taken back never passes the bound, but for a single batch."""
    monkeypatch.setattr(chunking, "BATCH_BYTES", 8 << 10)
    monkeypatch.setattr(chunking, "ALONE", 8 << 10)
    txn = _Txn()
    pipeline = ChunkPipeline(txn, SMALL, b"k" * 32, workers=2)  # type: ignore[arg-type]
    pipeline.max_bytes_in_flight = 64 << 10
    seen: list[tuple[int, int]] = []
    real_submit = pipeline._pool.submit

    def submit(fn, pieces):  # type: ignore[no-untyped-def]
        batch = sum(len(p) for p in pieces)
        seen.append((pipeline._bytes_in_flight + batch, batch))
        return real_submit(fn, pieces)

    pipeline._pool.submit = submit  # type: ignore[method-assign]
    for i in range(200):
        pipeline.store_view(memoryview(DATA[i * 1000:i * 1000 + (500 if i % 3 else 40_000)]))
    pipeline.flush()
    pipeline.close()
    assert txn.added == sum(500 if i % 3 else 40_000 for i in range(200))
    assert all(total <= max(pipeline.max_bytes_in_flight, batch) for total, batch in seen)
    assert max(total for total, _ in seen) > pipeline.max_bytes_in_flight // 2  # it did fill up
    assert pipeline._bytes_in_flight == 0


def test_readers_share_one_pool_of_read_buffers() -> None:
    """The walk's arena and the blocks of a large file take the same buffers: once a
    file's chunks are gone, its buffer is the arena's next one (no new mapping)."""
    chunker = make_chunker(SMALL)
    size = SMALL.max_size + 8192
    pool = shared_pool(size)
    assert shared_pool(size) is pool
    pieces = list(cut_file(chunker, io.BytesIO(DATA[:20_000]), size=8192))
    used = {id(p.obj) for p in pieces}  # the buffers the file was read into
    del pieces
    arena = ReadArena(size)
    view = arena.take(100)
    assert id(view.obj) in used


def test_a_shared_pool_keeps_two_buffers_mapped() -> None:
    """Issue #15 item 5: what stays mapped between reads is two buffers; a third one,
    needed only while three are busy at once, is unmapped once free."""
    pool = shared_pool(SMALL.max_size + 12_345)  # a size no other test uses
    views = [pool.view() for _ in range(3)]
    first = [v.obj for v in views]  # the buffers themselves (no views): ids stay unique
    assert len({id(b) for b in first}) == 3
    for v in views:
        v.release()
    del views
    again = [pool.view() for _ in range(3)]
    reused = [b for b in first if any(v.obj is b for v in again)]
    assert len(reused) == 2


def _backup(repo: Repository, data: bytes, pack_size: int) -> str:
    with BackupSession(repo, kind="stream", group="g", pack_size=pack_size) as s:
        return backup_stream(s, io.BytesIO(data)).id


def _restore(repo: Repository, bid: str) -> bytes:
    out = io.BytesIO()
    write_stream(repo, repo.load_manifest(bid), out, bid)
    return out.getvalue()


def test_a_local_repository_gets_its_packs_while_they_are_built(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The blobs of the pack being built go to a temporary file in data/ in pieces,
    before the pack is complete (the transaction does not hold them); the packs are
    named by their content as a whole pack would be, and nothing temporary is left."""
    monkeypatch.setattr(writer, "HAND_OVER", 16 << 10)
    repo = Repository.create(LocalStorage(tmp_path / "repo"), SMALL)
    data = os.urandom(400_000)
    writes: list[int] = []
    real_write = writer._PackOut.write

    def write(self: writer._PackOut, parts: list[bytes]) -> None:
        real_write(self, parts)
        writes.append(len(list((tmp_path / "repo" / "data").glob(".new.*.tmp"))))

    monkeypatch.setattr(writer._PackOut, "write", write)
    bid = _backup(repo, data, pack_size=128 << 10)
    packs = [p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()]
    assert len(packs) >= 3 and len(writes) >= 3 * len(packs)  # each pack in pieces ...
    assert all(writes)  # ... into a temporary file
    for p in packs:
        body = p.read_bytes()
        assert object_name(body) == p.name
        pack.parse_pack(body, p.name)
    assert _restore(Repository.open(repo.storage), bid) == data
    assert check(repo, read_data=True).ok


def test_an_object_store_gets_each_pack_whole_in_one_put() -> None:
    storage = MemoryStorage()
    puts: list[str] = []
    real_put = storage.put

    def put(name: str, data: object) -> None:
        puts.append(name)
        real_put(name, data)  # type: ignore[arg-type]

    storage.put = put  # type: ignore[method-assign]
    repo = Repository.create(storage, SMALL)
    data = os.urandom(300_000)
    bid = _backup(repo, data, pack_size=64 << 10)
    assert len([n for n in puts if n.startswith(layout.DATA_DIR)]) == len(set(storage.list(layout.DATA_DIR)))
    assert _restore(repo, bid) == data


def test_a_slow_storage_holds_the_backup_up_instead_of_piling_packs_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """While packs are being stored, at most QUEUED_PACKS packs' worth of bytes wait for
    the upload thread."""
    storage = MemoryStorage()
    real_put = storage.put
    queued: list[int] = []

    def slow_put(name: str, data: object) -> None:
        time.sleep(0.02)
        real_put(name, data)  # type: ignore[arg-type]

    storage.put = slow_put  # type: ignore[method-assign]
    repo = Repository.create(storage, SMALL)
    real_submit = TaskQueue.submit

    def submit(self: TaskQueue, nbytes: int, fn: object, *args: object) -> None:
        real_submit(self, nbytes, fn, *args)  # type: ignore[arg-type]
        if self.name == "pack-upload":
            queued.append(self.queued_bytes)

    monkeypatch.setattr(TaskQueue, "submit", submit)
    pack_size = 32 << 10
    data = os.urandom(600_000)
    bid = _backup(repo, data, pack_size=pack_size)
    assert max(queued) <= writer.QUEUED_PACKS * pack_size + SMALL.max_size + 1024
    assert max(queued) > pack_size  # the storage was slow enough for the bound to matter
    assert _restore(repo, bid) == data


def test_a_failed_backup_leaves_no_temporary_pack(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path / "repo")
    repo = Repository.create(local, SMALL)
    faulty = FaultyStorage(local, fail_at=3)
    failing = Repository.open(faulty)
    with pytest.raises(InjectedFault):
        _backup(failing, os.urandom(400_000), pack_size=64 << 10)
    assert not list(local.temp_files())
    assert repo.manifest_names() == []


def test_an_aborted_backup_removes_the_pack_it_was_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "HAND_OVER", 8 << 10)
    monkeypatch.setattr(chunking, "MAX_BYTES_IN_FLIGHT", 32 << 10)
    local = LocalStorage(tmp_path / "repo")
    repo = Repository.create(local, SMALL)
    writing: list[str] = []

    class Stop(Exception):
        pass

    def data() -> object:
        class Reader(io.RawIOBase):
            sent = 0

            def readinto(self, b: memoryview) -> int:  # type: ignore[override]
                writing.extend(local.temp_files())
                if self.sent > 2 * (chunking.FILE_READ_SIZE + SMALL.max_size):  # two buffers' worth cut
                    raise Stop
                n = min(len(b), 1 << 20)
                b[:n] = os.urandom(n)
                self.sent += n
                return n

            def readable(self) -> bool:
                return True
        return Reader()

    with pytest.raises(Stop):
        with BackupSession(repo, kind="stream", group="g", pack_size=1 << 20) as s:
            backup_stream(s, data())  # type: ignore[arg-type]
    assert writing  # the pack being built was on disk
    assert not list(local.temp_files())


def test_the_stream_hash_keeps_read_order_and_bounds_what_waits() -> None:
    """Large pieces go to the hashing thread, small ones are hashed at once only when
    nothing waits (else after what does); never more than max_pending bytes wait."""
    hasher = StreamHasher(max_pending=300_000)
    gate = threading.Event()
    real_update = hasher._hasher.update
    waiting: list[int] = []

    def slow_update(data: object) -> None:
        gate.wait()
        real_update(data)

    hasher._hasher = type("H", (), {"update": staticmethod(slow_update), "digest": hasher._hasher.digest})()
    pieces = [os.urandom(n) for n in (100_000, 100, 150_000, 70_000, 5, 200_000, 10)]
    threading.Timer(0.05, gate.set).start()
    for p in pieces:
        hasher.update(p)
        waiting.append(hasher.pending_bytes)
    expected = stream_hash()
    for p in pieces:
        expected.update(p)
    assert hasher.digest() == expected.digest()
    assert max(waiting) <= 300_000


def test_an_s3_pack_goes_up_from_its_parts_without_a_joined_copy() -> None:
    """S3Storage.put of a pack's parts: the body is a seekable reader over the parts
    (botocore reads it to sign, seeks back, sends it), with the parts' MD5; never
    ``b"".join`` of the whole pack."""
    import base64
    import hashlib
    import random

    from dedupe.storage import s3

    parts = [os.urandom(n) for n in (8, 0, 70_000, 1, 300_000, 44)]
    whole = b"".join(parts)
    sent: list[tuple[bytes, str, int]] = []

    class Client:
        meta = type("M", (), {"events": type("E", (), {"register": staticmethod(lambda *a, **k: None)})()})()

        def put_object(self, **kw: object) -> dict[str, object]:
            body = kw["Body"]
            assert not isinstance(body, (bytes, bytearray))
            rnd = random.Random(1)
            assert body.read(1000) == whole[:1000]  # type: ignore[attr-defined]
            body.seek(0)  # type: ignore[attr-defined]
            got = b""
            while chunk := body.read(rnd.randint(1, 50_000)):  # type: ignore[attr-defined]
                got += chunk
            body.seek(-44, io.SEEK_END)  # type: ignore[attr-defined]
            assert body.read() == parts[-1]  # type: ignore[attr-defined]
            sent.append((got, str(kw["ContentMD5"]), int(kw["ContentLength"])))  # type: ignore[call-overload]
            return {}

    storage = s3.S3Storage(s3.parse_location("s3://b/p"), endpoint="http://127.0.0.1:1", client=Client())
    storage.put("data/ab/" + "ab" * 32, parts)
    assert sent == [(whole, base64.b64encode(hashlib.md5(whole).digest()).decode(), len(whole))]


class _CountingLists(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.lists: list[str] = []

    def list(self, prefix: str):  # type: ignore[no-untyped-def]
        self.lists.append(prefix)
        return super().list(prefix)


def test_an_empty_encrypted_repository_opens_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #15 item 5: numpy (~20 MiB resident) is imported beside the key derivation
    only when there is an index to load: a first backup into an empty encrypted
    repository never loads it. The index directory is listed once either way."""
    from dedupe import repository
    from dedupe.keymgmt import TEST_KDF

    started: list[str] = []
    monkeypatch.setattr(repository, "load_numpy", lambda: started.append("numpy"))
    storage = _CountingLists()
    Repository.create(storage, passphrase=b"pw", kdf_params=dict(TEST_KDF))
    storage.lists.clear()
    repo = Repository.open(storage, lambda: b"pw")
    assert started == [] and storage.lists == [layout.INDEX_DIR]
    with BackupSession(repo, kind="stream", group="g") as s:
        backup_stream(s, io.BytesIO(DATA))
    storage.lists.clear()
    Repository.open(storage, lambda: b"pw")
    for t in threading.enumerate():
        if t.name == "import-numpy":
            t.join()
    assert started == ["numpy"] and storage.lists == [layout.INDEX_DIR]

"""Micro benchmarks of the building blocks on the write and read paths.

Run: .venv/bin/pytest benchmarks/bench_core.py --benchmark-columns=mean,ops
Throughput = 32 MiB / mean time. Results and the command: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import io
import os

import blake3
import pytest

from dedupe.backup.session import BackupSession
from dedupe.backup.chunking import cut_blocks, make_chunker
from dedupe.repository import Repository
from dedupe.read import write_stream
from dedupe.backup.stream import backup_stream
from dedupe.storage.memory import MemoryStorage
from repo_format import blob, config, pack
from repo_format.ids import chunk_id

SIZE = 32 << 20
RANDOM = blake3.blake3(b"bench").digest(length=SIZE)
# compressible like a root file system: text-ish, repetitive with variation
TEXTISH = b"".join(b"%08d usr/share/doc/package-%d/changelog.Debian.gz ok\n" % (i, i % 977)
                   for i in range(SIZE // 56))[:SIZE]
KEY = bytes(32)


def test_chunker(benchmark) -> None:  # type: ignore[no-untyped-def]
    chunker = make_chunker(config.DEFAULT_CHUNKER)
    benchmark(lambda: sum(1 for _ in cut_blocks(chunker, [RANDOM])))


def test_blake3_keyed(benchmark) -> None:  # type: ignore[no-untyped-def]
    view = memoryview(RANDOM)
    benchmark(lambda: [chunk_id(KEY, view[i:i + (1 << 20)]) for i in range(0, SIZE, 1 << 20)])


@pytest.mark.parametrize("level", [1, 3])
def test_zstd_seal_textish(benchmark, level: int) -> None:  # type: ignore[no-untyped-def]
    view = memoryview(TEXTISH)
    benchmark(lambda: [blob.seal(view[i:i + (1 << 20)], level) for i in range(0, SIZE, 1 << 20)])


def test_zstd_open_textish(benchmark) -> None:  # type: ignore[no-untyped-def]
    sealed = [blob.seal(TEXTISH[i:i + (1 << 20)]) for i in range(0, SIZE, 1 << 20)]
    benchmark(lambda: [blob.open_blob(s, "b") for s in sealed])


def test_pack_building(benchmark) -> None:  # type: ignore[no-untyped-def]
    blobs = [(chunk_id(KEY, RANDOM[i:i + 65536]), blob.seal(RANDOM[i:i + 65536], 0)) for i in range(0, SIZE, 65536)]

    def build() -> None:
        for start in range(0, len(blobs), 256):  # 16 MiB packs
            b = pack.PackBuilder()
            for cid, s in blobs[start:start + 256]:
                b.add(cid, s, 65536)
            b.finish()

    benchmark(build)


def test_backup_pipeline_new_data(benchmark) -> None:  # type: ignore[no-untyped-def]
    data = RANDOM[: SIZE // 2] + TEXTISH[: SIZE // 2]

    def run() -> None:
        repo = Repository.create(MemoryStorage())
        with BackupSession(repo, kind="stream", group="b") as s:
            backup_stream(s, io.BytesIO(data))

    benchmark.pedantic(run, rounds=3, iterations=1)


def test_restore_pipeline(benchmark) -> None:  # type: ignore[no-untyped-def]
    repo = Repository.create(MemoryStorage())
    with BackupSession(repo, kind="stream", group="b") as s:
        bid = backup_stream(s, io.BytesIO(RANDOM[: SIZE // 2] + TEXTISH[: SIZE // 2])).id
    m = repo.load_manifest(bid)
    benchmark(lambda: write_stream(repo, m, open(os.devnull, "wb"), bid))

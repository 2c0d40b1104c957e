"""Micro benchmarks of retention and gc on the in-memory storage.

Run: .venv/bin/pytest benchmarks/bench_gc.py --benchmark-columns=mean,rounds
The curve against 10^4..10^6 chunks, peak memory and the peers: benchmarks/gc_scale.py
and benchmarks/RESULTS-gc.md.
"""

from __future__ import annotations

import datetime as dt
import io
import random

from dedupe.maintenance import gc, prune
from dedupe.backup.session import BackupSession
from dedupe.repository import Repository
from dedupe.backup.stream import backup_stream
from dedupe.storage.memory import MemoryStorage
from repo_format.config import ChunkerParams

SMALL = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)
BACKUPS = 30


def _repository() -> dict[str, bytes]:
    """30 nightly backups of a 2 MB source with 1% changed a night (about 60,000 chunks)."""
    rng = random.Random(3)
    repo = Repository.create(MemoryStorage(), SMALL)
    data = bytearray(rng.randbytes(2 << 20))
    for night in range(BACKUPS):
        for _ in range(20):
            at = rng.randrange(len(data) - 1024)
            data[at:at + 1024] = rng.randbytes(1024)
        with BackupSession(repo, kind="stream", group="vm", level=1, pack_size=1 << 20) as s:
            s.time_ns = int(dt.datetime(2025, 1, 1 + night, 3).timestamp() * 1e9)
            backup_stream(s, io.BytesIO(bytes(data)))
    return dict(repo.storage.files)  # type: ignore[attr-defined]


FILES = _repository()


def _fresh() -> tuple[tuple[Repository], dict[str, object]]:
    storage = MemoryStorage()
    storage.files = dict(FILES)
    return (Repository.open(storage),), {}


def test_policy_10000_backups(benchmark) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()
    backups = [prune.Backup(f"{i:064x}", "g", int((start + i * 3600) * 1e9)) for i in range(10_000)]
    policy = prune.Policy(hourly=24, daily=7, weekly=4, monthly=12, yearly=3, tz=dt.UTC)
    benchmark(prune.apply_policy, policy, backups)


def test_prune_and_gc(benchmark) -> None:  # type: ignore[no-untyped-def]
    policy = prune.Policy(daily=7, tz=dt.UTC)

    def run(repo: Repository) -> None:
        prune.run_prune(repo, policy, [], gc_options=gc.GcOptions(pack_size=1 << 20))

    benchmark.pedantic(run, setup=_fresh, rounds=3)


def test_gc_nothing_to_do(benchmark) -> None:  # type: ignore[no-untyped-def]
    def run(repo: Repository) -> None:
        with gc.maintenance_lock(repo.storage, "gc") as held:
            gc.collect(repo, held)

    benchmark.pedantic(run, setup=_fresh, rounds=3)

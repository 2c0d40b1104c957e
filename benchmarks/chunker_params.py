"""Which content-chunker parameters to make the default: new data for a "next night".

For each candidate (min, avg, max), back up night1.tar then night2.tar (about 2% of
files changed) into a fresh in-memory repository, as a file-aligned tar backup and
as an opaque stream, and print the new bytes the second night stores, the number of
chunks (index and metadata cost), and the time.

Run: .venv/bin/python benchmarks/chunker_params.py /var/tmp/dedupe-corpus
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dedupe.backup.session import BackupSession
from dedupe.repository import Repository
from dedupe.backup.stream import backup_stream
from dedupe.backup.tar import backup_tar
from dedupe.storage.memory import MemoryStorage
from repo_format.config import ChunkerParams

CANDIDATES = [
    ChunkerParams(64 << 10, 256 << 10, 1 << 20),
    ChunkerParams(128 << 10, 512 << 10, 2 << 20),
    ChunkerParams(256 << 10, 1 << 20, 4 << 20),
    ChunkerParams(512 << 10, 2 << 20, 8 << 20),
]


def run(params: ChunkerParams, mode: str, night1: Path, night2: Path) -> tuple[int, int, int, float]:
    repo = Repository.create(MemoryStorage(), params)
    fn = backup_tar if mode == "tar" else backup_stream
    t0 = time.perf_counter()
    stats = []
    for night in (night1, night2):
        with open(night, "rb") as f, BackupSession(repo, kind=mode, group="g", level=1) as s:
            stats.append(fn(s, f).manifest.stats)
    return stats[1]["new_bytes"], stats[1]["new_stored"], repo.chunk_count(), time.perf_counter() - t0


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/dedupe-corpus")
    n1, n2 = corpus / "night1.tar", corpus / "night2.tar"
    size = n2.stat().st_size
    print(f"night2.tar: {size / 1e6:.1f} MB")
    print(f"{'mode':<7}{'min/avg/max KiB':<18}{'night-2 new MB':>15}{'% of tar':>9}{'chunks':>8}{'time s':>8}")
    for mode in ("tar", "stream"):
        for p in CANDIDATES:
            new, stored, chunks, secs = run(p, mode, n1, n2)
            label = f"{p.min_size >> 10}/{p.avg_size >> 10}/{p.max_size >> 10}"
            print(f"{mode:<7}{label:<18}{new / 1e6:>15.2f}{100 * new / size:>8.1f}%{chunks:>8}{secs:>8.1f}", flush=True)


if __name__ == "__main__":
    main()

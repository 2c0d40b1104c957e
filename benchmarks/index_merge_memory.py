#!/usr/bin/env python3
"""Peak memory of merging a chunk index of N entries (what opening a repository costs).

    .venv/bin/python benchmarks/index_merge_memory.py [--chunks 1000000]

Feeds N random packed pack-table entries (44 bytes each, as index segments hold them)
into a ChunkIndex, then merges them (``compact``), and prints bytes per chunk before,
after and at the peak of the merge, as tracemalloc counts them (numpy reports its
arrays to it). numpy is imported before tracing starts, so its modules do not count.
"""

from __future__ import annotations

import argparse
import os
import tracemalloc

from dedupe.chunk_index import ChunkIndex, load_numpy

ENTRY = 44


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1_000_000)
    n = ap.parse_args().chunks
    load_numpy()
    per_table = 10_000
    tables = [os.urandom(ENTRY * per_table) for _ in range(max(1, n // per_table))]
    n = len(tables) * per_table
    tracemalloc.start()
    idx = ChunkIndex()
    for i, t in enumerate(tables):
        idx.add_packed(t, i)
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    idx.compact()
    after, peak = tracemalloc.get_traced_memory()
    print(f"{n} chunks: before the merge {before / n:.0f} B/chunk, after {after / n:.0f}, peak {peak / n:.0f}")


if __name__ == "__main__":
    main()

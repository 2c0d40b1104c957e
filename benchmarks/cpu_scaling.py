#!/usr/bin/env python3
"""How much a second CPU adds on this machine, for the work a backup spreads over it.

    .venv/bin/python benchmarks/cpu_scaling.py [--tries 3] [--input FILE] [--mib 64]

Compresses the first MiB-sized pieces of FILE with zstd level 3 once in one process,
then the same work in each of two processes at once, and prints the speed-up (2.0 on
two free cores). dedupe spreads a backup over all CPUs while borg runs on one, so on
a machine where this is well under 2 dedupe's lead over borg shrinks.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import zstandard


def _work(pieces: list[bytes]) -> None:
    c = zstandard.ZstdCompressor(level=3)
    for p in pieces:
        c.compress(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default="/var/tmp/dedupe-corpus/night1.tar")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--tries", type=int, default=3)
    args = ap.parse_args()
    with open(args.input, "rb") as f:
        data = f.read(args.mib << 20)
    pieces = [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    for n in range(args.tries):
        t = time.perf_counter()
        _work(pieces)
        one = time.perf_counter() - t
        procs = [mp.Process(target=_work, args=(pieces,)) for _ in range(2)]
        t = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        two = time.perf_counter() - t
        print(f"try {n + 1}: one process {one:.3f} s, the same work twice in two processes {two:.3f} s: "
              f"speed-up {2 * one / two:.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Interleaved A/B of one backup command by two dedupe executables (two code trees).

    python3 benchmarks/ab_backup.py A B [--runs 15] [--kind tar] [--input FILE] [--encrypted]

A and B are dedupe executables (e.g. wrappers that put a `git worktree` of another
commit first on sys.path). Each round runs A then B (B then A on odd rounds), each into
a fresh repository, after `sync`; prints the median and best wall seconds and the median
CPU seconds of each. On a shared machine that drifts 10-20% between runs, alternating
the two is what makes their difference visible.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import time

REPO = "/var/tmp/dedupe-ab-repo"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--kind", default="tar", choices=("tar", "stream"))
    ap.add_argument("--input", default="/var/tmp/dedupe-corpus/night1.tar")
    ap.add_argument("--encrypted", action="store_true", help="init with a passphrase ($DEDUPE_PASSPHRASE)")
    args = ap.parse_args()
    env = {**os.environ, "DEDUPE_PASSPHRASE": os.environ.get("DEDUPE_PASSPHRASE", "ab-bench")}
    init = ["init"] if args.encrypted else ["init", "--encryption", "none"]
    walls: dict[str, list[float]] = {args.a: [], args.b: []}
    cpus: dict[str, list[float]] = {args.a: [], args.b: []}
    for i in range(args.runs):
        for exe in (args.a, args.b) if i % 2 == 0 else (args.b, args.a):
            shutil.rmtree(REPO, ignore_errors=True)
            subprocess.run([exe, "--repo", REPO, *init], check=True, stdout=subprocess.DEVNULL, env=env)
            subprocess.run(["sync"], check=True)
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([exe, "--repo", REPO, "backup", args.kind, "ab", args.input, "--json"],
                           check=True, stdout=subprocess.DEVNULL, env=env)
            walls[exe].append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[exe].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    shutil.rmtree(REPO, ignore_errors=True)
    for exe in (args.a, args.b):
        print(f"{exe}: wall median {statistics.median(walls[exe]):.3f} s, best {min(walls[exe]):.3f} s; "
              f"CPU median {statistics.median(cpus[exe]):.3f} s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a tar backup's CPU goes: the tar parser alone, and CPU per thread of a real run.

    .venv/bin/python benchmarks/tar_profile.py [--input FILE] [--runs 7]

1. ``TarReader`` over FILE the way ``backup tar`` reads it (reused 8 MiB views, each
   member's entry item built), without chunking or storing: the median of ``--runs``.
2. One ``dedupe backup tar`` of FILE into a fresh unencrypted repository, with the CPU
   seconds of each of its threads sampled from ``/proc/PID/task`` every 50 ms (threads
   are numbered in start order: the main thread first, then the stream hasher, the
   chunk workers and the pack writer as they start).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "/var/tmp/dedupe-tar-profile-repo"


def parse_only(path: str) -> float:
    from dedupe.backup.tar import VIEW_SIZE
    from repo_format.items import member_item
    from dedupe.sources.tarstream import TarReader

    t = time.perf_counter()
    with open(path, "rb") as f:
        reader = TarReader(f, view_size=VIEW_SIZE)
        for m in reader:
            entry = m.entry.to_item()
            if m.data_size and not m.data_prefix and m.data_size <= VIEW_SIZE:
                m.read_view()
            elif m.data_size:
                for _ in m.iter_raw(VIEW_SIZE):
                    pass
            member_item(m.header, entry, m.data_prefix, m.padding)
    return time.perf_counter() - t


def thread_cpu(path: str) -> tuple[float, dict[int, float]]:
    exe = str(ROOT / ".venv" / "bin" / "dedupe")
    shutil.rmtree(REPO, ignore_errors=True)
    subprocess.run([exe, "--repo", REPO, "init", "--encryption", "none"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["sync"], check=True)
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, float] = {}
    t = time.perf_counter()
    p = subprocess.Popen([exe, "--repo", REPO, "backup", "tar", "profile", path, "--json"],
                         stdout=subprocess.DEVNULL)
    while p.poll() is None:
        for stat in glob.glob(f"/proc/{p.pid}/task/*/stat"):
            try:
                fields = open(stat).read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu[int(stat.split("/")[4])] = (int(fields[11]) + int(fields[12])) / tick
        time.sleep(0.05)
    wall = time.perf_counter() - t
    shutil.rmtree(REPO, ignore_errors=True)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default="/var/tmp/dedupe-corpus/night1.tar")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    times = [parse_only(args.input) for _ in range(args.runs)]
    print(f"TarReader alone: median {statistics.median(times):.3f} s, best {min(times):.3f} s ({args.runs} runs)")
    wall, cpu = thread_cpu(args.input)
    threads = ", ".join(f"#{n} {s:.2f}" for n, (_tid, s) in enumerate(sorted(cpu.items()), start=1))
    print(f"backup tar: {wall:.2f} s wall, CPU seconds per thread (last sample before exit): {threads}; "
          f"total {sum(cpu.values()):.2f}")


if __name__ == "__main__":
    main()

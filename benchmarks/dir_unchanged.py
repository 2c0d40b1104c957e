#!/usr/bin/env python3
"""Benchmark: the unchanged night of ``backup dir`` (issue #15), this tree's dedupe vs
an older dedupe (a ``git archive`` of it, run from its own sources) vs restic 0.18.

Each tool backs up the tree once untimed (its first night), then ``--rounds`` rounds of
one unchanged night each, the tools in an order that rotates by round; wall time and
peak RSS under ``/usr/bin/time -v``, the 1-minute load before each run. Encrypted
repositories for all (dedupe's default, Argon2id; restic's scrypt): the key derivation is
part of every run.

    git archive 701667f | tar -x -C /var/tmp/ddx-old
    python3 benchmarks/dir_unchanged.py --old /var/tmp/ddx-old --rounds 5

Uses only the standard library (runs with the system python3); dedupe from ``.venv``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
RESTIC = "/opt/restic-0.18/usr/bin/restic"
PASSPHRASE = "benchmark passphrase"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS bytes and CPU seconds (user + system) of one run."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.monotonic()
        # not from this checkout: ``python -m`` puts the working directory first on sys.path,
        # which would run this tree's dedupe as the "old" one too
        p = subprocess.run(["/usr/bin/time", "-v", "-o", t.name, *cmd], capture_output=True, text=True, env=env,
                           cwd="/")
        wall = time.monotonic() - start
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
        text = t.read()
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024  # type: ignore[union-attr]
        cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    return wall, rss, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=Path("/var/tmp/dedupe-corpus-large/rootfs-night1"))
    ap.add_argument("--old", type=Path, help="sources of an older dedupe (git archive)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/ddx-dir-bench"))
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    base = {**os.environ, "DEDUPE_PASSPHRASE": PASSPHRASE, "RESTIC_PASSWORD": PASSPHRASE}
    tools: dict[str, tuple[list[str], dict[str, str]]] = {}
    for name, src in (("dedupe", None), ("dedupe-old", args.old)):
        if name == "dedupe-old" and src is None:
            continue
        env = {**base, "DEDUPE_REPO": str(args.work / name), "XDG_CACHE_HOME": str(args.work / f"{name}-cache")}
        if src is not None:
            env["PYTHONPATH"] = str(src)
        cli = [PYTHON, "-m", "dedupe"]
        subprocess.run([*cli, "init"], env=env, check=True, capture_output=True, cwd="/")
        tools[name] = ([*cli, "backup", "dir", "tree", str(args.tree)], env)
    env = {**base, "RESTIC_REPOSITORY": str(args.work / "restic"), "XDG_CACHE_HOME": str(args.work / "restic-cache")}
    subprocess.run([RESTIC, "init"], env=env, check=True, capture_output=True)
    tools["restic"] = ([RESTIC, "backup", "-q", "--no-scan", str(args.tree)], env)
    for name, (cmd, env) in tools.items():
        run(cmd, env)  # the first night, untimed
    names = list(tools)
    runs: list[dict[str, object]] = []
    for rnd in range(args.rounds):
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            load = float(Path("/proc/loadavg").read_text().split()[0])
            wall, rss, cpu = run(*tools[name])
            runs.append({"tool": name, "round": rnd, "wall": wall, "rss": rss, "cpu": cpu, "load": load})
            print(f"round {rnd} {name:11} {wall:6.2f} s  cpu {cpu:5.2f} s  {rss / 2**20:5.0f} MiB  load {load:.1f}",
                  flush=True)
    (args.work / "results.json").write_text(json.dumps({"command": " ".join(sys.argv), "runs": runs}, indent=2))
    def of(name: str, what: str) -> list[float]:
        return [float(r[what]) for r in runs if r["tool"] == name]  # type: ignore[arg-type]

    print("| tool | median wall s | per round | median CPU s | peak RSS MiB |")
    print("|---|---:|---|---:|---:|")
    for name in names:
        walls = of(name, "wall")
        print(f"| {name} | {statistics.median(walls):.2f} | {', '.join(f'{w:.2f}' for w in walls)} | "
              f"{statistics.median(of(name, 'cpu')):.2f} | {max(of(name, 'rss')) / 2**20:.0f} |")
    for other in names[1:]:  # each round's own ratio: dedupe's time over the other's
        ratios = [a / b for a, b in zip(of("dedupe", "wall"), of(other, "wall"))]
        print(f"dedupe / {other}: median of the rounds' ratios {statistics.median(ratios):.2f} "
              f"(per round {', '.join(f'{r:.2f}' for r in ratios)}); CPU "
              f"{statistics.median(of('dedupe', 'cpu')) / statistics.median(of(other, 'cpu')):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

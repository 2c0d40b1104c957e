#!/usr/bin/env python3
"""prune + gc against restic `forget --prune` and borg `prune` + `compact`, like for like.

One directory tree of FILES distinct random files of 20-32 KiB each: above dedupe's
16 KiB inline threshold and below every tool's minimum chunk size (dedupe's default
chunker, restic's and borg's all have minimums of 256 KiB or more), so every file is
one chunk (blob) in each tool and the three repositories hold about the same number of
chunks. NIGHTS backups of it, each night after replacing CHANGE of the files with new
random content, go into three repositories: dedupe (`init --encryption none`, default
chunker), borg 1.4 (`init -e none`, default lz4) and restic 0.14 (always encrypted;
repository format 1, no compression). Then, on a copy of each repository, in its own
process under /usr/bin/time (wall and CPU seconds, peak RSS), each tool keeps the last
KEEP backups and frees the space:

  dedupe   dedupe prune --keep-last KEEP       (structure check, policy, forget, gc)
  restic   restic forget --keep-last KEEP --prune
  borg     borg prune --keep-last KEEP, then borg compact

    python3 benchmarks/prune_peers.py --files 5000 50000      # about 10^4 and 10^5 chunks

Chunks = FILES * (1 + CHANGE * (NIGHTS - 1)) file chunks, plus a few metadata chunks.
The built repositories are kept under --scratch (per size) and reused with --reuse;
each measured run works on copies of the repository and of restic's and borg's caches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEDUPE = str(ROOT / ".venv/bin/dedupe")
BORG = "/opt/borg/bin/borg"
RESTIC = "restic"
ENV = {"RESTIC_PASSWORD": "dedupe-bench-not-secret", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
       "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES"}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if p.returncode not in (0, 1) or (p.returncode == 1 and args[0] != BORG):  # borg: 1 is a warning
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of a command."""
    p = run(["/usr/bin/time", "-f", "%e %U %S %M", *args], env)
    wall, user, system, rss = p.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(rss)


def write_file(path: Path, rng: random.Random) -> None:
    path.write_bytes(rng.randbytes(rng.randrange(20 << 10, 32 << 10)))


def build(where: Path, files: int, nights: int, change: float, env: dict[str, str]) -> dict[str, float]:
    rng = random.Random(files)
    src = where / "src"
    shutil.rmtree(where, ignore_errors=True)
    for d in range(files // 1000 + 1):
        (src / f"d{d:03d}").mkdir(parents=True)
    paths = [src / f"d{i // 1000:03d}" / f"f{i:06d}" for i in range(files)]
    for p in paths:
        write_file(p, rng)
    run([DEDUPE, "--repo", str(where / "dedupe"), "init", "--encryption", "none", "-q"], env)
    run([RESTIC, "-q", "-r", str(where / "restic"), "init"], env)
    run([BORG, "init", "-e", "none", str(where / "borg")], env)
    spent = {"dedupe": 0.0, "restic": 0.0, "borg": 0.0}
    for night in range(nights):
        if night:
            for p in rng.sample(paths, int(files * change)):
                write_file(p, rng)
        for tool, args in (
                ("dedupe", [DEDUPE, "--repo", str(where / "dedupe"), "backup", "dir", "-q", "bench/tree", str(src)]),
                ("restic", [RESTIC, "-q", "-r", str(where / "restic"), "backup", "--host", "bench", str(src)]),
                ("borg", [BORG, "create", f"{where / 'borg'}::n{night:03d}", str(src)])):
            t0 = time.monotonic()
            run(args, env)
            spent[tool] += time.monotonic() - t0
    shutil.rmtree(src)
    return spent


def prime_caches(where: Path, keep: int, env: dict[str, str]) -> None:
    """Bring restic's and borg's local caches up to date with the built repositories
    without changing them (a dry run of the prune), so that each measured run starts
    from a copy of a warm, matching cache, as a nightly prune would."""
    run([RESTIC, "-q", "-r", str(where / "restic"), "forget", "--keep-last", str(keep), "--prune", "--dry-run"], env)
    run([BORG, "prune", "--dry-run", "--keep-last", str(keep), str(where / "borg")], env)


def measure(where: Path, keep: int, env: dict[str, str]) -> dict[str, tuple[float, float, int]]:
    out = {}
    for tool in ("dedupe", "restic", "borg"):
        for d in ("run", "run-restic-cache", "run-borg-home"):
            shutil.rmtree(where / d, ignore_errors=True)
        shutil.copytree(where / tool, where / "run", symlinks=True)
        shutil.copytree(where / "restic-cache", where / "run-restic-cache", symlinks=True)
        shutil.copytree(where / "borg-home", where / "run-borg-home", symlinks=True)
        env = {**env, "RESTIC_CACHE_DIR": str(where / "run-restic-cache"), "BORG_BASE_DIR": str(where / "run-borg-home")}
        r = str(where / "run")
        if tool == "dedupe":
            out[tool] = timed([DEDUPE, "--repo", r, "prune", "--keep-last", str(keep), "-q"], env)
        elif tool == "restic":
            out[tool] = timed([RESTIC, "-q", "-r", r, "forget", "--keep-last", str(keep), "--prune"], env)
        else:
            w1, c1, m1 = timed([BORG, "prune", "--keep-last", str(keep), r], env)
            w2, c2, m2 = timed([BORG, "compact", r], env)
            out[tool] = (w1 + w2, c1 + c2, max(m1, m2))
    for d in ("run", "run-restic-cache", "run-borg-home"):
        shutil.rmtree(where / d, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--nights", type=int, default=20)
    ap.add_argument("--change", type=float, default=0.05)
    ap.add_argument("--keep", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="measure each size this many times (on fresh copies)")
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp/dedupe-prune-peers"))
    ap.add_argument("--reuse", action="store_true", help="reuse repositories built by an earlier run")
    ap.add_argument("--dedupe-from", metavar="DIR", help="import dedupe from DIR (a snapshot of the tree)")
    a = ap.parse_args()
    if a.dedupe_from:
        ENV["PYTHONPATH"] = a.dedupe_from
    print("| files | chunks (about) | tool | prune+gc wall s | CPU s | peak MiB | build s (all nights) |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for files in a.files:
        where = a.scratch / str(files)
        env = {**ENV, "RESTIC_CACHE_DIR": str(where / "restic-cache"), "BORG_BASE_DIR": str(where / "borg-home")}
        spent_file = where / "build.json"
        if not (a.reuse and spent_file.exists()):
            spent_file.parent.mkdir(parents=True, exist_ok=True)
            spent = build(where, files, a.nights, a.change, env)
            spent_file.write_text(json.dumps(spent))
        spent = json.loads(spent_file.read_text())
        if not (where / "primed").exists():
            prime_caches(where, a.keep, env)
            (where / "primed").touch()
        chunks = int(files * (1 + a.change * (a.nights - 1)))
        for _ in range(a.repeat):
            for tool, (wall, cpu, kib) in measure(where, a.keep, env).items():
                print(f"| {files:,} | {chunks:,} | {tool} | {wall:.2f} | {cpu:.2f} | {kib / 1024:.0f} | "
                      f"{spent[tool]:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""prune + gc time and peak memory against the number of backups and chunks.

Builds an unencrypted repository with tiny chunks (FastCDC 64 B / 256 B / 1 KiB, so
10^6 chunks cost about 256 MB of data) holding BACKUPS backups of one group; backup i
is random segments i and i+1, so each backup shares half of its chunks with the next.
Then, each on its own copy of that repository and in its own process under
/usr/bin/time (wall seconds, peak RSS):

  gc      forget the older half of the backups, then the gc engine (gc.collect: its mark
          pass, which is also the structure check, then the sweep);
  prune   `dedupe prune --keep-last BACKUPS/2` as a user runs it: the policy, the mark
          pass / structure check (before forgetting), the forgetting, gc;
  index   open the repository: the whole in-memory chunk index (what backup, restore,
          check and stats hold);
  base    python with dedupe imported: subtracted to give bytes per chunk.

Every child calls bound_malloc() first, as the dedupe CLI does (dedupe/memory.py).

    .venv/bin/python benchmarks/gc_scale.py --chunks 10000 100000 1000000 --backups 20
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TINY = (64, 256, 1024)


def build(repo_dir: Path, chunks: int, backups: int) -> float:
    import io

    from dedupe.backup.session import BackupSession
    from dedupe.repository import Repository
    from dedupe.backup.stream import backup_stream
    from dedupe.storage.local import LocalStorage
    from repo_format.config import ChunkerParams
    t0 = time.monotonic()
    repo = Repository.create(LocalStorage(repo_dir), ChunkerParams(*TINY))
    segments = segments_of(chunks, backups)
    for i in range(backups):
        with BackupSession(repo, kind="stream", group="bench/vm", level=1) as s:
            s.time_ns = 1_700_000_000_000_000_000 + i * 86_400_000_000_000
            backup_stream(s, io.BytesIO(segments[i] + segments[i + 1]))
    return time.monotonic() - t0


def segments_of(chunks: int, backups: int) -> list[bytes]:
    rng = random.Random(1)
    seg_bytes = chunks * TINY[1] // (backups + 1)
    return [rng.randbytes(seg_bytes) for _ in range(backups + 1)]


def peers(scratch: Path, chunks: int, backups: int) -> list[str]:
    """restic `forget --prune` and borg `prune` + `compact` on the same backups (their own
    chunkers: 512 KiB-8 MiB, so far fewer chunks than ours for the same bytes)."""
    segs = segments_of(chunks, backups)
    rows = []
    home = scratch / "peer-home"
    env = {"RESTIC_PASSWORD": "dedupe-bench-not-secret", "RESTIC_CACHE_DIR": str(home / "restic-cache"),
           "BORG_BASE_DIR": str(home / "borg"), "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
    full = {**os.environ, **env}
    restic_repo, borg_repo = scratch / "restic", scratch / "borg"
    subprocess.run(["restic", "init", "-q", "-r", str(restic_repo)], check=True, env=full, capture_output=True)
    subprocess.run(["/opt/borg/bin/borg", "init", "-e", "none", str(borg_repo)], check=True, env=full,
                   capture_output=True)
    for i in range(backups):
        data = segs[i] + segs[i + 1]
        subprocess.run(["restic", "-q", "-r", str(restic_repo), "backup", "--stdin", "--stdin-filename", "vm",
                        "--time", f"2023-11-{1 + i:02d} 03:00:00"], input=data, check=True, env=full,
                       capture_output=True)
        subprocess.run(["/opt/borg/bin/borg", "create", "--compression", "zstd,1",
                        "--timestamp", f"2023-11-{1 + i:02d}T03:00:00", f"{borg_repo}::b{i:03d}", "-"],
                       input=data, check=True, env=full, capture_output=True)
    keep = str(backups // 2)
    r_s, r_kib = timed(["restic", "-q", "-r", str(restic_repo), "forget", "--keep-last", keep, "--prune"], env)
    b1_s, b1_kib = timed(["/opt/borg/bin/borg", "prune", "--keep-last", keep, str(borg_repo)], env)
    b2_s, b2_kib = timed(["/opt/borg/bin/borg", "compact", str(borg_repo)], env)
    rows.append(f"| restic 0.14 forget --prune | {r_s:.1f} | {r_kib / 1024:.0f} |")
    rows.append(f"| borg 1.4 prune + compact | {b1_s + b2_s:.1f} | {max(b1_kib, b2_kib) / 1024:.0f} |")
    return rows


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command."""
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise SystemExit(f"{args} failed: {p.stderr}")
    wall, rss = p.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss)


def child(what: str, repo_dir: str) -> None:
    """The measured work, in its own process."""
    from dedupe.maintenance import gc
    from dedupe.memory import bound_malloc
    from dedupe.repository import Repository
    from dedupe.storage.local import LocalStorage
    from repo_format import config, layout

    bound_malloc()  # as the CLI does at start
    if what == "base":
        return
    storage = LocalStorage(repo_dir)
    if what == "index":
        repo = Repository.open(storage)
        print(repo.chunk_count())
        return
    cfg = config.decode(storage.get(layout.CONFIG), repo_dir)
    view = Repository(storage, cfg)  # gc loads what it needs itself
    names = sorted(view.manifest_names(), key=lambda n: view.load_manifest(n).time_ns)
    for n in names[:len(names) // 2]:
        storage.delete(layout.manifest_path(n))
    with gc.maintenance_lock(storage, "gc") as held:
        r = gc.collect(view, held)
    print(r.to_json())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--backups", type=int, default=20)
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp/dedupe-gc-bench"))
    ap.add_argument("--peers", action="store_true", help="also restic and borg on the same backups")
    ap.add_argument("--child", nargs=2, metavar=("WHAT", "REPO"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    py = sys.executable
    dedupe = str(Path(py).with_name("dedupe"))
    print("| chunks (indexed) | backups | build s | gc s | gc peak MiB | gc B/chunk | prune CLI s | "
          "prune CLI peak MiB | prune B/chunk | index B/chunk |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    _, base_kib = timed([py, __file__, "--child", "base", "-"])
    peer_rows: list[tuple[int, list[str]]] = []
    for n in a.chunks:
        shutil.rmtree(a.scratch, ignore_errors=True)
        a.scratch.mkdir(parents=True)
        base = a.scratch / "base"
        build_s = build(base, n, a.backups)
        for copy in ("gc", "prune", "index"):
            shutil.copytree(base, a.scratch / copy, symlinks=True)
        _, idx_kib = timed([py, __file__, "--child", "index", str(a.scratch / "index")])
        from dedupe.repository import Repository
        from dedupe.storage.local import LocalStorage
        indexed = Repository.open(LocalStorage(base)).chunk_count()
        gc_s, gc_kib = timed([py, __file__, "--child", "gc", str(a.scratch / "gc")])
        pr_s, pr_kib = timed([dedupe, "--repo", str(a.scratch / "prune"), "prune", "--keep-last",
                              str(a.backups // 2), "--json"])

        def per(kib: int) -> str:
            return f"{(kib - base_kib) * 1024 / indexed:.0f}"

        print(f"| {indexed:,} | {a.backups} | {build_s:.1f} | {gc_s:.1f} | {gc_kib / 1024:.0f} | {per(gc_kib)} | "
              f"{pr_s:.1f} | {pr_kib / 1024:.0f} | {per(pr_kib)} | {per(idx_kib)} |", flush=True)
        if a.peers:
            peer_rows.append((n, [f"| dedupe prune (CLI, incl. check) | {pr_s:.1f} | {pr_kib / 1024:.0f} |"]
                              + peers(a.scratch, n, a.backups)))
    for n, rows in peer_rows:
        print(f"\nSame {a.backups} backups ({n * TINY[1] // (a.backups + 1) * 2 / 1e6:.1f} MB each), "
              f"keep the last {a.backups // 2}:\n\n| tool | s | peak MiB |\n|---|---|---|")
        print("\n".join(rows))
    print(f"\nbaseline (python + dedupe imported): {base_kib / 1024:.0f} MiB peak RSS")
    shutil.rmtree(a.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Peak memory (and wall and CPU seconds) of backups, step by step, on the large corpus.

    python3 benchmarks/peers/make-corpus.py --large --no-ratio    # /var/tmp/dedupe-corpus-large
    sudo scripts/s3-test-server.sh setup                           # for the s3-* steps
    .venv/bin/python benchmarks/backup_memory.py [--rounds 3] [--steps dir-first,tar-first,...]
        [--exe NAME=COMMAND ...]

Each step is one `dedupe` command line in a process of its own; its peak RSS is the
kernel's (``ru_maxrss`` from ``wait4``, what ``/usr/bin/time -v`` prints as "Maximum
resident set size"), CPU is user + system seconds. The steps, in this order:

- ``dir-first``: a first directory backup of ``rootfs-night1`` (40.6k entries, 2 GB)
  into a new unencrypted repository, with a new files cache;
- ``dir-unchanged``: the same tree again (the files cache hits every file);
- ``tar-after-dir``: ``night1.tar`` into that repository (the same files: chunks known);
- ``tar-first``: ``night1.tar`` into a new unencrypted repository;
- ``enc-dir-first`` / ``enc-tar-first``: the same into new encrypted repositories (the
  default; its Argon2id key derivation, 64 MiB, included);
- ``s3-tar-first`` / ``s3-tar-unchanged``: ``night1.tar`` twice into a new encrypted
  repository on the S3 gateway of ``scripts/s3-test-server.sh`` (a new bucket, removed
  afterwards).

With several ``--exe`` (e.g. ``base=/path/to/old/dedupe new=.venv/bin/dedupe``) the
executables take turns step by step, their order alternating by round; per step it
prints the median wall and CPU seconds, the highest peak RSS, and each round's values.
Repositories and caches live under ``--work`` (removed at the end).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from s3_bench import _drop_bucket, gateway_env, run

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path("/var/tmp/dedupe-corpus-large")
STEPS = ("dir-first", "dir-unchanged", "tar-after-dir", "tar-first", "enc-dir-first", "enc-tar-first",
         "s3-tar-first", "s3-tar-unchanged")
MIB = 1024  # ru_maxrss is in KiB


def step_commands(step: str, work: Path, corpus: Path, s3_url: str) -> tuple[list[str] | None, list[str]]:
    """The ``init`` to run first (None: the repository of an earlier step) and the backup."""
    tree, tar = str(corpus / "rootfs-night1"), str(corpus / "night1.tar")
    none = ["init", "--encryption", "none"]
    table: dict[str, tuple[str, list[str] | None, list[str]]] = {
        "dir-first": ("plain-dir", none, ["backup", "dir", "mem/dir", tree]),
        "dir-unchanged": ("plain-dir", None, ["backup", "dir", "mem/dir", tree]),
        "tar-after-dir": ("plain-dir", None, ["backup", "tar", "mem/tar", tar]),
        "tar-first": ("plain-tar", none, ["backup", "tar", "mem/tar", tar]),
        "enc-dir-first": ("enc-dir", ["init"], ["backup", "dir", "mem/dir", tree]),
        "enc-tar-first": ("enc-tar", ["init"], ["backup", "tar", "mem/tar", tar]),
        "s3-tar-first": ("s3", ["init"], ["backup", "tar", "mem/tar", tar]),
        "s3-tar-unchanged": ("s3", None, ["backup", "tar", "mem/tar", tar]),
    }
    repo_name, init, backup = table[step]
    repo = s3_url if repo_name == "s3" else str(work / repo_name)
    return (["--repo", repo, *init] if init is not None else None), ["--repo", repo, *backup, "--json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exe", action="append", default=[], metavar="NAME=COMMAND",
                    help="a dedupe command line to measure (repeatable; default: this tree's .venv/bin/dedupe)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of: {', '.join(STEPS)}")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/dedupe-mem-bench"))
    args = ap.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    for s in steps:
        if s not in STEPS:
            sys.exit(f"unknown step {s!r}; steps: {', '.join(STEPS)}")
    exes = [e.split("=", 1) for e in args.exe] or [["dedupe", str(ROOT / ".venv" / "bin" / "dedupe")]]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEDUPE_"))}
    env["DEDUPE_PASSPHRASE"] = "memory-bench"
    s3 = None
    if any(s.startswith("s3-") for s in steps):
        gw = gateway_env()
        env.update(AWS_ACCESS_KEY_ID=gw["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=gw["AWS_SECRET_ACCESS_KEY"],
                   AWS_DEFAULT_REGION="us-east-1", DEDUPE_S3_ENDPOINT=gw["S3_ENDPOINT"])
        import boto3
        s3 = boto3.client("s3", endpoint_url=gw["S3_ENDPOINT"], aws_access_key_id=gw["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=gw["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    for p in (args.corpus / "night1.tar",):  # from the page cache, like the tree after its first walk
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    load = os.getloadavg()[0]
    try:
        for rnd in range(args.rounds):
            order = exes if rnd % 2 == 0 else exes[::-1]
            for name, _ in order:
                shutil.rmtree(args.work / name, ignore_errors=True)
            buckets: dict[str, str] = {}
            for step in steps:
                for name, cmd in order:
                    work = args.work / name
                    work.mkdir(parents=True, exist_ok=True)
                    if s3 is not None and name not in buckets:
                        buckets[name] = f"mem-{secrets.token_hex(5)}"
                        s3.create_bucket(Bucket=buckets[name])
                    init, backup = step_commands(step, work, args.corpus, f"s3://{buckets.get(name, 'none')}/repo")
                    step_env = {**env, "XDG_CACHE_HOME": str(work / "cache")}
                    if init is not None:
                        subprocess.run([*cmd.split(), *init], env=step_env, check=True, stdout=subprocess.DEVNULL)
                    subprocess.run(["sync"], check=True)
                    got = run([*cmd.split(), *backup], step_env)
                    results.setdefault((step, name), []).append(got)
                    print(f"round {rnd + 1} {step:17} {name:8} wall {got[0]:6.2f} s  CPU {got[1]:6.2f} s  "
                          f"peak {got[2] / MIB:6.1f} MiB  load {os.getloadavg()[0]:.1f}", flush=True)
            if s3 is not None:
                for b in buckets.values():
                    _drop_bucket(s3, b)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    print(f"\nload (1 min) at start {load:.1f}, at end {os.getloadavg()[0]:.1f}\n")
    print("| step | dedupe | wall s (median) | CPU s (median) | peak RSS MiB (max) | per round: wall / CPU / peak |")
    print("|---|---|---:|---:|---:|---|")
    for step in steps:
        for name, _ in exes:
            rows = results[(step, name)]
            per = ", ".join(f"{w:.2f} / {c:.2f} / {r / MIB:.0f}" for w, c, r in rows)
            print(f"| {step} | {name} | {statistics.median(w for w, _, _ in rows):.2f} | "
                  f"{statistics.median(c for _, c, _ in rows):.2f} | {max(r for _, _, r in rows) / MIB:.0f} | {per} |")


if __name__ == "__main__":
    main()

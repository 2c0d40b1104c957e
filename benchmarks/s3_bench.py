"""Backup and restore throughput and S3 request counts: dedupe on a local directory,
dedupe on the S3 gateway, and restic's S3 backend on the same gateway and data.

    sudo scripts/s3-test-server.sh setup
    .venv/bin/python benchmarks/s3_bench.py [--stream FILE] [--night1 TAR --night2 TAR] [--mb N]

Defaults to the corpus of benchmarks/peers/make-corpus.py under /var/tmp/dedupe-corpus
(stream-1g.tar, night1.tar, night2.tar); without it, --mb MiB of generated data (half
random, half text). Requests are counted from the gateway's own access log (every
request of every tool, retries included), per bucket. Each tool runs as its command
line, wall clock measured around it, with its CPU seconds (user + system) and peak
RSS from wait4; inputs are read once first so that all read from the page cache.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Union

REPO = Path(__file__).resolve().parents[1]
S3_DIR = Path(os.environ.get("S3_DIR", "/var/tmp/dedupe-s3"))
CORPUS = Path("/var/tmp/dedupe-corpus")
RGW_LOG = S3_DIR / "log" / "client.rgw.x.log"
DEDUPE = [str(REPO / ".venv" / "bin" / "dedupe")]
RESTIC = ["restic"]  # --restic PATH: e.g. /opt/restic-0.18/usr/bin/restic (benchmarks/peers/install-restic-0.18.sh)
ACCESS = re.compile(r'beast: \S+ \S+ - \S+ \[[^\]]+\] "(\w+) /([^/ ?]+)')


def gateway_env() -> dict[str, str]:
    env = {}
    for line in (S3_DIR / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = v
    return env


class Requests:
    """Counts the gateway's requests for one bucket from its access log."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.offset = RGW_LOG.stat().st_size

    def take(self) -> dict[str, int]:
        with open(RGW_LOG, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
            self.offset = f.tell()
        counts: dict[str, int] = {}
        for m in ACCESS.finditer(text):
            if m.group(2) == self.bucket:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts


def run(cmd: list[str], env: dict[str, str], stdin: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one command."""
    t = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, env=env, stdin=f, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({code}): {err.read().decode()[-2000:]}")
    return secs, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def make_data(path: Path, mib: int) -> None:
    import random
    rnd = random.Random(7)
    words = [f"word{i}" for i in range(5000)]
    with open(path, "wb") as f:
        for i in range(mib):
            text = " ".join(rnd.choice(words) for _ in range(150_000)).encode()[:1 << 20]
            f.write(os.urandom(1 << 20) if i % 2 else text)


def mb_s(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e6:.0f}"


Step = tuple[str, Union[list[str], Callable[[], list[str]]], int, Union[Path, None]]  # label, command, bytes in, stdin


def bench(name: str, steps: list[Step], env: dict[str, str], bucket: str | None,
          size_of: Callable[[], int]) -> list[str]:
    rows = []
    req = Requests(bucket) if bucket else None
    stored = size_of()
    for label, cmd, nbytes, stdin in steps:
        if callable(cmd):
            cmd = cmd()  # (runs `dedupe list` to find the backup: not the step's requests)
            if req:
                req.take()
        secs, cpu, rss = run(cmd, env, stdin)
        counts = req.take() if req else {}
        now = size_of()
        if req:
            req.take()  # the listing size_of just made is the benchmark's, not the tool's
        total = sum(counts.values())
        per_gb = f"{total / (nbytes / 1e9):.0f}" if req else "-"
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if req else "-"
        rows.append(f"| {name} | {label} | {nbytes / 1e6:.0f} | {secs:.1f} | {mb_s(nbytes, secs)} | {cpu:.1f} | "
                    f"{rss / 1024:.0f} | {(now - stored) / 1e6:.1f} | {total if req else '-'} | {per_gb} | {detail} |")
        stored = now
        print(rows[-1], flush=True)
    return rows


def dedupe_restore(repo: str, env: dict[str, str], out: Path) -> Callable[[], list[str]]:
    d = DEDUPE + ["--repo", repo]

    def restore_latest() -> list[str]:
        import json
        rows = json.loads(subprocess.run(d + ["list", "--group", "bench", "--json"], env=env, check=True,
                                         capture_output=True).stdout)
        return d + ["restore", rows[-1]["id"], "--to-file", str(out)]

    return restore_latest


def dedupe_steps(repo: str, env: dict[str, str], stream: Path, nights: list[Path], out: Path) -> list[Step]:
    d = DEDUPE + ["--repo", repo]
    size = stream.stat().st_size
    steps: list[Step] = [("backup, first", d + ["backup", "stream", "bench", "-"], size, stream),
                         ("backup, same data again", d + ["backup", "stream", "bench", "-"], size, stream),
                         ("restore", dedupe_restore(repo, env, out), size, None)]
    steps += [(f"tar, night {i}", d + ["backup", "tar", "lxd/default/instance/c1", str(n)], n.stat().st_size, None)
              for i, n in enumerate(nights, 1)]
    return steps


def restic_restore(repo: str, stream: Path, out: Path) -> list[str]:
    return [*RESTIC, "-r", repo, "restore", "latest", "--path", str(stream.resolve()), "--target", str(out)]


def restic_steps(repo: str, stream: Path, nights: list[Path], out: Path) -> list[Step]:
    r = [*RESTIC, "-r", repo]
    size = stream.stat().st_size
    steps: list[Step] = [("backup, first", r + ["backup", "-q", str(stream)], size, None),
                         ("backup, same data again", r + ["backup", "-q", str(stream)], size, None),
                         ("restore", restic_restore(repo, stream, out), size, None)]
    steps += [(f"tar, night {i}", r + ["backup", "-q", str(n)], n.stat().st_size, None)
              for i, n in enumerate(nights, 1)]
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stream", type=Path, default=CORPUS / "stream-1g.tar")
    ap.add_argument("--night1", type=Path, default=CORPUS / "night1.tar")
    ap.add_argument("--night2", type=Path, default=CORPUS / "night2.tar")
    ap.add_argument("--mb", type=int, default=512, help="MiB to generate when the corpus is missing")
    ap.add_argument("--skip-restic", action="store_true")
    ap.add_argument("--restic", default="restic", help="the restic to compare with (default: restic on PATH)")
    ap.add_argument("--restores", type=int, default=5,
                    help="then restore the stream this many more times, the tools taking turns (median, range)")
    args = ap.parse_args()
    RESTIC[:] = [args.restic]

    gw = gateway_env()
    import boto3
    s3 = boto3.client("s3", endpoint_url=gw["S3_ENDPOINT"], aws_access_key_id=gw["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=gw["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    work = Path(tempfile.mkdtemp(prefix="s3-bench-", dir="/var/tmp"))
    stream = args.stream
    if not stream.exists():
        stream = work / "generated.bin"
        make_data(stream, args.mb)
    nights = [p for p in (args.night1, args.night2) if p.exists()]
    for p in [stream, *nights]:
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEDUPE_"))}
    env = {**base_env, "AWS_ACCESS_KEY_ID": gw["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": gw["AWS_SECRET_ACCESS_KEY"],
           "AWS_DEFAULT_REGION": "us-east-1", "DEDUPE_S3_ENDPOINT": gw["S3_ENDPOINT"],
           "DEDUPE_PASSPHRASE": "bench", "DEDUPE_INSECURE_TEST_KDF": "1", "XDG_CACHE_HOME": str(work / "cache"),
           "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(work / "restic-cache")}
    rows = ["| tool | step | MB in | seconds | MB/s | CPU s | peak RSS MB | MB stored | requests | requests/GB "
            "| by method |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]

    def bucket_size(bucket: str) -> Callable[[], int]:
        return lambda: sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                           for o in page.get("Contents", []))

    def dir_size(path: Path) -> Callable[[], int]:
        return lambda: sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    buckets = []
    try:
        local = work / "local-repo"
        subprocess.run(DEDUPE + ["--repo", str(local), "init"], env=env, check=True, capture_output=True)
        rows += bench("dedupe local", dedupe_steps(str(local), env, stream, nights, work / "out"), env, None,
                      dir_size(local))
        (work / "out").unlink(missing_ok=True)
        bucket = f"bench-dedupe-{os.urandom(3).hex()}"
        buckets.append(bucket)
        url = f"s3://{bucket}/repo"
        subprocess.run(DEDUPE + ["--repo", url, "init"], env=env, check=True, capture_output=True)
        rows += bench("dedupe s3", dedupe_steps(url, env, stream, nights, work / "out"), env, bucket,
                      bucket_size(bucket))
        restores = [("dedupe local", dedupe_restore(str(local), env, work / "out")(), None, work / "out"),
                    ("dedupe s3", dedupe_restore(url, env, work / "out")(), bucket, work / "out")]
        (work / "out").unlink(missing_ok=True)
        if not args.skip_restic and shutil.which(RESTIC[0]):
            rbucket = f"bench-restic-{os.urandom(3).hex()}"
            buckets.append(rbucket)
            s3.create_bucket(Bucket=rbucket)
            rrepo = f"s3:{gw['S3_ENDPOINT']}/{rbucket}/repo"
            subprocess.run([*RESTIC, "-r", rrepo, "init"], env=env, check=True, capture_output=True)
            rows += bench("restic s3", restic_steps(rrepo, stream, nights, work / "restic-out"), env, rbucket,
                          bucket_size(rbucket))
            restores.append(("restic s3", restic_restore(rrepo, stream, work / "restic-out"), rbucket,
                             work / "restic-out"))
        rows += repeated_restores(restores, args.restores, env, stream.stat().st_size)
    finally:
        for b in buckets:
            _drop_bucket(s3, b)
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(rows))


def repeated_restores(tools: list[tuple[str, list[str], str | None, Path]], n: int, env: dict[str, str],
                      nbytes: int) -> list[str]:
    """Each tool's restore ``n`` times, in turns (so that load from elsewhere hits all
    alike): median wall time and its MB/s, the range of MB/s, median CPU, highest peak
    RSS, requests of one run."""
    if n <= 0:
        return []
    runs: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name, *_ in tools}
    for _ in range(n):
        for name, cmd, bucket, out in tools:
            if out.is_dir():
                shutil.rmtree(out)
            out.unlink(missing_ok=True)
            req = Requests(bucket) if bucket else None
            secs, cpu, rss = run(cmd, env)
            runs[name].append((secs, cpu, rss, sum(req.take().values()) if req else 0))
    rows = []
    for name, rs in runs.items():
        secs = statistics.median(r[0] for r in rs)
        speeds = sorted(nbytes / r[0] / 1e6 for r in rs)
        reqs = rs[-1][3]
        remote = any(t[0] == name and t[2] for t in tools)
        rows.append(f"| {name} | restore, median of {len(rs)} ({speeds[0]:.0f}-{speeds[-1]:.0f} MB/s) | "
                    f"{nbytes / 1e6:.0f} | {secs:.1f} | {mb_s(nbytes, secs)} | "
                    f"{statistics.median(r[1] for r in rs):.1f} | {max(r[2] for r in rs) / 1024:.0f} | 0.0 | "
                    f"{reqs if remote else '-'} | {f'{reqs / (nbytes / 1e9):.0f}' if remote else '-'} | - |")
        print(rows[-1], flush=True)
    if "dedupe s3" in runs and "restic s3" in runs:  # each round ran both back to back: its ratio sees one machine
        per_round = [r[0] / d[0] for d, r in zip(runs["dedupe s3"], runs["restic s3"])]
        line = (f"restore on S3, restic's time / dedupe's, per round: {', '.join(f'{x:.2f}' for x in per_round)} "
                f"(median {statistics.median(per_round):.2f}); peak RSS dedupe "
                f"{max(r[2] for r in runs['dedupe s3']) / 1024:.0f} MB, restic {max(r[2] for r in runs['restic s3']) / 1024:.0f} MB")
        print(line, flush=True)
        rows.append("")
        rows.append(line)
    return rows


def _drop_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark: ``dedupe backup lxd`` reading the pool directly vs through LXD's export
vs restic 0.18 on the same pool directories (issue #14), side by side in one run.

For each pool (the ``dir`` pool ``default`` and the loop-file ``btrfs`` pool of
scripts/lxd-test-server.sh) a container is built from a real Debian root file system
(``make-corpus.py --large``'s ``rootfs-night1``; never started: the corpus has no init,
so its ids stay unshifted) and snapshotted. Each round, for each pool in turn, empty
repositories and three nights, each tool in turn (the order rotates by round, so none
always runs on the coldest or warmest cache):

  night 1    first backup into empty repositories (the rootfs put back to
             ``rootfs-night1`` first, untimed)
  unchanged  the same again
  changed    after ``rsync`` of ``rootfs-night2`` (about 2% of the files changed) into
             the container's rootfs

The 1-minute load average is recorded before each run; medians over the rounds and
each round's own ratios are printed as Markdown.

Tools: ``dedupe-direct`` (``backup lxd --via direct``), ``dedupe-export`` (``--via
export``), ``restic`` (``restic backup`` of ``containers/<dir>`` and
``containers-snapshots/<dir>``; its repository unencrypted-equivalent settings are its
defaults: restic always encrypts, so dedupe's repositories are encrypted too). Each
command runs under ``/usr/bin/time -v``: wall time and peak RSS. New data: dedupe's
``new_bytes``/``new_stored``, restic's ``data_added`` (stored, compressed). Prints a
table and the ratios the issue asks for, and writes them as JSON.

Usage (as root, LXD running, the corpus built, restic fetched):

    python3 benchmarks/peers/make-corpus.py --large --no-ratio   # /var/tmp/dedupe-corpus-large
    python3 benchmarks/lxd_direct.py --rounds 3

Uses only the standard library (runs with the system python3); dedupe from ``.venv``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEDUPE = str(REPO / ".venv" / "bin" / "dedupe")
RESTIC = "/opt/restic-0.18/usr/bin/restic"
PROJECT = "dedupe-bench"
LXD_DIR = Path(os.environ.get("LXD_DIR", "/var/lib/lxd"))
PASSPHRASE = "benchmark passphrase"


def sh(*cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def lxc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("lxc", "--project", PROJECT, *args, check=check)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of a command under GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", t.name, *cmd], capture_output=True, text=True, env=env)
        wall = time.monotonic() - start
        if p.returncode not in (0, 3):
            raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t.read()).group(1)) * 1024  # type: ignore[union-attr]
    return wall, rss, p.stdout


def setup_container(pool: str, rootfs: Path) -> tuple[str, list[Path]]:
    """A container on ``pool`` holding ``rootfs``, with one
    snapshot; returns its name and the pool directories restic reads."""
    name = f"bench-{pool}"
    if lxc("info", name, check=False).returncode != 0:
        lxc("init", "tiny", name, "-s", pool)
        target = LXD_DIR / "storage-pools" / pool / "containers" / f"{PROJECT}_{name}" / "rootfs"
        sh("rsync", "-aHAX", "--numeric-ids", "--delete", f"{rootfs}/", f"{target}/")
        lxc("snapshot", name, "snap0")
    dirs = [LXD_DIR / "storage-pools" / pool / "containers" / f"{PROJECT}_{name}",
            LXD_DIR / "storage-pools" / pool / "containers-snapshots" / f"{PROJECT}_{name}"]
    return name, dirs


def change_night(pool: str, name: str, night2: Path) -> None:
    """About 2% of the files changed: rsync the night-2 tree over the rootfs."""
    target = LXD_DIR / "storage-pools" / pool / "containers" / f"{PROJECT}_{name}" / "rootfs"
    sh("rsync", "-aHAX", "--numeric-ids", "--delete", f"{night2}/", f"{target}/")


def run_tool(tool: str, pool: str, name: str, dirs: list[Path], repos: Path) -> dict[str, Any]:
    env = {**os.environ, "DEDUPE_PASSPHRASE": PASSPHRASE, "RESTIC_PASSWORD": PASSPHRASE,
           "XDG_CACHE_HOME": str(repos / "cache")}
    repo = repos / f"{tool}-{pool}"
    if tool.startswith("dedupe"):
        env["DEDUPE_REPO"] = str(repo)
        if not repo.exists():
            sh(DEDUPE, "init", env=env)
        via = tool.split("-", 1)[1]
        wall, rss, out = timed([DEDUPE, "backup", "lxd", name, "--project", PROJECT, "--only", "instances",
                                "--via", via, "--json"], env)
        obj = next(o for o in json.loads(out)["objects"] if o["kind"] == "instance")
        assert obj["via"] == via, obj
        return {"wall": wall, "rss": rss, "new": obj["new_bytes"], "new_stored": obj["new_stored"],
                "size": obj["size"]}
    env["RESTIC_REPOSITORY"] = str(repo)
    if not repo.exists():
        sh(RESTIC, "init", env=env)
    wall, rss, out = timed([RESTIC, "backup", "--json", "--no-scan", *map(str, dirs)], env)
    summary = next(json.loads(line) for line in out.splitlines() if '"message_type":"summary"' in line)
    return {"wall": wall, "rss": rss, "new": summary.get("data_added", 0),
            "new_stored": summary.get("data_added_packed", summary.get("data_added", 0)),
            "size": summary.get("total_bytes_processed", 0)}


def reset_night1(pool: str, name: str, night1: Path) -> None:
    change_night(pool, name, night1)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


TOOLS = ["dedupe-direct", "dedupe-export", "restic"]
NIGHTS = ["night1", "unchanged", "changed"]
# the targets of issue #14 item 7: (night, tool, against) -> at most this ratio of wall times
TARGETS = {("unchanged", "dedupe-direct", "restic"): 0.5, ("changed", "dedupe-direct", "restic"): 0.5,
           ("night1", "dedupe-direct", "dedupe-export"): 0.5}


def report(runs: list[dict[str, Any]]) -> str:
    """Markdown: the median of each (pool, night, tool), then each round's ratios."""
    out = ["| pool | night | tool | wall s (median) | per round | peak RSS MiB (max) | new MiB (stored) | "
           "load (1 min) |", "|---|---|---|---:|---|---:|---|---|"]
    pools = sorted({r["pool"] for r in runs}, key=lambda x: (x != "default", x))
    for pool in pools:
        for night in NIGHTS:
            for tool in TOOLS:
                rs = [r for r in runs if (r["pool"], r["night"], r["tool"]) == (pool, night, tool)]
                if not rs:
                    continue
                walls = ", ".join(f"{r['wall']:.2f}" for r in rs)
                loads = ", ".join(f"{r['load']:.1f}" for r in rs)
                out.append(f"| {pool} | {night} | {tool} | {median([r['wall'] for r in rs]):.2f} | {walls} | "
                           f"{max(r['rss'] for r in rs) / 2**20:.0f} | "
                           f"{median([r['new'] for r in rs]) / 2**20:.1f} ({median([r['new_stored'] for r in rs]) / 2**20:.1f}) | "
                           f"{loads} |")
    out += ["", "| pool | ratio | target | median of the rounds' ratios | per round | met |", "|---|---|---:|---:|---|---|"]
    for pool in pools:
        for (night, tool, against), target in TARGETS.items():
            ratios = []
            for rnd in sorted({r["round"] for r in runs}):
                a = [r["wall"] for r in runs if (r["pool"], r["night"], r["tool"], r["round"]) == (pool, night, tool, rnd)]
                b = [r["wall"] for r in runs if (r["pool"], r["night"], r["tool"], r["round"]) == (pool, night, against, rnd)]
                if a and b:
                    ratios.append(a[0] / b[0])
            if ratios:
                m = median(ratios)
                out.append(f"| {pool} | {night}: {tool} / {against} | {target} | {m:.2f} | "
                           f"{', '.join(f'{x:.2f}' for x in ratios)} | {'yes' if m <= target else 'no'} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/var/tmp/dedupe-corpus-large"))
    ap.add_argument("--pools", default="default,btrfs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--export-nights", default="night1",
                    help="nights the export path runs (it only has a target on night 1, and a 4 GB "
                         "export takes a minute a night)")
    ap.add_argument("--nights", default=",".join(NIGHTS),
                    help="nights reported (targeted A/B runs, e.g. unchanged,changed): the others "
                         "still run, to bring the repositories to that state, but untimed and "
                         "without the export path")
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/ddx-bench"))
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default: WORK/results.json)")
    args = ap.parse_args()
    if sh("lxc", "project", "show", PROJECT, check=False).returncode != 0:
        sh("lxc", "project", "create", PROJECT, "-c", "features.images=false", "-c", "features.profiles=false")
    tools = args.tools.split(",")
    out = args.out or args.work / "results.json"
    results: dict[str, Any] = {"command": " ".join(sys.argv), "runs": []}
    containers = {pool: setup_container(pool, args.corpus / "rootfs-night1") for pool in args.pools.split(",")}
    for rnd in range(args.rounds):
        for pool, (name, dirs) in containers.items():
            repos = args.work / pool
            shutil.rmtree(repos, ignore_errors=True)
            repos.mkdir(parents=True)
            reset_night1(pool, name, args.corpus / "rootfs-night1")
            for night in NIGHTS:
                if night == "changed":
                    change_night(pool, name, args.corpus / "rootfs-night2")
                order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
                timed_night = night in args.nights.split(",")
                for tool in order:
                    if tool == "dedupe-export" and (night not in args.export_nights.split(",") or not timed_night):
                        continue
                    load = load1()
                    m = run_tool(tool, pool, name, dirs, repos)
                    if not timed_night:
                        continue
                    m.update(pool=pool, night=night, tool=tool, round=rnd, load=load)
                    results["runs"].append(m)
                    print(f"round {rnd} {pool:8} {night:10} {tool:14} {m['wall']:7.2f} s  {m['rss'] / 2**20:6.0f} MiB  "
                          f"new {m['new'] / 2**20:8.1f} MiB ({m['new_stored'] / 2**20:.1f} stored)  load {load:.1f}",
                          flush=True)
            out.write_text(json.dumps(results, indent=2))
    results["report"] = report(results["runs"])
    out.write_text(json.dumps(results, indent=2))
    print(results["report"])
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

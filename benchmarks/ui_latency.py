"""How fast ``dedupe ui`` answers on a large repository (issue #19: every page within
300 ms on 2,000 backups and 10^6 chunks), and how much memory the server holds.

Make the repository first (about 2,100 backups, 10^6 chunks; minutes):

    DEDUPE_PASSPHRASE=bench XDG_CACHE_HOME=/tmp/uibench/cache \\
      .venv/bin/python benchmarks/ui_repo.py /tmp/uibench/repo --instances 40 --nights 50 --files 20 \\
        --shared-kib 16 --synthetic-chunks 950000

then measure (start-up, each page cold and warm, the server's RSS):

    DEDUPE_PASSPHRASE=bench XDG_CACHE_HOME=/tmp/uibench/cache \\
      .venv/bin/python benchmarks/ui_latency.py /tmp/uibench/repo

Each page is fetched once cold (the first request after start, or after a new backup
for the per-backup pages) and then ``--repeat`` times; the table gives the median and
the maximum of the warm requests. Pages are fetched one after another, as a user does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fetch(url: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
        status = r.status
    return (time.perf_counter() - t) * 1000, status, len(body)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", type=Path)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--port", type=int, default=8767)
    a = ap.parse_args()
    env = {**os.environ, "DEDUPE_REPO": str(a.repo)}
    listed = json.loads(subprocess.run([sys.executable, "-m", "dedupe", "list", "--json"], env=env,
                                       capture_output=True, check=True).stdout)
    backups = len(listed)
    tar = next(b for b in reversed(listed) if b["kind"] == "tar")
    base = f"http://127.0.0.1:{a.port}"
    started = time.perf_counter()
    ui = subprocess.Popen([sys.executable, "-m", "dedupe", "ui", "--listen", f"127.0.0.1:{a.port}"], env=env,
                          stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                fetch(base + "/favicon.ico")
                break
            except OSError:
                time.sleep(0.05)
        ready = time.perf_counter() - started
        print(f"repository: {backups} backups; server answering after {ready:.1f} s, RSS {rss_mib(ui.pid):.0f} MiB")
        group = tar["group"].replace("/", "%2F")
        pages = [("overview", "/"), ("groups", "/groups"), ("group (50 backups)", f"/group?name={group}"),
                 ("runs", "/runs"), ("backup page with its file list", f"/backup/{tar['id']}"),
                 ("browse 2 levels down", f"/backup/{tar['id']}/browse?path=backup/container/rootfs/var/lib"),
                 ("download one file", f"/backup/{tar['id']}/file?path=backup/container/rootfs/etc/hostname"),
                 ("diff with the previous", f"/backup/{tar['id']}/diff")]
        print("| page | cold ms | warm median ms | warm max ms |")
        print("|---|---:|---:|---:|")
        for label, path in pages:
            cold, status, _ = fetch(base + path)
            assert status == 200, (path, status)
            warm = [fetch(base + path)[0] for _ in range(a.repeat)]
            print(f"| {label} | {cold:.0f} | {statistics.median(warm):.0f} | {max(warm):.0f} |")
        t = time.perf_counter()
        while True:
            try:
                _, status, _ = fetch(base + "/metrics")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        print(f"stats (every item stream read, in the background) done {time.perf_counter() - t:.0f} s after the "
              f"page runs; RSS {rss_mib(ui.pid):.0f} MiB")
        for label, path in pages[:2]:
            warm = [fetch(base + path)[0] for _ in range(a.repeat)]
            print(f"| {label}, stats computed | | {statistics.median(warm):.0f} | {max(warm):.0f} |")
        before = rss_mib(ui.pid)
        trees = [b for b in listed if b["kind"] == "tar"][-200:]
        t = time.perf_counter()
        for b in trees:  # 200 different backups opened and browsed: only the last two trees are kept
            fetch(base + f"/backup/{b['id']}")
            fetch(base + f"/backup/{b['id']}/browse?path=backup/container/rootfs/etc")
        each = (time.perf_counter() - t) * 1000 / len(trees)
        print(f"200 backups opened and browsed, {each:.0f} ms each (both pages, cold): RSS {before:.0f} -> "
              f"{rss_mib(ui.pid):.0f} MiB")
        print(f"server RSS at the end: {rss_mib(ui.pid):.0f} MiB")
    finally:
        ui.terminate()
        ui.wait()


if __name__ == "__main__":
    main()

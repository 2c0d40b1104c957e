#!/usr/bin/env python3
"""Reading through `dedupe mount` beside `restic mount`, on the same data (issue #17).

Data: a 1 GiB file (the first GiB of the corpus's night1.tar: a real root file system's
bytes, compressible as such) and the tree rootfs-night1 (~35k files, ~2 GB). Each tool
backs up a directory holding the file and the tree (dedupe encrypted, as restic always
is; each tool's default chunker and compression), then for each measurement the
repository is mounted afresh (nothing in the mount's caches) and read:

  ttfb_file     open the 1 GiB file and read its first byte (after the mount answers)
  file          read the whole file in 1 MiB reads: seconds and MB/s
  ttfb_tree     from the mount answering to the first byte of the first file of the tree
  tree          read every file of the tree (os.walk order): seconds, MB/s, files/s

and the mount process's peak RSS after each.

The repositories' files are in the page cache (warm), as after the backups; the machine is
shared, so the CPU seconds others used meanwhile are printed too. Standard library only.

  python3 benchmarks/peers/mount_bench.py --scratch /var/tmp/dd-files-bench \\
      --dedupe .venv/bin/dedupe --restic /opt/restic-0.18/usr/bin/restic
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

CORPUS = Path("/var/tmp/dedupe-corpus-large")
PASSWORD = "bench-password"
READ = 1 << 20


def cpu_others() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2]) / os.sysconf("SC_CLK_TCK")


def prepare(scratch: Path) -> Path:
    data = scratch / "data"
    if (data / "done").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    with open(CORPUS / "night1.tar", "rb") as src, open(data / "big-1g", "wb") as dst:
        left = 1 << 30
        while left:
            block = src.read(min(left, 8 << 20))
            dst.write(block)
            left -= len(block)
    subprocess.run(["cp", "-a", str(CORPUS / "rootfs-night1"), str(data / "tree")], check=True)
    (data / "done").write_text("")
    return data


class Tool:
    name = ""

    def __init__(self, exe: str, scratch: Path) -> None:
        self.exe, self.repo = exe, scratch / f"{self.name}-repo"
        self.env = {**os.environ}

    def mount_cmd(self, mp: Path) -> list[str]:
        raise NotImplementedError

    def root(self, mp: Path, data: Path) -> Path:
        raise NotImplementedError


class Dedupe(Tool):
    name = "dedupe"

    def __init__(self, exe: str, scratch: Path) -> None:
        super().__init__(exe, scratch)
        self.env.update(DEDUPE_REPO=str(self.repo), DEDUPE_PASSPHRASE=PASSWORD)

    def backup(self, data: Path) -> None:
        if not self.repo.exists():
            subprocess.run([self.exe, "init"], env=self.env, check=True, capture_output=True)
            subprocess.run([self.exe, "backup", "dir", "bench", str(data), "--quiet"], env=self.env, check=True)

    def mount_cmd(self, mp: Path) -> list[str]:
        return [self.exe, "mount", str(mp), "--quiet"]

    def root(self, mp: Path, data: Path) -> Path:
        return mp / "by-group" / "bench" / "latest"


class Restic(Tool):
    name = "restic"

    def __init__(self, exe: str, scratch: Path) -> None:
        super().__init__(exe, scratch)
        self.env.update(RESTIC_REPOSITORY=str(self.repo), RESTIC_PASSWORD=PASSWORD)

    def backup(self, data: Path) -> None:
        if not self.repo.exists():
            subprocess.run([self.exe, "init", "--repository-version", "2"], env=self.env, check=True,
                           capture_output=True)
            subprocess.run([self.exe, "backup", str(data), "--quiet"], env=self.env, check=True)

    def mount_cmd(self, mp: Path) -> list[str]:
        return [self.exe, "mount", str(mp), "--no-lock"]

    def root(self, mp: Path, data: Path) -> Path:
        return mp / "snapshots" / "latest" / str(data).lstrip("/")


class Mounted:
    def __init__(self, tool: Tool, mp: Path) -> None:
        self.tool, self.mp = tool, mp

    def __enter__(self) -> float:
        self.mp.mkdir(exist_ok=True)
        self.p = subprocess.Popen(self.tool.mount_cmd(self.mp), env=self.tool.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while True:
            if os.path.ismount(self.mp):
                try:
                    os.listdir(self.mp)
                    return time.monotonic() - t0
                except OSError:
                    pass
            if self.p.poll() is not None or time.monotonic() - t0 > 120:
                raise SystemExit(f"{self.tool.name} mount did not come up")
            time.sleep(0.01)

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def __exit__(self, *exc: Any) -> None:
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
        if os.path.ismount(self.mp):
            subprocess.run(["umount", "-l", str(self.mp)], check=False)


def wait_path(p: Path) -> None:
    deadline = time.monotonic() + 60
    while not p.exists():  # restic builds its snapshot directories in the background
        if time.monotonic() > deadline:
            raise SystemExit(f"{p} did not appear")
        time.sleep(0.01)


def read_file(path: Path) -> tuple[float, float, int]:
    t0 = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        first = f.read(1)
        ttfb = time.monotonic() - t0
        n = len(first)
        while block := f.read(READ):
            n += len(block)
    return ttfb, time.monotonic() - t0, n


def read_tree(root: Path) -> tuple[float, float, int, int]:
    t0 = time.monotonic()
    ttfb = None
    files = total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            with open(p, "rb", buffering=0) as f:
                while block := f.read(READ):
                    if ttfb is None:
                        ttfb = time.monotonic() - t0
                    total += len(block)
            files += 1
    return ttfb or 0.0, time.monotonic() - t0, total, files


def measure(tool: Tool, data: Path, mp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    others0 = cpu_others()
    m = Mounted(tool, mp)
    with m as up:
        out["mount_s"] = round(up, 3)
        root = tool.root(mp, data)
        wait_path(root / "big-1g")
        ttfb, secs, n = read_file(root / "big-1g")
        out.update(ttfb_file_ms=round(ttfb * 1000, 1), file_s=round(secs, 2), file_mb_s=round(n / secs / 1e6, 1),
                   file_peak_rss_mib=m.peak_rss_mib())
    m = Mounted(tool, mp)
    with m:
        root = tool.root(mp, data)
        wait_path(root / "tree")
        ttfb, secs, n, files = read_tree(root / "tree")
        out.update(ttfb_tree_ms=round(ttfb * 1000, 1), tree_s=round(secs, 2), tree_mb_s=round(n / secs / 1e6, 1),
                   tree_files_s=round(files / secs), tree_files=files, tree_bytes=n,
                   tree_peak_rss_mib=m.peak_rss_mib())
    out["cpu_s_all"] = round(cpu_others() - others0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp/dd-files-bench"))
    ap.add_argument("--dedupe", default="dedupe")
    ap.add_argument("--restic", default="restic")
    ap.add_argument("--tools", default="dedupe,restic")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    data = prepare(args.scratch)
    tools = {"dedupe": Dedupe(args.dedupe, args.scratch), "restic": Restic(args.restic, args.scratch)}
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.tools.split(","):
        tools[name].backup(data)
    for _ in range(args.repeat):
        for name in args.tools.split(","):
            r = measure(tools[name], data, args.scratch / f"mnt-{name}")
            results.setdefault(name, []).append(r)
            print(json.dumps({"tool": name, **r}), flush=True)


if __name__ == "__main__":
    main()

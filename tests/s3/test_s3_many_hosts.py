"""Many hosts, one S3 repository: clients with their own host name (a UTS namespace
each, as root) and cache back up at the same time; every backup is valid, shared
content is stored once from the next night on; locks race through conditional
creates and never overlap where they must not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path


from conftest import CLI, RunCli
from s3.gateway import Gateway
from dedupe import locking
from dedupe.storage.s3 import S3Storage, parse_location

HOSTS = 4
BASE = 12 << 20  # what every host has (a base image)
OWN = 3 << 20  # what only one host has


def _host_cmd(host: str, args: list[str]) -> list[str]:
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *args]
    return args  # not root: one host name for all; the caches still differ


def _backup_all(s3_url: str, tmp_path: Path, streams: dict[str, bytes]) -> dict[str, dict[str, object]]:
    procs = {}
    for host, data in streams.items():
        env = {**os.environ, "DEDUPE_REPO": s3_url, "XDG_CACHE_HOME": str(tmp_path / f"cache-{host}")}
        procs[host] = subprocess.Popen(_host_cmd(host, [*CLI, "backup", "stream", f"lxd/{host}/image", "-", "--json"]),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    outs: dict[str, dict[str, object]] = {}

    def feed(host: str) -> None:
        out, err = procs[host].communicate(streams[host])
        assert procs[host].returncode == 0, err.decode()
        outs[host] = json.loads(out)

    feeders = [threading.Thread(target=feed, args=(h,)) for h in procs]  # all streams at once
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    assert set(outs) == set(streams)
    return outs


def _duplicates(s3_url: str) -> tuple[int, int]:
    """(stored bytes of distinct chunks, stored bytes of extra copies of chunks)."""
    from dedupe import api
    repo = api.open_repo(s3_url)
    copies: dict[bytes, list[int]] = {}
    for name in repo.segments:
        for rec in repo.load_segment(name).packs:
            for e in rec.entries:
                copies.setdefault(e.chunk_id, []).append(e.length)
    return sum(v[0] for v in copies.values()), sum(sum(v[1:]) for v in copies.values())


def test_hosts_back_up_at_once(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    dedupe("init")
    base = os.urandom(BASE)
    hosts = [f"host-{i}" for i in range(HOSTS)]
    night1 = {h: base + os.urandom(OWN) for h in hosts}
    first = _backup_all(s3_url, tmp_path, night1)
    unique1, dup1 = _duplicates(s3_url)
    # Backups that overlap in time cannot see each other's new chunks (FORMAT.md 7.2):
    # on the first night the shared part may be stored up to once per host.
    print(f"night 1: {HOSTS} hosts at once, {unique1} bytes of distinct chunks, {dup1} bytes of extra copies")
    assert dup1 <= (HOSTS - 1) * BASE * 1.01

    night2 = {h: base + os.urandom(OWN) for h in hosts}
    second = _backup_all(s3_url, tmp_path, night2)
    unique2, dup2 = _duplicates(s3_url)
    print(f"night 2: {unique2 - unique1} bytes of new distinct chunks, {dup2 - dup1} bytes of new extra copies")
    # From the next night on, shared content is stored once: only each host's own data
    # (and the chunk where it meets the shared part) is new.
    assert dup2 == dup1
    assert all(int(str(second[h]["new_bytes"])) <= OWN + (4 << 20) + 100_000 for h in hosts)

    # Every backup is valid.
    rows = json.loads(dedupe("list", "--json").stdout)
    assert len(rows) == 2 * HOSTS
    if os.geteuid() == 0:
        assert {r["host"] for r in rows} == set(hosts)
    for h in hosts:
        assert dedupe("restore", str(first[h]["id"]), "--stdout").stdout == night1[h]
        assert dedupe("restore", str(second[h]["id"]), "--stdout").stdout == night2[h]
    assert json.loads(dedupe("check", "--read-data", "--json").stdout)["ok"]


def test_exclusive_locks_never_overlap(gateway: Gateway, s3_url: str) -> None:
    """Hosts racing for the exclusive lock (gc) and shared locks (backups) through
    conditional creates: an exclusive holder overlaps nothing."""
    held: list[tuple[str, float, float]] = []
    mutex = threading.Lock()

    def worker(i: int) -> None:
        storage = S3Storage(parse_location(s3_url), endpoint=gateway.endpoint)
        exclusive = i % 3 == 0
        for _ in range(3):
            with locking.acquire(storage, exclusive=exclusive, purpose="test", wait_s=120):
                t0 = time.monotonic()
                time.sleep(0.05)
                t1 = time.monotonic()
            with mutex:
                held.append(("x" if exclusive else "s", t0, t1))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(held) == 18
    for kind, a0, a1 in held:
        if kind != "x":
            continue
        for other in held:
            if other == (kind, a0, a1):
                continue
            _, b0, b1 = other
            assert a1 <= b0 or b1 <= a0, f"exclusive lock overlapped: {(a0, a1)} vs {other}"
    assert list(S3Storage(parse_location(s3_url), endpoint=gateway.endpoint).list("locks")) == []


def test_gc_beside_backups(dedupe: RunCli, gateway: Gateway, bucket: str, s3_url: str, tmp_path: Path) -> None:
    """Backups keep running while another host forgets a backup and runs gc: all the
    backups that remain restore, and the repository checks clean."""
    dedupe("init")
    keep = os.urandom(6 << 20)
    old = json.loads(dedupe("backup", "stream", "old", "-", "--json", input=os.urandom(6 << 20)).stdout)
    dedupe("backup", "stream", "keep", "-", input=keep)
    env = {**os.environ, "DEDUPE_REPO": s3_url, "XDG_CACHE_HOME": str(tmp_path / "gc-host")}
    streams = {f"h{i}": keep[: 3 << 20] + os.urandom(4 << 20) for i in range(2)}
    results: dict[str, dict[str, object]] = {}
    t = threading.Thread(target=lambda: results.update(_backup_all(s3_url, tmp_path, streams)))
    t.start()
    forget = subprocess.run(_host_cmd("gc-host", [*CLI, "forget", str(old["id"])]), env=env, capture_output=True)
    gc = subprocess.run(_host_cmd("gc-host", [*CLI, "gc"]), env=env, capture_output=True)
    t.join()
    assert forget.returncode == 0, forget.stderr.decode()
    assert gc.returncode == 0, gc.stderr.decode()
    rows = json.loads(dedupe("list", "--json").stdout)
    assert {r["group"] for r in rows} == {"keep", "lxd/h0/image", "lxd/h1/image"}
    for h, data in streams.items():
        assert dedupe("restore", str(results[h]["id"]), "--stdout").stdout == data
    assert json.loads(dedupe("check", "--read-data", "--json").stdout)["ok"]

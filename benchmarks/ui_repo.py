"""Make a repository that looks like months of nightly ``backup lxd`` runs, for the web
UI's latency measurement (benchmarks/ui_latency.py) and its screenshots.

Each night, each instance of an LXD server gets a tar backup laid out as LXD's export
(``backup/container/rootfs/...`` and a snapshot) in one run; a few config records and
the database dump are stream backups of the same run. Backup times are set to past
nights (the session's clock is moved back: only a generator may do this). ``--files N`` adds N small files of their own to every instance backup,
each a chunk of its own, to reach a large index (2,000 backups x 500 files = 10^6
chunks), and ``--synthetic-chunks N`` that many index entries without making them
(a large index in seconds instead of an hour on two cores). Some runs are recorded with a failed object, one instance stops being
backed up three days before the end (a stale series), a prune policy and a check
are recorded.

    python benchmarks/ui_repo.py /tmp/ui-bench --instances 40 --nights 50 --files 20 --shared-kib 16 --synthetic-chunks 950000
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dedupe import api
from dedupe.backup import session as session_module  # the module whose clock a BackupSession reads
from dedupe.backup.session import new_run_id
from dedupe.locking import locked
from dedupe.backup.stream import backup_stream
from dedupe.backup.tar import backup_tar

SERVER = {"server_name": "lxd1", "version": "5.0.2", "api_version": "1.0",
          "endpoint": "unix:///var/lib/lxd/unix.socket", "certificate_fingerprint": "9f2c..."}
DAY = 86400


@contextmanager
def back_in_time(when: float) -> Iterator[None]:
    """The backup session's clock starts at ``when`` (its duration stays real)."""
    offset = time.time_ns() - int(when * 1e9)

    class Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def time_ns(self) -> int:
            return time.time_ns() - offset

    saved, session_module.time = session_module.time, Clock()  # type: ignore[assignment]
    try:
        yield
    finally:
        session_module.time = saved


def instance_tar(name: str, night: int, shared: list[bytes], files: int, rnd: random.Random) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(path: str, data: bytes | None, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path)
            info.mtime = 1_700_000_000 + night * DAY
            info.uid = info.gid = 1_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        for root in ("backup/snapshots/snap0/rootfs", "backup/container/rootfs"):
            for d in ("", "/etc", "/etc/nginx", "/usr", "/usr/bin", "/var", "/var/log", "/var/lib", "/var/lib/app"):
                add(root + d, None)
            add(root + "/etc/hostname", f"{name}\n".encode())
            add(root + "/etc/nginx/nginx.conf", b"worker_processes auto;\n" * 40)
            for i, blob in enumerate(shared):
                add(f"{root}/usr/bin/tool{i}", blob, 0o755)
        add("backup/index.yaml", f"name: {name}\nsnapshots: [snap0]\n".encode())
        add("backup/container/rootfs/var/log/syslog", b"".join(
            f"night {n} {name} log line\n".encode() * 50 for n in range(night + 1)))
        add("backup/container/rootfs/var/lib/app/data.db", rnd.randbytes(len(shared[0]) * 2 // 3 + 1000 * (night % 5)))
        for i in range(files):
            add(f"backup/container/rootfs/var/lib/app/objects/{i // 100}/{i}.json", rnd.randbytes(64))
    return buf.getvalue()


def add_synthetic_chunks(repo: Any, count: int, per_pack: int = 4096) -> None:
    """``count`` more index entries, in index segments naming packs that are not there:
    the in-memory index, its load time and its memory are those of a repository with that
    many more chunks, at no cost of making them (``check`` reports the missing packs)."""
    from repo_format import pack
    done = 0
    while done < count:
        packs = []
        for _ in range(64):
            n = min(per_pack, count - done)
            if n <= 0:
                break
            entries = [pack.PackEntry(os.urandom(32), 16 + 1100 * i, 1100, 4096) for i in range(n)]
            packs.append((os.urandom(32).hex(), 16 + 1100 * n + 4096, 4096, pack.encode_entries(entries)))
            done += n
        repo.write_segment_packed(packs, [])


def build(path: Path, instances: int, nights: int, files: int, seed: int = 1, synthetic: int = 0,
          shared_kib: int = 300) -> None:
    rnd = random.Random(seed)
    repo = api.init(str(path), passphrase=os.environb.get(b"DEDUPE_PASSPHRASE", b"bench"))
    shared = [rnd.randbytes(shared_kib * 1000) for _ in range(4)]
    names = [f"web{i}" if i % 3 else f"db{i}" for i in range(1, instances + 1)]
    today = dt.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    start = (today - dt.timedelta(days=nights - 1)).timestamp()  # midnight, local time, of the first night
    with locked(repo, "backup"):
        for night in range(nights):
            run = new_run_id()
            at = start + night * DAY + 2.5 * 3600
            failed = [names[night % len(names)]] if night % 7 == 3 or night == nights - 2 else []
            for i, name in enumerate(names):
                if name in failed or (i == 0 and night >= nights - 3):
                    continue
                meta = {"lxd": {"server": SERVER, "kind": "instance", "project": "default", "name": name,
                                "snapshots": ["snap0"], "record": {"name": name, "status": "Running",
                                                                   "config": {"image.os": "Debian"}}}}
                with back_in_time(at + i * 20):
                    with api.session(repo, "tar", f"lxd/default/instance/{name}", run=run, host="lxd1",
                                     meta=meta) as s:
                        backup_tar(s, io.BytesIO(instance_tar(name, night, shared, files, rnd)))
            for kind, name, data in (("profile", "default", b'{"name": "default", "devices": {}}'),
                                     ("database", "global", b"INSERT INTO nodes;\n" * (500 + night))):
                group = f"lxd/default/{kind}/{name}" if kind == "profile" else f"lxd/global/{kind}/{name}"
                with back_in_time(at + 1000):
                    with api.session(repo, "stream", group, run=run, host="lxd1",
                                     meta={"lxd": {"server": SERVER, "kind": kind, "project": None, "name": name}}) as s:
                        backup_stream(s, io.BytesIO(data))
            if failed:
                api.record_run(repo, {"run": run, "server": SERVER, "host": "lxd1", "objects": [
                    {"group": f"lxd/default/instance/{n}", "error": f"LXD: instance {n}: export failed "
                                                                   f"(stream cut after 1.2 GiB)"} for n in failed]})
            print(f"night {night + 1}/{nights}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    if synthetic:
        add_synthetic_chunks(repo, synthetic)
    api.record_prune_policy(repo, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12, "groups": [],
                                   "group_by": "host,group"})
    if not synthetic:  # (with packs that are not there, check would fail)
        api.run_check(api.open_repo(str(path), lambda: os.environb.get(b"DEDUPE_PASSPHRASE", b"bench")), False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--instances", type=int, default=6)
    ap.add_argument("--nights", type=int, default=14)
    ap.add_argument("--files", type=int, default=0, help="small files of their own per instance backup")
    ap.add_argument("--synthetic-chunks", type=int, default=0,
                    help="index entries of packs that are not there (add_synthetic_chunks), for a large index")
    ap.add_argument("--shared-kib", type=int, default=300, help="size of each of the 4 programs every instance has")
    a = ap.parse_args()
    t = time.monotonic()
    build(a.path, a.instances, a.nights, a.files, synthetic=a.synthetic_chunks, shared_kib=a.shared_kib)
    print(f"built {a.path} in {time.monotonic() - t:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the corpus for the side-by-side benchmarks (dedupe vs borg vs restic).

Under DIR (default /var/tmp/dedupe-corpus) it builds, skipping whatever already exists:

  rootfs-night1/   a Debian bookworm root file system (debootstrap --variant=minbase),
                   or, when debootstrap cannot reach the mirror, an equivalent tree made by
                   extracting (dpkg-deb -x) the .deb files `apt-get download` fetches for the
                   packages installed on this host;
  rootfs-night2/   a copy of it with about 2% of its regular files changed (appended to,
                   edited in the middle with a shifting insert/delete), a few files added and a
                   few removed; deterministic for a given --seed; the list of changes goes to
                   night2-changes.json;
  night1.tar       GNU tar streams of both trees: --format=posix --xattrs --acls
  night2.tar       --numeric-owner --sort=name, PAX headers without atime/ctime and without a
                   pid in their names, so the same tree gives the same bytes;
  stream-1g.tar    a ~1 GiB tar stream for the stream benchmark, shaped like an LXD export with
                   one snapshot plus data volumes (see build_stream());
  corpus.json      what was built: paths, sizes, file counts, zstd -3 ratios.

--large builds the larger, more realistic tree of issue #15 (default DIR then
/var/tmp/dedupe-corpus-large): minbase plus build-essential, python3 with numpy and scipy,
git, clang, vim, curl, locales, perl, libllvm15 and gdb, then without /dev, /proc,
/sys, the .deb cache, the LLVM directories and scipy (LARGE_DROP): about 1.2 GB
in 36k files, a median file of 2.5 KB, about a hundred files over 1 MiB.

--scale F (0 < F < 1) builds a smaller corpus for smoke runs: the root file system keeps a
deterministic fraction F of its regular files (taken from --rootfs-source, e.g. the full
corpus's rootfs-night1, instead of running debootstrap again) and the stream is F GiB.

Needs root (debootstrap, owners, device nodes) and GNU tar, zstd, rsync (install-peers.sh).
Uses only the standard library, so it runs with the system python3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

DEFAULT_DIR = Path("/var/tmp/dedupe-corpus")
LARGE_DIR = Path("/var/tmp/dedupe-corpus-large")
LARGE_INCLUDE = ["build-essential", "python3", "python3-numpy", "python3-scipy", "git",
                 "clang", "vim", "curl", "locales", "perl", "libllvm15", "gdb"]
# (no JRE: ca-certificates-java fails to configure in a debootstrap chroot, and issue #15's
# tree leaves the JVM out anyway)
# left out of the large tree (relative to its root): pseudo file systems, the package cache,
# and the largest single-vendor blobs, so that the tree is shaped like a server's root
LARGE_DROP = ["dev", "proc", "sys", "var/cache/apt/archives", "usr/lib/jvm", "usr/lib/llvm-14", "usr/lib/llvm-15",
              "usr/lib/python3/dist-packages/scipy"]
GIB = 1 << 30
MIB = 1 << 20

# The tar options every tar stream of the corpus is written with (GNU tar 1.34).
TAR_CREATE_OPTS: list[str] = [
    "--format=posix",
    "--xattrs",
    "--xattrs-include=*",
    "--acls",
    "--numeric-owner",
    "--sort=name",
    # reproducible PAX headers: no pid in the extended header names, no atime/ctime records
    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
]

# mtime given to everything the "next night" touches: a fixed instant, for reproducibility.
NIGHT2_MTIME = 1_747_785_600  # 2025-05-21T00:00:00Z


def log(msg: str) -> None:
    print(f"[make-corpus] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], stdout: IO[bytes] | int | None = None,
        stderr: IO[bytes] | int | None = None) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=stdout, stderr=stderr)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def tree_bytes(path: Path) -> int:
    """Apparent size (du -sb) of a tree."""
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True).stdout
    return int(out.split()[0])


def zstd3_ratio(path: Path) -> float:
    """Input size / zstd -3 (one thread, default window) output size."""
    with open(path, "rb") as src:
        p = subprocess.run(["zstd", "-3", "-T1", "-c"], stdin=src, check=True, capture_output=True)
    return path.stat().st_size / max(1, len(p.stdout))


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (first `URIs:`/`deb` entry for debian)."""
    candidates: list[str] = []
    srcdir = Path("/etc/apt")
    files = [srcdir / "sources.list", *sorted((srcdir / "sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
            elif line.startswith("deb ") and not line.startswith("deb-src"):
                parts = [p for p in line.split()[1:] if not p.startswith("[")]
                if parts:
                    candidates.append(parts[0])
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return "http://deb.debian.org/debian"


# --------------------------------------------------------------------------- rootfs-night1


def debootstrap_rootfs(dest: Path, suite: str, mirror: str, include: list[str]) -> None:
    cmd = ["debootstrap", "--variant=minbase"]
    if include:
        cmd.append("--include=" + ",".join(include))
    cmd += [suite, str(dest), mirror]
    logfile = dest.parent / "debootstrap.log"
    log(f"debootstrap output goes to {logfile}")
    with open(logfile, "wb") as out:
        run(cmd, stdout=out, stderr=subprocess.STDOUT)


def deb_extract_rootfs(dest: Path) -> None:
    """Fallback: extract the .debs of the packages installed on this host into dest."""
    pkgs = subprocess.run(
        ["dpkg-query", "-W", "-f=${binary:Package}\n"], check=True, capture_output=True, text=True
    ).stdout.split()
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        # apt-get download refuses the whole batch if one name is not downloadable: go in batches
        for i in range(0, len(pkgs), 50):
            subprocess.run(["apt-get", "download", *pkgs[i : i + 50]], cwd=tmp, check=False)
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise RuntimeError("apt-get download fetched nothing")
        dest.mkdir(parents=True)
        for deb in debs:
            run(["dpkg-deb", "-x", str(deb), str(dest)], stdout=subprocess.DEVNULL)
    log(f"extracted {len(debs)} packages into {dest}")


def prune_rootfs(root: Path, fraction: float, seed: int) -> None:
    """Keep a deterministic fraction of the regular files (for --scale smoke corpora)."""
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file():
                continue
            rel = str(p.relative_to(root)).encode()
            h = int.from_bytes(hashlib.blake2b(rel, key=str(seed).encode()).digest()[:8], "big")
            if h / 2**64 >= fraction:
                p.unlink()
                removed += 1
    log(f"pruned {removed} files to keep ~{fraction:.0%} of {root}")


def make_night1(
    dest: Path, suite: str, mirror: str, include: list[str], scale: float,
    rootfs_source: Path | None, seed: int, drop: tuple[str, ...] | list[str] = (),
) -> str:
    """Build rootfs-night1; returns how it was made."""
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    if rootfs_source is not None:
        run(["cp", "-a", "--", str(rootfs_source), str(tmp)])
        how = f"copy of {rootfs_source}"
    else:
        try:
            debootstrap_rootfs(tmp, suite, mirror, include)
            how = f"debootstrap --variant=minbase {suite} {mirror}" + (
                f" --include={','.join(include)}" if include else "")
        except subprocess.CalledProcessError as e:
            log(f"debootstrap failed ({e}); falling back to apt-get download + dpkg-deb -x")
            if tmp.exists():
                shutil.rmtree(tmp)
            deb_extract_rootfs(tmp)
            how = "dpkg-deb -x of the .debs of this host's installed packages"
    for rel in drop:
        victim = tmp / rel
        if victim.is_dir() and not victim.is_symlink():
            shutil.rmtree(victim)
            victim.mkdir()  # an empty mount point, as a container's root has
    if drop:
        how += f", without {', '.join(drop)}"
    if scale < 1:
        prune_rootfs(tmp, scale, seed)
        how += f", pruned to {scale:g} of its files"
    tmp.rename(dest)
    return how


# --------------------------------------------------------------------------- rootfs-night2


@dataclass
class Changes:
    appended: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_appended: int = 0
    bytes_inserted: int = 0
    bytes_deleted: int = 0
    bytes_added: int = 0
    files_before: int = 0


LOG_WORDS = (
    "systemd[1]: Started session", "CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)",
    "sshd[{pid}]: Accepted publickey for admin from 10.0.{a}.{b} port {port} ssh2",
    "kernel: [{up}.{frac:06d}] eth0: link up", "postgres[{pid}]: LOG:  checkpoint complete",
    "nginx: 10.1.{a}.{b} - - \"GET /api/v1/items/{port} HTTP/1.1\" 200 {size}",
)


def log_text(rng: random.Random, nbytes: int, t0: int) -> bytes:
    """Syslog-like lines, about nbytes long."""
    out: list[str] = []
    n = 0
    t = t0
    while n < nbytes:
        t += rng.randrange(0, 3)
        tpl = LOG_WORDS[rng.randrange(len(LOG_WORDS))]
        msg = tpl.format(pid=rng.randrange(100, 65000), a=rng.randrange(256), b=rng.randrange(256),
                         port=rng.randrange(1024, 65536), up=t - t0, frac=rng.randrange(10**6),
                         size=rng.randrange(100, 90000))
        line = f"{time.strftime('%b %d %H:%M:%S', time.gmtime(t))} host1 {msg}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:nbytes]


def regular_files(root: Path) -> list[Path]:
    """Regular files with one link, sorted by relative path (the mutation candidates)."""
    found: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = Path(dirpath, name)
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                found.append(p)
    found.sort(key=lambda p: str(p.relative_to(root)))
    return found


def mutate(root: Path, seed: int, fraction: float) -> Changes:
    """Turn a copy of night1 into night2: ~fraction of the regular files change."""
    rng = random.Random(seed)
    files = regular_files(root)
    ch = Changes(files_before=len(files))
    n_changed = max(4, round(len(files) * fraction))
    n_removed = max(1, n_changed // 20)
    n_added = max(1, n_changed // 20)
    n_append = (n_changed - n_removed) // 2
    n_edit = n_changed - n_removed - n_append
    picked = rng.sample(files, n_changed)
    touched_dirs: set[Path] = set()

    for p in picked[:n_append]:
        size = p.stat().st_size
        extra = min(256 * 1024, max(64, int(size * rng.uniform(0.01, 0.2))))
        data = log_text(rng, extra, NIGHT2_MTIME) if rng.random() < 0.7 else rng.randbytes(extra)
        with open(p, "ab") as f:
            f.write(data)
        ch.appended.append(str(p.relative_to(root)))
        ch.bytes_appended += extra

    for p in picked[n_append : n_append + n_edit]:
        data = p.read_bytes()
        if len(data) < 16:
            new = data + rng.randbytes(16)
            ch.bytes_inserted += 16
        else:
            at = int(len(data) * rng.uniform(0.3, 0.7))
            cap = max(1, min(4096, len(data) // 10))
            delete = rng.randrange(0, cap + 1)
            insert = rng.randbytes(rng.randrange(1, cap + 1))
            new = data[:at] + insert + data[at + delete :]
            ch.bytes_inserted += len(insert)
            ch.bytes_deleted += delete
        mode = stat.S_IMODE(p.stat().st_mode)
        with open(p, "r+b") as f:
            f.write(new)
            f.truncate()
        os.chmod(p, mode)
        ch.edited.append(str(p.relative_to(root)))

    for p in picked[n_append + n_edit :]:
        touched_dirs.add(p.parent)
        p.unlink()
        ch.removed.append(str(p.relative_to(root)))

    new_dir = root / "var" / "lib" / "night2-app"
    new_dir.mkdir(parents=True, exist_ok=True)
    touched_dirs.add(new_dir.parent)
    for i in range(n_added):
        size = rng.randrange(1024, 1024 * 1024)
        if i % 2 == 0:
            data = log_text(rng, size, NIGHT2_MTIME + i)
            p = new_dir / f"events-{i:03d}.log"
        else:
            data = rng.randbytes(size)
            p = new_dir / f"blob-{i:03d}.bin"
        p.write_bytes(data)
        ch.added.append(str(p.relative_to(root)))
        ch.bytes_added += size
    touched_dirs.add(new_dir)

    for rel in ch.appended + ch.edited + ch.added:
        os.utime(root / rel, (NIGHT2_MTIME, NIGHT2_MTIME), follow_symlinks=False)
    for d in touched_dirs:
        os.utime(d, (NIGHT2_MTIME, NIGHT2_MTIME), follow_symlinks=False)
    return ch


def make_night2(night1: Path, dest: Path, seed: int, fraction: float, changes_json: Path) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    run(["cp", "-a", "--", str(night1), str(tmp)])
    ch = mutate(tmp, seed, fraction)
    changes_json.write_text(json.dumps(asdict(ch), indent=1) + "\n")
    tmp.rename(dest)
    log(f"night2: {len(ch.appended)} appended, {len(ch.edited)} edited in the middle, "
        f"{len(ch.added)} added, {len(ch.removed)} removed, of {ch.files_before} files")


# --------------------------------------------------------------------------- tar streams


def tar_tree(tree: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".partial")
    run(["tar", *TAR_CREATE_OPTS, "-C", str(tree), "-cf", str(tmp), "."])
    tmp.rename(out)


def write_random(path: Path, nbytes: int, rng: random.Random) -> None:
    with open(path, "wb") as f:
        left = nbytes
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(rng.randbytes(n))
            left -= n


def write_logs(path: Path, nbytes: int, rng: random.Random, t0: int) -> None:
    with open(path, "wb") as f:
        left, t = nbytes, t0
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(log_text(rng, n, t))
            left -= n
            t += 3600


def build_stream(base: Path, out: Path, target: int, seed: int) -> dict[str, object]:
    """A tar stream shaped like `lxc export` of a container with one snapshot, plus volumes.

    Members, in order:
      backup/container/rootfs/...          rootfs-night2            (the instance)
      backup/snapshots/night1/rootfs/...   rootfs-night1            (its snapshot: ~98% the same)
      backup/volumes/media/blob-NN.bin     seeded random bytes      (incompressible: media,
                                                                     compressed dumps)
      backup/volumes/logs/app-NN.log       seeded syslog-like text  (compresses ~6x)
    The two padding volumes fill the stream up to `target`: 25% random, 75% logs, which
    makes the whole stream compress about 2.5x with zstd -3 (the minbase rootfs alone: 2.4x).
    """
    rootfs_part = (base / "night1.tar").stat().st_size + (base / "night2.tar").stat().st_size
    pad = max(0, target - rootfs_part)
    random_bytes = int(pad * 0.25)
    log_bytes = pad - random_bytes
    rng = random.Random(seed + 1)
    extra = base / "stream-extra.partial"
    if extra.exists():
        shutil.rmtree(extra)
    media = extra / "backup" / "volumes" / "media"
    logs = extra / "backup" / "volumes" / "logs"
    media.mkdir(parents=True)
    logs.mkdir(parents=True)
    piece = 32 * MIB
    for i in range(0, (random_bytes + piece - 1) // piece):
        write_random(media / f"blob-{i:02d}.bin", min(piece, random_bytes - i * piece), rng)
    for i in range(0, (log_bytes + piece - 1) // piece):
        write_logs(logs / f"app-{i:02d}.log", min(piece, log_bytes - i * piece), rng,
                   NIGHT2_MTIME - 86400 * (30 - i))
    for p in (*media.iterdir(), *logs.iterdir(), media, logs, media.parent, extra / "backup"):
        os.utime(p, (NIGHT2_MTIME, NIGHT2_MTIME))

    tmp = out.with_name(out.name + ".partial")
    run(["tar", *TAR_CREATE_OPTS, "-cf", str(tmp),
         "--transform=s,^rootfs-night2,backup/container/rootfs,",
         "--transform=s,^rootfs-night1,backup/snapshots/night1/rootfs,",
         "-C", str(base), "rootfs-night2", "rootfs-night1",
         "-C", str(extra), "backup/volumes"])
    tmp.rename(out)
    shutil.rmtree(extra)
    return {"rootfs_bytes": rootfs_part, "random_bytes": random_bytes, "log_bytes": log_bytes}


# --------------------------------------------------------------------------- main


def stream_name(scale: float) -> str:
    if scale >= 1:
        return "stream-1g.tar"
    return f"stream-{round(GIB * scale / MIB)}m.tar"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", type=Path, default=None,
                    help=f"where to build it (default {DEFAULT_DIR}, with --large {LARGE_DIR})")
    ap.add_argument("--large", action="store_true", help="the larger tree of issue #15 (LARGE_INCLUDE, LARGE_DROP)")
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--mirror", default=None, help="Debian mirror (default: the one apt uses here)")
    ap.add_argument("--include", default="", help="extra packages for debootstrap, comma-separated")
    ap.add_argument("--seed", type=int, default=20250520)
    ap.add_argument("--change-fraction", type=float, default=0.02)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full corpus (smoke runs)")
    ap.add_argument("--rootfs-source", type=Path, default=None,
                    help="copy this tree as rootfs-night1 instead of running debootstrap")
    ap.add_argument("--stream-bytes", type=int, default=None, help="default: GiB x scale")
    ap.add_argument("--no-ratio", action="store_true", help="skip the zstd -3 ratio measurements")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        ap.error("run as root (debootstrap, owners, device nodes)")
    if not 0 < args.scale <= 1:
        ap.error("--scale must be in (0, 1]")
    base: Path = (args.dir or (LARGE_DIR if args.large else DEFAULT_DIR)).resolve()
    if str(base).startswith("/work/"):
        ap.error("keep the corpus outside /work (it is big)")
    base.mkdir(parents=True, exist_ok=True)
    mirror = args.mirror or apt_mirror()
    include = [p for p in args.include.split(",") if p] + (LARGE_INCLUDE if args.large else [])
    drop = LARGE_DROP if args.large else []
    stream_target = args.stream_bytes or int(GIB * args.scale)

    meta_path = base / "corpus.json"
    old: dict[str, object] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta: dict[str, object] = {k: old[k] for k in ("rootfs_how", "stream_composition") if k in old}

    n1, n2 = base / "rootfs-night1", base / "rootfs-night2"
    if not n1.exists():
        meta["rootfs_how"] = make_night1(n1, args.suite, mirror, include, args.scale,
                                         args.rootfs_source, args.seed, drop)
    if not n2.exists():
        make_night2(n1, n2, args.seed, args.change_fraction, base / "night2-changes.json")
    for night in ("night1", "night2"):
        t = base / f"{night}.tar"
        if not t.exists():
            tar_tree(base / f"rootfs-{night}", t)
    stream = base / stream_name(args.scale)
    if not stream.exists():
        meta["stream_composition"] = build_stream(base, stream, stream_target, args.seed)

    changes = json.loads((base / "night2-changes.json").read_text())
    files: dict[str, dict[str, object]] = {
        "rootfs_night1": {"path": str(n1), "bytes": tree_bytes(n1)},
        "rootfs_night2": {"path": str(n2), "bytes": tree_bytes(n2)},
        "night1_tar": {"path": str(base / "night1.tar"), "bytes": (base / "night1.tar").stat().st_size},
        "night2_tar": {"path": str(base / "night2.tar"), "bytes": (base / "night2.tar").stat().st_size},
        "stream": {"path": str(stream), "bytes": stream.stat().st_size},
    }
    for key in ("night1_tar", "stream"):
        entry, previous = files[key], old.get(key)
        if isinstance(previous, dict) and previous.get("bytes") == entry["bytes"] \
                and "zstd3_ratio" in previous:
            entry["zstd3_ratio"] = previous["zstd3_ratio"]  # same file as last time
        elif not args.no_ratio:
            log(f"measuring the zstd -3 ratio of {entry['path']}")
            entry["zstd3_ratio"] = round(zstd3_ratio(Path(str(entry["path"]))), 2)
    meta.update({
        "dir": str(base),
        "scale": args.scale,
        "seed": args.seed,
        "suite": args.suite,
        "mirror": mirror,
        "tar_options": TAR_CREATE_OPTS,
        **files,
        "night2_changes": {k: (len(v) if isinstance(v, list) else v) for k, v in changes.items()},
    })
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")

    print(f"corpus in {base} ({meta.get('rootfs_how')})")
    for key, e in files.items():
        r = f"  zstd -3 ratio {e['zstd3_ratio']}x" if "zstd3_ratio" in e else ""
        print(f"  {key:14s} {e['bytes']:>14,d} B  {human(int(str(e['bytes']))):>10s}{r}  {e['path']}")
    c = meta["night2_changes"]
    assert isinstance(c, dict)
    print(f"  night2: {c['appended']} appended, {c['edited']} edited, {c['added']} added, "
          f"{c['removed']} removed of {c['files_before']} regular files")
    if "stream_composition" in meta:
        print(f"  stream composition: {meta['stream_composition']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Side-by-side benchmark of dedupe against borg 1.4 and restic on the same corpus.

Scenarios (each on fresh repositories, one per tool, under --scratch):

  stream  backup of stream-1g.tar from stdin/file, then restore of it to a file (cmp'd);
  tar     backup of night1.tar, then of night2.tar (the next night, ~2% of files changed);
          new bytes stored by each; then restore of night2 to a file (cmp'd) and to stdout
          (/dev/null), then a check that reads all stored data (borg check --verify-data,
          restic check --read-data, dedupe check --read-data).
          dedupe uses its file-aligned `backup tar` mode, borg and restic their stdin mode;
  dir     backup of a directory holding rootfs-night1, then the same directory turned into
          rootfs-night2 (rsync --inplace: unchanged files keep their inode and ctime, as on
          a real server), then again unchanged; then restore of the last one to a directory,
          compared with rootfs-night2 (content, type, mode, owner, mtime, xattrs, links).

Every timed command runs under `/usr/bin/time -f '%e %M %U %S'`: wall seconds, peak RSS
(max RSS of the largest single process of the tree, in KiB), user and system CPU seconds.
The CPU seconds the rest of the machine used meanwhile are recorded too ("others"): other
sessions share the machine, and a busy neighbour slows any tool. --wait-idle waits for a
quiet machine before each timed run, --repeat N takes the median of N runs (N rounds,
each running every tool once, in turned order every other round).
Before each timed command the data is synced (`sync`, untimed) and, by default, the input
is read once so every tool starts with a warm page cache; with --cold the page cache is
dropped instead (echo 3 > /proc/sys/vm/drop_caches).

Compression: zstd level 3 for dedupe (its default) and borg (--compression zstd,3), or level
N for both with --zstd-level N (dedupe through $DEDUPE_COMPRESSION); restic's
`auto` mode is zstd at klauspost/compress's SpeedDefault, which its authors equate to zstd
level 3. Encryption (--encryption): `none` (default) runs borg with `-e none` and dedupe with
`--encryption none`; `on` runs borg with `-e repokey-blake2` and dedupe with aes-256-gcm.
restic always encrypts (AES-256-CTR + Poly1305). Chunker parameters are each tool's default.

Run make-corpus.py first. Uses only the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import stat
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO
from collections.abc import Iterator, Sequence

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = Path("/var/tmp/dedupe-corpus")
DEFAULT_SCRATCH = Path("/var/tmp/dedupe-bench")
DEFAULT_DEDUPE = Path("/work/main/.venv/bin/dedupe")
DEFAULT_BORG = Path("/opt/borg/bin/borg")
RESTIC_PASSWORD = "dedupe-bench-not-secret"
PASSPHRASE = "dedupe-bench-not-secret"  # borg and dedupe with --encryption on
TIME = "/usr/bin/time"
SCENARIOS = ("stream", "tar", "dir")
TOOLS = ("dedupe", "borg", "restic")


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- commands


@dataclass
class Cmd:
    """One command: argv plus where stdin comes from and stdout goes."""

    argv: list[str]
    stdin: Path | None = None
    stdout: Path | None = None
    cwd: Path | None = None

    def shell(self) -> str:
        s = shlex.join(self.argv)
        if self.cwd is not None:
            s = f"(cd {shlex.quote(str(self.cwd))} && {s})"
        if self.stdin is not None:
            s += f" < {shlex.quote(str(self.stdin))}"
        if self.stdout is not None:
            s += f" > {shlex.quote(str(self.stdout))}"
        return s


@dataclass
class Result:
    scenario: str
    step: str
    tool: str
    command: str = ""
    ok: bool = False
    skipped: bool = False
    wall_s: float | None = None
    max_rss_kib: int | None = None
    cpu_s: float | None = None
    input_bytes: int | None = None
    repo_bytes: int | None = None
    growth_bytes: int | None = None
    cache_bytes: int | None = None
    verified: bool | None = None
    other_cpu_s: float | None = None
    wall_runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def mb_s(self) -> float | None:
        if self.input_bytes and self.wall_s:
            return self.input_bytes / self.wall_s / 1e6
        return None


def du_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True).stdout
    return int(out.split()[0])


def tail(path: Path, n: int = 6) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(line.strip() for line in lines[-n:] if line.strip())


# --------------------------------------------------------------------------- tools


class Tool:
    """What a tool is asked to do; each method returns the command(s), it runs nothing."""

    name = "tool"

    zstd_level = 3  # dedupe's and borg's compression level (--zstd-level)

    def __init__(self, exe: str, home: Path, encrypted: bool = False) -> None:
        self.exe = exe
        self.home = home
        self.encrypted = encrypted

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOME": str(self.home / "home"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "LC_ALL": "C.UTF-8",
        })
        return env

    def cache_dirs(self) -> list[Path]:
        return [self.home / "home", self.home / "cache", self.home / "config", self.home / "data"]

    def version(self) -> str:
        raise NotImplementedError

    def available(self) -> str | None:
        """None when usable, else why not."""
        return None

    def supports(self, scenario: str) -> str | None:
        """None when the scenario can run, else why not."""
        return None

    def init(self, repo: Path) -> Cmd:
        raise NotImplementedError

    def backup_file(self, repo: Path, file: Path, name: str, kind: str) -> Cmd:
        """kind is 'stream' or 'tar' (dedupe has a mode per kind; the peers read stdin)."""
        raise NotImplementedError

    def restore_file(self, repo: Path, name: str, out: Path) -> Cmd:
        raise NotImplementedError

    def backup_dir(self, repo: Path, parent: Path, rel: str, name: str) -> Cmd:
        raise NotImplementedError

    def restore_dir(self, repo: Path, name: str, target: Path) -> Cmd:
        raise NotImplementedError

    def restore_stdout(self, repo: Path, name: str) -> Cmd:
        """The restore of ``name`` to standard output (sent to /dev/null: no disk writes)."""
        cmd = self.restore_file(repo, name, Path("/dev/null"))
        return Cmd(cmd.argv, stdin=cmd.stdin, stdout=Path("/dev/null"), cwd=cmd.cwd)

    def check_data(self, repo: Path) -> Cmd:
        """A check that reads and verifies all stored data."""
        raise NotImplementedError


class Borg(Tool):
    name = "borg"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update({
            "BORG_BASE_DIR": str(self.home / "home"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
            "BORG_PASSPHRASE": PASSPHRASE,
        })
        return env

    def version(self) -> str:
        return run_text([self.exe, "--version"], self.env())

    def available(self) -> str | None:
        return None if Path(self.exe).exists() else f"{self.exe} missing (run install-peers.sh)"

    def init(self, repo: Path) -> Cmd:
        # repokey-blake2: AES-256-CTR + keyed BLAKE2b MAC, borg 1.4's fastest encrypted mode
        mode = "repokey-blake2" if self.encrypted else "none"
        return Cmd([self.exe, "init", "-e", mode, str(repo)])

    def backup_file(self, repo: Path, file: Path, name: str, kind: str) -> Cmd:
        return Cmd([self.exe, "create", "--compression", f"zstd,{self.zstd_level}", f"{repo}::{name}", "-"],
                   stdin=file)

    def restore_file(self, repo: Path, name: str, out: Path) -> Cmd:
        return Cmd([self.exe, "extract", "--stdout", f"{repo}::{name}"], stdout=out)

    def backup_dir(self, repo: Path, parent: Path, rel: str, name: str) -> Cmd:
        return Cmd([self.exe, "create", "--compression", f"zstd,{self.zstd_level}", "--numeric-ids",
                    f"{repo}::{name}", rel], cwd=parent)

    def restore_dir(self, repo: Path, name: str, target: Path) -> Cmd:
        return Cmd([self.exe, "extract", "--numeric-ids", f"{repo}::{name}"], cwd=target)

    def check_data(self, repo: Path) -> Cmd:
        return Cmd([self.exe, "check", "--verify-data", str(repo)])


class Restic(Tool):
    name = "restic"

    def __init__(self, exe: str, home: Path, encrypted: bool = False) -> None:
        super().__init__(exe, home, encrypted)
        self._no_password: bool | None = None

    @property
    def no_password(self) -> bool:
        """restic >= 0.17 can make a repository without a password."""
        if self._no_password is None:
            help_text = run_text([self.exe, "init", "--help"], super().env())
            self._no_password = "--insecure-no-password" in help_text
        return self._no_password

    def env(self) -> dict[str, str]:
        env = super().env()
        env["RESTIC_CACHE_DIR"] = str(self.home / "cache")
        if not self.no_password:
            env["RESTIC_PASSWORD"] = RESTIC_PASSWORD
        return env

    def base(self, repo: Path) -> list[str]:
        argv = [self.exe, "-r", str(repo)]
        if self.no_password:
            argv.append("--insecure-no-password")
        return argv

    def version(self) -> str:
        return run_text([self.exe, "version"], super().env())

    def available(self) -> str | None:
        return None if shutil.which(self.exe) else f"{self.exe} not found (run install-peers.sh)"

    def init(self, repo: Path) -> Cmd:
        # format version 2 (restic >= 0.14) is the one with compression; say so explicitly
        return Cmd([*self.base(repo), "init", "--repository-version", "2"])

    def backup_file(self, repo: Path, file: Path, name: str, kind: str) -> Cmd:
        fname = "stream.tar" if kind == "stream" else "night.tar"
        return Cmd([*self.base(repo), "backup", "--compression", "auto", "--stdin",
                    "--stdin-filename", fname, "--tag", name], stdin=file)

    def restore_file(self, repo: Path, name: str, out: Path) -> Cmd:
        fname = "stream.tar" if name == "stream" else "night.tar"
        return Cmd([*self.base(repo), "dump", "--tag", name, "latest", f"/{fname}"], stdout=out)

    def backup_dir(self, repo: Path, parent: Path, rel: str, name: str) -> Cmd:
        return Cmd([*self.base(repo), "backup", "--compression", "auto", "--tag", name, rel],
                   cwd=parent)

    def restore_dir(self, repo: Path, name: str, target: Path) -> Cmd:
        return Cmd([*self.base(repo), "restore", "--tag", name, "latest", "--target", str(target)])

    def check_data(self, repo: Path) -> Cmd:
        return Cmd([*self.base(repo), "check", "--read-data"])


class Dedupe(Tool):
    name = "dedupe"

    def __init__(self, exe: str, home: Path, encrypted: bool = False) -> None:
        super().__init__(exe, home, encrypted)
        self._backup_help: str | None = None
        self._init_help: str | None = None

    def env(self) -> dict[str, str]:
        env = super().env()
        env["DEDUPE_PASSPHRASE"] = PASSPHRASE
        env["DEDUPE_COMPRESSION"] = f"zstd,{self.zstd_level}"
        return env

    def version(self) -> str:
        return run_text([self.exe, "--version"], self.env()) or "unknown"

    def available(self) -> str | None:
        if not Path(self.exe).exists():
            return f"{self.exe} missing"
        p = subprocess.run([self.exe, "--help"], env=self.env(), capture_output=True, text=True)
        if p.returncode != 0:
            return f"`dedupe --help` failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}"
        return None

    def backup_modes(self) -> set[str]:
        """The sub-commands of `dedupe backup`, from its --help (click's Commands: section)."""
        if self._backup_help is None:
            p = subprocess.run([self.exe, "backup", "--help"], env=self.env(),
                               capture_output=True, text=True)
            self._backup_help = p.stdout if p.returncode == 0 else ""
        modes: set[str] = set()
        in_commands = False
        for line in self._backup_help.splitlines():
            if line.strip().lower().startswith("commands"):
                in_commands = True
                continue
            if in_commands and line.startswith("  ") and line.strip():
                modes.add(line.split()[0])
        return modes

    def supports(self, scenario: str) -> str | None:
        needed = {"stream": "stream", "tar": "tar", "dir": "dir"}[scenario]
        if needed not in self.backup_modes():
            return f"`dedupe backup {needed}` does not exist (yet): see `dedupe backup --help`"
        return None

    def init(self, repo: Path) -> Cmd:
        if self._init_help is None:
            self._init_help = run_text([self.exe, "init", "--help"], self.env())
        argv = [self.exe, "init", "--repo", str(repo)]
        if "--encryption" in self._init_help:
            argv += ["--encryption", "aes-256-gcm" if self.encrypted else "none"]
        return Cmd(argv)

    def backup_file(self, repo: Path, file: Path, name: str, kind: str) -> Cmd:
        group = "bench" if kind == "stream" else "bench-tar"
        return Cmd([self.exe, "backup", kind, group, str(file), "--repo", str(repo)])

    def latest_id(self, repo: Path) -> str:
        out = run_text([self.exe, "list", "--json", "--repo", str(repo)], self.env(), check=True)
        backups = json.loads(out)
        if not backups:
            raise RuntimeError("dedupe list --json shows no backup")
        for key in ("time", "created", "started"):
            if all(isinstance(b, dict) and key in b for b in backups):
                backups = sorted(backups, key=lambda b: str(b[key]))
                break
        return str(backups[-1]["id"])

    def restore_file(self, repo: Path, name: str, out: Path) -> Cmd:
        return Cmd([self.exe, "restore", self.latest_id(repo), "--to-file", str(out),
                    "--repo", str(repo)])

    def backup_dir(self, repo: Path, parent: Path, rel: str, name: str) -> Cmd:
        return Cmd([self.exe, "backup", "dir", "bench-dir", str(parent / rel),
                    "--repo", str(repo)])

    def restore_dir(self, repo: Path, name: str, target: Path) -> Cmd:
        return Cmd([self.exe, "restore", self.latest_id(repo), "--to-dir", str(target),
                    "--repo", str(repo)])

    def restore_stdout(self, repo: Path, name: str) -> Cmd:
        return Cmd([self.exe, "restore", self.latest_id(repo), "--stdout", "--repo", str(repo)],
                   stdout=Path("/dev/null"))

    def check_data(self, repo: Path) -> Cmd:
        return Cmd([self.exe, "check", "--read-data", "--repo", str(repo)])


def run_text(argv: list[str], env: dict[str, str], check: bool = False) -> str:
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=check)
    except FileNotFoundError:
        return ""
    return (p.stdout or p.stderr).strip()


# --------------------------------------------------------------------------- running


@dataclass
class Options:
    scratch: Path
    cold: bool
    keep: bool
    wait_idle: float  # seconds to wait at most for an idle machine before each timed run


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLK_TCK


def wait_for_idle(max_wait: float, cores: int) -> None:
    """Wait (at most max_wait s) until other processes use under a quarter of one core."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = cpu_busy_seconds()
        time.sleep(1.0)
        busy = cpu_busy_seconds() - b0
        if busy < 0.25 or time.monotonic() > deadline:
            if busy >= 0.25:
                log(f"  machine still busy ({busy:.2f} of {cores} cores): running anyway")
            return


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def warm(paths: Sequence[Path]) -> None:
    """Read every file under paths once, so the timed run starts from the page cache."""
    buf = bytearray(4 * 1024 * 1024)
    for p in paths:
        files: Iterator[Path]
        if p.is_dir():
            files = (Path(d, f) for d, _s, fs in os.walk(p) for f in fs)
        else:
            files = iter([p])
        for f in files:
            try:
                if not stat.S_ISREG(f.lstat().st_mode):
                    continue
                with open(f, "rb", buffering=0) as fh:
                    while fh.readinto(buf):
                        pass
            except OSError:
                pass


def timed(tool: Tool, cmd: Cmd, res: Result, opts: Options, warm_paths: Sequence[Path],
          logfile: Path) -> bool:
    """Run cmd under /usr/bin/time; fill res; True when it exited 0."""
    res.command = cmd.shell()
    os.sync()
    if opts.cold:
        drop_caches()
    else:
        warm(warm_paths)
    if opts.wait_idle > 0:
        wait_for_idle(opts.wait_idle, os.cpu_count() or 1)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    tfile = logfile.with_suffix(".time")
    log(f"{res.scenario}/{res.step}/{tool.name}: {res.command}")
    with contextlib.ExitStack() as files:
        stdin: IO[bytes] | int = (files.enter_context(open(cmd.stdin, "rb")) if cmd.stdin
                                  else subprocess.DEVNULL)
        stdout = files.enter_context(open(cmd.stdout or logfile.with_suffix(".out"), "wb"))
        stderr = files.enter_context(open(logfile, "wb"))
        busy0 = cpu_busy_seconds()
        p = subprocess.run([TIME, "-f", "%e %M %U %S", "-o", str(tfile), *cmd.argv],
                           stdin=stdin, stdout=stdout, stderr=stderr, cwd=cmd.cwd, env=tool.env())
    fields = tfile.read_text().strip().splitlines()[-1].split()
    res.wall_s, res.max_rss_kib = float(fields[0]), int(fields[1])
    res.cpu_s = round(float(fields[2]) + float(fields[3]), 2)
    # CPU the rest of the machine used meanwhile: other sessions' load skews the timing
    res.other_cpu_s = round(max(0.0, cpu_busy_seconds() - busy0 - res.cpu_s), 2)
    res.wall_runs = [res.wall_s]
    res.ok = p.returncode == 0
    if not res.ok:
        res.note = f"exit {p.returncode}: {tail(logfile)}"
        log(f"  FAILED: {res.note}")
    else:
        log(f"  {res.wall_s:.2f} s, {res.max_rss_kib / 1024:.0f} MiB peak RSS")
    return res.ok


def untimed(tool: Tool, cmd: Cmd, logfile: Path) -> None:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "wb") as out:
        subprocess.run(cmd.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                       cwd=cmd.cwd, env=tool.env(), check=True)


def files_equal(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


# --------------------------------------------------------------------------- tree compare


def tree_facts(root: Path) -> dict[str, tuple[object, ...]]:
    """Per relative path: type, mode, uid, gid, mtime, size/content digest, link, xattrs."""
    facts: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            st = p.lstat()
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                h = hashlib.blake2b(digest_size=16)
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                extra = h.hexdigest()
                if st.st_nlink > 1:
                    first = inodes.setdefault((st.st_dev, st.st_ino), rel)
                    extra = (extra, "hardlink-group", first if first != rel else None)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                xattrs = tuple(sorted(
                    (k, os.getxattr(p, k, follow_symlinks=False))
                    for k in os.listxattr(p, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            mtime = None if stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            facts[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime, extra, xattrs)
    return facts


def compare_trees(expected: Path, got: Path) -> tuple[bool, str]:
    a, b = tree_facts(expected), tree_facts(got)
    labels = ("type", "mode", "uid", "gid", "mtime", "content/link/device", "xattrs")
    diffs: dict[str, list[str]] = {}
    for rel in sorted(a.keys() - b.keys()):
        diffs.setdefault("missing", []).append(rel)
    for rel in sorted(b.keys() - a.keys()):
        diffs.setdefault("extra", []).append(rel)
    for rel in sorted(a.keys() & b.keys()):
        for label, x, y in zip(labels, a[rel], b[rel], strict=True):
            if x != y:
                diffs.setdefault(label, []).append(rel)
    if not diffs:
        return True, f"tree identical ({len(a)} entries)"
    summary = "; ".join(f"{k}: {len(v)} (e.g. {v[0]})" for k, v in diffs.items())
    return False, f"differs from rootfs-night2: {summary}"


def looks_like_rootfs(d: Path) -> bool:
    return (d / "etc").is_dir() and (d / "usr" / "bin").is_dir() and (d / "var").is_dir()


def find_restored_root(target: Path, source_abs: Path) -> Path | None:
    """Where a restore put the tree: target itself, target/<name>, or target/<absolute path>."""
    for cand in (target, target / source_abs.name, target / str(source_abs).lstrip("/")):
        if looks_like_rootfs(cand):
            return cand
    for dirpath, dirs, _files in os.walk(target):
        if looks_like_rootfs(Path(dirpath)):
            return Path(dirpath)
        if len(Path(dirpath).relative_to(target).parts) > 8:
            dirs.clear()
    return None


# --------------------------------------------------------------------------- scenarios


@dataclass
class Corpus:
    dir: Path
    stream: Path
    night1_tar: Path
    night2_tar: Path
    rootfs1: Path
    rootfs2: Path
    meta: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, d: Path) -> Corpus:
        meta = json.loads((d / "corpus.json").read_text())

        def p(key: str) -> Path:
            entry = meta[key]
            return Path(entry["path"])

        return cls(d, p("stream"), p("night1_tar"), p("night2_tar"), p("rootfs_night1"),
                   p("rootfs_night2"), meta)


def scenario_dirs(opts: Options, scenario: str, tool: Tool) -> tuple[Path, Path]:
    base = opts.scratch / scenario / tool.name
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    tool.home = base / "state"
    for d in tool.cache_dirs():
        d.mkdir(parents=True, exist_ok=True)
    return base, base / "repo"


def measure_sizes(tool: Tool, repo: Path, res: Result, before: int) -> int:
    size = du_bytes(repo)
    res.repo_bytes = size
    res.growth_bytes = size - before
    res.cache_bytes = sum(du_bytes(d) for d in tool.cache_dirs())
    return size


def skipped(scenario: str, steps: Sequence[str], tool: Tool, why: str) -> list[Result]:
    log(f"{scenario}/{tool.name}: skipped: {why}")
    return [Result(scenario, s, tool.name, skipped=True, note=why) for s in steps]


def run_stream(tool: Tool, corpus: Corpus, opts: Options) -> list[Result]:
    steps = ("backup", "restore")
    why = tool.supports("stream")
    if why:
        return skipped("stream", steps, tool, why)
    base, repo = scenario_dirs(opts, "stream", tool)
    logs = base / "logs"
    untimed(tool, tool.init(repo), logs / "init.log")
    size = corpus.stream.stat().st_size
    b = Result("stream", "backup", tool.name, input_bytes=size)
    results = [b]
    if timed(tool, tool.backup_file(repo, corpus.stream, "stream", "stream"), b, opts,
             [corpus.stream], logs / "backup.log"):
        measure_sizes(tool, repo, b, 0)
        out = base / "restored.tar"
        r = Result("stream", "restore", tool.name, input_bytes=size)
        results.append(r)
        try:
            cmd = tool.restore_file(repo, "stream", out)
        except Exception as e:  # noqa: BLE001 - report and go on with the other tools
            r.note = f"could not build the restore command: {e}"
        else:
            if timed(tool, cmd, r, opts, [repo], logs / "restore.log"):
                r.verified = files_equal(corpus.stream, out)
                r.note = "cmp: identical" if r.verified else "cmp: DIFFERS from the input"
        if not opts.keep:
            out.unlink(missing_ok=True)
    return results


def run_tar(tool: Tool, corpus: Corpus, opts: Options) -> list[Result]:
    steps = ("night1", "night2", "restore night2", "restore night2 to stdout", "check all data")
    why = tool.supports("tar")
    if why:
        return skipped("tar", steps, tool, why)
    base, repo = scenario_dirs(opts, "tar", tool)
    logs = base / "logs"
    untimed(tool, tool.init(repo), logs / "init.log")
    before = du_bytes(repo)
    results: list[Result] = []
    for night, tarfile in (("night1", corpus.night1_tar), ("night2", corpus.night2_tar)):
        res = Result("tar", night, tool.name, input_bytes=tarfile.stat().st_size)
        results.append(res)
        if not timed(tool, tool.backup_file(repo, tarfile, night, "tar"), res, opts, [tarfile],
                     logs / f"{night}.log"):
            return results
        before = measure_sizes(tool, repo, res, before)
        res.note = f"new data = {res.growth_bytes / tarfile.stat().st_size:.1%} of the tar"  # type: ignore[operator]
    out = base / "night2-restored.tar"
    r = Result("tar", "restore night2", tool.name, input_bytes=corpus.night2_tar.stat().st_size)
    results.append(r)
    try:
        cmd = tool.restore_file(repo, "night2", out)
    except Exception as e:  # noqa: BLE001
        r.note = f"could not build the restore command: {e}"
        return results
    if timed(tool, cmd, r, opts, [repo], logs / "restore.log"):
        r.verified = files_equal(corpus.night2_tar, out)
        r.note = "cmp: identical" if r.verified else "cmp: DIFFERS from night2.tar"
    if not opts.keep:
        out.unlink(missing_ok=True)
    r = Result("tar", "restore night2 to stdout", tool.name, input_bytes=corpus.night2_tar.stat().st_size)
    results.append(r)
    if timed(tool, tool.restore_stdout(repo, "night2"), r, opts, [repo], logs / "restore-stdout.log"):
        r.note = "to /dev/null"
    r = Result("tar", "check all data", tool.name, input_bytes=du_bytes(repo))
    results.append(r)
    timed(tool, tool.check_data(repo), r, opts, [repo], logs / "check-data.log")
    return results


def sync_tree(src: Path, dst: Path) -> None:
    """Make dst look like src, rewriting changed files in place (unchanged ones keep inodes)."""
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", "--delete", "--inplace",
                    f"{src}/", f"{dst}/"], check=True)


def run_dir(tool: Tool, corpus: Corpus, opts: Options) -> list[Result]:
    steps = ("night1", "night2", "night2 unchanged", "restore")
    why = tool.supports("dir")
    if why:
        return skipped("dir", steps, tool, why)
    base, repo = scenario_dirs(opts, "dir", tool)
    logs = base / "logs"
    # The source is always the same path (as on a real server): <base>/src/rootfs.
    src_parent = base / "src"
    src_parent.mkdir()
    live = src_parent / "rootfs"
    subprocess.run(["cp", "-a", "--", str(corpus.rootfs1), str(live)], check=True)
    untimed(tool, tool.init(repo), logs / "init.log")
    before = du_bytes(repo)
    results: list[Result] = []
    # (step, archive name, turn the live tree into rootfs-night2 first)
    plan = (("night1", "night1", False), ("night2", "night2", True),
            ("night2 unchanged", "night2-again", False))
    for step, name, to_night2 in plan:
        if to_night2:
            sync_tree(corpus.rootfs2, live)
        res = Result("dir", step, tool.name, input_bytes=du_bytes(live))
        results.append(res)
        if not timed(tool, tool.backup_dir(repo, src_parent, "rootfs", name), res, opts, [live],
                     logs / f"{name}.log"):
            return results
        before = measure_sizes(tool, repo, res, before)
    target = base / "restore"
    target.mkdir()
    r = Result("dir", "restore", tool.name, input_bytes=du_bytes(corpus.rootfs2))
    results.append(r)
    try:
        cmd = tool.restore_dir(repo, "night2-again", target)
    except Exception as e:  # noqa: BLE001
        r.note = f"could not build the restore command: {e}"
        return results
    if timed(tool, cmd, r, opts, [repo], logs / "restore.log"):
        root = find_restored_root(target, live)
        if root is None:
            r.verified, r.note = False, "restored tree not found (no etc/, usr/bin/, var/)"
        else:
            r.verified, r.note = compare_trees(corpus.rootfs2, root)
    if not opts.keep:
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(src_parent, ignore_errors=True)
    return results


RUNNERS = {"stream": run_stream, "tar": run_tar, "dir": run_dir}


def median_runs(runs: list[list[Result]]) -> list[Result]:
    """Per step, the run with the median wall time (its other fields come along), plus all
    the wall times in wall_runs."""
    if len(runs) == 1:
        return runs[0]
    out: list[Result] = []
    for i, first in enumerate(runs[0]):
        same = [r[i] for r in runs if i < len(r) and r[i].step == first.step]
        timed_ok = [r for r in same if r.ok and r.wall_s is not None]
        if not timed_ok:
            out.append(first)
            continue
        timed_ok.sort(key=lambda r: r.wall_s or 0.0)
        pick = timed_ok[(len(timed_ok) - 1) // 2]
        pick.wall_runs = [r.wall_s for r in same if r.wall_s is not None]
        if len(timed_ok) < len(same):
            pick.note += f" ({len(same) - len(timed_ok)} of {len(same)} runs failed)"
        out.append(pick)
    return out


# --------------------------------------------------------------------------- report


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):.1f}"


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def ratios(results: list[Result]) -> list[dict[str, object]]:
    """dedupe against each peer, per step: throughput (peer time / dedupe time), RSS, stored."""
    by = {(r.scenario, r.step, r.tool): r for r in results if r.ok}
    out: list[dict[str, object]] = []
    for (scenario, step, tool), d in by.items():
        if tool != "dedupe":
            continue
        for peer in ("borg", "restic"):
            p = by.get((scenario, step, peer))
            if p is None:
                continue
            row: dict[str, object] = {"scenario": scenario, "step": step, "peer": peer}
            if d.wall_s and p.wall_s:
                row["throughput_ratio"] = round(p.wall_s / d.wall_s, 2)
            if len(d.wall_runs) > 1 and len(d.wall_runs) == len(p.wall_runs):
                # round i ran both tools back to back: its ratio sees the same machine
                paired = sorted(pw / dw for dw, pw in zip(d.wall_runs, p.wall_runs))
                row["paired_ratio_median"] = round(statistics.median(paired), 2)
                row["paired_ratio_range"] = [round(paired[0], 2), round(paired[-1], 2)]
            if d.max_rss_kib and p.max_rss_kib:
                row["rss_ratio"] = round(d.max_rss_kib / p.max_rss_kib, 2)
            if d.growth_bytes is not None and p.growth_bytes:
                row["stored_ratio"] = round(d.growth_bytes / p.growth_bytes, 3)
            out.append(row)
    return out


def table(results: list[Result], scenario: str) -> str:
    rows = [r for r in results if r.scenario == scenario]
    head = (f"{'step':18s} {'tool':7s} {'wall s':>8s} {'MB/s':>8s} {'CPU s':>8s} "
            f"{'RSS MiB':>8s} {'others':>7s} {'repo MiB':>9s} {'new MiB':>8s} {'cache MiB':>9s}  note")
    lines = [f"== {scenario} ==", head, "-" * len(head)]
    for r in rows:
        if r.skipped:
            lines.append(f"{r.step:18s} {r.tool:7s} {'skipped':>8s}  {r.note}")
            continue
        lines.append(
            f"{r.step:18s} {r.tool:7s} {fmt(r.wall_s, '.2f'):>8s} {fmt(r.mb_s, '.0f'):>8s} "
            f"{fmt(r.cpu_s, '.1f'):>8s} {fmt(r.max_rss_kib and r.max_rss_kib / 1024, '.0f'):>8s} "
            f"{fmt(r.other_cpu_s, '.1f'):>7s} "
            f"{mib(r.repo_bytes):>9s} {mib(r.growth_bytes):>8s} {mib(r.cache_bytes):>9s}  "
            f"{'' if r.ok else 'FAILED '}{r.note}"
            + (f" [wall of {len(r.wall_runs)} runs: {', '.join(f'{w:.2f}' for w in r.wall_runs)}]"
               if len(r.wall_runs) > 1 else ""))
    rr = [x for x in ratios(results) if x["scenario"] == scenario]
    if rr:
        lines.append("dedupe vs peer (throughput = peer time / dedupe time, of the medians and, with "
                     "--repeat, the median and range of each round's own; RSS and stored = dedupe / peer):")
        for x in rr:
            paired = ""
            if "paired_ratio_median" in x:
                low, high = x["paired_ratio_range"]  # type: ignore[misc]
                paired = f" (rounds: median {x['paired_ratio_median']}x, {low}-{high}x)"
            lines.append(f"  {x['step']:18s} vs {x['peer']:7s} throughput {x.get('throughput_ratio', '-')}x"
                         f"{paired}  RSS {x.get('rss_ratio', '-')}x  stored {x.get('stored_ratio', '-')}x")
    return "\n".join(lines)


def markdown(results: list[Result], scenarios: Sequence[str], meta: dict[str, object]) -> str:
    """The tables as Markdown: time is the median run, "best" the fastest of the runs."""
    out: list[str] = []
    m = meta.get("machine", {})
    assert isinstance(m, dict)
    out.append(f"Run {meta.get('date')} on {m.get('nproc')} cores ({m.get('cpu')}), "
               f"{m.get('mem_gib')} GiB, {m.get('os')}, kernel {m.get('kernel')}, "
               f"scratch on {m.get('scratch_fs')}; cache {meta.get('cache')}; "
               f"encryption {meta.get('encryption')}; zstd level {meta.get('zstd_level', 3)} "
               f"(dedupe, borg); repeat {meta.get('repeat')}.")
    versions = meta.get("versions", {})
    assert isinstance(versions, dict)
    out.append("Versions: " + "; ".join(f"{k} `{v}`" for k, v in versions.items()) + ".")
    for scenario in scenarios:
        rows = [r for r in results if r.scenario == scenario]
        if not rows:
            continue
        out += ["", f"### {scenario}", "",
                "| step | tool | wall s (median) | wall s (best) | MB/s (median) | CPU s | "
                "peak RSS MiB | others' CPU s | repo MiB | new MiB | cache MiB | note |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if r.skipped:
                out.append(f"| {r.step} | {r.tool} | skipped | | | | | | | | | {r.note} |")
                continue
            best = min(r.wall_runs) if r.wall_runs else None
            rss = r.max_rss_kib / 1024 if r.max_rss_kib else None
            out.append(
                f"| {r.step} | {r.tool} | {fmt(r.wall_s, '.2f')} | {fmt(best, '.2f')} | "
                f"{fmt(r.mb_s, '.0f')} | {fmt(r.cpu_s, '.1f')} | {fmt(rss, '.0f')} | "
                f"{fmt(r.other_cpu_s, '.1f')} | {mib(r.repo_bytes)} | {mib(r.growth_bytes)} | "
                f"{mib(r.cache_bytes)} | {'' if r.ok else 'FAILED '}{r.note.replace('|', '/')} |")
        rr = [x for x in ratios(results) if x["scenario"] == scenario]
        if rr:
            out += ["", "| step | dedupe vs | throughput (peer time / dedupe time) | "
                        "per round: median (range) | peak RSS (dedupe / peer) | stored (dedupe / peer) |",
                    "|---|---|---:|---:|---:|---:|"]
            for x in rr:
                rounds = "-"
                if "paired_ratio_median" in x:
                    low, high = x["paired_ratio_range"]  # type: ignore[misc]
                    rounds = f"{x['paired_ratio_median']} ({low}-{high})"
                out.append(f"| {x['step']} | {x['peer']} | {x.get('throughput_ratio', '-')} | {rounds} | "
                           f"{x.get('rss_ratio', '-')} | {x.get('stored_ratio', '-')} |")
    return "\n".join(out) + "\n"


def load_results(path: Path) -> tuple[dict[str, object], list[Result]]:
    doc = json.loads(path.read_text())
    names = {f for f in Result.__dataclass_fields__}
    results = [Result(**{k: v for k, v in r.items() if k in names}) for r in doc["results"]]
    return doc["meta"], results


def machine_info(scratch: Path) -> dict[str, object]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    fs = subprocess.run(["df", "--output=fstype", str(scratch)], capture_output=True,
                        text=True).stdout.split()[-1]
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "os": platform.freedesktop_os_release().get(
                "PRETTY_NAME", "") if hasattr(platform, "freedesktop_os_release") else "",
            "scratch_fs": fs}


# --------------------------------------------------------------------------- main


def ensure_scaled_corpus(full: Path, scale: float) -> Path:
    d = full / f"scale-{scale:g}"
    if not (d / "corpus.json").exists():
        argv = [sys.executable, str(HERE / "make-corpus.py"), str(d), "--scale", f"{scale:g}"]
        if (full / "rootfs-night1").exists():
            argv += ["--rootfs-source", str(full / "rootfs-night1")]
        log("building the scaled corpus: " + shlex.join(argv))
        subprocess.run(argv, check=True, stdout=sys.stderr)
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="made by make-corpus.py")
    ap.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="repositories go here")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: dedupe,borg,restic")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: stream,tar,dir")
    ap.add_argument("--dedupe", default=str(DEFAULT_DEDUPE))
    ap.add_argument("--borg", default=str(DEFAULT_BORG))
    ap.add_argument("--restic", default="restic")
    ap.add_argument("--scale", type=float, default=None,
                    help="use a smaller corpus, this fraction of the full one (0.1 = ~100 MB "
                         "stream), built under CORPUS/scale-F on first use")
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each timed run")
    ap.add_argument("--zstd-level", type=int, default=3, metavar="N",
                    help="zstd level for dedupe and borg (restic keeps its auto mode)")
    ap.add_argument("--encryption", choices=("none", "on"), default="none",
                    help="none: borg -e none, dedupe --encryption none (restic always encrypts); "
                         "on: borg -e repokey-blake2, dedupe aes-256-gcm, restic as always")
    ap.add_argument("--keep", action="store_true", help="keep restored files and trees")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each scenario N times on fresh repositories; report the median")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                    help="before each timed run wait up to SECONDS for the rest of the machine "
                         "to use under 1/4 core (other sessions share it)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--markdown", type=Path, default=None, help="also write Markdown tables here")
    ap.add_argument("--render", type=Path, default=None, metavar="JSON",
                    help="run nothing: print the tables of an earlier --json file "
                         "(and write --markdown)")
    args = ap.parse_args(argv)

    if args.render is not None:
        meta_r, results_r = load_results(args.render)
        order = [s for s in SCENARIOS if any(r.scenario == s for r in results_r)]
        for scenario in order:
            print(table(results_r, scenario))
            print()
        if args.markdown:
            args.markdown.write_text(markdown(results_r, order, meta_r))
        return 0

    scratch: Path = args.scratch.resolve()
    if str(scratch).startswith("/work/"):
        ap.error("keep the scratch directory outside /work (repositories are big)")
    if not Path(TIME).exists():
        ap.error(f"{TIME} missing: apt-get install time (install-peers.sh does)")
    corpus_dir = args.corpus.resolve()
    if args.scale is not None:
        if not 0 < args.scale < 1:
            ap.error("--scale must be between 0 and 1")
        corpus_dir = ensure_scaled_corpus(corpus_dir, args.scale)
    if not (corpus_dir / "corpus.json").exists():
        ap.error(f"no corpus in {corpus_dir}: run make-corpus.py {corpus_dir}")
    corpus = Corpus.load(corpus_dir)

    scratch.mkdir(parents=True, exist_ok=True)
    exes = {"dedupe": args.dedupe, "borg": args.borg, "restic": args.restic}
    classes: dict[str, type[Tool]] = {"dedupe": Dedupe, "borg": Borg, "restic": Restic}
    tools: list[Tool] = []
    notes: list[str] = []
    for name in [t for t in args.tools.split(",") if t]:
        if name not in classes:
            ap.error(f"unknown tool {name}")
        tool = classes[name](exes[name], scratch / "tool-state" / name,
                             encrypted=args.encryption == "on")
        tool.zstd_level = args.zstd_level
        why = tool.available()
        if why:
            notes.append(f"{name} skipped: {why}")
            log(notes[-1])
            continue
        tools.append(tool)
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in RUNNERS:
            ap.error(f"unknown scenario {s}")

    versions = {t.name: t.version() for t in tools}
    if any(t.name == "restic" for t in tools):
        r = next(t for t in tools if isinstance(t, Restic))
        if not r.no_password:
            notes.append("restic has no --insecure-no-password before 0.17: its repositories "
                         "use a fixed password from RESTIC_PASSWORD (restic always encrypts)")
    cache_mode = "cold (page cache dropped before each timed run)" if args.cold else \
        "warm (input read once before each timed run; nothing dropped)"
    meta: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(scratch),
        "versions": versions,
        "cache": cache_mode,
        "corpus": corpus.meta,
        "scratch": str(scratch),
        "repeat": args.repeat,
        "encryption": args.encryption,
        "zstd_level": args.zstd_level,
        "notes": notes,
    }
    log(f"cache: {cache_mode}")

    results: list[Result] = []
    opts = Options(scratch, args.cold, args.keep, args.wait_idle)
    for scenario in scenarios:
        # Rounds interleave the tools (in turned order every other round), so that a
        # slow spell of the shared machine falls on all of them rather than on one.
        runs: dict[str, list[list[Result]]] = {tool.name: [] for tool in tools}
        failed: set[str] = set()
        for n in range(max(1, args.repeat)):
            for tool in tools if n % 2 == 0 else tools[::-1]:
                if tool.name in failed:
                    continue
                if args.repeat > 1:
                    log(f"{scenario}/{tool.name}: run {n + 1} of {args.repeat}")
                try:
                    runs[tool.name].append(RUNNERS[scenario](tool, corpus, opts=opts))
                except subprocess.CalledProcessError as e:
                    log(f"{scenario}/{tool.name}: setup failed: {e}")
                    runs[tool.name].append([Result(scenario, "setup", tool.name, note=f"setup failed: {e}")])
                    failed.add(tool.name)
        for tool in tools:
            results += median_runs(runs[tool.name])

    print(f"date {meta['date']}; machine {meta['machine']}")
    print(f"versions {versions}")
    print(f"cache: {cache_mode}; encryption: {args.encryption}; corpus {corpus.dir}")
    for note in notes:
        print(f"note: {note}")
    for scenario in scenarios:
        print()
        print(table(results, scenario))
    if args.json:
        doc = {"meta": meta, "results": [asdict(r) | {"mb_s": r.mb_s} for r in results],
               "ratios": ratios(results)}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        log(f"wrote {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(results, scenarios, meta))
        log(f"wrote {args.markdown}")
    return 0 if all(r.ok or r.skipped for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

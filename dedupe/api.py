"""The operations behind the command line, usable without click.

Each function opens what it needs, takes the right lock, calls the engine and
returns plain data; nothing here prints.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from dedupe import locking  # noqa: F401  (api.locking: tests reach the locks through it)
from dedupe.backup.session import BackupResult, BackupSession
from dedupe.errors import DedupeError
from dedupe.locking import locked
from dedupe.maintenance.series import GROUP_BY, describe_series, series_of  # noqa: F401  (for the CLI)
from dedupe.passphrase import ExplicitPassphrase, for_other, for_this
from dedupe.progress import ProgressCallback
from dedupe.repository import AmbiguousBackupId, BackupNotFound, Repository, RunIdNotBackupId
from dedupe.storage.base import Storage
from dedupe.storage.open import open_storage as _open_storage
from repo_format import config, manifest

# Each command imports its own engine (restore, check, browse, directory trees, keys)
# when it runs, so a command loads only what it uses (start-up is part of every
# nightly backup's time: benchmarks/RESULTS.md).
if TYPE_CHECKING:
    from dedupe.restore.browse import Change
    from dedupe.copy import CopyResult
    from dedupe.maintenance.check import CheckReport, DataSubset
    from dedupe.maintenance.gc import GcReport
    from dedupe.maintenance.prune import Policy, PruneResult
    from dedupe.maintenance.repair import IndexRepairReport
    from dedupe.maintenance.repair_backups import BackupsRepairReport
    from dedupe.maintenance.repair_packs import PackRepairReport
    from dedupe.entries import Entry
    from dedupe.maintenance.stats import StatsReport
    from dedupe.sinks.directory import RestoreResult


@dataclass(frozen=True)
class RepoOptions:
    """How to reach and unlock a repository as the command line says it; what it leaves
    out comes from the environment (``$DEDUPE_PASSPHRASE...``, ``$DEDUPE_S3_ENDPOINT``).
    Handed down explicitly: the command line never writes ``os.environ``, so an option
    always wins over a variable."""

    passphrase: ExplicitPassphrase = ExplicitPassphrase()
    s3_endpoint: str | None = None


def open_storage(location: str, options: RepoOptions = RepoOptions(), *, init: bool = False) -> Storage:
    """The storage behind a ``--repo`` value (dedupe.storage.open)."""
    return _open_storage(location, init=init, s3_endpoint=options.s3_endpoint)


def init(location: str, chunker: config.ChunkerParams | None = None, passphrase: bytes | None = None,
         id_key: bytes | None = None, copy_params_from: str | None = None, options: RepoOptions = RepoOptions(),
         copy_params_passphrase: ExplicitPassphrase = ExplicitPassphrase()) -> Repository:
    """A new repository, encrypted when given a passphrase; with ``copy_params_from``,
    sharing that repository's chunker and id key (so copies between them deduplicate)."""
    from dedupe import keymgmt
    if copy_params_from is not None:
        from dedupe.copy import params_of
        source = for_other("DEDUPE_FROM_PASSPHRASE", copy_params_from, copy_params_passphrase)
        chunker, id_key = params_of(open_repo(copy_params_from, source, options))
    return Repository.create(open_storage(location, options, init=True), chunker, passphrase=passphrase,
                             kdf_params=keymgmt.kdf_params(), id_key=id_key)


def open_repo(location: str, passphrase: Callable[[], bytes] | None = None, options: RepoOptions = RepoOptions(),
              load_index: bool = True) -> Repository:
    """Open a repository; the passphrase (asked only if it is encrypted) comes from
    ``passphrase``, else ``options``, else the environment (dedupe.passphrase).
    ``load_index=False``: without the in-memory index (prune and gc read the index
    segment by segment themselves)."""
    return Repository.open(open_storage(location, options), passphrase or for_this(options.passphrase),
                           load_index=load_index)


@dataclass
class BackupInfo:
    id: str
    manifest: manifest.Manifest

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": self.id, "short_id": self.id[:12], "kind": m.kind, "group": m.group,
            "time": dt.datetime.fromtimestamp(m.time_ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds"),
            "time_ns": m.time_ns, "host": m.host, "run": m.run, "size": m.size,
            "new_bytes": m.stats.get("new_bytes", 0), "new_stored": m.stats.get("new_stored", 0),
            "stored_bytes": m.stats.get("stored_bytes", 0), "unique_bytes": m.stats.get("unique_bytes", 0),
            "chunks": m.stats.get("chunks", 0), "items": m.item_count,
            "blake3": m.stream_b3.hex() if m.stream_b3 is not None else None,
            "meta": m.meta, "tags": m.tags, "repaired": _repaired(m),
        }


def _repaired(m: manifest.Manifest) -> dict[str, Any] | None:
    if m.repaired is None:
        return None
    from dedupe.maintenance.repair_backups import describe
    return describe(m)


def repaired_warning(repo: Repository, id_prefix: str) -> str | None:
    """The warning a restore of a repaired backup gives (FORMAT.md 8.4), else None."""
    from dedupe.maintenance.repair_backups import restore_warning
    name = repo.resolve_backup_id(id_prefix)
    return restore_warning(repo.load_manifest(name), name)


def list_backups(repo: Repository, group: str | None = None, run: str | None = None,
                 on_damaged: Callable[[str, DedupeError], None] | None = None) -> list[BackupInfo]:
    """The backups (of ``group`` and the groups below it; of the runs whose id starts with
    ``run``), oldest first. With ``on_damaged``, a manifest that cannot be read is
    reported there and left out instead of failing the whole list."""
    out = []
    run = run.strip().lower() if run is not None else None
    for name in repo.manifest_names():
        try:
            m = repo.load_manifest(name)
        except DedupeError as e:
            if on_damaged is None:
                raise
            on_damaged(name, e)
            continue
        if run is not None and not m.run.startswith(run):
            continue
        if group is None or m.group == group or m.group.startswith(group.rstrip("/") + "/"):
            out.append(BackupInfo(name, m))
    out.sort(key=lambda b: (b.manifest.time_ns, b.id))
    return out


@dataclass
class RunInfo:
    """The backups one ``dedupe backup`` invocation committed (all share its run id), and
    the objects that failed (they commit nothing: known from this machine's records of
    ``backup lxd`` runs, ``record_run``), as {group, error}."""

    run: str
    backups: list[BackupInfo]
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        ms = [b.manifest for b in self.backups]
        return {
            "run": self.run, "short_run": self.run[:12],
            "time_ns": min(m.time_ns for m in ms),
            "time": dt.datetime.fromtimestamp(min(m.time_ns for m in ms) / 1e9, dt.timezone.utc)
            .isoformat(timespec="seconds"),
            "hosts": sorted({m.host for m in ms}),
            "size": sum(m.size for m in ms),
            "new_stored": sum(m.stats.get("new_stored", 0) for m in ms),
            "stored_bytes": sum(m.stats.get("stored_bytes", 0) for m in ms),
            "backups": [b.to_json() for b in self.backups],
            "failed": self.failed,
        }


def group_runs(backups: Iterable[BackupInfo], prefix: str = "") -> list[RunInfo]:
    """``backups`` (oldest first) by run, the runs whose id starts with ``prefix``, oldest
    first: the one grouping behind ``runs`` and the web UI's runs page (its own snapshot)."""
    prefix = prefix.strip().lower()
    by_run: dict[str, list[BackupInfo]] = {}
    for b in backups:
        if b.manifest.run.startswith(prefix):
            by_run.setdefault(b.manifest.run, []).append(b)
    return sorted((RunInfo(r, bs) for r, bs in by_run.items()), key=lambda r: (r.backups[0].manifest.time_ns, r.run))


def runs(repo: Repository, prefix: str = "", group: str | None = None,
         only: Callable[[BackupInfo], bool] | None = None) -> list[RunInfo]:
    """The runs whose id starts with ``prefix`` (all by default), oldest first, each with
    its backups (those of ``group`` and that ``only`` keeps, when given)."""
    return group_runs((b for b in list_backups(repo, group) if only is None or only(b)), prefix)


def failed_objects(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a recorded ``backup lxd`` run failed to back up, as {group, error}."""
    return [{"group": o.get("group"), "error": o["error"]} for o in record.get("objects") or [] if o.get("error")]


def get_run(repo: Repository, prefix: str, group: str | None = None,
            only: Callable[[BackupInfo], bool] | None = None, what: str = "") -> RunInfo:
    """The one run whose id starts with ``prefix``; with ``group``/``only``, among the runs
    of those backups alone (``what`` names them in the errors: "LXD ")."""
    found = runs(repo, prefix, group, only) if prefix.strip() else []
    if not found:
        raise BackupNotFound(f"no {what}backup run {prefix.strip().lower()!r} in {repo.storage.location}")
    if len(found) > 1:
        raise AmbiguousBackupId(f"run id {prefix} is ambiguous: {len(found)} {what}runs start with it")
    run = found[0]
    for rec in records_of(repo, "run"):
        if rec.get("run") == run.run:
            run.failed = failed_objects(rec)
    return run


def get_backup_or_run(repo: Repository, prefix: str) -> BackupInfo | RunInfo:
    """The backup with that id prefix, else the run (``show`` takes either)."""
    try:
        return get_backup(repo, prefix)
    except RunIdNotBackupId:
        return get_run(repo, prefix)


def get_backup(repo: Repository, id_prefix: str) -> BackupInfo:
    name = repo.resolve_backup_id(id_prefix)
    return BackupInfo(name, repo.load_manifest(name))


def session(repo: Repository, kind: str, group: str, progress: ProgressCallback | None = None,
            **kw: Any) -> BackupSession:
    return BackupSession(repo, kind=kind, group=group, progress=progress, **kw)


def do_backup_stream(repo: Repository, group: str, f: BinaryIO, progress: ProgressCallback | None = None,
                     **kw: Any) -> BackupResult:
    from dedupe.backup.stream import backup_stream
    with locked(repo, "backup"):
        with session(repo, manifest.KIND_STREAM, group, progress, **kw) as s:
            return backup_stream(s, f)


def do_backup_tar(repo: Repository, group: str, f: BinaryIO, progress: ProgressCallback | None = None,
                  **kw: Any) -> BackupResult:
    from dedupe.backup.tar import backup_tar
    with locked(repo, "backup"):
        with session(repo, manifest.KIND_TAR, group, progress, **kw) as s:
            return backup_tar(s, f)


def do_backup_dir(repo: Repository, group: str, root: Path, progress: ProgressCallback | None = None,
                  use_files_cache: bool = True, one_file_system: bool = False, excludes: Sequence[str] = (),
                  exclude_caches: bool = False, **kw: Any) -> BackupResult:
    from dedupe.backup.files_cache import FilesCache
    from dedupe.backup.tree import backup_dir
    with locked(repo, "backup"):
        cache = FilesCache(repo, group) if use_files_cache else None
        with session(repo, manifest.KIND_DIR, group, progress, **kw) as s:
            return backup_dir(s, root, files_cache=cache, one_file_system=one_file_system, excludes=excludes,
                              exclude_caches=exclude_caches)


def _stream_writer(m: manifest.Manifest) -> Any:
    """Stream and tar backups give their original bytes; directory backups a PAX tar."""
    from dedupe.read import write_stream
    from dedupe.restore.tree import write_tree_tar
    return write_tree_tar if m.kind == manifest.KIND_DIR else write_stream


def restore_file(repo: Repository, id_prefix: str, path: Path, progress: ProgressCallback | None = None) -> int:
    from dedupe.read import restore_to_file
    b = get_backup(repo, id_prefix)
    with locked(repo, "restore"):
        return restore_to_file(repo, b.manifest, path, b.id, progress, _stream_writer(b.manifest))


def restore_stdout(repo: Repository, id_prefix: str, out: BinaryIO, progress: ProgressCallback | None = None) -> int:
    b = get_backup(repo, id_prefix)
    from dedupe.read import target_error
    with locked(repo, "restore"):
        try:
            n: int = _stream_writer(b.manifest)(repo, b.manifest, out, b.id, progress)
            out.flush()
            return n
        except (BrokenPipeError, DedupeError):
            raise
        except OSError as e:  # standard output's own failures (a full disk under it)
            raise target_error(e, "standard output") from e


def restore_dir(repo: Repository, id_prefix: str, target: Path, paths: list[str] | None = None,
                on_warning: Any = None, numeric_owner: bool = True, snapshot: str | None = None,
                host_ids: bool = False, no_special: bool = False) -> RestoreResult:
    """The tree (or ``paths``) into ``target``. For an LXD instance or volume backup,
    paths as the instance sees them (``/etc/hosts``; ``snapshot``: that snapshot's) land
    below ``target`` with the instance's owners (the host's with ``host_ids``); raw
    ``backup/...`` paths keep the stored layout."""
    from dedupe.restore.instance_view import view_of
    from dedupe.restore.tree import restore_dir as restore_tree_dir
    b = get_backup(repo, id_prefix)
    view = view_of(b.manifest.meta, paths, snapshot, host_ids)
    with locked(repo, "restore"):
        return restore_tree_dir(repo, b.manifest, target, paths, on_warning, numeric_owner, view,
                                f"backup {b.id[:12]}", no_special)


def ls(repo: Repository, id_prefix: str, paths: list[str] | None = None, snapshot: str | None = None,
       host_ids: bool = False) -> list[Entry]:
    """The entries (below ``paths``); an LXD backup as its instance sees it (``restore_dir``)."""
    from dedupe.restore import browse
    from dedupe.restore.instance_view import view_of
    b = get_backup(repo, id_prefix)
    view = view_of(b.manifest.meta, paths, snapshot, host_ids)
    return list(browse.ls(repo, b.manifest, paths, view, f"backup {b.id[:12]}"))


def diff(repo: Repository, old_id: str, new_id: str, paths: list[str] | None = None, snapshot: str | None = None,
         host_ids: bool = False) -> list[Change]:
    from dedupe.restore import browse
    from dedupe.restore.instance_view import view_of
    a, b = get_backup(repo, old_id), get_backup(repo, new_id)
    views = (view_of(a.manifest.meta, paths, snapshot, host_ids), view_of(b.manifest.meta, paths, snapshot, host_ids))
    return browse.diff(repo, a.manifest, b.manifest, paths, views, (f"backup {a.id[:12]}", f"backup {b.id[:12]}"))


def mount(repo: Repository, mountpoint: Path, foreground: bool = True, debug: bool = False,
          on_ready: Callable[[], None] | None = None) -> None:
    """Serve the repository read-only through FUSE at ``mountpoint`` until unmounted;
    ``on_ready`` is called once it is mounted."""
    from dedupe.mount.fs import mount as fuse_mount
    fuse_mount(repo, mountpoint, foreground=foreground, debug=debug, on_ready=on_ready)


def run_check(repo: Repository, read_data: bool, progress: ProgressCallback | None = None,
              subset: DataSubset | None = None) -> CheckReport:
    """``subset``: with ``read_data``, read only the packs it chooses."""
    import time

    from dedupe.maintenance.check import check
    started = time.time()
    with locked(repo, "check"):
        report = check(repo, read_data, progress, subset)
    record_check(repo, report, check_scope(read_data, subset), time.time() - started)
    return report


# -- what the repository does not hold: records of this client (dedupe.records) ------------

def check_scope(read_data: bool, subset: DataSubset | None = None) -> str:
    """``structure``, ``read-data`` or ``read-data-subset N/T`` (``... X%``)."""
    return f"read-data-subset {subset}" if read_data and subset is not None else (
        "read-data" if read_data else "structure")


def record_check(repo: Repository, report: CheckReport, scope: str, duration_s: float) -> None:
    from dedupe import records
    records.append(repo.config.repo_id, "check", {
        "scope": scope, "ok": report.ok, "errors": len(report.errors), "damaged_packs": len(report.damaged_packs),
        "damaged_backups": len(report.damaged_backups), "backups": report.backups, "packs": report.packs,
        "packs_read": report.packs_read, "bytes_read": report.bytes_read, "duration_s": round(duration_s, 3)})


def record_prune_policy(repo: Repository, policy: dict[str, Any]) -> None:
    """The options of a ``prune`` that ran (not a dry run): the UI shows what it would keep now."""
    from dedupe import records
    records.append(repo.config.repo_id, "prune", {"policy": policy})


def record_run(repo: Repository, run: dict[str, Any]) -> None:
    """A ``backup lxd`` run's outcome, failed objects included (they commit nothing)."""
    from dedupe import records
    records.append(repo.config.repo_id, "run", run)


def records_of(repo: Repository, kind: str) -> list[dict[str, Any]]:
    """This client's records of ``kind`` ("check", "prune", "run"), oldest first."""
    from dedupe import records
    return records.read(repo.config.repo_id, kind)


def stats(repo: Repository, patterns: list[str] | None = None,
          backups: Sequence[BackupInfo] | None = None) -> StatsReport:
    """Space per group, host, backup and in total (dedupe.maintenance.stats; reads every
    item stream). ``backups``: every backup (``list_backups``), when already loaded."""
    from dedupe.maintenance.stats import compute
    return compute(repo, patterns, None if backups is None else [(b.id, b.manifest) for b in backups])


def prune_dry_run(repo: Repository, policy: dict[str, Any],
                  backups: Sequence[BackupInfo] | None = None) -> list[dict[str, Any]]:
    """What a recorded prune policy would keep and remove now (``prune --dry-run``), as
    the decisions' JSON (id, keep, reasons ...); ``backups``: those already loaded."""
    from dedupe.maintenance import prune
    from dedupe.maintenance.series import series_group
    rules = prune_rules(policy)
    protected = prune.protected_ids(repo)
    listed = backups if backups is not None else list_backups(repo)
    candidates = [prune.Backup(b.id, b.manifest.group, b.manifest.time_ns, b.id in protected, b.manifest.host,
                               series_group(b.manifest.group, b.manifest.meta))
                  for b in listed]
    plan = prune.plan(candidates, rules, list(policy.get("groups") or []), force=True,
                      group_by=policy.get("group_by", "host,group"))
    return plan.to_json()


def prune_rules(policy: dict[str, Any]) -> Policy:
    """The retention rules of a prune policy as ``prune`` records it (keep_last ...
    keep_within, the duration as text); a bad duration is an error (BadPolicy)."""
    from dedupe.maintenance import prune
    within = policy.get("keep_within")
    return prune.Policy(last=policy.get("keep_last"), hourly=policy.get("keep_hourly"),
                        daily=policy.get("keep_daily"), weekly=policy.get("keep_weekly"),
                        monthly=policy.get("keep_monthly"), yearly=policy.get("keep_yearly"),
                        within=prune.parse_duration(within) if within is not None else None)


# -- maintenance, as the command line runs it ---------------------------------------------

def parse_data_subset(text: str) -> DataSubset:
    """``check --read-data-subset``: ``n/t`` or ``x%`` (BadSubset when neither)."""
    from dedupe.maintenance.check import DataSubset
    return DataSubset.parse(text)


def prune(repo: Repository, rules: Policy, patterns: list[str], *, dry_run: bool = False, force: bool = False,
          max_unused: float | None = None, group_by: str = GROUP_BY[0]) -> PruneResult:
    """Apply ``rules`` to the groups ``patterns`` select, then gc down to ``max_unused``
    (no gc when None). ``repo``: opened without its index (prune reads it itself)."""
    from dedupe.maintenance.gc import GcOptions
    from dedupe.maintenance.prune import run_prune
    return run_prune(repo, rules, patterns, dry_run=dry_run, force=force, group_by=group_by,
                     gc_options=None if max_unused is None else GcOptions(max_unused=max_unused))


def forget(repo: Repository, id_prefixes: list[str]) -> list[str]:
    """Remove these backups (their data is freed by the next gc); their full ids."""
    from dedupe.maintenance.prune import run_forget
    return run_forget(repo, id_prefixes)


def protect(repo: Repository, id_prefix: str, protected: bool) -> str:
    """Protect a backup from prune and forget (or no longer); its full id."""
    from dedupe.maintenance.prune import run_protect
    return run_protect(repo, id_prefix, protected)


def gc(repo: Repository, max_unused: float, dry_run: bool = False) -> GcReport:
    """Free the space no backup references. ``repo``: opened without its index."""
    from dedupe.maintenance.gc import GcOptions
    from dedupe.maintenance.prune import run_gc
    return run_gc(repo, GcOptions(max_unused=max_unused, dry_run=dry_run))


def repair_index(repo: Repository, dry_run: bool = False) -> IndexRepairReport:
    """Rebuild the index from the packs' tables. ``repo``: opened without its index."""
    from dedupe.maintenance.repair import repair_index as run
    return run(repo, dry_run=dry_run)


def repair_packs(repo: Repository, packs: list[str], dry_run: bool = False,
                 progress: ProgressCallback | None = None) -> PackRepairReport:
    """Salvage the named damaged packs (every pack when none is named)."""
    from dedupe.maintenance.repair_packs import repair_packs as run
    return run(repo, packs, dry_run=dry_run, progress=progress)


def repair_backups(repo: Repository, id_prefixes: list[str], dry_run: bool = False,
                   forget: bool = False) -> BackupsRepairReport:
    """Rewrite the backups (every one when none is named) that reference lost chunks."""
    from dedupe.maintenance.repair_backups import repair_backups as run
    return run(repo, id_prefixes, dry_run=dry_run, forget=forget)


def copy(source: Repository, target: Repository, ids: Sequence[str] = (), group: str | None = None,
         progress: ProgressCallback | None = None) -> CopyResult:
    """Copy backups (all, these ids, or a group's) to ``target``, sending only the chunks it lacks."""
    from dedupe.copy import run_copy
    return run_copy(source, target, ids, group, progress)


# -- keys ----------------------------------------------------------------------------------

def change_passphrase(repo: Repository, new_passphrase: bytes) -> None:
    from dedupe import keymgmt
    keymgmt.change_passphrase(repo, new_passphrase)


def export_key(repo: Repository, path: Path) -> None:
    from dedupe import keymgmt
    keymgmt.export_key(repo, path)


def import_key(storage: Storage, path: Path, passphrase: Callable[[], bytes]) -> None:
    from dedupe import keymgmt
    keymgmt.import_key(storage, path, passphrase)


# -- what the command line shows of entries, and the excludes it checks first ---------------

def entry_json(e: Entry) -> dict[str, Any]:
    """One entry of ``ls`` as JSON."""
    from dedupe.restore.browse import entry_json as as_json
    return as_json(e)


def entry_line(e: Entry) -> str:
    """One entry of ``ls`` as a line (ls -l like)."""
    from dedupe.restore.browse import entry_line as as_line
    return as_line(e)


def exclude_patterns(patterns: Sequence[str], files: Sequence[Path]) -> list[str]:
    """``--exclude`` patterns and those of ``--exclude-from`` files, each compiled once
    so that a bad one is an error (BadExclude) before the repository is opened."""
    from dedupe.sources.excludes import compile_pattern, read_exclude_file
    excludes = [*patterns, *(p for f in files for p in read_exclude_file(f))]
    for pattern in excludes:
        compile_pattern(pattern)
    return excludes


# -- what the web UI (dedupe.ui) reads: one backup at a time, a tree, one file -------------

def backup_names(repo: Repository) -> list[str]:
    """The ids of every backup (one listing; nothing decoded)."""
    return repo.manifest_names()


def load_backup(repo: Repository, backup_id: str) -> BackupInfo:
    """One backup by its full id."""
    return BackupInfo(backup_id, repo.load_manifest(backup_id))


def refresh_index(repo: Repository) -> None:
    """Reload the in-memory index if backups or gc changed the index segments since."""
    repo.refresh_index()


def load_index_if_absent(repo: Repository) -> None:
    """Load the index of a repository opened without it (prune, gc) when it has backups."""
    if not repo.packs and repo.manifest_names():
        repo.reload_index()


def lxd_root(path: str) -> tuple[str, str, str] | None:
    """The LXD root an entry path lies in: (root path, label, side), as restores see it."""
    from dedupe.restore.instance_view import lxd_root as root
    return root(path)


def compression_levels() -> tuple[int, int]:
    """The zstd level ``--compression zstd`` means, and the highest one."""
    from repo_format.codecs import DEFAULT_ZSTD_LEVEL, MAX_ZSTD_LEVEL
    return DEFAULT_ZSTD_LEVEL, MAX_ZSTD_LEVEL


def another_handle(repo: Repository) -> Repository:
    """The same repository (storage, keys) with its own in-memory index, for a thread
    that must not share the first one's (a long ``stats`` beside quick page requests)."""
    other = Repository(repo.storage, repo.config, repo.secrets)
    other.reload_index()
    return other


def tree_entries(repo: Repository, m: manifest.Manifest) -> Iterator[tuple[Entry, int]]:
    """Each entry of a tar or directory backup with the bytes of tar data in front of its
    content (``entry_content`` skips them); WrongBackupKind for a stream backup."""
    from dedupe.restore.tree import entries_of
    return entries_of(repo, m)


def entry_content(repo: Repository, entry: Entry, prefix: int = 0) -> Iterator[bytes]:
    """The content of one file entry, every chunk verified, holes of a sparse file as zeros."""
    from dedupe.read import read_chunks
    data_len = sum(n for _, n in entry.sparse) if entry.sparse is not None else entry.size

    def stored() -> Iterator[bytes]:
        skip, left = prefix, data_len
        for piece in read_chunks(repo, entry.chunks):
            if skip:
                cut = min(skip, len(piece))
                skip, piece = skip - cut, piece[cut:]
            piece = piece[:left]
            left -= len(piece)
            if piece:
                yield piece
            if not left:
                return

    if entry.sparse is None:
        yield from stored()
        return
    source, buf, at = stored(), b"", 0
    for offset, length in entry.sparse:
        if offset > at:
            yield from _zeros(offset - at)
        at, left = offset + length, length
        while left:
            if not buf:
                buf = next(source, b"")
                if not buf:
                    return
            piece, buf = buf[:left], buf[left:]
            left -= len(piece)
            yield piece
    if entry.size > at:
        yield from _zeros(entry.size - at)


def _zeros(n: int, piece: int = 1 << 20) -> Iterator[bytes]:
    while n > 0:
        yield bytes(min(n, piece))
        n -= piece


def index_is_current(repo: Repository) -> bool:
    """Whether the index segments are still those ``repo`` loaded (one listing)."""
    from repo_format import layout
    listed = frozenset(n.rsplit("/", 1)[-1] for n, _ in repo.storage.list(layout.INDEX_DIR))
    return listed == repo._listed  # noqa: SLF001  (the repository's record of what it loaded)

"""One ``dedupe backup lxd`` run: the selected objects of an LXD server, one backup each.

Every backup of a run shares its run id and records in ``meta["lxd"]`` the server's
identity (name, certificate fingerprint, LXD and API version, endpoint), the object's
kind, project and name, and the full record as the API gave it (instances: also the
snapshot list and how consistency was obtained; images: aliases, properties and the
exported parts).

Groups (``lxd/global/...`` holds the server-wide objects; a project named ``global``
cannot clash, because no project-scoped kind is a global kind)::

    lxd/<project>/instance/<name>          tar: the instance's backup tarball
    lxd/<project>/volume/<pool>/<name>     tar: a custom volume's backup tarball
    lxd/<project>/image/<fingerprint>      stream: the image file(s) as exported
    lxd/<project>/profile/<name>           stream: canonical JSON of the record
    lxd/<project>/network/<name>           "
    lxd/<project>/network-acl/<name>       "
    lxd/global/project/<name>              "
    lxd/global/storage-pool/<name>         "
    lxd/global/server-config               " (the ``config`` map of GET /1.0)
    lxd/global/database/global             stream: ``lxd sql global .dump``
    lxd/global/database/local              stream: ``lxd sql local .dump``

A split image (metadata + rootfs) is one stream: the two files back to back (their
sha256 together is the fingerprint), with the part names, file names and sizes in
``meta["lxd"]["parts"]``; the LXD restore splits it again.

Instances and volumes: LXD stages an uncompressed backup tarball, which is streamed
straight into the file-aligned tar backup (no temporary file on our side); the
server-side backup is deleted afterwards whatever happens. Projects that share the
default project's images, profiles, networks or volumes (``features.*=false``) have
none of their own: those objects are backed up once, under ``default``.

Running instances: LXD tars the live tree without freezing it (lxd-facts.md 2.1), so a
plain backup holds each file as it was when LXD read it: files written during the
backup may be torn, and files that belong together (a database and its journal) may
come from different moments. Memory and processes are not captured. With
``consistent="freeze"`` the instance's processes are frozen while LXD writes its staged
tarball (about 2 s per GiB) and thawed before we stream it, always, also on errors: the
backup is then the file system as at one instant, like after a power cut.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from dedupe import api
from dedupe.backup import BackupResult, BackupSession, new_run_id
from dedupe.errors import DedupeError
from dedupe.progress import ProgressCallback
from dedupe.repository import Repository
from dedupe.sources.lxd.client import ImageExport, ImagePart, LXDClient, LXDError, Record
from dedupe.sources.stream import backup_stream
from dedupe.sources.tar import backup_tar
from dedupe.sources.tarstream import TarStreamError
from repo_format import manifest

from dedupe.lxd_kinds import CONSISTENCY, KINDS  # noqa: E402  (re-exported)
STALE_AFTER: Final = dt.timedelta(hours=6)  # server-side dedupe-* backups older than this are leftovers


class IncompleteRun(DedupeError):
    """Some objects of an LXD run failed (the others were done)."""

    exit_code = 69

    @classmethod
    def check(cls, action: str, run: str, outcomes: list[tuple[str, str | None]]) -> None:
        """Raise when any (what, error) of a run's outcomes has an error."""
        failed = [f"{what}: {error}" for what, error in outcomes if error is not None]
        if failed:
            raise cls(f"LXD {action} run {run[:12]}: {len(failed)} of {len(outcomes)} objects failed: "
                      + "; ".join(failed))


@dataclass(frozen=True)
class LXDSelection:
    """What one run backs up.

    ``names``: only these instances (searched in the projects in scope); ``project``:
    one project, or None for all; ``only``: a subset of ``KINDS``, or None for the
    default: everything, except that instance names narrow it to instances and config
    records, and that the database dumps come only with runs over all projects on the
    local socket (``/internal/sql`` is not served over HTTPS). Config records of a
    single-project run are its project record, the profiles, networks and ACLs it uses
    (its own, or the default project's when it shares them) and the storage pools
    (what restoring it onto an empty server needs), but not the server config.
    ``instance_only`` leaves the snapshots of instances and volumes out.
    """

    names: tuple[str, ...] = ()
    project: str | None = None
    only: frozenset[str] | None = None
    instance_only: bool = False
    consistent: str = "none"

    def __post_init__(self) -> None:
        unknown = set(self.only or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown LXD object kind(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
        if self.consistent not in CONSISTENCY:
            raise ValueError(f"consistency {self.consistent!r} is not one of {', '.join(CONSISTENCY)}")

    def kinds(self, local: bool) -> frozenset[str]:
        if self.only is not None:
            return self.only
        if self.names:
            return frozenset({"instances", "config"})
        if self.project is not None or not local:
            return frozenset(KINDS) - {"database"}
        return frozenset(KINDS)


@dataclass
class LXDObjectResult:
    group: str
    kind: str
    project: str | None
    name: str
    backup_id: str | None = None
    size: int = 0
    new_bytes: int = 0
    new_stored: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "kind": self.kind, "project": self.project, "name": self.name,
                "id": self.backup_id, "short_id": self.backup_id[:12] if self.backup_id else None,
                "size": self.size, "new_bytes": self.new_bytes, "new_stored": self.new_stored, "error": self.error}


@dataclass
class LXDRunResult:
    run: str
    server: dict[str, Any]
    objects: list[LXDObjectResult] = field(default_factory=list)
    stale_deleted: list[str] = field(default_factory=list)  # leftover server-side backups removed

    @property
    def failures(self) -> list[LXDObjectResult]:
        return [o for o in self.objects if o.error is not None]

    def raise_for_failures(self) -> None:
        IncompleteRun.check("backup", self.run, [(o.group, o.error) for o in self.objects])

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "server": self.server, "objects": [o.to_json() for o in self.objects],
                "failed": len(self.failures), "stale_server_backups_deleted": self.stale_deleted}


# --------------------------------------------------------------------------------------
# Group names


def group_of(kind: str, project: str | None, name: str, pool: str = "") -> str:
    """The group of one LXD object (see the module docstring)."""
    if project is None:
        return f"lxd/global/{kind}" + (f"/{name}" if name else "")
    return f"lxd/{project}/{kind}/" + (f"{pool}/{name}" if pool else name)


def canonical_json(record: Any) -> bytes:
    """The stored form of a config record: sorted keys, two-space indent, final newline."""
    return (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def server_identity(client: LXDClient) -> dict[str, Any]:
    info = client.server_info()
    env = info.get("environment") or {}
    return {"server_name": env.get("server_name", ""), "fingerprint": env.get("certificate_fingerprint", ""),
            "version": env.get("server_version", ""), "api_version": info.get("api_version", ""),
            "endpoint": client.endpoint}


def owner_project(project: Record, feature: str) -> str:
    """Whose objects of a kind a project sees: its own (``features.<feature>=true``, and
    always for ``default``), else the default project's."""
    if project["name"] == "default" or (project.get("config") or {}).get(f"features.{feature}") == "true":
        return str(project["name"])
    return "default"


# --------------------------------------------------------------------------------------
# Jobs: one per object; each runs inside its own BackupSession


Run = Callable[[BackupSession, dict[str, Any]], BackupResult]


@dataclass
class _Job:
    kind: str  # LXD object kind: instance, volume, image, profile, ...
    project: str | None
    name: str
    manifest_kind: str
    run: Run
    pool: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return group_of(self.kind, self.project, self.name, self.pool)


def _record_job(kind: str, project: str | None, name: str, record: Record) -> _Job:
    def run(session: BackupSession, meta: dict[str, Any]) -> BackupResult:
        return backup_stream(session, io.BytesIO(canonical_json(record)))

    return _Job(kind, project, name, manifest.KIND_STREAM, run, meta={"record": record})


def _database_job(client: LXDClient, database: str) -> _Job:
    def run(session: BackupSession, meta: dict[str, Any]) -> BackupResult:
        return backup_stream(session, io.BytesIO(client.sql_dump(database)))  # type: ignore[arg-type]

    return _Job("database", None, database, manifest.KIND_STREAM, run)


@contextmanager
def _frozen(client: LXDClient, name: str, project: str, status: str, mode: str, meta: dict[str, Any]) -> Iterator[None]:
    """Freeze a running instance for the block when asked to; thaw it always."""
    if mode != "freeze" or status != "Running":
        meta["consistency"] = {"Running": "live", "Frozen": "frozen"}.get(status, "stopped")
        yield
        return
    client.freeze(name, project)
    meta["consistency"] = "frozen"
    try:
        yield
    finally:
        client.unfreeze(name, project)


def _instance_job(client: LXDClient, project: str, name: str, sel: LXDSelection) -> _Job:
    def run(session: BackupSession, meta: dict[str, Any]) -> BackupResult:
        record = client.instance(name, project)
        meta["record"] = record
        meta["pool"] = _root_pool(record)
        meta["snapshots"] = [] if sel.instance_only else [s["name"] for s in client.snapshots(name, project)]
        meta["instance_only"] = sel.instance_only
        with ExitStack() as stack:
            with _frozen(client, name, project, str(record.get("status", "")), sel.consistent, meta):
                # entering creates the backup: LXD has staged the whole tarball when it returns
                stream = stack.enter_context(client.instance_backup(name, sel.instance_only, project))
            return backup_tar(session, stream)  # type: ignore[arg-type]

    return _Job("instance", project, name, manifest.KIND_TAR, run)


def _root_pool(record: Record) -> str:
    for dev in (record.get("expanded_devices") or {}).values():
        if dev.get("type") == "disk" and dev.get("path") == "/":
            return str(dev.get("pool", ""))
    return ""


def _volume_job(client: LXDClient, project: str, pool: str, name: str, sel: LXDSelection) -> _Job:
    def run(session: BackupSession, meta: dict[str, Any]) -> BackupResult:
        meta["record"] = client.custom_volume(pool, name, project)
        snaps = [] if sel.instance_only else client.volume_snapshots(pool, name, project)
        meta["snapshots"] = [s["name"].rsplit("/", 1)[-1] for s in snaps]
        meta["instance_only"] = sel.instance_only
        with client.volume_backup(pool, name, sel.instance_only, project) as stream:
            return backup_tar(session, stream)  # type: ignore[arg-type]

    return _Job("volume", project, name, manifest.KIND_TAR, run, pool=pool)


class _ImageReader:
    """The parts of an image export back to back, as one readable; records each part's
    name, file name and size in ``parts`` as it ends."""

    def __init__(self, export: ImageExport, parts: list[dict[str, Any]]) -> None:
        self._iter = export.parts()
        self._part: ImagePart | None = None
        self.parts = parts

    def read(self, n: int = -1, /) -> bytes:
        while True:
            if self._part is None:
                self._part = next(self._iter, None)
                if self._part is None:
                    return b""
            data = self._part.read(n)
            if data:
                return data
            self.parts.append({"name": self._part.name, "filename": self._part.filename, "size": self._part.size})
            self._part = None


def _image_job(client: LXDClient, project: str, record: Record) -> _Job:
    fingerprint = str(record["fingerprint"])

    def run(session: BackupSession, meta: dict[str, Any]) -> BackupResult:
        meta["record"] = rec = client.image(fingerprint, project)
        meta["aliases"] = rec.get("aliases") or []
        meta["properties"] = rec.get("properties") or {}
        meta["parts"] = parts = []
        with client.export_image(fingerprint, project) as export:
            result = backup_stream(session, _ImageReader(export, parts))  # type: ignore[arg-type]
        return result

    # the fingerprint is checked at the end of the last part, before the commit
    return _Job("image", project, fingerprint, manifest.KIND_STREAM, run)


# --------------------------------------------------------------------------------------
# Planning


def _projects_in_scope(client: LXDClient, sel: LXDSelection) -> list[Record]:
    projects = client.projects()
    if sel.project is None:
        return projects
    chosen = [p for p in projects if p["name"] == sel.project]
    if not chosen:
        client.project_record(sel.project)  # raises LXDNotFound naming it
    return chosen


def _plan(client: LXDClient, sel: LXDSelection, kinds: frozenset[str]) -> tuple[list[_Job], list[LXDObjectResult]]:
    """The jobs of a run, records first (cheap, and what a restore needs first), and
    the requested instances that do not exist."""
    projects = _projects_in_scope(client, sel)
    scope = {p["name"] for p in projects}
    jobs: list[_Job] = []
    missing: list[LXDObjectResult] = []

    def owned(feature: str, seen: bool = False) -> list[str]:
        """The projects whose objects of this feature the projects in scope own (or,
        with ``seen``, use: the default project's when they share them), once each."""
        return sorted({o for p in projects if (o := owner_project(p, feature)) in scope or seen})

    if "config" in kinds:
        if sel.project is None:
            jobs.append(_record_job("server-config", None, "", client.server_config()))
        jobs += [_record_job("storage-pool", None, p["name"], p) for p in client.storage_pools()]
        jobs += [_record_job("project", None, p["name"], p) for p in projects]
        # records are small: a project's run keeps the default project's profiles and
        # networks it uses, so that it can be restored onto an empty server
        for proj in owned("profiles", seen=True):
            jobs += [_record_job("profile", proj, r["name"], r) for r in client.profiles(proj)]
        for proj in owned("networks", seen=True):
            jobs += [_record_job("network", proj, r["name"], r) for r in client.networks(proj)]
            jobs += [_record_job("network-acl", proj, r["name"], r) for r in client.network_acls(proj)]
    if "database" in kinds:
        jobs += [_database_job(client, db) for db in ("global", "local")]
    if "images" in kinds:
        for proj in owned("images"):
            jobs += [_image_job(client, proj, r) for r in client.images(proj)]
    if "volumes" in kinds:
        pools = [p["name"] for p in client.storage_pools()]
        for proj in owned("storage.volumes"):
            for pool in pools:
                jobs += [_volume_job(client, proj, pool, v["name"], sel) for v in client.custom_volumes(pool, proj)]
    if "instances" in kinds:
        found: set[str] = set()
        for proj in sorted(scope):
            for inst in client.instances(proj):
                if not sel.names or inst["name"] in sel.names:
                    found.add(inst["name"])
                    jobs.append(_instance_job(client, proj, inst["name"], sel))
        where = f"project {sel.project!r}" if sel.project else "any project"
        for name in sel.names:
            if name not in found:
                group = group_of("instance", sel.project or "default", name)
                missing.append(LXDObjectResult(group, "instance", sel.project, name,
                                               error=f"no instance {name!r} in {where} on {client.endpoint}"))
    return jobs, missing


def _delete_stale(client: LXDClient, jobs: list[_Job]) -> list[str]:
    """Remove server-side backups our crashed runs left behind (hours old) in the
    projects whose instances or volumes this run exports."""
    deleted: list[str] = []
    for proj in sorted({j.project for j in jobs if j.kind in ("instance", "volume") and j.project}):
        try:
            stale = client.delete_stale_backups(project=proj, older_than=STALE_AFTER)
        except LXDError:
            continue  # not worth failing the run for
        deleted += [f"{s.project}/{s.kind}/{s.owner}/{s.name}" for s in stale]
    return deleted


# --------------------------------------------------------------------------------------
# The run


def backup_lxd(repo: Repository, client: LXDClient, selection: LXDSelection,
               progress: ProgressCallback | None = None) -> LXDRunResult:
    """Back up the selected objects, each into its own backup; one failing object
    (LXD error, export cut off, instance gone) commits nothing for itself and does
    not stop the others. Errors of the repository itself stop the run."""
    server = server_identity(client)
    result = LXDRunResult(new_run_id(), server)
    jobs, result.objects = _plan(client, selection, selection.kinds(client.socket_path is not None))
    result.stale_deleted = _delete_stale(client, jobs)
    with api.locked(repo, "backup"):
        for job in jobs:
            result.objects.append(_run_job(repo, job, result.run, server, progress))
    return result


def _run_job(repo: Repository, job: _Job, run: str, server: dict[str, Any],
             progress: ProgressCallback | None) -> LXDObjectResult:
    out = LXDObjectResult(job.group, job.kind, job.project, job.name)
    meta: dict[str, Any] = {"server": server, "kind": job.kind, "project": job.project, "name": job.name,
                            **({"pool": job.pool} if job.pool else {}), **job.meta}
    try:
        with BackupSession(repo, kind=job.manifest_kind, group=job.group, run=run, meta={"lxd": meta},
                           progress=progress) as session:
            done = job.run(session, meta)
    except (LXDError, TarStreamError) as e:
        out.error = str(e)
        return out
    stats = done.manifest.stats
    out.backup_id, out.size = done.id, done.manifest.size
    out.new_bytes, out.new_stored = stats.get("new_bytes", 0), stats.get("new_stored", 0)
    return out

"""Everything of one LXD backup run back into LXD (``dedupe restore --to-lxd --run``),
in dependency order: projects, trusted certificates (which may name projects), storage
pools, network ACLs, network zones (a network's ``dns.zone.forward`` names one),
networks, profiles, images, volumes, instances, server config. Database dumps are not
loaded into LXD (restore them with ``--to-file``: SQLite loads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dedupe.locking import locked
from dedupe.lxd.errors import IncompleteRun, LXDError, LXDRestoreError
from dedupe.lxd.restore import RestoredObject, RestoreOptions, Restorer
from dedupe.lxd.stored import find_run, lxd_meta
from dedupe.progress import ProgressCallback
from dedupe.repository import Repository
from dedupe.lxd.sink.records import GLOBAL_KINDS
from dedupe.lxd.api.client import LXDClient

RUN_ORDER: Final = (
    "project",
    "certificate",
    "storage-pool",
    "network-acl",
    "network-zone",
    "network",
    "profile",
    "image",
    "volume",
    "instance",
    "server-config",
    "database",
)


@dataclass
class RunRestoreResult:
    run: str
    objects: list[RestoredObject]

    def raise_for_failures(self) -> None:
        IncompleteRun.check("restore", self.run, [(o.describe(), o.error) for o in self.objects])


def restore_run(
    repo: Repository, client: LXDClient, run_prefix: str, opts: RestoreOptions, progress: ProgressCallback | None = None
) -> RunRestoreResult:
    """Everything of one run, in dependency order; ``opts.project`` maps the run's one
    project (and its project record) onto that project. A failing object is reported
    and the others go on."""
    if opts.as_name or opts.with_deps:
        raise ValueError("--as and --with-deps go with a single backup, not a run")
    run, backups = find_run(repo, run_prefix)
    # the run's projects: its project records (a project's run also holds the default
    # project's profiles it uses), else the projects of what it holds
    projects = sorted(
        {str(lxd_meta(b)["name"]) for b in backups if lxd_meta(b)["kind"] == "project"}
        or {str(lxd_meta(b).get("project")) for b in backups if lxd_meta(b)["kind"] not in GLOBAL_KINDS}
    )
    if opts.project and len(projects) > 1:
        raise LXDRestoreError(
            f"run {run[:12]} holds projects {', '.join(projects)}: --project maps one project "
            "onto another; restore them one by one"
        )
    backups.sort(
        key=lambda b: (
            RUN_ORDER.index(lxd_meta(b)["kind"]) if lxd_meta(b)["kind"] in RUN_ORDER else len(RUN_ORDER),
            b.manifest.group,
        )
    )
    out: list[RestoredObject] = []
    with locked(repo, "restore"):
        for b in backups:
            meta = lxd_meta(b)
            kind, name = meta["kind"], str(meta["name"])
            sub = opts
            if kind == "database":
                out.append(
                    RestoredObject(
                        kind,
                        None,
                        name,
                        b.id,
                        "skipped",
                        warnings=["database dumps are not loaded into LXD; use --to-file (SQLite loads it)"],
                    )
                )
                continue
            if kind == "project" and opts.project:
                if name not in projects:
                    out.append(RestoredObject(kind, None, name, b.id, "skipped"))
                    continue
                sub = RestoreOptions(as_name=opts.project, pool=opts.pool, force=opts.force)
            try:
                out += Restorer(repo, client, sub, progress).one(b)
            except LXDError as e:
                project = None if kind in GLOBAL_KINDS else (opts.project or meta.get("project"))
                out.append(RestoredObject(kind, project, name, b.id, "failed", error=str(e)))
    return RunRestoreResult(run, out)

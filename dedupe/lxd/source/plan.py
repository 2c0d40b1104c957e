"""What one ``dedupe backup lxd`` run reads: the selection, the projects in scope and
the objects they own, in the order a restore needs them.

Projects that share the default project's images, profiles, networks or volumes
(``features.*=false``) have none of their own: those objects are read once, under
``default``. Server-side backups that crashed runs left behind are cleaned up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from dedupe.lxd.kinds import CONSISTENCY, KINDS
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.errors import LXDError
from dedupe.lxd.source.objects import (
    LXDObject,
    database_object,
    group_of,
    image_object,
    instance_object,
    record_object,
    volume_object,
)
from dedupe.lxd.api.records import Record

STALE_AFTER: Final = dt.timedelta(
    hours=6
)  # server-side dedupe-* backups older than this are leftovers


@dataclass(frozen=True)
class LXDSelection:
    """What one run backs up.

    ``names``: only these instances (searched in the projects in scope); ``project``:
    one project, or None for all; ``only``: a subset of ``KINDS``, or None for the
    default: everything, except that instance names narrow it to instances and config
    records, and that the database dumps come only with runs over all projects on the
    local socket (``/internal/sql`` is not served over HTTPS). Config records of a
    single-project run are its project record, the profiles, networks, network ACLs and
    network zones it uses (its own, or the default project's when it shares them) and the
    storage pools (what restoring it onto an empty server needs), but not the server
    config and the trusted certificates (server-wide: only in runs over all projects).
    ``instance_only`` leaves the snapshots of instances and volumes out.
    ``via``: ``export`` (LXD's backup tarball), ``direct`` (the storage pool read
    directly) or ``auto`` (direct where possible, else the export).
    ``rescan_snapshots``: direct reads walk every snapshot, even those unchanged since
    the previous backup (which are otherwise taken over from it: dedupe.lxd.direct.reuse).
    """

    names: tuple[str, ...] = ()
    project: str | None = None
    only: frozenset[str] | None = None
    instance_only: bool = False
    consistent: str = "none"
    via: str = "auto"  # auto, export, direct: how instances and volumes are read (dedupe.lxd.direct)
    rescan_snapshots: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.only or ()) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown LXD object kind(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}"
            )
        if self.via not in ("auto", "export", "direct"):
            raise ValueError(f"--via {self.via!r} is not one of auto, export, direct")
        if self.consistent not in CONSISTENCY:
            raise ValueError(
                f"consistency {self.consistent!r} is not one of {', '.join(CONSISTENCY)}"
            )

    def kinds(self, local: bool) -> frozenset[str]:
        if self.only is not None:
            return self.only
        if self.names:
            return frozenset({"instances", "config"})
        if self.project is not None or not local:
            return frozenset(KINDS) - {"database"}
        return frozenset(KINDS)


@dataclass(frozen=True)
class MissingObject:
    """An object the selection names that the server does not have."""

    group: str
    kind: str
    project: str | None
    name: str
    error: str


def server_identity(client: LXDClient) -> dict[str, Any]:
    info = client.server_info()
    env = info.get("environment") or {}
    return {
        "server_name": env.get("server_name", ""),
        "fingerprint": env.get("certificate_fingerprint", ""),
        "version": env.get("server_version", ""),
        "api_version": info.get("api_version", ""),
        "endpoint": client.endpoint,
    }


def owner_project(project: Record, feature: str) -> str:
    """Whose objects of a kind a project sees: its own (``features.<feature>=true``, and
    always for ``default``), else the default project's."""
    if (
        project["name"] == "default"
        or (project.get("config") or {}).get(f"features.{feature}") == "true"
    ):
        return str(project["name"])
    return "default"


def projects_in_scope(client: LXDClient, sel: LXDSelection) -> list[Record]:
    projects = client.projects()
    if sel.project is None:
        return projects
    chosen = [p for p in projects if p["name"] == sel.project]
    if not chosen:
        client.project_record(sel.project)  # raises LXDNotFound naming it
    return chosen


def plan(
    client: LXDClient, sel: LXDSelection, kinds: frozenset[str]
) -> tuple[list[LXDObject], list[MissingObject]]:
    """The objects of a run, records first (cheap, and what a restore needs first), and
    the requested instances that do not exist."""
    projects = projects_in_scope(client, sel)
    scope = {p["name"] for p in projects}
    objects: list[LXDObject] = []
    missing: list[MissingObject] = []

    def owned(feature: str, seen: bool = False) -> list[str]:
        """The projects whose objects of this feature the projects in scope own (or,
        with ``seen``, use: the default project's when they share them), once each."""
        return sorted({o for p in projects if (o := owner_project(p, feature)) in scope or seen})

    if "config" in kinds:
        if sel.project is None:
            objects.append(record_object("server-config", None, "", client.server_config()))
            objects += [
                record_object("certificate", None, c["fingerprint"], c) for c in client.certificates()
            ]
        objects += [
            record_object("storage-pool", None, p["name"], p) for p in client.storage_pools()
        ]
        objects += [record_object("project", None, p["name"], p) for p in projects]
        # records are small: a project's run keeps the default project's profiles and
        # networks it uses, so that it can be restored onto an empty server
        for proj in owned("profiles", seen=True):
            objects += [record_object("profile", proj, r["name"], r) for r in client.profiles(proj)]
        for proj in owned("networks", seen=True):
            objects += [record_object("network", proj, r["name"], r) for r in client.networks(proj)]
            objects += [
                record_object("network-acl", proj, r["name"], r) for r in client.network_acls(proj)
            ]
            # each zone with its DNS records (LXD 5.0 keeps zones with the networks)
            objects += [
                record_object("network-zone", proj, r["name"], r) for r in client.network_zones(proj)
            ]
    if "database" in kinds:
        objects += [database_object(client, db) for db in ("global", "local")]
    if "images" in kinds:
        for proj in owned("images"):
            objects += [image_object(client, proj, r) for r in client.images(proj)]
    if "volumes" in kinds:
        pools = [p["name"] for p in client.storage_pools()]
        for proj in owned("storage.volumes"):
            for pool in pools:
                objects += [
                    volume_object(client, proj, pool, v["name"], sel.instance_only)
                    for v in client.custom_volumes(pool, proj)
                ]
    if "instances" in kinds:
        found: set[str] = set()
        for proj in sorted(scope):
            for inst in client.instances(proj):
                if not sel.names or inst["name"] in sel.names:
                    found.add(inst["name"])
                    objects.append(
                        instance_object(
                            client, proj, inst["name"], sel.instance_only, sel.consistent
                        )
                    )
        where = f"project {sel.project!r}" if sel.project else "any project"
        for name in sel.names:
            if name not in found:
                group = group_of("instance", sel.project or "default", name)
                missing.append(
                    MissingObject(
                        group,
                        "instance",
                        sel.project,
                        name,
                        error=f"no instance {name!r} in {where} on {client.endpoint}",
                    )
                )
    return objects, missing


def delete_stale(client: LXDClient, objects: list[LXDObject]) -> list[str]:
    """Remove server-side backups our crashed runs left behind (hours old) in the
    projects whose instances or volumes this run exports."""
    deleted: list[str] = []
    for proj in sorted(
        {o.project for o in objects if o.kind in ("instance", "volume") and o.project}
    ):
        try:
            stale = client.delete_stale_backups(project=proj, older_than=STALE_AFTER)
        except LXDError:
            continue  # not worth failing the run for
        deleted += [f"{s.project}/{s.kind}/{s.owner}/{s.name}" for s in stale]
    return deleted

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
from dedupe.lxd.errors import LXDError, LXDNotFound, NothingToBackUp
from dedupe.lxd.source.objects import (
    LXDObject,
    database_object,
    image_object,
    instance_object,
    record_object,
    volume_object,
)
from dedupe.lxd.api.records import Record, attached_volumes

STALE_AFTER: Final = dt.timedelta(
    hours=6
)  # server-side dedupe-* backups older than this are leftovers


@dataclass(frozen=True)
class LXDSelection:
    """What one run backs up.

    ``names``: only these instances, with the custom volumes they attach, and volumes
    named ``pool/volume`` (searched in the projects in scope); ``project``:
    one project, or None for all; ``only``: a subset of ``KINDS``, or None for the
    default: everything, except that names narrow it to those instances and volumes and
    the config records, and that the database dumps come only with runs over all projects on the
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
            return frozenset({"instances", "volumes", "config"})
        if self.project is not None or not local:
            return frozenset(KINDS) - {"database"}
        return frozenset(KINDS)


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


def plan(client: LXDClient, sel: LXDSelection, kinds: frozenset[str]) -> list[LXDObject]:
    """The objects of a run, records first (cheap, and what a restore needs first), then
    volumes before the instances that attach them. Names that match nothing, and a
    selection with nothing in it but records, are errors (``NothingToBackUp``) raised
    before anything is read."""
    projects = projects_in_scope(client, sel)
    scope = {p["name"] for p in projects}
    objects: list[LXDObject] = []

    def owned(feature: str, seen: bool = False) -> list[str]:
        """The projects whose objects of this feature the projects in scope own (or,
        with ``seen``, use: the default project's when they share them), once each."""
        return sorted({o for p in projects if (o := owner_project(p, feature)) in scope or seen})

    # names first: one that matches nothing stops the run before anything is read
    instances = _chosen_instances(client, sel, scope) if "instances" in kinds or sel.names else []
    wanted = _chosen_volumes(client, sel, projects, instances)
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
            objects += [
                record_object("network", proj, r["name"], r, {"leases": _leases(client, r, sorted(scope))})
                for r in client.networks(proj)
            ]
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
        for proj in sorted({p for p, _, _ in wanted} if sel.names else owned("storage.volumes")):
            for pool in [p["name"] for p in client.storage_pools()]:
                for v in client.custom_volumes(pool, proj):
                    if sel.names and (proj, pool, v["name"]) not in wanted:
                        continue
                    obj = volume_object(client, proj, pool, v["name"], sel.instance_only)
                    obj.reason = wanted.get((proj, pool, v["name"]), "")
                    objects.append(obj)
    if "instances" in kinds:
        objects += [
            instance_object(client, proj, inst["name"], sel.instance_only, sel.consistent)
            for proj, inst in instances
        ]
    if not objects:
        what = ", ".join(sorted(kinds))
        raise NothingToBackUp(
            f"nothing to back up: no {what} in {_where(sel)} on {client.endpoint}"
            + (" (a project that shares the default project's images, volumes, profiles or networks has none of "
               "its own: they are backed up with the default project)" if sel.project not in (None, "default") else "")
        )
    return objects


def _leases(client: LXDClient, network: Record, projects: list[str]) -> list[Record]:
    """A bridge's DHCP leases as the projects of the run see them (LXD lists, per
    project, that project's instances), each with its ``project``; kept in the backup's
    ``meta.lxd.leases``, not in the record: they change all the time and LXD takes none
    back, but they say which instance had which address. An error gives none, not a
    failed run."""
    if network.get("type") != "bridge":
        return []
    out: list[Record] = []
    for proj in projects:
        try:
            leases = client.network_leases(str(network["name"]), proj)
        except LXDError:
            continue
        out += [{**lease, "project": proj} for lease in leases if {**lease, "project": proj} not in out]
    return out


def _where(sel: LXDSelection) -> str:
    return f"project {sel.project!r}" if sel.project else "any project"


def _instance_names(sel: LXDSelection) -> list[str]:
    return [n for n in sel.names if "/" not in n]


def _chosen_instances(client: LXDClient, sel: LXDSelection, scope: set[str]) -> list[tuple[str, Record]]:
    """The instances of the run (project, record): all in scope, or the named ones. A
    name that is neither an instance nor a ``pool/volume`` is an error, raised before
    anything is read (the run commits nothing)."""
    names = _instance_names(sel)
    if sel.names and not names:
        return []
    chosen = [
        (proj, inst) for proj in sorted(scope) for inst in client.instances(proj)
        if not sel.names or inst["name"] in names
    ]
    unknown = sorted(set(names) - {inst["name"] for _, inst in chosen})
    if unknown:
        volumes = {
            v["name"]: pool["name"] for pool in client.storage_pools() for proj in sorted(scope)
            for v in client.custom_volumes(pool["name"], proj)
        }
        hints = [f"; {n!r} is a custom volume: name it {volumes[n]}/{n}" for n in unknown if n in volumes]
        raise NothingToBackUp(
            f"no instance {', '.join(map(repr, unknown))} in {_where(sel)} on {client.endpoint}"
            f"{''.join(hints)}; nothing was backed up"
        )
    return chosen


def _chosen_volumes(
    client: LXDClient, sel: LXDSelection, projects: list[Record], instances: list[tuple[str, Record]]
) -> dict[tuple[str, str, str], str]:
    """With names: the volumes named ``pool/volume`` and those the named instances
    attach, as (project, pool, volume) -> why ("attached to c1"; "" when named)."""
    if not sel.names:
        return {}
    by_name = {p["name"]: p for p in projects}
    wanted: dict[tuple[str, str, str], str] = {}
    for proj, inst in instances:
        owner = owner_project(by_name[proj], "storage.volumes")
        for pool, volume in attached_volumes(inst):
            users = [u for u in [wanted.get((owner, pool, volume), "").removeprefix("attached to ")] if u]
            wanted[(owner, pool, volume)] = "attached to " + ", ".join([*users, inst["name"]])
    unknown = []
    for name in sel.names:
        if "/" not in name:
            continue
        pool, _, volume = name.partition("/")
        found = [
            (owner, pool, volume)
            for owner in sorted({owner_project(p, "storage.volumes") for p in projects})
            if any(v["name"] == volume for v in _volumes_or_none(client, pool, owner))
        ]
        if not found:
            unknown.append(name)
        for key in found:
            wanted.setdefault(key, "")
    if unknown:
        raise NothingToBackUp(
            f"no custom volume {', '.join(map(repr, unknown))} (pool/volume) in {_where(sel)} on "
            f"{client.endpoint}; nothing was backed up"
        )
    return wanted


def _volumes_or_none(client: LXDClient, pool: str, project: str) -> list[Record]:
    try:
        return client.custom_volumes(pool, project)
    except LXDNotFound:  # no such pool
        return []


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

"""One instance or custom volume backed up straight from its storage pool.

``plan_instance`` / ``plan_volume`` decide whether the object can be read here
(``NotDirect`` says why not: the run then takes the export path, or with
``--via direct`` fails the object) and gather what the backup records, the same
``meta["lxd"]`` as an export-based backup plus ``via: direct``. ``back_up`` walks it
into a directory-tree backup of the object's group with a files cache of its own, so
unchanged files are not read and an unchanged snapshot costs one metadata scan.

Consistency: on btrfs the live subvolume is read from a temporary read-only snapshot
(``dedupe.lxd.direct.btrfs``): the file system as at one instant. On dir a running
container is read live, as LXD's own export reads it (each file as it was when read);
``consistent="freeze"`` freezes it for the walk only (btrfs: for the snapshot only).
After the walk the object must still be there, under its name and with the same
``volatile.uuid`` and snapshots; if it was deleted, renamed or changed shape meanwhile,
nothing is committed (``ObjectChanged``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedupe.backup.session import BackupResult, BackupSession
from dedupe.errors import DedupeError
from dedupe.backup.files_cache import FilesCache
from dedupe.lxd.direct import btrfs, index, reuse
from dedupe.idmap import IdMap, IdmapError
from dedupe.lxd.direct.pool import NotDirect, PoolPlace, locate, readable_dir
from dedupe.lxd.direct.tree import Part, Tree, generated, walk_parts
from dedupe.progress import ProgressCallback
from dedupe.repository import Repository
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.errors import LXDNotFound
from dedupe.lxd.source.objects import _root_pool  # the pool of its root disk, as the export path reads it
from dedupe.lxd.api.records import Record
from dedupe.sources.directory import DirectorySourceError
from dedupe.backup.tree import backup_walk
from repo_format import manifest

VIA = ("auto", "export", "direct")


class ObjectChanged(DedupeError):
    """The object was deleted, renamed or changed shape while it was read."""

    exit_code = 64


@dataclass
class DirectPlan:
    """How to read one object from its pool: ``parts()`` gives the layout to walk for
    the block (a btrfs snapshot taken, an instance frozen, while it lasts) and fills in
    ``meta``; ``check()`` raises ``ObjectChanged`` when the object changed meanwhile."""

    meta: dict[str, Any]
    parts: Callable[[], Any]
    check: Callable[[], None]
    place: PoolPlace
    leftovers: list[str] = field(default_factory=list)
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)  # snapshot -> reuse.identity


def _pool_place(client: LXDClient, pool: str) -> PoolPlace:
    lxd_dir = client.socket_path.parent if client.socket_path is not None else None
    if lxd_dir is None:
        raise NotDirect("a remote server: its pools are not on this machine")
    return locate(lxd_dir, pool, str(client.storage_pool(pool).get("driver", "")))


@contextmanager
def _live_volume(place: PoolPlace, path: Path, label: str, meta: dict[str, Any],
                 freeze: Callable[[], Any] | None, stopped: bool = False) -> Iterator[Path]:
    """The live volume's directory to read: on btrfs a temporary read-only snapshot of
    it (``freeze`` held only while it is taken), on dir the directory itself (frozen
    for the whole read when ``freeze`` is given). A stopped container is read in place
    on btrfs too: nothing writes to it, and a fresh snapshot's inodes are all cold
    (its unchanged night took 0.8 s longer than on dir, benchmarks/RESULTS.md)."""
    if place.driver == "btrfs" and not stopped:
        if not btrfs.is_subvolume(path):
            raise NotDirect(f"{path} is not a btrfs subvolume")
        with ExitStack() as stack:
            with freeze() if freeze is not None else ExitStack():
                snap = stack.enter_context(btrfs.readonly_snapshot(place.mount, path, label))
            meta["consistency"] = "snapshot"
            yield snap
        return
    with freeze() if freeze is not None else ExitStack():
        yield path


def plan_instance(client: LXDClient, project: str, name: str, instance_only: bool, consistent: str) -> DirectPlan:
    record = client.instance(name, project)
    if record.get("type", "container") != "container":
        raise NotDirect(f"{name} is a {record.get('type')}: virtual machines are read through the export")
    pool = _root_pool(record)
    place = _pool_place(client, pool)
    leftovers = btrfs.remove_leftovers(place.mount) if place.driver == "btrfs" else []
    instance_dir = readable_dir(place.instance_dir(project, name), f"instance {name}")
    snapshots = [] if instance_only else client.snapshots(name, project)
    snap_names = [str(s["name"]).rsplit("/", 1)[-1] for s in snapshots]
    snap_dirs = [readable_dir(place.instance_snapshot_dir(project, name, s), f"snapshot {name}/{s}")
                 for s in snap_names]
    backup_yaml = (instance_dir / "backup.yaml").read_bytes()
    if not instance_only and index.snapshot_names(backup_yaml) != snap_names:
        # LXD rewrites backup.yaml on every snapshot change; a mismatch is a race with one
        raise NotDirect(f"{instance_dir}/backup.yaml lists other snapshots than LXD ({snap_names})")
    config = record.get("config") or {}
    idmap = IdMap.parse(config.get("volatile.last_state.idmap"))
    uuid = config.get("volatile.uuid")
    status = str(record.get("status", ""))
    meta: dict[str, Any] = {
        "record": record, "pool": pool, "snapshots": snap_names, "instance_only": instance_only,
        "via": "direct", "driver": place.driver,
        "consistency": {"Running": "live", "Frozen": "frozen"}.get(status, "stopped"),
    }
    if idmap:
        meta["idmap_undone"] = config.get("volatile.last_state.idmap")

    def fix_yaml(text: bytes) -> bytes:
        return index.unshifted_backup_yaml(text) if idmap else text

    @contextmanager
    def freeze() -> Iterator[None]:
        with client.frozen(name, project):
            meta["consistency"] = "frozen"
            yield

    @contextmanager
    def parts() -> Iterator[list[Part]]:
        out: list[Part] = []
        for snap, snap_record, snap_dir in zip(snap_names, snapshots, snap_dirs):
            snap_map = IdMap.parse((snap_record.get("config") or {}).get("volatile.last_state.idmap")
                                   or config.get("volatile.last_state.idmap"))
            out.append(_instance_tree(snap_dir, f"backup/snapshots/{snap}", snap_map, fix_yaml, snap))
        wants_freeze = consistent == "freeze" and status == "Running"
        with _live_volume(place, instance_dir, f"{project}_{name}", meta, freeze if wants_freeze else None,
                          stopped=status == "Stopped") as live:
            container = _instance_tree(live, "backup/container", idmap, fix_yaml)
            own_yaml = container.replace["backup.yaml"].content if "backup.yaml" in container.replace else \
                (live / "backup.yaml").read_bytes()
            head = generated("backup/index.yaml", index.instance_index(
                name, place.driver, pool, snap_names, own_yaml), mode=0o644,
                mtime_ns=(live / "backup.yaml").stat().st_mtime_ns)
            yield [head, *out, container]

    def check() -> None:
        try:
            now = client.instance(name, project)
        except LXDNotFound:
            raise ObjectChanged(f"instance {name!r} was deleted or renamed while it was read") from None
        if (now.get("config") or {}).get("volatile.uuid") != uuid:
            raise ObjectChanged(f"instance {name!r} was replaced while it was read")
        if not instance_only and [str(s["name"]).rsplit("/", 1)[-1] for s in client.snapshots(name, project)] \
                != snap_names:
            raise ObjectChanged(f"the snapshots of instance {name!r} changed while it was read")

    identities = {snap: reuse.identity(snap_dir, snap_record.get("created_at"), place.driver)
                  for snap, snap_record, snap_dir in zip(snap_names, snapshots, snap_dirs)}
    return DirectPlan(meta, parts, check, place, leftovers, identities)


def _instance_tree(root: Path, prefix: str, idmap: IdMap, fix_yaml: Callable[[bytes], bytes],
                   snapshot: str = "") -> Tree:
    replace = {}
    if idmap:
        yaml = root / "backup.yaml"
        made = generated(f"{prefix}/backup.yaml", fix_yaml(yaml.read_bytes()), like=yaml)
        replace["backup.yaml"] = made
    return Tree(root, prefix, idmap, "rootfs", replace, snapshot)


def plan_volume(client: LXDClient, project: str, pool: str, name: str, volume_only: bool) -> DirectPlan:
    record = client.custom_volume(pool, name, project)
    if record.get("content_type", "filesystem") != "filesystem":
        raise NotDirect(f"volume {name} holds a block device: read through the export")
    place = _pool_place(client, pool)
    leftovers = btrfs.remove_leftovers(place.mount) if place.driver == "btrfs" else []
    volume_dir = readable_dir(place.volume_dir(project, name), f"volume {name}")
    snapshots = [] if volume_only else client.volume_snapshots(pool, name, project)
    snap_names = [str(s["name"]).rsplit("/", 1)[-1] for s in snapshots]
    snap_dirs = [readable_dir(place.volume_snapshot_dir(project, name, s), f"volume snapshot {name}/{s}")
                 for s in snap_names]
    config = record.get("config") or {}
    idmap = IdMap.parse(config.get("volatile.idmap.last"))
    meta: dict[str, Any] = {"record": record, "snapshots": snap_names, "instance_only": volume_only,
                            "via": "direct", "driver": place.driver, "consistency": "live"}
    if idmap:
        meta["idmap_undone"] = config.get("volatile.idmap.last")

    def unshifted(rec: Record) -> Record:
        cfg = dict(rec.get("config") or {})
        if cfg.get("volatile.idmap.last"):
            cfg["volatile.idmap.last"] = "[]"  # stored unshifted: LXD shifts it when it is attached
        return {**rec, "config": cfg}

    @contextmanager
    def parts() -> Iterator[list[Part]]:
        head = generated("backup/index.yaml", index.volume_index(
            unshifted(record), [unshifted(s) for s in snapshots], place.driver, pool))
        out: list[Part] = [head]
        for snap, snap_record, snap_dir in zip(snap_names, snapshots, snap_dirs):
            snap_map = IdMap.parse((snap_record.get("config") or {}).get("volatile.idmap.last"))
            out.append(Tree(snap_dir, f"backup/volume-snapshots/{snap}", snap_map, "", snapshot=snap))
        with _live_volume(place, volume_dir, f"{project}_{name}", meta, None) as live:
            yield [*out, Tree(live, "backup/volume", idmap, "")]

    def check() -> None:
        try:
            client.custom_volume(pool, name, project)
        except LXDNotFound:
            raise ObjectChanged(f"volume {name!r} was deleted or renamed while it was read") from None

    identities = {snap: reuse.identity(snap_dir, snap_record.get("created_at"), place.driver)
                  for snap, snap_record, snap_dir in zip(snap_names, snapshots, snap_dirs)}
    return DirectPlan(meta, parts, check, place, leftovers, identities)


def back_up(repo: Repository, plan: DirectPlan, group: str, run: str, meta: dict[str, Any],
            progress: ProgressCallback | None, host: str | None, level: int,
            rescan_snapshots: bool = False) -> BackupResult:
    """Walk the planned layout into a directory-tree backup of ``group``; ``meta`` is the
    object's ``meta["lxd"]`` so far, completed by what the plan learns (in place: the
    plan's closures fill its ``meta`` in as the read goes). Snapshots unchanged since
    the previous backup are taken over from it, not walked (``reuse``), unless
    ``rescan_snapshots``; ``meta["snapshots_reused"]`` names them."""
    merged = {**meta, **plan.meta}
    plan.meta.clear()
    plan.meta.update(merged)
    meta = plan.meta
    cache = FilesCache(repo, group)
    previous = {} if rescan_snapshots else reuse.previous_records(repo, group, cache.previous)
    warnings: list[str] = []
    records: dict[str, dict[str, Any]] = {}
    reused: list[str] = []
    with BackupSession(repo, kind=manifest.KIND_DIR, group=group, run=run, meta={"lxd": meta},
                       progress=progress, host=host, level=level) as session:
        with plan.parts() as parts:
            total = 0
            for part in parts:
                snap = part.snapshot if isinstance(part, Tree) else ""
                if not snap:
                    total += backup_walk(session, walk_parts(part, warnings.append), cache)
                    continue
                total += _snapshot_part(session, part, plan.identities[snap], previous.get(snap), cache,
                                        warnings, records, reused)
        cache.walk_done()
        plan.check()
        meta["snapshot_items"] = records  # completed by the marks as the items are written
        meta["snapshots_reused"] = reused
        session.meta["lxd"] = meta  # consistency is known once the walk is done
        result = session.commit(total, None, {"root": str(plan.place.mount)})
    result.warnings = warnings
    cache.save(result.id)
    return result


def _snapshot_part(session: BackupSession, part: Tree, ident: dict[str, Any], previous: dict[str, Any] | None,
                   cache: FilesCache, warnings: list[str], records: dict[str, dict[str, Any]],
                   reused: list[str]) -> int:
    """One snapshot's entries, as whole item chunks of their own: taken over from the
    previous backup when unchanged, else walked. Returns its bytes of content."""
    record: dict[str, Any] = {"id": ident}
    records[part.snapshot] = record

    def start(chunks: int, count: int) -> None:
        record["items"], record["entries"] = [chunks], count

    def end(chunks: int, count: int) -> None:
        record["items"].append(chunks)
        record["entries"] = count - record["entries"]

    session.mark_items(start)
    found = reuse.take(session.repo, previous, ident, part.prefix)
    if found is not None and session.reuse_refs(found.content):
        session.reuse_items(found.refs, found.count)
        cache.carry(part.prefix + "/")
        record["size"] = found.size
        reused.append(part.snapshot)
    else:
        record["size"] = backup_walk(session, walk_parts(part, warnings.append), cache)
    session.mark_items(end)
    return int(record["size"])


def plan_for(client: LXDClient, kind: str, project: str, name: str, pool: str, via: str, instance_only: bool,
             consistent: str) -> tuple[DirectPlan | None, str | None]:
    """The direct plan of an instance or volume, or (None, why it takes the export path).
    ``via``: ``export`` never reads directly; ``auto`` falls back to the export with a
    note; ``direct`` fails the object (``NotDirect``) when it cannot be read directly."""
    if via == "export" or kind not in ("instance", "volume"):
        return None, None
    try:
        if kind == "instance":
            return plan_instance(client, project, name, instance_only, consistent), None
        return plan_volume(client, project, pool, name, instance_only), None
    except NotDirect as e:
        if via == "direct":
            raise NotDirect(f"cannot read it directly: {e}") from None
        return None, f"read through LXD's export: {e}"


# what fails one object of a direct run (the others go on)
OBJECT_ERRORS: tuple[type[Exception], ...] = (NotDirect, ObjectChanged, btrfs.SnapshotFailed, IdmapError,
                                              DirectorySourceError)

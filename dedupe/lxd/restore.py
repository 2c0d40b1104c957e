"""One LXD backup from the repository into LXD (``dedupe restore --to-lxd ID``).

The backup's bytes are verified as they are read (each chunk, and the whole stream's
BLAKE3 before the last piece is sent: on a mismatch the upload is cut and LXD's import
fails, leaving nothing) and handed to ``dedupe.lxd.sink``, which puts them into LXD.
``with_deps``: before an instance, its missing project, storage pool, networks (and
the network zones a recreated network names), profiles and attached custom volumes are
recreated from the backups of the same run; when the instance then fails, what was
created for it is deleted again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from dedupe import api
from dedupe.locking import locked
from dedupe.lxd.direct.pieces import tarball_pieces
from dedupe.lxd.errors import LXDError, LXDRestoreError, NotAnLXDBackup
from dedupe.lxd.stored import lxd_meta, read_record, run_records, split_at, verified_pieces
from dedupe.progress import ProgressCallback
from dedupe.repository import Repository
from dedupe.read import WrongBackupKind
from dedupe.lxd.sink.objects import Imported, import_image, import_instance, import_volume
from dedupe.lxd.sink.records import (
    GLOBAL_KINDS,
    RECORDS,
    delete_record,
    exists,
    record_exists,
    restore_record,
    restore_server_config,
)
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.api.records import Record, attached_volumes


@dataclass(frozen=True)
class RestoreOptions:
    as_name: str | None = None
    project: str | None = None
    pool: str | None = None
    force: bool = False
    with_deps: bool = False
    yes: bool = False  # --recover: also bring back the other unknown volumes of the pool
    start: bool | None = None  # instances: --start (True), --no-start (False); None: as the replaced one ran
    keep_identity: bool = False  # --as copies: keep the original's volatile.uuid, MACs, cloud-init id


@dataclass
class RestoredObject:
    kind: str
    project: str | None
    name: str
    backup_id: str
    action: str  # created, replaced, updated, unchanged, recovered, skipped, failed
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # shown as notes ("it was running: ...")
    notes: list[str] = field(default_factory=list)  # shown as notes, not warnings (--recover --start: "started")
    also: list[str] = field(default_factory=list)  # --recover --yes: the other volumes LXD's recovery brought back

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f" in project {self.project}" if self.project else ""
        return f"{self.kind} {self.name or '(server)'}{where}"


@dataclass
class Restorer:
    """Restores backups into one LXD server with one set of options."""

    repo: Repository
    client: LXDClient
    opts: RestoreOptions
    progress: ProgressCallback | None = None

    def one(self, info: api.BackupInfo) -> list[RestoredObject]:
        """Restore one backup (with its dependencies first when asked)."""
        meta = lxd_meta(info)
        kind = meta["kind"]
        if kind == "database":
            raise WrongBackupKind(
                f"backup {info.id[:12]} is LXD's {meta['name']} database dump, which LXD cannot "
                "load while running; restore it with --to-file (SQLite loads it: README, LXD section)"
            )
        handler = {
            "instance": self._instance,
            "volume": self._volume,
            "image": self._image,
            "server-config": self._server_config,
        }.get(kind, self._record)
        return handler(info, meta)

    def target(self, meta: dict[str, Any]) -> tuple[str, str | None]:
        project = None if meta["kind"] in GLOBAL_KINDS else (self.opts.project or meta.get("project"))
        return self.opts.as_name or str(meta["name"]), project

    def _done(
        self, info: api.BackupInfo, meta: dict[str, Any], name: str, project: str | None, action: str | Imported
    ) -> RestoredObject:
        if isinstance(action, Imported):  # its notes are shown as the object's notes ("it was running: ...")
            return RestoredObject(meta["kind"], project, name, info.id, action.action, warnings=list(action.notes))
        return RestoredObject(meta["kind"], project, name, info.id, action)

    # -- records

    def _record(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        if meta["kind"] not in RECORDS:
            raise NotAnLXDBackup(f"backup {info.id[:12]}: unknown LXD object kind {meta['kind']!r}")
        key = RECORDS[meta["kind"]].key
        if self.opts.as_name and key != "name":
            raise LXDRestoreError(f"--as does not apply to a {meta['kind']}: it is named by its {key}")
        name, project = self.target(meta)
        record = {**read_record(self.repo, info), key: name}
        action = restore_record(self.client, meta["kind"], record, project, self.opts.force)
        return [self._done(info, meta, name, project, action)]

    def _server_config(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        if self.opts.as_name:
            raise LXDRestoreError("--as does not apply to the server config")
        action = restore_server_config(self.client, read_record(self.repo, info), self.opts.force)
        return [self._done(info, meta, "", None, action)]

    # -- images, volumes, instances

    def _image(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        if self.opts.as_name:
            raise LXDRestoreError(
                "--as does not apply to images: an image is named by its fingerprint (its aliases come back with it)"
            )
        fingerprint, project = self.target(meta)
        record: Record = meta.get("record") or {}
        aliases: list[Record] = meta.get("aliases") or record.get("aliases") or []

        def data() -> Any:
            pieces = verified_pieces(self.repo, info, self.progress)
            parts = meta.get("parts") or []
            return split_at(pieces, int(parts[0]["size"])) if len(parts) == 2 else pieces

        action = import_image(self.client, data, fingerprint, project, record, aliases, self.opts.force)
        return [self._done(info, meta, fingerprint, project, action)]

    def _volume(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        name, project = self.target(meta)
        pool = self.opts.pool or str(meta.get("pool", ""))
        action = import_volume(
            self.client, tarball_pieces(self.repo, info, self.progress), pool, name, project, self.opts.force,
            snapshots(meta),
        )
        return [self._done(info, meta, name, project, action)]

    def _instance(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        name, project = self.target(meta)
        assert project is not None
        with self.created_undone_on_failure() as created:
            done = self.deps(info, meta, project, created)
            action = import_instance(
                self.client,
                tarball_pieces(self.repo, info, self.progress),  # an export's tarball, or a direct backup's
                name,
                project,
                self.opts.pool,
                (meta["name"], meta.get("project")),
                self.opts.force,
                snapshots(meta),
                self.opts.start,
                fresh=name != meta["name"] and not self.opts.keep_identity,
            )
        return [*done, self._done(info, meta, name, project, action)]

    # -- dependencies

    @contextlib.contextmanager
    def created_undone_on_failure(self) -> Iterator[list[Created]]:
        """The body records what it creates; when it fails, those are deleted again, the
        last first (best effort: the body's error is the one reported)."""
        created: list[Created] = []
        try:
            yield created
        except BaseException:
            for kind, project, name, pool in reversed(created):
                with contextlib.suppress(LXDError):
                    if kind == "volume":
                        self.client.delete_custom_volume(pool, name, project)
                    else:
                        delete_record(self.client, kind, name, project)
            raise

    def deps(
        self, info: api.BackupInfo, meta: dict[str, Any], project: str, created: list[Created] | None = None
    ) -> list[RestoredObject]:
        """What the instance needs and the target lacks: its project, storage pool,
        networks, profiles and the custom volumes it attaches (in that order). With
        ``with_deps`` they are recreated from the backups of the same run (each one
        created is appended to ``created``); without, a missing one is an error that
        names it (LXD's own does not)."""
        c = self.client
        src = str(meta.get("project") or "default")
        record: Record = meta.get("record") or {}
        pool = self.opts.pool or str(meta.get("pool") or "")
        networks = sorted(
            {
                str(d["network"])
                for d in (record.get("expanded_devices") or {}).values()
                if d.get("type") == "nic" and d.get("network")
            }
        )
        # (kind, target project, target name, where the backup may be in the run)
        needed: list[tuple[str, str | None, str, list[tuple[str, str | None, str]]]] = [
            ("project", None, project, [("project", None, src)])
        ]
        if pool:
            needed.append(("storage-pool", None, pool, [("storage-pool", None, pool)]))
        needed += [("network", project, n, [("network", s, n) for s in (src, "default")]) for n in networks]
        needed += [
            ("profile", project, p, [("profile", s, p) for s in (src, "default")]) for p in record.get("profiles") or []
        ]
        needed += [
            ("volume", project, f"{vpool}/{v}", [("volume", s, v) for s in (src, "default")])
            for vpool, v in attached_volumes(record)
        ]

        def there(kind: str, name: str, target: str | None) -> bool:
            if kind != "volume":
                return record_exists(c, kind, name, target)
            vpool, _, volume = name.partition("/")
            return exists(lambda: c.custom_volume(vpool, volume, target)) is not None

        missing = [(kind, target, name, keys) for kind, target, name, keys in needed if not there(kind, name, target)]
        if missing and not self.opts.with_deps:
            listed = ", ".join(f"{kind} {name!r}" for kind, _, name, _ in missing)
            raise LXDRestoreError(
                f"instance {meta['name']!r} needs {listed}, missing on {c.endpoint}"
                f"{f' in project {project}' if project else ''}; use --with-deps to recreate "
                "them from the same run"
            )
        records = run_records(self.repo, info.manifest.run) if missing else {}
        done: list[RestoredObject] = []
        made = created if created is not None else []

        def recreate(kind: str, target: str | None, name: str, keys: list[tuple[str, str | None, str]],
                     needed_by: str) -> None:
            vpool = name.partition("/")[0] if kind == "volume" else ""
            found = next(
                (records[k] for k in keys if k in records and (not vpool or lxd_meta(records[k]).get("pool") == vpool)),
                None,
            )
            if found is None:
                hint = " (back the instance up by name: its volumes come with it)" if kind == "volume" else ""
                raise LXDRestoreError(
                    f"{kind} {name!r} needed by {needed_by} is missing on "
                    f"{c.endpoint} and not in run {info.manifest.run[:12]}{hint}"
                )
            if kind == "volume":
                vol = Restorer(self.repo, c, RestoreOptions(project=target), self.progress).one(found)
                made.append(("volume", target, name.partition("/")[2], vpool))
                done.extend(vol)
                return
            rec = {**read_record(self.repo, found), "name": name}
            if kind == "network":  # LXD refuses a network that names a zone it lacks
                for zone in network_zones(rec):
                    if not record_exists(c, "network-zone", zone, target):
                        recreate("network-zone", target, zone, [("network-zone", s, zone) for s in (src, "default")],
                                 f"network {name!r}")
            action = restore_record(c, kind, rec, target, force=False)
            if action == "created":
                made.append((kind, target, name, ""))
            done.append(RestoredObject(kind, target, name, found.id, action))

        for kind, target, name, keys in missing:
            recreate(kind, target, name, keys, f"instance {meta['name']!r}")
        return done


# what a --with-deps restore created: (kind, project, name, pool of a volume)
Created = tuple[str, "str | None", str, str]


def snapshots(meta: dict[str, Any]) -> list[str] | None:
    """The snapshot names an instance or volume backup holds (None: an old backup that
    did not record them)."""
    names = meta.get("snapshots")
    return None if names is None else [str(n) for n in names]


ZONE_KEYS = ("dns.zone.forward", "dns.zone.reverse.ipv4", "dns.zone.reverse.ipv6")


def network_zones(record: Record) -> list[str]:
    """The network zones a network's config names (each key holds a comma-separated list)."""
    config = record.get("config") or {}
    names = (z.strip() for key in ZONE_KEYS for z in str(config.get(key) or "").split(","))
    return [z for z in names if z]


def restore_backup(
    repo: Repository,
    client: LXDClient,
    info: api.BackupInfo,
    opts: RestoreOptions,
    progress: ProgressCallback | None = None,
) -> list[RestoredObject]:
    """Restore one LXD backup into LXD (its dependencies first with ``with_deps``)."""
    lxd_meta(info)
    with locked(repo, "restore"):
        return Restorer(repo, client, opts, progress).one(info)

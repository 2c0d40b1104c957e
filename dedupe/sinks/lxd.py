"""Restore LXD objects from the repository into LXD (``dedupe restore --to-lxd``).

What comes back how:

- **instances, custom volumes**: the rebuilt backup tarball is streamed straight into
  LXD's import API (no temporary copy). Every chunk is verified as it is read, and the
  whole stream's BLAKE3 before its last piece is sent: on a mismatch the upload is cut
  and LXD's import fails, leaving nothing. Under a new name (``--as``) or in another
  project, the ``name:``/``project:`` lines of the container and its volume in
  ``backup/index.yaml`` and in every ``backup.yaml`` (the instance's and its
  snapshots') are rewritten textually while streaming (tar header size and checksum
  fixed), so the ``backup.yaml`` LXD stores names the new instance and ``lxd recover``
  accepts it (lxd-facts.md 2.3). ``--pool`` only sets where LXD puts it; the pool
  record inside ``backup.yaml`` is refreshed by LXD at the next change.
- **images**: re-imported (split images as metadata + rootfs again) with the same
  fingerprint, which LXD checks; then properties, public flag, profiles and aliases.
- **config records** (profiles, networks, network ACLs, projects, storage pools):
  created from the record without its read-only fields. **server config**: the keys
  the backup has are set; keys the target has and the backup does not are left.
- something with that name exists: refused unless ``force`` (instances, volumes and
  images are deleted and imported again; records are updated in place; a storage pool
  is never changed). An equal record is "unchanged"; a ``default`` profile that LXD
  made empty (a new project's) is updated without ``force``.
- ``with_deps``: before an instance, its missing project, storage pool, networks and
  profiles are recreated from the record backups of the same run.
- ``restore_run``: everything of one run, in dependency order (projects, storage
  pools, network ACLs, networks, profiles, images, volumes, instances, server config);
  database dumps are not loaded into LXD (restore them with ``--to-file``).
- ``recover_instance``: disaster recovery on this machine: the container's files are
  laid out where its ``dir`` pool keeps them (``containers/[<project>_]<name>`` and
  ``containers-snapshots/...``) by the directory restore, then LXD's recovery
  (``/internal/recover/validate`` and ``/import``) rebuilds its database records from
  ``backup.yaml``. Note that LXD's recovery imports every unknown volume it finds on
  that pool, not only this one.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dedupe import api
from dedupe.entries import FILE, HARDLINK, Entry
from dedupe.errors import DedupeError
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import AmbiguousBackupId, BackupNotFound, Repository
from dedupe.restore import RestoreMismatch, WrongBackupKind, iter_stream_pieces
from dedupe.restore_tree import iter_entries
from dedupe.sinks.directory import DataSource, restore_tree
from dedupe.sources.lxd.client import LXDClient, LXDError, LXDNotFound, Record, RecordKind, strip_read_only
from dedupe.sources.lxd.run import IncompleteRun
from dedupe.sources.tarstream import TarReader
from repo_format.ids import stream_hash

MAX_REWRITE: Final = 16 << 20  # a backup.yaml larger than this is not LXD's


class NotAnLXDBackup(DedupeError):
    """The backup was not made by ``dedupe backup lxd``."""

    exit_code = 68


class LXDObjectExists(LXDError):
    """The target LXD already has an object of that name (and ``force`` was not given)."""


class LXDRestoreError(LXDError):
    """A restore into LXD cannot be done as asked (missing dependency, wrong pool type, ...)."""


@dataclass(frozen=True)
class RestoreOptions:
    as_name: str | None = None
    project: str | None = None
    pool: str | None = None
    force: bool = False
    with_deps: bool = False


@dataclass
class RestoredObject:
    kind: str
    project: str | None
    name: str
    backup_id: str
    action: str  # created, replaced, updated, unchanged, recovered, skipped, failed
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "project": self.project, "name": self.name, "backup_id": self.backup_id,
                "action": self.action, "error": self.error, "warnings": self.warnings}

    def describe(self) -> str:
        where = f" in project {self.project}" if self.project else ""
        return f"{self.kind} {self.name or '(server)'}{where}"


def lxd_meta(info: api.BackupInfo) -> dict[str, Any]:
    """``meta["lxd"]`` of a backup made by ``dedupe backup lxd``, else ``NotAnLXDBackup``."""
    meta = info.manifest.meta.get("lxd")
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str) or "name" not in meta:
        raise NotAnLXDBackup(f"backup {info.id[:12]} ({info.manifest.group}) is not an LXD object; "
                             "restore it with --to-file, --stdout or --to-dir")
    return meta


# --------------------------------------------------------------------------------------
# Verified streams


def verified_pieces(repo: Repository, info: api.BackupInfo,
                    progress: ProgressCallback | None = None) -> Iterator[bytes | memoryview]:
    """The backup's original bytes, each chunk verified; the last piece is held back
    until the size and whole-stream BLAKE3 match the manifest (``RestoreMismatch``
    otherwise), so an upload fed from this never completes with wrong data."""
    m = info.manifest
    hasher = stream_hash()
    done = 0
    held: bytes | memoryview | None = None
    for piece in iter_stream_pieces(repo, m):
        if not len(piece):
            continue
        if held is not None:
            yield held
        held = piece
        hasher.update(piece)
        done += len(piece)
        if progress is not None:
            progress(Progress("restore", info.id[:12], done, m.size))
    if done != m.size:
        raise RestoreMismatch(f"backup {info.id[:12]}: rebuilt {done} bytes, manifest says {m.size}")
    if m.stream_b3 is not None and hasher.digest() != m.stream_b3:
        raise RestoreMismatch(f"backup {info.id[:12]}: rebuilt stream's BLAKE3 does not match the manifest")
    if held is not None:
        yield held


def split_at(pieces: Iterable[bytes | memoryview], size: int) -> tuple[Iterator[bytes | memoryview],
                                                                        Iterator[bytes | memoryview]]:
    """The first ``size`` bytes and the rest, as two iterators to be read in order."""
    it = iter(pieces)
    carry: list[bytes | memoryview] = []

    def head() -> Iterator[bytes | memoryview]:
        left = size
        while left > 0:
            piece = next(it, None)
            if piece is None:
                raise RestoreMismatch(f"image stream ends before its first part's {size} bytes")
            if len(piece) > left:
                carry.append(memoryview(piece)[left:])
                piece = memoryview(piece)[:left]
            left -= len(piece)
            yield piece

    def tail() -> Iterator[bytes | memoryview]:
        yield from carry
        yield from it

    return head(), tail()


# --------------------------------------------------------------------------------------
# Names inside the tarball (backup/index.yaml, backup.yaml)

YamlChanges = dict[tuple[str, ...], str]  # key path -> new scalar value
_KEY_LINE: Final = re.compile(r"^( *)([^\s#:'\"-][^:]*):(?: (.*))?$")
_PLAIN: Final = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_YAML_WORDS: Final = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
_SNAPSHOT_YAML: Final = re.compile(r"^backup/snapshots/[^/]+/backup\.yaml$")


def yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when it cannot be read as anything else."""
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def rewrite_yaml(text: bytes, changes: YamlChanges) -> bytes:
    """Replace the scalar value of the mapping keys at the given key paths, line by
    line, leaving every other byte as LXD wrote it (a YAML library would rewrite its
    timestamps in a form LXD refuses: lxd-facts.md 2.3). Keys inside list items never
    match (their path holds a ``-``)."""
    out: list[bytes] = []
    stack: list[tuple[int, str]] = []  # (indent, key or "-") of the enclosing lines
    for raw in text.split(b"\n"):
        line = raw.decode("utf-8", "surrogateescape")
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        if body.startswith("- ") or body == "-":  # a list item: may sit at its key's indent
            while stack and (stack[-1][0] > indent or stack[-1] == (indent, "-")):
                stack.pop()
            stack.append((indent, "-"))
        elif body and not body.startswith("#"):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            m = _KEY_LINE.match(line)
            if m is not None:
                path = (*(k for _, k in stack), m.group(2))
                stack.append((indent, m.group(2)))
                if path in changes and m.group(3) is not None:
                    raw = f"{m.group(1)}{m.group(2)}: {yaml_scalar(changes[path])}".encode("utf-8", "surrogateescape")
        out.append(raw)
    return b"\n".join(out)


def yaml_changes(path: str, name: str | None, project: str | None) -> YamlChanges | None:
    """What to change in the tar member ``path`` of an instance backup so that it names
    instance ``name`` in ``project`` (either None: unchanged); None for other members."""
    fields = {k: v for k, v in (("name", name), ("project", project)) if v is not None}
    if not fields:
        return None
    if path == "backup/index.yaml":  # the instance and volume records below config:, and name:
        changes = {("config", section, k): v for section in ("container", "volume") for k, v in fields.items()}
        if name is not None:
            changes[("name",)] = name
        return changes
    if path == "backup/container/backup.yaml" or _SNAPSHOT_YAML.match(path):
        return {(section, k): v for section in ("container", "volume") for k, v in fields.items()}
    return None


class _PieceReader:
    """A readable over an iterator of byte pieces."""

    def __init__(self, pieces: Iterable[bytes | memoryview]) -> None:
        self._it = iter(pieces)
        self._buf = b""
        self._pos = 0

    def read(self, n: int = -1, /) -> bytes:
        while self._pos >= len(self._buf):
            piece = next(self._it, None)
            if piece is None:
                return b""
            self._buf, self._pos = bytes(piece), 0
        end = len(self._buf) if n < 0 else self._pos + n
        out = self._buf[self._pos:end]
        self._pos += len(out)
        return out


def _resized_header(header: bytes, size: int, path: str) -> bytes:
    """A one-block ustar header with a new size field and checksum."""
    if len(header) != 512:
        raise LXDRestoreError(f"cannot rewrite {path} in the backup tarball: it has extended headers")
    block = bytearray(header)
    block[124:136] = b"%011o\0" % size
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def rewrite_tar_members(pieces: Iterable[bytes | memoryview],
                        changes_for: Callable[[str], YamlChanges | None]) -> Iterator[bytes | memoryview]:
    """Pass a tar stream through, rewriting the YAML of the members ``changes_for``
    names (see ``rewrite_yaml``); only those small members are held in memory."""
    reader = TarReader(_PieceReader(pieces))
    for member in reader:
        changes = changes_for(member.entry.path) if member.entry.type == FILE else None
        if not changes or member.data_size > MAX_REWRITE:
            yield member.header
            if member.data_size:
                yield from member.iter_raw()
            yield member.padding
            continue
        new = rewrite_yaml(b"".join(member.iter_raw()), changes)
        yield _resized_header(member.header, len(new), member.entry.path)
        yield new
        yield bytes(-len(new) % 512)
    yield from reader.iter_tail()


# --------------------------------------------------------------------------------------
# Config records


@dataclass(frozen=True)
class _RecordAPI:
    strip: RecordKind
    get: Callable[[LXDClient, str, str | None], Record]
    create: Callable[[LXDClient, Record, str | None], None]
    update: Callable[[LXDClient, Record, str | None], None] | None


_RECORDS: Final[dict[str, _RecordAPI]] = {
    "profile": _RecordAPI("profile", lambda c, n, p: c.profile(n, p), lambda c, r, p: c.create_profile(r, p),
                          lambda c, r, p: c.update_profile(r, p)),
    "network": _RecordAPI("network", lambda c, n, p: c.network(n, p), lambda c, r, p: c.create_network(r, p),
                          lambda c, r, p: c.update_network(r, p)),
    "network-acl": _RecordAPI("network_acl", lambda c, n, p: c.network_acl(n, p),
                              lambda c, r, p: c.create_network_acl(r, p), lambda c, r, p: c.update_network_acl(r, p)),
    "project": _RecordAPI("project", lambda c, n, p: c.project_record(n), lambda c, r, p: c.create_project(r),
                          lambda c, r, p: c.update_project(r)),
    "storage-pool": _RecordAPI("storage_pool", lambda c, n, p: c.storage_pool(n),
                               lambda c, r, p: c.create_storage_pool(r), None),
}
GLOBAL_KINDS: Final = frozenset({"project", "storage-pool", "server-config", "database"})
RUN_ORDER: Final = ("project", "storage-pool", "network-acl", "network", "profile", "image", "volume", "instance",
                    "server-config", "database")


def _exists(get: Callable[[], Any]) -> Any | None:
    try:
        return get()
    except LXDNotFound:
        return None


def restore_record(client: LXDClient, kind: str, record: Record, project: str | None, force: bool) -> str:
    """Create (or with ``force`` update) one config record; returns the action."""
    rec_api = _RECORDS[kind]
    name = str(record["name"])
    current = _exists(lambda: rec_api.get(client, name, project))
    where = f" in project {project}" if project and kind not in GLOBAL_KINDS else ""
    if current is None:
        rec_api.create(client, record, project)
        return "created"
    if strip_read_only(rec_api.strip, current) == strip_read_only(rec_api.strip, record):
        return "unchanged"
    made_by_lxd = kind == "profile" and name == "default" and not current.get("config") and not current.get("devices")
    if rec_api.update is None:
        raise LXDObjectExists(f"{kind} {name!r} exists on {client.endpoint} with another definition; "
                              "dedupe does not change storage pools")
    if not (force or made_by_lxd):
        raise LXDObjectExists(f"{kind} {name!r} exists{where} on {client.endpoint} and differs from the backup; "
                              "use --force to replace it")
    rec_api.update(client, record, project)
    return "updated"


def restore_server_config(client: LXDClient, config: dict[str, Any], force: bool) -> str:
    current = client.server_config()
    wanted = strip_read_only("server_config", config)
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return "unchanged"
    clashes = sorted(k for k in changed if k in current)
    if clashes and not force:
        raise LXDObjectExists(f"server config of {client.endpoint} sets {', '.join(clashes)} differently; "
                              "use --force to overwrite")
    client.patch_server_config(changed)
    return "updated"


def _read_record(repo: Repository, info: api.BackupInfo) -> Any:
    data = b"".join(bytes(p) for p in verified_pieces(repo, info))
    try:
        return json.loads(data)
    except ValueError as e:
        raise NotAnLXDBackup(f"backup {info.id[:12]} ({info.manifest.group}): not a JSON record ({e})") from None


# --------------------------------------------------------------------------------------
# One backup into LXD


@dataclass
class _Restore:
    repo: Repository
    client: LXDClient
    opts: RestoreOptions
    progress: ProgressCallback | None = None

    def one(self, info: api.BackupInfo) -> list[RestoredObject]:
        """Restore one backup (with its dependencies first when asked)."""
        meta = lxd_meta(info)
        kind = meta["kind"]
        if kind == "database":
            raise WrongBackupKind(f"backup {info.id[:12]} is LXD's {meta['name']} database dump, which LXD cannot "
                                  "load while running; restore it with --to-file")
        handler = {"instance": self._instance, "volume": self._volume, "image": self._image,
                   "server-config": self._server_config}.get(kind, self._record)
        return handler(info, meta)

    def _target(self, meta: dict[str, Any]) -> tuple[str, str | None]:
        project = None if meta["kind"] in GLOBAL_KINDS else (self.opts.project or meta.get("project"))
        return self.opts.as_name or str(meta["name"]), project

    def _done(self, info: api.BackupInfo, meta: dict[str, Any], name: str, project: str | None,
              action: str) -> RestoredObject:
        return RestoredObject(meta["kind"], project, name, info.id, action)

    # -- records

    def _record(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        if meta["kind"] not in _RECORDS:
            raise NotAnLXDBackup(f"backup {info.id[:12]}: unknown LXD object kind {meta['kind']!r}")
        name, project = self._target(meta)
        record = {**_read_record(self.repo, info), "name": name}
        action = restore_record(self.client, meta["kind"], record, project, self.opts.force)
        return [self._done(info, meta, name, project, action)]

    def _server_config(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        if self.opts.as_name:
            raise LXDRestoreError("--as does not apply to the server config")
        action = restore_server_config(self.client, _read_record(self.repo, info), self.opts.force)
        return [self._done(info, meta, "", None, action)]

    # -- images

    def _image(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        if self.opts.as_name:
            raise LXDRestoreError("--as does not apply to images: an image is named by its fingerprint "
                                  "(its aliases come back with it)")
        c = self.client
        fingerprint, project = self._target(meta)
        record: Record = meta.get("record") or {}
        aliases: list[Record] = meta.get("aliases") or record.get("aliases") or []
        exists = _exists(lambda: c.image(fingerprint, project)) is not None
        taken = {a["name"]: a.get("target") for a in c.image_aliases(project)}
        clashes = [a["name"] for a in aliases if a["name"] in taken and taken[a["name"]] != fingerprint]
        if (exists or clashes) and not self.opts.force:
            what = f"image {fingerprint[:12]}" if exists else f"image alias(es) {', '.join(clashes)}"
            raise LXDObjectExists(f"{what} exist(s) in project {project} on {c.endpoint}; use --force to replace")
        if exists:
            c.delete_image(fingerprint, project)
        for alias in clashes:
            c.delete_image_alias(alias, project)
        pieces = verified_pieces(self.repo, info, self.progress)
        parts = meta.get("parts") or []
        data: Any = split_at(pieces, int(parts[0]["size"])) if len(parts) == 2 else pieces
        c.import_image(data, fingerprint=fingerprint, properties=record.get("properties") or None,
                       public=bool(record.get("public")), filename=record.get("filename"), project=project)
        if record:
            c.update_image(fingerprint, record, project)
        have = {a["name"] for a in c.image_aliases(project)}
        for alias in aliases:
            if alias["name"] not in have:
                c.add_image_alias(alias["name"], fingerprint, alias.get("description", ""), project)
        return [self._done(info, meta, fingerprint, project, "replaced" if exists else "created")]

    # -- instances and volumes

    def _volume(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        c = self.client
        name, project = self._target(meta)
        pool = self.opts.pool or str(meta.get("pool", ""))
        replaced = self._make_room("volume", name, project,
                                   lambda: c.custom_volume(pool, name, project),
                                   lambda: c.delete_custom_volume(pool, name, project))
        c.import_custom_volume(pool, verified_pieces(self.repo, info, self.progress), name=name, project=project)
        return [self._done(info, meta, name, project, "replaced" if replaced else "created")]

    def _instance(self, info: api.BackupInfo, meta: dict[str, Any]) -> list[RestoredObject]:
        c = self.client
        name, project = self._target(meta)
        assert project is not None
        done = self.deps(info, meta, project)

        def delete() -> None:
            if c.instance(name, project).get("status") != "Stopped":
                c.stop(name, force=True, project=project)
            c.delete_instance(name, project)

        replaced = self._make_room("instance", name, project, lambda: c.instance(name, project), delete)
        pieces: Iterable[bytes | memoryview] = verified_pieces(self.repo, info, self.progress)
        new_name = name if name != meta["name"] else None
        new_project = project if project != meta.get("project") else None
        if new_name or new_project:
            pieces = rewrite_tar_members(pieces, lambda path: yaml_changes(path, new_name, new_project))
        c.import_instance(pieces, name=name, pool=self.opts.pool, project=project)
        return [*done, self._done(info, meta, name, project, "replaced" if replaced else "created")]

    def _make_room(self, kind: str, name: str, project: str | None, get: Callable[[], Any],
                   delete: Callable[[], None]) -> bool:
        """True when an object of that name was there (and is now deleted: ``force``)."""
        if _exists(get) is None:
            return False
        if not self.opts.force:
            raise LXDObjectExists(f"{kind} {name!r} exists in project {project} on {self.client.endpoint}; "
                                  "use --force to replace it")
        delete()
        return True

    # -- dependencies

    def deps(self, info: api.BackupInfo, meta: dict[str, Any], project: str) -> list[RestoredObject]:
        """What the instance needs and the target lacks: its project, storage pool,
        networks and profiles (in that order). With ``with_deps`` they are recreated
        from the record backups of the same run; without, a missing one is an error
        that names it (LXD's own does not)."""
        c = self.client
        src = str(meta.get("project") or "default")
        record: Record = meta.get("record") or {}
        pool = self.opts.pool or str(meta.get("pool") or "")
        networks = sorted({str(d["network"]) for d in (record.get("expanded_devices") or {}).values()
                           if d.get("type") == "nic" and d.get("network")})
        # (kind, target project, target name, where the record may be in the run)
        needed: list[tuple[str, str | None, str, list[tuple[str, str | None, str]]]] = [
            ("project", None, project, [("project", None, src)]),
            *([("storage-pool", None, pool, [("storage-pool", None, pool)])] if pool else []),
            *[("network", project, n, [("network", s, n) for s in (src, "default")]) for n in networks],
            *[("profile", project, p, [("profile", s, p) for s in (src, "default")])
              for p in record.get("profiles") or []],
        ]
        missing = [(kind, target, name, keys) for kind, target, name, keys in needed
                   if _exists(functools.partial(_RECORDS[kind].get, c, name, target)) is None]
        if missing and not self.opts.with_deps:
            listed = ", ".join(f"{kind} {name!r}" for kind, _, name, _ in missing)
            raise LXDRestoreError(f"instance {meta['name']!r} needs {listed}, missing on {c.endpoint}"
                                  f"{f' in project {project}' if project else ''}; use --with-deps to recreate "
                                  "them from the same run")
        records = run_records(self.repo, info.manifest.run) if missing else {}
        done: list[RestoredObject] = []
        for kind, target, name, keys in missing:
            found = next((records[k] for k in keys if k in records), None)
            if found is None:
                raise LXDRestoreError(f"{kind} {name!r} needed by instance {meta['name']!r} is missing on "
                                      f"{c.endpoint} and not in run {info.manifest.run[:12]}")
            rec = {**_read_record(self.repo, found), "name": name}
            action = restore_record(c, kind, rec, target, force=False)
            done.append(RestoredObject(kind, target, name, found.id, action))
        return done


def run_records(repo: Repository, run: str) -> dict[tuple[str, str | None, str], api.BackupInfo]:
    """The LXD backups of one run by (kind, project, name)."""
    out: dict[tuple[str, str | None, str], api.BackupInfo] = {}
    for b in api.list_backups(repo, "lxd"):
        meta = b.manifest.meta.get("lxd")
        if b.manifest.run == run and isinstance(meta, dict) and "kind" in meta:
            out[(meta["kind"], meta.get("project"), str(meta.get("name", "")))] = b
    return out


def restore_backup(repo: Repository, client: LXDClient, info: api.BackupInfo, opts: RestoreOptions,
                   progress: ProgressCallback | None = None) -> list[RestoredObject]:
    """Restore one LXD backup into LXD (its dependencies first with ``with_deps``)."""
    lxd_meta(info)
    with api.locked(repo, "restore"):
        return _Restore(repo, client, opts, progress).one(info)


# --------------------------------------------------------------------------------------
# A whole run


@dataclass
class RunRestoreResult:
    run: str
    objects: list[RestoredObject]

    def raise_for_failures(self) -> None:
        IncompleteRun.check("restore", self.run, [(o.describe(), o.error) for o in self.objects])


def find_run(repo: Repository, prefix: str) -> tuple[str, list[api.BackupInfo]]:
    """The run whose id starts with ``prefix``, and its LXD backups."""
    prefix = prefix.strip().lower()
    backups = [b for b in api.list_backups(repo, "lxd")
               if b.manifest.run.startswith(prefix) and isinstance(b.manifest.meta.get("lxd"), dict)]
    runs = sorted({b.manifest.run for b in backups})
    if not prefix or not runs:
        raise BackupNotFound(f"no LXD backup run {prefix!r} in {repo.storage.location}")
    if len(runs) > 1:
        raise AmbiguousBackupId(f"run id {prefix} is ambiguous: {len(runs)} LXD runs start with it")
    return runs[0], backups


def restore_run(repo: Repository, client: LXDClient, run_prefix: str, opts: RestoreOptions,
                progress: ProgressCallback | None = None) -> RunRestoreResult:
    """Everything of one run, in dependency order; ``opts.project`` maps the run's one
    project (and its project record) onto that project. A failing object is reported
    and the others go on."""
    if opts.as_name or opts.with_deps:
        raise ValueError("--as and --with-deps go with a single backup, not a run")
    run, backups = find_run(repo, run_prefix)
    # the run's projects: its project records (a project's run also holds the default
    # project's profiles it uses), else the projects of what it holds
    projects = sorted({str(lxd_meta(b)["name"]) for b in backups if lxd_meta(b)["kind"] == "project"}
                      or {str(lxd_meta(b).get("project")) for b in backups if lxd_meta(b)["kind"] not in GLOBAL_KINDS})
    if opts.project and len(projects) > 1:
        raise LXDRestoreError(f"run {run[:12]} holds projects {', '.join(projects)}: --project maps one project "
                              "onto another; restore them one by one")
    backups.sort(key=lambda b: (RUN_ORDER.index(lxd_meta(b)["kind"]) if lxd_meta(b)["kind"] in RUN_ORDER
                                else len(RUN_ORDER), b.manifest.group))
    out: list[RestoredObject] = []
    with api.locked(repo, "restore"):
        for b in backups:
            meta = lxd_meta(b)
            kind, name = meta["kind"], str(meta["name"])
            sub = opts
            if kind == "database":
                out.append(RestoredObject(kind, None, name, b.id, "skipped",
                                          warnings=["database dumps are not loaded into LXD; use --to-file"]))
                continue
            if kind == "project" and opts.project:
                if name not in projects:
                    out.append(RestoredObject(kind, None, name, b.id, "skipped"))
                    continue
                sub = RestoreOptions(as_name=opts.project, pool=opts.pool, force=opts.force)
            try:
                out += _Restore(repo, client, sub, progress).one(b)
            except LXDError as e:
                project = None if kind in GLOBAL_KINDS else (opts.project or meta.get("project"))
                out.append(RestoredObject(kind, project, name, b.id, "failed", error=str(e)))
    return RunRestoreResult(run, out)


# --------------------------------------------------------------------------------------
# Disaster recovery: files into the pool, then LXD's recovery


def pool_path(path: str, dirname: str) -> str | None:
    """Where tar member ``path`` of a container backup goes in a dir pool (None: nowhere)."""
    if path in ("backup", "backup/index.yaml", "backup/snapshots"):
        return None
    head, _, rest = path.partition("/")
    if head == "backup":
        top, _, below = rest.partition("/")
        if top == "container":
            return f"containers/{dirname}" + (f"/{below}" if below else "")
        if top == "snapshots":
            return f"containers-snapshots/{dirname}/{below}"
    raise LXDRestoreError(f"--recover restores containers; {path!r} is not part of a container backup")


def _recover_entries(entries: Iterable[tuple[Entry, DataSource]], dirname: str,
                     changes_for: Callable[[str], YamlChanges | None]) -> Iterator[tuple[Entry, DataSource]]:
    for entry, data in entries:
        target = pool_path(entry.path, dirname)
        if target is None:
            continue
        changes = changes_for(entry.path) if entry.type == FILE and data is not None else None
        if changes and data is not None:
            content = rewrite_yaml(b"".join(data()), changes)
            entry = entry.replace(size=len(content))
            data = functools.partial(iter, [content])
        link = pool_path(entry.link, dirname) if entry.type == HARDLINK else None
        yield entry.replace(path=target, link=link or entry.link), data


def recover_instance(repo: Repository, client: LXDClient, info: api.BackupInfo, opts: RestoreOptions,
                     on_warning: Callable[[str], None] | None = None) -> list[RestoredObject]:
    """Lay a container backup out in its dir pool and let LXD recover it (see the
    module docstring). Files laid out by a recovery that then fails are removed."""
    meta = lxd_meta(info)
    if meta["kind"] != "instance":
        raise WrongBackupKind(f"backup {info.id[:12]} is an LXD {meta['kind']}: --recover restores instances")
    if client.socket_path is None:
        raise LXDRestoreError("--recover writes into the storage pool on this machine: it needs the local LXD "
                              f"socket, not {client.endpoint}")
    restore = _Restore(repo, client, opts)
    name, project = restore._target(meta)
    assert project is not None
    pool = opts.pool or str(meta.get("pool") or "default")
    pool_record = client.storage_pool(pool)
    if pool_record.get("driver") != "dir":
        raise LXDRestoreError(f"--recover lays files out for dir pools; pool {pool!r} is {pool_record.get('driver')}")
    if _exists(lambda: client.instance(name, project)) is not None:
        raise LXDObjectExists(f"instance {name!r} exists in project {project} on {client.endpoint}: --recover is "
                              "for instances LXD lost; restore without --recover (and --force) to replace it")
    source = Path(pool_record["config"]["source"])
    dirname = name if project == "default" else f"{project}_{name}"
    dirs = [source / "containers" / dirname, source / "containers-snapshots" / dirname]
    if any(os.path.lexists(d) for d in dirs):
        if not opts.force:
            raise LXDObjectExists(f"{dirs[0]} (or its snapshots) exists in pool {pool!r}; use --force to replace it")
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    with api.locked(repo, "restore"):
        done = restore.deps(info, meta, project)
        new_name = name if name != meta["name"] else None
        new_project = project if project != meta.get("project") else None
        imported = False
        try:
            entries = _recover_entries(iter_entries(repo, info.manifest), dirname,
                                       lambda path: yaml_changes(path, new_name, new_project))
            result = restore_tree(source, entries, on_warning=on_warning, numeric_owner=True)
            if os.path.isdir(dirs[1]):
                os.chmod(dirs[1], 0o700)
            others = _recover(client, pool, name, project)
            imported = True
        finally:
            if not imported:
                for d in dirs:
                    shutil.rmtree(d, ignore_errors=True)
    obj = RestoredObject("instance", project, name, info.id, "recovered", warnings=result.warnings)
    obj.warnings += [f"LXD's recovery also brought back {o}" for o in others]
    return [*done, obj]


def _recover(client: LXDClient, pool: str, name: str, project: str) -> list[str]:
    """Validate and import; returns the other volumes LXD recovered along with ours."""
    pools = [{"name": pool}]
    report = client.recover_validate(pools)
    unknown = report.get("UnknownVolumes") or report.get("unknown_volumes") or []
    missing = report.get("DependencyErrors") or report.get("dependency_errors") or []
    ours = [v for v in unknown if v.get("name") == name and v.get("project") == project]
    if not ours:
        raise LXDRestoreError(f"LXD's recovery does not find instance {name!r} of project {project} in pool {pool!r}")
    if missing:
        raise LXDRestoreError(f"LXD's recovery of {name!r} needs {'; '.join(map(str, missing))} "
                              "(use --with-deps to recreate them from the same run)")
    client.recover_import(pools)
    return [f"{v.get('type')} {v.get('name')} (project {v.get('project')})" for v in unknown if v not in ours]

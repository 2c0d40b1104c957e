"""The objects of an LXD backup run, each with its group and a way to read it as a stream.

Groups (``lxd/global/...`` holds the server-wide objects; a project named ``global``
cannot clash, because no project-scoped kind is a global kind)::

    lxd/<project>/instance/<name>          tar: the instance's backup tarball
    lxd/<project>/instance-only/<name>     tar: the same without snapshots (--instance-only)
    lxd/<project>/volume/<pool>/<name>     tar: a custom volume's backup tarball
    lxd/<project>/volume-only/<pool>/<name>  tar: the same without snapshots
    lxd/<project>/image/<fingerprint>      stream: the image file(s) as exported
    lxd/<project>/profile/<name>           stream: canonical JSON of the record
    lxd/<project>/network/<name>           "
    lxd/<project>/network-acl/<name>       "
    lxd/<project>/network-zone/<name>      " (the zone, its DNS records in ``records``)
    lxd/global/project/<name>              "
    lxd/global/storage-pool/<name>         "
    lxd/global/certificate/<fingerprint>   " (a trusted certificate, PEM as GET gives it)
    lxd/global/server-config               " (the ``config`` map of GET /1.0)
    lxd/global/database/global             stream: ``lxd sql global .dump``
    lxd/global/database/local              stream: ``lxd sql local .dump``

A split image (metadata + rootfs) is one stream: the two files back to back (their
sha256 together is the fingerprint, checked at the end of the last part), with the
part names, file names and sizes in ``meta["parts"]``; the LXD restore splits it again.

Instances and volumes: LXD stages an uncompressed backup tarball, which is streamed
out as it is read (no temporary file on our side); the server-side backup is deleted
when the stream is left, whatever happens.

Running instances: LXD tars the live tree without freezing it (docs/lxd.md section 2.1), so a
plain backup holds each file as it was when LXD read it: files written during the
backup may be torn, and files that belong together (a database and its journal) may
come from different moments. Memory and processes are not captured. With
``consistent="freeze"`` the instance's processes are frozen while LXD writes its staged
tarball (about 2 s per GiB) and thawed before we stream it, always, also on errors: the
backup is then the file system as at one instant, like after a power cut.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.api.records import Record
from dedupe.lxd.api.streams import ImageReader
from dedupe.lxd.api.uploads import SupportsRead
from repo_format import manifest

# ``open(meta)``: the object's bytes as a readable, ``meta`` filled as they are learnt
Opener = Callable[[dict[str, Any]], AbstractContextManager[SupportsRead]]


def group_of(kind: str, project: str | None, name: str, pool: str = "", only: bool = False) -> str:
    """The group of one LXD object (see the module docstring); ``only``: an instance or
    volume without its snapshots, a series of its own (``instance-only``, ``volume-only``)."""
    if project is None:
        return f"lxd/global/{kind}" + (f"/{name}" if name else "")
    return f"lxd/{project}/{kind}{'-only' if only else ''}/" + (f"{pool}/{name}" if pool else name)


def canonical_json(record: Any) -> bytes:
    """The stored form of a config record: sorted keys, two-space indent, final newline."""
    return (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass
class LXDObject:
    """One object of a run. ``open(meta)`` is a context manager giving its bytes (of
    ``manifest_kind``: a tarball or a plain stream) and filling ``meta`` (the record as
    read, snapshots, ...); leaving it cleans up on the LXD side (server-side backup
    deleted). ``meta`` starts as a copy of the fields known when planning."""

    kind: str  # LXD object kind: instance, volume, image, profile, ...
    project: str | None
    name: str
    manifest_kind: str
    open: Opener
    pool: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why a named run holds it: "attached to c1"
    only: bool = False  # an instance or volume without its snapshots (--instance-only)

    @property
    def group(self) -> str:
        return group_of(self.kind, self.project, self.name, self.pool, self.only)


def record_object(
    kind: str, project: str | None, name: str, record: Record, meta: dict[str, Any] | None = None
) -> LXDObject:
    """A config record, stored without ``used_by``: LXD computes it (a restore ignores it),
    and for profiles, networks and pools it names every project's instances, so it would
    change whenever any project changes and show other projects' instance names."""
    record = {k: v for k, v in record.items() if k != "used_by"}

    @contextmanager
    def open_(meta: dict[str, Any]) -> Iterator[SupportsRead]:
        yield io.BytesIO(canonical_json(record))

    return LXDObject(kind, project, name, manifest.KIND_STREAM, open_, meta={"record": record, **(meta or {})})


def database_object(client: LXDClient, database: str) -> LXDObject:
    @contextmanager
    def open_(meta: dict[str, Any]) -> Iterator[SupportsRead]:
        yield io.BytesIO(client.sql_dump(database))  # type: ignore[arg-type]

    return LXDObject("database", None, database, manifest.KIND_STREAM, open_)


@contextmanager
def _frozen(
    client: LXDClient, name: str, project: str, status: str, mode: str, meta: dict[str, Any]
) -> Iterator[None]:
    """Freeze a running instance for the block when asked to; thaw it always."""
    if mode != "freeze" or status != "Running":
        meta["consistency"] = {"Running": "live", "Frozen": "frozen"}.get(status, "stopped")
        yield
        return
    with client.frozen(name, project):
        meta["consistency"] = "frozen"
        yield


def instance_object(
    client: LXDClient, project: str, name: str, instance_only: bool, consistent: str
) -> LXDObject:
    @contextmanager
    def open_(meta: dict[str, Any]) -> Iterator[SupportsRead]:
        record = client.instance(name, project)
        meta["record"] = record
        meta["pool"] = _root_pool(record)
        meta["snapshots"] = (
            [] if instance_only else [s["name"] for s in client.snapshots(name, project)]
        )
        meta["instance_only"] = instance_only
        with ExitStack() as stack:
            with _frozen(client, name, project, str(record.get("status", "")), consistent, meta):
                # entering creates the backup: LXD has staged the whole tarball when it returns
                stream = stack.enter_context(client.instance_backup(name, instance_only, project))
            yield stream

    return LXDObject("instance", project, name, manifest.KIND_TAR, open_, only=instance_only)


def _root_pool(record: Record) -> str:
    for dev in (record.get("expanded_devices") or {}).values():
        if dev.get("type") == "disk" and dev.get("path") == "/":
            return str(dev.get("pool", ""))
    return ""


def volume_object(
    client: LXDClient, project: str, pool: str, name: str, volume_only: bool
) -> LXDObject:
    @contextmanager
    def open_(meta: dict[str, Any]) -> Iterator[SupportsRead]:
        meta["record"] = client.custom_volume(pool, name, project)
        snaps = [] if volume_only else client.volume_snapshots(pool, name, project)
        meta["snapshots"] = [s["name"].rsplit("/", 1)[-1] for s in snaps]
        meta["instance_only"] = volume_only
        with client.volume_backup(pool, name, volume_only, project) as stream:
            yield stream

    return LXDObject("volume", project, name, manifest.KIND_TAR, open_, pool=pool, only=volume_only)


def image_object(client: LXDClient, project: str, record: Record) -> LXDObject:
    fingerprint = str(record["fingerprint"])

    @contextmanager
    def open_(meta: dict[str, Any]) -> Iterator[SupportsRead]:
        meta["record"] = rec = client.image(fingerprint, project)
        meta["aliases"] = rec.get("aliases") or []
        meta["properties"] = rec.get("properties") or {}
        parts: list[dict[str, Any]] = []
        meta["parts"] = parts
        with client.export_image(fingerprint, project) as export:
            # the fingerprint is checked at the end of the last part, before the commit
            yield ImageReader(export, parts)

    return LXDObject("image", project, fingerprint, manifest.KIND_STREAM, open_)

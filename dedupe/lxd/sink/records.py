"""Config records back into LXD: profiles, networks, network ACLs, network zones (with
their DNS records), projects, storage pools and trusted certificates (created from the
record without its read-only fields; with ``force``, updated in place; a storage pool is
never changed), and the server config. An equal record is "unchanged"; a ``default``
profile that LXD made empty (a new project's) is updated without ``force``. Records are
named by their ``name``, certificates by their ``fingerprint``.

A failed restore leaves a record as it was: every kind is written with one request
(POST, PUT or PATCH, each atomic in LXD), except network zones (the zone, then one
request per DNS record), whose failure midway is undone (``RecordAPI.undo``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from dedupe.lxd.errors import LXDError, LXDNotFound, LXDObjectExists
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.api.records import Record, RecordKind, strip_read_only


@dataclass(frozen=True)
class RecordAPI:
    strip: RecordKind
    get: Callable[[LXDClient, str, str | None], Record]
    create: Callable[[LXDClient, Record, str | None], None]
    update: Callable[[LXDClient, Record, str | None], None] | None
    key: str = "name"  # the field that names the object
    # where a create or update takes several requests: deletes what a failed create made
    # (a failed update is undone by updating with the previous record)
    undo: Callable[[LXDClient, str, str | None], None] | None = None


_C = LXDClient  # project-scoped collections: the client's methods, unbound (client, name or record, project)
RECORDS: Final[dict[str, RecordAPI]] = {
    "profile": RecordAPI("profile", _C.profile, _C.create_profile, _C.update_profile),
    "network": RecordAPI("network", _C.network, _C.create_network, _C.update_network),
    "network-acl": RecordAPI("network_acl", _C.network_acl, _C.create_network_acl, _C.update_network_acl),
    "network-zone": RecordAPI(
        "network_zone", _C.network_zone, _C.create_network_zone, _C.update_network_zone,
        undo=_C.delete_network_zone,
    ),
    # server-wide collections (no project)
    "project": RecordAPI(
        "project", lambda c, n, p: c.project_record(n), lambda c, r, p: c.create_project(r),
        lambda c, r, p: c.update_project(r),
    ),
    "storage-pool": RecordAPI(
        "storage_pool", lambda c, n, p: c.storage_pool(n), lambda c, r, p: c.create_storage_pool(r), None
    ),
    "certificate": RecordAPI(
        "certificate", lambda c, n, p: c.certificate(n), lambda c, r, p: c.create_certificate(r),
        lambda c, r, p: c.update_certificate(r), key="fingerprint",
    ),
}
GLOBAL_KINDS: Final = frozenset({"project", "storage-pool", "certificate", "server-config", "database"})


DELETE: Final[dict[str, Callable[[LXDClient, str, str | None], None]]] = {
    "profile": _C.delete_profile,
    "network": _C.delete_network,
    "network-acl": _C.delete_network_acl,
    "network-zone": _C.delete_network_zone,
    "project": lambda c, n, p: c.delete_project(n),
    "storage-pool": lambda c, n, p: c.delete_storage_pool(n),
}


def delete_record(client: LXDClient, kind: str, name: str, project: str | None) -> None:
    """Delete a record this restore created (a failed ``--with-deps`` takes them back)."""
    DELETE[kind](client, name, None if kind in GLOBAL_KINDS else project)


def exists(get: Callable[[], Any]) -> Any | None:
    """What ``get`` returns, or None when LXD answers 404."""
    try:
        return get()
    except LXDNotFound:
        return None


def restore_record(client: LXDClient, kind: str, record: Record, project: str | None, force: bool) -> str:
    """Create (or with ``force`` update) one config record; returns the action."""
    rec_api = RECORDS[kind]
    name = str(record[rec_api.key])
    current = exists(lambda: rec_api.get(client, name, project))
    where = f" in project {project}" if project and kind not in GLOBAL_KINDS else ""
    undo = rec_api.undo
    if current is None:
        with undone_on_failure(None if undo is None else lambda: undo(client, name, project)):
            rec_api.create(client, record, project)
        return "created"
    if strip_read_only(rec_api.strip, current) == strip_read_only(rec_api.strip, record):
        return "unchanged"
    made_by_lxd = kind == "profile" and name == "default" and not current.get("config") and not current.get("devices")
    update = rec_api.update
    if update is None:
        raise LXDObjectExists(
            f"{kind} {name!r} exists on {client.endpoint} with another definition; dedupe does not change storage pools"
        )
    if not (force or made_by_lxd):
        raise LXDObjectExists(
            f"{kind} {name!r} exists{where} on {client.endpoint} and differs from the backup; use --force to replace it"
        )
    with undone_on_failure(None if undo is None else lambda: update(client, current, project)):
        update(client, record, project)
    return "updated"


@contextlib.contextmanager
def undone_on_failure(undo: Callable[[], None] | None) -> Iterator[None]:
    """When the body fails, ``undo()`` (None: a single request, nothing to undo). Best
    effort: the body's error is the one to report."""
    try:
        yield
    except BaseException:
        if undo is not None:
            with contextlib.suppress(LXDError):
                undo()
        raise


def restore_server_config(client: LXDClient, config: dict[str, Any], force: bool) -> str:
    current = client.server_config()
    wanted = strip_read_only("server_config", config)
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return "unchanged"
    clashes = sorted(k for k in changed if k in current)
    if clashes and not force:
        raise LXDObjectExists(
            f"server config of {client.endpoint} sets {', '.join(clashes)} differently; use --force to overwrite"
        )
    client.patch_server_config(changed)
    return "updated"


def record_exists(client: LXDClient, kind: str, name: str, project: str | None) -> bool:
    """Whether the target has the config record ``kind`` ``name``."""
    return exists(lambda: RECORDS[kind].get(client, name, project)) is not None
